/* boardlog: the per-board log files, one API that names the board first.
 *
 * Layout under the log directory (config [paths] log_dir):
 *
 *   <logdir>/<serial16>/{bootstrap,triage,provisioner}.log   the board's logs
 *   <logdir>/<serial8>  -> <serial16>                         short-serial alias (symlink)
 *   <logdir>/port-<usb path> -> <the latest board's dir>      port alias (symlink)
 *   <logdir>/early/<usb path>-<YYYYmmddTHHMMSS>[-N]/          a board whose serial is not
 *                                                             known yet (or never was)
 *
 * A board starts logging in its own early directory; boardlog_set_serial() moves
 * (or, when the board has logs from an earlier attempt, appends) those files into
 * the serial directory. Lines read `[YYYY-MM-DD HH:MM:SS.mmm] message` in local
 * time, one write(2) per line on an O_APPEND descriptor; embedded newlines start
 * new lines, control characters and invalid UTF-8 are escaped (\n \t \xNN \\).
 *
 * One struct boardlog per board (device job). Every function may be called from
 * any thread; a per-board mutex orders lines and the directory move. */
#ifndef RPI_SB_RECORDS_BOARDLOG_H
#define RPI_SB_RECORDS_BOARDLOG_H

#include <stdarg.h>
#include <stddef.h>

enum blog_phase {
	BLOG_BOOTSTRAP,
	BLOG_TRIAGE,
	BLOG_PROVISIONER,
	BLOG_PHASE_COUNT
};

struct boardlog; /* opaque */

/* Called once per written line, after the file write, outside the board's mutex.
 * @line is the escaped message without time stamp or newline. */
typedef void (*boardlog_sink_fn)(void *usrptr, enum blog_phase phase, const char *line);

/* "bootstrap", "triage", "provisioner" (also the file names without ".log"). */
const char *blog_phase_name(enum blog_phase phase);

/* Start the logs of a board seen on USB port @port (sysfs topology path such as
 * "1-1.2": letters, digits, '.', '-', '_'; at most 64 characters). Creates
 * <logdir>/early/<port>-<time>/ and points port-<port> at it.
 * 0, -EINVAL for a bad port name, -ENOMEM, or -errno from the file system. */
int boardlog_open(const char *logdir, const char *port, struct boardlog **out);

/* Close the files and free @dev (NULL is fine). The directories stay, but for
 * an early directory the board never wrote to (removed with its port alias). */
void boardlog_close(struct boardlog *dev);

/* Forward every line to @sink too (NULL to stop). */
void boardlog_set_sink(struct boardlog *dev, boardlog_sink_fn sink, void *usrptr);

/* The board's serial became known: 8 hex (ROM serial, boot mode) or 16 hex (DUID,
 * fastboot); case-insensitive, stored lowercase. Moves the logs so far into
 * <logdir>/<serial> (16 hex), or <logdir>/<serial8> while only the short form is
 * known (or wherever an existing <serial8> alias points), merging by appending
 * when the target already holds logs. Updates the aliases. Calling it again with
 * the same serial is a no-op. 0, -EINVAL for a bad serial, -errno otherwise (the
 * board keeps logging where it was). */
int boardlog_set_serial(struct boardlog *dev, const char *serial);

/* The directory the board logs into now (copy; caller frees), or NULL on ENOMEM. */
char *boardlog_dir(struct boardlog *dev);

/* Log one message for the board. @dev may be NULL: the line goes to stderr.
 * Never fails from the caller's view; a file error is reported once on stderr. */
void blog(struct boardlog *dev, enum blog_phase phase, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void blogv(struct boardlog *dev, enum blog_phase phase, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Log @len bytes of outside text (a child's output: may hold NULs, bad UTF-8),
 * each line prefixed by the trusted @head (e.g. "hook x.sh: "; NULL for none). */
void blog_bytes(struct boardlog *dev, enum blog_phase phase, const char *head, const char *buf,
		size_t len);

/* Escape one line of hostile text as blog() does (no newline handling: '\n' is
 * escaped too). Returns a malloc'd string, or NULL on ENOMEM. */
char *blog_escape(const char *s, size_t len);

#endif
