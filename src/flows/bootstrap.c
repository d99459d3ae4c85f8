/* bootstrap: from USB boot mode to the fastboot gadget, spoken in-process.
 *
 *  1. the boot ROM: recovery.bin as the second stage (counter-signed on a
 *     fused BCM2712 when the reprovision flag says so);
 *  2. recovery: serves config.txt (OTP switches only when armed),
 *     pieeprom.bin and pieeprom.sig; the board flashes, programs OTP and
 *     reboots into USB boot mode by itself (set_reboot_order/recovery_reboot);
 *  3. the boot ROM again: the gadget's bootcode from bootfiles.bin, then
 *     bootfiles, config.txt, boot.img (+ boot.sig in secure-boot).
 * Skip-EEPROM goes straight to 3. Zero 2 W has no EEPROM: 3 only.
 * The payloads of 2 and 3 are built once per set of inputs into the
 * content-addressed cache and hard-linked into the board's staging dir.
 * A Pi 5 that this station's records show fused with the configured key is
 * reprovisioned (counter-signed recovery) as if its flag were set.
 * Runs on the board's worker thread. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artefacts/bootcode.h"
#include "artefacts/firmware.h"
#include "artefacts/payload.h"
#include "flows/flows.h"
#include "image/cache.h"
#include "proto/rpiboot.h"
#include "records/db.h"
#include "records/flags.h"
#include "vpi/standin.h"

#define REENUM_TIMEOUT_MS 30000
#define PAYLOAD_FILE_MAX (64u << 20)

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PAYLOAD_FILE_MAX) {
		close(fd);
		return -EINVAL;
	}
	b = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	for (size_t got = 0; got < (size_t)st.st_size;) {
		ssize_t n = read(fd, b + got, (size_t)st.st_size - got);

		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (r < 0) {
		free(b);
		return r;
	}
	*buf = b;
	*len = (size_t)st.st_size;
	return 0;
}

static char *chip_dir(const char *pattern, unsigned chip)
{
	const char *at = strstr(pattern, "%chip%");
	char *s;

	if (!at)
		return strdup(pattern);
	if (asprintf(&s, "%.*s%x%s", (int)(at - pattern), pattern, chip, at + 6) < 0)
		return NULL;
	return s;
}

/* The artefact API names chips in decimal (2711, 2712); USB PIDs are hex. */
static unsigned chip_number(unsigned pid)
{
	return pid == 0x2711 ? 2711 : pid == 0x2712 ? 2712 : pid == 0x2764 ? 2710 : 0;
}

static void rpiboot_log(void *usrptr, enum rpiboot_log_level level, const char *msg)
{
	struct flow_board *fb = usrptr;

	if (level <= RPIBOOT_LOG_INFO)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "rpiboot: %s", msg);
}

/* Copy the <soc>/ entries of bootfiles.bin into <dir>/<soc>/ (rpiboot looks
 * there first), as usbboot's host does with the tar. */
static int stage_bootfiles(struct flow_board *fb, const char *bootfiles, const char *soc,
			   const char *dir)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char sub[4400];
	size_t plen = strlen(soc);
	int r = 0, count = 0;

	snprintf(sub, sizeof(sub), "%s/%s", dir, soc);
	if (mkdir(sub, 0755) < 0 && errno != EEXIST)
		return -errno;
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, bootfiles, 65536) != ARCHIVE_OK) {
		r = -ENOENT;
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "cannot read %s: %s (install usbboot's "
		     "bootfiles or set [paths] payload_dir)", bootfiles, archive_error_string(a));
		goto out;
	}
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);
		char path[4700];
		int fd;

		if (strncasecmp(name, soc, plen) != 0 || name[plen] != '/' || !name[plen + 1] ||
		    strchr(name + plen + 1, '/') || archive_entry_filetype(e) != AE_IFREG)
			continue;
		if (rpiboot_name_check(name + plen + 1) < 0)
			continue; /* a tar entry may not escape the staging dir either */
		snprintf(path, sizeof(path), "%s/%s", sub, name + plen + 1);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0) {
			r = -errno;
			goto out;
		}
		if (archive_read_data_into_fd(a, fd) != ARCHIVE_OK)
			r = -EIO;
		close(fd);
		if (r < 0)
			goto out;
		count++;
	}
	if (count == 0) {
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "%s has no %s/ entries", bootfiles, soc);
		r = -ENOENT;
	}
out:
	archive_read_free(a);
	return r;
}

bool flow_standin_allowed(const struct flow_ctx *c, const struct transport *t)
{
	if (!transport_is_real_hardware(t))
		return true;
	return c->rehearse_usb && vpi_usb_product_is_virtual(t->product);
}

/* A stand-in is about to go to @t: what decided it (refusals say why). */
static bool standin_ok(struct flow_board *fb, const struct transport *t, const char *what)
{
	if (!flow_standin_allowed(fb->ctx, t)) {
		if (transport_is_real_hardware(t))
			blog(job_log(fb->job), BLOG_BOOTSTRAP, "stand-in %s refused: %s", what,
			     !fb->ctx->rehearse_usb ? "not a rehearsal (daemon --rehearse-usb)" :
			     "the device does not say it is a virtual Pi");
		return false;
	}
	if (transport_is_real_hardware(t))
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "rehearsal: serving the stand-in %s to the "
		     "virtual Pi on USB port %s (iProduct '%s')", what, t->port_path, t->product);
	return true;
}

/* Wait for the ROM stage on the port and give it @img as the second stage. */
static int rom_upload(struct flow_board *fb, const uint8_t *img, size_t len, const char *what)
{
	struct rpiboot_opts o;
	struct rpiboot_status st = { 0 };
	struct transport *t;
	int r;

	r = job_wait_device(fb->job, USB_ROLE_BOOTROM, REENUM_TIMEOUT_MS, &t);
	if (r < 0)
		return r;
	if (!rpiboot_is_rom_stage(t->iserial_index)) {
		transport_close(t);
		return job_fail(fb->job, -EPROTO, "expected the boot ROM on port %s, found a second "
				"stage already running: power-cycle the board into USB boot mode",
				job_port(fb->job));
	}
	if (vpi_standin_is(img, len) && !standin_ok(fb, t, what)) {
		transport_close(t);
		return job_fail(fb->job, -EPERM, "refusing to send the simulator stand-in %s to a "
				"real board: configure Raspberry Pi's payloads", what);
	}
	rpiboot_opts_default(&o);
	blog(job_log(fb->job), BLOG_BOOTSTRAP, "boot ROM: sending %s (%zu bytes)", what, len);
	r = rpiboot_send_second_stage(t, img, len, &o, &st);
	transport_close(t);
	if (r < 0)
		return job_fail(fb->job, r, "sending %s to the boot ROM failed at %s: %s", what,
				rpiboot_step_name(st.step), st.msg[0] ? st.msg : strerror(-r));
	return 0;
}

/* Wait for the second stage on the port and serve it @dir until it is done. */
static int serve_stage2(struct flow_board *fb, const char *dir, const char *what,
			const uint8_t *served, size_t served_len)
{
	struct rpiboot_opts o;
	struct rpiboot_status st = { 0 };
	struct transport *t;
	int dirfd, r;

	r = job_wait_device(fb->job, USB_ROLE_BOOTROM, REENUM_TIMEOUT_MS, &t);
	if (r == -ETIMEDOUT)
		return job_fail(fb->job, r, "the board did not start the %s second stage within %u s. "
				"A board whose OTP holds a customer key hash runs only code counter-signed "
				"with that key: for a Pi 5 set the reprovision flag (flags set SERIAL "
				"reprovision) with the same key; a different key cannot be used", what,
				REENUM_TIMEOUT_MS / 1000);
	if (r < 0)
		return r;
	if (rpiboot_is_rom_stage(t->iserial_index)) {
		transport_close(t);
		return job_fail(fb->job, -EPROTO, "the board refused the %s second stage and stayed "
				"in the boot ROM (a fused board runs only signed code: check the key "
				"and the reprovision flag)", what);
	}
	if (t->serial[0] && !fb->serial8[0] && strlen(t->serial) == 8) {
		snprintf(fb->serial8, sizeof(fb->serial8), "%s", t->serial);
		job_set_serial(fb->job, fb->serial8);
	}
	if (served && vpi_standin_is(served, served_len) && !standin_ok(fb, t, what)) {
		transport_close(t);
		return job_fail(fb->job, -EPERM, "refusing to serve a simulator stand-in %s to a real "
				"board: configure Raspberry Pi's payloads", what);
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		transport_close(t);
		return job_fail(fb->job, -errno, "payload directory %s: %s", dir, strerror(errno));
	}
	rpiboot_opts_default(&o);
	r = rpiboot_serve_files(t, dirfd, &fb->md, &o, rpiboot_log, fb, &st);
	close(dirfd);
	transport_close(t);
	blog(job_log(fb->job), BLOG_BOOTSTRAP, "%s: %u file(s) served, %u missing, %u refused, "
	     "%u metadata push(es), ended: %s (last step: %s)", what, st.files_served,
	     st.files_missing, st.names_refused, st.metadata_pushes, rpiboot_end_name(st.end),
	     rpiboot_step_name(st.step));
	if (st.names_refused)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "the board asked for %u file name(s) outside "
		     "its payload directory: refused", st.names_refused);
	/* A board that leaves while a file is on the wire did not get it (for
	 * recovery: its EEPROM may be half-written); one that leaves between
	 * requests, after files were served, is moving on. */
	if (r == -ENODEV && (st.step == RPIBOOT_STEP_FILE_BULK || st.step == RPIBOOT_STEP_FILE_ANNOUNCE ||
			     st.step == RPIBOOT_STEP_SIZE_REPLY))
		return job_fail(fb->job, r, "the board left the bus during the %s stage, in the middle "
				"of a file transfer (%s): it did not get its payload%s. Check the cable "
				"and power, then put it back in USB boot mode to retry", what,
				st.msg[0] ? st.msg : rpiboot_step_name(st.step),
				strcmp(what, "recovery") == 0 ? " and its EEPROM may be half-written "
				"(the retry's recovery rewrites it)" : "");
	if (r == -ENODEV && st.files_served > 0)
		r = 0;
	if (r < 0)
		return job_fail(fb->job, r, "%s file server failed at %s: %s", what,
				rpiboot_step_name(st.step), st.msg[0] ? st.msg : strerror(-r));
	if (fb->md.have_serial && !fb->serial8[0]) {
		snprintf(fb->serial8, sizeof(fb->serial8), "%08x", fb->md.serial);
		job_set_serial(fb->job, fb->serial8);
	}
	return 0;
}

/* ---- the bootstrap payload cache ----------------------------------------
 *
 * What the station sends a board is built once per set of inputs and kept in
 * [paths] cache_dir under the SHA-256 of all of them (src/image/cache.h). An
 * entry holds serve/ (what the second stage may ask for) and stage2.bin (what
 * the boot ROM is given). The board's per-attempt staging dir gets hard links
 * (copies across file systems) of serve/, so the rpiboot file server stays
 * confined to a directory of its own per board. */

static int copy_file(const char *from, const char *to)
{
	uint8_t *b = NULL;
	size_t len = 0;
	int fd, r = read_file(from, &b, &len);

	if (r < 0)
		return r;
	fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, b + off, len - off);

		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0 && r == 0)
		r = -errno;
out:
	free(b);
	return r;
}

/* Hard-link (or copy) the regular files and directories of @from into @to. */
static int link_tree(const char *from, const char *to, int depth)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > 4)
		return -ELOOP;
	if (mkdir(to, 0700) < 0 && errno != EEXIST)
		return -errno;
	d = opendir(from);
	if (!d)
		return -errno;
	while (r == 0 && (de = readdir(d))) {
		char *src = NULL, *dst = NULL;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (asprintf(&src, "%s/%s", from, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		if (asprintf(&dst, "%s/%s", to, de->d_name) < 0) {
			free(src);
			r = -ENOMEM;
			break;
		}
		if (lstat(src, &st) < 0)
			r = -errno;
		else if (S_ISDIR(st.st_mode))
			r = link_tree(src, dst, depth + 1);
		else if (S_ISREG(st.st_mode) && link(src, dst) < 0)
			r = copy_file(src, dst);
		free(src);
		free(dst);
	}
	closedir(d);
	return r;
}

static void key_add_hash(struct cache_key *k, const char *name, const char *hex)
{
	cache_key_add_str(k, name, hex);
}

/* Look up or build @key, log which, and link its serve/ into @dir. The
 * stage2.bin of the entry comes back in @stage2. */
static int payload_from_cache(struct flow_board *fb, const char *what, const char *key,
			      cache_build_fn build, void *usr, const char *dir,
			      uint8_t **stage2, size_t *stage2_len)
{
	const char *cache_dir = config_get(fb->ctx->cfg, "paths", "cache_dir");
	struct art_err err = { "" };
	char *entry = NULL, *p = NULL;
	bool hit = false;
	struct timespec t0, t1;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = cache_get(cache_dir, key, build, usr, &entry, &hit, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r < 0) {
		r = job_fail(fb->job, r, "building the %s payload: %s", what,
			     err.msg[0] ? err.msg : strerror(-r));
		goto out;
	}
	blog(job_log(fb->job), BLOG_BOOTSTRAP, "%s payload %.16s: %s (%ld ms)", what, key,
	     hit ? "from the cache" : "built and cached",
	     (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	if (asprintf(&p, "%s/serve", entry) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = link_tree(p, dir, 0);
	if (r < 0) {
		r = job_fail(fb->job, r, "staging the %s payload from %s into %s: %s", what, p, dir,
			     strerror(-r));
		goto out;
	}
	free(p);
	p = NULL;
	if (asprintf(&p, "%s/stage2.bin", entry) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = read_file(p, stage2, stage2_len);
	if (r < 0)
		r = job_fail(fb->job, r, "cache entry %s: %s (run `rpi-sb-provisioner cache clear`)",
			     p, strerror(-r));
out:
	free(entry);
	free(p);
	return r;
}

struct recovery_build {
	struct flow_ctx *ctx;
	const struct payload_eeprom_in *ei;
	const char *config_txt;
	const char *recovery_path;
	bool counter_sign;
};

static int recovery_build(void *usr, const char *tmp, struct art_err *err)
{
	struct recovery_build *b = usr;
	struct payload_eeprom_out eo = { 0 };
	uint8_t *rec = NULL, *signed_rec = NULL;
	size_t rec_len = 0, signed_len = 0;
	char serve[4200];
	int r;

	snprintf(serve, sizeof(serve), "%s/serve", tmp);
	if (mkdir(serve, 0755) < 0)
		return art_err_set(err, -errno, "cannot create %s: %s", serve, strerror(errno));
	pthread_mutex_lock(&b->ctx->build_lock);
	r = payload_build_eeprom(b->ei, &eo, err);
	if (r == 0)
		r = payload_write_eeprom(&eo, serve, err);
	if (r == 0)
		r = payload_write_file(serve, "config.txt", b->config_txt, strlen(b->config_txt), err);
	if (r == 0) {
		r = read_file(b->recovery_path, &rec, &rec_len);
		if (r < 0)
			art_err_set(err, r, "%s: %s (install rpi-eeprom)", b->recovery_path,
				    strerror(-r));
	}
	if (r == 0 && b->counter_sign)
		r = bootcode_counter_sign(b->ctx->signer, rec, rec_len, 0, &signed_rec, &signed_len,
					  err);
	if (r == 0)
		r = payload_write_file(tmp, "stage2.bin", signed_rec ? signed_rec : rec,
				       signed_rec ? signed_len : rec_len, err);
	pthread_mutex_unlock(&b->ctx->build_lock);
	payload_eeprom_out_free(&eo);
	free(rec);
	free(signed_rec);
	return r;
}

/* The EEPROM and OTP run (recovery.bin). */
static int bootstrap_recovery(struct flow_board *fb)
{
	struct flow_ctx *c = fb->ctx;
	const struct config *cfg = c->cfg;
	const char *cache_dir = config_get(cfg, "paths", "cache_dir");
	struct art_err err = { "" };
	char *fwdir = NULL, *fwpath = NULL, *rec_txt = NULL, *bootconf = NULL, *recovery = NULL;
	const char *warning = NULL;
	uint8_t *stage2 = NULL;
	size_t stage2_len = 0, bootconf_len = 0;
	char dir[4200], key[CACHE_KEY_HEX], fw_hash[CACHE_KEY_HEX], rec_hash[CACHE_KEY_HEX];
	bool secure = strcmp(fb->mode, "secure-boot") == 0, known;
	int r;

	/* The interlock comes first: nothing is built or sent for a burn that
	 * the operator has not armed. A board being reprovisioned already holds
	 * the key hash (records or the operator's flag say so): disarmed, it gets
	 * its EEPROM without any OTP switch, so nothing is burned either way. */
	if (secure && !fb->otp_armed && !c->dry_run && fb->reprovision)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "OTP disarmed: reprovisioning a board that already "
		     "holds the key hash; nothing is written to OTP");
	else if (secure && !fb->otp_armed && !c->dry_run)
		return job_fail(fb->job, -EPERM, "OTP is disarmed: secure-boot would burn the customer "
				"key hash into this board for good. Arm it with --arm-otp <last 8 hex of "
				"the key fingerprint %s>, or rehearse with --dry-run", c->key_fingerprint);
	if (secure && !c->signer)
		return job_fail(fb->job, -ENOKEY, "secure-boot needs a signing key ([key] pem or signer)");
	if (fb->chip == 0x2712 && fb->reprovision && !c->signer)
		return job_fail(fb->job, -ENOKEY, "reprovisioning a Pi 5 needs the customer key to "
				"counter-sign recovery.bin ([key] pem or signer)");

	snprintf(dir, sizeof(dir), "%s/recovery", fb->stage_dir);
	fwdir = chip_dir(config_get(cfg, "bootloader", "firmware_dir"), fb->chip);
	if (!fwdir)
		return -ENOMEM;
	const char *fwfile = config_get(cfg, "bootloader", "firmware");
	r = firmware_select(*fwfile ? fwfile : NULL, fwdir, chip_number(fb->chip),
			    *config_get(cfg, "bootloader", "firmware_sha256") ?
			    config_get(cfg, "bootloader", "firmware_sha256") : NULL, &fwpath, &err);
	if (r < 0) {
		r = job_fail(fb->job, r, "EEPROM firmware: %s", err.msg);
		goto out;
	}
	blog(job_log(fb->job), BLOG_BOOTSTRAP, "EEPROM firmware %s", fwpath);

	const char *bcpath = config_get_for_family(cfg, fb->family, "bootloader", "config");
	if (bcpath && *bcpath) {
		uint8_t *b;

		r = read_file(bcpath, &b, &bootconf_len);
		if (r < 0) {
			r = job_fail(fb->job, r, "bootloader config %s: %s", bcpath, strerror(-r));
			goto out;
		}
		bootconf = (char *)b;
	}
	struct payload_eeprom_in ei = {
		.mode = secure ? PAYLOAD_SECURE_BOOT :
			strcmp(fb->mode, "fde-only") == 0 ? PAYLOAD_FDE_ONLY : PAYLOAD_NAKED,
		.firmware_path = fwpath, .chip = chip_number(fb->chip),
		.bootconf = bootconf, .bootconf_len = bootconf_len,
		.signer = secure ? c->signer : NULL,
		.storage = fb->storage,
		.boot_order_match_storage = config_get_bool(cfg, "bootloader", "boot_order_match_storage"),
	};

	/* Recovery config.txt: OTP switches only when armed (never in a dry run). */
	bool burn = secure && fb->otp_armed && !c->dry_run;
	struct payload_recovery_in ri = {
		.chip = chip_number(fb->chip), .secure = secure, .armed = burn,
		.jtag_lock = burn && config_get_bool(cfg, "otp", "jtag_lock"),
		.eeprom_write_protect = !c->dry_run && config_get_bool(cfg, "otp", "eeprom_write_protect"),
		.rpiboot_gpio = burn && *config_get(cfg, "otp", "rpiboot_gpio") ?
				atoi(config_get(cfg, "otp", "rpiboot_gpio")) : 0,
	};
	if (c->dry_run && secure)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "dry run: the real run would program the key "
		     "hash%s%s%s into OTP", config_get_bool(cfg, "otp", "jtag_lock") ? ", JTAG lock" : "",
		     config_get_bool(cfg, "otp", "eeprom_write_protect") ? ", EEPROM write-protect" : "",
		     fb->chip == 0x2711 && *config_get(cfg, "otp", "rpiboot_gpio") ? ", rpiboot GPIO" : "");
	r = payload_recovery_config(&ri, &rec_txt, &warning, &err);
	if (r < 0) {
		r = job_fail(fb->job, r, "recovery config.txt: %s", err.msg);
		goto out;
	}
	if (warning)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "warning: %s", warning);

	/* The second stage: recovery.bin; on a fused BCM2712 being reprovisioned,
	 * counter-signed with the customer key so its ROM runs it. */
	if (asprintf(&recovery, "%s/recovery.bin", fwdir) < 0) {
		r = -ENOMEM;
		goto out;
	}
	bool counter_sign = fb->chip == 0x2712 && fb->reprovision;
	if (counter_sign)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "reprovision: recovery.bin counter-signed "
		     "with the customer key");
	else if (fb->chip == 0x2711 && fb->reprovision)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "reprovision flag: a Pi 4 runs the unsigned "
		     "recovery.bin; nothing to counter-sign");

	/* The cache key: every input of the entry. */
	if ((r = cache_file_sha256(cache_dir, fwpath, fw_hash, &known, &err)) < 0 ||
	    (r = cache_file_sha256(cache_dir, recovery, rec_hash, &known, &err)) < 0) {
		r = job_fail(fb->job, r, "hashing the bootstrap inputs: %s", err.msg);
		goto out;
	}
	struct cache_key k;
	cache_key_init(&k, "bootstrap-recovery");
	key_add_hash(&k, "firmware", fw_hash);
	key_add_hash(&k, "recovery.bin", rec_hash);
	cache_key_add(&k, "bootconf", bootconf, bootconf ? bootconf_len : 0);
	cache_key_add_u64(&k, "bootconf-set", bootconf != NULL);
	cache_key_add_u64(&k, "mode", (uint64_t)ei.mode);
	cache_key_add_u64(&k, "chip", ei.chip);
	cache_key_add_str(&k, "storage", fb->storage);
	cache_key_add_u64(&k, "boot_order_match_storage", ei.boot_order_match_storage);
	cache_key_add_str(&k, "key", c->key_fingerprint);
	cache_key_add_u64(&k, "secure", ri.secure);
	cache_key_add_u64(&k, "armed", fb->otp_armed);
	cache_key_add_u64(&k, "dry-run", c->dry_run);
	cache_key_add_u64(&k, "burn", ri.armed);
	cache_key_add_u64(&k, "jtag_lock", ri.jtag_lock);
	cache_key_add_u64(&k, "eeprom_write_protect", ri.eeprom_write_protect);
	cache_key_add_u64(&k, "rpiboot_gpio", (uint64_t)ri.rpiboot_gpio);
	cache_key_add_str(&k, "config.txt", rec_txt);
	cache_key_add_u64(&k, "counter-sign", counter_sign);
	cache_key_final(&k, key);

	struct recovery_build rb = { .ctx = c, .ei = &ei, .config_txt = rec_txt,
				     .recovery_path = recovery, .counter_sign = counter_sign };
	r = payload_from_cache(fb, "recovery", key, recovery_build, &rb, dir, &stage2, &stage2_len);
	if (r < 0)
		goto out;
	if (c->dry_run && !fb->reprovision && payload_eeprom_needs_otp(ei.chip, ei.mode)) {
		/* Its counter-signed stages run only once the key hash is in OTP,
		 * which a dry run does not burn: flashing it would leave the board
		 * unable to boot from its EEPROM. */
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "dry run: the secure-boot EEPROM image was built "
		     "and signed (cache entry %.16s) but is not flashed: a BCM2712 runs it only with "
		     "the key hash in OTP. The board keeps its EEPROM", key);
		r = 0;
		goto out;
	}
	/* From here the board may write its OTP: the records say so first, so
	 * that a station stopped before the board reports back tells, on its
	 * next start, what state the board is in (db_mark_interrupted). */
	if (ri.armed) {
		char detail[160];

		snprintf(detail, sizeof(detail), "key %s: recovery sent with program_pubkey%s%s",
			 c->key_fingerprint, ri.jtag_lock ? ", JTAG lock" : "",
			 fb->chip == 0x2711 && ri.rpiboot_gpio ? ", rpiboot GPIO" : "");
		job_state(fb->job, DB_EVENT_OTP_WRITE_STARTED, detail);
	}
	r = rom_upload(fb, stage2, stage2_len, counter_sign ? "recovery.bin (counter-signed)" :
		       "recovery.bin");
	if (r == 0)
		r = serve_stage2(fb, dir, "recovery", NULL, 0);
	if (ri.armed) {
		const char *sbp = fb->md.known[RPIBOOT_MD_SECURE_BOOT_PROVISION];
		char detail[160];

		if (r == 0 && sbp && strcmp(sbp, "success") == 0)
			snprintf(detail, sizeof(detail), DB_OTP_PROGRAMMED_DETAIL, c->key_fingerprint);
		else
			snprintf(detail, sizeof(detail), "key %s: secure boot provision: %s", c->key_fingerprint,
				 sbp ? sbp : r < 0 ? "not reported (the recovery session failed)" :
				 "not reported");
		job_state(fb->job, DB_EVENT_OTP_WRITE_FINISHED, detail);
	}
	if (r < 0)
		goto out;
	fb->recovery_ran = true;
	fb->rpiboot_gpio_sent = ri.rpiboot_gpio != 0 && fb->chip == 0x2711;
	job_state(fb->job, DB_EVENT_BOOTSTRAP_FIRMWARE_UPDATED, NULL);
out:
	free(fwdir);
	free(fwpath);
	free(rec_txt);
	free(bootconf);
	free(recovery);
	free(stage2);
	return r;
}

struct gadget_build {
	struct flow_board *fb;
	const char *bootfiles, *soc, *bc_name, *gadget;
	bool secure, counter_sign;
};

static int gadget_build(void *usr, const char *tmp, struct art_err *err)
{
	struct gadget_build *b = usr;
	struct flow_ctx *c = b->fb->ctx;
	char serve[4200], path[4600];
	uint8_t *img = NULL, *bc = NULL, *cs = NULL;
	size_t img_len = 0, bc_len = 0, cs_len = 0;
	char *sig = NULL;
	size_t sig_len = 0;
	int r;

	snprintf(serve, sizeof(serve), "%s/serve", tmp);
	if (mkdir(serve, 0755) < 0)
		return art_err_set(err, -errno, "cannot create %s: %s", serve, strerror(errno));
	r = stage_bootfiles(b->fb, b->bootfiles, b->soc, serve);
	if (r < 0)
		return art_err_set(err, r, "staging %s for %s: %s", b->bootfiles, b->soc, strerror(-r));
	r = read_file(b->gadget, &img, &img_len);
	if (r < 0) {
		art_err_set(err, r, "fastboot gadget image %s: %s (set [paths] gadget_image)",
			    b->gadget, strerror(-r));
		goto out;
	}
	r = payload_write_file(serve, "boot.img", img, img_len, err);
	if (r == 0 && b->secure) {
		snprintf(path, sizeof(path), "%s/boot.img", serve);
		pthread_mutex_lock(&c->build_lock);
		r = payload_boot_sig(c->signer, path, &sig, &sig_len, err);
		pthread_mutex_unlock(&c->build_lock);
		if (r == 0)
			r = payload_write_file(serve, "boot.sig", sig, sig_len, err);
	}
	if (r == 0)
		r = payload_write_file(serve, "config.txt", "boot_ramdisk=1\nuart_2ndstage=1\n",
				       strlen("boot_ramdisk=1\nuart_2ndstage=1\n"), err);
	if (r < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/%s/%s", serve, b->soc, b->bc_name);
	r = read_file(path, &bc, &bc_len);
	if (r < 0) {
		art_err_set(err, r, "%s is not in %s", b->bc_name, b->bootfiles);
		goto out;
	}
	if (b->counter_sign) {
		/* A fused BCM2712 runs only a counter-signed second stage. */
		pthread_mutex_lock(&c->build_lock);
		r = bootcode_counter_sign(c->signer, bc, bc_len, 0, &cs, &cs_len, err);
		pthread_mutex_unlock(&c->build_lock);
		if (r < 0)
			goto out;
		snprintf(path, sizeof(path), "%s/%s", serve, b->soc);
		r = payload_write_file(path, b->bc_name, cs, cs_len, err);
		if (r < 0)
			goto out;
	}
	r = payload_write_file(tmp, "stage2.bin", cs ? cs : bc, cs ? cs_len : bc_len, err);
out:
	free(img);
	free(bc);
	free(cs);
	free(sig);
	return r;
}

/* Boot the fastboot gadget: bootcode from bootfiles.bin, then its files. */
static int bootstrap_gadget(struct flow_board *fb)
{
	struct flow_ctx *c = fb->ctx;
	const struct config *cfg = c->cfg;
	const char *cache_dir = config_get(cfg, "paths", "cache_dir");
	const char *soc = rpiboot_soc_prefix((uint16_t)fb->chip);
	const char *bc_name = rpiboot_second_stage_name((uint16_t)fb->chip);
	const char *gadget = config_get(cfg, "paths", "gadget_image");
	char dir[4200], path[4400], bootfiles[4200];
	char key[CACHE_KEY_HEX], img_hash[CACHE_KEY_HEX], bf_hash[CACHE_KEY_HEX];
	uint8_t *img = NULL, *bc = NULL;
	size_t img_len = 0, bc_len = 0;
	struct art_err err = { "" };
	bool secure = strcmp(fb->mode, "secure-boot") == 0, known;
	int r;

	if (!soc || !bc_name)
		return job_fail(fb->job, -ENODEV, "no boot payload is known for chip %x", fb->chip);
	snprintf(dir, sizeof(dir), "%s/gadget", fb->stage_dir);
	if (fb->chip == 0x2764) {
		/* usbboot's bootfiles.bin has no 2710/ entries: the gadget package
		 * ships its own next to the gadget image, as the peer's does. */
		const char *slash = strrchr(gadget, '/');

		snprintf(bootfiles, sizeof(bootfiles), "%.*s/fastboot-gadget.2710-bootfiles-bin",
			 slash ? (int)(slash - gadget) : 1, slash ? gadget : ".");
	} else {
		snprintf(bootfiles, sizeof(bootfiles), "%s/mass-storage-gadget64/bootfiles.bin",
			 config_get(cfg, "paths", "payload_dir"));
	}
	/* A fused BCM2712 runs only a counter-signed second stage, an unfused
	 * one refuses it: counter-sign for a board fused before (reprovision)
	 * or by this bootstrap (secure-boot, armed, not a dry run). */
	bool counter_sign = fb->chip == 0x2712 && c->signer &&
			    (fb->reprovision || (secure && fb->otp_armed && !c->dry_run));
	if (secure && !c->signer)
		return job_fail(fb->job, -ENOKEY, "secure-boot needs a signing key ([key] pem or signer)");

	r = cache_file_sha256(cache_dir, gadget, img_hash, &known, &err);
	if (r < 0) {
		r = job_fail(fb->job, r, "fastboot gadget image %s: %s (set [paths] gadget_image)",
			     gadget, err.msg);
		goto out;
	}
	r = cache_file_sha256(cache_dir, bootfiles, bf_hash, &known, &err);
	if (r < 0) {
		r = job_fail(fb->job, r, "%s: %s (install usbboot's bootfiles or set [paths] "
			     "payload_dir)", bootfiles, err.msg);
		goto out;
	}
	struct cache_key k;
	cache_key_init(&k, "bootstrap-gadget");
	cache_key_add_u64(&k, "chip", fb->chip);
	cache_key_add_u64(&k, "secure", secure);
	cache_key_add_u64(&k, "counter-sign", counter_sign);
	key_add_hash(&k, "gadget", img_hash);
	key_add_hash(&k, "bootfiles", bf_hash);
	cache_key_add_str(&k, "key", c->key_fingerprint);
	cache_key_final(&k, key);

	struct gadget_build gb = { .fb = fb, .bootfiles = bootfiles, .soc = soc, .bc_name = bc_name,
				   .gadget = gadget, .secure = secure, .counter_sign = counter_sign };
	r = payload_from_cache(fb, "gadget", key, gadget_build, &gb, dir, &bc, &bc_len);
	if (r < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/boot.img", dir);
	r = read_file(path, &img, &img_len);
	if (r < 0) {
		r = job_fail(fb->job, r, "staged gadget image %s: %s", path, strerror(-r));
		goto out;
	}
	if (vpi_standin_is(img, img_len))
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "gadget image is a simulator stand-in");
	job_state(fb->job, DB_EVENT_BOOTSTRAP_FASTBOOT_INIT_STARTED, NULL);
	r = rom_upload(fb, bc, bc_len, counter_sign ? "the counter-signed gadget bootcode" : bc_name);
	if ((r == -ENODEV || r == -ETIMEDOUT) && fb->chip == 0x2711 && fb->recovery_ran &&
	    !fb->rpiboot_gpio_sent) {
		unsigned type = fb->md.have_boardrev ? (fb->md.boardrev >> 4) & 0xff : 0;

		/* Board types 0x14/0x15 are CM4/CM4S: their jig holds nRPIBOOT. */
		if (type != 0x14 && type != 0x15)
			r = job_fail(fb->job, -EHOSTDOWN, "after its EEPROM update the Pi 4 did not come back in "
				     "USB boot mode: a Pi 4B or Pi 400 reboots from its SPI EEPROM and "
				     "storage unless an rpiboot GPIO is burnt in its OTP (secure-boot with "
				     "[otp] rpiboot_gpio). Its EEPROM is updated: set skip-eeprom for it "
				     "(flags set %s skip-eeprom --once) and put it back in USB boot mode",
				     fb->serial8[0] ? fb->serial8 : "SERIAL");
	}
	if (r < 0)
		goto out;
	r = serve_stage2(fb, dir, "gadget boot", img, img_len);
out:
	free(img);
	free(bc);
	return r;
}

int flow_bootstrap(struct flow_board *fb)
{
	struct flow_ctx *c = fb->ctx;
	enum flag_state st;
	const char *flags_dir = config_get(c->cfg, "paths", "flags_dir");
	int r;

	job_state(fb->job, DB_EVENT_BOOTSTRAP_STARTED, NULL);
	if (fb->serial8[0]) {
		if (flags_lookup(flags_dir, fb->serial8, FLAG_SKIP_EEPROM, &st) == 0 && st != FLAG_NONE)
			fb->skip_eeprom = true;
		if (flags_lookup(flags_dir, fb->serial8, FLAG_REPROVISION, &st) == 0 && st != FLAG_NONE)
			fb->reprovision = true;
	}
	if (fb->skip_eeprom)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "special flag skip-eeprom: EEPROM update skipped, "
		     "straight to the gadget");
	if (fb->reprovision)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "special flag reprovision: set for %s",
		     fb->serial8);
	/* A fused BCM2712 runs only counter-signed code. When this station's own
	 * records show the board provisioned with its OTP holding this key's
	 * hash, treat it as flagged for reprovision. */
	if (fb->chip == 0x2712 && !fb->reprovision && fb->serial8[0] && c->key_fingerprint[0]) {
		bool secured = false;

		if (db_device_secured_with(job_db(fb->job), fb->serial8, c->key_fingerprint,
					   &secured) == 0 && secured) {
			fb->reprovision = true;
			blog(job_log(fb->job), BLOG_BOOTSTRAP, "the records show board %s provisioned "
			     "with its OTP holding the hash of key %.16s...: reprovisioning it with a "
			     "counter-signed recovery", fb->serial8, c->key_fingerprint);
		}
	}

	r = flow_hook(fb, HOOK_BOOTSTRAP, NULL);
	if (r < 0)
		return job_fail(fb->job, r, "the bootstrap hook failed");

	/* The moment of the OTP decision: what the operator has armed now holds
	 * for this board's whole bootstrap (and its record). */
	fb->otp_armed = atomic_load(&c->otp_armed);
	if (fb->chip != 0x2764 && !fb->skip_eeprom) {
		r = bootstrap_recovery(fb);
		if (r < 0)
			return r;
	}
	r = bootstrap_gadget(fb);
	if (r < 0)
		return r;
	if (fb->serial8[0])
		flags_consume_once(flags_dir, fb->serial8);
	job_state(fb->job, DB_EVENT_BOOTSTRAP_FINISHED, NULL);
	return 0;
}
