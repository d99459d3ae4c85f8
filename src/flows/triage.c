/* triage: the board is back on its port as the fastboot gadget. Read its
 * identity, initialise its device-unique key, keep its public key, and check
 * the image again before anything can be erased. Worker thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/goldimage.h"
#include "flows/flows.h"
#include "proto/fastboot.h"

#define GADGET_TIMEOUT_MS 60000

static void fb_info_log(void *usrptr, const char *line)
{
	struct flow_board *fb = usrptr;

	blog(job_log(fb->job), BLOG_TRIAGE, "(bootloader) %s", line);
}

/* Save the device public key PEM (INFO lines of getvar:public-key). */
static void keep_public_key(struct flow_board *fb, struct fb *f)
{
	const char *dir = config_get(fb->ctx->cfg, "paths", "key_retrieval_dir");
	struct fb_lines lines = { 0 };
	char resp[FB_MSG_MAX + 1], path[4200], tmp[4300];
	bool in_pem = false;
	FILE *out = NULL;

	if (fb_command_raw(f, "getvar:public-key", 0, resp, sizeof(resp), &lines, NULL) < 0) {
		blog(job_log(fb->job), BLOG_TRIAGE, "device public key: %s", fb_last_error(f));
		goto out;
	}
	if (!*dir)
		goto out;
	if (mkdir_p(dir, 0750) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/%s.pub", dir, fb->serial16);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	out = fopen(tmp, "w");
	if (!out)
		goto out;
	for (size_t i = 0; i < lines.n; i++) {
		if (strstr(lines.v[i], "-----BEGIN"))
			in_pem = true;
		if (in_pem)
			fprintf(out, "%s\n", lines.v[i]);
		if (strstr(lines.v[i], "-----END"))
			in_pem = false;
	}
	if (fclose(out) == 0 && rename(tmp, path) == 0)
		blog(job_log(fb->job), BLOG_TRIAGE, "device public key kept in %s", path);
	else
		unlink(tmp);
out:
	fb_lines_free(&lines);
}

int flow_triage(struct flow_board *fb, struct transport **gadget)
{
	struct transport *t = NULL;
	struct fb f;
	char val[FB_MSG_MAX + 1];
	struct goldimage_info gi;
	char why[GOLDIMAGE_ERRLEN];
	const char *gold;
	int r;

	job_set_phase(fb->job, PHASE_TRIAGE);
	job_state(fb->job, DB_EVENT_TRIAGE_STARTED, NULL);
	r = job_wait_device(fb->job, USB_ROLE_GADGET, GADGET_TIMEOUT_MS, &t);
	if (r < 0)
		goto fail;
	r = fb_init(&f, t, NULL);
	if (r < 0) {
		job_fail(fb->job, r, "fastboot: %s", strerror(-r));
		goto fail;
	}
	fb_set_callbacks(&f, fb_info_log, NULL, fb);
	r = fb_getvar(&f, "version", val, sizeof(val));
	if (r < 0) {
		job_fail(fb->job, r, "the gadget does not answer: %s", fb_last_error(&f));
		goto fail_fb;
	}
	r = fb_getvar(&f, "serialno", val, sizeof(val));
	if (r < 0 || strlen(val) != 16 || job_set_serial(fb->job, val) < 0) {
		r = job_fail(fb->job, r < 0 ? r : -EPROTO, "the gadget's serial number is unusable: "
			     "'%s'", r < 0 ? fb_last_error(&f) : val);
		goto fail_fb;
	}
	snprintf(fb->serial16, sizeof(fb->serial16), "%s", job_serial(fb->job));
	if (fb->serial8[0] && strcmp(fb->serial8, fb->serial16 + 8) != 0) {
		r = job_fail(fb->job, -EPROTO, "a different board came back on port %s: boot mode "
			     "serial %s, gadget serial %s", job_port(fb->job), fb->serial8, fb->serial16);
		goto fail_fb;
	}
	r = fb_oem(&f, "fwcrypto init", 30000, NULL, NULL, 0);
	if (r < 0) {
		job_fail(fb->job, r, "oem fwcrypto init: %s", fb_last_error(&f));
		goto fail_fb;
	}
	keep_public_key(fb, &f);

	/* Nothing may reach erase on a misconfiguration: check the image again. */
	gold = config_get_for_family(fb->ctx->cfg, fb->family, "image", "gold");
	r = goldimage_check(gold, &gi, why, sizeof(why));
	if (r < 0) {
		job_fail(fb->job, r, "OS image %s: %s", gold, why);
		goto fail_fb;
	}
	fb_fini(&f);
	job_state(fb->job, DB_EVENT_TRIAGE_FINISHED, NULL);
	*gadget = t;
	return 0;

fail_fb:
	fb_fini(&f);
fail:
	transport_close(t);
	job_state(fb->job, DB_EVENT_TRIAGE_ABORTED, NULL);
	return r;
}
