/* vpi/gadget: the wire between a virtual Pi's private bus and a Linux UDC.
 *
 * Owns one board's presence on one UDC: the presentation of each enumeration
 * (GadgetFS for boot mode, FunctionFS through configfs for the fastboot
 * gadget), the relay of host transfers onto the virtual bus, and the tear-down
 * that the host sees as a disconnect. Threads: vpi_gadget_serve() runs the
 * endpoint 0 loop on the caller's thread; each enumeration adds one bulk OUT
 * and one bulk IN relay thread, joined before the next. Everything the three
 * share is under struct relay's lock.
 *
 * Bulk OUT framing: a gadget read completes only when its buffer is full or a
 * short packet ends the host's transfer, and neither rpiboot nor fastboot ends
 * a transfer that is a whole number of packets. So the relay reads exactly
 * what the protocol announced (rpiboot's zero-length announce, fastboot's DATA
 * reply), as the board's own firmware does, and one packet at a time
 * otherwise (fastboot commands are shorter than a packet). */
#include "vpi/gadget.h"

#include <endian.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>
#include <linux/usb/gadgetfs.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "vpi/board.h"
#include "vpi/bus.h"
#include "vpi/standin.h"

#define CONFIGFS_GADGETS "/sys/kernel/config/usb_gadget"
#define UDC_CLASS "/sys/class/udc"
#define GADGETFS_DIR "/dev/gadget"
#define GADGETFS_MAGIC_NR 0xaee71ee7
#define RUN_DIR "/run/rpi-sb-vpi-gadget"
#define GADGETFS_LOCK RUN_DIR "/gadgetfs.lock"

#define RELAY_CHUNK (128u * 1024u)     /* one bulk read or write at most */
#define CTRL_TIMEOUT_MS 60000u         /* longer than any host waits (rpiboot: 20 s) */
#define BULK_OUT_TIMEOUT_MS 60000u
#define POLL_MS 100
#define IDLE_RELEASE_MS 3000u          /* off the bus this long: free GadgetFS for others */
#define UNPLUG_AFTER_S 1.0            /* GadgetFS disconnect without reconnect */
#define RATE_MIN_BYTES (1024u * 1024u) /* report bulk throughput of blocks this big */

/* ---- protocol followers ------------------------------------------------ */

#define RPIBOOT_REQ_OUT 0x40
#define RPIBOOT_REQ_IN 0xc0
#define RPIBOOT_FILEMSG 260u
#define RPIBOOT_GET_FILE_SIZE 0

uint64_t vpi_gadget_rpiboot_out(struct vpi_gadget_rpiboot *st, const struct usb_ctrl_setup *s)
{
	uint64_t len;
	bool after_size_query;

	if (s->bmRequestType != RPIBOOT_REQ_OUT || s->bRequest != 0 || s->wLength != 0)
		return 0;
	len = (uint64_t)s->wValue | (uint64_t)s->wIndex << 16;
	/* The same request answers GetFileSize (no bulk follows) and announces
	 * a file or a second stage (bulk follows): only what the device asked
	 * last tells them apart. */
	after_size_query = !st->rom && st->last_command == RPIBOOT_GET_FILE_SIZE;
	st->last_command = -1;
	return after_size_query ? 0 : len;
}

void vpi_gadget_rpiboot_in(struct vpi_gadget_rpiboot *st, const struct usb_ctrl_setup *s,
			   const uint8_t *data, size_t n)
{
	if (st->rom || s->bmRequestType != RPIBOOT_REQ_IN || s->bRequest != 0 ||
	    s->wLength != RPIBOOT_FILEMSG || n < 4)
		return;
	st->last_command = (int)(data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24);
}

size_t vpi_gadget_gadgetfs_reply_len(const uint8_t *data, size_t n)
{
	const uint8_t *nul;

	if (n <= VPI_GADGETFS_CTRL_MAX)
		return n;
	if (n == RPIBOOT_FILEMSG) {
		nul = memchr(data + 4, '\0', n - 4);
		if (nul && (size_t)(nul - data) + 1 <= VPI_GADGETFS_CTRL_MAX)
			return (size_t)(nul - data) + 1;
	}
	return VPI_GADGETFS_CTRL_MAX;
}

bool vpi_gadget_fastboot_is_download(const uint8_t *cmd, size_t n)
{
	return n >= 9 && memcmp(cmd, "download:", 9) == 0;
}

int vpi_gadget_fastboot_reply(const uint8_t *p, size_t n, uint64_t *len)
{
	char hex[9];
	char *end;

	if (n >= 4 && (memcmp(p, "INFO", 4) == 0 || memcmp(p, "TEXT", 4) == 0))
		return -1;
	if (n != 12 || memcmp(p, "DATA", 4) != 0)
		return 0;
	memcpy(hex, p + 4, 8);
	hex[8] = '\0';
	*len = strtoull(hex, &end, 16);
	return *end == '\0' ? 1 : 0;
}

/* ---- small helpers ----------------------------------------------------- */

static void glog(const char *udc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void glog(const char *udc, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "gadget %s: %s\n", udc, line);
	fflush(stderr);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int r = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	if (n < 0)
		r = -errno;
	else if ((size_t)n != strlen(s))
		r = -EIO;
	close(fd);
	return r;
}

static int writef(const char *dir, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int writef(const char *dir, const char *name, const char *fmt, ...)
{
	char path[PATH_MAX], val[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return write_str(path, val);
}

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Whether a UDC has a gadget driver bound (its "function" attribute is empty
 * when free). */
static bool udc_taken(const char *udc)
{
	char path[PATH_MAX], buf[128];

	snprintf(path, sizeof(path), UDC_CLASS "/%s/function", udc);
	return read_str(path, buf, sizeof(buf)) == 0 && buf[0];
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* GadgetFS binds the first free UDC (in registration order; dummy_hcd
 * registers dummy_udc.0, .1, ... in name order). The first UDC before @udc
 * that is still free, into @name; false when there is none. */
static bool free_udc_before(const char *udc, char *name, size_t len)
{
	char *names[64];
	size_t n = 0;
	bool found = false;
	struct dirent *de;
	DIR *d = opendir(UDC_CLASS);

	if (!d)
		return false;
	while ((de = readdir(d)) && n < 64)
		if (de->d_name[0] != '.')
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (!names[i] || strcmp(names[i], udc) == 0)
			break;
		if (!udc_taken(names[i])) {
			snprintf(name, len, "%s", names[i]);
			found = true;
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return found;
}

/* ---- descriptors ------------------------------------------------------- */

static size_t put_device_desc(uint8_t *p, const struct vpi_usbdesc *d)
{
	struct usb_device_descriptor dd = {
		.bLength = USB_DT_DEVICE_SIZE,
		.bDescriptorType = USB_DT_DEVICE,
		.bcdUSB = htole16(0x0200),
		.bMaxPacketSize0 = 64,
		.idVendor = htole16(d->vid),
		.idProduct = htole16(d->pid),
		.bcdDevice = htole16(d->bcd_device),
		.iManufacturer = d->manufacturer[0] ? 1 : 0,
		.iProduct = d->product[0] ? 2 : 0,
		.iSerialNumber = d->iserial_index,
		.bNumConfigurations = 1,
	};

	memcpy(p, &dd, sizeof(dd));
	return sizeof(dd);
}

static size_t put_ep_desc(uint8_t *p, uint8_t addr, uint16_t maxpkt)
{
	uint8_t ep[USB_DT_ENDPOINT_SIZE] = { USB_DT_ENDPOINT_SIZE, USB_DT_ENDPOINT, addr,
					     USB_ENDPOINT_XFER_BULK, (uint8_t)maxpkt,
					     (uint8_t)(maxpkt >> 8), 0 };

	memcpy(p, ep, sizeof(ep));
	return sizeof(ep);
}

static uint8_t num_eps(const struct vpi_usbdesc *d)
{
	return (uint8_t)((d->ep_out ? 1 : 0) + (d->ep_in ? 1 : 0));
}

static size_t put_interface(uint8_t *p, const struct vpi_usbdesc *d, uint16_t maxpkt,
			    uint8_t iinterface, uint8_t out_addr, uint8_t in_addr)
{
	uint8_t itf[USB_DT_INTERFACE_SIZE] = { USB_DT_INTERFACE_SIZE, USB_DT_INTERFACE, 0, 0,
					       num_eps(d), d->if_class, d->if_subclass,
					       d->if_protocol, iinterface };
	size_t n = sizeof(itf);

	memcpy(p, itf, sizeof(itf));
	if (d->ep_out)
		n += put_ep_desc(p + n, out_addr, maxpkt);
	if (d->ep_in)
		n += put_ep_desc(p + n, in_addr, maxpkt);
	return n;
}

/* A whole configuration (GadgetFS): config + interface + endpoints. */
static size_t put_config(uint8_t *p, const struct vpi_usbdesc *d, uint16_t maxpkt)
{
	size_t n = USB_DT_CONFIG_SIZE;
	uint16_t total;

	n += put_interface(p + n, d, maxpkt, 0, d->ep_out, d->ep_in);
	total = (uint16_t)n;
	{
		uint8_t cfg[USB_DT_CONFIG_SIZE] = { USB_DT_CONFIG_SIZE, USB_DT_CONFIG, (uint8_t)total,
						    (uint8_t)(total >> 8), 1, 1, 0,
						    USB_CONFIG_ATT_ONE, 250 };
		memcpy(p, cfg, sizeof(cfg));
	}
	return n;
}

static size_t utf16_desc(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s), len = 2 + 2 * n;

	if (len > cap)
		len = cap & ~(size_t)1;
	out[0] = (uint8_t)len;
	out[1] = USB_DT_STRING;
	for (size_t i = 0; 2 + 2 * i + 1 < len; i++) {
		out[2 + 2 * i] = (uint8_t)s[i];
		out[3 + 2 * i] = 0;
	}
	return len;
}

/* ---- one enumeration on the UDC ---------------------------------------- */

enum relay_kind { KIND_GADGETFS, KIND_FUNCTIONFS };

enum relay_end {
	END_NONE,
	END_GONE,       /* the board left the virtual bus (re-enumeration, halt) */
	END_UNPLUG,     /* the UDC was unbound from outside: the cable */
	END_STOP,       /* SIGTERM */
	END_ERROR,
};

struct gadget {
	struct vpi_board *board;
	const char *udc;
	volatile sig_atomic_t *stop;
	struct vpi_bus *bus;
	const char *port;
	int lock_fd;              /* GadgetFS lock, held from bind until our UDC is ours again */
	bool locked;
	char inst[48];            /* configfs / FunctionFS instance name */
	char gdir[160];      /* configfs gadget dir */
	char ffs_dir[160];   /* FunctionFS mount point */
	bool configfs_made, ffs_mounted;
};

struct relay {
	struct gadget *g;
	enum relay_kind kind;
	struct transport *t;
	struct vpi_usbdesc d;
	unsigned address;         /* on the virtual bus */
	int ep0, ep_out, ep_in;
	bool eps_enabled;
	bool bound;               /* FunctionFS: we wrote the UDC name */
	bool tearing_down;
	double disconnected_at;   /* GadgetFS: last DISCONNECT not followed by CONNECT */

	pthread_t out_thr, in_thr;
	bool out_started, in_started;
	atomic_bool quit, out_exited, in_exited;
	atomic_int gone;          /* a relay thread saw -ENODEV from the board */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t expected;        /* announced bulk OUT bytes not yet read */
	bool await_reply;         /* fastboot: a download command waits for DATA/FAIL */
	bool download_pending;
	struct vpi_gadget_rpiboot rb;
	/* figures */
	uint64_t block_len;
	double block_t0;
	uint64_t out_total, in_total;
};

static void relay_log_block(struct relay *r)
{
	double dt = now_s() - r->block_t0;

	if (r->block_len >= RATE_MIN_BYTES && dt > 0)
		glog(r->g->udc, "bulk OUT %" PRIu64 " bytes in %.3f s (%.1f MB/s, through the board)",
		     r->block_len, dt, (double)r->block_len / dt / 1e6);
	r->block_len = 0;
}

/* Announce @len bulk OUT bytes (before the host can send them). */
static void relay_expect(struct relay *r, uint64_t len)
{
	pthread_mutex_lock(&r->lock);
	r->expected = len;
	r->block_len = len;
	r->block_t0 = now_s();
	if (len >= RATE_MIN_BYTES)
		glog(r->g->udc, "%s of %" PRIu64 " bytes started",
		     r->kind == KIND_FUNCTIONFS ? "download" : "bulk OUT", len);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void *out_thread(void *arg)
{
	struct relay *r = arg;
	uint8_t *buf = malloc(RELAY_CHUNK);
	unsigned maxpkt = r->d.max_packet ? r->d.max_packet : 512;

	while (buf && !atomic_load(&r->quit)) {
		size_t want;
		ssize_t n;
		int rc;

		pthread_mutex_lock(&r->lock);
		while (!atomic_load(&r->quit) &&
		       ((r->kind == KIND_GADGETFS && r->expected == 0) || r->await_reply)) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_nsec += 50000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&r->cond, &r->lock, &dl);
		}
		want = r->expected ? (r->expected < RELAY_CHUNK ? (size_t)r->expected : RELAY_CHUNK)
				   : maxpkt;
		pthread_mutex_unlock(&r->lock);
		if (atomic_load(&r->quit))
			break;
		n = read(r->ep_out, buf, want);
		if (n < 0) {
			if (errno != EINTR && !atomic_load(&r->quit))
				usleep(10000);   /* endpoint not enabled yet, or being reset */
			continue;
		}
		pthread_mutex_lock(&r->lock);
		if (r->expected) {
			r->expected -= (uint64_t)n < r->expected ? (uint64_t)n : r->expected;
			if (r->expected == 0)
				relay_log_block(r);
		} else if (r->kind == KIND_FUNCTIONFS && vpi_gadget_fastboot_is_download(buf, (size_t)n)) {
			r->await_reply = true;
			r->download_pending = true;
		}
		r->out_total += (uint64_t)n;
		pthread_mutex_unlock(&r->lock);
		if (n == 0)
			continue;
		rc = transport_bulk_out(r->t, buf, (size_t)n, BULK_OUT_TIMEOUT_MS);
		if (rc == -ENODEV) {
			atomic_store(&r->gone, 1);
			break;
		}
		if (rc < 0)
			glog(r->g->udc, "bulk OUT of %zd bytes not taken by the board: %s", n,
			     strerror(-rc));
	}
	free(buf);
	atomic_store(&r->out_exited, true);
	return NULL;
}

static void *in_thread(void *arg)
{
	struct relay *r = arg;
	uint8_t *buf = malloc(RELAY_CHUNK);

	while (buf && !atomic_load(&r->quit)) {
		uint64_t len = 0;
		int n = transport_bulk_in(r->t, buf, RELAY_CHUNK, 200);

		if (n == -ETIMEDOUT)
			continue;
		if (n == -ENODEV) {
			atomic_store(&r->gone, 1);
			break;
		}
		if (n < 0) {
			usleep(10000);
			continue;
		}
		if (r->kind == KIND_FUNCTIONFS) {
			pthread_mutex_lock(&r->lock);
			if (r->await_reply) {
				int k = vpi_gadget_fastboot_reply(buf, (size_t)n, &len);
				if (k >= 0) {
					r->await_reply = false;
					if (k == 1 && r->download_pending) {
						pthread_mutex_unlock(&r->lock);
						relay_expect(r, len);
						pthread_mutex_lock(&r->lock);
					}
					r->download_pending = false;
					pthread_cond_broadcast(&r->cond);
				}
			}
			r->in_total += (uint64_t)n;
			pthread_mutex_unlock(&r->lock);
		}
		for (size_t off = 0; off < (size_t)n && !atomic_load(&r->quit);) {
			ssize_t w = write(r->ep_in, buf + off, (size_t)n - off);
			if (w < 0) {
				if (errno != EINTR)
					usleep(10000);
				continue;
			}
			off += (size_t)w;
		}
	}
	free(buf);
	atomic_store(&r->in_exited, true);
	return NULL;
}

static void on_sigusr1(int sig)
{
	(void)sig;   /* only interrupts blocking endpoint I/O (no SA_RESTART) */
}

static int relay_start_threads(struct relay *r)
{
	if (r->ep_out >= 0 && !r->out_started) {
		if (pthread_create(&r->out_thr, NULL, out_thread, r))
			return -EAGAIN;
		r->out_started = true;
	}
	if (r->ep_in >= 0 && !r->in_started) {
		if (pthread_create(&r->in_thr, NULL, in_thread, r))
			return -EAGAIN;
		r->in_started = true;
	}
	return 0;
}

static void relay_stop_threads(struct relay *r)
{
	atomic_store(&r->quit, true);
	pthread_mutex_lock(&r->lock);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* A thread may enter a blocking read just after a signal: repeat. */
	while ((r->out_started && !atomic_load(&r->out_exited)) ||
	       (r->in_started && !atomic_load(&r->in_exited))) {
		if (r->out_started && !atomic_load(&r->out_exited))
			pthread_kill(r->out_thr, SIGUSR1);
		if (r->in_started && !atomic_load(&r->in_exited))
			pthread_kill(r->in_thr, SIGUSR1);
		usleep(20000);
	}
	if (r->out_started)
		pthread_join(r->out_thr, NULL);
	if (r->in_started)
		pthread_join(r->in_thr, NULL);
	r->out_started = r->in_started = false;
}

/* ---- endpoint 0 -------------------------------------------------------- */

/* Stall: I/O in the wrong direction (both GadgetFS and FunctionFS). */
static void ep0_stall(struct relay *r, bool in)
{
	uint8_t dummy = 0;
	ssize_t n = in ? read(r->ep0, &dummy, 0) : write(r->ep0, &dummy, 0);

	(void)n;
}

static void ep0_ack(struct relay *r)
{
	ssize_t n = read(r->ep0, NULL, 0);

	(void)n;
}

static void ep0_reply(struct relay *r, const void *data, size_t n)
{
	if (write(r->ep0, data, n) < 0 && errno != EL2HLT)
		glog(r->g->udc, "control IN reply of %zu bytes failed: %s", n, strerror(errno));
}

static int gadgetfs_enable_eps(struct relay *r);

/* Requests the kernel leaves to GadgetFS users: string descriptors and the
 * configuration/interface selection. */
static void gadgetfs_standard(struct relay *r, const struct usb_ctrl_setup *s)
{
	uint8_t buf[256];
	size_t n = 0;
	bool in = s->bmRequestType & USB_DIR_IN;

	switch (s->bRequest) {
	case USB_REQ_GET_DESCRIPTOR:
		if ((s->wValue >> 8) != USB_DT_STRING)
			break;
		{
			uint8_t idx = (uint8_t)s->wValue;
			if (idx == 0) {
				const uint8_t lang[4] = { 4, USB_DT_STRING, 0x09, 0x04 };
				memcpy(buf, lang, 4);
				n = 4;
			} else if (idx == 1 && r->d.manufacturer[0]) {
				n = utf16_desc(r->d.manufacturer, buf, sizeof(buf) - 1);
			} else if (idx == 2 && r->d.product[0]) {
				n = utf16_desc(r->d.product, buf, sizeof(buf) - 1);
			} else if (idx == r->d.iserial_index && r->d.serial[0]) {
				n = utf16_desc(r->d.serial, buf, sizeof(buf) - 1);
			}
		}
		if (!n)
			break;
		ep0_reply(r, buf, n < s->wLength ? n : s->wLength);
		return;
	case USB_REQ_SET_CONFIGURATION:
		if (s->wValue == 1 && !r->eps_enabled && gadgetfs_enable_eps(r) < 0)
			glog(r->g->udc, "cannot enable the bulk endpoints");
		ep0_ack(r);   /* GadgetFS does not let SET_CONFIGURATION stall */
		return;
	case USB_REQ_SET_INTERFACE:
		if (s->wValue == 0 && s->wIndex == 0) {
			ep0_ack(r);
			return;
		}
		break;
	case USB_REQ_GET_INTERFACE:
		buf[0] = 0;
		ep0_reply(r, buf, 1);
		return;
	default:
		break;
	}
	ep0_stall(r, in);
}

/* A vendor (or class) request: replay it on the virtual bus. */
static void ep0_forward(struct relay *r, const struct usb_ctrl_setup *s)
{
	bool in = s->bmRequestType & USB_DIR_IN;
	uint8_t *buf = calloc(1, (size_t)s->wLength + 1);
	int rc;

	if (!buf) {
		ep0_stall(r, in);
		return;
	}
	if (!in) {
		uint64_t announce;

		if (s->wLength && read(r->ep0, buf, s->wLength) < 0) {
			free(buf);
			return;
		}
		/* The bulk reader must know the length before the host, which
		 * starts sending the moment this request completes. */
		pthread_mutex_lock(&r->lock);
		announce = vpi_gadget_rpiboot_out(&r->rb, s);
		pthread_mutex_unlock(&r->lock);
		if (r->d.vid == 0x0a5c && s->bmRequestType == RPIBOOT_REQ_OUT && s->wLength == 0)
			relay_expect(r, announce);
		rc = transport_control(r->t, s, buf, CTRL_TIMEOUT_MS);
		if (rc >= 0 && s->wLength == 0)
			ep0_ack(r);
		else if (rc == -EPIPE || rc == -ENODEV || rc == -EIO)
			ep0_stall(r, false);
		if (rc == -ENODEV)
			atomic_store(&r->gone, 1);
		free(buf);
		return;
	}
	rc = transport_control(r->t, s, buf, CTRL_TIMEOUT_MS);
	if (rc >= 0) {
		size_t n = (size_t)rc;
		pthread_mutex_lock(&r->lock);
		vpi_gadget_rpiboot_in(&r->rb, s, buf, n);
		pthread_mutex_unlock(&r->lock);
		if (r->kind == KIND_GADGETFS)
			n = vpi_gadget_gadgetfs_reply_len(buf, n);
		ep0_reply(r, buf, n);
	} else if (rc != -ETIMEDOUT) {
		/* A timeout stays unanswered: the host times out as with a real
		 * board that does not answer. */
		ep0_stall(r, true);
		if (rc == -ENODEV)
			atomic_store(&r->gone, 1);
	}
	free(buf);
}

static void ep0_setup(struct relay *r, const struct usb_ctrlrequest *c)
{
	struct usb_ctrl_setup s = {
		.bmRequestType = c->bRequestType,
		.bRequest = c->bRequest,
		.wValue = le16toh(c->wValue),
		.wIndex = le16toh(c->wIndex),
		.wLength = le16toh(c->wLength),
	};

	if ((s.bmRequestType & USB_TYPE_MASK) == USB_TYPE_STANDARD) {
		if (r->kind == KIND_GADGETFS)
			gadgetfs_standard(r, &s);
		else
			ep0_stall(r, s.bmRequestType & USB_DIR_IN);
		return;
	}
	ep0_forward(r, &s);
}

/* Read and handle the pending ep0 events. END_UNPLUG when the UDC was
 * unbound from outside. */
static enum relay_end ep0_events(struct relay *r)
{
	if (r->kind == KIND_GADGETFS) {
		struct usb_gadgetfs_event ev[4];
		ssize_t n = read(r->ep0, ev, sizeof(ev));

		if (n < 0)
			return errno == EINTR || errno == EAGAIN ? END_NONE : END_ERROR;
		for (size_t i = 0; i < (size_t)n / sizeof(ev[0]); i++) {
			if (ev[i].type == GADGETFS_SETUP)
				ep0_setup(r, &ev[i].u.setup);
			else if (ev[i].type == GADGETFS_DISCONNECT && !r->tearing_down)
				r->disconnected_at = now_s();
			else if (ev[i].type == GADGETFS_CONNECT)
				r->disconnected_at = 0;
		}
		return END_NONE;
	} else {
		struct usb_functionfs_event ev[4];
		ssize_t n = read(r->ep0, ev, sizeof(ev));

		if (n < 0)
			return errno == EINTR || errno == EAGAIN ? END_NONE : END_ERROR;
		for (size_t i = 0; i < (size_t)n / sizeof(ev[0]); i++) {
			if (ev[i].type == FUNCTIONFS_SETUP)
				ep0_setup(r, &ev[i].u.setup);
			else if (ev[i].type == FUNCTIONFS_UNBIND && !r->tearing_down)
				return END_UNPLUG;
		}
		return END_NONE;
	}
}

/* ---- GadgetFS (boot mode) ---------------------------------------------- */

static void gadgetfs_unlock(struct gadget *g)
{
	if (g->locked) {
		flock(g->lock_fd, LOCK_UN);
		g->locked = false;
	}
}

/* Take the GadgetFS lock at a moment when GadgetFS will bind our UDC. Waits
 * as long as it takes (another board's whole boot mode), or until stopped:
 * a board waiting here is a board not yet plugged in. */
static int gadgetfs_lock(struct gadget *g)
{
	char other[64];
	bool said = false;

	if (g->locked)
		return 0;
	for (;;) {
		if (*g->stop)
			return -EINTR;
		if (flock(g->lock_fd, LOCK_EX | LOCK_NB) == 0) {
			if (!free_udc_before(g->udc, other, sizeof(other))) {
				g->locked = true;
				return 0;
			}
			flock(g->lock_fd, LOCK_UN);
			if (!said)
				glog(g->udc, "waiting for %s to be taken: GadgetFS binds the first free UDC",
				     other);
			said = true;
		}
		usleep(50000);
	}
}

static int gadgetfs_mount(void)
{
	struct statfs sf;

	if (statfs(GADGETFS_DIR, &sf) == 0 && (unsigned long)sf.f_type == GADGETFS_MAGIC_NR)
		return 0;
	if (mkdir_p(GADGETFS_DIR) < 0)
		return -errno;
	if (mount("gadgetfs", GADGETFS_DIR, "gadgetfs", 0, NULL) < 0)
		return -errno;
	return 0;
}

/* The ep0 file is named after the UDC's gadget ("dummy_udc"), the same for
 * every UDC of a driver: take the one file that is not an endpoint. */
static int gadgetfs_ep0_path(char *path, size_t len)
{
	DIR *d = opendir(GADGETFS_DIR);
	struct dirent *de;
	int r = -ENOENT;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && strncmp(de->d_name, "ep", 2) != 0) {
			snprintf(path, len, GADGETFS_DIR "/%s", de->d_name);
			r = 0;
			break;
		}
	closedir(d);
	return r;
}

static int gadgetfs_open_ep(uint8_t addr, uint16_t maxpkt)
{
	char path[PATH_MAX];
	uint8_t buf[4 + 2 * USB_DT_ENDPOINT_SIZE];
	uint32_t tag = htole32(1);
	int fd, r;

	snprintf(path, sizeof(path), GADGETFS_DIR "/ep%u%s-bulk", addr & 0x0f,
		 (addr & USB_DIR_IN) ? "in" : "out");
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memcpy(buf, &tag, 4);
	put_ep_desc(buf + 4, addr, 64);
	put_ep_desc(buf + 4 + USB_DT_ENDPOINT_SIZE, addr, maxpkt);
	r = write_all(fd, buf, sizeof(buf));
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static int gadgetfs_enable_eps(struct relay *r)
{
	uint16_t mp = r->d.max_packet ? r->d.max_packet : 512;
	int fd;

	if (r->d.ep_out) {
		fd = gadgetfs_open_ep(r->d.ep_out, mp);
		if (fd < 0)
			return fd;
		r->ep_out = fd;
	}
	if (r->d.ep_in) {
		fd = gadgetfs_open_ep(r->d.ep_in, mp);
		if (fd < 0)
			return fd;
		r->ep_in = fd;
	}
	r->eps_enabled = true;
	return relay_start_threads(r);
}

static int gadgetfs_present(struct relay *r)
{
	struct gadget *g = r->g;
	uint8_t buf[4 + 2 * 64 + USB_DT_DEVICE_SIZE];
	uint32_t tag = 0;
	char path[PATH_MAX], fn[128];
	size_t n = 4;
	int rc;

	rc = gadgetfs_lock(g);
	if (rc < 0)
		return rc;
	rc = gadgetfs_mount();
	if (rc < 0) {
		glog(g->udc, "cannot mount gadgetfs on " GADGETFS_DIR ": %s (modprobe gadgetfs)",
		     strerror(-rc));
		return rc;
	}
	rc = gadgetfs_ep0_path(path, sizeof(path));
	if (rc < 0)
		return rc;
	r->ep0 = open(path, O_RDWR | O_CLOEXEC);
	if (r->ep0 < 0)
		return -errno;
	memcpy(buf, &tag, 4);
	n += put_config(buf + n, &r->d, 64);
	n += put_config(buf + n, &r->d, r->d.max_packet ? r->d.max_packet : 512);
	n += put_device_desc(buf + n, &r->d);
	rc = write_all(r->ep0, buf, n);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), UDC_CLASS "/%s/function", g->udc);
	if (read_str(path, fn, sizeof(fn)) < 0 || !fn[0]) {
		glog(g->udc, "GadgetFS bound another UDC than ours");
		return -EXDEV;
	}
	return 0;
}

/* ---- FunctionFS through configfs (the fastboot gadget) ----------------- */

static int configfs_make(struct gadget *g)
{
	char p[PATH_MAX], link[PATH_MAX];
	int rc;

	if (g->configfs_made)
		return 0;
	snprintf(g->gdir, sizeof(g->gdir), CONFIGFS_GADGETS "/%s", g->inst);
	snprintf(p, sizeof(p), "%s/strings/0x409", g->gdir);
	if ((rc = mkdir_p(p)) < 0)
		return rc;
	snprintf(p, sizeof(p), "%s/configs/c.1/strings/0x409", g->gdir);
	if ((rc = mkdir_p(p)) < 0)
		return rc;
	writef(p, "configuration", "fastboot");
	snprintf(p, sizeof(p), "%s/configs/c.1", g->gdir);
	writef(p, "MaxPower", "500");
	snprintf(p, sizeof(p), "%s/functions/ffs.%s", g->gdir, g->inst);
	if ((rc = mkdir_p(p)) < 0)
		return rc;
	snprintf(link, sizeof(link), "%s/configs/c.1/ffs.%s", g->gdir, g->inst);
	if (symlink(p, link) < 0 && errno != EEXIST)
		return -errno;
	g->configfs_made = true;
	snprintf(g->ffs_dir, sizeof(g->ffs_dir), RUN_DIR "/ffs-%s", g->inst);
	if ((rc = mkdir_p(g->ffs_dir)) < 0)
		return rc;
	if (mount(g->inst, g->ffs_dir, "functionfs", 0, NULL) < 0)
		return -errno;
	g->ffs_mounted = true;
	return 0;
}

static void configfs_remove(struct gadget *g)
{
	char p[PATH_MAX];

	if (g->ffs_mounted)
		umount(g->ffs_dir);
	rmdir(g->ffs_dir);
	if (!g->configfs_made)
		return;
	snprintf(p, sizeof(p), "%s/configs/c.1/ffs.%s", g->gdir, g->inst);
	unlink(p);
	snprintf(p, sizeof(p), "%s/configs/c.1/strings/0x409", g->gdir);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/configs/c.1", g->gdir);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/functions/ffs.%s", g->gdir, g->inst);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/strings/0x409", g->gdir);
	rmdir(p);
	rmdir(g->gdir);
}

static int ffs_write_descs(struct relay *r)
{
	/* FunctionFS numbers the endpoints itself; the addresses here only
	 * give direction and order (ep1 = first, ep2 = second). */
	uint8_t buf[512];
	struct usb_functionfs_descs_head_v2 h;
	uint32_t cnt = htole32(1u + num_eps(&r->d));
	size_t n = sizeof(h);
	uint8_t out_addr = r->d.ep_out ? 0x01 : 0, in_addr = r->d.ep_in ? 0x82 : 0;
	struct {
		struct usb_functionfs_strings_head h;
		uint16_t lang;
		char str[sizeof("fastboot")];   /* exactly: FunctionFS refuses trailing bytes */
	} __attribute__((packed)) s;
	int rc;

	memcpy(buf + n, &cnt, 4);
	memcpy(buf + n + 4, &cnt, 4);
	n += 8;
	n += put_interface(buf + n, &r->d, 64, 1, out_addr, in_addr);
	n += put_interface(buf + n, &r->d, r->d.max_packet ? r->d.max_packet : 512, 1, out_addr,
			   in_addr);
	h.magic = htole32(FUNCTIONFS_DESCRIPTORS_MAGIC_V2);
	h.length = htole32((uint32_t)n);
	h.flags = htole32(FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC | FUNCTIONFS_ALL_CTRL_RECIP);
	memcpy(buf, &h, sizeof(h));
	rc = write_all(r->ep0, buf, n);
	if (rc < 0)
		return rc;
	memset(&s, 0, sizeof(s));
	s.h.magic = htole32(FUNCTIONFS_STRINGS_MAGIC);
	s.h.length = htole32((uint32_t)sizeof(s));
	s.h.str_count = htole32(1);
	s.h.lang_count = htole32(1);
	s.lang = htole16(0x0409);
	memcpy(s.str, "fastboot", sizeof(s.str));
	return write_all(r->ep0, &s, sizeof(s));
}

static int ffs_present(struct relay *r)
{
	struct gadget *g = r->g;
	char p[PATH_MAX], ep[PATH_MAX];
	int rc, idx = 1;

	rc = configfs_make(g);
	if (rc < 0) {
		glog(g->udc, "cannot set up the configfs gadget %s: %s (modprobe libcomposite usb_f_fs; "
		     "mount configfs)", g->gdir, strerror(-rc));
		return rc;
	}
	writef(g->gdir, "idVendor", "0x%04x", r->d.vid);
	writef(g->gdir, "idProduct", "0x%04x", r->d.pid);
	writef(g->gdir, "bcdDevice", "0x%04x", r->d.bcd_device);
	writef(g->gdir, "bcdUSB", "0x0200");
	snprintf(p, sizeof(p), "%s/strings/0x409", g->gdir);
	writef(p, "manufacturer", "%s", r->d.manufacturer);
	writef(p, "product", "%s", r->d.product);
	writef(p, "serialnumber", "%s", r->d.serial);
	snprintf(ep, sizeof(ep), "%s/ep0", g->ffs_dir);
	for (int tries = 0; tries < 50; tries++) {
		r->ep0 = open(ep, O_RDWR | O_CLOEXEC);
		if (r->ep0 >= 0 || errno != EBUSY)
			break;
		usleep(20000);
	}
	if (r->ep0 < 0)
		return -errno;
	rc = ffs_write_descs(r);
	if (rc < 0)
		return rc;
	if (r->d.ep_out) {
		snprintf(ep, sizeof(ep), "%s/ep%d", g->ffs_dir, idx++);
		r->ep_out = open(ep, O_RDWR | O_CLOEXEC);
		if (r->ep_out < 0)
			return -errno;
	}
	if (r->d.ep_in) {
		snprintf(ep, sizeof(ep), "%s/ep%d", g->ffs_dir, idx++);
		r->ep_in = open(ep, O_RDWR | O_CLOEXEC);
		if (r->ep_in < 0)
			return -errno;
	}
	rc = relay_start_threads(r);
	if (rc < 0)
		return rc;
	rc = writef(g->gdir, "UDC", "%s", g->udc);
	if (rc < 0) {
		glog(g->udc, "cannot bind the fastboot gadget to the UDC: %s", strerror(-rc));
		return rc;
	}
	r->bound = true;
	/* Our UDC is ours again: GadgetFS may serve the next board. */
	gadgetfs_unlock(g);
	return 0;
}

/* ---- the relay's life -------------------------------------------------- */

static void relay_close(struct relay *r)
{
	r->tearing_down = true;
	relay_stop_threads(r);
	if (r->kind == KIND_FUNCTIONFS && r->bound)
		writef(r->g->gdir, "UDC", "\n");
	if (r->ep_out >= 0)
		close(r->ep_out);
	if (r->ep_in >= 0)
		close(r->ep_in);
	if (r->ep0 >= 0) {
		/* GadgetFS: take the device off the bus first. Closing ep0
		 * unregisters the driver; when the host still has a control
		 * request pending (the station's next FileMessage read), the
		 * kernel (6.1) completes it after gadgetfs dropped its state and
		 * oopses in ep0_complete. A soft disconnect while still bound
		 * completes it the ordinary way. */
		if (r->kind == KIND_GADGETFS) {
			char dir[PATH_MAX];

			snprintf(dir, sizeof(dir), UDC_CLASS "/%s", r->g->udc);
			writef(dir, "soft_connect", "disconnect\n");
		}
		close(r->ep0);   /* GadgetFS: unregisters the device */
	}
	transport_close(r->t);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
}

/* Whether the enumeration we present is still the one on the virtual bus. */
static bool still_presented(struct gadget *g, unsigned address)
{
	struct vpi_bus_dev *devs = NULL;
	size_t n = 0;
	bool here = false;

	if (vpi_bus_list(g->bus, &devs, &n) < 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (!devs[i].ghost && devs[i].address == address)
			here = true;
	free(devs);
	return here;
}

static enum relay_end relay_run(struct gadget *g, struct transport *t, const struct vpi_bus_dev *bd)
{
	struct relay r;
	enum relay_end end = END_NONE;
	double t0 = now_s();
	int rc;

	memset(&r, 0, sizeof(r));
	r.g = g;
	r.t = t;
	r.d = bd->desc;
	/* iProduct says "virtual Pi" in every stage (kept short of the array):
	 * the station serves stand-ins over USB only to such a device, and only
	 * under `daemon --rehearse-usb` (vpi/standin.h). */
	size_t pl = strlen(r.d.product);
	if (pl + sizeof(" (" VPI_USB_PRODUCT_MARK ")") > sizeof(r.d.product))
		pl = 0;
	snprintf(r.d.product + pl, sizeof(r.d.product) - pl, "%s" VPI_USB_PRODUCT_MARK "%s",
		 pl ? " (" : "", pl ? ")" : "");
	r.address = bd->address;
	r.ep0 = r.ep_out = r.ep_in = -1;
	r.rb.rom = r.d.iserial_index == 0 || r.d.iserial_index == 3;
	r.rb.last_command = -1;
	r.kind = r.d.vid == 0x0a5c ? KIND_GADGETFS : KIND_FUNCTIONFS;
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cond, NULL);

	rc = r.kind == KIND_GADGETFS ? gadgetfs_present(&r) : ffs_present(&r);
	if (rc < 0) {
		glog(g->udc, "cannot present %04x:%04x: %s", r.d.vid, r.d.pid, strerror(-rc));
		end = rc == -EINTR ? END_STOP : END_ERROR;
		goto out;
	}
	glog(g->udc, "presenting %04x:%04x iSerialNumber %u serial '%s' via %s (%.0f ms)", r.d.vid,
	     r.d.pid, r.d.iserial_index, r.d.serial,
	     r.kind == KIND_GADGETFS ? "GadgetFS" : "FunctionFS", (now_s() - t0) * 1000);
	while (end == END_NONE) {
		struct pollfd pf[2] = { { .fd = r.ep0, .events = POLLIN },
					{ .fd = vpi_bus_eventfd(g->bus), .events = POLLIN } };
		int n = poll(pf, 2, POLL_MS);

		if (*g->stop) {
			end = END_STOP;
			break;
		}
		if (n > 0 && (pf[1].revents & POLLIN)) {
			uint64_t v;
			ssize_t k = read(pf[1].fd, &v, sizeof(v));
			(void)k;
		}
		if (atomic_load(&r.gone) || !still_presented(g, r.address)) {
			end = END_GONE;
			break;
		}
		if (n > 0 && (pf[0].revents & (POLLIN | POLLERR | POLLHUP)))
			end = ep0_events(&r);
		/* GadgetFS reports a bus reset as a disconnect too, but the host
		 * reconnects at once; a disconnect that lasts is the cable. */
		if (end == END_NONE && r.disconnected_at && now_s() - r.disconnected_at > UNPLUG_AFTER_S)
			end = END_UNPLUG;
	}
out:
	if (end == END_UNPLUG || end == END_STOP)
		/* The cable first, so relay threads blocked on the board return. */
		vpi_bus_detach(g->bus, g->port);
	glog(g->udc, "%04x:%04x leaves the bus (%s); bulk OUT %" PRIu64 " bytes, IN %" PRIu64
	     " bytes", r.d.vid, r.d.pid,
	     end == END_GONE ? "the board re-enumerates or stops" :
	     end == END_UNPLUG ? "UDC unbound: cable pulled" :
	     end == END_STOP ? "stopped" : "error",
	     r.out_total, r.in_total);
	if (end == END_UNPLUG)
		r.bound = false;   /* whoever unbound it owns the UDC file now */
	relay_close(&r);
	return end;
}

int vpi_gadget_serve(struct vpi_board *b, const char *udc, volatile sig_atomic_t *stop)
{
	struct gadget g;
	struct sigaction sa = { .sa_handler = on_sigusr1 };   /* no SA_RESTART */
	uint64_t gen = 0;
	double idle_since = 0;
	int rc, ret = 0;

	memset(&g, 0, sizeof(g));
	g.board = b;
	g.udc = udc;
	g.stop = stop;
	g.lock_fd = -1;
	snprintf(g.inst, sizeof(g.inst), "vpi_%s", udc);
	for (char *p = g.inst; *p; p++)
		if (*p == '.' || *p == '-' || *p == '/')
			*p = '_';
	{
		char path[PATH_MAX];
		snprintf(path, sizeof(path), UDC_CLASS "/%s", udc);
		if (access(path, F_OK) < 0) {
			glog(udc, "no such UDC in " UDC_CLASS " (modprobe dummy_hcd)");
			return -ENOENT;
		}
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if ((rc = mkdir_p(RUN_DIR)) < 0)
		return rc;
	g.lock_fd = open(GADGETFS_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (g.lock_fd < 0)
		return -errno;
	rc = vpi_bus_new(VPI_BUS_DEFAULT_BUSNUM, 1, &g.bus);
	if (rc < 0)
		goto out;
	g.port = vpi_bus_port_name(g.bus, 0);
	rc = vpi_bus_attach(g.bus, g.port, b);
	if (rc < 0)
		goto out;
	idle_since = now_s();
	while (!*stop) {
		struct vpi_bus_dev *devs = NULL, bd;
		struct transport *t = NULL;
		size_t n = 0;
		bool have = false;
		enum relay_end end;

		gen = vpi_bus_generation(g.bus);
		if (vpi_bus_list(g.bus, &devs, &n) == 0)
			for (size_t i = 0; i < n; i++)
				if (!devs[i].ghost) {
					bd = devs[i];
					have = true;
				}
		free(devs);
		if (!have || vpi_bus_open_address(g.bus, g.port, bd.address, &t) < 0) {
			if (g.locked && (now_s() - idle_since) * 1000 > IDLE_RELEASE_MS)
				gadgetfs_unlock(&g);
			vpi_bus_wait_change(g.bus, gen, POLL_MS);
			continue;
		}
		end = relay_run(&g, t, &bd);
		idle_since = now_s();
		if (end == END_UNPLUG) {
			ret = -ENODEV;
			break;
		}
		if (end == END_ERROR) {
			ret = -EIO;
			break;
		}
	}
out:
	gadgetfs_unlock(&g);
	if (g.bus)
		vpi_bus_free(g.bus);   /* detaches the board */
	configfs_remove(&g);
	if (g.lock_fd >= 0)
		close(g.lock_fd);
	return rc < 0 ? rc : ret;
}
