/* simulate: the real station against virtual boards on virtual ports.
 *
 *   rpi-sb-provisioner simulate [--devices pi5:2,pi4:1,zero2w:1]
 *       [--link-rate MBPS] [--fault [N=]SPEC]... [--headless] [--json]
 *       [--until-done] [--arm-otp FINGERPRINT] [--dry-run]
 *       [--hold after-bootstrap|after-triage] [--fresh]
 *
 * With a configuration file it rehearses that line (keys, image, modes,
 * hooks, records). With none it builds an embedded default under
 * <srv>/simulate: a generated gold image, a throw-away key, secure-boot with
 * OTP armed for virtual boards only (station/engine.c sets all that up). A
 * board is done when the station has recorded it and its virtual first boot
 * passed. Main thread. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cli.h"
#include "station/engine.h"
#include "vpi/board.h"

/* The station's verdict on one virtual board, from the events. */
struct sim_verdict {
	char result[1024];        /* failure reason or "" */
	bool failed, recorded;
};

static volatile sig_atomic_t sim_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	sim_interrupted = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Print events and keep each board's verdict. */
static void sim_drain(const struct engine *e, struct sim_verdict *v, bool json, uint64_t start)
{
	struct event evs[64];
	size_t n;

	while ((n = event_pop(e->events, evs, 64)) > 0) {
		for (size_t i = 0; i < n; i++) {
			const struct event *ev = &evs[i];

			for (size_t k = 0; k < e->nboards; k++) {
				struct sim_verdict *sb = &v[k];

				if (strcmp(e->boards[k].port, ev->port) != 0)
					continue;
				if (ev->type == EVENT_ERROR) {
					sb->failed = true;
					snprintf(sb->result, sizeof(sb->result), "%s: %s",
						 phase_name(ev->phase), ev->text ? ev->text : "failed");
				} else if (ev->type == EVENT_RECORD) {
					sb->recorded = true;
				} else if (ev->type == EVENT_PHASE && ev->phase == PHASE_HELD) {
					snprintf(sb->result, sizeof(sb->result), "held as configured");
				}
			}
			if (json) {
				char *js = event_to_json(ev);
				if (js)
					printf("%s\n", js);
				free(js);
			} else if (ev->type != EVENT_PROGRESS && ev->type != EVENT_LOG) {
				char line[1024];
				if (event_format_line(ev, start, line, sizeof(line)) > 0)
					printf("%s\n", line);
			}
			event_clear(&evs[i]);
		}
		fflush(stdout);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: rpi-sb-provisioner simulate [--devices MODEL:N,...] [--link-rate MBPS]\n"
		"       [--fault [N=]SPEC]... [--headless] [--json] [--until-done] [--arm-otp FP]\n"
		"       [--dry-run] [--hold after-bootstrap|after-triage] [--storage-size MB] [--fresh]\n");
}

int cmd_simulate(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "devices", required_argument, NULL, 'd' },
		{ "link-rate", required_argument, NULL, 'l' },
		{ "fault", required_argument, NULL, 'f' },
		{ "headless", no_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'j' },
		{ "until-done", no_argument, NULL, 'u' },
		{ "arm-otp", required_argument, NULL, 'a' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "hold", required_argument, NULL, 'o' },
		{ "fresh", no_argument, NULL, 'F' },
		{ "storage-size", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *faults[ENGINE_MAX_BOARDS];
	struct engine_opts eo = {
		.prog = "simulate",
		.paths = &cli->paths,
		.config_path = cli->config_path,
		.devices = "pi5:2,pi4:1,zero2w:1",
		.faults = faults,
		.storage_mb = 256,
		.origin = DB_ORIGIN_CLI,
	};
	struct sim_verdict *v = NULL;
	struct engine *e = NULL;
	bool headless = false, json = false, until_done = false, usage_error = false;
	int c, r, rc = EXIT_FAILED;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': eo.devices = optarg; break;
		case 'l': eo.link_mbps = strtod(optarg, NULL); break;
		case 'f':
			if (eo.nfaults < ENGINE_MAX_BOARDS)
				faults[eo.nfaults++] = optarg;
			break;
		case 'H': headless = true; break;
		case 'j': json = headless = true; break;
		case 'u': until_done = true; break;
		case 'a': eo.arm_otp = optarg; break;
		case 'n': eo.dry_run = true; break;
		case 'F': eo.fresh = true; break;
		case 'S':
			eo.storage_mb = strtol(optarg, NULL, 10);
			if (eo.storage_mb < 64 || eo.storage_mb > 1 << 20) {
				fprintf(stderr, "simulate: --storage-size %s: MiB in 64..1048576\n", optarg);
				goto usage_out;
			}
			break;
		case 'o':
			if (strcmp(optarg, "after-bootstrap") == 0)
				eo.hold = FLOW_HOLD_AFTER_BOOTSTRAP;
			else if (strcmp(optarg, "after-triage") == 0)
				eo.hold = FLOW_HOLD_AFTER_TRIAGE;
			else {
				fprintf(stderr, "simulate: --hold '%s'; allowed: after-bootstrap|after-triage\n", optarg);
				goto usage_out;
			}
			break;
		case 'h': usage(); rc = EXIT_OK; goto out;
		default: goto usage_out;
		}
	}
	if (!headless)
		fprintf(stderr, "simulate: the dashboard is not built yet; running headless\n");

	r = engine_new(&eo, &e, &usage_error);
	if (r < 0) {
		rc = usage_error ? EXIT_USAGE : EXIT_FAILED;
		goto out;
	}
	v = calloc(e->nboards, sizeof(*v));
	if (!v || engine_start(e) < 0)
		goto out;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	uint64_t start = mono_ns();

	struct pollfd pfd = { .fd = event_queue_fd(e->events), .events = POLLIN };
	for (;;) {
		struct station_counts cnt;

		poll(&pfd, 1, 200);
		sim_drain(e, v, json, start);
		if (sim_interrupted)
			break;
		station_get_counts(e->st, &cnt);
		if (until_done && cnt.active == 0 && cnt.done + cnt.failed + cnt.held >= e->nboards)
			break;
	}
	engine_stop(e);
	sim_drain(e, v, json, start);

	/* One summary line a board. */
	double secs = (double)(mono_ns() - start) / 1e9;
	size_t ok = 0;
	for (size_t i = 0; i < e->nboards; i++) {
		struct engine_board *sb = &e->boards[i];
		char serial[17];
		bool pass = sb->verified && v[i].recorded && !v[i].failed;

		snprintf(serial, sizeof(serial), "%016llx", (unsigned long long)vpi_board_serial64(sb->b));
		if (pass)
			ok++;
		printf("board %-4s %-8s %s %s%s%s\n", sb->port, sb->model, serial,
		       pass ? "PASS" : "FAIL", pass ? "" : ": ",
		       pass ? "" : v[i].result[0] ? v[i].result : sb->fbr.reason[0] ? sb->fbr.reason :
		       "not provisioned (see its attempt row and log)");
	}
	printf("simulate: %zu of %zu boards provisioned and passed the virtual first boot in %.1f s\n",
	       ok, e->nboards, secs);
	rc = (ok == e->nboards) ? EXIT_OK : EXIT_FAILED;
out:
	engine_free(e);
	free(v);
	return rc;
usage_out:
	usage();
	rc = EXIT_USAGE;
	goto out;
}
