/* Unit tests of vpi/eeprom_dev: the device-side parser and verifier against
 * the real fixtures and the vectors of secure-boot-artefacts.md §1.11 and §8. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpi/eeprom_dev.h"
#include "vpi/recovery.h"
#include "vpi_testlib.h"

static void hex32(const uint8_t h[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void test_parse_2711(void **state)
{
	size_t len, n;
	uint8_t *img = tl_slurp_fixture("pieeprom-2026-08-04.bin", &len);
	struct vpi_ee_section *s;
	const uint8_t *d;
	size_t dl;

	(void)state;
	assert_int_equal(vpi_ee_parse(img, len, &s, &n), 0);
	assert_int_equal(s[0].magic, VPI_EE_MAGIC_BOOTCODE);
	assert_int_equal(s[0].length, 73120);
	assert_int_equal(s[1].offset, 0x011DA8);
	assert_int_equal(s[1].magic, VPI_EE_MAGIC_PAD);
	assert_int_equal(s[2].offset, 0x011FC0);
	assert_string_equal(s[2].name, "bootmain");
	assert_int_equal(s[n - 1].offset, 0x073000);
	assert_string_equal(s[n - 1].name, "bootconf.txt");
	assert_int_equal(s[n - 1].length, 95);
	free(s);
	assert_int_equal(vpi_ee_file(img, len, "bootconf.txt", &d, &dl), 0);
	assert_int_equal(dl, 79);
	assert_int_equal(vpi_ee_file(img, len, "pubkey.bin", &d, &dl), 0);
	assert_int_equal(dl, 512);
	assert_false(vpi_pubkey_present(d, dl));
	assert_int_equal(vpi_ee_file(img, len, "nosuch", &d, &dl), -ENOENT);
	/* V13: RPi trailer, keynum 1; revoking key 0 changes nothing for it */
	assert_int_equal(vpi_ee_file(img, len, "bootcode.bin", &d, &dl), 0);
	assert_int_equal(vpi_bootcode2711_check(d, dl, true, NULL, 0), 0);
	/* a corrupt magic is refused */
	img[0x011FC0] ^= 0x10;
	assert_int_equal(vpi_ee_parse(img, len, &s, &n), -EBADMSG);
	free(img);
}

static void test_parse_2712(void **state)
{
	size_t len, n, dl;
	uint8_t *img = tl_slurp_fixture("pieeprom-2026-08-12.bin", &len);
	struct vpi_ee_section *s;
	const uint8_t *d;
	uint8_t zero[32] = { 0 };
	char why[160];
	bool cust = true;

	(void)state;
	assert_int_equal(vpi_ee_parse(img, len, &s, &n), 0);
	assert_int_equal(s[0].length, 25984);
	assert_int_equal(s[3].offset, 0x0067C0);
	assert_int_equal(s[4].offset, 0x010000);
	assert_string_equal(s[4].name, "bootsys");
	assert_int_equal(s[4].length, 78372);
	assert_int_equal(s[n - 1].offset, 0x107000);
	free(s);
	assert_int_equal(vpi_ee_file(img, len, "bootconf.txt", &d, &dl), 0);
	assert_int_equal(dl, 62);
	/* V12: the RPi blocks verify with ROM key 0 */
	assert_int_equal(vpi_ee_file(img, len, "bootcode.bin", &d, &dl), 0);
	assert_int_equal(vpi_bootcode2712_check(d, dl, zero, true, &cust, why, sizeof(why)), 0);
	assert_false(cust);
	assert_int_equal(vpi_ee_file(img, len, "bootsys", &d, &dl), 0);
	assert_int_equal(dl, 78356);
	assert_int_equal(vpi_bootcode2712_check(d, dl, zero, true, NULL, why, sizeof(why)), 0);
	free(img);
}

static void test_recovery_bin_blocks(void **state)
{
	size_t len;
	uint8_t *r5 = tl_slurp_fixture("firmware-2712/recovery.bin", &len);
	uint8_t zero[32] = { 0 }, pk[264], h[32], *cs;
	size_t cl;
	char why[160] = "";

	(void)state;
	assert_int_equal(len, 105420);
	assert_int_equal(vpi_bootcode2712_check(r5, len, zero, true, NULL, why, sizeof(why)), 0);
	/* one flipped byte in the signed region: refused */
	r5[1000] ^= 1;
	assert_int_equal(vpi_bootcode2712_check(r5, len, zero, true, NULL, why, sizeof(why)),
			 -EKEYREJECTED);
	assert_non_null(strstr(why, "Raspberry Pi signature"));
	r5[1000] ^= 1;
	/* V14: counter-signed refused with a zero hash, accepted with V1 */
	cs = tl_countersign(false, r5, len, &cl);
	assert_int_equal(cl, 105952);
	assert_int_equal(vpi_bootcode2712_check(cs, cl, zero, true, NULL, why, sizeof(why)),
			 -EKEYREJECTED);
	tl_pubkey_bin(false, pk);
	vpi_sha256(pk, sizeof(pk), h);
	assert_int_equal(vpi_bootcode2712_check(cs, cl, h, true, NULL, why, sizeof(why)), 0);
	/* and the plain RPi-only image is refused once the hash is burned */
	assert_int_equal(vpi_bootcode2712_check(r5, len, h, true, NULL, why, sizeof(why)),
			 -EKEYREJECTED);
	free(cs);
	free(r5);
	/* 2711 recovery.bin: trailer keynum 1 */
	r5 = tl_slurp_fixture("firmware-2711/recovery.bin", &len);
	assert_int_equal(vpi_bootcode2711_check(r5, len, true, NULL, 0), 0);
	assert_int_equal(vpi_bootcode2711_check(r5, len - 1, false, why, sizeof(why)), -EKEYREJECTED);
	free(r5);
}

static void test_pubkey_hash_v1(void **state)
{
	uint8_t pk[264], h[32];
	char hx[65];

	(void)state;
	tl_pubkey_bin(false, pk);
	assert_int_equal(pk[0], 0xdd);
	assert_int_equal(pk[256], 0x01);
	vpi_sha256(pk, sizeof(pk), h);
	hex32(h, hx);
	assert_string_equal(hx, "8251a63a2edee9d8f710d63e9da5d639064929ce15a2238986a189ac6fcd3cee");
}

static void test_sig_vectors(void **state)
{
	size_t cl, sl, bl;
	uint8_t *conf = tl_slurp_fixture("bootconf.txt", &cl);
	uint8_t *sigt = tl_slurp_fixture("bootconf.sig", &sl);
	uint8_t *bsig = tl_slurp_fixture("boot.sig", &bl);
	struct vpi_sig sig;
	uint8_t pk[264], h[32];
	char why[160], hx[65];

	(void)state;
	tl_pubkey_bin(false, pk);
	/* V2 */
	assert_int_equal(vpi_sig_parse(sigt, sl, &sig, why, sizeof(why)), 0);
	assert_true(sig.has_ts);
	assert_int_equal(sig.ts, 1614092425);
	assert_true(sig.has_rsa);
	vpi_sha256(conf, cl, h);
	assert_memory_equal(h, sig.sha256, 32);
	assert_int_equal(vpi_rsa_verify(pk, h, sig.rsa), 0);
	assert_int_equal(vpi_ee_config_int(conf, cl, "SIGNED_BOOT"), 1);
	/* V4: flipped signature byte */
	sig.rsa[7] ^= 0x40;
	assert_int_equal(vpi_rsa_verify(pk, h, sig.rsa), -EKEYREJECTED);
	/* V3: boot.sig verifies against its line-1 digest */
	assert_int_equal(vpi_sig_parse(bsig, bl, &sig, why, sizeof(why)), 0);
	hex32(sig.sha256, hx);
	assert_string_equal(hx, "902be6c484ad71bb9f88b2fce51a2baf01efcb031c9daa0557d3b722c3951959");
	assert_int_equal(vpi_rsa_verify(pk, sig.sha256, sig.rsa), 0);
	/* V4: rsa2048 truncated to 510 hex → parse failure */
	{
		char *t = malloc(sl);
		char *p;
		size_t tl;
		memcpy(t, sigt, sl);
		p = strstr(t, "rsa2048: ");
		assert_non_null(p);
		tl = (size_t)(p - t) + 9 + 510;
		t[tl] = '\n';
		assert_int_equal(vpi_sig_parse(t, tl + 1, &sig, why, sizeof(why)), -EBADMSG);
		assert_non_null(strstr(why, "Failed to parse signature file"));
		/* empty rsa2048 value (rpi-sb-provisioner #337) */
		tl = (size_t)(p - t) + 9;
		t[tl - 1] = '\n';
		assert_int_equal(vpi_sig_parse(t, tl, &sig, why, sizeof(why)), -EBADMSG);
		free(t);
	}
	assert_int_equal(vpi_sig_parse("", 0, &sig, why, sizeof(why)), -EBADMSG);
	assert_int_equal(vpi_sig_parse("abc\n", 4, &sig, why, sizeof(why)), -EBADMSG);
	free(conf);
	free(sigt);
	free(bsig);
}

static void test_recovery_config(void **state)
{
	const char *t = "# comment\n[all]\nprogram_pubkey=1\n  eeprom_write_protect = 0\n"
			"set_reboot_order=0x3\nrecovery_reboot=1\nunknown=5\nrecovery_metadata\n";
	struct vpi_recovery_config c;

	(void)state;
	vpi_recovery_config_parse(t, strlen(t), &c);
	assert_int_equal(c.program_pubkey, 1);
	assert_int_equal(c.eeprom_write_protect, 0);
	assert_int_equal(c.set_reboot_order, 3);
	assert_int_equal(c.recovery_reboot, 1);
	assert_int_equal(c.program_jtag_lock, -1);
	assert_int_equal(c.recovery_metadata, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_2711),
		cmocka_unit_test(test_parse_2712),
		cmocka_unit_test(test_recovery_bin_blocks),
		cmocka_unit_test(test_pubkey_hash_v1),
		cmocka_unit_test(test_sig_vectors),
		cmocka_unit_test(test_recovery_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
