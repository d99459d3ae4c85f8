/* test_fat: the FAT writer checked by fsck.vfat and mtools, the reader
 * checked against images made by mkfs.vfat + mcopy (FAT12/16/32, at an
 * offset), and corrupt images failing cleanly. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/fat.h"

#define TOOLS "PATH=$PATH:/sbin:/usr/sbin MTOOLS_SKIP_CHECK=1 "

static char tmp[64];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void put(const char *rel, size_t size, unsigned seed)
{
	char path[256];
	FILE *f;
	size_t i;

	snprintf(path, sizeof(path), "%s/src/%s", tmp, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	for (i = 0; i < size; i++)
		fputc((int)((i * 131 + seed * 7 + i / 509) & 0xff), f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/test_fat.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	assert_int_equal(sh("mkdir -p %s/src/overlays/deep %s/src/empty-dir", tmp, tmp), 0);
	put("config.txt", 300, 1);
	put("README", 10, 2);
	put("bcm2712-rpi-5-b.dtb", 2048, 3);
	put("Mixed.Txt", 5, 4);
	put("empty", 0, 5);
	put("big.bin", 300000, 6);
	put("caf\xc3\xa9.txt", 7, 7);
	put("overlays/vc4-kms-v3d.dtbo", 1500, 8);
	put("overlays/deep/a.txt", 513, 9);
	put("overlays/deep/cluster.bin", 512, 10);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sh("rm -rf %s", tmp);
	return 0;
}

static void check_with_mtools(const char *img)
{
	static const char *const files[] = {"config.txt", "README", "bcm2712-rpi-5-b.dtb",
					    "Mixed.Txt", "empty", "big.bin",
					    "overlays/vc4-kms-v3d.dtbo", "overlays/deep/a.txt"};
	size_t i;

	assert_int_equal(sh(TOOLS "fsck.vfat -n %s >/dev/null", img), 0);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		assert_int_equal(sh(TOOLS "mtype -i %s '::/%s' | cmp -s - '%s/src/%s'", img, files[i],
				    tmp, files[i]), 0);
	assert_int_equal(sh(TOOLS "mdir -i %s ::/ | grep -q 'Volume in drive : is BOOT'", img), 0);
}


static void build_src(const struct fat_mkfs_opts *o, const char *name, unsigned want_bits)
{
	struct art_err err = {{0}};
	char img[128], src[128];
	unsigned bits = 0;
	int rc;

	snprintf(img, sizeof(img), "%s/%s", tmp, name);
	snprintf(src, sizeof(src), "%s/src", tmp);
	rc = fat_build_from_dir(src, o, img, &bits, &err);
	if (rc)
		fail_msg("fat_build_from_dir: %s", err.msg);
	assert_int_equal(bits, want_bits);
	check_with_mtools(img);
}

static void test_write_fat12_bootimg(void **state)
{
	struct fat_mkfs_opts o;

	(void)state;
	fat_opts_boot_img(&o);
	build_src(&o, "boot12.img", 12);
}

static void test_write_fat16(void **state)
{
	struct fat_mkfs_opts o;

	(void)state;
	fat_opts_boot_img(&o);
	o.size_bytes = 4u << 20;	/* ~8000 clusters of 512 bytes */
	build_src(&o, "boot16.img", 16);
}

static void test_write_fat32_partition(void **state)
{
	struct fat_mkfs_opts o;

	(void)state;
	fat_opts_boot_partition(&o, 40u << 20);
	build_src(&o, "part32.img", 32);
	/* too small for FAT32 with 1-sector clusters: FAT16 by cluster count */
	fat_opts_boot_partition(&o, 16u << 20);
	build_src(&o, "part16.img", 16);
	/* too small for the files */
	fat_opts_boot_partition(&o, 64u << 10);
	{
		struct art_err err = {{0}};
		char img[128], src[128];

		snprintf(img, sizeof(img), "%s/tiny.img", tmp);
		snprintf(src, sizeof(src), "%s/src", tmp);
		assert_int_equal(fat_build_from_dir(src, &o, img, NULL, &err), -ENOSPC);
		assert_int_equal(access(img, F_OK), -1);
	}
}

struct seen {
	int files, dirs;
	uint64_t bytes;
	bool cafe, deep;
};

static int seen_cb(void *usr, const char *path, const struct fat_dirent *e)
{
	struct seen *s = usr;

	if (e->is_dir)
		s->dirs++;
	else
		s->files++;
	s->bytes += e->size;
	if (!strcmp(path, "caf\xc3\xa9.txt"))
		s->cafe = true;
	if (!strcmp(path, "overlays/deep/a.txt"))
		s->deep = true;
	return 0;
}

static int extent_cb(void *usr, uint64_t off, uint64_t len)
{
	uint64_t *t = usr;

	(void)off;
	*t += len;
	return 0;
}

/* Read an image with our reader: walk, lookup, extract, extents. */
static void read_back(const char *img, uint64_t offset, unsigned want_bits, const char *srcname)
{
	struct art_err err = {{0}};
	struct fat_vol *v = NULL;
	struct fat_dirent d;
	struct seen s = {0};
	char out[128];
	uint64_t used = 0;
	int fd, rc;

	fd = open(img, O_RDONLY);
	assert_true(fd >= 0);
	rc = fat_open(fd, offset, 1ull << 40, &v, &err);
	if (rc)
		fail_msg("fat_open %s: %s", img, err.msg);
	assert_int_equal(fat_bits(v), want_bits);
	assert_int_equal(fat_walk(v, seen_cb, &s, &err), 0);
	assert_int_equal(s.files, strcmp(srcname, "src") ? 9 : 10);
	assert_int_equal(s.dirs, 3);
	assert_true(s.cafe == !strcmp(srcname, "src"));
	assert_true(s.deep);
	assert_int_equal(fat_lookup(v, "OVERLAYS/Deep/A.TXT", &d, &err), 0);
	assert_int_equal(d.size, 513);
	assert_int_equal(fat_lookup(v, "overlays/nope", &d, &err), -ENOENT);
	assert_int_equal(fat_lookup(v, "README/x", &d, &err), -ENOTDIR);
	snprintf(out, sizeof(out), "%s/out-%u", tmp, want_bits);
	sh("rm -rf %s; mkdir %s", out, out);
	rc = fat_extract_tree(v, out, &err);
	if (rc)
		fail_msg("extract: %s", err.msg);
	assert_int_equal(sh("diff -r %s/%s %s", tmp, srcname, out), 0);
	assert_int_equal(fat_used_extents(v, extent_cb, &used, &err), 0);
	assert_true(used >= s.bytes);
	assert_true(used < fat_fs_bytes(v));
	fat_close(v);
	close(fd);
}

static void test_read_own_images(void **state)
{
	char img[128];

	(void)state;
	snprintf(img, sizeof(img), "%s/boot12.img", tmp);
	read_back(img, 0, 12, "src");
	snprintf(img, sizeof(img), "%s/boot16.img", tmp);
	read_back(img, 0, 16, "src");
	snprintf(img, sizeof(img), "%s/part32.img", tmp);
	read_back(img, 0, 32, "src");
}

static void test_read_mkfs_images(void **state)
{
	static const struct {
		int bits;
		unsigned kib;
	} v[] = {{12, 1024}, {16, 20480}, {32, 40960}};
	size_t i;

	(void)state;
	/* mtools stores a non-ASCII 8.3 name in its code page, not as a long
	 * name: leave that one out of the comparison */
	assert_int_equal(sh("rm -rf %s/src2 && cp -a %s/src %s/src2 && rm %s/src2/caf*", tmp, tmp, tmp, tmp), 0);
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char img[128];

		/* a partition 1 MiB into a disk image, as in a gold image */
		snprintf(img, sizeof(img), "%s/mkfs%d.img", tmp, v[i].bits);
		assert_int_equal(sh(TOOLS "truncate -s %uK %s && mkfs.vfat -F %d -n BOOT --offset 2048 %s %u "
				    ">/dev/null 2>&1 && cd %s/src2 && mcopy -s -m -i %s@@1M * ::/",
				    v[i].kib + 1024, img, v[i].bits, img, v[i].kib, tmp, img), 0);
		read_back(img, 1 << 20, (unsigned)v[i].bits, "src2");
	}
}

static void test_corrupt(void **state)
{
	struct art_err err = {{0}};
	struct fat_vol *v = NULL;
	struct fat_dirent d;
	char img[128];
	uint8_t b[4];
	int fd;

	(void)state;
	/* break big.bin's cluster chain into a loop on itself: its first FAT entry
	 * points back to its own cluster */
	snprintf(img, sizeof(img), "%s/loop.img", tmp);
	assert_int_equal(sh("cp %s/part32.img %s", tmp, img), 0);
	fd = open(img, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fat_open(fd, 0, 1ull << 40, &v, &err), 0);
	assert_int_equal(fat_lookup(v, "big.bin", &d, &err), 0);
	fat_close(v);
	b[0] = (uint8_t)d.first_cluster;
	b[1] = (uint8_t)(d.first_cluster >> 8);
	b[2] = (uint8_t)(d.first_cluster >> 16);
	b[3] = 0;
	/* FAT32 here: reserved 32 sectors; first FAT right after */
	assert_int_equal(pwrite(fd, b, 4, 32 * 512 + 4 * (off_t)d.first_cluster), 4);
	assert_int_equal(fat_open(fd, 0, 1ull << 40, &v, &err), 0);
	{
		int nul = open("/dev/null", O_WRONLY);

		assert_int_equal(fat_read_file(v, &d, nul, &err), -EINVAL);
		close(nul);
	}
	fat_close(v);
	/* a boot sector that claims more than the partition */
	assert_int_equal(fat_open(fd, 0, 1u << 20, &v, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "claims"));
	/* no signature */
	b[0] = 0;
	assert_int_equal(pwrite(fd, b, 1, 511), 1);
	assert_int_equal(fat_open(fd, 0, 1ull << 40, &v, &err), -EINVAL);
	close(fd);
	/* a truncated image */
	snprintf(img, sizeof(img), "%s/trunc.img", tmp);
	assert_int_equal(sh("head -c 4096 %s/part32.img > %s", tmp, img), 0);
	fd = open(img, O_RDONLY);
	assert_int_not_equal(fat_open(fd, 0, 1ull << 40, &v, &err), 0);
	close(fd);
}

static void test_refuses_specials(void **state)
{
	struct art_err err = {{0}};
	struct fat_mkfs_opts o;
	char img[128], src[128];

	(void)state;
	snprintf(src, sizeof(src), "%s/special", tmp);
	snprintf(img, sizeof(img), "%s/special.img", tmp);
	assert_int_equal(sh("mkdir -p %s && ln -sf target %s/link", src, src), 0);
	fat_opts_boot_img(&o);
	assert_int_equal(fat_build_from_dir(src, &o, img, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "link"));
	/* names that differ only in case */
	assert_int_equal(sh("rm %s/link && touch %s/README %s/Middle %s/readme", src, src, src, src), 0);
	assert_int_equal(fat_build_from_dir(src, &o, img, NULL, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "only in case"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_fat12_bootimg),
		cmocka_unit_test(test_write_fat16),
		cmocka_unit_test(test_write_fat32_partition),
		cmocka_unit_test(test_read_own_images),
		cmocka_unit_test(test_read_mkfs_images),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_refuses_specials),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
