/* transport/usb: a real USB device through libusb-1.0 as a struct transport.
 *
 * A board is opened by its port (kernel topology path B-P.P.P, matched
 * against libusb_get_port_numbers()), never by bus address, which changes at
 * every enumeration. The interface and bulk endpoints come from the active
 * configuration descriptor: FunctionFS (the QEMU test gadget) renumbers the
 * Pi's 0x01/0x82 to 0x02/0x81, and the station must work with both.
 *
 * Transfer rules (spec rpiboot.md §2, §9.3; fastboot.md §1.4):
 *   - control IN may return fewer bytes than wLength (a short read is data);
 *   - bulk transfers are split into chunks of at most USB_BULK_CHUNK_MAX,
 *     every chunk but the last a whole number of max-size packets;
 *   - no zero-length packet is ever sent: both device sides count bytes
 *     against a length announced beforehand, and a ZLP where fastboot
 *     expects a command restarts the gadget's session. A zero-length
 *     bulk_out therefore sends nothing;
 *   - a failed chunk is not retried (resent bytes would misalign the
 *     device's count).
 * libusb errors map to the seam's errnos (usb_transfer_errno) and every one
 * is logged by its name (LIBUSB_ERROR_TIMEOUT, never -7). An I/O error after
 * which the device leaves its port within a second is reported as -ENODEV.
 *
 * Each open transport has its own libusb context: a context created before a
 * device arrived never lists it when udevd is not running (spec
 * qemu-usb-harness.md §6), and a private one dies with the board's handle.
 * Threads: one worker owns a transport; open/close from any thread. */
#ifndef RPI_SB_TRANSPORT_USB_H
#define RPI_SB_TRANSPORT_USB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

/* Largest single bulk transfer. A multiple of every bulk packet size (64,
 * 512, 1024); small enough that eight boards stay far below usbfs's shared
 * 16 MiB buffer budget, large enough that per-transfer latency is not what
 * limits throughput. */
#define USB_BULK_CHUNK_MAX (256u * 1024u)

/* Where sysfs is mounted (tests point it at a fake tree). */
#define USB_SYSFS_ROOT "/sys"

/* Open the device now on @port ("1-1.3") and claim its interface.
 * 0, -EINVAL (malformed port), -ENODEV (nothing there, or it left),
 * -EACCES (no permission: udev rules / group), -EBUSY (another program has
 * claimed it), -EIO. Fills vid/pid/serial/iserial_index/port_path/ep_*. */
int usb_transport_open(const char *port, struct transport **out);

/* ---- logging ------------------------------------------------------------
 * Errors of the USB layer and the discovery's notices go through one hook.
 * The default writes the line to stderr (the journal under systemd). Set it
 * before discovery starts; it may be called from any thread. */
typedef void (*usb_log_fn)(void *usrptr, const char *line);
void usb_set_log(usb_log_fn fn, void *usrptr);
void usb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- pure logic (unit-tested without hardware) ---------------------------- */

/* libusb error of a transfer -> the seam's errno: NO_DEVICE -ENODEV (unplug),
 * PIPE -EPIPE (stall), TIMEOUT -ETIMEDOUT, anything else -EIO. */
int usb_transfer_errno(int libusb_err);
/* The same once the caller has looked at the bus: an error that maps to -EIO
 * followed by the device leaving its port (a cable pulled mid-transfer often
 * fails the transfer with LIBUSB_ERROR_IO before the hub reports the
 * disconnect) is an unplug, -ENODEV. */
int usb_transfer_errno_checked(int libusb_err, bool device_gone);
/* libusb error while opening/claiming -> errno: ACCESS -EACCES, BUSY -EBUSY,
 * NO_DEVICE/NOT_FOUND -ENODEV, NO_MEM -ENOMEM, anything else -EIO. */
int usb_open_errno(int libusb_err);

/* Size of the next bulk transfer when @remaining bytes are left: at most
 * @max_chunk rounded down to whole @maxpkt packets, so only the last chunk
 * of a call can end in a short packet. 0 when nothing is left (no ZLP). */
size_t usb_bulk_chunk(size_t remaining, unsigned maxpkt, size_t max_chunk);

#define USB_IF_MAX_EP 32

struct usb_ep_info {
	uint8_t address;        /* bit 7 set: IN */
	uint8_t attributes;     /* low two bits: transfer type (2 = bulk) */
	uint16_t max_packet;    /* wMaxPacketSize */
};

struct usb_if_info {
	uint8_t number;
	uint8_t cls, subclass, protocol;
	uint8_t nep;
	struct usb_ep_info ep[USB_IF_MAX_EP];
};

struct usb_ep_pick {
	uint8_t interface;
	uint8_t ep_out, ep_in;           /* ep_in 0: the interface has none */
	uint16_t out_maxpkt, in_maxpkt;  /* packet size bits only (11 bits) */
};

/* Choose the interface and bulk endpoints: the first vendor-specific (0xff)
 * interface with a bulk OUT endpoint, else the first interface with one
 * (the BCM2837 ROM shows mass storage as interface 0 and the vendor
 * interface as 1). 0, or -ENOENT when no interface has a bulk OUT. */
int usb_pick_endpoints(const struct usb_if_info *ifs, size_t nifs, struct usb_ep_pick *out);

/* True for a serial string the station may show and compare: 1-63 letters,
 * digits, '-', '_' or '.'. The string comes from the device. */
bool usb_serial_plain(const char *s);

/* Read one sysfs attribute of the device on @port, trailing newline removed.
 * 0, -EINVAL for a malformed port, -ENOSPC when it does not fit, or -errno
 * of open/read (-ENOENT: no such device or attribute). */
int usb_sysfs_attr(const char *sysfs_root, const char *port, const char *attr,
		   char *buf, size_t len);

#endif
