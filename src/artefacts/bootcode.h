/* bootcode: BCM2712 second-stage signature blocks (spec §4.1), as
 * `rpi-sign-bootcode -c 2712 -n 16 -v 0` appends them: counter-signing an
 * RPi-signed bootcode.bin / bootsys / recovery.bin with the customer key, and
 * reading the blocks back. Any thread (state lives in the caller's buffers). */
#ifndef RPI_SB_ARTEFACTS_BOOTCODE_H
#define RPI_SB_ARTEFACTS_BOOTCODE_H

#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"
#include "artefacts/pubkey.h"
#include "artefacts/sign.h"

#define BOOTCODE_BLOCK_LEN 532		/* length, keynum, version, sig[256], pubkey.bin[264] */
#define BOOTCODE_MAX_SIGNED 112640	/* MAX_BIN_SIZE of the tool (110 KiB) */
#define BOOTCODE_KEYNUM_CUSTOMER 16
#define BOOTCODE_VERSION_MAX 32

struct bootcode_block {
	size_t offset;		/* of the block in the stage = its length field */
	int32_t keynum;		/* 0..4 Raspberry Pi ROM key, 16 customer */
	int32_t version;	/* anti-rollback version */
	uint8_t sig[RSA2048_BYTES];
	uint8_t pubkey_bin[PUBKEY_BIN_LEN];
};

/* The outermost block of @data (at len-532, valid only if its length field
 * equals its offset). -ENOENT when there is none (e.g. a BCM2711 stage). */
int bootcode_outer_block(const uint8_t *data, size_t len, struct bootcode_block *out);

/* Verify @blk's signature over data[0, blk->offset + 12) with its own key. */
int bootcode_block_verify(const uint8_t *data, const struct bootcode_block *blk);

/* Append a customer block (keynum 16, @version) signed by @s. The input must
 * be an RPi-signed BCM2712 stage (outer block keynum 0..4); counter-signing
 * twice is refused (no room in the EEPROM for a second block). *out is
 * malloc'd, *outlen = len + 532. */
int bootcode_counter_sign(struct signer *s, const uint8_t *in, size_t len, int32_t version,
			  uint8_t **out, size_t *outlen, struct art_err *err);

#endif
