/* test_image_bootfiles: cmdline.txt / config.txt rewrites (peer §4.2 steps
 * 5-6) and the storage → device mapping. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image/bootfiles.h"

static char *cmdline(const char *in)
{
	struct art_err err = {{0}};
	char *out = NULL;

	assert_int_equal(bootfiles_cmdline_rewrite(in, strlen(in), &out, &err), 0);
	return out;
}

static void test_cmdline(void **state)
{
	char *o;

	(void)state;
	o = cmdline("console=serial0,115200 console=tty1 root=PARTUUID=5eed1234-02 "
		    "rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n");
	assert_string_equal(o, "console=serial0,115200 console=tty1 fsck.repair=yes\n");
	free(o);
	/* words that only look alike stay; CRLF and tabs are blanks */
	o = cmdline("quietly rootwaitx myroot=1\troot=/dev/sda2 \r\n");
	assert_string_equal(o, "quietly rootwaitx myroot=1\n");
	free(o);
	o = cmdline("");
	assert_string_equal(o, "\n");
	free(o);
}

static char *config(const char *in, int want_rc, struct art_err *err)
{
	char *out = NULL;

	assert_int_equal(bootfiles_config_rewrite(in, strlen(in), &out, err), want_rc);
	return out;
}

static void test_config_pi_os(void **state)
{
	struct art_err err = {{0}};
	char *o;

	(void)state;
	o = config("dtparam=audio=on\nauto_initramfs=1\narm_64bit=1\n\n[cm4]\notg_mode=1\n\n[all]\n",
		   0, &err);
	assert_string_equal(o, "dtparam=audio=on\n#auto_initramfs=1\narm_64bit=1\n\n[cm4]\n"
			    "otg_mode=1\n\n[all]\ninitramfs initramfs8\nlock_device_private_key=1\n");
	free(o);
}

static void test_config_sections(void **state)
{
	struct art_err err = {{0}};
	char *o;

	(void)state;
	/* last section is a filter: our lines must go under [all] */
	o = config("[pi5]\ninitramfs old.img followkernel\n", 0, &err);
	assert_string_equal(o, "[pi5]\n#initramfs old.img followkernel\n\n[all]\n"
			    "initramfs initramfs8\nlock_device_private_key=1\n");
	free(o);
	/* already locked under [all] (implicit at the top): not repeated */
	o = config("lock_device_private_key=1\n[pi4]\nx=1\n", 0, &err);
	assert_string_equal(o, "lock_device_private_key=1\n[pi4]\nx=1\n\n[all]\n"
			    "initramfs initramfs8\n");
	free(o);
	/* set only under a filter: still added under [all] */
	o = config("[pi5]\nlock_device_private_key=1\n[all]\n", 0, &err);
	assert_non_null(strstr(o, "[all]\ninitramfs initramfs8\nlock_device_private_key=1\n"));
	free(o);
	/* no trailing newline, CRLF */
	o = config("auto_initramfs=1\r\narm_boost=1", 0, &err);
	assert_string_equal(o, "#auto_initramfs=1\r\narm_boost=1\ninitramfs initramfs8\n"
			    "lock_device_private_key=1\n");
	free(o);
}

static void test_config_conflict(void **state)
{
	struct art_err err = {{0}};

	(void)state;
	assert_null(config("arm_64bit=1\nlock_device_private_key=0\n", -EINVAL, &err));
	assert_non_null(strstr(err.msg, "line 2"));
	assert_non_null(strstr(err.msg, "\"0\""));
	assert_null(config("[pi5]\n  lock_device_private_key=yes\n", -EINVAL, &err));
	/* a comment is not a conflict */
	free(config("#lock_device_private_key=0\n", 0, &err));
	{
		char *out = NULL;

		assert_int_equal(bootfiles_config_rewrite("a\0b", 3, &out, &err), -EINVAL);
		assert_int_equal(bootfiles_cmdline_rewrite("a\0b", 3, &out, &err), -EINVAL);
		assert_null(out);
	}
}

static void test_storage(void **state)
{
	(void)state;
	assert_string_equal(bootfiles_storage_device("sd"), "mmcblk0");
	assert_string_equal(bootfiles_storage_device("emmc"), "mmcblk0");
	assert_string_equal(bootfiles_storage_device("nvme"), "nvme0n1");
	assert_null(bootfiles_storage_device("usb"));
	assert_null(bootfiles_storage_device(NULL));
	assert_string_equal(bootfiles_ramdisk_config, "boot_ramdisk=1\nuart_2ndstage=1\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_config_pi_os),
		cmocka_unit_test(test_config_sections),
		cmocka_unit_test(test_config_conflict),
		cmocka_unit_test(test_storage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
