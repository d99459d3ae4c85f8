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
 * Runs on the board's worker thread. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artefacts/bootcode.h"
#include "artefacts/firmware.h"
#include "artefacts/payload.h"
#include "flows/flows.h"
#include "proto/rpiboot.h"
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
	if (transport_is_real_hardware(t) && vpi_standin_is(img, len)) {
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
	if (served && transport_is_real_hardware(t) && vpi_standin_is(served, served_len)) {
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
	     "%u metadata push(es), ended: %s", what, st.files_served, st.files_missing,
	     st.names_refused, st.metadata_pushes, rpiboot_end_name(st.end));
	if (st.names_refused)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "the board asked for %u file name(s) outside "
		     "its payload directory: refused", st.names_refused);
	/* A disconnect after files were served is the board moving on. */
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

static int write_text(struct flow_board *fb, const char *dir, const char *name, const char *text)
{
	struct art_err err = { "" };
	int r = payload_write_file(dir, name, text, strlen(text), &err);

	if (r < 0)
		return job_fail(fb->job, r, "writing %s/%s: %s", dir, name, err.msg);
	return 0;
}

/* The EEPROM and OTP run (recovery.bin). */
static int bootstrap_recovery(struct flow_board *fb)
{
	struct flow_ctx *c = fb->ctx;
	const struct config *cfg = c->cfg;
	struct art_err err = { "" };
	struct payload_eeprom_out eo = { 0 };
	char *fwdir = NULL, *fwpath = NULL, *rec_txt = NULL, *bootconf = NULL, *recovery = NULL;
	const char *warning = NULL;
	uint8_t *rec = NULL, *signed_rec = NULL;
	size_t rec_len = 0, signed_len = 0, bootconf_len = 0;
	char dir[4200];
	bool secure = strcmp(fb->mode, "secure-boot") == 0;
	int r;

	snprintf(dir, sizeof(dir), "%s/recovery", fb->stage_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return job_fail(fb->job, -errno, "cannot create %s: %s", dir, strerror(errno));

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
	if (secure && !c->signer) {
		r = job_fail(fb->job, -ENOKEY, "secure-boot needs a signing key ([key] pem or signer)");
		goto out;
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
	pthread_mutex_lock(&c->build_lock);
	r = payload_build_eeprom(&ei, &eo, &err);
	if (r == 0)
		r = payload_write_eeprom(&eo, dir, &err);
	pthread_mutex_unlock(&c->build_lock);
	if (r < 0) {
		r = job_fail(fb->job, r, "building the EEPROM image: %s", err.msg);
		goto out;
	}

	/* Recovery config.txt: OTP switches only when armed (never in a dry run). */
	bool burn = secure && c->otp_armed && !c->dry_run;
	struct payload_recovery_in ri = {
		.chip = chip_number(fb->chip), .secure = secure, .armed = burn,
		.jtag_lock = burn && config_get_bool(cfg, "otp", "jtag_lock"),
		.eeprom_write_protect = !c->dry_run && config_get_bool(cfg, "otp", "eeprom_write_protect"),
		.rpiboot_gpio = burn && *config_get(cfg, "otp", "rpiboot_gpio") ?
				atoi(config_get(cfg, "otp", "rpiboot_gpio")) : 0,
	};
	if (secure && !c->otp_armed && !c->dry_run) {
		r = job_fail(fb->job, -EPERM, "OTP is disarmed: secure-boot would burn the customer key "
			     "hash into this board for good. Arm it with --arm-otp <last 8 hex of the "
			     "key fingerprint %s>, or rehearse with --dry-run", c->key_fingerprint);
		goto out;
	}
	if (c->dry_run && secure)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "dry run: the real run would program the key "
		     "hash%s%s%s into OTP", config_get_bool(cfg, "otp", "jtag_lock") ? ", JTAG lock" : "",
		     config_get_bool(cfg, "otp", "eeprom_write_protect") ? ", EEPROM write-protect" : "",
		     *config_get(cfg, "otp", "rpiboot_gpio") ? ", rpiboot GPIO" : "");
	r = payload_recovery_config(&ri, &rec_txt, &warning, &err);
	if (r < 0) {
		r = job_fail(fb->job, r, "recovery config.txt: %s", err.msg);
		goto out;
	}
	if (warning)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "warning: %s", warning);
	r = write_text(fb, dir, "config.txt", rec_txt);
	if (r < 0)
		goto out;

	/* The second stage: recovery.bin; on a fused BCM2712 being reprovisioned,
	 * counter-signed with the customer key so its ROM runs it. */
	if (asprintf(&recovery, "%s/recovery.bin", fwdir) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = read_file(recovery, &rec, &rec_len);
	if (r < 0) {
		r = job_fail(fb->job, r, "%s: %s (install rpi-eeprom)", recovery, strerror(-r));
		goto out;
	}
	if (fb->chip == 0x2712 && fb->reprovision) {
		if (!c->signer) {
			r = job_fail(fb->job, -ENOKEY, "the reprovision flag needs the customer key to "
				     "counter-sign recovery.bin");
			goto out;
		}
		r = bootcode_counter_sign(c->signer, rec, rec_len, 0, &signed_rec, &signed_len, &err);
		if (r < 0) {
			r = job_fail(fb->job, r, "counter-signing recovery.bin: %s", err.msg);
			goto out;
		}
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "reprovision: recovery.bin counter-signed "
		     "with the customer key");
	} else if (fb->chip == 0x2711 && fb->reprovision) {
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "reprovision flag: a Pi 4 runs the unsigned "
		     "recovery.bin; nothing to counter-sign");
	}
	r = rom_upload(fb, signed_rec ? signed_rec : rec, signed_rec ? signed_len : rec_len,
		       "recovery.bin");
	if (r < 0)
		goto out;
	r = serve_stage2(fb, dir, "recovery", NULL, 0);
	if (r < 0)
		goto out;
	job_state(fb->job, DB_EVENT_BOOTSTRAP_FIRMWARE_UPDATED, NULL);
out:
	payload_eeprom_out_free(&eo);
	free(fwdir);
	free(fwpath);
	free(rec_txt);
	free(bootconf);
	free(recovery);
	free(rec);
	free(signed_rec);
	return r;
}

/* Boot the fastboot gadget: bootcode from bootfiles.bin, then its files. */
static int bootstrap_gadget(struct flow_board *fb)
{
	struct flow_ctx *c = fb->ctx;
	const struct config *cfg = c->cfg;
	const char *soc = rpiboot_soc_prefix((uint16_t)fb->chip);
	const char *bc_name = rpiboot_second_stage_name((uint16_t)fb->chip);
	char dir[4200], path[4400], bootfiles[4200];
	uint8_t *img = NULL, *bc = NULL;
	size_t img_len = 0, bc_len = 0;
	char *sig = NULL;
	size_t sig_len = 0;
	struct art_err err = { "" };
	bool secure = strcmp(fb->mode, "secure-boot") == 0;
	int r;

	if (!soc || !bc_name)
		return job_fail(fb->job, -ENODEV, "no boot payload is known for chip %x", fb->chip);
	snprintf(dir, sizeof(dir), "%s/gadget", fb->stage_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return job_fail(fb->job, -errno, "cannot create %s: %s", dir, strerror(errno));
	if (fb->chip == 0x2764) {
		/* usbboot's bootfiles.bin has no 2710/ entries: the gadget package
		 * ships its own next to the gadget image, as the peer's does. */
		const char *g = config_get(cfg, "paths", "gadget_image");
		const char *slash = strrchr(g, '/');

		snprintf(bootfiles, sizeof(bootfiles), "%.*s/fastboot-gadget.2710-bootfiles-bin",
			 slash ? (int)(slash - g) : 1, slash ? g : ".");
	} else {
		snprintf(bootfiles, sizeof(bootfiles), "%s/mass-storage-gadget64/bootfiles.bin",
			 config_get(cfg, "paths", "payload_dir"));
	}
	r = stage_bootfiles(fb, bootfiles, soc, dir);
	if (r < 0)
		return job_fail(fb->job, r, "staging %s for %s: %s", bootfiles, soc, strerror(-r));

	/* boot.img: the fastboot gadget's ramdisk image. */
	const char *gadget = config_get(cfg, "paths", "gadget_image");
	r = read_file(gadget, &img, &img_len);
	if (r < 0) {
		r = job_fail(fb->job, r, "fastboot gadget image %s: %s (set [paths] gadget_image)",
			     gadget, strerror(-r));
		goto out;
	}
	r = payload_write_file(dir, "boot.img", img, img_len, &err);
	if (r == 0 && secure) {
		snprintf(path, sizeof(path), "%s/boot.img", dir);
		r = payload_boot_sig(c->signer, path, &sig, &sig_len, &err);
		if (r == 0)
			r = payload_write_file(dir, "boot.sig", sig, sig_len, &err);
	}
	if (r < 0) {
		r = job_fail(fb->job, r, "staging the gadget: %s", err.msg);
		goto out;
	}
	r = write_text(fb, dir, "config.txt", "boot_ramdisk=1\nuart_2ndstage=1\n");
	if (r < 0)
		goto out;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, soc, bc_name);
	r = read_file(path, &bc, &bc_len);
	if (r < 0) {
		r = job_fail(fb->job, r, "%s is not in %s", bc_name, bootfiles);
		goto out;
	}
	if (fb->chip == 0x2712 && secure) {
		/* A fused BCM2712 runs only a counter-signed second stage. */
		uint8_t *cs = NULL;
		size_t cs_len = 0;

		r = bootcode_counter_sign(c->signer, bc, bc_len, 0, &cs, &cs_len, &err);
		if (r < 0) {
			r = job_fail(fb->job, r, "counter-signing %s: %s", bc_name, err.msg);
			goto out;
		}
		free(bc);
		bc = cs;
		bc_len = cs_len;
		snprintf(path, sizeof(path), "%s/%s", dir, soc);
		r = payload_write_file(path, bc_name, bc, bc_len, &err);
		if (r < 0) {
			r = job_fail(fb->job, r, "staging %s: %s", bc_name, err.msg);
			goto out;
		}
	}
	if (vpi_standin_is(img, img_len))
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "gadget image is a simulator stand-in");
	job_state(fb->job, DB_EVENT_BOOTSTRAP_FASTBOOT_INIT_STARTED, NULL);
	r = rom_upload(fb, bc, bc_len, bc_name);
	if (r < 0)
		goto out;
	r = serve_stage2(fb, dir, "gadget boot", img, img_len);
out:
	free(img);
	free(bc);
	free(sig);
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
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "special flag skip-eeprom: straight to the gadget");

	r = flow_hook(fb, HOOK_BOOTSTRAP, NULL);
	if (r < 0)
		return job_fail(fb->job, r, "the bootstrap hook failed");

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
