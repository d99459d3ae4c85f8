/* simg: sparse image writing over libsparse (see simg.h). Any thread. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sparse/sparse.h>

#include "image/simg.h"

int extents_add(struct extent_list *l, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct extent *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].off = off;
	l->v[l->n].len = len;
	l->n++;
	return 0;
}

void extents_free(struct extent_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int extent_cmp(const void *a, const void *b)
{
	const struct extent *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

void extents_normalise(struct extent_list *l, uint64_t limit)
{
	size_t i, n = 0;

	limit = (limit + SIMG_BLOCK - 1) / SIMG_BLOCK * SIMG_BLOCK;
	for (i = 0; i < l->n; i++) {
		uint64_t s = l->v[i].off / SIMG_BLOCK * SIMG_BLOCK;
		uint64_t e = l->v[i].off + l->v[i].len;

		e = e > limit ? limit : (e + SIMG_BLOCK - 1) / SIMG_BLOCK * SIMG_BLOCK;
		if (s >= e)
			continue;
		l->v[n].off = s;
		l->v[n].len = e - s;
		n++;
	}
	l->n = n;
	if (!n)
		return;
	qsort(l->v, n, sizeof(*l->v), extent_cmp);
	for (i = 1, n = 1; i < l->n; i++) {
		struct extent *last = &l->v[n - 1];

		if (l->v[i].off <= last->off + last->len) {
			uint64_t e = l->v[i].off + l->v[i].len;

			if (e > last->off + last->len)
				last->len = e - last->off;
		} else {
			l->v[n++] = l->v[i];
		}
	}
	l->n = n;
}

uint64_t extents_bytes(const struct extent_list *l)
{
	uint64_t t = 0;
	size_t i;

	for (i = 0; i < l->n; i++)
		t += l->v[i].len;
	return t;
}

/* Add [off, off+n) of the source: all-zero blocks as FILL(0) chunks (a
 * zeroed FAT or journal need not travel as data), the rest as RAW chunks that
 * refer to the file. @buf holds SIMG_PIECE bytes. */
static int add_piece(struct sparse_file *s, const int fds[2], int *turn, uint8_t *buf,
		     uint64_t src_offset, uint64_t off, uint64_t n, uint64_t *raw,
		     struct art_err *err)
{
	uint64_t i = 0;
	ssize_t got = pread(fds[0], buf, (size_t)n, (off_t)(src_offset + off));

	if (got != (ssize_t)n)
		return art_err_set(err, got < 0 ? -errno : -EIO, "cannot read the source image at "
				   "%llu", (unsigned long long)(src_offset + off));
	while (i < n) {
		bool zero = buf[i] == 0 && !memcmp(buf + i, buf + i + 1, SIMG_BLOCK - 1);
		uint64_t j = i + SIMG_BLOCK;
		int r;

		while (j < n && (buf[j] == 0 && !memcmp(buf + j, buf + j + 1, SIMG_BLOCK - 1)) == zero)
			j += SIMG_BLOCK;
		if (zero) {
			r = sparse_file_add_fill(s, 0, (unsigned)(j - i),
						 (unsigned)((off + i) / SIMG_BLOCK));
		} else {
			r = sparse_file_add_fd(s, fds[*turn], (int64_t)(src_offset + off + i),
					       (unsigned)(j - i), (unsigned)((off + i) / SIMG_BLOCK));
			*turn ^= 1;
			*raw += j - i;
		}
		if (r < 0)
			return -ENOMEM;
		i = j;
	}
	return 0;
}

int simg_write(int src_fd, uint64_t src_offset, uint64_t image_bytes, struct extent_list *ext,
	       const char *out_path, struct simg_stats *stats, struct art_err *err)
{
	struct sparse_file *s = NULL;
	uint8_t *tail = NULL, *buf = NULL;
	uint64_t src_size, blocks, data = 0, raw = 0;
	struct stat st;
	int fds[2] = {src_fd, -1}, out = -1, rc = 0, turn = 0;
	size_t i;

	if (fstat(src_fd, &st) < 0)
		return art_err_set(err, -errno, "cannot stat the source image: %s", strerror(errno));
	src_size = (uint64_t)st.st_size;
	blocks = (image_bytes + SIMG_BLOCK - 1) / SIMG_BLOCK;
	if (blocks == 0 || blocks > UINT32_MAX)
		return art_err_set(err, -EINVAL, "a sparse image of %llu bytes is not possible",
				   (unsigned long long)image_bytes);
	extents_normalise(ext, blocks * SIMG_BLOCK);
	/* libsparse merges adjacent pieces of the same fd into one chunk and maps
	 * a chunk whole while writing it; alternating two descriptors of the same
	 * file keeps every chunk at SIMG_PIECE bytes and memory flat. */
	fds[1] = dup(src_fd);
	if (fds[1] < 0)
		return art_err_set(err, -errno, "dup: %s", strerror(errno));
	s = sparse_file_new(SIMG_BLOCK, (int64_t)(blocks * SIMG_BLOCK));
	buf = malloc(SIMG_PIECE);
	if (!s || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < ext->n && !rc; i++) {
		uint64_t off = ext->v[i].off, end = off + ext->v[i].len;

		while (off < end) {
			uint64_t n = end - off > SIMG_PIECE ? SIMG_PIECE : end - off;
			uint64_t in_file = src_offset + off < src_size ? src_size - (src_offset + off) : 0;

			if (in_file >= SIMG_BLOCK || in_file >= n) {
				if (in_file < n)
					n = in_file / SIMG_BLOCK * SIMG_BLOCK;
				rc = add_piece(s, fds, &turn, buf, src_offset, off, n, &raw, err);
				if (rc)
					break;
			} else if (in_file) {
				/* the source ends inside this block: zero-pad it in memory */
				if (tail) {
					rc = art_err_set(err, -EINVAL, "internal: two partial tail blocks");
					break;
				}
				tail = calloc(1, SIMG_BLOCK);
				if (!tail) {
					rc = -ENOMEM;
					break;
				}
				if (pread(src_fd, tail, in_file, (off_t)(src_offset + off)) !=
				    (ssize_t)in_file) {
					rc = art_err_set(err, -EIO, "cannot read the image's last block");
					break;
				}
				n = SIMG_BLOCK;
				if (sparse_file_add_data(s, tail, SIMG_BLOCK,
							 (unsigned)(off / SIMG_BLOCK)) < 0) {
					rc = -ENOMEM;
					break;
				}
			} else if (sparse_file_add_fill(s, 0, (unsigned)n, (unsigned)(off / SIMG_BLOCK)) < 0) {
				/* wholly past the end of the source: zeros */
				rc = -ENOMEM;
				break;
			}
			data += n;
			off += n;
		}
	}
	if (rc)
		goto out;
	out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		rc = art_err_set(err, -errno, "cannot create %s: %s", out_path, strerror(errno));
		goto out;
	}
	if (sparse_file_write(s, out, false, true, false) < 0) {
		rc = art_err_set(err, -EIO, "libsparse could not write %s (disk full, or the "
				 "source image changed?)", out_path);
		goto out;
	}
	if (fsync(out) < 0 || fstat(out, &st) < 0) {
		rc = art_err_set(err, -errno, "cannot flush %s: %s", out_path, strerror(errno));
		goto out;
	}
	if (stats) {
		stats->expanded_bytes = blocks * SIMG_BLOCK;
		stats->data_bytes = raw;
		stats->covered_bytes = data;
		stats->file_bytes = (uint64_t)st.st_size;
	}
out:
	if (out >= 0)
		close(out);
	if (rc && out >= 0)
		unlink(out_path);
	if (s)
		sparse_file_destroy(s);
	free(tail);
	free(buf);
	if (fds[1] >= 0)
		close(fds[1]);
	return rc;
}
