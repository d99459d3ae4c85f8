/* allowlist: which USB ports the station serves (the peer's usb-ports.d).
 *
 * `*.conf` drop-ins in a vendor directory (packages) and an admin directory,
 * merged by file name: an admin file masks the vendor file of the same name (an
 * empty admin file disables it). Each line is one port topology path
 * `BUS-PORT[.PORT...]` as sysfs names it, shell globs allowed (fnmatch), `#`
 * starts a comment. No rules at all: every port is served. Rules present: only
 * ports matching one are served; a port whose path is unknown is skipped. */
#ifndef RPI_SB_CONFIG_ALLOWLIST_H
#define RPI_SB_CONFIG_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct allowlist_rule {
	char *pattern;
	char *file;   /* the .conf file it came from */
	int line;
};

struct allowlist {
	struct allowlist_rule *v;
	size_t n;
	size_t files;  /* .conf files read (after masking) */
};

/* Read both directories (either may be NULL or missing). Invalid lines are added to
 * @probs (file:line) and skipped. 0, -EINVAL when @probs got problems, -ENOMEM;
 * *out is always set unless -ENOMEM. The result is read-only: any thread may query it. */
int allowlist_load(const char *vendor_dir, const char *admin_dir, struct allowlist **out,
		   struct config_problems *probs);

/* An empty list (every port allowed), to add buffers to. NULL on ENOMEM. */
struct allowlist *allowlist_new(void);
/* Parse @buf as the content of one .conf file named @name and add its rules. */
int allowlist_parse_buffer(struct allowlist *al, const char *name, const char *buf, size_t len,
			   struct config_problems *probs);

/* Is a board on @port_path (e.g. "1-1.3"; NULL or "" when unknown) to be served? */
bool allowlist_permits(const struct allowlist *al, const char *port_path);
/* Is @s a plain port path, no glob characters (so it names one port)? */
bool allowlist_pattern_literal(const char *s);
/* Is @s a valid topology path pattern? (what the parser accepts) */
bool allowlist_pattern_valid(const char *s);

void allowlist_free(struct allowlist *al);

#endif
