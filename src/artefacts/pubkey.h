/* pubkey: the customer RSA-2048 public key in every form the chain of trust
 * uses: PEM in, `pubkey.bin` (264 bytes: N little-endian, e LE64), the OTP key
 * hash (SHA-256 of pubkey.bin), the operator fingerprint, and PKCS#1 v1.5
 * verification. Pure functions: any thread. */
#ifndef RPI_SB_ARTEFACTS_PUBKEY_H
#define RPI_SB_ARTEFACTS_PUBKEY_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>

#include "artefacts/art_err.h"

#define PUBKEY_BIN_LEN 264
#define RSA2048_BYTES 256
#define SHA256_BYTES 32
#define FINGERPRINT_HEX_LEN 64
#define FINGERPRINT_ARM_LEN 8	/* operator types the last 8 hex to arm OTP */

struct rsa_pubkey {
	uint8_t n[RSA2048_BYTES];	/* modulus, big-endian */
	uint8_t e[8];			/* public exponent, big-endian */
};

/* Extract an RSA-2048 public key from a parsed key; anything else (EC, RSA of
 * another size) is refused with a message naming @what and the key found. */
int pubkey_from_pk(mbedtls_pk_context *pk, const char *what, struct rsa_pubkey *out,
		   struct art_err *err);

/* Load a PEM file holding a public key (SubjectPublicKeyInfo or PKCS#1) or a
 * private key (its public half is taken). The bytes are read into locked memory. */
int pubkey_load_pem(const char *path, struct rsa_pubkey *out, struct art_err *err);

/* pubkey.bin encoding (spec §3.1) and back. */
void pubkey_to_bin(const struct rsa_pubkey *key, uint8_t out[PUBKEY_BIN_LEN]);
int pubkey_from_bin(const uint8_t in[PUBKEY_BIN_LEN], struct rsa_pubkey *out, struct art_err *err);

/* OTP customer key hash = SHA-256(pubkey.bin). The station's key fingerprint
 * is this same value as 64 lower-case hex (so it matches recovery.bin's
 * "Public key hash" and the CUSTOMER_KEY_HASH metadata). */
void pubkey_otp_hash(const struct rsa_pubkey *key, uint8_t hash[SHA256_BYTES]);
void pubkey_fingerprint(const struct rsa_pubkey *key, char hex[FINGERPRINT_HEX_LEN + 1]);
/* The hash as the 8 OTP rows hold it (spec §3.2, inferred word order):
 * row k = LE32(hash[4k..4k+3]). */
void pubkey_otp_rows(const struct rsa_pubkey *key, uint32_t rows[8]);

/* PKCS#1 v1.5 verify of @sig over a SHA-256 @hash. 0, or -EBADMSG if it does
 * not verify. */
int pubkey_verify_hash(const struct rsa_pubkey *key, const uint8_t hash[SHA256_BYTES],
		       const uint8_t sig[RSA2048_BYTES]);
/* Same over the SHA-256 of @data. */
int pubkey_verify(const struct rsa_pubkey *key, const uint8_t *data, size_t len,
		  const uint8_t sig[RSA2048_BYTES]);

/* "-----BEGIN PUBLIC KEY-----" PEM, malloc'd. 0 or -errno. */
int pubkey_to_pem(const struct rsa_pubkey *key, char **pem);

#endif
