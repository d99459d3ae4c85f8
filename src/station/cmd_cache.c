/* cmd_cache: `rpi-sb-provisioner cache clear` empties the content-addressed
 * artefact cache ([paths] cache_dir: bootstrap payloads, boot images, root
 * file systems, remembered image hashes), says what it removed and records
 * the action in the audit table. Nothing in the cache is irreplaceable: the
 * next board rebuilds what it needs. Run it while no station uses the
 * directory. Main thread. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artefacts/art_err.h"
#include "config/config.h"
#include "core/cli.h"
#include "image/cache.h"
#include "records/db.h"
#include "station/cmd_cache.h"

static uint64_t tree_bytes;

static int add_size(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F)
		tree_bytes += (uint64_t)st->st_size;
	return 0;
}

/* The entries cache_clear() will remove (everything but lock files): their
 * names printed, their count and size summed. */
static int cache_survey(const char *dir, bool print, size_t *entries, uint64_t *bytes)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	*entries = 0;
	*bytes = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n > 5 && !strcmp(de->d_name + n - 5, ".lock"))
			continue;
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		tree_bytes = 0;
		nftw(p, add_size, 16, FTW_PHYS);
		if (print)
			printf("  %-72s %10.1f KiB\n", de->d_name, (double)tree_bytes / 1024.0);
		*bytes += tree_bytes;
		(*entries)++;
		free(p);
	}
	closedir(d);
	return 0;
}

int cache_clear_counted(const char *dir, size_t *removed, uint64_t *bytes, size_t *left,
			struct art_err *err)
{
	size_t entries = 0;
	uint64_t total = 0, left_bytes = 0;
	int r;

	*removed = *left = 0;
	*bytes = 0;
	r = cache_survey(dir, false, &entries, &total);
	if (r < 0)
		return art_err_set(err, r, "cannot read %s: %s", dir, strerror(-r));
	r = cache_clear(dir, err);
	cache_survey(dir, false, left, &left_bytes);
	*removed = entries - *left;
	*bytes = total - left_bytes;
	return r;
}

static void cache_usage(FILE *f)
{
	fprintf(f, "usage: rpi-sb-provisioner cache clear\n"
		"  remove every entry of [paths] cache_dir (rebuilt on demand); audited\n");
}

int cmd_cache(struct cli *cli, int argc, char **argv)
{
	struct config *cfg = NULL;
	struct config_problems probs = { 0 };
	struct art_err err = { "" };
	const char *dir, *dbpath, *sub = argc > 1 ? argv[1] : "";
	size_t entries = 0, left = 0, removed = 0;
	uint64_t bytes = 0;
	char detail[512];
	int r, rc = EXIT_OK;

	if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		cache_usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(sub, "clear") != 0 || argc > 2) {
		fprintf(stderr, "cache: %s%s%s\n", *sub ? "unknown sub-command or argument '" :
			"missing sub-command", argc > 2 ? argv[2] : sub, *sub ? "'" : "");
		cache_usage(stderr);
		return EXIT_USAGE;
	}
	/* Problems elsewhere in the configuration must not stop a cache clear:
	 * the effective cache_dir is its default when the file says nothing. */
	config_load(cli->config_path, &cli->paths, &cfg, &probs);
	config_problems_free(&probs);
	if (!cfg) {
		fprintf(stderr, "cache clear: cannot read the configuration %s\n", cli->config_path);
		return EXIT_FAILED;
	}
	dir = config_get(cfg, "paths", "cache_dir");
	dbpath = config_get(cfg, "paths", "database");
	r = cache_survey(dir, true, &entries, &bytes);
	if (r < 0) {
		fprintf(stderr, "cache clear: cannot read %s: %s\n", dir, strerror(-r));
		rc = EXIT_FAILED;
		goto out;
	}
	r = cache_clear_counted(dir, &removed, &bytes, &left, &err);
	if (r < 0) {
		fprintf(stderr, "cache clear: %s; %zu entr%s left in %s (check its permissions, or "
			"stop the station using it)\n", err.msg, left, left == 1 ? "y" : "ies", dir);
		rc = EXIT_FAILED;
	}
	printf("cache clear: removed %zu entr%s (%.1f MiB) from %s\n", removed,
	       removed == 1 ? "y" : "ies", (double)bytes / 1048576.0, dir);
	snprintf(detail, sizeof(detail), "removed %zu entries (%llu bytes)%s", removed,
		 (unsigned long long)bytes, r < 0 ? "; some could not be removed" : "");
	if (dbpath && *dbpath) {
		r = db_audit_file(dbpath, DB_ORIGIN_CLI, "cache-clear", dir, detail);
		if (r < 0)
			fprintf(stderr, "cache clear: warning: the cache was cleared, but this could not be "
				"recorded in the audit table of %s: %s\n", dbpath, strerror(-r));
	}
out:
	config_free(cfg);
	return rc;
}
