/* flags: owns the special per-board flag files (special-skip-eeprom/,
 * special-reprovision-device/ under the flags directory) and the `flags`
 * command that manages them.
 *
 * The library functions keep no state: any thread may call them. Changes are
 * atomic renames, so a worker looking a flag up while the operator sets it
 * sees the old or the new file, never half of one. cmd_flags runs on the main
 * thread of the command-line tool. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/cli.h"
#include "core/paths.h"
#include "records/db.h"
#include "records/flags.h"

#define FLAGS_DIR_MODE 0755
#define FLAGS_FILE_MODE 0644
#define FLAGS_CONTENT_MAX 4096 /* a bigger file cannot say `once` */

static const struct {
	const char *name;
	const char *subdir;
} flag_table[FLAG_COUNT] = {
	[FLAG_SKIP_EEPROM] = { "skip-eeprom", "special-skip-eeprom" },
	[FLAG_REPROVISION] = { "reprovision", "special-reprovision-device" },
};

const char *flags_name(enum flag_kind flag)
{
	return (unsigned)flag < FLAG_COUNT ? flag_table[flag].name : "unknown";
}

const char *flags_subdir(enum flag_kind flag)
{
	return (unsigned)flag < FLAG_COUNT ? flag_table[flag].subdir : "unknown";
}

const char *flags_state_name(enum flag_state state)
{
	switch (state) {
	case FLAG_NONE: return "none";
	case FLAG_ONCE: return "once";
	case FLAG_PERSISTENT: return "persistent";
	}
	return "unknown";
}

int flags_parse(const char *name, enum flag_kind *out)
{
	for (int i = 0; i < FLAG_COUNT; i++) {
		if (!strcmp(name, flag_table[i].name) || !strcmp(name, flag_table[i].subdir)) {
			*out = (enum flag_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

int flags_serial_normalise(const char *serial, char out[FLAGS_SERIAL_MAX])
{
	size_t n = serial ? strlen(serial) : 0;

	if (n != 8 && n != 16)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)serial[i]))
			return -EINVAL;
		out[i] = (char)tolower((unsigned char)serial[i]);
	}
	out[n] = '\0';
	return 0;
}

static bool is_lower_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return true;
}

static char *flag_dir(const char *dir, enum flag_kind flag)
{
	return path_join(dir, flag_table[flag].subdir);
}

/* The state one flag file says; -ENOENT when absent (or not a regular file,
 * which the peer's `-f` test would not see either). */
static int read_state(const char *path, enum flag_state *state)
{
	char buf[FLAGS_CONTENT_MAX + 1];
	size_t len = 0, start = 0;
	struct stat st;
	int fd, r = 0;

	/* O_NONBLOCK: a FIFO planted in the directory must not hang a worker. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = -ENOENT;
		goto out;
	}
	while (len < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		buf[--len] = '\0';
	while (start < len && isspace((unsigned char)buf[start]))
		start++;
	*state = strcmp(buf + start, "once") == 0 ? FLAG_ONCE : FLAG_PERSISTENT;
out:
	close(fd);
	return r;
}

/* Every file name under which @flag applies to serial @s (normalised), in
 * lookup order: exact; then the low 8 hex of a 16-hex serial, or the 16-hex
 * names ending in an 8-hex serial. @fn returns 0 to go on, 1 to stop (then
 * 0 is returned), or a negative errno (returned). */
typedef int (*match_fn)(void *usrptr, const char *path);

static int for_each_match(const char *dir, enum flag_kind flag, const char *s, match_fn fn,
			  void *usrptr)
{
	char *sub = flag_dir(dir, flag);
	char *path = NULL;
	struct dirent **names = NULL;
	int n = 0, r;

	if (!sub)
		return -ENOMEM;
	path = path_join(sub, s);
	if (!path) {
		r = -ENOMEM;
		goto out;
	}
	r = fn(usrptr, path);
	if (r != 0)
		goto out;
	free(path);
	path = NULL;
	if (strlen(s) == 16) {
		path = path_join(sub, s + 8);
		r = path ? fn(usrptr, path) : -ENOMEM;
		goto out;
	}
	n = scandir(sub, &names, NULL, alphasort);
	if (n < 0) {
		n = 0;
		r = (errno == ENOENT || errno == ENOTDIR) ? 0 : -errno;
		goto out;
	}
	for (int i = 0; i < n && r == 0; i++) {
		if (!is_lower_hex(names[i]->d_name, 16) || strcmp(names[i]->d_name + 8, s))
			continue;
		path = path_join(sub, names[i]->d_name);
		r = path ? fn(usrptr, path) : -ENOMEM;
		free(path);
		path = NULL;
	}
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(path);
	free(sub);
	return r < 0 ? r : 0;
}

static int lookup_one(void *usrptr, const char *path)
{
	enum flag_state *state = usrptr;
	int r = read_state(path, state);

	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	return r < 0 ? r : 1;
}

int flags_lookup(const char *dir, const char *serial, enum flag_kind flag, enum flag_state *state)
{
	char s[FLAGS_SERIAL_MAX];

	*state = FLAG_NONE;
	if ((unsigned)flag >= FLAG_COUNT || flags_serial_normalise(serial, s) < 0)
		return -EINVAL;
	return for_each_match(dir, flag, s, lookup_one, state);
}

struct remove_ctx {
	bool only_once;
	const char *keep;  /* path not to remove, or NULL */
	int removed;
};

static int remove_one(void *usrptr, const char *path)
{
	struct remove_ctx *c = usrptr;
	enum flag_state state;
	int r;

	if (c->keep && !strcmp(path, c->keep))
		return 0;
	r = read_state(path, &state);
	if (r == -ENOENT || r == -ENOTDIR)
		return 0;
	if (r < 0)
		return r;
	if (c->only_once && state != FLAG_ONCE)
		return 0;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	c->removed++;
	return 0;
}

int flags_set(const char *dir, const char *serial, enum flag_kind flag, bool once)
{
	char s[FLAGS_SERIAL_MAX];
	const char *text = once ? "once\n" : "persistent\n";
	char *sub = NULL, *path = NULL, *tmp = NULL;
	struct remove_ctx others = { 0 };
	int fd = -1, r;

	if ((unsigned)flag >= FLAG_COUNT || flags_serial_normalise(serial, s) < 0)
		return -EINVAL;
	sub = flag_dir(dir, flag);
	path = sub ? path_join(sub, s) : NULL;
	if (!path || asprintf(&tmp, "%s/.%s.XXXXXX", sub, s) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		goto out;
	}
	r = mkdir_p(sub, FLAGS_DIR_MODE);
	if (r < 0)
		goto out;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	errno = 0;
	if (fchmod(fd, FLAGS_FILE_MODE) < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fsync(fd) < 0) {
		r = errno ? -errno : -EIO;
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out;
	}
	/* The file just written is now the whole truth: a stale file under the
	 * other name form would outlive a `once` or resurrect a cleared flag. */
	others.keep = path;
	r = for_each_match(dir, flag, s, remove_one, &others);
out:
	if (fd >= 0)
		close(fd);
	if (r < 0 && tmp)
		unlink(tmp);
	free(tmp);
	free(path);
	free(sub);
	return r;
}

int flags_clear(const char *dir, const char *serial, enum flag_kind flag)
{
	char s[FLAGS_SERIAL_MAX];
	struct remove_ctx c = { 0 };
	int r;

	if ((unsigned)flag >= FLAG_COUNT || flags_serial_normalise(serial, s) < 0)
		return -EINVAL;
	r = for_each_match(dir, flag, s, remove_one, &c);
	if (r < 0)
		return r;
	return c.removed ? 0 : -ENOENT;
}

int flags_consume_once(const char *dir, const char *serial)
{
	char s[FLAGS_SERIAL_MAX];
	struct remove_ctx c = { .only_once = true };

	if (flags_serial_normalise(serial, s) < 0)
		return -EINVAL;
	for (int f = 0; f < FLAG_COUNT; f++) {
		int r = for_each_match(dir, (enum flag_kind)f, s, remove_one, &c);

		if (r < 0)
			return r;
	}
	return c.removed;
}

static int skip_hidden(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

int flags_list(const char *dir, flags_list_fn fn, void *usrptr)
{
	int r = 0;

	for (int f = 0; f < FLAG_COUNT && r == 0; f++) {
		char *sub = flag_dir(dir, (enum flag_kind)f);
		struct dirent **names = NULL;
		int n;

		if (!sub)
			return -ENOMEM;
		n = scandir(sub, &names, skip_hidden, alphasort);
		if (n < 0) {
			r = (errno == ENOENT || errno == ENOTDIR) ? 0 : -errno;
			n = 0;
		}
		for (int i = 0; i < n; i++) {
			char *path = r == 0 ? path_join(sub, names[i]->d_name) : NULL;
			enum flag_state state;

			if (r == 0 && !path)
				r = -ENOMEM;
			if (r == 0 && read_state(path, &state) == 0)
				r = fn(usrptr, (enum flag_kind)f, names[i]->d_name, state);
			free(path);
			free(names[i]);
		}
		free(names);
		free(sub);
	}
	return r;
}

/* --- the `flags` command --------------------------------------------------- */

static void flags_usage(FILE *f)
{
	fprintf(f, "Usage: rpi-sb-provisioner flags list\n"
		   "       rpi-sb-provisioner flags set SERIAL FLAG [--once]\n"
		   "       rpi-sb-provisioner flags clear SERIAL FLAG\n"
		   "SERIAL: 8 hex (ROM serial) or 16 hex (full serial) digits.\n"
		   "FLAG: skip-eeprom | reprovision. --once: consumed after the next successful bootstrap.\n");
}

static int print_flag(void *usrptr, enum flag_kind flag, const char *name, enum flag_state state)
{
	char s[FLAGS_SERIAL_MAX];
	bool usable = flags_serial_normalise(name, s) == 0 && !strcmp(s, name);

	(void)usrptr;
	printf("%-16s  %-11s  %s%s\n", name, flags_name(flag), flags_state_name(state),
	       usable ? "" : "  (not a lowercase 8/16-hex serial: matches no board; remove it)");
	return 0;
}

/* Record the operator's action; a failure here does not undo the action. */
static void audit(const struct config *cfg, const char *action, const char *serial,
		  const char *detail)
{
	const char *path = cfg ? config_get(cfg, "paths", "database") : "";
	int r;

	if (!path || !*path)
		return;
	r = db_audit_file(path, DB_ORIGIN_CLI, action, serial, detail);
	if (r < 0)
		fprintf(stderr, "flags: warning: the change was made, but could not be recorded in the "
			"audit table of %s: %s\n", path, strerror(-r));
}

int cmd_flags(struct cli *cli, int argc, char **argv)
{
	struct config *cfg = NULL;
	struct config_problems probs = { 0 };
	const char *dir = NULL, *sub = argc > 1 ? argv[1] : "";
	const char *pos[2] = { NULL, NULL };
	char serial[FLAGS_SERIAL_MAX];
	enum flag_kind flag = FLAG_SKIP_EEPROM;
	int npos = 0, rc = EXIT_OK, r;
	bool once = false;

	if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		flags_usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(sub, "list") && strcmp(sub, "set") && strcmp(sub, "clear")) {
		fprintf(stderr, "flags: %s%s%s: say list, set or clear\n",
			*sub ? "unknown sub-command '" : "missing sub-command", sub, *sub ? "'" : "");
		flags_usage(stderr);
		return EXIT_USAGE;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--once") && !strcmp(sub, "set")) {
			once = true;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "flags %s: unknown option '%s'\n", sub, argv[i]);
			flags_usage(stderr);
			return EXIT_USAGE;
		} else if (npos < 2) {
			pos[npos++] = argv[i];
		} else {
			fprintf(stderr, "flags %s: unexpected argument '%s'\n", sub, argv[i]);
			flags_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (strcmp(sub, "list") ? npos != 2 : npos != 0) {
		fprintf(stderr, "flags %s: %s\n", sub,
			strcmp(sub, "list") ? "needs SERIAL and FLAG" : "takes no arguments");
		flags_usage(stderr);
		return EXIT_USAGE;
	}
	if (npos == 2) {
		if (flags_serial_normalise(pos[0], serial) < 0) {
			fprintf(stderr, "flags %s: '%s' is not a board serial: give its 8 hex digits "
				"(ROM serial, e.g. 1a2b3c4d) or 16 hex digits (full serial, e.g. "
				"000000001a2b3c4d)\n", sub, pos[0]);
			return EXIT_USAGE;
		}
		if (flags_parse(pos[1], &flag) < 0) {
			fprintf(stderr, "flags %s: unknown flag '%s'; allowed: skip-eeprom, "
				"reprovision\n", sub, pos[1]);
			return EXIT_USAGE;
		}
	}

	/* Problems elsewhere in the configuration must not stop flag management:
	 * use the effective flags_dir (its default when the file says nothing). */
	config_load(cli->config_path, &cli->paths, &cfg, &probs);
	config_problems_free(&probs);
	if (cfg)
		dir = config_get(cfg, "paths", "flags_dir");
	if (!dir || !*dir)
		dir = cli->paths.etc;

	if (!strcmp(sub, "list")) {
		r = flags_list(dir, print_flag, NULL);
		if (r < 0) {
			fprintf(stderr, "flags list: cannot read the flags in %s: %s\n", dir, strerror(-r));
			rc = EXIT_FAILED;
		}
	} else if (!strcmp(sub, "set")) {
		r = flags_set(dir, serial, flag, once);
		if (r < 0) {
			fprintf(stderr, "flags set: cannot write %s/%s/%s: %s; check that the directory "
				"is writable (run as root, or set [paths] flags_dir)\n",
				dir, flags_subdir(flag), serial, strerror(-r));
			rc = EXIT_FAILED;
		} else {
			char detail[64];

			printf("%s set for %s (%s)\n", flags_name(flag), serial,
			       once ? "once: cleared after the next successful bootstrap" : "persistent");
			snprintf(detail, sizeof(detail), "%s %s", flags_name(flag),
				 once ? "once" : "persistent");
			audit(cfg, "flag-set", serial, detail);
		}
	} else {
		r = flags_clear(dir, serial, flag);
		if (r == -ENOENT) {
			printf("%s was not set for %s; nothing to clear\n", flags_name(flag), serial);
		} else if (r < 0) {
			fprintf(stderr, "flags clear: cannot remove %s/%s/%s: %s; check that the "
				"directory is writable\n", dir, flags_subdir(flag), serial, strerror(-r));
			rc = EXIT_FAILED;
		} else {
			printf("%s cleared for %s\n", flags_name(flag), serial);
			audit(cfg, "flag-clear", serial, flags_name(flag));
		}
	}
	config_free(cfg);
	return rc;
}
