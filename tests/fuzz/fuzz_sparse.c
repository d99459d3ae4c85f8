/* fuzz_sparse: the station's reading of sparse images (host side), on
 * arbitrary bytes held in a memfd:
 *   - sparse_open_image() (libsparse import, sparse or raw: src/proto/sparse.c),
 *     sparse_encoded_len(), sparse_split() into small pieces, and
 *     fb_flash_sparse() to a fake gadget that accepts every download (so each
 *     piece is encoded and sent as the station sends it);
 *   - verify_bmap_from_sparse() (src/flows/verify.c), which builds the bmap
 *     sent for on-board verification: its length must match its range count,
 *     and the ranges must be ordered, disjoint and at most 256 blocks each.
 * Images that expand beyond 64 MiB are not hashed (the cost is linear in the
 * expanded size, which is the point of a sparse image, not a finding). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sparse/sparse.h>

#include "flows/verify.h"
#include "proto/fastboot.h"
#include "proto/sparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EXPAND_CAP (64ll << 20)
#define MAX_DOWNLOAD (256u << 10)

/* The fake gadget: answers DATA to download:, OKAY to anything else. */
struct gadget {
	char pending[64];
	uint64_t dl_left;	/* bytes of download data still expected */
	uint64_t bytes_in;
};

static int g_control(struct transport *t, const struct usb_ctrl_setup *s, void *d, unsigned ms)
{
	(void)t; (void)s; (void)d; (void)ms;
	return -EOPNOTSUPP;
}

static int g_bulk_out(struct transport *t, const void *d, size_t n, unsigned ms)
{
	struct gadget *g = t->priv;

	(void)ms;
	if (n == 0)
		abort();
	if (g->dl_left) {
		if (n > g->dl_left)
			abort(); /* more data than announced */
		g->dl_left -= n;
		g->bytes_in += n;
		if (!g->dl_left)
			snprintf(g->pending, sizeof(g->pending), "OKAY");
		return (int)n;
	}
	if (n > 9 && !memcmp(d, "download:", 9)) {
		char hex[9] = { 0 };

		memcpy(hex, (const char *)d + 9, n - 9 < 8 ? n - 9 : 8);
		g->dl_left = strtoull(hex, NULL, 16);
		if (g->dl_left == 0 || g->dl_left > MAX_DOWNLOAD)
			abort(); /* the station must respect max-download-size */
		snprintf(g->pending, sizeof(g->pending), "DATA%s", hex);
	} else {
		snprintf(g->pending, sizeof(g->pending), "OKAY");
	}
	return (int)n;
}

static int g_bulk_in(struct transport *t, void *d, size_t n, unsigned ms)
{
	struct gadget *g = t->priv;
	size_t len = strlen(g->pending);

	(void)ms;
	if (!len)
		return -ETIMEDOUT;
	if (len > n)
		return -EOVERFLOW;
	memcpy(d, g->pending, len);
	g->pending[0] = '\0';
	return (int)len;
}

static void g_close(struct transport *t)
{
	(void)t;
}

static const struct transport_ops ops = { g_control, g_bulk_out, g_bulk_in, g_close };

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_bmap(const uint8_t *b, size_t len, uint32_t ranges)
{
	uint64_t next = 0;

	if (len < 16 || len != 16 + 40 * (size_t)ranges || le32(b) != 0x50414D42u ||
	    le32(b + 8) != ranges)
		abort();
	for (uint32_t i = 0; i < ranges; i++) {
		uint32_t first = le32(b + 16 + 40 * i), last = le32(b + 20 + 40 * i);

		if (last < first || last - first >= 256 || first < next)
			abort();
		next = (uint64_t)last + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sparse_file *s = NULL, **pieces = NULL;
	struct gadget g = { { 0 }, 0, 0 };
	struct transport t = { .ops = &ops, .kind = TRANSPORT_SIM, .priv = &g };
	struct fb fb;
	char path[64];
	uint8_t *bmap = NULL;
	size_t blen = 0;
	uint32_t ranges = 0;
	int count = 0, fd, r;

	fd = memfd_create("fuzz_simg", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	if (sparse_open_image(fd, &s) == 0) {
		int64_t enc = sparse_encoded_len(s);
		int64_t expanded = sparse_file_len(s, false, false);

		if (enc < 0)
			abort();
		if (sparse_split(s, 64u << 10, &pieces, &count) == 0) {
			if (count <= 0)
				abort();
			for (int i = 0; i < count; i++)
				if (sparse_encoded_len(pieces[i]) > (int64_t)(64u << 10))
					abort(); /* a piece larger than asked */
			sparse_pieces_free(pieces, count);
		}
		if (fb_init(&fb, &t, NULL) < 0)
			abort();
		fb.o.chunk_size = 16384;
		fb_flash_sparse(&fb, "mmcblk0p2", s, MAX_DOWNLOAD);
		fb_fini(&fb);
		sparse_destroy_image(s);

		if (expanded >= 0 && expanded <= EXPAND_CAP) {
			r = verify_bmap_from_sparse(path, &bmap, &blen, &ranges);
			if (r > 0)
				abort();
			if (r == 0)
				check_bmap(bmap, blen, ranges);
			free(bmap);
		}
	} else if (size <= 4096) {
		/* what the importer refuses, the bmap builder must refuse too */
		if (verify_bmap_from_sparse(path, &bmap, &blen, &ranges) == 0)
			abort();
	}
	close(fd);
	return 0;
}
