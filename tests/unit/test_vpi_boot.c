/* Behaviour tests of the virtual Pi's boot chain over the virtual USB bus:
 * boot ROM, recovery (EEPROM update, OTP), bootloader (signed boot) and the
 * refusals of rpiboot.md §7.2 / secure-boot-artefacts.md §6.3, driven by the
 * minimal test-side rpiboot host of vpi_testlib.c. */
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
#include <time.h>
#include <unistd.h>

#include "transport/transport.h"
#include "vpi/board.h"
#include "vpi/bus.h"
#include "vpi/eeprom_dev.h"
#include "vpi/fastbootd.h"
#include "vpi/standin.h"
#include "vpi_testlib.h"

#define PORT "9-1"
#define V1 "8251a63a2edee9d8f710d63e9da5d639064929ce15a2238986a189ac6fcd3cee"
#define SECURE_CONF "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf461\nSIGNED_BOOT=1\n"

struct rig {
	char *dir;
	struct vpi_board *b;
	struct vpi_bus *bus;
	struct vpi_board_opts o;
};

static void rig_open(struct rig *r, const char *model, void (*tweak)(struct vpi_board_opts *))
{
	memset(r, 0, sizeof(*r));
	r->dir = tl_tmpdir();
	vpi_board_opts_init(&r->o);
	r->o.faults.slow_enum_ms = 0;
	r->o.serial_seed = 42;
	if (tweak)
		tweak(&r->o);
	assert_int_equal(vpi_board_open(model, r->dir, &r->o, &r->b), 0);
	assert_int_equal(vpi_bus_new(9, 4, &r->bus), 0);
}

static void rig_plug(struct rig *r)
{
	assert_int_equal(vpi_bus_attach(r->bus, PORT, r->b), 0);
}

/* Close and reopen the board (power cycle + state dir reload). */
static void rig_reopen(struct rig *r)
{
	vpi_bus_detach(r->bus, PORT);
	vpi_fastbootd_board_reset(r->b);
	char model[16];

	snprintf(model, sizeof(model), "%s", vpi_board_model(r->b)->name);
	vpi_board_close(r->b);
	assert_int_equal(vpi_board_open(model, r->dir, &r->o, &r->b), 0);
}

static void rig_close(struct rig *r)
{
	vpi_bus_free(r->bus);
	vpi_fastbootd_board_reset(r->b);
	vpi_board_close(r->b);
	tl_rmrf(r->dir);
	free(r->dir);
}

static void state_is(struct rig *r, const char *want)
{
	char st[32];

	assert_int_equal(vpi_bus_port_state(r->bus, PORT, st, sizeof(st)), 0);
	assert_string_equal(st, want);
}

/* Wait (bounded) for the port to reach a state. */
static void wait_state(struct rig *r, const char *want)
{
	for (int i = 0; i < 500; i++) {
		char st[32];
		uint64_t g = vpi_bus_generation(r->bus);
		assert_int_equal(vpi_bus_port_state(r->bus, PORT, st, sizeof(st)), 0);
		if (strcmp(st, want) == 0)
			return;
		vpi_bus_wait_change(r->bus, g, 10);
	}
	state_is(r, want);
}

static struct transport *open_rom(struct rig *r, unsigned *addr)
{
	struct transport *t = NULL;
	uint16_t pid = vpi_board_model(r->b)->usb_pid;
	int isn = vpi_board_model(r->b)->chip == VPI_CHIP_2710 ? 0 : 3;

	assert_int_equal(tl_wait_open(r->bus, PORT, pid, isn, 0, 2000, &t, addr), 0);
	return t;
}

static struct transport *open_stage2(struct rig *r, unsigned not_addr, int timeout_ms, int *err)
{
	struct transport *t = NULL;
	uint16_t pid = vpi_board_model(r->b)->usb_pid;
	int isn = vpi_board_model(r->b)->chip == VPI_CHIP_2710 ? 1 : 4;

	*err = tl_wait_open(r->bus, PORT, pid, isn, not_addr, (unsigned)timeout_ms, &t, NULL);
	return t;
}

/* Upload @img to the ROM on the port; returns the stage-2 transport or NULL. */
static struct transport *boot_stage2(struct rig *r, const uint8_t *img, size_t len, int timeout_ms)
{
	unsigned addr = 0;
	struct transport *t = open_rom(r, &addr), *s2;
	int32_t st = -1;
	int err;

	assert_string_equal(t->port_path, PORT);
	assert_int_equal(tl_rom_upload(t, img, len, &st), 0);
	assert_int_equal(st, 0);   /* the ROM answers 0 even when it drops the image */
	transport_close(t);
	s2 = open_stage2(r, addr, timeout_ms, &err);
	return err ? NULL : s2;
}

struct recovery_files {
	struct tl_file f[4];
	size_t n;
	uint8_t *img;
	char *sig, *conf;
};

static void files_free(struct recovery_files *f)
{
	free(f->img);
	free(f->sig);
	free(f->conf);
}

static void add_file(struct recovery_files *f, const char *name, const void *d, size_t len)
{
	f->f[f->n].name = name;
	f->f[f->n].data = d;
	f->f[f->n].len = len;
	f->n++;
}

/* config.txt + pieeprom.bin/.sig: a secure-boot EEPROM signed with @key. */
static void recovery_files(struct recovery_files *f, int chip, bool other_key, bool sign_sig,
			   const char *conf)
{
	size_t len;

	memset(f, 0, sizeof(*f));
	f->conf = strdup(conf);
	f->img = tl_secure_eeprom(chip, other_key, SECURE_CONF, &len);
	f->sig = tl_sigfile(other_key, f->img, len, sign_sig);
	add_file(f, "config.txt", f->conf, strlen(f->conf));
	add_file(f, "pieeprom.bin", f->img, len);
	add_file(f, "pieeprom.sig", f->sig, strlen(f->sig));
}

static uint8_t *recovery_bin(int chip, bool countersign, size_t *len)
{
	uint8_t *r = tl_slurp_fixture(chip == 0x2712 ? "firmware-2712/recovery.bin" :
				      "firmware-2711/recovery.bin", len);
	if (countersign) {
		size_t cl;
		uint8_t *c = tl_countersign(false, r, *len, &cl);
		free(r);
		*len = cl;
		return c;
	}
	return r;
}

static void eeprom_equals(struct vpi_board *b, const uint8_t *want, size_t len)
{
	uint8_t *img = NULL;
	size_t n = 0;

	assert_int_equal(vpi_eeprom_read(b, &img, &n), 0);
	assert_int_equal(n, len);
	assert_memory_equal(img, want, len);
	free(img);
}

static uint8_t *eeprom_copy(struct vpi_board *b, size_t *len)
{
	uint8_t *img = NULL;

	assert_int_equal(vpi_eeprom_read(b, &img, len), 0);
	return img;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Pi 5, first provisioning: plain recovery.bin, signed EEPROM, program_pubkey,
 * reboot back into USB boot mode via set_reboot_order=0x3. */
static void test_pi5_secure_provisioning(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;
	struct transport *t;
	uint8_t *rb;
	size_t rl;
	double t0;
	char want[64];

	(void)state;
	rig_open(&r, "pi5", NULL);
	rig_plug(&r);
	recovery_files(&f, 0x2712, false, true,
		       "program_pubkey=1\nset_reboot_order=0x3\nrecovery_reboot=1\n");
	rb = recovery_bin(0x2712, false, &rl);
	t0 = now_s();
	t = boot_stage2(&r, rb, rl, 2000);
	assert_non_null(t);
	snprintf(want, sizeof(want), "%08" PRIx32, vpi_board_rom_serial(r.b));
	assert_string_equal(t->serial, want);
	assert_int_equal(tl_file_server(t, f.f, f.n, &s), 0);
	transport_close(t);
	/* the real order: config.txt, pieeprom.bin probed twice, .sig, .bin */
	assert_string_equal(s.requests[0], "GS:config.txt");
	assert_string_equal(s.requests[1], "RF:config.txt");
	assert_string_equal(s.requests[2], "GS:pieeprom.bin");
	assert_string_equal(s.requests[3], "GS:pieeprom.bin");
	assert_string_equal(s.requests[4], "GS:pieeprom.sig");
	assert_string_equal(s.requests[5], "RF:pieeprom.sig");
	assert_string_equal(s.requests[6], "GS:pieeprom.bin");
	assert_string_equal(s.requests[7], "RF:pieeprom.bin");
	assert_true(s.done);
	assert_string_equal(tl_meta(&s, "EEPROM_UPDATE"), "success");
	assert_string_equal(tl_meta(&s, "SECURE_BOOT_PROVISION"), "success");
	assert_string_equal(tl_meta(&s, "CUSTOMER_KEY_HASH"), V1);
	assert_string_equal(tl_meta(&s, "USER_BOARDREV"), "d04170");
	assert_string_equal(tl_meta(&s, "JTAG_LOCKED"), "0");
	assert_non_null(tl_meta(&s, "FACTORY_UUID"));
	assert_non_null(tl_meta(&s, "MAC_WIFI_ADDR"));
	assert_null(tl_meta(&s, "ADVANCED_BOOT"));
	/* metadata order: USER_SERIAL_NUM first, FACTORY_UUID last */
	assert_int_equal(strncmp(s.metadata[0], "USER_SERIAL_NUM=", 16), 0);
	assert_int_equal(strncmp(s.metadata[s.nmeta - 1], "FACTORY_UUID=", 13), 0);
	eeprom_equals(r.b, f.img, 2097152);
	assert_true(vpi_otp_key_hash_programmed(r.b));
	/* back as a ROM on the same port (set_reboot_order=0x3) */
	t = open_rom(&r, NULL);
	print_message("pi5 ROM->recovery->EEPROM write->reboot to ROM: %.1f ms\n",
		      (now_s() - t0) * 1e3);
	transport_close(t);
	/* the secured state persists across a power cycle */
	rig_reopen(&r);
	assert_true(vpi_otp_key_hash_programmed(r.b));
	free(rb);
	files_free(&f);
	rig_close(&r);
}

/* A fused Pi 5 runs only a counter-signed recovery; the ROM drops the plain
 * one and hangs: no stage 2 appears and its next announce times out. */
static void test_fused_pi5_refuses_unsigned_stage2(void **state)
{
	struct rig r;
	uint8_t pk[264], h[32], *rb, *cs;
	size_t rl, cl;
	struct transport *t;
	unsigned addr;
	int err;
	struct usb_ctrl_setup ann = { 0x40, 0, 24, 0, 0 };

	(void)state;
	rig_open(&r, "pi5", NULL);
	tl_pubkey_bin(false, pk);
	vpi_sha256(pk, sizeof(pk), h);
	assert_int_equal(vpi_otp_program_key_hash(r.b, h), 0);
	rig_plug(&r);
	rb = recovery_bin(0x2712, false, &rl);
	t = open_rom(&r, &addr);
	assert_int_equal(tl_rom_upload(t, rb, rl, NULL), 0);
	wait_state(&r, "refused");
	assert_int_equal(transport_control(t, &ann, NULL, 100), -ETIMEDOUT);
	transport_close(t);
	assert_null(open_stage2(&r, addr, 50, &err));
	assert_int_equal(err, -ETIMEDOUT);
	/* the counter-signed one runs after a power cycle */
	vpi_bus_detach(r.bus, PORT);
	rig_plug(&r);
	cs = tl_countersign(false, rb, rl, &cl);
	t = boot_stage2(&r, cs, cl, 2000);
	assert_non_null(t);
	transport_close(t);
	wait_state(&r, "recovery");
	free(cs);
	free(rb);
	rig_close(&r);
}

/* An unfused Pi 5 refuses a counter-signed second stage (zero hash). */
static void test_unfused_pi5_refuses_countersigned(void **state)
{
	struct rig r;
	uint8_t *rb;
	size_t rl;

	(void)state;
	rig_open(&r, "pi5", NULL);
	rig_plug(&r);
	rb = recovery_bin(0x2712, true, &rl);
	assert_null(boot_stage2(&r, rb, rl, 50));
	state_is(&r, "refused");
	free(rb);
	rig_close(&r);
}

static void run_recovery(struct rig *r, struct recovery_files *f, struct tl_session *s)
{
	uint8_t *rb;
	size_t rl;
	struct transport *t;
	bool fused = vpi_otp_key_hash_programmed(r->b);
	int chip = vpi_board_model(r->b)->chip;

	rb = recovery_bin(chip, chip == 0x2712 && fused, &rl);
	t = boot_stage2(r, rb, rl, 2000);
	assert_non_null(t);
	assert_int_equal(tl_file_server(t, f->f, f->n, s), 0);
	assert_true(s->done);
	transport_close(t);
	free(rb);
}

/* pieeprom.sig whose hash does not match: error 24, EEPROM untouched, no OTP. */
static void test_bad_pieeprom_sig(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;
	uint8_t *before;
	size_t bl;

	(void)state;
	rig_open(&r, "pi5", NULL);
	rig_plug(&r);
	before = eeprom_copy(r.b, &bl);
	recovery_files(&f, 0x2712, false, true, "program_pubkey=1\nrecovery_reboot=1\n");
	f.sig[0] = f.sig[0] == '0' ? '1' : '0';   /* wrong digest */
	run_recovery(&r, &f, &s);
	assert_string_equal(tl_meta(&s, "EEPROM_UPDATE"), "fail");
	assert_null(tl_meta(&s, "SECURE_BOOT_PROVISION"));
	eeprom_equals(r.b, before, bl);
	assert_false(vpi_otp_key_hash_programmed(r.b));
	wait_state(&r, "halted");   /* error 24 halts even with recovery_reboot=1 */
	files_free(&f);

	/* a right digest but a bad rsa2048 signature: refused too */
	vpi_bus_detach(r.bus, PORT);
	rig_plug(&r);
	recovery_files(&f, 0x2712, false, true, "program_pubkey=1\n");
	{
		char *p = strstr(f.sig, "rsa2048: ");
		assert_non_null(p);
		p[20] = p[20] == 'a' ? 'b' : 'a';
	}
	run_recovery(&r, &f, &s);
	assert_string_equal(tl_meta(&s, "EEPROM_UPDATE"), "fail");
	eeprom_equals(r.b, before, bl);
	assert_false(vpi_otp_key_hash_programmed(r.b));
	files_free(&f);
	free(before);
	rig_close(&r);
}

/* Secured board: an unsigned pieeprom.sig is refused (R10, named guess). */
static void test_fused_requires_signed_pieeprom(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;
	uint8_t pk[264], h[32];

	(void)state;
	rig_open(&r, "pi4", NULL);
	tl_pubkey_bin(false, pk);
	vpi_sha256(pk, sizeof(pk), h);
	assert_int_equal(vpi_otp_program_key_hash(r.b, h), 0);
	rig_plug(&r);
	recovery_files(&f, 0x2711, false, false, "recovery_reboot=1\n");
	run_recovery(&r, &f, &s);
	assert_string_equal(tl_meta(&s, "EEPROM_UPDATE"), "fail");
	assert_string_equal(tl_meta(&s, "BOOT_ROM"), "0000c8b0");
	files_free(&f);
	rig_close(&r);
}

/* EEPROM write protect set: recovery's write is refused, the image stays. */
static void test_write_protected_eeprom(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;
	uint8_t *before;
	size_t bl;

	(void)state;
	rig_open(&r, "cm4", NULL);
	before = eeprom_copy(r.b, &bl);
	assert_int_equal(vpi_eeprom_set_write_protect(r.b, true), 0);
	assert_int_equal(vpi_eeprom_write(r.b, before, bl), -EROFS);
	rig_plug(&r);
	recovery_files(&f, 0x2711, false, true, "program_pubkey=1\neeprom_write_protect=0\n");
	run_recovery(&r, &f, &s);
	assert_string_equal(tl_meta(&s, "EEPROM_UPDATE"), "fail");
	assert_string_equal(tl_meta(&s, "SECURE_BOOT_PROVISION"), "fail");
	eeprom_equals(r.b, before, bl);
	assert_true(vpi_otp_eeprom_wp(r.b));   /* /WP low: cannot be cleared */
	assert_false(vpi_otp_key_hash_programmed(r.b));
	files_free(&f);
	free(before);
	rig_close(&r);
}

/* program_pubkey with a different key on a fused board: Conflicting OTP key. */
static void test_otp_conflicting_key(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;
	uint8_t pk[264], h[32], h2[32];

	(void)state;
	rig_open(&r, "cm4", NULL);
	tl_pubkey_bin(false, pk);
	vpi_sha256(pk, sizeof(pk), h);
	tl_pubkey_bin(true, pk);
	vpi_sha256(pk, sizeof(pk), h2);
	assert_int_equal(vpi_otp_program_key_hash(r.b, h), 0);
	assert_int_equal(vpi_otp_program_key_hash(r.b, h), 0);       /* same: no-op */
	assert_int_equal(vpi_otp_program_key_hash(r.b, h2), -EPERM); /* one-way */
	/* recovery with an image of the other key: the chain refuses the update */
	rig_plug(&r);
	recovery_files(&f, 0x2711, true, true, "program_pubkey=1\n");
	run_recovery(&r, &f, &s);
	assert_string_equal(tl_meta(&s, "EEPROM_UPDATE"), "fail");
	assert_string_equal(tl_meta(&s, "CUSTOMER_KEY_HASH"), V1);
	{
		uint8_t now[32];
		vpi_otp_key_hash(r.b, now);
		assert_memory_equal(now, h, 32);
	}
	files_free(&f);
	rig_close(&r);
}

/* Pi 4: program_pubkey needs program_rpiboot_gpio (named guess); with it the
 * key, GPIO, devkey revoke and JTAG lock are burnt; reboot lands in USB boot
 * mode because the jig holds the burnt GPIO. */
static void test_pi4_provisioning(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;

	(void)state;
	rig_open(&r, "pi4", NULL);
	rig_plug(&r);
	recovery_files(&f, 0x2711, false, true, "program_pubkey=1\nrecovery_reboot=1\n");
	run_recovery(&r, &f, &s);
	assert_string_equal(tl_meta(&s, "EEPROM_UPDATE"), "success");
	assert_string_equal(tl_meta(&s, "SECURE_BOOT_PROVISION"), "fail");
	assert_false(vpi_otp_key_hash_programmed(r.b));
	files_free(&f);
	vpi_bus_detach(r.bus, PORT);
	rig_plug(&r);
	recovery_files(&f, 0x2711, false, true,
		       "program_pubkey=1\nprogram_rpiboot_gpio=8\nprogram_jtag_lock=1\nrecovery_reboot=1\n");
	run_recovery(&r, &f, &s);
	assert_string_equal(tl_meta(&s, "SECURE_BOOT_PROVISION"), "success");
	assert_string_equal(tl_meta(&s, "BOOT_ROM"), "0000c8b0");
	assert_string_equal(tl_meta(&s, "JTAG_LOCKED"), "1");
	assert_string_equal(tl_meta(&s, "ADVANCED_BOOT"), "0088e8e8");
	assert_true(vpi_otp_devkey_revoked(r.b));
	assert_int_equal(vpi_otp_rpiboot_gpio(r.b), 8);
	wait_state(&r, "rom");
	files_free(&f);
	rig_close(&r);
}

/* No image offered: config.txt, pieeprom.bin and .upd probed, metadata, Done;
 * without recovery_reboot the board halts and leaves the bus. */
static void test_recovery_no_image(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;

	(void)state;
	rig_open(&r, "cm4", NULL);
	rig_plug(&r);
	memset(&f, 0, sizeof(f));
	f.conf = strdup("uart_2ndstage=1\n");
	add_file(&f, "config.txt", f.conf, strlen(f.conf));
	run_recovery(&r, &f, &s);
	assert_true(tl_requested(&s, "GS:pieeprom.upd"));
	assert_null(tl_meta(&s, "EEPROM_UPDATE"));
	assert_string_equal(tl_meta(&s, "CUSTOMER_KEY_HASH"),
			    "0000000000000000000000000000000000000000000000000000000000000000");
	assert_string_equal(tl_meta(&s, "BOOT_ROM"), "000048b0");
	wait_state(&r, "halted");
	files_free(&f);
	rig_close(&r);
}

/* Bootloader + SIGNED_BOOT: a bad boot.sig is refused (no gadget), a good one
 * boots the fastboot gadget with the board's identity. */
static void gadget_flow(struct rig *r, bool good_sig, bool *gadget_seen)
{
	size_t bl, tl_len;
	uint8_t *bootcode, *tar;
	const char gadget[] = VPI_STANDIN_MAGIC " gadget\nsimulated rpi-fastbootd ramdisk\n";
	char *bsig = tl_sigfile(false, gadget, sizeof(gadget) - 1, true);
	const char *conf = "boot_ramdisk=1\n";
	struct tl_file files[6];
	struct tl_session s;
	struct transport *t;
	int err;

	bool c2712 = vpi_board_model(r->b)->chip == VPI_CHIP_2712;
	const char *bc_name = c2712 ? "2712/bootcode5.bin" : "2711/bootcode4.bin";
	const char *bm_name = c2712 ? "2712/bootmain" : "2711/bootmain";

	/* bootcode4/5.bin and bootmain from the real bootfiles.bin (tar) */
	tar = tl_slurp_fixture("usbboot-firmware/bootfiles.bin", &tl_len);
	bootcode = NULL;
	bl = 0;
	{
		const uint8_t *bm = NULL;
		size_t bml = 0;
		for (size_t off = 0; off + 512 <= tl_len && tar[off];) {
			size_t sz = strtoul((const char *)tar + off + 124, NULL, 8);
			if (strcmp((const char *)tar + off, bc_name) == 0) {
				bootcode = tar + off + 512;
				bl = sz;
			}
			if (strcmp((const char *)tar + off, bm_name) == 0) {
				bm = tar + off + 512;
				bml = sz;
			}
			off += 512 + (sz + 511) / 512 * 512;
		}
		assert_non_null(bootcode);
		assert_non_null(bm);
		if (!good_sig)
			bsig[3] = bsig[3] == 'a' ? 'b' : 'a';
		files[0] = (struct tl_file){ "bootmain", bm, bml };
		files[1] = (struct tl_file){ "config.txt", conf, strlen(conf) };
		files[2] = (struct tl_file){ "boot.img", gadget, sizeof(gadget) - 1 };
		files[3] = (struct tl_file){ "boot.sig", bsig, strlen(bsig) };
	}
	{
		uint8_t *cs = NULL;
		size_t cl = bl;
		const uint8_t *stage = bootcode;
		if (vpi_otp_key_hash_programmed(r->b)) {
			cs = tl_countersign(false, bootcode, bl, &cl);
			stage = cs;
		}
		t = boot_stage2(r, stage, cl, 2000);
		free(cs);
	}
	assert_non_null(t);
	assert_int_equal(tl_file_server(t, files, 4, &s), 0);
	transport_close(t);
	assert_true(tl_requested(&s, "GS:mcb.bin"));
	assert_true(tl_requested(&s, "RF:bootmain"));
	assert_true(tl_requested(&s, "RF:boot.img"));
	if (vpi_otp_key_hash_programmed(r->b))
		assert_true(tl_requested(&s, "RF:boot.sig"));
	else   /* signed boot off: boot.sig is neither needed nor asked for */
		assert_false(tl_requested(&s, "GS:boot.sig"));
	assert_true(tl_requested(&s, c2712 ? "GS:rp1c0fw1.bin" : "GS:memsys08.bin"));
	t = NULL;
	err = tl_wait_open(r->bus, PORT, 0x4e40, -1, 0, good_sig ? 2000 : 50, &t, NULL);
	*gadget_seen = err == 0;
	if (t) {
		char want[32];
		uint8_t dd[18];
		struct usb_ctrl_setup gd = { 0x80, 6, 0x0100, 0, 18 };
		snprintf(want, sizeof(want), "%016" PRIx64, vpi_board_serial64(r->b));
		assert_int_equal(t->vid, 0x18d1);
		assert_string_equal(t->serial, want);
		assert_int_equal(t->ep_out, 0x01);
		assert_int_equal(t->ep_in, 0x81);
		assert_int_equal(transport_control(t, &gd, dd, 100), 18);
		assert_int_equal(dd[12] | dd[13] << 8, 0x0100);
		/* the gadget answers fastboot over the bulk pipe */
		{
			char resp[300];
			int n;
			assert_int_equal(transport_bulk_out(t, "getvar:serialno", 15, 1000), 15);
			n = transport_bulk_in(t, resp, sizeof(resp) - 1, 2000);
			assert_true(n > 4);
			resp[n] = '\0';
			assert_int_equal(strncmp(resp, "OKAY", 4), 0);
			assert_string_equal(resp + 4, want);
		}
		transport_close(t);
	}
	free(bsig);
	free(tar);
}

static void test_signed_boot_gadget(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;
	bool seen = false;

	(void)state;
	rig_open(&r, "pi5", NULL);
	rig_plug(&r);
	/* provision the key first (as the station does), reboot into the ROM */
	recovery_files(&f, 0x2712, false, true,
		       "program_pubkey=1\nset_reboot_order=0x3\nrecovery_reboot=1\n");
	run_recovery(&r, &f, &s);
	assert_string_equal(tl_meta(&s, "SECURE_BOOT_PROVISION"), "success");
	files_free(&f);
	gadget_flow(&r, false, &seen);
	assert_false(seen);
	wait_state(&r, "refused");
	vpi_bus_detach(r.bus, PORT);
	rig_plug(&r);
	gadget_flow(&r, true, &seen);
	assert_true(seen);
	wait_state(&r, "gadget");
	rig_close(&r);
}

/* Pi 4, factory EEPROM (no signed boot): boot_ramdisk=1 boots the gadget
 * through the real 2711 bootcode4.bin; the 2711 DDR files are asked for. */
static void test_pi4_unsigned_gadget(void **state)
{
	struct rig r;
	bool seen = false;

	(void)state;
	rig_open(&r, "pi400", NULL);
	rig_plug(&r);
	gadget_flow(&r, true, &seen);
	assert_true(seen);
	wait_state(&r, "gadget");
	rig_close(&r);
}

/* Zero 2 W: no secure boot; a stand-in bootcode.bin (iSerialNumber 0 -> 1)
 * asks autoboot.txt, config.txt, boot.img and boots the gadget. */
static void test_zero2w_standin_gadget(void **state)
{
	struct rig r;
	static const char bootcode[] = VPI_STANDIN_MAGIC " bootcode\n";
	static const char gadget[] = VPI_STANDIN_MAGIC " gadget\n";
	const char *conf = "boot_ramdisk=1\n";
	struct tl_file files[2] = { { "config.txt", conf, 15 }, { "boot.img", gadget, sizeof(gadget) - 1 } };
	struct tl_session s;
	struct transport *t;

	(void)state;
	assert_true(vpi_standin_is(bootcode, sizeof(bootcode) - 1));
	assert_false(vpi_standin_is("RPI-SB-VPI", 10));
	rig_open(&r, "zero2w", NULL);
	rig_plug(&r);
	t = boot_stage2(&r, (const uint8_t *)bootcode, sizeof(bootcode) - 1, 2000);
	assert_non_null(t);
	assert_int_equal(t->pid, 0x2764);
	assert_int_equal(tl_file_server(t, files, 2, &s), 0);
	transport_close(t);
	assert_string_equal(s.requests[0], "GS:autoboot.txt");
	assert_true(tl_requested(&s, "RF:boot.img"));
	t = NULL;
	assert_int_equal(tl_wait_open(r.bus, PORT, 0x4e40, -1, 0, 2000, &t, NULL), 0);
	assert_string_equal(t->port_path, PORT);
	transport_close(t);
	rig_close(&r);
}

static void dup_desc(struct vpi_board_opts *o)
{
	o->faults.duplicate_descriptor = true;
}

/* dup-desc: the ROM shows up twice; the ghost never answers. */
static void test_duplicate_descriptor(void **state)
{
	struct rig r;
	struct vpi_bus_dev *devs = NULL;
	size_t n = 0, ghosts = 0, real = 0;
	struct transport *t = NULL;
	struct usb_ctrl_setup ann = { 0x40, 0, 24, 0, 0 };

	(void)state;
	rig_open(&r, "cm5", dup_desc);
	rig_plug(&r);
	transport_close(open_rom(&r, NULL));
	assert_int_equal(vpi_bus_list(r.bus, &devs, &n), 0);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(devs[i].port, PORT);
		if (devs[i].ghost) {
			ghosts++;
			assert_int_equal(vpi_bus_open_address(r.bus, PORT, devs[i].address, &t), 0);
		} else {
			real++;
		}
		assert_string_equal(devs[i].desc.serial, devs[0].desc.serial);
	}
	assert_int_equal(ghosts, 1);
	assert_int_equal(real, 1);
	assert_int_equal(transport_control(t, &ann, NULL, 50), -ETIMEDOUT);
	transport_close(t);
	free(devs);
	rig_close(&r);
}

static void slow_enum(struct vpi_board_opts *o)
{
	o->faults.slow_enum_ms = 300;
}

/* slow-enum: stage 2 appears no earlier than the delay after the upload. */
static void test_slow_enumeration(void **state)
{
	struct rig r;
	uint8_t *rb;
	size_t rl;
	double t0;
	struct transport *t;
	unsigned addr;
	int err;

	(void)state;
	rig_open(&r, "cm4", slow_enum);
	rig_plug(&r);
	rb = recovery_bin(0x2711, false, &rl);
	t = open_rom(&r, &addr);
	assert_int_equal(tl_rom_upload(t, rb, rl, NULL), 0);
	transport_close(t);
	t0 = now_s();
	t = open_stage2(&r, addr, 3000, &err);
	assert_non_null(t);
	assert_true(now_s() - t0 >= 0.25);
	transport_close(t);
	free(rb);
	rig_close(&r);
}

static void unplug_recovery(struct vpi_board_opts *o)
{
	snprintf(o->faults.unplug_phase, sizeof(o->faults.unplug_phase), "recovery");
	o->faults.unplug_offset = 1048576;
}

/* Unplug 1 MiB into the recovery transfer: the host gets -ENODEV / the
 * session ends, the EEPROM is untouched, the port is empty. */
static void test_unplug_mid_recovery(void **state)
{
	struct rig r;
	struct recovery_files f;
	struct tl_session s;
	uint8_t *before, *rb;
	size_t bl, rl;
	struct transport *t;
	struct vpi_bus_dev *devs;
	size_t n;

	(void)state;
	rig_open(&r, "pi5", unplug_recovery);
	rig_plug(&r);
	before = eeprom_copy(r.b, &bl);
	recovery_files(&f, 0x2712, false, true, "program_pubkey=1\n");
	rb = recovery_bin(0x2712, false, &rl);
	t = boot_stage2(&r, rb, rl, 2000);
	assert_non_null(t);
	assert_int_equal(tl_file_server(t, f.f, f.n, &s), 0);
	assert_false(s.done);
	transport_close(t);
	wait_state(&r, "unplugged");
	assert_int_equal(vpi_bus_list(r.bus, &devs, &n), 0);
	assert_int_equal(n, 0);
	free(devs);
	eeprom_equals(r.b, before, bl);
	assert_false(vpi_otp_key_hash_programmed(r.b));
	free(rb);
	free(before);
	files_free(&f);
	rig_close(&r);
}

static void stall_rom(struct vpi_board_opts *o)
{
	snprintf(o->faults.stall_phase, sizeof(o->faults.stall_phase), "rom");
}

static void test_stall_rom(void **state)
{
	struct rig r;
	struct transport *t;
	struct usb_ctrl_setup ann = { 0x40, 0, 24, 0, 0 };

	(void)state;
	rig_open(&r, "pi500", stall_rom);
	rig_plug(&r);
	t = open_rom(&r, NULL);
	assert_int_equal(transport_control(t, &ann, NULL, 50), -ETIMEDOUT);
	transport_close(t);
	rig_close(&r);
}

static void link_40mbs(struct vpi_board_opts *o)
{
	o->link_bytes_per_s = 40000000;
}

/* Push @n bytes as one ROM "image" in @chunk-byte bulk transfers; seconds. */
static double push_bytes(struct rig *r, uint32_t n, size_t chunk)
{
	struct transport *t = open_rom(r, NULL);
	uint8_t *buf = calloc(1, chunk);
	struct usb_ctrl_setup ann = { 0x40, 0, 24, 0, 0 };
	uint8_t msg[24] = { 0 };
	double t0, dt;

	assert_non_null(buf);
	msg[0] = (uint8_t)n;
	msg[1] = (uint8_t)(n >> 8);
	msg[2] = (uint8_t)(n >> 16);
	msg[3] = (uint8_t)(n >> 24);
	assert_int_equal(transport_control(t, &ann, NULL, 1000), 0);
	assert_int_equal(transport_bulk_out(t, msg, 24, 1000), 24);
	ann.wValue = (uint16_t)n;
	ann.wIndex = (uint16_t)(n >> 16);
	assert_int_equal(transport_control(t, &ann, NULL, 1000), 0);
	t0 = now_s();
	for (uint32_t off = 0; off < n; off += (uint32_t)chunk)
		assert_int_equal(transport_bulk_out(t, buf, chunk, 5000), (int)chunk);
	dt = now_s() - t0;
	transport_close(t);
	free(buf);
	return dt;
}

/* The link-rate model: N bytes at 40 MB/s take N / 40e6 s.
 * RPI_SB_VPI_BENCH_MIB=64 measures a longer run. */
static void test_link_rate(void **state)
{
	struct rig r;
	const char *env = getenv("RPI_SB_VPI_BENCH_MIB");
	uint32_t n = (env ? (uint32_t)atoi(env) : 8u) << 20;
	double want = (double)n / 40e6, dt, dt16;

	(void)state;
	rig_open(&r, "pi5", link_40mbs);
	rig_plug(&r);
	dt = push_bytes(&r, n, 1u << 20);
	print_message("link model: %u bytes at 40 MB/s in 1 MiB transfers took %.3f s "
		      "(ideal %.3f s, error %+.1f %%)\n", n, dt, want, (dt - want) / want * 100);
	/* never faster than the link (the model's guarantee); the upper bound
	 * only catches gross errors such as double counting, since a loaded CI
	 * machine under ASan adds its own copy and scheduling time (a release
	 * build measures within 1 %, doc/virtual-pi.md) */
	assert_true(dt >= want * 0.97);
	assert_true(dt <= want * 3);
	vpi_bus_detach(r.bus, PORT);
	rig_plug(&r);
	dt16 = push_bytes(&r, n, 16384);
	print_message("link model: same in 16 KiB transfers took %.3f s (%.1f MB/s)\n", dt16,
		      (double)n / dt16 / 1e6);
	assert_true(dt16 >= want * 0.97);
	rig_close(&r);
}

static void test_hotplug_eventfd(void **state)
{
	struct rig r;
	uint64_t v = 0;
	int fd;

	(void)state;
	rig_open(&r, "zero2w", NULL);
	fd = vpi_bus_eventfd(r.bus);
	assert_true(read(fd, &v, sizeof(v)) < 0);   /* nothing yet */
	rig_plug(&r);
	transport_close(open_rom(&r, NULL));
	assert_int_equal(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	assert_true(v >= 1);
	assert_int_equal(vpi_bus_detach(r.bus, PORT), 0);
	assert_int_equal(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	assert_int_equal(vpi_bus_attach(r.bus, "9-9", r.b), -ENOENT);
	rig_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pi5_secure_provisioning),
		cmocka_unit_test(test_fused_pi5_refuses_unsigned_stage2),
		cmocka_unit_test(test_unfused_pi5_refuses_countersigned),
		cmocka_unit_test(test_bad_pieeprom_sig),
		cmocka_unit_test(test_fused_requires_signed_pieeprom),
		cmocka_unit_test(test_write_protected_eeprom),
		cmocka_unit_test(test_otp_conflicting_key),
		cmocka_unit_test(test_pi4_provisioning),
		cmocka_unit_test(test_recovery_no_image),
		cmocka_unit_test(test_signed_boot_gadget),
		cmocka_unit_test(test_pi4_unsigned_gadget),
		cmocka_unit_test(test_zero2w_standin_gadget),
		cmocka_unit_test(test_duplicate_descriptor),
		cmocka_unit_test(test_unplug_mid_recovery),
		cmocka_unit_test(test_slow_enumeration),
		cmocka_unit_test(test_stall_rom),
		cmocka_unit_test(test_link_rate),
		cmocka_unit_test(test_hotplug_eventfd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
