/* tui: the state of the curses front end, shared by its modules.
 *
 * One `struct tui` is owned by the front-end thread, the only thread that
 * touches curses. The station itself lives in the engine; the TUI mirrors it
 * in the ctl client's model (station/model.h) and paints from it. Input and
 * engine events only change state and set `dirty`; the loop in attach.c paints
 * once per pass (coalesced, rate-limited). Key handlers (keys.c) return a
 * result mask and never draw; views (view_*.c) draw and never act. */
#ifndef RPI_SB_TUI_TUI_H
#define RPI_SB_TUI_TUI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/cli.h"
#include "station/ctl.h"

enum tui_view {
	VIEW_DASH = 0,
	VIEW_DETAIL,
	VIEW_RECORDS,
	VIEW_CONFIG,
	VIEW_IMAGES,
	VIEW_HOOKS,
	VIEW_HELP,
	VIEW_FIRSTRUN,
	VIEW_COUNT
};
#define VIEW_BIT(v) (1u << (v))
#define VIEWS_ALL ((1u << VIEW_COUNT) - 1)

/* Key handler results (htop style): the loop acts on them. */
enum {
	KEY_RESULT_IGNORED = 0,
	KEY_RESULT_HANDLED = 1 << 0,
	KEY_RESULT_REDRAW = 1 << 1,
	KEY_RESULT_QUIT = 1 << 2,
};

enum dialog_kind { DIALOG_NONE = 0, DIALOG_CONFIRM, DIALOG_INPUT, DIALOG_CHOICE, DIALOG_MESSAGE };

struct tui;
/* A dialog's answer: @choice is the key chosen (CONFIRM: 'y'; CHOICE: one of
 * its keys), @input the text typed (INPUT). */
typedef int (*dialog_fn)(struct tui *t, int choice, const char *input);

struct dialog {
	enum dialog_kind kind;
	char title[64];
	char text[1024];         /* lines separated by '\n' */
	char choices[8];         /* DIALOG_CHOICE: the keys offered */
	char input[96];
	size_t input_len;
	dialog_fn done;
};

/* A row of a read-only table view (records, configuration, images, hooks). */
struct text_row {
	char *text;
	int attr;                /* TUI_ATTR_* */
};

struct text_list {
	struct text_row *v;
	size_t n, cap;
};

enum {
	TUI_ATTR_NORMAL = 0,
	TUI_ATTR_OK,
	TUI_ATTR_BAD,
	TUI_ATTR_MUTED,
	TUI_ATTR_WARN,
	TUI_ATTR_HEAD,
	TUI_ATTR_SEL,
	TUI_ATTR_ARMED,
	TUI_ATTR_BUSY,
	TUI_ATTR_COUNT
};

struct image_hasher;

struct tui {
	struct cli *cli;
	struct ctl_client *ctl;
	char socket_path[256];
	bool read_only;
	bool spawned;            /* we started the engine this TUI talks to */
	char simulate[128];      /* --simulate DEVICES given to attach */

	/* terminal */
	int rows, cols;
	bool utf8, colour;
	bool dirty;
	bool quit;

	enum tui_view view, back;    /* back: where Esc returns to */
	char sel_port[64];       /* the selected tile, kept by port across changes */
	size_t page, per_page;   /* dashboard paging, per_page from the layout */
	size_t scroll;           /* first row shown in list views */
	size_t cursor;           /* selected row in list views */

	char message[256];       /* one-line feedback at the bottom */
	bool message_bad;
	uint64_t message_ns;

	struct dialog dialog;

	/* records browser */
	struct text_list records;
	char search[32];
	bool secured_only;

	struct text_list list;   /* the current list view's rows (config, images, hooks, detail) */

	struct image_hasher *hasher;
	bool firstrun_dismissed;
	int firstrun;            /* 0 unknown, 1 the first-run screen applies, 2 not */

	/* Settings of the engine's configuration the views read files with
	 * (tui_settings_load: at attach, reconnect and reload). */
	char db_path[1024], flags_dir[1024], hooks_dir[1024], cache_dir[1024], gold[1024];
	char mode[32];

	/* The detail view's database rows, refreshed when the board moves on. */
	struct text_list detail_db;
	uint64_t detail_db_ns;
	char detail_key[128];
};

/* attach.c */
uint64_t tui_now_ns(void);
void tui_message(struct tui *t, bool bad, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The tile the cursor is on, or NULL (no tiles). */
struct tile *tui_selected(struct tui *t);
/* Load the configuration the engine runs with (ctl_info's path, our --root).
 * Caller frees both; *c may be NULL on ENOMEM. */
int tui_config_load(struct tui *t, struct config **c, struct config_problems *probs);
/* Refresh the cached settings (db_path, flags_dir, ...) from the configuration. */
void tui_settings_load(struct tui *t);
/* Start a simulated engine on its own socket and attach to it. */
int tui_start_rehearsal(struct tui *t);

/* keys.c */
int keys_handle(struct tui *t, int ch);
void keys_draw_bar(struct tui *t, int y);
void keys_help_rows(struct tui *t, struct text_list *out);

/* dialog.c */
void dialog_open(struct tui *t, enum dialog_kind kind, const char *title, const char *choices,
		 dialog_fn done, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int dialog_key(struct tui *t, int ch);
void dialog_draw(struct tui *t);

/* draw.c */
void draw_init(struct tui *t);
int draw_attr(const struct tui *t, int which);
/* Print @s at (y, x), at most @w columns (UTF-8 aware), padding with spaces
 * to @w when @pad. */
void draw_text(int y, int x, int w, bool pad, const char *s);
void draw_fmt(int y, int x, int w, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void draw_hline(const struct tui *t, int y, int x, int w);
void draw_box(const struct tui *t, int y, int x, int h, int w);
void draw_bar(const struct tui *t, int y, int x, int w, double frac);
const char *draw_glyph(const struct tui *t, int which);
enum { GLYPH_DONE, GLYPH_CURRENT, GLYPH_TODO, GLYPH_FAILED, GLYPH_ARROW, GLYPH_COUNT };
void draw_elapsed(char *buf, size_t len, uint64_t ns);
void draw_list(struct tui *t, const struct text_list *l, int y0, int h, bool cursor);

void text_list_clear(struct text_list *l);
int text_list_add(struct text_list *l, int attr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* view_dash.c */
void dash_layout(struct tui *t, int *tiles_x, int *tiles_y, int *tile_w);
void dash_draw(struct tui *t);
void status_draw(struct tui *t, int y);

/* view_detail.c */
void detail_draw(struct tui *t);

/* view_records.c: the manufacturing DB, read only */
int records_load(struct tui *t);
void records_draw(struct tui *t);
/* The detail view's database part for @serial/@port into @out. */
void records_board_rows(struct tui *t, const char *serial, const char *port, struct text_list *out);

/* view_config.c: configuration, hooks and first run */
void config_rows(struct tui *t, struct text_list *out);
void hooks_rows(struct tui *t, struct text_list *out);
void firstrun_draw(struct tui *t);
bool firstrun_needed(struct tui *t);

/* view_images.c */
void images_rows(struct tui *t, struct text_list *out);
int images_hasher_fd(const struct tui *t);
void images_hasher_drain(struct tui *t);
void images_hasher_stop(struct tui *t);

#endif
