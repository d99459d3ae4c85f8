/* ports: classification of USB devices, topology-path formatting, and the
 * per-port job tracker (debounce and duplicate suppression).
 * The tracker is not locked: the discovery thread owns it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "station/ports.h"

enum usb_role usb_classify(uint16_t vid, uint16_t pid, const char *manufacturer)
{
	if (vid == 0x0a5c && (pid == 0x2711 || pid == 0x2712 || pid == 0x2764))
		return USB_ROLE_BOOTROM;
	/* 18d1:4e40 is shared with Android phones: the manufacturer string tells. */
	if (vid == 0x18d1 && pid == 0x4e40 && manufacturer && strcmp(manufacturer, "Raspberry Pi") == 0)
		return USB_ROLE_GADGET;
	return USB_ROLE_OTHER;
}

int usb_port_path_format(uint8_t bus, const uint8_t *ports, int nports, char *buf, size_t len)
{
	size_t used;
	int n;

	if (nports <= 0 || !ports)
		return -EINVAL;
	n = snprintf(buf, len, "%u-%u", bus, ports[0]);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	used = (size_t)n;
	for (int i = 1; i < nports; i++) {
		n = snprintf(buf + used, len - used, ".%u", ports[i]);
		if (n < 0 || (size_t)n >= len - used)
			return -ENOSPC;
		used += (size_t)n;
	}
	return 0;
}

static const char *digits(const char *s)
{
	const char *start = s;

	while (*s >= '0' && *s <= '9')
		s++;
	return s > start ? s : NULL;
}

bool usb_port_path_valid(const char *path)
{
	const char *s = digits(path);

	if (!s || *s != '-')
		return false;
	for (s = digits(s + 1); s && *s == '.'; s = digits(s + 1))
		;
	return s && *s == '\0';
}

const char *port_decision_name(enum port_decision d)
{
	switch (d) {
	case PORT_START_JOB: return "start";
	case PORT_CONTINUE_JOB: return "continue";
	case PORT_DUPLICATE: return "duplicate";
	case PORT_EXCLUDED: return "excluded";
	case PORT_IGNORED: return "ignored";
	}
	return "unknown";
}

struct port_slot {
	char *port;
	char *serial;          /* last serial seen for the job ("" when unknown) */
	bool active;           /* a job is bound to this port */
	bool present;          /* its device is on the bus now */
	uint64_t gone_since;   /* when it left (valid while !present) */
};

struct port_tracker {
	struct port_slot *slots;
	size_t n, cap;
	unsigned debounce_ms;
};

int ports_new(unsigned debounce_ms, struct port_tracker **out)
{
	struct port_tracker *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->debounce_ms = debounce_ms;
	*out = t;
	return 0;
}

void ports_free(struct port_tracker *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->slots[i].port);
		free(t->slots[i].serial);
	}
	free(t->slots);
	free(t);
}

static struct port_slot *slot_find(const struct port_tracker *t, const char *port)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->slots[i].port, port) == 0)
			return &t->slots[i];
	return NULL;
}

static struct port_slot *slot_get(struct port_tracker *t, const char *port)
{
	struct port_slot *s = slot_find(t, port);

	if (s)
		return s;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		struct port_slot *n = realloc(t->slots, ncap * sizeof(*n));

		if (!n)
			return NULL;
		t->slots = n;
		t->cap = ncap;
	}
	s = &t->slots[t->n];
	memset(s, 0, sizeof(*s));
	s->port = strdup(port);
	s->serial = strdup("");
	if (!s->port || !s->serial) {
		free(s->port);
		free(s->serial);
		return NULL;
	}
	t->n++;
	return s;
}

/* Serials match when equal, or when one is the 8-hex ROM serial and the
 * other the 16-hex DUID serial whose low half it is. */
static bool serial_same_board(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (!la || !lb)
		return false;
	if (la == lb)
		return strcasecmp(a, b) == 0;
	if (la == 8 && lb == 16)
		return strcasecmp(a, b + 8) == 0;
	if (la == 16 && lb == 8)
		return strcasecmp(a + 8, b) == 0;
	return false;
}

static void slot_set_serial(struct port_slot *s, const char *serial)
{
	char *n;

	if (!serial || !*serial || strlen(serial) < strlen(s->serial))
		return; /* keep the longer (16-hex) form once known */
	n = strdup(serial);
	if (n) {
		free(s->serial);
		s->serial = n;
	}
}

enum port_decision ports_arrived(struct port_tracker *t, const struct port_arrival *a)
{
	struct port_slot *s;

	if (a->role == USB_ROLE_OTHER)
		return PORT_IGNORED;
	if (!a->permitted)
		return PORT_EXCLUDED;

	s = slot_find(t, a->port);
	if (s && s->active) {
		if (s->present)
			return PORT_DUPLICATE;   /* the board is already there */
		s->present = true;           /* came back within the window */
		slot_set_serial(s, a->serial);
		return PORT_CONTINUE_JOB;
	}
	/* The same board already being handled on another port. */
	for (size_t i = 0; i < t->n; i++) {
		struct port_slot *o = &t->slots[i];

		if (o->active && o != s && serial_same_board(o->serial, a->serial ? a->serial : ""))
			return PORT_DUPLICATE;
	}
	/* Out of memory below: never start a job the tracker cannot see. */
	char *serial = strdup(a->serial ? a->serial : "");
	if (!serial)
		return PORT_DUPLICATE;
	s = slot_get(t, a->port);
	if (!s) {
		free(serial);
		return PORT_DUPLICATE;
	}
	free(s->serial);
	s->serial = serial;
	s->active = true;
	s->present = true;
	return PORT_START_JOB;
}

void ports_left(struct port_tracker *t, const char *port, uint64_t now_ms)
{
	struct port_slot *s = slot_find(t, port);

	if (s && s->present) {
		s->present = false;
		s->gone_since = now_ms;
	}
}

void ports_job_ended(struct port_tracker *t, const char *port)
{
	struct port_slot *s = slot_find(t, port);

	if (s) {
		s->active = false;
		s->serial[0] = '\0';
	}
}

bool ports_job_active(const struct port_tracker *t, const char *port)
{
	const struct port_slot *s = slot_find(t, port);

	return s && s->active;
}

size_t ports_expire(struct port_tracker *t, uint64_t now_ms,
		    void (*gone)(void *usrptr, const char *port), void *usrptr)
{
	size_t count = 0;

	for (size_t i = 0; i < t->n; i++) {
		struct port_slot *s = &t->slots[i];

		if (s->active && !s->present && now_ms - s->gone_since >= t->debounce_ms) {
			s->active = false;
			s->serial[0] = '\0';
			if (gone)
				gone(usrptr, s->port);
			count++;
		}
	}
	return count;
}
