/* test_verify: the bmap the station sends with `oem bmap-load`, built by
 * src/flows/verify.c from sparse images holding RAW, FILL and DONT_CARE
 * chunks. The expected hashes are computed here from the expanded bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sparse/sparse.h>

#include "flows/verify.h"

#define BS 4096u
#define NBLK 1200u

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Blocks [0,300) RAW, [300,900) FILL 0xa5a5a5a5, [900,1000) don't care,
 * [1000,1001) RAW, [1001,1200) FILL 0. Checks every range's hash against
 * @img (the expanded bytes) and that exactly the defined blocks are covered. */
static void test_mixed_chunks(void **state)
{
	char path[] = "/tmp/test_verify.XXXXXX";
	uint8_t *img = calloc(NBLK, BS), *bmap = NULL;
	uint8_t covered[NBLK] = { 0 };
	size_t len = 0;
	uint32_t ranges = 0;
	int fd = mkstemp(path);

	(void)state;
	assert_non_null(img);
	assert_true(fd >= 0);
	for (size_t i = 0; i < 300u * BS; i++)
		img[i] = (uint8_t)(i * 7 + i / 4093);
	for (size_t i = 300u * BS; i < 900u * BS; i++)
		img[i] = 0xa5;
	for (size_t i = 1000u * BS; i < 1001u * BS; i++)
		img[i] = (uint8_t)(i ^ 0x3c);

	struct sparse_file *s = sparse_file_new(BS, (int64_t)NBLK * BS);
	assert_non_null(s);
	assert_int_equal(sparse_file_add_data(s, img, 300u * BS, 0), 0);
	assert_int_equal(sparse_file_add_fill(s, 0xa5a5a5a5u, 600u * BS, 300), 0);
	assert_int_equal(sparse_file_add_data(s, img + 1000u * BS, BS, 1000), 0);
	assert_int_equal(sparse_file_add_fill(s, 0, 199u * BS, 1001), 0);
	assert_int_equal(sparse_file_write(s, fd, false, true, false), 0);
	sparse_file_destroy(s);
	close(fd);

	assert_int_equal(verify_bmap_from_sparse(path, &bmap, &len, &ranges), 0);
	unlink(path);
	assert_int_equal(rd32(bmap), 0x50414D42u);
	assert_int_equal(rd32(bmap + 4), BS);
	assert_int_equal(rd32(bmap + 8), ranges);
	assert_int_equal(len, 16 + 40u * ranges);
	/* 300 RAW -> 2 ranges, 600 FILL -> 3, 1 RAW -> 1, 199 FILL -> 1 */
	assert_int_equal(ranges, 7);
	for (uint32_t i = 0; i < ranges; i++) {
		const uint8_t *r = bmap + 16 + 40u * i;
		uint32_t first = rd32(r), last = rd32(r + 4);
		uint8_t sha[32];

		assert_true(first <= last && last < NBLK);
		assert_true(last - first + 1 <= 256);
		mbedtls_sha256_ret(img + (size_t)first * BS, (size_t)(last - first + 1) * BS, sha, 0);
		assert_memory_equal(sha, r + 8, 32);
		for (uint32_t b = first; b <= last; b++) {
			assert_int_equal(covered[b], 0);
			covered[b] = 1;
		}
	}
	for (uint32_t b = 0; b < NBLK; b++)
		assert_int_equal(covered[b], b < 900 || b >= 1000);
	free(bmap);
	free(img);
}

static void test_not_sparse(void **state)
{
	char path[] = "/tmp/test_verify.XXXXXX";
	uint8_t *bmap = NULL;
	size_t len = 0;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a sparse image", 18), 18);
	close(fd);
	assert_true(verify_bmap_from_sparse(path, &bmap, &len, NULL) < 0);
	assert_null(bmap);
	unlink(path);
	assert_true(verify_bmap_from_sparse("/nonexistent/x.simg", &bmap, &len, NULL) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mixed_chunks),
		cmocka_unit_test(test_not_sparse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
