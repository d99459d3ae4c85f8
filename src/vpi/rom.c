/* vpi/rom: a virtual Pi's firmware main loop, its boot ROM in USB device boot
 * mode, and the device side of the stage-2 file-server protocol.
 *
 * Everything here runs on the board's own device thread (started by
 * vpi_bus_attach). The ROM takes the 24-byte BootMessage and the second stage
 * (rpiboot.md §3), checks it as the chip's ROM does (secure-boot-artefacts.md
 * §4.2, §4.4) and either hangs on the bus (refusal: the host sees -ETIMEDOUT on
 * its next announce, as rpiboot.md §7.2 reports) or re-enumerates as stage 2. */
#include "vpi/rom.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpi/board.h"
#include "vpi/bootloader.h"
#include "vpi/eeprom_dev.h"
#include "vpi/recovery.h"
#include "vpi/standin.h"

#define FILE_MESSAGE_LEN 260u
#define FNAME_LEN 256u

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Does a reboot land in USB boot mode without set_reboot_order? (§1.4) */
static bool rpiboot_on_reboot(struct vpi_board *b)
{
	const struct vpi_model_info *m = vpi_board_model(b);

	if (!VPI_GUESS_JIG_HOLDS_RPIBOOT || vpi_board_options(b)->rpiboot_released)
		return false;
	if (strncmp(m->name, "cm", 2) == 0 || m->chip == VPI_CHIP_2710)
		return true;   /* nRPIBOOT jumper fitted in the jig / no SPI bootloader */
	if (m->chip == VPI_CHIP_2711)
		return vpi_otp_rpiboot_gpio(b) != 0;   /* the jig holds the burnt GPIO */
	return false;          /* Pi 5 / Pi 500: the power button is let go after power-on */
}

void vpi_fw_run(struct vpi_fw *fw)
{
	struct vpi_board *b = fw->board;
	bool power_on = true;

	for (;;) {
		enum vpi_stage2_role role;
		bool usb_boot = power_on || fw->rpiboot_next || rpiboot_on_reboot(b);
		int r;

		power_on = false;
		fw->rpiboot_next = false;
		if (vpi_fw_stopping(fw) || vpi_board_unplugged(b))
			break;
		if (!usb_boot) {
			vpi_log(b, "reboot: not in USB boot mode, booting from SPI EEPROM and storage");
			vpi_fw_set_state(fw, "booted");
			vpi_fw_idle(fw);
			break;
		}
		vpi_fw_set_state(fw, "rom");
		r = vpi_rom_run(fw, &role);
		if (r < 0)
			break;
		vpi_fw_set_state(fw, role == VPI_ROLE_RECOVERY ? "recovery" : "bootloader");
		r = role == VPI_ROLE_RECOVERY ? vpi_recovery_run(fw) : vpi_bootloader_run(fw);
		free(fw->stage2);
		fw->stage2 = NULL;
		fw->stage2_len = 0;
		if (r < 0)
			break;
		if (r == VPI_NEXT_HALT) {
			vpi_log(b, "halted: nothing re-enumerates until the cable is pulled");
			vpi_fw_set_state(fw, "halted");
			vpi_fw_idle(fw);
			break;
		}
		vpi_log(b, "rebooting");
		vpi_fw_leave(fw);
	}
	vpi_fw_leave(fw);
}

/* ---- ROM --------------------------------------------------------------- */

static void rom_descriptor(struct vpi_board *b, bool stage2, struct vpi_usbdesc *d)
{
	const struct vpi_model_info *m = vpi_board_model(b);

	memset(d, 0, sizeof(*d));
	d->vid = 0x0a5c;
	d->pid = m->usb_pid;
	d->bcd_device = 0x0000;
	snprintf(d->manufacturer, sizeof(d->manufacturer), "Broadcom");
	snprintf(d->product, sizeof(d->product), "%s",
		 m->chip == VPI_CHIP_2712 ? VPI_GUESS_2712_PRODUCT :
		 m->chip == VPI_CHIP_2711 ? "BCM2711 Boot" : "BCM2710 Boot");
	if (m->chip == VPI_CHIP_2711)
		d->iserial_index = stage2 ? 4 : 3;
	else if (m->chip == VPI_CHIP_2712)
		d->iserial_index = stage2 ? VPI_GUESS_2712_STAGE2_ISERIAL : VPI_GUESS_2712_ROM_ISERIAL;
	else
		d->iserial_index = stage2 ? 1 : 0;
	if (d->iserial_index)
		snprintf(d->serial, sizeof(d->serial), "%08" PRIx32, vpi_board_rom_serial(b));
	d->if_class = 0xff;
	d->ep_out = 0x01;
	d->ep_in = 0x82;
	d->max_packet = 512;
}

int vpi_fw_check_stall(struct vpi_fw *fw)
{
	if (!vpi_board_phase_stalled(fw->board))
		return 0;
	vpi_log(fw->board, "fault: stall, no more answers in this phase");
	return vpi_fw_hang(fw);
}

/* Check the uploaded image as the chip's ROM would. */
static int rom_verify(struct vpi_fw *fw, const uint8_t *img, size_t len,
		      enum vpi_stage2_role *role)
{
	struct vpi_board *b = fw->board;
	enum vpi_chip chip = vpi_board_model(b)->chip;
	bool standin = vpi_standin_is(img, len);
	uint8_t h[32];
	char why[160] = "";
	bool cust = false;
	int r = 0;

	if (chip == VPI_CHIP_2712) {
		vpi_otp_key_hash(b, h);
		r = vpi_bootcode2712_check(img, len, h, !standin || VPI_GUESS_STANDIN_RPI_BLOCK,
					   &cust, why, sizeof(why));
	} else if (chip == VPI_CHIP_2711 && !standin) {
		r = vpi_bootcode2711_check(img, len, vpi_otp_devkey_revoked(b), why, sizeof(why));
	}
	if (r) {
		vpi_log(b, "ROM: refusing the second stage (%zu bytes): %s", len, why);
		return r;
	}
	if (standin)
		*role = vpi_standin_role(img, len, VPI_STANDIN_ROLE_RECOVERY) ? VPI_ROLE_RECOVERY :
										 VPI_ROLE_BOOTLOADER;
	else   /* recovery.bin carries its config switch names; bootcode*.bin does not */
		*role = memmem(img, len, "program_pubkey", 14) ? VPI_ROLE_RECOVERY : VPI_ROLE_BOOTLOADER;
	vpi_log(b, "ROM: second stage accepted (%zu bytes%s%s), running it as %s", len,
		standin ? ", simulator stand-in" : "", cust ? ", customer counter-signed" : "",
		*role == VPI_ROLE_RECOVERY ? "recovery" : "bootloader");
	return 0;
}

int vpi_rom_run(struct vpi_fw *fw, enum vpi_stage2_role *role)
{
	struct vpi_board *b = fw->board;
	struct vpi_usbdesc d;
	struct usb_ctrl_setup s;
	uint8_t msg[24];
	uint8_t *img = NULL;
	uint32_t n = 0;
	int r;

	rom_descriptor(b, false, &d);
	r = vpi_fw_enumerate(fw, &d);
	if (r)
		return r;
	r = vpi_board_phase_enter(b, "rom");
	if (r)
		return r;
	for (;;) {
		uint32_t ann;

		if ((r = vpi_fw_check_stall(fw)) != 0)
			return r;
		r = vpi_usbdev_ctrl_wait(fw->dev, &s, NULL, 0, 0);
		if (r)
			return r;
		if (s.bmRequestType & 0x80) {   /* nothing to report before an upload */
			vpi_usbdev_ctrl_stall(fw->dev);
			continue;
		}
		ann = (uint32_t)s.wValue | (uint32_t)s.wIndex << 16;
		if (ann != sizeof(msg)) {
			vpi_log(b, "ROM: ignoring a %" PRIu32 "-byte announce, expected the 24-byte "
				"BootMessage", ann);
			continue;
		}
		r = vpi_usbdev_bulk_read_full(fw->dev, msg, sizeof(msg), 0);
		if (r)
			return r;
		n = le32(msg);
		r = vpi_usbdev_ctrl_wait(fw->dev, &s, NULL, 0, 0);
		if (r)
			return r;
		ann = (uint32_t)s.wValue | (uint32_t)s.wIndex << 16;
		if ((s.bmRequestType & 0x80) || (VPI_GUESS_ROM_CHECKS_LENGTH && ann != n) || n == 0) {
			vpi_log(b, "ROM: image announce of %" PRIu32 " bytes does not match the "
				"BootMessage length %" PRIu32 "; waiting for a new BootMessage", ann, n);
			continue;
		}
		img = malloc(n);
		if (!img)
			return -ENOMEM;
		r = vpi_usbdev_bulk_read_full(fw->dev, img, n, 0);
		if (r) {
			free(img);
			return r;
		}
		break;
	}
	if (n > VPI_GUESS_ROM_MAX_STAGE2) {
		vpi_log(b, "ROM: refusing a %" PRIu32 "-byte second stage (limit %u)", n,
			VPI_GUESS_ROM_MAX_STAGE2);
		r = -EKEYREJECTED;
	} else {
		r = rom_verify(fw, img, n, role);
	}
	/* The status word: real ROMs answer 0 even for an image they then drop. */
	{
		int sr = vpi_usbdev_ctrl_wait(fw->dev, &s, NULL, 0, VPI_GUESS_ROM_STATUS_WAIT_MS);
		if (sr == 0 && (s.bmRequestType & 0x80)) {
			uint8_t status[4] = { 0, 0, 0, 0 };
			vpi_usbdev_ctrl_reply(fw->dev, status, sizeof(status));
		} else {
			vpi_log(b, "ROM: no status read from the host (%d, type %02x)", sr, s.bmRequestType);
		}
	}
	if (r) {
		free(img);
		vpi_fw_set_state(fw, "refused");
		vpi_fw_hang(fw);
		return -EKEYREJECTED;
	}
	fw->stage2 = img;
	fw->stage2_len = n;
	return 0;
}

/* ---- stage-2 file client ----------------------------------------------- */

int vpi_s2_enumerate(struct vpi_fw *fw)
{
	struct vpi_usbdesc d;

	rom_descriptor(fw->board, true, &d);
	return vpi_fw_enumerate(fw, &d);
}

/* Wait for the host's next vendor IN read (stray OUTs, e.g. an extra zero
 * ack, are dropped). */
static int s2_wait_in(struct vpi_fw *fw, struct usb_ctrl_setup *s)
{
	for (;;) {
		int r = vpi_usbdev_ctrl_wait(fw->dev, s, NULL, 0, VPI_STAGE2_HOST_WAIT_MS);
		if (r)
			return r;
		if (s->bmRequestType & 0x80)
			return 0;
	}
}

static int s2_wait_out(struct vpi_fw *fw, uint32_t *val)
{
	struct usb_ctrl_setup s;

	for (;;) {
		int r = vpi_usbdev_ctrl_wait(fw->dev, &s, NULL, 0, VPI_STAGE2_HOST_WAIT_MS);
		if (r)
			return r;
		if (!(s.bmRequestType & 0x80)) {
			*val = (uint32_t)s.wValue | (uint32_t)s.wIndex << 16;
			return 0;
		}
		vpi_usbdev_ctrl_stall(fw->dev);   /* a read where an answer was due */
	}
}

static int s2_send(struct vpi_fw *fw, uint32_t cmd, const char *name)
{
	uint8_t m[FILE_MESSAGE_LEN];
	struct usb_ctrl_setup s;
	size_t nl = strlen(name);
	int r;

	if ((r = vpi_fw_check_stall(fw)) != 0)
		return r;
	if (nl >= FNAME_LEN)
		return -ENAMETOOLONG;
	memset(m, 0, sizeof(m));
	m[0] = (uint8_t)cmd;
	memcpy(m + 4, name, nl);
	r = s2_wait_in(fw, &s);
	if (r)
		return r;
	return vpi_usbdev_ctrl_reply(fw->dev, m, s.wLength < sizeof(m) ? s.wLength : sizeof(m));
}

int vpi_s2_size(struct vpi_fw *fw, const char *name, uint32_t *size)
{
	int r = s2_send(fw, 0, name);

	return r ? r : s2_wait_out(fw, size);
}

int vpi_s2_get(struct vpi_fw *fw, const char *name, uint8_t **data, size_t *len)
{
	uint32_t size = 0, ann = 0;
	uint8_t *buf;
	int r;

	*data = NULL;
	*len = 0;
	r = vpi_s2_size(fw, name, &size);
	if (r || size == 0)
		return r;
	r = s2_send(fw, 1, name);
	if (r == 0)
		r = s2_wait_out(fw, &ann);
	if (r)
		return r;
	if (ann == 0)
		return 0;   /* the host could not open it after all */
	if (ann != size)
		vpi_log(fw->board, "file %s: size %" PRIu32 " announced as %" PRIu32, name, size, ann);
	buf = malloc(ann);
	if (!buf)
		return -ENOMEM;
	r = vpi_usbdev_bulk_read_full(fw->dev, buf, ann, VPI_STAGE2_HOST_WAIT_MS);
	if (r) {
		free(buf);
		return r;
	}
	vpi_log(fw->board, "loaded %s (%" PRIu32 " bytes)", name, ann);
	*data = buf;
	*len = ann;
	return 0;
}

int vpi_s2_meta(struct vpi_fw *fw, const char *key, const char *value)
{
	char name[FNAME_LEN];
	uint32_t ack = 0;
	int r;

	if ((size_t)snprintf(name, sizeof(name), "*%s*%s", key, value) >= sizeof(name))
		return -ENAMETOOLONG;
	r = s2_send(fw, 0, name);
	return r ? r : s2_wait_out(fw, &ack);
}

int vpi_s2_done(struct vpi_fw *fw, const char *stale_name)
{
	return s2_send(fw, 2, stale_name ? stale_name : "");
}
