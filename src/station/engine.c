/* engine: the set-up both `simulate` and `daemon` run (see engine.h): the
 * configuration or the embedded default, the signer and OTP arming, the flow
 * context, the records and the station over a discovery source (the virtual
 * USB bus with virtual boards, or real USB). Main thread, except the verify
 * hook, which runs on a board's worker thread. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "artefacts/art_err.h"
#include "artefacts/pubkey.h"
#include "artefacts/secmem.h"
#include "artefacts/sign.h"
#include "config/allowlist.h"
#include "station/disc_sim.h"
#include "station/disc_usb.h"
#include "station/engine.h"
#include "vpi/board.h"
#include "vpi/bus.h"
#include "vpi/fastbootd.h"
#include "vpi/fault.h"
#include "vpi/standin.h"

#ifndef RPI_SB_SCRIPTS_DIR
#define RPI_SB_SCRIPTS_DIR "/usr/share/rpi-sb-provisioner/scripts"
#endif

/* The verify hook: take the board off the bus and power it on from its own
 * EEPROM and storage, as the first boot at the customer would. The root must
 * be the gold image's except exactly what the per-board hooks changed, which
 * must be what the hooks left in this board's tree. */
static int engine_verify(void *usrptr, struct job *job, const char *serial16,
			 const struct flow_root_changes *changes, char *why, size_t len)
{
	struct engine *s = usrptr;
	struct engine_board *sb = NULL;
	struct vpi_firstboot_expect x = { 0 };
	int r;

	(void)serial16;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nboards; i++)
		if (strcmp(s->boards[i].port, job_port(job)) == 0)
			sb = &s->boards[i];
	pthread_mutex_unlock(&s->lock);
	if (!sb) {
		snprintf(why, len, "no virtual board on port %s", job_port(job));
		return -ENODEV;
	}
	vpi_bus_detach(s->bus, sb->port);
	if (changes) {
		x.tree = changes->tree;
		x.paths = changes->paths;
		x.npaths = changes->npaths;
	}
	r = vpi_board_power_on_expect(sb->b, s->gold, changes ? &x : NULL, &sb->fbr);
	if (r < 0) {
		snprintf(why, len, "the virtual first boot could not run: %s", strerror(-r));
		return r;
	}
	blog(job_log(job), BLOG_PROVISIONER, "virtual first boot: %s%s%s (%llu entries compared, "
	     "%llu changed by the hooks checked against their tree)",
	     sb->fbr.pass ? "pass" : "FAIL", sb->fbr.pass ? "" : ": ", sb->fbr.reason,
	     (unsigned long long)sb->fbr.entries_compared,
	     (unsigned long long)sb->fbr.entries_expected);
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
		fprintf(stderr, "%s failed (exit %d)\n", path,
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
static int make_default(const char *prog, const char *dir, char *ini, size_t inilen, bool fresh)
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
			fprintf(stderr, "%s: Raspberry Pi firmware %s is missing (set "
				"RPI_SB_VPI_FIRMWARE to the fixtures directory)\n", prog, p);
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
			fprintf(stderr, "%s: %s\n", prog, err.msg);
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

void engine_warn(struct engine *e, const char *fmt, ...)
{
	va_list ap;

	if (e->n_warnings >= ENGINE_MAX_WARNINGS)
		return;
	va_start(ap, fmt);
	vsnprintf(e->warnings[e->n_warnings++], sizeof(e->warnings[0]), fmt, ap);
	va_end(ap);
}

void engine_audit(const struct engine *e, enum db_origin origin, const char *user,
		  const char *action, const char *target, const char *detail)
{
	const char *path = e->cfg ? config_get(e->cfg, "paths", "database") : NULL;
	struct db *db = NULL;
	int r;

	if (!path || !*path)
		return;
	if (!user) {
		r = db_audit_file(path, origin, action, target, detail);
	} else {
		r = db_open(path, DB_OPEN_CREATE, &db);
		if (r == 0)
			r = db_audit(db, origin, user, action, target, detail);
		db_close(db);
	}
	if (r < 0)
		fprintf(stderr, "%s: warning: could not record '%s' in the audit table of %s: %s\n",
			e->o.prog, action, path, strerror(-r));
}

bool engine_fingerprint_matches(const char *typed, const char *fingerprint)
{
	size_t al = typed ? strlen(typed) : 0, fl = fingerprint ? strlen(fingerprint) : 0;

	return al >= 8 && fl && al <= fl && strcasecmp(typed, fingerprint + fl - al) == 0;
}

static int parse_devices(struct engine *e, const char *spec, char *err, size_t errlen)
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
			if (*end || count < 1 || count > ENGINE_MAX_BOARDS) {
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
			if (e->nboards == ENGINE_MAX_BOARDS) {
				snprintf(err, errlen, "--devices: at most %d boards", ENGINE_MAX_BOARDS);
				r = -EINVAL;
				break;
			}
			snprintf(e->boards[e->nboards++].model, sizeof(e->boards[0].model), "%s", tok);
		}
		if (r < 0)
			break;
	}
	if (r == 0 && e->nboards == 0) {
		snprintf(err, errlen, "--devices: no boards in '%s'", spec);
		r = -EINVAL;
	}
	free(copy);
	return r;
}

/* A board on a station without a usable configuration: shown, not touched. */
static int flow_unconfigured(struct job *job, void *usrptr)
{
	struct engine *e = usrptr;

	blog(job_log(job), BLOG_PROVISIONER, "not provisioned: %s",
	     e->n_warnings ? e->warnings[0] : "the station has no usable configuration");
	return JOB_HELD;
}

/* The station's flow: the configuration in force for the whole board. */
static int engine_flow(struct job *job, void *usrptr)
{
	struct engine *e = usrptr;
	int r;

	pthread_rwlock_rdlock(&e->cfg_lock);
	r = e->provisioning ? flow_board(job, &e->fctx) : flow_unconfigured(job, e);
	pthread_rwlock_unlock(&e->cfg_lock);
	return r;
}

/* Load the configuration: the operator's file, or the embedded default for
 * virtual boards when there is none. 0, or -errno (-EINVAL: unusable and not
 * tolerated). */
static int engine_load_config(struct engine *e)
{
	const char *prog = e->o.prog;
	int r;

	snprintf(e->config_path, sizeof(e->config_path), "%s", e->o.config_path);
	if (pathf(e->simdir, sizeof(e->simdir), "%s/simulate", e->o.paths->srv) < 0)
		return -ENAMETOOLONG;
	if (e->o.devices && access(e->o.config_path, F_OK) < 0) {
		if ((r = mkdir_p(e->simdir, 0750)) < 0 ||
		    (r = make_default(prog, e->simdir, e->config_path, sizeof(e->config_path),
				      e->o.fresh)) < 0) {
			fprintf(stderr, "%s: cannot build the embedded default in %s: %s\n", prog,
				e->simdir, strerror(-r));
			return r == -EINVAL ? -EIO : r;
		}
		e->embedded = true;
		fprintf(stderr, "%s: no configuration at %s: using the embedded default (%s)\n", prog,
			e->o.config_path, e->config_path);
	}
	r = config_load(e->config_path, e->o.paths, &e->cfg, &e->probs);
	if (r < 0) {
		for (size_t i = 0; i < e->probs.n; i++)
			config_problem_print(stderr, &e->probs.v[i]);
		if (r != -EINVAL)
			return r;
		if (config_problems_errors(&e->probs) > 0) {
			if (!e->o.tolerate_config)
				return -EINVAL;
			e->provisioning = false;
			if (access(e->config_path, F_OK) < 0)
				engine_warn(e, "no configuration at %s: boards are shown, not provisioned",
					    e->config_path);
			for (size_t i = 0; i < e->probs.n; i++) {
				const struct config_problem *p = &e->probs.v[i];

				if (!p->warning && access(e->config_path, F_OK) == 0)
					engine_warn(e, "%s:%d: %s%s%s", p->file, p->line, p->key ? p->key : "",
						    p->key ? ": " : "", p->message);
			}
		}
	}
	return 0;
}

/* Signer and OTP arming. 0 or -errno (-EINVAL: the typed suffix is wrong). */
static int engine_setup_flow(struct engine *e)
{
	const char *prog = e->o.prog;
	struct flow_ctx *f = &e->fctx;
	struct art_err aerr = { "" };
	char detail[160];
	int r;

	flow_ctx_init(f, e->cfg, e->o.paths);
	e->fctx_ready = true;
	f->dry_run = e->o.dry_run;
	f->hold = e->o.hold;
	if (e->o.rehearse_usb && !e->o.devices) {
		/* Said at start and audited: stand-ins may reach USB devices that
		 * say they are a virtual Pi; real boards are refused them as ever. */
		f->rehearse_usb = true;
		fprintf(stderr, "%s: REHEARSAL over USB: simulator stand-ins are served to devices "
			"whose iProduct says \"%s\"; real boards never get them\n", prog,
			VPI_USB_PRODUCT_MARK);
		engine_audit(e, DB_ORIGIN_CLI, NULL, "rehearse-usb", NULL,
			     "stand-ins allowed to USB devices that say they are a virtual Pi");
	}
	if (e->o.devices) {
		f->verify = engine_verify;
		f->verify_usrptr = e;
	}
	if (!e->provisioning)
		return 0;
	const char *pem = config_get(e->cfg, "key", "pem"), *signer = config_get(e->cfg, "key", "signer");
	if (*pem || *signer) {
		r = signer_open_config(*pem ? pem : NULL, *signer ? signer : NULL,
				       config_get(e->cfg, "key", "public"), 0, &f->signer, &aerr);
		if (r < 0) {
			fprintf(stderr, "%s: signing key: %s\n", prog, aerr.msg);
			if (!e->o.tolerate_config)
				return r;
			engine_warn(e, "signing key: %s: boards are shown, not provisioned", aerr.msg);
			e->provisioning = false;
			return 0;
		}
		pubkey_fingerprint(signer_pubkey(f->signer), f->key_fingerprint);
		fprintf(stderr, "%s: signing with %s, fingerprint %s\n", prog, signer_describe(f->signer),
			f->key_fingerprint);
	}
	/* OTP arming: typed fingerprint suffix; the embedded default arms itself
	 * because its boards are virtual and its key is thrown away. */
	if (e->o.arm_otp) {
		const char *arm = e->o.arm_otp, *fp = f->key_fingerprint;

		if (!engine_fingerprint_matches(arm, fp)) {
			fprintf(stderr, "%s: --arm-otp %s does not match the key fingerprint %s; "
				"OTP stays disarmed\n", prog, arm, *fp ? fp : "(no key)");
			snprintf(detail, sizeof(detail), "%s --arm-otp %.64s: %s", prog, arm,
				 *fp ? "does not match the key fingerprint" : "no key is configured");
			engine_audit(e, DB_ORIGIN_CLI, NULL, "otp-arm-refused", *fp ? fp : NULL, detail);
			return -EINVAL;
		}
		atomic_store(&f->otp_armed, true);
		snprintf(detail, sizeof(detail), "%s --arm-otp %.64s: %zu virtual board(s)%s", prog,
			 arm, e->nboards, e->o.dry_run ? ", dry run (nothing burned)" : "");
		if (!e->o.devices)
			snprintf(detail, sizeof(detail), "%s --arm-otp %.64s%s", prog, arm,
				 e->o.dry_run ? ", dry run (nothing burned)" : "");
		engine_audit(e, DB_ORIGIN_CLI, NULL, "otp-arm", fp, detail);
	} else if (e->embedded) {
		atomic_store(&f->otp_armed, true);
		e->armed_implicitly = true;
		snprintf(detail, sizeof(detail), "%s, embedded default: armed implicitly for "
			 "%zu virtual board(s) and its throw-away key%s", prog, e->nboards,
			 e->o.dry_run ? ", dry run (nothing burned)" : "");
		engine_audit(e, DB_ORIGIN_CLI, NULL, "otp-arm", f->key_fingerprint[0] ? f->key_fingerprint : NULL, detail);
	}
	fprintf(stderr, "%s: OTP %s%s\n", prog, atomic_load(&f->otp_armed) ? "ARMED" : "disarmed",
		e->armed_implicitly ? " (embedded default, virtual boards only)" : "");
	return 0;
}

/* The virtual line: one port per board, each board with its own state. */
static int engine_make_boards(struct engine *e, bool *usage_error)
{
	const char *prog = e->o.prog;
	char err[256];
	int r;

	if ((r = vpi_bus_new(VPI_BUS_DEFAULT_BUSNUM, (unsigned)e->nboards, &e->bus)) < 0) {
		fprintf(stderr, "%s: virtual bus: %s\n", prog, strerror(-r));
		return r;
	}
	e->gold = config_get(e->cfg, "image", "gold");
	if ((r = mkdir_p(e->simdir, 0750)) < 0) {
		fprintf(stderr, "%s: cannot create %s: %s\n", prog, e->simdir, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < e->nboards; i++) {
		struct engine_board *sb = &e->boards[i];
		struct vpi_board_opts o;

		vpi_board_opts_init(&o);
		if (pathf(sb->state, sizeof(sb->state), "%s/boards/%s-%zu", e->simdir, sb->model, i + 1) < 0)
			return -ENAMETOOLONG;
		if ((r = sim_board_seed(e->simdir, sb->state, i, &o.serial_seed)) < 0) {
			fprintf(stderr, "%s: board %s: cannot read or allocate its serial seed "
				"(%s); remove the state dir to start a new board\n", prog, sb->state,
				strerror(-r));
			return r;
		}
		o.link_bytes_per_s = (uint64_t)(e->o.link_mbps * 1000000.0);
		/* Small virtual storage keeps a rehearsal quick; a storage fault overrides it. */
		o.faults.storage_bytes = (uint64_t)(e->o.storage_mb ? e->o.storage_mb : 256) << 20;
		for (size_t k = 0; k < e->o.nfaults; k++) {
			const char *spec = e->o.faults[k], *eq = strchr(spec, '=');
			char *end;
			long which = -1;

			if (eq && eq > spec && (which = strtol(spec, &end, 10), end == eq))
				spec = eq + 1;
			else
				which = -1;
			if (which != -1 && which != (long)i + 1)
				continue;
			if (vpi_fault_parse(spec, &o.faults, err, sizeof(err)) < 0) {
				fprintf(stderr, "%s: --fault %s: %s\n", prog, e->o.faults[k], err);
				*usage_error = true;
				return -EINVAL;
			}
		}
		if ((r = mkdir_p(sb->state, 0750)) < 0 ||
		    (r = vpi_board_open(sb->model, sb->state, &o, &sb->b)) < 0) {
			fprintf(stderr, "%s: board %s: %s\n", prog, sb->state, strerror(-r));
			return r;
		}
		snprintf(sb->port, sizeof(sb->port), "%s", vpi_bus_port_name(e->bus, (unsigned)i));
	}
	return 0;
}

static bool engine_permits(void *usrptr, const char *port)
{
	return allowlist_permits(usrptr, port);
}

/* Real USB: the ports this station serves. Problems are warnings: a bad
 * line is skipped, the others still count. */
static int engine_load_allowlist(struct engine *e)
{
	struct config_problems probs = { 0 };
	int r;

	r = allowlist_load(config_get(e->cfg, "paths", "usb_ports_vendor_dir"),
			   config_get(e->cfg, "paths", "usb_ports_dir"), &e->allow, &probs);
	for (size_t i = 0; i < probs.n; i++) {
		config_problem_print(stderr, &probs.v[i]);
		if (!probs.v[i].warning)
			engine_warn(e, "%s:%d: %s (line skipped)", probs.v[i].file, probs.v[i].line,
				    probs.v[i].message);
	}
	config_problems_free(&probs);
	if (r == -ENOMEM)
		return r;
	if (e->allow && e->allow->n)
		fprintf(stderr, "%s: USB port allow-list: %zu rule(s) from %zu file(s)\n", e->o.prog,
			e->allow->n, e->allow->files);
	return 0;
}

int engine_new(const struct engine_opts *o, struct engine **out, bool *usage_error)
{
	struct engine *e = calloc(1, sizeof(*e));
	char err[256] = "";
	int r;

	*usage_error = false;
	if (!e)
		return -ENOMEM;
	e->o = *o;
	e->provisioning = true;
	pthread_mutex_init(&e->lock, NULL);
	pthread_rwlock_init(&e->cfg_lock, NULL);
	if (o->devices && (r = parse_devices(e, o->devices, err, sizeof(err))) < 0) {
		fprintf(stderr, "%s: %s\n", o->prog, err);
		*usage_error = r == -EINVAL;
		goto fail;
	}
	if ((r = engine_load_config(e)) < 0) {
		*usage_error = r == -EINVAL;
		goto fail;
	}
	if ((r = engine_setup_flow(e)) < 0) {
		*usage_error = r == -EINVAL;
		goto fail;
	}
	if (o->devices && (r = engine_make_boards(e, usage_error)) < 0)
		goto fail;
	if ((r = event_queue_new(&e->events)) < 0)
		goto fail;
	if (o->devices) {
		r = disc_sim_new(e->bus, &e->disc);
	} else if ((r = engine_load_allowlist(e)) == 0) {
		r = disc_usb_new(&e->disc);
		if (r < 0)
			fprintf(stderr, "%s: USB discovery could not start: %s\n", o->prog, strerror(-r));
	}
	if (r < 0)
		goto fail;
	struct station_opts so = {
		.station_id = config_get(e->cfg, "station", "id"),
		.db_path = config_get(e->cfg, "paths", "database"),
		.log_dir = config_get(e->cfg, "paths", "log_dir"),
		.debounce_ms = 5000,
		.disc = e->disc,
		.permits = e->allow ? engine_permits : NULL,
		.permits_usrptr = e->allow,
		.flow = engine_flow,
		.flow_usrptr = e,
		.events = e->events,
	};
	db_mode_parse(config_get(e->cfg, "station", "mode"), &so.mode);
	if ((r = station_new(&so, &e->st)) < 0) {
		fprintf(stderr, "%s: the station could not be set up: %s\n", o->prog, strerror(-r));
		goto fail;
	}
	*out = e;
	return 0;
fail:
	engine_free(e);
	return r;
}

int engine_seed_model(const struct engine *e, struct station_model *m)
{
	if (e->o.devices) {
		for (size_t i = 0; i < e->nboards; i++)
			if (!model_tile(m, e->boards[i].port))
				return -ENOMEM;
		return 0;
	}
	for (size_t i = 0; e->allow && i < e->allow->n; i++)
		if (allowlist_pattern_literal(e->allow->v[i].pattern) && !model_tile(m, e->allow->v[i].pattern))
			return -ENOMEM;
	return 0;
}

int engine_start(struct engine *e)
{
	const char *log_dir = config_get(e->cfg, "paths", "log_dir");
	int r;

	if ((r = mkdir_p(log_dir, 0750)) < 0 || (r = station_start(e->st)) < 0) {
		fprintf(stderr, "%s: the station did not start: %s\n", e->o.prog, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < e->nboards; i++) {
		r = vpi_bus_attach(e->bus, e->boards[i].port, e->boards[i].b);
		if (r < 0)
			fprintf(stderr, "%s: plugging %s into %s: %s\n", e->o.prog, e->boards[i].model,
				e->boards[i].port, strerror(-r));
	}
	return 0;
}

void engine_stop(struct engine *e)
{
	station_drain(e->st);
	station_stop(e->st);
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	station_free(e->st);
	if (e->bus)
		vpi_bus_free(e->bus);
	for (size_t i = 0; i < e->nboards; i++) {
		if (e->boards[i].b) {
			vpi_fastbootd_board_reset(e->boards[i].b); /* the gadget's per-board state */
			vpi_board_close(e->boards[i].b);
		}
	}
	if (e->disc && e->o.devices)
		disc_sim_free(e->disc);
	else if (e->disc)
		disc_usb_free(e->disc);
	event_queue_free(e->events);
	allowlist_free(e->allow);
	if (e->fctx.signer)
		signer_close(e->fctx.signer);
	if (e->fctx_ready)
		flow_ctx_fini(&e->fctx);
	config_free(e->cfg);
	config_problems_free(&e->probs);
	pthread_mutex_destroy(&e->lock);
	pthread_rwlock_destroy(&e->cfg_lock);
	free(e);
}

/* Append "section.key" to @out when its effective value differs. */
static void diff_key(const struct config *a, const struct config *b, const char *section,
		     const char *key, char *out, size_t len, size_t *n)
{
	size_t used = strlen(out);

	if (strcmp(config_get(a, section, key), config_get(b, section, key)) == 0)
		return;
	(*n)++;
	if (used + 1 < len)
		snprintf(out + used, len - used, "%s%s.%s", used ? " " : "", section, key);
}

/* What differs between two configurations, as "section.key ..."; the count. */
static size_t config_diff(const struct config *a, const struct config *b, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < config_schema_len; i++) {
		const struct config_setting *st = &config_schema[i];

		if (strcmp(st->section, "family") != 0) {
			diff_key(a, b, st->section, st->key, out, len, &n);
			continue;
		}
		for (size_t f = 0; f < config_families_len; f++) {
			char sec[32];

			snprintf(sec, sizeof(sec), "family.%s", config_families[f]);
			diff_key(a, b, sec, st->key, out, len, &n);
		}
	}
	return n;
}

int engine_reload(struct engine *e, char *changes, size_t len)
{
	struct config *cfg = NULL;
	struct config_problems probs = { 0 };
	struct signer *signer = NULL;
	struct art_err aerr = { "" };
	char diff[400], fp[65] = "";
	size_t n;
	int r;

	r = config_load(e->config_path, e->o.paths, &cfg, &probs);
	if (r < 0 && (r != -EINVAL || config_problems_errors(&probs) > 0)) {
		const struct config_problem *p = NULL;

		for (size_t i = 0; i < probs.n && !p; i++)
			if (!probs.v[i].warning)
				p = &probs.v[i];
		snprintf(changes, len, "refused: %s:%d: %s%s%s", p ? p->file : e->config_path,
			 p ? p->line : 0, p && p->key ? p->key : "", p && p->key ? ": " : "",
			 p ? p->message : strerror(-r));
		r = -EINVAL;
		goto out;
	}
	n = config_diff(e->cfg, cfg, diff, sizeof(diff));
	if (n == 0 && e->provisioning) {
		snprintf(changes, len, "no change");
		r = 0;
		goto out;
	}
	/* The new key first: a configuration whose key cannot be opened is refused. */
	const char *pem = config_get(cfg, "key", "pem"), *cmd = config_get(cfg, "key", "signer");
	if (*pem || *cmd) {
		r = signer_open_config(*pem ? pem : NULL, *cmd ? cmd : NULL,
				       config_get(cfg, "key", "public"), 0, &signer, &aerr);
		if (r < 0) {
			snprintf(changes, len, "refused: signing key: %s", aerr.msg);
			goto out;
		}
		pubkey_fingerprint(signer_pubkey(signer), fp);
	}
	if (pthread_rwlock_trywrlock(&e->cfg_lock) != 0) {
		snprintf(changes, len, "refused while boards are in flight; it would change: %s", diff);
		r = -EBUSY;
		goto out;
	}
	struct config *old = e->cfg;
	bool key_changed = strcmp(fp, e->fctx.key_fingerprint) != 0;

	e->cfg = cfg;
	cfg = old;
	e->fctx.cfg = e->cfg;
	if (e->fctx.signer)
		signer_close(e->fctx.signer);
	e->fctx.signer = signer;
	signer = NULL;
	memcpy(e->fctx.key_fingerprint, fp, sizeof(fp));
	if (key_changed && atomic_load(&e->fctx.otp_armed))
		atomic_store(&e->fctx.otp_armed, false);
	e->gold = config_get(e->cfg, "image", "gold");
	e->provisioning = true;
	e->n_warnings = 0;
	config_problems_free(&e->probs);
	e->probs = probs;
	memset(&probs, 0, sizeof(probs));
	pthread_rwlock_unlock(&e->cfg_lock);
	snprintf(changes, len, "%s%s%s", n ? diff : "the configuration is usable now",
		 key_changed ? "; new key: OTP disarmed" : "",
		 strstr(diff, "paths.database") || strstr(diff, "paths.log_dir") || strstr(diff, "station.id") ?
		 "; [paths] database/log_dir and station.id take effect after a restart" : "");
	r = 0;
out:
	if (signer)
		signer_close(signer);
	config_free(cfg);
	config_problems_free(&probs);
	return r;
}
