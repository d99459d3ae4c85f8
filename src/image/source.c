/* source: gold image identification and one-time decompression (see
 * source.h). Streams through libzstd / liblzma with fixed buffers. Any
 * thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lzma.h>
#include <zstd.h>

#include "image/mbr.h"
#include "image/source.h"

#define IO_BUF (1u << 20)
#define HOLE_BLOCK 4096u

int source_identify(const char *path, enum source_kind *kind, struct art_err *err)
{
	uint8_t b[512];
	struct stat st;
	struct mbr m;
	ssize_t n;
	int fd, rc;

	if (stat(path, &st) < 0)
		return art_err_set(err, -errno, "gold image %s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return art_err_set(err, -EINVAL, "gold image %s is a directory (an rpi-image-gen "
				   "artefact?): this pipeline takes a .img, .img.zst or .img.xz", path);
	if (!S_ISREG(st.st_mode))
		return art_err_set(err, -EINVAL, "gold image %s is not a regular file", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return art_err_set(err, -errno, "cannot open gold image %s: %s", path,
				   strerror(errno));
	memset(b, 0, sizeof(b));
	n = pread(fd, b, sizeof(b), 0);
	close(fd);
	if (n < 0)
		return art_err_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
	if (n >= 4 && !memcmp(b, "\x28\xb5\x2f\xfd", 4)) {
		*kind = SOURCE_ZSTD;
		return 0;
	}
	if (n >= 6 && !memcmp(b, "\xfd" "7zXZ\0", 6)) {
		*kind = SOURCE_XZ;
		return 0;
	}
	if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
		return art_err_set(err, -EINVAL, "%s is gzip-compressed: decompress it, or "
				   "recompress it with zstd or xz", path);
	if (n >= 3 && !memcmp(b, "BZh", 3))
		return art_err_set(err, -EINVAL, "%s is bzip2-compressed: decompress it, or "
				   "recompress it with zstd or xz", path);
	if (n >= 4 && !memcmp(b, "PK\x03\x04", 4))
		return art_err_set(err, -EINVAL, "%s is a zip archive: unzip the .img inside it", path);
	if (n >= 4 && !memcmp(b, "\x3a\xff\x26\xed", 4))
		return art_err_set(err, -EINVAL, "%s is an Android sparse image: expand it with "
				   "simg2img first", path);
	if (n >= 4 && !memcmp(b, "QFI\xfb", 4))
		return art_err_set(err, -EINVAL, "%s is a qcow2 disk: convert it with "
				   "`qemu-img convert -O raw`", path);
	if (n < 512)
		return art_err_set(err, -EINVAL, "%s is %lld bytes: too short for a disk image",
				   path, (long long)st.st_size);
	rc = mbr_parse(b, (uint64_t)st.st_size, &m, err);
	if (rc) {
		art_err_prefix(err, "%s: ", path);
		return rc;
	}
	*kind = SOURCE_RAW;
	return 0;
}

/* Write @len bytes at the current offset, leaving all-zero blocks as holes. */
static int write_holey(int fd, const uint8_t *p, size_t len, uint64_t *pos)
{
	size_t off = 0;

	while (off < len) {
		size_t n = len - off < HOLE_BLOCK ? len - off : HOLE_BLOCK;
		bool zero = n == HOLE_BLOCK && p[off] == 0 && !memcmp(p + off, p + off + 1, n - 1);

		if (!zero) {
			ssize_t w = pwrite(fd, p + off, n, (off_t)*pos);

			if (w < 0 && errno == EINTR)
				continue;
			if (w != (ssize_t)n)
				return w < 0 ? -errno : -EIO;
		}
		*pos += n;
		off += n;
	}
	return 0;
}

struct decomp {
	const char *src;
	enum source_kind kind;
};

static int decompress_zstd(int in, int out, uint64_t *pos, struct art_err *err)
{
	ZSTD_DCtx *z = ZSTD_createDCtx();
	uint8_t *ib = malloc(IO_BUF), *ob = malloc(IO_BUF);
	size_t last = 0;
	int rc = 0;

	if (!z || !ib || !ob) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, ib, IO_BUF);
		ZSTD_inBuffer zi = {ib, n > 0 ? (size_t)n : 0, 0};

		if (n < 0) {
			rc = art_err_set(err, -errno, "read: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		while (zi.pos < zi.size) {
			ZSTD_outBuffer zo = {ob, IO_BUF, 0};

			last = ZSTD_decompressStream(z, &zo, &zi);
			if (ZSTD_isError(last)) {
				rc = art_err_set(err, -EINVAL, "corrupt zstd data: %s",
						 ZSTD_getErrorName(last));
				goto out;
			}
			rc = write_holey(out, ob, zo.pos, pos);
			if (rc) {
				art_err_set(err, rc, "cannot write the decompressed image: %s",
					    strerror(-rc));
				goto out;
			}
		}
	}
	/* flush what the decoder still holds */
	for (;;) {
		ZSTD_inBuffer zi = {ib, 0, 0};
		ZSTD_outBuffer zo = {ob, IO_BUF, 0};

		size_t r = ZSTD_decompressStream(z, &zo, &zi);

		/* with no input left, a finished decoder only hints at the next
		 * frame's header size: that is not a truncation */
		if (ZSTD_isError(r) || zo.pos == 0)
			break;
		last = r;
		rc = write_holey(out, ob, zo.pos, pos);
		if (rc)
			goto out;
	}
	if (last != 0)
		rc = art_err_set(err, -EINVAL, "zstd stream is truncated: download it again");
out:
	ZSTD_freeDCtx(z);
	free(ib);
	free(ob);
	return rc;
}

static int decompress_xz(int in, int out, uint64_t *pos, struct art_err *err)
{
	lzma_stream s = LZMA_STREAM_INIT;
	uint8_t *ib = malloc(IO_BUF), *ob = malloc(IO_BUF);
	lzma_action action = LZMA_RUN;
	int rc = 0;

	if (!ib || !ob) {
		rc = -ENOMEM;
		goto out;
	}
	if (lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
		rc = art_err_set(err, -ENOMEM, "cannot start the xz decoder");
		goto out;
	}
	s.next_out = ob;
	s.avail_out = IO_BUF;
	for (;;) {
		lzma_ret r;

		if (s.avail_in == 0 && action == LZMA_RUN) {
			ssize_t n = read(in, ib, IO_BUF);

			if (n < 0) {
				rc = art_err_set(err, -errno, "read: %s", strerror(errno));
				goto out;
			}
			s.next_in = ib;
			s.avail_in = (size_t)n;
			if (n == 0)
				action = LZMA_FINISH;
		}
		r = lzma_code(&s, action);
		if (s.avail_out == 0 || r == LZMA_STREAM_END) {
			rc = write_holey(out, ob, IO_BUF - s.avail_out, pos);
			if (rc) {
				art_err_set(err, rc, "cannot write the decompressed image: %s",
					    strerror(-rc));
				goto out;
			}
			s.next_out = ob;
			s.avail_out = IO_BUF;
		}
		if (r == LZMA_STREAM_END)
			break;
		if (r != LZMA_OK) {
			rc = art_err_set(err, -EINVAL, "corrupt or truncated xz data (lzma error %d): "
					 "download it again", (int)r);
			goto out;
		}
	}
out:
	lzma_end(&s);
	free(ib);
	free(ob);
	return rc;
}

static int decompress_build(void *usr, const char *tmp_dir, struct art_err *err)
{
	const struct decomp *d = usr;
	char *dst = NULL;
	uint64_t pos = 0;
	int in = -1, out = -1, rc;
	struct mbr m;

	if (asprintf(&dst, "%s/image.img", tmp_dir) < 0)
		return -ENOMEM;
	in = open(d->src, O_RDONLY | O_CLOEXEC);
	out = open(dst, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in < 0 || out < 0) {
		rc = art_err_set(err, -errno, "cannot decompress %s: %s", d->src, strerror(errno));
		goto out;
	}
	rc = d->kind == SOURCE_ZSTD ? decompress_zstd(in, out, &pos, err)
				    : decompress_xz(in, out, &pos, err);
	if (rc) {
		art_err_prefix(err, "%s: ", d->src);
		goto out;
	}
	if (ftruncate(out, (off_t)pos) < 0 || fsync(out) < 0) {
		rc = art_err_set(err, -errno, "cannot finish %s: %s", dst, strerror(errno));
		goto out;
	}
	rc = mbr_read_fd(out, &m, err);
	if (rc)
		art_err_prefix(err, "%s decompressed: ", d->src);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(dst);
	return rc;
}

int source_prepare(const char *cache_dir, const char *path, char **raw_path,
		   char sha256[CACHE_KEY_HEX], struct art_err *err)
{
	struct decomp d = {.src = path};
	struct cache_key k;
	char key[CACHE_KEY_HEX], *entry = NULL;
	bool cached, hit;
	int rc;

	*raw_path = NULL;
	rc = source_identify(path, &d.kind, err);
	if (rc)
		return rc;
	rc = cache_file_sha256(cache_dir, path, sha256, &cached, err);
	if (rc)
		return rc;
	if (d.kind == SOURCE_RAW) {
		*raw_path = strdup(path);
		return *raw_path ? 0 : -ENOMEM;
	}
	cache_key_init(&k, "decompressed-image");
	cache_key_add_str(&k, "source-sha256", sha256);
	cache_key_final(&k, key);
	rc = cache_get(cache_dir, key, decompress_build, &d, &entry, &hit, err);
	if (rc)
		return rc;
	if (asprintf(raw_path, "%s/image.img", entry) < 0)
		rc = -ENOMEM;
	free(entry);
	return rc;
}
