/* events: a multi-producer, single-consumer queue of typed board events,
 * with an eventfd for the consumer's poll loop, and their two renderings
 * (a human line and a JSON object).
 * event_push: any thread. event_pop and the renderers: the front-end thread. */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "station/events.h"

#define EVENT_QUEUE_MAX 65536

struct event_queue {
	pthread_mutex_t lock;
	struct event *ring;
	size_t cap, head, count;     /* ring buffer of pending events */
	uint64_t next_seq;
	uint64_t dropped;
	int efd;
};

static const char *const phase_names[PHASE_COUNT] = {
	[PHASE_WAITING] = "waiting",
	[PHASE_BOOTSTRAP] = "bootstrap",
	[PHASE_TRIAGE] = "triage",
	[PHASE_PROVISION] = "provision",
	[PHASE_VERIFY] = "verify",
	[PHASE_DONE] = "done",
	[PHASE_FAILED] = "failed",
	[PHASE_EXCLUDED] = "excluded",
	[PHASE_HELD] = "held",
};

static const char *const type_names[EVENT_TYPE_COUNT] = {
	[EVENT_PORT_ADDED] = "port-added",
	[EVENT_PORT_REMOVED] = "port-removed",
	[EVENT_PHASE] = "phase",
	[EVENT_PROGRESS] = "progress",
	[EVENT_LOG] = "log",
	[EVENT_ERROR] = "error",
	[EVENT_RECORD] = "record",
};

const char *phase_name(enum phase p)
{
	return (unsigned)p < PHASE_COUNT ? phase_names[p] : "unknown";
}

const char *event_type_name(enum event_type t)
{
	return (unsigned)t < EVENT_TYPE_COUNT ? type_names[t] : "unknown";
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int event_queue_new(struct event_queue **out)
{
	struct event_queue *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->cap = 256;
	q->ring = calloc(q->cap, sizeof(*q->ring));
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!q->ring || q->efd < 0) {
		int r = q->efd < 0 ? -errno : -ENOMEM;

		if (q->efd >= 0)
			close(q->efd);
		free(q->ring);
		free(q);
		return r;
	}
	pthread_mutex_init(&q->lock, NULL);
	q->next_seq = 1;
	*out = q;
	return 0;
}

void event_clear(struct event *ev)
{
	free(ev->text);
	ev->text = NULL;
}

void event_queue_free(struct event_queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->count; i++)
		event_clear(&q->ring[(q->head + i) % q->cap]);
	free(q->ring);
	close(q->efd);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

int event_queue_fd(const struct event_queue *q)
{
	return q->efd;
}

uint64_t event_queue_dropped(const struct event_queue *q)
{
	return __atomic_load_n(&q->dropped, __ATOMIC_RELAXED);
}

static int ring_grow(struct event_queue *q)
{
	size_t ncap = q->cap * 2;
	struct event *n = calloc(ncap, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < q->count; i++)
		n[i] = q->ring[(q->head + i) % q->cap];
	free(q->ring);
	q->ring = n;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

/* Drop the oldest droppable (progress or log) event; false when none is. */
static bool ring_drop_one(struct event_queue *q)
{
	for (size_t i = 0; i < q->count; i++) {
		size_t at = (q->head + i) % q->cap;
		enum event_type t = q->ring[at].type;

		if (t != EVENT_PROGRESS && t != EVENT_LOG)
			continue;
		event_clear(&q->ring[at]);
		/* Move the (few) older kept events up one slot, then advance the head:
		 * the cost is the number of kept events before it, not the queue size. */
		for (size_t j = i; j > 0; j--)
			q->ring[(q->head + j) % q->cap] = q->ring[(q->head + j - 1) % q->cap];
		memset(&q->ring[q->head], 0, sizeof(q->ring[q->head]));
		q->head = (q->head + 1) % q->cap;
		q->count--;
		__atomic_add_fetch(&q->dropped, 1, __ATOMIC_RELAXED);
		return true;
	}
	return false;
}

int event_push(struct event_queue *q, const struct event *ev)
{
	struct event copy = *ev;
	uint64_t one = 1;
	int r = 0;

	copy.text = NULL;
	if (ev->text && !(copy.text = strdup(ev->text)))
		return -ENOMEM;
	copy.port[sizeof(copy.port) - 1] = '\0';
	copy.serial[sizeof(copy.serial) - 1] = '\0';

	pthread_mutex_lock(&q->lock);
	if (q->count == q->cap) {
		if (q->cap < EVENT_QUEUE_MAX)
			r = ring_grow(q);
		else if (!ring_drop_one(q))
			r = -ENOBUFS;
	}
	if (r == 0) {
		copy.seq = q->next_seq++;
		copy.mono_ns = now_ns();
		q->ring[(q->head + q->count) % q->cap] = copy;
		q->count++;
	}
	pthread_mutex_unlock(&q->lock);
	if (r < 0) {
		free(copy.text);
		return r;
	}
	/* Wake the consumer; a full counter only means it is already readable. */
	if (write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

size_t event_pop(struct event_queue *q, struct event *out, size_t max)
{
	uint64_t drain;
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	while (n < max && q->count > 0) {
		out[n++] = q->ring[q->head];
		memset(&q->ring[q->head], 0, sizeof(q->ring[q->head]));
		q->head = (q->head + 1) % q->cap;
		q->count--;
	}
	if (q->count == 0) {
		/* Reset readiness under the lock so a concurrent push re-arms it. */
		if (read(q->efd, &drain, sizeof(drain)) < 0) {
			/* EAGAIN: nothing to drain */
		}
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

int event_format_line(const struct event *ev, uint64_t start_ns, char *buf, size_t len)
{
	uint64_t rel = ev->mono_ns > start_ns ? ev->mono_ns - start_ns : 0;
	char detail[160] = "";
	int n;

	switch (ev->type) {
	case EVENT_PHASE:
		snprintf(detail, sizeof(detail), "-> %s", phase_name(ev->phase));
		break;
	case EVENT_PROGRESS:
		snprintf(detail, sizeof(detail), "%s %" PRIu64 "/%" PRIu64 " bytes",
			 phase_name(ev->phase), ev->bytes, ev->total);
		break;
	case EVENT_ERROR:
		snprintf(detail, sizeof(detail), "failed in %s (%s):", phase_name(ev->phase),
			 ev->code ? strerrorname_np(-ev->code) ? strerrorname_np(-ev->code) : "error" : "error");
		break;
	default:
		snprintf(detail, sizeof(detail), "%s", event_type_name(ev->type));
		break;
	}
	n = snprintf(buf, len, "[+%" PRIu64 ".%03us] %s %s %s%s%s", rel / 1000000000u,
		     (unsigned)(rel / 1000000u % 1000u), ev->port[0] ? ev->port : "-",
		     ev->serial[0] ? ev->serial : "-", detail, ev->text ? " " : "",
		     ev->text ? ev->text : "");
	return n < 0 ? -EINVAL : n;
}

char *event_to_json(const struct event *ev)
{
	json_object *o = json_object_new_object();
	char *s = NULL;

	if (!o)
		return NULL;
	json_object_object_add(o, "seq", json_object_new_int64((int64_t)ev->seq));
	json_object_object_add(o, "mono_ns", json_object_new_int64((int64_t)ev->mono_ns));
	json_object_object_add(o, "type", json_object_new_string(event_type_name(ev->type)));
	json_object_object_add(o, "port", json_object_new_string(ev->port));
	json_object_object_add(o, "serial", ev->serial[0] ? json_object_new_string(ev->serial) : NULL);
	json_object_object_add(o, "phase", json_object_new_string(phase_name(ev->phase)));
	if (ev->type == EVENT_PROGRESS) {
		json_object_object_add(o, "bytes", json_object_new_int64((int64_t)ev->bytes));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)ev->total));
	}
	if (ev->type == EVENT_ERROR) {
		json_object_object_add(o, "code", json_object_new_int(ev->code));
		json_object_object_add(o, "code_name",
			json_object_new_string(ev->code && strerrorname_np(-ev->code) ?
					       strerrorname_np(-ev->code) : ""));
	}
	if (ev->text)
		json_object_object_add(o, "text", json_object_new_string(ev->text));
	const char *js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (js)
		s = strdup(js);
	json_object_put(o);
	return s;
}
