/* keys: the one key table of the TUI and its handlers.
 *
 * keys_table[] drives dispatch, the function-key bar and the `?` help; a key
 * is looked up by (key, current view). Handlers change state, open dialogs or
 * send a typed command to the engine through ctl_command() (which audits it
 * and refuses it for a read-only viewer); they return KEY_RESULT_* and never
 * draw. Front-end thread only. */
#include <curses.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tui.h"

#define CMD_TIMEOUT_MS 30000

typedef int (*key_fn)(struct tui *t, int ch);

struct key_binding {
	int key, alt, alt2;      /* the keys (0: none) */
	const char *names;       /* as the help shows them */
	const char *bar;         /* label in the function-key bar, NULL: none */
	unsigned views;
	const char *help;
	key_fn fn;
};

#define DASHLIKE (VIEW_BIT(VIEW_DASH) | VIEW_BIT(VIEW_DETAIL))
#define SUBVIEWS (VIEWS_ALL & ~VIEW_BIT(VIEW_DASH))
#define LISTS (VIEW_BIT(VIEW_RECORDS) | VIEW_BIT(VIEW_CONFIG) | VIEW_BIT(VIEW_IMAGES) | \
	       VIEW_BIT(VIEW_HOOKS) | VIEW_BIT(VIEW_HELP) | VIEW_BIT(VIEW_DETAIL))

static struct station_model *model(struct tui *t)
{
	return t->ctl ? ctl_model(t->ctl) : NULL;
}

static bool refuse_offline(struct tui *t)
{
	if (t->ctl)
		return false;
	tui_message(t, true, "not connected to the engine");
	return true;
}

/* Send @cmd; show the engine's answer. Returns the ctl_command result. */
static int send_cmd(struct tui *t, const struct ctl_cmd *cmd, char *reply, size_t len)
{
	int rc;

	reply[0] = '\0';
	if (refuse_offline(t))
		return -ENOTCONN;
	rc = ctl_command(t->ctl, cmd, reply, len, CMD_TIMEOUT_MS);
	if (rc == -EPERM)
		tui_message(t, true, "%s refused: this viewer is read-only%s%s", ctl_cmd_name(cmd->type),
			    reply[0] ? ": " : "", reply);
	else if (rc < 0)
		tui_message(t, true, "%s refused: %s", ctl_cmd_name(cmd->type),
			    reply[0] ? reply : strerror(-rc));
	return rc;
}

/* ---- moving --------------------------------------------------------------- */

static int select_index(struct tui *t, long idx)
{
	struct station_model *m = model(t);

	if (!m || !m->n)
		return KEY_RESULT_HANDLED;
	if (idx < 0)
		idx = 0;
	if ((size_t)idx >= m->n)
		idx = (long)m->n - 1;
	snprintf(t->sel_port, sizeof(t->sel_port), "%s", m->tiles[idx].port);
	return KEY_RESULT_REDRAW;
}

static long selected_index(struct tui *t)
{
	struct station_model *m = model(t);
	struct tile *tl = tui_selected(t);

	return m && tl ? (long)(tl - m->tiles) : 0;
}

static int key_move(struct tui *t, int ch)
{
	int nx, ny, tw;
	long i = selected_index(t);

	if (t->view != VIEW_DASH) {
		/* List views scroll. */
		if ((ch == KEY_UP || ch == 'k') && t->cursor)
			t->cursor--;
		else if (ch == KEY_DOWN || ch == 'j')
			t->cursor++;
		if (t->view != VIEW_RECORDS)
			t->scroll = t->cursor;
		return KEY_RESULT_REDRAW;
	}
	dash_layout(t, &nx, &ny, &tw);
	switch (ch) {
	case KEY_LEFT: case 'h': return select_index(t, i - 1);
	case KEY_RIGHT: case 'l': return select_index(t, i + 1);
	case KEY_UP: case 'k': return select_index(t, i - nx);
	default: return select_index(t, i + nx);
	}
}

static int key_page(struct tui *t, int ch)
{
	bool back = ch == KEY_PPAGE || ch == '[';

	if (t->view == VIEW_DASH) {
		long step = (long)(t->per_page ? t->per_page : 1);
		long i = selected_index(t);

		/* To the first tile of the previous/next page. */
		return select_index(t, back ? (i / step - 1) * step : (i / step + 1) * step);
	}
	if (back)
		t->cursor = t->cursor > (size_t)(t->rows - 5) ? t->cursor - (size_t)(t->rows - 5) : 0;
	else
		t->cursor += (size_t)(t->rows - 5);
	if (t->view != VIEW_RECORDS)
		t->scroll = t->cursor;
	return KEY_RESULT_REDRAW;
}

static int go_view(struct tui *t, enum tui_view v)
{
	t->back = t->view == VIEW_FIRSTRUN ? VIEW_DASH : t->view;
	if (t->back != VIEW_DASH && t->back != VIEW_DETAIL)
		t->back = VIEW_DASH;
	t->view = v;
	t->scroll = t->cursor = 0;
	if (v == VIEW_RECORDS)
		records_load(t);
	return KEY_RESULT_REDRAW;
}

static int key_detail(struct tui *t, int ch)
{
	(void)ch;
	if (!tui_selected(t))
		return KEY_RESULT_HANDLED;
	return go_view(t, VIEW_DETAIL);
}

static int key_back(struct tui *t, int ch)
{
	(void)ch;
	if (t->view == VIEW_FIRSTRUN)
		t->firstrun_dismissed = true;
	t->view = t->view == VIEW_DETAIL ? VIEW_DASH : t->back;
	t->back = VIEW_DASH;
	t->scroll = t->cursor = 0;
	return KEY_RESULT_REDRAW;
}

static int key_help(struct tui *t, int ch)
{
	(void)ch;
	return go_view(t, VIEW_HELP);
}

static int key_records(struct tui *t, int ch)
{
	(void)ch;
	return go_view(t, VIEW_RECORDS);
}

static int key_config(struct tui *t, int ch)
{
	(void)ch;
	return go_view(t, VIEW_CONFIG);
}

static int key_images(struct tui *t, int ch)
{
	(void)ch;
	return go_view(t, VIEW_IMAGES);
}

static int key_hooks(struct tui *t, int ch)
{
	(void)ch;
	return go_view(t, VIEW_HOOKS);
}

/* ---- quitting --------------------------------------------------------------- */

static unsigned in_flight(struct tui *t)
{
	struct station_model *m = model(t);
	unsigned n = 0;

	for (size_t i = 0; m && i < m->n; i++)
		n += m->tiles[i].phase >= PHASE_BOOTSTRAP && m->tiles[i].phase <= PHASE_VERIFY;
	return n;
}

static int quit_done(struct tui *t, int choice, const char *input)
{
	(void)t;
	(void)input;
	return choice == 'y' ? KEY_RESULT_QUIT : KEY_RESULT_REDRAW;
}

static int key_quit(struct tui *t, int ch)
{
	unsigned n = in_flight(t);

	(void)ch;
	if (!n)
		return KEY_RESULT_QUIT;
	dialog_open(t, DIALOG_CONFIRM, "Quit the dashboard?", NULL, quit_done,
		    "%u board%s in flight. The engine keeps provisioning %s after\n"
		    "you quit; attach again to watch. Quit the dashboard?",
		    n, n == 1 ? " is" : "s are", n == 1 ? "it" : "them");
	return KEY_RESULT_REDRAW;
}

/* ---- actions on the selected board --------------------------------------------- */

static int flag_done(struct tui *t, int choice, const char *input)
{
	struct tile *tl = tui_selected(t);
	struct ctl_cmd cmd = { .type = CTL_CMD_SET_FLAG };
	char reply[256];

	(void)input;
	if (!tl || (choice != 'o' && choice != 'p'))
		return KEY_RESULT_REDRAW;
	snprintf(cmd.port, sizeof(cmd.port), "%s", tl->port);
	snprintf(cmd.serial, sizeof(cmd.serial), "%s", tl->serial);
	/* The flag the dialog was opened for is in its title. */
	snprintf(cmd.flag, sizeof(cmd.flag), "%s",
		 strstr(t->dialog.title, "EEPROM") ? "skip-eeprom" : "reprovision");
	cmd.persistent = choice == 'p';
	if (send_cmd(t, &cmd, reply, sizeof(reply)) == 0)
		tui_message(t, false, "%s flag set (%s) for %s%s%s", cmd.flag,
			    cmd.persistent ? "persistent" : "once", tl->serial[0] ? tl->serial : tl->port,
			    reply[0] ? ": " : "", reply);
	return KEY_RESULT_REDRAW;
}

static int key_flag(struct tui *t, int ch)
{
	struct tile *tl = tui_selected(t);
	bool eeprom = ch == 'e';

	if (!tl)
		return KEY_RESULT_HANDLED;
	if (!tl->serial[0]) {
		tui_message(t, true, "flag: the board on %s has no serial yet (wait for triage)", tl->port);
		return KEY_RESULT_REDRAW;
	}
	dialog_open(t, DIALOG_CHOICE, eeprom ? "Skip EEPROM flag" : "Reprovision flag", "op", NULL,
		    "%s for board %s on %s:\n"
		    "o: once (consumed by its next successful bootstrap)\n"
		    "p: persistent (until cleared with `flags clear`)",
		    eeprom ? "Skip every EEPROM/OTP step" : "Let this fused board run recovery again",
		    tl->serial, tl->port);
	/* The callback reads the title to know which flag; keep it set. */
	t->dialog.done = flag_done;
	return KEY_RESULT_REDRAW;
}

static int key_retry(struct tui *t, int ch)
{
	struct tile *tl = tui_selected(t);
	struct ctl_cmd cmd = { .type = CTL_CMD_RETRY };
	char reply[256];

	(void)ch;
	if (!tl)
		return KEY_RESULT_HANDLED;
	if (tl->phase != PHASE_FAILED) {
		tui_message(t, true, "retry: %s has not failed (select a red tile)", tl->port);
		return KEY_RESULT_REDRAW;
	}
	snprintf(cmd.port, sizeof(cmd.port), "%s", tl->port);
	snprintf(cmd.serial, sizeof(cmd.serial), "%s", tl->serial);
	if (send_cmd(t, &cmd, reply, sizeof(reply)) == 0)
		tui_message(t, false, "retrying %s%s%s", tl->port, reply[0] ? ": " : "", reply);
	return KEY_RESULT_REDRAW;
}

static int key_clear_finished(struct tui *t, int ch)
{
	struct ctl_cmd cmd = { .type = CTL_CMD_CLEAR_FINISHED };
	char reply[256];

	(void)ch;
	if (send_cmd(t, &cmd, reply, sizeof(reply)) == 0) {
		model_clear_finished(ctl_model(t->ctl));
		tui_message(t, false, "cleared finished and failed tiles%s%s", reply[0] ? ": " : "",
			    reply);
	}
	return KEY_RESULT_REDRAW;
}

/* ---- station actions ----------------------------------------------------------- */

static int cache_done(struct tui *t, int choice, const char *input)
{
	struct ctl_cmd cmd = { .type = CTL_CMD_CLEAR_CACHE };
	char reply[256];

	(void)input;
	if (choice != 'y')
		return KEY_RESULT_REDRAW;
	if (send_cmd(t, &cmd, reply, sizeof(reply)) == 0)
		tui_message(t, false, "cache cleared%s%s", reply[0] ? ": " : "", reply);
	return KEY_RESULT_REDRAW;
}

static int key_cache(struct tui *t, int ch)
{
	(void)ch;
	dialog_open(t, DIALOG_CONFIRM, "Clear the artefact cache?", NULL, cache_done,
		    "Every cached boot image and signed artefact is deleted;\n"
		    "the next board of each kind rebuilds them. Clear it?");
	return KEY_RESULT_REDRAW;
}

static int key_export(struct tui *t, int ch)
{
	struct ctl_cmd cmd = { .type = CTL_CMD_EXPORT_CSV };
	char reply[256];

	(void)ch;
	if (send_cmd(t, &cmd, reply, sizeof(reply)) == 0)
		dialog_open(t, DIALOG_MESSAGE, "CSV export", NULL, NULL,
			    "The manufacturing records were written to\n%s", reply);
	return KEY_RESULT_REDRAW;
}

static int arm_done(struct tui *t, int choice, const char *input)
{
	struct ctl_cmd cmd = { .type = CTL_CMD_ARM_OTP };
	char reply[256];

	if (choice != '\n')
		return KEY_RESULT_REDRAW;
	snprintf(cmd.text, sizeof(cmd.text), "%s", input);
	if (send_cmd(t, &cmd, reply, sizeof(reply)) == 0)
		tui_message(t, false, "OTP ARMED%s%s", reply[0] ? ": " : "", reply);
	return KEY_RESULT_REDRAW;
}

static int disarm_done(struct tui *t, int choice, const char *input)
{
	struct ctl_cmd cmd = { .type = CTL_CMD_DISARM_OTP };
	char reply[256];

	(void)input;
	if (choice != 'y')
		return KEY_RESULT_REDRAW;
	if (send_cmd(t, &cmd, reply, sizeof(reply)) == 0)
		tui_message(t, false, "OTP disarmed%s%s", reply[0] ? ": " : "", reply);
	return KEY_RESULT_REDRAW;
}

static int key_otp(struct tui *t, int ch)
{
	const struct ctl_info *in;

	(void)ch;
	if (refuse_offline(t))
		return KEY_RESULT_REDRAW;
	in = ctl_info(t->ctl);
	if (in->otp_armed) {
		dialog_open(t, DIALOG_CONFIRM, "Disarm OTP", NULL, disarm_done,
			    "Disarm OTP writes? Secure-boot boards will then fail in\n"
			    "bootstrap before anything permanent is done.");
		return KEY_RESULT_REDRAW;
	}
	if (!in->key_fingerprint[0]) {
		tui_message(t, true, "arm OTP: no signing key is configured ([key] pem)");
		return KEY_RESULT_REDRAW;
	}
	dialog_open(t, DIALOG_INPUT, "ARM OTP: permanent", NULL, arm_done,
		    "Armed, secure-boot burns the hash of this key into every board's\n"
		    "OTP, for good: a board then only boots images signed with it.\n"
		    "Key fingerprint:\n%s\n"
		    "Type at least its last 8 hex digits to arm:", in->key_fingerprint);
	return KEY_RESULT_REDRAW;
}

static int key_reload(struct tui *t, int ch)
{
	struct ctl_cmd cmd = { .type = CTL_CMD_RELOAD_CONFIG };
	char reply[256];
	int rc;

	(void)ch;
	rc = send_cmd(t, &cmd, reply, sizeof(reply));
	if (rc == 0)
		tui_settings_load(t);
	if (rc == 0)
		dialog_open(t, DIALOG_MESSAGE, "Configuration reloaded", NULL, NULL, "%s",
			    reply[0] ? reply : "nothing changed");
	else if (rc != -EPERM && rc != -ENOTCONN)
		dialog_open(t, DIALOG_MESSAGE, "Reload refused", NULL, NULL, "%s",
			    reply[0] ? reply : strerror(-rc));
	return KEY_RESULT_REDRAW;
}

/* ---- records browser ------------------------------------------------------------ */

static int search_done(struct tui *t, int choice, const char *input)
{
	if (choice != '\n')
		return KEY_RESULT_REDRAW;
	snprintf(t->search, sizeof(t->search), "%s", input);
	t->cursor = t->scroll = 0;
	records_load(t);
	return KEY_RESULT_REDRAW;
}

static int key_search(struct tui *t, int ch)
{
	(void)ch;
	dialog_open(t, DIALOG_INPUT, "Search records", NULL, search_done,
		    "Serial (or part of it); empty shows every board:");
	return KEY_RESULT_REDRAW;
}

static int key_secured(struct tui *t, int ch)
{
	(void)ch;
	t->secured_only = !t->secured_only;
	t->cursor = t->scroll = 0;
	records_load(t);
	return KEY_RESULT_REDRAW;
}

static int key_rehearse(struct tui *t, int ch)
{
	int rc;

	(void)ch;
	t->firstrun_dismissed = true;
	t->view = VIEW_DASH;
	rc = tui_start_rehearsal(t);
	if (rc < 0)
		tui_message(t, true, "cannot start the rehearsal engine: %s", strerror(-rc));
	return KEY_RESULT_REDRAW;
}

#define K_ENTER_ALT '\r'

static const struct key_binding keys_table[] = {
	{ KEY_F(1), '?', 0, "F1 ?", "Help", VIEWS_ALL, "this help", key_help },
	{ '\n', K_ENTER_ALT, KEY_ENTER, "Enter", NULL, VIEW_BIT(VIEW_DASH),
	  "detail: log, history, flags, attempts", key_detail },
	{ 27, KEY_BACKSPACE, 127, "Esc", NULL, SUBVIEWS, "back to the dashboard", key_back },
	{ KEY_LEFT, 'h', 0, "Left h", NULL, VIEW_BIT(VIEW_DASH), "select the tile on the left", key_move },
	{ KEY_RIGHT, 'l', 0, "Right l", NULL, VIEW_BIT(VIEW_DASH), "select the tile on the right", key_move },
	{ KEY_UP, 'k', 0, "Up k", NULL, VIEW_BIT(VIEW_DASH) | LISTS, "tile above / scroll up", key_move },
	{ KEY_DOWN, 'j', 0, "Down j", NULL, VIEW_BIT(VIEW_DASH) | LISTS, "tile below / scroll down", key_move },
	{ KEY_PPAGE, '[', 0, "PgUp [", NULL, VIEW_BIT(VIEW_DASH) | LISTS, "previous page", key_page },
	{ KEY_NPAGE, ']', 0, "PgDn ]", NULL, VIEW_BIT(VIEW_DASH) | LISTS, "next page", key_page },
	{ 'r', 0, 0, "r", NULL, DASHLIKE, "retry the selected failed board", key_retry },
	{ 'p', 0, 0, "p", NULL, DASHLIKE, "reprovision flag for the selected board (once/persistent)", key_flag },
	{ 'e', 0, 0, "e", NULL, DASHLIKE, "skip-EEPROM flag for the selected board (once/persistent)", key_flag },
	{ 'x', 0, 0, "x", NULL, VIEW_BIT(VIEW_DASH), "clear finished and failed tiles", key_clear_finished },
	{ '/', 0, 0, "/", NULL, VIEW_BIT(VIEW_RECORDS), "search the records by serial", key_search },
	{ 's', 0, 0, "s", NULL, VIEW_BIT(VIEW_RECORDS), "show secured boards only / all", key_secured },
	{ 's', 0, 0, "s", NULL, VIEW_BIT(VIEW_FIRSTRUN), "rehearse with simulated boards", key_rehearse },
	{ KEY_F(2), 'D', 0, "F2 D", "Records", VIEWS_ALL, "the manufacturing database", key_records },
	{ KEY_F(3), 'c', 0, "F3 c", "Config", VIEWS_ALL, "the effective configuration and its problems", key_config },
	{ KEY_F(4), 'i', 0, "F4 i", "Images", VIEWS_ALL, "OS images (size, type, sha256) and the cache", key_images },
	{ KEY_F(5), 'H', 0, "F5 H", "Hooks", VIEWS_ALL, "hook scripts per stage", key_hooks },
	{ KEY_F(6), 'E', 0, "F6 E", "Export", VIEWS_ALL, "export the records as CSV (shows the path)", key_export },
	{ KEY_F(7), 'A', 0, "F7 A", "OTP", VIEWS_ALL, "arm OTP (type the key fingerprint's last 8+ hex) / disarm", key_otp },
	{ KEY_F(8), 'R', 0, "F8 R", "Reload", VIEWS_ALL, "reload the configuration (shows what changed / why refused)", key_reload },
	{ KEY_F(9), 'C', 0, "F9 C", "Cache", VIEWS_ALL, "clear the artefact cache (asks first)", key_cache },
	{ KEY_F(10), 'q', 0, "F10 q", "Quit", VIEWS_ALL, "quit (asks if boards are in flight; the engine keeps going)", key_quit },
};

int keys_handle(struct tui *t, int ch)
{
	for (size_t i = 0; i < sizeof(keys_table) / sizeof(keys_table[0]); i++) {
		const struct key_binding *k = &keys_table[i];

		if (!(k->views & VIEW_BIT(t->view)))
			continue;
		if (ch == k->key || (k->alt && ch == k->alt) || (k->alt2 && ch == k->alt2))
			return k->fn(t, ch) | KEY_RESULT_HANDLED;
	}
	return KEY_RESULT_IGNORED;
}

void keys_draw_bar(struct tui *t, int y)
{
	move(y, 0);
	for (size_t i = 0; i < sizeof(keys_table) / sizeof(keys_table[0]); i++) {
		const struct key_binding *k = &keys_table[i];
		char key[16];
		int cy, cx;

		if (!k->bar || !(k->views & VIEW_BIT(t->view)))
			continue;
		getyx(stdscr, cy, cx);
		(void)cy;
		snprintf(key, sizeof(key), "F%d", k->key - KEY_F0);
		if (cx + (int)strlen(key) + (int)strlen(k->bar) >= t->cols)
			break;
		addstr(key);
		attron(A_REVERSE);
		addstr(k->bar);
		attroff(A_REVERSE);
	}
	attron(A_REVERSE);
	clrtoeol();
	attroff(A_REVERSE);
}

static const char *const view_names[VIEW_COUNT] = {
	"dash", "detail", "db", "config", "images", "hooks", "help", "first-run"
};

void keys_help_rows(struct tui *t, struct text_list *out)
{
	const enum tui_view v = t->back;

	text_list_add(out, TUI_ATTR_HEAD, "Keys (Esc: back). The engine audits every action.");
	text_list_add(out, TUI_ATTR_NORMAL, "%s", "");
	for (size_t i = 0; i < sizeof(keys_table) / sizeof(keys_table[0]); i++) {
		const struct key_binding *k = &keys_table[i];
		char where[96] = "";

		if (k->views == SUBVIEWS) {
			snprintf(where, sizeof(where), "views");
		} else if (k->views != VIEWS_ALL) {
			unsigned rest = k->views;

			if ((rest & LISTS) == LISTS) {
				snprintf(where, sizeof(where), "lists");
				rest &= ~(unsigned)LISTS;
			}
			for (int w = 0; w < VIEW_COUNT; w++)
				if (rest & VIEW_BIT(w)) {
					size_t n = strlen(where);

					snprintf(where + n, sizeof(where) - n, "%s%s", n ? "," : "",
						 view_names[w]);
				}
		}
		text_list_add(out, (k->views & VIEW_BIT(v)) ? TUI_ATTR_NORMAL : TUI_ATTR_MUTED,
			      "  %-8s %-57s %s", k->names, k->help, where);
	}
}
