/* verify: build the gadget's binary bmap (`oem bmap-load`) from a sparse
 * image, so the board itself hashes what it holds and compares (`oem
 * bmap-verify`). Ranges cover the blocks the image defines (raw and fill
 * chunks); don't-care blocks are not checked. Worker thread. */
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sparse/sparse.h>

#include "flows/verify.h"

#define BMAP_MAGIC 0x50414D42u
#define BMAP_RANGE_BLOCKS 256u   /* a mismatch names a range of at most 1 MiB */

struct bmap_build {
	uint8_t *buf;
	size_t len, cap;
	uint32_t count;
	unsigned block;
	int err;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static int add_range(struct bmap_build *b, uint32_t first, uint32_t last, const uint8_t sha[32])
{
	if (b->len + 40 > b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 4096;
		uint8_t *n = realloc(b->buf, ncap);

		if (!n)
			return -ENOMEM;
		b->buf = n;
		b->cap = ncap;
	}
	put32(b->buf + b->len, first);
	put32(b->buf + b->len + 4, last);
	memcpy(b->buf + b->len + 8, sha, 32);
	b->len += 40;
	b->count++;
	return 0;
}

/* Called for each chunk that holds data: @len bytes for blocks [block, block + nr). */
static int on_chunk(void *priv, const void *data, size_t len, unsigned int block,
		    unsigned int nr_blocks)
{
	struct bmap_build *b = priv;
	const uint8_t *p = data;

	if (!data || len != (size_t)nr_blocks * b->block) {
		b->err = -EINVAL;
		return -1;
	}
	for (unsigned int done = 0; done < nr_blocks;) {
		unsigned int n = nr_blocks - done < BMAP_RANGE_BLOCKS ? nr_blocks - done : BMAP_RANGE_BLOCKS;
		uint8_t sha[32];

		mbedtls_sha256_ret(p + (size_t)done * b->block, (size_t)n * b->block, sha, 0);
		if (add_range(b, block + done, block + done + n - 1, sha) < 0) {
			b->err = -ENOMEM;
			return -1;
		}
		done += n;
	}
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
	s = sparse_file_import(fd, true, false);
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
