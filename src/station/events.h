/* events: the one way state reaches a front end.
 *
 * Workers (one thread per board) push typed events; the front-end thread
 * drains them and paints or prints. Each event carries {port, serial, seq,
 * monotonic time, type, payload}. The same stream feeds the TUI, the headless
 * line log and the JSON-lines output, so every view is one model. */
#ifndef RPI_SB_STATION_EVENTS_H
#define RPI_SB_STATION_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The phases a board goes through, in order; one source of truth for names. */
enum phase {
	PHASE_WAITING = 0,
	PHASE_BOOTSTRAP,
	PHASE_TRIAGE,
	PHASE_PROVISION,
	PHASE_VERIFY,
	PHASE_DONE,
	PHASE_FAILED,
	PHASE_EXCLUDED,
	PHASE_HELD,
	PHASE_COUNT
};

enum event_type {
	EVENT_PORT_ADDED = 0,   /* a port appeared (text: what is on it) */
	EVENT_PORT_REMOVED,     /* the board left the port */
	EVENT_PHASE,            /* phase changed (phase) */
	EVENT_PROGRESS,         /* bytes of total in the current phase */
	EVENT_LOG,              /* one line of the board's log (text) */
	EVENT_ERROR,            /* the board failed (phase reached, code, text) */
	EVENT_RECORD,           /* the manufacturing record was written */
	EVENT_TYPE_COUNT
};

struct event {
	uint64_t seq;           /* strictly increasing per queue */
	uint64_t mono_ns;       /* CLOCK_MONOTONIC at push */
	enum event_type type;
	char port[64];          /* kernel topology path B-P.P.P or a virtual port */
	char serial[17];        /* 16-hex serial, or "" while unknown */
	enum phase phase;
	int code;               /* negative errno for EVENT_ERROR, else 0 */
	uint64_t bytes, total;  /* EVENT_PROGRESS */
	char *text;             /* owned by the event; may be NULL */
};

const char *phase_name(enum phase p);           /* "bootstrap", ... */
const char *event_type_name(enum event_type t); /* "phase", ... */

struct event_queue;

/* Create a queue; its eventfd becomes readable while events are pending. */
int event_queue_new(struct event_queue **out);
void event_queue_free(struct event_queue *q);
int event_queue_fd(const struct event_queue *q);

/* Any thread. Copies @ev (and its text); assigns seq and time. 0 or -errno.
 * When the queue holds @max_pending events the oldest PROGRESS/LOG events are
 * dropped first so a stalled front end can never exhaust memory. */
int event_push(struct event_queue *q, const struct event *ev);

/* Front-end thread. Moves up to @max events into @out (caller frees each
 * with event_clear). Returns how many; 0 when none. */
size_t event_pop(struct event_queue *q, struct event *out, size_t max);
void event_clear(struct event *ev);

/* Events dropped because the queue was full (for the status bar). */
uint64_t event_queue_dropped(const struct event_queue *q);

/* One human line: "[+12.345s] 1-1.2 c561b701c85be8ea provision: ..." */
int event_format_line(const struct event *ev, uint64_t start_ns, char *buf, size_t len);
/* One JSON object (no newline) via json-c; caller frees. NULL on ENOMEM. */
char *event_to_json(const struct event *ev);

#endif
