/* test_events: the event queue keeps order, wakes the consumer, survives many
 * producers, bounds its memory, and renders lines and JSON an MES can parse. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "station/events.h"

static void test_order_and_wakeup(void **state)
{
	struct event_queue *q;
	struct event out[8];
	struct pollfd pfd;

	assert_int_equal(event_queue_new(&q), 0);
	pfd = (struct pollfd){ .fd = event_queue_fd(q), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 0);

	for (int i = 0; i < 3; i++) {
		struct event ev = { .type = EVENT_PHASE, .phase = PHASE_BOOTSTRAP + i };
		strcpy(ev.port, "1-1.2");
		assert_int_equal(event_push(q, &ev), 0);
	}
	assert_int_equal(poll(&pfd, 1, 0), 1);
	assert_int_equal(event_pop(q, out, 8), 3);
	assert_int_equal(poll(&pfd, 1, 0), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(out[i].phase, PHASE_BOOTSTRAP + i);
		assert_int_equal(out[i].seq, (uint64_t)i + 1);
		if (i)
			assert_true(out[i].mono_ns >= out[i - 1].mono_ns);
		event_clear(&out[i]);
	}
	event_queue_free(q);
}

struct producer { struct event_queue *q; int id; };

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < 2000; i++) {
		struct event ev = { .type = EVENT_LOG, .code = i };
		char text[32];

		snprintf(ev.port, sizeof(ev.port), "1-%d", p->id);
		snprintf(text, sizeof(text), "line %d", i);
		ev.text = text;
		if (event_push(p->q, &ev) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_many_producers_keep_per_port_order(void **state)
{
	struct event_queue *q;
	struct producer prod[4];
	pthread_t th[4];
	int last[4] = { -1, -1, -1, -1 };
	uint64_t seq = 0;
	size_t total = 0, n;
	struct event out[256];

	assert_int_equal(event_queue_new(&q), 0);
	for (int i = 0; i < 4; i++) {
		prod[i] = (struct producer){ q, i };
		pthread_create(&th[i], NULL, produce, &prod[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		assert_null(rv);
	}
	while ((n = event_pop(q, out, 256)) > 0) {
		for (size_t i = 0; i < n; i++) {
			int id = out[i].port[2] - '0';

			assert_true(out[i].seq > seq);
			seq = out[i].seq;
			assert_int_equal(out[i].code, last[id] + 1);
			last[id] = out[i].code;
			event_clear(&out[i]);
		}
		total += n;
	}
	assert_int_equal(total, 8000);
	assert_int_equal(event_queue_dropped(q), 0);
	event_queue_free(q);
}

static void test_full_queue_drops_progress_not_phases(void **state)
{
	struct event_queue *q;
	struct event out[512];
	size_t n, phases = 0, total = 0;

	assert_int_equal(event_queue_new(&q), 0);
	struct event ph = { .type = EVENT_PHASE, .phase = PHASE_TRIAGE };
	assert_int_equal(event_push(q, &ph), 0);
	for (int i = 0; i < 70000; i++) {
		struct event ev = { .type = EVENT_PROGRESS, .bytes = (uint64_t)i, .total = 70000 };
		assert_int_equal(event_push(q, &ev), 0);
	}
	assert_true(event_queue_dropped(q) >= 70001 - 65536);
	while ((n = event_pop(q, out, 512)) > 0) {
		for (size_t i = 0; i < n; i++) {
			phases += out[i].type == EVENT_PHASE;
			event_clear(&out[i]);
		}
		total += n;
	}
	assert_int_equal(phases, 1);
	assert_int_equal(total, 65536);
	event_queue_free(q);
}

static void test_renderings(void **state)
{
	char text1[] = "unplugged during provision";
	char text2[] = "bad \"name\"\n\x01";
	struct event ev = { .type = EVENT_ERROR, .phase = PHASE_PROVISION, .code = -ENODEV,
			    .mono_ns = 2500000000ull, .seq = 7, .text = text1 };
	char line[256];
	char *js;
	json_object *o, *v;

	strcpy(ev.port, "1-1.3");
	strcpy(ev.serial, "c561b701c85be8ea");
	assert_true(event_format_line(&ev, 1000000000ull, line, sizeof(line)) > 0);
	assert_string_equal(line, "[+1.500s] 1-1.3 c561b701c85be8ea failed in provision (ENODEV): "
				  "unplugged during provision");

	js = event_to_json(&ev);
	assert_non_null(js);
	o = json_tokener_parse(js);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "type", &v));
	assert_string_equal(json_object_get_string(v), "error");
	assert_true(json_object_object_get_ex(o, "code_name", &v));
	assert_string_equal(json_object_get_string(v), "ENODEV");
	assert_true(json_object_object_get_ex(o, "seq", &v));
	assert_int_equal(json_object_get_int64(v), 7);
	json_object_put(o);
	free(js);

	/* A hostile text (quotes, control characters) still yields valid JSON. */
	ev.text = text2;
	js = event_to_json(&ev);
	o = json_tokener_parse(js);
	assert_non_null(o);
	json_object_put(o);
	free(js);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_wakeup),
		cmocka_unit_test(test_many_producers_keep_per_port_order),
		cmocka_unit_test(test_full_queue_drops_progress_not_phases),
		cmocka_unit_test(test_renderings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
