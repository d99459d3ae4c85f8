/* fuzz_boardlog: board-supplied text in the per-board logs
 * (src/records/boardlog.c). The input is `serial \n text`:
 *   - blog_escape(text) must hold no control character (C0, DEL, or C1 as
 *     UTF-8) and must decode back to exactly the input bytes;
 *   - blog_bytes(text) through a real board log: every line handed to the
 *     sink is printable the same way;
 *   - boardlog_set_serial(serial): accepted only for 8 or 16 hex digits, and
 *     the board's directory stays a direct child of the log directory.
 * The log directory is a scratch directory under /dev/shm (else TMPDIR). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/cache.h"
#include "scratch.h"
#include "records/boardlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char logdir[300];

/* No C0 control, DEL, or UTF-8 encoded C1 control (U+0080..U+009F). */
static void check_printable(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; p[i]; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			abort();
		if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			abort();
	}
}

static int hexdig(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Undo the escaping; abort on anything blog_escape cannot have written. */
static void check_roundtrip(const char *esc, const uint8_t *orig, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; esc[i]; i++) {
		uint8_t c = (uint8_t)esc[i];

		if (c == '\\') {
			char k = esc[++i];

			if (k == '\\')
				c = '\\';
			else if (k == 'n')
				c = '\n';
			else if (k == 't')
				c = '\t';
			else if (k == 'r')
				c = '\r';
			else if (k == 'x' && hexdig(esc[i + 1]) >= 0 && hexdig(esc[i + 2]) >= 0) {
				c = (uint8_t)(hexdig(esc[i + 1]) << 4 | hexdig(esc[i + 2]));
				i += 2;
			} else
				abort();
		}
		if (o >= len || orig[o++] != c)
			abort();
	}
	if (o != len)
		abort();
}

static void sink(void *usrptr, enum blog_phase phase, const char *line)
{
	unsigned *lines = usrptr;

	(void)phase;
	check_printable(line);
	(*lines)++;
}

static bool hex_serial(const uint8_t *s, size_t n)
{
	if (n != 8 && n != 16)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f')))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t slen = nl ? (size_t)(nl - data) : size;
	const uint8_t *text = nl ? nl + 1 : data + size;
	size_t tlen = size - (size_t)(text - data);
	char serial[64], *esc, *dir;
	struct boardlog *bl = NULL;
	unsigned lines = 0;
	int r;

	if (!logdir[0])
		fuzz_scratch("fuzz_boardlog", "logs", logdir, sizeof(logdir));
	esc = blog_escape((const char *)text, tlen);
	if (!esc)
		abort();
	check_printable(esc);
	check_roundtrip(esc, text, tlen);
	free(esc);

	if (boardlog_open(logdir, "1-1.2", &bl) < 0)
		abort();
	boardlog_set_sink(bl, sink, &lines);
	blog_bytes(bl, BLOG_PROVISIONER, "board: ", (const char *)text, tlen);
	/* the serial as a string: up to its first NUL, as a getvar value would be */
	if (slen >= sizeof(serial))
		slen = sizeof(serial) - 1;
	memcpy(serial, data, slen);
	serial[slen] = '\0';
	r = boardlog_set_serial(bl, serial);
	if (r == 0 && !hex_serial((const uint8_t *)serial, strlen(serial)))
		abort();  /* accepted a serial that is not 8 or 16 hex digits */
	dir = boardlog_dir(bl);
	if (!dir || strncmp(dir, logdir, strlen(logdir)) || dir[strlen(logdir)] != '/' ||
	    strstr(dir + strlen(logdir), "/.."))
		abort();
	free(dir);
	blog(bl, BLOG_PROVISIONER, "after the serial");
	boardlog_close(bl);
	cache_remove_tree(logdir);
	return 0;
}
