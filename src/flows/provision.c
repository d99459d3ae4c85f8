/* provision: write the board's storage in its mode, verify it, record it.
 *
 *   secure-boot / fde-only: erase, DOS table, boot partition, LUKS2 root
 *     (cryptinit with the configured cipher, cryptopen), flash boot and root
 *   naked: erase, flash the whole image as a sparse image of its used blocks
 * then the board hashes what it holds against a bmap of what was sent (oem
 * bmap-load / bmap-verify), the post-flash hook runs, and the power LED goes
 * off. The metadata getvars (the manufacturing row) are read before erase:
 * the per-board *-mounted hooks get them too, on this board's own copy of
 * the image (pipeline_board_*), built before erase (the LUKS root once the
 * container's size is known). Worker thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "artefacts/art_err.h"
#include "flows/flows.h"
#include "flows/verify.h"
#include "image/pipeline.h"
#include "proto/fastboot.h"
#include "proto/sparse.h"

#define OEM_TIMEOUT_MS 120000

struct prov {
	struct flow_board *fb;
	struct fb f;
	uint64_t max_download;
	uint64_t bytes_total, bytes_done;
	struct pipeline_inputs in;	/* what the cached artefacts are built from */
	struct timespec mark;		/* start of the span timing_log() reports */
	uint64_t mark_out, mark_wait;
	char settings[256];
};

static void info_log(void *usrptr, const char *line)
{
	struct prov *p = usrptr;

	blog(job_log(p->fb->job), BLOG_PROVISIONER, "(bootloader) %s", line);
}

static void progress(void *usrptr, uint64_t done, uint64_t total)
{
	struct prov *p = usrptr;

	job_progress(p->fb->job, p->bytes_done + done, p->bytes_total);
}

static int oem(struct prov *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int oem(struct prov *p, const char *fmt, ...)
{
	char args[FB_CMD_MAX];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	blog(job_log(p->fb->job), BLOG_PROVISIONER, "oem %s", args);
	r = fb_oem(&p->f, args, OEM_TIMEOUT_MS, NULL, NULL, 0);
	if (r < 0)
		return job_fail(p->fb->job, r, "oem %s: %s", args, fb_last_error(&p->f));
	return 0;
}

static int flash_simg(struct prov *p, const char *partition, const char *path)
{
	struct sparse_file *s = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return job_fail(p->fb->job, -errno, "%s: %s", path, strerror(errno));
	r = sparse_open_image(fd, &s);
	if (r < 0) {
		close(fd);
		return job_fail(p->fb->job, r, "%s is not a sparse image: %s", path, strerror(-r));
	}
	blog(job_log(p->fb->job), BLOG_PROVISIONER, "flash %s <- %s (%lld bytes sparse)", partition,
	     path, (long long)sparse_encoded_len(s));
	r = fb_flash_sparse(&p->f, partition, s, p->max_download);
	p->bytes_done += (uint64_t)sparse_encoded_len(s);
	sparse_destroy_image(s);
	close(fd);
	if (r < 0)
		return job_fail(p->fb->job, r, "flash %s: %s", partition, fb_last_error(&p->f));
	return 0;
}

/* Describe the gadget's bmap-verify mismatch "<index>:<expected>:<actual>"
 * with the blocks of that range (from the bmap that was sent). */
static void describe_mismatch(const char *msg, const uint8_t *bmap, size_t len, char *out,
			      size_t outlen)
{
	char *end;
	unsigned long idx = strtoul(msg, &end, 10);
	const char *exp = *end == ':' ? end + 1 : NULL, *act = exp ? strchr(exp, ':') : NULL;
	uint32_t block = len >= 16 ? (uint32_t)bmap[4] | (uint32_t)bmap[5] << 8 |
					(uint32_t)bmap[6] << 16 | (uint32_t)bmap[7] << 24 : 0;

	if (!exp || !act || act - exp != 64 || strlen(act + 1) != 64 || len < 16 ||
	    idx >= (len - 16) / 40) {
		snprintf(out, outlen, "the board answered: %s", msg);
		return;
	}
	const uint8_t *r = bmap + 16 + 40 * idx;
	uint32_t first = (uint32_t)r[0] | (uint32_t)r[1] << 8 | (uint32_t)r[2] << 16 | (uint32_t)r[3] << 24;
	uint32_t last = (uint32_t)r[4] | (uint32_t)r[5] << 8 | (uint32_t)r[6] << 16 | (uint32_t)r[7] << 24;
	snprintf(out, outlen, "range %lu, blocks %u-%u (bytes %llu-%llu), reads back with a SHA-256 "
		 "starting %.16s where %.16s was sent", idx, first, last,
		 (unsigned long long)first * block, ((unsigned long long)last + 1) * block - 1, act + 1, exp);
}

/* The board hashes @partition's blocks and compares with what @simg defines. */
static int verify_on_board(struct prov *p, const char *partition, const char *simg)
{
	uint8_t *bmap = NULL;
	size_t len = 0;
	uint32_t ranges = 0;
	char resp[FB_MSG_MAX + 1];
	char args[FB_CMD_MAX];
	char why[512];
	int r;

	bool hit;

	r = verify_bmap_cached(simg, &bmap, &len, &ranges, &hit);
	if (r < 0)
		return job_fail(p->fb->job, r, "cannot build the verification map of %s: %s (the "
				"cached image may be damaged: delete it and retry)", simg, strerror(-r));
	blog(job_log(p->fb->job), BLOG_PROVISIONER, "verify %s: %u ranges (%zu bytes of bmap%s)",
	     partition, ranges, len, hit ? ", cached" : "");
	r = fb_download(&p->f, bmap, len);
	if (r < 0) {
		job_fail(p->fb->job, r, "verify %s: sending the bmap: %s", partition, fb_last_error(&p->f));
		goto out;
	}
	snprintf(args, sizeof(args), "bmap-load %s", partition);
	r = fb_oem(&p->f, args, OEM_TIMEOUT_MS, NULL, NULL, 0);
	if (r < 0) {
		job_fail(p->fb->job, r, "verify %s: oem %s: %s", partition, args, fb_last_error(&p->f));
		goto out;
	}
	snprintf(args, sizeof(args), "bmap-verify %s", partition);
	r = fb_oem(&p->f, args, 600000, NULL, resp, sizeof(resp));
	if (r == -EREMOTEIO && strchr(fb_fail_message(&p->f), ':')) {
		describe_mismatch(fb_fail_message(&p->f), bmap, len, why, sizeof(why));
		r = job_fail(p->fb->job, -EBADMSG, "verification of %s failed: what the board holds "
			     "differs from what was sent: %s. The storage did not keep what was "
			     "written: replace it (or the board) and provision again", partition, why);
		goto out;
	}
	if (r < 0) {
		job_fail(p->fb->job, r, "verify %s: oem %s: %s", partition, args, fb_last_error(&p->f));
		goto out;
	}
	blog(job_log(p->fb->job), BLOG_PROVISIONER, "verified %s: %s", partition, resp);
out:
	free(bmap);
	return r;
}

static void getvar_opt(struct prov *p, const char *name, char *val, size_t len)
{
	if (fb_getvar(&p->f, name, val, len) < 0)
		val[0] = '\0';
	/* Trailing NULs/newlines of device-tree and sysfs values. */
	for (size_t n = strlen(val); n > 0 && (val[n - 1] == '\n' || val[n - 1] == '\r' ||
						val[n - 1] == ' '); n--)
		val[n - 1] = '\0';
	if (strcmp(val, "not available") == 0 || strcmp(val, ":") == 0)
		val[0] = '\0';
}

static const char *board_name(unsigned type, char *buf, size_t len)
{
	static const struct { unsigned type; const char *name; } names[] = {
		{ 0x06, "CM1" }, { 0x08, "3B" }, { 0x09, "Zero" }, { 0x0a, "CM3" }, { 0x0c, "Zero W" },
		{ 0x0d, "3B+" }, { 0x0e, "3A+" }, { 0x10, "CM3+" }, { 0x11, "4B" }, { 0x12, "Zero 2 W" },
		{ 0x13, "400" }, { 0x14, "CM4" }, { 0x15, "CM4S" }, { 0x17, "5" }, { 0x18, "CM5" },
		{ 0x19, "500" }, { 0x1a, "CM5 Lite" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == type)
			return names[i].name;
	snprintf(buf, len, "Unsupported Board: 0x%x", type);
	return buf;
}

static unsigned hexval(const char *s)
{
	return (unsigned)strtoul(s, NULL, 16);
}

static enum db_flag yes_no(const char *v, const char *yes, const char *no)
{
	if (strcmp(v, yes) == 0)
		return DB_FLAG_YES;
	if (strcmp(v, no) == 0)
		return DB_FLAG_NO;
	return DB_FLAG_NULL;
}

/* The manufacturing facts of a board, gathered from the gadget. */
struct meta {
	char eth[64], wifi[64], bt[64], ssz[32], scnt[32], cid[64], duid[64], type[16], proc[16],
		sdram[32], mem[16], manu[16], rev[16], secure[16], otp[32], devkey[32], esize[32],
		ejedec[16], euid[64], bts[32], namebuf[48], memory[32], mmc_size[32];
	struct db_device_record rec;
};

/* Metadata getvars (spec fastboot.md §6.6), failures tolerated. */
static void gather(struct prov *p, const struct pipeline_outputs *po, struct meta *m)
{
	struct flow_board *fb = p->fb;
	const struct config *cfg = fb->ctx->cfg;
	static const char *const procs[] = { "BCM2835", "BCM2836", "BCM2837", "BCM2711", "BCM2712" };
	static const char *const manus[] = { "Sony UK", "Egoman", "Embest", "Sony Japan", "Embest",
					     "Stadium" };
	struct db_device_record *rec = &m->rec;

	memset(m, 0, sizeof(*m));
	getvar_opt(p, "mac-ethernet", m->eth, sizeof(m->eth));
	getvar_opt(p, "mac-wifi", m->wifi, sizeof(m->wifi));
	getvar_opt(p, "mac-bt", m->bt, sizeof(m->bt));
	getvar_opt(p, "mmc-sector-size", m->ssz, sizeof(m->ssz));
	getvar_opt(p, "mmc-sector-count", m->scnt, sizeof(m->scnt));
	getvar_opt(p, "mmc-cid", m->cid, sizeof(m->cid));
	getvar_opt(p, "rpi-duid", m->duid, sizeof(m->duid));
	getvar_opt(p, "revision-type", m->type, sizeof(m->type));
	getvar_opt(p, "revision-processor", m->proc, sizeof(m->proc));
	getvar_opt(p, "sdram-size-bytes", m->sdram, sizeof(m->sdram));
	getvar_opt(p, "revision-memory", m->mem, sizeof(m->mem));
	getvar_opt(p, "revision-manufacturer", m->manu, sizeof(m->manu));
	getvar_opt(p, "revision-revision", m->rev, sizeof(m->rev));
	getvar_opt(p, "secure", m->secure, sizeof(m->secure));
	getvar_opt(p, "secure-otp", m->otp, sizeof(m->otp));
	getvar_opt(p, "secure-devkey", m->devkey, sizeof(m->devkey));
	getvar_opt(p, "eeprom-size", m->esize, sizeof(m->esize));
	getvar_opt(p, "eeprom-jedec", m->ejedec, sizeof(m->ejedec));
	getvar_opt(p, "eeprom-unique-id", m->euid, sizeof(m->euid));
	getvar_opt(p, "bootloader-build-timestamp", m->bts, sizeof(m->bts));

	if (*m->sdram) {
		unsigned long long b = strtoull(m->sdram, NULL, 10);
		if (b >= 1000000000ull)
			snprintf(m->memory, sizeof(m->memory), "%lluGB", b / 1000000000ull);
		else
			snprintf(m->memory, sizeof(m->memory), "%lluMB", b / 1000000ull);
	} else {
		snprintf(m->memory, sizeof(m->memory), "%s", m->mem);
	}
	if (*m->ssz && *m->scnt)
		snprintf(m->mmc_size, sizeof(m->mmc_size), "%llu",
			 strtoull(m->ssz, NULL, 10) * strtoull(m->scnt, NULL, 10));

	unsigned pi = hexval(m->proc), mi = hexval(m->manu);
	rec->boardname = board_name(hexval(m->type), m->namebuf, sizeof(m->namebuf));
	rec->serial = fb->serial16;
	rec->eth_mac = *m->eth ? m->eth : NULL;
	rec->wifi_mac = *m->wifi ? m->wifi : NULL;
	rec->bt_mac = *m->bt ? m->bt : NULL;
	if (*m->mmc_size)
		rec->mmc_size = DB_INT((int64_t)strtoll(m->mmc_size, NULL, 10));
	rec->mmc_cid = *m->cid ? m->cid : NULL;
	rec->rpi_duid = *m->duid ? m->duid : NULL;
	rec->board_revision = *m->rev ? m->rev : NULL;
	rec->processor = *m->proc && pi < 5 ? procs[pi] : NULL;
	rec->memory = *m->memory ? m->memory : NULL;
	rec->manufacturer = *m->manu && mi < 6 ? manus[mi] : NULL;
	rec->pubkey_programmed = yes_no(m->otp, "present", "not present");
	/* secure = secure boot in force: the gadget's `secure` (device key in
	 * OTP) alone is also "yes" for an fde-only board (Pi 5, Zero 2 W),
	 * whose LUKS key derives from it but which boots unsigned images. So
	 * it is "yes" only when the key hash is programmed as well (which only
	 * a secure-boot run on a 2711/2712 does), "no" when either says no,
	 * unknown otherwise. The peer stored `getvar secure` alone. */
	if (rec->pubkey_programmed == DB_FLAG_NO)
		rec->secure = DB_FLAG_NO;
	else
		rec->secure = yes_no(m->secure, "yes", "no") == DB_FLAG_YES ? rec->pubkey_programmed
			    : yes_no(m->secure, "yes", "no");
	rec->signed_boot_enabled = rec->pubkey_programmed;
	rec->devkey_revoked = yes_no(m->devkey, "present", "not present");
	/* Intent from the configuration: not observable from the gadget. */
	bool burned = strcmp(fb->mode, "secure-boot") == 0 && fb->otp_armed && !fb->ctx->dry_run;
	rec->jtag_locked = burned ? (config_get_bool(cfg, "otp", "jtag_lock") ? DB_FLAG_YES : DB_FLAG_NO)
				  : DB_FLAG_NULL;
	rec->eeprom_write_protected = fb->skip_eeprom || fb->ctx->dry_run || fb->chip == 0x2764 ?
		DB_FLAG_NULL : (config_get_bool(cfg, "otp", "eeprom_write_protect") ? DB_FLAG_YES : DB_FLAG_NO);
	rec->os_image_filename = config_get_for_family(cfg, fb->family, "image", "gold");
	rec->os_image_sha256 = po->image_sha256;
	if (*m->esize && strspn(m->esize, "0123456789") == strlen(m->esize))
		rec->eeprom_size = DB_INT((int64_t)strtoll(m->esize, NULL, 10));
	rec->eeprom_jedec = *m->ejedec ? m->ejedec : NULL;
	rec->eeprom_unique_id = *m->euid ? m->euid : NULL;
	if (*m->bts && strspn(m->bts, "0123456789") == strlen(m->bts))
		rec->bootloader_build_timestamp = DB_INT((int64_t)strtoll(m->bts, NULL, 10));
	rec->customer_key_fingerprint = fb->ctx->key_fingerprint[0] ? fb->ctx->key_fingerprint : NULL;
	rec->station_id = config_get(cfg, "station", "id");
	rec->usb_port = job_port(fb->job);
}

#define META_FIELDS 20

/* The manufacturing fields hooks get in their environment (post-flash and
 * the per-board *-mounted stages), from gather(). */
static size_t meta_fields(const struct flow_board *fb, const struct meta *m,
			  struct hook_field fields[META_FIELDS])
{
	const struct db_device_record *rec = &m->rec;
	const struct hook_field v[META_FIELDS] = {
		{ "BOARDNAME", rec->boardname }, { "SERIAL", fb->serial16 }, { "ETH_MAC", m->eth },
		{ "WIFI_MAC", m->wifi }, { "BT_MAC", m->bt }, { "MMC_SIZE", m->mmc_size },
		{ "MMC_CID", m->cid }, { "RPI_DUID", m->duid }, { "BOARD_REVISION", m->rev },
		{ "PROCESSOR", rec->processor ? rec->processor : "" }, { "MEMORY", m->memory },
		{ "MANUFACTURER", rec->manufacturer ? rec->manufacturer : "" },
		{ "SECURE", rec->secure == DB_FLAG_YES ? "1" : rec->secure == DB_FLAG_NO ? "0" : "" },
		{ "OS_IMAGE_FILENAME", rec->os_image_filename }, { "OS_IMAGE_SHA256", rec->os_image_sha256 },
		{ "EEPROM_SIZE", m->esize }, { "EEPROM_JEDEC", m->ejedec },
		{ "EEPROM_UNIQUE_ID", m->euid }, { "BOOTLOADER_BUILD_TIMESTAMP", m->bts },
		{ "CUSTOMER_KEY_FINGERPRINT", fb->ctx->key_fingerprint },
	};

	memcpy(fields, v, sizeof(v));
	return META_FIELDS;
}

/* A hook of the provisioning phase with the manufacturing fields; @boot and
 * @root: the *-mounted stages' trees (NULL otherwise). */
static int meta_hook(struct flow_board *fb, const struct meta *m, enum hook_stage stage,
		     const char *boot, const char *root)
{
	const struct config *cfg = fb->ctx->cfg;
	struct hook_field fields[META_FIELDS];
	char family[8];

	snprintf(family, sizeof(family), "%x", fb->chip);
	struct hook_call call = {
		.hooks_dir = config_get(cfg, "paths", "hooks_dir"), .prov = fb->prov,
		.stage = stage, .timeout_s = (unsigned)config_get_int(cfg, "timeouts", "hook"),
		.serial = fb->serial16, .family = family, .usb_path = job_port(fb->job),
		.device_path = job_port(fb->job), .fastboot_specifier = fb->serial16,
		.storage_type = fb->storage, .storage_device = fb->disk,
		.boot_mount = boot, .rootfs_mount = root,
		.fields = fields, .n_fields = meta_fields(fb, m, fields),
	};
	struct hook_result hr;
	int r = hooks_run(&call, job_log(fb->job), &hr);

	if (r < 0 || !hooks_result_ok(&hr))
		return job_fail(fb->job, -EIO, "the %s hook failed (%s)", hooks_stage_name(stage),
				r < 0 ? strerror(-r) : hooks_outcome_name(hr.outcome));
	return 0;
}

/* The post-flash hook with the manufacturing fields, then the row. */
static int record(struct flow_board *fb, struct meta *m)
{
	int r = meta_hook(fb, m, HOOK_POST_FLASH, NULL, NULL);

	return r < 0 ? r : job_record_device(fb->job, &m->rec);
}

/* Is the hook of @stage there and enabled (an executable file)? */
static bool hook_enabled(const struct flow_board *fb, enum hook_stage stage)
{
	struct hook_call call = {
		.hooks_dir = config_get(fb->ctx->cfg, "paths", "hooks_dir"), .prov = fb->prov,
		.stage = stage, .timeout_s = 1,
	};
	char *path = hooks_path(&call);
	struct stat st;
	bool on = path && stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;

	free(path);
	return on;
}

/* The per-board customisation, before anything is erased: the board's own
 * trees, the *-mounted hooks on them, and the boot (LUKS modes) or
 * whole-disk (naked) artefacts rebuilt when they changed. The root of the
 * LUKS modes follows in customise_root() once the container size is known. */
static int customise(struct prov *p, const struct pipeline_outputs *po, const struct meta *m,
		     struct pipeline_board **board, struct pipeline_outputs *pc)
{
	struct flow_board *fb = p->fb;
	struct art_err err = { "" };
	const struct pipeline_board_stats *st;
	int r;

	r = pipeline_board_open(&p->in, po, fb->stage_dir, board, &err);
	if (r < 0)
		return job_fail(fb->job, r, "preparing this board's copy of the image for the "
				"hooks: %s", err.msg);
	const char *boot = pipeline_board_boot_dir(*board), *root = pipeline_board_root_dir(*board);
	if ((r = meta_hook(fb, m, HOOK_BOOTFS_MOUNTED, boot, root)) < 0 ||
	    (r = meta_hook(fb, m, HOOK_ROOTFS_MOUNTED, boot, root)) < 0)
		return r;
	r = pipeline_board_commit(*board, pc, &err);
	if (r < 0)
		return job_fail(fb->job, r, "applying the hooks' changes to this board's copy: %s",
				err.msg);
	st = pipeline_board_stats(*board);
	blog(job_log(fb->job), BLOG_PROVISIONER, "per-board copy: trees extracted in %.2f s; the "
	     "hooks changed %zu boot and %zu root entries; %s rebuilt in %.2f s",
	     st->open_s, st->boot_changes, st->root_changes,
	     p->in.mode == PIPELINE_NAKED ? (st->boot_changed || st->root_changed ?
					      "the disk image" : "nothing") :
	     st->boot_changed ? "the boot partition" : "nothing (boot)", st->commit_s);
	return 0;
}

static int customise_root(struct prov *p, struct pipeline_board *board,
			  const struct pipeline_outputs *pr, struct pipeline_outputs *prc)
{
	struct art_err err = { "" };
	int r = pipeline_board_commit_root(board, pr, prc, &err);

	if (r < 0)
		return job_fail(p->fb->job, r, "writing the hooks' changes into this board's root "
				"file system: %s", err.msg);
	if (pipeline_board_stats(board)->root_changed)
		blog(job_log(p->fb->job), BLOG_PROVISIONER, "per-board root file system built in "
		     "%.2f s", pipeline_board_stats(board)->root_s);
	return 0;
}

/* The cached artefacts: the boot (or whole-disk) entry with @container 0,
 * then the root for the container. */
static int build(struct prov *p, uint64_t container, struct pipeline_outputs *po)
{
	struct flow_board *fb = p->fb;
	const struct config *cfg = fb->ctx->cfg;
	struct art_err err = { "" };
	int r;

	snprintf(p->settings, sizeof(p->settings), "mode=%s;storage=%s", fb->mode, fb->storage);
	p->in = (struct pipeline_inputs){
		.mode = strcmp(fb->mode, "secure-boot") == 0 ? PIPELINE_SECURE_BOOT :
			strcmp(fb->mode, "fde-only") == 0 ? PIPELINE_FDE_ONLY : PIPELINE_NAKED,
		.gold = config_get_for_family(cfg, fb->family, "image", "gold"),
		.cache_dir = config_get(cfg, "paths", "cache_dir"),
		.family = fb->family,
		.storage = fb->storage,
		.cipher = config_get(cfg, "image", "cipher"),
		.initramfs = config_get(cfg, "paths", "cryptroot_initramfs"),
		.key_fingerprint = fb->ctx->key_fingerprint,
		.sign = fb->ctx->signer ? pipeline_sign_with_signer : NULL,
		.sign_usr = fb->ctx->signer,
		.settings = p->settings,
		.container_bytes = container,
	};
	r = image_pipeline_build(&p->in, po, &err);
	if (r < 0)
		return job_fail(fb->job, r, "preparing the image: %s", err.msg);
	if (po->warnings[0])
		blog(job_log(fb->job), BLOG_PROVISIONER, "image: %s", po->warnings);
	return 0;
}

/* Where the time of a span went since the last mark: inside the fastboot
 * client's sends, waiting for the board's answers, and the rest (the
 * station's own). tests/bench/provision_bench.sh reads these lines. */
static void timing_log(struct prov *p, const char *span)
{
	struct timespec now;
	double wall, out = (p->f.out_ns - p->mark_out) / 1e9, wait = (p->f.wait_ns - p->mark_wait) / 1e9;

	clock_gettime(CLOCK_MONOTONIC, &now);
	wall = (double)(now.tv_sec - p->mark.tv_sec) + (now.tv_nsec - p->mark.tv_nsec) / 1e9;
	blog(job_log(p->fb->job), BLOG_PROVISIONER, "timing %s: %.3f s: %.3f s sending, %.3f s "
	     "waiting for the board, %.3f s in the station", span, wall, out, wait, wall - out - wait);
	p->mark = now;
	p->mark_out = p->f.out_ns;
	p->mark_wait = p->f.wait_ns;
}

/* A board whose storage is smaller than what must go on it fails before
 * erase. @what says what @need is made of. */
static int check_size(struct prov *p, uint64_t need, const char *what)
{
	char val[FB_MSG_MAX + 1];
	uint64_t have = 0;
	char q[64];

	snprintf(q, sizeof(q), "block-device-size:%s", p->fb->disk);
	if (fb_getvar(&p->f, q, val, sizeof(val)) < 0 || fb_parse_size(val, &have) < 0 || !have) {
		blog(job_log(p->fb->job), BLOG_PROVISIONER, "getvar %s: %s; the storage size is "
		     "not checked before erase", q, fb_last_error(&p->f));
		return 0;
	}
	if (have < need)
		return job_fail(p->fb->job, -ENOSPC, "storage %s is too small: the image needs %llu "
				"bytes (%llu MiB: %s), the board has %llu bytes (%llu MiB). Nothing was "
				"erased; fit larger storage or configure a smaller image",
				p->fb->disk, (unsigned long long)need, (unsigned long long)(need >> 20),
				what, (unsigned long long)have, (unsigned long long)(have >> 20));
	blog(job_log(p->fb->job), BLOG_PROVISIONER, "storage %s: %llu bytes, the image needs %llu",
	     p->fb->disk, (unsigned long long)have, (unsigned long long)need);
	return 0;
}

int flow_provision(struct flow_board *fb, struct transport *gadget)
{
	struct prov p = { .fb = fb };
	struct pipeline_outputs po = { 0 }, pr = { 0 }, pc = { 0 }, prc = { 0 };
	const struct pipeline_outputs *boot = &po, *root = &pr;
	struct pipeline_board *board = NULL;
	struct meta *m = NULL;
	bool luks = strcmp(fb->mode, "naked") != 0;
	enum db_event_state started, finished, aborted;
	char part1[48], part2[48], val[FB_MSG_MAX + 1];
	int r;

	if (strcmp(fb->mode, "secure-boot") == 0) {
		started = DB_EVENT_SB_PROVISIONER_STARTED;
		finished = DB_EVENT_SB_PROVISIONER_FINISHED;
		aborted = DB_EVENT_SB_PROVISIONER_ABORTED;
	} else if (luks) {
		started = DB_EVENT_FDE_PROVISIONER_STARTED;
		finished = DB_EVENT_FDE_PROVISIONER_FINISHED;
		aborted = DB_EVENT_FDE_PROVISIONER_ABORTED;
	} else {
		started = DB_EVENT_NAKED_PROVISIONER_STARTED;
		finished = DB_EVENT_NAKED_PROVISIONER_FINISHED;
		aborted = DB_EVENT_NAKED_PROVISIONER_ABORTED;
	}
	clock_gettime(CLOCK_MONOTONIC, &p.mark);
	job_set_phase(fb->job, PHASE_PROVISION);
	job_state(fb->job, started, NULL);
	r = fb_init(&p.f, gadget, NULL);
	if (r < 0) {
		job_fail(fb->job, r, "fastboot: %s", strerror(-r));
		goto out_closed;
	}
	fb_set_callbacks(&p.f, info_log, progress, &p);
	r = fb_get_max_download(&p.f, &p.max_download);
	if (r < 0) {
		job_fail(fb->job, r, "max-download-size: %s", fb_last_error(&p.f));
		goto out;
	}
	r = flow_hook(fb, HOOK_PROVISION_STARTED, fb->serial16);
	if (r < 0) {
		job_fail(fb->job, r, "the provision-started hook failed");
		goto out;
	}
	/* Everything is built and checked before anything is erased. */
	r = build(&p, 0, &po);
	if (r < 0)
		goto out;
	/* The attempt names the image it gets (a records failure is logged, not fatal). */
	if (db_attempt_update_info(job_db(fb->job), job_attempt(fb->job), NULL, po.image_sha256, NULL) < 0)
		blog(job_log(fb->job), BLOG_PROVISIONER, "warning: could not record the image hash on the attempt");
	m = calloc(1, sizeof(*m));
	if (!m) {
		r = job_fail(fb->job, -ENOMEM, "out of memory");
		goto out;
	}
	gather(&p, &po, m);
	/* Per-board hooks: this board gets its own copy (none without them). */
	if (hook_enabled(fb, HOOK_BOOTFS_MOUNTED) || hook_enabled(fb, HOOK_ROOTFS_MOUNTED)) {
		r = customise(&p, &po, m, &board, &pc);
		if (r < 0)
			goto out;
		boot = &pc;
	}
	snprintf(part1, sizeof(part1), "%sp1", fb->disk);
	snprintf(part2, sizeof(part2), "%sp2", fb->disk);
	/* LUKS modes: the first partition starts at the 4 MiB grain; the root
	 * needs at least the LUKS2 header (16 MiB) and a small file system. */
	r = check_size(&p, luks ? (4u << 20) + boot->bootfs_bytes + (64u << 20) : boot->disk_bytes,
		       luks ? "4 MiB alignment, the boot partition, at least 64 MiB for the "
			      "encrypted root" : "the whole disk image");
	if (r < 0)
		goto out;

	blog(job_log(fb->job), BLOG_PROVISIONER, "erase %s", fb->disk);
	r = fb_erase(&p.f, fb->disk);
	if (r < 0) {
		job_fail(fb->job, r, "erase %s: %s", fb->disk, fb_last_error(&p.f));
		goto out;
	}
	if (!luks) {
		p.bytes_total = boot->disk_file_bytes;
		r = flash_simg(&p, fb->disk, boot->disk_simg);
		if (r < 0)
			goto out;
		timing_log(&p, "provision");
		job_set_phase(fb->job, PHASE_VERIFY);
		r = verify_on_board(&p, fb->disk, boot->disk_simg);
		if (r < 0)
			goto out;
	} else {
		if ((r = oem(&p, "partinit %s DOS", fb->disk)) < 0 ||
		    (r = oem(&p, "partapp %s 0c %llu", fb->disk, (unsigned long long)boot->bootfs_bytes)) < 0 ||
		    (r = oem(&p, "partapp %s 83", fb->disk)) < 0 ||
		    (r = oem(&p, "cryptinit %s root %s", part2, config_get(fb->ctx->cfg, "image", "cipher"))) < 0 ||
		    (r = oem(&p, "cryptopen %s cryptroot", part2)) < 0)
			goto out;
		r = fb_wait_getvar(&p.f, "partition-size:mapper/cryptroot", val, sizeof(val), 10000);
		uint64_t container = 0;
		if (r == 0)
			r = fb_parse_size(val, &container);
		if (r < 0 || container == 0) {
			job_fail(fb->job, r < 0 ? r : -EIO, "the LUKS container mapper/cryptroot did not "
			 "appear with a size within 10 s of cryptopen: %s",
			 r < 0 ? fb_last_error(&p.f) : "it answered 0 bytes");
			goto out;
		}
		r = build(&p, container, &pr);
		if (r < 0)
			goto out;
		if (board) {
			r = customise_root(&p, board, &pr, &prc);
			if (r < 0)
				goto out;
			root = &prc;
		}
		p.bytes_total = boot->bootfs_file_bytes + root->rootfs_file_bytes;
		r = flash_simg(&p, part1, boot->bootfs_simg);
		if (r == 0)
			r = flash_simg(&p, "mapper/cryptroot", root->rootfs_simg);
		if (r < 0)
			goto out;
		timing_log(&p, "provision");
		job_set_phase(fb->job, PHASE_VERIFY);
		r = verify_on_board(&p, part1, boot->bootfs_simg);
		if (r == 0)
			r = verify_on_board(&p, "mapper/cryptroot", root->rootfs_simg);
		if (r < 0)
			goto out;
	}
	timing_log(&p, "verify");
	fb_oem(&p.f, "led PWR 0", 10000, NULL, NULL, 0);
	fb_fini(&p.f);
	transport_close(gadget);
	gadget = NULL;
	if (fb->ctx->verify) {
		struct flow_root_changes rc = { 0 };
		char why[512] = "";

		/* The per-board root tree stays until here: the extra
		 * verification checks the hooks' changes against it. */
		if (board) {
			rc.tree = pipeline_board_root_dir(board);
			rc.paths = pipeline_board_root_changes(board, &rc.npaths);
		}
		r = fb->ctx->verify(fb->ctx->verify_usrptr, fb->job, fb->serial16,
				    rc.npaths ? &rc : NULL, why, sizeof(why));
		if (r < 0)
			job_fail(fb->job, r, "verification failed: %s", why);
	}
	/* What was written is verified: the per-board copy can go. */
	pipeline_board_close(board);
	board = NULL;
	if (r == 0)
		r = record(fb, m);
	if (r == 0)
		job_state(fb->job, finished, NULL);
	goto out_closed;
out:
	fb_fini(&p.f);
out_closed:
	if (r < 0)
		job_state(fb->job, aborted, NULL);
	transport_close(gadget);
	pipeline_board_close(board);
	free(m);
	pipeline_outputs_free(&po);
	pipeline_outputs_free(&pr);
	pipeline_outputs_free(&pc);
	pipeline_outputs_free(&prc);
	return r;
}
