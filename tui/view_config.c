/* view_config: the effective configuration with its problems, the hooks per
 * stage, and the first-run screen.
 *
 * The configuration is the one the engine runs with (ctl_info's path, loaded
 * through the config module, so the rows follow the one schema table). The
 * first-run screen appears when that file is missing or unusable and the
 * engine is not a rehearsal: it names every missing setting at once and offers
 * to rehearse with simulated boards. Front-end thread only. */
#include <curses.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "records/hooks.h"
#include "tui.h"

static void problems_rows(const struct config_problems *p, struct text_list *out)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct config_problem *q = &p->v[i];

		text_list_add(out, q->warning ? TUI_ATTR_WARN : TUI_ATTR_BAD, "  %s%s%s%s%s%s%s",
			      q->warning ? "warning: " : "", q->key ? q->key : "", q->key ? ": " : "",
			      q->message, q->allowed ? " (allowed: " : "", q->allowed ? q->allowed : "",
			      q->allowed ? ")" : "");
	}
}

void config_rows(struct tui *t, struct text_list *out)
{
	struct config *c = NULL;
	struct config_problems probs;
	const char *last = "";

	tui_config_load(t, &c, &probs);
	text_list_add(out, TUI_ATTR_HEAD, "Configuration %s (R reloads it into the engine)",
		      c ? config_file(c) : t->cli->config_path);
	if (probs.n) {
		text_list_add(out, config_problems_errors(&probs) ? TUI_ATTR_BAD : TUI_ATTR_WARN,
			      "%zu problem%s:", probs.n, probs.n == 1 ? "" : "s");
		problems_rows(&probs, out);
	} else {
		text_list_add(out, TUI_ATTR_OK, "valid: no problems");
	}
	for (size_t i = 0; c && i < config_schema_len; i++) {
		const struct config_setting *s = &config_schema[i];
		const char *v, *file = NULL;
		int line = 0, origin;

		if (strcmp(s->section, "family") == 0)
			continue;
		if (strcmp(s->section, last) != 0) {
			text_list_add(out, TUI_ATTR_HEAD, "[%s]", s->section);
			last = s->section;
		}
		v = config_get(c, s->section, s->key);
		origin = config_origin(c, s->section, s->key, &file, &line);
		text_list_add(out, origin == 1 ? TUI_ATTR_NORMAL : TUI_ATTR_MUTED, "  %-22s = %-36s %s%s",
			      s->key, s->secret && v[0] ? "(set)" : (v[0] ? v : "(unset)"),
			      origin == 1 ? "" : "default", s->irreversible ? " [OTP: permanent]" : "");
	}
	config_free(c);
	config_problems_free(&probs);
}

/* The newest log line of any board that mentions @name, or NULL. */
static const char *hook_last(struct tui *t, const char *name)
{
	struct station_model *m = t->ctl ? ctl_model(t->ctl) : NULL;
	const char *best = NULL;
	uint64_t best_ns = 0;

	for (size_t i = 0; m && i < m->n; i++) {
		const struct tile *tl = &m->tiles[i];

		for (unsigned k = 0; tile_log_line(tl, k); k++)
			if (strstr(tile_log_line(tl, k), name)) {
				if (!best || tl->phase_ns > best_ns) {
					best = tile_log_line(tl, k);
					best_ns = tl->phase_ns;
				}
				break;
			}
	}
	return best;
}

void hooks_rows(struct tui *t, struct text_list *out)
{
	enum hook_provisioner mine = HOOK_PROV_SB;
	bool known = hooks_provisioner_for_mode(t->mode, &mine) == 0;

	text_list_add(out, TUI_ATTR_HEAD, "Hooks in %s (mode %s: %s-* run)",
		      t->hooks_dir[0] ? t->hooks_dir : "(no hooks_dir)", t->mode[0] ? t->mode : "?",
		      known ? hooks_provisioner_name(mine) : "none");
	text_list_add(out, TUI_ATTR_NORMAL, "  %-40s %-8s %-8s %s", "script", "present", "enabled",
		      "last result seen");
	for (int p = 0; p < HOOK_PROV_COUNT; p++) {
		for (int s = 0; s < HOOK_STAGE_COUNT; s++) {
			char name[128], path[1200];
			struct stat st;
			bool present, enabled;
			const char *last;

			snprintf(name, sizeof(name), "%s-%s.sh", hooks_provisioner_name((enum hook_provisioner)p),
				 hooks_stage_name((enum hook_stage)s));
			snprintf(path, sizeof(path), "%s/%s", t->hooks_dir, name);
			present = t->hooks_dir[0] && stat(path, &st) == 0;
			enabled = present && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
			last = hook_last(t, name);
			text_list_add(out, known && p == (int)mine ? (enabled ? TUI_ATTR_OK : TUI_ATTR_NORMAL)
								 : TUI_ATTR_MUTED,
				      "  %-40s %-8s %-8s %s", name, present ? "yes" : "no",
				      enabled ? "yes" : "no", last ? last : "-");
		}
	}
}

bool firstrun_needed(struct tui *t)
{
	const struct ctl_info *in = t->ctl ? ctl_info(t->ctl) : NULL;

	if (!in || in->simulated)
		return false;
	if (t->firstrun == 0) {
		struct config *c = NULL;
		struct config_problems probs;
		const char *path = in->config_path[0] ? in->config_path : t->cli->config_path;

		tui_config_load(t, &c, &probs);
		t->firstrun = access(path, F_OK) != 0 || config_problems_errors(&probs) ? 1 : 2;
		config_free(c);
		config_problems_free(&probs);
	}
	return t->firstrun == 1;
}

void firstrun_draw(struct tui *t)
{
	const struct ctl_info *in = t->ctl ? ctl_info(t->ctl) : NULL;
	struct config *c = NULL;
	struct config_problems probs;
	const char *path = in && in->config_path[0] ? in->config_path : t->cli->config_path;
	bool missing = access(path, F_OK) != 0;
	int y = 3;

	attron(A_BOLD);
	draw_text(y++, 2, t->cols - 4, false, "Welcome: this station is not configured yet.");
	attroff(A_BOLD);
	y++;
	tui_config_load(t, &c, &probs);
	if (missing)
		draw_fmt(y++, 2, t->cols - 4, "No configuration file at %s.", path);
	else
		draw_fmt(y++, 2, t->cols - 4, "The configuration %s cannot be used yet:", path);
	attron(draw_attr(t, TUI_ATTR_BAD));
	for (size_t i = 0; i < probs.n && y < t->rows - 10; i++) {
		const struct config_problem *q = &probs.v[i];

		if (q->warning || (missing && !q->key))
			continue;
		draw_fmt(y++, 4, t->cols - 6, "%s%s%s", q->key ? q->key : "", q->key ? ": " : "",
			 q->message);
	}
	attroff(draw_attr(t, TUI_ATTR_BAD));
	config_free(c);
	config_problems_free(&probs);
	for (unsigned i = 0; in && i < in->n_warnings && y < t->rows - 9; i++) {
		attron(draw_attr(t, TUI_ATTR_WARN));
		draw_fmt(y++, 4, t->cols - 6, "engine: %s", in->warnings[i]);
		attroff(draw_attr(t, TUI_ATTR_WARN));
	}
	y++;
	draw_text(y++, 2, t->cols - 4, false, "To set up: copy the example and fill it in, then check it:");
	draw_fmt(y++, 4, t->cols - 6, "cp %s.example %s", path, path);
	draw_fmt(y++, 4, t->cols - 6, "rpi-sb-provisioner config check   (lists every missing setting)");
	y++;
	attron(A_BOLD);
	draw_text(y++, 2, t->cols - 4, false,
		  "s: rehearse now with simulated boards (virtual Pis, nothing is written to hardware)");
	attroff(A_BOLD);
	draw_text(y, 2, t->cols - 4, false, "Esc: continue to the dashboard    F3: configuration    q: quit");
}
