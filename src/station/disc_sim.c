/* disc_sim: a discovery source over vpi_bus. The bus calls back (from the
 * board thread that changed it) with a port name; we diff the devices on that
 * port against what we reported before and tell the station. A per-source
 * mutex serialises the diffing. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "station/disc_sim.h"
#include "vpi/bus.h"

#define DISC_SIM_MAX_DEVS 4   /* a port shows at most a board and a ghost twin */

struct sim_port {
	unsigned addr[DISC_SIM_MAX_DEVS];  /* addresses reported as arrived */
	size_t n;
};

struct disc_sim {
	struct vpi_bus *bus;
	struct station *st;
	pthread_mutex_t lock;
	struct sim_port *ports;
	unsigned nports;
	bool running;
};

static bool addr_in(const struct sim_port *p, unsigned addr)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->addr[i] == addr)
			return true;
	return false;
}

static void rescan_port(struct disc_sim *ds, unsigned idx)
{
	const char *name = vpi_bus_port_name(ds->bus, idx);
	struct sim_port *p = &ds->ports[idx];
	struct sim_port now = { .n = 0 };
	struct vpi_bus_dev *devs = NULL;
	size_t n = 0;

	if (vpi_bus_list(ds->bus, &devs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (strcmp(devs[i].port, name) == 0 && now.n < DISC_SIM_MAX_DEVS)
			now.addr[now.n++] = devs[i].address;
	/* Departures first, so a re-enumeration reads as leave + arrive. */
	for (size_t i = 0; i < p->n; i++)
		if (!addr_in(&now, p->addr[i]))
			station_device_left(ds->st, name);
	for (size_t i = 0; i < n; i++) {
		const struct vpi_usbdesc *d = &devs[i].desc;

		if (strcmp(devs[i].port, name) != 0 || addr_in(p, devs[i].address))
			continue;
		station_device_arrived(ds->st, name, usb_classify(d->vid, d->pid, d->manufacturer),
				       d->pid, d->serial);
	}
	*p = now;
	free(devs);
}

static void on_bus_change(void *usrptr, const char *port)
{
	struct disc_sim *ds = usrptr;

	pthread_mutex_lock(&ds->lock);
	if (ds->running) {
		for (unsigned i = 0; i < ds->nports; i++)
			if (strcmp(vpi_bus_port_name(ds->bus, i), port) == 0)
				rescan_port(ds, i);
	}
	pthread_mutex_unlock(&ds->lock);
}

static int sim_start(struct discovery *d, struct station *st)
{
	struct disc_sim *ds = d->priv;

	pthread_mutex_lock(&ds->lock);
	ds->st = st;
	ds->running = true;
	vpi_bus_set_callback(ds->bus, on_bus_change, ds);
	for (unsigned i = 0; i < ds->nports; i++)
		rescan_port(ds, i);
	pthread_mutex_unlock(&ds->lock);
	return 0;
}

static void sim_stop(struct discovery *d)
{
	struct disc_sim *ds = d->priv;

	vpi_bus_set_callback(ds->bus, NULL, NULL);
	pthread_mutex_lock(&ds->lock);
	ds->running = false;
	pthread_mutex_unlock(&ds->lock);
}

static int sim_open(struct discovery *d, const char *port, enum usb_role role,
		    struct transport **out)
{
	struct disc_sim *ds = d->priv;
	struct vpi_bus_dev *devs = NULL;
	size_t n = 0;
	int r;

	r = vpi_bus_open(ds->bus, port, out);
	if (r < 0)
		return r;
	/* The string index of iSerialNumber tells the rpiboot stage. */
	if (vpi_bus_list(ds->bus, &devs, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if (strcmp(devs[i].port, port) == 0 && !devs[i].ghost)
				(*out)->iserial_index = devs[i].desc.iserial_index;
		free(devs);
	}
	return 0;
}

static const struct discovery_ops disc_sim_ops = {
	.start = sim_start,
	.stop = sim_stop,
	.open = sim_open,
};

int disc_sim_new(struct vpi_bus *bus, struct discovery **out)
{
	struct discovery *d = calloc(1, sizeof(*d));
	struct disc_sim *ds = calloc(1, sizeof(*ds));

	if (!d || !ds)
		goto nomem;
	ds->bus = bus;
	ds->nports = vpi_bus_nports(bus);
	ds->ports = calloc(ds->nports ? ds->nports : 1, sizeof(*ds->ports));
	if (!ds->ports)
		goto nomem;
	pthread_mutex_init(&ds->lock, NULL);
	d->ops = &disc_sim_ops;
	d->priv = ds;
	*out = d;
	return 0;
nomem:
	if (ds)
		free(ds->ports);
	free(ds);
	free(d);
	return -ENOMEM;
}

void disc_sim_free(struct discovery *d)
{
	struct disc_sim *ds;

	if (!d)
		return;
	ds = d->priv;
	pthread_mutex_destroy(&ds->lock);
	free(ds->ports);
	free(ds);
	free(d);
}
