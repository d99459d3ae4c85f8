/* disc_usb: discovery of real boards. Owns the sysfs scan, the libudev
 * monitor, the poll fallback and the list of devices reported to the
 * station; opens boards with the libusb transport.
 *
 * Threads: start/stop/free on the station's thread; one discovery thread
 * (started by start, joined by stop) rescans and calls
 * station_device_arrived/left; open runs on job workers and only reads
 * sysfs and the immutable configuration. */
#include "station/disc_usb.h"

#include <dirent.h>
#include <errno.h>
#include <libudev.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "transport/usb.h"

#define UDEV_CONTROL "/run/udev/control"
#define USB_MAX_PORT_DEPTH 7
#define OPEN_EACCES_WAIT_MS DISC_USB_UDEV_GRACE_MS /* udevd may still be applying the rules */

struct disc_usb {
	char *sysroot;
	unsigned flags;
	struct station *st;
	struct udev *udev;
	struct udev_monitor *mon;
	int wake_fd;
	pthread_t thread;
	bool running;
	/* Discovery thread only (and start, before the thread exists). */
	struct usb_sysdev *seen;   /* what the station was told is present */
	size_t nseen;
	struct disc_watch watch;
	bool scan_error_said;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- sysfs ------------------------------------------------------------- */

/* A whole decimal or hex number no larger than @max. */
static int parse_uint(const char *s, int base, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "1.2.3" (sysfs devpath) -> {1,2,3}. */
static int parse_devpath(const char *s, uint8_t *chain, int max)
{
	int n = 0;

	for (;;) {
		char part[8];
		size_t len = strcspn(s, ".");
		unsigned long v;

		if (n == max || len == 0 || len >= sizeof(part))
			return -EINVAL;
		memcpy(part, s, len);
		part[len] = '\0';
		if (parse_uint(part, 10, 255, &v) < 0)
			return -EINVAL;
		chain[n++] = (uint8_t)v;
		if (s[len] == '\0')
			return n;
		s += len + 1;
	}
}

int usb_sysdev_parse(const char *name, const struct usb_sysattrs *a, struct usb_sysdev *out)
{
	uint8_t chain[USB_MAX_PORT_DEPTH];
	unsigned long bus, dev, vid, pid;
	int n;

	/* Root hubs (usb1) and interfaces (1-1:1.0) are not devices on ports. */
	if (!usb_port_path_valid(name))
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	if (!a->busnum || !a->devnum || !a->devpath || !a->idVendor || !a->idProduct)
		return -ENOENT;
	if (parse_uint(a->busnum, 10, 255, &bus) < 0 || parse_uint(a->devnum, 10, 0xffff, &dev) < 0 ||
	    parse_uint(a->idVendor, 16, 0xffff, &vid) < 0 ||
	    parse_uint(a->idProduct, 16, 0xffff, &pid) < 0)
		return -EINVAL;
	n = parse_devpath(a->devpath, chain, USB_MAX_PORT_DEPTH);
	if (n < 0)
		return -EINVAL;
	/* One format for port paths everywhere: rebuild it and insist it is the
	 * name the kernel gave the directory. */
	if (usb_port_path_format((uint8_t)bus, chain, n, out->port, sizeof(out->port)) < 0 ||
	    strcmp(out->port, name) != 0)
		return -EINVAL;
	out->busnum = (unsigned)bus;
	out->devnum = (unsigned)dev;
	out->vid = (uint16_t)vid;
	out->pid = (uint16_t)pid;
	/* The serial string comes from the device: only a plain one is passed on. */
	if (a->serial && usb_serial_plain(a->serial) && strlen(a->serial) < sizeof(out->serial))
		strcpy(out->serial, a->serial);
	out->role = usb_classify(out->vid, out->pid, a->manufacturer);
	return 0;
}

int usb_sysdev_read(const char *root, const char *name, struct usb_sysdev *out)
{
	static const char *const names[] = { "busnum", "devnum", "devpath", "idVendor", "idProduct",
					     "manufacturer", "serial" };
	char vals[7][128];
	const char *v[7];
	int r;

	if (!usb_port_path_valid(name))
		return -ENOENT;
	for (size_t i = 0; i < 7; i++) {
		r = usb_sysfs_attr(root, name, names[i], vals[i], sizeof(vals[i]));
		v[i] = r == 0 ? vals[i] : NULL;
		if (r == -EINVAL)
			return r;
	}
	return usb_sysdev_parse(name, &(struct usb_sysattrs){
		.busnum = v[0], .devnum = v[1], .devpath = v[2], .idVendor = v[3],
		.idProduct = v[4], .manufacturer = v[5], .serial = v[6] }, out);
}

static int by_port(const void *a, const void *b)
{
	return strcmp(((const struct usb_sysdev *)a)->port, ((const struct usb_sysdev *)b)->port);
}

int usb_sysdev_list(const char *root, struct usb_sysdev **out, size_t *n)
{
	struct usb_sysdev *list = NULL, dev;
	size_t count = 0, cap = 0;
	char path[256];
	struct dirent *e;
	DIR *dir;

	*out = NULL;
	*n = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/bus/usb/devices", root) >= sizeof(path))
		return -ENAMETOOLONG;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		/* A device that vanished or is half gone between readdir and the
		 * attribute reads is simply not listed this time. */
		if (usb_sysdev_read(root, e->d_name, &dev) < 0 || dev.role == USB_ROLE_OTHER)
			continue;
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct usb_sysdev *bigger = realloc(list, ncap * sizeof(*list));

			if (!bigger) {
				closedir(dir);
				free(list);
				return -ENOMEM;
			}
			list = bigger;
			cap = ncap;
		}
		list[count++] = dev;
	}
	closedir(dir);
	if (count > 1)
		qsort(list, count, sizeof(*list), by_port);
	*out = list;
	*n = count;
	return 0;
}

static bool same_device(const struct usb_sysdev *a, const struct usb_sysdev *b)
{
	return a->busnum == b->busnum && a->devnum == b->devnum && strcmp(a->port, b->port) == 0;
}

static bool listed(const struct usb_sysdev *list, size_t n, const struct usb_sysdev *d)
{
	for (size_t i = 0; i < n; i++)
		if (same_device(&list[i], d))
			return true;
	return false;
}

size_t usb_sysdev_diff(const struct usb_sysdev *old, size_t nold, const struct usb_sysdev *now,
		       size_t nnow, const struct usb_diff_ops *ops, void *usrptr)
{
	size_t calls = 0;

	for (size_t i = 0; i < nold; i++)
		if (!listed(now, nnow, &old[i])) {
			if (ops && ops->left)
				ops->left(usrptr, &old[i]);
			calls++;
		}
	for (size_t i = 0; i < nnow; i++)
		if (!listed(old, nold, &now[i])) {
			if (ops && ops->arrived)
				ops->arrived(usrptr, &now[i]);
			calls++;
		}
	return calls;
}

bool disc_watch_step(struct disc_watch *w, bool event, bool changed, uint64_t now_ms)
{
	if (w->mode == DISC_MODE_POLL || !changed || event) {
		w->mismatch_since = 0;
		return true;
	}
	if (w->mismatch_since == 0) {
		w->mismatch_since = now_ms ? now_ms : 1;
		return false;
	}
	if (now_ms - w->mismatch_since >= DISC_USB_UDEV_GRACE_MS) {
		w->mode = DISC_MODE_POLL;
		w->mismatch_since = 0;
		return true;
	}
	return false;
}

/* ---- the discovery thread ---------------------------------------------- */

static void report_left(void *usrptr, const struct usb_sysdev *d)
{
	struct disc_usb *ds = usrptr;

	station_device_left(ds->st, d->port);
}

static void report_arrived(void *usrptr, const struct usb_sysdev *d)
{
	struct disc_usb *ds = usrptr;

	station_device_arrived(ds->st, d->port, d->role, d->pid, d->serial);
}

static const struct usb_diff_ops report_ops = { .left = report_left, .arrived = report_arrived };

static void rescan(struct disc_usb *ds, bool event)
{
	struct usb_sysdev *now = NULL;
	size_t n = 0;
	enum disc_mode before = ds->watch.mode;
	bool changed;
	int r;

	r = usb_sysdev_list(ds->sysroot, &now, &n);
	if (r < 0) {
		if (!ds->scan_error_said)
			usb_log("usb discovery: cannot list %s/bus/usb/devices: %s (is sysfs mounted?)",
				ds->sysroot, strerror(-r));
		ds->scan_error_said = true;
		return;
	}
	ds->scan_error_said = false;
	changed = usb_sysdev_diff(ds->seen, ds->nseen, now, n, NULL, NULL) > 0;
	if (disc_watch_step(&ds->watch, event, changed, mono_ms()) && changed) {
		usb_sysdev_diff(ds->seen, ds->nseen, now, n, &report_ops, ds);
		free(ds->seen);
		ds->seen = now;
		ds->nseen = n;
		now = NULL;
	}
	if (before == DISC_MODE_UDEV && ds->watch.mode == DISC_MODE_POLL)
		usb_log("usb discovery: udevd sent no event for a USB change within %u ms: "
			"polling the USB device list every %u ms from now on",
			DISC_USB_UDEV_GRACE_MS, DISC_USB_POLL_MS);
	free(now);
}

/* True when a monitor message arrived (all pending ones are consumed). */
static bool drain_monitor(struct udev_monitor *mon)
{
	struct udev_device *dev;
	bool any = false;

	while ((dev = udev_monitor_receive_device(mon))) {
		any = true;
		udev_device_unref(dev);
	}
	return any;
}

static void *disc_main(void *arg)
{
	struct disc_usb *ds = arg;

	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = ds->wake_fd, .events = POLLIN },
			{ .fd = ds->mon ? udev_monitor_get_fd(ds->mon) : -1, .events = POLLIN },
		};
		int timeout = ds->watch.mode == DISC_MODE_POLL ? DISC_USB_POLL_MS : DISC_USB_CHECK_MS;
		bool event = false;
		int r = poll(pf, 2, timeout);

		if (r < 0 && errno != EINTR) {
			usb_log("usb discovery: poll: %s", strerror(errno));
			break;
		}
		if (r > 0 && (pf[0].revents & POLLIN))
			break;
		if (r > 0 && (pf[1].revents & POLLIN))
			event = drain_monitor(ds->mon);
		rescan(ds, event);
	}
	return NULL;
}

/* A monitor on @source ("udev" or "kernel") for USB devices, or NULL. */
static struct udev_monitor *open_monitor(struct udev *udev, const char *source)
{
	struct udev_monitor *mon = udev_monitor_new_from_netlink(udev, source);

	if (!mon)
		return NULL;
	if (udev_monitor_filter_add_match_subsystem_devtype(mon, "usb", "usb_device") < 0 ||
	    udev_monitor_enable_receiving(mon) < 0) {
		udev_monitor_unref(mon);
		return NULL;
	}
	return mon;
}

static void close_monitor(struct disc_usb *ds)
{
	if (ds->mon)
		udev_monitor_unref(ds->mon);
	if (ds->udev)
		udev_unref(ds->udev);
	ds->mon = NULL;
	ds->udev = NULL;
}

static int usbd_start(struct discovery *d, struct station *st)
{
	struct disc_usb *ds = d->priv;
	bool udevd = !(ds->flags & DISC_USB_FORCE_POLL) && access(UDEV_CONTROL, F_OK) == 0;
	int r;

	if (ds->running)
		return -EALREADY;
	ds->st = st;
	ds->udev = udev_new();
	if (ds->udev)
		ds->mon = open_monitor(ds->udev, udevd ? "udev" : "kernel");
	ds->watch = (struct disc_watch){ .mode = udevd && ds->mon ? DISC_MODE_UDEV : DISC_MODE_POLL };
	if (ds->watch.mode == DISC_MODE_POLL)
		usb_log("usb discovery: %s: polling the USB device list every %u ms%s",
			!udevd ? (ds->flags & DISC_USB_FORCE_POLL ? "udev events not used"
								    : "udevd is not running (no " UDEV_CONTROL ")")
			       : "cannot listen to udev events",
			DISC_USB_POLL_MS, ds->mon ? " (woken early by kernel uevents)" : "");
	ds->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ds->wake_fd < 0) {
		r = -errno;
		close_monitor(ds);
		return r;
	}
	/* The boards already plugged in, before any hotplug. */
	ds->scan_error_said = false;
	rescan(ds, true);
	r = -pthread_create(&ds->thread, NULL, disc_main, ds);
	if (r < 0) {
		close(ds->wake_fd);
		ds->wake_fd = -1;
		close_monitor(ds);
		return r;
	}
	ds->running = true;
	return 0;
}

static void usbd_stop(struct discovery *d)
{
	struct disc_usb *ds = d->priv;
	uint64_t one = 1;

	if (!ds->running)
		return;
	while (write(ds->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(ds->thread, NULL);
	ds->running = false;
	close(ds->wake_fd);
	ds->wake_fd = -1;
	close_monitor(ds);
	/* A later start reports everything present again. */
	free(ds->seen);
	ds->seen = NULL;
	ds->nseen = 0;
}

static const char *role_name(enum usb_role role)
{
	switch (role) {
	case USB_ROLE_BOOTROM: return "a boot-mode device";
	case USB_ROLE_GADGET: return "a fastboot gadget";
	case USB_ROLE_OTHER: break;
	}
	return "another device";
}

static int usbd_open(struct discovery *d, const char *port, enum usb_role role,
		     struct transport **out)
{
	struct disc_usb *ds = d->priv;
	uint64_t deadline = mono_ms() + OPEN_EACCES_WAIT_MS;
	struct usb_sysdev dev;
	int r;

	r = usb_sysdev_read(ds->sysroot, port, &dev);
	if (r < 0)
		return -ENODEV;
	if (dev.role != role) {
		usb_log("usb %s: expected %s, the port now shows %04x:%04x (%s)", port,
			role_name(role), dev.vid, dev.pid, role_name(dev.role));
		return -ENODEV;
	}
	for (;;) {
		r = usb_transport_open(port, out);
		if (r != -EACCES || mono_ms() >= deadline)
			return r;
		usleep(100 * 1000);
	}
}

static const struct discovery_ops disc_usb_ops = {
	.start = usbd_start,
	.stop = usbd_stop,
	.open = usbd_open,
};

int disc_usb_new_at(const char *sysfs_root, unsigned flags, struct discovery **out)
{
	struct discovery *d = calloc(1, sizeof(*d));
	struct disc_usb *ds = calloc(1, sizeof(*ds));

	if (!d || !ds || !(ds->sysroot = strdup(sysfs_root))) {
		free(ds);
		free(d);
		return -ENOMEM;
	}
	ds->flags = flags;
	ds->wake_fd = -1;
	d->ops = &disc_usb_ops;
	d->priv = ds;
	*out = d;
	return 0;
}

int disc_usb_new(struct discovery **out)
{
	return disc_usb_new_at(USB_SYSFS_ROOT, 0, out);
}

void disc_usb_free(struct discovery *d)
{
	struct disc_usb *ds;

	if (!d)
		return;
	ds = d->priv;
	usbd_stop(d);
	free(ds->seen);
	free(ds->sysroot);
	free(ds);
	free(d);
}
