/* test_db: the manufacturing database — schema, migrations (from the peer's
 * own table), NULL vs 0 flags, the attempt lifecycle, crash recovery,
 * one row per board, filters. SQLite itself is the oracle: each test reads
 * back what the API wrote with plain SQL. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "records/db.h"

/* The peer's 30 manufacturing columns, in its order (reference §6.1). */
static const char *const peer_columns[] = {
	"id", "boardname", "serial", "eth_mac", "wifi_mac", "bt_mac", "mmc_size", "mmc_cid",
	"rpi_duid", "board_revision", "processor", "memory", "manufacturer", "secure",
	"jtag_locked", "eeprom_write_protected", "pubkey_programmed", "devkey_revoked",
	"signed_boot_enabled", "os_image_filename", "os_image_sha256", "connect_registered",
	"connect_device_id", "eeprom_size", "eeprom_jedec", "eeprom_unique_id",
	"bootloader_build_timestamp", "customer_key_fingerprint", "customer_key_label",
	"provision_ts",
};
#define N_PEER (sizeof(peer_columns) / sizeof(peer_columns[0]))

struct fx {
	char dir[64];
	char path[96];
	struct db *db;
	char logged[512];
};

static void capture_log(void *usrptr, const char *message)
{
	struct fx *fx = usrptr;

	snprintf(fx->logged, sizeof(fx->logged), "%s", message);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_db.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/sub/manufacturing.db", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	db_close(fx->db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void open_db(struct fx *fx)
{
	assert_int_equal(db_open(fx->path, DB_OPEN_CREATE, &fx->db), 0);
	db_set_log(fx->db, capture_log, fx);
}

/* Run @sql on a separate, plain SQLite connection; return the first column of
 * the first row as a malloc'd string ("NULL" for SQL NULL, "" for no row). */
static char *q(struct fx *fx, const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	char *out = NULL;

	assert_int_equal(sqlite3_open(fx->path, &h), SQLITE_OK);
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		out = strdup(sqlite3_column_type(st, 0) == SQLITE_NULL ? "NULL" :
			     (const char *)sqlite3_column_text(st, 0));
	else if (rc == SQLITE_DONE)
		out = strdup("");
	else
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	sqlite3_finalize(st);
	sqlite3_close(h);
	return out;
}

#define assert_q(fx, sql, want) do { \
	char *got_ = q(fx, sql); \
	assert_string_equal(got_, want); \
	free(got_); \
} while (0)

static int exec_raw(struct fx *fx, const char *sql)
{
	sqlite3 *h;
	int rc;

	assert_int_equal(sqlite3_open(fx->path, &h), SQLITE_OK);
	rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	return rc;
}

static struct db_device_record board(const char *serial)
{
	return (struct db_device_record){
		.boardname = "5", .serial = serial,
		.eth_mac = "2c:cf:67:00:00:01", .wifi_mac = "2c:cf:67:00:00:02",
		.bt_mac = "2c:cf:67:00:00:03",
		.mmc_size = DB_INT(31914983424LL), .mmc_cid = "9f544930303030300000000000000000",
		.rpi_duid = "0123456789abcdef0123456789abcdef",
		.board_revision = "1.0", .processor = "BCM2712", .memory = "8GB",
		.manufacturer = "Sony UK",
		.secure = DB_FLAG_YES, .jtag_locked = DB_FLAG_NULL,
		.eeprom_write_protected = DB_FLAG_NULL, .pubkey_programmed = DB_FLAG_YES,
		.devkey_revoked = DB_FLAG_NO, .signed_boot_enabled = DB_FLAG_YES,
		.os_image_filename = "gold.img",
		.os_image_sha256 = "aa00000000000000000000000000000000000000000000000000000000000000",
		.connect_registered = DB_FLAG_NULL,
		.eeprom_size = DB_INT(2097152), .eeprom_jedec = "ef4015",
		.eeprom_unique_id = "d5b7e0000000", .bootloader_build_timestamp = DB_INT(1730000000),
		.customer_key_fingerprint = "bb11", .customer_key_label = "line-1",
		.station_id = "station-1", .usb_port = "1-1.2",
	};
}

static int64_t begin(struct fx *fx, const char *serial, const char *port)
{
	int64_t id = 0;
	struct db_attempt_start a = { .serial = serial, .usb_port = port,
				      .mode = DB_MODE_SECURE_BOOT, .station_id = "station-1",
				      .image_sha256 = "aa00", .key_fingerprint = "bb11" };

	assert_int_equal(db_attempt_begin(fx->db, &a, &id), 0);
	assert_true(id > 0);
	return id;
}

/* ---- schema ---------------------------------------------------------- */

static void test_schema_fresh(void **state)
{
	struct fx *fx = *state;
	int v = -1;
	char sql[512];

	open_db(fx);
	assert_int_equal(db_schema_version(fx->db, &v), 0);
	assert_int_equal(v, DB_SCHEMA_VERSION);
	assert_q(fx, "PRAGMA journal_mode", "wal");
	assert_q(fx, "PRAGMA user_version", "2");
	assert_q(fx, "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
		 " WHERE type IN ('table','view') ORDER BY name)",
		 "attempts,audit,devices,events,rpi_sb_provisioner");
	/* The view is exactly the peer's columns, in its order. */
	for (size_t i = 0; i < N_PEER; i++) {
		char want[8];

		snprintf(sql, sizeof(sql), "SELECT cid FROM pragma_table_info('rpi_sb_provisioner')"
			 " WHERE name = '%s'", peer_columns[i]);
		snprintf(want, sizeof(want), "%zu", i);
		assert_q(fx, sql, want);
		/* devices has them in the same order, then its own. */
		snprintf(sql, sizeof(sql), "SELECT cid FROM pragma_table_info('devices')"
			 " WHERE name = '%s'", peer_columns[i]);
		assert_q(fx, sql, want);
	}
	assert_q(fx, "SELECT count(*) FROM pragma_table_info('rpi_sb_provisioner')", "30");
	assert_q(fx, "SELECT group_concat(name, ',') FROM (SELECT name FROM"
		 " pragma_table_info('devices') WHERE cid >= 30 ORDER BY cid)",
		 "station_id,usb_port,attempt_id");
	/* Reopening a current DB changes nothing. */
	db_close(fx->db);
	fx->db = NULL;
	open_db(fx);
	assert_q(fx, "PRAGMA user_version", "2");
}

static void test_open_missing_without_create(void **state)
{
	struct fx *fx = *state;
	struct db *db = NULL;

	assert_int_equal(db_open_log(fx->path, 0, capture_log, fx, &db), -ENOENT);
	assert_null(db);
	assert_non_null(strstr(fx->logged, "cannot open it"));
	assert_int_equal(access(fx->path, F_OK), -1);
}

static const char peer_schema[] =
	"CREATE TABLE devices(id integer primary key, boardname varchar(255) not null,"
	" serial char(8) not null, eth_mac char(17) not null, wifi_mac char(17) not null,"
	" bt_mac char(17) not null, mmc_size integer not null, mmc_cid char(32) not null,"
	" rpi_duid char(32) not null, board_revision varchar(255) not null,"
	" processor varchar(255) not null, memory varchar(255) not null,"
	" manufacturer varchar(255) not null, secure integer not null default 1,"
	" jtag_locked integer, eeprom_write_protected integer, pubkey_programmed integer,"
	" devkey_revoked integer, signed_boot_enabled integer, os_image_filename varchar(255),"
	" os_image_sha256 char(64), connect_registered integer, connect_device_id varchar(255),"
	" eeprom_size integer, eeprom_jedec char(6), eeprom_unique_id varchar(32),"
	" bootloader_build_timestamp integer, customer_key_fingerprint char(64),"
	" customer_key_label varchar(255), provision_ts timestamp default current_timestamp);"
	"INSERT INTO devices(boardname, serial, eth_mac, wifi_mac, bt_mac, mmc_size, mmc_cid,"
	" rpi_duid, board_revision, processor, memory, manufacturer, secure, jtag_locked,"
	" pubkey_programmed, provision_ts) VALUES('4B', '10000000abcd1234', 'dc:a6:32:00:00:01',"
	" 'dc:a6:32:00:00:02', 'dc:a6:32:00:00:03', 15931539456, 'cid', 'duid', '1.5', 'BCM2711',"
	" '4GB', 'Sony UK', 1, 5, 1, '2024-05-01 10:00:00');"
	"INSERT INTO devices(boardname, serial, eth_mac, wifi_mac, bt_mac, mmc_size, mmc_cid,"
	" rpi_duid, board_revision, processor, memory, manufacturer, secure, provision_ts)"
	" VALUES('CM5', '20000000abcd5678', 'a', 'b', 'c', 0, 'cid2', 'duid2', '1.0', 'BCM2712',"
	" '2GB', 'Sony UK', 0, '2024-05-02 11:00:00');";

/* A manufacturing.db the peer wrote (user_version 0, its own table) upgrades
 * in place: rows kept, an impossible flag value becomes unknown. */
static void test_migrate_from_peer_db(void **state)
{
	struct fx *fx = *state;
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/sub'", fx->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(exec_raw(fx, peer_schema), SQLITE_OK);
	assert_q(fx, "PRAGMA user_version", "0");

	open_db(fx);
	assert_q(fx, "PRAGMA user_version", "2");
	assert_q(fx, "SELECT count(*) FROM devices", "2");
	assert_q(fx, "SELECT mmc_size || '/' || secure || '/' || pubkey_programmed || '/' ||"
		 " provision_ts FROM rpi_sb_provisioner WHERE serial = '10000000abcd1234'",
		 "15931539456/1/1/2024-05-01 10:00:00");
	assert_q(fx, "SELECT typeof(jtag_locked) FROM devices WHERE serial = '10000000abcd1234'",
		 "null");
	assert_q(fx, "SELECT secure FROM devices WHERE serial = '20000000abcd5678'", "0");
	assert_q(fx, "SELECT typeof(attempt_id) || typeof(station_id) FROM devices LIMIT 1",
		 "nullnull");
	/* The new CHECK is in force after the upgrade. */
	assert_int_not_equal(exec_raw(fx, "UPDATE devices SET secure = 2"), SQLITE_OK);
	/* Reprovisioning a migrated board updates its row, not a second one. */
	struct db_device_record rec = board("10000000abcd1234");
	assert_int_equal(db_device_record(fx->db, begin(fx, NULL, "1-1"), &rec), 0);
	assert_q(fx, "SELECT count(*) FROM devices", "2");
	assert_q(fx, "SELECT boardname FROM devices WHERE serial = '10000000abcd1234'", "5");
}

/* Version 1 (the peer's table) stepwise to 2, with a row written at v1. */
static void test_migrate_v1_to_v2(void **state)
{
	struct fx *fx = *state;
	struct db *db = NULL;

	assert_int_equal(db_open_at_version(fx->path, DB_OPEN_CREATE, 1, &db), 0);
	db_close(db);
	assert_q(fx, "PRAGMA user_version", "1");
	assert_q(fx, "SELECT count(*) FROM sqlite_master WHERE name = 'attempts'", "0");
	assert_int_equal(exec_raw(fx, "INSERT INTO devices(boardname, serial, eth_mac, wifi_mac,"
				  " bt_mac, mmc_size, mmc_cid, rpi_duid, board_revision, processor,"
				  " memory, manufacturer) VALUES('Zero 2 W', 'abcdef0123456789', '-',"
				  " '-', '-', 1, 'c', 'd', '1.0', 'BCM2837', '512MB', 'Embest')"),
			 SQLITE_OK);
	open_db(fx);
	assert_q(fx, "PRAGMA user_version", "2");
	assert_q(fx, "SELECT boardname || ',' || secure FROM rpi_sb_provisioner", "Zero 2 W,1");
	assert_q(fx, "SELECT count(*) FROM attempts", "0");
}

static void test_newer_schema_refused(void **state)
{
	struct fx *fx = *state;
	struct db *db = NULL;

	open_db(fx);
	db_close(fx->db);
	fx->db = NULL;
	assert_int_equal(exec_raw(fx, "PRAGMA user_version = 7"), SQLITE_OK);
	assert_int_equal(db_open(fx->path, 0, &db), -EPROTO);
	assert_null(db);
	assert_q(fx, "PRAGMA user_version", "7");
}

static void test_not_a_database(void **state)
{
	struct fx *fx = *state;
	struct db *db = NULL;
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/sub' && head -c 4096 /dev/urandom > '%s'",
		 fx->dir, fx->path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(db_open_log(fx->path, 0, capture_log, fx, &db), -EILSEQ);
	assert_null(db);
	/* What happened, to which file, and what to check. */
	assert_non_null(strstr(fx->logged, fx->path));
	assert_non_null(strstr(fx->logged, "not a database"));
	assert_non_null(strstr(fx->logged, "[paths] database"));
}

/* ---- NULL vs 0 --------------------------------------------------------- */

static void test_flags_null_vs_zero(void **state)
{
	struct fx *fx = *state;
	struct db_device_record rec = board("30000000aaaa0001");

	open_db(fx);
	rec.secure = DB_FLAG_NO;
	rec.jtag_locked = DB_FLAG_NULL;
	rec.eeprom_write_protected = DB_FLAG_YES;
	rec.eeprom_size = (struct db_int){ .known = false };
	rec.bootloader_build_timestamp = DB_INT(0);
	rec.connect_device_id = NULL;
	assert_int_equal(db_device_record(fx->db, 0, &rec), 0);
	assert_q(fx, "SELECT typeof(secure) || ':' || secure FROM devices", "integer:0");
	assert_q(fx, "SELECT typeof(jtag_locked) FROM devices", "null");
	assert_q(fx, "SELECT eeprom_write_protected FROM devices", "1");
	assert_q(fx, "SELECT typeof(eeprom_size) FROM devices", "null");
	assert_q(fx, "SELECT typeof(bootloader_build_timestamp) || ':' ||"
		 " bootloader_build_timestamp FROM devices", "integer:0");
	assert_q(fx, "SELECT typeof(connect_device_id) FROM devices", "null");
	/* The seed's query sees only secured boards. */
	assert_q(fx, "SELECT count(*) FROM rpi_sb_provisioner WHERE secure = 1", "0");

	/* An out-of-range flag is refused, nothing written. */
	rec.serial = "30000000aaaa0002";
	rec.jtag_locked = (enum db_flag)2;
	assert_int_equal(db_device_record(fx->db, 0, &rec), -EINVAL);
	assert_non_null(strstr(fx->logged, "flag"));
	assert_q(fx, "SELECT count(*) FROM devices", "1");
	/* And the schema refuses one written behind the API's back. */
	assert_int_not_equal(exec_raw(fx, "UPDATE devices SET jtag_locked = 3"), SQLITE_OK);
}

/* Every field of the record lands in the column of the same name. */
static void test_record_every_column(void **state)
{
	struct fx *fx = *state;
	struct db_device_record rec = board("40000000aaaa0001");

	open_db(fx);
	rec.provision_ts = "2025-01-02 03:04:05";
	rec.connect_registered = DB_FLAG_YES;
	rec.connect_device_id = "connect-42";
	assert_int_equal(db_device_record(fx->db, 0, &rec), 0);
	assert_q(fx, "SELECT boardname||'|'||serial||'|'||eth_mac||'|'||wifi_mac||'|'||bt_mac||'|'||"
		 "mmc_size||'|'||mmc_cid||'|'||rpi_duid||'|'||board_revision||'|'||processor||'|'||"
		 "memory||'|'||manufacturer||'|'||secure||'|'||ifnull(jtag_locked,'N')||'|'||"
		 "ifnull(eeprom_write_protected,'N')||'|'||pubkey_programmed||'|'||devkey_revoked||'|'||"
		 "signed_boot_enabled||'|'||os_image_filename||'|'||os_image_sha256||'|'||"
		 "connect_registered||'|'||connect_device_id||'|'||eeprom_size||'|'||eeprom_jedec||'|'||"
		 "eeprom_unique_id||'|'||bootloader_build_timestamp||'|'||customer_key_fingerprint||'|'||"
		 "customer_key_label||'|'||provision_ts||'|'||station_id||'|'||usb_port||'|'||"
		 "ifnull(attempt_id,'N') FROM devices",
		 "5|40000000aaaa0001|2c:cf:67:00:00:01|2c:cf:67:00:00:02|2c:cf:67:00:00:03|"
		 "31914983424|9f544930303030300000000000000000|0123456789abcdef0123456789abcdef|1.0|"
		 "BCM2712|8GB|Sony UK|1|N|N|1|0|1|gold.img|"
		 "aa00000000000000000000000000000000000000000000000000000000000000|1|connect-42|"
		 "2097152|ef4015|d5b7e0000000|1730000000|bb11|line-1|2025-01-02 03:04:05|station-1|"
		 "1-1.2|N");

	/* Missing identity is refused. */
	rec.serial = "";
	assert_int_equal(db_device_record(fx->db, 0, &rec), -EINVAL);
	rec.serial = "40000000aaaa0002";
	rec.boardname = NULL;
	assert_int_equal(db_device_record(fx->db, 0, &rec), -EINVAL);
	assert_q(fx, "SELECT count(*) FROM devices", "1");
}

/* ---- attempts ------------------------------------------------------------ */

static void test_attempt_lifecycle(void **state)
{
	struct fx *fx = *state;
	struct db_device_record rec = board("50000000aaaa0001");
	int64_t id;
	char sql[512];

	open_db(fx);
	id = begin(fx, NULL, "1-1.3");
	snprintf(sql, sizeof(sql), "SELECT result || ',' || typeof(serial) || ',' ||"
		 " typeof(ended_at) || ',' || mode FROM attempts WHERE id = %lld", (long long)id);
	assert_q(fx, sql, "running,null,null,secure-boot");

	assert_int_equal(db_attempt_phase(fx->db, id, DB_PHASE_BOOTSTRAP, -1), 0);
	assert_q(fx, "SELECT phase_reached || typeof(bootstrap_ms) FROM attempts",
		 "bootstrapnull");
	assert_int_equal(db_attempt_phase(fx->db, id, DB_PHASE_BOOTSTRAP, 1500), 0);
	assert_int_equal(db_attempt_update_serial(fx->db, id, "50000000aaaa0001"), 0);
	assert_int_equal(db_attempt_phase(fx->db, id, DB_PHASE_TRIAGE, 800), 0);
	assert_int_equal(db_attempt_phase(fx->db, id, DB_PHASE_PROVISION, 60000), 0);
	assert_int_equal(db_attempt_phase(fx->db, id, DB_PHASE_VERIFY, 9000), 0);
	assert_int_equal(db_attempt_phase(fx->db, id, DB_PHASE_RECORD, 5), 0);
	assert_int_equal(db_event(fx->db, id, "50000000aaaa0001", "1-1.3",
				  DB_EVENT_SB_PROVISIONER_FINISHED, NULL), 0);
	/* ok is written with the board's row, never alone. */
	assert_int_equal(db_attempt_finish(fx->db, id, DB_RESULT_OK, 0, NULL), -EINVAL);
	assert_int_equal(db_attempt_finish(fx->db, id, DB_RESULT_RUNNING, 0, NULL), -EINVAL);
	assert_int_equal(db_device_record(fx->db, id, &rec), 0);
	snprintf(sql, sizeof(sql), "SELECT result||','||serial||','||phase_reached||','||"
		 "bootstrap_ms||','||triage_ms||','||provision_ms||','||verify_ms||','||"
		 "typeof(ended_at) FROM attempts WHERE id = %lld", (long long)id);
	assert_q(fx, sql, "ok,50000000aaaa0001,record,1500,800,60000,9000,text");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM devices WHERE attempt_id = %lld",
		 (long long)id);
	assert_q(fx, sql, "1");
	assert_q(fx, "SELECT ended_at >= started_at FROM attempts", "1");

	/* A finished attempt takes no more writes. */
	assert_int_equal(db_attempt_phase(fx->db, id, DB_PHASE_VERIFY, 1), -ENOENT);
	assert_int_equal(db_attempt_update_serial(fx->db, id, "x"), -ENOENT);
	assert_int_equal(db_attempt_finish(fx->db, id, DB_RESULT_FAILED, -5, "late"), -ENOENT);
	assert_non_null(strstr(fx->logged, "is not running"));

	/* A failure is recorded too, with its code and message. */
	int64_t id2 = begin(fx, "50000000aaaa0001", "1-1.3");
	assert_int_equal(db_attempt_phase(fx->db, id2, DB_PHASE_TRIAGE, -1), 0);
	assert_int_equal(db_attempt_finish(fx->db, id2, DB_RESULT_FAILED, -ETIMEDOUT,
					   "fastboot did not answer"), 0);
	snprintf(sql, sizeof(sql), "SELECT result||','||phase_reached||','||error_code||','||"
		 "error_message FROM attempts WHERE id = %lld", (long long)id2);
	char want[96];
	snprintf(want, sizeof(want), "failed,triage,%d,fastboot did not answer", -ETIMEDOUT);
	assert_q(fx, sql, want);
	int64_t id3 = begin(fx, NULL, "1-1.4");
	assert_int_equal(db_attempt_finish(fx->db, id3, DB_RESULT_SKIPPED, 0, "port excluded"), 0);
	assert_q(fx, "SELECT result || typeof(error_code) FROM attempts WHERE id = 3",
		 "skippednull");
	/* The recorded board did not change through the failure. */
	assert_q(fx, "SELECT count(*) FROM devices", "1");
}

/* db_device_record is one transaction: a refused attempt leaves no row. */
static void test_record_is_atomic(void **state)
{
	struct fx *fx = *state;
	struct db_device_record rec = board("60000000aaaa0001");
	int64_t id;

	open_db(fx);
	id = begin(fx, NULL, "1-2");
	assert_int_equal(db_attempt_finish(fx->db, id, DB_RESULT_FAILED, -EIO, "x"), 0);
	assert_int_equal(db_device_record(fx->db, id, &rec), -ENOENT);
	assert_int_equal(db_device_record(fx->db, 9999, &rec), -ENOENT);
	assert_q(fx, "SELECT count(*) FROM devices", "0");
	/* And the connection is usable afterwards (no transaction left open). */
	id = begin(fx, NULL, "1-2");
	assert_int_equal(db_device_record(fx->db, id, &rec), 0);
	assert_q(fx, "SELECT count(*) FROM devices", "1");
}

static void test_reprovision_keeps_one_row(void **state)
{
	struct fx *fx = *state;
	struct db_device_record rec = board("70000000aaaa0001");
	int64_t a1, a2;
	char sql[512];

	open_db(fx);
	a1 = begin(fx, NULL, "1-1");
	rec.provision_ts = "2025-01-01 00:00:00";
	assert_int_equal(db_device_record(fx->db, a1, &rec), 0);
	a2 = begin(fx, NULL, "1-2");
	rec.provision_ts = NULL; /* now */
	rec.usb_port = "1-2";
	rec.os_image_filename = "gold-v2.img";
	assert_int_equal(db_device_record(fx->db, a2, &rec), 0);
	assert_q(fx, "SELECT count(*) FROM devices", "1");
	snprintf(sql, sizeof(sql), "SELECT attempt_id = %lld AND usb_port = '1-2' AND"
		 " os_image_filename = 'gold-v2.img' AND provision_ts > '2025-01-01 00:00:00'"
		 " FROM devices", (long long)a2);
	assert_q(fx, sql, "1");
	assert_q(fx, "SELECT count(*) FROM attempts WHERE result = 'ok' AND"
		 " serial = '70000000aaaa0001'", "2");
}

static void test_mark_interrupted(void **state)
{
	struct fx *fx = *state;
	int count = -1;
	int64_t done;

	open_db(fx);
	begin(fx, NULL, "1-1");
	begin(fx, "80000000aaaa0001", "1-2");
	begin(fx, NULL, "1-3");
	done = begin(fx, NULL, "1-4");
	assert_int_equal(db_attempt_finish(fx->db, done, DB_RESULT_FAILED, -EIO, "cable"), 0);
	db_close(fx->db);          /* the station "crashes" and restarts */
	fx->db = NULL;
	open_db(fx);
	assert_int_equal(db_mark_interrupted(fx->db, &count), 0);
	assert_int_equal(count, 3);
	assert_q(fx, "SELECT count(*) FROM attempts WHERE result = 'interrupted' AND"
		 " ended_at IS NOT NULL AND error_message LIKE '%station stopped%'", "3");
	assert_q(fx, "SELECT result || ',' || error_message FROM attempts WHERE id = 4",
		 "failed,cable");
	assert_int_equal(db_mark_interrupted(fx->db, &count), 0);
	assert_int_equal(count, 0);
}

/* ---- events, audit, names ----------------------------------------------- */

static void test_events_and_names(void **state)
{
	struct fx *fx = *state;
	int64_t id;

	open_db(fx);
	id = begin(fx, NULL, "1-1");
	for (int s = 0; s < DB_EVENT__COUNT; s++) {
		enum db_event_state back;
		const char *name = db_event_state_name((enum db_event_state)s);

		assert_non_null(name);
		assert_int_equal(db_event_state_parse(name, &back), 0);
		assert_int_equal((int)back, s);
		assert_int_equal(db_event(fx->db, s % 2 ? id : 0, NULL, "1-1",
					  (enum db_event_state)s, "detail"), 0);
	}
	assert_null(db_event_state_name(DB_EVENT__COUNT));
	assert_int_equal(db_event(fx->db, 0, NULL, NULL, DB_EVENT__COUNT, NULL), -EINVAL);
	assert_q(fx, "SELECT count(*) FROM events", "20");
	assert_q(fx, "SELECT state FROM events ORDER BY id LIMIT 1", "BOOTSTRAP-STARTED");
	assert_q(fx, "SELECT count(*) FROM events WHERE state IN ('bootstrap-firmware-updated',"
		 " 'bootstrap-fastboot-initialisation-started', 'PORT-EXCLUDED',"
		 " 'NAKED-PROVISIONER-ABORTED', 'TRIAGE-FINISHED')", "5");
	assert_q(fx, "SELECT count(*) FROM events WHERE attempt_id IS NULL", "10");
	/* The foreign key is enforced. */
	assert_int_equal(db_event(fx->db, 12345, NULL, NULL, DB_EVENT_TRIAGE_STARTED, NULL),
			 -EINVAL);

	assert_int_equal(db_audit(fx->db, DB_ORIGIN_CONTROL_SOCKET, "alice", "arm-otp",
				  "batch", "suffix 1a2b"), 0);
	assert_int_equal(db_audit(fx->db, DB_ORIGIN_TUI, NULL, "", NULL, NULL), -EINVAL);
	assert_q(fx, "SELECT origin||','||user||','||action||','||target||','||detail FROM audit",
		 "control-socket,alice,arm-otp,batch,suffix 1a2b");

	enum db_mode m;
	assert_int_equal(db_mode_parse("fde-only", &m), 0);
	assert_int_equal(m, DB_MODE_FDE_ONLY);
	assert_int_equal(db_mode_parse("FDE", &m), -EINVAL);
	assert_string_equal(db_result_name(DB_RESULT_INTERRUPTED), "interrupted");
	assert_string_equal(db_phase_name(DB_PHASE_PROVISION), "provision");
}

/* ---- reading ----------------------------------------------------------- */

struct seen {
	size_t header_calls;
	size_t ncols;
	char serials[256];
};

static int seen_header(void *usrptr, size_t ncols, const char *const *names)
{
	struct seen *s = usrptr;

	s->header_calls++;
	s->ncols = ncols;
	assert_string_equal(names[0], "id");
	assert_string_equal(names[2], "serial");
	return 0;
}

static int seen_row(void *usrptr, size_t ncols, const char *const *names,
		    const struct db_cell *cells)
{
	struct seen *s = usrptr;

	(void)ncols;
	assert_string_equal(names[2], "serial");
	assert_int_equal(cells[2].type, DB_CELL_TEXT);
	strncat(s->serials, cells[2].s, sizeof(s->serials) - strlen(s->serials) - 2);
	strcat(s->serials, " ");
	return 0;
}

static void test_foreach_filters(void **state)
{
	struct fx *fx = *state;
	static const struct { const char *serial, *ts; enum db_flag secure; } rows[] = {
		{ "a1", "2025-03-01 08:00:00", DB_FLAG_YES },
		{ "a2", "2025-03-02 00:00:00", DB_FLAG_NO },
		{ "a3", "2025-03-02 09:30:00", DB_FLAG_NULL },
		{ "a4", "2025-03-03 12:00:00", DB_FLAG_YES },
	};

	open_db(fx);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct db_device_record rec = board(rows[i].serial);

		rec.provision_ts = rows[i].ts;
		rec.secure = rows[i].secure;
		assert_int_equal(db_device_record(fx->db, 0, &rec), 0);
	}
	struct seen s = { 0 };
	assert_int_equal(db_devices_foreach(fx->db, NULL, seen_header, seen_row, &s), 0);
	assert_string_equal(s.serials, "a1 a2 a3 a4 ");
	assert_int_equal(s.header_calls, 1);
	assert_int_equal(s.ncols, 33);

	memset(&s, 0, sizeof(s));
	struct db_device_filter f = { .secured_only = true };
	assert_int_equal(db_devices_foreach(fx->db, &f, seen_header, seen_row, &s), 0);
	assert_string_equal(s.serials, "a1 a4 ");

	memset(&s, 0, sizeof(s));
	f = (struct db_device_filter){ .since = "2025-03-02 00:00:00" };
	assert_int_equal(db_devices_foreach(fx->db, &f, seen_header, seen_row, &s), 0);
	assert_string_equal(s.serials, "a2 a3 a4 ");

	memset(&s, 0, sizeof(s));
	f = (struct db_device_filter){ .since = "2025-03-02 09:30:01", .secured_only = true };
	assert_int_equal(db_devices_foreach(fx->db, &f, seen_header, seen_row, &s), 0);
	assert_string_equal(s.serials, "a4 ");

	/* No match: the header still comes (an empty export has its header row). */
	memset(&s, 0, sizeof(s));
	f = (struct db_device_filter){ .since = "2030-01-01 00:00:00" };
	assert_int_equal(db_devices_foreach(fx->db, &f, seen_header, seen_row, &s), 0);
	assert_string_equal(s.serials, "");
	assert_int_equal(s.header_calls, 1);
}

/* A read-only open reads, never writes, and never upgrades. */
static void test_open_readonly(void **state)
{
	struct fx *fx = *state;
	struct db *ro = NULL;
	struct db_device_record rec = board("90000000aaaa0001");
	struct seen s = { 0 };
	int64_t id;

	assert_int_equal(db_open(fx->path, DB_OPEN_CREATE | DB_OPEN_READONLY, &ro), -ENOENT);
	open_db(fx);
	assert_int_equal(db_device_record(fx->db, 0, &rec), 0);
	assert_int_equal(db_open(fx->path, DB_OPEN_READONLY, &ro), 0);
	db_set_log(ro, capture_log, fx);
	assert_int_equal(db_devices_foreach(ro, NULL, seen_header, seen_row, &s), 0);
	assert_string_equal(s.serials, "90000000aaaa0001 ");
	struct db_attempt_start st = { .usb_port = "1-2", .mode = DB_MODE_NAKED };
	assert_int_equal(db_attempt_begin(ro, &st, &id), -EACCES);
	assert_non_null(strstr(fx->logged, "readonly"));
	db_close(ro);
	db_close(fx->db);
	fx->db = NULL;

	/* An old file is not upgraded behind the operator's back. */
	assert_int_equal(exec_raw(fx, "PRAGMA user_version = 1"), SQLITE_OK);
	assert_int_equal(db_open(fx->path, DB_OPEN_READONLY, &ro), -EPROTO);
	assert_q(fx, "PRAGMA user_version", "1");
}

/* Two connections (as two threads would have) share the file under WAL. */
static void test_two_connections(void **state)
{
	struct fx *fx = *state;
	struct db *other = NULL;
	int64_t a, b;

	open_db(fx);
	assert_int_equal(db_open(fx->path, 0, &other), 0);
	a = begin(fx, NULL, "1-1");
	assert_int_equal(db_attempt_phase(other, a, DB_PHASE_TRIAGE, 10), 0);
	struct db_attempt_start st = { .usb_port = "1-2", .mode = DB_MODE_NAKED };
	assert_int_equal(db_attempt_begin(other, &st, &b), 0);
	assert_true(b > a);
	db_close(other);
	assert_q(fx, "SELECT count(*) || ',' || sum(mode = 'naked') FROM attempts", "2,1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_schema_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing_without_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_peer_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v1_to_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags_null_vs_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_every_column, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attempt_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_is_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reprovision_keeps_one_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_and_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_connections, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
