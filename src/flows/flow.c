/* flow: one board from arrival to record. Chooses the family and mode,
 * runs bootstrap (when the board arrives in USB boot mode), triage and
 * provision, honours the hold setting, and fires the provision-failed hook.
 * Runs on the board's worker thread; flow_ctx is shared read-only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artefacts/pubkey.h"
#include "artefacts/sign.h"
#include "flows/flows.h"
#include "image/cache.h"

const char *flow_family_of_chip(unsigned pid)
{
	switch (pid) {
	case 0x2711: return "4";
	case 0x2712: return "5";
	case 0x2764: return "2W";
	}
	return NULL;
}

int flow_ctx_init(struct flow_ctx *c, const struct config *cfg, const struct paths *paths)
{
	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->paths = paths;
	pthread_mutex_init(&c->build_lock, NULL);
	return 0;
}

void flow_ctx_fini(struct flow_ctx *c)
{
	pthread_mutex_destroy(&c->build_lock);
}

int flow_hook(struct flow_board *fb, enum hook_stage stage, const char *fastboot_spec)
{
	const struct config *cfg = fb->ctx->cfg;
	char family[8];
	struct hook_result hr;
	int r;

	snprintf(family, sizeof(family), "%x", fb->chip);
	struct hook_call call = {
		.hooks_dir = config_get(cfg, "paths", "hooks_dir"),
		.prov = fb->prov,
		.stage = stage,
		.timeout_s = (unsigned)config_get_int(cfg, "timeouts", "hook"),
		.serial = fb->serial16[0] ? fb->serial16 : fb->serial8,
		.family = family,
		.usb_path = job_port(fb->job),
		.device_path = job_port(fb->job),
		.fastboot_specifier = fastboot_spec,
		.storage_type = fb->storage,
		.storage_device = fb->disk,
		.failed_context = fb->serial16[0] ? HOOK_FAILED_PROVISIONING : HOOK_FAILED_BOOTSTRAP,
	};
	r = hooks_run(&call, job_log(fb->job), &hr);
	if (r < 0)
		return r;
	return hooks_result_ok(&hr) ? 0 : -EIO;
}

/* The run's hold: what the operator asked for on the command line, else
 * [station] hold from the configuration. */
static enum flow_hold flow_effective_hold(const struct flow_ctx *c)
{
	const char *h;

	if (c->hold != FLOW_HOLD_NONE)
		return c->hold;
	h = config_get(c->cfg, "station", "hold");
	if (h && strcmp(h, "after-bootstrap") == 0)
		return FLOW_HOLD_AFTER_BOOTSTRAP;
	if (h && strcmp(h, "after-triage") == 0)
		return FLOW_HOLD_AFTER_TRIAGE;
	return FLOW_HOLD_NONE;
}

static int flow_run(struct flow_board *fb)
{
	struct flow_ctx *c = fb->ctx;
	const struct config *cfg = c->cfg;
	struct transport *gadget = NULL;
	enum usb_role role;
	uint16_t pid = 0;
	char serial[64];
	const char *fixed;
	enum flow_hold hold = flow_effective_hold(c);
	int r;

	if (!job_device_info(fb->job, &role, &pid, serial, sizeof(serial)))
		return job_fail(fb->job, -ENODEV, "the board left before it could be identified");
	job_set_phase(fb->job, role == USB_ROLE_BOOTROM ? PHASE_BOOTSTRAP : PHASE_TRIAGE);

	if (role == USB_ROLE_BOOTROM) {
		const char *fam = flow_family_of_chip(pid);

		if (!fam)
			return job_fail(fb->job, -ENODEV, "unknown boot-mode chip %04x", pid);
		fb->chip = pid;
		snprintf(fb->family, sizeof(fb->family), "%s", fam);
		if (strlen(serial) == 8) {
			memcpy(fb->serial8, serial, 9);
			job_set_serial(fb->job, serial);
		}
	} else {
		/* A board already bootstrapped came up as the gadget directly: its
		 * family is what the configuration says (it cannot be asked yet). */
		fixed = config_get(cfg, "station", "family");
		snprintf(fb->family, sizeof(fb->family), "%s", strcmp(fixed, "auto") ? fixed : "5");
		fb->chip = strcmp(fb->family, "4") == 0 ? 0x2711 : strcmp(fb->family, "2W") == 0 ? 0x2764 : 0x2712;
		if (strlen(serial) == 16)
			memcpy(fb->serial8, serial + 8, 9);
	}
	/* The family mismatch guard: a fixed family refuses the other chip. */
	fixed = config_get(cfg, "station", "family");
	if (strcmp(fixed, "auto") != 0 && strcmp(fixed, fb->family) != 0)
		return job_fail(fb->job, -EMEDIUMTYPE, "this station is configured for family %s, but "
				"the board is family %s (chip %x): not touched", fixed, fb->family, fb->chip);

	fb->mode = config_get_for_family(cfg, fb->family, "station", "mode");
	fb->storage = config_get_for_family(cfg, fb->family, "image", "storage");
	fb->disk = strcmp(fb->storage, "nvme") == 0 ? "nvme0n1" : "mmcblk0";
	if (hooks_provisioner_for_mode(fb->mode, &fb->prov) < 0)
		return job_fail(fb->job, -EINVAL, "unknown mode '%s'", fb->mode);
	if (strcmp(fb->mode, "secure-boot") == 0 && strcmp(fb->family, "2W") == 0)
		return job_fail(fb->job, -EINVAL, "a Zero 2 W cannot do secure-boot: set "
				"[family.2W] mode = fde-only");
	blog(job_log(fb->job), BLOG_BOOTSTRAP, "board on %s: family %s, mode %s, storage %s%s",
	     job_port(fb->job), fb->family, fb->mode, fb->storage, c->dry_run ? ", dry run" : "");
	/* The attempt records this board's own mode (per family) and, in
	 * secure-boot, the key it is secured with. */
	if (db_attempt_update_info(job_db(fb->job), job_attempt(fb->job), fb->mode, NULL,
				   strcmp(fb->mode, "secure-boot") == 0 ? c->key_fingerprint : NULL) < 0)
		blog(job_log(fb->job), BLOG_BOOTSTRAP, "warning: could not record the mode and key on the attempt");

	if (role == USB_ROLE_BOOTROM) {
		r = flow_bootstrap(fb);
		if (r < 0)
			return r;
		if (hold == FLOW_HOLD_AFTER_BOOTSTRAP) {
			blog(job_log(fb->job), BLOG_BOOTSTRAP, "held after bootstrap as configured");
			return JOB_HELD;
		}
	} else if (hold == FLOW_HOLD_AFTER_BOOTSTRAP) {
		/* Arrived as the gadget: already past bootstrap. */
		blog(job_log(fb->job), BLOG_TRIAGE, "held as configured: the board arrived already "
		     "bootstrapped (fastboot gadget)");
		return JOB_HELD;
	}
	r = flow_triage(fb, &gadget);
	if (r < 0)
		return r;
	if (hold == FLOW_HOLD_AFTER_TRIAGE) {
		blog(job_log(fb->job), BLOG_TRIAGE, "held after triage as configured");
		transport_close(gadget);
		return JOB_HELD;
	}
	return flow_provision(fb, gadget);
}

int flow_board(struct job *job, void *usrptr)
{
	struct flow_board *fb = calloc(1, sizeof(*fb));
	int r;

	if (!fb)
		return -ENOMEM;
	fb->ctx = usrptr;
	fb->job = job;
	fb->prov = HOOK_PROV_SB;
	fb->otp_armed = atomic_load(&fb->ctx->otp_armed); /* bootstrap reads it again at its decision */
	rpiboot_metadata_init(&fb->md);
	snprintf(fb->stage_dir, sizeof(fb->stage_dir), "%s/staging/XXXXXX",
		 config_get(fb->ctx->cfg, "paths", "cache_dir"));
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s/staging", config_get(fb->ctx->cfg, "paths", "cache_dir"));
	if (mkdir_p(parent, 0700) < 0 || !mkdtemp(fb->stage_dir)) {
		r = job_fail(job, -errno, "cannot create a staging directory under %s", parent);
		goto out;
	}
	r = flow_run(fb);
	if (r < 0 && r != JOB_HELD)
		flow_hook(fb, HOOK_PROVISION_FAILED, fb->serial16[0] ? fb->serial16 : NULL);
	/* The staging dir is per attempt and holds links to (or copies of)
	 * cache entries only: removing it leaves the cache whole. */
	cache_remove_tree(fb->stage_dir);
out:
	rpiboot_metadata_clear(&fb->md);
	free(fb);
	return r;
}
