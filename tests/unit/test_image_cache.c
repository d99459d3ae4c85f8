/* test_image_cache: the content-addressed cache: keys change with every
 * input, entries are built once and reused, failed or crashed builds leave
 * nothing behind, concurrent builders (threads and processes) produce one
 * build, and the image hash is remembered until the file changes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/cache.h"

static char tmp[64], cache[96], counter[96];

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/test_cache.XXXXXX");
	assert_non_null(mkdtemp(tmp));
	snprintf(cache, sizeof(cache), "%s/cache", tmp);
	snprintf(counter, sizeof(counter), "%s/builds", tmp);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cache_remove_tree(tmp);
	return 0;
}

struct inputs {
	const char *sha, *mode, *storage, *fp;
	uint64_t container;
};

static void key_of(const struct inputs *in, char out[CACHE_KEY_HEX])
{
	struct cache_key k;

	cache_key_init(&k, "boot");
	cache_key_add_str(&k, "image-sha256", in->sha);
	cache_key_add_str(&k, "mode", in->mode);
	cache_key_add_str(&k, "storage", in->storage);
	cache_key_add_str(&k, "key", in->fp);
	cache_key_add_u64(&k, "container", in->container);
	cache_key_final(&k, out);
}

static void test_keys(void **state)
{
	const struct inputs base = {"aa", "secure-boot", "sd", "f00d", 100};
	struct inputs v;
	char k0[CACHE_KEY_HEX], k1[CACHE_KEY_HEX];
	struct cache_key a, b;

	(void)state;
	key_of(&base, k0);
	key_of(&base, k1);
	assert_string_equal(k0, k1);
	assert_int_equal(strlen(k0), 64);
#define CHANGED(field, value)                                                                      \
	do {                                                                                       \
		v = base;                                                                          \
		v.field = value;                                                                   \
		key_of(&v, k1);                                                                    \
		assert_string_not_equal(k0, k1);                                                   \
	} while (0)
	CHANGED(sha, "ab");
	CHANGED(mode, "fde-only");
	CHANGED(storage, "nvme");
	CHANGED(fp, "f00e");
	CHANGED(fp, NULL);
	CHANGED(fp, "");
	CHANGED(container, 101);
#undef CHANGED
	/* framing: ("a","bc") is not ("ab","c") */
	cache_key_init(&a, "x");
	cache_key_add_str(&a, "a", "bc");
	cache_key_final(&a, k0);
	cache_key_init(&b, "x");
	cache_key_add_str(&b, "ab", "c");
	cache_key_final(&b, k1);
	assert_string_not_equal(k0, k1);
}

static int count_builds(void)
{
	char line[64];
	int n = 0;
	FILE *f = fopen(counter, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

/* A build that takes a little real work (so racing builders overlap) and
 * records itself in the counter file. */
static int build_ok(void *usr, const char *dir, struct art_err *err)
{
	char path[256];
	uint8_t h[32];
	FILE *f;
	int i;

	(void)err;
	snprintf(path, sizeof(path), "%s/artefact", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (i = 0; i < 200000; i++)
		fputs("artefact data\n", f);
	fclose(f);
	cache_sha256_path(path, h, NULL);
	f = fopen(counter, "a");
	assert_non_null(f);
	fprintf(f, "%s\n", usr ? (char *)usr : "build");
	fclose(f);
	return 0;
}

static int build_fail(void *usr, const char *dir, struct art_err *err)
{
	char path[256];

	(void)usr;
	snprintf(path, sizeof(path), "%s/half-written", dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	return art_err_set(err, -EIO, "disk full");
}

static bool tmp_dirs_left(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ls -a %s | grep -q '^\\.tmp-'", cache);
	return system(cmd) == 0;
}

static void test_hit_miss_fail(void **state)
{
	struct art_err err = {{0}};
	char *dir = NULL, path[256], stale[256];
	bool hit = true;
	const char *key = "0123abcd";

	(void)state;
	unlink(counter);
	assert_int_equal(cache_get(cache, key, build_ok, NULL, &dir, &hit, &err), 0);
	assert_false(hit);
	assert_int_equal(count_builds(), 1);
	snprintf(path, sizeof(path), "%s/artefact", dir);
	assert_int_equal(access(path, R_OK), 0);
	free(dir);
	assert_int_equal(cache_get(cache, key, build_ok, NULL, &dir, &hit, &err), 0);
	assert_true(hit);
	assert_int_equal(count_builds(), 1);
	free(dir);
	/* another key: built */
	assert_int_equal(cache_get(cache, "0123abce", build_ok, NULL, &dir, &hit, &err), 0);
	assert_false(hit);
	assert_int_equal(count_builds(), 2);
	free(dir);
	/* a failed build publishes nothing and leaves no temp dir */
	assert_int_equal(cache_get(cache, "feed", build_fail, NULL, &dir, &hit, &err), -EIO);
	assert_null(dir);
	assert_non_null(strstr(err.msg, "disk full"));
	snprintf(path, sizeof(path), "%s/feed", cache);
	assert_int_equal(access(path, F_OK), -1);
	assert_false(tmp_dirs_left());
	/* a crash mid-build leaves a temp dir: the next build of the key removes it */
	snprintf(stale, sizeof(stale), "%s/.tmp-beef-Ab12Cd", cache);
	assert_int_equal(mkdir(stale, 0755), 0);
	assert_true(tmp_dirs_left());
	assert_int_equal(cache_get(cache, "beef", build_ok, NULL, &dir, &hit, &err), 0);
	assert_false(tmp_dirs_left());
	free(dir);
	/* invalid keys never become paths */
	assert_int_equal(cache_get(cache, "../x", build_ok, NULL, &dir, &hit, &err), -EINVAL);
	/* clear: entries gone, next call rebuilds */
	assert_int_equal(cache_clear(cache, &err), 0);
	assert_int_equal(cache_get(cache, key, build_ok, NULL, &dir, &hit, &err), 0);
	assert_false(hit);
	free(dir);
}

static pthread_barrier_t barrier;
static char who_thread[] = "thread", who_process[] = "process";

static void *racer(void *arg)
{
	struct art_err err = {{0}};
	char *dir = NULL;
	bool hit;
	int rc;

	(void)arg;
	pthread_barrier_wait(&barrier);
	rc = cache_get(cache, "5a5a", build_ok, who_thread, &dir, &hit, &err);
	free(dir);
	return (void *)(intptr_t)rc;
}

static void test_concurrent_builders(void **state)
{
	pthread_t th[4];
	pid_t kids[2];
	int i, status;

	(void)state;
	unlink(counter);
	pthread_barrier_init(&barrier, NULL, 4);
	for (i = 0; i < 2; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			struct art_err err = {{0}};
			char *dir = NULL;
			bool hit;

			_exit(cache_get(cache, "5a5a", build_ok, who_process, &dir, &hit, &err) ? 1 : 0);
		}
	}
	for (i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, racer, NULL);
	for (i = 0; i < 4; i++) {
		void *rc;

		pthread_join(th[i], &rc);
		assert_int_equal((intptr_t)rc, 0);
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	pthread_barrier_destroy(&barrier);
	assert_int_equal(count_builds(), 1);
}

static void test_image_hash_memo(void **state)
{
	struct art_err err = {{0}};
	char img[128], h1[CACHE_KEY_HEX], h2[CACHE_KEY_HEX], cmd[320];
	bool cached;
	FILE *f;

	(void)state;
	snprintf(img, sizeof(img), "%s/gold.img", tmp);
	f = fopen(img, "w");
	assert_non_null(f);
	fputs("gold", f);
	fclose(f);
	assert_int_equal(cache_file_sha256(cache, img, h1, &cached, &err), 0);
	assert_false(cached);
	/* sha256("gold") */
	assert_string_equal(h1, "24d7f03d8dc3c3666969e6fa5bb1fac4736d3f1353c28307ed51b320f9dc42d3");
	assert_int_equal(cache_file_sha256(cache, img, h2, &cached, &err), 0);
	assert_true(cached);
	assert_string_equal(h1, h2);
	/* same size, new content and time: recomputed */
	snprintf(cmd, sizeof(cmd), "printf gild > %s && touch -d '2030-01-01' %s", img, img);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(cache_file_sha256(cache, img, h2, &cached, &err), 0);
	assert_false(cached);
	assert_string_not_equal(h1, h2);
	assert_int_equal(cache_file_sha256(cache, "/nonexistent/gold.img", h2, &cached, &err), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_hit_miss_fail),
		cmocka_unit_test(test_concurrent_builders),
		cmocka_unit_test(test_image_hash_memo),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
