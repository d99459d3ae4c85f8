/* view_detail: one board in full: identity, phase and progress, flags, its
 * manufacturing record, attempts and state history from the database, and the
 * live tail of its log.
 *
 * Front-end thread only. The database part is re-read when the board's phase
 * or serial changes, or every few seconds, never on every paint. */
#include <curses.h>
#include <stdio.h>
#include <string.h>

#include "records/flags.h"
#include "tui.h"

#define DETAIL_DB_REFRESH_NS 3000000000ull

static void detail_db_refresh(struct tui *t, const struct tile *tl)
{
	char key[128];
	uint64_t now = tui_now_ns();

	snprintf(key, sizeof(key), "%s|%s|%d|%llu", tl->port, tl->serial, (int)tl->phase,
		 (unsigned long long)tl->finished_ns);
	if (strcmp(key, t->detail_key) == 0 && now - t->detail_db_ns < DETAIL_DB_REFRESH_NS)
		return;
	snprintf(t->detail_key, sizeof(t->detail_key), "%s", key);
	t->detail_db_ns = now;
	text_list_clear(&t->detail_db);
	records_board_rows(t, tl->serial, tl->port, &t->detail_db);
}

static void flags_line(struct tui *t, const struct tile *tl, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	if (!tl->serial[0] || !t->flags_dir[0]) {
		snprintf(buf, len, "flags: %s", tl->serial[0] ? "no flags_dir configured"
							   : "unknown until the serial is known");
		return;
	}
	n += (size_t)snprintf(buf, len, "flags:");
	for (int f = 0; f < FLAG_COUNT && n < len; f++) {
		enum flag_state st = FLAG_NONE;
		int rc = flags_lookup(t->flags_dir, tl->serial, (enum flag_kind)f, &st);

		n += (size_t)snprintf(buf + n, len - n, "  %s %s", flags_name((enum flag_kind)f),
				      rc < 0 ? "?" : flags_state_name(st));
	}
}

void detail_draw(struct tui *t)
{
	struct tile *tl = tui_selected(t);
	char buf[512], el[32];
	int y = 2, logh, dbh;
	unsigned shown = 0;

	if (!tl) {
		draw_text(2, 0, t->cols, false, "No board selected (Esc: back).");
		return;
	}
	attron(A_BOLD);
	draw_fmt(y++, 0, t->cols, "Port %s   SN %s   %s", tl->port, tl->serial[0] ? tl->serial : "-",
		 tl->what[0] ? tl->what : (tl->present ? "board" : "no board"));
	attroff(A_BOLD);
	draw_elapsed(el, sizeof(el), tl->started_ns ? (tl->finished_ns ? tl->finished_ns : tui_now_ns()) -
			     tl->started_ns : 0);
	if (tl->phase == PHASE_FAILED)
		snprintf(buf, sizeof(buf), "failed in %s (%d): %s", phase_name(tl->failed_in), tl->code,
			 tl->reason);
	else if (tl->total)
		snprintf(buf, sizeof(buf), "%s  %llu/%llu MB  %.1f MB/s", phase_name(tl->phase),
			 (unsigned long long)(tl->bytes / 1000000), (unsigned long long)(tl->total / 1000000),
			 tl->mbps);
	else
		snprintf(buf, sizeof(buf), "%s%s%s", phase_name(tl->phase), tl->reason[0] ? ": " : "",
			 tl->reason);
	attron(draw_attr(t, tl->phase == PHASE_FAILED ? TUI_ATTR_BAD :
			    tl->phase == PHASE_DONE ? TUI_ATTR_OK : TUI_ATTR_NORMAL));
	draw_fmt(y++, 0, t->cols, "State: %s   elapsed %s", buf, el);
	attroff(draw_attr(t, TUI_ATTR_BAD) | draw_attr(t, TUI_ATTR_OK));
	flags_line(t, tl, buf, sizeof(buf));
	draw_text(y++, 0, t->cols, false, buf);
	draw_hline(t, y++, 0, t->cols);

	/* Database part (scrolls with Up/Down), then the live log tail. */
	detail_db_refresh(t, tl);
	logh = (t->rows - y - 2) / 2;
	dbh = t->rows - y - 2 - logh - 1;
	draw_list(t, &t->detail_db, y, dbh, false);
	y += dbh;
	draw_hline(t, y, 0, t->cols);
	attron(A_BOLD);
	draw_text(y++, 2, t->cols - 4, false, " Log (newest last) ");
	attroff(A_BOLD);
	while (shown < (unsigned)logh && tile_log_line(tl, shown))
		shown++;
	for (unsigned i = 0; i < shown; i++)
		draw_text(y + (int)i, 0, t->cols, false, tile_log_line(tl, shown - 1 - i));
	if (!shown) {
		attron(draw_attr(t, TUI_ATTR_MUTED));
		draw_text(y, 0, t->cols, false, "no log lines yet");
		attroff(draw_attr(t, TUI_ATTR_MUTED));
	}
}
