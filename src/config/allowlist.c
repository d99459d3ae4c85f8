/* allowlist: loads the USB port allow-list drop-ins (vendor + admin
 * usb-ports.d, merged by file name, admin masks vendor) and answers whether a
 * port topology path is served.
 *
 * Loading happens once on the main thread; a loaded list is read-only and any
 * thread may call allowlist_permits(). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/allowlist.h"

/* Longer than any real topology path (7 tiers of hubs). */
#define PATTERN_MAX 64
/* A drop-in bigger than this is not a list of ports. */
#define DROPIN_MAX (64u * 1024)

struct allowlist *allowlist_new(void)
{
	return calloc(1, sizeof(struct allowlist));
}

void allowlist_free(struct allowlist *al)
{
	if (!al)
		return;
	for (size_t i = 0; i < al->n; i++) {
		free(al->v[i].pattern);
		free(al->v[i].file);
	}
	free(al->v);
	free(al);
}

/* One '.'-separated element of a path pattern: digits and glob characters, with
 * bracket expressions holding digits, '-' ranges and a leading '!' or '^'. */
static bool segment_valid(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (isdigit((unsigned char)s[i]) || s[i] == '*' || s[i] == '?')
			continue;
		if (s[i] != '[')
			return false;
		size_t j = i + 1;

		if (j < n && (s[j] == '!' || s[j] == '^'))
			j++;
		size_t first = j;

		while (j < n && s[j] != ']') {
			if (!isdigit((unsigned char)s[j]) && !(s[j] == '-' && j > first))
				return false;
			j++;
		}
		if (j >= n || j == first)
			return false;
		i = j;
	}
	return true;
}

/* PORT[.PORT...]: '.'-separated segments ('.' never inside a bracket expression). */
static bool chain_valid(const char *s)
{
	size_t n = strlen(s), start = 0;
	bool in_bracket = false;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] == '[')
			in_bracket = true;
		else if (i < n && s[i] == ']')
			in_bracket = false;
		else if (i == n || s[i] == '.') {
			if (in_bracket || !segment_valid(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/* BUS-PORT[.PORT...], each part digits or globs; a '*' may stand for any
 * number of parts, so "*" and "1-*" are fine, "1-" and "abc" are not. */
bool allowlist_pattern_literal(const char *s)
{
	return strpbrk(s, "*?[]\\") == NULL;
}

bool allowlist_pattern_valid(const char *s)
{
	size_t n = strlen(s), dash = n;
	bool star = strchr(s, '*') != NULL;
	int depth = 0;

	if (n == 0 || n > PATTERN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '[')
			depth++;
		else if (s[i] == ']')
			depth--;
		else if (s[i] == '-' && depth == 0) {
			if (dash != n)
				return false; /* two bus separators */
			dash = i;
		}
		if (depth < 0 || depth > 1)
			return false;
	}
	if (depth)
		return false;
	if (dash == n && !star)
		return false;
	if (dash != n && !segment_valid(s, dash))
		return false;
	return chain_valid(dash == n ? s : s + dash + 1);
}

static int add_rule(struct allowlist *al, const char *pat, size_t n, const char *file, int line)
{
	struct allowlist_rule *v = realloc(al->v, (al->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	al->v = v;
	v[al->n].pattern = strndup(pat, n);
	v[al->n].file = strdup(file);
	v[al->n].line = line;
	if (!v[al->n].pattern || !v[al->n].file) {
		free(v[al->n].pattern);
		free(v[al->n].file);
		return -ENOMEM;
	}
	al->n++;
	return 0;
}

int allowlist_parse_buffer(struct allowlist *al, const char *name, const char *buf, size_t len,
			   struct config_problems *probs)
{
	int lineno = 0, rc = 0;

	for (size_t pos = 0; pos < len; ) {
		const char *l = buf + pos, *hash;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;
		char *pat;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if ((hash = memchr(l, '#', n)))
			n = (size_t)(hash - l);
		while (n && isspace((unsigned char)l[n - 1]))
			n--;
		while (n && isspace((unsigned char)*l)) {
			l++;
			n--;
		}
		if (n == 0)
			continue;
		pat = memchr(l, '\0', n) ? NULL : strndup(l, n);
		if (pat && allowlist_pattern_valid(pat)) {
			if (add_rule(al, pat, n, name, lineno) < 0) {
				free(pat);
				return -ENOMEM;
			}
		} else if (config_problem_add(probs, name, lineno, NULL, NULL, false,
					      "'%.*s' is not a USB port path (BUS-PORT[.PORT...], shell "
					      "globs allowed, e.g. 1-1.2 or 3-*); line ignored",
					      (int)(n > PATTERN_MAX ? PATTERN_MAX : n), pat ? pat : "(binary)")
			   < 0) {
			free(pat);
			return -ENOMEM;
		} else {
			rc = -EINVAL;
		}
		free(pat);
	}
	al->files++;
	return rc;
}

static int read_dropin(struct allowlist *al, const char *path, struct config_problems *probs)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)DROPIN_MAX) {
		rc = config_problem_add(probs, path, 0, NULL, NULL, false,
					"cannot read this allow-list file: %s",
					fd < 0 ? strerror(errno) : "not a regular file of at most 64 KiB");
		rc = rc < 0 ? rc : -EINVAL;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	rc = allowlist_parse_buffer(al, path, buf, len, probs);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int is_dropin(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

/* Sorted *.conf names of @dir; a missing directory has none. */
static int list_dir(const char *dir, struct dirent ***names, struct config_problems *probs)
{
	int n;

	*names = NULL;
	if (!dir)
		return 0;
	n = scandir(dir, names, is_dropin, alphasort);
	if (n >= 0)
		return n;
	if (errno == ENOENT || errno == ENOTDIR)
		return 0;
	if (errno == ENOMEM)
		return -ENOMEM;
	if (config_problem_add(probs, dir, 0, NULL, NULL, false,
			       "cannot list the allow-list directory: %s", strerror(errno)) < 0)
		return -ENOMEM;
	return -EINVAL;
}

int allowlist_load(const char *vendor_dir, const char *admin_dir, struct allowlist **out,
		   struct config_problems *probs)
{
	struct dirent **vn = NULL, **an = NULL;
	int nv = 0, na = 0, rc = 0, i = 0, j = 0;

	*out = allowlist_new();
	if (!*out)
		return -ENOMEM;
	nv = list_dir(vendor_dir, &vn, probs);
	na = list_dir(admin_dir, &an, probs);
	if (nv == -ENOMEM || na == -ENOMEM) {
		rc = -ENOMEM;
		goto out;
	}
	if (nv < 0 || na < 0)
		rc = -EINVAL;
	/* Merge the two sorted lists by name; on a tie the admin file wins. */
	while (rc != -ENOMEM && (i < nv || j < na)) {
		int cmp = i >= nv ? 1 : j >= na ? -1 : strcmp(vn[i]->d_name, an[j]->d_name);
		char *path = cmp < 0 ? path_join(vendor_dir, vn[i]->d_name)
				     : path_join(admin_dir, an[j]->d_name);
		int r;

		if (!path) {
			rc = -ENOMEM;
			break;
		}
		r = read_dropin(*out, path, probs);
		free(path);
		if (r == -ENOMEM || (r < 0 && rc == 0))
			rc = r;
		if (cmp <= 0)
			i++;
		if (cmp >= 0)
			j++;
	}
out:
	for (int k = 0; k < nv; k++)
		free(vn[k]);
	for (int k = 0; k < na; k++)
		free(an[k]);
	free(vn);
	free(an);
	if (rc == -ENOMEM) {
		allowlist_free(*out);
		*out = NULL;
	}
	return rc;
}

bool allowlist_permits(const struct allowlist *al, const char *port_path)
{
	if (!al || al->n == 0)
		return true;
	if (!port_path || !*port_path)
		return false;
	for (size_t i = 0; i < al->n; i++)
		if (fnmatch(al->v[i].pattern, port_path, 0) == 0)
			return true;
	return false;
}
