/* test_vpi_sparse: the virtual Pi's sparse reader accepts what img2simg and the
 * AOSP client produce and rejects every malformed header and chunk. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vpi/sparse_dev.h"

struct img {
	uint8_t buf[65536];
	size_t len;
};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void hdr(struct img *im, uint32_t blk, uint32_t total_blks, uint32_t chunks)
{
	memset(im, 0, sizeof(*im));
	put32(im->buf, VPI_SPARSE_MAGIC);
	put16(im->buf + 4, 1);
	put16(im->buf + 6, 0);
	put16(im->buf + 8, 28);
	put16(im->buf + 10, 12);
	put32(im->buf + 12, blk);
	put32(im->buf + 16, total_blks);
	put32(im->buf + 20, chunks);
	im->len = 28;
}

static uint8_t *chunk(struct img *im, uint16_t type, uint32_t blocks, uint32_t total)
{
	uint8_t *c = im->buf + im->len;
	put16(c, type);
	put32(c + 4, blocks);
	put32(c + 8, total);
	im->len += 12;
	return c + 12;
}

/* A 4-chunk image: RAW 1 block, FILL 2, DONT_CARE 1, CRC, over 4 x 1024 bytes. */
static void good(struct img *im)
{
	uint8_t *p;

	hdr(im, 1024, 4, 4);
	p = chunk(im, VPI_SPARSE_RAW, 1, 12 + 1024);
	for (int i = 0; i < 1024; i++)
		p[i] = (uint8_t)i;
	im->len += 1024;
	p = chunk(im, VPI_SPARSE_FILL, 2, 16);
	put32(p, 0xdeadbeef);
	im->len += 4;
	chunk(im, VPI_SPARSE_DONT_CARE, 1, 12);
	p = chunk(im, VPI_SPARSE_CRC32, 0, 16);
	im->len += 4;
}

struct rec {
	int n;
	struct vpi_sparse_op ops[8];
};

static int record(void *usrptr, const struct vpi_sparse_op *op)
{
	struct rec *r = usrptr;
	if (r->n < 8)
		r->ops[r->n] = *op;
	r->n++;
	return 0;
}

static void test_valid_walk(void **state)
{
	struct img *im = malloc(sizeof(*im));
	struct vpi_sparse_header h;
	struct rec r = { 0 };
	uint64_t exp;

	(void)state;
	good(im);
	assert_true(vpi_sparse_has_magic(im->buf, im->len));
	assert_int_equal(vpi_sparse_check(im->buf, im->len, &h, &exp, NULL), 0);
	assert_int_equal(exp, 4096);
	assert_int_equal(h.total_chunks, 4);
	assert_int_equal(vpi_sparse_walk(im->buf, im->len, record, &r), 0);
	assert_int_equal(r.n, 3);   /* CRC32 produces no op */
	assert_int_equal(r.ops[0].type, VPI_SPARSE_RAW);
	assert_int_equal(r.ops[0].offset, 0);
	assert_int_equal(r.ops[0].len, 1024);
	assert_int_equal(r.ops[0].data[5], 5);
	assert_int_equal(r.ops[1].type, VPI_SPARSE_FILL);
	assert_int_equal(r.ops[1].offset, 1024);
	assert_int_equal(r.ops[1].len, 2048);
	assert_int_equal(r.ops[1].fill, 0xdeadbeef);
	assert_int_equal(r.ops[2].type, VPI_SPARSE_DONT_CARE);
	assert_int_equal(r.ops[2].offset, 3072);
	/* Trailing bytes after the last chunk are ignored. */
	im->len += 100;
	assert_int_equal(vpi_sparse_check(im->buf, im->len, NULL, NULL, NULL), 0);
	free(im);
}

static void test_larger_headers_and_minor(void **state)
{
	struct img *im = malloc(sizeof(*im));
	uint8_t *p;

	(void)state;
	/* file_hdr_sz 32, chunk_hdr_sz 16, minor 3: extra bytes skipped. */
	hdr(im, 4096, 1, 1);
	put16(im->buf + 6, 3);
	put16(im->buf + 8, 32);
	put16(im->buf + 10, 16);
	im->len = 32;
	p = im->buf + im->len;
	put16(p, VPI_SPARSE_FILL);
	put32(p + 4, 1);
	put32(p + 8, 20);
	put32(p + 16, 7);
	im->len += 20;
	assert_int_equal(vpi_sparse_check(im->buf, im->len, NULL, NULL, NULL), 0);
	free(im);
}

/* Mutate the good image and expect a rejection naming a reason. */
static void expect_bad(struct img *im, const char *what)
{
	const char *why = NULL;
	int rc = vpi_sparse_check(im->buf, im->len, NULL, NULL, &why);

	if (rc != -EINVAL)
		fail_msg("%s: accepted (rc %d)", what, rc);
	assert_non_null(why);
	assert_int_equal(vpi_sparse_walk(im->buf, im->len, record, &(struct rec){ 0 }), -EINVAL);
}

static void test_malformed(void **state)
{
	struct img *im = malloc(sizeof(*im));
	const size_t raw_chunk = 28, fill_chunk = 28 + 12 + 1024, dc_chunk = fill_chunk + 16,
		     crc_chunk = dc_chunk + 12;

	(void)state;
	good(im); im->len = 27; expect_bad(im, "short header");
	good(im); im->buf[0] ^= 1; expect_bad(im, "magic");
	good(im); put16(im->buf + 4, 2); expect_bad(im, "major 2");
	good(im); put16(im->buf + 4, 0); expect_bad(im, "major 0");
	good(im); put16(im->buf + 8, 24); expect_bad(im, "file_hdr_sz 24");
	good(im); put16(im->buf + 8, 60000); expect_bad(im, "file_hdr_sz past end");
	good(im); put16(im->buf + 10, 8); expect_bad(im, "chunk_hdr_sz 8");
	good(im); put32(im->buf + 12, 0); expect_bad(im, "blk_sz 0");
	good(im); put32(im->buf + 12, 1022); expect_bad(im, "blk_sz not /4");
	good(im); put32(im->buf + 16, 0); expect_bad(im, "total_blks 0");
	good(im); put32(im->buf + 16, 5); expect_bad(im, "total_blks > sum");
	good(im); put32(im->buf + 16, 3); expect_bad(im, "total_blks < sum");
	good(im); put32(im->buf + 20, 5); expect_bad(im, "more chunks than present");
	good(im); im->len = 28 + 6; expect_bad(im, "truncated chunk header");
	good(im); im->len = 28 + 12 + 100; expect_bad(im, "truncated RAW payload");
	good(im); put32(im->buf + raw_chunk + 8, 12 + 1023); expect_bad(im, "RAW total_sz short");
	good(im); put32(im->buf + raw_chunk + 4, 2); expect_bad(im, "RAW chunk_sz vs total_sz");
	good(im); put32(im->buf + raw_chunk + 8, 8); expect_bad(im, "total_sz < header");
	good(im); put32(im->buf + fill_chunk + 8, 20); expect_bad(im, "FILL total_sz 20");
	good(im); put32(im->buf + fill_chunk + 4, 0); expect_bad(im, "FILL zero blocks");
	good(im); put32(im->buf + dc_chunk + 8, 16); expect_bad(im, "DONT_CARE payload");
	good(im); put32(im->buf + crc_chunk + 8, 12); expect_bad(im, "CRC32 without value");
	good(im); put16(im->buf + dc_chunk, 0xCAC5); expect_bad(im, "unknown type");
	good(im); put16(im->buf + raw_chunk, 0); expect_bad(im, "type 0");
	good(im); put32(im->buf + dc_chunk + 4, 0xFFFFFFFF); expect_bad(im, "chunk_sz overflow");
	free(im);
}

static int stop_at_second(void *usrptr, const struct vpi_sparse_op *op)
{
	int *n = usrptr;
	(void)op;
	return ++*n == 2 ? -EIO : 0;
}

static void test_callback_error_stops(void **state)
{
	struct img *im = malloc(sizeof(*im));
	int n = 0;

	(void)state;
	good(im);
	assert_int_equal(vpi_sparse_walk(im->buf, im->len, stop_at_second, &n), -EIO);
	assert_int_equal(n, 2);
	assert_false(vpi_sparse_has_magic("\x3a\xff\x26", 3));
	free(im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_walk),
		cmocka_unit_test(test_larger_headers_and_minor),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_callback_error_stops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
