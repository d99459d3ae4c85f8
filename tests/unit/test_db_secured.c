/* test_db_secured: db_device_secured_with(), the read behind "a Pi 5 this
 * station fused with this key is reprovisioned": 16-hex and 8-hex (low
 * half) serials, the key fingerprint must match (case-insensitive),
 * pubkey_programmed must be 1 (0 and NULL are not), bad arguments refused;
 * the OTP write markers (otp-write-started/-finished) and what start-up
 * recovery says about a board cut short between them. */
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

#define FP_A "9392228a0f990ff56cf9cb67f402038e43dc73f1b44dd9e98bc5c540b50355d1"
#define FP_B "0e91c5a7709f8d419b5191a0600e065126db19f5d355b8f0af10af69ac44cbb9"

static void quiet(void *usrptr, const char *message)
{
	(void)usrptr;
	(void)message;
}

static void record(struct db *db, const char *serial, enum db_flag pubkey, const char *fp)
{
	struct db_device_record rec = {
		.boardname = "Raspberry Pi 5", .serial = serial, .pubkey_programmed = pubkey,
		.customer_key_fingerprint = fp, .secure = DB_FLAG_NULL, .jtag_locked = DB_FLAG_NULL,
		.eeprom_write_protected = DB_FLAG_NULL, .devkey_revoked = DB_FLAG_NULL,
		.signed_boot_enabled = DB_FLAG_NULL, .connect_registered = DB_FLAG_NULL,
	};

	assert_int_equal(db_device_record(db, 0, &rec), 0);
}

static bool secured(struct db *db, const char *serial, const char *fp)
{
	bool out = true;

	assert_int_equal(db_device_secured_with(db, serial, fp, &out), 0);
	return out;
}

static void test_secured_with(void **state)
{
	char dir[] = "/tmp/test_db_secured.XXXXXX", path[96], cmd[160];
	struct db *db = NULL;
	bool out = true;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/manufacturing.db", dir);
	assert_int_equal(db_open(path, DB_OPEN_CREATE, &db), 0);
	db_set_log(db, quiet, NULL);

	/* No row yet. */
	assert_false(secured(db, "1cdaf3bb945c4e58", FP_A));
	assert_false(secured(db, "945c4e58", FP_A));

	record(db, "1cdaf3bb945c4e58", DB_FLAG_YES, FP_A);
	record(db, "71bbf7901e1ac505", DB_FLAG_NO, FP_A);
	record(db, "e702ccaa40f28cf6", DB_FLAG_NULL, FP_A);

	assert_true(secured(db, "1cdaf3bb945c4e58", FP_A));
	assert_true(secured(db, "945c4e58", FP_A));          /* ROM serial: low half */
	assert_true(secured(db, "945C4E58", FP_A));          /* case-insensitive */
	char upper[65];
	for (size_t i = 0; i < 65; i++)
		upper[i] = (char)(FP_A[i] >= 'a' && FP_A[i] <= 'f' ? FP_A[i] - 32 : FP_A[i]);
	assert_true(secured(db, "945c4e58", upper));
	assert_false(secured(db, "1cdaf3bb", FP_A));         /* the high half is not the ROM serial */
	assert_false(secured(db, "945c4e58", FP_B));         /* another key */
	assert_false(secured(db, "1e1ac505", FP_A));         /* pubkey_programmed = 0 */
	assert_false(secured(db, "40f28cf6", FP_A));         /* pubkey_programmed NULL */

	/* Refused: no fingerprint, a serial of the wrong length. */
	assert_int_equal(db_device_secured_with(db, "945c4e58", "", &out), -EINVAL);
	assert_false(out);
	assert_int_equal(db_device_secured_with(db, "945c4e5", FP_A, &out), -EINVAL);
	assert_int_equal(db_device_secured_with(db, NULL, FP_A, &out), -EINVAL);

	db_close(db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static char logged[4096];

static void keep_log(void *usrptr, const char *message)
{
	(void)usrptr;
	snprintf(logged + strlen(logged), sizeof(logged) - strlen(logged), "%s\n", message);
}

static char *attempt_message(const char *path, int64_t id)
{
	static char out[1024];
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT result || '|' || error_message FROM attempts"
					    " WHERE id = ?", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
	return out;
}

/* The OTP write markers: a board whose records show the key hash programmed
 * (otp-write-finished, success) is treated as secured even without its
 * devices row (the station died before it); an attempt cut short between
 * otp-write-started and otp-write-finished is marked interrupted with the
 * board's OTP state spelled out, in the row and in the log. */
static void test_otp_write_markers(void **state)
{
	char dir[] = "/tmp/test_db_secured.XXXXXX", path[96], cmd[160], detail[160];
	struct db_attempt_start a = { .usb_port = "9-1", .mode = DB_MODE_SECURE_BOOT };
	struct db *db = NULL;
	int64_t cut, done, plain;
	int n = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/manufacturing.db", dir);
	assert_int_equal(db_open(path, DB_OPEN_CREATE, &db), 0);
	db_set_log(db, quiet, NULL);

	/* Board 1: the board reported the hash programmed, then the station died. */
	assert_int_equal(db_attempt_begin(db, &a, &done), 0);
	assert_int_equal(db_event(db, done, NULL, "9-1", DB_EVENT_OTP_WRITE_STARTED, "key " FP_A), 0);
	snprintf(detail, sizeof(detail), DB_OTP_PROGRAMMED_DETAIL, FP_A);
	assert_int_equal(db_event(db, done, "945c4e58", "9-1", DB_EVENT_OTP_WRITE_FINISHED, detail), 0);
	/* Board 2: died between the two markers. */
	a.usb_port = "9-2";
	assert_int_equal(db_attempt_begin(db, &a, &cut), 0);
	assert_int_equal(db_event(db, cut, "1e1ac505", "9-2", DB_EVENT_OTP_WRITE_STARTED, "key " FP_A), 0);
	/* Board 3: no OTP write at all; board 4: the board reported a failure. */
	a.usb_port = "9-3";
	assert_int_equal(db_attempt_begin(db, &a, &plain), 0);
	assert_int_equal(db_event(db, 0, "40f28cf6", "9-4", DB_EVENT_OTP_WRITE_FINISHED,
				  "key " FP_A ": secure boot provision: fail"), 0);

	assert_true(secured(db, "945c4e58", FP_A));
	assert_true(secured(db, "1cdaf3bb945c4e58", FP_A));  /* its 16-hex serial */
	assert_false(secured(db, "945c4e58", FP_B));         /* another key */
	assert_false(secured(db, "1e1ac505", FP_A));         /* outcome unknown: not assumed */
	assert_false(secured(db, "40f28cf6", FP_A));         /* the board said it failed */

	logged[0] = '\0';
	db_set_log(db, keep_log, NULL);
	assert_int_equal(db_mark_interrupted(db, &n), 0);
	assert_int_equal(n, 3);
	if (!strstr(attempt_message(path, cut), "interrupted|" DB_OTP_INTERRUPTED_PREFIX ":") ||
	    !strstr(attempt_message(path, cut), "reprovision"))
		fail_msg("cut-short OTP attempt: %s", attempt_message(path, cut));
	assert_non_null(strstr(attempt_message(path, done), "interrupted|the station stopped"));
	assert_non_null(strstr(attempt_message(path, plain), "interrupted|the station stopped"));
	/* The log names the board (its serial from the event), the port and the state. */
	if (!strstr(logged, "board 1e1ac505 on port 9-2") || !strstr(logged, DB_OTP_INTERRUPTED_PREFIX) ||
	    !strstr(logged, "otp-write-started at ") || strstr(logged, "port 9-1") || strstr(logged, "9-3"))
		fail_msg("start-up log: %s", logged);

	db_close(db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secured_with),
		cmocka_unit_test(test_otp_write_markers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
