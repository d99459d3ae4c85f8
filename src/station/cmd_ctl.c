/* cmd_ctl: the shell's view of a running daemon, over the control socket.
 *
 *   rpi-sb-provisioner status [--json] [--socket P]
 *   rpi-sb-provisioner ctl COMMAND [ARGS] [--persistent] [--socket P]
 *
 * `status` attaches read-only, prints the station and one line a port, and
 * detaches. `ctl` sends one typed command (ctl_wire's table) and prints the
 * engine's reply. Both exit 3 when no daemon answers. Main thread. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "station/ctl.h"
#include "station/ctl_wire.h"
#include "station/daemon.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Connect, or say why not. Returns 0 or the exit code. */
static int attach(const char *prog, struct cli *cli, const char *socket_path, bool read_only,
		  struct ctl_client **out)
{
	char *def = NULL;
	int r;

	if (!socket_path && !(socket_path = def = ctl_socket_path(&cli->paths)))
		return EXIT_FAILED;
	r = ctl_connect(socket_path, read_only, out);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		fprintf(stderr, "%s: no daemon answers on %s (start it with `systemctl start "
			"rpi-sb-provisioner` or `rpi-sb-provisioner daemon`)\n", prog, socket_path);
		free(def);
		return EXIT_NO_DAEMON;
	}
	if (r == -EACCES) {
		fprintf(stderr, "%s: %s: permission denied: join the station group (rpi-sb) or run as "
			"the daemon's user\n", prog, socket_path);
		free(def);
		return EXIT_FAILED;
	}
	if (r < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, socket_path, strerror(-r));
		free(def);
		return EXIT_FAILED;
	}
	free(def);
	return 0;
}

static void print_json(struct ctl_client *c)
{
	struct station_model *m = ctl_model(c);
	char *hello = ctl_hello_encode(ctl_info(c)), *snap = ctl_snapshot_begin_encode(m);

	printf("{\"info\":%s,\"snapshot\":%s,\"boards_per_hour\":%.1f,\"tiles\":[",
	       hello ? hello : "null", snap ? snap : "null", model_boards_per_hour(m, mono_ns()));
	for (size_t i = 0; i < m->n; i++) {
		char *t = ctl_tile_encode(&m->tiles[i]);

		printf("%s%s", i ? "," : "", t ? t : "null");
		free(t);
	}
	printf("]}\n");
	free(hello);
	free(snap);
}

static void print_human(struct ctl_client *c)
{
	const struct ctl_info *in = ctl_info(c);
	struct station_model *m = ctl_model(c);
	uint64_t now = mono_ns();

	printf("station %s  mode %s  OTP %s  key %s%s\n", in->station_id[0] ? in->station_id : "-",
	       in->mode[0] ? in->mode : "-", in->otp_armed ? "ARMED" : "disarmed",
	       in->key_fingerprint[0] ? in->key_fingerprint : "(none)", in->simulated ? "  (virtual boards)" : "");
	printf("image %s\nconfig %s\n", in->image[0] ? in->image : "-", in->config_path);
	for (unsigned i = 0; i < in->n_warnings; i++)
		printf("warning: %s\n", in->warnings[i]);
	printf("done %u  failed %u  in progress %u  held %u  excluded %u  boards/hour %.1f\n",
	       m->counts.done, m->counts.failed, m->counts.in_progress, m->counts.held,
	       m->counts.excluded, model_boards_per_hour(m, now));
	for (size_t i = 0; i < m->n; i++) {
		const struct tile *t = &m->tiles[i];
		uint64_t end = t->finished_ns ? t->finished_ns : now;
		double secs = t->started_ns && end > t->started_ns ? (double)(end - t->started_ns) / 1e9 : 0;
		char detail[MODEL_TEXT + 64] = "";

		if (t->phase == PHASE_FAILED)
			snprintf(detail, sizeof(detail), "in %s: %s", phase_name(t->failed_in), t->reason);
		else if (t->phase == PHASE_HELD || t->phase == PHASE_EXCLUDED)
			snprintf(detail, sizeof(detail), "%s", t->reason);
		else if (t->total)
			snprintf(detail, sizeof(detail), "%.0f%% %.1f MB/s",
				 100.0 * (double)t->bytes / (double)t->total, t->mbps);
		printf("%-10s %-9s %-16s %6.1fs %s%s%s\n", t->port, phase_name(t->phase),
		       t->serial[0] ? t->serial : "-", secs, t->present ? "" : "(gone) ", detail,
		       !detail[0] && t->what[0] ? t->what : "");
	}
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *socket_path = NULL;
	struct ctl_client *c = NULL;
	bool json = false;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = true; break;
		case 's': socket_path = optarg; break;
		case 'h': printf("usage: rpi-sb-provisioner status [--json] [--socket P]\n"); return EXIT_OK;
		default:
			fprintf(stderr, "usage: rpi-sb-provisioner status [--json] [--socket P]\n");
			return EXIT_USAGE;
		}
	}
	if ((rc = attach("status", cli, socket_path, true, &c)) != 0)
		return rc;
	if (json)
		print_json(c);
	else
		print_human(c);
	ctl_close(c);
	return EXIT_OK;
}

static bool looks_like_serial(const char *s)
{
	size_t n = strlen(s);

	return (n == 8 || n == 16) && strspn(s, "0123456789abcdefABCDEF") == n;
}

static void ctl_usage(FILE *f)
{
	fprintf(f, "usage: rpi-sb-provisioner ctl [--socket P] [--timeout S] [--read-only] COMMAND [ARGS]\n"
		"  (--read-only: attach as a viewer that may only look; the engine refuses the command)\n\n"
		"commands:\n");
	for (int i = 0; i < CTL_CMD_COUNT; i++) {
		char head[96];

		snprintf(head, sizeof(head), "%s %s", ctl_cmd_specs[i].name, ctl_cmd_specs[i].usage);
		fprintf(f, "  %-70s %s\n", head, ctl_cmd_specs[i].help);
	}
}

int cmd_ctl(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "persistent", no_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *socket_path = NULL, *pos[3];
	struct ctl_cmd cmd = { 0 };
	struct ctl_client *c = NULL;
	unsigned long timeout_s = 60;
	bool read_only = false;
	size_t npos = 0, need = 0;
	char reply[512];
	int opt, rc, r;

	/* Options may follow the command ("ctl set-flag 9-1 reprovision --persistent"). */
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': socket_path = optarg; break;
		case 'p': cmd.persistent = true; break;
		case 't': timeout_s = strtoul(optarg, NULL, 10); break;
		case 'r': read_only = true; break;
		case 'h': ctl_usage(stdout); return EXIT_OK;
		default: ctl_usage(stderr); return EXIT_USAGE;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (npos == 3) {
			fprintf(stderr, "ctl: too many arguments\n");
			return EXIT_USAGE;
		}
		pos[npos++] = argv[i];
	}
	if (npos == 0 || ctl_cmd_lookup(pos[0], &cmd.type) < 0) {
		if (npos)
			fprintf(stderr, "ctl: unknown command '%s'\n", pos[0]);
		ctl_usage(stderr);
		return EXIT_USAGE;
	}
	unsigned args = ctl_cmd_specs[cmd.type].args;
	size_t at = 1;
	const char *bad = NULL;

	if (args & (CTL_ARG_PORT | CTL_ARG_BOARD)) {
		need++;
		if (at < npos) {
			const char *a = pos[at++];
			char *dst = (args & CTL_ARG_BOARD) && looks_like_serial(a) ? cmd.serial : cmd.port;
			size_t cap = dst == cmd.serial ? sizeof(cmd.serial) : sizeof(cmd.port);

			if (strlen(a) >= cap)
				bad = a;
			else
				memcpy(dst, a, strlen(a) + 1);
		}
	}
	if (args & CTL_ARG_FLAG) {
		need++;
		if (at < npos) {
			const char *a = pos[at++];

			if (strlen(a) >= sizeof(cmd.flag))
				bad = a;
			else
				memcpy(cmd.flag, a, strlen(a) + 1);
		}
	}
	if (args & (CTL_ARG_TEXT | CTL_ARG_TEXT_OPT)) {
		need += (args & CTL_ARG_TEXT) ? 1 : 0;
		if (at < npos) {
			const char *a = pos[at++];

			if (strlen(a) >= sizeof(cmd.text))
				bad = a;
			else
				memcpy(cmd.text, a, strlen(a) + 1);
		}
	}
	if (bad || at < npos || npos - 1 < need) {
		fprintf(stderr, "ctl %s: %s; usage: ctl %s %s\n", pos[0],
			bad ? "an argument is too long" : at < npos ? "too many arguments" :
			"missing arguments", pos[0], ctl_cmd_specs[cmd.type].usage);
		return EXIT_USAGE;
	}
	if ((rc = attach("ctl", cli, socket_path, read_only, &c)) != 0)
		return rc;
	r = ctl_command(c, &cmd, reply, sizeof(reply), (unsigned)(timeout_s * 1000));
	if (r == 0) {
		printf("%s\n", reply);
		rc = EXIT_OK;
	} else {
		fprintf(stderr, "ctl %s: %s (%s)\n", pos[0], reply[0] ? reply : strerror(-r),
			ctl_errno_name(r));
		rc = EXIT_FAILED;
	}
	ctl_close(c);
	return rc;
}
