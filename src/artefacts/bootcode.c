/* bootcode: BCM2712 signature blocks: parse, verify, counter-sign (bootcode.h).
 * Any thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "artefacts/bootcode.h"

static int32_t le32s(const uint8_t *p)
{
	return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			 (uint32_t)p[3] << 24);
}

static void put_le32s(uint8_t *p, int32_t v)
{
	uint32_t u = (uint32_t)v;

	p[0] = (uint8_t)u;
	p[1] = (uint8_t)(u >> 8);
	p[2] = (uint8_t)(u >> 16);
	p[3] = (uint8_t)(u >> 24);
}

int bootcode_outer_block(const uint8_t *data, size_t len, struct bootcode_block *out)
{
	const uint8_t *b;
	size_t off;

	if (len < BOOTCODE_BLOCK_LEN)
		return -ENOENT;
	off = len - BOOTCODE_BLOCK_LEN;
	b = data + off;
	if (le32s(b) < 0 || (size_t)le32s(b) != off)
		return -ENOENT;
	out->offset = off;
	out->keynum = le32s(b + 4);
	out->version = le32s(b + 8);
	memcpy(out->sig, b + 12, RSA2048_BYTES);
	memcpy(out->pubkey_bin, b + 12 + RSA2048_BYTES, PUBKEY_BIN_LEN);
	return 0;
}

int bootcode_block_verify(const uint8_t *data, const struct bootcode_block *blk)
{
	struct rsa_pubkey key;

	if (pubkey_from_bin(blk->pubkey_bin, &key, NULL) < 0)
		return -EINVAL;
	return pubkey_verify(&key, data, blk->offset + 12, blk->sig);
}

int bootcode_counter_sign(struct signer *s, const uint8_t *in, size_t len, int32_t version,
			  uint8_t **out, size_t *outlen, struct art_err *err)
{
	struct bootcode_block outer;
	uint8_t *buf;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (version < 0 || version > BOOTCODE_VERSION_MAX)
		return art_err_set(err, -EINVAL, "bootcode version %d is outside 0..%d", version,
				   BOOTCODE_VERSION_MAX);
	if (bootcode_outer_block(in, len, &outer) < 0)
		return art_err_set(err, -EINVAL, "stage of %zu bytes has no BCM2712 signature "
				   "block at its end: not a Raspberry Pi signed BCM2712 stage (a "
				   "BCM2711 stage is never counter-signed)", len);
	if (outer.keynum == BOOTCODE_KEYNUM_CUSTOMER)
		return art_err_set(err, -EALREADY, "stage is already counter-signed (customer "
				   "block at offset %zu); start from the Raspberry Pi signed file",
				   outer.offset);
	if (outer.keynum < 0 || outer.keynum > 4)
		return art_err_set(err, -EINVAL, "stage's outer signature block has keynum %d, not "
				   "a Raspberry Pi ROM key (0..4)", outer.keynum);
	if (len + BOOTCODE_BLOCK_LEN > BOOTCODE_MAX_SIGNED)
		return art_err_set(err, -EFBIG, "counter-signed stage would be %zu bytes, more than "
				   "the %d the ROM loads", len + BOOTCODE_BLOCK_LEN,
				   BOOTCODE_MAX_SIGNED);
	buf = malloc(len + BOOTCODE_BLOCK_LEN);
	if (!buf)
		return art_err_set(err, -ENOMEM, "out of memory");
	memcpy(buf, in, len);
	put_le32s(buf + len, (int32_t)len);
	put_le32s(buf + len + 4, BOOTCODE_KEYNUM_CUSTOMER);
	put_le32s(buf + len + 8, version);
	rc = signer_sign(s, buf, len + 12, buf + len + 12, err);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	pubkey_to_bin(signer_pubkey(s), buf + len + 12 + RSA2048_BYTES);
	*out = buf;
	*outlen = len + BOOTCODE_BLOCK_LEN;
	return 0;
}
