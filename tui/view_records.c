/* view_records: the manufacturing database, read only (browser and the
 * detail view's history of one board).
 *
 * The database path comes from the configuration the engine runs with
 * ([paths] database). It is opened with SQLITE_OPEN_READONLY for each query
 * and closed again, so the TUI never holds a lock the engine could wait on
 * (WAL lets readers and the writer share the file). Schema: src/records/db.h,
 * doc/records.md. Front-end thread only. */
#include <curses.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "tui.h"

#define RECORDS_MAX 5000

static int db_open_ro(struct tui *t, sqlite3 **db, char *err, size_t len)
{
	const char *path = t->db_path;

	if (!path[0]) {
		snprintf(err, len, "no [paths] database configured");
		return -1;
	}
	if (sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		snprintf(err, len, "cannot open %s: %s", path, *db ? sqlite3_errmsg(*db) : "no memory");
		sqlite3_close(*db);
		*db = NULL;
		return -1;
	}
	sqlite3_busy_timeout(*db, 500);
	return 0;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "-";
}

int records_load(struct tui *t)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char err[1400], like[48];
	int rc;
	size_t n = 0;

	text_list_clear(&t->records);
	if (db_open_ro(t, &db, err, sizeof(err)) < 0) {
		text_list_add(&t->records, TUI_ATTR_BAD, "%s", err);
		return -1;
	}
	rc = sqlite3_prepare_v2(db,
		"SELECT serial, boardname, secure, pubkey_programmed, provision_ts, usb_port,"
		" os_image_filename, eth_mac FROM devices"
		" WHERE (?1 = 0 OR secure = 1) AND (?2 = '' OR serial LIKE ?3)"
		" ORDER BY provision_ts DESC, id DESC LIMIT ?4", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		text_list_add(&t->records, TUI_ATTR_BAD, "cannot read the records: %s", sqlite3_errmsg(db));
		sqlite3_close(db);
		return -1;
	}
	snprintf(like, sizeof(like), "%%%s%%", t->search);
	sqlite3_bind_int(st, 1, t->secured_only);
	sqlite3_bind_text(st, 2, t->search, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, like, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, RECORDS_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int secure = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 2);

		text_list_add(&t->records, secure == 1 ? TUI_ATTR_NORMAL : TUI_ATTR_MUTED,
			      "%-16.16s %-20.20s %-7s %-3s %-19.19s %-10.10s %s", col(st, 0), col(st, 1),
			      secure == 1 ? "secured" : secure == 0 ? "open" : "?",
			      sqlite3_column_int(st, 3) == 1 ? "yes" : "no", col(st, 4), col(st, 5),
			      col(st, 6));
		n++;
	}
	if (rc != SQLITE_DONE)
		text_list_add(&t->records, TUI_ATTR_BAD, "reading stopped: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return (int)n;
}

void records_draw(struct tui *t)
{
	attron(A_BOLD);
	draw_fmt(2, 0, t->cols, "Manufacturing records: %zu%s%s%s%s   (/ search, s secured only, Esc back)",
		 t->records.n, t->secured_only ? ", secured only" : "",
		 t->search[0] ? ", serial contains \"" : "", t->search, t->search[0] ? "\"" : "");
	attroff(A_BOLD);
	attron(A_UNDERLINE);
	draw_text(3, 0, t->cols, true,
		  "serial           board                secure  otp provisioned (UTC)   port       image");
	attroff(A_UNDERLINE);
	if (!t->records.n) {
		attron(draw_attr(t, TUI_ATTR_MUTED));
		draw_text(4, 0, t->cols, false, "no boards recorded yet");
		attroff(draw_attr(t, TUI_ATTR_MUTED));
		return;
	}
	draw_list(t, &t->records, 4, t->rows - 6, true);
}

void records_board_rows(struct tui *t, const char *serial, const char *port, struct text_list *out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char err[1400];

	if (db_open_ro(t, &db, err, sizeof(err)) < 0) {
		text_list_add(out, TUI_ATTR_MUTED, "database: %s", err);
		return;
	}
	if (serial[0] && sqlite3_prepare_v2(db,
		"SELECT boardname, board_revision, processor, memory, manufacturer, eth_mac, wifi_mac,"
		" bt_mac, mmc_size, secure, pubkey_programmed, jtag_locked, signed_boot_enabled,"
		" os_image_filename, customer_key_fingerprint, provision_ts FROM devices"
		" WHERE serial = ?1 ORDER BY id DESC LIMIT 1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			text_list_add(out, TUI_ATTR_HEAD, "Manufacturing record");
			text_list_add(out, TUI_ATTR_NORMAL, "  %s rev %s, %s, %s, %s", col(st, 0),
				      col(st, 1), col(st, 2), col(st, 3), col(st, 4));
			text_list_add(out, TUI_ATTR_NORMAL, "  eth %s  wifi %s  bt %s  storage %s bytes",
				      col(st, 5), col(st, 6), col(st, 7), col(st, 8));
			text_list_add(out, TUI_ATTR_NORMAL,
				      "  secure %s  otp key %s  jtag locked %s  signed boot %s",
				      col(st, 9), col(st, 10), col(st, 11), col(st, 12));
			text_list_add(out, TUI_ATTR_NORMAL, "  image %s  key %s  at %s", col(st, 13),
				      col(st, 14), col(st, 15));
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	text_list_add(out, TUI_ATTR_HEAD, "Attempts (newest first)");
	if (sqlite3_prepare_v2(db,
		"SELECT id, started_at, ended_at, result, phase_reached, error_message, usb_port"
		" FROM attempts WHERE (?1 <> '' AND serial = ?1) OR (?1 = '' AND usb_port = ?2)"
		" ORDER BY id DESC LIMIT 10", -1, &st, NULL) == SQLITE_OK) {
		int rows = 0;

		sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, port, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *res = col(st, 3);

			text_list_add(out, strcmp(res, "ok") == 0 ? TUI_ATTR_OK :
				      strcmp(res, "failed") == 0 ? TUI_ATTR_BAD : TUI_ATTR_NORMAL,
				      "  #%s %s  %-11s reached %-9s port %s %s", col(st, 0), col(st, 1),
				      res, col(st, 4), col(st, 6),
				      sqlite3_column_type(st, 5) == SQLITE_NULL ? "" : col(st, 5));
			rows++;
		}
		if (!rows)
			text_list_add(out, TUI_ATTR_MUTED, "  none recorded");
		sqlite3_finalize(st);
		st = NULL;
	}
	text_list_add(out, TUI_ATTR_HEAD, "State history (newest first)");
	if (sqlite3_prepare_v2(db,
		"SELECT ts, state, detail FROM events"
		" WHERE (?1 <> '' AND serial = ?1) OR (?1 = '' AND usb_port = ?2)"
		" ORDER BY id DESC LIMIT 12", -1, &st, NULL) == SQLITE_OK) {
		int rows = 0;

		sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, port, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			text_list_add(out, TUI_ATTR_NORMAL, "  %s %s %s", col(st, 0), col(st, 1),
				      sqlite3_column_type(st, 2) == SQLITE_NULL ? "" : col(st, 2));
			rows++;
		}
		if (!rows)
			text_list_add(out, TUI_ATTR_MUTED, "  none recorded");
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}
