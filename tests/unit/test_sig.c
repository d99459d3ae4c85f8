/* test_sig: .sig parsing, formatting and validation (spec §2, §8 V2-V4). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "artefacts/sig.h"
#include "test_sign_helpers.h"

static struct rsa_pubkey example_key(void)
{
	struct art_err err = { "" };
	struct rsa_pubkey key;

	if (pubkey_load_pem(FIX("example-public.pem"), &key, &err) < 0)
		fail_msg("%s", err.msg);
	return key;
}

static void test_bootconf_sig_verifies(void **state)
{
	struct rsa_pubkey key = example_key();
	struct art_err err = { "" };
	struct sig_file sig;
	uint8_t *cfg, *txt;
	size_t cl, tl;
	char hex[65];

	(void)state;
	cfg = th_read(FIX("bootconf.txt"), &cl);
	txt = th_read(FIX("bootconf.sig"), &tl);
	assert_int_equal(sig_parse(txt, tl, &sig, &err), 0);
	assert_true(sig.has_ts);
	assert_int_equal(sig.ts, 1614092425);
	assert_true(sig.has_rsa);
	assert_int_equal(sig.target_soc, 0);
	hex_encode(sig.sha256, 32, hex);
	assert_string_equal(hex, "b5b917dc53a59c23035a89d4c58606211a07d4fb6e16bd00d74457a93ea5a264");
	assert_int_equal(sig_validate(&sig, cfg, cl, &key, true, &err), 0);

	/* V4: flip a config byte → hash mismatch; flip a signature byte → RSA fail. */
	cfg[10] ^= 1;
	assert_int_equal(sig_validate(&sig, cfg, cl, &key, true, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "sha256"));
	cfg[10] ^= 1;
	sig.rsa[100] ^= 0x10;
	assert_int_equal(sig_validate(&sig, cfg, cl, &key, true, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "does not verify"));
	free(cfg);
	free(txt);
}

/* V3: boot.sig's signature verifies over its line-1 digest (boot.img absent). */
static void test_boot_sig_digest(void **state)
{
	struct rsa_pubkey key = example_key();
	struct art_err err = { "" };
	struct sig_file sig;
	uint8_t *txt;
	size_t tl;
	char hex[65];

	(void)state;
	txt = th_read(FIX("boot.sig"), &tl);
	assert_int_equal(sig_parse(txt, tl, &sig, &err), 0);
	hex_encode(sig.sha256, 32, hex);
	assert_string_equal(hex, "902be6c484ad71bb9f88b2fce51a2baf01efcb031c9daa0557d3b722c3951959");
	assert_int_equal(sig.ts, 1734010524);
	assert_int_equal(pubkey_verify_hash(&key, sig.sha256, sig.rsa), 0);
	sig.sha256[0] ^= 1;
	assert_int_equal(pubkey_verify_hash(&key, sig.sha256, sig.rsa), -EBADMSG);
	free(txt);
}

/* Formatting a parsed fixture gives the fixture's bytes back. */
static void test_format_roundtrip(void **state)
{
	static const char *files[] = { FIX("bootconf.sig"), FIX("boot.sig") };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct art_err err = { "" };
		struct sig_file sig;
		uint8_t *txt;
		char *out;
		size_t tl, ol;

		txt = th_read(files[i], &tl);
		assert_int_equal(tl, 602);
		assert_int_equal(sig_parse(txt, tl, &sig, &err), 0);
		assert_int_equal(sig_format(&sig, &out, &ol), 0);
		assert_int_equal(ol, tl);
		assert_memory_equal(out, txt, tl);
		free(out);
		free(txt);
	}
}

static void test_format_variants(void **state)
{
	struct sig_file sig = { .has_ts = false }, back;
	struct art_err err = { "" };
	char *out;
	size_t ol;

	(void)state;
	memset(sig.sha256, 0xab, 32);
	assert_int_equal(sig_format(&sig, &out, &ol), 0);
	assert_int_equal(ol, 65);
	free(out);
	sig.target_soc = 2712;
	sig.has_ts = true;
	sig.ts = 1700000000;
	assert_int_equal(sig_format(&sig, &out, &ol), 0);
	assert_string_equal(out + 65, "ts: 1700000000\ntarget-soc: 2712\n");
	assert_int_equal(sig_parse((uint8_t *)out, ol, &back, &err), 0);
	assert_int_equal(back.target_soc, 2712);
	assert_false(back.has_rsa);
	free(out);
	/* boot.sig as the peer writes it: no ts line */
	sig.has_ts = false;
	sig.target_soc = 0;
	sig.has_rsa = true;
	memset(sig.rsa, 0x5a, sizeof(sig.rsa));
	assert_int_equal(sig_format(&sig, &out, &ol), 0);
	assert_int_equal(ol, 65 + 9 + 512 + 1);
	assert_memory_equal(out + 65, "rsa2048: 5a5a", 13);
	assert_int_equal(sig_parse((uint8_t *)out, ol, &back, &err), 0);
	assert_true(back.has_rsa && !back.has_ts);
	free(out);
}

static int parse_str(const char *s, struct art_err *err)
{
	struct sig_file sig;

	return sig_parse((const uint8_t *)s, strlen(s), &sig, err);
}

static void test_parse_rejects(void **state)
{
	static const char h[] = "b5b917dc53a59c23035a89d4c58606211a07d4fb6e16bd00d74457a93ea5a264\n";
	struct art_err err = { "" };
	char buf[2048], rsa[513];
	uint8_t *txt;
	size_t tl;

	(void)state;
	memset(rsa, 'a', 512);
	rsa[512] = 0;
	assert_int_equal(parse_str("", &err), -EINVAL);
	assert_int_equal(parse_str("b5b917dc\n", &err), -EINVAL);
	snprintf(buf, sizeof(buf), "%sts: 1614092425\nrsa2048: \n", h);	/* issue #337 */
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "512"));
	snprintf(buf, sizeof(buf), "%srsa2048: %.510s\n", h, rsa);		/* V4: 510 chars */
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	snprintf(buf, sizeof(buf), "%srsa2048: %sa\n", h, rsa);		/* 513 */
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	rsa[7] = 'g';
	snprintf(buf, sizeof(buf), "%srsa2048: %s\n", h, rsa);
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	rsa[7] = 'A';	/* upper case is accepted (the peer's checker accepts it) */
	snprintf(buf, sizeof(buf), "%srsa2048: %s\n", h, rsa);
	assert_int_equal(parse_str(buf, &err), 0);
	snprintf(buf, sizeof(buf), "%srsa2048: %s", h, rsa);			/* no final LF */
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line 2"));
	snprintf(buf, sizeof(buf), "%srsa2048: %s\r\n", h, rsa);		/* CR */
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	snprintf(buf, sizeof(buf), "%sts: 99999999999\n", h);
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	snprintf(buf, sizeof(buf), "%sts: 4294967296\n", h);
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	snprintf(buf, sizeof(buf), "%sts: 1\nts: 2\n", h);
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	snprintf(buf, sizeof(buf), "%starget-soc: 2710\n", h);
	assert_int_equal(parse_str(buf, &err), -EINVAL);
	snprintf(buf, sizeof(buf), "%sfuture-key: whatever\n", h);		/* unknown: skipped */
	assert_int_equal(parse_str(buf, &err), 0);
	snprintf(buf, sizeof(buf), "%sgarbage\n", h);
	assert_int_equal(parse_str(buf, &err), -EINVAL);

	/* a NUL inside a real file */
	txt = th_read(FIX("bootconf.sig"), &tl);
	txt[100] = 0;
	assert_int_equal(sig_parse(txt, tl, &(struct sig_file){ 0 }, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "offset 100"));
	free(txt);
}

static void test_unsigned_rules(void **state)
{
	struct art_err err = { "" };
	struct sig_file sig = { 0 };
	static const uint8_t data[] = "data";

	(void)state;
	mbedtls_sha256_ret(data, 4, sig.sha256, 0);
	assert_int_equal(sig_validate(&sig, data, 4, NULL, false, &err), 0);
	assert_int_equal(sig_validate(&sig, data, 4, NULL, true, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not signed"));
}

static void test_load(void **state)
{
	struct art_err err = { "" };
	struct sig_file sig;

	(void)state;
	assert_int_equal(sig_load(FIX("bootconf.sig"), &sig, &err), 0);
	assert_int_equal(sig_load(FIX("pieeprom-2026-08-04.bin"), &sig, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "pieeprom-2026-08-04.bin"));
	assert_int_equal(sig_load("/nonexistent/x.sig", &sig, &err), -ENOENT);
}

static void test_timestamp_env(void **state)
{
	(void)state;
	setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
	assert_int_equal(sig_timestamp_now(), 1700000000);
	unsetenv("SOURCE_DATE_EPOCH");
	assert_true(sig_timestamp_now() > 1700000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bootconf_sig_verifies),
		cmocka_unit_test(test_boot_sig_digest),
		cmocka_unit_test(test_format_roundtrip),
		cmocka_unit_test(test_format_variants),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_unsigned_rules),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_timestamp_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
