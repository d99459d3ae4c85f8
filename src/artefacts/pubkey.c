/* pubkey: RSA-2048 public key forms and verification (see pubkey.h).
 * Pure functions over caller-owned data: any thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>

#include "artefacts/hex.h"
#include "artefacts/keyfile.h"
#include "artefacts/pubkey.h"
#include "artefacts/secmem.h"

int pubkey_from_pk(mbedtls_pk_context *pk, const char *what, struct rsa_pubkey *out,
		   struct art_err *err)
{
	size_t bits = mbedtls_pk_get_bitlen(pk);
	mbedtls_rsa_context *rsa;

	if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_RSA)
		return art_err_set(err, -EINVAL,
				   "%s: this is a%s %s key of %zu bits; Raspberry Pi secure boot "
				   "needs an RSA-2048 key (make one with `rpi-sb-provisioner key "
				   "generate`)", what,
				   mbedtls_pk_get_type(pk) == MBEDTLS_PK_ECKEY ? "n" : "",
				   mbedtls_pk_get_name(pk), bits);
	if (bits != 2048)
		return art_err_set(err, -EINVAL,
				   "%s: this is an RSA-%zu key; Raspberry Pi secure boot needs "
				   "exactly RSA-2048 (make one with `rpi-sb-provisioner key "
				   "generate`)", what, bits);
	rsa = mbedtls_pk_rsa(*pk);
	memset(out, 0, sizeof(*out));
	if (mbedtls_rsa_export_raw(rsa, out->n, sizeof(out->n), NULL, 0, NULL, 0, NULL, 0,
				   out->e, sizeof(out->e)) != 0)
		return art_err_set(err, -EINVAL,
				   "%s: RSA public exponent does not fit in 64 bits", what);
	return 0;
}

int pubkey_load_pem(const char *path, struct rsa_pubkey *out, struct art_err *err)
{
	mbedtls_pk_context pk;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	mbedtls_pk_init(&pk);
	rc = keyfile_read(path, &buf, &len, NULL, err);
	if (rc < 0)
		goto out;
	if (mbedtls_pk_parse_public_key(&pk, buf, len) != 0) {
		mbedtls_pk_free(&pk);
		mbedtls_pk_init(&pk);
		if (mbedtls_pk_parse_key(&pk, buf, len, NULL, 0) != 0) {
			rc = art_err_set(err, -EINVAL,
					 "%s: not a PEM public or private key (unencrypted PEM "
					 "expected)", path);
			goto out;
		}
	}
	rc = pubkey_from_pk(&pk, path, out, err);
out:
	mbedtls_pk_free(&pk);
	secmem_free(buf);
	return rc;
}

void pubkey_to_bin(const struct rsa_pubkey *key, uint8_t out[PUBKEY_BIN_LEN])
{
	for (size_t i = 0; i < RSA2048_BYTES; i++)
		out[i] = key->n[RSA2048_BYTES - 1 - i];
	for (size_t i = 0; i < 8; i++)
		out[RSA2048_BYTES + i] = key->e[7 - i];
}

int pubkey_from_bin(const uint8_t in[PUBKEY_BIN_LEN], struct rsa_pubkey *out, struct art_err *err)
{
	for (size_t i = 0; i < RSA2048_BYTES; i++)
		out->n[i] = in[RSA2048_BYTES - 1 - i];
	for (size_t i = 0; i < 8; i++)
		out->e[i] = in[PUBKEY_BIN_LEN - 1 - i];
	if (!(out->n[0] & 0x80))
		return art_err_set(err, -EINVAL, "pubkey.bin: modulus is not 2048 bits");
	if (!(out->e[7] & 1))
		return art_err_set(err, -EINVAL, "pubkey.bin: public exponent is even");
	return 0;
}

void pubkey_otp_hash(const struct rsa_pubkey *key, uint8_t hash[SHA256_BYTES])
{
	uint8_t bin[PUBKEY_BIN_LEN];

	pubkey_to_bin(key, bin);
	mbedtls_sha256_ret(bin, sizeof(bin), hash, 0);
}

void pubkey_fingerprint(const struct rsa_pubkey *key, char hex[FINGERPRINT_HEX_LEN + 1])
{
	uint8_t hash[SHA256_BYTES];

	pubkey_otp_hash(key, hash);
	hex_encode(hash, sizeof(hash), hex);
}

void pubkey_otp_rows(const struct rsa_pubkey *key, uint32_t rows[8])
{
	uint8_t h[SHA256_BYTES];

	pubkey_otp_hash(key, h);
	for (size_t k = 0; k < 8; k++)
		rows[k] = (uint32_t)h[4 * k] | (uint32_t)h[4 * k + 1] << 8 |
			  (uint32_t)h[4 * k + 2] << 16 | (uint32_t)h[4 * k + 3] << 24;
}

static int rsa_from_pubkey(mbedtls_rsa_context *rsa, const struct rsa_pubkey *key)
{
	if (mbedtls_rsa_import_raw(rsa, key->n, sizeof(key->n), NULL, 0, NULL, 0, NULL, 0,
				   key->e, sizeof(key->e)) != 0 || mbedtls_rsa_complete(rsa) != 0 ||
	    mbedtls_rsa_check_pubkey(rsa) != 0)
		return -EINVAL;
	return 0;
}

int pubkey_verify_hash(const struct rsa_pubkey *key, const uint8_t hash[SHA256_BYTES],
		       const uint8_t sig[RSA2048_BYTES])
{
	mbedtls_rsa_context rsa;
	int rc;

	mbedtls_rsa_init(&rsa, MBEDTLS_RSA_PKCS_V15, 0);
	rc = rsa_from_pubkey(&rsa, key);
	if (rc == 0 && mbedtls_rsa_pkcs1_verify(&rsa, NULL, NULL, MBEDTLS_RSA_PUBLIC,
						 MBEDTLS_MD_SHA256, SHA256_BYTES, hash, sig) != 0)
		rc = -EBADMSG;
	mbedtls_rsa_free(&rsa);
	return rc;
}

int pubkey_verify(const struct rsa_pubkey *key, const uint8_t *data, size_t len,
		  const uint8_t sig[RSA2048_BYTES])
{
	uint8_t hash[SHA256_BYTES];

	mbedtls_sha256_ret(data, len, hash, 0);
	return pubkey_verify_hash(key, hash, sig);
}

int pubkey_to_pem(const struct rsa_pubkey *key, char **pem)
{
	mbedtls_pk_context pk;
	unsigned char buf[1024];
	int rc;

	*pem = NULL;
	mbedtls_pk_init(&pk);
	if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)) != 0) {
		rc = -ENOMEM;
		goto out;
	}
	rc = rsa_from_pubkey(mbedtls_pk_rsa(pk), key);
	if (rc < 0)
		goto out;
	if (mbedtls_pk_write_pubkey_pem(&pk, buf, sizeof(buf)) != 0) {
		rc = -EINVAL;
		goto out;
	}
	*pem = strdup((const char *)buf);
	rc = *pem ? 0 : -ENOMEM;
out:
	mbedtls_pk_free(&pk);
	return rc;
}
