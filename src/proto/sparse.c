/* sparse: Android sparse images through libsparse (spec fastboot.md §5).
 *
 * Owns building sparse images from raw regions (streamed, data referenced
 * by fd), splitting them to the device's max-download-size, and streaming the
 * pieces into fastboot downloads. Called by the worker thread that owns the
 * board; libsparse objects are not shared between threads. */
#include "proto/sparse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sparse/sparse.h> /* libsparse; configure adds its include dir */

#define READ_CHUNK (1u << 20)
#define RUN_MAX (64u << 20) /* libsparse lengths are unsigned int: keep runs well below */

enum blk_kind { BLK_NONE, BLK_RAW, BLK_FILL, BLK_SKIP };

struct run {
	enum blk_kind kind;
	uint64_t first;   /* block */
	uint64_t bytes;   /* RAW: bytes of the file (last block may be partial) */
	uint64_t blocks;
	uint32_t fill;
};

struct builder {
	struct sparse_file *s;
	int fd;
	off_t offset;
	unsigned bs;
	struct run run;
};

static int run_flush(struct builder *b)
{
	struct run *r = &b->run;
	int rc = 0;

	switch (r->kind) {
	case BLK_RAW:
		rc = sparse_file_add_fd(b->s, b->fd, (int64_t)(b->offset + (off_t)(r->first * b->bs)),
					(unsigned)r->bytes, (unsigned)r->first);
		break;
	case BLK_FILL:
		rc = sparse_file_add_fill(b->s, r->fill, (unsigned)(r->blocks * b->bs), (unsigned)r->first);
		break;
	case BLK_NONE:
	case BLK_SKIP:
		break;
	}
	r->kind = BLK_NONE;
	return rc < 0 ? -ENOMEM : 0;
}

static int run_add(struct builder *b, enum blk_kind kind, uint64_t block, uint64_t bytes, uint32_t fill)
{
	struct run *r = &b->run;
	int rc;

	if (r->kind == kind && r->first + r->blocks == block && (kind != BLK_FILL || r->fill == fill) &&
	    (r->blocks + 1) * b->bs <= RUN_MAX) {
		r->blocks++;
		r->bytes += bytes;
		return 0;
	}
	rc = run_flush(b);
	if (rc < 0)
		return rc;
	*r = (struct run){ .kind = kind, .first = block, .bytes = bytes, .blocks = 1, .fill = fill };
	return 0;
}

/* A block is FILL when it is one 32-bit word repeated (zero included). */
static bool uniform(const uint8_t *p, unsigned bs, uint32_t *word)
{
	uint32_t w;

	memcpy(&w, p, 4);
	for (unsigned i = 4; i < bs; i += 4)
		if (memcmp(p + i, &w, 4) != 0)
			return false;
	*word = w;
	return true;
}

static int cmp_extent(const void *a, const void *b)
{
	const struct sparse_extent *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

static int build_extent(struct builder *b, uint8_t *buf, uint64_t first, uint64_t count,
			uint64_t len, enum sparse_zero_policy zp)
{
	uint64_t blk = first, end = first + count;
	size_t per_read = READ_CHUNK / b->bs;

	while (blk < end) {
		uint64_t nblk = end - blk < per_read ? end - blk : per_read;
		uint64_t byte_off = blk * b->bs;
		uint64_t want = nblk * b->bs;
		ssize_t got;

		if (byte_off + want > len)
			want = len - byte_off; /* last, partial block */
		got = pread(b->fd, buf, (size_t)want, b->offset + (off_t)byte_off);
		if (got < 0)
			return -errno;
		if ((uint64_t)got != want)
			return -EIO; /* file shorter than the region */
		memset(buf + want, 0, (size_t)(nblk * b->bs - want));
		for (uint64_t i = 0; i < nblk; i++) {
			const uint8_t *p = buf + i * b->bs;
			uint64_t bytes = (i + 1) * b->bs <= want ? b->bs : want - i * b->bs;
			uint32_t w;
			int rc;

			if (bytes == b->bs && uniform(p, b->bs, &w))
				rc = (w == 0 && zp == SPARSE_ZERO_DONT_CARE)
					     ? run_add(b, BLK_SKIP, blk + i, bytes, 0)
					     : run_add(b, BLK_FILL, blk + i, bytes, w);
			else
				rc = run_add(b, BLK_RAW, blk + i, bytes, 0);
			if (rc < 0)
				return rc;
		}
		blk += nblk;
	}
	return 0;
}

int sparse_build_from_fd(int fd, off_t offset, uint64_t len, unsigned block_size,
		 const struct sparse_extent *map, size_t n_extents, enum sparse_zero_policy zero_policy,
		 struct sparse_file **out)
{
	struct builder b = { .fd = fd, .offset = offset, .bs = block_size };
	struct sparse_extent whole, *ext = NULL;
	uint8_t *buf = NULL;
	uint64_t nblocks;
	size_t n;
	int r = 0;

	*out = NULL;
	if (block_size < 1024 || block_size % 4 || READ_CHUNK % block_size || len == 0 ||
	    (len + block_size - 1) / block_size > 0xffffffffu)
		return -EINVAL;
	nblocks = (len + block_size - 1) / block_size;
	if (map) {
		ext = malloc((n_extents ? n_extents : 1) * sizeof(*ext));
		if (!ext)
			return -ENOMEM;
		memcpy(ext, map, n_extents * sizeof(*ext));
		qsort(ext, n_extents, sizeof(*ext), cmp_extent);
		n = n_extents;
	} else {
		whole = (struct sparse_extent){ 0, nblocks };
		ext = &whole;
		n = 1;
	}
	buf = malloc(READ_CHUNK);
	/* libsparse needs a whole number of blocks here (its trailing DONT_CARE
	 * would not be block-aligned otherwise); the partial last RAW block is
	 * zero-padded when written. */
	b.s = sparse_file_new(block_size, (int64_t)(nblocks * block_size));
	if (!buf || !b.s) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0, next = 0; i < n; i++) {
		uint64_t first = ext[i].first, count = ext[i].count;

		/* clamp to the region and skip what an earlier extent covered */
		if (first < next) {
			count = first + count > next ? first + count - next : 0;
			first = next;
		}
		if (first >= nblocks || count == 0)
			continue;
		if (count > nblocks - first)
			count = nblocks - first;
		r = build_extent(&b, buf, first, count, len, zero_policy);
		if (r < 0)
			goto out;
		next = first + count;
	}
	r = run_flush(&b);
	if (r < 0)
		goto out;
	*out = b.s;
	b.s = NULL;
out:
	if (b.s)
		sparse_file_destroy(b.s);
	free(buf);
	if (ext != &whole)
		free(ext);
	return r;
}

int sparse_header_check(int fd)
{
	uint8_t h[28];
	ssize_t n;
	uint32_t blk;

	do
		n = pread(fd, h, sizeof(h), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n < 4 || memcmp(h, "\x3a\xff\x26\xed", 4) != 0)
		return 0;
	if (n < (ssize_t)sizeof(h))
		return -EINVAL;
	blk = (uint32_t)h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 | (uint32_t)h[15] << 24;
	if (blk == 0 || blk % 4 || blk > SPARSE_BLOCK_MAX ||
	    (h[8] | h[9] << 8) < 28 || (h[10] | h[11] << 8) < 12)
		return -EINVAL;
	return 1;
}

int sparse_open_image(int fd, struct sparse_file **out)
{
	int r = sparse_header_check(fd);

	*out = NULL;
	if (r < 0)
		return r;
	*out = sparse_file_import_auto(fd, false, false);
	return *out ? 0 : -EINVAL;
}

void sparse_destroy_image(struct sparse_file *s)
{
	if (s)
		sparse_file_destroy(s);
}

int64_t sparse_encoded_len(struct sparse_file *s)
{
	return sparse_file_len(s, true, false);
}

int sparse_split(struct sparse_file *s, uint64_t max_len, struct sparse_file ***pieces, int *count)
{
	struct sparse_file **v;
	int n, got;

	*pieces = NULL;
	*count = 0;
	if (max_len > 0xffffffffu)
		max_len = 0xffffffffu;
	/* the smallest workable piece: header, three chunk headers, one block */
	if (max_len < 28 + 3 * 12 + sparse_file_block_size(s))
		return -EINVAL;
	n = sparse_file_resparse(s, (unsigned)max_len, NULL, 0);
	if (n <= 0)
		return n < 0 ? n : -EINVAL;
	v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	got = sparse_file_resparse(s, (unsigned)max_len, v, n);
	if (got != n) {
		sparse_pieces_free(v, n);
		return got < 0 ? got : -EIO;
	}
	*pieces = v;
	*count = n;
	return 0;
}

void sparse_pieces_free(struct sparse_file **pieces, int count)
{
	if (!pieces)
		return;
	for (int i = 0; i < count; i++)
		if (pieces[i])
			sparse_file_destroy(pieces[i]);
	free(pieces);
}

int sparse_write_image(struct sparse_file *s, int fd)
{
	return sparse_file_write(s, fd, false, true, false) < 0 ? -EIO : 0;
}

/* libsparse does not free its buffers when a callback fails, so the callback
 * never fails: the first error is kept and the rest of the data dropped. */
struct download_state {
	struct fb *fb;
	int err;
};

static int download_cb(void *priv, const void *data, size_t len)
{
	static const uint8_t zeros[4096];
	struct download_state *d = priv;

	if (d->err < 0)
		return 0;
	if (data) {
		d->err = fb_download_write(d->fb, data, len);
		return 0;
	}
	while (len) { /* NULL data: libsparse asks for zero padding */
		size_t n = len < sizeof(zeros) ? len : sizeof(zeros);

		d->err = fb_download_write(d->fb, zeros, n);
		if (d->err < 0)
			return 0;
		len -= n;
	}
	return 0;
}

static int flash_piece(struct fb *fb, const char *partition, struct sparse_file *p, uint64_t limit)
{
	int64_t len = sparse_encoded_len(p);
	int r;

	if (len <= 0)
		return -EINVAL;
	if ((uint64_t)len > limit)
		return -EFBIG;
	r = fb_download_begin(fb, (uint64_t)len);
	if (r < 0)
		return r;
	struct download_state d = { .fb = fb, .err = 0 };

	if (sparse_file_callback(p, true, false, download_cb, &d) < 0 || d.err < 0) {
		fb_download_abort(fb);
		if (d.err < 0)
			return d.err;
		if (!fb->err[0])
			snprintf(fb->err, sizeof(fb->err), "fastboot %s: encoding the sparse image for '%s' failed",
				 fb->t->serial, partition);
		return -EIO;
	}
	r = fb_download_finish(fb);
	if (r < 0)
		return r;
	return fb_flash(fb, partition);
}

int fb_flash_sparse(struct fb *fb, const char *partition, struct sparse_file *s, uint64_t max_download)
{
	struct sparse_file **pieces = NULL;
	uint64_t limit = max_download;
	int count = 0, r;

	if (!limit) {
		r = fb_get_max_download(fb, &limit);
		if (r < 0)
			return r;
	}
	if (limit > SPARSE_PIECE_LIMIT)
		limit = SPARSE_PIECE_LIMIT;
	if ((uint64_t)sparse_encoded_len(s) <= limit)
		return flash_piece(fb, partition, s, limit);
	r = sparse_split(s, limit, &pieces, &count);
	if (r < 0)
		return r;
	for (int i = 0; i < count && r == 0; i++)
		r = flash_piece(fb, partition, pieces[i], limit);
	sparse_pieces_free(pieces, count);
	return r;
}
