/* test_image_initramfs: the cryptroot initramfs augmentation on ext4 roots
 * made with mke2fs -d: modules of every flavour (by name, through
 * modules.alias, with modules.dep dependencies), /lib/modules fallback, the
 * device rename, the dropped module tree, and the refusals. The result is
 * read back with libarchive. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "image/ext4.h"
#include "image/initramfs.h"

static char tmp[64];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* A root tree with two flavours under @moddir, made into an ext4 image. */
static void make_root(const char *name, const char *moddir, bool with_alias)
{
	static const char *const vers[] = {"6.6.1-v8", "6.6.1-2712"};
	char root[160];
	size_t i;

	snprintf(root, sizeof(root), "%s/%s.d", tmp, name);
	for (i = 0; i < 2; i++) {
		const char *v = vers[i];

		assert_int_equal(sh("set -e; m=%s/%s/%s; mkdir -p $m/kernel/drivers/md $m/kernel/crypto "
				    "$m/kernel/net; echo dm-crypt-%s > $m/kernel/drivers/md/dm-crypt.ko; "
				    "echo dm-mod > $m/kernel/drivers/md/dm-mod.ko; "
				    "echo bufio > $m/kernel/drivers/md/dm-bufio.ko; "
				    "echo xts > $m/kernel/crypto/xts.ko.xz; "
				    "echo chacha > $m/kernel/crypto/chacha_generic.ko; "
				    "echo r8152 > $m/kernel/net/r8152.ko; "
				    "printf 'kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\\n"
				    "kernel/drivers/md/dm-mod.ko: kernel/drivers/md/dm-bufio.ko\\n"
				    "kernel/drivers/md/dm-bufio.ko:\\nkernel/crypto/xts.ko.xz:\\n"
				    "kernel/net/r8152.ko:\\n' > $m/modules.dep; echo builtin > $m/modules.builtin",
				    root, moddir, v, v), 0);
		if (with_alias)
			assert_int_equal(sh("printf 'alias crypto-xchacha12 chacha_generic\\n' > "
					    "%s/%s/%s/modules.alias", root, moddir, v), 0);
	}
	assert_int_equal(sh("cd %s && truncate -s 8M %s.img && PATH=$PATH:/sbin:/usr/sbin mke2fs -q -F "
			    "-t ext4 -d %s %s.img >/dev/null", tmp, name, root, name), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/test_initramfs.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	assert_int_equal(sh("%s/scripts/make-standin-initramfs.sh %s/ird.zst", TEST_SRCDIR, tmp), 0);
	make_root("usr", "usr/lib/modules", true);
	make_root("lib", "lib/modules", false);
	assert_int_equal(sh("cd %s && mkdir -p none.d/etc && truncate -s 8M none.img && "
			    "PATH=$PATH:/sbin:/usr/sbin mke2fs -q -F -t ext4 -d none.d none.img", tmp), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sh("rm -rf %s", tmp);
	return 0;
}

struct listing {
	char names[256][128];
	size_t n;
	char script[2048];
};

static void read_back(const char *path, struct listing *l)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;

	memset(l, 0, sizeof(*l));
	archive_read_support_filter_zstd(a);
	archive_read_support_format_cpio(a);
	assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		assert_true(l->n < 256);
		snprintf(l->names[l->n++], 128, "%s", archive_entry_pathname(e));
		if (!strcmp(archive_entry_pathname(e), "usr/bin/init_cryptroot.sh"))
			assert_true(archive_read_data(a, l->script, sizeof(l->script) - 1) > 0);
	}
	archive_read_free(a);
}

static bool has(const struct listing *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], name))
			return true;
	return false;
}

static int run(const char *img, const char *device, struct initramfs_report *rep,
	       struct art_err *err, const char *out)
{
	struct ext4_fs *fs = NULL;
	char p[160], in[160];
	int rc;

	snprintf(p, sizeof(p), "%s/%s", tmp, img);
	snprintf(in, sizeof(in), "%s/ird.zst", tmp);
	assert_int_equal(ext4_open(p, 0, 0, &fs, err), 0);
	{
		struct initramfs_opts o = {.in_path = in, .out_path = out, .root = fs, .device = device};

		rc = initramfs_augment(&o, rep, err);
	}
	ext4_close(fs);
	return rc;
}

static void test_usr_lib_modules_nvme(void **state)
{
	struct art_err err = {{0}};
	struct initramfs_report rep;
	struct listing l;
	char out[160];
	int rc;

	(void)state;
	snprintf(out, sizeof(out), "%s/out1.cpio.zst", tmp);
	rc = run("usr.img", "nvme0n1", &rep, &err, out);
	if (rc)
		fail_msg("%s", err.msg);
	assert_int_equal(rep.flavours_found, 2);
	assert_int_equal(rep.flavours_ok, 2);
	assert_string_equal(rep.flavours, "6.6.1-2712 6.6.1-v8");
	/* dm-crypt + dm-mod + dm-bufio (deps), xts (.ko.xz), chacha_generic (alias) */
	assert_int_equal(rep.modules_added, 10);
	assert_non_null(strstr(rep.warnings, "no module aes"));
	assert_int_equal(rep.replacements, 2);
	read_back(out, &l);
	assert_true(has(&l, "usr/lib/modules/6.6.1-v8/kernel/drivers/md/dm-bufio.ko"));
	assert_true(has(&l, "usr/lib/modules/6.6.1-2712/kernel/crypto/xts.ko.xz"));
	assert_true(has(&l, "usr/lib/modules/6.6.1-2712/kernel/crypto/chacha_generic.ko"));
	assert_true(has(&l, "usr/lib/modules/6.6.1-2712/modules.builtin"));
	assert_true(has(&l, "usr/lib/modules/6.6.1-2712/kernel/drivers"));	/* parent dirs */
	assert_false(has(&l, "usr/lib/modules/6.6.1-2712/kernel/net/r8152.ko"));
	assert_false(has(&l, "usr/lib/modules/0.0.0-standin/stale.ko"));
	assert_true(has(&l, "etc/RPI-SB-VPI-STANDIN"));
	assert_true(has(&l, "bin"));
	assert_non_null(strstr(l.script, "/dev/nvme0n1p2"));
	assert_null(strstr(l.script, "mmcblk0"));
}

static void test_lib_modules_sd(void **state)
{
	struct art_err err = {{0}};
	struct initramfs_report rep;
	struct listing l;
	char out[160];

	(void)state;
	snprintf(out, sizeof(out), "%s/out2.cpio.zst", tmp);
	assert_int_equal(run("lib.img", "mmcblk0", &rep, &err, out), 0);
	assert_int_equal(rep.flavours_ok, 2);
	/* no modules.alias: xchacha12 is missing, the rest is there */
	assert_non_null(strstr(rep.warnings, "no module xchacha12"));
	read_back(out, &l);
	assert_true(has(&l, "usr/lib/modules/6.6.1-v8/kernel/drivers/md/dm-crypt.ko"));
	assert_non_null(strstr(l.script, "/dev/mmcblk0p2"));
}

static void test_refusals(void **state)
{
	struct art_err err = {{0}};
	struct initramfs_report rep;
	char out[160], bad[160];
	struct ext4_fs *fs = NULL;

	(void)state;
	snprintf(out, sizeof(out), "%s/out3.cpio.zst", tmp);
	assert_int_equal(run("none.img", "mmcblk0", &rep, &err, out), -ENOENT);
	assert_non_null(strstr(err.msg, "no kernel modules"));
	assert_int_equal(access(out, F_OK), -1);
	/* a cut archive: the script never comes */
	snprintf(bad, sizeof(bad), "%s/bad.cpio.zst", tmp);
	assert_int_equal(sh("zstd -dc %s/ird.zst | head -c 300 | zstd -q > %s", tmp, bad), 0);
	{
		char p[160];

		snprintf(p, sizeof(p), "%s/usr.img", tmp);
		assert_int_equal(ext4_open(p, 0, 0, &fs, &err), 0);
		struct initramfs_opts o = {.in_path = bad, .out_path = out, .root = fs, .device = "mmcblk0"};

		assert_int_not_equal(initramfs_augment(&o, &rep, &err), 0);
		o.in_path = "/nonexistent";
		assert_int_equal(initramfs_augment(&o, &rep, &err), -EINVAL);
		o.device = "../x";
		assert_int_equal(initramfs_augment(&o, &rep, &err), -EINVAL);
		ext4_close(fs);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usr_lib_modules_nvme),
		cmocka_unit_test(test_lib_modules_sd),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
