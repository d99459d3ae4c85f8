/* ctl: the control socket between the engine (daemon) and its front ends.
 *
 * A Unix stream socket (default /run/rpi-sb-provisioner/control, mode 0660,
 * the station group). The wire format is JSON lines, documented in
 * doc/control-protocol.md: on connect the server sends a hello (station info),
 * a snapshot of every tile, then live events as event_to_json() lines; a
 * client sends typed commands and gets one reply per command. A client
 * connected with read_only set (or whose peer credentials only allow
 * viewing) gets -EPERM for any command that changes state. */
#ifndef RPI_SB_STATION_CTL_H
#define RPI_SB_STATION_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include "station/model.h"

#define CTL_DEFAULT_SOCKET "/run/rpi-sb-provisioner/control"

struct paths;
/* The socket path of a station with these paths: <run>/control, which is
 * CTL_DEFAULT_SOCKET unless --root relocates it. malloc'd; NULL on ENOMEM. */
char *ctl_socket_path(const struct paths *p);

/* What the status bar shows; sent in the hello and again when it changes. */
struct ctl_info {
	char station_id[64];
	char mode[16];               /* secure-boot | fde-only | naked */
	char image[256];             /* configured gold image path */
	char key_fingerprint[80];    /* "" when no key */
	bool otp_armed;
	bool read_only;              /* this client may not act */
	bool simulated;              /* the engine drives virtual boards */
	char config_path[256];
	char warnings[8][MODEL_TEXT];/* config problems and the like */
	unsigned n_warnings;
	unsigned long long events_dropped;
};

enum ctl_cmd_type {
	CTL_CMD_CLEAR_CACHE = 0,     /* no args */
	CTL_CMD_SET_FLAG,            /* port or serial, flag, persistent */
	CTL_CMD_RETRY,               /* port */
	CTL_CMD_CLEAR_FINISHED,      /* no args */
	CTL_CMD_EXPORT_CSV,          /* path optional; reply text: the path written */
	CTL_CMD_ARM_OTP,             /* text: fingerprint suffix typed by the operator */
	CTL_CMD_DISARM_OTP,
	CTL_CMD_RELOAD_CONFIG,       /* reply text: what changed, or why refused */
	CTL_CMD_SHUTDOWN,            /* drain in-flight boards, then exit */
	CTL_CMD_COUNT
};

struct ctl_cmd {
	enum ctl_cmd_type type;
	char port[64];
	char serial[17];
	char flag[32];               /* "reprovision" | "skip-eeprom" (flags command names) */
	bool persistent;
	char text[256];              /* path, fingerprint suffix */
};

const char *ctl_cmd_name(enum ctl_cmd_type t);  /* "retry", ... (wire names) */

struct ctl_client;

/* Connect to a running engine. -ENOENT/-ECONNREFUSED: none is running;
 * -EACCES: not in the station group. On success the hello and snapshot have
 * been read: ctl_model() and ctl_info() are current. */
int ctl_connect(const char *socket_path, bool read_only, struct ctl_client **out);
void ctl_close(struct ctl_client *c);
/* Readable when events are waiting. */
int ctl_fd(const struct ctl_client *c);
/* Read what is waiting (non-blocking) and fold it into the model. Returns
 * the number of messages applied, 0 if none, -EPIPE when the engine is gone. */
int ctl_read(struct ctl_client *c);
struct station_model *ctl_model(struct ctl_client *c);
const struct ctl_info *ctl_info(const struct ctl_client *c);
/* Send @cmd and wait (up to @timeout_ms, folding events meanwhile) for its
 * reply. 0 ok; -EPERM read-only; -EINVAL/-EBUSY/... refused by the engine,
 * with its reason in @reply. @reply gets the engine's text either way. */
int ctl_command(struct ctl_client *c, const struct ctl_cmd *cmd, char *reply, size_t len,
		unsigned timeout_ms);

#endif
