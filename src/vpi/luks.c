/* vpi/luks: LUKS2 on a partition of the virtual Pi's storage file, and the
 * user-space dm-crypt behind /dev/mapper/<name>.
 *
 * libcryptsetup needs a device of its own, and this machine has no
 * device-mapper: the header is formatted on (or loaded from) a sparse temporary
 * file the size of the partition, and only its metadata area (up to the data
 * offset) is copied to/from the partition. Data-segment I/O is aes-xts-plain64
 * in user space with mbedtls, byte-for-byte what dm-crypt writes (IV = 512-byte
 * sector number from the segment start). Each object belongs to one thread. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <mbedtls/aes.h>
#include <mbedtls/platform_util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "vpi/luks.h"

/* The LUKS2 default metadata + keyslot area; the first copy covers it and a
 * larger data offset found in the header is copied on a second pass. */
#define LUKS_FIRST_COPY (16u << 20)
#define COPY_CHUNK (1u << 20)

static int real_pbkdf = -1;   /* -1: not decided yet, read the environment */

void vpi_luks_set_real_pbkdf(bool real)
{
	real_pbkdf = real;
}

static bool use_real_pbkdf(void)
{
	if (real_pbkdf < 0) {
		const char *e = getenv("RPI_SB_VPI_PBKDF");
		real_pbkdf = e && strcmp(e, "real") == 0;
	}
	return real_pbkdf;
}

struct vpi_luks_map {
	struct vpi_storage *s;
	uint64_t data_start;       /* absolute offset of the data segment in storage */
	uint64_t size;             /* data segment bytes */
	uint64_t data_offset;      /* from the partition start */
	uint32_t unit;             /* encryption sector size, 512 or 4096 */
	size_t vk_len;
	uint8_t vk[VPI_LUKS_VK_BYTES];
	mbedtls_aes_xts_context enc, dec;
	uint8_t *scratch;          /* COPY_CHUNK bytes */
};

/* libcryptsetup's messages go nowhere: the gadget reports its own. */
static void quiet_log(int level, const char *msg, void *usrptr)
{
	(void)level;
	(void)msg;
	(void)usrptr;
}

static int tmpfile_sized(const char *tmpdir, uint64_t size, char **path_out)
{
	char *path = NULL;
	int fd;

	if (asprintf(&path, "%s/.vpi-luks-XXXXXX", tmpdir ? tmpdir : "/tmp") < 0)
		return -ENOMEM;
	fd = mkstemp(path);
	if (fd < 0) {
		int rc = -errno;
		free(path);
		return rc;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		int rc = -errno;
		close(fd);
		unlink(path);
		free(path);
		return rc;
	}
	*path_out = path;
	return fd;
}

/* Copy [0, len) between the temp file and the partition. */
static int copy_region(struct vpi_storage *s, uint64_t part_off, int fd, uint64_t len, bool to_storage)
{
	uint8_t *buf = malloc(COPY_CHUNK);
	uint64_t done = 0;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (done < len) {
		size_t n = len - done < COPY_CHUNK ? (size_t)(len - done) : COPY_CHUNK;
		if (to_storage) {
			ssize_t r = pread(fd, buf, n, (off_t)done);
			if (r < 0) {
				rc = -errno;
				break;
			}
			if ((size_t)r < n)
				memset(buf + r, 0, n - (size_t)r);
			rc = vpi_storage_pwrite(s, part_off + done, buf, n);
		} else {
			rc = vpi_storage_pread(s, part_off + done, buf, n);
			if (!rc && pwrite(fd, buf, n, (off_t)done) != (ssize_t)n)
				rc = -EIO;
		}
		if (rc)
			break;
		done += n;
	}
	free(buf);
	return rc;
}

/* "aes-xts-plain64" -> "aes" + "xts-plain64": split at the first '-' as the
 * daemon does (spec §4 format parameters). */
static int split_cipher(const char *spec, char **cipher, char **mode)
{
	const char *dash = strchr(spec, '-');

	if (!dash || dash == spec || !dash[1])
		return -EINVAL;
	*cipher = strndup(spec, (size_t)(dash - spec));
	*mode = strdup(dash + 1);
	if (!*cipher || !*mode) {
		free(*cipher);
		free(*mode);
		return -ENOMEM;
	}
	return 0;
}

static void set_pbkdf(struct crypt_pbkdf_type *pbkdf)
{
	if (use_real_pbkdf()) {
		const struct crypt_pbkdf_type *def = crypt_get_pbkdf_default(CRYPT_LUKS2);
		*pbkdf = *def;
		pbkdf->hash = "sha256";
		return;
	}
	*pbkdf = (struct crypt_pbkdf_type){
		.type = CRYPT_KDF_ARGON2ID, .hash = "sha256", .iterations = 4,
		.max_memory_kb = 32, .parallel_threads = 1, .flags = CRYPT_PBKDF_NO_BENCHMARK,
	};
}

static int luks_format_locked(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
		    const char *pass, size_t pass_len, const char *label, const char *cipher_spec,
		    const char *tmpdir, uint8_t vk_out[VPI_LUKS_VK_BYTES],
		    struct vpi_luks_format_result *res)
{
	struct crypt_device *cd = NULL;
	struct crypt_pbkdf_type pbkdf;
	struct crypt_params_luks2 params = { .sector_size = VPI_LUKS_SECTOR, .label = label };
	char *path = NULL, *cipher = NULL, *mode = NULL;
	uint8_t vk[VPI_LUKS_VK_BYTES];
	size_t vk_len = VPI_LUKS_VK_BYTES;
	bool adiantum;
	uint64_t data_offset;
	int fd = -1, rc;

	memset(res, 0, sizeof(*res));
	rc = split_cipher(cipher_spec ? cipher_spec : VPI_LUKS_DEFAULT_CIPHER, &cipher, &mode);
	if (rc)
		return rc;
	/* Adiantum takes a 256-bit key: the native path's 512-bit key fails and the
	 * real daemon falls back to the cryptsetup CLI with its default key size. */
	adiantum = strstr(mode, "adiantum") != NULL;
	if (adiantum) {
		vk_len = 32;
		res->cli_fallback = true;
	}
	if (getrandom(vk, vk_len, 0) != (ssize_t)vk_len) {
		rc = -EIO;
		goto out;
	}
	fd = tmpfile_sized(tmpdir, part_size, &path);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = crypt_init(&cd, path);
	if (rc < 0)
		goto out;
	crypt_set_log_callback(cd, quiet_log, NULL);
	set_pbkdf(&pbkdf);
	rc = crypt_set_pbkdf_type(cd, &pbkdf);
	if (rc < 0)
		goto out;
	params.pbkdf = &pbkdf;
	rc = crypt_format(cd, CRYPT_LUKS2, cipher, mode, NULL, (const char *)vk, vk_len, &params);
	if (rc < 0)
		goto out;
	if (adiantum) {
		/* Keyslot material is wrapped with a cipher libcryptsetup can run
		 * without the kernel (cryptsetup does the same when the segment
		 * cipher is not usable for keyslots). */
		rc = crypt_keyslot_set_encryption(cd, "aes-xts-plain64", 64);
		if (rc < 0)
			goto out;
	}
	rc = crypt_keyslot_add_by_volume_key(cd, 0, (const char *)vk, vk_len, pass, pass_len);
	if (rc < 0)
		goto out;
	data_offset = crypt_get_data_offset(cd) * 512u;
	if (data_offset >= part_size) {
		rc = -ENOSPC;
		goto out;
	}
	rc = copy_region(s, part_off, fd, data_offset, true);
	if (rc)
		goto out;
	res->data_offset = data_offset;
	if (vk_out) {
		memset(vk_out, 0, VPI_LUKS_VK_BYTES);
		memcpy(vk_out, vk, vk_len);
	}
	rc = 0;
out:
	crypt_free(cd);
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	free(path);
	free(cipher);
	free(mode);
	mbedtls_platform_zeroize(vk, sizeof(vk));
	return rc < 0 ? rc : 0;
}

/* Load the header from the partition into a temp file; caller crypt_free()s
 * and unlinks *path. */
static int load_header(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
		       const char *tmpdir, struct crypt_device **cd_out, char **path_out)
{
	struct crypt_device *cd = NULL;
	uint64_t copied = part_size < LUKS_FIRST_COPY ? part_size : LUKS_FIRST_COPY, off;
	char *path = NULL;
	int fd, rc;

	fd = tmpfile_sized(tmpdir, part_size, &path);
	if (fd < 0)
		return fd;
	rc = copy_region(s, part_off, fd, copied, false);
	if (rc)
		goto out;
	for (int pass = 0; pass < 2; pass++) {
		rc = crypt_init(&cd, path);
		if (rc < 0)
			goto out;
		crypt_set_log_callback(cd, quiet_log, NULL);
		rc = crypt_load(cd, CRYPT_LUKS2, NULL);
		if (rc < 0) {
			rc = -EINVAL;
			goto out;
		}
		off = crypt_get_data_offset(cd) * 512u;
		if (off <= copied || off >= part_size)
			break;
		/* A larger metadata area than the default: copy the rest, reload. */
		crypt_free(cd);
		cd = NULL;
		rc = copy_region(s, part_off, fd, off, false);
		if (rc)
			goto out;
		copied = off;
	}
	*cd_out = cd;
	cd = NULL;
	*path_out = path;
	path = NULL;
	rc = 0;
out:
	crypt_free(cd);
	close(fd);
	if (path) {
		unlink(path);
		free(path);
	}
	return rc;
}

static int luks_set_user_passphrase_locked(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
				 const char *pass, size_t pass_len, const char *user, size_t user_len,
				 const char *tmpdir)
{
	struct crypt_device *cd = NULL;
	struct crypt_pbkdf_type pbkdf;
	char *path = NULL, vk[VPI_LUKS_VK_BYTES];
	size_t vk_len = sizeof(vk);
	int fd = -1, rc;

	rc = load_header(s, part_off, part_size, tmpdir, &cd, &path);
	if (rc)
		return rc;
	rc = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, vk, &vk_len, pass, pass_len);
	if (rc < 0) {
		rc = -EPERM;
		goto out;
	}
	if (crypt_keyslot_status(cd, 1) == CRYPT_SLOT_ACTIVE ||
	    crypt_keyslot_status(cd, 1) == CRYPT_SLOT_ACTIVE_LAST) {
		rc = crypt_keyslot_destroy(cd, 1);
		if (rc < 0)
			goto out;
	} else if (user_len == 0) {
		rc = -ENOENT;   /* nothing to remove */
		goto out;
	}
	if (user_len) {
		set_pbkdf(&pbkdf);
		rc = crypt_set_pbkdf_type(cd, &pbkdf);
		if (rc >= 0)
			rc = crypt_keyslot_add_by_volume_key(cd, 1, vk, vk_len, user, user_len);
		if (rc < 0)
			goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = copy_region(s, part_off, fd, crypt_get_data_offset(cd) * 512u, true);
out:
	if (fd >= 0)
		close(fd);
	crypt_free(cd);
	unlink(path);
	free(path);
	mbedtls_platform_zeroize(vk, sizeof(vk));
	return rc < 0 ? rc : 0;
}

static int luks_open_locked(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
		  const char *pass, size_t pass_len, const char *tmpdir, struct vpi_luks_map **out)
{
	struct crypt_device *cd = NULL;
	struct vpi_luks_map *m = NULL;
	char *path = NULL;
	const char *cipher, *mode;
	int rc;

	*out = NULL;
	rc = load_header(s, part_off, part_size, tmpdir, &cd, &path);
	if (rc)
		return rc;
	m = calloc(1, sizeof(*m));
	if (!m) {
		rc = -ENOMEM;
		goto out;
	}
	mbedtls_aes_xts_init(&m->enc);
	mbedtls_aes_xts_init(&m->dec);
	m->vk_len = sizeof(m->vk);
	rc = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *)m->vk, &m->vk_len, pass, pass_len);
	if (rc < 0) {
		rc = rc == -ENOMEM ? rc : -EPERM;
		goto out;
	}
	cipher = crypt_get_cipher(cd);
	mode = crypt_get_cipher_mode(cd);
	m->unit = (uint32_t)crypt_get_sector_size(cd);
	if (!cipher || !mode || strcmp(cipher, "aes") || strcmp(mode, "xts-plain64") ||
	    (m->vk_len != 64 && m->vk_len != 32) || (m->unit != 512 && m->unit != 4096)) {
		rc = -EOPNOTSUPP;
		goto out;
	}
	m->s = s;
	m->data_offset = crypt_get_data_offset(cd) * 512u;
	m->data_start = part_off + m->data_offset;
	m->size = part_size - m->data_offset;
	m->size -= m->size % m->unit;
	m->scratch = malloc(COPY_CHUNK);
	if (!m->scratch ||
	    mbedtls_aes_xts_setkey_enc(&m->enc, m->vk, (unsigned)m->vk_len * 8) ||
	    mbedtls_aes_xts_setkey_dec(&m->dec, m->vk, (unsigned)m->vk_len * 8)) {
		rc = m->scratch ? -EINVAL : -ENOMEM;
		goto out;
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	vpi_luks_close(m);
	crypt_free(cd);
	unlink(path);
	free(path);
	return rc;
}

void vpi_luks_close(struct vpi_luks_map *m)
{
	if (!m)
		return;
	mbedtls_aes_xts_free(&m->enc);
	mbedtls_aes_xts_free(&m->dec);
	free(m->scratch);
	mbedtls_platform_zeroize(m, sizeof(*m));
	free(m);
}

uint64_t vpi_luks_size(const struct vpi_luks_map *m) { return m->size; }
uint64_t vpi_luks_data_offset(const struct vpi_luks_map *m) { return m->data_offset; }

/* Whole units starting at data-segment byte @off. */
static int xts_units(mbedtls_aes_xts_context *ctx, int mode, uint32_t unit, uint64_t off,
		     const uint8_t *in, uint8_t *outp, size_t len)
{
	for (size_t done = 0; done < len; done += unit) {
		uint8_t tweak[16] = { 0 };
		uint64_t sector = (off + done) / 512u;
		for (int i = 0; i < 8; i++)
			tweak[i] = (uint8_t)(sector >> (8 * i));
		if (mbedtls_aes_crypt_xts(ctx, mode, unit, tweak, in + done, outp + done))
			return -EIO;
	}
	return 0;
}

int vpi_luks_xts(const uint8_t vk[VPI_LUKS_VK_BYTES], bool encrypt, uint64_t first_sector,
		 const uint8_t *in, uint8_t *out, size_t len)
{
	mbedtls_aes_xts_context ctx;
	int rc;

	if (len % 512)
		return -EINVAL;
	mbedtls_aes_xts_init(&ctx);
	rc = encrypt ? mbedtls_aes_xts_setkey_enc(&ctx, vk, 512) : mbedtls_aes_xts_setkey_dec(&ctx, vk, 512);
	if (!rc)
		rc = xts_units(&ctx, encrypt ? MBEDTLS_AES_ENCRYPT : MBEDTLS_AES_DECRYPT, 512,
			       first_sector * 512u, in, out, len);
	mbedtls_aes_xts_free(&ctx);
	return rc ? -EIO : 0;
}

static int range_ok(const struct vpi_luks_map *m, uint64_t off, uint64_t len)
{
	return off <= m->size && len <= m->size - off ? 0 : -ENOSPC;
}

int vpi_luks_read(struct vpi_luks_map *m, uint64_t off, void *buf, size_t len)
{
	uint8_t *out = buf;
	int rc = range_ok(m, off, len);

	while (!rc && len) {
		uint64_t ustart = off / m->unit * m->unit;
		size_t skip = (size_t)(off - ustart);
		size_t span = skip + len;
		size_t n;

		span = (span + m->unit - 1) / m->unit * m->unit;
		if (span > COPY_CHUNK)
			span = COPY_CHUNK;
		n = span - skip < len ? span - skip : len;
		rc = vpi_storage_pread(m->s, m->data_start + ustart, m->scratch, span);
		if (!rc)
			rc = xts_units(&m->dec, MBEDTLS_AES_DECRYPT, m->unit, ustart, m->scratch,
				       m->scratch, span);
		if (!rc) {
			memcpy(out, m->scratch + skip, n);
			out += n;
			off += n;
			len -= n;
		}
	}
	return rc;
}

int vpi_luks_write(struct vpi_luks_map *m, uint64_t off, const void *buf, size_t len)
{
	const uint8_t *in = buf;
	int rc = range_ok(m, off, len);

	while (!rc && len) {
		uint64_t ustart = off / m->unit * m->unit;
		size_t skip = (size_t)(off - ustart), span, n;

		if (skip == 0 && len >= m->unit) {
			/* Fast path: whole units straight from the caller's buffer. */
			span = len < COPY_CHUNK ? len / m->unit * m->unit : COPY_CHUNK;
			rc = xts_units(&m->enc, MBEDTLS_AES_ENCRYPT, m->unit, ustart, in, m->scratch, span);
			n = span;
		} else {
			/* A partial unit: read, decrypt, patch, re-encrypt. */
			span = m->unit;
			n = m->unit - skip < len ? m->unit - skip : len;
			rc = vpi_storage_pread(m->s, m->data_start + ustart, m->scratch, span);
			if (!rc)
				rc = xts_units(&m->dec, MBEDTLS_AES_DECRYPT, m->unit, ustart,
					       m->scratch, m->scratch, span);
			if (!rc) {
				memcpy(m->scratch + skip, in, n);
				rc = xts_units(&m->enc, MBEDTLS_AES_ENCRYPT, m->unit, ustart,
					       m->scratch, m->scratch, span);
			}
		}
		if (!rc)
			rc = vpi_storage_pwrite(m->s, m->data_start + ustart, m->scratch, span);
		in += n;
		off += n;
		len -= n;
	}
	return rc;
}

int vpi_luks_fill(struct vpi_luks_map *m, uint64_t off, uint64_t len, uint32_t word)
{
	size_t chunk = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;
	uint8_t *buf;
	int rc = range_ok(m, off, len);

	if (rc || !len)
		return rc;
	buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < chunk; i++)
		buf[i] = (uint8_t)(word >> (8 * (i % 4)));
	while (!rc && len) {
		size_t n = len < chunk ? (size_t)len : chunk;
		rc = vpi_luks_write(m, off, buf, n);
		off += n;
		len -= n;
	}
	free(buf);
	return rc;
}

/* Hardware id bytes as libblockdeviceid returns them: the sysfs attribute
 * including its trailing newline (spec §4 step 1; VPI_GUESS_HWID_NEWLINE). */
int vpi_luks_board_passphrase(struct vpi_board *b, char pass[VPI_LUKS_PASSPHRASE_LEN + 1])
{
	const char *hwid = vpi_board_storage_hwid(b);
	uint8_t mac[32];
	char *msg = NULL;
	int rc;

	if (!hwid || !*hwid)
		return -ENODEV;
	if (asprintf(&msg, "%s\n", hwid) < 0)
		return -ENOMEM;
	rc = vpi_otp_fwcrypto_hmac(b, msg, strlen(msg), mac);
	free(msg);
	if (rc)
		return rc;
	for (int i = 0; i < 32; i++)
		snprintf(pass + 2 * i, 3, "%02x", mac[i]);
	mbedtls_platform_zeroize(mac, sizeof(mac));
	return 0;
}

struct vpi_luks_reader {
	struct vpi_storage *s;
	struct vpi_luks_map *m;
};

static int open_board_map(struct vpi_board *b, const char *partition, const void *key,
			  size_t key_len, struct vpi_luks_reader *r)
{
	char pass[VPI_LUKS_PASSPHRASE_LEN + 1];
	uint64_t start, size;
	int rc;

	if (!key) {
		rc = vpi_luks_board_passphrase(b, pass);
		if (rc)
			return rc;
		key = pass;
		key_len = VPI_LUKS_PASSPHRASE_LEN;
	}
	rc = vpi_storage_open_board(b, &r->s);
	if (!rc)
		rc = vpi_storage_resolve(r->s, partition, &start, &size, NULL);
	if (!rc)
		rc = vpi_luks_open(r->s, start, size, key, key_len, vpi_board_state_dir(b), &r->m);
	mbedtls_platform_zeroize(pass, sizeof(pass));
	if (rc) {
		vpi_storage_close(r->s);
		r->s = NULL;
	}
	return rc;
}

int vpi_luks_unlock_check(struct vpi_board *b, const char *partition, const void *key,
			  size_t key_len)
{
	struct vpi_luks_reader r = { 0 };
	int rc = open_board_map(b, partition, key, key_len, &r);

	/* A cipher we cannot run still proved the key when the slot opened. */
	if (rc == -EOPNOTSUPP)
		return 0;
	vpi_luks_close(r.m);
	vpi_storage_close(r.s);
	return rc;
}

int vpi_luks_open_reader(struct vpi_board *b, const char *partition, struct vpi_luks_reader **out)
{
	struct vpi_luks_reader *r = calloc(1, sizeof(*r));
	int rc;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	rc = open_board_map(b, partition, NULL, 0, r);
	if (rc) {
		free(r);
		return rc;
	}
	*out = r;
	return 0;
}

uint64_t vpi_luks_reader_size(const struct vpi_luks_reader *r) { return vpi_luks_size(r->m); }

int vpi_luks_reader_read(struct vpi_luks_reader *r, uint64_t off, void *buf, size_t len)
{
	return vpi_luks_read(r->m, off, buf, len);
}

void vpi_luks_reader_close(struct vpi_luks_reader *r)
{
	if (!r)
		return;
	vpi_luks_close(r->m);
	vpi_storage_close(r->s);
	free(r);
}

/* libcryptsetup initialises its crypto back end (OpenSSL providers) lazily and
 * not thread-safely: boards formatting or opening LUKS at the same time are
 * serialised here. The data path (XTS) stays parallel. */
static pthread_mutex_t luks_lib_lock = PTHREAD_MUTEX_INITIALIZER;

int vpi_luks_format(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
		    const char *pass, size_t pass_len, const char *label, const char *cipher_spec,
		    const char *tmpdir, uint8_t vk_out[VPI_LUKS_VK_BYTES],
		    struct vpi_luks_format_result *res)
{
	int r;

	pthread_mutex_lock(&luks_lib_lock);
	r = luks_format_locked(s, part_off, part_size, pass, pass_len, label, cipher_spec, tmpdir, vk_out, res);
	pthread_mutex_unlock(&luks_lib_lock);
	return r;
}

int vpi_luks_set_user_passphrase(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
				 const char *pass, size_t pass_len, const char *user, size_t user_len,
				 const char *tmpdir)
{
	int r;

	pthread_mutex_lock(&luks_lib_lock);
	r = luks_set_user_passphrase_locked(s, part_off, part_size, pass, pass_len, user, user_len, tmpdir);
	pthread_mutex_unlock(&luks_lib_lock);
	return r;
}

int vpi_luks_open(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
		  const char *pass, size_t pass_len, const char *tmpdir, struct vpi_luks_map **out)
{
	int r;

	pthread_mutex_lock(&luks_lib_lock);
	r = luks_open_locked(s, part_off, part_size, pass, pass_len, tmpdir, out);
	pthread_mutex_unlock(&luks_lib_lock);
	return r;
}
