/* vpi/bus: virtual USB bus: ports, plugging boards in and out, the device list
 * with hotplug notification, and TRANSPORT_SIM transports onto a device.
 *
 * The bus lock guards the port table and device list; a port's device thread
 * (started by vpi_bus_attach, running vpi_fw_run from vpi/rom.h) changes its
 * own port's devices through the vpi_fw_* calls. Callbacks and the eventfd
 * are signalled after the lock is dropped. Any thread may call the public API. */
#include "vpi/bus.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vpi/board.h"
#include "vpi/rom.h"

struct port {
	char name[32];
	struct vpi_bus *bus;
	struct vpi_board *board;
	pthread_t thread;
	bool thread_running;
	bool stopping;             /* cable pulled: the thread must end */
	char state[16];
	struct vpi_usbdev *dev;    /* what the board presents */
	unsigned address;
	struct vpi_usbdev *ghost;  /* dup-desc fault */
	unsigned ghost_address;
	struct vpi_fw fw;
};

struct vpi_bus {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned busnum, nports;
	struct port *ports;
	unsigned next_address;
	uint64_t generation;
	int efd;
	void (*cb)(void *, const char *);
	void *cb_usrptr;
};

struct sim_transport {
	struct transport t;
	struct vpi_usbdev *dev;
};

/* The callback, after the change (called without the lock). */
static void notify(struct vpi_bus *bus, const char *port)
{
	void (*cb)(void *, const char *);
	void *u;

	pthread_mutex_lock(&bus->lock);
	cb = bus->cb;
	u = bus->cb_usrptr;
	pthread_mutex_unlock(&bus->lock);
	if (cb)
		cb(u, port);
}

/* Caller holds the lock: the eventfd is readable as soon as the list changed. */
static void changed_locked(struct vpi_bus *bus)
{
	uint64_t one = 1;
	ssize_t w;

	bus->generation++;
	w = write(bus->efd, &one, sizeof(one));
	(void)w;
	pthread_cond_broadcast(&bus->cond);
}

int vpi_bus_new(unsigned busnum, unsigned nports, struct vpi_bus **out)
{
	struct vpi_bus *bus;
	pthread_condattr_t ca;

	*out = NULL;
	if (nports == 0 || nports > 127)
		return -EINVAL;
	bus = calloc(1, sizeof(*bus));
	if (!bus)
		return -ENOMEM;
	bus->ports = calloc(nports, sizeof(*bus->ports));
	bus->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!bus->ports || bus->efd < 0) {
		int r = bus->ports ? -errno : -ENOMEM;
		if (bus->efd >= 0)
			close(bus->efd);
		free(bus->ports);
		free(bus);
		return r;
	}
	pthread_mutex_init(&bus->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&bus->cond, &ca);
	pthread_condattr_destroy(&ca);
	bus->busnum = busnum;
	bus->nports = nports;
	bus->next_address = 2;
	for (unsigned i = 0; i < nports; i++) {
		snprintf(bus->ports[i].name, sizeof(bus->ports[i].name), "%u-%u", busnum, i + 1);
		bus->ports[i].bus = bus;
		snprintf(bus->ports[i].state, sizeof(bus->ports[i].state), "off");
	}
	*out = bus;
	return 0;
}

void vpi_bus_free(struct vpi_bus *bus)
{
	if (!bus)
		return;
	for (unsigned i = 0; i < bus->nports; i++)
		if (bus->ports[i].board)
			vpi_bus_detach(bus, bus->ports[i].name);
	close(bus->efd);
	pthread_cond_destroy(&bus->cond);
	pthread_mutex_destroy(&bus->lock);
	free(bus->ports);
	free(bus);
}

unsigned vpi_bus_nports(const struct vpi_bus *bus) { return bus->nports; }

const char *vpi_bus_port_name(const struct vpi_bus *bus, unsigned i)
{
	return i < bus->nports ? bus->ports[i].name : NULL;
}

static struct port *find_port(struct vpi_bus *bus, const char *name)
{
	for (unsigned i = 0; name && i < bus->nports; i++)
		if (strcmp(bus->ports[i].name, name) == 0)
			return &bus->ports[i];
	return NULL;
}

/* Remove the port's devices; returns true if anything was listed. Lock held. */
static bool remove_devs_locked(struct port *p)
{
	bool any = p->dev || p->ghost;

	if (p->dev) {
		vpi_usbdev_kill(p->dev);
		vpi_usbdev_unref(p->dev);
		p->dev = NULL;
	}
	if (p->ghost) {
		vpi_usbdev_kill(p->ghost);
		vpi_usbdev_unref(p->ghost);
		p->ghost = NULL;
	}
	if (any)
		changed_locked(p->bus);
	return any;
}

/* The board's unplug hook (fault or vpi_board_unplug): the cable is out. */
static void port_unplugged(void *usrptr)
{
	struct port *p = usrptr;
	struct vpi_bus *bus = p->bus;
	bool any;

	pthread_mutex_lock(&bus->lock);
	p->stopping = true;
	snprintf(p->state, sizeof(p->state), "unplugged");
	any = remove_devs_locked(p);
	if (p->fw.dev)
		vpi_usbdev_kill(p->fw.dev);
	pthread_cond_broadcast(&bus->cond);
	pthread_mutex_unlock(&bus->lock);
	if (any)
		notify(bus, p->name);
}

static void *port_thread(void *arg)
{
	struct port *p = arg;

	vpi_fw_run(&p->fw);
	return NULL;
}

int vpi_bus_attach(struct vpi_bus *bus, const char *port, struct vpi_board *board)
{
	struct port *p;
	int r = 0;

	pthread_mutex_lock(&bus->lock);
	p = find_port(bus, port);
	if (!p) {
		r = -ENOENT;
		goto out;
	}
	if (p->board) {
		r = -EBUSY;
		goto out;
	}
	p->board = board;
	p->stopping = false;
	memset(&p->fw, 0, sizeof(p->fw));
	p->fw.board = board;
	p->fw.bus = bus;
	p->fw.port = (unsigned)(p - bus->ports);
	snprintf(p->state, sizeof(p->state), "off");
	vpi_board_replug(board);
	vpi_board_set_unplug_hook(board, port_unplugged, p);
	if (pthread_create(&p->thread, NULL, port_thread, p) != 0) {
		vpi_board_set_unplug_hook(board, NULL, NULL);
		p->board = NULL;
		r = -EAGAIN;
		goto out;
	}
	p->thread_running = true;
out:
	pthread_mutex_unlock(&bus->lock);
	if (r == 0)
		vpi_log(board, "plugged into virtual port %s", port);
	return r;
}

int vpi_bus_detach(struct vpi_bus *bus, const char *port)
{
	struct port *p;
	bool any, join;
	struct vpi_board *b;

	pthread_mutex_lock(&bus->lock);
	p = find_port(bus, port);
	if (!p || !p->board) {
		pthread_mutex_unlock(&bus->lock);
		return p ? -ENODEV : -ENOENT;
	}
	p->stopping = true;
	any = remove_devs_locked(p);
	if (p->fw.dev)
		vpi_usbdev_kill(p->fw.dev);
	pthread_cond_broadcast(&bus->cond);
	join = p->thread_running;
	p->thread_running = false;
	b = p->board;
	pthread_mutex_unlock(&bus->lock);
	if (join)
		pthread_join(p->thread, NULL);
	vpi_board_set_unplug_hook(b, NULL, NULL);
	pthread_mutex_lock(&bus->lock);
	free(p->fw.stage2);
	p->fw.stage2 = NULL;
	if (p->fw.dev) {
		vpi_usbdev_unref(p->fw.dev);
		p->fw.dev = NULL;
	}
	p->board = NULL;
	snprintf(p->state, sizeof(p->state), "off");
	pthread_mutex_unlock(&bus->lock);
	if (any)
		notify(bus, port);
	return 0;
}

int vpi_bus_port_state(struct vpi_bus *bus, const char *port, char *state, size_t len)
{
	struct port *p;
	int r = 0;

	pthread_mutex_lock(&bus->lock);
	p = find_port(bus, port);
	if (p)
		snprintf(state, len, "%s", p->state);
	else
		r = -ENOENT;
	pthread_mutex_unlock(&bus->lock);
	return r;
}

int vpi_bus_list(struct vpi_bus *bus, struct vpi_bus_dev **devs, size_t *n)
{
	struct vpi_bus_dev *v;
	size_t cnt = 0;

	*devs = NULL;
	*n = 0;
	pthread_mutex_lock(&bus->lock);
	v = calloc(2 * (size_t)bus->nports + 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&bus->lock);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < bus->nports; i++) {
		struct port *p = &bus->ports[i];
		if (p->dev) {
			snprintf(v[cnt].port, sizeof(v[cnt].port), "%s", p->name);
			v[cnt].address = p->address;
			v[cnt].desc = *vpi_usbdev_desc(p->dev);
			cnt++;
		}
		if (p->ghost) {
			snprintf(v[cnt].port, sizeof(v[cnt].port), "%s", p->name);
			v[cnt].address = p->ghost_address;
			v[cnt].desc = *vpi_usbdev_desc(p->ghost);
			v[cnt].ghost = true;
			cnt++;
		}
	}
	pthread_mutex_unlock(&bus->lock);
	*devs = v;
	*n = cnt;
	return 0;
}

int vpi_bus_eventfd(struct vpi_bus *bus) { return bus->efd; }

void vpi_bus_set_callback(struct vpi_bus *bus, void (*cb)(void *, const char *), void *usrptr)
{
	pthread_mutex_lock(&bus->lock);
	bus->cb = cb;
	bus->cb_usrptr = usrptr;
	pthread_mutex_unlock(&bus->lock);
}

uint64_t vpi_bus_generation(struct vpi_bus *bus)
{
	uint64_t g;

	pthread_mutex_lock(&bus->lock);
	g = bus->generation;
	pthread_mutex_unlock(&bus->lock);
	return g;
}

static struct timespec deadline_ms(unsigned ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

int vpi_bus_wait_change(struct vpi_bus *bus, uint64_t seen, unsigned timeout_ms)
{
	struct timespec dl = deadline_ms(timeout_ms);
	int r = 0;

	pthread_mutex_lock(&bus->lock);
	while (bus->generation == seen)
		if (pthread_cond_timedwait(&bus->cond, &bus->lock, &dl) == ETIMEDOUT) {
			r = bus->generation == seen ? -ETIMEDOUT : 0;
			break;
		}
	pthread_mutex_unlock(&bus->lock);
	return r;
}

/* ---- transport --------------------------------------------------------- */

static int sim_control(struct transport *t, const struct usb_ctrl_setup *s, void *data,
		       unsigned timeout_ms)
{
	return vpi_usbdev_host_control(((struct sim_transport *)t)->dev, s, data, timeout_ms);
}

static int sim_bulk_out(struct transport *t, const void *d, size_t n, unsigned ms)
{
	return vpi_usbdev_host_bulk_out(((struct sim_transport *)t)->dev, d, n, ms);
}

static int sim_bulk_in(struct transport *t, void *d, size_t n, unsigned ms)
{
	return vpi_usbdev_host_bulk_in(((struct sim_transport *)t)->dev, d, n, ms);
}

static void sim_close(struct transport *t)
{
	struct sim_transport *st = (struct sim_transport *)t;

	vpi_usbdev_unref(st->dev);
	free(st);
}

static const struct transport_ops sim_ops = {
	.control = sim_control,
	.bulk_out = sim_bulk_out,
	.bulk_in = sim_bulk_in,
	.close = sim_close,
};

static int open_dev(struct port *p, struct vpi_usbdev *dev, struct transport **out)
{
	struct sim_transport *st = calloc(1, sizeof(*st));
	const struct vpi_usbdesc *d = vpi_usbdev_desc(dev);

	if (!st)
		return -ENOMEM;
	vpi_usbdev_ref(dev);
	st->dev = dev;
	st->t.ops = &sim_ops;
	st->t.kind = TRANSPORT_SIM;
	st->t.vid = d->vid;
	st->t.pid = d->pid;
	snprintf(st->t.serial, sizeof(st->t.serial), "%s", d->serial);
	snprintf(st->t.port_path, sizeof(st->t.port_path), "%s", p->name);
	st->t.ep_out = d->ep_out;
	st->t.ep_in = d->ep_in;
	st->t.priv = st;
	*out = &st->t;
	return 0;
}

int vpi_bus_open_address(struct vpi_bus *bus, const char *port, unsigned address,
			 struct transport **out)
{
	struct port *p;
	int r = -ENODEV;

	*out = NULL;
	pthread_mutex_lock(&bus->lock);
	p = find_port(bus, port);
	if (!p)
		r = -ENOENT;
	else if (p->dev && (address == 0 || p->address == address))
		r = open_dev(p, p->dev, out);
	else if (p->ghost && p->ghost_address == address)
		r = open_dev(p, p->ghost, out);
	pthread_mutex_unlock(&bus->lock);
	return r;
}

int vpi_bus_open(struct vpi_bus *bus, const char *port, struct transport **out)
{
	return vpi_bus_open_address(bus, port, 0, out);
}

/* ---- firmware side ----------------------------------------------------- */

static struct port *fw_port(struct vpi_fw *fw)
{
	return &fw->bus->ports[fw->port];
}

void vpi_fw_leave(struct vpi_fw *fw)
{
	struct port *p = fw_port(fw);
	struct vpi_usbdev *dev;
	bool any;

	/* fw->dev changes only under the bus lock: detach and the unplug hook
	 * read it from other threads */
	pthread_mutex_lock(&fw->bus->lock);
	any = remove_devs_locked(p);
	dev = fw->dev;
	fw->dev = NULL;
	pthread_mutex_unlock(&fw->bus->lock);
	if (dev) {
		vpi_usbdev_kill(dev);
		vpi_usbdev_unref(dev);
	}
	if (any)
		notify(fw->bus, p->name);
}

bool vpi_fw_stopping(struct vpi_fw *fw)
{
	bool s;

	pthread_mutex_lock(&fw->bus->lock);
	s = fw_port(fw)->stopping;
	pthread_mutex_unlock(&fw->bus->lock);
	return s;
}

int vpi_fw_sleep(struct vpi_fw *fw, unsigned ms)
{
	struct timespec dl = deadline_ms(ms);
	struct port *p = fw_port(fw);
	int r = 0;

	pthread_mutex_lock(&fw->bus->lock);
	while (!p->stopping && ms && pthread_cond_timedwait(&fw->bus->cond, &fw->bus->lock, &dl) !=
					     ETIMEDOUT)
		;
	if (p->stopping)
		r = -ENODEV;
	pthread_mutex_unlock(&fw->bus->lock);
	return r;
}

int vpi_fw_idle(struct vpi_fw *fw)
{
	struct port *p = fw_port(fw);

	vpi_fw_leave(fw);
	pthread_mutex_lock(&fw->bus->lock);
	while (!p->stopping)
		pthread_cond_wait(&fw->bus->cond, &fw->bus->lock);
	pthread_mutex_unlock(&fw->bus->lock);
	return -ENODEV;
}

int vpi_fw_hang(struct vpi_fw *fw)
{
	struct port *p = fw_port(fw);

	pthread_mutex_lock(&fw->bus->lock);
	while (!p->stopping)
		pthread_cond_wait(&fw->bus->cond, &fw->bus->lock);
	pthread_mutex_unlock(&fw->bus->lock);
	return -ENODEV;
}

void vpi_fw_set_state(struct vpi_fw *fw, const char *state)
{
	struct port *p = fw_port(fw);

	pthread_mutex_lock(&fw->bus->lock);
	if (!p->stopping)
		snprintf(p->state, sizeof(p->state), "%s", state);
	pthread_mutex_unlock(&fw->bus->lock);
}

int vpi_fw_enumerate(struct vpi_fw *fw, const struct vpi_usbdesc *d)
{
	struct port *p = fw_port(fw);
	const struct vpi_faults *f = vpi_board_faults(fw->board);
	struct vpi_usbdev *dev = NULL, *ghost = NULL;
	bool rom = d->vid == 0x0a5c && (d->iserial_index == 0 || d->iserial_index == 3);
	int r;

	vpi_fw_leave(fw);
	r = vpi_fw_sleep(fw, f->slow_enum_ms);
	if (r)
		return r;
	dev = vpi_usbdev_new(d, fw->board);
	if (!dev)
		return -ENOMEM;
	if (rom && f->duplicate_descriptor) {
		ghost = vpi_usbdev_new(d, NULL);
		if (!ghost) {
			vpi_usbdev_unref(dev);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&fw->bus->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&fw->bus->lock);
		vpi_usbdev_unref(dev);
		vpi_usbdev_unref(ghost);
		return -ENODEV;
	}
	p->dev = dev;
	p->address = fw->bus->next_address++;
	if (ghost) {
		p->ghost = ghost;
		p->ghost_address = fw->bus->next_address++;
	}
	if (fw->bus->next_address > 127)
		fw->bus->next_address = 2;
	vpi_usbdev_ref(dev);
	fw->dev = dev;
	changed_locked(fw->bus);
	pthread_mutex_unlock(&fw->bus->lock);
	vpi_log(fw->board, "enumerated on %s as %04x:%04x iSerialNumber %u serial '%s'%s",
		p->name, d->vid, d->pid, d->iserial_index, d->serial,
		ghost ? " (and a duplicate descriptor)" : "");
	notify(fw->bus, p->name);
	return 0;
}
