/* import: converts the peer's shell-style /etc/rpi-sb-provisioner/config
 * (NAME=value lines, '#' comments, shell quoting) into our INI.
 *
 * The peer's file is sourced by root shells; we never execute it. Each line
 * is parsed as one plain assignment: single quotes, double quotes with
 * backslash escapes, bare words with backslash escapes, and the '\'' idiom
 * (adjacent quoted parts join). Anything that needs a shell to evaluate
 * ($expansion, `commands`, more than one word) is reported, not guessed.
 * The mapping comes from the schema rows' `peer` column. Any thread. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"

/* Peer variables we know of but do not support (yet), and why. */
static const struct {
	const char *name;
	const char *why;
} unsupported[] = {
	{ "CUSTOMER_KEY_PKCS11_NAME", "PKCS#11 signing is not supported yet; use [key] signer with "
	  "a usbboot-style HSM wrapper, or [key] pem" },
	{ "RPI_CONNECT_API_KEY", "Raspberry Pi Connect registration is not supported yet" },
	{ "RPI_CONNECT_DESCRIPTION", "Raspberry Pi Connect registration is not supported yet" },
	{ "RPI_SB_PROVISIONER_ENABLE_PRIVATE_KEY_API", "there is no HTTP API; device private keys are "
	  "never exported" },
	{ "RPI_SB_PROVISIONER_STATE_DB", "the peer's web state database has no equivalent" },
	{ "RPI_DEVICE_FETCH_METADATA", "retired by the peer (v1.x)" },
	{ "DEMO_MODE_ONLY", "retired by the peer; use --dry-run" },
	{ "RPI_DEVICE_SERIAL_STORE", "retired by the peer (v1.x)" },
	{ "RPI_SB_PROVISONER_MANUFACTURING_DB", "the peer's old misspelling; rename it to "
	  "RPI_SB_PROVISIONER_MANUFACTURING_DB" },
};

struct assignment {
	char *name;
	char *value;
	int line;
};

struct importer {
	const char *file;
	FILE *notes;
	struct assignment *v;
	size_t n;
	bool bad;   /* a line could not be parsed */
	int err;    /* -ENOMEM */
};

static void note(struct importer *im, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note(struct importer *im, int line, const char *fmt, ...)
{
	va_list ap;

	if (!im->notes)
		return;
	if (line > 0)
		fprintf(im->notes, "%s:%d: ", im->file, line);
	else
		fprintf(im->notes, "%s: ", im->file);
	va_start(ap, fmt);
	vfprintf(im->notes, fmt, ap);
	va_end(ap);
	fputc('\n', im->notes);
}

/* A growable string. */
struct str {
	char *s;
	size_t n, cap;
};

static int str_putc(struct str *b, char c)
{
	if (b->n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		char *s = realloc(b->s, cap);

		if (!s)
			return -ENOMEM;
		b->s = s;
		b->cap = cap;
	}
	b->s[b->n++] = c;
	b->s[b->n] = '\0';
	return 0;
}

/* Parse the value part of NAME=VALUE (@p to @end) as one shell word followed by
 * optional blanks and a comment. 0 and *out (malloc'd), or a complaint. */
static const char *parse_word(const char *p, const char *end, char **out, int *err)
{
	struct str b = { 0 };
	const char *why = NULL;

	*out = NULL;
	if (str_putc(&b, 'x') < 0)
		goto oom;
	b.n = 0;
	b.s[0] = '\0';
	while (p < end && !isspace((unsigned char)*p)) {
		char c = *p++;

		if (c == '\'') {
			while (p < end && *p != '\'')
				if (str_putc(&b, *p++) < 0)
					goto oom;
			if (p >= end) {
				why = "unterminated single quote";
				goto fail;
			}
			p++;
		} else if (c == '"') {
			while (p < end && *p != '"') {
				if (*p == '$' || *p == '`') {
					why = "uses shell expansion ($ or `) inside double quotes, which import "
					      "does not evaluate; write the value literally or in single quotes";
					goto fail;
				}
				if (*p == '\\' && p + 1 < end && strchr("\\\"$`", p[1]))
					p++;
				if (str_putc(&b, *p++) < 0)
					goto oom;
			}
			if (p >= end) {
				why = "unterminated double quote (multi-line values are not supported)";
				goto fail;
			}
			p++;
		} else if (c == '\\') {
			if (p >= end) {
				why = "line continuation with '\\' is not supported; join the lines";
				goto fail;
			}
			if (str_putc(&b, *p++) < 0)
				goto oom;
		} else if (c == '$' || c == '`') {
			why = "uses shell expansion ($ or `), which import does not evaluate; write the "
			      "value literally";
			goto fail;
		} else if (strchr(";&|<>()", c)) {
			why = "contains a shell operator; the value must be one plain word (quote it)";
			goto fail;
		} else if (str_putc(&b, c) < 0) {
			goto oom;
		}
	}
	while (p < end && isspace((unsigned char)*p))
		p++;
	if (p < end && *p != '#') {
		why = "more than one word after '=' (the shell would run a command); quote the value";
		goto fail;
	}
	*out = b.s;
	return NULL;
oom:
	*err = -ENOMEM;
	why = "out of memory";
fail:
	free(b.s);
	return why;
}

static void parse_line(struct importer *im, const char *l, size_t n, int lineno)
{
	const char *end = l + n, *p, *why;
	struct assignment *v;
	char *name, *value;

	while (l < end && isspace((unsigned char)*l))
		l++;
	if (l == end || *l == '#')
		return;
	if (memchr(l, '\0', (size_t)(end - l))) {
		note(im, lineno, "contains a NUL byte; not a text line, skipped");
		im->bad = true;
		return;
	}
	if ((size_t)(end - l) > 7 && memcmp(l, "export", 6) == 0 && isspace((unsigned char)l[6]))
		for (l += 7; l < end && isspace((unsigned char)*l); l++)
			;
	p = l;
	if (p < end && (isalpha((unsigned char)*p) || *p == '_'))
		while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
			p++;
	if (p == l || p >= end || *p != '=') {
		note(im, lineno, "not a NAME=value assignment; skipped");
		im->bad = true;
		return;
	}
	why = parse_word(p + 1, end, &value, &im->err);
	if (why) {
		note(im, lineno, "%.*s: %s; skipped", (int)(p - l), l, why);
		im->bad = true;
		return;
	}
	name = strndup(l, (size_t)(p - l));
	v = name ? realloc(im->v, (im->n + 1) * sizeof(*v)) : NULL;
	if (!v) {
		free(name);
		free(value);
		im->err = -ENOMEM;
		return;
	}
	im->v = v;
	v[im->n++] = (struct assignment){ name, value, lineno };
}

/* The last assignment of @name (the shell's rule), or NULL. */
static const struct assignment *lookup(const struct importer *im, const char *name)
{
	for (size_t i = im->n; i-- > 0; )
		if (strcmp(im->v[i].name, name) == 0)
			return &im->v[i];
	return NULL;
}

/* Our INI value for @a under @s, or NULL to leave the setting unset. */
static const char *convert(const struct config_setting *s, const char *value)
{
	switch (s->peer_style) {
	case CONFIG_PEER_NONEMPTY_TRUE:
		return *value ? "true" : NULL;
	case CONFIG_PEER_OFF_WORDS:
		if (!*value || strcmp(value, "0") == 0 || strcasecmp(value, "false") == 0 ||
		    strcasecmp(value, "no") == 0 || strcasecmp(value, "off") == 0)
			return "false";
		return "true";
	case CONFIG_PEER_VERBATIM:
		return *value ? value : NULL;
	case CONFIG_PEER_NONE:
		break;
	}
	return NULL;
}

/* Would inih give this value back unchanged? */
static const char *ini_unsafe(const char *v)
{
	size_t n = strlen(v);

	if (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])))
		return "leading or trailing blanks would be lost";
	for (size_t i = 0; i < n; i++) {
		if (iscntrl((unsigned char)v[i]))
			return "it contains a control character";
		if (i && v[i] == ';' && isspace((unsigned char)v[i - 1]))
			return "' ;' would start a comment";
	}
	if (n > 150)
		return "it is longer than an INI line may be";
	return NULL;
}

static void emit(struct importer *im, FILE *out)
{
	const char *section = "";

	fprintf(out, "# Imported from %s by `rpi-sb-provisioner config import`.\n"
		"# Check it with `rpi-sb-provisioner config check`.\n", im->file);
	for (size_t r = 0; r < config_schema_len; r++) {
		const struct config_setting *s = &config_schema[r];
		const struct assignment *a;
		const char *v, *why;

		if (!s->peer || !(a = lookup(im, s->peer)))
			continue;
		v = convert(s, a->value);
		if (!v)
			continue;
		if ((why = ini_unsafe(v))) {
			note(im, a->line, "%s: cannot be written to INI (%s); set [%s] %s by hand",
			     s->peer, why, s->section, s->key);
			continue;
		}
		if ((why = config_check_value(s, v))) {
			char *allowed = config_allowed_text(s);

			note(im, a->line, "%s='%s' is not valid for [%s] %s (%s%s%s); imported as is, "
			     "`config check` will flag it", s->peer, v, s->section, s->key, why,
			     allowed ? "; allowed: " : "", allowed ? allowed : "");
			free(allowed);
		}
		if (strcmp(section, s->section) != 0) {
			fprintf(out, "\n[%s]\n", s->section);
			section = s->section;
		}
		fprintf(out, "# from %s (line %d)\n%s = %s\n", s->peer, a->line, s->key, v);
	}
}

static void report_unmapped(struct importer *im)
{
	for (size_t i = 0; i < im->n; i++) {
		const struct assignment *a = &im->v[i];
		bool known = false;

		if (lookup(im, a->name) != a) {
			note(im, a->line, "%s is set again later; the last value is used (as the shell would)",
			     a->name);
			continue;
		}
		for (size_t r = 0; r < config_schema_len; r++)
			known |= config_schema[r].peer && strcmp(config_schema[r].peer, a->name) == 0;
		if (known)
			continue;
		for (size_t u = 0; u < sizeof(unsupported) / sizeof(unsupported[0]); u++) {
			if (strcmp(unsupported[u].name, a->name) == 0) {
				known = true;
				if (*a->value)
					note(im, a->line, "%s is not imported: %s", a->name, unsupported[u].why);
			}
		}
		if (!known)
			note(im, a->line, "%s is not a setting this station knows; not imported", a->name);
	}
}

int config_import_peer(const char *name, const char *buf, size_t len, FILE *out, FILE *notes)
{
	struct importer im = { .file = name, .notes = notes };
	int lineno = 0, rc;

	for (size_t pos = 0; pos < len && !im.err; ) {
		const char *l = buf + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - l) : len - pos;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && l[n - 1] == '\r')
			n--;
		parse_line(&im, l, n, lineno);
	}
	if (!im.err) {
		emit(&im, out);
		report_unmapped(&im);
	}
	rc = im.err ? im.err : im.bad ? -EINVAL : 0;
	for (size_t i = 0; i < im.n; i++) {
		free(im.v[i].name);
		free(im.v[i].value);
	}
	free(im.v);
	return rc;
}
