/* verify: build the gadget's binary bmap (`oem bmap-load`) from a sparse
 * image, so the board itself hashes what it holds and compares (`oem
 * bmap-verify`). Ranges cover the blocks the image defines (raw and fill
 * chunks, at most BMAP_RANGE_BLOCKS each, never across chunks); don't-care
 * blocks are not checked. Worker thread (no shared state).
 *
 * libsparse's sparse_file_foreach_chunk() hands a chunk's expanded bytes to
 * the callback in pieces (a FILL chunk one block at a time, a RAW chunk's
 * padding as NULL data), all tagged with the chunk's first block; the bytes
 * are hashed as a stream. The callback never fails: libsparse leaks its
 * output context when it does, so an error is kept and reported after. */
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sparse/sparse.h>

#include "flows/verify.h"
#include "proto/sparse.h"

#define BMAP_MAGIC 0x50414D42u
#define BMAP_RANGE_BLOCKS 256u   /* a mismatch names a range of at most 1 MiB */

struct bmap_build {
	uint8_t *buf;
	size_t len, cap;
	uint32_t count;
	unsigned block;
	int err;
	/* the chunk being hashed */
	bool in_chunk;
	uint64_t chunk_block;           /* its first block */
	uint64_t chunk_bytes, chunk_done;
	/* the range being hashed, inside the chunk */
	bool in_range;
	uint64_t range_first;           /* block */
	uint64_t range_done;            /* bytes hashed into it */
	mbedtls_sha256_context sha;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int add_range(struct bmap_build *b, uint64_t first, uint64_t last, const uint8_t sha[32])
{
	if (last > UINT32_MAX)
		return -EFBIG;  /* the bmap format numbers blocks in 32 bits */
	if (b->len + 40 > b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 4096;
		uint8_t *n = realloc(b->buf, ncap);

		if (!n)
			return -ENOMEM;
		b->buf = n;
		b->cap = ncap;
	}
	put32(b->buf + b->len, (uint32_t)first);
	put32(b->buf + b->len + 4, (uint32_t)last);
	memcpy(b->buf + b->len + 8, sha, 32);
	b->len += 40;
	b->count++;
	return 0;
}

static void bmap_end_range(struct bmap_build *b)
{
	uint8_t sha[32];
	int r;

	if (!b->in_range)
		return;
	b->in_range = false;
	mbedtls_sha256_finish_ret(&b->sha, sha);
	mbedtls_sha256_free(&b->sha);
	if (b->range_done % b->block) {
		b->err = -EINVAL;   /* a chunk that is not whole blocks */
		return;
	}
	r = add_range(b, b->range_first, b->range_first + b->range_done / b->block - 1, sha);
	if (r < 0 && !b->err)
		b->err = r;
}

static void bmap_end_chunk(struct bmap_build *b)
{
	bmap_end_range(b);
	if (b->in_chunk && b->chunk_done != b->chunk_bytes && !b->err)
		b->err = -EINVAL;   /* libsparse gave fewer bytes than the chunk holds */
	b->in_chunk = false;
}

/* Hash @len bytes (@data NULL: zeros) at the current position of the chunk. */
static void bmap_feed(struct bmap_build *b, const uint8_t *data, size_t len)
{
	static const uint8_t zeros[4096];
	const uint64_t range_bytes = (uint64_t)BMAP_RANGE_BLOCKS * b->block;

	while (len && !b->err) {
		if (b->chunk_done >= b->chunk_bytes) {
			b->err = -EINVAL;   /* more bytes than the chunk holds */
			return;
		}
		if (!b->in_range) {
			mbedtls_sha256_init(&b->sha);
			mbedtls_sha256_starts_ret(&b->sha, 0);
			b->in_range = true;
			b->range_first = b->chunk_block + b->chunk_done / b->block;
			b->range_done = 0;
		}
		uint64_t room = range_bytes - b->range_done;
		uint64_t left = b->chunk_bytes - b->chunk_done;
		size_t n = len;

		if (n > room)
			n = (size_t)room;
		if (n > left)
			n = (size_t)left;
		if (!data && n > sizeof(zeros))
			n = sizeof(zeros);
		mbedtls_sha256_update_ret(&b->sha, data ? data : zeros, n);
		b->range_done += n;
		b->chunk_done += n;
		if (data)
			data += n;
		len -= n;
		if (b->range_done == range_bytes || b->chunk_done == b->chunk_bytes)
			bmap_end_range(b);
	}
}

/* Called with pieces of each chunk that holds data: @block and @nr_blocks
 * name the whole chunk, @data (NULL = zeros) the next @len bytes of it. */
static int on_chunk(void *priv, const void *data, size_t len, unsigned int block,
		    unsigned int nr_blocks)
{
	struct bmap_build *b = priv;

	if (b->err)
		return 0;
	if (!b->in_chunk || b->chunk_block != block || b->chunk_done == b->chunk_bytes) {
		bmap_end_chunk(b);
		b->in_chunk = true;
		b->chunk_block = block;
		b->chunk_bytes = (uint64_t)nr_blocks * b->block;
		b->chunk_done = 0;
	}
	bmap_feed(b, data, len);
	return 0;
}

int verify_bmap_from_sparse(const char *simg_path, uint8_t **out, size_t *out_len,
			    uint32_t *ranges)
{
	struct bmap_build b = { 0 };
	struct sparse_file *s;
	int fd, r;

	fd = open(simg_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = sparse_header_check(fd);
	s = r > 0 ? sparse_file_import(fd, true, false) : NULL;
	if (!s) {
		close(fd);
		return -EINVAL;
	}
	b.block = sparse_file_block_size(s);
	b.len = 16; /* header, filled below */
	b.cap = 4096;
	b.buf = malloc(b.cap);
	if (!b.buf) {
		r = -ENOMEM;
		goto out;
	}
	r = sparse_file_foreach_chunk(s, false, false, on_chunk, &b);
	bmap_end_chunk(&b);
	if (r < 0 || b.err < 0) {
		r = b.err < 0 ? b.err : -EIO;
		goto out;
	}
	put32(b.buf, BMAP_MAGIC);
	put32(b.buf + 4, b.block);
	put32(b.buf + 8, b.count);
	put32(b.buf + 12, 0);
	*out = b.buf;
	*out_len = b.len;
	if (ranges)
		*ranges = b.count;
	b.buf = NULL;
	r = 0;
out:
	free(b.buf);
	sparse_file_destroy(s);
	close(fd);
	return r;
}

/* The bmap of a sparse image is a function of its bytes: kept beside it as
 * <simg>.bmap (written once, atomically), so a cached artefact is hashed
 * once, not once per board. Checked on reading: magic, block size and a
 * length that matches its range count; the image must not be newer. */
int verify_bmap_cached(const char *simg_path, uint8_t **out, size_t *out_len, uint32_t *ranges,
		       bool *hit)
{
	char path[4096], tmp[4096 + 16];
	struct stat si, sb;
	uint8_t *buf = NULL;
	int fd, r;

	*hit = false;
	if ((size_t)snprintf(path, sizeof(path), "%s.bmap", simg_path) >= sizeof(path))
		return verify_bmap_from_sparse(simg_path, out, out_len, ranges);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &sb) == 0 && stat(simg_path, &si) == 0 &&
	    sb.st_mtime >= si.st_mtime && sb.st_size >= 16 && sb.st_size <= (64 << 20) &&
	    (buf = malloc((size_t)sb.st_size)) &&
	    read(fd, buf, (size_t)sb.st_size) == sb.st_size &&
	    get32(buf) == BMAP_MAGIC && get32(buf + 4) &&
	    16 + 40 * (uint64_t)get32(buf + 8) == (uint64_t)sb.st_size) {
		close(fd);
		*out = buf;
		*out_len = (size_t)sb.st_size;
		if (ranges)
			*ranges = get32(buf + 8);
		*hit = true;
		return 0;
	}
	free(buf);
	if (fd >= 0)
		close(fd);
	r = verify_bmap_from_sparse(simg_path, out, out_len, ranges);
	if (r < 0)
		return r;
	/* Best effort: a read-only cache only costs the hashing next time. */
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd >= 0) {
		bool ok = write(fd, *out, *out_len) == (ssize_t)*out_len && fchmod(fd, 0644) == 0;

		if (close(fd) != 0 || !ok || rename(tmp, path) != 0)
			unlink(tmp);
	}
	return 0;
}
