/* payload: what the bootstrap phase serves to a board over rpiboot, built as
 * pure functions over files and buffers (no USB, no cache policy):
 *
 *   - the bootloader config (built-in secure/plain defaults, SIGNED_BOOT,
 *     BOOT_ORDER moved so the target storage boots first),
 *   - pieeprom.bin + pieeprom.sig (secure: signed config, customer pubkey.bin,
 *     BCM2712 counter-signed bootcode/bootsys, signed .sig; plain: only the
 *     config replaced, .sig with sha256 + ts, never signed, even when a key is
 *     configured: the peer's bug #319),
 *   - the recovery config.txt (OTP switches only when armed),
 *   - boot.sig for a boot.img.
 *
 * Any thread; a struct signer may be shared (see sign.h). */
#ifndef RPI_SB_ARTEFACTS_PAYLOAD_H
#define RPI_SB_ARTEFACTS_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"
#include "artefacts/pubkey.h"
#include "artefacts/sign.h"

enum payload_mode { PAYLOAD_SECURE_BOOT, PAYLOAD_FDE_ONLY, PAYLOAD_NAKED };

/* The peer's /var/lib/rpi-sb-provisioner/bootloader.secure and .naked. */
extern const char payload_bootconf_secure_default[];
extern const char payload_bootconf_plain_default[];

/* 1 for sd/emmc, 6 for nvme, -1 otherwise (the BOOT_ORDER nibble). */
int payload_boot_order_nibble(const char *storage);

/* Make the config that goes into the EEPROM from @in (NULL: the built-in
 * default for @mode): LF line ends; secure mode gets SIGNED_BOOT=1 (other
 * SIGNED_BOOT lines removed); plain modes refuse SIGNED_BOOT=1; when
 * @storage is set and @match_storage, the single BOOT_ORDER=0x... line gets
 * the storage's nibble moved to the end (tried first); with no or several
 * BOOT_ORDER lines nothing is moved. Result malloc'd, at most 4076 bytes. */
int payload_bootconf_prepare(const char *in, size_t in_len, enum payload_mode mode,
			     const char *storage, bool match_storage, char **out,
			     size_t *out_len, struct art_err *err);

struct payload_eeprom_in {
	enum payload_mode mode;
	const char *firmware_path;	/* the source pieeprom-*.bin (see firmware.h) */
	unsigned chip;			/* the board's chip, 2711|2712: family guard */
	const char *bootconf;		/* NULL: built-in default for the mode */
	size_t bootconf_len;
	struct signer *signer;		/* required for secure-boot; ignored otherwise */
	const char *storage;		/* sd|emmc|nvme or NULL */
	bool boot_order_match_storage;
	uint32_t timestamp;		/* ts lines; 0: sig_timestamp_now() */
};

struct payload_eeprom_out {
	uint8_t *image;			/* pieeprom.bin */
	size_t image_len;
	char *sig;			/* pieeprom.sig text */
	size_t sig_len;
	char *bootconf;			/* config as embedded */
	size_t bootconf_len;
	uint8_t image_sha256[SHA256_BYTES];
};

int payload_build_eeprom(const struct payload_eeprom_in *in, struct payload_eeprom_out *out,
			 struct art_err *err);
/* Write <dir>/pieeprom.bin and <dir>/pieeprom.sig (each via temp + rename). */
int payload_write_eeprom(const struct payload_eeprom_out *out, const char *dir,
			 struct art_err *err);
void payload_eeprom_out_free(struct payload_eeprom_out *out);

/* True when the built EEPROM only runs on a board whose OTP holds the key
 * hash: a BCM2712 secure-boot image has counter-signed stages, which the ROM
 * refuses on an unfused board (no boot from SPI, usbboot #259). Flash such a
 * payload only with program_pubkey=1 in the same recovery config.txt (armed)
 * or onto a board already fused with this key. */
bool payload_eeprom_needs_otp(unsigned chip, enum payload_mode mode);

struct payload_recovery_in {
	unsigned chip;			/* 2711|2712 */
	bool secure;			/* mode secure-boot */
	bool armed;			/* operator armed OTP for this batch */
	bool jtag_lock;			/* [otp] jtag_lock */
	bool eeprom_write_protect;	/* [otp] eeprom_write_protect */
	int rpiboot_gpio;		/* [otp] rpiboot_gpio, 0 = unset */
};

/* The recovery.bin config.txt. *warning (static text or NULL) is for the
 * log: e.g. a BCM2711 burn without rpiboot_gpio. Text malloc'd. */
int payload_recovery_config(const struct payload_recovery_in *in, char **text,
			    const char **warning, struct art_err *err);

/* boot.sig for @boot_img: sha256 line + rsa2048 line (no ts line, as the
 * peer writes it). Text malloc'd. */
int payload_boot_sig(struct signer *s, const char *boot_img, char **text, size_t *len,
		     struct art_err *err);

/* Counter-sign a BCM2712 second stage file (recovery.bin as bootcode5.bin
 * for a board already fused with this key, or a gadget's bootcode5.bin) into
 * @out_path (temp + rename). */
int payload_counter_sign_file(struct signer *s, const char *in_path, const char *out_path,
			      struct art_err *err);

/* Write a buffer to @dir/@name via a temp file + rename, mode 0644. */
int payload_write_file(const char *dir, const char *name, const void *data, size_t len,
		       struct art_err *err);

#endif
