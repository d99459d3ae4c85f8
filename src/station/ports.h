/* ports: which USB devices are ours, what their port is called, and whether
 * an arrival starts a job, continues one across re-enumeration, or is a
 * duplicate that must never start a second job.
 *
 * A tile is a USB port named by its kernel topology path (B-P.P.P); a job is
 * bound to its port across the board's re-enumerations between phases. The
 * tracker is pure logic with injected time so the rules can be tested. */
#ifndef RPI_SB_STATION_PORTS_H
#define RPI_SB_STATION_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum usb_role {
	USB_ROLE_OTHER = 0,   /* not ours: ignored */
	USB_ROLE_BOOTROM,     /* 0a5c:2711|2712|2764 in USB boot mode */
	USB_ROLE_GADGET,      /* 18d1:4e40 "Raspberry Pi" fastboot gadget */
};

enum usb_role usb_classify(uint16_t vid, uint16_t pid, const char *manufacturer);

/* "B-P.P.P" as sysfs names it, from a bus number and the port chain that
 * libusb_get_port_numbers() returns. -EINVAL for an empty chain, -ENOSPC when
 * @len is too small. */
int usb_port_path_format(uint8_t bus, const uint8_t *ports, int nports, char *buf, size_t len);

/* True for a well-formed topology path (B-P or B-P.P...). */
bool usb_port_path_valid(const char *path);

enum port_decision {
	PORT_START_JOB,      /* a new board on an idle port */
	PORT_CONTINUE_JOB,   /* the same job's board came back (re-enumeration) */
	PORT_DUPLICATE,      /* a second descriptor of a board already handled */
	PORT_EXCLUDED,       /* the allow-list excludes this port: skip, never fail */
	PORT_IGNORED,        /* not a Raspberry Pi device */
};

const char *port_decision_name(enum port_decision d);

struct port_arrival {
	const char *port;       /* topology path */
	enum usb_role role;
	const char *serial;     /* iSerialNumber ("" when none) */
	bool permitted;         /* allow-list verdict for @port */
	uint64_t now_ms;
};

struct port_tracker;

int ports_new(unsigned debounce_ms, struct port_tracker **out);
void ports_free(struct port_tracker *t);

enum port_decision ports_arrived(struct port_tracker *t, const struct port_arrival *a);
/* The device on @port disappeared (unplug or re-enumeration). */
void ports_left(struct port_tracker *t, const char *port, uint64_t now_ms);
/* The job on @port ended (done, failed or held): the port is idle again. */
void ports_job_ended(struct port_tracker *t, const char *port);
/* Jobs whose board has been gone longer than the debounce window: calls
 * @gone for each (the caller fails its attempt "unplugged during <phase>")
 * and frees the port. Returns how many. */
size_t ports_expire(struct port_tracker *t, uint64_t now_ms,
		    void (*gone)(void *usrptr, const char *port), void *usrptr);
bool ports_job_active(const struct port_tracker *t, const char *port);

#endif
