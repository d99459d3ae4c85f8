/* vpi/eeprom_dev: device-side parser and verifier of EEPROM images, `.sig`
 * files, pubkey.bin keys and second-stage signature trailers.
 *
 * Written from shared/spec/secure-boot-artefacts.md, independently of the host
 * side. Every length is checked against the buffer before use. Pure functions,
 * callable from any thread. */
#include "vpi/eeprom_dev.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/bignum.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>

const uint8_t vpi_rom_key0_hash[32] = {
	0xe3, 0x34, 0x54, 0x47, 0x54, 0x9b, 0xda, 0x1f, 0x54, 0x16, 0xa4, 0x79, 0x26, 0x4b, 0xe5, 0x93,
	0xd6, 0x0f, 0x52, 0x7c, 0x70, 0xd6, 0x66, 0xd1, 0x0e, 0xad, 0x90, 0x8f, 0xd0, 0x27, 0xfd, 0x27,
};

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static void why_set(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

void vpi_sha256(const void *data, size_t len, uint8_t out[32])
{
	mbedtls_sha256_ret(data, len, out, 0);
}

int vpi_ee_parse(const uint8_t *img, size_t len, struct vpi_ee_section **secs, size_t *n)
{
	struct vpi_ee_section *v = NULL;
	size_t cnt = 0, cap = 0;
	uint64_t off = 0;
	int r = 0;

	*secs = NULL;
	*n = 0;
	while (off + 8 <= len) {
		uint32_t magic = be32(img + off), slen = be32(img + off + 4);
		struct vpi_ee_section *s;

		if (magic == 0 || magic == 0xFFFFFFFFu)
			break;
		if ((magic & 0xFFFFF00Fu) != 0x55AAF00Fu || off + 8 + (uint64_t)slen > len) {
			r = -EBADMSG;
			goto out;
		}
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct vpi_ee_section *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		s = &v[cnt++];
		memset(s, 0, sizeof(*s));
		s->magic = magic;
		s->offset = (uint32_t)off;
		s->length = slen;
		if (off != 0 && magic != VPI_EE_MAGIC_PAD && magic != VPI_EE_MAGIC_BOOTCODE) {
			if (slen < 16) {
				r = -EBADMSG;
				goto out;
			}
			memcpy(s->name, img + off + 8, 12);
			s->name[12] = '\0';
		}
		off = (off + 8 + slen + 7) & ~(uint64_t)7;
	}
	*secs = v;
	*n = cnt;
	v = NULL;
out:
	free(v);
	return r;
}

int vpi_ee_file(const uint8_t *img, size_t len, const char *name, const uint8_t **data,
		size_t *dlen)
{
	struct vpi_ee_section *s = NULL;
	size_t n = 0;
	int r = vpi_ee_parse(img, len, &s, &n);

	if (r)
		return r;
	r = -ENOENT;
	if (strcmp(name, "bootcode.bin") == 0) {
		if (n > 0) {
			*data = img + s[0].offset + 8;
			*dlen = s[0].length;
			r = 0;
		}
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i].magic == VPI_EE_MAGIC_FILE && strcmp(s[i].name, name) == 0) {
			*data = img + s[i].offset + 24;
			*dlen = s[i].length - 16;
			r = 0;
			break;
		}
	}
out:
	free(s);
	return r;
}

long vpi_ee_config_int(const uint8_t *conf, size_t len, const char *key)
{
	size_t klen = strlen(key), i = 0;
	long val = -1;

	while (i < len) {
		size_t e = i;
		while (e < len && conf[e] != '\n')
			e++;
		if (e - i > klen && memcmp(conf + i, key, klen) == 0 && conf[i + klen] == '=') {
			char buf[32];
			size_t vl = e - i - klen - 1;
			if (vl >= sizeof(buf))
				vl = sizeof(buf) - 1;
			memcpy(buf, conf + i + klen + 1, vl);
			buf[vl] = '\0';
			val = strtol(buf, NULL, 0);
		}
		i = e + 1;
	}
	return val;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex_exact(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int vpi_sig_parse(const void *text, size_t len, struct vpi_sig *sig, char *why, size_t whylen)
{
	const char *t = text;
	size_t i = 0, line = 0;

	memset(sig, 0, sizeof(*sig));
	if (len == 0) {
		why_set(why, whylen, "signature file is empty");
		return -EBADMSG;
	}
	while (i < len) {
		const char *l = t + i;
		const char *nl = memchr(l, '\n', len - i);
		size_t ll;

		if (!nl) {
			why_set(why, whylen, "Failed to parse signature file: line %zu has no LF", line + 1);
			return -EBADMSG;
		}
		ll = (size_t)(nl - l);
		i += ll + 1;
		if (line++ == 0) {
			if (hex_exact(l, ll, sig->sha256, 32) != 0) {
				why_set(why, whylen, "Failed to parse signature file: line 1 is not a "
					"SHA-256 in hex");
				return -EBADMSG;
			}
			continue;
		}
		if (ll > 4 && memcmp(l, "ts: ", 4) == 0) {
			uint64_t v = 0;
			if (ll == 4 || ll > 14)
				goto bad_ts;
			for (size_t k = 4; k < ll; k++) {
				if (l[k] < '0' || l[k] > '9')
					goto bad_ts;
				v = v * 10 + (uint64_t)(l[k] - '0');
			}
			if (v > 0xFFFFFFFFull)
				goto bad_ts;
			sig->has_ts = true;
			sig->ts = v;
		} else if (ll >= 8 && memcmp(l, "rsa2048:", 8) == 0) {
			if (ll < 9 || l[8] != ' ' || hex_exact(l + 9, ll - 9, sig->rsa, 256) != 0) {
				why_set(why, whylen, "Failed to parse signature file: rsa2048 value "
					"is not 512 hex digits");
				return -EBADMSG;
			}
			sig->has_rsa = true;
		} else if (ll > 12 && memcmp(l, "target-soc: ", 12) == 0) {
			sig->target_soc = (int)strtol(l + 12, NULL, 16);
		}
		/* unknown keys are ignored (§2.4) */
	}
	return 0;
bad_ts:
	why_set(why, whylen, "Failed to parse signature file: bad ts line");
	return -EBADMSG;
}

bool vpi_pubkey_present(const uint8_t *pubkey, size_t len)
{
	uint8_t acc = 0;

	if (!pubkey || len != VPI_PUBKEY_BIN_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		acc |= pubkey[i];
	return acc != 0;
}

int vpi_rsa_verify(const uint8_t pubkey[VPI_PUBKEY_BIN_LEN], const uint8_t hash[32],
		   const uint8_t sig[256])
{
	mbedtls_rsa_context rsa;
	uint8_t n_be[256], e_be[8];
	int r = 0;

	for (int i = 0; i < 256; i++)
		n_be[i] = pubkey[255 - i];
	for (int i = 0; i < 8; i++)
		e_be[i] = pubkey[263 - i];
	mbedtls_rsa_init(&rsa, MBEDTLS_RSA_PKCS_V15, 0);
	if (mbedtls_rsa_import_raw(&rsa, n_be, 256, NULL, 0, NULL, 0, NULL, 0, e_be, 8) != 0 ||
	    mbedtls_rsa_complete(&rsa) != 0 || mbedtls_rsa_get_len(&rsa) != 256) {
		r = -EINVAL;
		goto out;
	}
	if (mbedtls_rsa_pkcs1_verify(&rsa, NULL, NULL, MBEDTLS_RSA_PUBLIC, MBEDTLS_MD_SHA256, 32,
				     hash, sig) != 0)
		r = -EKEYREJECTED;
out:
	mbedtls_rsa_free(&rsa);
	return r;
}

/* One 2712 block at the end of img[0..len): valid when its length field equals
 * its offset. Fills the fields; -ENOENT when there is no valid block. */
struct blk2712 {
	size_t off;
	uint32_t keynum, version;
	const uint8_t *sig, *key;
};

static int block2712_at_end(const uint8_t *img, size_t len, struct blk2712 *b)
{
	if (len < VPI_SIG_BLOCK_2712)
		return -ENOENT;
	b->off = len - VPI_SIG_BLOCK_2712;
	if (le32(img + b->off) != b->off)
		return -ENOENT;
	b->keynum = le32(img + b->off + 4);
	b->version = le32(img + b->off + 8);
	b->sig = img + b->off + 12;
	b->key = img + b->off + 268;
	return 0;
}

static int block2712_verify(const uint8_t *img, const struct blk2712 *b)
{
	uint8_t h[32];

	vpi_sha256(img, b->off + 12, h);
	return vpi_rsa_verify(b->key, h, b->sig);
}

int vpi_bootcode2712_check(const uint8_t *img, size_t len, const uint8_t otp_hash[32],
			   bool require_rpi_block, bool *customer_signed, char *why, size_t whylen)
{
	static const uint8_t zero[32];
	bool fused = memcmp(otp_hash, zero, 32) != 0;
	struct blk2712 outer, inner;
	uint8_t kh[32];
	bool c;

	c = block2712_at_end(img, len, &outer) == 0 && outer.keynum == VPI_KEYNUM_CUSTOMER;
	if (customer_signed)
		*customer_signed = c;
	if (fused || c) {
		if (!c) {
			why_set(why, whylen, "second stage is not counter-signed with the customer "
				"key (no keynum 16 block) but the OTP key hash is burned");
			return -EKEYREJECTED;
		}
		vpi_sha256(outer.key, VPI_PUBKEY_BIN_LEN, kh);
		if (memcmp(kh, otp_hash, 32) != 0) {
			why_set(why, whylen, fused ?
				"customer block key does not match the OTP key hash" :
				"counter-signed second stage on a board with no OTP key hash "
				"(checked against a zero hash)");
			return -EKEYREJECTED;
		}
		if (block2712_verify(img, &outer) != 0) {
			why_set(why, whylen, "customer signature of the second stage is invalid");
			return -EKEYREJECTED;
		}
		len = outer.off;
	}
	if (block2712_at_end(img, len, &inner) != 0) {
		if (!require_rpi_block)
			return 0;
		why_set(why, whylen, "second stage carries no Raspberry Pi signature block");
		return -EKEYREJECTED;
	}
	if (inner.keynum > 3) {
		why_set(why, whylen, "inner block keynum %u is not a ROM key", inner.keynum);
		return -EKEYREJECTED;
	}
	vpi_sha256(inner.key, VPI_PUBKEY_BIN_LEN, kh);
	if (memcmp(kh, vpi_rom_key0_hash, 32) != 0) {
		why_set(why, whylen, "second stage signed with a key the ROM does not hold");
		return -EKEYREJECTED;
	}
	if (block2712_verify(img, &inner) != 0) {
		why_set(why, whylen, "Raspberry Pi signature of the second stage is invalid");
		return -EKEYREJECTED;
	}
	return 0;
}

int vpi_bootcode2711_check(const uint8_t *img, size_t len, bool devkey_revoked, char *why,
			   size_t whylen)
{
	size_t off;
	uint32_t keynum;

	if (len < VPI_SIG_TRAILER_2711) {
		why_set(why, whylen, "second stage too short for a signature trailer");
		return -EKEYREJECTED;
	}
	off = len - VPI_SIG_TRAILER_2711;
	if (le32(img + off) != off) {
		why_set(why, whylen, "second stage has no Raspberry Pi signature trailer");
		return -EKEYREJECTED;
	}
	keynum = le32(img + off + 4);
	if (keynum > 1 || (keynum == 0 && devkey_revoked)) {
		why_set(why, whylen, "second stage signed with ROM key %u, which is %s", keynum,
			keynum > 1 ? "unknown" : "revoked in OTP");
		return -EKEYREJECTED;
	}
	return 0;
}
