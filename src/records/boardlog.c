/* boardlog: owns the per-board log directories and files under the log dir,
 * their aliases (port-<path>, <serial8>), line formatting and escaping.
 *
 * Any thread may call any function. A board's worker thread is its main
 * writer, but a hook reader or the station may log for it too, so every
 * struct boardlog carries a mutex held across the lines of one message and
 * across the directory move. Several boards log at once to different
 * directories; one write(2) per line on O_APPEND keeps lines whole. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/paths.h"
#include "records/boardlog.h"

#define BOARDLOG_DIR_MODE 0750
#define BOARDLOG_FILE_MODE 0640
#define BOARDLOG_PORT_MAX 64

struct boardlog {
	pthread_mutex_t mutex;
	char *logdir;
	char *port;
	char *dir;        /* where the files are now */
	char *serial;     /* lowercase 8 or 16 hex, NULL until known */
	int fd[BLOG_PHASE_COUNT];
	bool open_failed[BLOG_PHASE_COUNT];
	boardlog_sink_fn sink;
	void *sink_usrptr;
};

static const char *const phase_names[BLOG_PHASE_COUNT] = {
	[BLOG_BOOTSTRAP] = "bootstrap",
	[BLOG_TRIAGE] = "triage",
	[BLOG_PROVISIONER] = "provisioner",
};

static atomic_uint alias_seq;

const char *blog_phase_name(enum blog_phase phase)
{
	if ((unsigned)phase >= BLOG_PHASE_COUNT)
		return "unknown";
	return phase_names[phase];
}

/* --- escaping ------------------------------------------------------------ */

struct strbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_put(struct strbuf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		char *s;

		while (b->len + n + 1 > cap)
			cap *= 2;
		s = realloc(b->s, cap);
		if (!s) {
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence at @p (at most @n bytes) that is not a C1
 * control character, or 0 if the byte has to be escaped. */
static size_t utf8_printable_len(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len;

	if (p[0] < 0xc2)
		return 0; /* continuation byte or overlong 2-byte lead */
	if (p[0] < 0xe0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] < 0xf0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] < 0xf5) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

static void escape_into(struct strbuf *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		char esc[5];

		if (c == '\\') {
			sb_put(b, "\\\\", 2);
		} else if (c == '\n') {
			sb_put(b, "\\n", 2);
		} else if (c == '\t') {
			sb_put(b, "\\t", 2);
		} else if (c == '\r') {
			sb_put(b, "\\r", 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			sb_put(b, esc, 4);
		} else if (c < 0x80) {
			sb_put(b, (const char *)&p[i], 1);
		} else {
			size_t n = utf8_printable_len(p + i, len - i);

			if (n) {
				sb_put(b, (const char *)&p[i], n);
				i += n;
				continue;
			}
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			sb_put(b, esc, 4);
		}
		i++;
	}
}

char *blog_escape(const char *s, size_t len)
{
	struct strbuf b = { 0 };

	sb_put(&b, "", 0);
	escape_into(&b, s, len);
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* --- names and directories ------------------------------------------------ */

static bool port_name_ok(const char *port)
{
	size_t n = strlen(port);

	if (n == 0 || n > BOARDLOG_PORT_MAX || port[0] == '.' || port[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)port[i];

		if (!isalnum(c) && c != '.' && c != '-' && c != '_')
			return false;
	}
	return true;
}

/* Lowercase 8 or 16 hex digits into @out; 0 or -EINVAL. */
static int serial_normalise(const char *in, char out[17])
{
	size_t n = strlen(in);

	if (n != 8 && n != 16)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)in[i]))
			return -EINVAL;
		out[i] = (char)tolower((unsigned char)in[i]);
	}
	out[n] = '\0';
	return 0;
}

static bool is_serial16_name(const char *s)
{
	if (strlen(s) != 16)
		return false;
	for (size_t i = 0; i < 16; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

/* Point <logdir>/<name> at @target (relative), replacing an older symlink
 * atomically. A real directory of that name is left alone (-EEXIST). */
static int alias_set(const char *logdir, const char *name, const char *target)
{
	char *path = path_join(logdir, name);
	char *tmp = NULL;
	struct stat st;
	int r = 0;

	if (!path)
		return -ENOMEM;
	if (lstat(path, &st) == 0 && !S_ISLNK(st.st_mode)) {
		r = -EEXIST;
		goto out;
	}
	if (asprintf(&tmp, "%s/.%s.%ld.%u", logdir, name, (long)getpid(),
		     atomic_fetch_add(&alias_seq, 1)) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (symlink(target, tmp) < 0) {
		r = -errno;
		goto out;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
	}
out:
	free(tmp);
	free(path);
	return r;
}

/* Append the bytes of file @src to file @dst. */
static int append_file(const char *src, const char *dst)
{
	int in = -1, out = -1, r = 0;
	char buf[16384];
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0) {
		r = -errno;
		goto out;
	}
	out = open(dst, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (out < 0) {
		r = -errno;
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0) {
				if (errno == EINTR)
					continue;
				r = -errno;
				goto out;
			}
			off += w;
		}
	}
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

/* Move everything in directory @src into @dst: by rename when @dst lacks the
 * name, by appending when both are regular files; then remove @src. An entry
 * that can be neither stays in @src (and so does @src). */
static int merge_dir(const char *src, const char *dst)
{
	DIR *d;
	struct dirent *e;
	int r = 0;

	if (rename(src, dst) == 0)
		return 0; /* @dst did not exist, or was empty */
	if (errno != ENOTEMPTY && errno != EEXIST)
		return -errno;
	d = opendir(src);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char *s, *t;
		struct stat ss, ts;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		s = path_join(src, e->d_name);
		t = path_join(dst, e->d_name);
		if (!s || !t) {
			r = -ENOMEM;
		} else if (lstat(t, &ts) < 0 && errno == ENOENT) {
			if (rename(s, t) < 0)
				r = -errno;
		} else if (lstat(s, &ss) == 0 && S_ISREG(ss.st_mode) && S_ISREG(ts.st_mode)) {
			int a = append_file(s, t);

			if (a == 0)
				unlink(s);
			else
				r = a;
		}
		free(s);
		free(t);
	}
	closedir(d);
	rmdir(src); /* fails, harmlessly, if something could not be moved */
	return r;
}

static void close_files(struct boardlog *dev)
{
	for (int i = 0; i < BLOG_PHASE_COUNT; i++) {
		if (dev->fd[i] >= 0)
			close(dev->fd[i]);
		dev->fd[i] = -1;
		dev->open_failed[i] = false;
	}
}

static int make_early_dir(struct boardlog *dev)
{
	char *early = path_join(dev->logdir, "early");
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	char *dir = NULL, *rel = NULL;
	int r;

	if (!early)
		return -ENOMEM;
	r = mkdir_p(early, BOARDLOG_DIR_MODE);
	if (r < 0)
		goto out;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	for (int n = 1; n < 1000; n++) {
		free(dir);
		if ((n == 1 ? asprintf(&dir, "%s/%s-%s", early, dev->port, stamp)
			    : asprintf(&dir, "%s/%s-%s-%d", early, dev->port, stamp, n)) < 0) {
			dir = NULL;
			r = -ENOMEM;
			goto out;
		}
		if (mkdir(dir, BOARDLOG_DIR_MODE) == 0) {
			r = 0;
			break;
		}
		r = -errno;
		if (r != -EEXIST)
			goto out;
	}
	if (r < 0)
		goto out;
	rel = path_join("early", strrchr(dir, '/') + 1);
	dev->dir = dir;
	dir = NULL;
	if (!rel) {
		r = -ENOMEM;
		goto out;
	}
	{
		char *alias;

		if (asprintf(&alias, "port-%s", dev->port) < 0) {
			r = -ENOMEM;
			goto out;
		}
		alias_set(dev->logdir, alias, rel); /* best effort: an alias only */
		free(alias);
	}
out:
	free(rel);
	free(dir);
	free(early);
	return r;
}

int boardlog_open(const char *logdir, const char *port, struct boardlog **out)
{
	struct boardlog *dev;
	int r;

	*out = NULL;
	if (!logdir || !*logdir || !port || !port_name_ok(port))
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	for (int i = 0; i < BLOG_PHASE_COUNT; i++)
		dev->fd[i] = -1;
	pthread_mutex_init(&dev->mutex, NULL);
	dev->logdir = strdup(logdir);
	dev->port = strdup(port);
	if (!dev->logdir || !dev->port) {
		r = -ENOMEM;
		goto out;
	}
	r = mkdir_p(logdir, BOARDLOG_DIR_MODE);
	if (r < 0)
		goto out;
	r = make_early_dir(dev);
out:
	if (r < 0)
		boardlog_close(dev);
	else
		*out = dev;
	return r;
}

/* A board that went away before logging anything or telling its serial
 * leaves no empty early directory (nor an alias pointing at nothing). */
static void drop_empty_early_dir(struct boardlog *dev)
{
	char *early = path_join(dev->logdir, "early");
	char *alias = NULL;
	size_t n = early ? strlen(early) : 0;

	if (early && !strncmp(dev->dir, early, n) && dev->dir[n] == '/' && rmdir(dev->dir) == 0 &&
	    asprintf(&alias, "%s/port-%s", dev->logdir, dev->port) >= 0) {
		char target[PATH_MAX];
		ssize_t len = readlink(alias, target, sizeof(target) - 1);

		if (len > 0) {
			target[len] = '\0';
			if (!strcmp(target, dev->dir + n - strlen("early"))) /* "early/<name>" */
				unlink(alias);
		}
		free(alias);
	}
	free(early);
}

void boardlog_close(struct boardlog *dev)
{
	if (!dev)
		return;
	close_files(dev);
	if (dev->dir)
		drop_empty_early_dir(dev);
	pthread_mutex_destroy(&dev->mutex);
	free(dev->logdir);
	free(dev->port);
	free(dev->dir);
	free(dev->serial);
	free(dev);
}

void boardlog_set_sink(struct boardlog *dev, boardlog_sink_fn sink, void *usrptr)
{
	pthread_mutex_lock(&dev->mutex);
	dev->sink = sink;
	dev->sink_usrptr = usrptr;
	pthread_mutex_unlock(&dev->mutex);
}

char *boardlog_dir(struct boardlog *dev)
{
	char *s;

	pthread_mutex_lock(&dev->mutex);
	s = strdup(dev->dir);
	pthread_mutex_unlock(&dev->mutex);
	return s;
}

/* Where a board with short serial @s8 keeps its logs: the 16-hex directory an
 * existing <s8> alias points to, else <s8> itself. Returns the name (malloc'd). */
static char *short_target_name(const char *logdir, const char *s8)
{
	char *alias = path_join(logdir, s8);
	char link[64];
	ssize_t n;
	char *name = NULL;

	if (!alias)
		return NULL;
	n = readlink(alias, link, sizeof(link) - 1);
	if (n > 0) {
		link[n] = '\0';
		if (is_serial16_name(link) && !strcmp(link + 8, s8))
			name = strdup(link);
	}
	if (!name)
		name = strdup(s8);
	free(alias);
	return name;
}

int boardlog_set_serial(struct boardlog *dev, const char *serial)
{
	char s[17];
	char *name = NULL, *target = NULL, *short_path = NULL, *port_alias = NULL;
	struct stat st;
	int r;

	if (!serial || serial_normalise(serial, s) < 0)
		return -EINVAL;
	pthread_mutex_lock(&dev->mutex);
	if (dev->serial && (!strcmp(dev->serial, s) ||
			    (strlen(s) == 8 && strlen(dev->serial) == 16 && !strcmp(dev->serial + 8, s)))) {
		r = 0;
		goto out;
	}
	name = strlen(s) == 16 ? strdup(s) : short_target_name(dev->logdir, s);
	short_path = path_join(dev->logdir, strlen(s) == 16 ? s + 8 : s);
	if (!name || !short_path || asprintf(&port_alias, "port-%s", dev->port) < 0) {
		port_alias = NULL;
		r = -ENOMEM;
		goto out;
	}
	target = path_join(dev->logdir, name);
	if (!target) {
		r = -ENOMEM;
		goto out;
	}
	close_files(dev);
	if (strcmp(dev->dir, target) != 0) {
		/* An earlier attempt that only got as far as the short serial left a
		 * real <serial8> directory: its lines are older, so they go first. */
		if (strlen(s) == 16 && lstat(short_path, &st) == 0 && S_ISDIR(st.st_mode) &&
		    strcmp(short_path, dev->dir) != 0) {
			r = merge_dir(short_path, target);
			if (r < 0)
				goto out;
		}
		r = merge_dir(dev->dir, target);
		if (r < 0)
			goto out;
	}
	free(dev->dir);
	dev->dir = target;
	target = NULL;
	free(dev->serial);
	dev->serial = strdup(s);
	if (strlen(s) == 16)
		alias_set(dev->logdir, s + 8, s);
	alias_set(dev->logdir, port_alias, name);
	r = dev->serial ? 0 : -ENOMEM;
out:
	pthread_mutex_unlock(&dev->mutex);
	free(name);
	free(target);
	free(short_path);
	free(port_alias);
	return r;
}

/* --- writing ------------------------------------------------------------- */

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* The descriptor of @phase's file, opened on first use; -1 if it cannot be. */
static int phase_fd(struct boardlog *dev, enum blog_phase phase)
{
	char *path;

	if (dev->fd[phase] >= 0 || dev->open_failed[phase])
		return dev->fd[phase];
	if (asprintf(&path, "%s/%s.log", dev->dir, phase_names[phase]) < 0)
		return -1;
	dev->fd[phase] = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
			      BOARDLOG_FILE_MODE);
	if (dev->fd[phase] < 0) {
		dev->open_failed[phase] = true;
		fprintf(stderr, "boardlog: cannot open %s: %s; this board's %s lines go to stderr "
			"until its serial is set again (check the log directory's permissions)\n",
			path, strerror(errno), phase_names[phase]);
	}
	free(path);
	return dev->fd[phase];
}

static void time_prefix(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, size, "[%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03ld] ", ts.tv_nsec / 1000000);
}

/* Write @msg (@len bytes, may hold NULs) as one line per '\n'-separated
 * segment, each "[time] <head><escaped segment>"; @head is trusted text. */
static void blog_emit(struct boardlog *dev, enum blog_phase phase, const char *head,
		      const char *msg, size_t len)
{
	char prefix[40];
	char **lines = NULL;
	size_t nlines = 0;
	boardlog_sink_fn sink = NULL;
	void *usrptr = NULL;
	const char *end = msg + len;

	if ((unsigned)phase >= BLOG_PHASE_COUNT)
		phase = BLOG_PROVISIONER;
	time_prefix(prefix, sizeof(prefix));
	if (dev)
		pthread_mutex_lock(&dev->mutex);
	for (const char *p = msg;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t seg = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct strbuf b = { 0 };
		size_t plen;

		if (!nl && seg == 0 && p != msg)
			break; /* message ended with a newline */
		if (seg && p[seg - 1] == '\r')
			seg--;
		sb_put(&b, prefix, strlen(prefix));
		plen = b.len;
		if (head)
			sb_put(&b, head, strlen(head));
		escape_into(&b, p, seg);
		sb_put(&b, "\n", 1);
		if (!b.oom) {
			int fd = dev ? phase_fd(dev, phase) : -1;

			write_all(fd >= 0 ? fd : STDERR_FILENO, b.s, b.len);
			if (dev && dev->sink) {
				char **v = realloc(lines, (nlines + 1) * sizeof(*lines));

				if (v) {
					lines = v;
					b.s[b.len - 1] = '\0';
					lines[nlines] = strdup(b.s + plen);
					if (lines[nlines])
						nlines++;
				}
			}
		}
		free(b.s);
		if (!nl)
			break;
		p = nl + 1;
	}
	if (dev) {
		sink = dev->sink;
		usrptr = dev->sink_usrptr;
		pthread_mutex_unlock(&dev->mutex);
	}
	for (size_t i = 0; i < nlines; i++) {
		if (sink)
			sink(usrptr, phase, lines[i]);
		free(lines[i]);
	}
	free(lines);
}

void blog_bytes(struct boardlog *dev, enum blog_phase phase, const char *head, const char *buf,
		size_t len)
{
	blog_emit(dev, phase, head, buf, len);
}

void blogv(struct boardlog *dev, enum blog_phase phase, const char *fmt, va_list ap)
{
	char *msg = NULL;
	int len = vasprintf(&msg, fmt, ap);

	if (len < 0)
		return;
	blog_emit(dev, phase, NULL, msg, (size_t)len);
	free(msg);
}

void blog(struct boardlog *dev, enum blog_phase phase, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	blogv(dev, phase, fmt, ap);
	va_end(ap);
}
