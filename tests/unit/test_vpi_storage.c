/* test_vpi_storage: the virtual Pi's storage file: MBR written by partinit /
 * partapp (checked with sfdisk), node names, bounds, the bit-flip fault and
 * the speed model. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vpi/storage.h"

struct fx {
	char dir[64];
	char path[128];
	struct vpi_storage *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vpi_storage_params p = { .size = 256u << 20, .bitflip_offset = -1, .disk = "mmcblk0" };

	snprintf(f->dir, sizeof(f->dir), "/tmp/vpi-storage-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/storage.img", f->dir);
	p.path = f->path;
	assert_int_equal(vpi_storage_open(&p, &f->s), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vpi_storage_close(f->s);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void test_mbr_partinit_partapp(void **state)
{
	struct fx *f = *state;
	struct vpi_part parts[4];
	unsigned n, pn;
	uint64_t start, size;
	char cmd[256], line[256];
	FILE *p;
	int found = 0;

	assert_int_equal(vpi_storage_resolve(f->s, "mmcblk0p1", &start, &size, &pn), -ENOENT);
	assert_int_equal(vpi_storage_mbr_append(f->s, 0x0c, 1 << 20), -EINVAL);   /* no table yet */
	assert_int_equal(vpi_storage_mbr_init(f->s, 0x12345678), 0);
	assert_int_equal(vpi_storage_partitions(f->s, parts, &n), 0);
	assert_int_equal(n, 0);
	/* 5 MB rounds up to the 4 MiB grain: 8 MiB; starts at 4 MiB. */
	assert_int_equal(vpi_storage_mbr_append(f->s, 0x0c, 5000000), 0);
	assert_int_equal(vpi_storage_mbr_append(f->s, 0x83, 0), 0);
	assert_int_equal(vpi_storage_partitions(f->s, parts, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(parts[0].start, 4u << 20);
	assert_int_equal(parts[0].size, 8u << 20);
	assert_int_equal(parts[0].type, 0x0c);
	assert_int_equal(parts[1].start, 12u << 20);
	assert_int_equal(parts[1].size, (256u - 12u) << 20);
	assert_int_equal(vpi_storage_resolve(f->s, "mmcblk0p2", &start, &size, &pn), 0);
	assert_int_equal(start, 12u << 20);
	assert_int_equal(pn, 2);
	assert_int_equal(vpi_storage_resolve(f->s, "mmcblk0", &start, &size, &pn), 0);
	assert_int_equal(size, 256u << 20);
	assert_int_equal(pn, 0);
	assert_int_equal(vpi_storage_resolve(f->s, "mmcblk0p3", &start, &size, &pn), -ENOENT);
	assert_int_equal(vpi_storage_resolve(f->s, "mmcblk0p", &start, &size, &pn), -ENOENT);
	assert_int_equal(vpi_storage_resolve(f->s, "mmcblk0p1x", &start, &size, &pn), -ENOENT);
	assert_int_equal(vpi_storage_resolve(f->s, "nvme0n1p1", &start, &size, &pn), -ENOENT);
	/* Disk full: no room for a third partition. */
	assert_int_equal(vpi_storage_mbr_append(f->s, 0x83, 0), -ENOSPC);

	/* Oracle: util-linux reads the same table. */
	snprintf(cmd, sizeof(cmd), "sfdisk -d %s 2>/dev/null", f->path);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		if (strstr(line, "label-id: 0x12345678"))
			found |= 1;
		if (strstr(line, "start=        8192, size=       16384, type=c"))
			found |= 2;
		if (strstr(line, "start=       24576, size=      499712, type=83"))
			found |= 4;
	}
	assert_int_equal(pclose(p), 0);
	assert_int_equal(found, 7);
}

static void test_partapp_too_big(void **state)
{
	struct fx *f = *state;

	assert_int_equal(vpi_storage_mbr_init(f->s, 1), 0);
	assert_int_equal(vpi_storage_mbr_append(f->s, 0x0c, 300u << 20), -ENOSPC);
	for (int i = 0; i < 4; i++)
		assert_int_equal(vpi_storage_mbr_append(f->s, 0x83, 4u << 20), 0);
	assert_int_equal(vpi_storage_mbr_append(f->s, 0x83, 4u << 20), -ENOSPC);   /* 4 primaries */
}

static void test_io_bounds_and_fill(void **state)
{
	struct fx *f = *state;
	uint8_t buf[16] = { 0 };

	assert_int_equal(vpi_storage_pwrite(f->s, (256u << 20) - 8, buf, 16), -ENOSPC);
	assert_int_equal(vpi_storage_fill(f->s, 4096, 4096, 0xdeadbeef), 0);
	assert_int_equal(vpi_storage_pread(f->s, 4096, buf, 8), 0);
	assert_memory_equal(buf, "\xef\xbe\xad\xde\xef\xbe\xad\xde", 8);
}

static void test_bitflip(void **state)
{
	struct fx *f = *state;
	struct vpi_storage *s;
	struct vpi_storage_params p = { .path = f->path, .size = 1u << 20, .bitflip_offset = 5000,
					.disk = "nvme0n1" };
	uint8_t in[8192], out[8192];

	memset(in, 0xA5, sizeof(in));
	assert_int_equal(vpi_storage_open(&p, &s), 0);
	assert_int_equal(vpi_storage_pwrite(s, 4096, in, sizeof(in)), 0);
	assert_int_equal(vpi_storage_pread(s, 4096, out, sizeof(out)), 0);
	assert_int_equal(in[904], 0xA5);   /* the caller's buffer is untouched */
	assert_int_equal(out[903], 0xA5);
	assert_int_equal(out[904], 0xA4);  /* bit 0 flipped at absolute 5000 */
	assert_int_equal(out[905], 0xA5);
	out[904] ^= 1;
	assert_memory_equal(in, out, sizeof(in));
	assert_string_equal(vpi_storage_disk(s), "nvme0n1");
	vpi_storage_close(s);
}

static void test_speed_model(void **state)
{
	struct fx *f = *state;
	struct vpi_storage *s;
	struct vpi_storage_params p = { .path = f->path, .size = 8u << 20, .bytes_per_s = 20u << 20,
					.bitflip_offset = -1, .disk = "mmcblk0" };
	struct timespec a, b;
	double secs;

	assert_int_equal(vpi_storage_open(&p, &s), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(vpi_storage_fill(s, 0, 4u << 20, 0), 0);   /* 4 MiB at 20 MiB/s: 0.2 s */
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	assert_true(secs >= 0.19);
	assert_true(secs < 2.0);
	assert_true(vpi_storage_model_rate(VPI_STORAGE_SD) < vpi_storage_model_rate(VPI_STORAGE_NVME));
	vpi_storage_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mbr_partinit_partapp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partapp_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_bounds_and_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitflip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_speed_model, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
