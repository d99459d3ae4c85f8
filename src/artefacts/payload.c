/* payload: bootstrap payload builders (see payload.h): bootloader config,
 * pieeprom.bin/.sig, recovery config.txt, boot.sig.
 * Pure functions over files and caller buffers: any thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "artefacts/bootcode.h"
#include "artefacts/eeprom.h"
#include "artefacts/firmware.h"
#include "artefacts/payload.h"
#include "artefacts/sig.h"

const char payload_bootconf_secure_default[] =
	"[all]\n"
	"BOOT_UART=1\n"
	"POWER_OFF_ON_HALT=1\n"
	"BOOT_ORDER=0xf2461\n"
	"ENABLE_SELF_UPDATE=0\n"
	"SIGNED_BOOT=1\n";

const char payload_bootconf_plain_default[] =
	"[all]\n"
	"BOOT_UART=1\n"
	"POWER_OFF_ON_HALT=1\n"
	"BOOT_ORDER=0xf2461\n";

int payload_boot_order_nibble(const char *storage)
{
	if (!storage)
		return -1;
	if (!strcmp(storage, "sd") || !strcmp(storage, "emmc"))
		return 1;
	if (!strcmp(storage, "nvme"))
		return 6;
	return -1;
}

/* A growing text buffer; the one place that appends. */
struct text {
	char *s;
	size_t len, cap;
	int rc;
};

static void text_add(struct text *t, const char *p, size_t n)
{
	if (t->rc)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = (t->len + n + 1) * 2;
		char *s = realloc(t->s, cap);

		if (!s) {
			t->rc = -ENOMEM;
			return;
		}
		t->s = s;
		t->cap = cap;
	}
	memcpy(t->s + t->len, p, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void text_str(struct text *t, const char *p)
{
	text_add(t, p, strlen(p));
}

static bool starts(const char *line, size_t len, const char *key)
{
	size_t k = strlen(key);

	return len >= k && memcmp(line, key, k) == 0;
}

/* "0x" + 1..8 hex digits, trailing blanks allowed. Returns the digit count. */
static size_t boot_order_digits(const char *v, size_t len)
{
	size_t n = 0;

	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len < 3 || v[0] != '0' || (v[1] != 'x' && v[1] != 'X'))
		return 0;
	for (n = 2; n < len; n++)
		if (!strchr("0123456789abcdefABCDEF", v[n]))
			return 0;
	return n - 2 <= 8 ? n - 2 : 0;
}

static void emit_boot_order(struct text *t, const char *line, size_t len, int nibble)
{
	static const char key[] = "BOOT_ORDER=";
	const char *v = line + strlen(key);
	size_t nd = boot_order_digits(v, len - strlen(key)), kept = 0;
	char digits[16], want = (char)('0' + nibble);

	if (!nd) {	/* not a plain hex value: leave it as written */
		text_add(t, line, len);
		return;
	}
	for (size_t i = 0; i < nd; i++)
		if (v[2 + i] != want)
			digits[kept++] = v[2 + i];
	if (kept + 1 > 8) {
		text_add(t, line, len);
		return;
	}
	digits[kept++] = want;
	text_str(t, key);
	text_add(t, v, 2);
	text_add(t, digits, kept);
}

int payload_bootconf_prepare(const char *in, size_t in_len, enum payload_mode mode,
			     const char *storage, bool match_storage, char **out,
			     size_t *out_len, struct art_err *err)
{
	struct text t = { 0 };
	const char *p, *end;
	bool secure = mode == PAYLOAD_SECURE_BOOT, has_signed = false, in_all = true;
	int nibble = match_storage ? payload_boot_order_nibble(storage) : -1;
	unsigned boot_orders = 0, lineno = 0;
	int rc;

	*out = NULL;
	*out_len = 0;
	if (!in) {
		in = secure ? payload_bootconf_secure_default : payload_bootconf_plain_default;
		in_len = strlen(in);
	}
	if (memchr(in, '\0', in_len))
		return art_err_set(err, -EINVAL, "bootloader config contains a NUL byte at offset "
				   "%zu", (size_t)((const char *)memchr(in, '\0', in_len) - in));
	for (p = in, end = in + in_len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (len && p[len - 1] == '\r')
			len--;
		if (starts(p, len, "BOOT_ORDER="))
			boot_orders++;
		p += (nl ? (size_t)(nl - p) + 1 : (size_t)(end - p));
	}
	for (p = in; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *next = p + (nl ? len + 1 : len);

		lineno++;
		if (len && p[len - 1] == '\r')
			len--;
		if (memchr(p, '\r', len)) {
			rc = art_err_set(err, -EINVAL, "bootloader config line %u contains a carriage "
					 "return in the middle", lineno);
			goto out;
		}
		if (len && p[0] == '[')
			in_all = len == 5 && !memcmp(p, "[all]", 5);
		if (starts(p, len, "SIGNED_BOOT=")) {
			bool one = len == 13 && p[12] == '1';

			if (secure && !one) {	/* dropped: secure boot needs SIGNED_BOOT=1 */
				p = next;
				continue;
			}
			if (!secure && one) {
				rc = art_err_set(err, -EINVAL, "bootloader config line %u sets "
						 "SIGNED_BOOT=1 but the mode is %s: the board would "
						 "refuse to boot an unsigned OS. Remove the line or use "
						 "mode secure-boot", lineno,
						 mode == PAYLOAD_NAKED ? "naked" : "fde-only");
				goto out;
			}
			has_signed = has_signed || (one && in_all);	/* a [pi4]-only one is not enough */
		}
		if (starts(p, len, "BOOT_ORDER=") && boot_orders == 1 && nibble >= 0)
			emit_boot_order(&t, p, len, nibble);
		else
			text_add(&t, p, len);
		text_add(&t, "\n", 1);
		p = next;
	}
	if (secure && !has_signed) {
		if (!in_all)	/* do not hide it under a [pi4]-style filter */
			text_str(&t, "[all]\n");
		text_str(&t, "SIGNED_BOOT=1\n");
	}
	if (t.rc) {
		rc = art_err_set(err, t.rc, "out of memory");
		goto out;
	}
	if (t.len > EEPROM_FILE_MAX) {
		rc = art_err_set(err, -EFBIG, "bootloader config is %zu bytes; the EEPROM holds at "
				 "most %d", t.len, EEPROM_FILE_MAX);
		goto out;
	}
	if (!t.s)
		text_add(&t, "", 0);
	if (t.rc) {
		rc = art_err_set(err, t.rc, "out of memory");
		goto out;
	}
	*out = t.s;
	*out_len = t.len;
	return 0;
out:
	free(t.s);
	return rc;
}

/* Sign @data (or record only its hash), render the .sig and check it back
 * with the same rules the device applies. */
static int make_sig(struct signer *s, const uint8_t *data, size_t len, uint32_t ts,
		    bool with_ts, char **text, size_t *text_len, struct art_err *err)
{
	struct sig_file sig = { .has_ts = with_ts, .ts = ts }, back;
	int rc;

	mbedtls_sha256_ret(data, len, sig.sha256, 0);
	if (s) {
		rc = signer_sign(s, data, len, sig.rsa, err);
		if (rc < 0)
			return rc;
		sig.has_rsa = true;
	}
	rc = sig_format(&sig, text, text_len);
	if (rc < 0)
		return art_err_set(err, rc, "out of memory");
	rc = sig_parse((const uint8_t *)*text, *text_len, &back, err);
	if (rc == 0)
		rc = sig_validate(&back, data, len, s ? signer_pubkey(s) : NULL, s != NULL, err);
	if (rc < 0) {
		free(*text);
		*text = NULL;
	}
	return rc;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int counter_sign_stage(struct eeprom *ee, struct signer *s, bool bootsys,
			      struct art_err *err)
{
	const uint8_t *data;
	uint8_t *signed_stage = NULL;
	size_t len, slen;
	int rc;

	if (bootsys)
		rc = eeprom_file_get(ee, "bootsys", &data, &len);
	else
		rc = eeprom_bootcode_get(ee, &data, &len);
	if (rc < 0)
		return art_err_set(err, rc, "EEPROM image has no %s", bootsys ? "bootsys" : "bootcode");
	rc = bootcode_counter_sign(s, data, len, 0, &signed_stage, &slen, err);
	if (rc == 0)
		rc = bootsys ? eeprom_file_replace(ee, "bootsys", signed_stage, slen, err)
			     : eeprom_bootcode_replace(ee, signed_stage, slen, err);
	if (rc < 0)
		art_err_prefix(err, "%s: ", bootsys ? "bootsys" : "bootcode");
	free(signed_stage);
	return rc;
}

int payload_build_eeprom(const struct payload_eeprom_in *in, struct payload_eeprom_out *out,
			 struct art_err *err)
{
	struct eeprom ee = { 0 };
	bool secure = in->mode == PAYLOAD_SECURE_BOOT;
	struct signer *s = secure ? in->signer : NULL;
	char *conf_sig = NULL;
	size_t conf_sig_len = 0;
	uint32_t ts = in->timestamp ? in->timestamp : sig_timestamp_now();
	int rc;

	memset(out, 0, sizeof(*out));
	if (in->chip != 2711 && in->chip != 2712)
		return art_err_set(err, -EINVAL, "chip %u has no EEPROM to build (2711 or 2712 only)",
				   in->chip);
	if (secure && !s)
		return art_err_set(err, -ENOENT, "secure-boot mode needs a key: set [key] pem, or "
				   "[key] signer with [key] public");
	rc = eeprom_load_file(&ee, in->firmware_path, err);
	if (rc < 0)
		goto out;
	if (ee.chip != in->chip) {
		rc = art_err_set(err, -EINVAL, "%s is a BCM%u EEPROM image but the board is a "
				 "BCM%u: set [bootloader] firmware (or firmware_dir) for this "
				 "family", in->firmware_path, ee.chip, in->chip);
		goto out;
	}
	if (secure) {
		uint32_t built = 0;

		if (firmware_build_timestamp(ee.data, ee.size, &built) < 0 ||
		    built < FIRMWARE_SECURE_BOOT_MIN_TS) {
			rc = art_err_set(err, -EINVAL, "%s: bootloader %s%u is too old for secure "
					 "boot (needs BUILD_TIMESTAMP >= %u): use a newer "
					 "pieeprom image", in->firmware_path,
					 built ? "BUILD_TIMESTAMP=" : "without BUILD_TIMESTAMP ",
					 built, FIRMWARE_SECURE_BOOT_MIN_TS);
			goto out;
		}
	}
	rc = payload_bootconf_prepare(in->bootconf, in->bootconf_len, in->mode, in->storage,
				      in->boot_order_match_storage, &out->bootconf,
				      &out->bootconf_len, err);
	if (rc < 0)
		goto out;
	if (secure) {
		uint8_t bin[PUBKEY_BIN_LEN];

		rc = make_sig(s, (const uint8_t *)out->bootconf, out->bootconf_len, ts, true,
			      &conf_sig, &conf_sig_len, err);
		if (rc < 0) {
			art_err_prefix(err, "bootconf.sig: ");
			goto out;
		}
		if (ee.chip == 2712) {
			rc = counter_sign_stage(&ee, s, false, err);
			if (rc == 0 && ee.ab)
				rc = counter_sign_stage(&ee, s, true, err);
			if (rc < 0)
				goto out;
		}
		pubkey_to_bin(signer_pubkey(s), bin);
		rc = eeprom_file_replace(&ee, "bootconf.txt", (const uint8_t *)out->bootconf,
					 out->bootconf_len, err);
		if (rc == 0)
			rc = eeprom_file_replace(&ee, "bootconf.sig", (const uint8_t *)conf_sig,
						 conf_sig_len, err);
		if (rc == 0)
			rc = eeprom_file_replace(&ee, "pubkey.bin", bin, sizeof(bin), err);
	} else {
		const uint8_t *pk;
		size_t pklen;

		if (eeprom_file_get(&ee, "pubkey.bin", &pk, &pklen) == 0 && !all_zero(pk, pklen)) {
			rc = art_err_set(err, -EINVAL, "%s already carries a customer public key; "
					 "a %s board must get a stock image (it would not boot)",
					 in->firmware_path,
					 in->mode == PAYLOAD_NAKED ? "naked" : "fde-only");
			goto out;
		}
		rc = eeprom_file_replace(&ee, "bootconf.txt", (const uint8_t *)out->bootconf,
					 out->bootconf_len, err);
	}
	if (rc < 0) {
		art_err_prefix(err, "%s: ", in->firmware_path);
		goto out;
	}
	rc = make_sig(s, ee.data, ee.size, ts, true, &out->sig, &out->sig_len, err);
	if (rc < 0) {
		art_err_prefix(err, "pieeprom.sig: ");
		goto out;
	}
	mbedtls_sha256_ret(ee.data, ee.size, out->image_sha256, 0);
	out->image = ee.data;
	out->image_len = ee.size;
	ee.data = NULL;
out:
	eeprom_free(&ee);
	free(conf_sig);
	if (rc < 0)
		payload_eeprom_out_free(out);
	return rc;
}

bool payload_eeprom_needs_otp(unsigned chip, enum payload_mode mode)
{
	return chip == 2712 && mode == PAYLOAD_SECURE_BOOT;
}

void payload_eeprom_out_free(struct payload_eeprom_out *out)
{
	free(out->image);
	free(out->sig);
	free(out->bootconf);
	memset(out, 0, sizeof(*out));
}

int payload_write_file(const char *dir, const char *name, const void *data, size_t len,
		       struct art_err *err)
{
	char *path = NULL, *tmp = NULL;
	const uint8_t *p = data;
	int fd = -1, rc;

	if (asprintf(&path, "%s/%s", dir, name) < 0) {
		path = NULL;
		return art_err_set(err, -ENOMEM, "out of memory");
	}
	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
		tmp = NULL;
		rc = art_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = art_err_set(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = art_err_set(err, -errno, "%s: write: %s", tmp, strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
		rc = art_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0 || rename(tmp, path) < 0) {
		rc = art_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(path);
	return rc;
}

int payload_write_eeprom(const struct payload_eeprom_out *out, const char *dir,
			 struct art_err *err)
{
	int rc = payload_write_file(dir, "pieeprom.bin", out->image, out->image_len, err);

	return rc < 0 ? rc : payload_write_file(dir, "pieeprom.sig", out->sig, out->sig_len, err);
}

int payload_recovery_config(const struct payload_recovery_in *in, char **text,
			    const char **warning, struct art_err *err)
{
	struct text t = { 0 };
	char line[64];

	*text = NULL;
	*warning = NULL;
	if (in->chip != 2711 && in->chip != 2712)
		return art_err_set(err, -EINVAL, "chip %u has no recovery.bin (2711 or 2712 only)",
				   in->chip);
	if (in->rpiboot_gpio < 0 || in->rpiboot_gpio > 8 ||
	    (in->rpiboot_gpio && !strchr("245678", '0' + in->rpiboot_gpio)))
		return art_err_set(err, -EINVAL, "[otp] rpiboot_gpio %d: must be 2, 4, 5, 6, 7 or 8",
				   in->rpiboot_gpio);
	if (in->secure && in->armed) {
		text_str(&t, "program_pubkey=1\n");
		if (in->jtag_lock)
			text_str(&t, "program_jtag_lock=1\n");
		if (in->chip == 2711 && in->rpiboot_gpio) {
			snprintf(line, sizeof(line), "program_rpiboot_gpio=%d\n", in->rpiboot_gpio);
			text_str(&t, line);
		} else if (in->chip == 2711) {
			*warning = "BCM2711 key burn without [otp] rpiboot_gpio: a Pi 4 / Pi 400 "
				   "recovery fails (\"Failed to set RPIBOOT OTP gpio\", code 34); "
				   "CM4 does not need it";
		}
	}
	if (in->secure && in->eeprom_write_protect)
		text_str(&t, "eeprom_write_protect=1\n");
	if (in->chip == 2712)	/* come back as an rpiboot device by itself */
		text_str(&t, "set_reboot_order=0x3\n");
	text_str(&t, "recovery_reboot=1\n");
	if (t.rc) {
		free(t.s);
		return art_err_set(err, t.rc, "out of memory");
	}
	*text = t.s;
	return 0;
}

int payload_boot_sig(struct signer *s, const char *boot_img, char **text, size_t *len,
		     struct art_err *err)
{
	struct sig_file sig = { .has_rsa = true };
	int rc;

	*text = NULL;
	rc = signer_sign_file(s, boot_img, sig.sha256, sig.rsa, err);
	if (rc < 0)
		return rc;
	rc = sig_format(&sig, text, len);
	return rc < 0 ? art_err_set(err, rc, "out of memory") : 0;
}

int payload_counter_sign_file(struct signer *s, const char *in_path, const char *out_path,
			      struct art_err *err)
{
	uint8_t *in = NULL, *out = NULL;
	size_t len = 0, outlen = 0;
	char *dir = NULL, *slash;
	struct stat st;
	int fd, rc;

	fd = open(in_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return art_err_set(err, -errno, "%s: %s", in_path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > BOOTCODE_MAX_SIGNED) {
		rc = art_err_set(err, -EINVAL, "%s: not a second stage (a regular file of 1..%d "
				 "bytes)", in_path, BOOTCODE_MAX_SIGNED);
		goto out;
	}
	in = malloc((size_t)st.st_size);
	if (!in) {
		rc = art_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, in + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = art_err_set(err, n ? -errno : -EIO, "%s: short read", in_path);
			goto out;
		}
		len += (size_t)n;
	}
	rc = bootcode_counter_sign(s, in, len, 0, &out, &outlen, err);
	if (rc < 0) {
		art_err_prefix(err, "%s: ", in_path);
		goto out;
	}
	dir = strdup(out_path);
	if (!dir) {
		rc = art_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	rc = payload_write_file(slash ? (*dir ? dir : "/") : ".", slash ? slash + 1 : out_path,
				out, outlen, err);
out:
	close(fd);
	free(in);
	free(out);
	free(dir);
	return rc;
}
