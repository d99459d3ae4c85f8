/* vpi/standin: the marker of payloads that exist only for the simulator.
 *
 * Real Raspberry Pi firmware for some steps is not available to the project
 * (the fastboot gadget's boot.img, a Zero 2 W bootcode.bin). The simulator
 * accepts stand-ins instead: files that begin with VPI_STANDIN_MAGIC, a space,
 * a role word and a newline, e.g. "RPI-SB-VPI-STANDIN gadget\n". The station
 * must refuse to send such a payload to a real USB device
 * (transport_is_real_hardware()): vpi_standin_is() is the one test. */
#ifndef RPI_SB_VPI_STANDIN_H
#define RPI_SB_VPI_STANDIN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define VPI_STANDIN_MAGIC "RPI-SB-VPI-STANDIN"
#define VPI_STANDIN_MAGIC_LEN (sizeof(VPI_STANDIN_MAGIC) - 1)

/* Roles: a second stage that runs the bootloader's file requests (like
 * bootcode5.bin from bootfiles.bin), one that runs recovery (like
 * recovery.bin), and a boot.img that boots the fastboot gadget OS. */
#define VPI_STANDIN_ROLE_BOOTCODE "bootcode"
#define VPI_STANDIN_ROLE_RECOVERY "recovery"
#define VPI_STANDIN_ROLE_GADGET "gadget"

/* A virtual Pi served as a real USB gadget (vpi/gadget) appends this to its
 * iProduct string in every stage; a Raspberry Pi boot ROM or bootloader never
 * says it. The station sends stand-ins to a USB device only when it says this
 * AND the operator started it with `daemon --rehearse-usb`. */
#define VPI_USB_PRODUCT_MARK "rpi-sb-provisioner virtual Pi"

static inline bool vpi_usb_product_is_virtual(const char *product)
{
	return product && strstr(product, VPI_USB_PRODUCT_MARK) != NULL;
}

static inline bool vpi_standin_is(const void *data, size_t len)
{
	return len >= VPI_STANDIN_MAGIC_LEN && memcmp(data, VPI_STANDIN_MAGIC, VPI_STANDIN_MAGIC_LEN) == 0;
}

/* Does the stand-in header name @role? */
static inline bool vpi_standin_role(const void *data, size_t len, const char *role)
{
	size_t rl = strlen(role);
	const char *p = (const char *)data + VPI_STANDIN_MAGIC_LEN;

	if (!vpi_standin_is(data, len) || len < VPI_STANDIN_MAGIC_LEN + 1 + rl + 1)
		return false;
	return p[0] == ' ' && memcmp(p + 1, role, rl) == 0 && (p[1 + rl] == '\n' || p[1 + rl] == ' ');
}

#endif
