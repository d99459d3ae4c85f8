/* Unit tests of records/flags: lookup by both serial forms, once vs
 * persistent, consume after bootstrap, set/clear, listing. */
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

#include "core/paths.h"
#include "records/flags.h"

struct fixture {
	char *dir;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->dir = strdup("/tmp/test_flags.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd;

	if (asprintf(&cmd, "rm -rf '%s'", f->dir) > 0) {
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", f->dir);
		free(cmd);
	}
	free(f->dir);
	free(f);
	return 0;
}

/* Write a flag file by hand, as an operator following the peer's docs would. */
static void put(const char *dir, const char *sub, const char *name, const char *content)
{
	char *d = path_join(dir, sub), *p;
	FILE *fp;

	assert_int_equal(mkdir_p(d, 0755), 0);
	p = path_join(d, name);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(content, fp);
	fclose(fp);
	free(p);
	free(d);
}

static bool exists(const char *dir, const char *sub, const char *name)
{
	char *p;
	struct stat st;
	bool r;

	assert_true(asprintf(&p, "%s/%s/%s", dir, sub, name) > 0);
	r = lstat(p, &st) == 0;
	free(p);
	return r;
}

static enum flag_state look(const char *dir, const char *serial, enum flag_kind k)
{
	enum flag_state s = FLAG_PERSISTENT;

	assert_int_equal(flags_lookup(dir, serial, k, &s), 0);
	return s;
}

static void test_names(void **state)
{
	enum flag_kind k;
	char s[FLAGS_SERIAL_MAX];

	(void)state;
	assert_int_equal(flags_parse("skip-eeprom", &k), 0);
	assert_int_equal(k, FLAG_SKIP_EEPROM);
	assert_int_equal(flags_parse("reprovision", &k), 0);
	assert_int_equal(k, FLAG_REPROVISION);
	assert_int_equal(flags_parse("special-reprovision-device", &k), 0);
	assert_int_equal(flags_parse("skip", &k), -EINVAL);
	assert_string_equal(flags_subdir(FLAG_SKIP_EEPROM), "special-skip-eeprom");
	assert_string_equal(flags_subdir(FLAG_REPROVISION), "special-reprovision-device");
	assert_int_equal(flags_serial_normalise("1A2B3C4D", s), 0);
	assert_string_equal(s, "1a2b3c4d");
	assert_int_equal(flags_serial_normalise("1a2b3c4", s), -EINVAL);
	assert_int_equal(flags_serial_normalise("1a2b3c4d5", s), -EINVAL);
	assert_int_equal(flags_serial_normalise("../../etc", s), -EINVAL);
	assert_int_equal(flags_serial_normalise("0x2b3c4d5e", s), -EINVAL);
	assert_int_equal(flags_serial_normalise("", s), -EINVAL);
}

static void test_lookup_forms(void **state)
{
	struct fixture *f = *state;
	enum flag_state st;

	assert_int_equal(look(f->dir, "000000001a2b3c4d", FLAG_SKIP_EEPROM), FLAG_NONE);
	/* short name: found by the short and by the full serial */
	put(f->dir, "special-skip-eeprom", "1a2b3c4d", "once\n");
	assert_int_equal(look(f->dir, "1a2b3c4d", FLAG_SKIP_EEPROM), FLAG_ONCE);
	assert_int_equal(look(f->dir, "000000001A2B3C4D", FLAG_SKIP_EEPROM), FLAG_ONCE);
	assert_int_equal(look(f->dir, "000000001a2b3c4d", FLAG_REPROVISION), FLAG_NONE);
	assert_int_equal(look(f->dir, "ffffffff1a2b3c4e", FLAG_SKIP_EEPROM), FLAG_NONE);
	/* full name: found by the full and by the short serial (boot mode) */
	put(f->dir, "special-reprovision-device", "00000000deadbeef", "yes please");
	assert_int_equal(look(f->dir, "00000000deadbeef", FLAG_REPROVISION), FLAG_PERSISTENT);
	assert_int_equal(look(f->dir, "DEADBEEF", FLAG_REPROVISION), FLAG_PERSISTENT);
	assert_int_equal(look(f->dir, "11111111deadbeef", FLAG_REPROVISION), FLAG_NONE);
	/* exact name wins over the other form */
	put(f->dir, "special-skip-eeprom", "000000001a2b3c4d", "");
	assert_int_equal(look(f->dir, "000000001a2b3c4d", FLAG_SKIP_EEPROM), FLAG_PERSISTENT);
	assert_int_equal(look(f->dir, "1a2b3c4d", FLAG_SKIP_EEPROM), FLAG_ONCE);
	/* bad serial */
	assert_int_equal(flags_lookup(f->dir, "1a2b3c4", FLAG_SKIP_EEPROM, &st), -EINVAL);
}

static void test_content(void **state)
{
	struct fixture *f = *state;

	put(f->dir, "special-skip-eeprom", "00000001", "once");
	assert_int_equal(look(f->dir, "00000001", FLAG_SKIP_EEPROM), FLAG_ONCE);
	put(f->dir, "special-skip-eeprom", "00000002", "  once \r\n\n");
	assert_int_equal(look(f->dir, "00000002", FLAG_SKIP_EEPROM), FLAG_ONCE);
	put(f->dir, "special-skip-eeprom", "00000003", "ONCE\n");
	assert_int_equal(look(f->dir, "00000003", FLAG_SKIP_EEPROM), FLAG_PERSISTENT);
	put(f->dir, "special-skip-eeprom", "00000004", "once more\n");
	assert_int_equal(look(f->dir, "00000004", FLAG_SKIP_EEPROM), FLAG_PERSISTENT);
	put(f->dir, "special-skip-eeprom", "00000005", "");
	assert_int_equal(look(f->dir, "00000005", FLAG_SKIP_EEPROM), FLAG_PERSISTENT);
	/* a directory or FIFO is no flag (and must not hang the lookup) */
	{
		char *p;

		assert_true(asprintf(&p, "%s/special-skip-eeprom/00000006", f->dir) > 0);
		assert_int_equal(mkfifo(p, 0644), 0);
		free(p);
	}
	assert_int_equal(look(f->dir, "00000006", FLAG_SKIP_EEPROM), FLAG_NONE);
}

static void test_set_clear(void **state)
{
	struct fixture *f = *state;
	char *p;
	struct stat st;

	assert_int_equal(flags_set(f->dir, "00000000CAFEF00D", FLAG_SKIP_EEPROM, true), 0);
	assert_true(exists(f->dir, "special-skip-eeprom", "00000000cafef00d"));
	assert_int_equal(look(f->dir, "cafef00d", FLAG_SKIP_EEPROM), FLAG_ONCE);
	assert_true(asprintf(&p, "%s/special-skip-eeprom/00000000cafef00d", f->dir) > 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	free(p);
	/* replace: persistent now */
	assert_int_equal(flags_set(f->dir, "00000000cafef00d", FLAG_SKIP_EEPROM, false), 0);
	assert_int_equal(look(f->dir, "00000000cafef00d", FLAG_SKIP_EEPROM), FLAG_PERSISTENT);
	/* setting under the other form replaces it (no stale second file) */
	assert_int_equal(flags_set(f->dir, "cafef00d", FLAG_SKIP_EEPROM, true), 0);
	assert_false(exists(f->dir, "special-skip-eeprom", "00000000cafef00d"));
	assert_int_equal(look(f->dir, "00000000cafef00d", FLAG_SKIP_EEPROM), FLAG_ONCE);
	/* clear by either form removes every form */
	put(f->dir, "special-skip-eeprom", "00000000cafef00d", "persistent\n");
	assert_int_equal(flags_clear(f->dir, "CAFEF00D", FLAG_SKIP_EEPROM), 0);
	assert_false(exists(f->dir, "special-skip-eeprom", "cafef00d"));
	assert_false(exists(f->dir, "special-skip-eeprom", "00000000cafef00d"));
	assert_int_equal(look(f->dir, "00000000cafef00d", FLAG_SKIP_EEPROM), FLAG_NONE);
	assert_int_equal(flags_clear(f->dir, "cafef00d", FLAG_SKIP_EEPROM), -ENOENT);
	assert_int_equal(flags_set(f->dir, "cafef00", FLAG_SKIP_EEPROM, true), -EINVAL);
	assert_int_equal(flags_set(f->dir, "../../x/", FLAG_SKIP_EEPROM, true), -EINVAL);
	/* no temporary files left behind */
	{
		char *cmd;

		assert_true(asprintf(&cmd, "test -z \"$(ls -A '%s/special-skip-eeprom')\"", f->dir) > 0);
		assert_int_equal(system(cmd), 0);
		free(cmd);
	}
}

static void test_consume_once(void **state)
{
	struct fixture *f = *state;

	put(f->dir, "special-skip-eeprom", "1a2b3c4d", "once\n");
	put(f->dir, "special-reprovision-device", "000000001a2b3c4d", "persistent\n");
	put(f->dir, "special-reprovision-device", "1a2b3c4d", "once\n");
	put(f->dir, "special-skip-eeprom", "99999999", "once\n"); /* another board */
	assert_int_equal(flags_consume_once(f->dir, "000000001a2b3c4d"), 2);
	assert_false(exists(f->dir, "special-skip-eeprom", "1a2b3c4d"));
	assert_false(exists(f->dir, "special-reprovision-device", "1a2b3c4d"));
	assert_true(exists(f->dir, "special-reprovision-device", "000000001a2b3c4d"));
	assert_true(exists(f->dir, "special-skip-eeprom", "99999999"));
	assert_int_equal(look(f->dir, "1a2b3c4d", FLAG_REPROVISION), FLAG_PERSISTENT);
	assert_int_equal(flags_consume_once(f->dir, "1a2b3c4d"), 0);
	/* by the short serial, a once flag under the full name goes too */
	put(f->dir, "special-skip-eeprom", "abcdef0012345678", "once");
	assert_int_equal(flags_consume_once(f->dir, "12345678"), 1);
	assert_false(exists(f->dir, "special-skip-eeprom", "abcdef0012345678"));
	assert_int_equal(flags_consume_once(f->dir, "nothex!!"), -EINVAL);
}

struct seen {
	char text[512];
};

static int collect(void *usrptr, enum flag_kind flag, const char *name, enum flag_state state)
{
	struct seen *s = usrptr;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "%s %s %s;", name, flags_name(flag),
		 flags_state_name(state));
	return 0;
}

static int stop_at_first(void *usrptr, enum flag_kind flag, const char *name, enum flag_state state)
{
	(void)flag;
	(void)name;
	(void)state;
	(*(int *)usrptr)++;
	return 7;
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct seen s = { "" };
	int calls = 0;

	assert_int_equal(flags_list(f->dir, collect, &s), 0);
	assert_string_equal(s.text, "");
	put(f->dir, "special-skip-eeprom", "bbbbbbbb", "once");
	put(f->dir, "special-skip-eeprom", "aaaaaaaa", "x");
	put(f->dir, "special-reprovision-device", "0123456789abcdef", "");
	put(f->dir, "special-skip-eeprom", ".aaaaaaaa.tmp", "once");
	assert_int_equal(flags_list(f->dir, collect, &s), 0);
	assert_string_equal(s.text, "aaaaaaaa skip-eeprom persistent;bbbbbbbb skip-eeprom once;"
				    "0123456789abcdef reprovision persistent;");
	assert_int_equal(flags_list(f->dir, stop_at_first, &calls), 7);
	assert_int_equal(calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_lookup_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_content, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_consume_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
