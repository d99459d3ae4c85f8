/* fastboot: the station's fastboot client (spec fastboot.md §1-3, §7.2).
 *
 * Owns command framing, response parsing (OKAY/FAIL/INFO/TEXT/DATA), the
 * download data phase with the USB packet rules (every transfer a multiple of
 * wMaxPacketSize except the last, never a zero-length packet), and the error
 * texts. Talks only to struct transport; knows nothing of flows or records.
 * Called by the worker thread that owns the board. */
#include "proto/fastboot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void fb_opts_default(struct fb_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->cmd_timeout_ms = 5000;
	o->resp_timeout_ms = 10000;
	o->data_timeout_ms = 10000;
	o->download_okay_timeout_ms = 30000;
	o->flash_timeout_ms = 120000;
	o->erase_timeout_ms = 30000;
	o->oem_timeout_ms = 30000;
	o->chunk_size = FB_CHUNK_DEFAULT;
	o->packet_size = 512;
}

void fb_lines_free(struct fb_lines *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int lines_add(struct fb_lines *l, const char *s)
{
	if (l->n >= FB_INFO_LINES_MAX)
		return -E2BIG;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strdup(s);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

int fb_init(struct fb *fb, struct transport *t, const struct fb_opts *o)
{
	memset(fb, 0, sizeof(*fb));
	fb->t = t;
	if (o)
		fb->o = *o;
	else {
		fb_opts_default(&fb->o);
		if (t->kind == TRANSPORT_TCP)
			fb->o.packet_size = 1;
	}
	if (fb->o.packet_size == 0 || fb->o.chunk_size == 0 || fb->o.chunk_size % fb->o.packet_size)
		return -EINVAL;
	return 0;
}

void fb_fini(struct fb *fb)
{
	free(fb->dl_buf);
	fb->dl_buf = NULL;
	fb->dl_active = false;
}

void fb_set_callbacks(struct fb *fb, fb_info_fn info, fb_progress_fn progress, void *usrptr)
{
	fb->info = info;
	fb->progress = progress;
	fb->usrptr = usrptr;
}

const char *fb_fail_message(const struct fb *fb)
{
	return fb->fail_msg;
}

const char *fb_last_error(const struct fb *fb)
{
	return fb->err;
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err < 0 ? -err : err);

	return n ? n : "E?";
}

static int seterr(struct fb *fb, int err, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int seterr(struct fb *fb, int err, const char *cmd, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(fb->err, sizeof(fb->err), "fastboot %s: '%.64s': ",
		     fb->t->serial[0] ? fb->t->serial : "(no serial)", cmd);
	if (n < 0 || (size_t)n >= sizeof(fb->err))
		return err;
	va_start(ap, fmt);
	vsnprintf(fb->err + n, sizeof(fb->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

static int transport_err(struct fb *fb, int err, const char *cmd, const char *doing)
{
	const char *hint = err == -ENODEV ? "the gadget disconnected; check the cable and let the board re-enumerate"
			 : err == -ETIMEDOUT ? "the gadget did not answer in time; retry the board"
			 : "retry the board";

	return seterr(fb, err, cmd, "%s failed: %s (%s); %s", doing, errname(err), strerror(-err), hint);
}

int fb_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	/* strtoull would skip any leading white space (\t, \r, \n...) and take a sign */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10);
	if (errno || *end || end == s)
		return -EINVAL;
	*out = v;
	return 0;
}

int fb_parse_response(const uint8_t *buf, size_t n, enum fb_status *st, char *msg, size_t msgsz,
		      uint64_t *data_size)
{
	static const struct { const char tag[5]; enum fb_status st; } tags[] = {
		{ "OKAY", FB_OKAY }, { "FAIL", FB_FAIL }, { "INFO", FB_INFO },
		{ "TEXT", FB_TEXT }, { "DATA", FB_DATA },
	};
	size_t mlen = 0;
	size_t i;

	if (msgsz == 0)
		return -EINVAL;
	msg[0] = '\0';
	if (n < 4 || n > FB_RESP_MAX)
		return -EPROTO;
	for (i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (memcmp(buf, tags[i].tag, 4) == 0)
			break;
	if (i == sizeof(tags) / sizeof(tags[0]))
		return -EPROTO;
	*st = tags[i].st;
	while (4 + mlen < n && buf[4 + mlen] != '\0' && mlen < FB_MSG_MAX)
		mlen++;
	if (mlen >= msgsz)
		mlen = msgsz - 1;
	memcpy(msg, buf + 4, mlen);
	msg[mlen] = '\0';
	if (*st == FB_DATA) {
		uint64_t v = 0;

		if (mlen != 8)
			return -EPROTO;
		for (i = 0; i < 8; i++) {
			char c = msg[i];
			int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
				: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

			if (d < 0)
				return -EPROTO;
			v = v * 16 + (uint64_t)d;
		}
		if (data_size)
			*data_size = v;
	}
	return 0;
}

/* Values may carry a trailing NUL (device-tree strings) or CR/LF (sysfs). */
static void strip_tail(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* transport_bulk_out / _in, timed into fb->out_ns / fb->wait_ns. */
static int timed_out(struct fb *fb, const void *buf, size_t len, unsigned timeout_ms)
{
	uint64_t t0 = mono_ns();
	int r = transport_bulk_out(fb->t, buf, len, timeout_ms);

	fb->out_ns += mono_ns() - t0;
	return r;
}

static int timed_in(struct fb *fb, void *buf, size_t len, unsigned timeout_ms)
{
	uint64_t t0 = mono_ns();
	int r = transport_bulk_in(fb->t, buf, len, timeout_ms);

	fb->wait_ns += mono_ns() - t0;
	return r;
}

static int send_command(struct fb *fb, const char *cmd)
{
	size_t n = strlen(cmd);
	int r;

	if (n == 0 || n > FB_CMD_MAX)
		return seterr(fb, -E2BIG, cmd, "command of %zu bytes: must be 1..%d bytes", n, FB_CMD_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)cmd[i] < 0x20 || cmd[i] == 0x7f)
			return seterr(fb, -EINVAL, cmd, "command contains a control character (refused before sending)");
	r = timed_out(fb, cmd, n, fb->o.cmd_timeout_ms);
	if (r >= 0 && (size_t)r != n)
		r = -EIO;
	if (r < 0)
		return transport_err(fb, r, cmd, "sending the command");
	return 0;
}

/* Read responses until OKAY, FAIL or DATA; INFO/TEXT go to the callback and lines. */
static int read_response(struct fb *fb, const char *cmd, unsigned timeout_ms, char *resp,
			 size_t respsz, struct fb_lines *lines, uint64_t *data_size)
{
	uint8_t buf[FB_RESP_MAX];
	char msg[FB_MSG_MAX + 1];

	for (;;) {
		enum fb_status st;
		uint64_t dsz = 0;
		int r = timed_in(fb, buf, sizeof(buf), timeout_ms);

		if (r < 0)
			return transport_err(fb, r, cmd, "waiting for the response");
		if (fb_parse_response(buf, (size_t)r, &st, msg, sizeof(msg), &dsz) < 0)
			return seterr(fb, -EPROTO, cmd, "unreadable response of %d bytes ('%.4s'); the gadget is not speaking fastboot, replug the board",
				      r, r >= 4 ? (const char *)buf : "");
		switch (st) {
		case FB_INFO:
		case FB_TEXT:
			if (fb->info)
				fb->info(fb->usrptr, msg);
			if (lines) {
				r = lines_add(lines, msg);
				if (r < 0)
					return seterr(fb, r, cmd, "too many INFO lines (more than %d)", FB_INFO_LINES_MAX);
			}
			continue; /* each INFO restarts the timeout */
		case FB_OKAY:
			if (resp && respsz) {
				snprintf(resp, respsz, "%s", msg);
				strip_tail(resp);
			}
			return 0;
		case FB_FAIL:
			snprintf(fb->fail_msg, sizeof(fb->fail_msg), "%s", msg);
			strip_tail(fb->fail_msg);
			if (resp && respsz)
				snprintf(resp, respsz, "%s", fb->fail_msg);
			return seterr(fb, -EREMOTEIO, cmd, "the device refused: %s", fb->fail_msg);
		case FB_DATA:
			if (!data_size)
				return seterr(fb, -EPROTO, cmd, "unexpected DATA response");
			*data_size = dsz;
			return 1;
		}
	}
}

int fb_command_raw(struct fb *fb, const char *cmd, unsigned timeout_ms, char *resp, size_t respsz,
		   struct fb_lines *lines, uint64_t *data_size)
{
	int r;

	if (fb->dl_active)
		return seterr(fb, -EBUSY, cmd, "a download is in progress");
	fb->fail_msg[0] = '\0';
	fb->err[0] = '\0';
	if (resp && respsz)
		resp[0] = '\0';
	r = send_command(fb, cmd);
	if (r < 0)
		return r;
	r = read_response(fb, cmd, timeout_ms ? timeout_ms : fb->o.resp_timeout_ms, resp, respsz,
			  lines, data_size);
	return r > 0 ? 0 : r;
}

int fb_getvar(struct fb *fb, const char *name, char *val, size_t valsz)
{
	char cmd[FB_CMD_MAX + 1];
	int n = snprintf(cmd, sizeof(cmd), "getvar:%s", name);

	if (n < 0 || (size_t)n >= sizeof(cmd))
		return seterr(fb, -E2BIG, "getvar", "variable name too long");
	return fb_command_raw(fb, cmd, fb->o.resp_timeout_ms, val, valsz, NULL, NULL);
}

int fb_get_max_download(struct fb *fb, uint64_t *out)
{
	char v[64];
	uint64_t m;
	int r;

	if (fb->max_download) {
		*out = fb->max_download;
		return 0;
	}
	r = fb_getvar(fb, "max-download-size", v, sizeof(v));
	if (r < 0)
		return r;
	if (fb_parse_size(v, &m) < 0 || m == 0)
		return seterr(fb, -EPROTO, "getvar:max-download-size", "unreadable size '%s'", v);
	fb->max_download = m;
	*out = m;
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int fb_wait_getvar(struct fb *fb, const char *name, char *val, size_t valsz, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	unsigned backoff = 20;
	int r;

	for (;;) {
		r = fb_getvar(fb, name, val, valsz);
		if (r != -EREMOTEIO || now_ms() >= deadline)
			return r;
		struct timespec ts = { 0, (long)backoff * 1000000L };

		nanosleep(&ts, NULL);
		if (backoff < 500)
			backoff *= 2;
	}
}

/* ---- download ---- */

int fb_download_begin(struct fb *fb, uint64_t total)
{
	char cmd[32];
	uint64_t dsz = 0;
	int r;

	if (fb->dl_active)
		return seterr(fb, -EBUSY, "download", "a download is already in progress");
	if (total == 0 || total > 0xffffffffu)
		return seterr(fb, -EFBIG, "download", "size %" PRIu64 " cannot be expressed as download:%%08x", total);
	if (fb->max_download && total > fb->max_download)
		return seterr(fb, -EFBIG, "download", "%" PRIu64 " bytes exceed the device's max-download-size %" PRIu64
			      "; split the image (sparse) first", total, fb->max_download);
	if (!fb->dl_buf) {
		fb->dl_buf = malloc(fb->o.chunk_size);
		if (!fb->dl_buf)
			return -ENOMEM;
	}
	snprintf(cmd, sizeof(cmd), "download:%08" PRIx64, total);
	fb->fail_msg[0] = '\0';
	fb->err[0] = '\0';
	r = send_command(fb, cmd);
	if (r < 0)
		return r;
	r = read_response(fb, cmd, fb->o.resp_timeout_ms, NULL, 0, NULL, &dsz);
	if (r < 0)
		return r;
	if (r == 0)
		return seterr(fb, -EPROTO, cmd, "device answered OKAY instead of DATA");
	if (dsz != total)
		return seterr(fb, -EPROTO, cmd, "device agreed to %" PRIu64 " bytes, not %" PRIu64, dsz, total);
	fb->dl_active = true;
	fb->dl_total = total;
	fb->dl_sent = 0;
	fb->dl_fill = 0;
	if (fb->progress)
		fb->progress(fb->usrptr, 0, total);
	return 0;
}

static int dl_flush(struct fb *fb)
{
	int r;

	if (fb->dl_fill == 0)
		return 0;
	r = timed_out(fb, fb->dl_buf, fb->dl_fill, fb->o.data_timeout_ms);
	if (r >= 0 && (size_t)r != fb->dl_fill)
		r = -EIO;
	if (r < 0) {
		fb->dl_active = false;
		return transport_err(fb, r, "download", "sending data");
	}
	fb->dl_sent += fb->dl_fill;
	fb->dl_fill = 0;
	if (fb->progress)
		fb->progress(fb->usrptr, fb->dl_sent, fb->dl_total);
	return 0;
}

/* Data is gathered into chunk_size transfers: all full (a multiple of the
 * packet size) except the very last one of the phase. */
int fb_download_write(struct fb *fb, const void *data, size_t len)
{
	const uint8_t *p = data;

	if (!fb->dl_active)
		return seterr(fb, -EINVAL, "download", "no download in progress");
	if (fb->dl_sent + fb->dl_fill + len > fb->dl_total) {
		fb->dl_active = false;
		return seterr(fb, -EOVERFLOW, "download", "more data than the %" PRIu64 " bytes announced", fb->dl_total);
	}
	while (len) {
		size_t n = fb->o.chunk_size - fb->dl_fill;
		int r;

		if (n > len)
			n = len;
		memcpy(fb->dl_buf + fb->dl_fill, p, n);
		fb->dl_fill += n;
		p += n;
		len -= n;
		if (fb->dl_fill == fb->o.chunk_size) {
			r = dl_flush(fb);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int fb_download_finish(struct fb *fb)
{
	int r;

	if (!fb->dl_active)
		return seterr(fb, -EINVAL, "download", "no download in progress");
	if (fb->dl_sent + fb->dl_fill != fb->dl_total) {
		fb->dl_active = false;
		return seterr(fb, -EIO, "download", "only %" PRIu64 " of %" PRIu64 " bytes were supplied",
			      fb->dl_sent + fb->dl_fill, fb->dl_total);
	}
	r = dl_flush(fb);
	if (r < 0)
		return r;
	fb->dl_active = false;
	r = read_response(fb, "download", fb->o.download_okay_timeout_ms, NULL, 0, NULL, NULL);
	return r;
}

void fb_download_abort(struct fb *fb)
{
	fb->dl_active = false;
	fb->dl_fill = 0;
}

int fb_download(struct fb *fb, const void *buf, size_t len)
{
	int r = fb_download_begin(fb, len);

	if (r < 0)
		return r;
	r = fb_download_write(fb, buf, len);
	if (r < 0) {
		fb_download_abort(fb);
		return r;
	}
	return fb_download_finish(fb);
}

int fb_download_fd(struct fb *fb, int fd, off_t offset, uint64_t len)
{
	uint8_t *buf = NULL;
	uint64_t done = 0;
	int r = fb_download_begin(fb, len);

	if (r < 0)
		return r;
	buf = malloc(fb->o.chunk_size);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (done < len) {
		size_t want = len - done < fb->o.chunk_size ? (size_t)(len - done) : fb->o.chunk_size;
		ssize_t got = pread(fd, buf, want, offset + (off_t)done);

		if (got <= 0) {
			r = seterr(fb, got < 0 ? -errno : -EIO, "download",
				   "reading the image at offset %" PRIu64 " failed: %s", done,
				   got < 0 ? strerror(errno) : "file shorter than announced");
			goto out;
		}
		r = fb_download_write(fb, buf, (size_t)got);
		if (r < 0)
			goto out;
		done += (uint64_t)got;
	}
	free(buf);
	return fb_download_finish(fb);
out:
	/* The device still waits for bytes: this session cannot be reused. */
	fb_download_abort(fb);
	free(buf);
	return r;
}

static int simple(struct fb *fb, const char *verb, const char *arg, unsigned timeout_ms)
{
	char cmd[FB_CMD_MAX + 1];
	int n = snprintf(cmd, sizeof(cmd), "%s:%s", verb, arg);

	if (n < 0 || (size_t)n >= sizeof(cmd))
		return seterr(fb, -E2BIG, verb, "partition name too long");
	return fb_command_raw(fb, cmd, timeout_ms, NULL, 0, NULL, NULL);
}

int fb_flash(struct fb *fb, const char *partition)
{
	return simple(fb, "flash", partition, fb->o.flash_timeout_ms);
}

int fb_erase(struct fb *fb, const char *partition)
{
	return simple(fb, "erase", partition, fb->o.erase_timeout_ms);
}

int fb_oem(struct fb *fb, const char *args, unsigned timeout_ms, struct fb_lines *lines,
	   char *resp, size_t respsz)
{
	char cmd[FB_CMD_MAX + 1];
	int n = snprintf(cmd, sizeof(cmd), "oem %s", args);

	if (n < 0 || (size_t)n >= sizeof(cmd))
		return seterr(fb, -E2BIG, "oem", "command longer than %d bytes", FB_CMD_MAX);
	return fb_command_raw(fb, cmd, timeout_ms ? timeout_ms : fb->o.oem_timeout_ms, resp, respsz,
			      lines, NULL);
}
