/* Unit tests of the virtual Pi board (model table, identity, state dir, OTP,
 * SPI EEPROM), fault specs, and the virtual first boot (with sfdisk,
 * mkfs.vfat, mtools, mkfs.ext4 building the disks and e2fsck/debugfs inside). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/pk.h>

#include "vpi/board.h"
#include "vpi/eeprom_dev.h"
#include "vpi/fault.h"
#include "vpi/firstboot.h"
#include "vpi/luks.h"
#include "vpi/storage.h"
#include "vpi_testlib.h"

#define V1 "8251a63a2edee9d8f710d63e9da5d639064929ce15a2238986a189ac6fcd3cee"

static struct vpi_board *open_board(const char *model, const char *dir, uint32_t seed,
				    struct vpi_board_opts *o_out)
{
	struct vpi_board_opts o;
	struct vpi_board *b = NULL;

	vpi_board_opts_init(&o);
	o.serial_seed = seed;
	if (o_out)
		o = *o_out;
	assert_int_equal(vpi_board_open(model, dir, &o, &b), 0);
	return b;
}

static void test_models(void **state)
{
	static const struct {
		const char *name;
		uint32_t rev;
		uint16_t pid;
	} want[] = {
		{ "pi5", 0xd04170, 0x2712 }, { "pi500", 0xd04190, 0x2712 },
		{ "cm5", 0xd04180, 0x2712 }, { "cm5lite", 0xc041a0, 0x2712 },
		{ "pi4", 0xc03115, 0x2711 }, { "pi400", 0xc03131, 0x2711 },
		{ "cm4", 0xc03141, 0x2711 }, { "zero2w", 0x902120, 0x2764 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct vpi_model_info *m = vpi_model_find(want[i].name);
		assert_non_null(m);
		assert_int_equal(m->revision_code, want[i].rev);
		assert_int_equal(m->usb_pid, want[i].pid);
		assert_int_equal((m->revision_code >> 23) & 1, 1);
	}
	assert_null(vpi_model_find("pi3"));
	assert_null(vpi_model_at(8));
}

static void test_identity_and_state(void **state)
{
	char *d1 = tl_tmpdir(), *d2 = tl_tmpdir(), *d3 = tl_tmpdir();
	struct vpi_board *a = open_board("pi5", d1, 7, NULL);
	struct vpi_board *b = open_board("pi5", d2, 7, NULL);
	struct vpi_board *c = open_board("cm5lite", d3, 8, NULL);
	struct vpi_board *x = NULL;
	uint8_t e1[6], w1[6], bt1[6], e2[6];
	uint8_t *img, *fix;
	size_t il, fl;
	uint32_t size;
	char jedec[7], uid[33];
	uint64_t ts;

	(void)state;
	assert_int_equal(vpi_board_serial64(a), vpi_board_serial64(b));
	assert_int_equal(vpi_board_rom_serial(a), (uint32_t)vpi_board_serial64(a));
	assert_int_not_equal(vpi_board_serial64(a), vpi_board_serial64(c));
	vpi_board_macs(a, e1, w1, bt1);
	vpi_board_macs(b, e2, NULL, NULL);
	assert_memory_equal(e1, e2, 6);
	assert_int_equal(e1[0], 0x2c);
	assert_memory_not_equal(e1, w1, 6);
	assert_int_equal(strlen(vpi_board_storage_hwid(a)), 32);
	assert_int_equal(strncmp(vpi_board_storage_hwid(c), "VPI", 3), 0);
	assert_true(vpi_board_storage_bytes(c) > vpi_board_storage_bytes(a));
	/* eeprom.bin is the real factory image */
	img = NULL;
	assert_int_equal(vpi_eeprom_read(a, &img, &il), 0);
	fix = tl_slurp_fixture("pieeprom-2026-08-12.bin", &fl);
	assert_int_equal(il, fl);
	assert_memory_equal(img, fix, fl);
	assert_int_equal(vpi_eeprom_info(a, &size, jedec, uid, &ts), 0);
	assert_int_equal(size, 2097152);
	assert_int_equal(ts, 1786493216);
	assert_int_equal(strlen(uid), 32);
	/* a state dir belongs to one board */
	vpi_board_close(b);
	assert_int_equal(vpi_board_open("pi4", d2, NULL, &x), -EEXIST);
	assert_int_equal(vpi_board_open("nosuch", d2, NULL, &x), -EINVAL);
	free(img);
	free(fix);
	vpi_board_close(a);
	vpi_board_close(c);
	tl_rmrf(d1);
	tl_rmrf(d2);
	tl_rmrf(d3);
	free(d1);
	free(d2);
	free(d3);
}

static void test_zero2w_no_eeprom(void **state)
{
	char *d = tl_tmpdir();
	struct vpi_board *b = open_board("zero2w", d, 1, NULL);
	uint8_t *img = NULL;
	size_t l;

	(void)state;
	assert_int_equal(vpi_eeprom_read(b, &img, &l), -ENODEV);
	assert_int_equal(vpi_otp_program_rpiboot_gpio(b, 8), -EOPNOTSUPP);
	vpi_board_close(b);
	tl_rmrf(d);
	free(d);
}

static void test_otp_one_way_and_persistent(void **state)
{
	char *d = tl_tmpdir();
	struct vpi_board *b = open_board("pi4", d, 3, NULL);
	uint8_t h1[32], h2[32], got[32], mac[32], mac2[32];
	char *pem = NULL;
	uint8_t *der = NULL;
	size_t dl = 0;

	(void)state;
	memset(h1, 0x11, 32);
	memset(h2, 0x22, 32);
	assert_false(vpi_otp_key_hash_programmed(b));
	assert_int_equal(vpi_otp_fwcrypto_hmac(b, "x", 1, mac), -ENOKEY);
	assert_int_equal(vpi_otp_fwcrypto_pubkey_pem(b, &pem), -ENOKEY);
	assert_int_equal(vpi_otp_program_key_hash(b, h1), 0);
	assert_int_equal(vpi_otp_program_key_hash(b, h2), -EPERM);
	assert_int_equal(vpi_otp_program_rpiboot_gpio(b, 3), -EINVAL);
	assert_int_equal(vpi_otp_program_rpiboot_gpio(b, 6), 0);
	assert_int_equal(vpi_otp_program_rpiboot_gpio(b, 7), -EPERM);
	assert_int_equal(vpi_otp_program_jtag_lock(b), 0);
	assert_int_equal(vpi_otp_fwcrypto_init(b), 0);
	assert_int_equal(vpi_otp_fwcrypto_init(b), 0);   /* idempotent */
	assert_int_equal(vpi_otp_fwcrypto_hmac(b, "x", 1, mac), 0);
	vpi_board_close(b);
	b = open_board("pi4", d, 3, NULL);
	vpi_otp_key_hash(b, got);
	assert_memory_equal(got, h1, 32);
	assert_true(vpi_otp_jtag_locked(b));
	assert_int_equal(vpi_otp_rpiboot_gpio(b), 6);
	assert_int_equal(vpi_otp_fwcrypto_hmac(b, "x", 1, mac2), 0);
	assert_memory_equal(mac, mac2, 32);   /* the same device key after a power cycle */
	assert_int_equal(vpi_otp_fwcrypto_pubkey_pem(b, &pem), 0);
	assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
	assert_int_equal(vpi_otp_fwcrypto_sign_hash(b, mac, &der, &dl), 0);
	{
		mbedtls_pk_context pk;
		mbedtls_pk_init(&pk);
		assert_int_equal(mbedtls_pk_parse_public_key(&pk, (const unsigned char *)pem,
							     strlen(pem) + 1), 0);
		assert_int_equal(mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, mac, 32, der, dl), 0);
		mac[0] ^= 1;
		assert_int_not_equal(mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, mac, 32, der, dl), 0);
		mbedtls_pk_free(&pk);
	}
	free(pem);
	free(der);
	vpi_board_close(b);
	tl_rmrf(d);
	free(d);
}

static void test_eeprom_write_protect(void **state)
{
	char *d = tl_tmpdir();
	struct vpi_board_opts o;
	struct vpi_board *b;
	uint8_t *img = NULL;
	size_t l;

	(void)state;
	vpi_board_opts_init(&o);
	b = open_board("cm5", d, 1, &o);
	assert_int_equal(vpi_eeprom_read(b, &img, &l), 0);
	assert_int_equal(vpi_eeprom_write(b, img, l + 1), -EFBIG);
	assert_int_equal(vpi_eeprom_set_write_protect(b, true), 0);
	assert_true(vpi_eeprom_write_protected(b));
	assert_int_equal(vpi_eeprom_write(b, img, l), -EROFS);
	assert_int_equal(vpi_eeprom_set_write_protect(b, false), -EROFS);   /* /WP low */
	vpi_board_close(b);
	o.wp_pin_high = true;   /* the /WP pin pulled high: protect has no effect */
	b = open_board("cm5", d, 1, &o);
	assert_false(vpi_eeprom_write_protected(b));
	assert_int_equal(vpi_eeprom_write(b, img, l), 0);
	assert_int_equal(vpi_eeprom_set_write_protect(b, false), 0);
	assert_false(vpi_otp_eeprom_wp(b));
	free(img);
	vpi_board_close(b);
	tl_rmrf(d);
	free(d);
}

static void test_fault_specs(void **state)
{
	struct vpi_faults f;
	struct vpi_board_opts o;
	char err[256];

	(void)state;
	vpi_board_opts_init(&o);
	f = o.faults;
	assert_int_equal(vpi_fault_parse("unplug:phase=recovery", &f, err, sizeof(err)), 0);
	assert_string_equal(f.unplug_phase, "recovery");
	assert_int_equal(f.unplug_offset, 0);
	assert_int_equal(vpi_fault_parse("unplug:phase=flash,offset=1048576", &f, err, sizeof(err)), 0);
	assert_string_equal(f.unplug_phase, "flash");
	assert_int_equal(f.unplug_offset, 1048576);
	assert_int_equal(vpi_fault_parse("unplug:phase=flash,offset=1M", &f, err, sizeof(err)), 0);
	assert_int_equal(f.unplug_offset, 1048576);
	assert_int_equal(vpi_fault_parse("stall:phase=rom", &f, err, sizeof(err)), 0);
	assert_string_equal(f.stall_phase, "rom");
	assert_int_equal(vpi_fault_parse("fail:cmd=oem cryptinit", &f, err, sizeof(err)), 0);
	assert_string_equal(f.fail_command, "oem cryptinit");
	assert_int_equal(vpi_fault_parse("storage:size=64M", &f, err, sizeof(err)), 0);
	assert_int_equal(f.storage_bytes, 64u << 20);
	assert_int_equal(vpi_fault_parse("bitflip:offset=12345", &f, err, sizeof(err)), 0);
	assert_int_equal(f.bitflip_offset, 12345);
	assert_int_equal(vpi_fault_parse("slow-enum:ms=5000;dup-desc", &f, err, sizeof(err)), 0);
	assert_int_equal(f.slow_enum_ms, 5000);
	assert_true(f.duplicate_descriptor);
	/* errors leave @f untouched and say what is wrong */
	assert_int_equal(vpi_fault_parse("unplug:offset=5", &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unplug"));
	assert_int_equal(vpi_fault_parse("explode", &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown fault 'explode'"));
	assert_int_equal(vpi_fault_parse("storage:size=-1", &f, err, sizeof(err)), -EINVAL);
	assert_int_equal(vpi_fault_parse("storage:size=64Q", &f, err, sizeof(err)), -EINVAL);
	assert_int_equal(vpi_fault_parse("stall:phase=ROM", &f, err, sizeof(err)), -EINVAL);
	assert_int_equal(vpi_fault_parse("slow-enum:ms=9999999", &f, err, sizeof(err)), -EINVAL);
	assert_int_equal(vpi_fault_parse("dup-desc;", &f, err, sizeof(err)), -EINVAL);
	assert_int_equal(vpi_fault_parse("", &f, err, sizeof(err)), -EINVAL);
	assert_int_equal(vpi_fault_parse("stall:phase", &f, err, sizeof(err)), -EINVAL);
	assert_string_equal(f.stall_phase, "rom");
	assert_int_equal(f.storage_bytes, 64u << 20);
}

/* ---- virtual first boot ------------------------------------------------ */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	assert_true(vasprintf(&cmd, fmt, ap) > 0);
	va_end(ap);
	r = system(cmd);
	if (r != 0)
		fail_msg("command failed (%d): %s", r, cmd);
	free(cmd);
}

#define P1_OFF (1u << 20)
#define P2_OFF (17u << 20)

/* gold.img: p1 FAT 16 MiB at 1 MiB with config.txt, p2 24 MiB at 17 MiB holding
 * an 8 MiB ext4 (room for a LUKS2 header in front of it on the board). */
static void make_gold(const char *dir)
{
	sh("set -e; cd %s; mkdir -p root/etc root/usr/bin root/home/pi; "
	   "echo raspberrypi > root/etc/hostname; "
	   "python3 -c \"import os; os.setxattr('root/etc/hostname', 'user.test', b'abc')\"; "
	   "head -c 300000 /dev/urandom > root/usr/bin/tool; "
	   "chmod 4755 root/usr/bin/tool; ln -s /etc/hostname root/etc/link; "
	   "truncate -s 70000 root/home/pi/sparse; echo x | dd of=root/home/pi/sparse bs=1 "
	   "seek=40000 conv=notrunc 2>/dev/null; "
	   "echo 'boot_ramdisk=1' > config.txt; truncate -s 48M gold.img; "
	   "printf 'label: dos\\nstart=2048, size=32768, type=c\\nstart=34816, size=49152, type=83\\n' "
	   "| sfdisk -q gold.img; mkfs.vfat --offset 2048 gold.img 16384 >/dev/null; "
	   "MTOOLS_SKIP_CHECK=1 mcopy -i gold.img@@%u config.txt ::; "
	   "mkfs.ext4 -q -F -E offset=%u -d root gold.img 8M; "
	   "dd if=gold.img of=root.ext4 bs=1M skip=17 count=8 2>/dev/null",
	   dir, P1_OFF, P2_OFF);
}

static struct vpi_board *fb_board(const char *dir, const char *model)
{
	struct vpi_board_opts o;
	char *sd = NULL;
	struct vpi_board *b;

	vpi_board_opts_init(&o);
	o.faults.storage_bytes = 128u << 20;
	assert_true(asprintf(&sd, "%s/state", dir) > 0);
	b = open_board(model, sd, 5, &o);
	free(sd);
	return b;
}

static void test_firstboot_plain(void **state)
{
	char *d = tl_tmpdir(), *gold = NULL;
	struct vpi_board *b;
	struct vpi_firstboot_report r;

	(void)state;
	make_gold(d);
	assert_true(asprintf(&gold, "%s/gold.img", d) > 0);
	b = fb_board(d, "pi4");
	/* naked provisioning: the gold image written as is */
	sh("cp --sparse=always %s %s && truncate -s 128M %s", gold, vpi_board_storage_path(b),
	   vpi_board_storage_path(b));
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	if (!r.pass)
		fail_msg("first boot failed: %s", r.reason);
	assert_false(r.encrypted);
	assert_false(r.signed_boot);
	assert_true(r.entries_compared >= 8);
	/* an extended attribute changed: the tree check names the file */
	sh("cd %s && cp root.ext4 r2.ext4 && debugfs -w -R 'ea_set /etc/hostname user.test xyz' "
	   "r2.ext4 >/dev/null 2>&1 && dd if=r2.ext4 of=%s bs=1M seek=17 conv=notrunc 2>/dev/null",
	   d, vpi_board_storage_path(b));
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	assert_false(r.tree_ok);
	assert_non_null(strstr(r.reason, "/etc/hostname: extended attributes differ"));
	/* one changed byte in a file: the tree check names it */
	sh("cd %s && cp root.ext4 r3.ext4 && debugfs -w -R 'rm /etc/hostname' r3.ext4 >/dev/null 2>&1 && "
	   "echo raspberrypX > h && debugfs -w -R 'write h /etc/hostname' r3.ext4 >/dev/null 2>&1 && "
	   "dd if=r3.ext4 of=%s bs=1M seek=17 conv=notrunc 2>/dev/null", d,
	   vpi_board_storage_path(b));
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	assert_false(r.pass);
	assert_true(r.fsck_ok);
	assert_false(r.tree_ok);
	assert_non_null(strstr(r.reason, "/etc/hostname"));
	/* a corrupt file system fails e2fsck */
	sh("dd if=/dev/zero of=%s bs=1024 seek=%u count=1 conv=notrunc 2>/dev/null",
	   vpi_board_storage_path(b), (P2_OFF >> 10) + 1);
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	assert_false(r.pass);
	assert_false(r.fsck_ok);
	vpi_board_close(b);
	free(gold);
	tl_rmrf(d);
	free(d);
}

/* The station's per-board hooks changed the root: exactly the listed paths
 * may differ from the gold image, and each must be what the station's tree
 * holds. */
static void test_firstboot_expect(void **state)
{
	char *d = tl_tmpdir(), *gold = NULL, *tree = NULL;
	const char *paths[] = { "/etc/board-serial" }, *removed[] = { "/etc/board-serial",
								      "/etc/gone" };
	struct vpi_firstboot_expect x = { NULL, paths, 1 };
	struct vpi_board *b;
	struct vpi_firstboot_report r;

	(void)state;
	make_gold(d);
	assert_true(asprintf(&gold, "%s/gold.img", d) > 0);
	assert_true(asprintf(&tree, "%s/tree", d) > 0);
	x.tree = tree;
	b = fb_board(d, "pi4");
	/* the board: the gold image plus /etc/board-serial; the station's tree
	 * holds the same file */
	sh("cd %s && cp --sparse=always gold.img %s && truncate -s 128M %s && "
	   "printf 'c0ffee01\\n' > serial && chmod 0640 serial && mkdir -p tree/etc && "
	   "cp -p serial tree/etc/board-serial && cp root.ext4 r4.ext4 && "
	   "debugfs -w -R 'write serial /etc/board-serial' r4.ext4 >/dev/null 2>&1 && "
	   "debugfs -w -R 'sif /etc/board-serial mode 0100640' r4.ext4 >/dev/null 2>&1 && "
	   "dd if=r4.ext4 of=%s bs=1M seek=17 conv=notrunc 2>/dev/null", d,
	   vpi_board_storage_path(b), vpi_board_storage_path(b), vpi_board_storage_path(b));
	/* not listed: the gold comparison names it */
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	assert_false(r.pass);
	assert_non_null(strstr(r.reason, "/etc/board-serial: on the board but not in the gold"));
	/* listed and equal to the tree: passes */
	assert_int_equal(vpi_board_power_on_expect(b, gold, &x, &r), 0);
	if (!r.pass)
		fail_msg("first boot with the hook's file listed failed: %s", r.reason);
	assert_int_equal(r.entries_expected, 1);
	/* the tree holds other contents: the board is not what the hook made */
	sh("cd %s && printf 'c0ffee02\\n' > tree/etc/board-serial", d);
	assert_int_equal(vpi_board_power_on_expect(b, gold, &x, &r), 0);
	assert_false(r.pass);
	assert_non_null(strstr(r.reason, "/etc/board-serial: contents differ from what the "
			       "station's hooks wrote"));
	/* another mode in the tree */
	sh("cd %s && cp -p serial tree/etc/board-serial && chmod 0600 tree/etc/board-serial", d);
	assert_int_equal(vpi_board_power_on_expect(b, gold, &x, &r), 0);
	assert_false(r.pass);
	assert_non_null(strstr(r.reason, "/etc/board-serial: mode 100640"));
	/* removed in the tree, still on the board */
	sh("cd %s && rm tree/etc/board-serial", d);
	assert_int_equal(vpi_board_power_on_expect(b, gold, &x, &r), 0);
	assert_false(r.pass);
	assert_non_null(strstr(r.reason, "removed by the station's hooks but on the board"));
	/* a listed removal absent on both sides is fine; the file back */
	sh("cd %s && cp -p serial tree/etc/board-serial", d);
	x.paths = removed;
	x.npaths = 2;
	assert_int_equal(vpi_board_power_on_expect(b, gold, &x, &r), 0);
	if (!r.pass)
		fail_msg("first boot with a listed removal failed: %s", r.reason);
	/* a file no hook touched differs as well: still refused */
	sh("cd %s && echo raspberrypX > h && debugfs -w -R 'rm /etc/hostname' r4.ext4 >/dev/null 2>&1 "
	   "&& debugfs -w -R 'write h /etc/hostname' r4.ext4 >/dev/null 2>&1 && "
	   "dd if=r4.ext4 of=%s bs=1M seek=17 conv=notrunc 2>/dev/null", d,
	   vpi_board_storage_path(b));
	assert_int_equal(vpi_board_power_on_expect(b, gold, &x, &r), 0);
	assert_false(r.pass);
	assert_non_null(strstr(r.reason, "/etc/hostname"));
	vpi_board_close(b);
	free(gold);
	free(tree);
	tl_rmrf(d);
	free(d);
}

/* fde-only / secure-boot: root in LUKS2 keyed by the device, boot.img and
 * (when signed) boot.sig checked against the EEPROM key. */
static void test_firstboot_secure(void **state)
{
	char *d = tl_tmpdir(), *gold = NULL, *rootimg = NULL;
	struct vpi_board *b;
	struct vpi_firstboot_report r;
	struct vpi_storage *s = NULL;
	struct vpi_luks_map *m = NULL;
	char pass[VPI_LUKS_PASSPHRASE_LEN + 1];
	uint8_t *root, *ee, pk[264], h[32];
	size_t rl, el;
	char *bootsig;
	struct vpi_luks_format_result fres;
	static const char bootimg[] = "FAT boot image stand-in for the first-boot test\n";

	(void)state;
	make_gold(d);
	assert_true(asprintf(&gold, "%s/gold.img", d) > 0);
	assert_true(asprintf(&rootimg, "%s/root.ext4", d) > 0);
	b = fb_board(d, "pi5");
	/* storage: gold's partition table and boot partition, LUKS2 root */
	sh("cp --sparse=always %s %s && truncate -s 128M %s", gold, vpi_board_storage_path(b),
	   vpi_board_storage_path(b));
	sh("cd %s && printf '%s' > boot.img && MTOOLS_SKIP_CHECK=1 mcopy -o -i %s@@%u boot.img ::",
	   d, bootimg, vpi_board_storage_path(b), P1_OFF);
	assert_int_equal(vpi_otp_fwcrypto_init(b), 0);
	assert_int_equal(vpi_luks_board_passphrase(b, pass), 0);
	assert_int_equal(vpi_storage_open_board(b, &s), 0);
	assert_int_equal(vpi_luks_format(s, P2_OFF, 24u << 20, pass, strlen(pass), "root", NULL, d,
					 NULL, &fres), 0);
	assert_int_equal(vpi_luks_open(s, P2_OFF, 24u << 20, pass, strlen(pass), d, &m), 0);
	root = tl_slurp(rootimg, &rl);
	assert_true(vpi_luks_size(m) >= rl);
	assert_int_equal(vpi_luks_write(m, 0, root, rl), 0);
	vpi_luks_close(m);
	vpi_storage_close(s);
	/* fde-only: not signed, boot.img present */
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	if (!r.pass)
		fail_msg("fde-only first boot failed: %s", r.reason);
	assert_true(r.encrypted);
	/* secure-boot: signed EEPROM, key burned, boot.sig must verify */
	ee = tl_secure_eeprom(0x2712, false, "[all]\nSIGNED_BOOT=1\n", &el);
	assert_int_equal(vpi_eeprom_write(b, ee, el), 0);
	tl_pubkey_bin(false, pk);
	vpi_sha256(pk, sizeof(pk), h);
	assert_int_equal(vpi_otp_program_key_hash(b, h), 0);
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	assert_false(r.pass);
	assert_true(r.eeprom_ok);
	assert_non_null(strstr(r.reason, "boot.sig missing"));
	bootsig = tl_sigfile(false, bootimg, strlen(bootimg), true);
	sh("cd %s && printf '%s' > boot.sig && MTOOLS_SKIP_CHECK=1 mcopy -o -i %s@@%u boot.sig ::",
	   d, bootsig, vpi_board_storage_path(b), P1_OFF);
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	if (!r.pass)
		fail_msg("secure-boot first boot failed: %s", r.reason);
	assert_true(r.signed_boot);
	/* boot.sig of another key: refused */
	free(bootsig);
	bootsig = tl_sigfile(true, bootimg, strlen(bootimg), true);
	sh("cd %s && printf '%s' > boot.sig && MTOOLS_SKIP_CHECK=1 mcopy -o -i %s@@%u boot.sig ::",
	   d, bootsig, vpi_board_storage_path(b), P1_OFF);
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	assert_false(r.pass);
	assert_non_null(strstr(r.reason, "does not verify"));
	/* the factory (unsigned) EEPROM on a fused board: the ROM refuses it */
	free(ee);
	ee = tl_slurp_fixture("pieeprom-2026-08-12.bin", &el);
	assert_int_equal(vpi_eeprom_write(b, ee, el), 0);
	assert_int_equal(vpi_board_power_on(b, gold, &r), 0);
	assert_false(r.eeprom_ok);
	assert_non_null(strstr(r.reason, "SPI EEPROM"));
	free(bootsig);
	free(ee);
	free(root);
	vpi_board_close(b);
	free(gold);
	free(rootimg);
	tl_rmrf(d);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_models),
		cmocka_unit_test(test_identity_and_state),
		cmocka_unit_test(test_zero2w_no_eeprom),
		cmocka_unit_test(test_otp_one_way_and_persistent),
		cmocka_unit_test(test_eeprom_write_protect),
		cmocka_unit_test(test_fault_specs),
		cmocka_unit_test(test_firstboot_plain),
		cmocka_unit_test(test_firstboot_expect),
		cmocka_unit_test(test_firstboot_secure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
