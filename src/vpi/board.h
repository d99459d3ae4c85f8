/* vpi/board: one virtual Raspberry Pi board: model, identity, OTP, SPI EEPROM,
 * options and faults, persisted in a state directory.
 *
 * A struct vpi_board is opaque and thread-safe (a mutex inside): the board's
 * device thread, the bus and the test may all call these functions. The device
 * side is written from the specs in shared/spec, independently of the host side
 * (it never calls src/config, src/records, src/proto or src/artefacts). */
#ifndef RPI_SB_VPI_BOARD_H
#define RPI_SB_VPI_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Named guesses (doc/virtual-pi.md lists them; the first real board settles them). */
/* rpiboot.md §7.1: re-attach after a stage change "~1.5 s" is inferred; the
 * simulator uses a short delay by default so tests stay fast. */
#define VPI_GUESS_REENUM_MS 50u
/* rpiboot.md §1.4/§4.6: a board returns to USB boot mode after a reboot only if
 * nRPIBOOT (or the Pi 5 power button) is still held; we assume the jig holds it. */
#define VPI_GUESS_JIG_HOLDS_RPIBOOT 1
/* rpiboot.md §6 eeprom_write_protect: effective only while /WP is low; we
 * assume the board pulls /WP low. */
#define VPI_GUESS_WP_PIN_LOW 1

enum vpi_chip { VPI_CHIP_2710 = 0x2710, VPI_CHIP_2711 = 0x2711, VPI_CHIP_2712 = 0x2712 };
enum vpi_storage_kind { VPI_STORAGE_SD, VPI_STORAGE_EMMC, VPI_STORAGE_NVME };

struct vpi_model_info {
	const char *name;        /* "pi5","pi500","cm5","cm5lite","pi4","pi400","cm4","zero2w" */
	const char *product;     /* device-tree model string */
	enum vpi_chip chip;
	uint16_t usb_pid;        /* 0x2712, 0x2711, 0x2764 */
	uint32_t revision_code;  /* new-style revision code */
	uint64_t ram_bytes;
	enum vpi_storage_kind storage;
	uint64_t storage_bytes;
};

struct vpi_faults {
	char unplug_phase[32];   /* "rom","recovery","bootloader","gadget","download","flash",... "" = none */
	uint64_t unplug_offset;  /* bytes into that phase's bulk data (0 = at its start) */
	char stall_phase[32];    /* stop answering in that phase */
	char fail_command[64];   /* fastboot command prefix answered with FAIL, e.g. "oem cryptinit" */
	uint64_t storage_bytes;  /* storage size override (0 = model default) */
	int64_t bitflip_offset;  /* flip bit 0 of the byte written to storage at this absolute offset; -1 = none */
	unsigned slow_enum_ms;   /* re-enumeration delay */
	bool duplicate_descriptor; /* boot ROM shows up twice on the bus */
};

struct vpi_board_opts {
	uint64_t link_bytes_per_s;    /* 0 = unlimited */
	uint64_t storage_bytes_per_s; /* 0 = model default/unlimited */
	uint32_t serial_seed;         /* deterministic identity from (model, seed) */
	struct vpi_faults faults;
	/* The jig releases nRPIBOOT / the power button after power-on, so a
	 * reboot goes to the SPI bootloader instead of back to USB boot mode
	 * (default false: held, see VPI_GUESS_JIG_HOLDS_RPIBOOT). */
	bool rpiboot_released;
	/* The SPI flash /WP pin is pulled high, so the status-register write
	 * protect has no effect (default false: pin low, VPI_GUESS_WP_PIN_LOW). */
	bool wp_pin_high;
};

struct vpi_board; /* opaque; thread-safe (mutex inside) */

/* Default options: unlimited link, no faults (bitflip_offset = -1),
 * slow_enum_ms = VPI_GUESS_REENUM_MS. */
void vpi_board_opts_init(struct vpi_board_opts *o);

/* Model table lookups. NULL when unknown. */
const struct vpi_model_info *vpi_model_find(const char *name);
const struct vpi_model_info *vpi_model_at(size_t i);   /* NULL past the end */

/* Where the real firmware fixtures live (pieeprom-*.bin, recovery.bin ...).
 * Order: vpi_set_firmware_dir(), env RPI_SB_VPI_FIRMWARE, compiled-in default. */
void vpi_set_firmware_dir(const char *dir);
const char *vpi_firmware_dir(void);

/* Open (creating on first use) the board @model with state in @state_dir.
 * @opts may be NULL for defaults. 0 or -errno (-EINVAL unknown model). */
int vpi_board_open(const char *model, const char *state_dir, const struct vpi_board_opts *opts,
		   struct vpi_board **out);
void vpi_board_close(struct vpi_board *b);

const struct vpi_model_info *vpi_board_model(const struct vpi_board *b);
const char *vpi_board_state_dir(const struct vpi_board *b);
uint32_t vpi_board_rom_serial(const struct vpi_board *b);     /* 32-bit, low half of serial64 */
uint64_t vpi_board_serial64(const struct vpi_board *b);       /* DUID serial, 16 hex */
void vpi_board_macs(const struct vpi_board *b, uint8_t eth[6], uint8_t wifi[6], uint8_t bt[6]);
const char *vpi_board_storage_path(const struct vpi_board *b);  /* <state>/storage.img */
uint64_t vpi_board_storage_bytes(const struct vpi_board *b);
const char *vpi_board_storage_hwid(const struct vpi_board *b);  /* MMC CID (32 hex) or NVMe serial */
const struct vpi_faults *vpi_board_faults(const struct vpi_board *b);
const struct vpi_board_opts *vpi_board_options(const struct vpi_board *b);

/* OTP */
int vpi_otp_fwcrypto_init(struct vpi_board *b);  /* idempotent; creates the device-unique key once */
int vpi_otp_fwcrypto_hmac(struct vpi_board *b, const void *msg, size_t len, uint8_t out[32]);
	/* -ENOKEY before init; the key never leaves */
int vpi_otp_fwcrypto_pubkey_pem(struct vpi_board *b, char **pem); /* device public key (getvar public-key) */
bool vpi_otp_key_hash_programmed(const struct vpi_board *b);
bool vpi_otp_jtag_locked(const struct vpi_board *b);
bool vpi_otp_eeprom_wp(const struct vpi_board *b);
bool vpi_otp_devkey_revoked(const struct vpi_board *b);
bool vpi_otp_fwcrypto_initialised(const struct vpi_board *b);
/* Burned customer key hash (all zero until programmed). */
void vpi_otp_key_hash(const struct vpi_board *b, uint8_t hash[32]);
/* Pi 4 rpiboot GPIO (0 = not programmed). */
unsigned vpi_otp_rpiboot_gpio(const struct vpi_board *b);

/* OTP programming, one-way, persisted at once. Programming the same key hash
 * again is a no-op (0); a different one on a programmed board is -EPERM. */
int vpi_otp_program_key_hash(struct vpi_board *b, const uint8_t hash[32]);
int vpi_otp_program_jtag_lock(struct vpi_board *b);
int vpi_otp_program_eeprom_wp(struct vpi_board *b);
int vpi_otp_program_rpiboot_gpio(struct vpi_board *b, unsigned gpio); /* 2711 only; -EOPNOTSUPP else */
int vpi_otp_program_revoke_devkey(struct vpi_board *b);

/* ECDSA P-256 signature (DER) of a SHA-256 digest with the device key
 * (oem fwcrypto sign-hash). *der is malloc'd. -ENOKEY before init. */
int vpi_otp_fwcrypto_sign_hash(struct vpi_board *b, const uint8_t digest[32], uint8_t **der, size_t *der_len);

/* SPI EEPROM (no EEPROM on Zero 2 W: -ENODEV). */
/* Copy of the whole image; caller frees *data. */
int vpi_eeprom_read(struct vpi_board *b, uint8_t **data, size_t *len);
/* Replace the image (recovery write). -EROFS when write-protected (see
 * vpi_eeprom_write_protected), -EFBIG when larger than the part. */
int vpi_eeprom_write(struct vpi_board *b, const void *data, size_t len);
/* The part refuses writes: OTP eeprom_wp set (the /WP pin is modelled as held
 * low; see doc/virtual-pi.md, VPI_GUESS_WP_PIN). */
bool vpi_eeprom_write_protected(const struct vpi_board *b);
/* The SPI flash status-register write protect (recovery eeprom_write_protect,
 * rpiboot.md §6): reversible, but while /WP is low a set protect cannot be
 * cleared (-EROFS). Persisted with the OTP file. */
int vpi_eeprom_set_write_protect(struct vpi_board *b, bool on);
/* EEPROM facts for getvars. */
int vpi_eeprom_info(struct vpi_board *b, uint32_t *size, char jedec[7], char unique_id[33], uint64_t *build_ts);

/* Firmware phases and faults, called from the board's device thread
 * (rom/recovery/bootloader here; vpi-gadget's "gadget", "download", "flash").
 * vpi_board_phase_enter() starts a phase: it returns -ENODEV when an
 * unplug fault fires at its start (offset 0). vpi_board_phase_bytes()
 * accounts bulk bytes moved in the phase: -ENODEV once the unplug offset is
 * reached. An unplug calls the hook (the bus detaches the device) and every
 * later call returns -ENODEV. vpi_board_phase_stalled(): the stall fault
 * names the current phase; the firmware then stops answering. */
int vpi_board_phase_enter(struct vpi_board *b, const char *phase);
int vpi_board_phase_bytes(struct vpi_board *b, uint64_t n);
bool vpi_board_phase_stalled(struct vpi_board *b);
bool vpi_board_unplugged(const struct vpi_board *b);
/* Pull the cable now (test or operator action). */
void vpi_board_unplug(struct vpi_board *b);
/* Clear the unplugged state (the cable is plugged in again). */
void vpi_board_replug(struct vpi_board *b);
void vpi_board_set_unplug_hook(struct vpi_board *b, void (*fn)(void *usrptr), void *usrptr);

/* Logging from the simulator: appended to <state>/vpi.log, and to stderr when
 * env RPI_SB_VPI_VERBOSE is set. */
void vpi_log(struct vpi_board *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* struct vpi_fb_channel and vpi_fastbootd_serve() live in vpi/fastbootd.h (vpi-gadget). */

#endif
