/* fuzz_ctl: the control socket's parsers on arbitrary bytes, split into
 * lines as the server splits what a viewer sends. For each line: the
 * server's command decoder (properties: an accepted command satisfies its
 * table row, and survives encode + decode unchanged) and the client's
 * decoder of server lines (whatever it accepts is well formed). A violation
 * aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "station/ctl_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_line(const char *line, size_t len)
{
	struct ctl_cmd cmd, again;
	struct ctl_msg *msg;
	enum flag_kind fk;
	char err[256];
	uint64_t id, id2;

	if (ctl_cmd_decode(line, len, &cmd, &id, err, sizeof(err)) == 0) {
		unsigned args = ctl_cmd_specs[cmd.type].args;
		char *enc;

		if ((unsigned)cmd.type >= CTL_CMD_COUNT)
			abort();
		if ((args & CTL_ARG_PORT) && !cmd.port[0])
			abort();
		if ((args & CTL_ARG_BOARD) && !cmd.port[0] && !cmd.serial[0])
			abort();
		if ((args & CTL_ARG_FLAG) && ctl_flag_parse(cmd.flag, &fk) < 0)
			abort();
		enc = ctl_cmd_encode(&cmd, id);
		if (enc) {
			if (ctl_cmd_decode(enc, strlen(enc), &again, &id2, err, sizeof(err)) != 0 ||
			    id2 != id || memcmp(&cmd, &again, sizeof(cmd)) != 0)
				abort();
			free(enc);
		}
	} else if (!err[0]) {
		abort(); /* a refusal always says why */
	}
	msg = malloc(sizeof(*msg));
	if (!msg)
		return;
	if (ctl_msg_decode(line, len, msg) == 0) {
		if (msg->type == CTL_MSG_TILE &&
		    (!msg->tile.port[0] || msg->tile.log_count > MODEL_LOG_LINES ||
		     (unsigned)msg->tile.phase >= PHASE_COUNT))
			abort();
		if (msg->type == CTL_MSG_EVENT)
			event_clear(&msg->ev);
	}
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (len <= CTL_CMD_LINE_MAX)
			one_line(p, len);
		p += len + 1;
	}
	return 0;
}
