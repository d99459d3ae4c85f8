/* rpiboot: host side of the Raspberry Pi USB boot protocol (spec rpiboot.md).
 *
 * Owns the wire sequence to the boot ROM (BootMessage + second stage) and the
 * stage-2 file server, including the confinement of device-requested file
 * names to the board's payload directory. It knows nothing of the database or
 * the UI: facts go to struct rpiboot_metadata, failures to struct
 * rpiboot_status, lines to the caller's log callback. Called only from the
 * worker thread that owns the board's transport. */
#include "proto/rpiboot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#define REQ_OUT 0x40 /* vendor, host-to-device, device recipient */
#define REQ_IN 0xC0  /* vendor, device-to-host */

static const char *const step_names[] = {
	[RPIBOOT_STEP_NONE] = "start",
	[RPIBOOT_STEP_BOOTMSG_ANNOUNCE] = "BootMessage announce",
	[RPIBOOT_STEP_BOOTMSG_BULK] = "BootMessage bulk",
	[RPIBOOT_STEP_IMAGE_ANNOUNCE] = "second-stage announce",
	[RPIBOOT_STEP_IMAGE_BULK] = "second-stage bulk",
	[RPIBOOT_STEP_STATUS_READ] = "ROM status read",
	[RPIBOOT_STEP_FILEMSG_READ] = "FileMessage read",
	[RPIBOOT_STEP_FILE_OPEN] = "payload file open",
	[RPIBOOT_STEP_SIZE_REPLY] = "file size reply",
	[RPIBOOT_STEP_FILE_ANNOUNCE] = "file data announce",
	[RPIBOOT_STEP_FILE_BULK] = "file data bulk",
	[RPIBOOT_STEP_ZERO_ACK] = "zero ack",
	[RPIBOOT_STEP_DONE] = "done",
};

const char *rpiboot_step_name(enum rpiboot_step s)
{
	return (unsigned)s < sizeof(step_names) / sizeof(step_names[0]) ? step_names[s] : "?";
}

const char *rpiboot_end_name(enum rpiboot_end e)
{
	switch (e) {
	case RPIBOOT_END_NONE: return "none";
	case RPIBOOT_END_DONE: return "done";
	case RPIBOOT_END_EMPTY_NAME: return "empty name";
	case RPIBOOT_END_DISCONNECT: return "disconnect";
	case RPIBOOT_END_ERROR: return "error";
	}
	return "?";
}

void rpiboot_opts_default(struct rpiboot_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->ctrl_timeout_ms = 1000;
	o->read_timeout_ms = 20000;
	o->bulk_timeout_ms = 5000;
	o->read_retries = 3;
	o->garbage_max = 3;
}

const char *rpiboot_second_stage_name(uint16_t pid)
{
	switch (pid) {
	case 0x2763:
	case 0x2764: return "bootcode.bin";
	case 0x2711: return "bootcode4.bin";
	case 0x2712: return "bootcode5.bin";
	}
	return NULL;
}

const char *rpiboot_soc_prefix(uint16_t pid)
{
	switch (pid) {
	case 0x2711: return "2711";
	case 0x2712: return "2712";
	}
	return "2710";
}

bool rpiboot_is_rom_stage(uint8_t iserial_index)
{
	return iserial_index == 0 || iserial_index == 3;
}

/* ---- error context ---- */

struct ctx {
	struct transport *t;
	const struct rpiboot_opts *o;
	struct rpiboot_status *st;
	rpiboot_log_fn log;
	void *usrptr;
};

static const char *errname(int err)
{
	const char *n = strerrorname_np(err < 0 ? -err : err);

	return n ? n : "E?";
}

static void logf_(struct ctx *c, enum rpiboot_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void logf_(struct ctx *c, enum rpiboot_log_level lvl, const char *fmt, ...)
{
	char line[400];
	int n;
	va_list ap;

	if (!c->log)
		return;
	n = snprintf(line, sizeof(line), "rpiboot %s@%s: ", c->t->serial[0] ? c->t->serial : "-",
		     c->t->port_path[0] ? c->t->port_path : "-");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	c->log(c->usrptr, lvl, line);
}

/* Record a failure at the current step; returns err for `return fail(...)`. */
static int fail(struct ctx *c, int err, const char *what)
{
	const char *hint;

	switch (err) {
	case -ENODEV: hint = "the board left the bus: check cable/power and replug"; break;
	case -ETIMEDOUT: hint = "the board stopped answering: replug it to retry"; break;
	case -EPIPE: hint = "the board stalled the request: replug it to retry"; break;
	default: hint = "replug the board to retry"; break;
	}
	c->st->error = err;
	if (c->st->end == RPIBOOT_END_NONE)
		c->st->end = (err == -ENODEV || err == -EIO) ? RPIBOOT_END_DISCONNECT : RPIBOOT_END_ERROR;
	snprintf(c->st->msg, sizeof(c->st->msg), "board %s at port %s: %s failed: %s (%s, %s); %s",
		 c->t->serial[0] ? c->t->serial : "(no serial)",
		 c->t->port_path[0] ? c->t->port_path : "?", rpiboot_step_name(c->st->step), what,
		 errname(err), strerror(-err), hint);
	logf_(c, RPIBOOT_LOG_ERR, "%s", c->st->msg);
	return err;
}

/* ---- primitives (spec §2) ---- */

static int ctrl_out(struct ctx *c, uint32_t value)
{
	struct usb_ctrl_setup s = {
		.bmRequestType = REQ_OUT,
		.bRequest = 0,
		.wValue = (uint16_t)(value & 0xffff),
		.wIndex = (uint16_t)(value >> 16),
		.wLength = 0,
	};
	int r = transport_control(c->t, &s, NULL, c->o->ctrl_timeout_ms);

	return r < 0 ? r : 0;
}

static int ctrl_in(struct ctx *c, void *buf, uint16_t len)
{
	struct usb_ctrl_setup s = {
		.bmRequestType = REQ_IN,
		.bRequest = 0,
		.wValue = len,
		.wIndex = 0,
		.wLength = len,
	};

	return transport_control(c->t, &s, buf, c->o->read_timeout_ms);
}

/* Bulk OUT in <=16 KiB transfers; no retry (resent bytes would misalign the
 * device's count) and no zero-length packet at the end. */
static int bulk_all(struct ctx *c, const uint8_t *p, size_t len)
{
	while (len) {
		size_t n = len < RPIBOOT_BULK_CHUNK ? len : RPIBOOT_BULK_CHUNK;
		int r = transport_bulk_out(c->t, p, n, c->o->bulk_timeout_ms);

		if (r < 0)
			return r;
		if ((size_t)r != n)
			return -EIO;
		p += n;
		len -= n;
	}
	return 0;
}

/* ep_write: announce the length, then the bytes. */
static int ep_write(struct ctx *c, enum rpiboot_step announce_step, const void *buf, size_t len,
		    const char *what)
{
	int r;

	c->st->step = announce_step;
	r = ctrl_out(c, (uint32_t)len);
	if (r < 0)
		return fail(c, r, what);
	if (len == 0)
		return 0;
	c->st->step = announce_step + 1; /* the matching *_BULK step */
	r = bulk_all(c, buf, len);
	if (r < 0)
		return fail(c, r, what);
	return 0;
}

/* ---- stage 1 ---- */

int rpiboot_send_second_stage(struct transport *t, const void *img, size_t len,
			      const struct rpiboot_opts *o, struct rpiboot_status *st)
{
	struct rpiboot_opts def;
	struct rpiboot_status dummy;
	struct ctx c = { .t = t, .o = o, .st = st ? st : &dummy };
	uint8_t msg[RPIBOOT_BOOTMSG_LEN] = { 0 };
	uint8_t status[4] = { 0 };
	char what[80];
	int r;

	if (!o) {
		rpiboot_opts_default(&def);
		c.o = &def;
	}
	memset(c.st, 0, sizeof(*c.st));
	if (!img || len == 0 || len > RPIBOOT_SECOND_STAGE_MAX) {
		snprintf(what, sizeof(what), "second-stage image of %zu bytes", len);
		return fail(&c, -EINVAL, what);
	}
	msg[0] = (uint8_t)len;
	msg[1] = (uint8_t)(len >> 8);
	msg[2] = (uint8_t)(len >> 16);
	msg[3] = (uint8_t)(len >> 24);
	if (c.o->signature)
		memcpy(msg + 4, c.o->signature, RPIBOOT_SIGNATURE_LEN);

	r = ep_write(&c, RPIBOOT_STEP_BOOTMSG_ANNOUNCE, msg, sizeof(msg), "sending the 24-byte BootMessage");
	if (r < 0)
		return r;
	snprintf(what, sizeof(what), "sending the %zu-byte second stage", len);
	r = ep_write(&c, RPIBOOT_STEP_IMAGE_ANNOUNCE, img, len, what);
	if (r < 0)
		return r;

	/* The status word is advisory (spec §3.2 step 4): the ROM may already be
	 * re-enumerating. The caller proves success by the stage-2 appearance. */
	c.st->step = RPIBOOT_STEP_STATUS_READ;
	r = ctrl_in(&c, status, sizeof(status));
	if (r >= 4) {
		c.st->rom_status_valid = true;
		c.st->rom_status = (uint32_t)status[0] | (uint32_t)status[1] << 8 |
				   (uint32_t)status[2] << 16 | (uint32_t)status[3] << 24;
	}
	c.st->step = RPIBOOT_STEP_DONE;
	return 0;
}

/* ---- stage 2: names and files ---- */

int rpiboot_filemsg_parse(const uint8_t *buf, size_t n, uint32_t *cmd, char *name)
{
	size_t nlen;

	memset(name, 0, RPIBOOT_FNAME_LEN);
	if (n < 4)
		return -EBADMSG;
	*cmd = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
	if (*cmd > RPIBOOT_CMD_DONE)
		return -EBADMSG;
	/* A short read (e.g. a Done without its name) is zero-filled: P3. */
	nlen = n > RPIBOOT_FILEMSG_LEN ? RPIBOOT_FNAME_LEN : n - 4;
	if (nlen == RPIBOOT_FNAME_LEN && !memchr(buf + 4, '\0', nlen))
		return -ENAMETOOLONG;
	memcpy(name, buf + 4, nlen);
	name[RPIBOOT_FNAME_LEN - 1] = '\0';
	return 0;
}

int rpiboot_name_check(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= RPIBOOT_FNAME_LEN || name[0] == '/')
		return -EACCES;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch < 0x20 || ch > 0x7e || ch == '\\')
			return -EACCES;
	}
	if (strstr(name, "..") || strstr(name, "//") || name[n - 1] == '/')
		return -EACCES;
	return 0;
}

/* openat2(RESOLVE_BENEATH) lets payload-internal symlinks work (the usbboot
 * recovery dirs link bootcode4.bin to recovery.bin) while refusing any path
 * that would leave the directory. Without openat2, fall back to refusing
 * symlinks at every component. */
static int open_beneath(int dirfd, const char *path)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	char *copy, *comp, *save = NULL;
	int cur, next;

	if (fd >= 0)
		return (int)fd;
	if (errno != ENOSYS && errno != EPERM)
		return errno == EXDEV || errno == ELOOP ? -EACCES : -errno;

	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	cur = dup(dirfd);
	if (cur < 0) {
		free(copy);
		return -errno;
	}
	for (comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		bool last = save == NULL || *save == '\0';

		next = openat(cur, comp, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW |
					 (last ? 0 : O_DIRECTORY));
		close(cur);
		if (next < 0) {
			int e = errno;

			free(copy);
			return e == ELOOP || e == ENOTDIR ? -EACCES : -e;
		}
		cur = next;
	}
	free(copy);
	return cur;
}

int rpiboot_open_payload(int payload_dirfd, const char *soc_prefix, const char *name,
			 uint64_t *size)
{
	char path[RPIBOOT_FNAME_LEN + 16];
	struct stat sb;
	int fd = -ENOENT, r;

	if (rpiboot_name_check(name))
		return -EACCES;
	if (soc_prefix) {
		snprintf(path, sizeof(path), "%s/%s", soc_prefix, name);
		fd = open_beneath(payload_dirfd, path);
		if (fd == -EACCES)
			return fd;
	}
	if (fd < 0)
		fd = open_beneath(payload_dirfd, name);
	if (fd < 0)
		return fd == -ENOTDIR ? -ENOENT : fd;
	if (fstat(fd, &sb) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = S_ISDIR(sb.st_mode) ? -ENOENT : -EACCES;
		goto out;
	}
	if ((uint64_t)sb.st_size > RPIBOOT_FILE_MAX) {
		r = -EFBIG;
		goto out;
	}
	*size = (uint64_t)sb.st_size;
	return fd;
out:
	close(fd);
	return r;
}

/* Stream `size` bytes of fd after announcing them, in 16 KiB chunks. */
static int send_file(struct ctx *c, int fd, uint64_t size, const char *name)
{
	uint8_t *buf = NULL;
	uint64_t off = 0;
	char what[RPIBOOT_FNAME_LEN + 48];
	int r;

	snprintf(what, sizeof(what), "sending '%s' (%llu bytes)", name, (unsigned long long)size);
	c->st->step = RPIBOOT_STEP_FILE_ANNOUNCE;
	r = ctrl_out(c, (uint32_t)size);
	if (r < 0)
		return fail(c, r, what);
	if (size == 0)
		return 0;
	buf = malloc(RPIBOOT_BULK_CHUNK);
	if (!buf)
		return fail(c, -ENOMEM, what);
	c->st->step = RPIBOOT_STEP_FILE_BULK;
	while (off < size) {
		size_t n = size - off < RPIBOOT_BULK_CHUNK ? (size_t)(size - off) : RPIBOOT_BULK_CHUNK;
		ssize_t got = pread(fd, buf, n, (off_t)off);

		if (got != (ssize_t)n) {
			/* The device already expects `size` bytes: we cannot recover. */
			r = fail(c, got < 0 ? -errno : -EIO, "reading the payload file (it changed on disk?)");
			goto out;
		}
		r = transport_bulk_out(c->t, buf, n, c->o->bulk_timeout_ms);
		if (r >= 0 && (size_t)r != n)
			r = -EIO;
		if (r < 0) {
			r = fail(c, r, what);
			goto out;
		}
		off += n;
	}
	r = 0;
out:
	free(buf);
	return r;
}

/* Names come from the device: never put control bytes into a log line. */
static void shown_name(const char *name, char *out)
{
	size_t i;

	for (i = 0; name[i] && i < RPIBOOT_FNAME_LEN - 1; i++)
		out[i] = (name[i] < 0x20 || name[i] > 0x7e) ? '?' : name[i];
	out[i] = '\0';
}

static int zero_ack(struct ctx *c, const char *why)
{
	int r;

	c->st->step = RPIBOOT_STEP_ZERO_ACK;
	r = ctrl_out(c, 0);
	return r < 0 ? fail(c, r, why) : 0;
}

/* GetFileSize (send_data=false) or ReadFile (send_data=true) of a name. Each
 * request resolves its own name (spec §4.2: do not depend on a prior
 * GetFileSize, as rpi-imager does). */
static int answer_file(struct ctx *c, int dirfd, const char *req, bool send_data)
{
	uint64_t size = 0;
	int fd, r;
	char what[RPIBOOT_FNAME_LEN + 48], name[RPIBOOT_FNAME_LEN];

	shown_name(req, name); /* for logs only */
	c->st->step = RPIBOOT_STEP_FILE_OPEN;
	fd = rpiboot_open_payload(dirfd, rpiboot_soc_prefix(c->t->pid), req, &size);
	if (fd < 0) {
		if (fd == -EACCES) {
			c->st->names_refused++;
			logf_(c, RPIBOOT_LOG_WARN,
			      "refused request for '%s': outside the payload directory or not a plain name; answered as missing",
			      name);
		} else if (fd == -EFBIG) {
			logf_(c, RPIBOOT_LOG_WARN, "'%s' is larger than the protocol's 2 GiB limit; answered as missing", name);
		} else if (fd != -ENOENT) {
			logf_(c, RPIBOOT_LOG_WARN, "cannot open '%s': %s; answered as missing", name, strerror(-fd));
		} else {
			logf_(c, RPIBOOT_LOG_INFO, "%s '%s': not in the payload, answered size 0",
			      send_data ? "ReadFile" : "GetFileSize", name);
		}
		c->st->files_missing++;
		return zero_ack(c, "answering a missing file");
	}
	if (!send_data) {
		c->st->step = RPIBOOT_STEP_SIZE_REPLY;
		logf_(c, RPIBOOT_LOG_DEBUG, "GetFileSize '%s': %llu bytes", name, (unsigned long long)size);
		if (size == 0)
			logf_(c, RPIBOOT_LOG_WARN, "'%s' is empty: the board treats it as missing", name);
		r = ctrl_out(c, (uint32_t)size);
		if (r < 0) {
			snprintf(what, sizeof(what), "replying the size of '%s'", name);
			r = fail(c, r, what);
		}
	} else {
		logf_(c, RPIBOOT_LOG_INFO, "ReadFile '%s': sending %llu bytes", name, (unsigned long long)size);
		r = send_file(c, fd, size, name);
		if (r == 0)
			c->st->files_served++;
	}
	close(fd);
	return r;
}

int rpiboot_serve_files(struct transport *t, int payload_dirfd, struct rpiboot_metadata *md,
			const struct rpiboot_opts *o, rpiboot_log_fn log, void *usrptr,
			struct rpiboot_status *st)
{
	struct rpiboot_opts def;
	struct rpiboot_status dummy;
	struct ctx c = { .t = t, .o = o, .st = st ? st : &dummy, .log = log, .usrptr = usrptr };
	uint8_t buf[RPIBOOT_FILEMSG_LEN];
	char name[RPIBOOT_FNAME_LEN];
	unsigned timeouts = 0, garbage = 0;
	int r;

	if (!o) {
		rpiboot_opts_default(&def);
		c.o = &def;
	}
	memset(c.st, 0, sizeof(*c.st));
	for (;;) {
		uint32_t cmd = 0;

		c.st->step = RPIBOOT_STEP_FILEMSG_READ;
		memset(buf, 0, sizeof(buf));
		r = ctrl_in(&c, buf, sizeof(buf));
		if (r == -ETIMEDOUT || r == -EPIPE) {
			/* The board NAKs while it writes flash; keep asking, bounded. */
			if (++timeouts > c.o->read_retries)
				return fail(&c, r, "waiting for the board's next file request");
			logf_(&c, RPIBOOT_LOG_DEBUG, "no file request yet (%s), asking again", errname(r));
			continue;
		}
		if (r < 0) {
			c.st->end = RPIBOOT_END_DISCONNECT;
			if (c.st->files_served || c.st->metadata_pushes) {
				c.st->error = r;
				logf_(&c, RPIBOOT_LOG_INFO, "board left the bus after %u files (%s)",
				      c.st->files_served, errname(r));
				return -ENODEV;
			}
			return fail(&c, r == -EIO ? -ENODEV : r, "reading the board's file request");
		}
		timeouts = 0;
		r = rpiboot_filemsg_parse(buf, (size_t)r, &cmd, name);
		if (r == -EBADMSG) {
			if (++garbage > c.o->garbage_max) {
				c.st->end = RPIBOOT_END_ERROR;
				return fail(&c, -EPROTO, "reading file requests (unknown command or truncated message)");
			}
			logf_(&c, RPIBOOT_LOG_WARN, "ignored an unreadable file request (command %u)", cmd);
			continue;
		}
		garbage = 0;
		if (cmd == RPIBOOT_CMD_DONE) {
			c.st->end = RPIBOOT_END_DONE;
			c.st->step = RPIBOOT_STEP_DONE;
			logf_(&c, RPIBOOT_LOG_INFO, "board finished its file requests (Done)");
			return 0;
		}
		if (r == -ENAMETOOLONG) {
			c.st->names_refused++;
			logf_(&c, RPIBOOT_LOG_WARN, "refused a file request whose name is not NUL-terminated; answered as missing");
			r = zero_ack(&c, "answering an unterminated name");
			if (r < 0)
				return r;
			continue;
		}
		if (name[0] == '\0') {
			r = zero_ack(&c, "acknowledging the empty name");
			if (r < 0)
				return r;
			c.st->end = RPIBOOT_END_EMPTY_NAME;
			c.st->step = RPIBOOT_STEP_DONE;
			return 0;
		}
		if (name[0] == '*') {
			int mr = md ? rpiboot_metadata_push(md, name, strlen(name)) : 0;

			c.st->metadata_pushes++;
			if (mr < 0 && mr != -ENODATA)
				logf_(&c, RPIBOOT_LOG_WARN, "metadata push refused (%s); kept out of the record",
				      errname(mr));
			r = zero_ack(&c, "acknowledging a metadata push");
			if (r < 0)
				return r;
			continue;
		}
		r = answer_file(&c, payload_dirfd, name, cmd == RPIBOOT_CMD_READ_FILE);
		if (r < 0)
			return r;
	}
}
