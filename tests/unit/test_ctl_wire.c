/* test_ctl_wire: the control protocol's lines. Every command survives the
 * trip through the wire; bad lines are refused with a reason, never half
 * read; tiles and events arrive as they left; the permission rule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "station/ctl_server.h"
#include "station/ctl_wire.h"
#include "records/flags.h"

static void test_every_command_round_trips(void **state)
{
	(void)state;
	for (int i = 0; i < CTL_CMD_COUNT; i++) {
		struct ctl_cmd in = { .type = (enum ctl_cmd_type)i }, out;
		char err[128];
		uint64_t id;
		char *line;

		snprintf(in.port, sizeof(in.port), "1-1.%d", i);
		if (i == CTL_CMD_SET_FLAG) {
			snprintf(in.flag, sizeof(in.flag), "skip-eeprom");
			in.persistent = true;
		}
		if (i == CTL_CMD_ARM_OTP || i == CTL_CMD_EXPORT_CSV)
			snprintf(in.text, sizeof(in.text), "%s", i == CTL_CMD_ARM_OTP ? "7ba2a6ee" : "/tmp/x \"y\".csv");
		line = ctl_cmd_encode(&in, 1000 + (uint64_t)i);
		assert_non_null(line);
		assert_null(strchr(line, '\n'));
		assert_int_equal(ctl_cmd_decode(line, strlen(line), &out, &id, err, sizeof(err)), 0);
		assert_int_equal(id, 1000 + (uint64_t)i);
		assert_int_equal(out.type, in.type);
		assert_string_equal(out.port, in.port);
		assert_string_equal(out.flag, in.flag);
		assert_string_equal(out.text, in.text);
		assert_int_equal(out.persistent, in.persistent);
		enum ctl_cmd_type t;
		assert_int_equal(ctl_cmd_lookup(ctl_cmd_name(in.type), &t), 0);
		assert_int_equal(t, in.type);
		free(line);
	}
}

static void refused(const char *line, const char *why)
{
	struct ctl_cmd cmd;
	char err[160] = "";
	uint64_t id;

	if (ctl_cmd_decode(line, strlen(line), &cmd, &id, err, sizeof(err)) != -EINVAL)
		fail_msg("accepted: %s", line);
	if (!strstr(err, why))
		fail_msg("'%s': error '%s' lacks '%s'", line, err, why);
}

static void test_bad_commands_refused(void **state)
{
	char longport[200];

	(void)state;
	refused("", "not a JSON object");
	refused("[1,2]", "not a JSON object");
	refused("{\"cmd\":\"retry\",\"port\":\"1-1\"} trailing", "not a JSON object");
	refused("{\"cmd\":\"retry\",\"port\":\"1-1\"", "not a JSON object");
	refused("{\"id\":1}", "\"cmd\"");
	refused("{\"cmd\":7}", "\"cmd\"");
	refused("{\"cmd\":\"format-disk\"}", "unknown command");
	refused("{\"cmd\":\"retry\"}", "needs a port");
	refused("{\"cmd\":\"set-flag\",\"port\":\"1-1\"}", "flag");
	refused("{\"cmd\":\"set-flag\",\"flag\":\"reprovision\"}", "port or a serial");
	refused("{\"cmd\":\"set-flag\",\"port\":\"1-1\",\"flag\":\"erase-all\"}", "allowed");
	refused("{\"cmd\":\"arm-otp\"}", "text");
	refused("{\"cmd\":\"retry\",\"port\":1}", "wrong type");
	refused("{\"cmd\":\"retry\",\"port\":\"1-1\",\"persistent\":\"yes\"}", "wrong type");
	refused("{\"cmd\":\"retry\",\"id\":-4,\"port\":\"1-1\"}", "\"id\"");
	refused("{\"cmd\":\"retry\",\"port\":\"1\\u0000-1\"}", "wrong type");
	memset(longport, 'a', sizeof(longport) - 1);
	longport[sizeof(longport) - 1] = '\0';
	char line[400];
	snprintf(line, sizeof(line), "{\"cmd\":\"retry\",\"port\":\"%s\"}", longport);
	refused(line, "too long");
}

/* set-flag names the skip-EEPROM flag as the flags command does
 * ("skip-eeprom"); the old "skip-eeprom-update" is only an alias. */
static void test_flag_names_match_flags_command(void **state)
{
	struct ctl_cmd cmd;
	enum flag_kind fk;
	char err[160] = "";
	uint64_t id;
	const char *bad = "{\"cmd\":\"set-flag\",\"port\":\"1-1\",\"flag\":\"x\"}";

	(void)state;
	assert_int_equal(ctl_flag_parse(flags_name(FLAG_SKIP_EEPROM), &fk), 0);
	assert_int_equal(fk, FLAG_SKIP_EEPROM);
	assert_int_equal(ctl_flag_parse("skip-eeprom-update", &fk), 0);
	assert_int_equal(fk, FLAG_SKIP_EEPROM);
	assert_non_null(strstr(ctl_cmd_specs[CTL_CMD_SET_FLAG].usage, flags_name(FLAG_SKIP_EEPROM)));
	assert_null(strstr(ctl_cmd_specs[CTL_CMD_SET_FLAG].usage, "skip-eeprom-update"));
	assert_int_equal(ctl_cmd_decode(bad, strlen(bad), &cmd, &id, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "skip-eeprom"));
	assert_null(strstr(err, "skip-eeprom-update"));
}

static void test_tile_and_event_round_trip(void **state)
{
	struct station_model m;
	struct tile *t;
	struct ctl_msg *msg = malloc(sizeof(*msg));
	struct event e = { .type = EVENT_ERROR, .seq = 42, .mono_ns = 123456789, .phase = PHASE_PROVISION,
			   .code = -EPIPE };
	char *line;

	(void)state;
	assert_non_null(msg);
	model_init(&m);
	t = model_tile(&m, "1-1.3");
	t->phase = PHASE_FAILED;
	t->failed_in = PHASE_PROVISION;
	t->code = -EPIPE;
	t->present = true;
	t->bytes = 5;
	t->total = 1ull << 40;
	t->started_ns = 77;
	snprintf(t->serial, sizeof(t->serial), "c561b701c85be8ea");
	snprintf(t->reason, sizeof(t->reason), "unplugged \"during\" provision\n");
	for (unsigned i = 0; i < 3; i++) {
		snprintf(t->log[i], MODEL_TEXT, "log %u", i);
		t->log_count++;
	}
	line = ctl_tile_encode(t);
	assert_int_equal(ctl_msg_decode(line, strlen(line), msg), 0);
	free(line);
	assert_int_equal(msg->type, CTL_MSG_TILE);
	assert_string_equal(msg->tile.port, "1-1.3");
	assert_string_equal(msg->tile.serial, t->serial);
	assert_string_equal(msg->tile.reason, t->reason);
	assert_int_equal(msg->tile.phase, PHASE_FAILED);
	assert_int_equal(msg->tile.failed_in, PHASE_PROVISION);
	assert_int_equal(msg->tile.code, -EPIPE);
	assert_int_equal(msg->tile.total, 1ull << 40);
	assert_true(msg->tile.present);
	assert_int_equal(msg->tile.log_count, 3);
	assert_string_equal(tile_log_line(&msg->tile, 0), "log 2");
	assert_string_equal(tile_log_line(&msg->tile, 2), "log 0");

	snprintf(e.port, sizeof(e.port), "1-1.3");
	e.text = (char *)(uintptr_t)"oem cryptinit: FAIL";
	line = event_to_json(&e);
	assert_int_equal(ctl_msg_decode(line, strlen(line), msg), 0);
	free(line);
	assert_int_equal(msg->type, CTL_MSG_EVENT);
	assert_int_equal(msg->ev.type, EVENT_ERROR);
	assert_int_equal(msg->ev.seq, 42);
	assert_int_equal(msg->ev.mono_ns, 123456789);
	assert_int_equal(msg->ev.code, -EPIPE);
	assert_int_equal(msg->ev.phase, PHASE_PROVISION);
	assert_string_equal(msg->ev.text, "oem cryptinit: FAIL");
	event_clear(&msg->ev);

	line = ctl_reply_encode(9, -EBUSY, "boards in flight");
	assert_int_equal(ctl_msg_decode(line, strlen(line), msg), 0);
	free(line);
	assert_int_equal(msg->type, CTL_MSG_REPLY);
	assert_int_equal(msg->id, 9);
	assert_int_equal(msg->rc, -EBUSY);
	assert_string_equal(msg->text, "boards in flight");

	struct ctl_info in = { .otp_armed = true, .n_warnings = 1 };
	snprintf(in.station_id, sizeof(in.station_id), "bench-3");
	snprintf(in.warnings[0], sizeof(in.warnings[0]), "no configuration");
	line = ctl_hello_encode(&in);
	assert_int_equal(ctl_msg_decode(line, strlen(line), msg), 0);
	free(line);
	assert_int_equal(msg->type, CTL_MSG_HELLO);
	assert_true(msg->info.otp_armed);
	assert_string_equal(msg->info.station_id, "bench-3");
	assert_int_equal(msg->info.n_warnings, 1);
	assert_string_equal(msg->info.warnings[0], "no configuration");

	assert_int_equal(ctl_msg_decode("{\"msg\":\"tile\"}", 14, msg), -EINVAL);
	assert_int_equal(ctl_msg_decode("{\"type\":\"teleport\"}", 19, msg), -EINVAL);
	model_free(&m);
	free(msg);
}

static void test_permission_rule(void **state)
{
	gid_t groups[] = { 100, 4242 };

	(void)state;
	assert_true(ctl_peer_may_act(0, NULL, 0, 0, 1000, 4242));        /* root */
	assert_true(ctl_peer_may_act(1000, NULL, 0, 1000, 1000, 4242));  /* the engine's user */
	assert_true(ctl_peer_may_act(1001, groups, 2, 1001, 1000, 4242)); /* a group member */
	assert_true(ctl_peer_may_act(1001, NULL, 0, 4242, 1000, 4242));  /* primary group */
	assert_false(ctl_peer_may_act(1001, groups, 1, 1001, 1000, 4242));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_command_round_trips),
		cmocka_unit_test(test_bad_commands_refused),
		cmocka_unit_test(test_flag_names_match_flags_command),
		cmocka_unit_test(test_tile_and_event_round_trip),
		cmocka_unit_test(test_permission_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
