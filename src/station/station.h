/* station: the engine. Ports, device jobs and their worker threads.
 *
 * A discovery source (libusb/udev for real boards, the virtual USB bus for
 * `simulate`) reports devices arriving and leaving on ports. The station
 * decides with the port tracker whether an arrival starts a job, continues
 * one across re-enumeration, is a duplicate, or is on an excluded port; it
 * starts one worker thread per job, which runs the flow (bootstrap, triage,
 * provision, verify, record) and reports through typed events. Workers never
 * draw; the front end reads the event queue. */
#ifndef RPI_SB_STATION_STATION_H
#define RPI_SB_STATION_STATION_H

#include <stdbool.h>
#include <stdint.h>

#include "records/boardlog.h"
#include "records/db.h"
#include "station/events.h"
#include "station/ports.h"
#include "transport/transport.h"

struct station;
struct job;
struct discovery;

struct discovery_ops {
	/* Begin reporting devices with station_device_arrived()/left(), from any
	 * thread, starting with those already present. 0 or -errno. */
	int (*start)(struct discovery *d, struct station *st);
	/* Stop reporting; no callback runs after it returns. */
	void (*stop)(struct discovery *d);
	/* Open the device now on @port as a transport. 0 or -errno (-ENODEV: gone). */
	int (*open)(struct discovery *d, const char *port, enum usb_role role,
		    struct transport **out);
};

struct discovery {
	const struct discovery_ops *ops;
	void *priv;
};

/* What a flow returns besides 0 (done, record written) and -errno (failed). */
#define JOB_HELD 1   /* stopped on purpose (hold after bootstrap/triage) */

typedef int (*station_flow_fn)(struct job *job, void *usrptr);

struct station_opts {
	const char *station_id;
	const char *db_path;
	const char *log_dir;
	enum db_mode mode;
	unsigned debounce_ms;             /* re-enumeration window (e.g. 5000) */
	/* Allow-list verdict for a port; NULL permits every port. */
	bool (*permits)(void *usrptr, const char *port);
	void *permits_usrptr;
	struct discovery *disc;
	station_flow_fn flow;
	void *flow_usrptr;
	struct event_queue *events;       /* where workers report */
};

int station_new(const struct station_opts *o, struct station **out);
/* Open the records (crash recovery: running attempts become interrupted),
 * then start discovery and the housekeeping thread. 0 or -errno. */
int station_start(struct station *st);
/* Start no new job, and wait until every job in flight has finished.
 * Discovery keeps running, so a board re-enumerating between its phases
 * still comes back to its job. */
void station_drain(struct station *st);
/* Stop discovery, then wait for every in-flight job to finish. */
void station_stop(struct station *st);
void station_free(struct station *st);

/* Discovery callbacks (any thread). */
void station_device_arrived(struct station *st, const char *port, enum usb_role role,
			    uint16_t pid, const char *serial);
void station_device_left(struct station *st, const char *port);

/* Start the flow again on @port, whose last job failed or was held, with
 * the board still there (as it is now: boot mode or gadget). 0, -EBUSY (a
 * job runs there), -ENODEV (no board on it), -EALREADY (its last job did not
 * fail), -ESHUTDOWN (the station is stopping). */
int station_retry(struct station *st, const char *port);

struct station_counts {
	unsigned active;     /* jobs running now */
	unsigned done;       /* finished and recorded */
	unsigned failed;
	unsigned held;
	unsigned excluded;   /* arrivals on excluded ports */
};
void station_get_counts(struct station *st, struct station_counts *c);

/* ---- for flows, on the job's worker thread ---------------------------- */

const char *job_port(const struct job *job);
const char *job_serial(const struct job *job);      /* "" until known */
struct boardlog *job_log(struct job *job);
struct db *job_db(struct job *job);                 /* this worker's connection */
int64_t job_attempt(const struct job *job);
enum phase job_phase(const struct job *job);
struct station *job_station(struct job *job);

/* Enter @p: emits a phase event and records how long the previous phase took. */
void job_set_phase(struct job *job, enum phase p);
void job_progress(struct job *job, uint64_t bytes, uint64_t total);
/* The board's serial (8 or 16 hex) became known: logs move, attempt updated. */
int job_set_serial(struct job *job, const char *serial);
/* Write the board's manufacturing row; its attempt becomes `ok` in the same
 * transaction (the last thing a successful flow does). 0 or -errno. */
int job_record_device(struct job *job, const struct db_device_record *rec);
/* Record a state transition (the peer's state strings). */
void job_state(struct job *job, enum db_event_state s, const char *detail);
/* What the port shows now (without opening it): false when nothing is there. */
bool job_device_info(struct job *job, enum usb_role *role, uint16_t *pid, char *serial,
		     size_t serial_len);
/* Wait until a device of @role is on the job's port, then open it.
 * -ETIMEDOUT, -ENODEV when the board was gone past the debounce window. */
int job_wait_device(struct job *job, enum usb_role role, unsigned timeout_ms,
		    struct transport **out);
/* Say why the job fails (kept for the attempt row and the tile). Returns @code. */
int job_fail(struct job *job, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
