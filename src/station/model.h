/* model: the station as a front end sees it, folded from the event stream.
 *
 * One tile per port (empty, excluded and busy alike). The daemon keeps one
 * model to send a snapshot to each viewer that attaches; each viewer (TUI,
 * `status`) keeps its own, fed by the snapshot and then by live events, so
 * every view shows the same state. Not thread-safe: one thread owns a model. */
#ifndef RPI_SB_STATION_MODEL_H
#define RPI_SB_STATION_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "station/events.h"

#define MODEL_LOG_LINES 64       /* per tile: the last board-log lines kept */
#define MODEL_TEXT 160

struct tile {
	char port[64];
	char serial[17];             /* "" while unknown */
	char what[MODEL_TEXT];       /* what is on the port: "Raspberry Pi 5 (boot mode)" */
	bool present;                /* a device is on the port now */
	enum phase phase;            /* current phase; DONE/FAILED/HELD/EXCLUDED are final */
	enum phase failed_in;        /* when phase == PHASE_FAILED: the phase it failed in */
	int code;                    /* -errno of the failure, 0 otherwise */
	char reason[MODEL_TEXT];     /* failure reason, hold or exclusion note */
	uint64_t bytes, total;       /* progress of the current long phase */
	double mbps;                 /* smoothed rate of the current phase, MB/s */
	uint64_t started_ns;         /* mono time the job started (0: idle) */
	uint64_t phase_ns;           /* mono time the current phase began */
	uint64_t finished_ns;        /* mono time it reached a final phase (0: running) */
	char log[MODEL_LOG_LINES][MODEL_TEXT]; /* ring of the last log lines */
	unsigned log_head, log_count;
};

struct model_counts {
	unsigned done, failed, in_progress, held, excluded;
};

struct station_model {
	struct tile *tiles;          /* sorted by port (numeric-aware: 1-1.2 < 1-1.10) */
	size_t n, cap;
	struct model_counts counts;  /* since the model started */
	uint64_t first_done_ns;      /* for boards per hour */
	uint64_t last_seq;
};

void model_init(struct station_model *m);
void model_free(struct station_model *m);
/* Fold one event in. 0 or -ENOMEM. */
int model_apply(struct station_model *m, const struct event *ev);
struct tile *model_find(struct station_model *m, const char *port);
/* The tile of @port, created (waiting, nothing present) when there is none;
 * NULL on ENOMEM. For a client filling its model from a snapshot. */
struct tile *model_tile(struct station_model *m, const char *port);
/* The i-th most recent log line of @t (0 = newest), NULL past the end. */
const char *tile_log_line(const struct tile *t, unsigned i);
/* Remove tiles in a final phase whose board has left the port; idle tiles of
 * present boards go back to waiting. */
void model_clear_finished(struct station_model *m);
/* Boards per hour: (finished boards - 1) over the time since the first
 * finished board. 0 (unknown) until MODEL_RATE_MIN_NS have passed since the
 * first finished board or while fewer than 2 have finished. */
#define MODEL_RATE_MIN_NS (60ull * 1000000000ull)
double model_boards_per_hour(const struct station_model *m, uint64_t now_ns);

#endif
