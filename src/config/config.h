/* config: the station configuration (one INI file), driven by one schema table.
 *
 * The table config_schema[] (config/schema.c) is the only list of settings: it
 * drives parsing, validation, defaults, `config dump`, `config schema` (the
 * reference in doc/configuration.md and conf/provisioner.ini.example) and the
 * peer importer. A loaded `struct config` is immutable; any thread may read it.
 *
 * Sections [station] [image] [key] [bootloader] [otp] [paths] [timeouts], plus
 * optional [family.4] [family.5] [family.2W] that override a few settings for
 * boards of one family (see config_get_for_family()). */
#ifndef RPI_SB_CONFIG_CONFIG_H
#define RPI_SB_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/paths.h"

struct config; /* opaque */

struct config_problem {
	char *file;     /* the file the problem is in (never NULL) */
	int line;       /* 1-based; 0 when the problem is not tied to a line */
	char *key;      /* "section.key" or NULL */
	char *message;  /* what is wrong, and what to do */
	char *allowed;  /* "a|b|c", "10..3600", ... or NULL */
	bool warning;   /* true: worth saying, but the configuration is usable */
};

struct config_problems {
	struct config_problem *v;
	size_t n;
};

enum config_type {
	CONFIG_STRING,
	CONFIG_PATH,   /* relative values are taken relative to the config file's directory */
	CONFIG_ENUM,   /* one of `allowed` ("a|b|c") */
	CONFIG_BOOL,   /* true|false (also yes|no|on|off|1|0) */
	CONFIG_INT,    /* decimal integer in min..max */
	CONFIG_HEX64,  /* 64 hex digits (a SHA-256) */
};

/* How the peer's shell config expresses a value (for `config import`). */
enum config_peer_style {
	CONFIG_PEER_NONE = 0,       /* no peer variable */
	CONFIG_PEER_VERBATIM,       /* value copied as is */
	CONFIG_PEER_NONEMPTY_TRUE,  /* any non-empty value means true */
	CONFIG_PEER_OFF_WORDS,      /* empty/0/false/no/off mean false, else true */
};

struct config_setting {
	const char *section;     /* "station", ...; "family" rows apply to [family.4|5|2W] */
	const char *key;
	enum config_type type;
	const char *allowed;     /* enum values "a|b|c"; NULL for other types */
	long min, max;           /* CONFIG_INT range */
	const char *def;         /* default text; NULL = unset. Absolute paths get --root. */
	const char *help;        /* one line for the reference table */
	const char *peer;        /* the peer's variable, NULL if none */
	enum config_peer_style peer_style;
	const char *overrides;   /* family rows: "section.key" of the setting they override */
	bool secret;             /* printed as "(set)" */
	bool irreversible;       /* acts on OTP: permanent on the board */
	bool required;           /* must have a value (directly or through every family in use) */
};

extern const struct config_setting config_schema[];
extern const size_t config_schema_len;
/* The per-family section suffixes, in display order: "4", "5", "2W". */
extern const char *const config_families[];
extern const size_t config_families_len;

/* The rules across settings that config_load() applies, one sentence each (Markdown). */
extern const char *const config_rules[];
extern const size_t config_rules_len;

/* The schema row of section.key (section "family.X" finds the "family" row), or NULL. */
const struct config_setting *config_setting_find(const char *section, const char *key);

/* Load + validate. Missing file => defaults + a problem "file not found". Returns 0 when
 * no problems (warnings aside), -EINVAL when problems were found (config still usable
 * for dump), -errno on system errors. @paths may be NULL (no --root). On return *out is
 * set (may be NULL only for -ENOMEM); the caller frees it and @probs. */
int config_load(const char *path, const struct paths *paths, struct config **out,
		struct config_problems *probs);
/* The same from a buffer (need not be NUL-terminated); @name stands for the file. */
int config_load_buffer(const char *name, const char *buf, size_t len, const struct paths *paths,
		       struct config **out, struct config_problems *probs);
void config_free(struct config *c);
void config_problems_free(struct config_problems *p);
/* Append a problem (copies every string). 0 or -ENOMEM. */
int config_problem_add(struct config_problems *p, const char *file, int line, const char *key,
		       const char *allowed, bool warning, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* Count the problems that are not warnings. */
size_t config_problems_errors(const struct config_problems *p);
/* "FILE:LINE: key 'x': message; allowed: a|b" (with "warning: " before the message). */
void config_problem_print(FILE *f, const struct config_problem *p);

/* Effective value, "" if unset; defaults already rooted under --root. */
const char *config_get(const struct config *c, const char *section, const char *key);
long config_get_int(const struct config *c, const char *section, const char *key);
bool config_get_bool(const struct config *c, const char *section, const char *key);
/* Family-aware: the value for a board of family "4"|"5"|"2W" (its [family.X] override
 * when there is one, else the main section's value). */
const char *config_get_for_family(const struct config *c, const char *family, const char *section,
				  const char *key);
/* Where the effective value came from: 1 (and *file, *line) when set in a file, 0 when it
 * is the default (or unset), -ENOENT for an unknown setting. */
int config_origin(const struct config *c, const char *section, const char *key, const char **file,
		  int *line);
/* The file this configuration was loaded from. */
const char *config_file(const struct config *c);

/* Why @value is not valid for @s (family rows check as the row they override), or
 * NULL when it is. An empty value is valid only for settings without a default. */
const char *config_check_value(const struct config_setting *s, const char *value);
/* Allowed values of @s as text ("a|b", "10..3600", "64 hex digits"); NULL for free
 * text and paths, or on ENOMEM. Caller frees. */
char *config_allowed_text(const struct config_setting *s);

/* Parse a bool as the loader does. 0 and *out, or -EINVAL. */
int config_parse_bool(const char *s, bool *out);

/* The reference of every setting: Markdown table (doc/configuration.md) or a commented
 * example INI (conf/provisioner.ini.example). */
int config_schema_markdown(FILE *f);
int config_schema_ini(FILE *f);

/* Convert the peer's shell-style config (NAME=value lines) into our INI on @out. Lines it
 * cannot map are reported on @notes (one per line), never executed. 0, or -EINVAL when the
 * input had lines it could not parse (still converted what it could), -ENOMEM. */
int config_import_peer(const char *name, const char *buf, size_t len, FILE *out, FILE *notes);

#endif
