/* fuzz_fat: the FAT reader on arbitrary images: open, walk every directory,
 * read every file, list the used extents. Corrupt images must fail with an
 * error, never crash, hang or read outside the image. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zstd.h>

#include "image/fat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Corpus files may be zstd-compressed images (file systems are mostly
 * zeros): those are expanded first, up to 64 MiB. Returns a memfd holding
 * the image, or -1 to skip the input. */
static int load_image(const uint8_t *data, size_t size, size_t *img_size)
{
	int fd = memfd_create("fuzz_img", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	if (size >= 4 && !memcmp(data, "\x28\xb5\x2f\xfd", 4)) {
		/* streamed through a small buffer: no image-sized allocation */
		ZSTD_DCtx *z = ZSTD_createDCtx();
		ZSTD_inBuffer in = {data, size, 0};
		uint8_t out[65536];
		size_t total = 0, r = 1;

		if (!z)
			abort();
		while (in.pos < in.size && total <= (64u << 20)) {
			ZSTD_outBuffer ob = {out, sizeof(out), 0};

			r = ZSTD_decompressStream(z, &ob, &in);
			if (ZSTD_isError(r) || write(fd, out, ob.pos) != (ssize_t)ob.pos)
				break;
			total += ob.pos;
			if (r == 0)
				break;
		}
		ZSTD_freeDCtx(z);
		if (ZSTD_isError(r) || total > (64u << 20)) {
			close(fd);
			return -1;
		}
		*img_size = total;
		return fd;
	}
	if (write(fd, data, size) != (ssize_t)size)
		abort();
	*img_size = size;
	return fd;
}

struct ctx {
	struct fat_vol *v;
	int sink;
	unsigned entries;
};

static int read_cb(void *usr, const char *path, const struct fat_dirent *e)
{
	struct ctx *c = usr;
	struct art_err err;

	(void)path;
	if (++c->entries > 4096)
		return 1;
	if (!e->is_dir && lseek(c->sink, 0, SEEK_SET) == 0)
		fat_read_file(c->v, e, c->sink, &err);
	return 0;
}

static int ext_cb(void *usr, uint64_t off, uint64_t len)
{
	(void)usr;
	(void)off;
	(void)len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct art_err err;
	struct ctx c = {0};
	struct fat_dirent d;
	int fd;

	if (size > (4u << 20))
		return 0;
	fd = load_image(data, size, &size);
	if (fd < 0)
		return 0;
	c.sink = memfd_create("fuzz_fat_sink", MFD_CLOEXEC);
	if (c.sink < 0)
		abort();
	if (fat_open(fd, 0, size, &c.v, &err) == 0) {
		fat_walk(c.v, read_cb, &c, &err);
		fat_lookup(c.v, "overlays/README", &d, &err);
		fat_used_extents(c.v, ext_cb, NULL, &err);
		fat_close(c.v);
	}
	close(fd);
	close(c.sink);
	return 0;
}
