/* transport/usb: the libusb-1.0 transport. Owns one board's libusb context,
 * device handle and claimed interface; picks the endpoints from descriptors;
 * splits bulk transfers into chunks; maps and logs libusb errors.
 *
 * Threads: the worker that owns a board calls control/bulk/close; open may
 * run on any thread (each transport has its own context). usb_log may be
 * called from any thread. */
#include "transport/usb.h"

#include <errno.h>
#include <fcntl.h>
#include <libusb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "station/ports.h"

/* The USB 3 spec allows at most 7 tiers of ports below the root. */
#define USB_MAX_PORT_DEPTH 7
#define USB_STRING_TIMEOUT_MS 1000
/* How long an I/O error waits to see whether the device is leaving. */
#define USB_GONE_WAIT_MS 1000

struct usb_priv {
	struct transport t;
	libusb_context *ctx;
	libusb_device_handle *h;
	int iface;
	uint16_t out_maxpkt, in_maxpkt;
	unsigned devnum;         /* the kernel's device number at open (sysfs devnum) */
};

/* ---- logging ----------------------------------------------------------- */

static void log_stderr(void *usrptr, const char *line)
{
	(void)usrptr;
	fprintf(stderr, "%s\n", line);
}

static usb_log_fn log_fn = log_stderr;
static void *log_usrptr;

void usb_set_log(usb_log_fn fn, void *usrptr)
{
	log_fn = fn ? fn : log_stderr;
	log_usrptr = fn ? usrptr : NULL;
}

void usb_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_fn(log_usrptr, line);
}

/* ---- pure logic -------------------------------------------------------- */

int usb_transfer_errno(int libusb_err)
{
	switch (libusb_err) {
	case LIBUSB_ERROR_NO_DEVICE:
		return -ENODEV;
	case LIBUSB_ERROR_PIPE:
		return -EPIPE;
	case LIBUSB_ERROR_TIMEOUT:
		return -ETIMEDOUT;
	default:
		return -EIO;
	}
}

int usb_open_errno(int libusb_err)
{
	switch (libusb_err) {
	case LIBUSB_ERROR_ACCESS:
		return -EACCES;
	case LIBUSB_ERROR_BUSY:
		return -EBUSY;
	case LIBUSB_ERROR_NO_DEVICE:
	case LIBUSB_ERROR_NOT_FOUND:
		return -ENODEV;
	case LIBUSB_ERROR_NO_MEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

int usb_transfer_errno_checked(int libusb_err, bool device_gone)
{
	int e = usb_transfer_errno(libusb_err);

	return e == -EIO && device_gone ? -ENODEV : e;
}

size_t usb_bulk_chunk(size_t remaining, unsigned maxpkt, size_t max_chunk)
{
	size_t cap;

	if (maxpkt == 0)
		maxpkt = 1;
	cap = max_chunk - max_chunk % maxpkt;
	if (cap == 0)
		cap = maxpkt;
	return remaining < cap ? remaining : cap;
}

static bool ep_is_bulk(const struct usb_ep_info *e)
{
	return (e->attributes & 0x03) == LIBUSB_TRANSFER_TYPE_BULK;
}

static bool if_has_bulk_out(const struct usb_if_info *i)
{
	for (uint8_t k = 0; k < i->nep && k < USB_IF_MAX_EP; k++)
		if (ep_is_bulk(&i->ep[k]) && !(i->ep[k].address & 0x80))
			return true;
	return false;
}

int usb_pick_endpoints(const struct usb_if_info *ifs, size_t nifs, struct usb_ep_pick *out)
{
	const struct usb_if_info *chosen = NULL;

	for (size_t i = 0; i < nifs && !chosen; i++)
		if (ifs[i].cls == 0xff && if_has_bulk_out(&ifs[i]))
			chosen = &ifs[i];
	for (size_t i = 0; i < nifs && !chosen; i++)
		if (if_has_bulk_out(&ifs[i]))
			chosen = &ifs[i];
	if (!chosen)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->interface = chosen->number;
	for (uint8_t k = 0; k < chosen->nep && k < USB_IF_MAX_EP; k++) {
		const struct usb_ep_info *e = &chosen->ep[k];

		if (!ep_is_bulk(e))
			continue;
		if (e->address & 0x80) {
			if (!out->ep_in) {
				out->ep_in = e->address;
				out->in_maxpkt = e->max_packet & 0x7ff;
			}
		} else if (!out->ep_out) {
			out->ep_out = e->address;
			out->out_maxpkt = e->max_packet & 0x7ff;
		}
	}
	return 0;
}

bool usb_serial_plain(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char c = s[n];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return n > 0 && n < 64;
}

int usb_sysfs_attr(const char *sysfs_root, const char *port, const char *attr,
		   char *buf, size_t len)
{
	char path[256];
	ssize_t n;
	int fd, r;

	if (!usb_port_path_valid(port) || strchr(attr, '/') || len == 0)
		return -EINVAL;
	r = snprintf(path, sizeof(path), "%s/bus/usb/devices/%s/%s", sysfs_root, port, attr);
	if (r < 0 || (size_t)r >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	if ((size_t)n == len)
		return -ENOSPC;   /* no room for the terminator: the value may be cut */
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return 0;
}

/* ---- transfers --------------------------------------------------------- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Whether the device opened as @p has left its port (its sysfs entry is gone
 * or holds another device number), waiting up to USB_GONE_WAIT_MS for the
 * hub to notice a disconnect that failed a transfer a moment earlier. */
static bool device_left(const struct usb_priv *p)
{
	uint64_t deadline = mono_ms() + USB_GONE_WAIT_MS;

	if (!p->devnum)
		return false;
	for (;;) {
		char buf[16];

		if (usb_sysfs_attr(USB_SYSFS_ROOT, p->t.port_path, "devnum", buf, sizeof(buf)) < 0 ||
		    strtoul(buf, NULL, 10) != p->devnum)
			return true;
		if (mono_ms() >= deadline)
			return false;
		usleep(25 * 1000);
	}
}

/* Log a libusb error with the board's port and return the seam's errno. */
static int fail(const struct usb_priv *p, int libusb_err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(const struct usb_priv *p, int libusb_err, const char *fmt, ...)
{
	char what[256];
	bool gone = false;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (usb_transfer_errno(libusb_err) == -EIO)
		gone = device_left(p);
	usb_log("usb %s: %s: %s%s", p->t.port_path, what, libusb_error_name(libusb_err),
		gone ? " (the device then left the bus: an unplug)" : "");
	return usb_transfer_errno_checked(libusb_err, gone);
}

static int usb_control(struct transport *t, const struct usb_ctrl_setup *s, void *data,
		       unsigned timeout_ms)
{
	struct usb_priv *p = t->priv;
	int r;

	r = libusb_control_transfer(p->h, s->bmRequestType, s->bRequest, s->wValue, s->wIndex,
				    data, s->wLength, timeout_ms);
	if (r < 0)
		return fail(p, r, "control %02x/%02x wValue 0x%04x wIndex 0x%04x wLength %u",
			    s->bmRequestType, s->bRequest, s->wValue, s->wIndex, s->wLength);
	return r;   /* an IN transfer may be short: that is the answer */
}

/* Milliseconds left before @deadline, for one more chunk; 0 = no limit. */
static int chunk_timeout(unsigned timeout_ms, uint64_t deadline, unsigned *out)
{
	uint64_t now;

	if (timeout_ms == 0) {
		*out = 0;
		return 0;
	}
	now = mono_ms();
	if (now >= deadline)
		return -ETIMEDOUT;
	*out = (unsigned)(deadline - now);
	return 0;
}

static int usb_bulk(struct usb_priv *p, bool in, uint8_t ep, uint16_t maxpkt, uint8_t *buf,
		    size_t len, unsigned timeout_ms)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	size_t done = 0;

	if (len > INT32_MAX)
		return -EINVAL;   /* the seam returns the count as an int */
	if (!ep) {
		usb_log("usb %s: bulk %s: the interface has no such endpoint", p->t.port_path,
			in ? "IN" : "OUT");
		return -EIO;
	}
	for (;;) {
		size_t n = usb_bulk_chunk(len - done, maxpkt, USB_BULK_CHUNK_MAX);
		unsigned ms;
		int got = 0, r;

		if (n == 0)
			break;
		if (chunk_timeout(timeout_ms, deadline, &ms) < 0) {
			usb_log("usb %s: bulk %s 0x%02x: %zu of %zu bytes within %u ms: LIBUSB_ERROR_TIMEOUT",
				p->t.port_path, in ? "IN" : "OUT", ep, done, len, timeout_ms);
			return -ETIMEDOUT;
		}
		r = libusb_bulk_transfer(p->h, ep, buf + done, (int)n, &got, ms);
		if (r < 0)
			return fail(p, r, "bulk %s 0x%02x: %zu bytes at offset %zu of %zu (%d moved)",
				    in ? "IN" : "OUT", ep, n, done, len, got);
		done += (size_t)got;
		if ((size_t)got < n)
			break;   /* a short packet ends an IN transfer */
	}
	return (int)done;
}

static int usb_bulk_out(struct transport *t, const void *data, size_t len, unsigned timeout_ms)
{
	struct usb_priv *p = t->priv;

	/* libusb wants a non-const buffer; an OUT transfer only reads it. */
	return usb_bulk(p, false, t->ep_out, p->out_maxpkt, (uint8_t *)(uintptr_t)data, len, timeout_ms);
}

static int usb_bulk_in(struct transport *t, void *data, size_t len, unsigned timeout_ms)
{
	struct usb_priv *p = t->priv;

	return usb_bulk(p, true, t->ep_in, p->in_maxpkt, data, len, timeout_ms);
}

static void usb_close(struct transport *t)
{
	struct usb_priv *p;

	if (!t)
		return;
	p = t->priv;
	if (p->h) {
		if (p->iface >= 0) {
			int r = libusb_release_interface(p->h, p->iface);

			if (r < 0 && r != LIBUSB_ERROR_NO_DEVICE)
				usb_log("usb %s: release interface %d: %s", t->port_path, p->iface,
					libusb_error_name(r));
		}
		libusb_close(p->h);
	}
	if (p->ctx)
		libusb_exit(p->ctx);
	free(p);
}

static const struct transport_ops usb_ops = {
	.control = usb_control,
	.bulk_out = usb_bulk_out,
	.bulk_in = usb_bulk_in,
	.close = usb_close,
};

/* ---- open -------------------------------------------------------------- */

/* The device whose bus and port chain format to @port, with a reference. */
static libusb_device *find_by_port(libusb_context *ctx, const char *port)
{
	libusb_device **list = NULL, *found = NULL;
	ssize_t n = libusb_get_device_list(ctx, &list);

	if (n < 0) {
		usb_log("usb %s: listing devices: %s", port, libusb_error_name((int)n));
		return NULL;
	}
	for (ssize_t i = 0; i < n && !found; i++) {
		uint8_t chain[USB_MAX_PORT_DEPTH];
		char path[32];
		int np = libusb_get_port_numbers(list[i], chain, (int)sizeof(chain));

		if (np <= 0)
			continue;   /* a root hub */
		if (usb_port_path_format(libusb_get_bus_number(list[i]), chain, np, path,
					 sizeof(path)) == 0 && strcmp(path, port) == 0)
			found = libusb_ref_device(list[i]);
	}
	libusb_free_device_list(list, 1);
	return found;
}

static size_t config_to_ifs(const struct libusb_config_descriptor *cfg, struct usb_if_info *ifs,
			    size_t max)
{
	size_t n = 0;

	for (uint8_t i = 0; i < cfg->bNumInterfaces && n < max; i++) {
		const struct libusb_interface_descriptor *d;
		struct usb_if_info *o = &ifs[n];

		if (cfg->interface[i].num_altsetting < 1)
			continue;
		d = &cfg->interface[i].altsetting[0];
		memset(o, 0, sizeof(*o));
		o->number = d->bInterfaceNumber;
		o->cls = d->bInterfaceClass;
		o->subclass = d->bInterfaceSubClass;
		o->protocol = d->bInterfaceProtocol;
		for (uint8_t k = 0; k < d->bNumEndpoints && o->nep < USB_IF_MAX_EP; k++, o->nep++) {
			o->ep[o->nep].address = d->endpoint[k].bEndpointAddress;
			o->ep[o->nep].attributes = d->endpoint[k].bmAttributes;
			o->ep[o->nep].max_packet = d->endpoint[k].wMaxPacketSize;
		}
		n++;
	}
	return n;
}

static int pick_interface(struct usb_priv *p, libusb_device *dev, struct usb_ep_pick *pick)
{
	struct libusb_config_descriptor *cfg = NULL;
	struct usb_if_info ifs[8];
	size_t nifs;
	int r;

	r = libusb_get_active_config_descriptor(dev, &cfg);
	if (r < 0) {
		usb_log("usb %s: reading the configuration descriptor: %s", p->t.port_path,
			libusb_error_name(r));
		return usb_open_errno(r);
	}
	nifs = config_to_ifs(cfg, ifs, sizeof(ifs) / sizeof(ifs[0]));
	libusb_free_config_descriptor(cfg);
	r = usb_pick_endpoints(ifs, nifs, pick);
	if (r < 0) {
		usb_log("usb %s: no interface with a bulk OUT endpoint (%zu interface(s))",
			p->t.port_path, nifs);
		return -EIO;
	}
	return 0;
}

static void read_serial(struct usb_priv *p, uint8_t index)
{
	unsigned char buf[sizeof(p->t.serial)];
	int r;

	/* The kernel read the string at enumeration: no transfer needed. */
	if (usb_sysfs_attr(USB_SYSFS_ROOT, p->t.port_path, "serial", p->t.serial,
			   sizeof(p->t.serial)) < 0 && index != 0) {
		r = libusb_get_string_descriptor_ascii(p->h, index, buf, (int)sizeof(buf));
		if (r < 0) {
			usb_log("usb %s: reading the serial string (index %u): %s", p->t.port_path,
				index, libusb_error_name(r));
			r = 0;
		}
		snprintf(p->t.serial, sizeof(p->t.serial), "%.*s", r, (const char *)buf);
	}
	if (p->t.serial[0] && !usb_serial_plain(p->t.serial)) {
		usb_log("usb %s: ignoring a serial string with unexpected characters", p->t.port_path);
		p->t.serial[0] = '\0';
	}
}

static const char *open_advice(int err)
{
	switch (err) {
	case -EACCES:
		return " (install the udev rules 60-rpi-sb-provisioner.rules and run the station "
		       "as a member of group rpi-sb)";
	case -EBUSY:
		return " (another program holds the interface: stop any rpiboot or the peer's "
		       "services on this host)";
	default:
		return "";
	}
}

int usb_transport_open(const char *port, struct transport **out)
{
	struct libusb_device_descriptor dd;
	struct usb_ep_pick pick;
	libusb_device *dev = NULL;
	struct usb_priv *p;
	int r;

	*out = NULL;
	if (!port || !usb_port_path_valid(port) || strlen(port) >= sizeof(p->t.port_path))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->iface = -1;
	p->t.ops = &usb_ops;
	p->t.kind = TRANSPORT_USB;
	p->t.priv = p;
	snprintf(p->t.port_path, sizeof(p->t.port_path), "%s", port);

	r = libusb_init(&p->ctx);
	if (r < 0) {
		usb_log("usb %s: libusb_init: %s", port, libusb_error_name(r));
		p->ctx = NULL;
		r = usb_open_errno(r);
		goto fail;
	}
	dev = find_by_port(p->ctx, port);
	if (!dev) {
		r = -ENODEV;
		goto fail;
	}
	r = libusb_get_device_descriptor(dev, &dd);
	if (r < 0) {
		usb_log("usb %s: device descriptor: %s", port, libusb_error_name(r));
		r = usb_open_errno(r);
		goto fail;
	}
	p->devnum = libusb_get_device_address(dev);
	p->t.vid = dd.idVendor;
	p->t.pid = dd.idProduct;
	p->t.iserial_index = dd.iSerialNumber;
	r = pick_interface(p, dev, &pick);
	if (r < 0)
		goto fail;
	r = libusb_open(dev, &p->h);
	if (r < 0) {
		p->h = NULL;
		r = usb_open_errno(r);
		usb_log("usb %s: opening %04x:%04x: %s%s", port, dd.idVendor, dd.idProduct,
			strerror(-r), open_advice(r));
		goto fail;
	}
	/* Never set_configuration: on Linux it resets the bus (rpiboot.md §1.3).
	 * Let libusb unbind a kernel driver from our interface and rebind it at
	 * release (not supported everywhere: then the claim says BUSY). */
	libusb_set_auto_detach_kernel_driver(p->h, 1);
	r = libusb_claim_interface(p->h, pick.interface);
	if (r < 0) {
		r = usb_open_errno(r);
		usb_log("usb %s: claiming interface %u: %s%s", port, pick.interface,
			strerror(-r), open_advice(r));
		goto fail;
	}
	p->iface = pick.interface;
	p->t.ep_out = pick.ep_out;
	p->t.ep_in = pick.ep_in;
	p->out_maxpkt = pick.out_maxpkt;
	p->in_maxpkt = pick.in_maxpkt;
	read_serial(p, dd.iSerialNumber);
	/* The kernel's copy of iProduct; a virtual Pi says so there (vpi/standin.h). */
	if (usb_sysfs_attr(USB_SYSFS_ROOT, p->t.port_path, "product", p->t.product,
			   sizeof(p->t.product)) < 0)
		p->t.product[0] = '\0';
	libusb_unref_device(dev);
	*out = &p->t;
	return 0;
fail:
	if (dev)
		libusb_unref_device(dev);
	usb_close(&p->t);
	return r;
}
