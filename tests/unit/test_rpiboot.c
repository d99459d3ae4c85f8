/* test_rpiboot: the rpiboot host protocol against a scripted fake transport:
 * second-stage upload, a full recovery file-server session, name confinement,
 * and the failures an operator meets (stall, unplug, timeouts, garbage). */
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

#include "fake_transport.h"
#include "proto/rpiboot.h"

#define OUT 0x40
#define IN 0xC0

/* ---- helpers ---- */

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 131u + seed * 7u + (i >> 9)) & 0xff);
	return p;
}

static void expect_ep_write(struct fake_transport *f, const void *buf, size_t len)
{
	ft_ctrl_out(f, OUT, (uint16_t)(len & 0xffff), (uint16_t)(len >> 16), 0);
	if (len)
		ft_bulk_out(f, buf, len);
}

/* The device's FileMessage: command + name, full 260 bytes. */
static void expect_request(struct fake_transport *f, uint32_t cmd, const char *name)
{
	uint8_t m[RPIBOOT_FILEMSG_LEN] = { 0 };

	m[0] = (uint8_t)cmd;
	memcpy(m + 4, name, strlen(name));
	ft_ctrl_in(f, IN, 260, 0, 260, m, sizeof(m));
}

static void expect_done_short(struct fake_transport *f)
{
	uint8_t m[4] = { 2, 0, 0, 0 };

	ft_ctrl_in(f, IN, 260, 0, 260, m, sizeof(m));
}

static char tmpdir[64];
static int dirfd_;

static void write_file(const char *rel, const void *data, size_t n)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static int setup_dir(void **state)
{
	char path[256];

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_rpiboot.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	dirfd_ = open(tmpdir, O_RDONLY | O_DIRECTORY);
	assert_true(dirfd_ >= 0);
	snprintf(path, sizeof(path), "%s/2711", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/sub", tmpdir);
	assert_int_equal(mkdir(path, 0755), 0);
	return 0;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	close(dirfd_);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void log_collect(void *usrptr, enum rpiboot_log_level level, const char *msg)
{
	char *buf = usrptr;

	(void)level;
	if (strlen(buf) + strlen(msg) + 2 < 8192) {
		strcat(buf, msg);
		strcat(buf, "\n");
	}
}

/* ---- stage 1 ---- */

static void test_second_stage_upload(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	size_t len = 100140; /* 0x1872C: wValue 0x872C, wIndex 1 as in spec §2 */
	uint8_t *img = pattern(len, 1);
	uint8_t msg[24] = { 0x2c, 0x87, 0x01, 0x00 };
	uint8_t status[4] = { 0, 0, 0, 0 };
	struct rpiboot_status st;

	(void)state;
	expect_ep_write(f, msg, sizeof(msg));
	expect_ep_write(f, img, len);
	ft_ctrl_in(f, IN, 4, 0, 4, status, 4);
	assert_int_equal(rpiboot_send_second_stage(ft_transport(f), img, len, NULL, &st), 0);
	assert_int_equal(ft_verify(f), 0);
	assert_true(st.rom_status_valid);
	assert_int_equal(st.rom_status, 0);
	assert_true(ft_max_bulk_out(f) <= RPIBOOT_BULK_CHUNK);
	assert_int_equal(ft_zero_length_outs(f), 0);
	ft_free(f);
	free(img);
}

static void test_second_stage_status_gone_is_not_failure(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2712, 512);
	uint8_t img[1000];
	uint8_t msg[24] = { 0xe8, 0x03 };
	struct rpiboot_status st;

	(void)state;
	memset(img, 0x5a, sizeof(img));
	expect_ep_write(f, msg, sizeof(msg));
	expect_ep_write(f, img, sizeof(img));
	ft_error(f, FT_CTRL_IN, -ENODEV, 0); /* already re-enumerating: harmless */
	assert_int_equal(rpiboot_send_second_stage(ft_transport(f), img, sizeof(img), NULL, &st), 0);
	assert_int_equal(ft_verify(f), 0);
	assert_false(st.rom_status_valid);
	ft_free(f);
}

static void test_second_stage_signature_for_2837(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2764, 512);
	uint8_t img[64], sig[20], msg[24] = { 64 };
	struct rpiboot_opts o;

	(void)state;
	memset(img, 1, sizeof(img));
	for (int i = 0; i < 20; i++)
		sig[i] = (uint8_t)(0xa0 + i);
	memcpy(msg + 4, sig, 20);
	rpiboot_opts_default(&o);
	o.signature = sig;
	expect_ep_write(f, msg, sizeof(msg));
	expect_ep_write(f, img, sizeof(img));
	ft_ctrl_in(f, IN, 4, 0, 4, "\x07\0\0\0", 4);
	{
		struct rpiboot_status st;

		assert_int_equal(rpiboot_send_second_stage(ft_transport(f), img, sizeof(img), &o, &st), 0);
		assert_int_equal(st.rom_status, 7); /* non-zero status is reported, not fatal */
	}
	assert_int_equal(ft_verify(f), 0);
	ft_free(f);
}

static void test_second_stage_stall(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	uint8_t img[100] = { 0 };
	struct rpiboot_status st;

	(void)state;
	ft_error(f, FT_CTRL_OUT, -EPIPE, 0);
	assert_int_equal(rpiboot_send_second_stage(ft_transport(f), img, sizeof(img), NULL, &st), -EPIPE);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(st.step, RPIBOOT_STEP_BOOTMSG_ANNOUNCE);
	assert_non_null(strstr(st.msg, "BootMessage announce"));
	assert_non_null(strstr(st.msg, "ba7f425f"));
	assert_non_null(strstr(st.msg, "1-1.3"));
	assert_non_null(strstr(st.msg, "EPIPE"));
	ft_free(f);
}

static void test_second_stage_unplug_mid_transfer(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	size_t len = 70000;
	uint8_t *img = pattern(len, 2);
	uint8_t msg[24] = { 0x70, 0x11, 0x01 };
	struct rpiboot_status st;

	(void)state;
	expect_ep_write(f, msg, sizeof(msg));
	ft_ctrl_out(f, OUT, (uint16_t)(len & 0xffff), (uint16_t)(len >> 16), 0);
	ft_error(f, FT_BULK_OUT, -ENODEV, 32768);
	assert_int_equal(rpiboot_send_second_stage(ft_transport(f), img, len, NULL, &st), -ENODEV);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(st.step, RPIBOOT_STEP_IMAGE_BULK);
	assert_int_equal(st.end, RPIBOOT_END_DISCONNECT);
	assert_non_null(strstr(st.msg, "second-stage bulk"));
	assert_non_null(strstr(st.msg, "ENODEV"));
	ft_free(f);
	free(img);
}

static void test_second_stage_truncated(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	size_t len = 50000;
	uint8_t *img = pattern(len, 3);
	uint8_t msg[24] = { 0x50, 0xc3 };
	struct rpiboot_status st;

	(void)state;
	/* Empty images are refused before any traffic. */
	assert_int_equal(rpiboot_send_second_stage(ft_transport(f), img, 0, NULL, &st), -EINVAL);
	assert_int_equal(rpiboot_send_second_stage(ft_transport(f), img, RPIBOOT_SECOND_STAGE_MAX + 1,
						   NULL, &st), -EINVAL);
	/* The ROM stops taking bytes part-way: the upload fails at the bulk step. */
	expect_ep_write(f, msg, sizeof(msg));
	ft_ctrl_out(f, OUT, (uint16_t)len, 0, 0);
	ft_error(f, FT_BULK_OUT, -ETIMEDOUT, 16384);
	assert_int_equal(rpiboot_send_second_stage(ft_transport(f), img, len, NULL, &st), -ETIMEDOUT);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(st.step, RPIBOOT_STEP_IMAGE_BULK);
	ft_free(f);
	free(img);
}

static void test_second_stage_names(void **state)
{
	(void)state;
	assert_string_equal(rpiboot_second_stage_name(0x2711), "bootcode4.bin");
	assert_string_equal(rpiboot_second_stage_name(0x2712), "bootcode5.bin");
	assert_string_equal(rpiboot_second_stage_name(0x2764), "bootcode.bin");
	assert_string_equal(rpiboot_second_stage_name(0x2763), "bootcode.bin");
	assert_null(rpiboot_second_stage_name(0x4e40));
	assert_true(rpiboot_is_rom_stage(0));
	assert_true(rpiboot_is_rom_stage(3));
	assert_false(rpiboot_is_rom_stage(4));
	assert_false(rpiboot_is_rom_stage(1));
}

/* ---- stage 2 ---- */

static void test_recovery_session(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	const char *config = "[all]\nrecovery_metadata=1\nprogram_pubkey=1\n";
	const char *sig = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nts: 1700000000\n";
	size_t eelen = 2 * 1024 * 1024 + 333;
	uint8_t *eeprom = pattern(eelen, 4);
	struct rpiboot_metadata md;
	struct rpiboot_status st;
	static char logbuf[8192];
	char *json = NULL;

	(void)state;
	logbuf[0] = '\0';
	write_file("config.txt", config, strlen(config));
	write_file("pieeprom.sig", sig, strlen(sig));
	write_file("pieeprom.bin", eeprom, eelen);
	/* A per-SoC override wins over the flat file (spec §8). */
	write_file("2711/config.txt", "override\n", 9);

	expect_request(f, 0, "config.txt");
	ft_ctrl_out(f, OUT, 9, 0, 0);
	expect_request(f, 1, "config.txt");
	expect_ep_write(f, "override\n", 9);
	expect_request(f, 0, "pieeprom.bin");
	ft_ctrl_out(f, OUT, (uint16_t)(eelen & 0xffff), (uint16_t)(eelen >> 16), 0);
	expect_request(f, 0, "pieeprom.bin");
	ft_ctrl_out(f, OUT, (uint16_t)(eelen & 0xffff), (uint16_t)(eelen >> 16), 0);
	expect_request(f, 0, "pieeprom.sig");
	ft_ctrl_out(f, OUT, (uint16_t)strlen(sig), 0, 0);
	expect_request(f, 1, "pieeprom.sig");
	expect_ep_write(f, sig, strlen(sig));
	expect_request(f, 0, "pieeprom.bin");
	ft_ctrl_out(f, OUT, (uint16_t)(eelen & 0xffff), (uint16_t)(eelen >> 16), 0);
	expect_request(f, 1, "pieeprom.bin");
	expect_ep_write(f, eeprom, eelen);
	expect_request(f, 0, "pieeprom.upd"); /* absent: size 0 */
	ft_ctrl_out(f, OUT, 0, 0, 0);
	/* Timeouts while the board writes flash are retried. */
	ft_error(f, FT_CTRL_IN, -ETIMEDOUT, 0);
	ft_error(f, FT_CTRL_IN, -ETIMEDOUT, 0);
	const char *pushes[] = {
		"*USER_SERIAL_NUM*ba7f425f", "*MAC_ADDR*d8:3a:dd:01:02:03", "*EEPROM_UPDATE*success",
		"*EEPROM_HASH*0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"*SECURE_BOOT_PROVISION*success",
		"*CUSTOMER_KEY_HASH*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"*BOOT_ROM*0000c8b0", "*BOARD_ATTR*00000000", "*USER_BOARDREV*c03141",
		"*JTAG_LOCKED*0", "*ADVANCED_BOOT*0000e8e8", "*FACTORY_UUID*19a519a6_19ab520e_1ac0212b",
		"*NEW_STATUS_KEY*done", "*MAC_WIFI_ADDR*not-a-mac", "*EMPTY_VALUE*",
	};
	for (size_t i = 0; i < sizeof(pushes) / sizeof(pushes[0]); i++) {
		expect_request(f, 0, pushes[i]);
		ft_ctrl_out(f, OUT, 0, 0, 0);
	}
	expect_done_short(f);

	rpiboot_metadata_init(&md);
	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, &md, NULL, log_collect, logbuf, &st), 0);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(st.end, RPIBOOT_END_DONE);
	assert_int_equal(st.files_served, 3);
	assert_int_equal(st.files_missing, 1);
	assert_int_equal(st.metadata_pushes, 15);
	assert_true(ft_max_bulk_out(f) <= RPIBOOT_BULK_CHUNK);
	assert_int_equal(ft_zero_length_outs(f), 0);

	assert_true(md.have_serial);
	assert_int_equal(md.serial, 0xba7f425f);
	assert_true(md.have_boardrev);
	assert_int_equal(md.boardrev, 0xc03141);
	assert_int_equal((md.boardrev >> 4) & 0xff, 0x14); /* CM4 board type */
	assert_string_equal(md.factory_uuid, "001000911006186073");
	assert_string_equal(rpiboot_metadata_get(&md, "MAC_ADDR"), "d8:3a:dd:01:02:03");
	assert_string_equal(rpiboot_metadata_get(&md, "NEW_STATUS_KEY"), "done");
	assert_null(rpiboot_metadata_get(&md, "MAC_WIFI_ADDR")); /* bad shape refused */
	assert_null(rpiboot_metadata_get(&md, "EMPTY_VALUE"));
	assert_int_equal(md.refused, 2);
	assert_non_null(strstr(logbuf, "pieeprom.upd"));

	/* The record's JSON round-trips through json-c. */
	assert_int_equal(rpiboot_metadata_to_json(&md, &json), 0);
	{
		struct rpiboot_metadata back;

		rpiboot_metadata_init(&back);
		assert_int_equal(rpiboot_metadata_from_json(&back, json, strlen(json)), 0);
		assert_int_equal(back.serial, 0xba7f425f);
		assert_string_equal(back.factory_uuid, "001000911006186073");
		assert_string_equal(rpiboot_metadata_get(&back, "NEW_STATUS_KEY"), "done");
		rpiboot_metadata_clear(&back);
	}
	free(json);
	rpiboot_metadata_clear(&md);
	ft_free(f);
	free(eeprom);
}

static void test_path_traversal_refused(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2712, 512);
	struct rpiboot_status st;
	static char logbuf[8192];
	char target[256], link[256];
	const char *evil[] = {
		"../etc/passwd", "/etc/passwd", "link-out", "a/../../b", "sub/../../x",
		"linkdir/passwd", "bad\x01name", "back\\slash", "\xc3\xa9t\xc3\xa9", "sub//x",
	};

	(void)state;
	logbuf[0] = '\0';
	snprintf(link, sizeof(link), "%s/link-out", tmpdir);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	snprintf(link, sizeof(link), "%s/linkdir", tmpdir);
	assert_int_equal(symlink("/etc", link), 0);
	/* A symlink that stays inside the payload is fine (recovery dirs use them). */
	write_file("recovery.bin", "RECOVERY", 8);
	snprintf(link, sizeof(link), "%s/bootcode5.bin", tmpdir);
	assert_int_equal(symlink("recovery.bin", link), 0);
	snprintf(target, sizeof(target), "%s/sub/inner.txt", tmpdir);
	write_file("sub/inner.txt", "in", 2);

	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		expect_request(f, i % 2, evil[i]);
		ft_ctrl_out(f, OUT, 0, 0, 0);
	}
	expect_request(f, 1, "bootcode5.bin");
	expect_ep_write(f, "RECOVERY", 8);
	expect_request(f, 1, "sub/inner.txt");
	expect_ep_write(f, "in", 2);
	expect_request(f, 2, "");

	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, NULL, NULL, log_collect, logbuf, &st), 0);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(st.names_refused, 10);
	assert_int_equal(st.files_served, 2);
	assert_non_null(strstr(logbuf, "refused request for '../etc/passwd'"));
	assert_non_null(strstr(logbuf, "refused request for 'link-out'"));
	assert_non_null(strstr(logbuf, "refused request for 'bad?name'")); /* no raw control bytes */
	assert_null(strchr(logbuf, '\x01'));
	ft_free(f);
}

static void test_name_check(void **state)
{
	uint64_t size;

	(void)state;
	assert_int_equal(rpiboot_name_check("config.txt"), 0);
	assert_int_equal(rpiboot_name_check("overlays/x.dtbo"), 0);
	assert_int_equal(rpiboot_name_check(""), -EACCES);
	assert_int_equal(rpiboot_name_check("a/"), -EACCES);
	assert_int_equal(rpiboot_name_check(".."), -EACCES);
	assert_int_equal(rpiboot_open_payload(dirfd_, "2711", "nonexistent", &size), -ENOENT);
	assert_int_equal(rpiboot_open_payload(dirfd_, "2711", "sub", &size), -ENOENT); /* a directory */
}

static void test_unplug_mid_file(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	size_t len = 100000;
	uint8_t *data = pattern(len, 5);
	struct rpiboot_status st;

	(void)state;
	write_file("boot.img", data, len);
	expect_request(f, 1, "boot.img");
	ft_ctrl_out(f, OUT, (uint16_t)(len & 0xffff), (uint16_t)(len >> 16), 0);
	ft_error(f, FT_BULK_OUT, -ENODEV, 49152);
	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, NULL, NULL, NULL, NULL, &st), -ENODEV);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(st.step, RPIBOOT_STEP_FILE_BULK);
	assert_non_null(strstr(st.msg, "file data bulk"));
	assert_non_null(strstr(st.msg, "boot.img"));
	ft_free(f);
	free(data);
}

static void test_disconnect_after_files(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	struct rpiboot_status st;

	(void)state;
	write_file("config.txt", "x=1\n", 4);
	expect_request(f, 1, "config.txt");
	expect_ep_write(f, "x=1\n", 4);
	ft_error(f, FT_CTRL_IN, -EIO, 0);
	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, NULL, NULL, NULL, NULL, &st), -ENODEV);
	assert_int_equal(ft_verify(f), 0);
	assert_int_equal(st.end, RPIBOOT_END_DISCONNECT);
	assert_int_equal(st.files_served, 1);
	ft_free(f);

	/* Gone before serving anything: an error with the step named. */
	f = ft_new(TRANSPORT_USB, 0x2711, 512);
	ft_error(f, FT_CTRL_IN, -ENODEV, 0);
	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, NULL, NULL, NULL, NULL, &st), -ENODEV);
	assert_non_null(strstr(st.msg, "FileMessage read"));
	assert_int_equal(ft_verify(f), 0);
	ft_free(f);
}

static void test_read_timeouts_bounded(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	struct rpiboot_opts o;
	struct rpiboot_status st;

	(void)state;
	rpiboot_opts_default(&o);
	o.read_retries = 2;
	for (int i = 0; i < 3; i++)
		ft_error(f, FT_CTRL_IN, -ETIMEDOUT, 0);
	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, NULL, &o, NULL, NULL, &st), -ETIMEDOUT);
	assert_int_equal(ft_verify(f), 0);
	assert_non_null(strstr(st.msg, "ETIMEDOUT"));
	ft_free(f);
}

static void test_garbage_requests(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2711, 512);
	struct rpiboot_status st;
	uint8_t tiny[2] = { 1, 0 };

	(void)state;
	expect_request(f, 7, "config.txt"); /* unknown command */
	ft_ctrl_in(f, IN, 260, 0, 260, tiny, sizeof(tiny)); /* shorter than a command */
	expect_request(f, 3, "");
	expect_request(f, 9, "x");
	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, NULL, NULL, NULL, NULL, &st), -EPROTO);
	assert_int_equal(ft_verify(f), 0);
	ft_free(f);

	/* An unterminated 256-byte name gets the "missing" answer, then the session goes on. */
	f = ft_new(TRANSPORT_USB, 0x2711, 512);
	{
		uint8_t m[260];

		memset(m, 'A', sizeof(m));
		m[0] = 0; m[1] = 0; m[2] = 0; m[3] = 0;
		ft_ctrl_in(f, IN, 260, 0, 260, m, sizeof(m));
	}
	ft_ctrl_out(f, OUT, 0, 0, 0);
	expect_request(f, 2, "*stale-name");
	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, NULL, NULL, NULL, NULL, &st), 0);
	assert_int_equal(st.end, RPIBOOT_END_DONE);
	assert_int_equal(st.names_refused, 1);
	assert_int_equal(ft_verify(f), 0);
	ft_free(f);
}

static void test_empty_name_ends_session(void **state)
{
	struct fake_transport *f = ft_new(TRANSPORT_USB, 0x2764, 64);
	struct rpiboot_status st;

	(void)state;
	expect_request(f, 0, "");
	ft_ctrl_out(f, OUT, 0, 0, 0);
	assert_int_equal(rpiboot_serve_files(ft_transport(f), dirfd_, NULL, NULL, NULL, NULL, &st), 0);
	assert_int_equal(st.end, RPIBOOT_END_EMPTY_NAME);
	assert_int_equal(ft_verify(f), 0);
	ft_free(f);
}

/* ---- metadata ---- */

static void test_metadata_parsing(void **state)
{
	struct rpiboot_metadata md;
	char out[64];
	const char *j;

	(void)state;
	rpiboot_metadata_init(&md);
	assert_int_equal(rpiboot_factory_uuid_decode("19a519a6_19ab520e_1ac0212b", out, sizeof(out)), 0);
	assert_string_equal(out, "001000911006186073");
	assert_int_equal(rpiboot_factory_uuid_decode("19a519a6_00000000_ffffffff", out, sizeof(out)), 0);
	assert_string_equal(out, "001000");
	assert_int_equal(rpiboot_factory_uuid_decode("ffffffff", out, sizeof(out)), -EINVAL);
	assert_int_equal(rpiboot_factory_uuid_decode("19a5_zz", out, sizeof(out)), -EINVAL);
	/* 13 words = 78 characters: more than 36 are refused, never overflowed. */
	assert_int_equal(rpiboot_factory_uuid_decode(
		"19a519a6_19a519a6_19a519a6_19a519a6_19a519a6_19a519a6_19a519a6_19a519a6_19a519a6_19a519a6_19a519a6_19a519a6_19a519a6",
		out, sizeof(out)), -EINVAL);

	assert_int_equal(rpiboot_metadata_push(&md, "*USER_SERIAL_NUM*7b335499*extra", 31), 0);
	assert_int_equal(md.serial, 0x7b335499);
	assert_int_equal(rpiboot_metadata_push(&md, "*USER_SERIAL_NUM", 16), -ENODATA);
	assert_int_equal(rpiboot_metadata_push(&md, "**x", 3), -EINVAL);
	assert_int_equal(rpiboot_metadata_push(&md, "*lower*x", 8), -EINVAL);
	assert_int_equal(rpiboot_metadata_push(&md, "*JTAG_LOCKED*yes", 16), -EINVAL);
	assert_int_equal(rpiboot_metadata_push(&md, "*BOOT_ROM*123456789", 19), -EINVAL);
	for (int i = 0; i < RPIBOOT_MD_UNKNOWN_MAX; i++) {
		char p[32];

		snprintf(p, sizeof(p), "*K%d*v", i);
		assert_int_equal(rpiboot_metadata_push(&md, p, strlen(p)), 0);
	}
	assert_int_equal(rpiboot_metadata_push(&md, "*ONE_TOO_MANY*v", 15), -ENOSPC);
	assert_int_equal(rpiboot_metadata_push(&md, "*K3*replaced", 12), 0); /* replacing is fine */
	assert_string_equal(rpiboot_metadata_get(&md, "K3"), "replaced");
	rpiboot_metadata_clear(&md);

	j = "{\"USER_BOARDREV\": \"b04170\", \"MAC_ADDR\": \"d8:3a:dd:00:00:01\"}";
	assert_int_equal(rpiboot_metadata_from_json(&md, j, strlen(j)), 0);
	assert_int_equal(md.boardrev, 0xb04170);
	rpiboot_metadata_clear(&md);
	j = "{\"USER_BOARDREV\": 12}";
	assert_int_equal(rpiboot_metadata_from_json(&md, j, strlen(j)), -EINVAL);
	j = "{\"X\": {\"Y\": \"z\"}}";
	assert_int_equal(rpiboot_metadata_from_json(&md, j, strlen(j)), -EINVAL);
	j = "[\"USER_BOARDREV\"]";
	assert_int_equal(rpiboot_metadata_from_json(&md, j, strlen(j)), -EINVAL);
	j = "{\"MAC_ADDR\": \"zz\"}";
	assert_int_equal(rpiboot_metadata_from_json(&md, j, strlen(j)), -EINVAL);
	j = "{\"A\": \"b\"} trailing";
	assert_int_equal(rpiboot_metadata_from_json(&md, j, strlen(j)), -EINVAL);
	rpiboot_metadata_clear(&md);
}

static void test_filemsg_parse(void **state)
{
	uint8_t m[300] = { 1, 0, 0, 0, 'a', 'b' };
	char name[RPIBOOT_FNAME_LEN];
	uint32_t cmd;

	(void)state;
	assert_int_equal(rpiboot_filemsg_parse(m, 260, &cmd, name), 0);
	assert_int_equal(cmd, 1);
	assert_string_equal(name, "ab");
	assert_int_equal(rpiboot_filemsg_parse(m, 5, &cmd, name), 0); /* short read: zero-filled */
	assert_string_equal(name, "a");
	assert_int_equal(rpiboot_filemsg_parse(m, 3, &cmd, name), -EBADMSG);
	m[0] = 3;
	assert_int_equal(rpiboot_filemsg_parse(m, 260, &cmd, name), -EBADMSG);
	m[0] = 0;
	memset(m + 4, 'x', 256);
	assert_int_equal(rpiboot_filemsg_parse(m, 260, &cmd, name), -ENAMETOOLONG);
	assert_int_equal(rpiboot_filemsg_parse(m, 259, &cmd, name), 0); /* short: terminated by zero-fill */
	assert_int_equal(strlen(name), 255);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_second_stage_upload),
		cmocka_unit_test(test_second_stage_status_gone_is_not_failure),
		cmocka_unit_test(test_second_stage_signature_for_2837),
		cmocka_unit_test(test_second_stage_stall),
		cmocka_unit_test(test_second_stage_unplug_mid_transfer),
		cmocka_unit_test(test_second_stage_truncated),
		cmocka_unit_test(test_second_stage_names),
		cmocka_unit_test_setup_teardown(test_recovery_session, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_path_traversal_refused, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_name_check, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_unplug_mid_file, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_disconnect_after_files, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_read_timeouts_bounded, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_garbage_requests, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_empty_name_ends_session, setup_dir, teardown_dir),
		cmocka_unit_test(test_metadata_parsing),
		cmocka_unit_test(test_filemsg_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
