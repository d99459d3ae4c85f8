/* daemon: the engine as a service, with the control socket.
 *
 *   rpi-sb-provisioner daemon [--config F] [--socket P] [--log] [--events-json]
 *       [--simulate DEVICES] [--fault [N=]SPEC]... [--link-rate MBPS]
 *       [--until-done N] [--transient] [--user NAME] [--rehearse-usb]
 *
 * It runs the engine (real USB, or virtual boards with --simulate), keeps
 * one model of the station, and serves it to viewers over the control
 * socket; --log prints a human line per event, --events-json a JSON line.
 * SIGTERM, SIGHUP and SIGINT (and the shutdown command) stop it taking new
 * boards and let the ones in flight finish before it exits: losing a viewer
 * or a terminal never cuts a board short. Everything here runs on the main
 * thread (the front end) but the drain, which waits in its own thread so
 * events keep flowing while boards finish. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cli.h"
#include "station/daemon.h"
#include "records/export.h"
#include "records/flags.h"
#include "station/cmd_cache.h"
#include "station/ctl_server.h"
#include "station/ctl_wire.h"
#include "station/engine.h"
#include "station/headless.h"

#define STATION_GROUP "rpi-sb"
#define TRANSIENT_IDLE_NS (2000000000ull)

struct daemon {
	struct cli *cli;
	struct engine *e;
	struct ctl_server *srv;
	struct station_model model;
	struct ctl_info info;
	bool log, json;
	uint64_t start_ns;
	/* Shutdown: requested, then the drain thread runs engine_stop(). */
	bool stop_requested;
	bool draining;
	pthread_t drainer;
	volatile int drained;          /* set by the drain thread when it is done */
	unsigned long until_done;      /* exit after this many final boards (0: never) */
	unsigned long finished, failed;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Copy @src into @dst, cut to fit (status text, never a path that is used). */
static void copy_text(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The status bar's facts, from the engine. */
static void daemon_info(struct daemon *d)
{
	struct engine *e = d->e;
	struct ctl_info *in = &d->info;

	memset(in, 0, sizeof(*in));
	copy_text(in->station_id, sizeof(in->station_id), config_get(e->cfg, "station", "id"));
	copy_text(in->mode, sizeof(in->mode), config_get(e->cfg, "station", "mode"));
	copy_text(in->image, sizeof(in->image), config_get(e->cfg, "image", "gold"));
	copy_text(in->key_fingerprint, sizeof(in->key_fingerprint), e->fctx.key_fingerprint);
	in->otp_armed = atomic_load(&e->fctx.otp_armed);
	in->simulated = e->o.devices != NULL;
	copy_text(in->config_path, sizeof(in->config_path), e->config_path);
	for (unsigned i = 0; i < e->n_warnings && i < 8; i++)
		copy_text(in->warnings[in->n_warnings++], sizeof(in->warnings[0]), e->warnings[i]);
	in->events_dropped = event_queue_dropped(e->events);
}

static void *drain_main(void *arg)
{
	struct daemon *d = arg;

	engine_stop(d->e);
	__atomic_store_n(&d->drained, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void daemon_begin_drain(struct daemon *d, const char *why)
{
	struct station_counts c;

	if (d->draining)
		return;
	station_get_counts(d->e->st, &c);
	fprintf(stderr, "daemon: %s: no new boards; %u in flight finish first\n", why, c.active);
	d->draining = true;
	if (pthread_create(&d->drainer, NULL, drain_main, d) != 0) {
		engine_stop(d->e);
		d->drained = 1;
		d->draining = false;
	}
}

/* ---- commands -------------------------------------------------------- */

static int cmd_board_serial(struct daemon *d, const struct ctl_cmd *cmd, char serial[FLAGS_SERIAL_MAX],
			    char *reply, size_t len)
{
	const char *s = cmd->serial;

	if (!*s) {
		struct tile *t = model_find(&d->model, cmd->port);

		if (!t) {
			snprintf(reply, len, "no board on port %s", cmd->port);
			return -ENOENT;
		}
		if (!t->serial[0]) {
			snprintf(reply, len, "the serial of the board on port %s is not known yet", cmd->port);
			return -ENOENT;
		}
		s = t->serial;
	}
	if (flags_serial_normalise(s, serial) < 0) {
		snprintf(reply, len, "'%s' is not a board serial (8 or 16 hex digits)", s);
		return -EINVAL;
	}
	return 0;
}

static bool boards_in_flight(struct daemon *d, unsigned *n)
{
	struct station_counts c;

	station_get_counts(d->e->st, &c);
	*n = c.active;
	return c.active > 0;
}

static int do_export(struct daemon *d, const struct ctl_cmd *cmd, char *reply, size_t len)
{
	char path[PATH_MAX];
	struct db *db = NULL;
	size_t rows = 0;
	FILE *f;
	int fd, r;

	if (cmd->text[0]) {
		if (cmd->text[0] != '/') {
			snprintf(reply, len, "export-csv: give an absolute path");
			return -EINVAL;
		}
		snprintf(path, sizeof(path), "%s", cmd->text);
	} else {
		char dir[PATH_MAX], stamp[32];
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
		snprintf(dir, sizeof(dir), "%s/exports", d->cli->paths.srv);
		if ((r = mkdir_p(dir, 0750)) < 0) {
			snprintf(reply, len, "export-csv: cannot create %s: %s", dir, strerror(-r));
			return r;
		}
		if (snprintf(path, sizeof(path), "%s/records-%s.csv", dir, stamp) >= (int)sizeof(path)) {
			snprintf(reply, len, "export-csv: the exports directory path is too long");
			return -ENAMETOOLONG;
		}
	}
	r = db_open(config_get(d->e->cfg, "paths", "database"), 0, &db);
	if (r < 0) {
		snprintf(reply, len, "export-csv: cannot open the records: %s", strerror(-r));
		return r;
	}
	/* A new file only: an operator's export never overwrites anything. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		db_close(db);
		snprintf(reply, len, "export-csv: cannot create %s: %s", path, strerror(-r));
		return r;
	}
	r = export_csv(db, &(struct db_device_filter){ 0 }, f, &rows);
	if (fclose(f) != 0 && r == 0)
		r = -EIO;
	db_close(db);
	if (r < 0) {
		unlink(path);
		snprintf(reply, len, "export-csv: writing %s failed: %s", path, strerror(-r));
		return r;
	}
	snprintf(reply, len, "%s", path);
	fprintf(stderr, "daemon: exported %zu record(s) to %s\n", rows, path);
	return 0;
}

static int daemon_command(void *usrptr, const struct ctl_peer *peer, const struct ctl_cmd *cmd,
			  char *reply, size_t len)
{
	struct daemon *d = usrptr;
	struct engine *e = d->e;
	const char *action = ctl_cmd_name(cmd->type);
	char target[PATH_MAX] = "", detail[512] = "";
	enum flag_kind fk;
	unsigned busy;
	int r = 0;

	switch (cmd->type) {
	case CTL_CMD_CLEAR_CACHE: {
		const char *dir = config_get(e->cfg, "paths", "cache_dir");
		struct art_err err = { "" };
		size_t removed, left;
		uint64_t bytes;

		if (boards_in_flight(d, &busy)) {
			snprintf(reply, len, "refused: %u board(s) in flight use the cache", busy);
			return -EBUSY;
		}
		r = cache_clear_counted(dir, &removed, &bytes, &left, &err);
		snprintf(reply, len, "removed %zu entr%s (%.1f MiB) from %s%s%s", removed,
			 removed == 1 ? "y" : "ies", (double)bytes / 1048576.0, dir,
			 r < 0 ? "; " : "", r < 0 ? err.msg : "");
		snprintf(target, sizeof(target), "%s", dir);
		snprintf(detail, sizeof(detail), "removed %zu entries (%llu bytes)%s", removed,
			 (unsigned long long)bytes, r < 0 ? "; some could not be removed" : "");
		action = "cache-clear";
		break;
	}
	case CTL_CMD_SET_FLAG: {
		char serial[FLAGS_SERIAL_MAX];

		ctl_flag_parse(cmd->flag, &fk); /* checked by the decoder */
		if ((r = cmd_board_serial(d, cmd, serial, reply, len)) < 0)
			return r;
		r = flags_set(config_get(e->cfg, "paths", "flags_dir"), serial, fk, !cmd->persistent);
		if (r < 0) {
			snprintf(reply, len, "cannot set %s for %s: %s", flags_name(fk), serial, strerror(-r));
			return r;
		}
		snprintf(reply, len, "%s set for %s (%s)", flags_name(fk), serial,
			 cmd->persistent ? "persistent" : "once: cleared after the next successful bootstrap");
		snprintf(target, sizeof(target), "%s", serial);
		snprintf(detail, sizeof(detail), "%s %s%s%s", flags_name(fk),
			 cmd->persistent ? "persistent" : "once", cmd->port[0] ? ", port " : "", cmd->port);
		action = "flag-set";
		break;
	}
	case CTL_CMD_RETRY:
		r = station_retry(e->st, cmd->port);
		switch (r) {
		case 0: snprintf(reply, len, "retrying the board on %s", cmd->port); break;
		case -EBUSY: snprintf(reply, len, "a board is in flight on %s", cmd->port); break;
		case -ENODEV: snprintf(reply, len, "no board on %s now: plug it in again", cmd->port); break;
		case -EALREADY: snprintf(reply, len, "the last board on %s did not fail", cmd->port); break;
		default: snprintf(reply, len, "cannot retry %s: %s", cmd->port, strerror(-r)); break;
		}
		if (r < 0)
			return r;
		snprintf(target, sizeof(target), "%s", cmd->port);
		break;
	case CTL_CMD_CLEAR_FINISHED: {
		size_t before = d->model.n;

		model_clear_finished(&d->model);
		ctl_server_resync_all(d->srv);
		snprintf(reply, len, "cleared %zu tile(s)", before - d->model.n);
		snprintf(detail, sizeof(detail), "%zu tile(s) removed", before - d->model.n);
		break;
	}
	case CTL_CMD_EXPORT_CSV:
		if ((r = do_export(d, cmd, reply, len)) < 0)
			return r;
		snprintf(target, sizeof(target), "%s", reply);
		break;
	case CTL_CMD_ARM_OTP: {
		const char *fp = e->fctx.key_fingerprint;

		snprintf(target, sizeof(target), "%s", fp);
		if (!*fp) {
			snprintf(reply, len, "no signing key is configured: nothing to arm");
			r = -ENOKEY;
		} else if (!engine_fingerprint_matches(cmd->text, fp)) {
			snprintf(reply, len, "'%.64s' does not match the key fingerprint %s: OTP stays "
				 "disarmed", cmd->text, fp);
			r = -EINVAL;
		}
		if (r < 0) {
			snprintf(detail, sizeof(detail), "control socket: typed %.64s: %s", cmd->text, reply);
			engine_audit(e, DB_ORIGIN_CONTROL_SOCKET, peer->user, "otp-arm-refused", *fp ? fp : NULL, detail);
			return r;
		}
		atomic_store(&e->fctx.otp_armed, true);
		snprintf(reply, len, "OTP ARMED for key %s", fp);
		snprintf(detail, sizeof(detail), "control socket: typed %.64s", cmd->text);
		action = "otp-arm";
		break;
	}
	case CTL_CMD_DISARM_OTP:
		atomic_store(&e->fctx.otp_armed, false);
		snprintf(reply, len, "OTP disarmed");
		snprintf(target, sizeof(target), "%s", e->fctx.key_fingerprint);
		action = "otp-disarm";
		break;
	case CTL_CMD_RELOAD_CONFIG:
		r = engine_reload(e, reply, len);
		if (e->fctx.signer)
			prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* a key may have been loaded now */
		snprintf(target, sizeof(target), "%s", e->config_path);
		snprintf(detail, sizeof(detail), "%s", reply);
		engine_audit(e, DB_ORIGIN_CONTROL_SOCKET, peer->user, r < 0 ? "config-reload-refused" : "config-reload", target, detail);
		daemon_info(d);
		ctl_server_info_changed(d->srv);
		return r;
	case CTL_CMD_SHUTDOWN:
		boards_in_flight(d, &busy);
		snprintf(reply, len, "shutting down: %u board(s) in flight finish first", busy);
		d->stop_requested = true;
		break;
	case CTL_CMD_COUNT:
		return -EINVAL;
	}
	engine_audit(e, DB_ORIGIN_CONTROL_SOCKET, peer->user, action, target[0] ? target : NULL, detail[0] ? detail : NULL);
	daemon_info(d);
	ctl_server_info_changed(d->srv);
	return r;
}

/* ---- the loop ------------------------------------------------------------ */

static void daemon_events(struct daemon *d)
{
	struct event evs[64];
	size_t n;

	while ((n = event_pop(d->e->events, evs, 64)) > 0) {
		for (size_t i = 0; i < n; i++) {
			struct event *ev = &evs[i];

			model_apply(&d->model, ev);
			if (d->json) {
				char *js = event_to_json(ev);

				if (js)
					printf("%s\n", js);
				free(js);
			} else if (d->log && ev->type != EVENT_PROGRESS) {
				char line[1024];

				if (event_format_line(ev, d->start_ns, line, sizeof(line)) > 0)
					printf("%s\n", line);
			}
			if (ev->type == EVENT_PHASE && (ev->phase == PHASE_DONE ||
			    ev->phase == PHASE_FAILED || ev->phase == PHASE_HELD)) {
				d->finished++;
				if (ev->phase == PHASE_FAILED)
					d->failed++;
			}
			if (d->srv)
				ctl_server_event(d->srv, ev);
			event_clear(ev);
		}
		fflush(stdout);
	}
}

static int group_of_station(gid_t *gid)
{
	struct group gr, *grp = NULL;
	char buf[4096];

	if (getgrnam_r(STATION_GROUP, &gr, buf, sizeof(buf), &grp) == 0 && grp) {
		*gid = grp->gr_gid;
		return 1;
	}
	*gid = getegid();
	return 0;
}

/* Become @user (started as root): its uid, gid and groups. 0 or -errno. */
static int drop_to_user(const char *user)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];

	if (getpwnam_r(user, &pw, buf, sizeof(buf), &pwp) != 0 || !pwp) {
		fprintf(stderr, "daemon: --user %s: no such user\n", user);
		return -ENOENT;
	}
	if (initgroups(pw.pw_name, pw.pw_gid) < 0 || setgid(pw.pw_gid) < 0 || setuid(pw.pw_uid) < 0) {
		int r = -errno;

		fprintf(stderr, "daemon: cannot become %s: %s\n", user, strerror(-r));
		return r;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rpi-sb-provisioner daemon [--config F] [--socket P] [--log] [--events-json]\n"
		"       [--simulate DEVICES] [--fault [N=]SPEC]... [--link-rate MBPS] [--dry-run]\n"
		"       [--until-done N] [--transient] [--user NAME] [--rehearse-usb]\n");
}

int cmd_daemon(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "log", no_argument, NULL, 'L' },
		{ "events-json", no_argument, NULL, 'j' },
		{ "simulate", required_argument, NULL, 'S' },
		{ "fault", required_argument, NULL, 'f' },
		{ "link-rate", required_argument, NULL, 'l' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "rehearse-usb", no_argument, NULL, 'R' },
		{ "until-done", required_argument, NULL, 'u' },
		{ "transient", no_argument, NULL, 't' },
		{ "user", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *faults[ENGINE_MAX_BOARDS], *socket_path = NULL, *user = NULL;
	struct engine_opts eo = {
		.prog = "daemon",
		.paths = &cli->paths,
		.config_path = cli->config_path,
		.faults = faults,
		.tolerate_config = true,
	};
	struct daemon d = { .cli = cli };
	char *default_socket = NULL;
	bool transient = false, usage_error = false;
	gid_t group;
	sigset_t mask;
	int sfd = -1, c, r, rc = EXIT_FAILED;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': eo.config_path = optarg; break;
		case 's': socket_path = optarg; break;
		case 'L': d.log = true; break;
		case 'j': d.json = true; break;
		case 'S': eo.devices = optarg; break;
		case 'f':
			if (eo.nfaults < ENGINE_MAX_BOARDS)
				faults[eo.nfaults++] = optarg;
			break;
		case 'l': eo.link_mbps = strtod(optarg, NULL); break;
		case 'n': eo.dry_run = true; break;
		case 'R': eo.rehearse_usb = true; break;
		case 'u': {
			char *end;

			d.until_done = strtoul(optarg, &end, 10);
			if (*end || !d.until_done) {
				fprintf(stderr, "daemon: --until-done %s: a board count >= 1\n", optarg);
				usage(stderr);
				return EXIT_USAGE;
			}
			break;
		}
		case 't': transient = true; break;
		case 'U': user = optarg; break;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "daemon: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (eo.rehearse_usb && eo.devices) {
		fprintf(stderr, "daemon: --rehearse-usb is for virtual Pis on real USB, not --simulate\n");
		return EXIT_USAGE;
	}
	if (user && geteuid() != 0) {
		fprintf(stderr, "daemon: --user needs the daemon to start as root\n");
		return EXIT_USAGE;
	}
	/* What we create is ours and the group's; no core dump carries a key. */
	umask(027);
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	model_init(&d.model);
	if (!socket_path) {
		if (!(default_socket = ctl_socket_path(&cli->paths)))
			return EXIT_FAILED;
		socket_path = default_socket;
	}
	/* Signals arrive on a descriptor; every thread the engine starts
	 * inherits the blocked mask, so none is killed by a hang-up. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	r = engine_new(&eo, &d.e, &usage_error);
	if (r < 0) {
		rc = usage_error ? EXIT_USAGE : EXIT_FAILED;
		goto out;
	}
	if (d.e->fctx.signer)
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* a key is loaded: no ptrace, no core */
	/* One tile a port, empty ones too: the ports known now start empty. */
	if (engine_seed_model(d.e, &d.model) < 0) {
		rc = EXIT_FAILED;
		goto out;
	}
	for (unsigned i = 0; i < d.e->n_warnings; i++)
		fprintf(stderr, "daemon: warning: %s\n", d.e->warnings[i]);
	daemon_info(&d);
	group_of_station(&group);
	struct ctl_server_opts so = {
		.path = socket_path,
		.group = group,
		.model = &d.model,
		.info = &d.info,
		.handler = daemon_command,
		.usrptr = &d,
	};
	r = ctl_server_new(&so, &d.srv);
	if (r < 0) {
		fprintf(stderr, "daemon: control socket %s: %s\n", socket_path,
			r == -EADDRINUSE ? "an engine already runs there (attach to it, or stop it first)" :
			strerror(-r));
		goto out;
	}
	if (user && drop_to_user(user) < 0)
		goto out;
	if (engine_start(d.e) < 0) {
		engine_stop(d.e);
		goto out;
	}
	fprintf(stderr, "daemon: %s; control socket %s\n", d.e->o.devices ? "virtual boards" :
		"real USB", socket_path);
	d.start_ns = mono_ns();
	uint64_t last_viewer = d.start_ns;
	rc = EXIT_OK;

	for (;;) {
		struct pollfd fds[2 + CTL_MAX_CLIENTS + 1];
		size_t n = 0, nsrv;

		fds[n++] = (struct pollfd){ .fd = event_queue_fd(d.e->events), .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		nsrv = ctl_server_pollfds(d.srv, fds + n, CTL_MAX_CLIENTS + 1);
		if (poll(fds, n + nsrv, 200) < 0 && errno != EINTR)
			break;
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				d.stop_requested = true;
		}
		ctl_server_dispatch(d.srv, fds + n, nsrv);
		daemon_events(&d);

		uint64_t now = mono_ns();
		struct station_counts cnt;

		station_get_counts(d.e->st, &cnt);
		if (ctl_server_clients(d.srv) > 0)
			last_viewer = now;
		if (transient && !d.draining && cnt.active == 0 && now - last_viewer > TRANSIENT_IDLE_NS) {
			fprintf(stderr, "daemon: no viewer and no board in flight: exiting (transient)\n");
			d.stop_requested = true;
		}
		if (d.until_done && d.finished >= d.until_done && !d.draining)
			d.stop_requested = true;
		if (d.stop_requested && !d.draining)
			daemon_begin_drain(&d, "stopping");
		if (d.draining && __atomic_load_n(&d.drained, __ATOMIC_ACQUIRE)) {
			pthread_join(d.drainer, NULL);
			d.draining = false;
			daemon_events(&d);
			break;
		}
	}
	if (!d.drained && !d.draining)
		engine_stop(d.e); /* the loop broke on an error: still let boards finish */
	if (d.until_done)
		rc = d.failed > 0 || d.finished < d.until_done ? EXIT_FAILED : EXIT_OK;
	fprintf(stderr, "daemon: stopped: %u done, %u failed, %u held\n", d.model.counts.done,
		d.model.counts.failed, d.model.counts.held);
out:
	if (d.draining) {
		pthread_join(d.drainer, NULL);
	}
	ctl_server_free(d.srv);
	engine_free(d.e);
	model_free(&d.model);
	if (sfd >= 0)
		close(sfd);
	free(default_socket);
	return rc;
}
