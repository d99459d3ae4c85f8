/* fuzz_ext4: the ext4 reading path the pipeline uses (libext2fs through
 * ext4.h): open, block bitmap extents, path lookups through symlinks,
 * directory listing, bounded file reads. Inputs shorter than 64 KiB are
 * zero-padded. Corrupt images must fail cleanly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "image/ext4.h"

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

#define PAD (64u << 10)

static int ext_cb(void *usr, uint64_t off, uint64_t len)
{
	unsigned *n = usr;

	(void)off;
	(void)len;
	return ++*n > 100000;
}

static int dir_cb(void *usr, const char *name, uint32_t ino, bool is_dir)
{
	unsigned *n = usr;

	(void)name;
	(void)ino;
	(void)is_dir;
	return ++*n > 4096;
}

static int data_cb(void *usr, const void *d, size_t len)
{
	(void)usr;
	(void)d;
	(void)len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {"/etc/hostname", "/lib/modules",
					    "/usr/lib/modules/1.0/modules.dep"};
	struct ext4_fs *fs = NULL;
	struct art_err err;
	struct ext4_stat st;
	char path[64];
	unsigned n = 0;
	size_t i;
	int fd;

	if (size > (8u << 20))
		return 0;
	fd = load_image(data, size, &size);
	if (fd < 0)
		return 0;
	if (size < PAD && ftruncate(fd, PAD) < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (ext4_open(path, 0, size < PAD ? PAD : size, &fs, &err) == 0) {
		ext4_used_extents(fs, ext_cb, &n, &err);
		n = 0;
		ext4_list_dir(fs, "/", dir_cb, &n, &err);
		for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			if (ext4_stat_path(fs, paths[i], true, &st, &err) == 0 && S_ISREG(st.mode))
				ext4_read_file(fs, st.ino, 1u << 20, data_cb, NULL, &err);
		}
		ext4_close(fs);
	}
	close(fd);
	return 0;
}
