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
 * OTP armed for virtual boards only. A board is done when the station has
 * recorded it and its virtual first boot passed. Main thread. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "artefacts/art_err.h"
#include "artefacts/pubkey.h"
#include "artefacts/secmem.h"
#include "artefacts/sign.h"
#include "config/config.h"
#include "core/cli.h"
#include "flows/flows.h"
#include "station/disc_sim.h"
#include "station/station.h"
#include "vpi/board.h"
#include "vpi/bus.h"
#include "vpi/fastbootd.h"
#include "vpi/fault.h"
#include "vpi/firstboot.h"
#include "vpi/standin.h"

#ifndef RPI_SB_SCRIPTS_DIR
#define RPI_SB_SCRIPTS_DIR "/usr/share/rpi-sb-provisioner/scripts"
#endif

#define SIM_MAX_BOARDS 64

struct sim_board {
	char result[1024];        /* the station's verdict: failure reason or "" */
	bool failed, recorded;
	char model[16];
	char state[PATH_MAX];
	char port[32];
	struct vpi_board *b;
	bool verified;
	struct vpi_firstboot_report fbr;
};

struct sim {
	struct vpi_bus *bus;
	struct sim_board boards[SIM_MAX_BOARDS];
	size_t n;
	const char *gold;
	pthread_mutex_t lock;
};

static volatile sig_atomic_t sim_interrupted;

static void on_signal(int sig)
{
	sim_interrupted = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The verify hook: take the board off the bus and power it on from its own
 * EEPROM and storage, as the first boot at the customer would. */
static int sim_verify(void *usrptr, struct job *job, const char *serial16, char *why, size_t len)
{
	struct sim *s = usrptr;
	struct sim_board *sb = NULL;
	int r;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->boards[i].port, job_port(job)) == 0)
			sb = &s->boards[i];
	pthread_mutex_unlock(&s->lock);
	if (!sb) {
		snprintf(why, len, "no virtual board on port %s", job_port(job));
		return -ENODEV;
	}
	vpi_bus_detach(s->bus, sb->port);
	r = vpi_board_power_on(sb->b, s->gold, &sb->fbr);
	if (r < 0) {
		snprintf(why, len, "the virtual first boot could not run: %s", strerror(-r));
		return r;
	}
	blog(job_log(job), BLOG_PROVISIONER, "virtual first boot: %s%s%s (%llu entries compared)",
	     sb->fbr.pass ? "pass" : "FAIL", sb->fbr.pass ? "" : ": ", sb->fbr.reason,
	     (unsigned long long)sb->fbr.entries_compared);
	sb->verified = sb->fbr.pass;
	if (!sb->fbr.pass) {
		snprintf(why, len, "virtual first boot: %s", sb->fbr.reason);
		return -EBADMSG;
	}
	return 0;
}

/* The helper scripts: $RPI_SB_SCRIPTS_DIR, the installed ones, or the
 * source tree's when the program runs from its build directory. */
static int run_script(const char *script, const char *arg)
{
	const char *dirs[] = { getenv("RPI_SB_SCRIPTS_DIR"), RPI_SB_SCRIPTS_DIR,
#ifdef RPI_SB_SRC_SCRIPTS_DIR
			       RPI_SB_SRC_SCRIPTS_DIR,
#endif
	};
	char path[PATH_MAX] = "";
	pid_t pid;
	int status;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirs[i], script);
		if (access(path, R_OK) == 0)
			break;
	}
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execl("/bin/bash", "bash", path, arg, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "simulate: %s failed (exit %d)\n", path,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	return 0;
}

/* snprintf for paths: -ENAMETOOLONG instead of a silently cut path. */
static int pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static int link_fixture(const char *fixture, const char *dst)
{
	unlink(dst);
	if (symlink(fixture, dst) < 0)
		return -errno;
	return 0;
}

/* A one-entry ustar archive: <name> holding @data (for the Zero 2 W). */
static int write_tar1(const char *path, const char *name, const char *data)
{
	unsigned char h[512] = { 0 }, pad[1024] = { 0 };
	size_t len = strlen(data);
	unsigned sum = 0;
	FILE *f;

	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", 0644);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011zo", len);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	f = fopen(path, "wb");
	if (!f)
		return -errno;
	fwrite(h, 1, 512, f);
	fwrite(data, 1, len, f);
	fwrite(pad, 1, (512 - len % 512) % 512, f);
	fwrite(pad, 1, 1024, f);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* The embedded default: everything a rehearsal needs, under @dir. Writes
 * @dir/provisioner.ini and returns its path in @ini. */
static int make_default(const char *dir, char *ini, size_t inilen, bool fresh)
{
	const char *fx = vpi_firmware_dir();
	char p[PATH_MAX], q[PATH_MAX];
	struct stat st;
	int r;

	if (pathf(ini, inilen, "%s/provisioner.ini", dir) < 0)
		return -ENAMETOOLONG;
	if (!fresh && stat(ini, &st) == 0)
		return 0;
	static const char *const sub[] = { "images", "keys", "firmware/bootloader-2711/latest",
		"firmware/bootloader-2712/latest", "rpiboot/mass-storage-gadget64", "gadget",
		"cache", "log", "scripts" };
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		pathf(p, sizeof(p), "%s/%s", dir, sub[i]);
		if ((r = mkdir_p(p, 0750)) < 0)
			return r;
	}
	/* Raspberry Pi's real firmware, as the rpi-eeprom and usbboot packages lay it out. */
	static const struct { const char *from, *to; } fixtures[] = {
		{ "pieeprom-2026-08-04.bin", "firmware/bootloader-2711/latest/pieeprom-2026-08-04.bin" },
		{ "firmware-2711/recovery.bin", "firmware/bootloader-2711/latest/recovery.bin" },
		{ "pieeprom-2026-08-12.bin", "firmware/bootloader-2712/latest/pieeprom-2026-08-12.bin" },
		{ "firmware-2712/recovery.bin", "firmware/bootloader-2712/latest/recovery.bin" },
		{ "usbboot-firmware/bootfiles.bin", "rpiboot/mass-storage-gadget64/bootfiles.bin" },
	};
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		pathf(p, sizeof(p), "%s/%s", fx, fixtures[i].from);
		pathf(q, sizeof(q), "%s/%s", dir, fixtures[i].to);
		if (access(p, R_OK) < 0) {
			fprintf(stderr, "simulate: Raspberry Pi firmware %s is missing (set "
				"RPI_SB_VPI_FIRMWARE to the fixtures directory)\n", p);
			return -ENOENT;
		}
		if ((r = link_fixture(p, q)) < 0)
			return r;
	}
	/* Stand-ins for what only Raspberry Pi's packages provide. */
	char gadget[256];
	int gl = snprintf(gadget, sizeof(gadget), "%s %s\nfastboot gadget stand-in for the virtual Pi\n",
			  VPI_STANDIN_MAGIC, VPI_STANDIN_ROLE_GADGET);
	pathf(p, sizeof(p), "%s/gadget/fastboot-gadget.img", dir);
	if ((r = write_file(p, gadget, (size_t)gl, 0644)) < 0)
		return r;
	char bc[128];
	snprintf(bc, sizeof(bc), "%s %s\nZero 2 W bootcode stand-in\n", VPI_STANDIN_MAGIC,
		 VPI_STANDIN_ROLE_BOOTCODE);
	pathf(p, sizeof(p), "%s/gadget/fastboot-gadget.2710-bootfiles-bin", dir);
	if ((r = write_tar1(p, "2710/bootcode.bin", bc)) < 0)
		return r;
	pathf(p, sizeof(p), "%s/gadget/cryptroot_initramfs", dir);
	if ((r = run_script("make-standin-initramfs.sh", p)) < 0)
		return r;
	pathf(p, sizeof(p), "%s/images/gold.img", dir);
	if ((r = run_script("make-gold-image.sh", p)) < 0)
		return r;

	/* A throw-away signing key, kept across runs: boards it secured stay
	 * secured with it. */
	pathf(q, sizeof(q), "%s/keys/throwaway-key.pem", dir);
	if (access(q, R_OK) < 0) {
		char *pem = NULL;
		size_t pem_len = 0;
		struct rsa_pubkey pub;
		struct art_err err = { "" };

		if ((r = sign_generate_key(&pem, &pem_len, &pub, &err)) < 0) {
			fprintf(stderr, "simulate: %s\n", err.msg);
			return r;
		}
		r = write_file(q, pem, pem_len, 0600);
		secmem_free(pem);
		if (r < 0)
			return r;
	}

	FILE *f = fopen(ini, "w");
	if (!f)
		return -errno;
	fprintf(f,
		"# Embedded default of `rpi-sb-provisioner simulate`: virtual boards only.\n"
		"[station]\nid = simulate\nmode = secure-boot\nfamily = auto\n\n"
		"[image]\ngold = %s\nstorage = sd\n\n"
		"[key]\npem = %s\n\n"
		"[otp]\nrpiboot_gpio = 8\n\n"
		"[bootloader]\nfirmware_dir = %s/firmware/bootloader-%%chip%%/latest\n\n"
		"[paths]\ncache_dir = %s/cache\ndatabase = %s/manufacturing.db\nlog_dir = %s/log\n"
		"hooks_dir = %s/scripts\nflags_dir = %s\npayload_dir = %s/rpiboot\n"
		"gadget_image = %s/gadget/fastboot-gadget.img\n"
		"cryptroot_initramfs = %s/gadget/cryptroot_initramfs\n"
		"key_retrieval_dir = %s/device-keys\n\n"
		"[family.2W]\nmode = fde-only\n",
		p, q, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* The serial seed of board @index (0-based) with state dir @state. A state
 * dir that exists keeps the seed its identity file pins. A new one is a new
 * board: it gets a seed never handed out under @simdir before (counted in
 * <simdir>/serial-seed), so a removed and recreated state dir does not meet
 * records that say a board with its serial was already fused. The first run
 * hands out 1..n, as before. */
static int sim_board_seed(const char *simdir, const char *state, size_t index, uint32_t *seed)
{
	char p[PATH_MAX], line[128] = "";
	unsigned long next = 1, have;
	FILE *f;

	if (pathf(p, sizeof(p), "%s/identity", state) < 0)
		return -ENAMETOOLONG;
	f = fopen(p, "r");
	if (f) {
		char *at = fgets(line, sizeof(line), f) ? strstr(line, "seed=") : NULL;

		fclose(f);
		if (at && sscanf(at, "seed=%lu", &have) == 1 && have <= UINT32_MAX) {
			*seed = (uint32_t)have;
			return 0;
		}
		return -EINVAL;
	}
	if (pathf(p, sizeof(p), "%s/serial-seed", simdir) < 0)
		return -ENAMETOOLONG;
	f = fopen(p, "r");
	if (f) {
		if (fscanf(f, "%lu", &have) == 1 && have < UINT32_MAX)
			next = have;
		fclose(f);
	}
	*seed = (uint32_t)(index + 1 > next ? index + 1 : next);
	f = fopen(p, "w");
	if (!f)
		return -errno;
	fprintf(f, "%lu\n", (unsigned long)*seed + 1);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* Record an OTP arming decision in the audit table; a failure to record is
 * reported but does not change the decision. */
static void sim_audit(const struct config *cfg, const char *action, const char *target,
		      const char *detail)
{
	const char *path = config_get(cfg, "paths", "database");
	int r;

	if (!path || !*path)
		return;
	r = db_audit_file(path, DB_ORIGIN_CLI, action, target, detail);
	if (r < 0)
		fprintf(stderr, "simulate: warning: could not record '%s' in the audit table of %s: "
			"%s\n", action, path, strerror(-r));
}

/* Print events and keep each board's verdict. */
static void sim_drain(struct sim *s, struct event_queue *q, bool json, uint64_t start)
{
	struct event evs[64];
	size_t n;

	while ((n = event_pop(q, evs, 64)) > 0) {
		for (size_t i = 0; i < n; i++) {
			const struct event *ev = &evs[i];

			for (size_t k = 0; k < s->n; k++) {
				struct sim_board *sb = &s->boards[k];

				if (strcmp(sb->port, ev->port) != 0)
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

static int parse_devices(const char *spec, struct sim *s, char *err, size_t errlen)
{
	char *copy = strdup(spec), *save = NULL;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		long count = 1;

		if (colon) {
			*colon = '\0';
			char *end;
			count = strtol(colon + 1, &end, 10);
			if (*end || count < 1 || count > SIM_MAX_BOARDS) {
				snprintf(err, errlen, "--devices: bad count '%s' for %s", colon + 1, tok);
				r = -EINVAL;
				break;
			}
		}
		if (!vpi_model_find(tok)) {
			snprintf(err, errlen, "--devices: unknown model '%s'; allowed: pi5|pi500|cm5|"
				 "cm5lite|pi4|pi400|cm4|zero2w", tok);
			r = -EINVAL;
			break;
		}
		for (long i = 0; i < count; i++) {
			if (s->n == SIM_MAX_BOARDS) {
				snprintf(err, errlen, "--devices: at most %d boards", SIM_MAX_BOARDS);
				r = -EINVAL;
				break;
			}
			snprintf(s->boards[s->n++].model, sizeof(s->boards[0].model), "%s", tok);
		}
		if (r < 0)
			break;
	}
	free(copy);
	return r;
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
	struct sim *s = calloc(1, sizeof(*s));
	const char *devices = "pi5:2,pi4:1,zero2w:1", *arm = NULL, *faults[SIM_MAX_BOARDS];
	size_t nfaults = 0;
	double link_mbps = 0;
	long storage_mb = 256;
	bool headless = false, json = false, until_done = false, dry_run = false, fresh = false;
	enum flow_hold hold = FLOW_HOLD_NONE;
	struct config *cfg = NULL;
	struct config_problems probs = { 0 };
	struct flow_ctx fctx;
	struct event_queue *q = NULL;
	struct station *st = NULL;
	struct discovery *disc = NULL;
	char simdir[PATH_MAX], ini[PATH_MAX], err[256] = "";
	const char *config_path = cli->config_path;
	bool embedded = false, armed_implicitly = false;
	int c, r, rc = EXIT_FAILED;

	if (!s)
		return EXIT_FAILED;
	pthread_mutex_init(&s->lock, NULL);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': devices = optarg; break;
		case 'l': link_mbps = strtod(optarg, NULL); break;
		case 'f':
			if (nfaults < SIM_MAX_BOARDS)
				faults[nfaults++] = optarg;
			break;
		case 'H': headless = true; break;
		case 'j': json = headless = true; break;
		case 'u': until_done = true; break;
		case 'a': arm = optarg; break;
		case 'n': dry_run = true; break;
		case 'F': fresh = true; break;
		case 'S':
			storage_mb = strtol(optarg, NULL, 10);
			if (storage_mb < 64 || storage_mb > 1 << 20) {
				fprintf(stderr, "simulate: --storage-size %s: MiB in 64..1048576\n", optarg);
				goto usage_out;
			}
			break;
		case 'o':
			if (strcmp(optarg, "after-bootstrap") == 0)
				hold = FLOW_HOLD_AFTER_BOOTSTRAP;
			else if (strcmp(optarg, "after-triage") == 0)
				hold = FLOW_HOLD_AFTER_TRIAGE;
			else {
				fprintf(stderr, "simulate: --hold '%s'; allowed: after-bootstrap|after-triage\n", optarg);
				goto usage_out;
			}
			break;
		case 'h': usage(); rc = EXIT_OK; goto out;
		default: goto usage_out;
		}
	}
	if (parse_devices(devices, s, err, sizeof(err)) < 0) {
		fprintf(stderr, "simulate: %s\n", err);
		goto usage_out;
	}
	if (!headless)
		fprintf(stderr, "simulate: the dashboard is not built yet; running headless\n");

	/* Configuration: the operator's file, or the embedded default. */
	pathf(simdir, sizeof(simdir), "%s/simulate", cli->paths.srv);
	if (access(config_path, F_OK) < 0) {
		if ((r = mkdir_p(simdir, 0750)) < 0 || (r = make_default(simdir, ini, sizeof(ini), fresh)) < 0) {
			fprintf(stderr, "simulate: cannot build the embedded default in %s: %s\n", simdir,
				strerror(-r));
			goto out;
		}
		config_path = ini;
		embedded = true;
		fprintf(stderr, "simulate: no configuration at %s: using the embedded default (%s)\n",
			cli->config_path, ini);
	}
	r = config_load(config_path, &cli->paths, &cfg, &probs);
	if (r < 0) {
		for (size_t i = 0; i < probs.n; i++)
			fprintf(stderr, "%s:%d: %s%s%s%s%s%s\n", probs.v[i].file, probs.v[i].line,
				probs.v[i].key ? "key '" : "", probs.v[i].key ? probs.v[i].key : "",
				probs.v[i].key ? "': " : "", probs.v[i].message,
				probs.v[i].allowed ? "; allowed: " : "", probs.v[i].allowed ? probs.v[i].allowed : "");
		if (r == -EINVAL) {
			bool fatal = false;
			for (size_t i = 0; i < probs.n; i++)
				fatal |= !probs.v[i].warning;
			if (fatal) {
				rc = EXIT_USAGE;
				goto out;
			}
		} else {
			goto out;
		}
	}

	flow_ctx_init(&fctx, cfg, &cli->paths);
	fctx.dry_run = dry_run;
	fctx.hold = hold;
	fctx.verify = sim_verify;
	fctx.verify_usrptr = s;
	struct art_err aerr = { "" };
	const char *pem = config_get(cfg, "key", "pem"), *signer = config_get(cfg, "key", "signer");
	if (*pem || *signer) {
		r = signer_open_config(*pem ? pem : NULL, *signer ? signer : NULL,
				       config_get(cfg, "key", "public"), 0, &fctx.signer, &aerr);
		if (r < 0) {
			fprintf(stderr, "simulate: signing key: %s\n", aerr.msg);
			goto out_ctx;
		}
		pubkey_fingerprint(signer_pubkey(fctx.signer), fctx.key_fingerprint);
		fprintf(stderr, "simulate: key %s, fingerprint %s\n", signer_describe(fctx.signer),
			fctx.key_fingerprint);
	}
	/* OTP arming: typed fingerprint suffix; the embedded default arms itself
	 * because its boards are virtual and its key is thrown away. */
	if (arm) {
		size_t al = strlen(arm), fl = strlen(fctx.key_fingerprint);
		if (al < 8 || !fl || al > fl || strcasecmp(arm, fctx.key_fingerprint + fl - al) != 0) {
			fprintf(stderr, "simulate: --arm-otp %s does not match the key fingerprint %s; "
				"OTP stays disarmed\n", arm, fl ? fctx.key_fingerprint : "(no key)");
			char detail[160];
			snprintf(detail, sizeof(detail), "simulate --arm-otp %.64s: %s", arm,
				 fl ? "does not match the key fingerprint" : "no key is configured");
			sim_audit(cfg, "otp-arm-refused", fl ? fctx.key_fingerprint : NULL, detail);
			rc = EXIT_USAGE;
			goto out_ctx;
		}
		fctx.otp_armed = true;
		char detail[160];
		snprintf(detail, sizeof(detail), "simulate --arm-otp %.64s: %zu virtual board(s)%s",
			 arm, s->n, dry_run ? ", dry run (nothing burned)" : "");
		sim_audit(cfg, "otp-arm", fctx.key_fingerprint, detail);
	} else if (embedded) {
		fctx.otp_armed = true;
		armed_implicitly = true;
		char detail[160];
		snprintf(detail, sizeof(detail), "simulate, embedded default: armed implicitly for "
			 "%zu virtual board(s) and its throw-away key%s", s->n,
			 dry_run ? ", dry run (nothing burned)" : "");
		sim_audit(cfg, "otp-arm", fctx.key_fingerprint[0] ? fctx.key_fingerprint : NULL, detail);
	}
	fprintf(stderr, "simulate: OTP %s%s\n", fctx.otp_armed ? "ARMED" : "disarmed",
		armed_implicitly ? " (embedded default, virtual boards only)" : "");

	/* The virtual line: one port per board. */
	if ((r = vpi_bus_new(VPI_BUS_DEFAULT_BUSNUM, (unsigned)s->n, &s->bus)) < 0) {
		fprintf(stderr, "simulate: virtual bus: %s\n", strerror(-r));
		goto out_ctx;
	}
	s->gold = config_get(cfg, "image", "gold");
	if ((r = mkdir_p(simdir, 0750)) < 0) {
		fprintf(stderr, "simulate: cannot create %s: %s\n", simdir, strerror(-r));
		goto out_boards;
	}
	for (size_t i = 0; i < s->n; i++) {
		struct sim_board *sb = &s->boards[i];
		struct vpi_board_opts o;

		vpi_board_opts_init(&o);
		pathf(sb->state, sizeof(sb->state), "%s/boards/%s-%zu", simdir, sb->model, i + 1);
		if ((r = sim_board_seed(simdir, sb->state, i, &o.serial_seed)) < 0) {
			fprintf(stderr, "simulate: board %s: cannot read or allocate its serial seed "
				"(%s); remove the state dir to start a new board\n", sb->state,
				strerror(-r));
			goto out_boards;
		}
		o.link_bytes_per_s = (uint64_t)(link_mbps * 1000000.0);
		/* Small virtual storage keeps a rehearsal quick; a storage fault overrides it. */
		o.faults.storage_bytes = (uint64_t)storage_mb << 20;
		for (size_t k = 0; k < nfaults; k++) {
			const char *spec = faults[k], *eq = strchr(spec, '=');
			char *end;
			long which = -1;

			if (eq && eq > spec && (which = strtol(spec, &end, 10), end == eq))
				spec = eq + 1;
			else
				which = -1;
			if (which != -1 && which != (long)i + 1)
				continue;
			if (vpi_fault_parse(spec, &o.faults, err, sizeof(err)) < 0) {
				fprintf(stderr, "simulate: --fault %s: %s\n", faults[k], err);
				rc = EXIT_USAGE;
				goto out_boards;
			}
		}
		if ((r = mkdir_p(sb->state, 0750)) < 0 ||
		    (r = vpi_board_open(sb->model, sb->state, &o, &sb->b)) < 0) {
			fprintf(stderr, "simulate: board %s: %s\n", sb->state, strerror(-r));
			goto out_boards;
		}
		snprintf(sb->port, sizeof(sb->port), "%s", vpi_bus_port_name(s->bus, (unsigned)i));
	}

	if ((r = event_queue_new(&q)) < 0 || (r = disc_sim_new(s->bus, &disc)) < 0)
		goto out_boards;
	struct station_opts so = {
		.station_id = config_get(cfg, "station", "id"),
		.db_path = config_get(cfg, "paths", "database"),
		.log_dir = config_get(cfg, "paths", "log_dir"),
		.debounce_ms = 5000,
		.disc = disc,
		.flow = flow_board,
		.flow_usrptr = &fctx,
		.events = q,
	};
	db_mode_parse(config_get(cfg, "station", "mode"), &so.mode);
	if ((r = mkdir_p(so.log_dir, 0750)) < 0 || (r = station_new(&so, &st)) < 0 ||
	    (r = station_start(st)) < 0) {
		fprintf(stderr, "simulate: the station did not start: %s\n", strerror(-r));
		goto out_station;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	uint64_t start = mono_ns();
	for (size_t i = 0; i < s->n; i++) {
		r = vpi_bus_attach(s->bus, s->boards[i].port, s->boards[i].b);
		if (r < 0)
			fprintf(stderr, "simulate: plugging %s into %s: %s\n", s->boards[i].model,
				s->boards[i].port, strerror(-r));
	}

	struct pollfd pfd = { .fd = event_queue_fd(q), .events = POLLIN };
	for (;;) {
		struct station_counts cnt;

		poll(&pfd, 1, 200);
		sim_drain(s, q, json, start);
		if (sim_interrupted)
			break;
		station_get_counts(st, &cnt);
		if (until_done && cnt.active == 0 && cnt.done + cnt.failed + cnt.held >= s->n)
			break;
	}
	station_stop(st);
	sim_drain(s, q, json, start);

	/* One summary line a board, from the records. */
	double secs = (double)(mono_ns() - start) / 1e9;
	size_t ok = 0;
	struct db *db = NULL;
	db_open(so.db_path, 0, &db);
	for (size_t i = 0; i < s->n; i++) {
		struct sim_board *sb = &s->boards[i];
		char serial[17];
		bool pass = sb->verified && sb->recorded && !sb->failed;

		snprintf(serial, sizeof(serial), "%016llx", (unsigned long long)vpi_board_serial64(sb->b));
		if (pass)
			ok++;
		printf("board %-4s %-8s %s %s%s%s\n", sb->port, sb->model, serial,
		       pass ? "PASS" : "FAIL", pass ? "" : ": ",
		       pass ? "" : sb->result[0] ? sb->result : sb->fbr.reason[0] ? sb->fbr.reason :
		       "not provisioned (see its attempt row and log)");
	}
	db_close(db);
	printf("simulate: %zu of %zu boards provisioned and passed the virtual first boot in %.1f s\n",
	       ok, s->n, secs);
	rc = (ok == s->n) ? EXIT_OK : EXIT_FAILED;

out_station:
	station_free(st);
out_boards:
	if (s->bus)
		vpi_bus_free(s->bus);
	for (size_t i = 0; i < s->n; i++) {
		if (s->boards[i].b) {
			vpi_fastbootd_board_reset(s->boards[i].b); /* the gadget's per-board state */
			vpi_board_close(s->boards[i].b);
		}
	}
	disc_sim_free(disc);
	event_queue_free(q);
out_ctx:
	if (fctx.signer)
		signer_close(fctx.signer);
	flow_ctx_fini(&fctx);
out:
	config_free(cfg);
	config_problems_free(&probs);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return rc;
usage_out:
	usage();
	rc = EXIT_USAGE;
	goto out;
}
