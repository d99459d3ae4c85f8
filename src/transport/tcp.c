/* transport/tcp: the fastboot-over-TCP transport (spec fastboot.md §2.1).
 *
 * Owns one socket per board: connect with a deadline, the FB01 handshake,
 * 8-byte big-endian length framing, and mapping socket errors to the
 * transport seam's errnos. Used by the worker thread that owns the board. */
#include "transport/tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct tcp_priv {
	int fd;
	uint64_t frame_left; /* bytes of the current incoming frame not yet handed out */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int map_err(int e)
{
	switch (e) {
	case ECONNRESET:
	case EPIPE:
	case ENOTCONN:
	case ESHUTDOWN:
		return -ENODEV;
	case EAGAIN:
		return -ETIMEDOUT;
	default:
		return -e;
	}
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ms();
		struct pollfd p = { .fd = fd, .events = events };
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)(deadline - now > 0x7fffffff ? 0x7fffffff : deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

/* Write all of iov within the deadline. */
static int write_all(int fd, struct iovec *iov, int iovcnt, uint64_t deadline)
{
	while (iovcnt > 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				int r = wait_fd(fd, POLLOUT, deadline);

				if (r < 0)
					return r;
				continue;
			}
			return map_err(errno);
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);

		if (n == 0)
			return -ENODEV; /* peer closed */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				int r = wait_fd(fd, POLLIN, deadline);

				if (r < 0)
					return r;
				continue;
			}
			return map_err(errno);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int tcp_control(struct transport *t, const struct usb_ctrl_setup *s, void *data,
		       unsigned timeout_ms)
{
	(void)t; (void)s; (void)data; (void)timeout_ms;
	return -EOPNOTSUPP;
}

static int tcp_bulk_out(struct transport *t, const void *data, size_t len, unsigned timeout_ms)
{
	struct tcp_priv *p = t->priv;
	uint8_t hdr[8];
	struct iovec iov[2];
	uint64_t l = len;
	int r;

	if (len > 0x7fffffff)
		return -EINVAL;
	for (int i = 0; i < 8; i++)
		hdr[i] = (uint8_t)(l >> (56 - 8 * i));
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ (void *)(uintptr_t)data, len };
	r = write_all(p->fd, iov, len ? 2 : 1, now_ms() + timeout_ms);
	return r < 0 ? r : (int)len;
}

static int tcp_bulk_in(struct transport *t, void *data, size_t len, unsigned timeout_ms)
{
	struct tcp_priv *p = t->priv;
	uint64_t deadline = now_ms() + timeout_ms;
	size_t n;
	int r;

	if (len > 0x7fffffff)
		len = 0x7fffffff;
	while (p->frame_left == 0) {
		uint8_t hdr[8];

		r = read_all(p->fd, hdr, sizeof(hdr), deadline);
		if (r < 0)
			return r;
		for (int i = 0; i < 8; i++)
			p->frame_left = p->frame_left << 8 | hdr[i];
		/* zero-length frames carry nothing: skip them */
	}
	n = p->frame_left < len ? (size_t)p->frame_left : len;
	r = read_all(p->fd, data, n, deadline);
	if (r < 0)
		return r;
	p->frame_left -= n;
	return (int)n;
}

static void tcp_close(struct transport *t)
{
	struct tcp_priv *p = t->priv;

	if (p && p->fd >= 0)
		close(p->fd);
	free(p);
	free(t);
}

static const struct transport_ops tcp_ops = {
	.control = tcp_control,
	.bulk_out = tcp_bulk_out,
	.bulk_in = tcp_bulk_in,
	.close = tcp_close,
};

static int connect_deadline(const char *host, uint16_t port, uint64_t deadline, int *fdout)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	char portstr[8];
	int r = -EHOSTUNREACH, gai;

	snprintf(portstr, sizeof(portstr), "%u", port);
	gai = getaddrinfo(host, portstr, &hints, &res);
	if (gai)
		return gai == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		int one = 1, soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			r = -errno;
			close(fd);
			continue;
		}
		r = wait_fd(fd, POLLOUT, deadline);
		if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
			r = -soerr;
		if (r < 0) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		*fdout = fd;
		break;
	}
	freeaddrinfo(res);
	return r;
}

int transport_tcp_open(const char *host, uint16_t port, unsigned timeout_ms, struct transport **out)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct transport *t = NULL;
	struct tcp_priv *p = NULL;
	uint8_t hello[4];
	struct iovec iov = { (void *)(uintptr_t)"FB01", 4 };
	int fd = -1, r;

	*out = NULL;
	r = connect_deadline(host, port, deadline, &fd);
	if (r < 0)
		return r;
	/* The client speaks first; the daemon must answer within 2 s. */
	r = write_all(fd, &iov, 1, now_ms() + TCP_HANDSHAKE_TIMEOUT_MS);
	if (r < 0)
		goto out;
	r = read_all(fd, hello, sizeof(hello), now_ms() + TCP_HANDSHAKE_TIMEOUT_MS);
	if (r < 0)
		goto out;
	if (hello[0] != 'F' || hello[1] != 'B' || hello[2] < '0' || hello[2] > '9' ||
	    hello[3] < '0' || hello[3] > '9' || (hello[2] == '0' && hello[3] == '0')) {
		r = -EPROTO;
		goto out;
	}
	t = calloc(1, sizeof(*t));
	p = calloc(1, sizeof(*p));
	if (!t || !p) {
		r = -ENOMEM;
		goto out;
	}
	p->fd = fd;
	t->ops = &tcp_ops;
	t->kind = TRANSPORT_TCP;
	t->priv = p;
	if (strchr(host, ':'))
		snprintf(t->serial, sizeof(t->serial), "tcp:[%.40s]:%u", host, port);
	else
		snprintf(t->serial, sizeof(t->serial), "tcp:%.48s:%u", host, port);
	snprintf(t->port_path, sizeof(t->port_path), "%.31s", t->serial);
	*out = t;
	return 0;
out:
	free(t);
	free(p);
	if (fd >= 0)
		close(fd);
	return r;
}

int transport_tcp_parse_spec(const char *spec, char *host, size_t hostsz, uint16_t *port)
{
	const char *h = spec, *end, *colon;
	size_t n;

	*port = TCP_FASTBOOT_PORT;
	if (strncmp(h, "tcp:", 4) == 0)
		h += 4;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return -EINVAL;
		h++;
		n = (size_t)(end - h);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon)
			return -EINVAL;
	} else {
		colon = strrchr(h, ':');
		if (colon && strchr(h, ':') != colon)
			return -EINVAL; /* bare IPv6 needs brackets */
		n = colon ? (size_t)(colon - h) : strlen(h);
	}
	if (n == 0 || n >= hostsz)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	if (colon) {
		char *e;
		unsigned long v = strtoul(colon + 1, &e, 10);

		if (!colon[1] || *e || v == 0 || v > 65535)
			return -EINVAL;
		*port = (uint16_t)v;
	}
	return 0;
}
