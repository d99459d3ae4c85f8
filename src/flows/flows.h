/* flows: what a worker does with one board, phase by phase.
 *
 *   bootstrap  rpiboot: EEPROM update and OTP (secure-boot, armed), then the
 *              fastboot gadget is booted
 *   triage     the gadget on the same port: identity, device key
 *   provision  the mode's fastboot sequence with the image pipeline's output
 *   verify     prove what was written (and on the virtual Pi, its first boot)
 *   record     the manufacturing row, post-flash hook
 *
 * Flows never open USB devices themselves: they ask the station for the
 * board on their port (job_wait_device) and speak protocols over the
 * transport they get. flow_board() is the station's flow function. */
#ifndef RPI_SB_FLOWS_FLOWS_H
#define RPI_SB_FLOWS_FLOWS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config/config.h"
#include "core/paths.h"
#include "proto/rpiboot_meta.h"
#include "records/hooks.h"
#include "station/station.h"
#include "transport/transport.h"

struct signer;
struct flow_board;

enum flow_hold { FLOW_HOLD_NONE, FLOW_HOLD_AFTER_BOOTSTRAP, FLOW_HOLD_AFTER_TRIAGE };

/* What the per-board hooks changed in this board's root file system: the
 * entries added, changed or removed (absolute paths, "/" for the top,
 * sorted) and the directory tree holding what each should now be (absent
 * there: removed). */
struct flow_root_changes {
	const char *tree;
	const char *const *paths;
	size_t npaths;
};

/* What a board's verification found beyond the gadget's own answers; the
 * simulator plugs in its virtual first boot here. @changes: NULL when no
 * hook changed the root (it must then be the gold image's). 0 = passed,
 * else -errno with @why filled. */
typedef int (*flow_verify_fn)(void *usrptr, struct job *job, const char *serial16,
			      const struct flow_root_changes *changes, char *why, size_t whylen);

struct flow_ctx {
	const struct config *cfg;
	const struct paths *paths;
	struct signer *signer;          /* NULL when no key is configured */
	char key_fingerprint[65];       /* "" without a key */
	/* The operator armed OTP. The control socket flips it while boards run:
	 * a board reads it once, at its OTP decision (flow_board.otp_armed). */
	atomic_bool otp_armed;
	bool dry_run;                   /* everything but the irreversible writes */
	/* `daemon --rehearse-usb`: simulator stand-ins may go to a USB device
	 * that says it is a virtual Pi (flow_standin_allowed). Never from a
	 * configuration file. */
	bool rehearse_usb;
	enum flow_hold hold;
	flow_verify_fn verify;          /* extra verification (simulator), may be NULL */
	void *verify_usrptr;
	pthread_mutex_t build_lock;     /* one payload build at a time */
};

int flow_ctx_init(struct flow_ctx *c, const struct config *cfg, const struct paths *paths);
void flow_ctx_fini(struct flow_ctx *c);

/* May a simulator stand-in (vpi/standin.h) go to the device behind @t?
 * Yes on a virtual transport. Over real USB only when BOTH the operator
 * started a rehearsal (c->rehearse_usb) AND the device's iProduct says it is
 * a virtual Pi (VPI_USB_PRODUCT_MARK); otherwise the station refuses. */
bool flow_standin_allowed(const struct flow_ctx *c, const struct transport *t);

/* The station's flow function: usrptr is a struct flow_ctx. */
int flow_board(struct job *job, void *usrptr);

/* ---- shared between the phase files ---- */

struct flow_board {
	struct flow_ctx *ctx;
	struct job *job;
	unsigned chip;                  /* 0x2711, 0x2712, 0x2764 (boot-mode PID) */
	char family[4];                 /* "4", "5", "2W" */
	const char *mode;               /* effective mode for this board's family */
	const char *storage;            /* sd|emmc|nvme */
	const char *disk;               /* mmcblk0 | nvme0n1 */
	char serial8[9];
	char serial16[17];
	bool skip_eeprom, reprovision;  /* special flags */
	bool otp_armed;                 /* ctx->otp_armed as read at this board's OTP decision */
	bool recovery_ran;              /* this attempt's recovery stage finished */
	bool rpiboot_gpio_sent;         /* ... and its config.txt burnt an rpiboot GPIO */
	struct rpiboot_metadata md;     /* what the board pushed during bootstrap */
	enum hook_provisioner prov;
	char stage_dir[4096];           /* per-attempt staging directory */
};

int flow_bootstrap(struct flow_board *fb);
int flow_triage(struct flow_board *fb, struct transport **gadget);
int flow_provision(struct flow_board *fb, struct transport *gadget);

/* "4" | "5" | "2W" for a boot-mode PID, NULL when unknown. */
const char *flow_family_of_chip(unsigned pid);
/* Run the hook of @stage for the board (logs its outcome). 0 or -EIO when it
 * failed (callers decide whether that fails the step). */
int flow_hook(struct flow_board *fb, enum hook_stage stage, const char *fastboot_spec);

#endif
