/* view_images: the OS images beside the configured one (size, type, sha256)
 * and the artefact cache.
 *
 * Hashing a multi-GB image takes a while, so one background thread (the
 * hasher) reads each file and publishes its progress under a mutex; it wakes
 * the front-end loop through a pipe at most every HASH_NOTIFY_NS, and the view
 * paints a progress bar from the published numbers. The hasher never touches
 * curses. The list is scanned once when the view first opens. */
#include <curses.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/sha256.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config/goldimage.h"
#include "tui.h"

#define HASH_NOTIFY_NS 200000000ull
#define IMAGES_MAX 64

struct image_entry {
	char path[1300];
	uint64_t size;
	char type[64];
	/* published by the hasher under mu */
	uint64_t hashed;
	char sha256[65];
	int state;               /* 0 queued, 1 hashing, 2 done, -errno failed */
};

struct image_hasher {
	pthread_t thread;
	pthread_mutex_t mu;
	int pipe[2];
	bool stop;               /* under mu */
	char dir[1024];
	struct image_entry *v;
	size_t n;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wake(struct image_hasher *h)
{
	char b = 1;

	if (write(h->pipe[1], &b, 1) < 0) {
		/* full: the front end has a wake-up pending anyway */
	}
}

static void classify(const char *path, char *type, size_t len)
{
	struct goldimage_info gi;
	char err[GOLDIMAGE_ERRLEN];
	unsigned char m[8] = { 0 };
	int fd;
	const char *ext = strrchr(path, '.');

	if (goldimage_check(path, &gi, err, sizeof(err)) == 0) {
		snprintf(type, len, "gold image (FAT%u + ext4)", gi.fat_bits);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, m, sizeof(m)) < 0)
			memset(m, 0, sizeof(m));
		close(fd);
	}
	if (m[0] == 0x3a && m[1] == 0xff && m[2] == 0x26 && m[3] == 0xed)
		snprintf(type, len, "android sparse");
	else if (m[0] == 0xfd && memcmp(m + 1, "7zXZ", 4) == 0)
		snprintf(type, len, "xz (decompress first)");
	else if (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		snprintf(type, len, "zstd (decompress first)");
	else if (m[0] == 0x1f && m[1] == 0x8b)
		snprintf(type, len, "gzip (decompress first)");
	else if (ext && strcmp(ext, ".bmap") == 0)
		snprintf(type, len, "bmap (block map)");
	else
		snprintf(type, len, "not an image");
}

static int hash_one(struct image_hasher *h, struct image_entry *e)
{
	mbedtls_sha256_context ctx;
	static unsigned char buf[1 << 20]; /* the hasher thread's only */
	unsigned char sum[32];
	uint64_t done = 0, last = 0;
	int fd, rc = 0;

	fd = open(e->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	mbedtls_sha256_init(&ctx);
	mbedtls_sha256_starts_ret(&ctx, 0);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		bool stop;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		mbedtls_sha256_update_ret(&ctx, buf, (size_t)n);
		done += (uint64_t)n;
		pthread_mutex_lock(&h->mu);
		e->hashed = done;
		stop = h->stop;
		pthread_mutex_unlock(&h->mu);
		if (stop) {
			rc = -ECANCELED;
			break;
		}
		if (mono_ns() - last > HASH_NOTIFY_NS) {
			last = mono_ns();
			wake(h);
		}
	}
	if (rc == 0) {
		mbedtls_sha256_finish_ret(&ctx, sum);
		pthread_mutex_lock(&h->mu);
		for (int i = 0; i < 32; i++)
			snprintf(e->sha256 + 2 * i, 3, "%02x", sum[i]);
		pthread_mutex_unlock(&h->mu);
	}
	mbedtls_sha256_free(&ctx);
	close(fd);
	return rc;
}

static void *hasher_main(void *arg)
{
	struct image_hasher *h = arg;

	for (size_t i = 0; i < h->n; i++) {
		int rc;

		pthread_mutex_lock(&h->mu);
		h->v[i].state = h->stop ? -ECANCELED : 1;
		pthread_mutex_unlock(&h->mu);
		if (h->v[i].state < 0)
			break;
		rc = hash_one(h, &h->v[i]);
		pthread_mutex_lock(&h->mu);
		h->v[i].state = rc < 0 ? rc : 2;
		pthread_mutex_unlock(&h->mu);
		wake(h);
	}
	return NULL;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct image_entry *)a)->path, ((const struct image_entry *)b)->path);
}

static struct image_hasher *hasher_start(const char *dir)
{
	struct image_hasher *h = calloc(1, sizeof(*h));
	DIR *d;
	struct dirent *de;

	if (!h)
		return NULL;
	snprintf(h->dir, sizeof(h->dir), "%s", dir);
	h->pipe[0] = h->pipe[1] = -1;
	h->v = calloc(IMAGES_MAX, sizeof(*h->v));
	if (!h->v || pipe2(h->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(h->v);
		free(h);
		return NULL;
	}
	pthread_mutex_init(&h->mu, NULL);
	d = opendir(dir);
	while (d && (de = readdir(d)) && h->n < IMAGES_MAX) {
		struct image_entry *e = &h->v[h->n];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(e->path, sizeof(e->path), "%s/%s", dir, de->d_name);
		if (stat(e->path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		e->size = (uint64_t)st.st_size;
		classify(e->path, e->type, sizeof(e->type));
		h->n++;
	}
	if (d)
		closedir(d);
	qsort(h->v, h->n, sizeof(*h->v), entry_cmp);
	if (pthread_create(&h->thread, NULL, hasher_main, h) != 0) {
		/* No thread: the list still shows, without hashes. */
		for (size_t i = 0; i < h->n; i++)
			h->v[i].state = -EAGAIN;
		h->thread = 0;
	}
	return h;
}

int images_hasher_fd(const struct tui *t)
{
	return t->hasher ? t->hasher->pipe[0] : -1;
}

void images_hasher_drain(struct tui *t)
{
	char buf[64];

	if (t->hasher)
		while (read(t->hasher->pipe[0], buf, sizeof(buf)) > 0) {
		}
}

void images_hasher_stop(struct tui *t)
{
	struct image_hasher *h = t->hasher;

	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_mutex_unlock(&h->mu);
	if (h->thread)
		pthread_join(h->thread, NULL);
	pthread_mutex_destroy(&h->mu);
	close(h->pipe[0]);
	close(h->pipe[1]);
	free(h->v);
	free(h);
	t->hasher = NULL;
}

static void human(uint64_t b, char *buf, size_t len)
{
	if (b >= 1000000000ull)
		snprintf(buf, len, "%.2f GB", (double)b / 1e9);
	else if (b >= 1000000ull)
		snprintf(buf, len, "%.1f MB", (double)b / 1e6);
	else
		snprintf(buf, len, "%.1f kB", (double)b / 1e3);
}

static uint64_t dir_usage(const char *dir, unsigned depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t sum = 0;

	while (d && (de = readdir(d))) {
		char p[2048];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 8)
			sum += dir_usage(p, depth + 1);
		else if (S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_blocks * 512u;
	}
	if (d)
		closedir(d);
	return sum;
}

void images_rows(struct tui *t, struct text_list *out)
{
	char dir[1024], sz[32];
	const char *slash = strrchr(t->gold, '/');
	struct image_hasher *h;

	if (slash)
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - t->gold), t->gold);
	else
		snprintf(dir, sizeof(dir), "%s/images", t->cli->paths.srv);
	if (t->hasher && strcmp(t->hasher->dir, dir) != 0)
		images_hasher_stop(t);
	if (!t->hasher)
		t->hasher = hasher_start(dir);
	h = t->hasher;
	text_list_add(out, TUI_ATTR_HEAD, "Images in %s (configured: %s)", dir,
		      t->gold[0] ? t->gold : "none");
	if (!h || !h->n) {
		text_list_add(out, TUI_ATTR_MUTED, "  no files");
	} else {
		pthread_mutex_lock(&h->mu);
		for (size_t i = 0; i < h->n; i++) {
			struct image_entry *e = &h->v[i];
			bool mine = strcmp(e->path, t->gold) == 0;
			const char *name = strrchr(e->path, '/') + 1;
			char hash[96];

			if (e->state == 2) {
				snprintf(hash, sizeof(hash), "%s", e->sha256);
			} else if (e->state == 1) {
				char bar[24];
				int fill = e->size ? (int)(20.0 * (double)e->hashed / (double)e->size) : 20;

				for (int k = 0; k < 20; k++)
					bar[k] = k < fill ? '#' : '-';
				bar[20] = '\0';
				snprintf(hash, sizeof(hash), "sha256 [%s] %3.0f%%", bar,
					 e->size ? 100.0 * (double)e->hashed / (double)e->size : 100.0);
			} else if (e->state == 0) {
				snprintf(hash, sizeof(hash), "sha256 queued");
			} else {
				snprintf(hash, sizeof(hash), "sha256 failed: %s", strerror(-e->state));
			}
			human(e->size, sz, sizeof(sz));
			text_list_add(out, mine ? TUI_ATTR_OK : TUI_ATTR_NORMAL, "%s %-28s %10s  %-26s",
				      mine ? "*" : " ", name, sz, e->type);
			text_list_add(out, mine ? TUI_ATTR_OK : TUI_ATTR_MUTED, "    %s", hash);
		}
		pthread_mutex_unlock(&h->mu);
	}
	text_list_add(out, TUI_ATTR_NORMAL, "%s", "");
	human(t->cache_dir[0] ? dir_usage(t->cache_dir, 0) : 0, sz, sizeof(sz));
	text_list_add(out, TUI_ATTR_HEAD, "Artefact cache %s: %s (F9 clears it)",
		      t->cache_dir[0] ? t->cache_dir : "(none)", sz);
}
