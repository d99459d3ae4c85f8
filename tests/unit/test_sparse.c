/* test_sparse: sparse images built and split by src/proto/sparse.c, checked
 * with the real Android tools as oracles (img2simg makes the input image,
 * simg2img expands what we produce). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/sparse.h"

#include <sparse/sparse.h> /* libsparse; configure adds its include dir */

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_sparse.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int have_tools(void)
{
	return system("command -v simg2img >/dev/null && command -v img2simg >/dev/null") == 0;
}

/* A raw image: per 64 KiB region, a mix of random data, fill words and zeros. */
static void make_raw(const char *path, size_t len, unsigned data_pct)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	uint8_t *buf = malloc(65536);
	uint32_t x = 12345;

	assert_true(fd >= 0);
	assert_non_null(buf);
	for (size_t off = 0; off < len; off += 65536) {
		unsigned kind = (unsigned)((off / 65536) * 37 % 100);

		if (kind < data_pct) {
			for (size_t i = 0; i < 65536; i++) {
				x = x * 1103515245u + 12345u;
				buf[i] = (uint8_t)(x >> 16);
			}
		} else if (kind < data_pct + (100 - data_pct) / 2) {
			for (size_t i = 0; i < 65536; i += 4)
				memcpy(buf + i, "\xef\xbe\xad\xde", 4);
		} else {
			memset(buf, 0, 65536);
		}
		assert_int_equal(write(fd, buf, 65536), 65536);
	}
	close(fd);
	free(buf);
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static off_t fsize(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

static void test_build_from_raw(void **state)
{
	char raw[128], simg[128], out[128];
	struct sparse_file *s = NULL;
	int fd, ofd;

	(void)state;
	if (!have_tools())
		skip();
	snprintf(raw, sizeof(raw), "%s/raw.img", dir);
	snprintf(simg, sizeof(simg), "%s/raw.simg", dir);
	snprintf(out, sizeof(out), "%s/out.img", dir);
	make_raw(raw, 16 << 20, 40);
	fd = open(raw, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(sparse_build_from_fd(fd, 0, 16 << 20, 4096, NULL, 0, SPARSE_ZERO_FILL, &s), 0);
	ofd = open(simg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(sparse_write_image(s, ofd), 0);
	close(ofd);
	assert_int_equal(fsize(simg), sparse_encoded_len(s));
	assert_true(fsize(simg) < (16 << 20) * 6 / 10); /* fill and zero blocks cost nothing */
	assert_int_equal(run("simg2img '%s' '%s' && cmp -s '%s' '%s'", simg, out, raw, out), 0);
	sparse_file_destroy(s);

	/* A region with an offset and a block map: only the mapped blocks are
	 * carried, the rest is DONT_CARE (zeros in a fresh output file). */
	{
		struct sparse_extent map[] = { { 256, 16 }, { 0, 4 }, { 2, 10 } }; /* unsorted, overlapping */
		uint8_t *a = malloc(4096), *b = malloc(4096);
		int rfd;

		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(sparse_build_from_fd(fd, 8192, (8 << 20) + 100, 4096, map, 3, SPARSE_ZERO_DONT_CARE, &s), 0);
		ofd = open(simg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_int_equal(sparse_write_image(s, ofd), 0);
		close(ofd);
		unlink(out);
		assert_int_equal(run("simg2img '%s' '%s'", simg, out), 0);
		rfd = open(out, O_RDONLY);
		assert_true(rfd >= 0);
		for (unsigned blk = 0; blk < 300; blk++) {
			bool mapped = blk < 12 || (blk >= 256 && blk < 272);

			assert_int_equal(pread(rfd, a, 4096, (off_t)blk * 4096), 4096);
			assert_int_equal(pread(fd, b, 4096, 8192 + (off_t)blk * 4096), 4096);
			if (mapped)
				assert_memory_equal(a, b, 4096);
			else
				assert_true(a[0] == 0 && memcmp(a, a + 1, 4095) == 0);
		}
		close(rfd);
		free(a);
		free(b);
		sparse_file_destroy(s);
	}
	assert_int_equal(sparse_build_from_fd(fd, 0, 0, 4096, NULL, 0, SPARSE_ZERO_FILL, &s), -EINVAL);
	assert_int_equal(sparse_build_from_fd(fd, 0, 4096, 1000, NULL, 0, SPARSE_ZERO_FILL, &s), -EINVAL);
	close(fd);
}

static void test_resparse_64m_into_8m(void **state)
{
	char raw[128], simg[128], out[128], piece[128];
	char *list = NULL;
	size_t listlen = 0;
	FILE *lf;
	struct sparse_file *s = NULL, **pieces = NULL;
	int fd, count = 0;
	const uint64_t max = 8 << 20;

	(void)state;
	if (!have_tools())
		skip();
	snprintf(raw, sizeof(raw), "%s/big.img", dir);
	snprintf(simg, sizeof(simg), "%s/big.simg", dir);
	snprintf(out, sizeof(out), "%s/big.out", dir);
	make_raw(raw, 64 << 20, 70);
	assert_int_equal(run("img2simg '%s' '%s'", raw, simg), 0); /* the oracle makes the input */
	assert_true(fsize(simg) > (int64_t)max);

	fd = open(simg, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(sparse_open_image(fd, &s), 0);
	assert_int_equal(sparse_split(s, max, &pieces, &count), 0);
	assert_true(count >= 6);
	lf = open_memstream(&list, &listlen);
	for (int i = 0; i < count; i++) {
		int pfd;

		snprintf(piece, sizeof(piece), "%s/piece%02d.simg", dir, i);
		pfd = open(piece, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_int_equal(sparse_write_image(pieces[i], pfd), 0);
		close(pfd);
		assert_true((uint64_t)fsize(piece) <= max);
		/* the first and last pieces are valid images on their own */
		if (i == 0 || i == count - 1)
			assert_int_equal(run("simg2img '%s' '%s/one.raw'", piece, dir), 0);
		fprintf(lf, "'%s' ", piece);
	}
	fclose(lf);
	/* All pieces written over one output file give back the original. */
	assert_int_equal(run("simg2img %s '%s' && cmp -s '%s' '%s'", list, out, raw, out), 0);
	/* and one piece alone does not (the test can fail) */
	snprintf(piece, sizeof(piece), "%s/piece00.simg", dir);
	unlink(out);
	assert_int_not_equal(run("simg2img '%s' '%s' && cmp -s '%s' '%s'", piece, out, raw, out), 0);
	free(list);
	sparse_pieces_free(pieces, count);
	sparse_file_destroy(s);
	close(fd);
}

/* A sparse header with block size @blk and one DONT_CARE chunk of 1 block. */
static int header_fd(uint32_t blk, uint16_t hdr, uint16_t chdr)
{
	uint8_t h[40] = { 0x3a, 0xff, 0x26, 0xed, 1, 0, 0, 0 };
	int fd = open(dir, O_TMPFILE | O_RDWR, 0600);

	assert_true(fd >= 0);
	h[8] = (uint8_t)hdr;
	h[10] = (uint8_t)chdr;
	for (int i = 0; i < 4; i++)
		h[12 + i] = (uint8_t)(blk >> (8 * i));
	h[16] = 1; /* total_blks */
	h[20] = 1; /* total_chunks */
	h[28] = 0xc3; h[29] = 0xca; /* DONT_CARE */
	h[32] = 1; h[36] = 12;
	assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	return fd;
}

/* fuzz_sparse found libsparse allocating a block-sized buffer for a header
 * claiming 4 GiB blocks: such headers are refused before libsparse sees them. */
static void test_header_check(void **state)
{
	static const uint32_t bad[] = { 0, 6, 0xfcff1000u, SPARSE_BLOCK_MAX + 4 };
	struct sparse_file *s;
	int fd;

	(void)state;
	fd = header_fd(4096, 28, 12);
	assert_int_equal(sparse_header_check(fd), 1);
	assert_int_equal(sparse_open_image(fd, &s), 0);
	assert_int_equal(sparse_file_block_size(s), 4096);
	sparse_destroy_image(s);
	close(fd);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = header_fd(bad[i], 28, 12);
		assert_int_equal(sparse_header_check(fd), -EINVAL);
		assert_int_equal(sparse_open_image(fd, &s), -EINVAL);
		assert_null(s);
		close(fd);
	}
	fd = header_fd(4096, 20, 12);
	assert_int_equal(sparse_open_image(fd, &s), -EINVAL);
	close(fd);
	fd = header_fd(4096, 28, 8);
	assert_int_equal(sparse_open_image(fd, &s), -EINVAL);
	close(fd);
	/* no magic: a raw file, left to the raw importer */
	fd = open(dir, O_TMPFILE | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "raw bytes", 9), 9);
	assert_int_equal(sparse_header_check(fd), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_build_from_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resparse_64m_into_8m, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_check, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
