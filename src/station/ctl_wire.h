/* ctl_wire: the control socket's wire format (doc/control-protocol.md), one
 * JSON object per line, encoded and decoded here for both ends. Pure
 * functions: no I/O, any thread. The command table drives parsing, the
 * `ctl` command's usage and the help of front ends. */
#ifndef RPI_SB_STATION_CTL_WIRE_H
#define RPI_SB_STATION_CTL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "records/flags.h"
#include "station/ctl.h"
#include "station/events.h"
#include "station/model.h"

#define CTL_PROTOCOL_VERSION 1
#define CTL_CMD_LINE_MAX 4096          /* longest command line a server reads */

/* What a command takes (ctl_cmd_spec.args). */
enum {
	CTL_ARG_PORT = 1 << 0,         /* port required */
	CTL_ARG_BOARD = 1 << 1,        /* port or serial required */
	CTL_ARG_FLAG = 1 << 2,         /* flag required */
	CTL_ARG_TEXT = 1 << 3,         /* text required */
	CTL_ARG_TEXT_OPT = 1 << 4,     /* text optional */
};

struct ctl_cmd_spec {
	const char *name;              /* wire and `ctl` name */
	unsigned args;
	const char *usage;             /* arguments of `ctl NAME` */
	const char *help;
};

extern const struct ctl_cmd_spec ctl_cmd_specs[CTL_CMD_COUNT];

/* Wire name -> type. 0 or -EINVAL. */
int ctl_cmd_lookup(const char *name, enum ctl_cmd_type *out);
/* The flag names a command accepts: "reprovision", "skip-eeprom" (the
 * flags command's names, see flags_parse), and "skip-eeprom-update" as an
 * old alias of "skip-eeprom". 0 or -EINVAL. */
int ctl_flag_parse(const char *flag, enum flag_kind *out);

/* A command line (no newline), malloc'd; NULL on ENOMEM. */
char *ctl_cmd_encode(const struct ctl_cmd *cmd, uint64_t id);
/* Parse one command line (@len bytes, need not be NUL-terminated). Checks
 * the command's arguments against the table. 0, or -EINVAL with @err
 * filled; *id is set whenever the line carried one. */
int ctl_cmd_decode(const char *line, size_t len, struct ctl_cmd *cmd, uint64_t *id,
		   char *err, size_t errlen);

/* Server -> client lines (malloc'd, no newline; NULL on ENOMEM). */
char *ctl_hello_encode(const struct ctl_info *info);      /* {"msg":"hello",...} */
char *ctl_info_encode(const struct ctl_info *info);       /* {"msg":"info",...} */
char *ctl_snapshot_begin_encode(const struct station_model *m);
char *ctl_tile_encode(const struct tile *t);
char *ctl_snapshot_end_encode(void);
char *ctl_reply_encode(uint64_t id, int rc, const char *text);

/* A decoded server line. */
enum ctl_msg_type {
	CTL_MSG_HELLO, CTL_MSG_INFO, CTL_MSG_SNAPSHOT_BEGIN, CTL_MSG_TILE, CTL_MSG_SNAPSHOT_END,
	CTL_MSG_REPLY, CTL_MSG_EVENT
};

struct ctl_msg {
	enum ctl_msg_type type;
	struct ctl_info info;          /* HELLO, INFO */
	struct model_counts counts;    /* SNAPSHOT_BEGIN */
	uint64_t first_done_ns, last_seq;
	struct tile tile;              /* TILE */
	uint64_t id;                   /* REPLY */
	int rc;
	char text[512];
	struct event ev;               /* EVENT (ev.text malloc'd: event_clear) */
};

/* Parse one server line. 0 or -EINVAL. Frees nothing in @msg beforehand. */
int ctl_msg_decode(const char *line, size_t len, struct ctl_msg *msg);

/* Names of errno values as the wire carries them ("EPERM"); "" for 0. */
const char *ctl_errno_name(int negative_errno);

#endif
