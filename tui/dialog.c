/* dialog: the TUI's one modal box (confirm, choice, text input, message).
 *
 * Front-end thread only. While a dialog is open every key goes to it; its
 * answer is handed to the opener's callback, which does the work (usually a
 * ctl_command) and may open the next dialog, e.g. the engine's reply. */
#include <curses.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tui.h"

void dialog_open(struct tui *t, enum dialog_kind kind, const char *title, const char *choices,
		 dialog_fn done, const char *fmt, ...)
{
	va_list ap;
	struct dialog *d = &t->dialog;

	memset(d, 0, sizeof(*d));
	d->kind = kind;
	d->done = done;
	snprintf(d->title, sizeof(d->title), "%s", title);
	snprintf(d->choices, sizeof(d->choices), "%s", choices ? choices : "");
	va_start(ap, fmt);
	vsnprintf(d->text, sizeof(d->text), fmt, ap);
	va_end(ap);
	t->dirty = true;
}

static int finish(struct tui *t, int choice)
{
	struct dialog d = t->dialog;

	t->dialog.kind = DIALOG_NONE;
	if (d.done && choice)
		return d.done(t, choice, d.input) | KEY_RESULT_REDRAW;
	return KEY_RESULT_REDRAW;
}

int dialog_key(struct tui *t, int ch)
{
	struct dialog *d = &t->dialog;

	if (ch == 27)  /* Esc: cancel */
		return finish(t, 0);
	switch (d->kind) {
	case DIALOG_MESSAGE:
		if (ch == '\r' || ch == '\n' || ch == KEY_ENTER || ch == ' ' || ch == 'q')
			return finish(t, 0);
		return KEY_RESULT_HANDLED;
	case DIALOG_CONFIRM:
		if (ch == 'y' || ch == 'Y')
			return finish(t, 'y');
		if (ch == 'n' || ch == 'N' || ch == 'q')
			return finish(t, 0);
		return KEY_RESULT_HANDLED;
	case DIALOG_CHOICE:
		if (ch > 0 && ch < 256 && strchr(d->choices, ch))
			return finish(t, ch);
		return KEY_RESULT_HANDLED;
	case DIALOG_INPUT:
		if (ch == '\r' || ch == '\n' || ch == KEY_ENTER)
			return finish(t, '\n');
		if ((ch == KEY_BACKSPACE || ch == 127 || ch == 8) && d->input_len) {
			d->input[--d->input_len] = '\0';
			return KEY_RESULT_REDRAW;
		}
		if (ch >= 0x20 && ch < 0x7f && d->input_len + 1 < sizeof(d->input)) {
			d->input[d->input_len++] = (char)ch;
			d->input[d->input_len] = '\0';
			return KEY_RESULT_REDRAW;
		}
		return KEY_RESULT_HANDLED;
	default:
		return KEY_RESULT_IGNORED;
	}
}

void dialog_draw(struct tui *t)
{
	struct dialog *d = &t->dialog;
	char lines[16][128];
	int n = 0, w = 30, h, y, x;
	const char *p = d->text;
	const char *hint;

	if (!d->kind)
		return;
	/* Split into lines, wrapping at the box width. */
	while (*p && n < 14) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		size_t max = (size_t)(t->cols - 8 < 72 ? t->cols - 8 : 72);

		if (len > max) {
			size_t cut = max;

			while (cut > max / 2 && p[cut] != ' ')
				cut--;
			len = cut;
			nl = p + cut;
		}
		snprintf(lines[n], sizeof(lines[n]), "%.*s", (int)len, p);
		if ((int)len + 4 > w)
			w = (int)len + 4;
		n++;
		p += len;
		if (*p == '\n' || (nl && *p == ' '))
			p++;
	}
	switch (d->kind) {
	case DIALOG_CONFIRM: hint = "y: yes   n/Esc: no"; break;
	case DIALOG_INPUT: hint = "Enter: confirm   Esc: cancel"; break;
	case DIALOG_CHOICE: hint = "Esc: cancel"; break;
	default: hint = "Enter: close"; break;
	}
	h = n + 4 + (d->kind == DIALOG_INPUT ? 2 : 0);
	if (w < (int)strlen(d->title) + 6)
		w = (int)strlen(d->title) + 6;
	y = (t->rows - h) / 2;
	x = (t->cols - w) / 2;
	for (int i = 0; i < h; i++)
		draw_text(y + i, x, w, true, "");
	attron(A_BOLD);
	draw_box(t, y, x, h, w);
	draw_fmt(y, x + 2, w - 4, " %s ", d->title);
	attroff(A_BOLD);
	for (int i = 0; i < n; i++)
		draw_text(y + 1 + i, x + 2, w - 4, false, lines[i]);
	if (d->kind == DIALOG_INPUT) {
		attron(A_UNDERLINE);
		draw_fmt(y + 2 + n, x + 2, w - 4, "> %s_", d->input);
		attroff(A_UNDERLINE);
	}
	attron(A_DIM);
	draw_text(y + h - 2, x + 2, w - 4, false, hint);
	attroff(A_DIM);
}
