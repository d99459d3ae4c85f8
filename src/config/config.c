/* config: loads the station's INI file through inih, validates every value
 * against the schema table (config/schema.c), applies the cross-field rules,
 * and answers config_get*() lookups.
 *
 * Every problem is collected (never just the first) with file, line, key and
 * the allowed values. inih reads the text through our own line reader, which
 * counts lines, rejects lines inih would silently split or drop (too long,
 * embedded NUL, no '='), and strips leading blanks so inih's continuation lines
 * never glue two settings together. Loading is re-entrant (no globals); a
 * loaded config is read-only and may be shared between threads. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/goldimage.h"

/* A configuration file bigger than this is certainly not one. */
#define CONFIG_MAX_FILE (1u << 20)

struct slot {
	char *value;  /* as set in the file, relative paths resolved; NULL = not set */
	int line;
};

struct config {
	char *file;
	char *dir;             /* relative paths in the file are resolved against it */
	struct slot *main;     /* [config_schema_len] */
	struct slot *fam;      /* [config_families_len][config_schema_len] */
	char **defaults;       /* [config_schema_len]: rooted default, or NULL */
};

struct parse {
	struct config *c;
	struct config_problems *probs;
	const char *buf;
	size_t len, pos;
	int lineno;
	bool section_ok;       /* the current [section] is known */
	int err;               /* sticky -ENOMEM */
};

/* ---- problems ---------------------------------------------------------- */

static void problem_vadd(struct config_problems *p, int *err, const char *file, int line,
			 const char *key, const char *allowed, bool warning, const char *fmt,
			 va_list ap) __attribute__((format(printf, 8, 0)));

static void problem_vadd(struct config_problems *p, int *err, const char *file, int line,
			 const char *key, const char *allowed, bool warning, const char *fmt,
			 va_list ap)
{
	struct config_problem *v, *pr;

	if (!p)
		return;
	v = realloc(p->v, (p->n + 1) * sizeof(*v));
	if (!v) {
		*err = -ENOMEM;
		return;
	}
	p->v = v;
	pr = &v[p->n];
	memset(pr, 0, sizeof(*pr));
	pr->line = line;
	pr->warning = warning;
	pr->file = strdup(file ? file : "(config)");
	pr->key = key ? strdup(key) : NULL;
	pr->allowed = allowed ? strdup(allowed) : NULL;
	if (vasprintf(&pr->message, fmt, ap) < 0)
		pr->message = NULL;
	if (!pr->file || (key && !pr->key) || (allowed && !pr->allowed) || !pr->message) {
		free(pr->file);
		free(pr->key);
		free(pr->allowed);
		free(pr->message);
		*err = -ENOMEM;
		return;
	}
	p->n++;
}

static void problem(struct parse *ps, int line, const char *key, const char *allowed,
		    bool warning, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void problem(struct parse *ps, int line, const char *key, const char *allowed,
		    bool warning, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problem_vadd(ps->probs, &ps->err, ps->c->file, line, key, allowed, warning, fmt, ap);
	va_end(ap);
}

int config_problem_add(struct config_problems *p, const char *file, int line, const char *key,
		       const char *allowed, bool warning, const char *fmt, ...)
{
	va_list ap;
	int err = 0;

	va_start(ap, fmt);
	problem_vadd(p, &err, file, line, key, allowed, warning, fmt, ap);
	va_end(ap);
	return err;
}

void config_problems_free(struct config_problems *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].file);
		free(p->v[i].key);
		free(p->v[i].message);
		free(p->v[i].allowed);
	}
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

size_t config_problems_errors(const struct config_problems *p)
{
	size_t n = 0;

	for (size_t i = 0; p && i < p->n; i++)
		n += !p->v[i].warning;
	return n;
}

void config_problem_print(FILE *f, const struct config_problem *p)
{
	if (p->line > 0)
		fprintf(f, "%s:%d: ", p->file, p->line);
	else
		fprintf(f, "%s: ", p->file);
	if (p->warning)
		fputs("warning: ", f);
	if (p->key)
		fprintf(f, "key '%s': ", p->key);
	fputs(p->message, f);
	if (p->allowed)
		fprintf(f, "; allowed: %s", p->allowed);
	fputc('\n', f);
}

/* ---- schema helpers ---------------------------------------------------- */

static size_t row_index(const struct config_setting *s)
{
	return (size_t)(s - config_schema);
}

static int family_index(const char *family)
{
	for (size_t i = 0; i < config_families_len; i++)
		if (strcmp(config_families[i], family) == 0)
			return (int)i;
	return -1;
}

/* The row a family row overrides ("station.mode" -> the station/mode row). */
static const struct config_setting *overridden_row(const struct config_setting *s)
{
	const char *dot;
	char sec[32];

	if (!s->overrides || !(dot = strchr(s->overrides, '.')) || (size_t)(dot - s->overrides) >= sizeof(sec))
		return NULL;
	memcpy(sec, s->overrides, (size_t)(dot - s->overrides));
	sec[dot - s->overrides] = '\0';
	return config_setting_find(sec, dot + 1);
}

static bool section_known(const char *section)
{
	if (strncmp(section, "family.", 7) == 0)
		return family_index(section + 7) >= 0;
	if (strcmp(section, "family") == 0)
		return false;
	for (size_t i = 0; i < config_schema_len; i++)
		if (strcmp(config_schema[i].section, section) == 0)
			return true;
	return false;
}

/* "a|b|c" of every valid section name, or of the keys of one section. Caller frees. */
static char *section_names(void)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);
	const char *prev = "";

	if (!f)
		return NULL;
	for (size_t i = 0; i < config_schema_len; i++) {
		if (strcmp(config_schema[i].section, prev) == 0 || strcmp(config_schema[i].section, "family") == 0)
			continue;
		prev = config_schema[i].section;
		fprintf(f, "%s%s", ftell(f) ? "|" : "", prev);
	}
	for (size_t i = 0; i < config_families_len; i++)
		fprintf(f, "|family.%s", config_families[i]);
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

static char *section_keys(const char *section)
{
	const char *sec = strncmp(section, "family.", 7) == 0 ? "family" : section;
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < config_schema_len; i++)
		if (strcmp(config_schema[i].section, sec) == 0)
			fprintf(f, "%s%s", ftell(f) ? "|" : "", config_schema[i].key);
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

static bool enum_allows(const char *allowed, const char *v)
{
	size_t n = strlen(v);

	for (const char *p = allowed; *p; ) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && n && memcmp(p, v, n) == 0)
			return true;
		p += len + (bar ? 1 : 0);
	}
	return false;
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_int(const char *s, long *out)
{
	char *end;
	long v;

	if (!*s || !(isdigit((unsigned char)*s) || (*s == '-' && isdigit((unsigned char)s[1]))))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end)
		return -ERANGE;
	*out = v;
	return 0;
}

/* ---- line reader and handler for inih --------------------------------- */

/* Why a trimmed line is not INI syntax inih will accept, or NULL. */
static const char *line_syntax(const char *l, size_t n, struct parse *ps)
{
	if (n == 0 || l[0] == ';' || l[0] == '#')
		return NULL;
	if (l[0] == '[') {
		const char *close = memchr(l, ']', n);
		size_t i;

		/* After a broken header the keys below belong to no known section: they
		 * are skipped rather than filed under the previous one. */
		ps->section_ok = false;
		if (!close)
			return "section header without a closing ']'";
		for (i = (size_t)(close - l) + 1; i < n && isspace((unsigned char)l[i]); i++)
			;
		if (i < n && l[i] != ';' && l[i] != '#')
			return "text after the section header's ']'";
		for (const char *p = l + 1; p < close; p++)
			if (*p == ';' && isspace((unsigned char)p[-1]))
				return "a comment inside the section header";
		/* Remember whether the section is known: keys of an unknown one are not
		 * reported one by one. */
		{
			char *name = strndup(l + 1, (size_t)(close - l - 1));

			if (!name) {
				ps->err = -ENOMEM;
				return NULL;
			}
			ps->section_ok = section_known(name);
			if (!ps->section_ok) {
				char *all = section_names();

				problem(ps, ps->lineno, NULL, all, false, "unknown section [%s]", name);
				free(all);
			}
			free(name);
		}
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (l[i] == '=' || l[i] == ':')
			return i ? NULL : "a value without a key name";
		if (l[i] == ';' && i && isspace((unsigned char)l[i - 1]))
			break;
	}
	return "not a 'key = value' line or a [section] header";
}

static char *config_line_reader(char *str, int num, void *stream)
{
	struct parse *ps = stream;
	const char *line, *nl, *why;
	size_t n;

	if (ps->pos >= ps->len)
		return NULL;
	line = ps->buf + ps->pos;
	nl = memchr(line, '\n', ps->len - ps->pos);
	n = nl ? (size_t)(nl - line) : ps->len - ps->pos;
	ps->pos += n + (nl ? 1 : 0);
	ps->lineno++;
	if (ps->lineno == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		n -= 3;
	}
	while (n && isspace((unsigned char)line[n - 1]))
		n--;
	while (n && isspace((unsigned char)*line)) {
		line++;
		n--;
	}
	if (memchr(line, '\0', n))
		why = "contains a NUL byte (is this a text file?)";
	else if (num < 2 || n > (size_t)num - 2)
		why = "the line is too long for the INI parser; shorten it (a symlink helps for long paths)";
	else
		why = line_syntax(line, n, ps);
	if (why) {
		problem(ps, ps->lineno, NULL, NULL, false, "%s", why);
		/* Hand inih a comment so it neither splits nor misreads the line. */
		str[0] = ';';
		str[1] = '\0';
		return str;
	}
	memcpy(str, line, n);
	str[n] = '\0';
	return str;
}

/* Make @v absolute against the config file's directory. Caller frees. */
static char *resolve_path(const struct config *c, const char *v)
{
	if (!*v || v[0] == '/')
		return strdup(v);
	return path_join(c->dir, v);
}

/* Validate @value for @s (family rows validate as the row they override).
 * NULL when fine, else the complaint. */
const char *config_check_value(const struct config_setting *s, const char *value)
{
	const struct config_setting *base = s->overrides ? overridden_row(s) : s;
	long v;
	bool b;

	if (!base)
		base = s;
	if (!*value)
		return s->def ? "empty value; remove the line to use the default" : NULL;
	switch (base->type) {
	case CONFIG_ENUM:
		return enum_allows(base->allowed, value) ? NULL : "not one of the allowed values";
	case CONFIG_BOOL:
		return config_parse_bool(value, &b) == 0 ? NULL : "not a boolean";
	case CONFIG_INT:
		if (parse_int(value, &v) < 0)
			return "not a whole number";
		return v < base->min || v > base->max ? "out of range" : NULL;
	case CONFIG_HEX64:
		if (strlen(value) != 64)
			return "not 64 hex digits (a SHA-256, e.g. from sha256sum)";
		for (const char *p = value; *p; p++)
			if (!isxdigit((unsigned char)*p))
				return "not 64 hex digits (a SHA-256, e.g. from sha256sum)";
		return NULL;
	case CONFIG_PATH:
	case CONFIG_STRING:
		for (const char *p = value; *p; p++)
			if (iscntrl((unsigned char)*p))
				return "contains a control character";
		return NULL;
	}
	return NULL;
}

char *config_allowed_text(const struct config_setting *s)
{
	const struct config_setting *base = s->overrides ? overridden_row(s) : s;
	char *a = NULL;

	if (!base)
		base = s;
	switch (base->type) {
	case CONFIG_ENUM:
	case CONFIG_BOOL:
		return strdup(base->allowed);
	case CONFIG_INT:
		if (asprintf(&a, "%ld..%ld", base->min, base->max) < 0)
			return NULL;
		return a;
	case CONFIG_HEX64:
		return strdup("64 hex digits");
	default:
		return NULL;
	}
}

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *ps = user;
	const struct config_setting *s;
	struct slot *slot;
	char *key = NULL;
	const char *why, *hash;

	if (ps->err)
		return 0;
	if (!*section) {
		problem(ps, ps->lineno, name, NULL, false,
			"setting before any [section]; put it under its section (see config schema)");
		return 1;
	}
	if (!ps->section_ok)
		return 1; /* the unknown section was reported once */
	if (asprintf(&key, "%s.%s", section, name) < 0) {
		ps->err = -ENOMEM;
		return 0;
	}
	s = config_setting_find(section, name);
	if (!s) {
		char *keys = section_keys(section);

		problem(ps, ps->lineno, key, keys, false, "unknown key in [%s]", section);
		free(keys);
		goto out;
	}
	if (strcmp(s->section, "family") == 0)
		slot = &ps->c->fam[(size_t)family_index(section + 7) * config_schema_len + row_index(s)];
	else
		slot = &ps->c->main[row_index(s)];
	if (slot->value) {
		problem(ps, ps->lineno, key, NULL, false, "set twice (also on line %d); keep one",
			slot->line);
		goto out;
	}
	/* inih ends a value only at " ;"; a " #" would silently become part of it. */
	hash = strchr(value, '#');
	if (hash && hash > value && isspace((unsigned char)hash[-1])) {
		problem(ps, ps->lineno, key, NULL, false,
			"'#' starts a comment only at the start of a line; after a value use ' ;'");
		goto out;
	}
	why = config_check_value(s, value);
	if (why) {
		char *allowed = config_allowed_text(s);

		problem(ps, ps->lineno, key, allowed, false, "'%s': %s", value, why);
		free(allowed);
		goto out;
	}
	slot->value = s->type == CONFIG_PATH ? resolve_path(ps->c, value) : strdup(value);
	if (!slot->value)
		ps->err = -ENOMEM;
	slot->line = ps->lineno;
out:
	free(key);
	return 1;
}

/* ---- lookups ------------------------------------------------------------ */

static const struct slot *slot_of(const struct config *c, const char *section, const char *key,
				  const struct config_setting **row)
{
	const struct config_setting *s = config_setting_find(section, key);

	if (row)
		*row = s;
	if (!s || !c)
		return NULL;
	if (strcmp(s->section, "family") == 0)
		return &c->fam[(size_t)family_index(section + 7) * config_schema_len + row_index(s)];
	return &c->main[row_index(s)];
}

const char *config_get(const struct config *c, const char *section, const char *key)
{
	const struct config_setting *s;
	const struct slot *slot = slot_of(c, section, key, &s);

	if (!slot)
		return "";
	if (slot->value)
		return slot->value;
	if (strcmp(s->section, "family") != 0 && c->defaults[row_index(s)])
		return c->defaults[row_index(s)];
	return "";
}

long config_get_int(const struct config *c, const char *section, const char *key)
{
	long v = 0;

	if (parse_int(config_get(c, section, key), &v) < 0)
		return 0;
	return v;
}

bool config_get_bool(const struct config *c, const char *section, const char *key)
{
	bool b = false;

	if (config_parse_bool(config_get(c, section, key), &b) < 0)
		return false;
	return b;
}

/* The family row overriding section.key, or NULL. */
static const struct config_setting *family_row_for(const char *section, const char *key)
{
	size_t ls = strlen(section);

	for (size_t i = 0; i < config_schema_len; i++) {
		const char *o = config_schema[i].overrides;

		if (o && strncmp(o, section, ls) == 0 && o[ls] == '.' && strcmp(o + ls + 1, key) == 0)
			return &config_schema[i];
	}
	return NULL;
}

const char *config_get_for_family(const struct config *c, const char *family, const char *section,
				  const char *key)
{
	const struct config_setting *fr = family_row_for(section, key);
	int fi = family ? family_index(family) : -1;

	if (c && fr && fi >= 0) {
		const struct slot *slot = &c->fam[(size_t)fi * config_schema_len + row_index(fr)];

		if (slot->value && *slot->value)
			return slot->value;
	}
	return config_get(c, section, key);
}

int config_origin(const struct config *c, const char *section, const char *key, const char **file,
		  int *line)
{
	const struct slot *slot = slot_of(c, section, key, NULL);

	if (!slot)
		return -ENOENT;
	if (!slot->value)
		return 0;
	if (file)
		*file = c->file;
	if (line)
		*line = slot->line;
	return 1;
}

const char *config_file(const struct config *c)
{
	return c ? c->file : "";
}

/* ---- cross-field rules -------------------------------------------------- */

static int line_of(const struct config *c, const char *section, const char *key)
{
	const struct slot *slot = slot_of(c, section, key, NULL);

	return slot && slot->value ? slot->line : 0;
}

/* The file at @path must exist, be a regular file and be readable. */
static void check_readable(struct parse *ps, const char *key, int line, const char *path,
			   const char *what)
{
	struct stat st;
	int fd;

	if (stat(path, &st) < 0) {
		problem(ps, line, key, "a readable file", false,
			"%s %s: %s; fix the path or copy the file there", what, path,
			errno == ENOENT ? "does not exist" : strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		problem(ps, line, key, "a readable file", false, "%s %s is not a regular file", what, path);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		problem(ps, line, key, "a readable file", false,
			"%s %s cannot be read: %s; check its permissions", what, path, strerror(errno));
		return;
	}
	close(fd);
}

static void check_gold(struct parse *ps, const char *key, int line, const char *path)
{
	struct goldimage_info info;
	char err[GOLDIMAGE_ERRLEN];

	if (goldimage_check(path, &info, err, sizeof(err)) < 0)
		problem(ps, line, key, "an uncompressed MBR disk image, FAT boot + ext4 root partitions",
			false, "gold image %s: %s", path, err);
}

static void cross_checks(struct parse *ps)
{
	const struct config *c = ps->c;
	const char *family = config_get(c, "station", "family");
	bool in_use[3] = { false, false, false };
	bool any_secure = false;
	const char *pem = config_get(c, "key", "pem");
	const char *signer = config_get(c, "key", "signer");
	const char *pub = config_get(c, "key", "public");
	char key[64];

	for (size_t i = 0; i < config_families_len; i++)
		in_use[i] = strcmp(family, "auto") == 0 || strcmp(family, config_families[i]) == 0;

	for (size_t i = 0; i < config_families_len; i++) {
		const char *f = config_families[i];
		const char *mode = config_get_for_family(c, f, "station", "mode");
		char fsec[16];
		bool explicit_fam;
		int fline;

		if (!in_use[i] || strcmp(mode, "secure-boot") != 0)
			continue;
		snprintf(fsec, sizeof(fsec), "family.%s", f);
		fline = line_of(c, fsec, "mode");
		/* Explicit: the family was chosen in [station], or its own section says so. */
		explicit_fam = strcmp(family, f) == 0 || fline > 0;
		if (strcmp(f, "2W") == 0) {
			if (explicit_fam)
				problem(ps, fline ? fline : line_of(c, "station", "mode"),
					fline ? "family.2W.mode" : "station.mode", "fde-only|naked", false,
					"Zero 2 W boards cannot use secure-boot (BCM2710 has no secure boot)");
			else
				problem(ps, line_of(c, "station", "family"), "station.family", NULL, true,
					"with family auto and mode secure-boot, Zero 2 W boards cannot be "
					"provisioned and will be refused; add [family.2W] mode = fde-only "
					"or naked to take them");
			continue;
		}
		any_secure = true;
		if (strcmp(f, "4") == 0 && !*config_get(c, "otp", "rpiboot_gpio")) {
			if (explicit_fam)
				problem(ps, fline ? fline : line_of(c, "station", "mode"), "otp.rpiboot_gpio",
					"2|4|5|6|7|8", false,
					"Pi 4 family boards need [otp] rpiboot_gpio for secure-boot (else they "
					"cannot reach rpiboot once secured); 8 is recommended");
			else
				problem(ps, line_of(c, "station", "family"), "otp.rpiboot_gpio", "2|4|5|6|7|8",
					true,
					"with family auto and mode secure-boot, Pi 4 family boards will be "
					"refused until [otp] rpiboot_gpio is set (8 is recommended)");
		}
	}

	if (*signer && !*pub)
		problem(ps, line_of(c, "key", "signer"), "key.public", NULL, false,
			"signer needs public: set [key] public to the signer's public key (PEM)");
	if (*signer && *pem)
		problem(ps, line_of(c, "key", "signer"), "key.signer", NULL, false,
			"set either pem or signer, not both (pem is on line %d)", line_of(c, "key", "pem"));
	if (any_secure && !*pem && !*signer)
		problem(ps, line_of(c, "station", "mode"), "key.pem", NULL, false,
			"secure-boot needs a signing key: set [key] pem, or [key] signer and public");
	if (*pem)
		check_readable(ps, "key.pem", line_of(c, "key", "pem"), pem, "key file");
	if (*pub)
		check_readable(ps, "key.public", line_of(c, "key", "public"), pub, "public key file");
	if (!any_secure) {
		static const char *const otp_keys[] = { "jtag_lock", "eeprom_write_protect" };

		for (size_t i = 0; i < 2; i++)
			if (config_get_bool(c, "otp", otp_keys[i])) {
				snprintf(key, sizeof(key), "otp.%s", otp_keys[i]);
				problem(ps, line_of(c, "otp", otp_keys[i]), key, NULL, true,
					"OTP settings are only applied in secure-boot mode; this one has no effect");
			}
	}

	/* Files named by the main sections. */
	if (*config_get(c, "bootloader", "config"))
		check_readable(ps, "bootloader.config", line_of(c, "bootloader", "config"),
			       config_get(c, "bootloader", "config"), "bootloader config");
	if (*config_get(c, "bootloader", "firmware"))
		check_readable(ps, "bootloader.firmware", line_of(c, "bootloader", "firmware"),
			       config_get(c, "bootloader", "firmware"), "firmware file");
	if (*config_get(c, "image", "gold"))
		check_gold(ps, "image.gold", line_of(c, "image", "gold"), config_get(c, "image", "gold"));

	/* Raspberry Pi's payloads, each named with the Debian package that installs
	 * it. Warnings: a station that only rehearses with simulate does not need
	 * them, but a real board cannot be bootstrapped without them. */
	{
		bool naked_only = true, want_2w = in_use[2];
		static const struct { const char *fam; const char *chip; } chips[] = {
			{ "4", "2711" }, { "5", "2712" } };

		for (size_t i = 0; i < config_families_len; i++)
			if (in_use[i] && strcmp(config_get_for_family(c, config_families[i], "station", "mode"),
						 "naked") != 0)
				naked_only = false;
		for (size_t i = 0; i < 2; i++) {
			const char *pat = config_get(c, "bootloader", "firmware_dir");
			const char *at = strstr(pat, "%chip%");
			char dir[4096], rec[4200];

			if (!in_use[i])
				continue;
			if (at)
				snprintf(dir, sizeof(dir), "%.*s%s%s", (int)(at - pat), pat, chips[i].chip, at + 6);
			else
				snprintf(dir, sizeof(dir), "%s", pat);
			snprintf(rec, sizeof(rec), "%s/recovery.bin", dir);
			if (access(rec, R_OK) < 0)
				problem(ps, line_of(c, "bootloader", "firmware_dir"), "bootloader.firmware_dir",
					NULL, true, "%s is missing: family %s boards cannot be bootstrapped "
					"(package rpi-eeprom installs it)", rec, chips[i].fam);
		}
		const char *payload = config_get(c, "paths", "payload_dir");
		char bootfiles[4200];
		snprintf(bootfiles, sizeof(bootfiles), "%s/mass-storage-gadget64/bootfiles.bin", payload);
		if ((in_use[0] || in_use[1]) && access(bootfiles, R_OK) < 0)
			problem(ps, line_of(c, "paths", "payload_dir"), "paths.payload_dir", NULL, true,
				"%s is missing (package rpiboot installs it)", bootfiles);
		const char *gadget = config_get(c, "paths", "gadget_image");
		if (access(gadget, R_OK) < 0)
			problem(ps, line_of(c, "paths", "gadget_image"), "paths.gadget_image", NULL, true,
				"the fastboot gadget image %s is missing (Raspberry Pi's "
				"rpi-sb-provisioner package installs it)", gadget);
		if (want_2w) {
			const char *slash = strrchr(gadget, '/');
			char zb[4200];

			snprintf(zb, sizeof(zb), "%.*s/fastboot-gadget.2710-bootfiles-bin",
				 slash ? (int)(slash - gadget) : 1, slash ? gadget : ".");
			if (access(zb, R_OK) < 0)
				problem(ps, line_of(c, "paths", "gadget_image"), "paths.gadget_image", NULL, true,
					"%s is missing: Zero 2 W boards cannot be bootstrapped (Raspberry "
					"Pi's rpi-sb-provisioner package installs it)", zb);
		}
		const char *initramfs = config_get(c, "paths", "cryptroot_initramfs");
		if (!naked_only && access(initramfs, R_OK) < 0)
			problem(ps, line_of(c, "paths", "cryptroot_initramfs"), "paths.cryptroot_initramfs",
				NULL, true, "the cryptroot initramfs %s is missing: encrypted modes cannot "
				"be provisioned (Raspberry Pi's rpi-sb-provisioner package installs it)",
				initramfs);
	}

	/* Per-family files, and required settings for every family in use. */
	for (size_t i = 0; i < config_families_len; i++) {
		char fsec[16];

		snprintf(fsec, sizeof(fsec), "family.%s", config_families[i]);
		if (*config_get(c, fsec, "gold")) {
			snprintf(key, sizeof(key), "%s.gold", fsec);
			check_gold(ps, key, line_of(c, fsec, "gold"), config_get(c, fsec, "gold"));
		}
		if (*config_get(c, fsec, "bootloader_config")) {
			snprintf(key, sizeof(key), "%s.bootloader_config", fsec);
			check_readable(ps, key, line_of(c, fsec, "bootloader_config"),
				       config_get(c, fsec, "bootloader_config"), "bootloader config");
		}
	}
	for (size_t r = 0; r < config_schema_len; r++) {
		const struct config_setting *s = &config_schema[r];
		bool missing = false;

		if (!s->required)
			continue;
		for (size_t i = 0; i < config_families_len; i++)
			if (in_use[i] && !*config_get_for_family(c, config_families[i], s->section, s->key))
				missing = true;
		if (missing) {
			char *allowed = config_allowed_text(s);

			snprintf(key, sizeof(key), "%s.%s", s->section, s->key);
			problem(ps, line_of(c, s->section, s->key), key, allowed, false,
				"required but not set: %s", s->help);
			free(allowed);
		}
	}
}

/* ---- load --------------------------------------------------------------- */

void config_free(struct config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < config_schema_len; i++) {
		free(c->main[i].value);
		free(c->defaults[i]);
	}
	for (size_t i = 0; i < config_families_len * config_schema_len; i++)
		free(c->fam[i].value);
	free(c->main);
	free(c->fam);
	free(c->defaults);
	free(c->file);
	free(c->dir);
	free(c);
}

static struct config *config_new(const char *name, const struct paths *paths)
{
	struct config *c = calloc(1, sizeof(*c));
	const char *slash;

	if (!c)
		return NULL;
	c->main = calloc(config_schema_len, sizeof(*c->main));
	c->fam = calloc(config_families_len * config_schema_len, sizeof(*c->fam));
	c->defaults = calloc(config_schema_len, sizeof(*c->defaults));
	c->file = strdup(name);
	if (!c->main || !c->fam || !c->defaults || !c->file)
		goto fail;
	slash = strrchr(name, '/');
	if (slash == name)
		c->dir = strdup("/");
	else if (slash)
		c->dir = strndup(name, (size_t)(slash - name));
	else
		c->dir = strdup(".");
	if (!c->dir)
		goto fail;
	if (c->dir[0] != '/') {
		char *cwd = getcwd(NULL, 0);
		char *abs = cwd ? path_join(cwd, c->dir) : NULL;

		free(cwd);
		if (abs) {
			free(c->dir);
			c->dir = abs;
		}
	}
	for (size_t i = 0; i < config_schema_len; i++) {
		const char *d = config_schema[i].def;

		if (!d)
			continue;
		if (config_schema[i].type == CONFIG_PATH && d[0] == '/' && paths && paths->root && *paths->root)
			c->defaults[i] = path_join(paths->root, d);
		else
			c->defaults[i] = strdup(d);
		if (!c->defaults[i])
			goto fail;
	}
	return c;
fail:
	config_free(c);
	return NULL;
}

/* Parse @buf (when non-NULL) into a new config and validate it. @unreadable, when
 * set, says why the file could not be read (reported first; defaults apply). */
static int load(const char *name, const char *buf, size_t len, const char *unreadable,
		const struct paths *paths, struct config **out, struct config_problems *probs)
{
	struct parse ps = { .probs = probs, .buf = buf, .len = len };
	size_t before = probs ? probs->n : 0;

	*out = NULL;
	ps.c = config_new(name, paths);
	if (!ps.c)
		return -ENOMEM;
	ps.section_ok = true; /* keys before any section are reported by the handler */
	if (unreadable)
		problem(&ps, 0, NULL, NULL, false, "%s", unreadable);
	else if (buf)
		ini_parse_stream(config_line_reader, &ps, config_handler, &ps);
	if (!ps.err)
		cross_checks(&ps); /* even for a missing file: every problem shows at once */
	*out = ps.c;
	if (ps.err)
		return ps.err;
	for (size_t i = before; probs && i < probs->n; i++)
		if (!probs->v[i].warning)
			return -EINVAL;
	return 0;
}

int config_load_buffer(const char *name, const char *buf, size_t len, const struct paths *paths,
		       struct config **out, struct config_problems *probs)
{
	return load(name, buf ? buf : "", buf ? len : 0, NULL, paths, out, probs);
}

int config_load(const char *path, const struct paths *paths, struct config **out,
		struct config_problems *probs)
{
	char *buf = NULL, *why = NULL;
	size_t len = 0;
	struct stat st;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		rc = asprintf(&why, "file not found; create it (see provisioner.ini.example, or "
			      "`config import` for the peer's config) or pass --config FILE");
	else if (fd < 0)
		rc = asprintf(&why, "cannot open: %s", strerror(errno));
	else if (fstat(fd, &st) < 0)
		rc = asprintf(&why, "cannot stat: %s", strerror(errno));
	else if (!S_ISREG(st.st_mode) || st.st_size > (off_t)CONFIG_MAX_FILE)
		rc = asprintf(&why, "not a regular text file of at most %u bytes", CONFIG_MAX_FILE);
	else
		rc = 0;
	if (rc < 0) {
		why = NULL;
		rc = -ENOMEM;
		goto out;
	}
	if (!why) {
		buf = malloc((size_t)st.st_size + 1);
		if (!buf) {
			rc = -ENOMEM;
			goto out;
		}
		while (len < (size_t)st.st_size) {
			ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = -errno;
				goto out;
			}
			if (r == 0)
				break;
			len += (size_t)r;
		}
	}
	rc = load(path, buf, len, why, paths, out, probs);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(why);
	return rc;
}
