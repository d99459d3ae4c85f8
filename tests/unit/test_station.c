/* test_station: the engine with a fake discovery source and scripted flows:
 * a board re-enumerating between phases stays one job; a board that leaves
 * for good fails alone with "unplugged during <phase>"; excluded ports are
 * skipped and recorded; duplicates never start a second job; attempts cut
 * short by a crash are marked interrupted at start. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "station/station.h"

/* ---- fake discovery: devices are announced by the test itself ---------- */

static int fake_ops_control(struct transport *t, const struct usb_ctrl_setup *s, void *d, unsigned ms)
{
	return -EOPNOTSUPP;
}
static int fake_bulk_out(struct transport *t, const void *d, size_t n, unsigned ms) { return (int)n; }
static int fake_bulk_in(struct transport *t, void *d, size_t n, unsigned ms) { return 0; }
static void fake_close(struct transport *t) { free(t); }
static const struct transport_ops fake_tops = { fake_ops_control, fake_bulk_out, fake_bulk_in, fake_close };

static int opens;

static int fake_start(struct discovery *d, struct station *st) { return 0; }
static void fake_stop(struct discovery *d) {}
static int fake_open(struct discovery *d, const char *port, enum usb_role role, struct transport **out)
{
	struct transport *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->ops = &fake_tops;
	t->kind = TRANSPORT_SIM;
	snprintf(t->port_path, sizeof(t->port_path), "%s", port);
	__atomic_add_fetch(&opens, 1, __ATOMIC_SEQ_CST);
	*out = t;
	return 0;
}
static const struct discovery_ops fake_dops = { fake_start, fake_stop, fake_open };
static struct discovery fake_disc = { &fake_dops, NULL };

struct env {
	char dir[PATH_MAX - 64];
	char db[PATH_MAX];
	char logs[PATH_MAX];
	struct event_queue *q;
	struct station *st;
};

static bool deny_port_9(void *usrptr, const char *port)
{
	return strcmp(port, "1-9") != 0;
}

static void env_start(struct env *e, station_flow_fn flow)
{
	struct station_opts o = {
		.station_id = "test-station", .mode = DB_MODE_NAKED, .debounce_ms = 300,
		.permits = deny_port_9, .disc = &fake_disc, .flow = flow,
	};

	snprintf(e->dir, sizeof(e->dir), "%s/rpisb-station-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->db, sizeof(e->db), "%s/manufacturing.db", e->dir);
	snprintf(e->logs, sizeof(e->logs), "%s/log", e->dir);
	assert_int_equal(event_queue_new(&e->q), 0);
	o.db_path = e->db;
	o.log_dir = e->logs;
	o.events = e->q;
	assert_int_equal(station_new(&o, &e->st), 0);
	assert_int_equal(station_start(e->st), 0);
}

static void env_stop(struct env *e)
{
	char cmd[PATH_MAX + 16];
	struct event evs[64];
	size_t n;

	station_stop(e->st);
	station_free(e->st);
	while ((n = event_pop(e->q, evs, 64)) > 0)
		for (size_t i = 0; i < n; i++)
			event_clear(&evs[i]);
	event_queue_free(e->q);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
}

static void wait_idle(struct station *st)
{
	struct station_counts c;

	for (int i = 0; i < 500; i++) {
		station_get_counts(st, &c);
		if (c.active == 0)
			return;
		usleep(10000);
	}
	fail_msg("jobs did not finish");
}

static char *query1(const char *db, const char *sql)
{
	sqlite3 *h;
	sqlite3_stmt *s;
	char *out = NULL;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		out = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(h);
	return out ? out : strdup("(null)");
}

static void assert_query(const char *db, const char *sql, const char *want)
{
	char *got = query1(db, sql);

	if (strcmp(got, want) != 0)
		fail_msg("%s: got '%s', want '%s'", sql, got, want);
	free(got);
}

/* A flow that goes boot mode -> gadget across a re-enumeration it triggers. */
static int flow_reenumerating(struct job *job, void *usrptr)
{
	struct transport *t;
	int r;

	job_set_phase(job, PHASE_BOOTSTRAP);
	r = job_wait_device(job, USB_ROLE_BOOTROM, 1000, &t);
	if (r < 0)
		return r;
	job_set_serial(job, "c85be8ea");
	transport_close(t);
	/* The board reboots into the gadget: it leaves and comes back. */
	station_device_left(job_station(job), job_port(job));
	station_device_arrived(job_station(job), job_port(job), USB_ROLE_GADGET, 0x2712, "c561b701c85be8ea");
	job_set_phase(job, PHASE_TRIAGE);
	r = job_wait_device(job, USB_ROLE_GADGET, 1000, &t);
	if (r < 0)
		return r;
	job_set_serial(job, "c561b701c85be8ea");
	transport_close(t);
	job_set_phase(job, PHASE_PROVISION);
	job_progress(job, 50, 100);
	job_set_phase(job, PHASE_VERIFY);
	struct db_device_record rec = { .boardname = "5", .serial = job_serial(job),
					.secure = DB_FLAG_NO, .station_id = "test-station",
					.usb_port = job_port(job) };
	return job_record_device(job, &rec);
}

static void test_reenumeration_is_one_job(void **state)
{
	struct env e;
	struct station_counts c;

	opens = 0;
	env_start(&e, flow_reenumerating);
	station_device_arrived(e.st, "1-1.2", USB_ROLE_BOOTROM, 0x2712, "c85be8ea");
	wait_idle(e.st);
	station_get_counts(e.st, &c);
	assert_int_equal(c.done, 1);
	assert_int_equal(c.failed, 0);
	assert_int_equal(opens, 2);
	assert_query(e.db, "SELECT count(*) FROM attempts", "1");
	assert_query(e.db, "SELECT result || ' ' || serial || ' ' || usb_port FROM attempts",
		     "ok c561b701c85be8ea 1-1.2");
	assert_query(e.db, "SELECT bootstrap_ms IS NOT NULL AND triage_ms IS NOT NULL AND "
			   "provision_ms IS NOT NULL FROM attempts", "1");
	assert_query(e.db, "SELECT count(*) FROM devices WHERE serial = 'c561b701c85be8ea'", "1");
	/* The logs moved to the serial's directory. */
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/c561b701c85be8ea", e.logs);
	assert_int_equal(access(path, F_OK), 0);
	env_stop(&e);
}

/* A flow that waits for a gadget that never comes (the board was pulled). */
static int flow_unplugged(struct job *job, void *usrptr)
{
	struct transport *t;
	int r;

	job_set_phase(job, PHASE_BOOTSTRAP);
	r = job_wait_device(job, USB_ROLE_BOOTROM, 1000, &t);
	if (r < 0)
		return r;
	transport_close(t);
	station_device_left(job_station(job), job_port(job));
	job_set_phase(job, PHASE_TRIAGE);
	return job_wait_device(job, USB_ROLE_GADGET, 10000, &t);
}

static void test_unplug_fails_alone(void **state)
{
	struct env e;
	struct station_counts c;

	env_start(&e, flow_unplugged);
	station_device_arrived(e.st, "1-1.3", USB_ROLE_BOOTROM, 0x2712, "0badf00d");
	wait_idle(e.st);
	station_get_counts(e.st, &c);
	assert_int_equal(c.failed, 1);
	assert_query(e.db, "SELECT result || ': ' || error_message || ' @' || phase_reached FROM attempts",
		     "failed: unplugged during triage @triage");
	assert_query(e.db, "SELECT error_code FROM attempts", "19"); /* ENODEV */
	env_stop(&e);
}

static int flow_slow(struct job *job, void *usrptr)
{
	struct transport *t;
	int r = job_wait_device(job, USB_ROLE_BOOTROM, 1000, &t);

	if (r < 0)
		return r;
	transport_close(t);
	usleep(100000);
	return JOB_HELD;
}

static void test_excluded_and_duplicates(void **state)
{
	struct env e;
	struct station_counts c;

	opens = 0;
	env_start(&e, flow_slow);
	station_device_arrived(e.st, "1-9", USB_ROLE_BOOTROM, 0x2712, "11112222");   /* excluded */
	station_device_arrived(e.st, "1-1", USB_ROLE_BOOTROM, 0x2712, "33334444");
	station_device_arrived(e.st, "1-1", USB_ROLE_BOOTROM, 0x2712, "33334444");   /* duplicate */
	station_device_arrived(e.st, "1-2", USB_ROLE_BOOTROM, 0x2712, "33334444");   /* same board elsewhere */
	station_device_arrived(e.st, "1-7", 0, 0x2712, "");                          /* not ours */
	wait_idle(e.st);
	station_get_counts(e.st, &c);
	assert_int_equal(c.excluded, 1);
	assert_int_equal(c.held, 1);
	assert_int_equal(c.done + c.failed, 0);
	assert_int_equal(opens, 1);
	assert_query(e.db, "SELECT count(*) FROM attempts", "1");
	assert_query(e.db, "SELECT result || ' ' || error_message FROM attempts", "skipped held after waiting");
	assert_query(e.db, "SELECT state || ' ' || usb_port FROM events WHERE state = 'PORT-EXCLUDED'",
		     "PORT-EXCLUDED 1-9");
	env_stop(&e);
}

static int flow_never(struct job *job, void *usrptr)
{
	return -EIO;
}

static void test_crash_recovery_marks_interrupted(void **state)
{
	struct env e;
	struct db *db;
	int64_t id;
	struct db_attempt_start a = { .usb_port = "1-4", .mode = DB_MODE_NAKED, .station_id = "x" };

	env_start(&e, flow_never);
	station_stop(e.st);
	station_free(e.st);
	/* A previous run died with an attempt running. */
	assert_int_equal(db_open(e.db, 0, &db), 0);
	assert_int_equal(db_attempt_begin(db, &a, &id), 0);
	db_close(db);
	struct station_opts o = { .station_id = "test-station", .mode = DB_MODE_NAKED,
				  .debounce_ms = 100, .disc = &fake_disc, .flow = flow_never,
				  .db_path = e.db, .log_dir = e.logs, .events = e.q };
	assert_int_equal(station_new(&o, &e.st), 0);
	assert_int_equal(station_start(e.st), 0);
	assert_query(e.db, "SELECT result FROM attempts", "interrupted");
	env_stop(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reenumeration_is_one_job),
		cmocka_unit_test(test_unplug_fails_alone),
		cmocka_unit_test(test_excluded_and_duplicates),
		cmocka_unit_test(test_crash_recovery_marks_interrupted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
