/* test_allowlist: the USB port allow-list: pattern syntax, globs, comments,
 * the vendor/admin merge with masking, and the "no rules = every port" rule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/allowlist.h"

static char tmpdir[64], vendor[96], admin[96];

static void put(const char *dir, const char *name, const char *text)
{
	char path[192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_allowlist.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(vendor, sizeof(vendor), "%s/vendor", tmpdir);
	snprintf(admin, sizeof(admin), "%s/admin", tmpdir);
	return mkdir(vendor, 0755) || mkdir(admin, 0755) ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_pattern_syntax(void **state)
{
	static const char *const good[] = {
		"1-1", "1-1.2", "3-1.4.2.1", "1-*", "*", "1-1.*", "1-[12]", "2-1.[1-4]", "1-1.[!3]",
		"1-?", "*.3", "12-3.10",
	};
	static const char *const bad[] = {
		"", "abc", "1", "1-", "-1", "1--2", "1-1.", "1-.1", "1-1..2", "1.2", "1-[", "1-[]",
		"1-[a]", "1-1/2", "usb1", "1-1 2", "1-[1.2]", "1-1]",
		"1-1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!allowlist_pattern_valid(good[i]))
			fail_msg("rejected valid pattern '%s'", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (allowlist_pattern_valid(bad[i]))
			fail_msg("accepted invalid pattern '%s'", bad[i]);
}

/* Only a glob-free rule names one port (an empty tile at start-up). */
static void test_pattern_literal(void **state)
{
	(void)state;
	assert_true(allowlist_pattern_literal("1-1.2"));
	assert_true(allowlist_pattern_literal("3-1"));
	assert_false(allowlist_pattern_literal("3-*"));
	assert_false(allowlist_pattern_literal("1-1.[34]"));
	assert_false(allowlist_pattern_literal("1-1.?"));
}

static void test_parse_and_match(void **state)
{
	struct config_problems p = { 0 };
	struct allowlist *al = allowlist_new();
	const char *text = "# bench A\n  1-1.2  \n\n1-1.3 # the jig's right port\n2-*\nnonsense\n1-1.[45]\n";

	(void)state;
	assert_non_null(al);
	assert_true(allowlist_permits(al, "9-9"));     /* no rules: every port */
	assert_true(allowlist_permits(al, NULL));
	assert_int_equal(allowlist_parse_buffer(al, "bench.conf", text, strlen(text), &p), -EINVAL);
	assert_int_equal(al->n, 4);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.v[0].file, "bench.conf");
	assert_int_equal(p.v[0].line, 6);
	assert_non_null(strstr(p.v[0].message, "'nonsense'"));
	assert_int_equal(al->v[1].line, 4);
	assert_string_equal(al->v[1].pattern, "1-1.3");

	assert_true(allowlist_permits(al, "1-1.2"));
	assert_true(allowlist_permits(al, "1-1.3"));
	assert_true(allowlist_permits(al, "1-1.5"));
	assert_true(allowlist_permits(al, "2-1.4.1"));
	assert_false(allowlist_permits(al, "1-1.1"));
	assert_false(allowlist_permits(al, "1-1.2.1"));
	assert_false(allowlist_permits(al, "3-1"));
	assert_false(allowlist_permits(al, NULL));     /* rules present + unknown port: skip */
	assert_false(allowlist_permits(al, ""));
	allowlist_free(al);
	config_problems_free(&p);
}

static void test_vendor_admin_merge(void **state)
{
	struct config_problems p = { 0 };
	struct allowlist *al = NULL;

	(void)state;
	put(vendor, "10-hub.conf", "1-1.1\n1-1.2\n");
	put(vendor, "20-extra.conf", "4-1\n");
	put(vendor, "notes.txt", "5-1\n");          /* not a .conf: ignored */
	put(admin, "20-extra.conf", "");            /* masks the vendor file */
	put(admin, "30-site.conf", "3-2\n");
	assert_int_equal(allowlist_load(vendor, admin, &al, &p), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(al->files, 3);
	assert_int_equal(al->n, 3);
	assert_true(allowlist_permits(al, "1-1.1"));
	assert_true(allowlist_permits(al, "3-2"));
	assert_false(allowlist_permits(al, "4-1"));
	assert_false(allowlist_permits(al, "5-1"));
	allowlist_free(al);

	/* an admin file of the same name replaces the vendor one */
	put(admin, "10-hub.conf", "1-1.4\n");
	assert_int_equal(allowlist_load(vendor, admin, &al, &p), 0);
	assert_false(allowlist_permits(al, "1-1.1"));
	assert_true(allowlist_permits(al, "1-1.4"));
	allowlist_free(al);

	/* a bad line is reported with the admin file's path */
	put(admin, "30-site.conf", "3-2\nport seven\n");
	assert_int_equal(allowlist_load(vendor, admin, &al, &p), -EINVAL);
	assert_int_equal(p.n, 1);
	assert_non_null(strstr(p.v[0].file, "/admin/30-site.conf"));
	assert_int_equal(p.v[0].line, 2);
	allowlist_free(al);
	config_problems_free(&p);

	/* missing directories: no rules, every port */
	assert_int_equal(allowlist_load("/nonexistent/a", NULL, &al, &p), 0);
	assert_int_equal(al->n, 0);
	assert_true(allowlist_permits(al, "7-7"));
	allowlist_free(al);
}

static void test_only_empty_files_allow_all(void **state)
{
	struct config_problems p = { 0 };
	struct allowlist *al = NULL;
	char dir[128];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/empty", tmpdir);
	assert_int_equal(mkdir(dir, 0755), 0);
	put(dir, "a.conf", "# nothing yet\n\n");
	assert_int_equal(allowlist_load(NULL, dir, &al, &p), 0);
	assert_int_equal(al->n, 0);
	assert_true(allowlist_permits(al, "1-2"));
	allowlist_free(al);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pattern_syntax),
		cmocka_unit_test(test_pattern_literal),
		cmocka_unit_test(test_parse_and_match),
		cmocka_unit_test(test_vendor_admin_merge),
		cmocka_unit_test(test_only_empty_files_allow_all),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
