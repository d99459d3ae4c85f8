/* vpi/usbfront: one enumeration of a virtual Pi on the virtual USB bus: its
 * descriptor, endpoint 0 and one bulk pipe each way, as the board's firmware
 * (device thread) and the host (a transport, see vpi/bus.h) see it.
 *
 * Every transfer is a rendezvous under the device mutex: the host posts a
 * request and waits (with its timeout) until the device thread takes it, like
 * a USB host controller retrying NAKed packets. A killed device (detach,
 * unplug, re-enumeration) fails every wait with -ENODEV. Bulk transfers honour
 * the board's link rate: a transfer of n bytes completes no earlier than
 * n / rate seconds after the link became free (an accounting clock, no sleep
 * when the rate is unlimited). Reference-counted; any thread. */
#ifndef RPI_SB_VPI_USBFRONT_H
#define RPI_SB_VPI_USBFRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

struct vpi_board;

struct vpi_usbdesc {
	uint16_t vid, pid, bcd_device;
	uint8_t iserial_index;        /* the stage marker for rpiboot (§1.1) */
	char manufacturer[32];
	char product[64];
	char serial[64];
	uint8_t if_class, if_subclass, if_protocol;
	uint8_t ep_out, ep_in;        /* 0 = none */
	uint16_t max_packet;          /* 512 high speed */
};

struct vpi_usbdev;

struct vpi_usbdev *vpi_usbdev_new(const struct vpi_usbdesc *d, struct vpi_board *b);
void vpi_usbdev_ref(struct vpi_usbdev *dev);
void vpi_usbdev_unref(struct vpi_usbdev *dev);
/* The device left the bus: every pending and later transfer fails -ENODEV. */
void vpi_usbdev_kill(struct vpi_usbdev *dev);
bool vpi_usbdev_dead(struct vpi_usbdev *dev);
const struct vpi_usbdesc *vpi_usbdev_desc(const struct vpi_usbdev *dev);

/* ---- device side (the board's device thread) ---- */
/* Next control request (timeout 0 = wait forever). For OUT requests the data
 * stage (wLength bytes, at most @cap) is copied to @data and the host's
 * transfer completes now. For IN requests answer with vpi_usbdev_ctrl_reply()
 * or vpi_usbdev_ctrl_stall(). 0, -ETIMEDOUT or -ENODEV. */
int vpi_usbdev_ctrl_wait(struct vpi_usbdev *dev, struct usb_ctrl_setup *s, void *data,
			 size_t cap, unsigned timeout_ms);
int vpi_usbdev_ctrl_reply(struct vpi_usbdev *dev, const void *data, size_t len);
int vpi_usbdev_ctrl_stall(struct vpi_usbdev *dev);
/* Bytes of the host's current bulk OUT transfer (at most @len): > 0, or
 * -ETIMEDOUT / -ENODEV. Counts against the board's phase (unplug faults). */
int vpi_usbdev_bulk_read(struct vpi_usbdev *dev, void *buf, size_t len, unsigned timeout_ms);
/* Exactly @len bytes, across host transfers. 0 or -errno. */
int vpi_usbdev_bulk_read_full(struct vpi_usbdev *dev, void *buf, size_t len, unsigned timeout_ms);
/* One bulk IN packet; returns when the host has taken all of it. */
int vpi_usbdev_bulk_write(struct vpi_usbdev *dev, const void *buf, size_t len, unsigned timeout_ms);
/* Whether device-side bulk bytes count against the board's phase (default
 * on; off for the fastboot gadget, whose core accounts its own phases). */
void vpi_usbdev_set_phase_accounting(struct vpi_usbdev *dev, bool on);
/* Sleep @ms, or -ENODEV at once when the device is killed. */
int vpi_usbdev_sleep(struct vpi_usbdev *dev, unsigned ms);

/* ---- host side (bus.c's transport ops) ---- */
int vpi_usbdev_host_control(struct vpi_usbdev *dev, const struct usb_ctrl_setup *s, void *data,
			    unsigned timeout_ms);
int vpi_usbdev_host_bulk_out(struct vpi_usbdev *dev, const void *data, size_t len,
			     unsigned timeout_ms);
int vpi_usbdev_host_bulk_in(struct vpi_usbdev *dev, void *data, size_t len, unsigned timeout_ms);

#endif
