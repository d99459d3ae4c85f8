/* db: the manufacturing database (SQLite, WAL).
 *
 * Four tables: `devices` (one manufacturing row per board, the peer's columns,
 * with a view `rpi_sb_provisioner` so the peer's documented queries work),
 * `attempts` (every try, failed ones included), `events` (state transitions,
 * the peer's state strings) and `audit` (operator actions). doc/records.md
 * describes them for operators.
 *
 * Threads: a `struct db` is one SQLite connection and belongs to the thread
 * that opened it. Each thread that writes records opens its own `struct db`
 * on the same file; WAL and a busy timeout let them share it (and let
 * `sqlite3` or an export read while the station writes).
 *
 * Errors: every function returns 0 or a negative errno; the SQLite message,
 * with what was being done and to which file, goes to the log callback
 * (stderr unless db_set_log() says otherwise) and stays readable through
 * db_last_error() until the next failing call. */
#ifndef RPI_SB_RECORDS_DB_H
#define RPI_SB_RECORDS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db; /* opaque: one connection, one thread */

/* The schema version this build writes (PRAGMA user_version). Version 1 is
 * the peer's own `devices` table, so a peer manufacturing.db migrates too. */
#define DB_SCHEMA_VERSION 2

enum db_open_flags {
	DB_OPEN_CREATE = 1 << 0,   /* create the file (and its directory) if missing */
	DB_OPEN_READONLY = 1 << 1, /* read only (listing): never migrates, never writes;
				    * a file that needs an upgrade gives -EPROTO */
};

typedef void (*db_log_fn)(void *usrptr, const char *message);

/* Open (and create/migrate) the database at @path. 0 and *out, or -errno:
 * -ENOENT when the file is missing and DB_OPEN_CREATE is not given,
 * -EPROTO when the file's schema is newer than this build understands. */
int db_open(const char *path, unsigned flags, struct db **out);
/* The same, with errors (from the open itself on) going to @fn, not stderr. */
int db_open_log(const char *path, unsigned flags, db_log_fn fn, void *usrptr, struct db **out);
/* The same, but stop migrating at schema version @version (tests and tools). */
int db_open_at_version(const char *path, unsigned flags, int version, struct db **out);
void db_close(struct db *db);
void db_set_log(struct db *db, db_log_fn fn, void *usrptr);
const char *db_last_error(const struct db *db);
const char *db_path(const struct db *db);
/* PRAGMA user_version of the open file. */
int db_schema_version(struct db *db, int *version);

/* NULL-able integers: "not applied or unknown" is distinct from 0. */
enum db_flag { DB_FLAG_NULL = -1, DB_FLAG_NO = 0, DB_FLAG_YES = 1 };
struct db_int {
	bool known;
	int64_t value;
};
#define DB_INT(v) ((struct db_int){ .known = true, .value = (v) })

/* Attempt results, in the order of the schema's CHECK constraint. */
enum db_result {
	DB_RESULT_RUNNING,
	DB_RESULT_OK,
	DB_RESULT_FAILED,
	DB_RESULT_INTERRUPTED,
	DB_RESULT_SKIPPED,
};
const char *db_result_name(enum db_result r);

enum db_phase {
	DB_PHASE_BOOTSTRAP,
	DB_PHASE_TRIAGE,
	DB_PHASE_PROVISION,
	DB_PHASE_VERIFY,
	DB_PHASE_RECORD,
};
const char *db_phase_name(enum db_phase p);

/* Provisioning styles as the configuration names them ([station] mode). */
enum db_mode { DB_MODE_SECURE_BOOT, DB_MODE_FDE_ONLY, DB_MODE_NAKED };
const char *db_mode_name(enum db_mode m);
/* "secure-boot" -> DB_MODE_SECURE_BOOT; -EINVAL for anything else. */
int db_mode_parse(const char *name, enum db_mode *out);

/* State transitions, the peer's strings (state.db); the one list of them. */
#define DB_EVENT_STATES(X) \
	X(BOOTSTRAP_STARTED, "BOOTSTRAP-STARTED") \
	X(BOOTSTRAP_FIRMWARE_UPDATED, "bootstrap-firmware-updated") \
	X(BOOTSTRAP_FASTBOOT_INIT_STARTED, "bootstrap-fastboot-initialisation-started") \
	X(BOOTSTRAP_FINISHED, "BOOTSTRAP-FINISHED") \
	X(BOOTSTRAP_ABORTED, "BOOTSTRAP-ABORTED") \
	X(TRIAGE_STARTED, "TRIAGE-STARTED") \
	X(TRIAGE_FINISHED, "TRIAGE-FINISHED") \
	X(TRIAGE_ABORTED, "TRIAGE-ABORTED") \
	X(SB_PROVISIONER_STARTED, "SB-PROVISIONER-STARTED") \
	X(SB_PROVISIONER_FINISHED, "SB-PROVISIONER-FINISHED") \
	X(SB_PROVISIONER_ABORTED, "SB-PROVISIONER-ABORTED") \
	X(FDE_PROVISIONER_STARTED, "FDE-PROVISIONER-STARTED") \
	X(FDE_PROVISIONER_FINISHED, "FDE-PROVISIONER-FINISHED") \
	X(FDE_PROVISIONER_ABORTED, "FDE-PROVISIONER-ABORTED") \
	X(NAKED_PROVISIONER_STARTED, "NAKED-PROVISIONER-STARTED") \
	X(NAKED_PROVISIONER_FINISHED, "NAKED-PROVISIONER-FINISHED") \
	X(NAKED_PROVISIONER_ABORTED, "NAKED-PROVISIONER-ABORTED") \
	X(PORT_EXCLUDED, "PORT-EXCLUDED") \
	X(OTP_WRITE_STARTED, "otp-write-started") \
	X(OTP_WRITE_FINISHED, "otp-write-finished")

enum db_event_state {
#define DB_X_ENUM(name, str) DB_EVENT_##name,
	DB_EVENT_STATES(DB_X_ENUM)
#undef DB_X_ENUM
	DB_EVENT__COUNT
};
const char *db_event_state_name(enum db_event_state s);
/* Exact string -> state; -EINVAL if unknown. */
int db_event_state_parse(const char *name, enum db_event_state *out);

/* Who did an audited action. */
enum db_origin { DB_ORIGIN_TUI, DB_ORIGIN_CLI, DB_ORIGIN_CONTROL_SOCKET };
const char *db_origin_name(enum db_origin o);

/* ---- attempts -------------------------------------------------------- */

struct db_attempt_start {
	const char *serial;          /* NULL until known (boot mode may not tell) */
	const char *usb_port;        /* "1-1.2" */
	enum db_mode mode;
	const char *image_sha256;    /* NULL if none */
	const char *key_fingerprint; /* NULL if none */
	const char *station_id;
};

/* Insert an attempt in state `running`; *id is its row id. */
int db_attempt_begin(struct db *db, const struct db_attempt_start *a, int64_t *id);
/* The board's serial became known (triage). */
int db_attempt_update_serial(struct db *db, int64_t id, const char *serial);
/* What the attempt turned out to be once the board's family is known: its
 * mode (per-family config), the image it gets and the key. NULL or "" leaves
 * a column as it is. */
int db_attempt_update_info(struct db *db, int64_t id, const char *mode, const char *image_sha256,
			   const char *key_fingerprint);
/* The attempt reached @phase. duration_ms >= 0 also records how long the phase
 * took (its *_ms column); < 0 only marks it reached. */
int db_attempt_phase(struct db *db, int64_t id, enum db_phase phase, int64_t duration_ms);
/* End a running attempt as failed, interrupted or skipped (ok is written only by
 * db_device_record, together with the board's row). -EINVAL for RUNNING/OK,
 * -ENOENT if @id is not a running attempt. */
int db_attempt_finish(struct db *db, int64_t id, enum db_result result, int error_code,
		      const char *error_message);
/* Start-up crash recovery: every `running` attempt becomes `interrupted`.
 * *count (may be NULL) is how many were. One cut short between its
 * otp-write-started and otp-write-finished events gets a message saying its
 * board's OTP may hold the key hash (fully, partly or not at all), and that
 * message also goes to the log callback (DB_OTP_INTERRUPTED_PREFIX starts it). */
#define DB_OTP_INTERRUPTED_PREFIX "OTP write cut short"
int db_mark_interrupted(struct db *db, int *count);

/* ---- devices --------------------------------------------------------- */

/* The manufacturing row (reference: the peer's `devices` table). NULL char
 * pointers and unknown db_int/db_flag values are stored as SQL NULL. */
struct db_device_record {
	const char *boardname;        /* required */
	const char *serial;           /* required: 16-hex DUID serial */
	const char *eth_mac, *wifi_mac, *bt_mac;
	struct db_int mmc_size;
	const char *mmc_cid;
	const char *rpi_duid;
	const char *board_revision;
	const char *processor;
	const char *memory;
	const char *manufacturer;
	enum db_flag secure;
	enum db_flag jtag_locked;
	enum db_flag eeprom_write_protected;
	enum db_flag pubkey_programmed;
	enum db_flag devkey_revoked;
	enum db_flag signed_boot_enabled;
	const char *os_image_filename;
	const char *os_image_sha256;
	enum db_flag connect_registered;
	const char *connect_device_id;
	struct db_int eeprom_size;
	const char *eeprom_jedec;
	const char *eeprom_unique_id;
	struct db_int bootloader_build_timestamp;
	const char *customer_key_fingerprint;
	const char *customer_key_label;
	const char *provision_ts;     /* "YYYY-MM-DD HH:MM:SS" UTC; NULL = now */
	const char *station_id;
	const char *usb_port;
};

/* Record a successfully provisioned board, in one transaction:
 *  - its `devices` row is updated in place when the serial is already known
 *    (reprovision: one row per board, the latest facts), else inserted;
 *  - when @attempt_id > 0, that running attempt becomes `ok` (serial, phase
 *    `record`, ended_at) and the row points at it.
 * Either all of it is written or none (crash safety). -ENOENT if the attempt
 * is not running, -EINVAL if serial or boardname is missing. */
int db_device_record(struct db *db, int64_t attempt_id, const struct db_device_record *rec);

/* Whether this station's records show the board @serial (16-hex, or the
 * 8-hex ROM serial: the low half of the 16-hex one) provisioned with its OTP
 * holding the key hash (pubkey_programmed = 1) of the key @fingerprint
 * (customer_key_fingerprint, case-insensitive), or, for a board whose attempt
 * ended before its record (a crash, an unplug), an otp-write-finished event
 * whose detail is DB_OTP_PROGRAMMED_DETAIL for that key. *out false when no row
 * matches; 0 or -errno. */
int db_device_secured_with(struct db *db, const char *serial, const char *fingerprint, bool *out);

/* ---- events and audit ------------------------------------------------ */

/* The detail of otp-write-finished when the board reported its key hash
 * programmed: printf format taking the key fingerprint. */
#define DB_OTP_PROGRAMMED_DETAIL "key %s: secure boot provision: success"

/* attempt_id <= 0: not tied to an attempt. serial/usb_port/detail may be NULL. */
int db_event(struct db *db, int64_t attempt_id, const char *serial, const char *usb_port,
	     enum db_event_state state, const char *detail);
int db_audit(struct db *db, enum db_origin origin, const char *user, const char *action,
	     const char *target, const char *detail);
/* Who runs this process, for audit rows: "alice", or "root (sudo from alice)".
 * malloc'd; NULL on ENOMEM. */
char *db_operator_name(void);
/* Record one operator action in the database at @path (created if missing),
 * as db_operator_name(): open, db_audit, close. -ENOENT for an empty path. */
int db_audit_file(const char *path, enum db_origin origin, const char *action,
		  const char *target, const char *detail);

/* ---- reading --------------------------------------------------------- */

enum db_cell_type { DB_CELL_NULL, DB_CELL_INT, DB_CELL_TEXT };
struct db_cell {
	enum db_cell_type type;
	int64_t i;
	const char *s;   /* text (valid during the callback only) */
};

struct db_device_filter {
	bool secured_only;     /* secure = 1 */
	const char *since;     /* "YYYY-MM-DD HH:MM:SS": provision_ts >= since; NULL = all */
};

/* Call @header once with the column names of `devices` (from the schema
 * itself, so it works for an empty table), then @row for each row matching
 * @f (oldest provision_ts first). Either callback may be NULL. A non-zero
 * return from a callback stops the walk and is returned. One read snapshot. */
typedef int (*db_header_fn)(void *usrptr, size_t ncols, const char *const *names);
typedef int (*db_row_fn)(void *usrptr, size_t ncols, const char *const *names,
			 const struct db_cell *cells);
int db_devices_foreach(struct db *db, const struct db_device_filter *f, db_header_fn header,
		       db_row_fn row, void *usrptr);

#endif
