/* fastboot: the station's own fastboot client over a struct transport
 * (spec fastboot.md §1-3, §7.2). USB bulk or TCP frames: one command per
 * OUT transfer, each response read with a 256-byte IN request.
 *
 * Every call blocks with a per-command timeout and returns 0 or a negative
 * errno; a device FAIL is -EREMOTEIO and its message is kept in
 * fb_fail_message(). fb_last_error() describes any failure for an operator
 * (board, command, what happened). One struct fb per board, used only by the
 * worker thread that owns the board. */
#ifndef RPI_SB_PROTO_FASTBOOT_H
#define RPI_SB_PROTO_FASTBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "transport/transport.h"

#define FB_VID 0x18d1
#define FB_PID 0x4e40
#define FB_CMD_MAX 256          /* rpi-fastbootd reads at most 256 bytes per command */
#define FB_RESP_MAX 256         /* 4-byte status + up to 252 bytes of message */
#define FB_MSG_MAX 252
#define FB_CHUNK_DEFAULT (1u << 20)
#define FB_INFO_LINES_MAX 65536 /* INFO lines kept per command (getvar:all, dmesg) */

enum fb_status { FB_OKAY, FB_FAIL, FB_INFO, FB_TEXT, FB_DATA };

struct fb_opts {
	unsigned cmd_timeout_ms;      /* writing a command (5 s) */
	unsigned resp_timeout_ms;     /* a simple response, e.g. getvar; reset by each INFO (10 s) */
	unsigned data_timeout_ms;     /* each download chunk (10 s) */
	unsigned download_okay_timeout_ms; /* final OKAY after the data (30 s) */
	unsigned flash_timeout_ms;    /* flash of one piece (120 s) */
	unsigned erase_timeout_ms;    /* erase (30 s) */
	unsigned oem_timeout_ms;      /* oem commands unless the caller says (30 s) */
	size_t chunk_size;            /* bytes per download transfer, a multiple of packet_size (1 MiB) */
	size_t packet_size;           /* bulk wMaxPacketSize (512 on high speed; 1 on TCP) */
};

void fb_opts_default(struct fb_opts *o);

typedef void (*fb_info_fn)(void *usrptr, const char *line);
typedef void (*fb_progress_fn)(void *usrptr, uint64_t done, uint64_t total);

/* INFO lines a command produced, in order. */
struct fb_lines {
	char **v;
	size_t n, cap;
};
void fb_lines_free(struct fb_lines *l);

struct fb {
	struct transport *t;
	struct fb_opts o;
	fb_info_fn info;
	fb_progress_fn progress;
	void *usrptr;
	uint64_t max_download;        /* from getvar:max-download-size, 0 = not asked yet */
	char fail_msg[FB_MSG_MAX + 1];/* the device's last FAIL message */
	char err[512];                /* description of the last failure */
	/* download in progress (fb_download_begin .. fb_download_finish) */
	uint8_t *dl_buf;
	size_t dl_fill;
	uint64_t dl_total, dl_sent;
	bool dl_active;
	/* Where the time goes (monotonic ns, since fb_init): inside transport
	 * sends (commands and data: the link) and waiting for the device's
	 * answers (the board working). The rest of a caller's wall time is
	 * its own. */
	uint64_t out_ns, wait_ns;
};

/* o may be NULL (defaults; packet_size from the transport kind). */
int fb_init(struct fb *fb, struct transport *t, const struct fb_opts *o);
void fb_fini(struct fb *fb);
void fb_set_callbacks(struct fb *fb, fb_info_fn info, fb_progress_fn progress, void *usrptr);

const char *fb_fail_message(const struct fb *fb);
const char *fb_last_error(const struct fb *fb);

/* Send any command; collect INFO lines (if lines), put the OKAY message in
 * resp (trailing NUL/CR/LF stripped). A DATA answer is returned as its size in
 * *data_size (if non-NULL; otherwise it is a protocol error). */
int fb_command_raw(struct fb *fb, const char *cmd, unsigned timeout_ms, char *resp, size_t respsz,
		   struct fb_lines *lines, uint64_t *data_size);

int fb_getvar(struct fb *fb, const char *name, char *val, size_t valsz);
/* getvar:max-download-size parsed as 0x-hex (or decimal); cached in fb. */
int fb_get_max_download(struct fb *fb, uint64_t *out);
/* Poll a getvar until it answers OKAY or timeout_ms passes (for nodes that
 * appear asynchronously after partapp/cryptopen): backoff 20 ms .. 500 ms. */
int fb_wait_getvar(struct fb *fb, const char *name, char *val, size_t valsz, unsigned timeout_ms);

/* Download: from memory, from an fd region (streamed in chunk_size pieces,
 * never the whole file in memory), or incrementally. */
int fb_download(struct fb *fb, const void *buf, size_t len);
int fb_download_fd(struct fb *fb, int fd, off_t offset, uint64_t len);
int fb_download_begin(struct fb *fb, uint64_t total);
int fb_download_write(struct fb *fb, const void *data, size_t len);
int fb_download_finish(struct fb *fb);
void fb_download_abort(struct fb *fb);

int fb_flash(struct fb *fb, const char *partition);
int fb_erase(struct fb *fb, const char *partition);
/* "oem <args>" (args without the leading "oem "); INFO lines into lines.
 * timeout_ms 0 = o.oem_timeout_ms. The OKAY message goes to resp if given. */
int fb_oem(struct fb *fb, const char *args, unsigned timeout_ms, struct fb_lines *lines,
	   char *resp, size_t respsz);

/* Response parsing (exposed for the fuzz target): status and message (up to
 * the first NUL, at most FB_MSG_MAX bytes, NUL-terminated into msg). For DATA
 * the size is put in *data_size; -EPROTO unless exactly 8 hex digits follow.
 * -EPROTO for anything shorter than 4 bytes or an unknown status. */
int fb_parse_response(const uint8_t *buf, size_t n, enum fb_status *st, char *msg, size_t msgsz,
		      uint64_t *data_size);

/* Parse "0x10000000" / "268435456" into *out; -EINVAL otherwise. */
int fb_parse_size(const char *s, uint64_t *out);

#endif
