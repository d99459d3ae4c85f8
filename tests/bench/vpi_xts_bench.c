/* vpi_xts_bench: how fast the virtual Pi encrypts writes to mapper/cryptroot
 * (user-space aes-xts-plain64 with mbedtls) and decrypts reads, measured
 * through vpi_luks_write/read on a LUKS2 container in a temp storage file.
 * Prints figures. Usage: vpi_xts_bench [MiB] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vpi/luks.h"
#include "vpi/storage.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned mib = argc > 1 ? (unsigned)atoi(argv[1]) : 256;
	char dir[] = "/tmp/vpi-xts-bench-XXXXXX", path[64], cmd[96];
	struct vpi_storage_params p = { .path = path, .bitflip_offset = -1, .disk = "mmcblk0" };
	struct vpi_luks_format_result res;
	struct vpi_storage *s = NULL;
	struct vpi_luks_map *m = NULL;
	uint8_t *buf = malloc(1u << 20);
	double t0, t1, t2;
	int rc = 1;

	if (!buf || !mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/storage.img", dir);
	p.size = ((uint64_t)mib + 32) << 20;
	for (unsigned i = 0; i < (1u << 20); i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	if (vpi_storage_open(&p, &s) ||
	    vpi_luks_format(s, 0, p.size, "bench", 5, "root", NULL, dir, NULL, &res) ||
	    vpi_luks_open(s, 0, p.size, "bench", 5, dir, &m)) {
		fprintf(stderr, "vpi_xts_bench: cannot set up LUKS2 in %s\n", dir);
		goto out;
	}
	t0 = now();
	for (unsigned i = 0; i < mib; i++)
		if (vpi_luks_write(m, (uint64_t)i << 20, buf, 1u << 20))
			goto out;
	t1 = now();
	for (unsigned i = 0; i < mib; i++)
		if (vpi_luks_read(m, (uint64_t)i << 20, buf, 1u << 20))
			goto out;
	t2 = now();
	printf("mapper/cryptroot write (encrypt + pwrite) %u MiB: %.2f s, %.1f MB/s\n", mib, t1 - t0,
	       mib * 1048576.0 / (t1 - t0) / 1e6);
	printf("mapper/cryptroot read (pread + decrypt)  %u MiB: %.2f s, %.1f MB/s\n", mib, t2 - t1,
	       mib * 1048576.0 / (t2 - t1) / 1e6);
	rc = 0;
out:
	vpi_luks_close(m);
	vpi_storage_close(s);
	free(buf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
