/* test_bootcode: BCM2712 counter-signing and signature blocks (spec §4,
 * §8 V7, V8, V9, V12, V13), with openssl verifying the customer signature. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "artefacts/bootcode.h"
#include "artefacts/eeprom.h"
#include "test_sign_helpers.h"

static char *dir;
static struct signer *signer;
static struct eeprom img2712;

static int setup(void **state)
{
	struct art_err err = { "" };
	char cmd[2048], key[512];

	(void)state;
	dir = th_tmpdir();
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 600 '%s'", FIX("example-private.pem"),
		 key, key);
	if (!dir || th_sh(cmd) != 0 || signer_open_pem(key, &signer, &err) < 0 ||
	    eeprom_load_file(&img2712, FIX("pieeprom-2026-08-12.bin"), &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	signer_close(signer);
	eeprom_free(&img2712);
	th_rmrf(dir);
	return 0;
}

static void hexeq(const void *data, size_t len, const char *want)
{
	char hex[65];

	th_sha256_hex(data, len, hex);
	assert_string_equal(hex, want);
}

static void check_counter_signed(const uint8_t *in, size_t len, const char *want_sha,
				 const char *want_region, const char *sig_prefix)
{
	struct art_err err = { "" };
	struct bootcode_block blk;
	uint8_t *out;
	size_t outlen;
	char hex[17];

	assert_int_equal(bootcode_counter_sign(signer, in, len, 0, &out, &outlen, &err), 0);
	assert_int_equal(outlen, len + 532);
	assert_memory_equal(out, in, len);
	hexeq(out, outlen, want_sha);
	assert_int_equal(bootcode_outer_block(out, outlen, &blk), 0);
	assert_int_equal(blk.offset, len);
	assert_int_equal(blk.keynum, 16);
	assert_int_equal(blk.version, 0);
	hexeq(out, len + 12, want_region);
	hex_encode(blk.sig, 8, hex);
	assert_string_equal(hex, sig_prefix);
	/* embedded key hashes to the OTP value V1 */
	hexeq(blk.pubkey_bin, PUBKEY_BIN_LEN,
	      "8251a63a2edee9d8f710d63e9da5d639064929ce15a2238986a189ac6fcd3cee");
	assert_int_equal(bootcode_block_verify(out, &blk), 0);
	assert_int_equal(th_openssl_verify(dir, FIX("example-public.pem"), out, len + 12, blk.sig), 0);
	/* counter-signing twice is refused */
	{
		uint8_t *twice = NULL;
		size_t tl;

		assert_int_equal(bootcode_counter_sign(signer, out, outlen, 0, &twice, &tl, &err),
				 -EALREADY);
		assert_null(twice);
	}
	free(out);
}

static void test_v7_bootcode(void **state)
{
	const uint8_t *bc;
	size_t len;

	(void)state;
	eeprom_bootcode_get(&img2712, &bc, &len);
	assert_int_equal(len, 25984);
	check_counter_signed(bc, len,
			     "b0e1baa85fde0c0c6158493a84e9e5ab36564eaee00bd568301f0b514b94500a",
			     "30a2f52c8ad2adcc2878028c7da6eed9f061b1244241e6918e6d3274f1ca7773",
			     "7bc5981db21a5897");
}

static void test_v8_bootsys(void **state)
{
	const uint8_t *bs;
	size_t len;

	(void)state;
	assert_int_equal(eeprom_file_get(&img2712, "bootsys", &bs, &len), 0);
	check_counter_signed(bs, len,
			     "d17ebc6dfd587c14644426f91011af856e127010066a50d2874303784723b0c9",
			     "2d5a18b6331971ccf30b6115999d15b9c002e6a546c40270517f3d067d6d6e3d",
			     "316edff9707905e4");
}

/* V12: Raspberry Pi's own blocks (keynum 0, version 1) verify with their key. */
static void test_v12_rpi_blocks(void **state)
{
	struct bootcode_block blk;
	const uint8_t *p;
	uint8_t *rec;
	size_t len;

	(void)state;
	eeprom_bootcode_get(&img2712, &p, &len);
	assert_int_equal(bootcode_outer_block(p, len, &blk), 0);
	assert_int_equal(blk.offset, 25452);
	assert_int_equal(blk.keynum, 0);
	assert_int_equal(blk.version, 1);
	hexeq(blk.pubkey_bin, PUBKEY_BIN_LEN,
	      "e3345447549bda1f5416a479264be593d60f527c70d666d10ead908fd027fd27");
	hexeq(p, blk.offset + 12, "2248b0d06cfeb425f244fa69cbc6ff8b09608e2abd1aa724fd3acc40ebabb533");
	assert_int_equal(bootcode_block_verify(p, &blk), 0);
	eeprom_file_get(&img2712, "bootsys", &p, &len);
	assert_int_equal(bootcode_outer_block(p, len, &blk), 0);
	assert_int_equal(blk.offset, 77824);
	assert_int_equal(bootcode_block_verify(p, &blk), 0);
	rec = th_read(FIX("firmware-2712/recovery.bin"), &len);
	assert_non_null(rec);
	assert_int_equal(bootcode_outer_block(rec, len, &blk), 0);
	assert_int_equal(blk.offset, 104888);
	assert_int_equal(bootcode_block_verify(rec, &blk), 0);
	rec[1000] ^= 1;
	assert_int_equal(bootcode_block_verify(rec, &blk), -EBADMSG);
	free(rec);
}

/* V13: a BCM2711 stage has no 2712 block and is never counter-signed. */
static void test_v13_2711_refused(void **state)
{
	struct art_err err = { "" };
	struct bootcode_block blk;
	struct eeprom ee;
	const uint8_t *p;
	uint8_t *out = NULL;
	size_t len, outlen;

	(void)state;
	assert_int_equal(eeprom_load_file(&ee, FIX("pieeprom-2026-08-04.bin"), &err), 0);
	eeprom_bootcode_get(&ee, &p, &len);
	assert_int_equal(len, 73120);
	assert_int_equal(bootcode_outer_block(p, len, &blk), -ENOENT);
	assert_int_equal(bootcode_counter_sign(signer, p, len, 0, &out, &outlen, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "BCM2711"));
	assert_int_equal(bootcode_counter_sign(signer, p, len, 33, &out, &outlen, &err), -EINVAL);
	eeprom_free(&ee);
}

/* V9: both stages written back: the tool's bytes. */
static void test_v9_image(void **state)
{
	struct art_err err = { "" };
	struct eeprom ee;
	const uint8_t *p;
	uint8_t *bc, *bs;
	size_t len, bcl, bsl;

	(void)state;
	assert_int_equal(eeprom_load_file(&ee, FIX("pieeprom-2026-08-12.bin"), &err), 0);
	eeprom_bootcode_get(&ee, &p, &len);
	assert_int_equal(bootcode_counter_sign(signer, p, len, 0, &bc, &bcl, &err), 0);
	eeprom_file_get(&ee, "bootsys", &p, &len);
	assert_int_equal(bootcode_counter_sign(signer, p, len, 0, &bs, &bsl, &err), 0);
	assert_int_equal(eeprom_bootcode_replace(&ee, bc, bcl, &err), 0);
	assert_int_equal(eeprom_file_replace(&ee, "bootsys", bs, bsl, &err), 0);
	hexeq(ee.data, ee.size, "78273ca60eaa947f22b121b59b54aa97ca004e6271db34d4c1dd3a3b318a33ff");
	/* bootcode fills its reserved room exactly; bootsys leaves a zero-length PAD */
	assert_int_equal(ee.sec[1].offset, 0x67A0);
	assert_string_equal(ee.sec[1].name, "updatetime");
	assert_int_equal(ee.sec[4].magic, EEPROM_MAGIC_PAD);
	assert_int_equal(ee.sec[4].offset, 0x23440);
	assert_int_equal(ee.sec[4].length, 0);
	/* a bigger bootcode does not fit */
	{
		uint8_t *big = calloc(1, bcl + 8);

		assert_int_equal(eeprom_bootcode_replace(&ee, big, bcl + 8, &err), -ENOSPC);
		free(big);
	}
	free(bc);
	free(bs);
	eeprom_free(&ee);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v7_bootcode),
		cmocka_unit_test(test_v8_bootsys),
		cmocka_unit_test(test_v12_rpi_blocks),
		cmocka_unit_test(test_v13_2711_refused),
		cmocka_unit_test(test_v9_image),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
