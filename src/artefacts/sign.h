/* sign: RSA-2048 PKCS#1 v1.5 / SHA-256 signatures with the customer key,
 * either from a PEM file (mbedtls) or through an external signer that
 * follows usbboot's HSM wrapper contract (spec §7):
 *
 *     WRAPPER [ARGS...] -a rsa2048-sha256 INPUT_FILE   → 512 hex chars on stdout
 *
 * A PEM key is re-read for every signature into locked memory, parsed, used
 * and wiped; between signatures only the path and the public key are held.
 * Every signature (local or external) is verified against the public key
 * before it is returned. signer_sign() may be called from any thread; open and
 * close belong to the thread that owns the signer. */
#ifndef RPI_SB_ARTEFACTS_SIGN_H
#define RPI_SB_ARTEFACTS_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"
#include "artefacts/pubkey.h"

#define SIGNER_TIMEOUT_MS_DEFAULT 60000
#define SIGNER_MAX_ARGS 32

struct signer;

/* [key] pem: a private key file. Refuses non-RSA-2048 keys, and a file not
 * owned by root or this process's user, or open to group/others (-EPERM,
 * keyfile_check_mode); the check is repeated each time the key is read. */
int signer_open_pem(const char *pem_path, struct signer **out, struct art_err *err);

/* [key] signer + [key] public: the command line is split on blanks (no shell),
 * run with a clean environment (PATH, LC_ALL=C only) and killed after
 * @timeout_ms (0 = SIGNER_TIMEOUT_MS_DEFAULT). */
int signer_open_external(const char *command, const char *public_pem, unsigned timeout_ms,
			 struct signer **out, struct art_err *err);

/* The key configuration as config-keys.md defines it: exactly one of @pem or
 * @command (then @public_pem is required). Neither → -ENOENT ("no key"). */
int signer_open_config(const char *pem, const char *command, const char *public_pem,
		       unsigned timeout_ms, struct signer **out, struct art_err *err);

void signer_close(struct signer *s);

const struct rsa_pubkey *signer_pubkey(const struct signer *s);
/* A warning found when opening (e.g. key file mode), or NULL. */
const char *signer_warning(const struct signer *s);
/* "file PATH" or "external signer PROG": for logs. Never holds secrets. */
const char *signer_describe(const struct signer *s);

/* Sign SHA-256(@data). The result verifies against signer_pubkey(). */
int signer_sign(struct signer *s, const uint8_t *data, size_t len, uint8_t sig[RSA2048_BYTES],
		struct art_err *err);

/* Sign a whole file (e.g. a boot.img too large to copy): streams the SHA-256
 * into @hash; an external signer gets @path itself, as rpi-eeprom-digest does. */
int signer_sign_file(struct signer *s, const char *path, uint8_t hash[SHA256_BYTES],
		     uint8_t sig[RSA2048_BYTES], struct art_err *err);

/* Make a new RSA-2048 key (e = 65537); PKCS#1 PEM text in secmem (free with
 * secmem_free), and its public key. */
int sign_generate_key(char **pem_secmem, size_t *pem_len, struct rsa_pubkey *pub,
		      struct art_err *err);

#endif
