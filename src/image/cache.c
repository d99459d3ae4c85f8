/* cache: content-addressed cache directory (see cache.h). Any thread: every
 * call works on its own descriptors; exclusion is by flock. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "image/cache.h"

#define HASH_BUF (1u << 20)

static void to_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void cache_key_init(struct cache_key *k, const char *purpose)
{
	mbedtls_sha256_init(&k->ctx);
	mbedtls_sha256_starts_ret(&k->ctx, 0);
	cache_key_add_str(k, "program", PACKAGE_NAME " " PACKAGE_VERSION);
	cache_key_add_str(k, "purpose", purpose);
}

void cache_key_add(struct cache_key *k, const char *name, const void *data, size_t len)
{
	uint8_t frame[8];
	uint64_t n = len;
	int i;

	for (i = 0; i < 8; i++)
		frame[i] = (uint8_t)(n >> (8 * i));
	mbedtls_sha256_update_ret(&k->ctx, (const unsigned char *)name, strlen(name) + 1);
	mbedtls_sha256_update_ret(&k->ctx, frame, sizeof(frame));
	if (len)
		mbedtls_sha256_update_ret(&k->ctx, data, len);
}

void cache_key_add_str(struct cache_key *k, const char *name, const char *value)
{
	if (!value) {
		uint8_t none = 0xff;	/* a frame no string can produce */

		mbedtls_sha256_update_ret(&k->ctx, (const unsigned char *)name, strlen(name) + 1);
		mbedtls_sha256_update_ret(&k->ctx, &none, 1);
		return;
	}
	cache_key_add(k, name, value, strlen(value));
}

void cache_key_add_u64(struct cache_key *k, const char *name, uint64_t value)
{
	char s[24];

	snprintf(s, sizeof(s), "%llu", (unsigned long long)value);
	cache_key_add_str(k, name, s);
}

int cache_sha256_path(const char *path, uint8_t out[32], struct art_err *err)
{
	mbedtls_sha256_context c;
	uint8_t *buf;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return art_err_set(err, -errno, "cannot open %s: %s", path, strerror(errno));
	buf = malloc(HASH_BUF);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	mbedtls_sha256_init(&c);
	mbedtls_sha256_starts_ret(&c, 0);
	for (;;) {
		ssize_t n = read(fd, buf, HASH_BUF);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = art_err_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		mbedtls_sha256_update_ret(&c, buf, (size_t)n);
	}
	if (!rc)
		mbedtls_sha256_finish_ret(&c, out);
	mbedtls_sha256_free(&c);
	free(buf);
	close(fd);
	return rc;
}

int cache_key_add_file(struct cache_key *k, const char *name, const char *path,
		       struct art_err *err)
{
	uint8_t h[32];
	int rc = cache_sha256_path(path, h, err);

	if (!rc)
		cache_key_add(k, name, h, sizeof(h));
	return rc;
}

void cache_key_final(struct cache_key *k, char hex[CACHE_KEY_HEX])
{
	uint8_t h[32];

	mbedtls_sha256_finish_ret(&k->ctx, h);
	mbedtls_sha256_free(&k->ctx);
	to_hex(h, sizeof(h), hex);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int cache_remove_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) ? -errno : 0;
}

static int lock_open(const char *path, struct art_err *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return art_err_set(err, -errno, "cannot open lock %s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int rc = art_err_set(err, -errno, "cannot lock %s: %s", path, strerror(errno));

			close(fd);
			return rc;
		}
	}
	return fd;
}

static bool key_ok(const char *key)
{
	size_t n = strlen(key), i;

	if (n == 0 || n > 128)
		return false;
	for (i = 0; i < n; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'z') ||
		      key[i] == '-'))
			return false;
	return true;
}

/* Temp dirs of @key left by a crashed builder (we hold the key's lock, so no
 * live builder owns one). */
static void remove_stale(const char *cache_dir, const char *key)
{
	char prefix[160];
	struct dirent *de;
	DIR *d;

	snprintf(prefix, sizeof(prefix), ".tmp-%s-", key);
	d = opendir(cache_dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char *p = NULL;

		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		if (asprintf(&p, "%s/%s", cache_dir, de->d_name) >= 0)
			cache_remove_tree(p);
		free(p);
	}
	closedir(d);
}

int cache_get(const char *cache_dir, const char *key, cache_build_fn build, void *usr,
	      char **entry_dir, bool *hit, struct art_err *err)
{
	char *lock = NULL, *final = NULL, *tmp = NULL;
	struct stat st;
	int lfd = -1, rc, dfd;

	*entry_dir = NULL;
	*hit = false;
	if (!key_ok(key))
		return art_err_set(err, -EINVAL, "invalid cache key \"%s\"", key);
	rc = mkdir_p(cache_dir, 0755);
	if (rc)
		return art_err_set(err, rc, "cannot create the cache directory %s: %s", cache_dir,
				   strerror(-rc));
	if (asprintf(&lock, "%s/%s.lock", cache_dir, key) < 0 ||
	    asprintf(&final, "%s/%s", cache_dir, key) < 0 ||
	    asprintf(&tmp, "%s/.tmp-%s-XXXXXX", cache_dir, key) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	lfd = lock_open(lock, err);
	if (lfd < 0) {
		rc = lfd;
		goto out;
	}
	if (stat(final, &st) == 0 && S_ISDIR(st.st_mode)) {
		*hit = true;
		rc = 0;
		goto done;
	}
	remove_stale(cache_dir, key);
	if (!mkdtemp(tmp)) {
		rc = art_err_set(err, -errno, "cannot create a build directory in %s: %s",
				 cache_dir, strerror(errno));
		goto out;
	}
	rc = build(usr, tmp, err);
	if (rc) {
		cache_remove_tree(tmp);
		goto out;
	}
	chmod(tmp, 0755);
	if (rename(tmp, final) < 0) {
		rc = art_err_set(err, -errno, "cannot publish cache entry %s: %s", final,
				 strerror(errno));
		cache_remove_tree(tmp);
		goto out;
	}
	dfd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
done:
	*entry_dir = final;
	final = NULL;
out:
	if (lfd >= 0)
		close(lfd);	/* releases the flock */
	free(lock);
	free(final);
	free(tmp);
	return rc;
}

int cache_clear(const char *cache_dir, struct art_err *err)
{
	struct dirent *de;
	DIR *d;
	int rc = 0;

	d = opendir(cache_dir);
	if (!d)
		return errno == ENOENT ? 0 : art_err_set(err, -errno, "cannot open %s: %s",
							 cache_dir, strerror(errno));
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char *p = NULL;
		int r;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n > 5 && !strcmp(de->d_name + n - 5, ".lock"))
			continue;
		if (asprintf(&p, "%s/%s", cache_dir, de->d_name) < 0) {
			rc = -ENOMEM;
			break;
		}
		r = cache_remove_tree(p);
		if (r && !rc)
			rc = art_err_set(err, r, "cannot remove %s: %s", p, strerror(-r));
		free(p);
	}
	closedir(d);
	return rc;
}

int cache_file_sha256(const char *cache_dir, const char *path, char hex[CACHE_KEY_HEX],
		      bool *was_cached, struct art_err *err)
{
	char *dir = NULL, *rec = NULL, *abs = NULL, line[256], want[160];
	uint8_t h[32], ph[32];
	char phex[CACHE_KEY_HEX];
	struct stat st;
	int fd = -1, rc;
	ssize_t n;

	*was_cached = false;
	abs = realpath(path, NULL);
	if (!abs)
		return art_err_set(err, -errno, "cannot find %s: %s", path, strerror(errno));
	if (stat(abs, &st) < 0) {
		rc = art_err_set(err, -errno, "cannot stat %s: %s", abs, strerror(errno));
		goto out;
	}
	snprintf(want, sizeof(want), "%llu %llu %llu %lld.%09ld ",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
		 (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
		 st.st_mtim.tv_nsec);
	mbedtls_sha256_ret((const unsigned char *)abs, strlen(abs), ph, 0);
	to_hex(ph, sizeof(ph), phex);
	if (asprintf(&dir, "%s/image-sha256", cache_dir) < 0 ||
	    asprintf(&rec, "%s/%s", dir, phex) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	rc = mkdir_p(dir, 0755);
	if (rc) {
		art_err_set(err, rc, "cannot create %s: %s", dir, strerror(-rc));
		goto out;
	}
	fd = lock_open(rec, err);	/* one hasher per image; others wait and reuse */
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	n = pread(fd, line, sizeof(line) - 1, 0);
	if (n > 0) {
		line[n] = '\0';
		if (!strncmp(line, want, strlen(want)) && strlen(line + strlen(want)) >= 64) {
			memcpy(hex, line + strlen(want), 64);
			hex[64] = '\0';
			*was_cached = true;
			rc = 0;
			goto out;
		}
	}
	rc = cache_sha256_path(abs, h, err);
	if (rc)
		goto out;
	to_hex(h, sizeof(h), hex);
	/* the file may have changed while it was hashed: remember only a stable one */
	{
		struct stat st2;

		if (stat(abs, &st2) == 0 && st2.st_mtim.tv_sec == st.st_mtim.tv_sec &&
		    st2.st_mtim.tv_nsec == st.st_mtim.tv_nsec && st2.st_size == st.st_size) {
			snprintf(line, sizeof(line), "%s%s\n", want, hex);
			if (ftruncate(fd, 0) == 0)
				(void)!pwrite(fd, line, strlen(line), 0);
		} else {
			rc = art_err_set(err, -EAGAIN, "%s changed while it was being hashed: "
					 "wait until it is completely copied", abs);
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(abs);
	free(dir);
	free(rec);
	return rc;
}
