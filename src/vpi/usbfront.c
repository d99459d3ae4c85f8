/* vpi/usbfront: the in-process USB device of one stage of a virtual Pi.
 *
 * Owns the rendezvous between the host's transfers (any host thread, through a
 * TRANSPORT_SIM transport) and the board's device thread: endpoint 0 vendor
 * requests, one bulk OUT and one bulk IN pipe, the link-rate clock, and the
 * standard GET_DESCRIPTOR answers (served here, as a USB device controller
 * would, without waking the firmware). All state is under dev->lock. */
#include "vpi/usbfront.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vpi/board.h"

/* How long a link may idle and still count as one continuous stream. */
#define LINK_CREDIT_NS 5000000ull

struct vpi_usbdev {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs;
	bool dead;
	struct vpi_usbdesc desc;
	struct vpi_board *board;
	bool no_phase_accounting;

	/* endpoint 0: one request in flight */
	bool ctrl_posted, ctrl_taken;
	struct usb_ctrl_setup ctrl_setup;
	uint8_t *ctrl_out;            /* OUT data stage copy */
	bool in_pending;              /* device took an IN request, reply not yet given */
	bool in_ready;                /* a reply (or stall) waits for the host */
	bool in_stall;
	uint8_t *in_reply;
	size_t in_reply_len;

	/* bulk OUT (host -> device) */
	const uint8_t *out_buf;
	size_t out_len, out_pos;
	bool out_posted;
	/* bulk IN (device -> host) */
	const uint8_t *in_buf;
	size_t in_len, in_pos;
	bool in_posted;

	struct timespec link_free;    /* when the link finishes what it was given */
};

static void ts_add_ns(struct timespec *t, uint64_t ns)
{
	t->tv_sec += (time_t)(ns / 1000000000u);
	t->tv_nsec += (long)(ns % 1000000000u);
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

static struct timespec deadline_after(unsigned ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	ts_add_ns(&t, (uint64_t)ms * 1000000u);
	return t;
}

/* Wait on the device cond; ms 0 = forever. Returns ETIMEDOUT or 0. */
static int cond_wait(struct vpi_usbdev *dev, const struct timespec *dl)
{
	if (!dl)
		return pthread_cond_wait(&dev->cond, &dev->lock);
	return pthread_cond_timedwait(&dev->cond, &dev->lock, dl);
}

struct vpi_usbdev *vpi_usbdev_new(const struct vpi_usbdesc *d, struct vpi_board *b)
{
	struct vpi_usbdev *dev = calloc(1, sizeof(*dev));
	pthread_condattr_t ca;

	if (!dev)
		return NULL;
	pthread_mutex_init(&dev->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dev->cond, &ca);
	pthread_condattr_destroy(&ca);
	dev->refs = 1;
	dev->desc = *d;
	dev->board = b;
	clock_gettime(CLOCK_MONOTONIC, &dev->link_free);
	return dev;
}

void vpi_usbdev_ref(struct vpi_usbdev *dev)
{
	pthread_mutex_lock(&dev->lock);
	dev->refs++;
	pthread_mutex_unlock(&dev->lock);
}

void vpi_usbdev_unref(struct vpi_usbdev *dev)
{
	bool last;

	if (!dev)
		return;
	pthread_mutex_lock(&dev->lock);
	last = --dev->refs == 0;
	pthread_mutex_unlock(&dev->lock);
	if (!last)
		return;
	free(dev->ctrl_out);
	free(dev->in_reply);
	pthread_cond_destroy(&dev->cond);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

void vpi_usbdev_kill(struct vpi_usbdev *dev)
{
	pthread_mutex_lock(&dev->lock);
	dev->dead = true;
	pthread_cond_broadcast(&dev->cond);
	pthread_mutex_unlock(&dev->lock);
}

bool vpi_usbdev_dead(struct vpi_usbdev *dev)
{
	bool d;

	pthread_mutex_lock(&dev->lock);
	d = dev->dead;
	pthread_mutex_unlock(&dev->lock);
	return d;
}

const struct vpi_usbdesc *vpi_usbdev_desc(const struct vpi_usbdev *dev)
{
	return &dev->desc;
}

/* ---- device side ------------------------------------------------------- */

int vpi_usbdev_ctrl_wait(struct vpi_usbdev *dev, struct usb_ctrl_setup *s, void *data,
			 size_t cap, unsigned timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms);
	int r = 0;

	pthread_mutex_lock(&dev->lock);
	while (!dev->dead && !(dev->ctrl_posted && !dev->ctrl_taken)) {
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			goto out;
		}
	}
	if (dev->dead) {
		r = -ENODEV;
		goto out;
	}
	*s = dev->ctrl_setup;
	dev->ctrl_taken = true;
	if (!(s->bmRequestType & 0x80)) {
		size_t n = s->wLength < cap ? s->wLength : cap;
		if (n && data)
			memcpy(data, dev->ctrl_out, n);
	} else {
		dev->in_pending = true;
	}
	pthread_cond_broadcast(&dev->cond);
out:
	pthread_mutex_unlock(&dev->lock);
	return r;
}

static int ctrl_answer(struct vpi_usbdev *dev, const void *data, size_t len, bool stall)
{
	uint8_t *copy = NULL;
	int r = 0;

	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, len);
	}
	pthread_mutex_lock(&dev->lock);
	if (dev->dead) {
		r = -ENODEV;
		goto out;
	}
	if (!dev->in_pending) {
		r = -EINVAL;
		goto out;
	}
	dev->in_pending = false;
	free(dev->in_reply);
	dev->in_reply = copy;
	dev->in_reply_len = len;
	dev->in_stall = stall;
	dev->in_ready = true;
	copy = NULL;
	pthread_cond_broadcast(&dev->cond);
out:
	pthread_mutex_unlock(&dev->lock);
	free(copy);
	return r;
}

int vpi_usbdev_ctrl_reply(struct vpi_usbdev *dev, const void *data, size_t len)
{
	return ctrl_answer(dev, data, len, false);
}

int vpi_usbdev_ctrl_stall(struct vpi_usbdev *dev)
{
	return ctrl_answer(dev, NULL, 0, true);
}

int vpi_usbdev_bulk_read(struct vpi_usbdev *dev, void *buf, size_t len, unsigned timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms);
	size_t n = 0;
	int r = 0;

	pthread_mutex_lock(&dev->lock);
	while (!dev->dead && !(dev->out_posted && dev->out_pos < dev->out_len)) {
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			goto out;
		}
	}
	if (dev->dead) {
		r = -ENODEV;
		goto out;
	}
	n = dev->out_len - dev->out_pos;
	if (n > len)
		n = len;
	memcpy(buf, dev->out_buf + dev->out_pos, n);
	dev->out_pos += n;
	pthread_cond_broadcast(&dev->cond);
out:
	pthread_mutex_unlock(&dev->lock);
	if (r)
		return r;
	if (dev->board && !dev->no_phase_accounting && vpi_board_phase_bytes(dev->board, n) < 0)
		return -ENODEV;
	return (int)n;
}

int vpi_usbdev_bulk_read_full(struct vpi_usbdev *dev, void *buf, size_t len, unsigned timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		size_t want = len - got > (1u << 30) ? (1u << 30) : len - got;
		int n = vpi_usbdev_bulk_read(dev, (uint8_t *)buf + got, want, timeout_ms);
		if (n < 0)
			return n;
		got += (size_t)n;
	}
	return 0;
}

int vpi_usbdev_bulk_write(struct vpi_usbdev *dev, const void *buf, size_t len, unsigned timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms);
	int r = 0;

	if (len == 0)
		return vpi_usbdev_dead(dev) ? -ENODEV : 0;
	pthread_mutex_lock(&dev->lock);
	while (!dev->dead && dev->in_posted)   /* one packet at a time */
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			goto out;
		}
	if (dev->dead) {
		r = -ENODEV;
		goto out;
	}
	dev->in_buf = buf;
	dev->in_len = len;
	dev->in_pos = 0;
	dev->in_posted = true;
	pthread_cond_broadcast(&dev->cond);
	while (!dev->dead && dev->in_pos < dev->in_len) {
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			break;
		}
	}
	if (!r && dev->dead && dev->in_pos < dev->in_len)
		r = -ENODEV;
	dev->in_posted = false;
	dev->in_buf = NULL;
	pthread_cond_broadcast(&dev->cond);
out:
	pthread_mutex_unlock(&dev->lock);
	if (r == 0 && dev->board && !dev->no_phase_accounting &&
	    vpi_board_phase_bytes(dev->board, len) < 0)
		return -ENODEV;
	return r ? r : (int)len;
}

void vpi_usbdev_set_phase_accounting(struct vpi_usbdev *dev, bool on)
{
	pthread_mutex_lock(&dev->lock);
	dev->no_phase_accounting = !on;
	pthread_mutex_unlock(&dev->lock);
}

int vpi_usbdev_sleep(struct vpi_usbdev *dev, unsigned ms)
{
	struct timespec dl = deadline_after(ms);
	int r = 0;

	pthread_mutex_lock(&dev->lock);
	while (!dev->dead && cond_wait(dev, &dl) != ETIMEDOUT)
		;
	if (dev->dead)
		r = -ENODEV;
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* ---- host side --------------------------------------------------------- */

static size_t utf16_string(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s), len = 2 + 2 * n;

	if (len > 255)
		len = 255 & ~1u;
	if (len > cap)
		len = cap & ~(size_t)1;
	out[0] = (uint8_t)len;
	out[1] = 3;
	for (size_t i = 0; 2 + 2 * i + 1 < len; i++) {
		out[2 + 2 * i] = (uint8_t)s[i];
		out[3 + 2 * i] = 0;
	}
	return len;
}

/* Standard GET_DESCRIPTOR, answered by the "controller". */
static int std_descriptor(struct vpi_usbdev *dev, const struct usb_ctrl_setup *s, uint8_t *data)
{
	const struct vpi_usbdesc *d = &dev->desc;
	uint8_t buf[256];
	size_t n = 0;
	uint8_t type = (uint8_t)(s->wValue >> 8), idx = (uint8_t)s->wValue;

	memset(buf, 0, sizeof(buf));
	if (type == 1) {   /* device */
		uint8_t dd[18] = { 18, 1, 0x00, 0x02, 0, 0, 0, 64,
				   (uint8_t)d->vid, (uint8_t)(d->vid >> 8), (uint8_t)d->pid,
				   (uint8_t)(d->pid >> 8), (uint8_t)d->bcd_device,
				   (uint8_t)(d->bcd_device >> 8), d->manufacturer[0] ? 1 : 0,
				   d->product[0] ? 2 : 0, d->iserial_index, 1 };
		memcpy(buf, dd, 18);
		n = 18;
	} else if (type == 2) {   /* configuration: one interface, bulk endpoints */
		uint8_t neps = (uint8_t)((d->ep_out ? 1 : 0) + (d->ep_in ? 1 : 0));
		uint16_t total = (uint16_t)(9 + 9 + 7 * neps);
		uint8_t *p = buf;
		uint8_t cfg[9] = { 9, 2, (uint8_t)total, (uint8_t)(total >> 8), 1, 1, 0, 0x80, 250 };
		uint8_t itf[9] = { 9, 4, 0, 0, neps, d->if_class, d->if_subclass, d->if_protocol, 0 };
		memcpy(p, cfg, 9);
		memcpy(p + 9, itf, 9);
		p += 18;
		if (d->ep_out) {
			uint8_t ep[7] = { 7, 5, d->ep_out, 2, (uint8_t)d->max_packet,
					  (uint8_t)(d->max_packet >> 8), 0 };
			memcpy(p, ep, 7);
			p += 7;
		}
		if (d->ep_in) {
			uint8_t ep[7] = { 7, 5, d->ep_in, 2, (uint8_t)d->max_packet,
					  (uint8_t)(d->max_packet >> 8), 0 };
			memcpy(p, ep, 7);
			p += 7;
		}
		n = (size_t)(p - buf);
	} else if (type == 3) {
		if (idx == 0) {
			uint8_t lang[4] = { 4, 3, 0x09, 0x04 };
			memcpy(buf, lang, 4);
			n = 4;
		} else if (idx == 1 && d->manufacturer[0]) {
			n = utf16_string(d->manufacturer, buf, sizeof(buf));
		} else if (idx == 2 && d->product[0]) {
			n = utf16_string(d->product, buf, sizeof(buf));
		} else if (idx == d->iserial_index && d->serial[0]) {
			n = utf16_string(d->serial, buf, sizeof(buf));
		} else {
			return -EPIPE;
		}
	} else {
		return -EPIPE;
	}
	if (n > s->wLength)
		n = s->wLength;
	memcpy(data, buf, n);
	return (int)n;
}

int vpi_usbdev_host_control(struct vpi_usbdev *dev, const struct usb_ctrl_setup *s, void *data,
			    unsigned timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms);
	uint8_t *copy = NULL;
	bool in = s->bmRequestType & 0x80;
	int r = 0;

	if ((s->bmRequestType & 0x60) == 0 && s->bRequest == 6 && in) {
		if (vpi_usbdev_dead(dev))
			return -ENODEV;
		return std_descriptor(dev, s, data);
	}
	if (!in && s->wLength) {
		copy = malloc(s->wLength);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, s->wLength);
	}
	pthread_mutex_lock(&dev->lock);
	if (in && dev->in_ready)   /* the late answer to an earlier, timed-out read */
		goto reply;
	while (!dev->dead && dev->ctrl_posted && !dev->ctrl_taken)
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			goto out;
		}
	if (dev->dead) {
		r = -ENODEV;
		goto out;
	}
	free(dev->ctrl_out);
	dev->ctrl_out = copy;
	copy = NULL;
	dev->ctrl_setup = *s;
	dev->ctrl_posted = true;
	dev->ctrl_taken = false;
	pthread_cond_broadcast(&dev->cond);
	while (!dev->dead && !dev->ctrl_taken)
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT)
			break;
	if (!dev->ctrl_taken) {   /* NAKed until the host gave up */
		dev->ctrl_posted = false;
		r = dev->dead ? -ENODEV : -ETIMEDOUT;
		goto out;
	}
	dev->ctrl_posted = false;
	if (!in) {
		r = s->wLength;
		goto out;
	}
	while (!dev->dead && !dev->in_ready)
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT) {
			r = -ETIMEDOUT;   /* the answer will land on the next read */
			goto out;
		}
	if (!dev->in_ready) {   /* an answer given just before leaving still arrives */
		r = -ENODEV;
		goto out;
	}
reply:
	dev->in_ready = false;
	if (dev->in_stall) {
		r = -EPIPE;
	} else {
		size_t n = dev->in_reply_len < s->wLength ? dev->in_reply_len : s->wLength;
		if (n)
			memcpy(data, dev->in_reply, n);
		r = (int)n;
	}
	free(dev->in_reply);
	dev->in_reply = NULL;
	dev->in_reply_len = 0;
out:
	pthread_cond_broadcast(&dev->cond);
	pthread_mutex_unlock(&dev->lock);
	free(copy);
	return r;
}

/* Reserve the link for @len bytes; returns when those bytes are "on the
 * wire" given the rate, i.e. the time the transfer may complete. */
static void link_reserve(struct vpi_usbdev *dev, size_t len, struct timespec *done)
{
	uint64_t rate = dev->board ? vpi_board_options(dev->board)->link_bytes_per_s : 0;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	/* A link idle for less than the credit window counts as busy, so the
	 * host's own per-transfer latency does not add up (a continuous stream
	 * runs at the rate); a longer gap starts a new burst from now. */
	{
		struct timespec idle = dev->link_free;
		ts_add_ns(&idle, LINK_CREDIT_NS);
		if (ts_cmp(&idle, &now) < 0)
			dev->link_free = now;
	}
	if (rate)
		ts_add_ns(&dev->link_free, (uint64_t)((double)len * 1e9 / (double)rate));
	*done = dev->link_free;
}

/* Wait (device-kill aware) until @t. Caller holds the lock. */
static int wait_until(struct vpi_usbdev *dev, const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (ts_cmp(t, &now) <= 0)
		return 0;
	while (!dev->dead && cond_wait(dev, t) != ETIMEDOUT)
		;
	return dev->dead ? -ENODEV : 0;
}

int vpi_usbdev_host_bulk_out(struct vpi_usbdev *dev, const void *data, size_t len,
			     unsigned timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms), done;
	int r = 0;

	if (len > (size_t)INT32_MAX)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	while (!dev->dead && dev->out_posted)
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			goto out;
		}
	if (dev->dead) {
		r = -ENODEV;
		goto out;
	}
	link_reserve(dev, len, &done);
	dev->out_buf = data;
	dev->out_len = len;
	dev->out_pos = 0;
	dev->out_posted = true;
	pthread_cond_broadcast(&dev->cond);
	while (!dev->dead && dev->out_pos < dev->out_len)
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT)
			break;
	if (dev->out_pos < dev->out_len)
		r = dev->dead ? -ENODEV : -ETIMEDOUT;
	dev->out_posted = false;
	dev->out_buf = NULL;
	pthread_cond_broadcast(&dev->cond);
	if (r == 0)
		r = wait_until(dev, &done);
out:
	pthread_mutex_unlock(&dev->lock);
	return r ? r : (int)len;
}

int vpi_usbdev_host_bulk_in(struct vpi_usbdev *dev, void *data, size_t len, unsigned timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms), done;
	size_t n;
	int r = 0;

	pthread_mutex_lock(&dev->lock);
	while (!dev->dead && !(dev->in_posted && dev->in_pos < dev->in_len))
		if (cond_wait(dev, timeout_ms ? &dl : NULL) == ETIMEDOUT) {
			r = -ETIMEDOUT;
			goto out;
		}
	if (dev->dead) {
		r = -ENODEV;
		goto out;
	}
	n = dev->in_len - dev->in_pos;
	if (n > len)
		n = len;
	memcpy(data, dev->in_buf + dev->in_pos, n);
	dev->in_pos += n;
	link_reserve(dev, n, &done);
	pthread_cond_broadcast(&dev->cond);
	r = wait_until(dev, &done);
	if (r == 0)
		r = (int)n;
out:
	pthread_mutex_unlock(&dev->lock);
	return r;
}
