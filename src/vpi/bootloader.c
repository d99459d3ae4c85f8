/* vpi/bootloader: the bootfiles.bin second stage booting a ramdisk over
 * rpiboot, its signed-boot checks, and the fastboot gadget it boots into.
 *
 * Runs on the board's device thread. Requests follow rpiboot.md §5.3 (DDR
 * files, bootmain, config.txt, boot.img, boot.sig); signed boot follows
 * secure-boot-artefacts.md §5.4 and §6.3 (R4, R5, R7): on when the EEPROM's
 * bootconf.txt says SIGNED_BOOT=1 or the key hash is burned, then boot.sig must
 * verify with the pubkey.bin embedded in the EEPROM, which must hash to the
 * OTP value once burned. A refusal is visible as the stage-2 device leaving the
 * bus with no gadget after it. */
#include "vpi/bootloader.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpi/board.h"
#include "vpi/eeprom_dev.h"
#include "vpi/fastbootd.h"
#include "vpi/rom.h"
#include "vpi/standin.h"

int vpi_bootloader_eeprom_chain(struct vpi_board *b, bool *signed_boot, uint8_t **pubkey,
				char *why, size_t whylen)
{
	uint8_t *img = NULL, h[32], otp[32];
	const uint8_t *conf = NULL, *pk = NULL, *sigt = NULL;
	size_t len = 0, conf_len = 0, pk_len = 0, sig_len = 0;
	bool fused = vpi_otp_key_hash_programmed(b);
	struct vpi_sig sig;
	int r;

	*signed_boot = false;
	*pubkey = NULL;
	if (vpi_board_model(b)->chip == VPI_CHIP_2710)
		return 0;   /* no secure boot on BCM2710 */
	r = vpi_eeprom_read(b, &img, &len);
	if (r) {
		snprintf(why, whylen, "cannot read the SPI EEPROM: %s", strerror(-r));
		return r;
	}
	if (vpi_ee_file(img, len, "bootconf.txt", &conf, &conf_len) != 0) {
		snprintf(why, whylen, "the SPI EEPROM holds no bootloader config (corrupt or erased)");
		r = -EKEYREJECTED;
		goto out;
	}
	*signed_boot = fused || vpi_ee_config_int(conf, conf_len, "SIGNED_BOOT") == 1;
	if (!*signed_boot)
		goto out;
	if (vpi_ee_file(img, len, "pubkey.bin", &pk, &pk_len) != 0 || !vpi_pubkey_present(pk, pk_len)) {
		snprintf(why, whylen, "signed boot is on but the EEPROM has no pubkey.bin");
		r = -EKEYREJECTED;
		goto out;
	}
	if (fused) {
		vpi_otp_key_hash(b, otp);
		vpi_sha256(pk, pk_len, h);
		if (memcmp(h, otp, 32) != 0) {
			snprintf(why, whylen, "EEPROM RSA key mismatch: pubkey.bin does not hash to "
				 "the OTP customer key hash");
			r = -EKEYREJECTED;
			goto out;
		}
		if (vpi_ee_file(img, len, "bootconf.sig", &sigt, &sig_len) != 0 ||
		    vpi_sig_parse(sigt, sig_len, &sig, why, whylen) != 0 || !sig.has_rsa) {
			if (!why[0] || sig_len == 0 || !sig.has_rsa)
				snprintf(why, whylen, "EEPROM configuration file must be signed "
					 "(bootconf.sig missing or unsigned)");
			r = -EKEYREJECTED;
			goto out;
		}
		vpi_sha256(conf, conf_len, h);
		if (memcmp(h, sig.sha256, 32) != 0 || vpi_rsa_verify(pk, h, sig.rsa) != 0) {
			snprintf(why, whylen, "bootconf.txt signature check failed");
			r = -EKEYREJECTED;
			goto out;
		}
	}
	*pubkey = malloc(VPI_PUBKEY_BIN_LEN);
	if (!*pubkey) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(*pubkey, pk, VPI_PUBKEY_BIN_LEN);
out:
	free(img);
	return r;
}

int vpi_bootloader_check_boot_sig(const uint8_t *img, size_t img_len, const uint8_t *sigt,
				  size_t sig_len, const uint8_t *pubkey, char *why, size_t whylen)
{
	struct vpi_sig sig;
	uint8_t h[32];

	if (!img || !img_len) {
		snprintf(why, whylen, "boot.img missing");
		return -EKEYREJECTED;
	}
	if (!sigt || !sig_len) {
		snprintf(why, whylen, "boot.sig missing");
		return -EKEYREJECTED;
	}
	if (vpi_sig_parse(sigt, sig_len, &sig, why, whylen) != 0)
		return -EKEYREJECTED;
	vpi_sha256(img, img_len, h);
	if (memcmp(h, sig.sha256, 32) != 0) {
		snprintf(why, whylen, "boot.img hash mismatch with boot.sig");
		return -EKEYREJECTED;
	}
	if (!sig.has_rsa) {
		snprintf(why, whylen, "boot.sig has no rsa2048 signature");
		return -EKEYREJECTED;
	}
	if (vpi_rsa_verify(pubkey, h, sig.rsa) != 0) {
		snprintf(why, whylen, "boot.sig RSA signature does not verify with the EEPROM key");
		return -EKEYREJECTED;
	}
	return 0;
}

void vpi_gadget_descriptor(struct vpi_board *b, struct vpi_usbdesc *d)
{
	memset(d, 0, sizeof(*d));
	d->vid = 0x18d1;
	d->pid = 0x4e40;
	d->bcd_device = 0x0100;
	d->iserial_index = 3;
	snprintf(d->manufacturer, sizeof(d->manufacturer), "Raspberry Pi");
	snprintf(d->product, sizeof(d->product), "%s", vpi_board_model(b)->product);
	snprintf(d->serial, sizeof(d->serial), "%016" PRIx64, vpi_board_serial64(b));
	d->if_class = 0xff;
	d->if_subclass = 0x42;
	d->if_protocol = 0x03;
	d->ep_out = 0x01;
	d->ep_in = 0x81;
	d->max_packet = 512;
}

/* The fastboot gadget's bulk pipe as a vpi_fb_channel. */
static ssize_t chan_read(void *usrptr, void *buf, size_t len)
{
	return vpi_usbdev_bulk_read(usrptr, buf, len, 0);
}

static ssize_t chan_write(void *usrptr, const void *buf, size_t len)
{
	return vpi_usbdev_bulk_write(usrptr, buf, len, 0);
}

static int run_gadget(struct vpi_fw *fw)
{
	struct vpi_board *b = fw->board;
	struct vpi_usbdesc d;
	struct vpi_fb_channel ch;
	int r;

	vpi_gadget_descriptor(b, &d);
	r = vpi_fw_enumerate(fw, &d);
	if (r)
		return r;
	vpi_fw_set_state(fw, "gadget");
	/* the gadget core enters its phases ("gadget", "download", "flash") and
	 * counts their bytes itself */
	vpi_usbdev_set_phase_accounting(fw->dev, false);
	ch.read = chan_read;
	ch.write = chan_write;
	ch.usrptr = fw->dev;
	ch.transport_name = "usb";
	r = vpi_fastbootd_serve(b, &ch);
	vpi_log(b, "fastboot gadget session ended (%d)", r);
	if (r < 0)
		return r == -ENODEV ? r : VPI_NEXT_HALT;
	switch (r) {
	case VPI_FB_END_REBOOT:
	case VPI_FB_END_REBOOT_BOOTLOADER:
		vpi_fastbootd_board_reset(b);
		return VPI_NEXT_REBOOT;
	case VPI_FB_END_SHUTDOWN:
		vpi_fastbootd_board_reset(b);
		return VPI_NEXT_HALT;
	default:
		return vpi_fw_stopping(fw) ? -ENODEV : VPI_NEXT_HALT;
	}
}

static const char *const ddr_2712[] = { "mcb.bin", "memsys00.bin", "memsys01.bin", "rp1c0fw1.bin",
					"memsys02.bin", "rp1c0fw2.bin", "memsys03.bin", NULL };
static const char *const ddr_2711[] = { "mcb.bin", "memsys00.bin", "memsys01.bin", "memsys02.bin",
					"memsys03.bin", "memsys04.bin", "memsys05.bin", "memsys06.bin",
					"memsys07.bin", "memsys08.bin", NULL };

static int refuse(struct vpi_fw *fw, const char *why)
{
	vpi_log(fw->board, "bootloader: refusing to boot: %s", why);
	vpi_fw_set_state(fw, "refused");
	vpi_fw_idle(fw);
	return -ENODEV;
}

int vpi_bootloader_run(struct vpi_fw *fw)
{
	struct vpi_board *b = fw->board;
	enum vpi_chip chip = vpi_board_model(b)->chip;
	const char *const *ddr = chip == VPI_CHIP_2712 ? ddr_2712 : chip == VPI_CHIP_2711 ? ddr_2711 : NULL;
	uint8_t *conf = NULL, *img = NULL, *sigt = NULL, *pubkey = NULL, *f = NULL;
	size_t conf_len = 0, img_len = 0, sig_len = 0, flen = 0;
	bool signed_boot = false;
	char why[200] = "", last[64] = "";
	int r;

	r = vpi_s2_enumerate(fw);
	if (r == 0)
		r = vpi_board_phase_enter(b, "bootloader");
	if (r)
		goto out;
	for (size_t i = 0; ddr && ddr[i]; i++) {
		r = vpi_s2_get(fw, ddr[i], &f, &flen);
		free(f);
		f = NULL;
		if (r)
			goto out;
	}
	if (ddr) {
		r = vpi_s2_get(fw, "bootmain", &f, &flen);
		free(f);
		f = NULL;
		if (r)
			goto out;
		if (flen == 0) {
			r = refuse(fw, "bootmain not served (bootfiles.bin incomplete)");
			goto out;
		}
	} else {
		r = vpi_s2_get(fw, "autoboot.txt", &f, &flen);
		free(f);
		f = NULL;
		if (r)
			goto out;
	}
	r = vpi_s2_get(fw, "config.txt", &conf, &conf_len);
	if (r)
		goto out;
	snprintf(last, sizeof(last), "config.txt");
	if (vpi_bootloader_eeprom_chain(b, &signed_boot, &pubkey, why, sizeof(why)) != 0) {
		r = refuse(fw, why);
		goto out;
	}
	if (!signed_boot && vpi_ee_config_int(conf, conf_len, "boot_ramdisk") != 1) {
		r = refuse(fw, "config.txt has no boot_ramdisk=1 and signed boot is off: no "
			   "ramdisk to boot");
		goto out;
	}
	r = vpi_s2_get(fw, "boot.img", &img, &img_len);
	if (r)
		goto out;
	if (!img_len) {
		r = refuse(fw, "boot.img missing");
		goto out;
	}
	snprintf(last, sizeof(last), "boot.img");
	if (signed_boot) {
		r = vpi_s2_get(fw, "boot.sig", &sigt, &sig_len);
		if (r)
			goto out;
		snprintf(last, sizeof(last), "boot.sig");
		if (vpi_bootloader_check_boot_sig(img, img_len, sigt, sig_len, pubkey, why,
						  sizeof(why)) != 0) {
			r = refuse(fw, why);
			goto out;
		}
		vpi_log(b, "signed boot: boot.img verified with the EEPROM key");
	}
	r = vpi_s2_done(fw, last);
	if (r)
		goto out;
	if (!vpi_standin_role(img, img_len, VPI_STANDIN_ROLE_GADGET)) {
		r = refuse(fw, "boot.img is not a fastboot gadget image the simulator can run "
			   "(expected a RPI-SB-VPI-STANDIN gadget stand-in)");
		goto out;
	}
	r = run_gadget(fw);
out:
	if (r < 0 && r != -ENODEV) {
		vpi_log(b, "bootloader: session with the host failed (%s); halting", strerror(-r));
		r = VPI_NEXT_HALT;
	}
	free(conf);
	free(img);
	free(sigt);
	free(pubkey);
	return r;
}
