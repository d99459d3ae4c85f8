/* test_usb: the real-USB host side without hardware. The libusb transport's
 * pure rules (error mapping, bulk chunk plan, endpoints from descriptors),
 * the discovery's sysfs reading, diffing and udev-silence watch, and the
 * discovery thread itself against a fake sysfs tree driving a real station:
 * a board present at start, its re-enumeration on the same port (one job),
 * an excluded port skipped and counted, and unrelated devices ignored. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <libusb.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "station/disc_usb.h"
#include "transport/usb.h"

/* ---- transport rules --------------------------------------------------- */

static void test_error_mapping(void **state)
{
	assert_int_equal(usb_transfer_errno(LIBUSB_ERROR_NO_DEVICE), -ENODEV);
	assert_int_equal(usb_transfer_errno(LIBUSB_ERROR_PIPE), -EPIPE);
	assert_int_equal(usb_transfer_errno(LIBUSB_ERROR_TIMEOUT), -ETIMEDOUT);
	assert_int_equal(usb_transfer_errno(LIBUSB_ERROR_IO), -EIO);
	assert_int_equal(usb_transfer_errno(LIBUSB_ERROR_OVERFLOW), -EIO);
	assert_int_equal(usb_transfer_errno(LIBUSB_ERROR_BUSY), -EIO);

	/* An I/O error followed by the device leaving its port is an unplug;
	 * other errors keep their meaning whatever the bus shows. */
	assert_int_equal(usb_transfer_errno_checked(LIBUSB_ERROR_IO, true), -ENODEV);
	assert_int_equal(usb_transfer_errno_checked(LIBUSB_ERROR_IO, false), -EIO);
	assert_int_equal(usb_transfer_errno_checked(LIBUSB_ERROR_OTHER, true), -ENODEV);
	assert_int_equal(usb_transfer_errno_checked(LIBUSB_ERROR_TIMEOUT, true), -ETIMEDOUT);
	assert_int_equal(usb_transfer_errno_checked(LIBUSB_ERROR_PIPE, true), -EPIPE);
	assert_int_equal(usb_transfer_errno_checked(LIBUSB_ERROR_NO_DEVICE, false), -ENODEV);

	assert_int_equal(usb_open_errno(LIBUSB_ERROR_ACCESS), -EACCES);
	assert_int_equal(usb_open_errno(LIBUSB_ERROR_BUSY), -EBUSY);
	assert_int_equal(usb_open_errno(LIBUSB_ERROR_NO_DEVICE), -ENODEV);
	assert_int_equal(usb_open_errno(LIBUSB_ERROR_NOT_FOUND), -ENODEV);
	assert_int_equal(usb_open_errno(LIBUSB_ERROR_NO_MEM), -ENOMEM);
	assert_int_equal(usb_open_errno(LIBUSB_ERROR_OTHER), -EIO);
}

/* Walk the chunk plan of one call and check its invariants. */
static size_t plan(size_t len, unsigned maxpkt, size_t max_chunk, size_t *first, size_t *last)
{
	size_t done = 0, n, count = 0;

	*first = *last = 0;
	while ((n = usb_bulk_chunk(len - done, maxpkt, max_chunk)) > 0) {
		if (count == 0)
			*first = n;
		*last = n;
		done += n;
		count++;
		/* Only the final chunk may end in a short packet. */
		if (done < len)
			assert_int_equal(n % maxpkt, 0);
		assert_true(n <= max_chunk || max_chunk < maxpkt);
	}
	assert_int_equal(done, len);
	return count;
}

static void test_chunk_plan(void **state)
{
	size_t first, last;

	/* Nothing to send: no transfer at all, so never a zero-length packet. */
	assert_int_equal(usb_bulk_chunk(0, 512, USB_BULK_CHUNK_MAX), 0);
	assert_int_equal(plan(0, 512, USB_BULK_CHUNK_MAX, &first, &last), 0);
	/* The 24-byte BootMessage and a 1000-byte echo: one transfer each. */
	assert_int_equal(plan(24, 512, USB_BULK_CHUNK_MAX, &first, &last), 1);
	assert_int_equal(first, 24);
	/* A 16 KiB rpiboot chunk: a whole number of packets, one transfer, no ZLP after it. */
	assert_int_equal(plan(16384, 512, USB_BULK_CHUNK_MAX, &first, &last), 1);
	assert_int_equal(last, 16384);
	/* fastboot's 1 MiB download chunk: four full transfers. */
	assert_int_equal(plan(1 << 20, 512, USB_BULK_CHUNK_MAX, &first, &last), 4);
	assert_int_equal(first, USB_BULK_CHUNK_MAX);
	assert_int_equal(last, USB_BULK_CHUNK_MAX);
	/* A boot image tail: full chunks, then the remainder. */
	assert_int_equal(plan(300000, 512, USB_BULK_CHUNK_MAX, &first, &last), 2);
	assert_int_equal(first, 262144);
	assert_int_equal(last, 300000 - 262144);
	/* A chunk limit that is not a packet multiple is rounded down to one. */
	assert_int_equal(usb_bulk_chunk(5000, 512, 1300), 1024);
	assert_int_equal(plan(5000, 512, 1300, &first, &last), 5);
	/* Full speed (64-byte packets) and a limit below one packet. */
	assert_int_equal(usb_bulk_chunk(100, 64, 32), 64);
	assert_int_equal(usb_bulk_chunk(100000, 64, USB_BULK_CHUNK_MAX), 100000);
	/* An unknown packet size (0) does not divide by zero. */
	assert_int_equal(usb_bulk_chunk(10, 0, 4), 4);
}

static struct usb_if_info iface(uint8_t number, uint8_t cls, uint8_t sub, uint8_t proto)
{
	return (struct usb_if_info){ .number = number, .cls = cls, .subclass = sub, .protocol = proto };
}

static void add_ep(struct usb_if_info *i, uint8_t addr, uint8_t attr, uint16_t maxpkt)
{
	i->ep[i->nep++] = (struct usb_ep_info){ .address = addr, .attributes = attr, .max_packet = maxpkt };
}

static void test_endpoints_from_descriptors(void **state)
{
	struct usb_if_info ifs[3];
	struct usb_ep_pick p;

	/* The Pi's boot ROM: ff/00/00, OUT 0x01, IN 0x82. */
	ifs[0] = iface(0, 0xff, 0, 0);
	add_ep(&ifs[0], 0x01, 0x02, 512);
	add_ep(&ifs[0], 0x82, 0x02, 512);
	assert_int_equal(usb_pick_endpoints(ifs, 1, &p), 0);
	assert_int_equal(p.interface, 0);
	assert_int_equal(p.ep_out, 0x01);
	assert_int_equal(p.ep_in, 0x82);
	assert_int_equal(p.out_maxpkt, 512);

	/* FunctionFS on dummy_hcd renumbers: IN 0x81 listed first, OUT 0x02. */
	ifs[0] = iface(0, 0xff, 0x42, 0x03);
	add_ep(&ifs[0], 0x81, 0x02, 512);
	add_ep(&ifs[0], 0x02, 0x02, 512);
	assert_int_equal(usb_pick_endpoints(ifs, 1, &p), 0);
	assert_int_equal(p.ep_out, 0x02);
	assert_int_equal(p.ep_in, 0x81);

	/* BCM2837 ROM variant: mass storage first, the vendor interface second. */
	ifs[0] = iface(0, 0x08, 0x06, 0x50);
	add_ep(&ifs[0], 0x81, 0x02, 512);
	add_ep(&ifs[0], 0x02, 0x02, 512);
	ifs[1] = iface(1, 0xff, 0, 0);
	add_ep(&ifs[1], 0x03, 0x02, 512);
	add_ep(&ifs[1], 0x84, 0x02, 512);
	assert_int_equal(usb_pick_endpoints(ifs, 2, &p), 0);
	assert_int_equal(p.interface, 1);
	assert_int_equal(p.ep_out, 0x03);
	assert_int_equal(p.ep_in, 0x84);

	/* Interrupt endpoints are not bulk; packet-size bits only (HS mult masked). */
	ifs[0] = iface(2, 0x0a, 0, 0);
	add_ep(&ifs[0], 0x83, 0x03, 16);
	add_ep(&ifs[0], 0x01, 0x02, 0x1200);
	assert_int_equal(usb_pick_endpoints(ifs, 1, &p), 0);
	assert_int_equal(p.interface, 2);
	assert_int_equal(p.ep_out, 0x01);
	assert_int_equal(p.ep_in, 0);          /* no bulk IN: rpiboot never needs one */
	assert_int_equal(p.out_maxpkt, 0x200);

	/* Nothing to send to: refused, not guessed. */
	ifs[0] = iface(0, 0x03, 0, 0);
	add_ep(&ifs[0], 0x81, 0x03, 8);
	assert_int_equal(usb_pick_endpoints(ifs, 1, &p), -ENOENT);
	assert_int_equal(usb_pick_endpoints(ifs, 0, &p), -ENOENT);
}

/* ---- a fake sysfs tree ------------------------------------------------- */

static char root[PATH_MAX - 128];

static void put(const char *dir, const char *attr, const char *value)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", value);
	fclose(f);
}

/* A device directory as the kernel lays it out. NULL strings: attribute absent. */
static void mkdev(const char *name, unsigned bus, unsigned devnum, const char *devpath,
		  const char *vid, const char *pid, const char *manufacturer, const char *serial)
{
	char dir[PATH_MAX], num[16];

	snprintf(dir, sizeof(dir), "%s/bus/usb/devices/%s", root, name);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(num, sizeof(num), "%u", bus);
	put(dir, "busnum", num);
	snprintf(num, sizeof(num), "%u", devnum);
	put(dir, "devnum", num);
	put(dir, "devpath", devpath);
	put(dir, "idVendor", vid);
	put(dir, "idProduct", pid);
	if (manufacturer)
		put(dir, "manufacturer", manufacturer);
	if (serial)
		put(dir, "serial", serial);
}

static void rmdev(const char *name)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/bus/usb/devices/%s'", root, name);
	assert_int_equal(system(cmd), 0);
}

static int tree_setup(void **state)
{
	char path[PATH_MAX];

	snprintf(root, sizeof(root), "%s/rpisb-usb-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(root))
		return -1;
	snprintf(path, sizeof(path), "%s/bus", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/bus/usb", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/bus/usb/devices", root);
	return mkdir(path, 0755);
}

static int tree_teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_sysfs_attr(void **state)
{
	char buf[16];

	mkdev("1-1", 1, 2, "1", "05e3", "0608", "GenesysLogic", NULL);
	assert_int_equal(usb_sysfs_attr(root, "1-1", "idVendor", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "05e3");                 /* newline removed */
	assert_int_equal(usb_sysfs_attr(root, "1-1", "serial", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(usb_sysfs_attr(root, "1-1", "manufacturer", buf, 8), -ENOSPC);
	assert_int_equal(usb_sysfs_attr(root, "1-1/../..", "busnum", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(usb_sysfs_attr(root, "1-1", "../busnum", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(usb_sysfs_attr(root, "usb1", "busnum", buf, sizeof(buf)), -EINVAL);
	rmdev("1-1");
}

static void test_serial_plain(void **state)
{
	char longest[64], too_long[65];

	assert_true(usb_serial_plain("c85be8ea"));
	assert_true(usb_serial_plain("c561b701c85be8ea"));
	assert_true(usb_serial_plain("SN-12_3.4"));
	assert_false(usb_serial_plain(""));
	assert_false(usb_serial_plain("../x"));
	assert_false(usb_serial_plain("a b"));
	assert_false(usb_serial_plain("ab\n"));
	assert_false(usb_serial_plain("\xc3\xa9"));
	memset(longest, 'a', 63);
	longest[63] = '\0';
	assert_true(usb_serial_plain(longest));
	memset(too_long, 'a', 64);
	too_long[64] = '\0';
	assert_false(usb_serial_plain(too_long));
}

static void test_sysfs_list(void **state)
{
	struct usb_sysdev *list, one;
	size_t n;
	char dir[PATH_MAX];

	/* A root hub and an interface directory are not devices on ports. */
	snprintf(dir, sizeof(dir), "%s/bus/usb/devices/usb1", root);
	mkdir(dir, 0755);
	snprintf(dir, sizeof(dir), "%s/bus/usb/devices/1-1:1.0", root);
	mkdir(dir, 0755);
	mkdev("1-1", 1, 2, "1", "05e3", "0608", "GenesysLogic", NULL);           /* hub: ignored */
	mkdev("1-1.2", 1, 5, "1.2", "0a5c", "2712", "Broadcom", "c85be8ea");      /* Pi 5 ROM */
	mkdev("1-1.12", 1, 9, "1.12", "18d1", "4e40", "Raspberry Pi", "c561b701c85be8ea");
	mkdev("1-1.3", 1, 6, "1.3", "18d1", "4e40", "Google", "HT7A1");          /* a phone */
	mkdev("2-1", 2, 3, "1", "0a5c", "2711", NULL, NULL);                     /* no strings */
	mkdev("1-4", 1, 7, "5", "0a5c", "2764", NULL, NULL);                     /* path mismatch */
	mkdev("3-2", 3, 4, "2", "0a5c", "2764", NULL, "../../etc/x");            /* odd serial */

	assert_int_equal(usb_sysdev_list(root, &list, &n), 0);
	assert_int_equal(n, 4);
	/* Two-digit ports keep their separator: 1-1.12 is never "1112". */
	assert_string_equal(list[0].port, "1-1.12");
	assert_int_equal(list[0].role, USB_ROLE_GADGET);
	assert_string_equal(list[0].serial, "c561b701c85be8ea");
	assert_int_equal(list[0].devnum, 9);
	assert_string_equal(list[1].port, "1-1.2");
	assert_int_equal(list[1].role, USB_ROLE_BOOTROM);
	assert_int_equal(list[1].pid, 0x2712);
	assert_string_equal(list[1].serial, "c85be8ea");
	assert_string_equal(list[2].port, "2-1");
	assert_int_equal(list[2].busnum, 2);
	assert_string_equal(list[2].serial, "");
	/* A serial string with path or control characters is dropped, the board kept. */
	assert_string_equal(list[3].port, "3-2");
	assert_string_equal(list[3].serial, "");
	free(list);

	assert_int_equal(usb_sysdev_read(root, "1-1.3", &one), 0);
	assert_int_equal(one.role, USB_ROLE_OTHER);
	assert_int_equal(usb_sysdev_read(root, "1-4", &one), -EINVAL);
	assert_int_equal(usb_sysdev_read(root, "1-1:1.0", &one), -ENOENT);
	assert_int_equal(usb_sysdev_read(root, "1-7", &one), -ENOENT);
	/* A mangled attribute is refused, not half-read. */
	snprintf(dir, sizeof(dir), "%s/bus/usb/devices/2-1", root);
	put(dir, "idVendor", "0a5c junk");
	assert_int_equal(usb_sysdev_read(root, "2-1", &one), -EINVAL);

	rmdev("usb1");
	rmdev("1-1:1.0");
	rmdev("1-1");
	rmdev("1-1.2");
	rmdev("1-1.12");
	rmdev("1-1.3");
	rmdev("2-1");
	rmdev("1-4");
	rmdev("3-2");
	assert_int_equal(usb_sysdev_list(root, &list, &n), 0);
	assert_int_equal(n, 0);
	assert_null(list);
}

/* ---- diff and the udev-silence watch ----------------------------------- */

static char calls[256];

static void note(const char *what, const struct usb_sysdev *d)
{
	size_t used = strlen(calls);

	snprintf(calls + used, sizeof(calls) - used, "%s%s %s", used ? ", " : "", what, d->port);
}
static void on_left(void *u, const struct usb_sysdev *d) { note("left", d); }
static void on_arrived(void *u, const struct usb_sysdev *d) { note("arrived", d); }
static const struct usb_diff_ops note_ops = { on_left, on_arrived };

static struct usb_sysdev sdev(const char *port, unsigned devnum, enum usb_role role)
{
	struct usb_sysdev d = { .busnum = 1, .devnum = devnum, .role = role };

	snprintf(d.port, sizeof(d.port), "%s", port);
	return d;
}

static void test_diff(void **state)
{
	struct usb_sysdev old[2] = { sdev("1-1.2", 5, USB_ROLE_BOOTROM), sdev("1-1.3", 6, USB_ROLE_BOOTROM) };
	/* 1-1.2 re-enumerated (new device number), 1-1.3 unplugged, 1-1.4 new. */
	struct usb_sysdev now[2] = { sdev("1-1.2", 8, USB_ROLE_GADGET), sdev("1-1.4", 9, USB_ROLE_BOOTROM) };

	calls[0] = '\0';
	assert_int_equal(usb_sysdev_diff(old, 2, old, 2, &note_ops, NULL), 0);
	assert_string_equal(calls, "");
	assert_int_equal(usb_sysdev_diff(old, 2, now, 2, &note_ops, NULL), 4);
	/* Departures first: a re-enumeration reads as leave, then arrive. */
	assert_string_equal(calls, "left 1-1.2, left 1-1.3, arrived 1-1.2, arrived 1-1.4");
	assert_int_equal(usb_sysdev_diff(NULL, 0, now, 2, NULL, NULL), 2);   /* count only */
}

static void test_watch(void **state)
{
	struct disc_watch w = { .mode = DISC_MODE_UDEV };

	/* Events and quiet rescans: report, stay on udev. */
	assert_true(disc_watch_step(&w, true, true, 1000));
	assert_true(disc_watch_step(&w, false, false, 2000));
	/* sysfs changed before its event: held back while udevd may be busy... */
	assert_false(disc_watch_step(&w, false, true, 3000));
	assert_false(disc_watch_step(&w, false, true, 4999));
	/* ...and reported as soon as the event comes. */
	assert_true(disc_watch_step(&w, true, true, 5000));
	assert_int_equal(w.mode, DISC_MODE_UDEV);
	/* A change no event ever announces: after the grace time, poll for good. */
	assert_false(disc_watch_step(&w, false, true, 6000));
	assert_true(disc_watch_step(&w, false, true, 6000 + DISC_USB_UDEV_GRACE_MS));
	assert_int_equal(w.mode, DISC_MODE_POLL);
	assert_true(disc_watch_step(&w, false, true, 9000));
	assert_int_equal(w.mode, DISC_MODE_POLL);
}

/* ---- the discovery thread over the fake tree, with a real station ------ */

static bool deny_1_1_9(void *usrptr, const char *port)
{
	return strcmp(port, "1-1.9") != 0;
}

/* Bootstrap "happens": the flow waits (without opening anything) until its
 * port shows the fastboot gadget, then holds. */
static int flow_until_gadget(struct job *job, void *usrptr)
{
	job_set_phase(job, PHASE_BOOTSTRAP);
	for (int i = 0; i < 500; i++) {
		enum usb_role role;

		if (job_device_info(job, &role, NULL, NULL, 0) && role == USB_ROLE_GADGET)
			return JOB_HELD;
		usleep(10000);
	}
	return job_fail(job, -ETIMEDOUT, "no gadget");
}

static struct station_counts counts_when(struct station *st, bool (*done)(const struct station_counts *))
{
	struct station_counts c;

	for (int i = 0; i < 400; i++) {
		station_get_counts(st, &c);
		if (done(&c))
			return c;
		usleep(10000);
	}
	fail_msg("station counts never reached the expected state (active %u held %u excluded %u failed %u)",
		 c.active, c.held, c.excluded, c.failed);
	return c;
}

static bool rom_waits_gadget_held(const struct station_counts *c) { return c->active == 1 && c->held == 1; }
static bool both_held(const struct station_counts *c) { return c->held == 2 && c->active == 0; }
static bool one_excluded(const struct station_counts *c) { return c->excluded == 1; }

static void test_discovery_thread(void **state)
{
	struct station_opts o = {
		.station_id = "test-usb", .mode = DB_MODE_NAKED, .debounce_ms = 2000,
		.permits = deny_1_1_9, .flow = flow_until_gadget,
	};
	char db[PATH_MAX], logs[PATH_MAX];
	struct event_queue *q;
	struct station_counts c;
	struct discovery *d;
	struct station *st;
	struct event evs[64];
	size_t n;

	mkdev("1-1", 1, 2, "1", "05e3", "0608", "GenesysLogic", NULL);
	mkdev("1-1.2", 1, 5, "1.2", "0a5c", "2712", "Broadcom", "c85be8ea");
	mkdev("1-1.3", 1, 8, "1.3", "18d1", "4e40", "Raspberry Pi", "5e1f00d10badf00e");
	snprintf(db, sizeof(db), "%s/manufacturing.db", root);
	snprintf(logs, sizeof(logs), "%s/log", root);
	assert_int_equal(event_queue_new(&q), 0);
	assert_int_equal(disc_usb_new_at(root, DISC_USB_FORCE_POLL, &d), 0);
	o.db_path = db;
	o.log_dir = logs;
	o.events = q;
	o.disc = d;
	assert_int_equal(station_new(&o, &st), 0);
	assert_int_equal(station_start(st), 0);

	/* Present at start: a job for each board at once, the hub ignored. The
	 * gadget's flow holds at once; the boot-mode board's waits. */
	counts_when(st, rom_waits_gadget_held);
	/* The board reboots into the gadget on the same port: same job. */
	rmdev("1-1.2");
	usleep(2 * DISC_USB_POLL_MS * 1000);
	mkdev("1-1.2", 1, 6, "1.2", "18d1", "4e40", "Raspberry Pi", "c561b701c85be8ea");
	c = counts_when(st, both_held);
	assert_int_equal(c.failed, 0);
	assert_int_equal(c.excluded, 0);

	/* A board on an excluded port is skipped and counted, never a job. */
	mkdev("1-1.9", 1, 7, "1.9", "0a5c", "2711", "Broadcom", "0badf00d");
	c = counts_when(st, one_excluded);
	assert_int_equal(c.active, 0);
	assert_int_equal(c.held, 2);

	station_stop(st);
	station_free(st);
	disc_usb_free(d);
	while ((n = event_pop(q, evs, 64)) > 0)
		for (size_t i = 0; i < n; i++)
			event_clear(&evs[i]);
	event_queue_free(q);
	rmdev("1-1");
	rmdev("1-1.2");
	rmdev("1-1.3");
	rmdev("1-1.9");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_mapping),
		cmocka_unit_test(test_chunk_plan),
		cmocka_unit_test(test_endpoints_from_descriptors),
		cmocka_unit_test(test_sysfs_attr),
		cmocka_unit_test(test_serial_plain),
		cmocka_unit_test(test_sysfs_list),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_watch),
		cmocka_unit_test(test_discovery_thread),
	};
	return cmocka_run_group_tests(tests, tree_setup, tree_teardown);
}
