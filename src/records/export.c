/* export: the manufacturing records as CSV (`export --csv`) and as a table
 * or JSON (`devices`). Columns come from the database itself (SELECT * FROM
 * devices), so a column added to the schema shows up here without an edit.
 * CSV cells that a spreadsheet would run as a formula are neutralised.
 *
 * Threads: the commands run on the main thread; export_csv/export_json may
 * be called from any thread with that thread's own struct db. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config/config.h"
#include "core/cli.h"
#include "records/db.h"
#include "records/export.h"

/* ---- dates ----------------------------------------------------------- */

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static int days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

int export_parse_since(const char *in, char out[EXPORT_TIME_LEN])
{
	int y, mo, d, h = 0, mi = 0, s = 0;
	size_t len;

	if (!in)
		return -EINVAL;
	len = strlen(in);
	if (len != 10 && len != 19)
		return -EINVAL;
	if (!digits(in, 4, &y) || in[4] != '-' || !digits(in + 5, 2, &mo) || in[7] != '-' ||
	    !digits(in + 8, 2, &d))
		return -EINVAL;
	if (len == 19 && (in[10] != ' ' || !digits(in + 11, 2, &h) || in[13] != ':' ||
			  !digits(in + 14, 2, &mi) || in[16] != ':' || !digits(in + 17, 2, &s)))
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || s > 59)
		return -EINVAL;
	/* Validated above: the input is the normalised form, or its date part. */
	memcpy(out, in, 10);
	memcpy(out + 10, len == 19 ? in + 10 : " 00:00:00", 9);
	out[19] = '\0';
	return 0;
}

/* ---- CSV ------------------------------------------------------------- */

int export_csv_cell(FILE *f, const char *s)
{
	/* A spreadsheet runs a cell that starts with one of these as a formula
	 * (CSV injection); a leading ' makes it plain text in every one of them. */
	bool neutralise = s[0] && strchr("=+-@\t\r", s[0]) != NULL;
	bool quote = strpbrk(s, ",\"\r\n") != NULL;

	if (quote && fputc('"', f) == EOF)
		return -EIO;
	if (neutralise && fputc('\'', f) == EOF)
		return -EIO;
	for (const char *p = s; *p; p++) {
		if (*p == '"' && fputc('"', f) == EOF)
			return -EIO;
		if (fputc(*p, f) == EOF)
			return -EIO;
	}
	if (quote && fputc('"', f) == EOF)
		return -EIO;
	return 0;
}

static int csv_header(FILE *out, size_t ncols, const char *const *names)
{
	for (size_t i = 0; i < ncols; i++) {
		if (i && fputc(',', out) == EOF)
			return -EIO;
		int r = export_csv_cell(out, names[i]);
		if (r < 0)
			return r;
	}
	return fputs("\r\n", out) == EOF ? -EIO : 0;
}

struct row_count {
	FILE *out;
	size_t rows;
};

static int csv_row(void *usrptr, size_t ncols, const char *const *names,
		   const struct db_cell *cells)
{
	struct row_count *rc = usrptr;
	FILE *out = rc->out;
	int r;

	(void)names;
	for (size_t i = 0; i < ncols; i++) {
		if (i && fputc(',', out) == EOF)
			return -EIO;
		switch (cells[i].type) {
		case DB_CELL_NULL:
			break; /* empty cell; 0 is written as 0 */
		case DB_CELL_INT:
			/* A number cannot hold a formula; -5 stays a number. */
			if (fprintf(out, "%" PRId64, cells[i].i) < 0)
				return -EIO;
			break;
		case DB_CELL_TEXT:
			r = export_csv_cell(out, cells[i].s);
			if (r < 0)
				return r;
			break;
		}
	}
	if (fputs("\r\n", out) == EOF)
		return -EIO;
	rc->rows++;
	return 0;
}

static int csv_header_cb(void *usrptr, size_t ncols, const char *const *names)
{
	return csv_header(((struct row_count *)usrptr)->out, ncols, names);
}

int export_csv(struct db *db, const struct db_device_filter *flt, FILE *out, size_t *rows)
{
	struct row_count rc = { .out = out };
	int r = db_devices_foreach(db, flt, csv_header_cb, csv_row, &rc);

	if (rows)
		*rows = rc.rows;
	return r;
}

/* ---- JSON ------------------------------------------------------------ */

struct json_state {
	json_object *array;
	size_t rows;
};

static int json_row(void *usrptr, size_t ncols, const char *const *names,
		    const struct db_cell *cells)
{
	struct json_state *js = usrptr;
	json_object *o = json_object_new_object();

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < ncols; i++) {
		json_object *v = NULL;

		if (cells[i].type == DB_CELL_INT)
			v = json_object_new_int64(cells[i].i);
		else if (cells[i].type == DB_CELL_TEXT)
			v = json_object_new_string(cells[i].s);
		if (cells[i].type != DB_CELL_NULL && !v) {
			json_object_put(o);
			return -ENOMEM;
		}
		/* v == NULL is JSON null */
		if (json_object_object_add(o, names[i], v) < 0) {
			json_object_put(v);
			json_object_put(o);
			return -ENOMEM;
		}
	}
	if (json_object_array_add(js->array, o) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	js->rows++;
	return 0;
}

int export_json(struct db *db, const struct db_device_filter *flt, FILE *out, size_t *rows)
{
	struct json_state js = { .array = json_object_new_array() };
	int r;

	if (!js.array)
		return -ENOMEM;
	r = db_devices_foreach(db, flt, NULL, json_row, &js);
	if (r == 0) {
		const char *s = json_object_to_json_string_ext(js.array,
			JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);

		if (!s)
			r = -ENOMEM;
		else if (fputs(s, out) == EOF || fputc('\n', out) == EOF)
			r = -EIO;
	}
	if (rows)
		*rows = js.rows;
	json_object_put(js.array);
	return r;
}

/* ---- the commands ---------------------------------------------------- */

/* The database path from the configuration ([paths] database). Problems in
 * other settings do not matter here: their effective values are not used. */
static int records_db_path(struct cli *cli, const char *prog, char **out)
{
	struct config *cfg = NULL;
	struct config_problems probs = { 0 };
	int r = config_load(cli->config_path, &cli->paths, &cfg, &probs);

	*out = NULL;
	/* -EINVAL: problems (a missing file among them), values still usable. */
	if (!cfg || (r < 0 && r != -EINVAL)) {
		config_free(cfg);
		fprintf(stderr, "%s: cannot load the configuration %s: %s\n", prog,
			cli->config_path, strerror(-r));
		config_problems_free(&probs);
		return -ENOMEM;
	}
	r = 0;
	for (size_t i = 0; i < probs.n; i++) {
		const struct config_problem *p = &probs.v[i];

		if (p->key && strcmp(p->key, "paths.database") == 0 && !p->warning) {
			config_problem_print(stderr, p);
			r = -EINVAL;
		}
	}
	const char *path = config_get(cfg, "paths", "database");
	if (r == 0 && (!path || !*path)) {
		fprintf(stderr, "%s: %s: [paths] database is empty; set it to the manufacturing "
			"database file\n", prog, cli->config_path);
		r = -EINVAL;
	}
	if (r == 0) {
		*out = strdup(path);
		if (!*out)
			r = -ENOMEM;
	}
	config_free(cfg);
	config_problems_free(&probs);
	return r;
}

/* Write the CSV to a temp file next to @path and rename it into place, so
 * a reader never sees half an export and a failure leaves no stray file. */
static int export_csv_file(struct db *db, const struct db_device_filter *flt, const char *path,
			   size_t *rows, const char *prog)
{
	char *tmp = NULL;
	FILE *f = NULL;
	bool created = false;
	int fd = -1, r;

	if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
		return -ENOMEM;
	fd = mkstemp(tmp);
	if (fd < 0) {
		r = -errno;
		fprintf(stderr, "%s: cannot create a file next to %s: %s\n", prog, path,
			strerror(-r));
		goto out;
	}
	created = true;
	mode_t mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) < 0) {
		r = -errno;
		fprintf(stderr, "%s: %s: %s\n", prog, tmp, strerror(-r));
		goto out;
	}
	f = fdopen(fd, "w");
	if (!f) {
		r = -errno;
		goto out;
	}
	fd = -1;
	r = export_csv(db, flt, f, rows);
	if (r == 0 && (fflush(f) != 0 || fsync(fileno(f)) < 0))
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	f = NULL;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		fprintf(stderr, "%s: writing %s failed: %s; nothing was written\n", prog, path,
			strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	if (f)
		fclose(f);
	if (r < 0 && created)
		unlink(tmp);
	free(tmp);
	return r;
}

static void export_usage(FILE *f, const char *prog)
{
	fprintf(f, "Usage: %s export --csv [-o FILE] [--secured-only] [--since DATE]\n\n"
		"Write the manufacturing records (one row per board) as CSV with a header row.\n"
		"  --csv            CSV (RFC 4180, CRLF); cells starting with = + - @ TAB CR get a\n"
		"                   leading ' so a spreadsheet never runs them as formulas\n"
		"  -o, --output F   write to F atomically (default: standard output)\n"
		"  --secured-only   only boards recorded with secure = 1\n"
		"  --since DATE     only boards provisioned at or after DATE (UTC),\n"
		"                   YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS'\n", prog);
}

int cmd_export(struct cli *cli, int argc, char **argv)
{
	enum { OPT_CSV = 256, OPT_SECURED, OPT_SINCE };
	static const struct option opts[] = {
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "output", required_argument, NULL, 'o' },
		{ "secured-only", no_argument, NULL, OPT_SECURED },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *prog = cli->argv0 ? cli->argv0 : "rpi-sb-provisioner";
	struct db_device_filter flt = { 0 };
	char since[EXPORT_TIME_LEN];
	const char *output = NULL;
	bool csv = false;
	char *dbpath = NULL, *user = NULL, *detail = NULL;
	struct db *db = NULL;
	size_t rows = 0;
	int c, r, ret = EXIT_FAILED;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_CSV: csv = true; break;
		case 'o': output = optarg; break;
		case OPT_SECURED: flt.secured_only = true; break;
		case OPT_SINCE:
			if (export_parse_since(optarg, since) < 0) {
				fprintf(stderr, "%s export: --since '%s' is not a date; use YYYY-MM-DD "
					"or 'YYYY-MM-DD HH:MM:SS' (UTC)\n", prog, optarg);
				return EXIT_USAGE;
			}
			flt.since = since;
			break;
		case 'h': export_usage(stdout, prog); return EXIT_OK;
		default: export_usage(stderr, prog); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s export: unexpected argument '%s'\n", prog, argv[optind]);
		return EXIT_USAGE;
	}
	if (!csv) {
		fprintf(stderr, "%s export: choose the format: --csv (the only one so far)\n", prog);
		return EXIT_USAGE;
	}
	if (output && !*output) {
		fprintf(stderr, "%s export: -o needs a file name\n", prog);
		return EXIT_USAGE;
	}
	r = records_db_path(cli, prog, &dbpath);
	if (r < 0) {
		ret = r == -EINVAL ? EXIT_USAGE : EXIT_FAILED;
		goto out;
	}
	r = db_open(dbpath, 0, &db);
	if (r < 0)
		goto out; /* db logged what and where */

	if (output)
		r = export_csv_file(db, &flt, output, &rows, prog);
	else if ((r = export_csv(db, &flt, stdout, &rows)) == 0 && fflush(stdout) != 0)
		r = -errno;
	if (r < 0) {
		if (!output)
			fprintf(stderr, "%s export: writing to standard output failed: %s\n", prog,
				strerror(-r));
		goto out;
	}

	user = db_operator_name();
	if (asprintf(&detail, "%zu rows%s%s%s", rows, flt.secured_only ? ", secured only" : "",
		     flt.since ? ", since " : "", flt.since ? flt.since : "") < 0)
		detail = NULL;
	r = db_audit(db, DB_ORIGIN_CLI, user, "export-csv", output ? output : "(stdout)",
		     detail);
	if (r < 0) {
		fprintf(stderr, "%s export: the export was written but not recorded in the audit "
			"table (see above); fix the database and export again\n", prog);
		goto out;
	}
	if (output)
		printf("%s\n", output);
	fprintf(stderr, "exported %zu board%s from %s\n", rows, rows == 1 ? "" : "s", dbpath);
	ret = EXIT_OK;
out:
	db_close(db);
	free(dbpath);
	free(user);
	free(detail);
	return ret;
}

/* ---- devices: a table for people, or JSON -------------------------- */

/* The table's columns: heading and the devices column it shows. */
static const struct {
	const char *heading;
	const char *column;
} table_columns[] = {
	{ "SERIAL", "serial" },
	{ "BOARD", "boardname" },
	{ "SECURE", "secure" },
	{ "PROVISIONED AT (UTC)", "provision_ts" },
	{ "STATION", "station_id" },
	{ "PORT", "usb_port" },
};
#define N_TABLE_COLUMNS (sizeof(table_columns) / sizeof(table_columns[0]))

struct table {
	char **cells;         /* rows x N_TABLE_COLUMNS */
	size_t rows;
	size_t width[N_TABLE_COLUMNS];
	int index[N_TABLE_COLUMNS]; /* position of each shown column in the row */
};

/* Text for a terminal: control characters (from the DB) shown as '?'. */
static char *cell_text(const struct db_cell *c, bool flag)
{
	char *s = NULL;

	if (c->type == DB_CELL_NULL)
		s = strdup(flag ? "unknown" : "-");
	else if (c->type == DB_CELL_INT && flag)
		s = strdup(c->i == 1 ? "yes" : c->i == 0 ? "no" : "?");
	else if (c->type == DB_CELL_INT) {
		if (asprintf(&s, "%" PRId64, c->i) < 0)
			s = NULL;
	} else {
		s = strdup(c->s);
		for (char *p = s; p && *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
	return s;
}

static int table_header(void *usrptr, size_t ncols, const char *const *names)
{
	struct table *t = usrptr;

	for (size_t k = 0; k < N_TABLE_COLUMNS; k++) {
		t->index[k] = -1;
		t->width[k] = strlen(table_columns[k].heading);
		for (size_t i = 0; i < ncols; i++)
			if (strcmp(names[i], table_columns[k].column) == 0)
				t->index[k] = (int)i;
	}
	return 0;
}

static int table_row(void *usrptr, size_t ncols, const char *const *names,
		     const struct db_cell *cells)
{
	struct table *t = usrptr;
	char **nv = realloc(t->cells, (t->rows + 1) * N_TABLE_COLUMNS * sizeof(*nv));

	(void)ncols;
	(void)names;
	if (!nv)
		return -ENOMEM;
	t->cells = nv;
	char **row = &t->cells[t->rows * N_TABLE_COLUMNS];
	memset(row, 0, N_TABLE_COLUMNS * sizeof(*row));
	t->rows++;
	for (size_t k = 0; k < N_TABLE_COLUMNS; k++) {
		static const struct db_cell null_cell = { .type = DB_CELL_NULL };
		const struct db_cell *c = t->index[k] >= 0 ? &cells[t->index[k]] : &null_cell;

		row[k] = cell_text(c, strcmp(table_columns[k].column, "secure") == 0);
		if (!row[k])
			return -ENOMEM;
		if (strlen(row[k]) > t->width[k])
			t->width[k] = strlen(row[k]);
	}
	return 0;
}

static void table_print(const struct table *t, FILE *out)
{
	for (size_t k = 0; k < N_TABLE_COLUMNS; k++)
		fprintf(out, "%-*s%s", k + 1 < N_TABLE_COLUMNS ? (int)t->width[k] : 0,
			table_columns[k].heading, k + 1 < N_TABLE_COLUMNS ? "  " : "\n");
	for (size_t i = 0; i < t->rows; i++)
		for (size_t k = 0; k < N_TABLE_COLUMNS; k++)
			fprintf(out, "%-*s%s", k + 1 < N_TABLE_COLUMNS ? (int)t->width[k] : 0,
				t->cells[i * N_TABLE_COLUMNS + k],
				k + 1 < N_TABLE_COLUMNS ? "  " : "\n");
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->rows * N_TABLE_COLUMNS; i++)
		free(t->cells[i]);
	free(t->cells);
}

static void devices_usage(FILE *f, const char *prog)
{
	fprintf(f, "Usage: %s devices [--json] [--secured-only]\n\n"
		"List the manufacturing records, one row per board, oldest first.\n"
		"  --json           every column, as a JSON array of objects (null = unknown)\n"
		"  --secured-only   only boards recorded with secure = 1\n", prog);
}

int cmd_devices(struct cli *cli, int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_SECURED };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "secured-only", no_argument, NULL, OPT_SECURED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *prog = cli->argv0 ? cli->argv0 : "rpi-sb-provisioner";
	struct db_device_filter flt = { 0 };
	struct table t = { 0 };
	struct db *db = NULL;
	char *dbpath = NULL;
	bool json = false;
	struct stat sb;
	int c, r, ret = EXIT_FAILED;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON: json = true; break;
		case OPT_SECURED: flt.secured_only = true; break;
		case 'h': devices_usage(stdout, prog); return EXIT_OK;
		default: devices_usage(stderr, prog); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s devices: unexpected argument '%s'\n", prog, argv[optind]);
		return EXIT_USAGE;
	}
	r = records_db_path(cli, prog, &dbpath);
	if (r < 0) {
		ret = r == -EINVAL ? EXIT_USAGE : EXIT_FAILED;
		goto out;
	}
	if (stat(dbpath, &sb) < 0 && errno == ENOENT) {
		/* A new station has recorded nothing yet: an empty list, not an error. */
		fprintf(stderr, "%s devices: no manufacturing database at %s yet (no board "
			"recorded; check [paths] database if that is unexpected)\n", prog, dbpath);
		if (json)
			printf("[]\n");
		else
			table_print(&t, stdout);
		ret = EXIT_OK;
		goto out;
	}
	/* Read only: listing works for an operator who may read but not write. */
	r = db_open(dbpath, DB_OPEN_READONLY, &db);
	if (r < 0)
		goto out;
	if (json) {
		r = export_json(db, &flt, stdout, NULL);
	} else {
		r = db_devices_foreach(db, &flt, table_header, table_row, &t);
		if (r == 0)
			table_print(&t, stdout);
	}
	if (r == 0 && fflush(stdout) != 0)
		r = -errno;
	if (r < 0) {
		fprintf(stderr, "%s devices: listing %s failed: %s\n", prog, dbpath, strerror(-r));
		goto out;
	}
	ret = EXIT_OK;
out:
	table_free(&t);
	db_close(db);
	free(dbpath);
	return ret;
}
