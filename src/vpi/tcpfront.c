/* vpi/tcpfront: the virtual Pi's fastboot-over-TCP listener (spec §2).
 *
 * Owns the listening socket and the framing: the client sends "FB01" and the
 * gadget answers "FB01" (any FBnn with nn >= 1 is accepted) within 2 s; then
 * every message is an 8-byte big-endian length and that many bytes. A command
 * read takes at most the 256 bytes the daemon reads, the rest of a frame is
 * the next read (spec §1.3); zero-length frames are skipped. Connections are
 * served one after the other on the calling thread (`fastbootd -i tcp`). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vpi/tcpfront.h"

struct vpi_tcpfront {
	int lfd;
	uint16_t port;
	enum vpi_fb_mode mode;
};

struct conn {
	int fd;
	uint64_t frame_left;         /* bytes of the current frame not yet read */
	volatile sig_atomic_t *stop;
};

int vpi_tcpfront_listen(const struct vpi_tcpfront_opts *o, struct vpi_tcpfront **out)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(o->port) };
	socklen_t sl = sizeof(sa);
	struct vpi_tcpfront *t;
	int one = 1, rc;

	*out = NULL;
	if (inet_pton(AF_INET, o->bind_addr ? o->bind_addr : "127.0.0.1", &sa.sin_addr) != 1)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->mode = o->mode;
	t->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->lfd < 0) {
		rc = -errno;
		goto fail;
	}
	setsockopt(t->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(t->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(t->lfd, 4) < 0 ||
	    getsockname(t->lfd, (struct sockaddr *)&sa, &sl) < 0) {
		rc = -errno;
		goto fail;
	}
	t->port = ntohs(sa.sin_port);
	*out = t;
	return 0;
fail:
	vpi_tcpfront_close(t);
	return rc;
}

uint16_t vpi_tcpfront_port(const struct vpi_tcpfront *t) { return t->port; }

void vpi_tcpfront_close(struct vpi_tcpfront *t)
{
	if (!t)
		return;
	if (t->lfd >= 0)
		close(t->lfd);
	free(t);
}

/* Read exactly @len bytes; 0 on orderly close before the first byte. */
static ssize_t read_full(struct conn *c, void *buf, size_t len, int timeout_ms)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&pfd, 1, timeout_ms < 0 ? 200 : timeout_ms);
		ssize_t n;

		if (pr < 0 && errno != EINTR)
			return -errno;
		if (c->stop && *c->stop)
			return -EINTR;
		if (pr <= 0) {
			if (timeout_ms >= 0)
				return -ETIMEDOUT;
			continue;
		}
		n = recv(c->fd, p + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return got ? -ECONNRESET : 0;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static ssize_t conn_read(void *usrptr, void *buf, size_t len)
{
	struct conn *c = usrptr;
	size_t want;
	ssize_t n;

	while (c->frame_left == 0) {
		uint8_t h[8];
		n = read_full(c, h, sizeof(h), -1);
		if (n <= 0)
			return n;
		for (int i = 0; i < 8; i++)
			c->frame_left = c->frame_left << 8 | h[i];
	}
	want = c->frame_left < len ? (size_t)c->frame_left : len;
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&pfd, 1, 200);
		if (c->stop && *c->stop)
			return -EINTR;
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr > 0)
			break;
	}
	n = recv(c->fd, buf, want, 0);
	if (n < 0)
		return errno == EINTR ? -EINTR : -errno;
	if (n == 0)
		return -ECONNRESET;   /* closed inside a frame */
	c->frame_left -= (uint64_t)n;
	return n;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t conn_write(void *usrptr, const void *buf, size_t len)
{
	struct conn *c = usrptr;
	uint8_t h[8];
	int rc;

	for (int i = 0; i < 8; i++)
		h[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	rc = send_all(c->fd, h, sizeof(h));
	if (!rc)
		rc = send_all(c->fd, buf, len);
	return rc ? rc : (ssize_t)len;
}

static int handshake(struct conn *c)
{
	char hs[4];
	ssize_t n = read_full(c, hs, sizeof(hs), VPI_TCP_HANDSHAKE_MS);

	if (n != 4 || hs[0] != 'F' || hs[1] != 'B' || hs[2] < '0' || hs[2] > '9' || hs[3] < '0' ||
	    hs[3] > '9' || (hs[2] - '0') * 10 + (hs[3] - '0') < 1)
		return -EPROTO;
	return send_all(c->fd, "FB01", 4);
}

int vpi_tcpfront_run(struct vpi_tcpfront *t, struct vpi_board *b, volatile sig_atomic_t *stop)
{
	for (;;) {
		struct pollfd pfd = { .fd = t->lfd, .events = POLLIN };
		struct conn c = { .stop = stop };
		struct vpi_fb_channel ch = { .read = conn_read, .write = conn_write, .usrptr = &c,
					     .transport_name = "tcp" };
		int pr, one = 1, rc;

		if (stop && *stop)
			return 0;
		pr = poll(&pfd, 1, 200);
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr <= 0)
			continue;
		c.fd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c.fd < 0)
			continue;
		setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (handshake(&c)) {
			vpi_log(b, "tcpfront: bad or missing FB01 handshake, connection closed");
			close(c.fd);
			continue;
		}
		/* Each connection gets a fresh device object (spec §2.2, `tcp` mode). */
		rc = vpi_fastbootd_serve_mode(b, &ch, t->mode, t->mode == VPI_FB_MODE_DATA_PLANE);
		close(c.fd);
		if (rc == -ENODEV || rc == VPI_FB_END_REBOOT || rc == VPI_FB_END_REBOOT_BOOTLOADER ||
		    rc == VPI_FB_END_SHUTDOWN)
			return rc;
		if (rc < 0 && rc != -ECONNRESET && rc != -EINTR && rc != -EPIPE)
			vpi_log(b, "tcpfront: session ended: %s", strerror(-rc));
	}
}
