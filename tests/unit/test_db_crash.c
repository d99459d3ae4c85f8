/* test_db_crash: a station killed with SIGKILL at random moments never
 * leaves a half-written record.
 *
 * A child process writes attempts in a loop through the db API exactly as a
 * worker does (begin, phases, serial, events, then either a failure or the
 * board's row + ok in one transaction). The parent kills it after a random
 * number of steps (5 rounds, each continuing on the same file), then checks
 * with plain SQL: integrity_check is ok, foreign keys hold, every ok attempt
 * is complete and has its board row, every board row points at the newest ok
 * attempt of its serial and carries that attempt's data, and start-up
 * recovery (db_mark_interrupted) leaves no attempt `running`. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "records/db.h"

#define ROUNDS 5

static void quiet(void *usrptr, const char *message)
{
	(void)usrptr;
	(void)message;
}

/* The child: one worker's writes, forever; a byte on @progress before each. */
static void __attribute__((noreturn)) writer(const char *path, int progress, unsigned seed)
{
	struct db *db = NULL;
	char serial[17], image[32];

	if (db_open(path, DB_OPEN_CREATE, &db) < 0)
		_exit(3);
	srand(seed);
	for (unsigned i = 0;; i++) {
		int64_t id;
		struct db_attempt_start a = { .usb_port = "1-1.2", .mode = DB_MODE_SECURE_BOOT,
					      .station_id = "crash", .image_sha256 = "aa" };

#define MARKED_STEP(mark, call) do { \
	if (write(progress, mark, 1) != 1) _exit(4); \
	if ((call) < 0) _exit(5); \
} while (0)
#define STEP(call) MARKED_STEP("x", call)
		/* 11 boards, so many are reprovisioned (the update path). */
		snprintf(serial, sizeof(serial), "%016x", 0x10000000u + (unsigned)(rand() % 11));
		STEP(db_attempt_begin(db, &a, &id));
		STEP(db_event(db, id, NULL, "1-1.2", DB_EVENT_BOOTSTRAP_STARTED, NULL));
		STEP(db_attempt_phase(db, id, DB_PHASE_BOOTSTRAP, 1000 + rand() % 100));
		STEP(db_attempt_update_serial(db, id, serial));
		STEP(db_attempt_phase(db, id, DB_PHASE_TRIAGE, 500 + rand() % 100));
		STEP(db_attempt_phase(db, id, DB_PHASE_PROVISION, 60000 + rand() % 100));
		if (i % 4 == 3) {
			STEP(db_attempt_finish(db, id, DB_RESULT_FAILED, -EIO, "simulated failure"));
			continue;
		}
		STEP(db_attempt_phase(db, id, DB_PHASE_VERIFY, 9000 + rand() % 100));
		snprintf(image, sizeof(image), "img-%lld", (long long)id);
		struct db_device_record rec = {
			.boardname = "5", .serial = serial, .mmc_size = DB_INT(id),
			.secure = DB_FLAG_YES, .jtag_locked = DB_FLAG_NULL,
			.eeprom_write_protected = DB_FLAG_NULL, .pubkey_programmed = DB_FLAG_YES,
			.devkey_revoked = DB_FLAG_NULL, .signed_boot_enabled = DB_FLAG_YES,
			.connect_registered = DB_FLAG_NULL, .os_image_filename = image,
			.station_id = "crash", .usb_port = "1-1.2",
		};
		/* 'R': the parent may aim its kill at this transaction. */
		MARKED_STEP("R", db_device_record(db, id, &rec));
		STEP(db_event(db, id, serial, "1-1.2", DB_EVENT_SB_PROVISIONER_FINISHED, NULL));
#undef STEP
#undef MARKED_STEP
	}
}

static long long q_int(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static const struct { const char *what, *sql; } zero[] = {
	{ "foreign key violations", "SELECT count(*) FROM pragma_foreign_key_check" },
	{ "ok attempts missing a field",
	  "SELECT count(*) FROM attempts WHERE result = 'ok' AND (serial IS NULL OR"
	  " ended_at IS NULL OR bootstrap_ms IS NULL OR triage_ms IS NULL OR"
	  " provision_ms IS NULL OR verify_ms IS NULL OR phase_reached <> 'record')" },
	{ "ok attempts without their board row",
	  "SELECT count(*) FROM attempts a WHERE result = 'ok' AND NOT EXISTS"
	  " (SELECT 1 FROM devices d WHERE d.serial = a.serial)" },
	{ "board rows not pointing at an ok attempt of their serial",
	  "SELECT count(*) FROM devices d WHERE attempt_id IS NULL OR NOT EXISTS"
	  " (SELECT 1 FROM attempts a WHERE a.id = d.attempt_id AND a.result = 'ok'"
	  " AND a.serial = d.serial)" },
	{ "board rows not from the newest ok attempt",
	  "SELECT count(*) FROM devices d WHERE attempt_id <> (SELECT max(id) FROM"
	  " attempts a WHERE a.serial = d.serial AND a.result = 'ok')" },
	{ "board rows with another attempt's data",
	  "SELECT count(*) FROM devices WHERE os_image_filename <> 'img-' || attempt_id"
	  " OR mmc_size <> attempt_id" },
	{ "boards with two rows", "SELECT count(*) - count(DISTINCT serial) FROM devices" },
	{ "failed attempts not closed",
	  "SELECT count(*) FROM attempts WHERE result = 'failed' AND (ended_at IS NULL OR"
	  " error_message IS NULL)" },
	{ "running attempts after recovery",
	  "SELECT count(*) FROM attempts WHERE result = 'running'" },
};

/* The first invariant @h breaks (after recovery), or NULL when it keeps all. */
static const char *broken_invariant(sqlite3 *h, long long *count)
{
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
		*count = q_int(h, zero[i].sql);
		if (*count != 0)
			return zero[i].what;
	}
	return NULL;
}

static void check_invariants(const char *path, int round, long long *ok_total)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	struct db *db = NULL;
	int interrupted = -1;
	long long running;

	/* Before recovery: at most the one attempt the child was in. */
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	running = q_int(h, "SELECT count(*) FROM attempts WHERE result = 'running'");
	assert_true(running == 0 || running == 1);
	sqlite3_close(h);

	/* The station's start-up: open (WAL recovery) and mark interrupted. */
	assert_int_equal(db_open(path, 0, &db), 0);
	assert_int_equal(db_mark_interrupted(db, &interrupted), 0);
	assert_int_equal(interrupted, running);
	db_close(db);

	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	long long n = 0;
	const char *broken = broken_invariant(h, &n);
	if (broken)
		fail_msg("round %d: %lld %s", round, n, broken);
	*ok_total = q_int(h, "SELECT count(*) FROM attempts WHERE result = 'ok'");
	printf("round %d: %lld attempts (%lld ok, %lld failed, %lld interrupted), %lld boards\n",
	       round, q_int(h, "SELECT count(*) FROM attempts"), *ok_total,
	       q_int(h, "SELECT count(*) FROM attempts WHERE result = 'failed'"),
	       q_int(h, "SELECT count(*) FROM attempts WHERE result = 'interrupted'"),
	       q_int(h, "SELECT count(*) FROM devices"));
	sqlite3_close(h);
}

static void test_sigkill_rounds(void **state)
{
	char dir[] = "/tmp/test_db_crash.XXXXXX";
	char path[64], cmd[96];
	long long ok_total = 0, ok_before = 0;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m.db", dir);
	printf("seed %u\n", seed);
	srand(seed);
	/* Create the schema first, so every round kills a writer mid-work. */
	struct db *db = NULL;
	assert_int_equal(db_open(path, DB_OPEN_CREATE, &db), 0);
	db_close(db);

	for (int round = 1; round <= ROUNDS; round++) {
		int pfd[2];
		/* Odd rounds: kill after a random number of steps (a step is about one
		 * fsync). Even rounds: kill just as the child starts its n-th board
		 * record, the transaction that must be all or nothing. */
		bool aim = round % 2 == 0;
		int want = aim ? 1 + rand() % 4 : 8 + rand() % 60;
		char c = 0;
		pid_t pid;
		int status;

		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			writer(path, pfd[1], seed + (unsigned)round);
		}
		close(pfd[1]);
		for (int got = 0; got < want;) {
			if (read(pfd[0], &c, 1) != 1)
				fail_msg("round %d: the writer stopped by itself", round);
			if (!aim || c == 'R')
				got++;
		}
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		close(pfd[0]);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

		check_invariants(path, round, &ok_total);
		assert_true(ok_total >= ok_before);
		ok_before = ok_total;
	}
	/* The child did real work, or the checks above proved nothing. */
	assert_true(ok_total > 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* The checker itself can fail: forged half-written successes are caught. */
static void test_checker_catches_damage(void **state)
{
	char dir[] = "/tmp/test_db_crash.XXXXXX";
	char path[64], cmd[96];
	struct db *db = NULL;
	sqlite3 *h;
	int64_t id;
	struct db_attempt_start a = { .usb_port = "1-1", .mode = DB_MODE_NAKED };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m.db", dir);
	assert_int_equal(db_open(path, DB_OPEN_CREATE, &db), 0);
	db_set_log(db, quiet, NULL);
	assert_int_equal(db_attempt_begin(db, &a, &id), 0);
	db_close(db);
	/* Forge a half-written success: ok without phases or board row. */
	assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "UPDATE attempts SET result = 'ok', serial = 'x',"
				      " ended_at = 'now'", NULL, NULL, NULL), SQLITE_OK);
	long long n = 0;
	assert_string_equal(broken_invariant(h, &n), "ok attempts missing a field");
	assert_int_equal(n, 1);
	/* Completed phases, still no board row: the next invariant catches it. */
	assert_int_equal(sqlite3_exec(h, "UPDATE attempts SET bootstrap_ms = 1, triage_ms = 1,"
				      " provision_ms = 1, verify_ms = 1, phase_reached = 'record'",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_string_equal(broken_invariant(h, &n), "ok attempts without their board row");
	sqlite3_close(h);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigkill_rounds),
		cmocka_unit_test(test_checker_catches_damage),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
