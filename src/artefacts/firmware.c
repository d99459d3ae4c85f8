/* firmware: source EEPROM image selection (see firmware.h). Any thread. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/sha256.h>
#include <stdbool.h>

#include "artefacts/eeprom.h"
#include "artefacts/firmware.h"
#include "artefacts/hex.h"

/* pieeprom-YYYY-MM-DD.bin exactly. */
static bool is_release_name(const char *n)
{
	static const char pat[] = "pieeprom-DDDD-DD-DD.bin";

	if (strlen(n) != sizeof(pat) - 1)
		return false;
	for (size_t i = 0; pat[i]; i++)
		if (pat[i] == 'D' ? (n[i] < '0' || n[i] > '9') : n[i] != pat[i])
			return false;
	return true;
}

static char *expand_chip(const char *dir, unsigned chip)
{
	const char *at = strstr(dir, "%chip%");
	char *out = NULL;

	if (!at)
		return strdup(dir);
	if (asprintf(&out, "%.*s%u%s", (int)(at - dir), dir, chip, at + 6) < 0)
		return NULL;
	return out;
}

static int newest_in(const char *dir, unsigned chip, char **path, struct art_err *err)
{
	size_t want = chip == 2711 ? EEPROM_SIZE_2711 : EEPROM_SIZE_2712;
	char best[64] = "";
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return art_err_set(err, -errno, "firmware directory %s: %s (install rpi-eeprom, or "
				   "set [bootloader] firmware)", dir, strerror(errno));
	while ((de = readdir(d))) {
		struct stat st;
		char *p;

		if (!is_release_name(de->d_name) || strcmp(de->d_name, best) <= 0)
			continue;
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
			closedir(d);
			return art_err_set(err, -ENOMEM, "out of memory");
		}
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == want)
			memcpy(best, de->d_name, strlen(de->d_name) + 1); /* 23 chars, checked */
		free(p);
	}
	closedir(d);
	if (!*best)
		return art_err_set(err, -ENOENT, "no pieeprom-YYYY-MM-DD.bin of %zu bytes (BCM%u) "
				   "in %s", want, chip, dir);
	if (asprintf(path, "%s/%s", dir, best) < 0) {
		*path = NULL;
		return art_err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

int firmware_select(const char *file, const char *dir, unsigned chip, const char *sha256_pin,
		    char **path, struct art_err *err)
{
	struct eeprom ee;
	char *p = NULL;
	int rc;

	*path = NULL;
	if (chip != 2711 && chip != 2712)
		return art_err_set(err, -EINVAL, "chip %u has no EEPROM firmware", chip);
	if (file && *file) {
		if (!(p = strdup(file)))
			return art_err_set(err, -ENOMEM, "out of memory");
	} else {
		char *d;

		if (!dir || !*dir)
			return art_err_set(err, -EINVAL, "neither [bootloader] firmware nor "
					   "firmware_dir is set");
		if (!(d = expand_chip(dir, chip)))
			return art_err_set(err, -ENOMEM, "out of memory");
		rc = newest_in(d, chip, &p, err);
		free(d);
		if (rc < 0)
			return rc;
	}
	rc = eeprom_load_file(&ee, p, err);
	if (rc < 0)
		goto out;
	if (ee.chip != chip) {
		rc = art_err_set(err, -EINVAL, "%s is a BCM%u EEPROM image but the board is a BCM%u: "
				 "set [bootloader] firmware for this family", p, ee.chip, chip);
		goto out_ee;
	}
	if (sha256_pin && *sha256_pin) {
		uint8_t want[32], have[32];
		char hx[2 * 32 + 1];

		if (hex_decode(sha256_pin, strlen(sha256_pin), want, sizeof(want)) < 0) {
			rc = art_err_set(err, -EINVAL, "[bootloader] firmware_sha256 is not 64 hex "
					 "characters");
			goto out_ee;
		}
		mbedtls_sha256_ret(ee.data, ee.size, have, 0);
		if (memcmp(want, have, sizeof(want)) != 0) {
			hex_encode(have, sizeof(have), hx);
			rc = art_err_set(err, -EBADMSG, "%s has sha256 %s, not the pinned "
					 "[bootloader] firmware_sha256 %s", p, hx, sha256_pin);
			goto out_ee;
		}
	}
	*path = p;
	p = NULL;
	rc = 0;
out_ee:
	eeprom_free(&ee);
out:
	free(p);
	return rc;
}

int firmware_build_timestamp(const uint8_t *img, size_t len, uint32_t *ts)
{
	static const char key[] = "BUILD_TIMESTAMP=";
	const uint8_t *p = memmem(img, len, key, sizeof(key) - 1);
	uint64_t v = 0;
	size_t i, n;

	if (!p)
		return -ENOENT;
	p += sizeof(key) - 1;
	n = len - (size_t)(p - img);
	for (i = 0; i < n && i < 10 && p[i] >= '0' && p[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(p[i] - '0');
	if (i == 0 || v > UINT32_MAX)
		return -ENOENT;
	*ts = (uint32_t)v;
	return 0;
}
