/* view_dash: the dashboard (one tile per port, paged) and the status bar.
 *
 * Front-end thread only. Paints from the ctl client's model and info; holds
 * no state of its own beyond what `struct tui` keeps (selection, page). */
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tui.h"

#define TILE_MIN_W 38
#define TILE_H 5

void dash_layout(struct tui *t, int *tiles_x, int *tiles_y, int *tile_w)
{
	int area = t->rows - 4; /* two status lines, message line, key bar */
	int nx = t->cols / TILE_MIN_W, ny = area / TILE_H;

	if (nx < 1)
		nx = 1;
	if (ny < 1)
		ny = 1;
	*tiles_x = nx;
	*tiles_y = ny;
	*tile_w = t->cols / nx;
	t->per_page = (size_t)nx * (size_t)ny;
}

static bool phase_running(enum phase p)
{
	return p >= PHASE_BOOTSTRAP && p <= PHASE_VERIFY;
}

static const char *const tracker_names[] = { "Boot", "Tria", "Prov", "Veri", "Done" };

/* The tile's state in one word, and the attribute to show it with. */
static const char *tile_label(const struct tile *tl, int *attr)
{
	switch (tl->phase) {
	case PHASE_DONE: *attr = TUI_ATTR_OK; return "DONE";
	case PHASE_FAILED: *attr = TUI_ATTR_BAD; return "FAILED";
	case PHASE_EXCLUDED: *attr = TUI_ATTR_MUTED; return "EXCLUDED";
	case PHASE_HELD: *attr = TUI_ATTR_WARN; return "HELD";
	case PHASE_WAITING:
		*attr = TUI_ATTR_MUTED;
		return tl->present ? "WAITING" : "EMPTY";
	case PHASE_BOOTSTRAP: *attr = TUI_ATTR_BUSY; return "BOOTSTRAP";
	case PHASE_TRIAGE: *attr = TUI_ATTR_BUSY; return "TRIAGE";
	case PHASE_PROVISION: *attr = TUI_ATTR_BUSY; return "PROVISION";
	case PHASE_VERIFY: *attr = TUI_ATTR_BUSY; return "VERIFY";
	default: *attr = TUI_ATTR_NORMAL; return "?";
	}
}

static void tile_tracker(struct tui *t, const struct tile *tl, int y, int x, int w)
{
	/* Tracker slots: bootstrap..verify are phases 1..4, Done is the fifth. */
	int cur = 0;    /* 1-based slot in progress; 6: all done */
	int failed = 0; /* 1-based slot that failed */

	if (tl->phase == PHASE_DONE)
		cur = 6;
	else if (phase_running(tl->phase))
		cur = (int)tl->phase;
	else if (tl->phase == PHASE_FAILED)
		failed = phase_running(tl->failed_in) ? (int)tl->failed_in : 1;
	move(y, x);
	for (int s = 1; s <= 5; s++) {
		int g = GLYPH_TODO, a = TUI_ATTR_MUTED;
		int cx, cy;

		if (failed) {
			if (s < failed) {
				g = GLYPH_DONE;
				a = TUI_ATTR_NORMAL;
			} else if (s == failed) {
				g = GLYPH_FAILED;
				a = TUI_ATTR_BAD;
			}
		} else if (cur && s < cur) {
			g = GLYPH_DONE;
			a = cur == 6 ? TUI_ATTR_OK : TUI_ATTR_NORMAL;
		} else if (s == cur) {
			g = GLYPH_CURRENT;
			a = TUI_ATTR_BUSY;
		}
		getyx(stdscr, cy, cx);
		(void)cy;
		if (cx + 6 > x + w)
			break;
		attron(draw_attr(t, a) | (s == cur ? A_BOLD : 0));
		addstr(draw_glyph(t, g));
		addstr(tracker_names[s - 1]);
		attroff(draw_attr(t, a) | A_BOLD);
		if (s < 5)
			addch(' ');
	}
}

static void tile_draw(struct tui *t, const struct tile *tl, int y, int x, int w, bool sel,
		      uint64_t now)
{
	char buf[256], el[32];
	int la;
	const char *label = tile_label(tl, &la);
	int iw = w - 1; /* one column of gap on the right */
	uint64_t end;

	/* Header: ── port ─────── LABEL ── */
	if (sel)
		attron(A_REVERSE);
	draw_hline(t, y, x, iw);
	attron(A_BOLD);
	draw_fmt(y, x + 1, iw - 2, " %s ", tl->port);
	attroff(A_BOLD);
	snprintf(buf, sizeof(buf), " %s ", label);
	attron(draw_attr(t, la));
	draw_text(y, x + iw - 1 - (int)strlen(buf), (int)strlen(buf), false, buf);
	attroff(draw_attr(t, la));
	if (sel)
		attroff(A_REVERSE);

	/* What is on the port. */
	if (!tl->present && !tl->what[0]) {
		attron(draw_attr(t, TUI_ATTR_MUTED));
		draw_text(y + 1, x + 1, iw - 1, false, "no board");
		attroff(draw_attr(t, TUI_ATTR_MUTED));
	} else {
		draw_text(y + 1, x + 1, iw - 1, false, tl->what[0] ? tl->what : "board");
	}

	/* Serial and elapsed time. */
	draw_fmt(y + 2, x + 1, iw - 10, "SN %s", tl->serial[0] ? tl->serial : "-");
	if (tl->started_ns && tl->phase != PHASE_WAITING && tl->phase != PHASE_EXCLUDED) {
		end = tl->finished_ns ? tl->finished_ns : now;
		draw_elapsed(el, sizeof(el), end > tl->started_ns ? end - tl->started_ns : 0);
		draw_text(y + 2, x + iw - 1 - (int)strlen(el), (int)strlen(el), false, el);
	}

	tile_tracker(t, tl, y + 3, x + 1, iw - 1);

	/* The last line: progress, result or reason. */
	if (phase_running(tl->phase) && tl->total) {
		char rate[64] = "";
		int bw;

		if (tl->mbps > 0.05) {
			double eta = tl->total > tl->bytes ?
				(double)(tl->total - tl->bytes) / (tl->mbps * 1e6) : 0;
			draw_elapsed(el, sizeof(el), (uint64_t)(eta * 1e9));
			snprintf(rate, sizeof(rate), " %.1fMB/s %s", tl->mbps, el);
		}
		bw = iw - 1 - (int)strlen(rate);
		if (bw > 24)
			bw = 24;
		draw_bar(t, y + 4, x + 1, bw, (double)tl->bytes / (double)tl->total);
		draw_text(y + 4, x + 1 + bw, iw - 1 - bw, false, rate);
	} else if (phase_running(tl->phase)) {
		const char *last = tile_log_line(tl, 0);

		attron(draw_attr(t, TUI_ATTR_MUTED));
		draw_text(y + 4, x + 1, iw - 1, false, last ? last : "working");
		attroff(draw_attr(t, TUI_ATTR_MUTED));
	} else if (tl->phase == PHASE_DONE) {
		attron(draw_attr(t, TUI_ATTR_OK));
		draw_text(y + 4, x + 1, iw - 1, false, "ready: unplug the board");
		attroff(draw_attr(t, TUI_ATTR_OK));
	} else if (tl->phase != PHASE_WAITING || tl->reason[0]) {
		snprintf(buf, sizeof(buf), "%s%s%s",
			 tl->phase == PHASE_FAILED ? phase_name(tl->failed_in) : "",
			 tl->phase == PHASE_FAILED ? ": " : "",
			 tl->reason[0] ? tl->reason : phase_name(tl->phase));
		attron(draw_attr(t, la));
		draw_text(y + 4, x + 1, iw - 1, false, buf);
		attroff(draw_attr(t, la));
	} else {
		attron(draw_attr(t, TUI_ATTR_MUTED));
		draw_text(y + 4, x + 1, iw - 1, false, tl->present ? "waiting" : "plug a board in");
		attroff(draw_attr(t, TUI_ATTR_MUTED));
	}
}

void dash_draw(struct tui *t)
{
	struct station_model *m = t->ctl ? ctl_model(t->ctl) : NULL;
	int nx, ny, tw;
	size_t sel = 0, pages, first;
	uint64_t now = tui_now_ns();

	dash_layout(t, &nx, &ny, &tw);
	if (!m || m->n == 0) {
		attron(draw_attr(t, TUI_ATTR_MUTED));
		draw_text(3, 2, t->cols - 4, false,
			  t->ctl ? "No USB ports yet: the engine has not reported any."
				 : "Not connected to the engine.");
		attroff(draw_attr(t, TUI_ATTR_MUTED));
		return;
	}
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->tiles[i].port, t->sel_port) == 0)
			sel = i;
	snprintf(t->sel_port, sizeof(t->sel_port), "%s", m->tiles[sel].port);
	pages = (m->n + t->per_page - 1) / t->per_page;
	t->page = sel / t->per_page;
	first = t->page * t->per_page;
	for (size_t k = 0; k < t->per_page && first + k < m->n; k++) {
		int cx = (int)(k % (size_t)nx), cy = (int)(k / (size_t)nx);

		tile_draw(t, &m->tiles[first + k], 2 + cy * TILE_H, cx * tw, tw, first + k == sel, now);
	}
	if (pages > 1) {
		char pg[64];

		snprintf(pg, sizeof(pg), " page %zu/%zu  [ ] PgUp PgDn ", t->page + 1, pages);
		attron(A_BOLD);
		draw_text(t->rows - 2, t->cols - (int)strlen(pg), (int)strlen(pg), false, pg);
		attroff(A_BOLD);
	}
}

static void seg(struct tui *t, int attr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Append a segment of the status bar at the cursor, in @attr. */
static void seg(struct tui *t, int attr, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int y, x;

	getyx(stdscr, y, x);
	if (x >= t->cols - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	attron(draw_attr(t, attr));
	draw_text(y, x, t->cols - x, false, buf);
	attroff(draw_attr(t, attr));
}

void status_draw(struct tui *t, int y)
{
	const struct ctl_info *in = t->ctl ? ctl_info(t->ctl) : NULL;
	struct station_model *m = t->ctl ? ctl_model(t->ctl) : NULL;
	char buf[160];
	const char *img, *fp;
	size_t fl;

	attron(A_REVERSE);
	draw_text(y, 0, t->cols, true, "");
	attroff(A_REVERSE);
	if (!in) {
		attron(draw_attr(t, TUI_ATTR_BAD));
		draw_text(y, 0, t->cols, true, " NOT CONNECTED to the engine: retrying");
		attroff(draw_attr(t, TUI_ATTR_BAD));
		return;
	}
	move(y, 0);
	if (in->simulated)
		seg(t, TUI_ATTR_WARN, "%s ", "SIMULATED");
	seg(t, TUI_ATTR_HEAD, "%s", in->mode[0] ? in->mode : "no-mode");
	img = strrchr(in->image, '/');
	img = img ? img + 1 : in->image;
	seg(t, TUI_ATTR_NORMAL, " | image %s", img[0] ? img : "(none)");
	fp = in->key_fingerprint;
	fl = strlen(fp);
	snprintf(buf, sizeof(buf), "%s%s", fl > 8 ? (t->utf8 ? "\u2026" : "..") : "",
		 fl > 8 ? fp + fl - 8 : (fl ? fp : "(none)"));
	seg(t, TUI_ATTR_NORMAL, " | key %s | ", buf);
	seg(t, in->otp_armed ? TUI_ATTR_ARMED : TUI_ATTR_NORMAL, "%s",
	    in->otp_armed ? " OTP ARMED " : "OTP disarmed");
	if (in->read_only)
		seg(t, TUI_ATTR_WARN, " %s", "READ-ONLY");

	move(y + 1, 0);
	clrtoeol();
	if (m) {
		unsigned busy = 0;
		double bph = model_boards_per_hour(m, tui_now_ns());

		for (size_t i = 0; i < m->n; i++)
			busy += phase_running(m->tiles[i].phase);
		seg(t, TUI_ATTR_OK, "done %u", m->counts.done);
		seg(t, m->counts.failed ? TUI_ATTR_BAD : TUI_ATTR_NORMAL, "  failed %u", m->counts.failed);
		seg(t, TUI_ATTR_BUSY, "  in progress %u", busy);
		seg(t, TUI_ATTR_NORMAL, "  %.1f boards/h", bph);
	}
	seg(t, TUI_ATTR_NORMAL, "  station %s", in->station_id[0] ? in->station_id : "-");
	if (in->events_dropped)
		seg(t, TUI_ATTR_WARN, "  %llu events dropped", in->events_dropped);
	for (unsigned i = 0; i < in->n_warnings && i < 8; i++)
		seg(t, TUI_ATTR_WARN, "%s%s", i ? "; " : "  ! ", in->warnings[i]);
}
