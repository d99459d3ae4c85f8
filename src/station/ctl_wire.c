/* ctl_wire: JSON-lines encoding of the control protocol (see ctl_wire.h and
 * doc/control-protocol.md) with json-c. Decoders take bytes from the other
 * end of a socket: every string is length-checked against its field and
 * rejected, never cut, when it does not fit. Any thread. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "station/ctl_wire.h"

const struct ctl_cmd_spec ctl_cmd_specs[CTL_CMD_COUNT] = {
	[CTL_CMD_CLEAR_CACHE] = { "clear-cache", 0, "",
		"empty the artefact cache (rebuilt on demand)" },
	[CTL_CMD_SET_FLAG] = { "set-flag", CTL_ARG_BOARD | CTL_ARG_FLAG,
		"PORT|SERIAL reprovision|skip-eeprom [--persistent]",
		"set a special flag for a board, once (default) or persistent" },
	[CTL_CMD_RETRY] = { "retry", CTL_ARG_PORT, "PORT",
		"run the flow again for the failed board still on PORT" },
	[CTL_CMD_CLEAR_FINISHED] = { "clear-finished", 0, "",
		"clear the tiles of finished and failed boards" },
	[CTL_CMD_EXPORT_CSV] = { "export-csv", CTL_ARG_TEXT_OPT, "[PATH]",
		"export the manufacturing records as CSV; replies with the path written" },
	[CTL_CMD_ARM_OTP] = { "arm-otp", CTL_ARG_TEXT, "FINGERPRINT-SUFFIX",
		"arm OTP programming: the last 8+ hex of the key fingerprint" },
	[CTL_CMD_DISARM_OTP] = { "disarm-otp", 0, "", "disarm OTP programming" },
	[CTL_CMD_RELOAD_CONFIG] = { "reload-config", 0, "",
		"read the configuration again; replies with what changed" },
	[CTL_CMD_SHUTDOWN] = { "shutdown", 0, "",
		"stop taking boards, let the ones in flight finish, then exit" },
};

const char *ctl_cmd_name(enum ctl_cmd_type t)
{
	return (unsigned)t < CTL_CMD_COUNT ? ctl_cmd_specs[t].name : "unknown";
}

int ctl_cmd_lookup(const char *name, enum ctl_cmd_type *out)
{
	for (int i = 0; i < CTL_CMD_COUNT; i++) {
		if (strcmp(name, ctl_cmd_specs[i].name) == 0) {
			*out = (enum ctl_cmd_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

int ctl_flag_parse(const char *flag, enum flag_kind *out)
{
	/* "skip-eeprom-update": the name set-flag used before it matched the
	 * flags command; still accepted. */
	if (strcmp(flag, "skip-eeprom-update") == 0) {
		*out = FLAG_SKIP_EEPROM;
		return 0;
	}
	return flags_parse(flag, out);
}

const char *ctl_errno_name(int negative_errno)
{
	const char *n;

	if (negative_errno >= 0)
		return "";
	n = strerrorname_np(-negative_errno);
	return n ? n : "EIO";
}

/* ---- small json-c helpers ---------------------------------------------- */

static json_object *parse_object(const char *line, size_t len)
{
	json_tokener *tok;
	json_object *o;

	if (len > INT32_MAX)
		return NULL;
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o && (json_tokener_get_error(tok) != json_tokener_success ||
		  json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* Copy string field @key into @buf. Absent: "" (0). Not a string or too
 * long: -EINVAL. */
static int get_str(json_object *o, const char *key, char *buf, size_t len)
{
	json_object *v;
	const char *s;
	size_t n;

	buf[0] = '\0';
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n >= len || memchr(s, '\0', n))
		return -EINVAL;
	memcpy(buf, s, n + 1);
	return 0;
}

static int get_u64(json_object *o, const char *key, uint64_t *out)
{
	json_object *v;

	*out = 0;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	if (json_object_get_int64(v) < 0)
		return -EINVAL;
	*out = json_object_get_uint64(v);
	return 0;
}

static int get_int(json_object *o, const char *key, int *out)
{
	json_object *v;
	int64_t x;

	*out = 0;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	x = json_object_get_int64(v);
	if (x < INT32_MIN || x > INT32_MAX)
		return -EINVAL;
	*out = (int)x;
	return 0;
}

static int get_bool(json_object *o, const char *key, bool *out)
{
	json_object *v;

	*out = false;
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return -EINVAL;
	*out = json_object_get_boolean(v);
	return 0;
}

static char *finish(json_object *o)
{
	const char *js;
	char *s = NULL;

	if (!o)
		return NULL;
	js = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (js)
		s = strdup(js);
	json_object_put(o);
	return s;
}

static void add_str(json_object *o, const char *key, const char *val)
{
	json_object_object_add(o, key, json_object_new_string(val ? val : ""));
}

static void add_u64(json_object *o, const char *key, uint64_t val)
{
	json_object_object_add(o, key, json_object_new_uint64(val));
}

static int phase_lookup(const char *name, enum phase *out)
{
	for (int i = 0; i < PHASE_COUNT; i++) {
		if (strcmp(name, phase_name((enum phase)i)) == 0) {
			*out = (enum phase)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int get_phase(json_object *o, const char *key, enum phase *out)
{
	char name[32];

	*out = PHASE_WAITING;
	if (get_str(o, key, name, sizeof(name)) < 0)
		return -EINVAL;
	return name[0] ? phase_lookup(name, out) : 0;
}

/* ---- commands ------------------------------------------------------------ */

char *ctl_cmd_encode(const struct ctl_cmd *cmd, uint64_t id)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	add_str(o, "cmd", ctl_cmd_name(cmd->type));
	add_u64(o, "id", id);
	if (cmd->port[0])
		add_str(o, "port", cmd->port);
	if (cmd->serial[0])
		add_str(o, "serial", cmd->serial);
	if (cmd->flag[0])
		add_str(o, "flag", cmd->flag);
	if (cmd->persistent)
		json_object_object_add(o, "persistent", json_object_new_boolean(1));
	if (cmd->text[0])
		add_str(o, "text", cmd->text);
	return finish(o);
}

int ctl_cmd_decode(const char *line, size_t len, struct ctl_cmd *cmd, uint64_t *id,
		   char *err, size_t errlen)
{
	json_object *o = parse_object(line, len);
	char name[32];
	unsigned args;
	enum flag_kind fk;
	int r = -EINVAL;

	memset(cmd, 0, sizeof(*cmd));
	*id = 0;
	if (!o) {
		snprintf(err, errlen, "not a JSON object");
		return -EINVAL;
	}
	if (get_u64(o, "id", id) < 0) {
		snprintf(err, errlen, "\"id\" must be a non-negative integer");
		goto out;
	}
	if (get_str(o, "cmd", name, sizeof(name)) < 0 || !name[0]) {
		snprintf(err, errlen, "\"cmd\" (string) is missing");
		goto out;
	}
	if (ctl_cmd_lookup(name, &cmd->type) < 0) {
		snprintf(err, errlen, "unknown command '%s'", name);
		goto out;
	}
	if (get_str(o, "port", cmd->port, sizeof(cmd->port)) < 0 ||
	    get_str(o, "serial", cmd->serial, sizeof(cmd->serial)) < 0 ||
	    get_str(o, "flag", cmd->flag, sizeof(cmd->flag)) < 0 ||
	    get_str(o, "text", cmd->text, sizeof(cmd->text)) < 0 ||
	    get_bool(o, "persistent", &cmd->persistent) < 0) {
		snprintf(err, errlen, "%s: an argument has the wrong type or is too long", name);
		goto out;
	}
	args = ctl_cmd_specs[cmd->type].args;
	if ((args & CTL_ARG_PORT) && !cmd->port[0]) {
		snprintf(err, errlen, "%s: needs a port", name);
		goto out;
	}
	if ((args & CTL_ARG_BOARD) && !cmd->port[0] && !cmd->serial[0]) {
		snprintf(err, errlen, "%s: needs a port or a serial", name);
		goto out;
	}
	if ((args & CTL_ARG_FLAG) && ctl_flag_parse(cmd->flag, &fk) < 0) {
		snprintf(err, errlen, "%s: flag '%s'; allowed: reprovision|skip-eeprom",
			 name, cmd->flag);
		goto out;
	}
	if ((args & CTL_ARG_TEXT) && !cmd->text[0]) {
		snprintf(err, errlen, "%s: needs its text argument", name);
		goto out;
	}
	r = 0;
out:
	json_object_put(o);
	return r;
}

/* ---- server messages ------------------------------------------------------ */

static json_object *info_object(const char *msg, const struct ctl_info *in)
{
	json_object *o = json_object_new_object(), *w = json_object_new_array();

	if (!o || !w) {
		json_object_put(o);
		json_object_put(w);
		return NULL;
	}
	add_str(o, "msg", msg);
	json_object_object_add(o, "version", json_object_new_int(CTL_PROTOCOL_VERSION));
	add_str(o, "station_id", in->station_id);
	add_str(o, "mode", in->mode);
	add_str(o, "image", in->image);
	add_str(o, "key_fingerprint", in->key_fingerprint);
	json_object_object_add(o, "otp_armed", json_object_new_boolean(in->otp_armed));
	json_object_object_add(o, "read_only", json_object_new_boolean(in->read_only));
	json_object_object_add(o, "simulated", json_object_new_boolean(in->simulated));
	add_str(o, "config_path", in->config_path);
	for (unsigned i = 0; i < in->n_warnings && i < 8; i++)
		json_object_array_add(w, json_object_new_string(in->warnings[i]));
	json_object_object_add(o, "warnings", w);
	add_u64(o, "events_dropped", in->events_dropped);
	return o;
}

char *ctl_hello_encode(const struct ctl_info *info)
{
	return finish(info_object("hello", info));
}

char *ctl_info_encode(const struct ctl_info *info)
{
	return finish(info_object("info", info));
}

char *ctl_snapshot_begin_encode(const struct station_model *m)
{
	json_object *o = json_object_new_object(), *c = json_object_new_object();

	if (!o || !c) {
		json_object_put(o);
		json_object_put(c);
		return NULL;
	}
	add_str(o, "msg", "snapshot-begin");
	add_u64(o, "tiles", m->n);
	add_u64(c, "done", m->counts.done);
	add_u64(c, "failed", m->counts.failed);
	add_u64(c, "in_progress", m->counts.in_progress);
	add_u64(c, "held", m->counts.held);
	add_u64(c, "excluded", m->counts.excluded);
	json_object_object_add(o, "counts", c);
	add_u64(o, "first_done_ns", m->first_done_ns);
	add_u64(o, "last_seq", m->last_seq);
	return finish(o);
}

char *ctl_tile_encode(const struct tile *t)
{
	json_object *o = json_object_new_object(), *log = json_object_new_array();

	if (!o || !log) {
		json_object_put(o);
		json_object_put(log);
		return NULL;
	}
	add_str(o, "msg", "tile");
	add_str(o, "port", t->port);
	add_str(o, "serial", t->serial);
	add_str(o, "what", t->what);
	json_object_object_add(o, "present", json_object_new_boolean(t->present));
	add_str(o, "phase", phase_name(t->phase));
	add_str(o, "failed_in", phase_name(t->failed_in));
	json_object_object_add(o, "code", json_object_new_int(t->code));
	add_str(o, "reason", t->reason);
	add_u64(o, "bytes", t->bytes);
	add_u64(o, "total", t->total);
	json_object_object_add(o, "mbps", json_object_new_double(t->mbps));
	add_u64(o, "started_ns", t->started_ns);
	add_u64(o, "phase_ns", t->phase_ns);
	add_u64(o, "finished_ns", t->finished_ns);
	/* Oldest first, as they happened. */
	for (unsigned i = t->log_count; i-- > 0;)
		json_object_array_add(log, json_object_new_string(tile_log_line(t, i)));
	json_object_object_add(o, "log", log);
	return finish(o);
}

char *ctl_snapshot_end_encode(void)
{
	json_object *o = json_object_new_object();

	if (o)
		add_str(o, "msg", "snapshot-end");
	return finish(o);
}

char *ctl_reply_encode(uint64_t id, int rc, const char *text)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	add_str(o, "msg", "reply");
	add_u64(o, "id", id);
	json_object_object_add(o, "rc", json_object_new_int(rc));
	add_str(o, "error", ctl_errno_name(rc));
	add_str(o, "text", text);
	return finish(o);
}

/* ---- decoding what the server sends --------------------------------------- */

static int decode_info(json_object *o, struct ctl_info *in)
{
	json_object *w;
	int r = 0;

	memset(in, 0, sizeof(*in));
	r |= get_str(o, "station_id", in->station_id, sizeof(in->station_id));
	r |= get_str(o, "mode", in->mode, sizeof(in->mode));
	r |= get_str(o, "image", in->image, sizeof(in->image));
	r |= get_str(o, "key_fingerprint", in->key_fingerprint, sizeof(in->key_fingerprint));
	r |= get_bool(o, "otp_armed", &in->otp_armed);
	r |= get_bool(o, "read_only", &in->read_only);
	r |= get_bool(o, "simulated", &in->simulated);
	r |= get_str(o, "config_path", in->config_path, sizeof(in->config_path));
	r |= get_u64(o, "events_dropped", (uint64_t *)&in->events_dropped);
	if (json_object_object_get_ex(o, "warnings", &w)) {
		if (!json_object_is_type(w, json_type_array))
			return -EINVAL;
		for (size_t i = 0; i < json_object_array_length(w) && in->n_warnings < 8; i++) {
			json_object *s = json_object_array_get_idx(w, i);

			if (!json_object_is_type(s, json_type_string))
				return -EINVAL;
			snprintf(in->warnings[in->n_warnings++], sizeof(in->warnings[0]), "%s",
				 json_object_get_string(s));
		}
	}
	return r ? -EINVAL : 0;
}

static int decode_tile(json_object *o, struct tile *t)
{
	json_object *log, *v;
	int r = 0;

	memset(t, 0, sizeof(*t));
	r |= get_str(o, "port", t->port, sizeof(t->port));
	r |= get_str(o, "serial", t->serial, sizeof(t->serial));
	r |= get_str(o, "what", t->what, sizeof(t->what));
	r |= get_bool(o, "present", &t->present);
	r |= get_phase(o, "phase", &t->phase);
	r |= get_phase(o, "failed_in", &t->failed_in);
	r |= get_int(o, "code", &t->code);
	r |= get_str(o, "reason", t->reason, sizeof(t->reason));
	r |= get_u64(o, "bytes", &t->bytes);
	r |= get_u64(o, "total", &t->total);
	r |= get_u64(o, "started_ns", &t->started_ns);
	r |= get_u64(o, "phase_ns", &t->phase_ns);
	r |= get_u64(o, "finished_ns", &t->finished_ns);
	if (json_object_object_get_ex(o, "mbps", &v))
		t->mbps = json_object_get_double(v);
	if (r || !t->port[0])
		return -EINVAL;
	if (json_object_object_get_ex(o, "log", &log)) {
		size_t n;

		if (!json_object_is_type(log, json_type_array))
			return -EINVAL;
		n = json_object_array_length(log);
		/* Keep the newest MODEL_LOG_LINES, oldest first in the ring. */
		for (size_t i = n > MODEL_LOG_LINES ? n - MODEL_LOG_LINES : 0; i < n; i++) {
			json_object *s = json_object_array_get_idx(log, i);

			if (!json_object_is_type(s, json_type_string))
				return -EINVAL;
			snprintf(t->log[t->log_count++], MODEL_TEXT, "%s", json_object_get_string(s));
		}
	}
	return 0;
}

static int decode_event(json_object *o, struct event *ev)
{
	char type[32];
	json_object *text;
	int r = 0;

	memset(ev, 0, sizeof(*ev));
	r |= get_u64(o, "seq", &ev->seq);
	r |= get_u64(o, "mono_ns", &ev->mono_ns);
	r |= get_str(o, "type", type, sizeof(type));
	r |= get_str(o, "port", ev->port, sizeof(ev->port));
	r |= get_str(o, "serial", ev->serial, sizeof(ev->serial));
	r |= get_phase(o, "phase", &ev->phase);
	r |= get_int(o, "code", &ev->code);
	r |= get_u64(o, "bytes", &ev->bytes);
	r |= get_u64(o, "total", &ev->total);
	if (r)
		return -EINVAL;
	ev->type = EVENT_TYPE_COUNT;
	for (int i = 0; i < EVENT_TYPE_COUNT; i++)
		if (strcmp(type, event_type_name((enum event_type)i)) == 0)
			ev->type = (enum event_type)i;
	if (ev->type == EVENT_TYPE_COUNT)
		return -EINVAL;
	if (!json_object_object_get_ex(o, "text", &text) || json_object_is_type(text, json_type_null))
		return 0;
	if (!json_object_is_type(text, json_type_string))
		return -EINVAL;
	ev->text = strndup(json_object_get_string(text), (size_t)json_object_get_string_len(text));
	return ev->text ? 0 : -ENOMEM;
}

int ctl_msg_decode(const char *line, size_t len, struct ctl_msg *msg)
{
	json_object *o = parse_object(line, len), *c;
	char name[32];
	uint64_t u;
	int r = -EINVAL;

	if (!o)
		return -EINVAL;
	memset(msg, 0, sizeof(*msg));
	if (get_str(o, "msg", name, sizeof(name)) < 0)
		goto out;
	if (!name[0]) {
		msg->type = CTL_MSG_EVENT;
		r = decode_event(o, &msg->ev);
	} else if (!strcmp(name, "hello") || !strcmp(name, "info")) {
		msg->type = name[0] == 'h' ? CTL_MSG_HELLO : CTL_MSG_INFO;
		r = decode_info(o, &msg->info);
	} else if (!strcmp(name, "snapshot-begin")) {
		msg->type = CTL_MSG_SNAPSHOT_BEGIN;
		r = get_u64(o, "first_done_ns", &msg->first_done_ns) |
		    get_u64(o, "last_seq", &msg->last_seq);
		if (r == 0 && json_object_object_get_ex(o, "counts", &c)) {
			r |= get_u64(c, "done", &u); msg->counts.done = (unsigned)u;
			r |= get_u64(c, "failed", &u); msg->counts.failed = (unsigned)u;
			r |= get_u64(c, "in_progress", &u); msg->counts.in_progress = (unsigned)u;
			r |= get_u64(c, "held", &u); msg->counts.held = (unsigned)u;
			r |= get_u64(c, "excluded", &u); msg->counts.excluded = (unsigned)u;
		}
		r = r ? -EINVAL : 0;
	} else if (!strcmp(name, "tile")) {
		msg->type = CTL_MSG_TILE;
		r = decode_tile(o, &msg->tile);
	} else if (!strcmp(name, "snapshot-end")) {
		msg->type = CTL_MSG_SNAPSHOT_END;
		r = 0;
	} else if (!strcmp(name, "reply")) {
		msg->type = CTL_MSG_REPLY;
		r = get_u64(o, "id", &msg->id) | get_int(o, "rc", &msg->rc) |
		    get_str(o, "text", msg->text, sizeof(msg->text));
		r = r ? -EINVAL : 0;
	}
out:
	json_object_put(o);
	return r;
}
