/* export: CSV and JSON views of the manufacturing records, and the
 * `export` and `devices` commands that print them. */
#ifndef RPI_SB_RECORDS_EXPORT_H
#define RPI_SB_RECORDS_EXPORT_H

#include <stddef.h>
#include <stdio.h>

#include "records/db.h"

/* "YYYY-MM-DD HH:MM:SS" plus the NUL. */
#define EXPORT_TIME_LEN 20

/* Parse a --since value: "YYYY-MM-DD" (midnight) or "YYYY-MM-DD HH:MM:SS",
 * a real calendar date, UTC. Writes the normalised form to @out.
 * 0, or -EINVAL. */
int export_parse_since(const char *in, char out[EXPORT_TIME_LEN]);

/* Write one CSV text cell (RFC 4180): a cell that starts with = + - @ TAB or
 * CR gets a leading ' so a spreadsheet shows it instead of running it; a
 * cell with a comma, quote, CR or LF is quoted, quotes doubled. 0 or -EIO. */
int export_csv_cell(FILE *f, const char *s);

/* The devices rows matching @flt as CSV with a header row, CRLF line ends.
 * *rows (may be NULL) gets the number of data rows. 0 or -errno. */
int export_csv(struct db *db, const struct db_device_filter *flt, FILE *out, size_t *rows);

/* The same rows as a JSON array of objects (every column; NULL as null). */
int export_json(struct db *db, const struct db_device_filter *flt, FILE *out, size_t *rows);

#endif
