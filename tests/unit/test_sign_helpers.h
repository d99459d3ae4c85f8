/* test_sign_helpers: small helpers shared by the artefacts unit tests
 * (fixture paths, whole-file reads, hashes, openssl as the signature oracle). */
#ifndef TEST_SIGN_HELPERS_H
#define TEST_SIGN_HELPERS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "artefacts/hex.h"

#define FIX(name) SHARED_DIR "/fixtures/rpi-firmware/" name

static inline uint8_t *th_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[n] = 0;
		*len = (size_t)n;
	}
	return buf;
}

static inline int th_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* 64 hex of SHA-256 into a static-free caller buffer. */
static inline void th_sha256_hex(const void *data, size_t len, char out[65])
{
	uint8_t h[32];

	mbedtls_sha256_ret(data, len, h, 0);
	hex_encode(h, 32, out);
}

/* mkdtemp under TMPDIR; caller rm -rf's with th_rmrf. */
static inline char *th_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *p = NULL;

	if (asprintf(&p, "%s/artefacts-test.XXXXXX", t && *t ? t : "/tmp") < 0)
		return NULL;
	return mkdtemp(p);
}

static inline void th_rmrf(char *dir)
{
	char *cmd = NULL;

	if (dir && asprintf(&cmd, "rm -rf '%s'", dir) >= 0) {
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	free(cmd);
	free(dir);
}

/* openssl as the oracle: does @sig (256 B) verify over @data with the PEM
 * public key @pub? Returns openssl's exit status (0 = Verified OK). */
static inline int th_openssl_verify(const char *dir, const char *pub, const void *data,
				    size_t len, const uint8_t *sig)
{
	char *d = NULL, *s = NULL, *cmd = NULL;
	int rc = -1;

	if (asprintf(&d, "%s/oracle.data", dir) < 0 || asprintf(&s, "%s/oracle.sig", dir) < 0)
		goto out;
	if (th_write(d, data, len) < 0 || th_write(s, sig, 256) < 0)
		goto out;
	if (asprintf(&cmd, "openssl dgst -sha256 -verify '%s' -signature '%s' '%s' >/dev/null 2>&1",
		     pub, s, d) < 0)
		goto out;
	rc = system(cmd);
	rc = rc == -1 ? -1 : WEXITSTATUS(rc);
out:
	free(d);
	free(s);
	free(cmd);
	return rc;
}

static inline int th_sh(const char *cmd)
{
	int rc = system(cmd);

	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

#endif
