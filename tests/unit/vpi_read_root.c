/* vpi_read_root: a test tool that reads back what a virtual board holds in
 * a LUKS2 partition, decrypted the way the board itself unlocks it (its
 * device-derived key), into a plain file for debugfs / e2fsck.
 *
 *   vpi_read_root MODEL STATE_DIR PARTITION OUT
 *
 * The board's state is opened as it is (the storage size is taken from its
 * storage.img, so nothing is resized). Main thread only. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vpi/board.h"
#include "vpi/luks.h"

/* The seed the board's <state>/identity pins ("model=M seed=N"). */
static uint32_t identity_seed(const char *dir)
{
	char path[4096], line[128];
	unsigned long seed = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/identity", dir);
	f = fopen(path, "re");
	if (f) {
		char *s = fgets(line, sizeof(line), f) ? strstr(line, "seed=") : NULL;

		if (s)
			seed = strtoul(s + 5, NULL, 10);
		fclose(f);
	}
	return (uint32_t)seed;
}

int main(int argc, char **argv)
{
	struct vpi_board_opts o;
	struct vpi_board *b = NULL;
	struct vpi_luks_reader *r = NULL;
	char *storage = NULL, *buf = NULL;
	struct stat st;
	uint64_t off, size;
	int fd = -1, rc;

	if (argc != 5) {
		fprintf(stderr, "usage: vpi_read_root MODEL STATE_DIR PARTITION OUT\n");
		return 2;
	}
	if (asprintf(&storage, "%s/storage.img", argv[2]) < 0 || stat(storage, &st) < 0) {
		fprintf(stderr, "vpi_read_root: no storage.img in %s\n", argv[2]);
		return 1;
	}
	vpi_board_opts_init(&o);
	o.faults.storage_bytes = (uint64_t)st.st_size;
	o.serial_seed = identity_seed(argv[2]);
	rc = vpi_board_open(argv[1], argv[2], &o, &b);
	if (rc == 0)
		rc = vpi_luks_open_reader(b, argv[3], &r);
	if (rc) {
		fprintf(stderr, "vpi_read_root: %s %s: %s\n", argv[2], argv[3], strerror(-rc));
		goto out;
	}
	size = vpi_luks_reader_size(r);
	buf = malloc(1u << 20);
	fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (!buf || fd < 0) {
		rc = -errno;
		fprintf(stderr, "vpi_read_root: %s: %s\n", argv[4], strerror(errno));
		goto out;
	}
	for (off = 0; off < size && !rc; off += 1u << 20) {
		size_t n = size - off < (1u << 20) ? (size_t)(size - off) : 1u << 20;

		rc = vpi_luks_reader_read(r, off, buf, n);
		if (!rc && write(fd, buf, n) != (ssize_t)n)
			rc = -EIO;
	}
	if (rc)
		fprintf(stderr, "vpi_read_root: reading %s: %s\n", argv[3], strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(storage);
	vpi_luks_reader_close(r);
	vpi_board_close(b);
	return rc ? 1 : 0;
}
