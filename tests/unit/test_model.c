/* test_model: events fold into the tiles an operator sees: ports sorted as
 * a person reads them, a board's run from arrival to done or failed (with
 * phase and reason), the log tail, counts and boards per hour, and clearing
 * finished tiles. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "station/model.h"

static uint64_t seq;

static void ev(struct station_model *m, enum event_type type, const char *port, enum phase p,
	       const char *text, uint64_t t_ms)
{
	struct event e = { .type = type, .phase = p, .seq = ++seq, .mono_ns = t_ms * 1000000ull };

	snprintf(e.port, sizeof(e.port), "%s", port);
	e.text = (char *)(uintptr_t)text;
	assert_int_equal(model_apply(m, &e), 0);
}

static void test_ports_sorted_numerically(void **state)
{
	static const char *in[] = { "1-1.10", "1-1.2", "2-1", "1-1.1", "10-1", "1-1.2.3" };
	static const char *want[] = { "1-1.1", "1-1.2", "1-1.2.3", "1-1.10", "2-1", "10-1" };
	struct station_model m;

	(void)state;
	model_init(&m);
	for (size_t i = 0; i < 6; i++)
		ev(&m, EVENT_PORT_ADDED, in[i], PHASE_WAITING, "board in USB boot mode", i);
	assert_int_equal(m.n, 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(m.tiles[i].port, want[i]);
	assert_non_null(model_find(&m, "1-1.10"));
	assert_null(model_find(&m, "1-1.3"));
	assert_int_equal(m.last_seq, seq);
	model_free(&m);
}

static void test_board_run_done_and_failed(void **state)
{
	struct station_model m;
	struct tile *t;
	struct event e = { .type = EVENT_PROGRESS, .phase = PHASE_PROVISION };

	(void)state;
	model_init(&m);
	ev(&m, EVENT_PORT_ADDED, "1-1", PHASE_WAITING, "board in USB boot mode", 1000);
	ev(&m, EVENT_PORT_ADDED, "1-2", PHASE_WAITING, "board in USB boot mode", 1000);
	assert_int_equal(m.counts.in_progress, 2);
	ev(&m, EVENT_PHASE, "1-1", PHASE_BOOTSTRAP, NULL, 1100);
	ev(&m, EVENT_PHASE, "1-1", PHASE_PROVISION, NULL, 2000);
	/* 100 MB in 4 s of the phase: 25 MB/s. */
	snprintf(e.port, sizeof(e.port), "1-1");
	snprintf(e.serial, sizeof(e.serial), "c561b701c85be8ea");
	e.mono_ns = 6000ull * 1000000ull;
	e.bytes = 100000000;
	e.total = 400000000;
	assert_int_equal(model_apply(&m, &e), 0);
	t = model_find(&m, "1-1");
	assert_string_equal(t->serial, "c561b701c85be8ea");
	assert_true(t->mbps > 24.9 && t->mbps < 25.1);
	assert_int_equal(t->total, 400000000);
	ev(&m, EVENT_PHASE, "1-1", PHASE_VERIFY, NULL, 9000);
	assert_int_equal(t->bytes, 0); /* a new phase starts its own progress */
	ev(&m, EVENT_PHASE, "1-1", PHASE_DONE, NULL, 10000);
	assert_int_equal(t->phase, PHASE_DONE);
	assert_int_equal(t->finished_ns, 10000ull * 1000000ull);
	assert_int_equal(m.counts.done, 1);
	assert_int_equal(m.counts.in_progress, 1);

	ev(&m, EVENT_PHASE, "1-2", PHASE_TRIAGE, NULL, 1500);
	struct event err = { .type = EVENT_ERROR, .phase = PHASE_TRIAGE, .code = -ETIMEDOUT,
			     .mono_ns = 3000ull * 1000000ull };
	snprintf(err.port, sizeof(err.port), "1-2");
	err.text = (char *)(uintptr_t)"the board did not come back as a fastboot gadget within 30 s";
	assert_int_equal(model_apply(&m, &err), 0);
	ev(&m, EVENT_PHASE, "1-2", PHASE_FAILED, NULL, 3001);
	t = model_find(&m, "1-2");
	assert_int_equal(t->phase, PHASE_FAILED);
	assert_int_equal(t->failed_in, PHASE_TRIAGE);
	assert_int_equal(t->code, -ETIMEDOUT);
	assert_non_null(strstr(t->reason, "fastboot gadget"));
	assert_int_equal(m.counts.failed, 1);
	assert_int_equal(m.counts.in_progress, 0);

	/* A new board on the failed port starts a clean tile. */
	ev(&m, EVENT_PORT_ADDED, "1-2", PHASE_WAITING, "fastboot gadget", 20000);
	assert_int_equal(t->phase, PHASE_WAITING);
	assert_string_equal(t->reason, "");
	assert_int_equal(t->code, 0);
	assert_string_equal(t->what, "fastboot gadget");
	assert_int_equal(m.counts.failed, 1); /* counts are history */
	model_free(&m);
}

static void test_log_ring(void **state)
{
	struct station_model m;
	char line[32];
	struct tile *t;

	(void)state;
	model_init(&m);
	for (int i = 0; i < MODEL_LOG_LINES + 5; i++) {
		snprintf(line, sizeof(line), "line %d", i);
		ev(&m, EVENT_LOG, "1-1", PHASE_BOOTSTRAP, line, (uint64_t)i);
	}
	t = model_find(&m, "1-1");
	assert_int_equal(t->log_count, MODEL_LOG_LINES);
	snprintf(line, sizeof(line), "line %d", MODEL_LOG_LINES + 4);
	assert_string_equal(tile_log_line(t, 0), line);
	assert_string_equal(tile_log_line(t, MODEL_LOG_LINES - 1), "line 5");
	assert_null(tile_log_line(t, MODEL_LOG_LINES));
	model_free(&m);
}

/* Sixteen boards finishing within 0.2 s of each other: no rate until a
 * minute has passed since the first, then a sane one. */
static void test_rate_after_a_burst(void **state)
{
	struct station_model m;
	uint64_t t0 = 5000; /* ms */

	(void)state;
	model_init(&m);
	for (int i = 0; i < 16; i++) {
		char port[8];

		snprintf(port, sizeof(port), "2-%d", i);
		ev(&m, EVENT_PORT_ADDED, port, PHASE_WAITING, "x", t0);
		ev(&m, EVENT_PHASE, port, PHASE_DONE, NULL, t0 + 10 * (uint64_t)i);
	}
	assert_int_equal(m.counts.done, 16);
	assert_true(model_boards_per_hour(&m, (t0 + 170) * 1000000ull) == 0);
	assert_true(model_boards_per_hour(&m, (t0 + 30000) * 1000000ull) == 0);
	/* 15 boards after the first, over one minute: 900 an hour. */
	double bph = model_boards_per_hour(&m, t0 * 1000000ull + MODEL_RATE_MIN_NS);
	assert_true(bph > 899.9 && bph < 900.1);
	model_free(&m);
}

static void test_clear_finished_and_rate(void **state)
{
	struct station_model m;

	(void)state;
	model_init(&m);
	/* 1-1 done and taken away; 1-2 done, still plugged in; 1-3 running;
	 * 1-4 excluded and still there; 1-5 failed and taken away. */
	for (int i = 1; i <= 5; i++) {
		char port[8];

		snprintf(port, sizeof(port), "1-%d", i);
		ev(&m, EVENT_PORT_ADDED, port, i == 4 ? PHASE_EXCLUDED : PHASE_WAITING, "x", 0);
	}
	ev(&m, EVENT_PHASE, "1-1", PHASE_DONE, NULL, 60000);
	ev(&m, EVENT_PORT_REMOVED, "1-1", PHASE_WAITING, NULL, 60001);
	ev(&m, EVENT_PHASE, "1-2", PHASE_DONE, NULL, 120000);
	ev(&m, EVENT_PHASE, "1-3", PHASE_PROVISION, NULL, 1000);
	ev(&m, EVENT_PHASE, "1-5", PHASE_FAILED, NULL, 2000);
	ev(&m, EVENT_PORT_REMOVED, "1-5", PHASE_WAITING, NULL, 2001);
	assert_int_equal(m.counts.excluded, 1);
	assert_string_equal(model_find(&m, "1-5")->reason, "failed");
	/* Two boards a minute apart: 60 an hour. */
	double bph = model_boards_per_hour(&m, 120000ull * 1000000ull);
	assert_true(bph > 59.9 && bph < 60.1);
	assert_true(model_boards_per_hour(&m, 0) == 0);
	/* A minute after the first finished board at the earliest: before
	 * that, a burst would read as an absurd rate. */
	assert_true(model_boards_per_hour(&m, 60000ull * 1000000ull + MODEL_RATE_MIN_NS - 1) == 0);
	bph = model_boards_per_hour(&m, 60000ull * 1000000ull + MODEL_RATE_MIN_NS);
	assert_true(bph > 59.9 && bph < 60.1);

	model_clear_finished(&m);
	assert_int_equal(m.n, 3);
	assert_null(model_find(&m, "1-1"));
	assert_null(model_find(&m, "1-5"));
	assert_int_equal(model_find(&m, "1-2")->phase, PHASE_WAITING);
	assert_true(model_find(&m, "1-2")->present);
	assert_int_equal(model_find(&m, "1-3")->phase, PHASE_PROVISION);
	assert_int_equal(model_find(&m, "1-4")->phase, PHASE_EXCLUDED);
	assert_int_equal(m.counts.in_progress, 1);
	model_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ports_sorted_numerically),
		cmocka_unit_test(test_board_run_done_and_failed),
		cmocka_unit_test(test_log_ring),
		cmocka_unit_test(test_rate_after_a_burst),
		cmocka_unit_test(test_clear_finished_and_rate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
