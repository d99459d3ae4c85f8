/* ctl_server: the control socket in the engine (see ctl_server.h). Plain
 * non-blocking sockets driven by the front end's poll loop: accept, read
 * command lines, queue output per viewer. Front-end thread only. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/paths.h"
#include "station/ctl_server.h"
#include "station/ctl_wire.h"

struct ctl_conn {
	int fd;
	struct ctl_peer peer;
	bool read_only;               /* asked for, or not allowed to act */
	char *out;                    /* queued output: whole lines */
	size_t out_len, out_off;
	bool resync;                  /* fell behind: a snapshot follows once drained */
	unsigned long long dropped;   /* events this viewer missed */
	char in[CTL_CMD_LINE_MAX + 1];
	size_t in_len;
	bool closing;                 /* close once the output is written */
};

struct ctl_server {
	struct ctl_server_opts o;
	char *path;
	int lfd;
	struct ctl_conn *conns[CTL_MAX_CLIENTS];
	size_t n;
};

bool ctl_peer_may_act(uid_t peer_uid, const gid_t *peer_groups, size_t ngroups, gid_t peer_gid,
		      uid_t engine_uid, gid_t station_group)
{
	if (peer_uid == 0 || peer_uid == engine_uid || peer_gid == station_group)
		return true;
	for (size_t i = 0; i < ngroups; i++)
		if (peer_groups[i] == station_group)
			return true;
	return false;
}

/* Is something answering on @path? */
static bool socket_alive(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return alive;
}

int ctl_server_new(const struct ctl_server_opts *o, struct ctl_server **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctl_server *s;
	char *dir, *slash;
	mode_t old;
	int r;

	if (strlen(o->path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	if (!s->o.client_buf_max)
		s->o.client_buf_max = CTL_CLIENT_BUF_MAX;
	s->lfd = -1;
	s->path = strdup(o->path);
	dir = strdup(o->path);
	if (!s->path || !dir) {
		free(dir);
		r = -ENOMEM;
		goto fail;
	}
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir_p(dir, 0755);
	}
	free(dir);
	if (socket_alive(o->path)) {
		r = -EADDRINUSE;
		goto fail;
	}
	unlink(o->path); /* a stale socket of an engine that is gone */
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->lfd < 0) {
		r = -errno;
		goto fail;
	}
	memcpy(sa.sun_path, o->path, strlen(o->path) + 1);
	old = umask(0117); /* created 0660: no window where others could connect */
	r = bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0)
		goto fail;
	if (chown(o->path, (uid_t)-1, o->group) < 0 && errno != EPERM) {
		r = -errno;
		goto fail;
	}
	if (chmod(o->path, 0660) < 0 || listen(s->lfd, 16) < 0) {
		r = -errno;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->lfd >= 0) {
		close(s->lfd);
		s->lfd = -1;
		if (r != -EADDRINUSE)
			unlink(o->path);
	}
	free(s->path);
	free(s);
	return r;
}

static void conn_free(struct ctl_conn *c)
{
	close(c->fd);
	free(c->out);
	free(c);
}

void ctl_server_free(struct ctl_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		conn_free(s->conns[i]);
	if (s->lfd >= 0) {
		close(s->lfd);
		unlink(s->path);
	}
	free(s->path);
	free(s);
}

size_t ctl_server_clients(const struct ctl_server *s)
{
	return s->n;
}

/* Write what is queued; a viewer that went away is marked closing. */
static void conn_flush(struct ctl_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				c->closing = true;
				c->out_off = c->out_len = 0;
			}
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
}

/* Queue one line (takes @line). @force: past the bound (snapshots, replies). */
static bool conn_queue(struct ctl_server *s, struct ctl_conn *c, char *line, bool force)
{
	size_t n;

	if (!line)
		return false;
	n = strlen(line);
	if (!force && c->out_len - c->out_off + n + 1 > s->o.client_buf_max) {
		free(line);
		return false;
	}
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	char *nb = realloc(c->out, c->out_len + n + 1);
	if (!nb) {
		free(line);
		return false;
	}
	c->out = nb;
	memcpy(c->out + c->out_len, line, n);
	c->out[c->out_len + n] = '\n';
	c->out_len += n + 1;
	free(line);
	return true;
}

static void conn_info(struct ctl_server *s, struct ctl_conn *c, struct ctl_info *in)
{
	*in = *s->o.info;
	in->read_only = c->read_only;
	in->events_dropped += c->dropped;
}

static void conn_snapshot(struct ctl_server *s, struct ctl_conn *c, bool hello)
{
	const struct station_model *m = s->o.model;
	struct ctl_info in;

	conn_info(s, c, &in);
	conn_queue(s, c, hello ? ctl_hello_encode(&in) : ctl_info_encode(&in), true);
	conn_queue(s, c, ctl_snapshot_begin_encode(m), true);
	for (size_t i = 0; i < m->n; i++)
		conn_queue(s, c, ctl_tile_encode(&m->tiles[i]), true);
	conn_queue(s, c, ctl_snapshot_end_encode(), true);
}

static void peer_identify(struct ctl_server *s, struct ctl_conn *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[64];
	socklen_t glen = sizeof(groups);
	size_t ngroups = 0;
	struct passwd pw, *pwp = NULL;
	char buf[1024];

	c->peer.uid = (uid_t)-1;
	c->peer.gid = (gid_t)-1;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->peer.uid = cred.uid;
		c->peer.gid = cred.gid;
		c->peer.pid = cred.pid;
	}
#ifdef SO_PEERGROUPS
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
		ngroups = glen / sizeof(gid_t);
#endif
	if (getpwuid_r(c->peer.uid, &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
		snprintf(c->peer.user, sizeof(c->peer.user), "%s", pw.pw_name);
	else
		snprintf(c->peer.user, sizeof(c->peer.user), "uid %u", (unsigned)c->peer.uid);
	if (!ngroups && pwp) {
		int ng = (int)(sizeof(groups) / sizeof(groups[0]));

		if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &ng) >= 0)
			ngroups = (size_t)ng;
	}
	c->peer.may_act = c->peer.uid != (uid_t)-1 &&
		ctl_peer_may_act(c->peer.uid, groups, ngroups, c->peer.gid, geteuid(), s->o.group);
	c->read_only = !c->peer.may_act;
}

static void server_accept(struct ctl_server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct ctl_conn *c;

		if (fd < 0)
			return;
		if (s->n == CTL_MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
			close(fd);
			continue;
		}
		c->fd = fd;
		peer_identify(s, c);
		s->conns[s->n++] = c;
		conn_snapshot(s, c, true);
		conn_flush(c);
	}
}

static void conn_command(struct ctl_server *s, struct ctl_conn *c, const char *line, size_t len)
{
	struct ctl_cmd cmd;
	uint64_t id;
	char reply[512] = "";
	int r;

	/* The one client message that is not a command: this viewer only looks. */
	if (len == 19 && memcmp(line, "{\"msg\":\"read-only\"}", 19) == 0) {
		c->read_only = true;
		return;
	}
	r = ctl_cmd_decode(line, len, &cmd, &id, reply, sizeof(reply));
	if (r == 0 && c->read_only) {
		snprintf(reply, sizeof(reply), "%s: %s", ctl_cmd_name(cmd.type),
			 c->peer.may_act ? "this viewer is read-only" :
			 "not permitted: only root, the engine's user and the station group may act");
		r = -EPERM;
	} else if (r == 0) {
		r = s->o.handler(s->o.usrptr, &c->peer, &cmd, reply, sizeof(reply));
	}
	conn_queue(s, c, ctl_reply_encode(id, r, reply), true);
}

static void conn_read(struct ctl_server *s, struct ctl_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, MSG_DONTWAIT);
		size_t start = 0;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				c->closing = true;
			return;
		}
		if (n == 0) {
			c->closing = true;
			c->out_off = c->out_len = 0;
			return;
		}
		c->in_len += (size_t)n;
		for (;;) {
			char *nl = memchr(c->in + start, '\n', c->in_len - start);

			if (!nl)
				break;
			conn_command(s, c, c->in + start, (size_t)(nl - (c->in + start)));
			start = (size_t)(nl - c->in) + 1;
		}
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
		if (c->in_len == sizeof(c->in) - 1) {
			conn_queue(s, c, ctl_reply_encode(0, -EMSGSIZE, "command line too long"), true);
			c->closing = true;
			return;
		}
	}
}

size_t ctl_server_pollfds(struct ctl_server *s, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	if (max == 0)
		return 0;
	fds[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
	for (size_t i = 0; i < s->n && n < max; i++)
		fds[n++] = (struct pollfd){ .fd = s->conns[i]->fd,
			.events = (short)(POLLIN | (s->conns[i]->out_len > s->conns[i]->out_off ? POLLOUT : 0)) };
	return n;
}

/* Drop closed viewers; a drained one that fell behind gets its snapshot. */
static void server_sweep(struct ctl_server *s)
{
	size_t out = 0;

	for (size_t i = 0; i < s->n; i++) {
		struct ctl_conn *c = s->conns[i];

		if (!c->closing && c->resync && c->out_len == c->out_off) {
			c->resync = false;
			conn_snapshot(s, c, false);
			conn_flush(c);
		}
		if (c->closing && (c->out_len == c->out_off || c->fd < 0)) {
			conn_free(c);
			continue;
		}
		s->conns[out++] = c;
	}
	s->n = out;
}

void ctl_server_dispatch(struct ctl_server *s, const struct pollfd *fds, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (!fds[k].revents)
			continue;
		if (fds[k].fd == s->lfd) {
			server_accept(s);
			continue;
		}
		for (size_t i = 0; i < s->n; i++) {
			struct ctl_conn *c = s->conns[i];

			if (c->fd != fds[k].fd)
				continue;
			if (fds[k].revents & (POLLIN | POLLHUP | POLLERR))
				conn_read(s, c);
			if (!c->closing || c->out_len > c->out_off)
				conn_flush(c);
			if (fds[k].revents & (POLLHUP | POLLERR) && !(fds[k].revents & POLLIN))
				c->closing = true;
		}
	}
	server_sweep(s);
}

/* Keep the unsent part of the line being written; drop the rest. */
static void conn_fall_behind(struct ctl_conn *c)
{
	char *nl = c->out_off ? memchr(c->out + c->out_off, '\n', c->out_len - c->out_off) : NULL;
	size_t keep = 0;

	if (c->out_off > 0 && c->out[c->out_off - 1] != '\n' && nl)
		keep = (size_t)(nl - c->out) + 1;
	else
		keep = c->out_off;
	c->out_len = keep;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	c->resync = true;
}

void ctl_server_event(struct ctl_server *s, const struct event *ev)
{
	char *js = NULL;

	for (size_t i = 0; i < s->n; i++) {
		struct ctl_conn *c = s->conns[i];

		if (c->closing)
			continue;
		if (c->resync) {
			c->dropped++;
			continue;
		}
		if (!js && !(js = event_to_json(ev)))
			return;
		if (!conn_queue(s, c, strdup(js), false)) {
			c->dropped++;
			conn_fall_behind(c);
			continue;
		}
		conn_flush(c);
	}
	free(js);
	server_sweep(s);
}

void ctl_server_info_changed(struct ctl_server *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct ctl_conn *c = s->conns[i];
		struct ctl_info in;

		if (c->closing || c->resync)
			continue;
		conn_info(s, c, &in);
		conn_queue(s, c, ctl_info_encode(&in), true);
		conn_flush(c);
	}
	server_sweep(s);
}

void ctl_server_resync_all(struct ctl_server *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct ctl_conn *c = s->conns[i];

		if (c->closing)
			continue;
		if (c->out_len > c->out_off) {
			c->resync = true;     /* after what is queued */
			continue;
		}
		conn_snapshot(s, c, false);
		conn_flush(c);
	}
	server_sweep(s);
}
