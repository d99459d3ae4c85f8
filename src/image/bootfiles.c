/* bootfiles: cmdline.txt / config.txt rewrites and the boot-partition
 * config (see bootfiles.h). Pure string functions: any thread. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/bootfiles.h"

const char bootfiles_ramdisk_config[] = "boot_ramdisk=1\nuart_2ndstage=1\n";

const char *bootfiles_storage_device(const char *storage)
{
	if (!storage)
		return NULL;
	if (!strcmp(storage, "sd") || !strcmp(storage, "emmc"))
		return "mmcblk0";
	if (!strcmp(storage, "nvme"))
		return "nvme0n1";
	return NULL;
}

static bool word_dropped(const char *w, size_t n)
{
	static const char *const prefixes[] = {"root=", "init=", "rootfstype="};
	static const char *const words[] = {"rootwait", "quiet"};
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (n >= strlen(prefixes[i]) && !strncmp(w, prefixes[i], strlen(prefixes[i])))
			return true;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (n == strlen(words[i]) && !strncmp(w, words[i], n))
			return true;
	return false;
}

int bootfiles_cmdline_rewrite(const char *in, size_t len, char **out, struct art_err *err)
{
	char *res;
	size_t i = 0, n = 0;

	*out = NULL;
	if (memchr(in, '\0', len))
		return art_err_set(err, -EINVAL, "cmdline.txt contains a NUL byte");
	res = malloc(len + 2);
	if (!res)
		return -ENOMEM;
	while (i < len) {
		size_t start;

		while (i < len && isspace((unsigned char)in[i]))
			i++;
		start = i;
		while (i < len && !isspace((unsigned char)in[i]))
			i++;
		if (i == start || word_dropped(in + start, i - start))
			continue;
		if (n)
			res[n++] = ' ';
		memcpy(res + n, in + start, i - start);
		n += i - start;
	}
	res[n++] = '\n';
	res[n] = '\0';
	*out = res;
	return 0;
}

/* A growing string. */
struct sbuf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *np = realloc(b->p, cap);

		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* Does @line (leading blanks skipped) start with @key? */
static bool starts(const char *line, size_t n, const char *key)
{
	size_t k = strlen(key);

	return n >= k && !strncmp(line, key, k);
}

int bootfiles_config_rewrite(const char *in, size_t len, char **out, struct art_err *err)
{
	struct sbuf b = {0};
	bool in_all = true, lock_in_all = false, ends_in_all = true;
	size_t i = 0, lineno = 0;
	int rc = 0;

	*out = NULL;
	if (memchr(in, '\0', len))
		return art_err_set(err, -EINVAL, "config.txt contains a NUL byte");
	while (i < len) {
		const char *line = in + i, *eol = memchr(line, '\n', len - i);
		size_t full = eol ? (size_t)(eol - line) : len - i, n = full, lead = 0;
		const char *t;

		lineno++;
		i += full + (eol ? 1 : 0);
		while (lead < n && (line[lead] == ' ' || line[lead] == '\t'))
			lead++;
		t = line + lead;
		n -= lead;
		while (n && (t[n - 1] == '\r' || t[n - 1] == ' ' || t[n - 1] == '\t'))
			n--;
		if (n && t[0] == '[') {
			in_all = starts(t, n, "[all]");
			ends_in_all = in_all;
		} else if (starts(t, n, "auto_initramfs=") || starts(t, n, "initramfs ") ||
			   starts(t, n, "initramfs\t")) {
			/* our initramfs8 must be the one the firmware loads */
			sb_str(&b, "#");
		} else if (starts(t, n, "lock_device_private_key=")) {
			const char *v = t + strlen("lock_device_private_key=");
			size_t vn = n - strlen("lock_device_private_key=");

			if (vn != 1 || v[0] != '1') {
				rc = art_err_set(err, -EINVAL,
						 "config.txt line %zu sets lock_device_private_key to "
						 "\"%.*s\": secure boot needs 1; fix the gold image's "
						 "config.txt", lineno, (int)(vn > 32 ? 32 : vn), v);
				goto out;
			}
			if (in_all)
				lock_in_all = true;
		}
		sb_add(&b, line, full);
		sb_str(&b, "\n");
	}
	if (!ends_in_all)
		sb_str(&b, "\n[all]\n");
	sb_str(&b, "initramfs initramfs8\n");
	if (!lock_in_all)
		sb_str(&b, "lock_device_private_key=1\n");
	if (b.oom) {
		rc = -ENOMEM;
		goto out;
	}
	*out = b.p;
	b.p = NULL;
out:
	free(b.p);
	return rc;
}
