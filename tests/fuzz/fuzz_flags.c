/* fuzz_flags: the per-board flag files (src/records/flags.c) as found on
 * disk, looked up with a board-supplied serial. The input is lines:
 *   line 1         the serial (as the board reports it)
 *   other lines    `K NAME\tCONTENT`: a file NAME in the flag directory of
 *                  kind K ('0' skip-eeprom, '1' reprovision) holding CONTENT;
 *                  K 'd' makes NAME a directory, 'f' a FIFO (a planted
 *                  non-regular file must neither hang nor count)
 * Then flags_lookup() for both kinds, flags_list(), flags_consume_once(): after
 * it, no lookup of that serial may still say `once`. The flag directory is a
 * scratch directory under /dev/shm (else TMPDIR), emptied after every input. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/cache.h"
#include "scratch.h"
#include "records/flags.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[300];

static void plant(const char *line, size_t len)
{
	char name[256], path[700];
	const char *tab;
	size_t nlen;

	if (len < 3 || line[1] != ' ')
		return;
	tab = memchr(line, '\t', len);
	nlen = (tab ? (size_t)(tab - line) : len) - 2;
	if (nlen == 0 || nlen >= sizeof(name) || memchr(line + 2, '/', nlen) || memchr(line + 2, '\0', nlen))
		return;
	memcpy(name, line + 2, nlen);
	name[nlen] = '\0';
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, flags_subdir(line[0] == '1' ? FLAG_REPROVISION
										    : FLAG_SKIP_EEPROM));
	mkdir(dir, 0755);
	mkdir(path, 0755);
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%s", name);
	if (line[0] == 'd') {
		mkdir(path, 0755);
	} else if (line[0] == 'f') {
		mkfifo(path, 0644);
	} else {
		/* O_NONBLOCK: a FIFO planted by an earlier line must not block the harness */
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0644);

		if (fd >= 0) {
			if (tab && write(fd, tab + 1, len - (size_t)(tab + 1 - line)) < 0)
				abort();
			close(fd);
		}
	}
}

static int on_flag(void *usrptr, enum flag_kind flag, const char *name, enum flag_state state)
{
	(void)usrptr;
	if ((unsigned)flag >= FLAG_COUNT || name[0] == '.' ||
	    (state != FLAG_ONCE && state != FLAG_PERSISTENT))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *nl;
	char serial[64], norm[FLAGS_SERIAL_MAX];
	enum flag_state st;
	size_t slen;
	int r;

	if (!dir[0])
		fuzz_scratch("fuzz_flags", "flags", dir, sizeof(dir));
	nl = memchr(p, '\n', size);
	slen = nl ? (size_t)(nl - p) : size;
	if (slen >= sizeof(serial))
		slen = sizeof(serial) - 1;
	memcpy(serial, p, slen);
	serial[slen] = '\0';
	for (p = nl ? nl + 1 : end; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		plant(p, (size_t)(nl - p));
	}

	r = flags_serial_normalise(serial, norm);
	for (int f = 0; f < FLAG_COUNT; f++) {
		if (flags_lookup(dir, serial, (enum flag_kind)f, &st) == 0 && r < 0)
			abort(); /* looked up a serial that does not normalise */
	}
	if (flags_list(dir, on_flag, NULL) < 0)
		abort();
	if (flags_consume_once(dir, serial) >= 0) {
		for (int f = 0; f < FLAG_COUNT; f++)
			if (flags_lookup(dir, serial, (enum flag_kind)f, &st) == 0 && st == FLAG_ONCE)
				abort(); /* a `once` flag survived its consumption */
	}
	cache_remove_tree(dir);
	return 0;
}
