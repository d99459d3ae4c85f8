/* draw: the TUI's painting primitives: attributes with a monochrome fallback,
 * glyphs with an ASCII fallback, width-aware text, boxes, bars, lists.
 *
 * Front-end thread only (curses). Colour is used when the terminal has it and
 * NO_COLOR is unset; UTF-8 glyphs when the locale's codeset is UTF-8. */
#include <curses.h>
#include <langinfo.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "tui.h"

static int attrs[TUI_ATTR_COUNT];

void draw_init(struct tui *t)
{
	const char *cs = nl_langinfo(CODESET);
	const char *nc = getenv("NO_COLOR");

	t->utf8 = cs && strcmp(cs, "UTF-8") == 0;
	t->colour = has_colors() && !(nc && *nc);
	if (t->colour) {
		start_color();
		use_default_colors();
		init_pair(1, COLOR_GREEN, -1);
		init_pair(2, COLOR_RED, -1);
		init_pair(3, COLOR_YELLOW, -1);
		init_pair(4, COLOR_CYAN, -1);
		init_pair(5, COLOR_WHITE, COLOR_RED);
		init_pair(6, COLOR_BLUE, -1);
		attrs[TUI_ATTR_OK] = COLOR_PAIR(1) | A_BOLD;
		attrs[TUI_ATTR_BAD] = COLOR_PAIR(2) | A_BOLD;
		attrs[TUI_ATTR_WARN] = COLOR_PAIR(3) | A_BOLD;
		attrs[TUI_ATTR_BUSY] = COLOR_PAIR(4);
		attrs[TUI_ATTR_ARMED] = COLOR_PAIR(5) | A_BOLD | A_REVERSE;
		attrs[TUI_ATTR_MUTED] = COLOR_PAIR(6) | A_DIM;
	} else {
		/* Monochrome: the meaning must survive without colour. */
		attrs[TUI_ATTR_OK] = A_BOLD;
		attrs[TUI_ATTR_BAD] = A_BOLD | A_UNDERLINE;
		attrs[TUI_ATTR_WARN] = A_BOLD;
		attrs[TUI_ATTR_BUSY] = A_NORMAL;
		attrs[TUI_ATTR_ARMED] = A_REVERSE | A_BOLD | A_BLINK;
		attrs[TUI_ATTR_MUTED] = A_DIM;
	}
	attrs[TUI_ATTR_NORMAL] = A_NORMAL;
	attrs[TUI_ATTR_HEAD] = A_BOLD;
	attrs[TUI_ATTR_SEL] = A_REVERSE;
}

int draw_attr(const struct tui *t, int which)
{
	(void)t;
	if (which < 0 || which >= TUI_ATTR_COUNT)
		return A_NORMAL;
	return attrs[which];
}

static const char *const glyphs_utf8[GLYPH_COUNT] = { "\u25cf", "\u25b6", "\u00b7", "\u2716", "\u203a" };
static const char *const glyphs_ascii[GLYPH_COUNT] = { "*", ">", ".", "X", ">" };

const char *draw_glyph(const struct tui *t, int which)
{
	if (which < 0 || which >= GLYPH_COUNT)
		return "?";
	return t->utf8 ? glyphs_utf8[which] : glyphs_ascii[which];
}

void draw_text(int y, int x, int w, bool pad, const char *s)
{
	mbstate_t st;
	int used = 0;
	const char *p = s ? s : "";

	if (w <= 0)
		return;
	memset(&st, 0, sizeof(st));
	move(y, x);
	while (*p && used < w) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, p, MB_CUR_MAX, &st);
		int cw;

		if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
			/* Not valid here (or an ASCII locale): show a placeholder. */
			memset(&st, 0, sizeof(st));
			addch((unsigned char)*p < 0x80 && (unsigned char)*p >= 0x20 ? (chtype)*p : '?');
			p++;
			used++;
			continue;
		}
		cw = wc < 0x20 ? -1 : wcwidth(wc);
		if (cw < 0) {
			addch('?');
			cw = 1;
		} else if (used + cw > w) {
			break;
		} else {
			addnstr(p, (int)n);
		}
		used += cw;
		p += n;
	}
	if (pad)
		for (; used < w; used++)
			addch(' ');
}

void draw_fmt(int y, int x, int w, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	draw_text(y, x, w, false, buf);
}

void draw_hline(const struct tui *t, int y, int x, int w)
{
	move(y, x);
	for (int i = 0; i < w; i++)
		addstr(t->utf8 ? "\u2500" : "-");
}

void draw_box(const struct tui *t, int y, int x, int h, int w)
{
	const char *tl = t->utf8 ? "\u250c" : "+", *tr = t->utf8 ? "\u2510" : "+";
	const char *bl = t->utf8 ? "\u2514" : "+", *br = t->utf8 ? "\u2518" : "+";
	const char *v = t->utf8 ? "\u2502" : "|";

	if (h < 2 || w < 2)
		return;
	mvaddstr(y, x, tl);
	draw_hline(t, y, x + 1, w - 2);
	addstr(tr);
	for (int i = 1; i < h - 1; i++) {
		mvaddstr(y + i, x, v);
		mvaddstr(y + i, x + w - 1, v);
	}
	mvaddstr(y + h - 1, x, bl);
	draw_hline(t, y + h - 1, x + 1, w - 2);
	addstr(br);
}

void draw_bar(const struct tui *t, int y, int x, int w, double frac)
{
	int fill;

	if (w < 3)
		return;
	if (frac < 0)
		frac = 0;
	if (frac > 1)
		frac = 1;
	fill = (int)(frac * (w - 2) + 0.5);
	mvaddch(y, x, '[');
	attron(draw_attr(t, TUI_ATTR_BUSY));
	for (int i = 0; i < w - 2; i++)
		addstr(i < fill ? (t->utf8 ? "\u2588" : "#") : (t->utf8 ? "\u2591" : "-"));
	attroff(draw_attr(t, TUI_ATTR_BUSY));
	addch(']');
}

void draw_elapsed(char *buf, size_t len, uint64_t ns)
{
	uint64_t s = ns / 1000000000ull;

	if (s >= 3600)
		snprintf(buf, len, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%llu:%02llu", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
}

void draw_list(struct tui *t, const struct text_list *l, int y0, int h, bool cursor)
{
	if (h <= 0)
		return;
	if (cursor && l->n) {
		if (t->cursor >= l->n)
			t->cursor = l->n - 1;
		if (t->cursor < t->scroll)
			t->scroll = t->cursor;
		if (t->cursor >= t->scroll + (size_t)h)
			t->scroll = t->cursor - (size_t)h + 1;
	}
	if (t->scroll + (size_t)h > l->n)
		t->scroll = l->n > (size_t)h ? l->n - (size_t)h : 0;
	for (int i = 0; i < h && t->scroll + (size_t)i < l->n; i++) {
		size_t k = t->scroll + (size_t)i;
		int a = draw_attr(t, l->v[k].attr);

		if (cursor && k == t->cursor)
			a |= A_REVERSE;
		attron(a);
		draw_text(y0 + i, 0, t->cols, cursor && k == t->cursor, l->v[k].text);
		attroff(a);
	}
	if (l->n > (size_t)h) {
		char pos[32];

		snprintf(pos, sizeof(pos), " %zu-%zu/%zu ", t->scroll + 1,
			 t->scroll + (size_t)h < l->n ? t->scroll + (size_t)h : l->n, l->n);
		attron(A_BOLD);
		draw_text(y0 + h - 1, t->cols - (int)strlen(pos), (int)strlen(pos), false, pos);
		attroff(A_BOLD);
	}
}

void text_list_clear(struct text_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].text);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

int text_list_add(struct text_list *l, int attr, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int rc;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct text_row *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	va_start(ap, fmt);
	rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	l->v[l->n].text = s;
	l->v[l->n].attr = attr;
	l->n++;
	return 0;
}
