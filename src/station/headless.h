/* headless: the front end without a screen. It drains the event queue and
 * prints one human line per event (`daemon --log`, `simulate --headless`) or
 * one JSON object per line (`--events-json`, for an MES). Front-end thread. */
#ifndef RPI_SB_STATION_HEADLESS_H
#define RPI_SB_STATION_HEADLESS_H

#include <stdbool.h>
#include <stdio.h>

#include "station/events.h"

struct headless_opts {
	FILE *out;
	bool json;            /* JSON lines instead of human lines */
	bool quiet_progress;  /* human lines: skip progress events (they are frequent) */
	bool quiet_logs;      /* human lines: skip board log lines */
};

/* Print every pending event; returns how many were printed. Non-blocking. */
size_t headless_drain(struct event_queue *q, const struct headless_opts *o, uint64_t start_ns);

#endif
