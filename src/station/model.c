/* model: the station as a front end sees it, folded from the event stream
 * (see model.h). One tile per port, kept sorted by port path; a tile's
 * lifetime is a job's: a port-added event starts it afresh, phase events move
 * it, an error says why it failed. Counts are kept since the model started.
 * Whichever thread owns the model calls these; nothing here locks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "station/model.h"

void model_init(struct station_model *m)
{
	memset(m, 0, sizeof(*m));
}

void model_free(struct station_model *m)
{
	free(m->tiles);
	memset(m, 0, sizeof(*m));
}

/* Port paths compare numerically by their digit runs: 1-1.2 < 1-1.10. */
static int port_cmp(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			const char *ea = a, *eb = b;

			while (*a == '0' && a[1] >= '0' && a[1] <= '9')
				a++;
			while (*b == '0' && b[1] >= '0' && b[1] <= '9')
				b++;
			for (ea = a; *ea >= '0' && *ea <= '9'; ea++)
				;
			for (eb = b; *eb >= '0' && *eb <= '9'; eb++)
				;
			if (ea - a != eb - b)
				return ea - a < eb - b ? -1 : 1;
			int c = strncmp(a, b, (size_t)(ea - a));
			if (c)
				return c;
			a = ea;
			b = eb;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	return *a ? 1 : *b ? -1 : 0;
}

struct tile *model_find(struct station_model *m, const char *port)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = port_cmp(m->tiles[mid].port, port);

		if (c == 0)
			return &m->tiles[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct tile *model_tile(struct station_model *m, const char *port)
{
	struct tile *t = model_find(m, port);
	size_t at = 0;

	if (t)
		return t;
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 16;
		struct tile *nt = realloc(m->tiles, ncap * sizeof(*nt));

		if (!nt)
			return NULL;
		m->tiles = nt;
		m->cap = ncap;
	}
	while (at < m->n && port_cmp(m->tiles[at].port, port) < 0)
		at++;
	memmove(&m->tiles[at + 1], &m->tiles[at], (m->n - at) * sizeof(*t));
	m->n++;
	t = &m->tiles[at];
	memset(t, 0, sizeof(*t));
	snprintf(t->port, sizeof(t->port), "%s", port);
	t->phase = PHASE_WAITING;
	return t;
}

static bool phase_final(enum phase p)
{
	return p == PHASE_DONE || p == PHASE_FAILED || p == PHASE_HELD || p == PHASE_EXCLUDED;
}

static bool phase_running(enum phase p)
{
	return p >= PHASE_BOOTSTRAP && p <= PHASE_VERIFY;
}

static void tile_log(struct tile *t, const char *line)
{
	unsigned at = (t->log_head + t->log_count) % MODEL_LOG_LINES;

	if (t->log_count == MODEL_LOG_LINES) {
		at = t->log_head;
		t->log_head = (t->log_head + 1) % MODEL_LOG_LINES;
	} else {
		t->log_count++;
	}
	snprintf(t->log[at], sizeof(t->log[at]), "%s", line);
}

const char *tile_log_line(const struct tile *t, unsigned i)
{
	if (i >= t->log_count)
		return NULL;
	return t->log[(t->log_head + t->log_count - 1 - i) % MODEL_LOG_LINES];
}

/* A job starts on the tile: forget the previous board's run. */
static void tile_reset(struct tile *t)
{
	t->phase = PHASE_WAITING;
	t->failed_in = PHASE_WAITING;
	t->code = 0;
	t->reason[0] = '\0';
	t->bytes = t->total = 0;
	t->mbps = 0;
	t->started_ns = t->phase_ns = t->finished_ns = 0;
	t->serial[0] = '\0';
	t->log_head = t->log_count = 0;
}

static void count_in_progress(struct station_model *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->n; i++)
		if (m->tiles[i].started_ns && !m->tiles[i].finished_ns)
			n++;
	m->counts.in_progress = n;
}

static void tile_phase(struct station_model *m, struct tile *t, const struct event *ev)
{
	enum phase p = ev->phase;

	if ((unsigned)p >= PHASE_COUNT)
		return;
	t->phase = p;
	t->phase_ns = ev->mono_ns;
	t->bytes = t->total = 0;
	t->mbps = 0;
	if (phase_running(p) && !t->started_ns)
		t->started_ns = ev->mono_ns;
	if (!phase_final(p))
		return;
	t->finished_ns = ev->mono_ns;
	switch (p) {
	case PHASE_DONE:
		m->counts.done++;
		if (!m->first_done_ns)
			m->first_done_ns = ev->mono_ns;
		break;
	case PHASE_FAILED:
		m->counts.failed++;
		if (!t->reason[0])
			snprintf(t->reason, sizeof(t->reason), "failed");
		break;
	case PHASE_HELD:
		m->counts.held++;
		if (!t->reason[0])
			snprintf(t->reason, sizeof(t->reason), "held");
		break;
	default:
		break;
	}
}

int model_apply(struct station_model *m, const struct event *ev)
{
	struct tile *t;

	if (ev->seq > m->last_seq)
		m->last_seq = ev->seq;
	if (!ev->port[0])
		return 0;
	t = model_tile(m, ev->port);
	if (!t)
		return -ENOMEM;
	switch (ev->type) {
	case EVENT_PORT_ADDED:
		tile_reset(t);
		t->present = true;
		snprintf(t->what, sizeof(t->what), "%s", ev->text ? ev->text : "");
		if (ev->phase == PHASE_EXCLUDED) {
			t->phase = PHASE_EXCLUDED;
			t->phase_ns = t->finished_ns = ev->mono_ns;
			snprintf(t->reason, sizeof(t->reason), "%s", ev->text ? ev->text : "excluded");
			m->counts.excluded++;
		} else {
			t->started_ns = t->phase_ns = ev->mono_ns;
		}
		break;
	case EVENT_PORT_REMOVED:
		t->present = false;
		if (!t->finished_ns && !t->started_ns)
			t->what[0] = '\0';
		break;
	case EVENT_PHASE:
		tile_phase(m, t, ev);
		break;
	case EVENT_PROGRESS:
		t->bytes = ev->bytes;
		t->total = ev->total;
		/* The phase's average rate: steady enough to read, no state kept. */
		if (ev->mono_ns > t->phase_ns && t->phase_ns)
			t->mbps = (double)ev->bytes / 1e6 / ((double)(ev->mono_ns - t->phase_ns) / 1e9);
		break;
	case EVENT_LOG:
		if (ev->text)
			tile_log(t, ev->text);
		break;
	case EVENT_ERROR:
		t->failed_in = (unsigned)ev->phase < PHASE_COUNT ? ev->phase : PHASE_WAITING;
		t->code = ev->code;
		snprintf(t->reason, sizeof(t->reason), "%s", ev->text ? ev->text : "failed");
		break;
	case EVENT_RECORD:
	case EVENT_TYPE_COUNT:
		break;
	}
	if (ev->serial[0] && (strlen(ev->serial) >= strlen(t->serial)))
		snprintf(t->serial, sizeof(t->serial), "%s", ev->serial);
	count_in_progress(m);
	return 0;
}

void model_clear_finished(struct station_model *m)
{
	size_t out = 0;

	for (size_t i = 0; i < m->n; i++) {
		struct tile *t = &m->tiles[i];

		if (phase_final(t->phase) && !t->present)
			continue;
		if (phase_final(t->phase) && t->phase != PHASE_EXCLUDED) {
			char what[MODEL_TEXT];

			memcpy(what, t->what, sizeof(what));
			tile_reset(t);
			memcpy(t->what, what, sizeof(what));
		}
		if (out != i)
			m->tiles[out] = *t;
		out++;
	}
	m->n = out;
	count_in_progress(m);
}

double model_boards_per_hour(const struct station_model *m, uint64_t now_ns)
{
	double hours;

	/* Unknown until a minute after the first finished board, so a burst of
	 * boards finishing together (a parallel run, a rehearsal) does not read
	 * as thousands an hour. */
	if (!m->first_done_ns || now_ns < m->first_done_ns + MODEL_RATE_MIN_NS || m->counts.done < 2)
		return 0;
	hours = (double)(now_ns - m->first_done_ns) / 3.6e12;
	/* The first board starts the clock; the others are the rate. */
	return hours > 0 ? (double)(m->counts.done - 1) / hours : 0;
}
