/* disc_usb: the discovery source for real boards (libudev + sysfs + libusb).
 *
 * At start it reports the boards already plugged in, then follows hotplug:
 * a libudev monitor on the "udev" source (events come after udevd applied
 * the rules, so the device node's group and mode are final) wakes a rescan
 * of sysfs, whose device list is the truth. Where udevd is not running (no
 * /run/udev/control), or its monitor stays silent while sysfs changes, it
 * falls back to rescanning every DISC_USB_POLL_MS (woken early by the
 * kernel's own uevents) and says so once in the log.
 *
 * Only Raspberry Pi devices are reported (usb_classify: boot mode
 * 0a5c:2711|2712|2764, fastboot gadget 18d1:4e40 "Raspberry Pi"); their
 * identity comes from sysfs attributes the kernel read at enumeration, so
 * nothing is sent to a device before the station's allow-list verdict. The
 * port is the kernel topology path B-P.P.P built with usb_port_path_format.
 * .open opens the board now on the port with the libusb transport. */
#ifndef RPI_SB_STATION_DISC_USB_H
#define RPI_SB_STATION_DISC_USB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "station/ports.h"
#include "station/station.h"

#define DISC_USB_POLL_MS 300        /* rescan period without udev events */
#define DISC_USB_CHECK_MS 1000      /* cross-check of the udev monitor against sysfs */
#define DISC_USB_UDEV_GRACE_MS 2000 /* sysfs changed, no event this long: udev is silent */

int disc_usb_new(struct discovery **out);
void disc_usb_free(struct discovery *d);

/* ---- pieces exposed for tests and tools ----------------------------------- */

enum disc_usb_flags {
	DISC_USB_FORCE_POLL = 1 << 0,   /* do not use udevd even when it runs */
};

/* @sysfs_root: where sysfs is mounted ("/sys"); tests pass a fake tree. */
int disc_usb_new_at(const char *sysfs_root, unsigned flags, struct discovery **out);

/* One device as sysfs shows it. */
struct usb_sysdev {
	char port[32];         /* B-P.P.P */
	unsigned busnum, devnum;
	uint16_t vid, pid;
	enum usb_role role;
	char serial[64];       /* "" when the device has none */
};

/* Read the device directory @name ("1-1.2") under <root>/bus/usb/devices.
 * 0, -ENOENT (not a device: root hub, interface, gone), -EINVAL (malformed). */
int usb_sysdev_read(const char *sysfs_root, const char *name, struct usb_sysdev *out);

/* The attribute texts of one device directory (NULL: absent). */
struct usb_sysattrs {
	const char *busnum, *devnum, *devpath, *idVendor, *idProduct, *manufacturer, *serial;
};
/* The parsing half of usb_sysdev_read (fuzzed): the directory name must be
 * the path that busnum + devpath format to; numbers must be whole; a serial
 * that is not plain (usb_serial_plain) is dropped. 0, -ENOENT, -EINVAL. */
int usb_sysdev_parse(const char *name, const struct usb_sysattrs *a, struct usb_sysdev *out);

/* The Raspberry Pi devices present now (role != USB_ROLE_OTHER), sorted by
 * port. *out is malloc'd (NULL when none). 0 or -errno. */
int usb_sysdev_list(const char *sysfs_root, struct usb_sysdev **out, size_t *n);

/* Compare two lists sorted by port. A device is the same while its port, bus
 * and device number are (the number changes at every enumeration). Calls
 * @left for each vanished device, then @arrived for each new one, so a
 * re-enumeration reads as leave + arrive. Returns the number of calls. */
struct usb_diff_ops {
	void (*left)(void *usrptr, const struct usb_sysdev *d);
	void (*arrived)(void *usrptr, const struct usb_sysdev *d);
};
size_t usb_sysdev_diff(const struct usb_sysdev *old, size_t nold, const struct usb_sysdev *now,
		       size_t nnow, const struct usb_diff_ops *ops, void *usrptr);

/* Whether to trust udev events or poll. */
enum disc_mode { DISC_MODE_UDEV, DISC_MODE_POLL };

struct disc_watch {
	enum disc_mode mode;
	uint64_t mismatch_since;   /* 0: sysfs agrees with what was reported */
};

/* One rescan's verdict. @event: a udev event woke this rescan; @changed: the
 * sysfs list differs from what was reported. Returns true when the change is
 * to be reported now. In udev mode a change seen before its event is held
 * back (udevd may not have applied the rules to the node yet); if no event
 * comes within DISC_USB_UDEV_GRACE_MS the watch switches to poll mode for
 * good (the caller logs that once, seeing mode change). */
bool disc_watch_step(struct disc_watch *w, bool event, bool changed, uint64_t now_ms);

#endif
