/* simulate: the real station against virtual boards on virtual ports.
 *
 *   rpi-sb-provisioner simulate [--devices pi5:2,pi4:1,zero2w:1]
 *       [--link-rate MBPS] [--fault [N=]SPEC]... [--headless] [--json]
 *       [--until-done] [--arm-otp FINGERPRINT] [--dry-run]
 *       [--hold after-bootstrap|after-triage] [--fresh]
 *   rpi-sb-provisioner simulate --boards N [--ports P] [--mix MODEL:W,...]
 *       [--fault-rate PCT] [--seed S] [--keep-state] ...
 *
 * The second form streams boards (the soak): P ports stay busy, and when a
 * port's board is finished a fresh virtual board (a new serial, a random
 * model from the weighted mix, with probability PCT one random fault) is
 * plugged in, until N boards have gone through. Only the P boards on the
 * ports are in memory; a passed board's state dir is removed unless
 * --keep-state.
 *
 * With a configuration file it rehearses that line (keys, image, modes,
 * hooks, records). With none it builds an embedded default under
 * <srv>/simulate: a generated gold image, a throw-away key, secure-boot with
 * OTP armed for virtual boards only (station/engine.c sets all that up). A
 * board is done when the station has recorded it and its virtual first boot
 * passed. Main thread. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cli.h"
#include "station/engine.h"
#include "vpi/board.h"
#include "vpi/bus.h"
#include "vpi/fastbootd.h"
#include "vpi/fault.h"

/* The station's verdict on one virtual board, from the events. */
struct sim_verdict {
	char result[1024];        /* failure reason or "" */
	bool failed, recorded;
	bool job_started;         /* the station started a job for it */
	bool ended;               /* its job reached done, failed or held */
};

#define SIM_MIX_MAX 16
#define SIM_STREAM_NEVER_SEEN_S 30   /* a plugged board with no job after this is "never seen" */

/* The board stream of `--boards N` (main thread only). */
struct sim_stream {
	unsigned long total;      /* boards to put through */
	unsigned long plugged;    /* boards plugged so far */
	unsigned long reported;   /* boards finished and reported */
	unsigned ports;
	char models[SIM_MIX_MAX][16];
	unsigned weights[SIM_MIX_MAX], nmodels, wsum;
	unsigned fault_rate;      /* percent */
	uint64_t rng, seed;
	bool keep_state;
	unsigned long terminal_events; /* jobs seen ending */
	struct {
		unsigned long number; /* 1-based board number in the stream */
		char fault[128];      /* "" when none */
		uint64_t plugged_ns;
	} slot[ENGINE_MAX_BOARDS];
	char first_faults[ENGINE_MAX_BOARDS][160]; /* "N=SPEC" for the engine */
	unsigned long pass, fail, fail_unfaulted, wrong_success, never_seen;
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
				if (ev->type == EVENT_PORT_ADDED && ev->phase == PHASE_WAITING) {
					sb->job_started = true;
				} else if (ev->type == EVENT_PHASE && (ev->phase == PHASE_DONE ||
					   ev->phase == PHASE_FAILED || ev->phase == PHASE_HELD)) {
					sb->ended = true;
				}
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

/* ---- the board stream (--boards) ---------------------------------------- */

static uint64_t stream_rand(struct sim_stream *ss)
{
	/* splitmix64: reproducible from --seed */
	uint64_t z = (ss->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned stream_below(struct sim_stream *ss, unsigned n)
{
	return n ? (unsigned)(stream_rand(ss) % n) : 0;
}

/* "pi5:3,cm4:1" -> models and weights. 0 or -EINVAL with a message. */
static int stream_parse_mix(struct sim_stream *ss, const char *mix)
{
	char copy[512], *save = NULL;

	if (strlen(mix) >= sizeof(copy))
		return -EINVAL;
	snprintf(copy, sizeof(copy), "%s", mix);
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':'), *end = NULL;
		long w = 1;

		if (colon) {
			*colon = '\0';
			w = strtol(colon + 1, &end, 10);
			if (*end || w < 1 || w > 1000) {
				fprintf(stderr, "simulate: --mix: bad weight '%s' for %s (1..1000)\n",
					colon + 1, tok);
				return -EINVAL;
			}
		}
		if (!vpi_model_find(tok) || strlen(tok) >= sizeof(ss->models[0]) ||
		    ss->nmodels == SIM_MIX_MAX) {
			fprintf(stderr, "simulate: --mix: unknown model '%s' (or more than %d); "
				"allowed: pi5|pi500|cm5|cm5lite|pi4|pi400|cm4|zero2w\n", tok, SIM_MIX_MAX);
			return -EINVAL;
		}
		snprintf(ss->models[ss->nmodels], sizeof(ss->models[0]), "%s", tok);
		ss->weights[ss->nmodels++] = (unsigned)w;
		ss->wsum += (unsigned)w;
	}
	return ss->nmodels ? 0 : -EINVAL;
}

static const char *stream_model(struct sim_stream *ss)
{
	unsigned x = stream_below(ss, ss->wsum);

	for (unsigned i = 0; i < ss->nmodels; i++) {
		if (x < ss->weights[i])
			return ss->models[i];
		x -= ss->weights[i];
	}
	return ss->models[0];
}

/* The bit flip lands in the first 4 KiB of partition 1 (the gadget starts
 * it at the 4 MiB grain): always written, so it always fires and on-board
 * verification must catch it. */
#define STREAM_BITFLIP_BASE (4u << 20)

/* With probability fault_rate %, one random fault spec (vpi/fault.h). */
static void stream_fault(struct sim_stream *ss, char *spec, size_t len)
{
	static const char *const phases[] = { "rom", "recovery", "bootloader", "gadget",
					      "download", "flash" };
	static const char *const cmds[] = { "oem partinit", "oem cryptinit", "erase", "flash",
					    "download" };
	const char *ph = phases[stream_below(ss, 6)];

	spec[0] = '\0';
	if (stream_below(ss, 100) >= ss->fault_rate)
		return;
	switch (stream_below(ss, 7)) {
	case 0:
		snprintf(spec, len, "unplug:phase=%s", ph);
		break;
	case 1:
		snprintf(spec, len, "unplug:phase=%s,offset=%u", ph,
			 stream_below(ss, strcmp(ph, "flash") && strcmp(ph, "download") ? 65536 : 8 << 20));
		break;
	case 2:
		snprintf(spec, len, "stall:phase=%s", ph);
		break;
	case 3:
		snprintf(spec, len, "fail:cmd=%s", cmds[stream_below(ss, 5)]);
		break;
	case 4:
		snprintf(spec, len, "slow-enum:ms=%u", 500 + stream_below(ss, 3500));
		break;
	case 5:
		snprintf(spec, len, "storage:size=64M");
		break;
	default:
		snprintf(spec, len, "bitflip:offset=%u", STREAM_BITFLIP_BASE + stream_below(ss, 4096));
		break;
	}
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The next never-used serial seed under @simdir (the counter the engine
 * keeps for new board state dirs). */
static int stream_next_seed(const char *simdir, uint32_t *seed)
{
	char p[PATH_MAX];
	unsigned long next = 1;
	FILE *f;

	if (snprintf(p, sizeof(p), "%s/serial-seed", simdir) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	f = fopen(p, "r");
	if (f) {
		if (fscanf(f, "%lu", &next) != 1 || next == 0 || next >= UINT32_MAX)
			next = 1;
		fclose(f);
	}
	*seed = (uint32_t)next;
	f = fopen(p, "w");
	if (!f)
		return -errno;
	fprintf(f, "%lu\n", next + 1);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* Plan the first boards (one per port): their models as a --devices list
 * and their faults as "N=SPEC"; their old state dirs are removed (each
 * stream board is a new board). */
static int stream_plan_first(struct sim_stream *ss, const char *simdir, char *devices, size_t len,
			     const char **faults, size_t *nfaults)
{
	size_t used = 0;

	devices[0] = '\0';
	for (unsigned i = 0; i < ss->ports; i++) {
		const char *m = stream_model(ss);
		char state[PATH_MAX];
		int n = snprintf(devices + used, len - used, "%s%s:1", i ? "," : "", m);

		if (n < 0 || (size_t)n >= len - used)
			return -ENAMETOOLONG;
		used += (size_t)n;
		if (snprintf(state, sizeof(state), "%s/boards/%s-%u", simdir, m, i + 1) >=
		    (int)sizeof(state))
			return -ENAMETOOLONG;
		rm_tree(state);
		char spec[sizeof(ss->slot[0].fault)];
		stream_fault(ss, spec, sizeof(spec));
		memcpy(ss->slot[i].fault, spec, sizeof(spec));
		ss->slot[i].number = ++ss->plugged;
		if (spec[0]) {
			snprintf(ss->first_faults[i], sizeof(ss->first_faults[i]), "%u=%s", i + 1, spec);
			faults[(*nfaults)++] = ss->first_faults[i];
		}
	}
	return 0;
}

static void stream_proc_stats(const char *when, unsigned long boards)
{
	char line[256];
	long rss = -1, threads = -1, fds = 0;
	FILE *f = fopen("/proc/self/status", "r");
	DIR *d;

	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %ld", &rss);
		sscanf(line, "Threads: %ld", &threads);
	}
	if (f)
		fclose(f);
	d = opendir("/proc/self/fd");
	for (struct dirent *de; d && (de = readdir(d));)
		fds += de->d_name[0] != '.';
	if (d) {
		closedir(d);
		fds--; /* the directory stream itself */
	}
	printf("simulate: stats %s: boards %lu rss_kb %ld fds %ld threads %ld\n", when, boards, rss,
	       fds, threads);
	fflush(stdout);
}

/* Report the board on @slot (its job ended, or it never got one). */
static void stream_report(struct sim_stream *ss, const struct engine *e, size_t slot,
			  const struct sim_verdict *v)
{
	const struct engine_board *eb = &e->boards[slot];
	const char *fault = ss->slot[slot].fault;
	bool pass = eb->verified && v->recorded && !v->failed;

	if (pass) {
		ss->pass++;
		if (strncmp(fault, "bitflip:", 8) == 0)
			ss->wrong_success++;
	} else {
		ss->fail++;
		if (!fault[0] || strncmp(fault, "slow-enum:", 10) == 0)
			ss->fail_unfaulted++;
	}
	if (!v->job_started)
		ss->never_seen++;
	ss->reported++;
	printf("stream board %lu %s %s %016" PRIx64 " %s%s%s [fault: %s]%s\n", ss->slot[slot].number,
	       eb->port, eb->model, vpi_board_serial64(eb->b), pass ? "PASS" : "FAIL",
	       pass ? "" : ": ", pass ? "" : v->result[0] ? v->result : eb->fbr.reason[0] ?
	       eb->fbr.reason : "not provisioned", fault[0] ? fault : "none",
	       v->job_started ? "" : " (never seen by the station)");
	if (ss->reported % 50 == 0)
		stream_proc_stats("progress", ss->reported);
}

/* Unplug the finished board on @slot, free it and plug the next one in. */
static int stream_replace(struct sim_stream *ss, struct engine *e, size_t slot,
			  const struct engine_opts *eo, struct sim_verdict *v)
{
	struct engine_board *eb = &e->boards[slot];
	struct vpi_board_opts o;
	struct vpi_board *nb = NULL;
	char state[PATH_MAX], err[256];
	const char *model = stream_model(ss);
	bool pass = eb->verified && v->recorded && !v->failed;
	int r;

	vpi_bus_detach(e->bus, eb->port);
	vpi_fastbootd_board_reset(eb->b);
	vpi_board_close(eb->b);
	eb->b = NULL;
	if (pass && !ss->keep_state)
		rm_tree(eb->state);

	vpi_board_opts_init(&o);
	o.link_bytes_per_s = (uint64_t)(eo->link_mbps * 1000000.0);
	o.faults.storage_bytes = (uint64_t)eo->storage_mb << 20;
	stream_fault(ss, ss->slot[slot].fault, sizeof(ss->slot[slot].fault));
	if (ss->slot[slot].fault[0] &&
	    vpi_fault_parse(ss->slot[slot].fault, &o.faults, err, sizeof(err)) < 0) {
		fprintf(stderr, "simulate: stream fault %s: %s\n", ss->slot[slot].fault, err);
		return -EINVAL;
	}
	ss->slot[slot].number = ++ss->plugged;
	if (snprintf(state, sizeof(state), "%s/boards/s%lu-%s", e->simdir, ss->slot[slot].number,
		     model) >= (int)sizeof(state))
		return -ENAMETOOLONG;
	rm_tree(state);
	if ((r = stream_next_seed(e->simdir, &o.serial_seed)) < 0 ||
	    (r = mkdir_p(state, 0750)) < 0 || (r = vpi_board_open(model, state, &o, &nb)) < 0) {
		fprintf(stderr, "simulate: stream board %s: %s\n", state, strerror(-r));
		return r;
	}
	pthread_mutex_lock(&e->lock);  /* the verify hook looks boards up by port */
	snprintf(eb->model, sizeof(eb->model), "%s", model);
	snprintf(eb->state, sizeof(eb->state), "%s", state);
	eb->b = nb;
	eb->verified = false;
	memset(&eb->fbr, 0, sizeof(eb->fbr));
	pthread_mutex_unlock(&e->lock);
	memset(v, 0, sizeof(*v));
	ss->slot[slot].plugged_ns = mono_ns();
	r = vpi_bus_attach(e->bus, eb->port, nb);
	if (r < 0)
		fprintf(stderr, "simulate: plugging %s into %s: %s\n", model, eb->port, strerror(-r));
	return r;
}

/* One pass of the stream: report and replace every finished board once the
 * station has let go of its port. Returns true when the stream is done. */
static bool stream_step(struct sim_stream *ss, struct engine *e, const struct engine_opts *eo,
			struct sim_verdict *v)
{
	struct station_counts cnt;
	unsigned long ended = 0;
	uint64_t now = mono_ns();
	bool busy = false;

	station_get_counts(e->st, &cnt);
	for (size_t i = 0; i < e->nboards; i++)
		ended += ss->slot[i].number && v[i].ended;
	/* A job's end event comes before the station frees its port: wait
	 * until the counts include every end we saw. */
	if (cnt.done + cnt.failed + cnt.held < ss->terminal_events + ended)
		return false;
	for (size_t i = 0; i < e->nboards; i++) {
		bool never = !v[i].job_started && e->boards[i].b &&
			     now - ss->slot[i].plugged_ns > SIM_STREAM_NEVER_SEEN_S * 1000000000ull;

		if (!ss->slot[i].number)
			continue; /* retired: the stream has no more boards for it */
		if (!v[i].ended && !never) {
			busy = true;
			continue;
		}
		ss->terminal_events += v[i].ended;
		stream_report(ss, e, i, &v[i]);
		if (ss->plugged < ss->total) {
			if (stream_replace(ss, e, i, eo, &v[i]) < 0)
				return true;
			busy = true;
		} else {
			vpi_bus_detach(e->bus, e->boards[i].port);
			v[i].ended = false;
			ss->slot[i].number = 0;
		}
	}
	return !busy && cnt.active == 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: rpi-sb-provisioner simulate [--devices MODEL:N,...] [--link-rate MBPS]\n"
		"       [--fault [N=]SPEC]... [--headless] [--json] [--until-done] [--arm-otp FP]\n"
		"       [--dry-run] [--hold after-bootstrap|after-triage] [--storage-size MB] [--fresh]\n"
		"       rpi-sb-provisioner simulate --boards N [--ports P] [--mix MODEL:W,...]\n"
		"       [--fault-rate PCT] [--seed S] [--keep-state] [other options as above]\n");
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
		{ "boards", required_argument, NULL, 'B' },
		{ "ports", required_argument, NULL, 'P' },
		{ "mix", required_argument, NULL, 'M' },
		{ "fault-rate", required_argument, NULL, 'R' },
		{ "seed", required_argument, NULL, 'E' },
		{ "keep-state", no_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static struct sim_stream stream;
	struct sim_stream *ss = NULL;
	const char *mix = "pi5:1,pi500:1,cm5:1,pi4:1,pi400:1,cm4:1,zero2w:1";
	char stream_devices[ENGINE_MAX_BOARDS * 16];
	char *end;
	const char *faults[ENGINE_MAX_BOARDS];
	struct engine_opts eo = {
		.prog = "simulate",
		.paths = &cli->paths,
		.config_path = cli->config_path,
		.devices = "pi5:2,pi4:1,zero2w:1",
		.faults = faults,
		.storage_mb = 256,
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
		case 'B':
			ss = &stream;
			ss->total = strtoul(optarg, &end, 10);
			if (*end || ss->total < 1 || ss->total > 10000000) {
				fprintf(stderr, "simulate: --boards %s: 1..10000000\n", optarg);
				goto usage_out;
			}
			break;
		case 'P':
			stream.ports = (unsigned)strtoul(optarg, &end, 10);
			if (*end || stream.ports < 1 || stream.ports > ENGINE_MAX_BOARDS) {
				fprintf(stderr, "simulate: --ports %s: 1..%d\n", optarg, ENGINE_MAX_BOARDS);
				goto usage_out;
			}
			break;
		case 'M': mix = optarg; break;
		case 'R':
			stream.fault_rate = (unsigned)strtoul(optarg, &end, 10);
			if (*end || stream.fault_rate > 100) {
				fprintf(stderr, "simulate: --fault-rate %s: percent 0..100\n", optarg);
				goto usage_out;
			}
			break;
		case 'E': stream.rng = stream.seed = strtoull(optarg, NULL, 0); break;
		case 'K': stream.keep_state = true; break;
		case 'h': usage(); rc = EXIT_OK; goto out;
		default: goto usage_out;
		}
	}
	/* What the station writes (database, logs, retrieved device keys, cache)
	 * is not for other users; doc/security.md states the modes. */
	umask(027);
	/* A signing key will be in this process: no core file, no ptrace by
	 * other processes of this user (key bytes are also MADV_DONTDUMP). */
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (ss) {
		char simdir[PATH_MAX];

		if (!stream.ports)
			stream.ports = 8;
		if (stream.ports > ss->total)
			stream.ports = (unsigned)ss->total;
		if (stream_parse_mix(ss, mix) < 0)
			goto usage_out;
		snprintf(simdir, sizeof(simdir), "%s/simulate", cli->paths.srv);
		if (stream_plan_first(ss, simdir, stream_devices, sizeof(stream_devices), faults,
				      &eo.nfaults) < 0)
			goto usage_out;
		eo.devices = stream_devices;
		until_done = true;
		printf("simulate: stream of %lu boards on %u ports, mix %s, fault rate %u%%, seed %" PRIu64 "\n",
		       ss->total, ss->ports, mix, ss->fault_rate, ss->seed);
	} else if (stream.ports || stream.fault_rate || stream.keep_state) {
		fprintf(stderr, "simulate: --ports, --fault-rate and --keep-state go with --boards\n");
		goto usage_out;
	}
	if (!headless)
		fprintf(stderr, "simulate: prints its progress here; for the dashboard on virtual "
			"boards run `rpi-sb-provisioner attach --simulate DEVICES`\n");

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
	if (ss) {
		for (size_t i = 0; i < e->nboards; i++)
			ss->slot[i].plugged_ns = start;
		stream_proc_stats("start", 0);
	}

	struct pollfd pfd = { .fd = event_queue_fd(e->events), .events = POLLIN };
	for (;;) {
		struct station_counts cnt;

		poll(&pfd, 1, 200);
		sim_drain(e, v, json, start);
		if (sim_interrupted)
			break;
		if (ss) {
			if (stream_step(ss, e, &eo, v))
				break;
			continue;
		}
		station_get_counts(e->st, &cnt);
		if (until_done && cnt.active == 0 && cnt.done + cnt.failed + cnt.held >= e->nboards)
			break;
	}
	engine_stop(e);
	sim_drain(e, v, json, start);
	if (ss) {
		double secs = (double)(mono_ns() - start) / 1e9;

		stream_proc_stats("end", ss->reported);
		printf("simulate: stream: %lu boards in %.1f s: %lu PASS, %lu FAIL (%lu of them "
		       "without a fault that should fail them), %lu never seen by the station, "
		       "%lu wrong successes (a flipped bit recorded ok)\n", ss->reported, secs,
		       ss->pass, ss->fail, ss->fail_unfaulted, ss->never_seen, ss->wrong_success);
		rc = ss->reported == ss->total && ss->fail_unfaulted == 0 && ss->wrong_success == 0 ?
		     EXIT_OK : EXIT_FAILED;
		goto out;
	}

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
