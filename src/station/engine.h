/* engine: the station set up to run, shared by `simulate` and `daemon`.
 *
 * It loads the configuration (the operator's file, or for virtual boards the
 * embedded default), opens the signer, arms OTP when asked, prepares the flow
 * context and the records, and builds the station with a discovery source:
 * the virtual USB bus with virtual boards, or real USB. Front ends then read
 * engine->events. Main thread (engine_new/start/stop/free); the fields are
 * read-only for callers unless a comment says otherwise. */
#ifndef RPI_SB_STATION_ENGINE_H
#define RPI_SB_STATION_ENGINE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/paths.h"
#include "flows/flows.h"
#include "records/db.h"
#include "station/events.h"
#include "station/model.h"
#include "station/station.h"
#include "vpi/firstboot.h"

#define ENGINE_MAX_BOARDS 64
#define ENGINE_MAX_WARNINGS 8

/* One virtual board (simulated engines only). */
struct engine_board {
	char model[16];
	char state[PATH_MAX];        /* its state directory */
	char port[32];               /* the virtual port it is plugged into */
	struct vpi_board *b;
	bool verified;               /* its virtual first boot passed */
	struct vpi_firstboot_report fbr;
};

struct engine_opts {
	const char *prog;            /* message prefix: "simulate", "daemon" */
	const struct paths *paths;
	const char *config_path;     /* the operator's file (it need not exist) */
	/* Virtual boards "pi5:2,pi4:1" (the models of vpi_model_find); NULL:
	 * real USB discovery. With virtual boards and no file at config_path,
	 * the embedded default is built under <srv>/simulate and used. */
	const char *devices;
	const char *const *faults;   /* "[N=]SPEC" (vpi/fault.h), for board N or all */
	size_t nfaults;
	double link_mbps;            /* virtual link rate, 0: unlimited */
	long storage_mb;             /* virtual storage size (0: 256 MiB) */
	bool fresh;                  /* rebuild the embedded default */
	bool dry_run;
	enum flow_hold hold;
	const char *arm_otp;         /* typed fingerprint suffix, NULL: not armed */
	/* Real USB only (`daemon --rehearse-usb`, never a configuration file):
	 * stand-ins may go to USB devices that say they are a virtual Pi
	 * (flow_standin_allowed). OTP arming is unchanged by it. */
	bool rehearse_usb;
	/* Start even when the configuration is missing or invalid: boards are
	 * shown but not provisioned, and warnings[] says why (the daemon). */
	bool tolerate_config;
};

struct engine {
	struct engine_opts o;
	struct config *cfg;
	struct config_problems probs;
	char config_path[PATH_MAX];  /* the file in use (may be the embedded default's) */
	char simdir[PATH_MAX];       /* <srv>/simulate */
	bool embedded;               /* the embedded default is in use */
	bool armed_implicitly;       /* the embedded default armed OTP itself */
	bool provisioning;           /* false: boards are shown, not provisioned */
	char warnings[ENGINE_MAX_WARNINGS][160];
	unsigned n_warnings;
	struct flow_ctx fctx;
	bool fctx_ready;
	struct event_queue *events;  /* the front end pops these */
	struct discovery *disc;
	struct allowlist *allow;     /* real USB: the ports served (usb-ports.d) */
	struct station *st;
	/* Virtual boards. */
	struct vpi_bus *bus;
	struct engine_board boards[ENGINE_MAX_BOARDS];
	size_t nboards;
	const char *gold;
	pthread_mutex_t lock;        /* the boards' verdicts (verify hook) */
	/* Held for reading by every board's flow, for writing by a reload:
	 * the configuration never changes under a board in flight. */
	pthread_rwlock_t cfg_lock;
};

/* Set everything up (nothing runs yet). On failure the reason has been
 * printed to stderr; *usage_error says whether it was the caller's input
 * (bad device list, fault spec, configuration, OTP suffix) rather than the
 * system. 0 or -errno. */
int engine_new(const struct engine_opts *o, struct engine **out, bool *usage_error);
/* Give @m an empty tile (no board) for every port known before any event:
 * the virtual bus's ports (simulate), else each allow-list rule without
 * globs (real USB). 0 or -ENOMEM. Before engine_start. */
int engine_seed_model(const struct engine *e, struct station_model *m);
/* Open the records, start discovery, plug the virtual boards in. 0 or -errno. */
int engine_start(struct engine *e);
/* Drain (no new boards; every board in flight finishes, discovery still
 * running for their re-enumerations), then stop discovery. */
void engine_stop(struct engine *e);
void engine_free(struct engine *e);

/* Record an operator action in the configured database's audit table, from
 * @origin, as @user (NULL: the user running this process). A failure is printed, not
 * returned: the action itself stands. */
void engine_audit(const struct engine *e, enum db_origin origin, const char *user,
		  const char *action, const char *target, const char *detail);

/* Whether @typed (at least 8 hex) is the tail of @fingerprint, as the
 * operator types it to arm OTP. */
bool engine_fingerprint_matches(const char *typed, const char *fingerprint);

/* Read the configuration file again. Refused (-EBUSY) while boards are in
 * flight when anything changed; a new key disarms OTP. @changes gets what
 * changed ("no change", "station.mode image.gold", or why it was refused).
 * Main thread. 0 or -errno. */
int engine_reload(struct engine *e, char *changes, size_t len);

/* Add a line to warnings[] (dropped past ENGINE_MAX_WARNINGS). */
void engine_warn(struct engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
