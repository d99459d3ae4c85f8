/* ctl: the client end of the control socket (see ctl.h). It keeps its own
 * model, filled by the engine's snapshot and then by live events, and sends
 * typed commands. One thread owns a client (the front end's). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/paths.h"
#include "station/ctl.h"
#include "station/ctl_wire.h"

#define CTL_CLIENT_LINE_MAX (16u << 20)   /* longest server line we accept */

struct ctl_client {
	int fd;
	bool want_read_only;
	bool have_hello, snapshot_done;
	struct station_model model;
	struct ctl_info info;
	char *in;
	size_t in_len, in_cap;
	uint64_t next_id;
	/* The last reply read. */
	bool have_reply;
	uint64_t reply_id;
	int reply_rc;
	char reply_text[512];
};

char *ctl_socket_path(const struct paths *p)
{
	return path_join(p->run, "control");
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };

				if (poll(&p, 1, 5000) <= 0)
					return -ETIMEDOUT;
				continue;
			}
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_line(int fd, char *line)
{
	size_t n;
	int r;

	if (!line)
		return -ENOMEM;
	n = strlen(line);
	r = send_all(fd, line, n);
	if (r == 0)
		r = send_all(fd, "\n", 1);
	free(line);
	return r;
}

/* Fold one server line in. 1 when applied, 0 ignored, -errno. */
static int apply_line(struct ctl_client *c, const char *line, size_t len)
{
	struct ctl_msg *m = malloc(sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	r = ctl_msg_decode(line, len, m);
	if (r < 0) {
		free(m);
		return 0; /* a line we do not understand (newer engine): skip it */
	}
	switch (m->type) {
	case CTL_MSG_HELLO:
	case CTL_MSG_INFO:
		c->info = m->info;
		c->info.read_only |= c->want_read_only;
		c->have_hello = true;
		break;
	case CTL_MSG_SNAPSHOT_BEGIN:
		model_free(&c->model);
		model_init(&c->model);
		c->model.counts = m->counts;
		c->model.first_done_ns = m->first_done_ns;
		c->model.last_seq = m->last_seq;
		break;
	case CTL_MSG_TILE: {
		struct tile *t = model_tile(&c->model, m->tile.port);

		if (!t) {
			r = -ENOMEM;
			break;
		}
		*t = m->tile;
		break;
	}
	case CTL_MSG_SNAPSHOT_END:
		c->snapshot_done = true;
		break;
	case CTL_MSG_REPLY:
		c->have_reply = true;
		c->reply_id = m->id;
		c->reply_rc = m->rc;
		snprintf(c->reply_text, sizeof(c->reply_text), "%s", m->text);
		break;
	case CTL_MSG_EVENT:
		r = model_apply(&c->model, &m->ev);
		event_clear(&m->ev);
		break;
	}
	free(m);
	return r < 0 ? r : 1;
}

/* Read what the socket has and apply every complete line. @block: wait up
 * to @timeout_ms for something. Returns lines applied or -errno (-EPIPE:
 * the engine closed the connection). */
static int pump(struct ctl_client *c, int timeout_ms)
{
	int applied = 0, r;

	if (timeout_ms > 0) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };

		r = poll(&p, 1, timeout_ms);
		if (r < 0)
			return errno == EINTR ? 0 : -errno;
		if (r == 0)
			return 0;
	}
	for (;;) {
		if (c->in_cap - c->in_len < 65536) {
			size_t ncap = c->in_cap ? c->in_cap * 2 : 131072;
			char *n;

			if (ncap > CTL_CLIENT_LINE_MAX + 65536u)
				return -EMSGSIZE;
			n = realloc(c->in, ncap);
			if (!n)
				return -ENOMEM;
			c->in = n;
			c->in_cap = ncap;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		if (n == 0) {
			return applied > 0 ? applied : -EPIPE;
		}
		c->in_len += (size_t)n;
		/* Apply every complete line. */
		size_t start = 0;
		for (;;) {
			char *nl = memchr(c->in + start, '\n', c->in_len - start);

			if (!nl)
				break;
			r = apply_line(c, c->in + start, (size_t)(nl - (c->in + start)));
			if (r < 0)
				return r;
			applied += r;
			start = (size_t)(nl - c->in) + 1;
		}
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
		if (c->in_len > CTL_CLIENT_LINE_MAX)
			return -EMSGSIZE;
	}
	return applied;
}

int ctl_connect(const char *socket_path, bool read_only, struct ctl_client **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctl_client *c;
	uint64_t deadline;
	int r;

	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	model_init(&c->model);
	c->want_read_only = read_only;
	c->next_id = 1;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = -errno;
		goto fail;
	}
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto fail;
	}
	if (read_only && (r = send_line(c->fd, strdup("{\"msg\":\"read-only\"}"))) < 0)
		goto fail;
	deadline = now_ms() + 10000;
	while (!c->have_hello || !c->snapshot_done) {
		uint64_t now = now_ms();

		if (now >= deadline) {
			r = -ETIMEDOUT;
			goto fail;
		}
		r = pump(c, (int)(deadline - now));
		if (r < 0)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	ctl_close(c);
	return r;
}

void ctl_close(struct ctl_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	model_free(&c->model);
	free(c->in);
	free(c);
}

int ctl_fd(const struct ctl_client *c)
{
	return c->fd;
}

int ctl_read(struct ctl_client *c)
{
	return pump(c, 0);
}

struct station_model *ctl_model(struct ctl_client *c)
{
	return &c->model;
}

const struct ctl_info *ctl_info(const struct ctl_client *c)
{
	return &c->info;
}

int ctl_command(struct ctl_client *c, const struct ctl_cmd *cmd, char *reply, size_t len,
		unsigned timeout_ms)
{
	uint64_t id = c->next_id++, deadline = now_ms() + timeout_ms;
	int r;

	if (reply && len)
		reply[0] = '\0';
	/* A read-only viewer's command goes out too: the engine decides. */
	r = send_line(c->fd, ctl_cmd_encode(cmd, id));
	if (r < 0)
		return r == -ECONNRESET ? -EPIPE : r;
	c->have_reply = false;
	for (;;) {
		uint64_t now = now_ms();

		if (c->have_reply && c->reply_id == id)
			break;
		c->have_reply = false;
		if (now >= deadline)
			return -ETIMEDOUT;
		r = pump(c, (int)(deadline - now));
		if (r < 0)
			return r;
	}
	if (reply && len)
		snprintf(reply, len, "%s", c->reply_text);
	return c->reply_rc;
}
