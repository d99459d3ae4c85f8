/* db: the manufacturing database — schema, migrations, and every write and
 * read of it. Prepared statements only: values are always bound, never
 * pasted into SQL text (the only generated SQL is built from the constant
 * column table below). One logical write = one transaction, so a crash
 * leaves either all of it or none of it.
 *
 * Threads: a struct db is one SQLite connection, used only by the thread
 * that opened it (SQLITE_OPEN_NOMUTEX). Other threads open their own. */
#include <errno.h>
#include <unistd.h>
#include <pwd.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "core/paths.h"
#include "records/db.h"

#define DB_BUSY_TIMEOUT_MS 5000
#define DB_NOW_MS "strftime('%Y-%m-%d %H:%M:%f','now')"

/* ---- names (one source of truth for each enum's strings) ------------- */

static const char *const result_names[] = {
	[DB_RESULT_RUNNING] = "running",
	[DB_RESULT_OK] = "ok",
	[DB_RESULT_FAILED] = "failed",
	[DB_RESULT_INTERRUPTED] = "interrupted",
	[DB_RESULT_SKIPPED] = "skipped",
};

static const char *const phase_names[] = {
	[DB_PHASE_BOOTSTRAP] = "bootstrap",
	[DB_PHASE_TRIAGE] = "triage",
	[DB_PHASE_PROVISION] = "provision",
	[DB_PHASE_VERIFY] = "verify",
	[DB_PHASE_RECORD] = "record",
};

static const char *const mode_names[] = {
	[DB_MODE_SECURE_BOOT] = "secure-boot",
	[DB_MODE_FDE_ONLY] = "fde-only",
	[DB_MODE_NAKED] = "naked",
};

static const char *const event_state_names[] = {
#define DB_X_NAME(name, str) [DB_EVENT_##name] = str,
	DB_EVENT_STATES(DB_X_NAME)
#undef DB_X_NAME
};

static const char *const origin_names[] = {
	[DB_ORIGIN_TUI] = "tui",
	[DB_ORIGIN_CLI] = "cli",
	[DB_ORIGIN_CONTROL_SOCKET] = "control-socket",
};

#define NAME_OF(table, v) \
	((size_t)(v) < sizeof(table) / sizeof(table[0]) ? table[(size_t)(v)] : NULL)

const char *db_result_name(enum db_result r) { return NAME_OF(result_names, r); }
const char *db_phase_name(enum db_phase p) { return NAME_OF(phase_names, p); }
const char *db_mode_name(enum db_mode m) { return NAME_OF(mode_names, m); }
const char *db_event_state_name(enum db_event_state s) { return NAME_OF(event_state_names, s); }
const char *db_origin_name(enum db_origin o) { return NAME_OF(origin_names, o); }

int db_mode_parse(const char *name, enum db_mode *out)
{
	for (size_t i = 0; name && i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(name, mode_names[i]) == 0) {
			*out = (enum db_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

int db_event_state_parse(const char *name, enum db_event_state *out)
{
	for (size_t i = 0; name && i < DB_EVENT__COUNT; i++) {
		if (strcmp(name, event_state_names[i]) == 0) {
			*out = (enum db_event_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- the devices columns a caller writes ----------------------------- */

enum col_kind { COL_TEXT, COL_INT, COL_FLAG };

struct device_column {
	const char *name;
	enum col_kind kind;
	size_t offset;
};

#define COL(n, k) { #n, k, offsetof(struct db_device_record, n) }
/* In table order after `id`; `attempt_id` (written from the call) follows. */
static const struct device_column device_columns[] = {
	COL(boardname, COL_TEXT),
	COL(serial, COL_TEXT),
	COL(eth_mac, COL_TEXT),
	COL(wifi_mac, COL_TEXT),
	COL(bt_mac, COL_TEXT),
	COL(mmc_size, COL_INT),
	COL(mmc_cid, COL_TEXT),
	COL(rpi_duid, COL_TEXT),
	COL(board_revision, COL_TEXT),
	COL(processor, COL_TEXT),
	COL(memory, COL_TEXT),
	COL(manufacturer, COL_TEXT),
	COL(secure, COL_FLAG),
	COL(jtag_locked, COL_FLAG),
	COL(eeprom_write_protected, COL_FLAG),
	COL(pubkey_programmed, COL_FLAG),
	COL(devkey_revoked, COL_FLAG),
	COL(signed_boot_enabled, COL_FLAG),
	COL(os_image_filename, COL_TEXT),
	COL(os_image_sha256, COL_TEXT),
	COL(connect_registered, COL_FLAG),
	COL(connect_device_id, COL_TEXT),
	COL(eeprom_size, COL_INT),
	COL(eeprom_jedec, COL_TEXT),
	COL(eeprom_unique_id, COL_TEXT),
	COL(bootloader_build_timestamp, COL_INT),
	COL(customer_key_fingerprint, COL_TEXT),
	COL(customer_key_label, COL_TEXT),
	COL(provision_ts, COL_TEXT),
	COL(station_id, COL_TEXT),
	COL(usb_port, COL_TEXT),
};
#undef COL
#define N_DEVICE_COLUMNS (sizeof(device_columns) / sizeof(device_columns[0]))

/* ---- schema: forward migrations, one per version --------------------- */

/* Version 1: the peer's own table, as its postinst creates it. A fresh file
 * goes through it too, so the upgrade path is the path every DB takes. */
static const char schema_v1[] =
	"CREATE TABLE IF NOT EXISTS devices("
	" id integer primary key,"
	" boardname varchar(255) not null,"
	" serial char(8) not null,"
	" eth_mac char(17) not null, wifi_mac char(17) not null, bt_mac char(17) not null,"
	" mmc_size integer not null, mmc_cid char(32) not null, rpi_duid char(32) not null,"
	" board_revision varchar(255) not null, processor varchar(255) not null,"
	" memory varchar(255) not null, manufacturer varchar(255) not null,"
	" secure integer not null default 1,"
	" jtag_locked integer, eeprom_write_protected integer, pubkey_programmed integer,"
	" devkey_revoked integer, signed_boot_enabled integer,"
	" os_image_filename varchar(255), os_image_sha256 char(64),"
	" connect_registered integer, connect_device_id varchar(255),"
	" eeprom_size integer, eeprom_jedec char(6), eeprom_unique_id varchar(32),"
	" bootloader_build_timestamp integer,"
	" customer_key_fingerprint char(64), customer_key_label varchar(255),"
	" provision_ts timestamp default current_timestamp);";

/* Version 2: NULL-able facts (NULL = unknown, never confused with 0), CHECKed
 * flags, station and port, a link to the attempt, and the attempts, events
 * and audit tables. `devices` is rebuilt (SQLite cannot add a CHECK). */
static const char schema_v2_tables[] =
	"CREATE TABLE attempts("
	" id INTEGER PRIMARY KEY,"
	" serial TEXT,"
	" usb_port TEXT,"
	" mode TEXT CHECK (mode IN ('secure-boot','fde-only','naked')),"
	" started_at TEXT NOT NULL DEFAULT (" DB_NOW_MS "),"
	" ended_at TEXT,"
	" phase_reached TEXT CHECK (phase_reached IN"
	"  ('bootstrap','triage','provision','verify','record')),"
	" result TEXT NOT NULL DEFAULT 'running' CHECK (result IN"
	"  ('running','ok','failed','interrupted','skipped')),"
	" error_code INTEGER,"
	" error_message TEXT,"
	" bootstrap_ms INTEGER CHECK (bootstrap_ms >= 0),"
	" triage_ms INTEGER CHECK (triage_ms >= 0),"
	" provision_ms INTEGER CHECK (provision_ms >= 0),"
	" verify_ms INTEGER CHECK (verify_ms >= 0),"
	" image_sha256 TEXT,"
	" key_fingerprint TEXT,"
	" station_id TEXT,"
	" CHECK ((result = 'running') = (ended_at IS NULL)));"
	"CREATE INDEX attempts_serial ON attempts(serial);"
	"CREATE INDEX attempts_running ON attempts(result) WHERE result = 'running';"
	"CREATE TABLE events("
	" id INTEGER PRIMARY KEY,"
	" ts TEXT NOT NULL DEFAULT (" DB_NOW_MS "),"
	" attempt_id INTEGER REFERENCES attempts(id) ON DELETE SET NULL,"
	" serial TEXT,"
	" usb_port TEXT,"
	" state TEXT NOT NULL,"
	" detail TEXT);"
	"CREATE INDEX events_attempt ON events(attempt_id);"
	"CREATE INDEX events_serial ON events(serial);"
	"CREATE TABLE audit("
	" id INTEGER PRIMARY KEY,"
	" ts TEXT NOT NULL DEFAULT (" DB_NOW_MS "),"
	" origin TEXT NOT NULL CHECK (origin IN ('tui','cli','control-socket')),"
	" user TEXT,"
	" action TEXT NOT NULL,"
	" target TEXT,"
	" detail TEXT);"
	"CREATE TABLE devices_v2("
	" id INTEGER PRIMARY KEY,"
	" boardname TEXT NOT NULL,"
	" serial TEXT NOT NULL CHECK (length(serial) > 0),"
	" eth_mac TEXT, wifi_mac TEXT, bt_mac TEXT,"
	" mmc_size INTEGER, mmc_cid TEXT, rpi_duid TEXT,"
	" board_revision TEXT, processor TEXT, memory TEXT, manufacturer TEXT,"
	" secure INTEGER CHECK (secure IN (0,1)),"
	" jtag_locked INTEGER CHECK (jtag_locked IN (0,1)),"
	" eeprom_write_protected INTEGER CHECK (eeprom_write_protected IN (0,1)),"
	" pubkey_programmed INTEGER CHECK (pubkey_programmed IN (0,1)),"
	" devkey_revoked INTEGER CHECK (devkey_revoked IN (0,1)),"
	" signed_boot_enabled INTEGER CHECK (signed_boot_enabled IN (0,1)),"
	" os_image_filename TEXT, os_image_sha256 TEXT,"
	" connect_registered INTEGER CHECK (connect_registered IN (0,1)),"
	" connect_device_id TEXT,"
	" eeprom_size INTEGER, eeprom_jedec TEXT, eeprom_unique_id TEXT,"
	" bootloader_build_timestamp INTEGER,"
	" customer_key_fingerprint TEXT, customer_key_label TEXT,"
	" provision_ts TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,"
	" station_id TEXT,"
	" usb_port TEXT,"
	" attempt_id INTEGER REFERENCES attempts(id) ON DELETE SET NULL);";

static const char schema_v2_finish[] =
	"DROP TABLE devices;"
	"ALTER TABLE devices_v2 RENAME TO devices;"
	"CREATE INDEX devices_serial ON devices(serial);"
	"CREATE INDEX devices_provision_ts ON devices(provision_ts);"
	"CREATE VIEW rpi_sb_provisioner AS SELECT"
	" id, boardname, serial, eth_mac, wifi_mac, bt_mac, mmc_size, mmc_cid, rpi_duid,"
	" board_revision, processor, memory, manufacturer, secure, jtag_locked,"
	" eeprom_write_protected, pubkey_programmed, devkey_revoked, signed_boot_enabled,"
	" os_image_filename, os_image_sha256, connect_registered, connect_device_id,"
	" eeprom_size, eeprom_jedec, eeprom_unique_id, bootloader_build_timestamp,"
	" customer_key_fingerprint, customer_key_label, provision_ts"
	" FROM devices;";

/* The flag columns as version 2 defines them (frozen with that version). */
static const char *const schema_v2_flags[] = {
	"secure", "jtag_locked", "eeprom_write_protected", "pubkey_programmed",
	"devkey_revoked", "signed_boot_enabled", "connect_registered",
};

struct db {
	sqlite3 *h;
	char *path;
	db_log_fn log;
	void *log_usrptr;
	char *last_error;
	char *sql_device_insert;
	char *sql_device_update;
};

static int migrate_to_v2(struct db *db);

struct migration {
	int to;
	const char *what;
	const char *sql;               /* run as is, or ... */
	int (*fn)(struct db *db);      /* ... this for steps that look at the data */
};

static const struct migration migrations[] = {
	{ 1, "creating the devices table", schema_v1, NULL },
	{ 2, "adding attempts, events and audit, and NULL-able flags", NULL, migrate_to_v2 },
};
#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

/* ---- errors ---------------------------------------------------------- */

static void db_log_stderr(void *usrptr, const char *message)
{
	(void)usrptr;
	fprintf(stderr, "%s\n", message);
}

void db_set_log(struct db *db, db_log_fn fn, void *usrptr)
{
	db->log = fn ? fn : db_log_stderr;
	db->log_usrptr = usrptr;
}

const char *db_last_error(const struct db *db)
{
	return db->last_error ? db->last_error : "";
}

const char *db_path(const struct db *db)
{
	return db->path;
}

static int errno_of_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE: return -EINVAL;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH: return -EACCES;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_CANTOPEN: return -ENOENT;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT: return -EILSEQ;
	default: return -EIO;
	}
}

__attribute__((format(printf, 3, 4)))
static int db_err(struct db *db, int err, const char *fmt, ...)
{
	char *what = NULL, *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0)
		what = NULL;
	va_end(ap);
	if (asprintf(&msg, "manufacturing database %s: %s", db->path,
		     what ? what : "(out of memory)") < 0)
		msg = NULL;
	free(what);
	free(db->last_error);
	db->last_error = msg;
	db->log(db->log_usrptr, msg ? msg : "manufacturing database: out of memory");
	return err;
}

/* What an operator can do about a SQLite error class. */
static const char *sqlite_hint(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return "; another program held the database for over 5 s: retry, or stop it";
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
		return "; check the permissions of the file and its directory";
	case SQLITE_FULL:
		return "; free space on that file system";
	case SQLITE_NOTADB:
		return "; is [paths] database pointing at the right file?";
	case SQLITE_CORRUPT:
		return "; keep a copy of the file and check it with sqlite3's .recover";
	default:
		return "";
	}
}

/* Log a failing SQLite call: what we were doing, then SQLite's own words. */
static int db_sqlite_err(struct db *db, int rc, const char *what)
{
	return db_err(db, errno_of_sqlite(rc), "%s failed: %s (SQLite code %d)%s", what,
		      sqlite3_errmsg(db->h), sqlite3_extended_errcode(db->h), sqlite_hint(rc));
}

/* ---- small helpers --------------------------------------------------- */

static int db_exec(struct db *db, const char *sql, const char *what)
{
	char *emsg = NULL;
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, &emsg);

	if (rc != SQLITE_OK) {
		int r = db_err(db, errno_of_sqlite(rc), "%s failed: %s (SQLite code %d)%s", what,
			       emsg ? emsg : sqlite3_errstr(rc), rc, sqlite_hint(rc));
		sqlite3_free(emsg);
		return r;
	}
	return 0;
}

static int db_prepare(struct db *db, const char *sql, sqlite3_stmt **st, const char *what)
{
	int rc = sqlite3_prepare_v2(db->h, sql, -1, st, NULL);

	if (rc != SQLITE_OK) {
		*st = NULL;
		return db_sqlite_err(db, rc, what);
	}
	return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* Run a statement that returns no rows; *changes (may be NULL) gets the count. */
static int db_step_done(struct db *db, sqlite3_stmt *st, const char *what, int *changes)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return db_sqlite_err(db, rc, what);
	if (changes)
		*changes = sqlite3_changes(db->h);
	return 0;
}

static int tx_begin(struct db *db)
{
	/* IMMEDIATE: take the write lock now, so busy_timeout applies up front
	 * instead of failing half-way when a read lock cannot be upgraded. */
	return db_exec(db, "BEGIN IMMEDIATE", "starting a transaction");
}

static int tx_end(struct db *db, int r)
{
	if (r == 0)
		return db_exec(db, "COMMIT", "committing");
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int db_schema_version(struct db *db, int *version)
{
	sqlite3_stmt *st = NULL;
	int r = db_prepare(db, "PRAGMA user_version", &st, "reading the schema version");

	if (r < 0)
		return r;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	else
		r = db_sqlite_err(db, rc, "reading the schema version");
	sqlite3_finalize(st);
	return r;
}

/* ---- migrations ------------------------------------------------------ */

/* Columns of @table, in order, as a NULL-terminated malloc'd vector. */
static int table_columns(struct db *db, const char *table, char ***out, size_t *n)
{
	sqlite3_stmt *st = NULL;
	char **v = NULL;
	size_t len = 0;
	int r, rc;

	r = db_prepare(db, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", &st,
		       "listing table columns");
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **nv = realloc(v, (len + 2) * sizeof(*v));

		if (!nv) {
			r = -ENOMEM;
			goto out;
		}
		v = nv;
		v[len] = strdup((const char *)sqlite3_column_text(st, 0));
		if (!v[len]) {
			r = -ENOMEM;
			goto out;
		}
		v[++len] = NULL;
	}
	if (rc != SQLITE_DONE)
		r = db_sqlite_err(db, rc, "listing table columns");
out:
	sqlite3_finalize(st);
	if (r < 0) {
		for (size_t i = 0; i < len; i++)
			free(v[i]);
		free(v);
		return r;
	}
	*out = v;
	*n = len;
	return 0;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static bool strv_has(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Copy every column the old and the new devices table share; flags that are
 * not 0/1 (a hand-edited peer DB) become NULL = unknown rather than stop the
 * upgrade. Column names come from the two schemas, never from values. */
static int migrate_to_v2(struct db *db)
{
	char **old_cols = NULL, **new_cols = NULL;
	size_t n_old = 0, n_new = 0;
	char *sql = NULL;
	size_t sql_len = 0;
	FILE *f = NULL;
	int r;

	r = db_exec(db, schema_v2_tables, "creating the version 2 tables");
	if (r < 0)
		goto out;
	r = table_columns(db, "devices", &old_cols, &n_old);
	if (r < 0)
		goto out;
	r = table_columns(db, "devices_v2", &new_cols, &n_new);
	if (r < 0)
		goto out;
	f = open_memstream(&sql, &sql_len);
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	fputs("INSERT INTO devices_v2(", f);
	bool first = true;
	for (size_t i = 0; i < n_new; i++) {
		if (!strv_has(old_cols, new_cols[i]))
			continue;
		fprintf(f, "%s\"%s\"", first ? "" : ",", new_cols[i]);
		first = false;
	}
	fputs(") SELECT ", f);
	first = true;
	for (size_t i = 0; i < n_new; i++) {
		const char *c = new_cols[i];
		bool flag = false;

		if (!strv_has(old_cols, c))
			continue;
		for (size_t k = 0; k < sizeof(schema_v2_flags) / sizeof(schema_v2_flags[0]); k++)
			flag |= strcmp(c, schema_v2_flags[k]) == 0;
		fputs(first ? "" : ",", f);
		first = false;
		if (flag)
			fprintf(f, "CASE WHEN \"%s\" IN (0,1) THEN \"%s\" END", c, c);
		else if (strcmp(c, "provision_ts") == 0)
			fputs("COALESCE(provision_ts, CURRENT_TIMESTAMP)", f);
		else
			fprintf(f, "\"%s\"", c);
	}
	fputs(" FROM devices ORDER BY id", f);
	if (fclose(f) != 0) {
		f = NULL;
		r = -ENOMEM;
		goto out;
	}
	f = NULL;
	if (first) {
		r = db_err(db, -EPROTO, "the existing devices table shares no column with ours; "
			   "move the file aside and start a new database");
		goto out;
	}
	r = db_exec(db, sql, "copying the existing devices rows");
	if (r < 0)
		goto out;
	r = db_exec(db, schema_v2_finish, "replacing the devices table");
out:
	if (f)
		fclose(f);
	free(sql);
	strv_free(old_cols);
	strv_free(new_cols);
	return r;
}

static int db_migrate(struct db *db, int target)
{
	int version, r;

	for (;;) {
		r = tx_begin(db);
		if (r < 0)
			return r;
		/* Read inside the write transaction: another thread or process
		 * may have migrated while we waited for the lock. */
		r = db_schema_version(db, &version);
		if (r < 0)
			return tx_end(db, r);
		if (version > DB_SCHEMA_VERSION) {
			r = db_err(db, -EPROTO, "its schema version %d is newer than this "
				   "rpi-sb-provisioner understands (%d); upgrade the station "
				   "software or use a new database file", version,
				   DB_SCHEMA_VERSION);
			return tx_end(db, r);
		}
		if (version >= target)
			return tx_end(db, 0);

		const struct migration *m = NULL;
		for (size_t i = 0; i < N_MIGRATIONS; i++)
			if (migrations[i].to == version + 1)
				m = &migrations[i];
		if (!m) {
			r = db_err(db, -EPROTO, "no upgrade step from schema version %d", version);
			return tx_end(db, r);
		}
		r = m->sql ? db_exec(db, m->sql, m->what) : m->fn(db);
		if (r == 0) {
			char pragma[40];

			snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", m->to);
			r = db_exec(db, pragma, "setting the schema version");
		}
		if (r < 0)
			db_err(db, r, "upgrade to schema version %d (%s) was rolled back; the "
			       "file is unchanged", m->to, m->what);
		r = tx_end(db, r);
		if (r < 0)
			return r;
	}
}

/* ---- open / close ---------------------------------------------------- */

/* The value for parameter @k of column @c: the bound value, except that an
 * absent provision_ts means "now". */
static void put_device_value(FILE *f, const struct device_column *c, int k)
{
	if (strcmp(c->name, "provision_ts") == 0)
		fprintf(f, "COALESCE(?%d, CURRENT_TIMESTAMP)", k);
	else
		fprintf(f, "?%d", k);
}

/* INSERT or UPDATE of one devices row from device_columns[] (names are
 * constants of this file); parameters ?1..?N in table order, then
 * attempt_id, then (UPDATE) the row id. */
static char *build_device_sql(bool update)
{
	char *sql = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sql, &len);
	int k = (int)N_DEVICE_COLUMNS + 1;

	if (!f)
		return NULL;
	if (update) {
		fputs("UPDATE devices SET ", f);
		for (size_t i = 0; i < N_DEVICE_COLUMNS; i++) {
			fprintf(f, "%s=", device_columns[i].name);
			put_device_value(f, &device_columns[i], (int)i + 1);
			fputs(",", f);
		}
		fprintf(f, "attempt_id=?%d WHERE id=?%d", k, k + 1);
	} else {
		fputs("INSERT INTO devices(", f);
		for (size_t i = 0; i < N_DEVICE_COLUMNS; i++)
			fprintf(f, "%s,", device_columns[i].name);
		fputs("attempt_id) VALUES(", f);
		for (size_t i = 0; i < N_DEVICE_COLUMNS; i++) {
			put_device_value(f, &device_columns[i], (int)i + 1);
			fputs(",", f);
		}
		fprintf(f, "?%d)", k);
	}
	if (fclose(f) != 0) {
		free(sql);
		return NULL;
	}
	return sql;
}

static int db_open_full(const char *path, unsigned flags, int version, db_log_fn fn,
			void *usrptr, struct db **out)
{
	struct db *db = NULL;
	struct stat sb;
	int r = 0, rc;
	bool ro = flags & DB_OPEN_READONLY;
	int oflags = (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;

	*out = NULL;
	if (!path || !*path || version < 0 || version > DB_SCHEMA_VERSION)
		return -EINVAL;
	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db_set_log(db, fn, usrptr);
	db->path = strdup(path);
	db->sql_device_insert = build_device_sql(false);
	db->sql_device_update = build_device_sql(true);
	if (!db->path || !db->sql_device_insert || !db->sql_device_update) {
		r = -ENOMEM;
		goto out;
	}
	if (stat(path, &sb) < 0) {
		int e = errno;

		if (e != ENOENT || !(flags & DB_OPEN_CREATE) || ro) {
			r = db_err(db, -e, "cannot open it: %s%s", strerror(e),
				   e == ENOENT ? " (no board recorded yet, or check "
				   "[paths] database in the configuration)" : "");
			goto out;
		}
		char *dir = strdup(path);
		if (!dir) {
			r = -ENOMEM;
			goto out;
		}
		r = mkdir_p(dirname(dir), 0755);
		free(dir);
		if (r < 0) {
			r = db_err(db, r, "cannot create its directory: %s", strerror(-r));
			goto out;
		}
		oflags |= SQLITE_OPEN_CREATE;
	}
	rc = sqlite3_open_v2(path, &db->h, oflags, NULL);
	if (rc != SQLITE_OK) {
		r = db->h ? db_sqlite_err(db, rc, "opening")
			  : db_err(db, -ENOMEM, "opening failed: out of memory");
		goto out;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS);
	r = db_exec(db, "PRAGMA foreign_keys = ON", "enabling foreign keys");
	if (r < 0)
		goto out;
	if (ro) {
		int v = 0;

		r = db_schema_version(db, &v);
		if (r == 0 && v != version)
			r = db_err(db, -EPROTO, "its schema version is %d, this program reads %d; "
				   "%s", v, version, v > version ? "upgrade the station software" :
				   "open it once with write access (e.g. start the station) to "
				   "upgrade it");
		goto out;
	}
	/* WAL: readers (sqlite3, export, the TUI) never block the station's
	 * writes; FULL sync: a recorded board survives a power cut. */
	r = db_exec(db, "PRAGMA journal_mode = WAL", "switching to WAL");
	if (r < 0)
		goto out;
	r = db_exec(db, "PRAGMA synchronous = FULL", "setting synchronous mode");
	if (r < 0)
		goto out;
	r = db_migrate(db, version);
out:
	if (r < 0) {
		db_close(db);
		return r;
	}
	*out = db;
	return 0;
}

int db_open_at_version(const char *path, unsigned flags, int version, struct db **out)
{
	return db_open_full(path, flags, version, NULL, NULL, out);
}

int db_open_log(const char *path, unsigned flags, db_log_fn fn, void *usrptr, struct db **out)
{
	return db_open_full(path, flags, DB_SCHEMA_VERSION, fn, usrptr, out);
}

int db_open(const char *path, unsigned flags, struct db **out)
{
	return db_open_full(path, flags, DB_SCHEMA_VERSION, NULL, NULL, out);
}

void db_close(struct db *db)
{
	if (!db)
		return;
	if (db->h)
		sqlite3_close_v2(db->h);
	free(db->path);
	free(db->last_error);
	free(db->sql_device_insert);
	free(db->sql_device_update);
	free(db);
}

/* ---- attempts -------------------------------------------------------- */

int db_attempt_begin(struct db *db, const struct db_attempt_start *a, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	const char *mode = db_mode_name(a->mode);
	int r;

	if (!mode)
		return db_err(db, -EINVAL, "starting an attempt: unknown mode %d", (int)a->mode);
	r = db_prepare(db, "INSERT INTO attempts(serial, usb_port, mode, image_sha256,"
		       " key_fingerprint, station_id, result) VALUES(?1,?2,?3,?4,?5,?6,'running')",
		       &st, "starting an attempt");
	if (r < 0)
		return r;
	bind_text(st, 1, a->serial);
	bind_text(st, 2, a->usb_port);
	bind_text(st, 3, mode);
	bind_text(st, 4, a->image_sha256);
	bind_text(st, 5, a->key_fingerprint);
	bind_text(st, 6, a->station_id);
	/* A single INSERT is its own transaction. */
	r = db_step_done(db, st, "starting an attempt", NULL);
	if (r == 0)
		*id = sqlite3_last_insert_rowid(db->h);
	sqlite3_finalize(st);
	return r;
}

/* Run one UPDATE on a running attempt; -ENOENT when no running row matched. */
static int attempt_update(struct db *db, sqlite3_stmt *st, int64_t id, const char *what)
{
	int changes = 0;
	int r = db_step_done(db, st, what, &changes);

	if (r == 0 && changes == 0)
		r = db_err(db, -ENOENT, "%s: attempt %lld is not running (finished, or unknown)",
			   what, (long long)id);
	return r;
}

int db_attempt_update_serial(struct db *db, int64_t id, const char *serial)
{
	sqlite3_stmt *st = NULL;
	int r = db_prepare(db, "UPDATE attempts SET serial=?2 WHERE id=?1 AND result='running'",
			   &st, "setting an attempt's serial");

	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, serial);
	r = attempt_update(db, st, id, "setting an attempt's serial");
	sqlite3_finalize(st);
	return r;
}

int db_attempt_update_info(struct db *db, int64_t id, const char *mode, const char *image_sha256,
			   const char *key_fingerprint)
{
	sqlite3_stmt *st = NULL;
	enum db_mode m;
	int r;

	if (mode && db_mode_parse(mode, &m) < 0)
		return -EINVAL;
	r = db_prepare(db, "UPDATE attempts SET mode=COALESCE(?2, mode),"
		       " image_sha256=COALESCE(?3, image_sha256),"
		       " key_fingerprint=COALESCE(?4, key_fingerprint)"
		       " WHERE id=?1 AND result='running'", &st, "setting an attempt's mode, image and key");
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, mode ? db_mode_name(m) : NULL);
	bind_text(st, 3, image_sha256 && *image_sha256 ? image_sha256 : NULL);
	bind_text(st, 4, key_fingerprint && *key_fingerprint ? key_fingerprint : NULL);
	r = attempt_update(db, st, id, "setting an attempt's mode, image and key");
	sqlite3_finalize(st);
	return r;
}

/* One statement per phase: the column name is part of the constant SQL. */
static const char *const phase_sql[] = {
	[DB_PHASE_BOOTSTRAP] = "UPDATE attempts SET phase_reached=?3,"
		" bootstrap_ms=COALESCE(?2, bootstrap_ms) WHERE id=?1 AND result='running'",
	[DB_PHASE_TRIAGE] = "UPDATE attempts SET phase_reached=?3,"
		" triage_ms=COALESCE(?2, triage_ms) WHERE id=?1 AND result='running'",
	[DB_PHASE_PROVISION] = "UPDATE attempts SET phase_reached=?3,"
		" provision_ms=COALESCE(?2, provision_ms) WHERE id=?1 AND result='running'",
	[DB_PHASE_VERIFY] = "UPDATE attempts SET phase_reached=?3,"
		" verify_ms=COALESCE(?2, verify_ms) WHERE id=?1 AND result='running'",
	/* No duration column: ?2 is bound but unused. */
	[DB_PHASE_RECORD] = "UPDATE attempts SET phase_reached=?3 WHERE id=?1 AND result='running'",
};

int db_attempt_phase(struct db *db, int64_t id, enum db_phase phase, int64_t duration_ms)
{
	sqlite3_stmt *st = NULL;
	const char *name = db_phase_name(phase);
	int r;

	if (!name)
		return db_err(db, -EINVAL, "attempt %lld: unknown phase %d", (long long)id,
			      (int)phase);
	r = db_prepare(db, phase_sql[phase], &st, "recording a phase");
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	if (duration_ms >= 0)
		sqlite3_bind_int64(st, 2, duration_ms);
	else
		sqlite3_bind_null(st, 2);
	bind_text(st, 3, name);
	r = attempt_update(db, st, id, "recording a phase");
	sqlite3_finalize(st);
	return r;
}

int db_attempt_finish(struct db *db, int64_t id, enum db_result result, int error_code,
		      const char *error_message)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (result != DB_RESULT_FAILED && result != DB_RESULT_INTERRUPTED &&
	    result != DB_RESULT_SKIPPED)
		return db_err(db, -EINVAL, "attempt %lld: cannot finish as '%s' here (a success "
			      "is written with the board's record)", (long long)id,
			      db_result_name(result) ? db_result_name(result) : "?");
	r = db_prepare(db, "UPDATE attempts SET result=?2, error_code=?3, error_message=?4,"
		       " ended_at=" DB_NOW_MS " WHERE id=?1 AND result='running'",
		       &st, "finishing an attempt");
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, db_result_name(result));
	if (error_code)
		sqlite3_bind_int(st, 3, error_code);
	else
		sqlite3_bind_null(st, 3);
	bind_text(st, 4, error_message);
	r = attempt_update(db, st, id, "finishing an attempt");
	sqlite3_finalize(st);
	return r;
}

/* A running attempt whose board was told to program its OTP and did not
 * report back: the one state software cannot undo. */
#define OTP_UNFINISHED(a) \
	"EXISTS (SELECT 1 FROM events s WHERE s.attempt_id = " a " AND s.state = 'otp-write-started')" \
	" AND NOT EXISTS (SELECT 1 FROM events f WHERE f.attempt_id = " a \
	" AND f.state = 'otp-write-finished')"
#define OTP_INTERRUPTED_MESSAGE \
	DB_OTP_INTERRUPTED_PREFIX ": the station stopped after sending this board the recovery" \
	" that programs the customer key hash into its OTP and before the board reported the" \
	" outcome. Its OTP may hold that key hash fully, partly or not at all; software cannot" \
	" undo an OTP write. Reconnect it: if it boots the recovery again it is provisioned as" \
	" usual; if it stays in the boot ROM it holds the hash: set `flags set SERIAL" \
	" reprovision` and reconnect it (a Pi 5 fused with a partial hash runs no signed code" \
	" and cannot be used)"

/* Say, for each such attempt, what state its board is in. */
static void log_otp_interrupted(struct db *db)
{
	sqlite3_stmt *st = NULL;

	if (db_prepare(db, "SELECT a.id, COALESCE(a.serial, (SELECT serial FROM events e WHERE"
		       " e.attempt_id = a.id AND e.serial IS NOT NULL ORDER BY e.id DESC LIMIT 1),"
		       " 'serial not yet known'), COALESCE(a.usb_port, '?'),"
		       " (SELECT ts || ' (' || COALESCE(detail, '') || ')' FROM events s"
		       " WHERE s.attempt_id = a.id AND s.state = 'otp-write-started')"
		       " FROM attempts a WHERE a.result = 'running' AND " OTP_UNFINISHED("a.id"),
		       &st, "listing interrupted OTP writes") < 0)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		char *msg = NULL;

		if (asprintf(&msg, "manufacturing database %s: board %s on port %s, attempt %lld: "
			     "%s (otp-write-started at %s)", db->path,
			     (const char *)sqlite3_column_text(st, 1),
			     (const char *)sqlite3_column_text(st, 2),
			     (long long)sqlite3_column_int64(st, 0), OTP_INTERRUPTED_MESSAGE,
			     (const char *)sqlite3_column_text(st, 3)) >= 0) {
			db->log(db->log_usrptr, msg);
			free(msg);
		}
	}
	sqlite3_finalize(st);
}

int db_mark_interrupted(struct db *db, int *count)
{
	sqlite3_stmt *st = NULL;
	int changes = 0;
	int r;

	log_otp_interrupted(db);
	r = db_prepare(db, "UPDATE attempts SET result='interrupted', ended_at=" DB_NOW_MS ","
		       " error_message=COALESCE(error_message, CASE WHEN " OTP_UNFINISHED("attempts.id")
		       " THEN '" OTP_INTERRUPTED_MESSAGE "' ELSE 'the station stopped while"
		       " this attempt was running; reconnect the board to retry' END)"
		       " WHERE result='running'", &st, "marking interrupted attempts");
	if (r < 0)
		return r;
	r = db_step_done(db, st, "marking interrupted attempts", &changes);
	sqlite3_finalize(st);
	if (r == 0 && count)
		*count = changes;
	return r;
}

/* ---- devices --------------------------------------------------------- */

static void bind_device(sqlite3_stmt *st, const struct db_device_record *rec)
{
	const char *base = (const char *)rec;

	for (size_t i = 0; i < N_DEVICE_COLUMNS; i++) {
		const struct device_column *c = &device_columns[i];
		const void *p = base + c->offset;
		int k = (int)i + 1;

		switch (c->kind) {
		case COL_TEXT:
			bind_text(st, k, *(const char *const *)p);
			break;
		case COL_INT: {
			const struct db_int *v = p;

			if (v->known)
				sqlite3_bind_int64(st, k, v->value);
			else
				sqlite3_bind_null(st, k);
			break;
		}
		case COL_FLAG: {
			enum db_flag v = *(const enum db_flag *)p;

			if (v == DB_FLAG_NO || v == DB_FLAG_YES)
				sqlite3_bind_int(st, k, (int)v);
			else
				sqlite3_bind_null(st, k);
			break;
		}
		}
	}
}

static bool flag_valid(enum db_flag f)
{
	return f == DB_FLAG_NULL || f == DB_FLAG_NO || f == DB_FLAG_YES;
}

int db_device_record(struct db *db, int64_t attempt_id, const struct db_device_record *rec)
{
	sqlite3_stmt *st = NULL;
	int64_t row = 0;
	int r, rc;

	if (!rec->serial || !*rec->serial || !rec->boardname)
		return db_err(db, -EINVAL, "recording a board: its %s is missing (triage must "
			      "read it first)", !rec->serial || !*rec->serial ? "serial" :
			      "board name");
	if (!flag_valid(rec->secure) || !flag_valid(rec->jtag_locked) ||
	    !flag_valid(rec->eeprom_write_protected) || !flag_valid(rec->pubkey_programmed) ||
	    !flag_valid(rec->devkey_revoked) || !flag_valid(rec->signed_boot_enabled) ||
	    !flag_valid(rec->connect_registered))
		return db_err(db, -EINVAL, "recording board %s: a security flag is neither "
			      "unknown, 0 nor 1", rec->serial);

	r = tx_begin(db);
	if (r < 0)
		return r;
	if (attempt_id > 0) {
		r = db_prepare(db, "UPDATE attempts SET result='ok', serial=?2,"
			       " phase_reached='record', ended_at=" DB_NOW_MS
			       " WHERE id=?1 AND result='running'", &st, "closing the attempt");
		if (r < 0)
			goto out;
		sqlite3_bind_int64(st, 1, attempt_id);
		bind_text(st, 2, rec->serial);
		r = attempt_update(db, st, attempt_id, "closing the attempt");
		sqlite3_finalize(st);
		st = NULL;
		if (r < 0)
			goto out;
	}

	/* Reprovision: the board keeps one row (its newest, if an imported
	 * peer DB holds several); the history is in `attempts`. */
	r = db_prepare(db, "SELECT id FROM devices WHERE serial=?1 ORDER BY id DESC LIMIT 1",
		       &st, "looking up the board");
	if (r < 0)
		goto out;
	bind_text(st, 1, rec->serial);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		row = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		r = db_sqlite_err(db, rc, "looking up the board");
	sqlite3_finalize(st);
	st = NULL;
	if (r < 0)
		goto out;

	r = db_prepare(db, row ? db->sql_device_update : db->sql_device_insert, &st,
		       "writing the board's row");
	if (r < 0)
		goto out;
	bind_device(st, rec);
	if (attempt_id > 0)
		sqlite3_bind_int64(st, (int)N_DEVICE_COLUMNS + 1, attempt_id);
	else
		sqlite3_bind_null(st, (int)N_DEVICE_COLUMNS + 1);
	if (row)
		sqlite3_bind_int64(st, (int)N_DEVICE_COLUMNS + 2, row);
	r = db_step_done(db, st, "writing the board's row", NULL);
	if (r < 0)
		db_err(db, r, "board %s was not recorded; the attempt stays open", rec->serial);
out:
	sqlite3_finalize(st);
	return tx_end(db, r);
}

int db_device_secured_with(struct db *db, const char *serial, const char *fingerprint, bool *out)
{
	sqlite3_stmt *st = NULL;
	size_t sl = serial ? strlen(serial) : 0;
	int r, rc;

	*out = false;
	if ((sl != 8 && sl != 16) || !fingerprint || !*fingerprint)
		return db_err(db, -EINVAL, "looking up a secured board: need an 8- or 16-hex serial "
			      "and a key fingerprint");
#define SERIAL_IS(col) "(lower(" col ") = lower(?1) OR (length(?1) = 8 AND length(" col ") = 16" \
		       " AND lower(substr(" col ", 9, 8)) = lower(?1)))"
	r = db_prepare(db, "SELECT (SELECT count(*) FROM devices WHERE pubkey_programmed = 1"
		       " AND lower(customer_key_fingerprint) = lower(?2) AND " SERIAL_IS("serial") ")"
		       " + (SELECT count(*) FROM events WHERE state = 'otp-write-finished'"
		       " AND detail = printf('" DB_OTP_PROGRAMMED_DETAIL "', lower(?2))"
		       " AND (" SERIAL_IS("serial") " OR (length(?1) = 16 AND length(serial) = 8"
		       " AND lower(substr(?1, 9, 8)) = lower(serial))))",
		       &st, "looking up a secured board");
#undef SERIAL_IS
	if (r < 0)
		return r;
	bind_text(st, 1, serial);
	bind_text(st, 2, fingerprint);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0) > 0;
	else
		r = db_sqlite_err(db, rc, "looking up a secured board");
	sqlite3_finalize(st);
	return r;
}

/* ---- events and audit ------------------------------------------------ */

int db_event(struct db *db, int64_t attempt_id, const char *serial, const char *usb_port,
	     enum db_event_state state, const char *detail)
{
	sqlite3_stmt *st = NULL;
	const char *name = db_event_state_name(state);
	int r;

	if (!name)
		return db_err(db, -EINVAL, "recording an event: unknown state %d", (int)state);
	r = db_prepare(db, "INSERT INTO events(attempt_id, serial, usb_port, state, detail)"
		       " VALUES(?1,?2,?3,?4,?5)", &st, "recording an event");
	if (r < 0)
		return r;
	if (attempt_id > 0)
		sqlite3_bind_int64(st, 1, attempt_id);
	else
		sqlite3_bind_null(st, 1);
	bind_text(st, 2, serial);
	bind_text(st, 3, usb_port);
	bind_text(st, 4, name);
	bind_text(st, 5, detail);
	r = db_step_done(db, st, "recording an event", NULL);
	sqlite3_finalize(st);
	return r;
}

int db_audit(struct db *db, enum db_origin origin, const char *user, const char *action,
	     const char *target, const char *detail)
{
	sqlite3_stmt *st = NULL;
	const char *name = db_origin_name(origin);
	int r;

	if (!name || !action || !*action)
		return db_err(db, -EINVAL, "recording an operator action: %s",
			      name ? "the action is missing" : "unknown origin");
	r = db_prepare(db, "INSERT INTO audit(origin, user, action, target, detail)"
		       " VALUES(?1,?2,?3,?4,?5)", &st, "recording an operator action");
	if (r < 0)
		return r;
	bind_text(st, 1, name);
	bind_text(st, 2, user);
	bind_text(st, 3, action);
	bind_text(st, 4, target);
	bind_text(st, 5, detail);
	r = db_step_done(db, st, "recording an operator action", NULL);
	sqlite3_finalize(st);
	return r;
}

/* ---- reading --------------------------------------------------------- */

int db_devices_foreach(struct db *db, const struct db_device_filter *f, db_header_fn header,
		       db_row_fn row, void *usrptr)
{
	sqlite3_stmt *st = NULL;
	const char **names = NULL;
	struct db_cell *cells = NULL;
	size_t n;
	int r, rc;

	/* A read transaction: one consistent snapshot, even while the station writes. */
	r = db_exec(db, "BEGIN", "starting a read");
	if (r < 0)
		return r;
	r = db_prepare(db, "SELECT * FROM devices WHERE (?1 = 0 OR secure = 1)"
		       " AND (?2 IS NULL OR provision_ts >= ?2) ORDER BY provision_ts, id",
		       &st, "reading the devices");
	if (r < 0)
		goto out;
	sqlite3_bind_int(st, 1, f && f->secured_only);
	bind_text(st, 2, f ? f->since : NULL);
	n = (size_t)sqlite3_column_count(st);
	names = calloc(n ? n : 1, sizeof(*names));
	cells = calloc(n ? n : 1, sizeof(*cells));
	if (!names || !cells) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		names[i] = sqlite3_column_name(st, (int)i);
	if (header) {
		r = header(usrptr, n, names);
		if (r != 0)
			goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (size_t i = 0; i < n; i++) {
			struct db_cell *c = &cells[i];

			memset(c, 0, sizeof(*c));
			switch (sqlite3_column_type(st, (int)i)) {
			case SQLITE_NULL:
				c->type = DB_CELL_NULL;
				break;
			case SQLITE_INTEGER:
				c->type = DB_CELL_INT;
				c->i = sqlite3_column_int64(st, (int)i);
				break;
			default: /* text; a float or blob is shown as its text */
				c->type = DB_CELL_TEXT;
				c->s = (const char *)sqlite3_column_text(st, (int)i);
				if (!c->s)
					c->type = DB_CELL_NULL;
				break;
			}
		}
		r = row ? row(usrptr, n, names, cells) : 0;
		if (r != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = db_sqlite_err(db, rc, "reading the devices");
out:
	free(names);
	free(cells);
	sqlite3_finalize(st);
	sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
	return r;
}

/* "alice", or "root (sudo from alice)": who ran the command, for the audit. */
char *db_operator_name(void)
{
	const struct passwd *pw = getpwuid(geteuid());
	const char *sudo = getenv("SUDO_USER");
	char *s = NULL;

	if (sudo && *sudo && (!pw || strcmp(sudo, pw->pw_name) != 0)) {
		if (asprintf(&s, "%s (sudo from %s)", pw ? pw->pw_name : "?", sudo) < 0)
			s = NULL;
	} else if (pw) {
		s = strdup(pw->pw_name);
	} else if (asprintf(&s, "uid %u", (unsigned)geteuid()) < 0) {
		s = NULL;
	}
	return s;
}

int db_audit_file(const char *path, enum db_origin origin, const char *action,
		  const char *target, const char *detail)
{
	struct db *db = NULL;
	char *user;
	int r;

	if (!path || !*path)
		return -ENOENT;
	r = db_open(path, DB_OPEN_CREATE, &db);
	if (r == 0) {
		user = db_operator_name();
		r = db_audit(db, origin, user ? user : "unknown", action, target, detail);
		free(user);
	}
	db_close(db);
	return r;
}
