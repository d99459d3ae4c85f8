/* transport: the seam between protocols and the bytes on a wire.
 *
 * rpiboot and fastboot run on top of a struct transport; a transport is a
 * libusb device, the in-process virtual Pi (simulator), or a TCP socket.
 * Every call is blocking with a timeout and belongs to the one worker thread
 * that owns the board. Returns: bytes moved (>= 0) or a negative errno:
 *   -ETIMEDOUT  nothing within the timeout     -ENODEV  the device is gone (unplug)
 *   -EPIPE      the device stalled the request -EIO     any other transfer error
 * The caller names errors with transport_strerror(). */
#ifndef RPI_SB_TRANSPORT_H
#define RPI_SB_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct transport;

struct usb_ctrl_setup {
	uint8_t bmRequestType;   /* direction bit 0x80 = device-to-host */
	uint8_t bRequest;
	uint16_t wValue;
	uint16_t wIndex;
	uint16_t wLength;
};

struct transport_ops {
	/* Control transfer; data is wLength bytes (OUT) or a buffer of wLength (IN).
	 * An IN transfer may return fewer bytes than asked (a short read). */
	int (*control)(struct transport *t, const struct usb_ctrl_setup *setup,
		       void *data, unsigned timeout_ms);
	/* Bulk OUT / IN on the transport's endpoints. bulk_in may return fewer bytes. */
	int (*bulk_out)(struct transport *t, const void *data, size_t len, unsigned timeout_ms);
	int (*bulk_in)(struct transport *t, void *data, size_t len, unsigned timeout_ms);
	/* Release the device; the transport is freed. */
	void (*close)(struct transport *t);
};

enum transport_kind {
	TRANSPORT_USB,   /* a real USB device through libusb */
	TRANSPORT_SIM,   /* the in-process virtual Pi */
	TRANSPORT_TCP,   /* fastboot over TCP */
};

struct transport {
	const struct transport_ops *ops;
	enum transport_kind kind;
	uint16_t vid, pid;
	char serial[64];         /* iSerialNumber string ("" when none) */
	uint8_t iserial_index;   /* its string index: tells the rpiboot stage (ROM or second stage) */
	char product[64];        /* iProduct string, "" when none (USB: from sysfs) */
	char port_path[32];      /* kernel topology path B-P.P.P, or a virtual port name */
	uint8_t ep_out, ep_in;   /* bulk endpoint addresses, read from descriptors */
	void *priv;              /* the implementation's state */
};

static inline int transport_control(struct transport *t, const struct usb_ctrl_setup *s,
				    void *data, unsigned timeout_ms)
{
	return t->ops->control(t, s, data, timeout_ms);
}

static inline int transport_bulk_out(struct transport *t, const void *d, size_t n, unsigned ms)
{
	return t->ops->bulk_out(t, d, n, ms);
}

static inline int transport_bulk_in(struct transport *t, void *d, size_t n, unsigned ms)
{
	return t->ops->bulk_in(t, d, n, ms);
}

static inline void transport_close(struct transport *t)
{
	if (t)
		t->ops->close(t);
}

/* Payloads that exist only for the simulator must never reach real hardware. */
static inline bool transport_is_real_hardware(const struct transport *t)
{
	return t->kind == TRANSPORT_USB;
}

#endif
