/* vpi/bus: a virtual USB bus with named ports, for in-process virtual Pis.
 *
 * Ports are named like kernel topology paths, "<bus>-<port>" (bus 9 by
 * default: "9-1", "9-2", ...), so port handling code treats them like real
 * paths. Attaching a board to a port plugs its cable in: the board starts its
 * own device thread (its firmware, see vpi/rom.h) and shows up as whatever its
 * current stage presents. Every appearance gets a new device address, as on a
 * real bus. Listing, hotplug notification (eventfd + callback) and opening a
 * device as a struct transport of kind TRANSPORT_SIM are thread-safe. */
#ifndef RPI_SB_VPI_BUS_H
#define RPI_SB_VPI_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"
#include "vpi/usbfront.h"

struct vpi_bus;
struct vpi_board;

#define VPI_BUS_DEFAULT_BUSNUM 9u

struct vpi_bus_dev {
	char port[32];
	unsigned address;          /* new on every enumeration */
	struct vpi_usbdesc desc;
	bool ghost;                /* duplicate descriptor (fault): never answers */
};

int vpi_bus_new(unsigned busnum, unsigned nports, struct vpi_bus **out);
/* Detaches every board (joins their threads) and frees the bus. */
void vpi_bus_free(struct vpi_bus *bus);
unsigned vpi_bus_nports(const struct vpi_bus *bus);
const char *vpi_bus_port_name(const struct vpi_bus *bus, unsigned i);

/* Plug @board into @port: it powers on (in USB boot mode while nRPIBOOT is
 * held). The caller keeps ownership of @board and must detach before closing
 * it. -ENOENT unknown port, -EBUSY port in use. */
int vpi_bus_attach(struct vpi_bus *bus, const char *port, struct vpi_board *board);
/* Pull the cable: the board's device thread stops; its state dir stays. */
int vpi_bus_detach(struct vpi_bus *bus, const char *port);
/* The firmware state of the board on @port: "rom", "recovery", "bootloader",
 * "gadget", "halted", "booted", "refused", "unplugged", "off", or NULL. Copied. */
int vpi_bus_port_state(struct vpi_bus *bus, const char *port, char *state, size_t len);

/* Snapshot of the devices on the bus (malloc'd array). */
int vpi_bus_list(struct vpi_bus *bus, struct vpi_bus_dev **devs, size_t *n);
/* Readable (counter) after every attach/detach of a device. */
int vpi_bus_eventfd(struct vpi_bus *bus);
/* Called (from the thread that made the change, without bus locks held). */
void vpi_bus_set_callback(struct vpi_bus *bus, void (*cb)(void *usrptr, const char *port),
			  void *usrptr);
uint64_t vpi_bus_generation(struct vpi_bus *bus);
/* Wait until the generation differs from @seen. 0 or -ETIMEDOUT. */
int vpi_bus_wait_change(struct vpi_bus *bus, uint64_t seen, unsigned timeout_ms);

/* Open the device on @port (the real one, not a ghost) / the one with @address. */
int vpi_bus_open(struct vpi_bus *bus, const char *port, struct transport **out);
int vpi_bus_open_address(struct vpi_bus *bus, const char *port, unsigned address,
			 struct transport **out);

/* ---- firmware side: used by the device thread of the board on a port ---- */
struct vpi_fw {
	struct vpi_board *board;
	struct vpi_bus *bus;
	unsigned port;
	struct vpi_usbdev *dev;    /* current enumeration, NULL when off the bus */
	uint8_t *stage2;           /* the second stage the ROM accepted */
	size_t stage2_len;
	bool rpiboot_next;         /* the next reboot goes to USB boot mode (set_reboot_order) */
};
/* Leave the bus (if on it), wait the re-enumeration delay, present @d.
 * -ENODEV when the cable is pulled meanwhile. */
int vpi_fw_enumerate(struct vpi_fw *fw, const struct vpi_usbdesc *d);
void vpi_fw_leave(struct vpi_fw *fw);
void vpi_fw_set_state(struct vpi_fw *fw, const char *state);
/* Wait until the cable is pulled (a halted or booted board). Returns -ENODEV. */
int vpi_fw_idle(struct vpi_fw *fw);
/* Stay on the bus but never answer again (a refusing ROM, a stall fault),
 * until the cable is pulled. Returns -ENODEV. */
int vpi_fw_hang(struct vpi_fw *fw);
/* Sleep @ms unless the cable is pulled (-ENODEV). */
int vpi_fw_sleep(struct vpi_fw *fw, unsigned ms);
bool vpi_fw_stopping(struct vpi_fw *fw);

#endif
