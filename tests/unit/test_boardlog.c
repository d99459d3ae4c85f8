/* Unit tests of records/boardlog: line format, escaping, the move when the
 * serial becomes known, aliases, merging attempts, concurrent writers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "records/boardlog.h"

static char *tmp_root(void)
{
	char *t = strdup("/tmp/test_boardlog.XXXXXX");

	assert_non_null(t);
	assert_non_null(mkdtemp(t));
	return t;
}

static void rm_rf(const char *p)
{
	char *cmd;

	assert_true(asprintf(&cmd, "rm -rf '%s'", p) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static char *slurp(const char *dir, const char *name)
{
	char *path = path_join(dir, name);
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	assert_non_null(f);
	n = getdelim(&buf, &cap, '\0', f);
	if (n < 0) {
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	free(path);
	return buf;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static char *link_of(const char *dir, const char *name)
{
	char *path = path_join(dir, name);
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);

	free(path);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return strdup(buf);
}

static void test_line_format(void **state)
{
	char *root = tmp_root();
	struct boardlog *dev;
	regex_t re;
	char *dir, *text;
	struct stat st;

	(void)state;
	umask(022);
	assert_int_equal(boardlog_open(root, "1-1.2", &dev), 0);
	blog(dev, BLOG_BOOTSTRAP, "hello %d from %s", 42, "bootstrap");
	blog(dev, BLOG_TRIAGE, "%s", "");
	dir = boardlog_dir(dev);
	assert_non_null(strstr(dir, "/early/1-1.2-"));
	text = slurp(dir, "bootstrap.log");
	assert_int_equal(regcomp(&re, "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}\\] "
				 "hello 42 from bootstrap\n$", REG_EXTENDED), 0);
	assert_int_equal(regexec(&re, text, 0, NULL, 0), 0);
	regfree(&re);
	free(text);
	text = slurp(dir, "triage.log");
	assert_int_equal(strlen(text), strlen("[2026-01-01 00:00:00.000] \n"));
	free(text);

	/* modes: dirs 0750, files 0640 */
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	{
		char *f = path_join(dir, "bootstrap.log");

		assert_int_equal(stat(f, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0640);
		free(f);
	}
	/* the port alias finds the early logs */
	{
		char *l = link_of(root, "port-1-1.2");

		assert_non_null(l);
		assert_string_equal(l, strstr(dir, "early/"));
		free(l);
	}
	free(dir);
	boardlog_close(dev);
	rm_rf(root);
	free(root);
}

/* A board that leaves without a word leaves no directory behind. */
static void test_empty_early_dir_dropped(void **state)
{
	char *root = tmp_root();
	struct boardlog *dev;
	char *dir, *alias;
	struct stat st;

	(void)state;
	assert_int_equal(boardlog_open(root, "4-1", &dev), 0);
	dir = boardlog_dir(dev);
	boardlog_close(dev);
	assert_int_equal(stat(dir, &st), -1);
	alias = path_join(root, "port-4-1");
	assert_int_equal(lstat(alias, &st), -1);
	free(dir);
	/* one that wrote keeps its logs and alias */
	assert_int_equal(boardlog_open(root, "4-1", &dev), 0);
	blog(dev, BLOG_BOOTSTRAP, "no serial from this one");
	dir = boardlog_dir(dev);
	boardlog_close(dev);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(lstat(alias, &st), 0);
	free(dir);
	free(alias);
	rm_rf(root);
	free(root);
}

static void test_bad_names(void **state)
{
	char *root = tmp_root();
	struct boardlog *dev = NULL;

	(void)state;
	assert_int_equal(boardlog_open(root, "../etc", &dev), -EINVAL);
	assert_null(dev);
	assert_int_equal(boardlog_open(root, "", &dev), -EINVAL);
	assert_int_equal(boardlog_open(root, "1-1/2", &dev), -EINVAL);
	assert_int_equal(boardlog_open(root, "1-1.2", &dev), 0);
	assert_int_equal(boardlog_set_serial(dev, "0123"), -EINVAL);
	assert_int_equal(boardlog_set_serial(dev, "0123456789abcdeg"), -EINVAL);
	assert_int_equal(boardlog_set_serial(dev, "../../../etc/pw"), -EINVAL);
	boardlog_close(dev);
	rm_rf(root);
	free(root);
}

static void test_escape(void **state)
{
	char *root = tmp_root();
	struct boardlog *dev;
	char *dir, *text, *e;
	const char *want;

	(void)state;
	assert_int_equal(boardlog_open(root, "2-1", &dev), 0);
	/* ESC sequence, tab, backslash, bad UTF-8, a C1 CSI in UTF-8, fine UTF-8 */
	blog(dev, BLOG_PROVISIONER, "a\x1b[31mb\tc\\d \xff \xc2\x9b \xc3\xbc\x7f");
	blog(dev, BLOG_PROVISIONER, "first\nsecond\r\nthird\n");
	blog_bytes(dev, BLOG_PROVISIONER, "hook x.sh: ", "nul\0byte", 8);
	dir = boardlog_dir(dev);
	text = slurp(dir, "provisioner.log");
	assert_int_equal(count_lines(text), 5);
	want = "] a\\x1b[31mb\\tc\\\\d \\xff \\xc2\\x9b \xc3\xbc\\x7f\n";
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "] first\n["));
	assert_non_null(strstr(text, "] second\n["));
	assert_non_null(strstr(text, "] third\n["));
	assert_non_null(strstr(text, "] hook x.sh: nul\\x00byte\n"));
	assert_null(strchr(text, '\r'));
	assert_null(strchr(text, '\x1b'));
	free(text);
	free(dir);
	e = blog_escape("x\ny", 3);
	assert_string_equal(e, "x\\ny");
	free(e);
	/* truncated multi-byte sequence at the end */
	e = blog_escape("ok\xe2\x82", 4);
	assert_string_equal(e, "ok\\xe2\\x82");
	free(e);
	/* overlong encoding of '/' and a UTF-16 surrogate are not UTF-8 */
	e = blog_escape("\xc0\xaf\xed\xa0\x80", 5);
	assert_string_equal(e, "\\xc0\\xaf\\xed\\xa0\\x80");
	free(e);
	boardlog_close(dev);
	rm_rf(root);
	free(root);
}

/* Undo blog_escape: \\ \n \t \r \xNN; anything else is copied. */
static size_t unescape(const char *s, unsigned char *out)
{
	size_t n = 0;

	while (*s) {
		if (*s != '\\') {
			out[n++] = (unsigned char)*s++;
			continue;
		}
		s++;
		switch (*s) {
		case '\\': out[n++] = '\\'; s++; break;
		case 'n': out[n++] = '\n'; s++; break;
		case 't': out[n++] = '\t'; s++; break;
		case 'r': out[n++] = '\r'; s++; break;
		case 'x': {
			unsigned v;

			assert_int_equal(sscanf(s + 1, "%2x", &v), 1);
			out[n++] = (unsigned char)v;
			s += 3;
			break;
		}
		default:
			fail_msg("bad escape \\%c", *s);
		}
	}
	return n;
}

/* Property: for any bytes, the escaped text has no control characters (C0,
 * DEL, C1 in UTF-8 or raw), is valid UTF-8, and unescapes to the input. */
static void test_escape_property(void **state)
{
	static const unsigned char pool[] = { 0x00, 0x07, 0x0a, 0x0d, 0x1b, '\\', 'x', 'a', 0x7f,
					       0x80, 0x9b, 0xbf, 0xc0, 0xc2, 0xc3, 0xe2, 0xed, 0xf0,
					       0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x82 };
	uint32_t seed = 12345;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		unsigned char in[48], back[48];
		size_t len, n;
		char *e;

		seed = seed * 1103515245u + 12345u;
		len = (seed >> 16) % sizeof(in);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = (seed >> 8) & 1 ? pool[(seed >> 16) % sizeof(pool)]
						: (unsigned char)(seed >> 20);
		}
		e = blog_escape((const char *)in, len);
		assert_non_null(e);
		for (const unsigned char *p = (const unsigned char *)e; *p;) {
			assert_true(*p >= 0x20 && *p != 0x7f);
			if (*p < 0x80) {
				p++;
				continue;
			}
			/* must be a valid, non-C1 UTF-8 sequence */
			assert_true(*p >= 0xc2 && *p <= 0xf4);
			if (*p == 0xc2)
				assert_true(p[1] >= 0xa0);
			{
				size_t k = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;

				for (size_t j = 1; j < k; j++)
					assert_int_equal(p[j] & 0xc0, 0x80);
				p += k;
			}
		}
		n = unescape(e, back);
		assert_int_equal(n, len);
		assert_memory_equal(back, in, len);
		free(e);
	}
}

static void test_set_serial_moves(void **state)
{
	char *root = tmp_root();
	struct boardlog *dev;
	char *early, *dir, *text, *l;
	struct stat st;

	(void)state;
	assert_int_equal(boardlog_open(root, "1-1.3", &dev), 0);
	early = boardlog_dir(dev);
	blog(dev, BLOG_BOOTSTRAP, "before serial");
	assert_int_equal(boardlog_set_serial(dev, "0123456789ABCDEF"), 0);
	blog(dev, BLOG_BOOTSTRAP, "after serial");
	dir = boardlog_dir(dev);
	l = path_join(root, "0123456789abcdef");
	assert_string_equal(dir, l);
	free(l);
	assert_int_equal(stat(early, &st), -1); /* moved away */
	text = slurp(dir, "bootstrap.log");
	assert_int_equal(count_lines(text), 2);
	assert_true(strstr(text, "before serial") < strstr(text, "after serial"));
	free(text);
	/* both serial forms and the port find the logs */
	l = link_of(root, "89abcdef");
	assert_string_equal(l, "0123456789abcdef");
	free(l);
	l = link_of(root, "port-1-1.3");
	assert_string_equal(l, "0123456789abcdef");
	free(l);
	text = slurp(root, "89abcdef/bootstrap.log");
	assert_int_equal(count_lines(text), 2);
	free(text);
	/* same serial again, or its short form: nothing moves */
	assert_int_equal(boardlog_set_serial(dev, "0123456789abcdef"), 0);
	assert_int_equal(boardlog_set_serial(dev, "89ABCDEF"), 0);
	free(dir);
	dir = boardlog_dir(dev);
	assert_string_equal(strrchr(dir, '/') + 1, "0123456789abcdef");
	free(dir);
	free(early);
	boardlog_close(dev);
	rm_rf(root);
	free(root);
}

/* Attempt 1 only got the ROM serial (8 hex); attempt 2 on another port gets
 * the full serial: both attempts end up in one directory, oldest first. */
static void test_merge_attempts(void **state)
{
	char *root = tmp_root();
	struct boardlog *a, *b, *c;
	char *dir, *text, *l;
	struct stat st;

	(void)state;
	assert_int_equal(boardlog_open(root, "1-1", &a), 0);
	blog(a, BLOG_BOOTSTRAP, "attempt one line one");
	assert_int_equal(boardlog_set_serial(a, "cafef00d"), 0);
	blog(a, BLOG_BOOTSTRAP, "attempt one line two");
	dir = boardlog_dir(a);
	assert_string_equal(strrchr(dir, '/') + 1, "cafef00d");
	free(dir);
	boardlog_close(a);
	l = path_join(root, "cafef00d");
	assert_int_equal(lstat(l, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(l);

	assert_int_equal(boardlog_open(root, "1-2", &b), 0);
	blog(b, BLOG_BOOTSTRAP, "attempt two");
	blog(b, BLOG_TRIAGE, "triage two");
	assert_int_equal(boardlog_set_serial(b, "00000001cafef00d"), 0);
	boardlog_close(b);
	text = slurp(root, "00000001cafef00d/bootstrap.log");
	assert_int_equal(count_lines(text), 3);
	assert_true(strstr(text, "attempt one line one") < strstr(text, "attempt one line two"));
	assert_true(strstr(text, "attempt one line two") < strstr(text, "attempt two"));
	free(text);
	text = slurp(root, "00000001cafef00d/triage.log");
	assert_int_equal(count_lines(text), 1);
	free(text);
	l = link_of(root, "cafef00d");
	assert_string_equal(l, "00000001cafef00d");
	free(l);

	/* attempt 3 knows the short serial first: it goes to the full dir at once */
	assert_int_equal(boardlog_open(root, "1-1", &c), 0);
	blog(c, BLOG_BOOTSTRAP, "attempt three");
	assert_int_equal(boardlog_set_serial(c, "CAFEF00D"), 0);
	dir = boardlog_dir(c);
	assert_string_equal(strrchr(dir, '/') + 1, "00000001cafef00d");
	free(dir);
	blog(c, BLOG_BOOTSTRAP, "attempt three again");
	assert_int_equal(boardlog_set_serial(c, "00000001cafef00d"), 0);
	boardlog_close(c);
	text = slurp(root, "00000001cafef00d/bootstrap.log");
	assert_int_equal(count_lines(text), 5);
	assert_true(strstr(text, "attempt two") < strstr(text, "attempt three again"));
	free(text);
	l = link_of(root, "port-1-1");
	assert_string_equal(l, "00000001cafef00d");
	free(l);
	rm_rf(root);
	free(root);
}

struct sink_seen {
	pthread_mutex_t m;
	int n;
	char last[128];
	enum blog_phase phase;
};

static void sink(void *usrptr, enum blog_phase phase, const char *line)
{
	struct sink_seen *s = usrptr;

	pthread_mutex_lock(&s->m);
	s->n++;
	s->phase = phase;
	snprintf(s->last, sizeof(s->last), "%s", line);
	pthread_mutex_unlock(&s->m);
}

static void test_sink(void **state)
{
	char *root = tmp_root();
	struct boardlog *dev;
	struct sink_seen seen = { .m = PTHREAD_MUTEX_INITIALIZER };

	(void)state;
	assert_int_equal(boardlog_open(root, "3-1", &dev), 0);
	boardlog_set_sink(dev, sink, &seen);
	blog(dev, BLOG_TRIAGE, "one\ntwo\x01");
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.phase, BLOG_TRIAGE);
	assert_string_equal(seen.last, "two\\x01");
	boardlog_set_sink(dev, NULL, NULL);
	blog(dev, BLOG_TRIAGE, "three");
	assert_int_equal(seen.n, 2);
	boardlog_close(dev);
	rm_rf(root);
	free(root);
}

#define WRITERS 4
#define LINES_EACH 400
#define PAYLOAD 3000

struct writer {
	struct boardlog *dev;
	int id;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char payload[PAYLOAD + 1];

	memset(payload, 'a' + w->id, PAYLOAD);
	payload[PAYLOAD] = '\0';
	for (int i = 0; i < LINES_EACH; i++)
		blog(w->dev, BLOG_PROVISIONER, "w%d %d %s", w->id, i, payload + (i % 7) * 100);
	return NULL;
}

/* Each line must come out whole: "[time] w<id> <i> <letter x (3000-k*100)>". */
static void check_whole_lines(const char *text, int writers)
{
	int seen[WRITERS] = { 0 };
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		int id, i, off;
		size_t run;

		assert_non_null(nl);
		assert_int_equal(sscanf(p, "[%*[^]]] w%d %d %n", &id, &i, &off), 2);
		assert_true(id >= 0 && id < writers);
		assert_int_equal(i, seen[id]); /* in order per writer */
		seen[id]++;
		run = strspn(p + off, (char[]){ (char)('a' + id), 0 });
		assert_int_equal(run, (size_t)(PAYLOAD - (i % 7) * 100));
		assert_ptr_equal(p + off + run, nl);
		p = nl + 1;
	}
	for (int k = 0; k < writers; k++)
		assert_int_equal(seen[k], LINES_EACH);
}

static void test_concurrent_writers(void **state)
{
	char *root = tmp_root();
	struct boardlog *shared, *boards[WRITERS];
	pthread_t t[2 * WRITERS];
	struct writer w[2 * WRITERS];
	char *dir, *text;

	(void)state;
	/* several threads on one board, and several boards at once */
	assert_int_equal(boardlog_open(root, "9-1", &shared), 0);
	for (int k = 0; k < WRITERS; k++) {
		char port[16];

		snprintf(port, sizeof(port), "9-2.%d", k);
		assert_int_equal(boardlog_open(root, port, &boards[k]), 0);
		w[k] = (struct writer){ shared, k };
		w[WRITERS + k] = (struct writer){ boards[k], 0 };
	}
	for (int k = 0; k < 2 * WRITERS; k++)
		assert_int_equal(pthread_create(&t[k], NULL, writer_main, &w[k]), 0);
	/* move the shared board's directory while its writers run */
	assert_int_equal(boardlog_set_serial(shared, "1111111122222222"), 0);
	for (int k = 0; k < 2 * WRITERS; k++)
		pthread_join(t[k], NULL);
	dir = boardlog_dir(shared);
	text = slurp(dir, "provisioner.log");
	check_whole_lines(text, WRITERS);
	free(text);
	free(dir);
	for (int k = 0; k < WRITERS; k++) {
		dir = boardlog_dir(boards[k]);
		text = slurp(dir, "provisioner.log");
		check_whole_lines(text, 1);
		free(text);
		free(dir);
		boardlog_close(boards[k]);
	}
	boardlog_close(shared);
	rm_rf(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_format),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_empty_early_dir_dropped),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_escape_property),
		cmocka_unit_test(test_set_serial_moves),
		cmocka_unit_test(test_merge_attempts),
		cmocka_unit_test(test_sink),
		cmocka_unit_test(test_concurrent_writers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
