/* station: the engine behind every front end. It owns the port tracker, the
 * list of device jobs and one worker thread per job.
 *
 * Threads: discovery calls station_device_arrived/left from its own thread;
 * a housekeeping thread expires boards gone past the debounce window; each
 * job's worker runs the flow and uses the job_* functions. Everything shared
 * is under st->lock; workers block on st->cond while waiting for their board
 * to come back. No worker ever touches another job. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "station/station.h"

struct job {
	struct station *st;
	struct job *next;
	char port[64];
	char serial[17];
	struct boardlog *log;
	struct db *db;
	int64_t attempt;
	enum phase phase;
	uint64_t phase_start_ms;
	/* Under st->lock: what the port shows now. */
	bool present;
	bool gone;
	enum usb_role role;
	uint16_t pid;
	uint64_t arrivals;      /* devices seen on the port for this job */
	uint64_t opened;        /* the arrival last opened by the flow */
	char *arrival_serial;
	/* Worker-only. */
	bool attempt_closed;    /* its attempt row is final (ok, failed or skipped) */
	int errcode;
	char errmsg[512];
};

/* What was last seen on a port, kept after its job ends (for retry). */
struct port_seen {
	struct port_seen *next;
	char port[64];
	bool present;
	enum usb_role role;
	uint16_t pid;
	char serial[64];
	bool ended;             /* a job ran on it and ended ... */
	int last_rc;            /* ... with this result (0 done, JOB_HELD, -errno) */
};

struct station {
	struct station_opts o;
	char *station_id, *db_path, *log_dir;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct port_tracker *ports;
	struct job *jobs;
	struct port_seen *seen;
	struct station_counts counts;
	struct db *db;                 /* discovery-side writes (excluded ports); under lock */
	pthread_t housekeeper;
	bool housekeeping;
	bool stopping;
	bool draining;                 /* no new jobs; discovery still runs */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void emit(struct station *st, const struct job *job, enum event_type type,
		 enum phase phase, int code, const char *text)
{
	struct event ev = { .type = type, .phase = phase, .code = code };

	if (!st->o.events)
		return;
	if (job) {
		snprintf(ev.port, sizeof(ev.port), "%s", job->port);
		snprintf(ev.serial, sizeof(ev.serial), "%s", job->serial);
	}
	ev.text = (char *)(uintptr_t)text; /* event_push copies it */
	event_push(st->o.events, &ev);
}

static void emit_port(struct station *st, const char *port, enum event_type type,
		      enum phase phase, const char *text)
{
	struct event ev = { .type = type, .phase = phase };

	if (!st->o.events)
		return;
	snprintf(ev.port, sizeof(ev.port), "%s", port);
	ev.text = (char *)(uintptr_t)text;
	event_push(st->o.events, &ev);
}

int station_new(const struct station_opts *o, struct station **out)
{
	struct station *st = calloc(1, sizeof(*st));
	int r;

	if (!st)
		return -ENOMEM;
	st->o = *o;
	st->station_id = strdup(o->station_id ? o->station_id : "");
	st->db_path = strdup(o->db_path ? o->db_path : "");
	st->log_dir = strdup(o->log_dir ? o->log_dir : "");
	if (!st->station_id || !st->db_path || !st->log_dir) {
		r = -ENOMEM;
		goto fail;
	}
	st->o.station_id = st->station_id;
	st->o.db_path = st->db_path;
	st->o.log_dir = st->log_dir;
	r = ports_new(o->debounce_ms, &st->ports);
	if (r < 0)
		goto fail;
	pthread_mutex_init(&st->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = st;
	return 0;
fail:
	free(st->station_id);
	free(st->db_path);
	free(st->log_dir);
	free(st);
	return r;
}

static void *housekeeper_main(void *arg);

int station_start(struct station *st)
{
	int interrupted = 0, r;

	r = db_open(st->o.db_path, DB_OPEN_CREATE, &st->db);
	if (r < 0) {
		fprintf(stderr, "station: cannot open the manufacturing database %s: %s\n",
			st->o.db_path, strerror(-r));
		return r;
	}
	r = db_mark_interrupted(st->db, &interrupted);
	if (r < 0)
		return r;
	if (interrupted > 0)
		fprintf(stderr, "station: %d attempt(s) cut short by an earlier stop are marked interrupted\n",
			interrupted);
	st->housekeeping = true;
	r = -pthread_create(&st->housekeeper, NULL, housekeeper_main, st);
	if (r < 0) {
		st->housekeeping = false;
		return r;
	}
	if (st->o.disc) {
		r = st->o.disc->ops->start(st->o.disc, st);
		if (r < 0)
			return r;
	}
	return 0;
}

void station_drain(struct station *st)
{
	pthread_mutex_lock(&st->lock);
	st->draining = true;
	while (st->counts.active > 0)
		pthread_cond_wait(&st->cond, &st->lock);
	pthread_mutex_unlock(&st->lock);
}

void station_stop(struct station *st)
{
	if (st->o.disc)
		st->o.disc->ops->stop(st->o.disc);
	pthread_mutex_lock(&st->lock);
	st->stopping = true;
	while (st->counts.active > 0)
		pthread_cond_wait(&st->cond, &st->lock);
	pthread_mutex_unlock(&st->lock);
	if (st->housekeeping) {
		pthread_mutex_lock(&st->lock);
		st->housekeeping = false;
		pthread_cond_broadcast(&st->cond);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->housekeeper, NULL);
	}
}

void station_free(struct station *st)
{
	if (!st)
		return;
	db_close(st->db);
	ports_free(st->ports);
	while (st->seen) {
		struct port_seen *n = st->seen->next;

		free(st->seen);
		st->seen = n;
	}
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st->station_id);
	free(st->db_path);
	free(st->log_dir);
	free(st);
}

void station_get_counts(struct station *st, struct station_counts *c)
{
	pthread_mutex_lock(&st->lock);
	*c = st->counts;
	pthread_mutex_unlock(&st->lock);
}

/* The live job on @port; a job whose board expired is no longer the port's. */
static struct job *job_find(struct station *st, const char *port)
{
	for (struct job *j = st->jobs; j; j = j->next)
		if (!j->gone && strcmp(j->port, port) == 0)
			return j;
	return NULL;
}

/* The record of @port, created when @create. Under st->lock. */
static struct port_seen *seen_get(struct station *st, const char *port, bool create)
{
	struct port_seen *s;

	for (s = st->seen; s; s = s->next)
		if (strcmp(s->port, port) == 0)
			return s;
	if (!create || !(s = calloc(1, sizeof(*s))))
		return NULL;
	snprintf(s->port, sizeof(s->port), "%s", port);
	s->next = st->seen;
	st->seen = s;
	return s;
}

/* ---- the worker -------------------------------------------------------- */

static const enum db_phase db_phase_of[PHASE_COUNT] = {
	[PHASE_BOOTSTRAP] = DB_PHASE_BOOTSTRAP,
	[PHASE_TRIAGE] = DB_PHASE_TRIAGE,
	[PHASE_PROVISION] = DB_PHASE_PROVISION,
	[PHASE_VERIFY] = DB_PHASE_VERIFY,
};

static bool phase_is_timed(enum phase p)
{
	return p == PHASE_BOOTSTRAP || p == PHASE_TRIAGE || p == PHASE_PROVISION || p == PHASE_VERIFY;
}

static void job_phase_timing_close(struct job *job);

static void log_sink(void *usrptr, enum blog_phase phase, const char *line)
{
	struct job *job = usrptr;

	emit(job->st, job, EVENT_LOG, job->phase, 0, line);
}

static void job_end(struct job *job, int rc)
{
	struct station *st = job->st;
	enum phase reached = job->phase;

	if (rc == 0 && !job->attempt_closed)
		rc = job_fail(job, -EPROTO, "the flow ended without writing the manufacturing record");
	if (rc == 0) {
		job_set_phase(job, PHASE_DONE);
		return;
	}
	job_phase_timing_close(job);
	if (rc == JOB_HELD) {
		char why[64];

		snprintf(why, sizeof(why), "held after %s", phase_name(reached));
		if (job->db && job->attempt > 0 && !job->attempt_closed)
			db_attempt_finish(job->db, job->attempt, DB_RESULT_SKIPPED, 0, why);
		job->attempt_closed = true;
		job_set_phase(job, PHASE_HELD);
		return;
	}
	if (!job->errmsg[0]) {
		if (rc == -ENODEV)
			snprintf(job->errmsg, sizeof(job->errmsg), "unplugged during %s", phase_name(reached));
		else
			snprintf(job->errmsg, sizeof(job->errmsg), "%s failed: %s", phase_name(reached),
				 strerror(-rc));
	}
	blog(job->log, BLOG_PROVISIONER, "FAILED in %s: %s", phase_name(reached), job->errmsg);
	if (job->db && job->attempt > 0 && !job->attempt_closed)
		db_attempt_finish(job->db, job->attempt, DB_RESULT_FAILED, -rc, job->errmsg);
	job->attempt_closed = true;
	emit(st, job, EVENT_ERROR, reached, rc, job->errmsg);
	job_set_phase(job, PHASE_FAILED);
}

static void *worker_main(void *arg)
{
	struct job *job = arg;
	struct station *st = job->st;
	int rc;

	rc = boardlog_open(st->o.log_dir, job->port, &job->log);
	if (rc == 0) {
		boardlog_set_sink(job->log, log_sink, job);
		rc = db_open(st->o.db_path, DB_OPEN_CREATE, &job->db);
	}
	if (rc == 0) {
		struct db_attempt_start a = {
			.serial = job->serial[0] ? job->serial : NULL,
			.usb_port = job->port,
			.mode = st->o.mode,
			.station_id = st->o.station_id,
		};
		rc = db_attempt_begin(job->db, &a, &job->attempt);
	}
	if (rc == 0) {
		job->phase_start_ms = mono_ms();
		rc = st->o.flow(job, st->o.flow_usrptr);
	} else {
		job_fail(job, rc, "cannot start the records for this board: %s", strerror(-rc));
	}
	job_end(job, rc);

	boardlog_close(job->log);
	db_close(job->db);

	pthread_mutex_lock(&st->lock);
	for (struct job **p = &st->jobs; *p; p = &(*p)->next) {
		if (*p == job) {
			*p = job->next;
			break;
		}
	}
	if (!job->gone) { /* an expired job's port was already freed, maybe for a new board */
		struct port_seen *seen = seen_get(st, job->port, true);

		ports_job_ended(st->ports, job->port);
		if (seen) {
			seen->ended = true;
			seen->last_rc = rc;
		}
		/* The board left while its job ran (verified and taken away, or
		 * unplugged): the port is empty now. */
		if (!job->present)
			emit_port(st, job->port, EVENT_PORT_REMOVED, PHASE_WAITING, NULL);
	} else if (!job_find(st, job->port)) {
		struct port_seen *seen = seen_get(st, job->port, false);

		if (!seen || !seen->present)
			emit_port(st, job->port, EVENT_PORT_REMOVED, PHASE_WAITING, NULL);
	}
	st->counts.active--;
	if (rc == 0)
		st->counts.done++;
	else if (rc == JOB_HELD)
		st->counts.held++;
	else
		st->counts.failed++;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);

	free(job->arrival_serial);
	free(job);
	return NULL;
}

/* ---- discovery callbacks ----------------------------------------------- */

void station_device_arrived(struct station *st, const char *port, enum usb_role role,
			    uint16_t pid, const char *serial)
{
	bool permitted = st->o.permits ? st->o.permits(st->o.permits_usrptr, port) : true;
	struct port_arrival a = { .port = port, .role = role, .serial = serial ? serial : "",
				  .permitted = permitted, .now_ms = mono_ms() };
	enum port_decision d;
	struct job *job;

	pthread_mutex_lock(&st->lock);
	d = ports_arrived(st->ports, &a);
	if (d != PORT_IGNORED && d != PORT_DUPLICATE) {
		struct port_seen *seen = seen_get(st, port, true);

		if (seen) {
			seen->present = true;
			seen->role = role;
			seen->pid = pid;
			snprintf(seen->serial, sizeof(seen->serial), "%s", a.serial);
			if (d != PORT_CONTINUE_JOB)
				seen->ended = false;
		}
	}
	if (d == PORT_START_JOB && st->draining) {
		/* Stopping: boards in flight finish, new ones wait for the next start. */
		ports_job_ended(st->ports, port);
		emit_port(st, port, EVENT_LOG, PHASE_WAITING,
			  "not started: the station is stopping (boards in flight finish first)");
		d = PORT_IGNORED;
	}
	switch (d) {
	case PORT_START_JOB:
		job = calloc(1, sizeof(*job));
		if (!job) {
			ports_job_ended(st->ports, port);
			break;
		}
		job->st = st;
		snprintf(job->port, sizeof(job->port), "%s", port);
		job->phase = PHASE_WAITING;
		job->present = true;
		job->role = role;
		job->pid = pid;
		job->arrivals = 1;
		job->arrival_serial = strdup(a.serial);
		job->next = st->jobs;
		st->jobs = job;
		st->counts.active++;
		emit_port(st, port, EVENT_PORT_ADDED, PHASE_WAITING,
			  role == USB_ROLE_BOOTROM ? "board in USB boot mode" : "fastboot gadget");
		pthread_t th;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &attr, worker_main, job) != 0) {
			st->jobs = job->next;
			st->counts.active--;
			ports_job_ended(st->ports, port);
			free(job->arrival_serial);
			free(job);
		}
		pthread_attr_destroy(&attr);
		break;
	case PORT_CONTINUE_JOB:
		job = job_find(st, port);
		if (job) {
			job->present = true;
			job->role = role;
			job->pid = pid;
			job->arrivals++;
			free(job->arrival_serial);
			job->arrival_serial = strdup(a.serial);
			pthread_cond_broadcast(&st->cond);
		}
		break;
	case PORT_DUPLICATE:
		emit_port(st, port, EVENT_LOG, PHASE_WAITING,
			  "a second descriptor of a board already being handled: ignored");
		break;
	case PORT_EXCLUDED:
		st->counts.excluded++;
		emit_port(st, port, EVENT_PORT_ADDED, PHASE_EXCLUDED, "port excluded by the allow-list");
		if (st->db)
			db_event(st->db, 0, serial && *serial ? serial : NULL, port,
				 DB_EVENT_PORT_EXCLUDED, "bootstrap");
		break;
	case PORT_IGNORED:
		break;
	}
	pthread_mutex_unlock(&st->lock);
}

void station_device_left(struct station *st, const char *port)
{
	struct job *job;

	pthread_mutex_lock(&st->lock);
	ports_left(st->ports, port, mono_ms());
	struct port_seen *seen = seen_get(st, port, false);
	if (seen)
		seen->present = false;
	job = job_find(st, port);
	if (job) {
		job->present = false;
		pthread_cond_broadcast(&st->cond);
	} else {
		emit_port(st, port, EVENT_PORT_REMOVED, PHASE_WAITING, NULL);
	}
	pthread_mutex_unlock(&st->lock);
}

static void on_gone(void *usrptr, const char *port)
{
	struct station *st = usrptr;
	struct job *job = job_find(st, port);

	if (job)
		job->gone = true;
}

static void *housekeeper_main(void *arg)
{
	struct station *st = arg;

	pthread_mutex_lock(&st->lock);
	while (st->housekeeping) {
		struct timespec ts;

		if (ports_expire(st->ports, mono_ms(), on_gone, st) > 0)
			pthread_cond_broadcast(&st->cond);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

int station_retry(struct station *st, const char *port)
{
	struct port_seen *seen;
	enum usb_role role;
	uint16_t pid;
	char serial[64];
	int r = 0;

	pthread_mutex_lock(&st->lock);
	seen = seen_get(st, port, false);
	if (st->stopping || st->draining)
		r = -ESHUTDOWN;
	else if (job_find(st, port))
		r = -EBUSY;
	else if (!seen || !seen->present)
		r = -ENODEV;
	else if (!seen->ended || seen->last_rc == 0)
		r = -EALREADY;
	if (r == 0) {
		role = seen->role;
		pid = seen->pid;
		memcpy(serial, seen->serial, sizeof(serial));
	}
	pthread_mutex_unlock(&st->lock);
	if (r == 0)
		station_device_arrived(st, port, role, pid, serial);
	return r;
}

/* ---- the job API -------------------------------------------------------- */

const char *job_port(const struct job *job) { return job->port; }
const char *job_serial(const struct job *job) { return job->serial; }
struct boardlog *job_log(struct job *job) { return job->log; }
struct db *job_db(struct job *job) { return job->db; }
int64_t job_attempt(const struct job *job) { return job->attempt; }
enum phase job_phase(const struct job *job) { return job->phase; }
struct station *job_station(struct job *job) { return job->st; }

/* Write how long the current phase took, once, while the attempt is open. */
static void job_phase_timing_close(struct job *job)
{
	if (job->db && job->attempt > 0 && !job->attempt_closed && phase_is_timed(job->phase))
		db_attempt_phase(job->db, job->attempt, db_phase_of[job->phase],
				 (int64_t)(mono_ms() - job->phase_start_ms));
}

void job_set_phase(struct job *job, enum phase p)
{
	if (p == job->phase)
		return;
	job_phase_timing_close(job);
	if (job->db && job->attempt > 0 && !job->attempt_closed && phase_is_timed(p))
		db_attempt_phase(job->db, job->attempt, db_phase_of[p], -1);
	job->phase = p;
	job->phase_start_ms = mono_ms();
	emit(job->st, job, EVENT_PHASE, p, 0, NULL);
}

int job_record_device(struct job *job, const struct db_device_record *rec)
{
	int r;

	job_phase_timing_close(job);
	job->phase_start_ms = mono_ms();
	r = db_device_record(job->db, job->attempt, rec);
	if (r < 0)
		return job_fail(job, r, "the manufacturing record could not be written: %s",
				db_last_error(job->db) ? db_last_error(job->db) : strerror(-r));
	job->attempt_closed = true;
	emit(job->st, job, EVENT_RECORD, job->phase, 0, rec->serial);
	return 0;
}

void job_progress(struct job *job, uint64_t bytes, uint64_t total)
{
	struct event ev = { .type = EVENT_PROGRESS, .phase = job->phase, .bytes = bytes, .total = total };

	if (!job->st->o.events)
		return;
	snprintf(ev.port, sizeof(ev.port), "%s", job->port);
	snprintf(ev.serial, sizeof(ev.serial), "%s", job->serial);
	event_push(job->st->o.events, &ev);
}

int job_set_serial(struct job *job, const char *serial)
{
	size_t n = strlen(serial);
	int r;

	if (n != 8 && n != 16)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789abcdefABCDEF", serial[i]))
			return -EINVAL;
	if (n < strlen(job->serial))
		return 0; /* the 16-hex form is already known */
	for (size_t i = 0; i <= n; i++)
		job->serial[i] = (char)(serial[i] >= 'A' && serial[i] <= 'F' ? serial[i] - 'A' + 'a' : serial[i]);
	r = boardlog_set_serial(job->log, job->serial);
	if (r < 0)
		blog(job->log, BLOG_BOOTSTRAP, "logs stay in the early directory: %s", strerror(-r));
	if (n == 16 && job->db && job->attempt > 0)
		db_attempt_update_serial(job->db, job->attempt, job->serial);
	return 0;
}

void job_state(struct job *job, enum db_event_state s, const char *detail)
{
	if (job->db)
		db_event(job->db, job->attempt, job->serial[0] ? job->serial : NULL, job->port, s, detail);
	blog(job->log, s >= DB_EVENT_TRIAGE_STARTED ? (s >= DB_EVENT_SB_PROVISIONER_STARTED ?
	     BLOG_PROVISIONER : BLOG_TRIAGE) : BLOG_BOOTSTRAP, "state %s%s%s",
	     db_event_state_name(s), detail ? ": " : "", detail ? detail : "");
}

bool job_device_info(struct job *job, enum usb_role *role, uint16_t *pid, char *serial,
		     size_t serial_len)
{
	bool present;

	pthread_mutex_lock(&job->st->lock);
	present = job->present;
	if (role)
		*role = job->role;
	if (pid)
		*pid = job->pid;
	if (serial && serial_len)
		snprintf(serial, serial_len, "%s", job->arrival_serial ? job->arrival_serial : "");
	pthread_mutex_unlock(&job->st->lock);
	return present;
}

int job_wait_device(struct job *job, enum usb_role role, unsigned timeout_ms,
		    struct transport **out)
{
	struct station *st = job->st;
	struct timespec deadline;
	uint64_t gen;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&st->lock);
	while (!(job->present && job->role == role && job->arrivals > job->opened)) {
		if (job->gone) {
			r = -ENODEV;
			break;
		}
		if (pthread_cond_timedwait(&st->cond, &st->lock, &deadline) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			break;
		}
	}
	gen = job->arrivals;
	pthread_mutex_unlock(&st->lock);
	if (r == -ENODEV)
		return job_fail(job, r, "unplugged during %s", phase_name(job->phase));
	if (r == -ETIMEDOUT)
		return job_fail(job, r, "the board did not come back as %s within %u s",
				role == USB_ROLE_GADGET ? "a fastboot gadget" : "a boot-mode device",
				timeout_ms / 1000);
	r = st->o.disc->ops->open(st->o.disc, job->port, role, out);
	if (r < 0)
		return job_fail(job, r, "cannot open the board on port %s: %s", job->port, strerror(-r));
	job->opened = gen;
	return 0;
}

int job_fail(struct job *job, int code, const char *fmt, ...)
{
	va_list ap;

	char msg[sizeof(job->errmsg)];

	job->errcode = code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A board that left the bus mid-exchange is an unplug, whatever step
	 * noticed it: the reason says so first, then the step's own words. */
	if (code == -ENODEV && strncmp(msg, "unplugged during ", 17) != 0)
		snprintf(job->errmsg, sizeof(job->errmsg), "unplugged during %s: %.*s",
			 phase_name(job->phase), (int)sizeof(job->errmsg) - 40, msg);
	else
		snprintf(job->errmsg, sizeof(job->errmsg), "%s", msg);
	return code;
}
