/* vpi/eeprom_dev: the device side's own reading of Raspberry Pi boot artefacts:
 * the SPI EEPROM section chain, `.sig` files, `pubkey.bin` keys and the
 * BCM2711/BCM2712 second-stage signature trailers, written from
 * shared/spec/secure-boot-artefacts.md §1-§4 (never the host's parsers).
 * Pure functions on caller buffers; any thread. */
#ifndef RPI_SB_VPI_EEPROM_DEV_H
#define RPI_SB_VPI_EEPROM_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VPI_EE_MAGIC_BOOTCODE 0x55AAF00Fu
#define VPI_EE_MAGIC_FILE     0x55AAF11Fu
#define VPI_EE_MAGIC_RES      0x55AAF33Fu
#define VPI_EE_MAGIC_RES_LZ4  0x55AAF44Fu
#define VPI_EE_MAGIC_PAD      0x55AAFEEFu
#define VPI_PUBKEY_BIN_LEN    264u
#define VPI_SIG_BLOCK_2712    532u
#define VPI_SIG_TRAILER_2711  284u
#define VPI_KEYNUM_CUSTOMER   16u

struct vpi_ee_section {
	uint32_t magic;
	uint32_t offset;    /* header offset in the image */
	uint32_t length;    /* body length (bytes after the 8-byte header) */
	char name[13];      /* FILE/resource name, "" for bootcode and PAD */
};

/* Walk the chain (§1.2). *secs is malloc'd. -EBADMSG when a section is
 * corrupt or runs past the image. */
int vpi_ee_parse(const uint8_t *img, size_t len, struct vpi_ee_section **secs, size_t *n);

/* Content of a file (§1.4): "bootcode.bin" = section 0, else the first FILE
 * of that name. Points into @img. -ENOENT when absent. */
int vpi_ee_file(const uint8_t *img, size_t len, const char *name, const uint8_t **data,
		size_t *dlen);

/* Value of KEY=value in a bootconf.txt (last one wins), -1 when absent. */
long vpi_ee_config_int(const uint8_t *conf, size_t len, const char *key);

/* A parsed `.sig` file (§2.1, simulator rule §2.4). */
struct vpi_sig {
	uint8_t sha256[32];
	bool has_ts;
	uint64_t ts;
	int target_soc;      /* 0 when absent */
	bool has_rsa;
	uint8_t rsa[256];
};
/* 0, or -EBADMSG with a reason in @why ("Failed to parse signature file"). */
int vpi_sig_parse(const void *text, size_t len, struct vpi_sig *sig, char *why, size_t whylen);

/* RSA-2048 PKCS#1 v1.5 SHA-256 verify of @hash with a `pubkey.bin` key (§3.1).
 * 0, -EKEYREJECTED (bad signature) or -EINVAL (unusable key). */
int vpi_rsa_verify(const uint8_t pubkey[VPI_PUBKEY_BIN_LEN], const uint8_t hash[32],
		   const uint8_t sig[256]);

/* A usable pubkey.bin: 264 bytes and not the all-zero placeholder. */
bool vpi_pubkey_present(const uint8_t *pubkey, size_t len);

void vpi_sha256(const void *data, size_t len, uint8_t out[32]);

/* The BCM2712 ROM's check of a second stage (§4.2) with OTP hash @otp_hash
 * (all zero = not fused). 0 to run it, else -EKEYREJECTED with the reason in
 * @why. @customer_signed tells whether the outer block was keynum 16.
 * @require_rpi_block false only for simulator stand-ins (VPI_GUESS_STANDIN_RPI_BLOCK). */
int vpi_bootcode2712_check(const uint8_t *img, size_t len, const uint8_t otp_hash[32],
			   bool require_rpi_block, bool *customer_signed, char *why, size_t whylen);
/* The BCM2711 ROM check as the spec allows a simulator to model it (§4.4):
 * trailer present and keynum not revoked. */
int vpi_bootcode2711_check(const uint8_t *img, size_t len, bool devkey_revoked, char *why,
			   size_t whylen);

/* SHA-256 of ROM key 0's pubkey.bin as seen in every 2712 RPi block (§4.2 step 3). */
extern const uint8_t vpi_rom_key0_hash[32];

#endif
