/* test_fastboot: the fastboot client against a scripted fake transport:
 * getvar OKAY/FAIL/INFO, the exact bytes of download + flash, the USB packet
 * rules of the data phase, FAIL message propagation, timeouts and unplug. */
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
#include <unistd.h>

#include "fake_transport.h"
#include "proto/fastboot.h"

static struct fake_transport *f;
static struct fb fb;

static int setup(void **state)
{
	(void)state;
	f = ft_new(TRANSPORT_USB, 0x4e40, 512);
	assert_int_equal(fb_init(&fb, ft_transport(f), NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fb_fini(&fb);
	ft_free(f);
	return 0;
}

static void cmd(const char *c)
{
	ft_bulk_out(f, c, strlen(c));
}

static uint8_t *pattern(size_t n)
{
	uint8_t *p = malloc(n);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 12));
	return p;
}

static void test_getvar_okay(void **state)
{
	char v[64];

	(void)state;
	cmd("getvar:version");
	ft_bulk_in_str(f, "OKAY0.4");
	cmd("getvar:serialno");
	ft_bulk_in(f, "OKAYc561b701c85be8ea\0", 21); /* device-tree string: trailing NUL */
	cmd("getvar:mmc-sector-size");
	ft_bulk_in_str(f, "OKAY512\n"); /* sysfs value: trailing newline */
	assert_int_equal(fb_getvar(&fb, "version", v, sizeof(v)), 0);
	assert_string_equal(v, "0.4");
	assert_int_equal(fb_getvar(&fb, "serialno", v, sizeof(v)), 0);
	assert_string_equal(v, "c561b701c85be8ea");
	assert_int_equal(fb_getvar(&fb, "mmc-sector-size", v, sizeof(v)), 0);
	assert_string_equal(v, "512");
	assert_int_equal(ft_verify(f), 0);
}

static void test_getvar_fail(void **state)
{
	char v[64];

	(void)state;
	cmd("getvar:has-slot:mmcblk0");
	ft_bulk_in_str(f, "FAILUnknown variable");
	assert_int_equal(fb_getvar(&fb, "has-slot:mmcblk0", v, sizeof(v)), -EREMOTEIO);
	assert_string_equal(fb_fail_message(&fb), "Unknown variable");
	assert_non_null(strstr(fb_last_error(&fb), "getvar:has-slot:mmcblk0"));
	assert_non_null(strstr(fb_last_error(&fb), "Unknown variable"));
	assert_int_equal(ft_verify(f), 0);
}

static unsigned info_calls;
static void on_info(void *usrptr, const char *line)
{
	(void)usrptr;
	(void)line;
	info_calls++;
}

static void test_getvar_info_lines(void **state)
{
	struct fb_lines lines = { 0 };
	char resp[64];

	(void)state;
	info_calls = 0;
	fb_set_callbacks(&fb, on_info, NULL, NULL);
	cmd("getvar:all");
	ft_bulk_in_str(f, "INFOversion:0.4");
	ft_bulk_in_str(f, "TEXTpartial");
	ft_bulk_in_str(f, "INFOmax-download-size:0x10000000");
	ft_bulk_in_str(f, "OKAY");
	assert_int_equal(fb_command_raw(&fb, "getvar:all", 0, resp, sizeof(resp), &lines, NULL), 0);
	assert_int_equal(lines.n, 3);
	assert_string_equal(lines.v[0], "version:0.4");
	assert_string_equal(lines.v[2], "max-download-size:0x10000000");
	assert_string_equal(resp, "");
	assert_int_equal(info_calls, 3);
	fb_lines_free(&lines);
	assert_int_equal(ft_verify(f), 0);
}

static void test_oem_info(void **state)
{
	struct fb_lines lines = { 0 };
	char resp[64];

	(void)state;
	cmd("oem idpgetblk");
	ft_bulk_in_str(f, "INFOmmcblk0p1:boot.sparse");
	ft_bulk_in_str(f, "OKAYIDP:done");
	assert_int_equal(fb_oem(&fb, "idpgetblk", 0, &lines, resp, sizeof(resp)), 0);
	assert_int_equal(lines.n, 1);
	assert_string_equal(lines.v[0], "mmcblk0p1:boot.sparse");
	assert_string_equal(resp, "IDP:done");
	fb_lines_free(&lines);
	assert_int_equal(ft_verify(f), 0);
}

static uint64_t last_done, last_total;
static unsigned progress_calls;
static void on_progress(void *usrptr, uint64_t done, uint64_t total)
{
	(void)usrptr;
	assert_true(done >= last_done || done == 0);
	last_done = done;
	last_total = total;
	progress_calls++;
}

static void test_download_flash_sequence(void **state)
{
	size_t len = 3 * 1024 * 1024 + 100;
	uint8_t *data = pattern(len);

	(void)state;
	last_done = 0;
	progress_calls = 0;
	fb_set_callbacks(&fb, NULL, on_progress, NULL);
	cmd("download:00300064");
	ft_bulk_in_str(f, "DATA00300064");
	ft_bulk_out(f, data, len);
	ft_bulk_in_str(f, "OKAY");
	cmd("flash:mmcblk0p1");
	ft_bulk_in_str(f, "OKAYFlashing succeeded");
	assert_int_equal(fb_download(&fb, data, len), 0);
	assert_int_equal(fb_flash(&fb, "mmcblk0p1"), 0);
	assert_int_equal(ft_verify(f), 0);
	/* USB rules: no zero-length packet, no short transfer before the last. */
	assert_int_equal(ft_zero_length_outs(f), 0);
	assert_int_equal(ft_short_midphase(f), 0);
	assert_true(ft_max_bulk_out(f) <= FB_CHUNK_DEFAULT);
	assert_int_equal(last_done, len);
	assert_int_equal(last_total, len);
	assert_true(progress_calls >= 5);
	free(data);
}

static void test_download_streaming_small_writes(void **state)
{
	struct fb_opts o;
	uint8_t *data = pattern(20000);
	size_t off = 0;

	(void)state;
	fb_fini(&fb);
	fb_opts_default(&o);
	o.chunk_size = 4096;
	assert_int_equal(fb_init(&fb, ft_transport(f), &o), 0);
	cmd("download:00004e20");
	ft_bulk_in_str(f, "DATA00004e20");
	ft_bulk_out(f, data, 20000);
	ft_bulk_in_str(f, "OKAY");
	assert_int_equal(fb_download_begin(&fb, 20000), 0);
	/* libsparse hands out 28-byte headers, 12-byte chunk headers, odd runs */
	while (off < 20000) {
		size_t n = 12 + (off % 37);

		if (n > 20000 - off)
			n = 20000 - off;
		assert_int_equal(fb_download_write(&fb, data + off, n), 0);
		off += n;
	}
	assert_int_equal(fb_download_finish(&fb), 0);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(ft_short_midphase(f), 0);
	assert_int_equal(ft_max_bulk_out(f), 4096);
	free(data);
}

static void test_download_fd(void **state)
{
	char path[] = "/tmp/test_fastboot.XXXXXX";
	int fd = mkstemp(path);
	size_t len = 2 * 1024 * 1024 + 4097;
	uint8_t *data = pattern(len + 1000);

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, data, len + 1000), (ssize_t)(len + 1000));
	{
		char d[32];

		snprintf(d, sizeof(d), "download:%08zx", len - 1000);
		cmd(d);
		snprintf(d, sizeof(d), "DATA%08zx", len - 1000);
		ft_bulk_in_str(f, d);
	}
	ft_bulk_out(f, data + 1000, len - 1000);
	ft_bulk_in_str(f, "OKAY");
	assert_int_equal(fb_download_fd(&fb, fd, 1000, len - 1000), 0);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(ft_short_midphase(f), 0);
	close(fd);
	free(data);
}

static void test_flash_fail_message(void **state)
{
	(void)state;
	cmd("flash:mmcblk0p9");
	ft_bulk_in_str(f, "FAILcannot access partition /dev/mmcblk0p9 (OpenPartition failed; partition may not exist)");
	assert_int_equal(fb_flash(&fb, "mmcblk0p9"), -EREMOTEIO);
	assert_string_equal(fb_fail_message(&fb),
			    "cannot access partition /dev/mmcblk0p9 (OpenPartition failed; partition may not exist)");
	assert_non_null(strstr(fb_last_error(&fb), "flash:mmcblk0p9"));
	assert_int_equal(ft_verify(f), 0);
}

static void test_download_refused_and_bad_data(void **state)
{
	uint8_t d[16] = { 0 };

	(void)state;
	cmd("download:00000010");
	ft_bulk_in_str(f, "FAILInvalid size");
	cmd("download:00000010");
	ft_bulk_in_str(f, "DATA00000020"); /* device agreed to a different size */
	assert_int_equal(fb_download(&fb, d, sizeof(d)), -EREMOTEIO);
	assert_string_equal(fb_fail_message(&fb), "Invalid size");
	assert_int_equal(fb_download(&fb, d, sizeof(d)), -EPROTO);
	assert_int_equal(fb_download(&fb, d, 0), -EFBIG); /* never download:00000000 */
	assert_int_equal(ft_verify(f), 0);
}

static void test_max_download_and_limit(void **state)
{
	uint64_t m;
	uint8_t d[32] = { 0 };

	(void)state;
	cmd("getvar:max-download-size");
	ft_bulk_in_str(f, "OKAY0x10");
	assert_int_equal(fb_get_max_download(&fb, &m), 0);
	assert_int_equal(m, 16);
	assert_int_equal(fb_get_max_download(&fb, &m), 0); /* cached: no traffic */
	assert_int_equal(fb_download(&fb, d, sizeof(d)), -EFBIG);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(fb_parse_size("268435456", &m), 0);
	assert_int_equal(m, 268435456);
	assert_int_equal(fb_parse_size("0x", &m), -EINVAL);
	assert_int_equal(fb_parse_size("12abc", &m), -EINVAL);
	/* fuzz_fastboot_resp: strtoull skipped leading \t \r \n and took a sign */
	assert_int_equal(fb_parse_size("\r2", &m), -EINVAL);
	assert_int_equal(fb_parse_size("\t0x10", &m), -EINVAL);
	assert_int_equal(fb_parse_size("\n256", &m), -EINVAL);
	assert_int_equal(fb_parse_size("+256", &m), -EINVAL);
}

static void test_timeout_and_unplug(void **state)
{
	char v[16];
	size_t len = 2 * 1024 * 1024;
	uint8_t *data = pattern(len);

	(void)state;
	cmd("getvar:version");
	ft_error(f, FT_BULK_IN, -ETIMEDOUT, 0);
	assert_int_equal(fb_getvar(&fb, "version", v, sizeof(v)), -ETIMEDOUT);
	assert_non_null(strstr(fb_last_error(&fb), "ETIMEDOUT"));
	assert_non_null(strstr(fb_last_error(&fb), "getvar:version"));

	cmd("download:00200000");
	ft_bulk_in_str(f, "DATA00200000");
	ft_error(f, FT_BULK_OUT, -ENODEV, 1024 * 1024);
	assert_int_equal(fb_download(&fb, data, len), -ENODEV);
	assert_non_null(strstr(fb_last_error(&fb), "ENODEV"));
	assert_int_equal(ft_verify(f), 0);
	free(data);
}

static void test_command_refused_locally(void **state)
{
	char big[300];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(fb_command_raw(&fb, big, 0, NULL, 0, NULL, NULL), -E2BIG);
	assert_int_equal(fb_command_raw(&fb, "oem led PWR\n0", 0, NULL, 0, NULL, NULL), -EINVAL);
	assert_int_equal(fb_command_raw(&fb, "", 0, NULL, 0, NULL, NULL), -E2BIG);
	assert_int_equal(ft_verify(f), 0); /* nothing reached the wire */
}

static void test_unexpected_data_and_garbage(void **state)
{
	(void)state;
	cmd("erase:mmcblk0");
	ft_bulk_in_str(f, "DATA00000010");
	cmd("erase:mmcblk0");
	ft_bulk_in_str(f, "HUH?");
	cmd("erase:mmcblk0");
	ft_bulk_in_str(f, "OK");
	cmd("erase:mmcblk0");
	ft_bulk_in_str(f, "OKAYErasing succeeded");
	assert_int_equal(fb_erase(&fb, "mmcblk0"), -EPROTO);
	assert_int_equal(fb_erase(&fb, "mmcblk0"), -EPROTO);
	assert_int_equal(fb_erase(&fb, "mmcblk0"), -EPROTO);
	assert_int_equal(fb_erase(&fb, "mmcblk0"), 0);
	assert_int_equal(ft_verify(f), 0);
}

static void test_parse_response(void **state)
{
	enum fb_status st;
	char msg[FB_MSG_MAX + 1];
	uint64_t sz = 0;
	uint8_t big[256];

	(void)state;
	assert_int_equal(fb_parse_response((const uint8_t *)"DATA0000abcd", 12, &st, msg, sizeof(msg), &sz), 0);
	assert_int_equal(st, FB_DATA);
	assert_int_equal(sz, 0xabcd);
	assert_int_equal(fb_parse_response((const uint8_t *)"DATA0000abc", 11, &st, msg, sizeof(msg), &sz), -EPROTO);
	assert_int_equal(fb_parse_response((const uint8_t *)"DATA0000abcg", 12, &st, msg, sizeof(msg), &sz), -EPROTO);
	assert_int_equal(fb_parse_response((const uint8_t *)"OKA", 3, &st, msg, sizeof(msg), &sz), -EPROTO);
	assert_int_equal(fb_parse_response((const uint8_t *)"okay", 4, &st, msg, sizeof(msg), &sz), -EPROTO);
	memcpy(big, "FAIL", 4);
	memset(big + 4, 'x', sizeof(big) - 4);
	assert_int_equal(fb_parse_response(big, sizeof(big), &st, msg, sizeof(msg), &sz), 0);
	assert_int_equal(strlen(msg), 252);
	assert_int_equal(fb_parse_response(big, sizeof(big), &st, msg, 10, &sz), 0);
	assert_int_equal(strlen(msg), 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_getvar_okay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_getvar_fail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_getvar_info_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oem_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_download_flash_sequence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_download_streaming_small_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_download_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flash_fail_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_download_refused_and_bad_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_download_and_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_unplug, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_refused_locally, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unexpected_data_and_garbage, setup, teardown),
		cmocka_unit_test(test_parse_response),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
