/* vpi/fastbootd: the virtual Pi's fastboot gadget, answering exactly like
 * Raspberry Pi's rpi-fastbootd (shared/spec/fastboot.md §3-5).
 *
 * The gadget core runs on a blocking byte channel, like the real daemon's USB
 * and TCP loops; usbfront (vpi-boot) and tcpfront wrap their pipes into one. */
#ifndef RPI_SB_VPI_FASTBOOTD_H
#define RPI_SB_VPI_FASTBOOTD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vpi/board.h"

#define VPI_FB_MAX_COMMAND 256u          /* FB_RESPONSE_SZ: bytes read per command */
#define VPI_FB_MAX_RESPONSE 256u
#define VPI_FB_MAX_DOWNLOAD 0x10000000u  /* getvar max-download-size */
#define VPI_FB_VERSION "0.4"
#define VPI_FB_DAEMON_VERSION "14.0.0"

struct vpi_fb_channel {
	/* read one command/data chunk: returns bytes (>0), 0 on close, -errno */
	ssize_t (*read)(void *usrptr, void *buf, size_t len);
	ssize_t (*write)(void *usrptr, const void *buf, size_t len);   /* one response or data packet */
	void *usrptr;
	const char *transport_name;  /* "usb" or "tcp" */
};

/* How a session ended (vpi_fastbootd_serve's non-negative returns). */
enum vpi_fb_end {
	VPI_FB_END_CLOSED = 0,       /* the channel closed (host went away) */
	VPI_FB_END_REBOOT = 1,       /* "reboot": the board restarts */
	VPI_FB_END_REBOOT_BOOTLOADER = 2,
	VPI_FB_END_SHUTDOWN = 3,     /* "shutdown": answered, then silent for good */
};

enum vpi_fb_mode {
	VPI_FB_MODE_FULL,            /* USB, or a connection of `fastbootd -i tcp` */
	VPI_FB_MODE_DATA_PLANE,      /* a TCP connection of `-i usb+tcp` (spec §2.2) */
};

/* Serve one session with the full command set. Returns enum vpi_fb_end, or
 * -ENODEV when an unplug fault fired, or another -errno from the channel. */
int vpi_fastbootd_serve(struct vpi_board *b, const struct vpi_fb_channel *ch);
/* @split: the daemon runs as `-i usb+tcp` (getvar tcp-data-plane-only = yes). */
int vpi_fastbootd_serve_mode(struct vpi_board *b, const struct vpi_fb_channel *ch,
			     enum vpi_fb_mode mode, bool split);

/* Kernel-side state of the running gadget OS (open LUKS mappings, LEDs,
 * cached key status) lives per board across sessions until this is called:
 * at power-off/reboot, and before vpi_board_close(). */
void vpi_fastbootd_board_reset(struct vpi_board *b);

/* Last value written to LED @name ("PWR", "ACT") into @out: 0, or -ENOENT
 * when never written or no such LED. */
int vpi_fastbootd_led(struct vpi_board *b, const char *name, char *out, size_t len);

#endif
