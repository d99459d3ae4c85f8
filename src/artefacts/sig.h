/* sig: `.sig` files as rpi-eeprom-digest writes them (bootconf.sig, boot.sig,
 * pieeprom.sig): parse with full checks, write, and validate against data
 * and a public key. Pure functions: any thread.
 *
 * Format (spec §2.1): "<64 hex sha256>\n" ["ts: <unix>\n"] ["target-soc: N\n"]
 * ["rsa2048: <512 hex>\n"]. The acceptance rule of the peer (its 2.3.2 fix
 * for issue #337) is kept: a signed file must carry an rsa2048 value of
 * exactly 512 hex characters, and a present but malformed rsa2048 line is
 * always fatal (recovery.bin fails with "Bad signature"). */
#ifndef RPI_SB_ARTEFACTS_SIG_H
#define RPI_SB_ARTEFACTS_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"
#include "artefacts/pubkey.h"

#define SIG_FILE_MAX 4096

struct sig_file {
	uint8_t sha256[SHA256_BYTES];
	bool has_ts;
	uint32_t ts;
	unsigned target_soc;		/* 0 = no target-soc line, else 2711|2712 */
	bool has_rsa;
	uint8_t rsa[RSA2048_BYTES];	/* big-endian PKCS#1 v1.5 signature */
};

/* Parse @len bytes of sig text. -EINVAL with the line and offset on error. */
int sig_parse(const uint8_t *text, size_t len, struct sig_file *out, struct art_err *err);
int sig_load(const char *path, struct sig_file *out, struct art_err *err);

/* Render as text (lower-case hex, LF line ends), malloc'd, NUL-terminated;
 * *len excludes the NUL. 0 or -ENOMEM. */
int sig_format(const struct sig_file *sig, char **text, size_t *len);

/* Check @sig against @data: the sha256 line must match; if @require_rsa the
 * rsa2048 line must be present; when present and @key given, it must verify.
 * 0, -EBADMSG (mismatch / bad signature) or -EINVAL (missing line). */
int sig_validate(const struct sig_file *sig, const uint8_t *data, size_t len,
		 const struct rsa_pubkey *key, bool require_rsa, struct art_err *err);

/* The timestamp a new .sig gets: SOURCE_DATE_EPOCH when set (reproducible
 * builds, like rpi-eeprom-digest), else the current time. */
uint32_t sig_timestamp_now(void);

#endif
