/* vpi/gadget: a virtual Pi served as a real USB device on a Linux UDC
 * (dummy_hcd in the QEMU test), so that the station's libusb code talks to it
 * through the kernel's USB stack.
 *
 * The board itself runs unchanged on a private one-port virtual bus (vpi/bus):
 * its firmware presents descriptors and answers transfers there. The gadget
 * is the wire between that bus and the kernel: every device the board
 * presents is presented on the UDC, every host transfer the kernel delivers is
 * replayed on the virtual bus, and a re-enumeration of the board is a real
 * disconnect and reconnect. Boot-mode stages (0a5c:27xx) go through GadgetFS,
 * which keeps the Pi's endpoint addresses and string indices; the fastboot
 * gadget (18d1:4e40) goes through FunctionFS, as on the real board. See
 * doc/virtual-pi-gadget.md for what the kernel interfaces cannot reproduce.
 *
 * The pure parts (how many bulk OUT bytes a control request announces, what a
 * fastboot reply announces, how a control IN reply is cut for GadgetFS) are
 * exposed for the unit tests. */
#ifndef RPI_SB_VPI_GADGET_H
#define RPI_SB_VPI_GADGET_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

struct vpi_board;

/* GadgetFS stages control data through a 256-byte buffer; an IN reply of all
 * 256 bytes never ends (no short packet), so replies are cut to this. */
#define VPI_GADGETFS_CTRL_MAX 255u

/* Serve @b on the UDC named @udc (e.g. "dummy_udc.0") until *@stop becomes
 * non-zero (0), or the UDC is unbound from outside, which is the cable being
 * pulled (-ENODEV; the board sees the unplug). Needs root, configfs mounted on
 * /sys/kernel/config and the gadgetfs, libcomposite and usb_f_fs modules.
 * Progress and figures go to stderr, one line each, prefixed "gadget <udc>:". */
int vpi_gadget_serve(struct vpi_board *b, const char *udc, volatile sig_atomic_t *stop);

/* ---- protocol followers (pure) ---------------------------------------- */

/* What the relay knows of the rpiboot conversation on one enumeration. */
struct vpi_gadget_rpiboot {
	bool rom;              /* iSerialNumber says boot ROM: every 0x40 announces bulk */
	int last_command;      /* stage 2: command of the last FileMessage, -1 none */
};

/* A control OUT request @s was relayed: how many bulk OUT bytes follow it
 * (rpiboot's announce), or 0 (a size reply after GetFileSize, a zero ack, any
 * other request). Updates @st. */
uint64_t vpi_gadget_rpiboot_out(struct vpi_gadget_rpiboot *st, const struct usb_ctrl_setup *s);
/* A control IN reply of @n bytes to @s was relayed (notes the FileMessage). */
void vpi_gadget_rpiboot_in(struct vpi_gadget_rpiboot *st, const struct usb_ctrl_setup *s,
			   const uint8_t *data, size_t n);
/* Length to send of a control IN reply of @n bytes through GadgetFS: @n when
 * it fits; a FileMessage is cut after its name's NUL (the host reads a short
 * FileMessage as zero-filled); anything else to VPI_GADGETFS_CTRL_MAX. */
size_t vpi_gadget_gadgetfs_reply_len(const uint8_t *data, size_t n);

/* fastboot: is this bulk OUT packet a download command? */
bool vpi_gadget_fastboot_is_download(const uint8_t *cmd, size_t n);
/* fastboot: a reply packet. 1 = "DATAxxxxxxxx" (*@len set), 0 = a final
 * reply without data (OKAY/FAIL), -1 = INFO/TEXT (not final). */
int vpi_gadget_fastboot_reply(const uint8_t *p, size_t n, uint64_t *len);

#endif
