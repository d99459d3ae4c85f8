/* test_bootcode_payload: the bootstrap payload builders (pieeprom.bin/.sig,
 * bootloader config, recovery config.txt, boot.sig, firmware selection),
 * checked against the spec's end-to-end vectors (V5, V9, V10) and openssl. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <time.h>

#include "artefacts/bootcode.h"
#include "artefacts/eeprom.h"
#include "artefacts/firmware.h"
#include "artefacts/payload.h"
#include "artefacts/sig.h"
#include "test_sign_helpers.h"

static char *dir;
static struct signer *signer;

static char *tpath(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int setup(void **state)
{
	struct art_err err = { "" };
	char cmd[2048];

	(void)state;
	dir = th_tmpdir();
	if (!dir)
		return -1;
	snprintf(cmd, sizeof(cmd), "cd '%s' && cp '%s' key.pem && chmod 600 key.pem && mkdir fw && "
		 "ln -s '%s' fw/pieeprom-2026-08-04.bin && ln -s '%s' fw/pieeprom-2026-08-12.bin && "
		 "ln -s '%s' fw/pieeprom-2099-01-01.bin && ln -s '%s' fw/pieeprom-2100-01-01.bin.bak && "
		 "head -c 4096 /dev/urandom > fw/pieeprom-2101-01-01.bin && mkdir out",
		 dir, FIX("example-private.pem"), FIX("pieeprom-2026-08-04.bin"),
		 FIX("pieeprom-2026-08-12.bin"), FIX("pieeprom-2026-08-12.bin"),
		 FIX("pieeprom-2026-08-04.bin"));
	if (th_sh(cmd) != 0 || signer_open_pem(tpath("key.pem"), &signer, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	signer_close(signer);
	th_rmrf(dir);
	return 0;
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void build(struct payload_eeprom_in *in, struct payload_eeprom_out *out)
{
	struct art_err err = { "" };

	if (payload_build_eeprom(in, out, &err) < 0)
		fail_msg("payload_build_eeprom: %s", err.msg);
}

/* V9 + V10: the whole secure BCM2712 payload equals the reference tools'. */
static void test_secure_2712(void **state)
{
	struct art_err err = { "" };
	struct payload_eeprom_out out;
	struct sig_file sig;
	uint8_t *cfg, *file;
	size_t cl, fl;
	char hex[65];
	double t0;

	(void)state;
	cfg = th_read(FIX("bootconf.txt"), &cl);
	struct payload_eeprom_in in = {
		.mode = PAYLOAD_SECURE_BOOT, .chip = 2712,
		.firmware_path = FIX("pieeprom-2026-08-12.bin"),
		.bootconf = (const char *)cfg, .bootconf_len = cl, .signer = signer,
		.timestamp = 1614092425,	/* = the fixture bootconf.sig's ts */
	};
	t0 = now_ms();
	build(&in, &out);
	print_message("secure 2712 payload built in %.0f ms\n", now_ms() - t0);
	th_sha256_hex(out.image, out.image_len, hex);
	assert_string_equal(hex, "965fa3a801a45670795e2a12991a7df4f0285daeb23dbd94f287404eb7894e50");
	assert_int_equal(out.bootconf_len, cl);
	assert_memory_equal(out.bootconf, cfg, cl);
	assert_int_equal(out.sig_len, 602);
	assert_memory_equal(out.sig, hex, 64);
	assert_memory_equal(out.sig + 64, "\nts: 1614092425\nrsa2048: 71cee8b656a4e2c4", 41);
	assert_int_equal(sig_parse((uint8_t *)out.sig, out.sig_len, &sig, &err), 0);
	assert_int_equal(th_openssl_verify(dir, FIX("example-public.pem"), out.image, out.image_len,
					   sig.rsa), 0);
	assert_int_equal(payload_write_eeprom(&out, tpath("out"), &err), 0);
	file = th_read(tpath("out/pieeprom.bin"), &fl);
	assert_int_equal(fl, out.image_len);
	assert_memory_equal(file, out.image, fl);
	free(file);
	file = th_read(tpath("out/pieeprom.sig"), &fl);
	assert_int_equal(fl, out.sig_len);
	free(file);
	payload_eeprom_out_free(&out);
	free(cfg);
}

static void test_secure_2711(void **state)
{
	struct payload_eeprom_out out;
	uint8_t *cfg;
	size_t cl;
	char hex[65];
	double t0;

	(void)state;
	cfg = th_read(FIX("bootconf.txt"), &cl);
	struct payload_eeprom_in in = {
		.mode = PAYLOAD_SECURE_BOOT, .chip = 2711,
		.firmware_path = FIX("pieeprom-2026-08-04.bin"),
		.bootconf = (const char *)cfg, .bootconf_len = cl, .signer = signer,
		.timestamp = 1614092425,
	};
	t0 = now_ms();
	build(&in, &out);
	print_message("secure 2711 payload built in %.0f ms\n", now_ms() - t0);
	th_sha256_hex(out.image, out.image_len, hex);
	assert_string_equal(hex, "62885cb17cf29c4acff66dd590d8aca30ca16194a637c41dbdd708777fa60b76");
	payload_eeprom_out_free(&out);
	free(cfg);
}

/* fde-only / naked never sign, even with a key configured (peer bug #319). */
static void test_plain_never_signed(void **state)
{
	struct art_err err = { "" };
	struct payload_eeprom_out out;
	struct eeprom ee, orig;
	struct sig_file sig;
	const uint8_t *p, *q;
	size_t len, ql;

	(void)state;
	struct payload_eeprom_in in = {
		.mode = PAYLOAD_NAKED, .chip = 2712,
		.firmware_path = FIX("pieeprom-2026-08-12.bin"), .signer = signer,
		.storage = "nvme", .boot_order_match_storage = true, .timestamp = 1700000000,
	};
	build(&in, &out);
	assert_int_equal(sig_parse((uint8_t *)out.sig, out.sig_len, &sig, &err), 0);
	assert_false(sig.has_rsa);
	assert_true(sig.has_ts);
	assert_int_equal(out.sig_len, 65 + 15);
	assert_string_equal(out.bootconf, "[all]\nBOOT_UART=1\nPOWER_OFF_ON_HALT=1\nBOOT_ORDER=0xf2416\n");
	assert_int_equal(eeprom_load_buffer(&ee, out.image, out.image_len, &err), 0);
	assert_int_equal(eeprom_load_file(&orig, FIX("pieeprom-2026-08-12.bin"), &err), 0);
	eeprom_file_get(&ee, "pubkey.bin", &p, &len);
	eeprom_file_get(&orig, "pubkey.bin", &q, &ql);
	assert_int_equal(len, ql);
	assert_memory_equal(p, q, len);
	eeprom_file_get(&ee, "bootconf.sig", &p, &len);
	eeprom_file_get(&orig, "bootconf.sig", &q, &ql);
	assert_memory_equal(p, q, len);
	eeprom_bootcode_get(&ee, &p, &len);
	eeprom_bootcode_get(&orig, &q, &ql);
	assert_int_equal(len, ql);
	assert_memory_equal(p, q, len);
	eeprom_file_get(&ee, "bootconf.txt", &p, &len);
	assert_int_equal(len, out.bootconf_len);
	assert_memory_equal(p, out.bootconf, len);
	/* only the config slot changed */
	assert_memory_equal(ee.data, orig.data, 0xA4000);
	eeprom_free(&ee);
	eeprom_free(&orig);
	payload_eeprom_out_free(&out);

	in.mode = PAYLOAD_FDE_ONLY;
	in.signer = NULL;
	build(&in, &out);
	assert_null(strstr(out.sig, "rsa2048"));
	payload_eeprom_out_free(&out);
}

static void test_guards(void **state)
{
	struct art_err err = { "" };
	struct payload_eeprom_out out;

	(void)state;
	struct payload_eeprom_in in = {
		.mode = PAYLOAD_SECURE_BOOT, .chip = 2712,
		.firmware_path = FIX("pieeprom-2026-08-04.bin"), .signer = signer,
	};
	assert_int_equal(payload_build_eeprom(&in, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "BCM2711 EEPROM image but the board is a BCM2712"));
	in.signer = NULL;
	in.firmware_path = FIX("pieeprom-2026-08-12.bin");
	assert_int_equal(payload_build_eeprom(&in, &out, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "[key]"));
	assert_null(out.image);
}

static char *prep(const char *in, enum payload_mode mode, const char *storage, int want_rc)
{
	struct art_err err = { "" };
	char *out = NULL;
	size_t len;
	int rc = payload_bootconf_prepare(in, in ? strlen(in) : 0, mode, storage, true, &out, &len,
					  &err);

	if (rc != want_rc)
		fail_msg("prepare(%s): rc %d, want %d: %s", in ? in : "(default)", rc, want_rc, err.msg);
	if (out)
		assert_int_equal(strlen(out), len);
	return out;
}

static void expect_prep(const char *in, enum payload_mode mode, const char *storage,
			const char *want)
{
	char *out = prep(in, mode, storage, 0);

	assert_string_equal(out, want);
	free(out);
}

static void test_bootconf_prepare(void **state)
{
	char big[5000];

	(void)state;
	expect_prep(NULL, PAYLOAD_SECURE_BOOT, "nvme",
		    "[all]\nBOOT_UART=1\nPOWER_OFF_ON_HALT=1\nBOOT_ORDER=0xf2416\n"
		    "ENABLE_SELF_UPDATE=0\nSIGNED_BOOT=1\n");
	expect_prep(NULL, PAYLOAD_SECURE_BOOT, "sd", payload_bootconf_secure_default);
	expect_prep(NULL, PAYLOAD_FDE_ONLY, "emmc", payload_bootconf_plain_default);
	expect_prep("BOOT_ORDER=0xf41\n", PAYLOAD_NAKED, "nvme", "BOOT_ORDER=0xf416\n");
	expect_prep("BOOT_ORDER=0xf61616\n", PAYLOAD_NAKED, "nvme", "BOOT_ORDER=0xf116\n");
	/* two BOOT_ORDER lines (e.g. per-model sections): leave them alone */
	expect_prep("[pi5]\nBOOT_ORDER=0xf461\n[cm5]\nBOOT_ORDER=0xf641\n", PAYLOAD_NAKED, "sd",
		    "[pi5]\nBOOT_ORDER=0xf461\n[cm5]\nBOOT_ORDER=0xf641\n");
	expect_prep("BOOT_ORDER=auto\n", PAYLOAD_NAKED, "nvme", "BOOT_ORDER=auto\n");
	/* secure: SIGNED_BOOT=0 dropped, =1 appended under [all], LF ensured, CRLF fixed */
	expect_prep("[all]\r\nSIGNED_BOOT=0\r\nBOOT_UART=1", PAYLOAD_SECURE_BOOT, NULL,
		    "[all]\nBOOT_UART=1\nSIGNED_BOOT=1\n");
	expect_prep("[all]\nA=1\n[pi4]\nB=2\n", PAYLOAD_SECURE_BOOT, NULL,
		    "[all]\nA=1\n[pi4]\nB=2\n[all]\nSIGNED_BOOT=1\n");
	expect_prep("SIGNED_BOOT=1\n", PAYLOAD_SECURE_BOOT, NULL, "SIGNED_BOOT=1\n");
	expect_prep("[all]\nA=1\n[pi4]\nSIGNED_BOOT=1\n", PAYLOAD_SECURE_BOOT, NULL,
		    "[all]\nA=1\n[pi4]\nSIGNED_BOOT=1\n[all]\nSIGNED_BOOT=1\n");
	free(prep("[all]\nSIGNED_BOOT=1\n", PAYLOAD_NAKED, NULL, -EINVAL));
	free(prep("[all]\nSIGNED_BOOT=1\n", PAYLOAD_FDE_ONLY, NULL, -EINVAL));
	expect_prep("SIGNED_BOOT=0\n", PAYLOAD_NAKED, NULL, "SIGNED_BOOT=0\n");
	memset(big, 'x', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = 0;
	free(prep(big, PAYLOAD_NAKED, NULL, -EFBIG));
	free(prep("A=1\rB=2\n", PAYLOAD_NAKED, NULL, -EINVAL));
	assert_int_equal(payload_boot_order_nibble("usb"), -1);
}

static void expect_recovery(struct payload_recovery_in in, const char *want, bool warn)
{
	struct art_err err = { "" };
	const char *warning;
	char *text;

	assert_int_equal(payload_recovery_config(&in, &text, &warning, &err), 0);
	assert_string_equal(text, want);
	assert_int_equal(warning != NULL, warn);
	free(text);
}

static void test_recovery_config(void **state)
{
	struct art_err err = { "" };
	const char *warning;
	char *text;

	(void)state;
	expect_recovery((struct payload_recovery_in){ .chip = 2712, .secure = true, .armed = true,
						      .jtag_lock = true },
			"program_pubkey=1\nprogram_jtag_lock=1\nset_reboot_order=0x3\n"
			"recovery_reboot=1\n", false);
	/* not armed: no OTP switch at all */
	expect_recovery((struct payload_recovery_in){ .chip = 2712, .secure = true,
						      .jtag_lock = true },
			"set_reboot_order=0x3\nrecovery_reboot=1\n", false);
	expect_recovery((struct payload_recovery_in){ .chip = 2711, .secure = true, .armed = true,
						      .rpiboot_gpio = 8,
						      .eeprom_write_protect = true },
			"program_pubkey=1\nprogram_rpiboot_gpio=8\neeprom_write_protect=1\n"
			"recovery_reboot=1\n", false);
	expect_recovery((struct payload_recovery_in){ .chip = 2711, .secure = true, .armed = true },
			"program_pubkey=1\nrecovery_reboot=1\n", true);
	/* plain modes: never OTP, even when armed */
	expect_recovery((struct payload_recovery_in){ .chip = 2712, .armed = true,
						      .jtag_lock = true,
						      .eeprom_write_protect = true },
			"set_reboot_order=0x3\nrecovery_reboot=1\n", false);
	assert_int_equal(payload_recovery_config(&(struct payload_recovery_in){
		.chip = 2711, .secure = true, .armed = true, .rpiboot_gpio = 3 },
		&text, &warning, &err), -EINVAL);
	assert_int_equal(payload_recovery_config(&(struct payload_recovery_in){
		.chip = 2710 }, &text, &warning, &err), -EINVAL);
}

static void test_boot_sig(void **state)
{
	struct art_err err = { "" };
	struct rsa_pubkey key;
	struct sig_file sig;
	uint8_t img[70000];
	char *text;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (uint8_t)(i * 7 + (i >> 8));
	assert_int_equal(th_write(tpath("boot.img"), img, sizeof(img)), 0);
	assert_int_equal(payload_boot_sig(signer, tpath("boot.img"), &text, &len, &err), 0);
	assert_int_equal(len, 65 + 522);
	assert_null(strstr(text, "ts:"));
	assert_int_equal(sig_parse((uint8_t *)text, len, &sig, &err), 0);
	assert_int_equal(pubkey_load_pem(FIX("example-public.pem"), &key, &err), 0);
	assert_int_equal(sig_validate(&sig, img, sizeof(img), &key, true, &err), 0);
	assert_int_equal(th_openssl_verify(dir, FIX("example-public.pem"), img, sizeof(img),
					   sig.rsa), 0);
	free(text);
	assert_int_equal(payload_boot_sig(signer, tpath("missing.img"), &text, &len, &err), -ENOENT);
}

static void test_firmware_select(void **state)
{
	struct art_err err = { "" };
	char *path = NULL, fwdir[600];

	(void)state;
	snprintf(fwdir, sizeof(fwdir), "%s/fw", dir);
	assert_int_equal(firmware_select(NULL, fwdir, 2711, NULL, &path, &err), 0);
	assert_non_null(strstr(path, "pieeprom-2026-08-04.bin"));
	free(path);
	/* newest name of the right size wins; the 4 KiB 2101 file and .bak are skipped */
	assert_int_equal(firmware_select(NULL, fwdir, 2712, NULL, &path, &err), 0);
	assert_non_null(strstr(path, "pieeprom-2099-01-01.bin"));
	free(path);
	assert_int_equal(firmware_select(NULL, fwdir, 2712,
		"faf29252673a5d699a774a1953b95e4d8d714dd39b676e9db89a6208b14fe326", &path, &err), 0);
	free(path);
	assert_int_equal(firmware_select(NULL, fwdir, 2712,
		"0000000000000000000000000000000000000000000000000000000000000000", &path, &err),
		-EBADMSG);
	assert_non_null(strstr(err.msg, "faf29252"));
	assert_null(path);
	/* a given file for the wrong chip: the family mismatch guard */
	assert_int_equal(firmware_select(FIX("pieeprom-2026-08-12.bin"), NULL, 2711, NULL, &path,
					 &err), -EINVAL);
	assert_non_null(strstr(err.msg, "BCM2712 EEPROM image but the board is a BCM2711"));
	/* %chip% expands */
	snprintf(fwdir, sizeof(fwdir), "%s/no-%%chip%%", dir);
	assert_int_equal(firmware_select(NULL, fwdir, 2712, NULL, &path, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no-2712"));
}

static void test_build_timestamp(void **state)
{
	struct art_err err = { "" };
	struct payload_eeprom_out out;
	uint8_t *img, *at;
	size_t len;
	uint32_t ts = 0;

	(void)state;
	img = th_read(FIX("pieeprom-2026-08-04.bin"), &len);
	assert_int_equal(firmware_build_timestamp(img, len, &ts), 0);
	assert_int_equal(ts, 1785847093);
	/* an image from before secure boot existed is refused for secure boot only */
	at = memmem(img, len, "BUILD_TIMESTAMP=1785847093", 26);
	assert_non_null(at);
	memcpy(at + 16, "1500000000", 10);
	assert_int_equal(th_write(tpath("old.bin"), img, len), 0);
	struct payload_eeprom_in in = {
		.mode = PAYLOAD_SECURE_BOOT, .chip = 2711, .firmware_path = tpath("old.bin"),
		.signer = signer,
	};
	assert_int_equal(payload_build_eeprom(&in, &out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "too old for secure boot"));
	in.mode = PAYLOAD_FDE_ONLY;
	assert_int_equal(payload_build_eeprom(&in, &out, &err), 0);
	payload_eeprom_out_free(&out);
	free(img);
	img = th_read(FIX("pieeprom-2026-08-12.bin"), &len);
	assert_int_equal(firmware_build_timestamp(img, len, &ts), 0);
	assert_int_equal(ts, 1786493216);
	assert_int_equal(firmware_build_timestamp(img, 1000, &ts), -ENOENT);
	free(img);
	assert_true(payload_eeprom_needs_otp(2712, PAYLOAD_SECURE_BOOT));
	assert_false(payload_eeprom_needs_otp(2711, PAYLOAD_SECURE_BOOT));
	assert_false(payload_eeprom_needs_otp(2712, PAYLOAD_NAKED));
}

static void test_counter_sign_recovery(void **state)
{
	struct art_err err = { "" };
	struct bootcode_block blk;
	uint8_t *out;
	size_t len;

	(void)state;
	assert_int_equal(payload_counter_sign_file(signer, FIX("firmware-2712/recovery.bin"),
						   tpath("out/bootcode5.bin"), &err), 0);
	out = th_read(tpath("out/bootcode5.bin"), &len);
	assert_int_equal(len, 105952);	/* spec §4.1: 105420 → 105952 */
	assert_int_equal(bootcode_outer_block(out, len, &blk), 0);
	assert_int_equal(blk.offset, 105420);
	assert_int_equal(blk.keynum, 16);
	assert_int_equal(th_openssl_verify(dir, FIX("example-public.pem"), out, len - 520, blk.sig), 0);
	free(out);
	assert_int_equal(payload_counter_sign_file(signer, FIX("firmware-2711/recovery.bin"),
						   tpath("out/bootcode4.bin"), &err), -EINVAL);
	assert_non_null(strstr(err.msg, "firmware-2711/recovery.bin"));
	assert_int_equal(access(tpath("out/bootcode4.bin"), F_OK), -1);
}

static void test_otp_rows(void **state)
{
	static const uint32_t want[8] = { 0x3aa65182, 0xd8e9de2e, 0x3ed610f7, 0x39d6a59d,
					  0xce294906, 0x8923a215, 0xac89a186, 0xee3ccd6f };
	struct art_err err = { "" };
	struct rsa_pubkey key;
	uint32_t rows[8];

	(void)state;
	assert_int_equal(pubkey_load_pem(FIX("example-public.pem"), &key, &err), 0);
	pubkey_otp_rows(&key, rows);
	assert_memory_equal(rows, want, sizeof(want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secure_2712),
		cmocka_unit_test(test_secure_2711),
		cmocka_unit_test(test_plain_never_signed),
		cmocka_unit_test(test_guards),
		cmocka_unit_test(test_bootconf_prepare),
		cmocka_unit_test(test_recovery_config),
		cmocka_unit_test(test_boot_sig),
		cmocka_unit_test(test_firmware_select),
		cmocka_unit_test(test_build_timestamp),
		cmocka_unit_test(test_counter_sign_recovery),
		cmocka_unit_test(test_otp_rows),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
