/* sig: parse, format and validate `.sig` files (see sig.h).
 * Pure functions over caller buffers: any thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "artefacts/hex.h"
#include "artefacts/sig.h"

static int parse_ts(const char *v, size_t vlen, uint32_t *ts)
{
	uint64_t x = 0;

	if (vlen == 0 || vlen > 10)
		return -EINVAL;
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > UINT32_MAX)
		return -EINVAL;
	*ts = (uint32_t)x;
	return 0;
}

int sig_parse(const uint8_t *text, size_t len, struct sig_file *out, struct art_err *err)
{
	const char *t = (const char *)text;
	size_t pos = 0;
	unsigned line = 1;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return art_err_set(err, -EINVAL, "signature file is empty");
	if (len > SIG_FILE_MAX)
		return art_err_set(err, -EINVAL, "signature file is %zu bytes, more than %d: not a "
				   ".sig file", len, SIG_FILE_MAX);
	if (memchr(t, '\0', len))
		return art_err_set(err, -EINVAL, "signature file contains a NUL byte at offset %zu",
				   (size_t)((const char *)memchr(t, '\0', len) - t));
	if (len < 65 || t[64] != '\n' || hex_decode(t, 64, out->sha256, sizeof(out->sha256)) < 0)
		return art_err_set(err, -EINVAL, "line 1 (offset 0) is not 64 hex characters of "
				   "SHA-256 followed by a newline");
	pos = 65;
	while (pos < len) {
		const char *l = t + pos, *nl = memchr(l, '\n', len - pos), *colon;
		size_t llen, klen, vlen;
		const char *v;

		line++;
		if (!nl)
			return art_err_set(err, -EINVAL, "line %u (offset %zu) has no newline at the "
					   "end", line, pos);
		llen = (size_t)(nl - l);
		colon = memchr(l, ':', llen);
		if (!colon || (size_t)(colon - l) + 1 >= llen || colon[1] != ' ')
			return art_err_set(err, -EINVAL, "line %u (offset %zu) is not `key: value`",
					   line, pos);
		klen = (size_t)(colon - l);
		v = colon + 2;
		vlen = llen - klen - 2;
		if (klen == 2 && !memcmp(l, "ts", 2)) {
			if (out->has_ts)
				return art_err_set(err, -EINVAL, "line %u: second ts line", line);
			if (parse_ts(v, vlen, &out->ts) < 0)
				return art_err_set(err, -EINVAL, "line %u (offset %zu): ts is not a "
						   "32-bit decimal time", line, pos);
			out->has_ts = true;
		} else if (klen == 10 && !memcmp(l, "target-soc", 10)) {
			if (out->target_soc)
				return art_err_set(err, -EINVAL, "line %u: second target-soc line", line);
			if (vlen == 4 && !memcmp(v, "2711", 4))
				out->target_soc = 2711;
			else if (vlen == 4 && !memcmp(v, "2712", 4))
				out->target_soc = 2712;
			else
				return art_err_set(err, -EINVAL, "line %u (offset %zu): target-soc is "
						   "not 2711 or 2712", line, pos);
		} else if (klen == 7 && !memcmp(l, "rsa2048", 7)) {
			if (out->has_rsa)
				return art_err_set(err, -EINVAL, "line %u: second rsa2048 line", line);
			if (vlen != 2 * RSA2048_BYTES ||
			    hex_decode(v, vlen, out->rsa, sizeof(out->rsa)) < 0)
				return art_err_set(err, -EINVAL, "line %u (offset %zu): rsa2048 value "
						   "is %zu characters, need exactly 512 hex characters "
						   "(a failed signer leaves it empty or short)",
						   line, pos, vlen);
			out->has_rsa = true;
		}
		/* Unknown keys are skipped: the format grew target-soc once already. */
		pos += llen + 1;
	}
	return 0;
}

int sig_load(const char *path, struct sig_file *out, struct art_err *err)
{
	uint8_t buf[SIG_FILE_MAX + 1];
	size_t got = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return art_err_set(err, -errno, "%s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = art_err_set(err, -errno, "%s: %s", path, strerror(errno));
			close(fd);
			return rc;
		}
		if (n == 0 || (got += (size_t)n) == sizeof(buf))
			break;
	}
	close(fd);
	rc = sig_parse(buf, got, out, err);
	if (rc < 0)
		art_err_prefix(err, "%s: ", path);
	return rc;
}

int sig_format(const struct sig_file *sig, char **text, size_t *len)
{
	char hash[2 * SHA256_BYTES + 1], rsa[2 * RSA2048_BYTES + 1];
	char ts[32] = "", soc[32] = "";
	size_t cap = 64 + 1 + sizeof(ts) + sizeof(soc) + 9 + sizeof(rsa) + 2;
	char *s = malloc(cap);
	int n;

	*text = NULL;
	if (!s)
		return -ENOMEM;
	hex_encode(sig->sha256, sizeof(sig->sha256), hash);
	if (sig->has_ts)
		snprintf(ts, sizeof(ts), "ts: %u\n", (unsigned)sig->ts);
	if (sig->target_soc)
		snprintf(soc, sizeof(soc), "target-soc: %u\n", sig->target_soc);
	if (sig->has_rsa)
		hex_encode(sig->rsa, sizeof(sig->rsa), rsa);
	n = snprintf(s, cap, "%s\n%s%s%s%s%s", hash, ts, soc, sig->has_rsa ? "rsa2048: " : "",
		     sig->has_rsa ? rsa : "", sig->has_rsa ? "\n" : "");
	if (n < 0 || (size_t)n >= cap) {
		free(s);
		return -EOVERFLOW;
	}
	*text = s;
	if (len)
		*len = (size_t)n;
	return 0;
}

int sig_validate(const struct sig_file *sig, const uint8_t *data, size_t len,
		 const struct rsa_pubkey *key, bool require_rsa, struct art_err *err)
{
	uint8_t hash[SHA256_BYTES];
	char want[2 * SHA256_BYTES + 1], have[2 * SHA256_BYTES + 1];

	mbedtls_sha256_ret(data, len, hash, 0);
	if (memcmp(hash, sig->sha256, sizeof(hash)) != 0) {
		hex_encode(hash, sizeof(hash), want);
		hex_encode(sig->sha256, sizeof(sig->sha256), have);
		return art_err_set(err, -EBADMSG, "sha256 line %.16s… does not match the data "
				   "(%.16s…): stale or wrong signature file", have, want);
	}
	if (!sig->has_rsa) {
		if (require_rsa)
			return art_err_set(err, -EINVAL, "no rsa2048 line: the file is not signed");
		return 0;
	}
	if (key && pubkey_verify_hash(key, hash, sig->rsa) != 0)
		return art_err_set(err, -EBADMSG, "rsa2048 signature does not verify with the "
				   "configured public key");
	return 0;
}

uint32_t sig_timestamp_now(void)
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	uint32_t ts;

	if (sde && parse_ts(sde, strlen(sde), &ts) == 0)
		return ts;
	return (uint32_t)time(NULL);
}
