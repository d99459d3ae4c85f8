/* test_eeprom: the EEPROM image parser/editor against the two real images
 * (spec secure-boot-artefacts.md §1.11 worked example, §8 V5/V6/V11). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "artefacts/eeprom.h"
#include "artefacts/pubkey.h"
#include "test_sign_helpers.h"

#define IMG2711 FIX("pieeprom-2026-08-04.bin")
#define IMG2712 FIX("pieeprom-2026-08-12.bin")

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void load(struct eeprom *ee, const char *path)
{
	struct art_err err = { "" };
	int rc = eeprom_load_file(ee, path, &err);

	if (rc)
		fail_msg("%s: %s", path, err.msg);
}

static const struct eeprom_section *by_offset(const struct eeprom *ee, uint32_t off)
{
	for (size_t i = 0; i < ee->nsec; i++)
		if (ee->sec[i].offset == off)
			return &ee->sec[i];
	fail_msg("no section at 0x%06x", off);
	return NULL;
}

static void expect_sec(const struct eeprom *ee, uint32_t off, uint32_t magic, uint32_t len,
		       const char *name)
{
	const struct eeprom_section *s = by_offset(ee, off);

	assert_int_equal(s->magic, magic);
	assert_int_equal(s->length, len);
	assert_string_equal(s->name, name);
}

static void test_layout_2711(void **state)
{
	struct eeprom ee;
	const uint8_t *p;
	size_t len;

	(void)state;
	load(&ee, IMG2711);
	assert_int_equal(ee.chip, 2711);
	assert_false(ee.ab);
	assert_int_equal(ee.nsec, 26);
	expect_sec(&ee, 0x000000, EEPROM_MAGIC_BOOTCODE, 73120, "");
	expect_sec(&ee, 0x011DA8, EEPROM_MAGIC_PAD, 524, "");
	expect_sec(&ee, 0x011FC0, EEPROM_MAGIC_RESOURCE_LZ4, 212581, "bootmain");
	expect_sec(&ee, 0x045E30, EEPROM_MAGIC_RESOURCE_LZ4, 12706, "memsys00.bin");
	expect_sec(&ee, 0x05C278, EEPROM_MAGIC_RESOURCE_LZ4, 10488, "memsys08.bin");
	expect_sec(&ee, 0x05EB78, EEPROM_MAGIC_RESOURCE_LZ4, 1295, "mcb.bin");
	expect_sec(&ee, 0x05F090, EEPROM_MAGIC_RESOURCE, 7028, "vl805hub.bin");
	expect_sec(&ee, 0x060C10, EEPROM_MAGIC_RESOURCE, 60451, "vl805mcu.bin");
	expect_sec(&ee, 0x071E20, EEPROM_MAGIC_FILE, 24, "updatetime");
	expect_sec(&ee, 0x071E40, EEPROM_MAGIC_PAD, 184, "");
	expect_sec(&ee, 0x071F00, EEPROM_MAGIC_FILE, 528, "pubkey.bin");
	expect_sec(&ee, 0x072200, EEPROM_MAGIC_FILE, 2064, "cacert.der");
	expect_sec(&ee, 0x072B00, EEPROM_MAGIC_FILE, 1040, "bootconf.sig");
	expect_sec(&ee, 0x073000, EEPROM_MAGIC_FILE, 95, "bootconf.txt");
	assert_int_equal(be32(ee.data + 0x073068), 0xFFFFFFFF);	/* end of chain */

	assert_int_equal(eeprom_file_get(&ee, "bootconf.txt", &p, &len), 0);
	assert_ptr_equal(p, ee.data + 0x073018);
	assert_int_equal(len, 79);
	assert_memory_equal(p, "[all]\n", 6);
	assert_int_equal(p[len - 1], '\n');
	assert_int_equal(eeprom_file_get(&ee, "pubkey.bin", &p, &len), 0);
	assert_int_equal(len, 512);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(eeprom_bootcode_get(&ee, &p, &len), 0);
	assert_ptr_equal(p, ee.data + 8);
	assert_int_equal(len, 73120);
	assert_int_equal(eeprom_file_get(&ee, "nosuchfile", &p, &len), -ENOENT);
	eeprom_free(&ee);
}

static void test_layout_2712(void **state)
{
	struct eeprom ee;
	const uint8_t *p;
	size_t len;
	char hex[65];

	(void)state;
	load(&ee, IMG2712);
	assert_int_equal(ee.chip, 2712);
	assert_true(ee.ab);
	expect_sec(&ee, 0x000000, EEPROM_MAGIC_BOOTCODE, 25984, "");
	expect_sec(&ee, 0x006588, EEPROM_MAGIC_PAD, 524, "");
	expect_sec(&ee, 0x0067A0, EEPROM_MAGIC_FILE, 24, "updatetime");
	expect_sec(&ee, 0x0067C0, EEPROM_MAGIC_PAD, 38968, "");
	expect_sec(&ee, 0x010000, EEPROM_MAGIC_FILE, 78372, "bootsys");
	expect_sec(&ee, 0x023230, EEPROM_MAGIC_PAD, 524, "");
	expect_sec(&ee, 0x023448, EEPROM_MAGIC_RESOURCE_LZ4, 402251, "bootmain");
	expect_sec(&ee, 0x099F88, EEPROM_MAGIC_RESOURCE_LZ4, 14001, "rp1c0fw1.bin");
	expect_sec(&ee, 0x0A1F38, EEPROM_MAGIC_FILE, 24, "updatetime");
	expect_sec(&ee, 0x0A2000, EEPROM_MAGIC_FILE, 528, "pubkey.bin");
	expect_sec(&ee, 0x0A2C00, EEPROM_MAGIC_FILE, 1040, "bootconf.sig");
	expect_sec(&ee, 0x0A3018, EEPROM_MAGIC_PAD, 4064, "");
	expect_sec(&ee, 0x0A4000, EEPROM_MAGIC_FILE, 78, "bootconf.txt");
	expect_sec(&ee, 0x0A4058, EEPROM_MAGIC_PAD, 405408, "");
	expect_sec(&ee, 0x107000, EEPROM_MAGIC_PAD, 1011704, "");
	assert_int_equal(ee.sec[ee.nsec - 1].offset, 0x107000);
	assert_int_equal(be32(ee.data + 0x1FE000), 0xFFFFFFFF);

	assert_int_equal(eeprom_file_get(&ee, "bootconf.txt", &p, &len), 0);
	assert_ptr_equal(p, ee.data + 0x0A4018);
	assert_int_equal(len, 62);
	assert_memory_equal(p, "[all]\n", 6);
	/* First match in chain order: the read-only copy. */
	assert_int_equal(eeprom_file_get(&ee, "updatetime", &p, &len), 0);
	assert_ptr_equal(p, ee.data + 0x0067B8);
	assert_int_equal(eeprom_bootcode_get(&ee, &p, &len), 0);
	th_sha256_hex(p, len, hex);
	assert_string_equal(hex, "0e4abfbe67018fb5917be5f1846c1c5f6a0a778dcd00abd882925b3a9debd77f");
	assert_int_equal(eeprom_file_get(&ee, "bootsys", &p, &len), 0);
	assert_int_equal(len, 78356);
	th_sha256_hex(p, len, hex);
	assert_string_equal(hex, "bce2e454cc80d41d152afc9928421b522ccd0977d92869eef99040f02f7dba34");
	eeprom_free(&ee);
}

static void roundtrip(const char *img)
{
	struct eeprom ee;
	struct art_err err = { "" };
	char *dir = th_tmpdir(), *out = NULL;
	uint8_t *a, *b;
	size_t al, bl;

	assert_non_null(dir);
	assert_true(asprintf(&out, "%s/out.bin", dir) > 0);
	load(&ee, img);
	assert_int_equal(eeprom_save(&ee, out, &err), 0);
	a = th_read(img, &al);
	b = th_read(out, &bl);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(al, bl);
	assert_memory_equal(a, b, al);
	free(a);
	free(b);
	free(out);
	eeprom_free(&ee);
	th_rmrf(dir);
}

static void test_roundtrip(void **state)
{
	(void)state;
	roundtrip(IMG2711);
	roundtrip(IMG2712);
}

/* -c bootconf.txt -d bootconf.sig -p example-public.pem (spec V5, V6). */
static void embed_fixtures(struct eeprom *ee)
{
	struct art_err err = { "" };
	struct rsa_pubkey key;
	uint8_t bin[PUBKEY_BIN_LEN], *cfg, *sig;
	size_t cl, sl;

	cfg = th_read(FIX("bootconf.txt"), &cl);
	sig = th_read(FIX("bootconf.sig"), &sl);
	assert_non_null(cfg);
	assert_non_null(sig);
	assert_int_equal(pubkey_load_pem(FIX("example-public.pem"), &key, &err), 0);
	pubkey_to_bin(&key, bin);
	assert_int_equal(eeprom_file_replace(ee, "bootconf.txt", cfg, cl, &err), 0);
	assert_int_equal(eeprom_file_replace(ee, "bootconf.sig", sig, sl, &err), 0);
	assert_int_equal(eeprom_file_replace(ee, "pubkey.bin", bin, sizeof(bin), &err), 0);
	free(cfg);
	free(sig);
}

static void test_embed_2711(void **state)
{
	struct eeprom ee;
	char hex[65];

	(void)state;
	load(&ee, IMG2711);
	embed_fixtures(&ee);
	th_sha256_hex(ee.data, ee.size, hex);
	assert_string_equal(hex, "62885cb17cf29c4acff66dd590d8aca30ca16194a637c41dbdd708777fa60b76");
	/* pubkey.bin: length 280 + PAD 472; key bytes little-endian. */
	assert_int_equal(be32(ee.data + 0x71F04), 280);
	assert_memory_equal(ee.data + 0x71F18, "\xdd\xf6\x8d\xf2\x4d\xd7\xf8\xb9", 8);
	assert_memory_equal(ee.data + 0x71F18 + 256, "\x01\x00\x01\x00\x00\x00\x00\x00", 8);
	assert_int_equal(be32(ee.data + 0x72020), EEPROM_MAGIC_PAD);
	assert_int_equal(be32(ee.data + 0x72024), 472);
	/* bootconf.sig: 618 + PAD 640 (2711). */
	assert_int_equal(be32(ee.data + 0x72B04), 618);
	assert_int_equal(be32(ee.data + 0x72B00 + 24 + 602 + 6), EEPROM_MAGIC_PAD);
	assert_int_equal(be32(ee.data + 0x72B00 + 24 + 602 + 10), 640);
	/* bootconf.txt: 150, last section, 0xFF after it. */
	assert_int_equal(be32(ee.data + 0x73004), 150);
	assert_memory_equal(ee.data + 0x73018, "[all]\nBOOT_UART=1\n", 18);
	assert_int_equal(be32(ee.data + 0x730A0), 0xFFFFFFFF);
	assert_int_equal(ee.sec[ee.nsec - 1].offset, 0x73000);
	eeprom_free(&ee);
}

static void test_embed_2712(void **state)
{
	struct eeprom ee;
	char hex[65];

	(void)state;
	load(&ee, IMG2712);
	embed_fixtures(&ee);
	th_sha256_hex(ee.data, ee.size, hex);
	assert_string_equal(hex, "695626d4ece808cd0fecc72d21f8fd1857e3ba71a806afc51bb00b45f6c4d392");
	assert_int_equal(be32(ee.data + 0xA2004), 280);
	assert_int_equal(be32(ee.data + 0xA2C04), 618);
	assert_int_equal(be32(ee.data + 0xA2C00 + 632 + 4), 4480);
	assert_int_equal(be32(ee.data + 0xA4004), 150);
	/* Not last: a PAD fills partition A up to 0x107000. */
	assert_int_equal(be32(ee.data + 0xA40A0), EEPROM_MAGIC_PAD);
	assert_int_equal(be32(ee.data + 0xA40A4), 0x107000 - 0xA40A0 - 8);
	eeprom_free(&ee);
}

static void test_timestamp(void **state)
{
	static const uint8_t want[8] = { 0xff, 0x0e, 0xac, 0x9a, 0x00, 0xf1, 0x53, 0x65 };
	struct art_err err = { "" };
	struct eeprom ee;
	uint8_t *orig;
	size_t len;

	(void)state;
	load(&ee, IMG2711);
	assert_int_equal(eeprom_set_timestamp(&ee, 1700000000, &err), 0);
	assert_memory_equal(ee.data + 0x7FFF8, want, 8);
	orig = th_read(IMG2711, &len);
	assert_memory_equal(ee.data, orig, 0x7FFF8);
	free(orig);
	eeprom_free(&ee);

	load(&ee, IMG2712);
	assert_int_equal(eeprom_set_timestamp(&ee, 1700000000, &err), 0);
	assert_memory_equal(ee.data + 0x67B8, want, 8);
	assert_memory_equal(ee.data + 0xA1F50, want, 8);
	orig = th_read(IMG2712, &len);
	assert_memory_equal(ee.data, orig, 0x67B8);
	assert_memory_equal(ee.data + 0x67C0, orig + 0x67C0, 0xA1F50 - 0x67C0);
	assert_memory_equal(ee.data + 0xA1F58, orig + 0xA1F58, len - 0xA1F58);
	free(orig);
	eeprom_free(&ee);
}

static void test_limits(void **state)
{
	struct art_err err = { "" };
	struct eeprom ee;
	uint8_t big[4077];

	(void)state;
	memset(big, 'A', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	load(&ee, IMG2711);
	assert_int_equal(eeprom_file_replace(&ee, "bootconf.txt", big, 4077, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "4076"));
	assert_int_equal(eeprom_file_replace(&ee, "bootconf.txt", big + 1, 4076, &err), 0);
	assert_int_equal(be32(ee.data + 0x73004), 4076 + 16);
	/* pubkey.bin slot holds 744 bytes */
	assert_int_equal(eeprom_file_replace(&ee, "pubkey.bin", big, 745, &err), -ENOSPC);
	assert_int_equal(eeprom_file_replace(&ee, "pubkey.bin", big, 744, &err), 0);
	assert_int_equal(be32(ee.data + 0x71F00 + 24 + 744), EEPROM_MAGIC_FILE); /* cacert.der */
	assert_int_equal(eeprom_file_replace(&ee, "bootsys", big, 10, &err), -ENOENT);
	/* 2711: 128K must be reserved for bootcode. */
	assert_int_equal(eeprom_bootcode_replace(&ee, big, 100, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "128K"));
	eeprom_free(&ee);
}

static void test_insert(void **state)
{
	static const uint8_t payload[] = "hello eeprom\n";
	struct art_err err = { "" };
	struct eeprom ee;
	const uint8_t *p;
	size_t len;

	(void)state;
	load(&ee, IMG2711);
	assert_int_equal(eeprom_file_put(&ee, "extra.txt", payload, sizeof(payload) - 1, &err), 0);
	expect_sec(&ee, 0x073068, EEPROM_MAGIC_FILE, 16 + 13, "extra.txt");
	assert_int_equal(eeprom_file_get(&ee, "extra.txt", &p, &len), 0);
	assert_int_equal(len, 13);
	assert_memory_equal(p, payload, 13);
	/* bootconf.txt now has a successor: its PAD is written when it is replaced */
	assert_int_equal(eeprom_file_replace(&ee, "bootconf.txt", payload, 13, &err), 0);
	assert_int_equal(be32(ee.data + 0x73028), EEPROM_MAGIC_PAD);
	assert_int_equal(eeprom_file_get(&ee, "extra.txt", &p, &len), 0);
	assert_memory_equal(p, payload, 13);
	assert_int_equal(eeprom_file_put(&ee, "thirteenchars", payload, 13, &err), -EINVAL);
	eeprom_free(&ee);

	load(&ee, IMG2712);
	assert_int_equal(eeprom_file_put(&ee, "extra.txt", payload, 13, &err), 0);
	expect_sec(&ee, 0x0A4058, EEPROM_MAGIC_FILE, 29, "extra.txt");
	assert_int_equal(be32(ee.data + 0x0A4080), EEPROM_MAGIC_PAD);
	assert_int_equal(be32(ee.data + 0x0A4084), 0x107000 - 0x0A4080 - 8);
	eeprom_free(&ee);
}

static void test_malformed(void **state)
{
	struct art_err err = { "" };
	struct eeprom ee;
	uint8_t *img;
	size_t len;

	(void)state;
	img = th_read(IMG2711, &len);
	assert_non_null(img);
	assert_int_equal(eeprom_load_buffer(&ee, img, len - 1, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "524287 bytes"));

	img[0x011FC0] ^= 0x40;	/* bootmain magic */
	assert_int_equal(eeprom_load_buffer(&ee, img, len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "0x011fc0"));
	img[0x011FC0] ^= 0x40;

	img[0x073004] = 0x7F;	/* bootconf.txt length past the end */
	assert_int_equal(eeprom_load_buffer(&ee, img, len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "0x073000"));
	assert_non_null(strstr(err.msg, "past the end"));
	img[0x073004] = 0;

	memset(img + 0x071E24, 0, 4);	/* updatetime length 0: no room for its name */
	assert_int_equal(eeprom_load_buffer(&ee, img, len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "0x071e20"));
	img[0x071E27] = 24;

	memset(img, 0xFF, 8);		/* erased */
	assert_int_equal(eeprom_load_buffer(&ee, img, len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "offset 0"));
	free(img);
}

static void test_ab_detection(void **state)
{
	uint8_t *img;
	size_t len;

	(void)state;
	img = th_read(IMG2712, &len);
	assert_true(eeprom_is_ab(img, len));
	img[0x10008] = 'B';
	assert_false(eeprom_is_ab(img, len));
	free(img);
	img = th_read(IMG2711, &len);
	assert_false(eeprom_is_ab(img, len));
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_2711),
		cmocka_unit_test(test_layout_2712),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_embed_2711),
		cmocka_unit_test(test_embed_2712),
		cmocka_unit_test(test_timestamp),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_insert),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_ab_detection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
