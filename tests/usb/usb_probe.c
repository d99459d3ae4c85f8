/* usb_probe: the station's real-USB host code, by hand (QEMU guest or bench).
 *
 *   usb_probe list                     Raspberry Pi devices present now (sysfs)
 *   usb_probe open PORT                open with the libusb transport, print what it found
 *   usb_probe bulk PORT OUT IN [CALL] send OUT bytes, then read IN bytes, in transport
 *                                      calls of at most CALL bytes; print MB/s
 *   usb_probe watch SECONDS [--poll]   discovery + a station: each board is opened
 *                                      once per arrival; prints the event stream
 *
 * Exit 0 on success, 1 when the probe failed, 2 on usage errors. Single
 * threaded apart from the station's own threads in `watch`. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "station/disc_usb.h"
#include "transport/usb.h"

static const char *role_name(enum usb_role r)
{
	return r == USB_ROLE_BOOTROM ? "bootrom" : r == USB_ROLE_GADGET ? "gadget" : "other";
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_transport(const struct transport *t)
{
	printf("port %s %04x:%04x iSerialNumber %u serial '%s' ep_out 0x%02x ep_in 0x%02x\n",
	       t->port_path, t->vid, t->pid, t->iserial_index, t->serial, t->ep_out, t->ep_in);
}

static int cmd_list(void)
{
	struct usb_sysdev *list;
	size_t n;
	int r = usb_sysdev_list(USB_SYSFS_ROOT, &list, &n);

	if (r < 0) {
		fprintf(stderr, "usb_probe: listing USB devices: %s\n", strerror(-r));
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		printf("%s %s %04x:%04x bus %u dev %u serial '%s'\n", list[i].port,
		       role_name(list[i].role), list[i].vid, list[i].pid, list[i].busnum,
		       list[i].devnum, list[i].serial);
	free(list);
	return 0;
}

static int cmd_open(const char *port)
{
	struct transport *t;
	double t0 = now_s(), t1;
	int r = usb_transport_open(port, &t);

	if (r < 0) {
		fprintf(stderr, "usb_probe: opening %s: %s\n", port, strerror(-r));
		return 1;
	}
	t1 = now_s();
	print_transport(t);
	transport_close(t);
	printf("open %.1f ms, close %.1f ms\n", (t1 - t0) * 1e3, (now_s() - t1) * 1e3);
	return 0;
}

#define BULK_BUF_MAX (4u << 20)

/* Bulk OUT then IN, in transport calls of at most @call bytes each (0: the
 * whole length, up to 4 MiB a call). */
static int cmd_bulk(const char *port, size_t out_len, size_t in_len, size_t call)
{
	size_t done, most = out_len > in_len ? out_len : in_len;
	struct transport *t;
	uint8_t *buf;
	double t0;
	int r = 0, rc = 1;

	if (call == 0 || call > BULK_BUF_MAX)
		call = most < BULK_BUF_MAX ? most : BULK_BUF_MAX;
	buf = malloc(call ? call : 1);
	if (!buf)
		return 1;
	for (size_t i = 0; i < call; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	r = usb_transport_open(port, &t);
	if (r < 0) {
		fprintf(stderr, "usb_probe: opening %s: %s\n", port, strerror(-r));
		free(buf);
		return 1;
	}
	print_transport(t);
	t0 = now_s();
	for (done = 0; done < out_len; done += (size_t)r) {
		size_t n = out_len - done < call ? out_len - done : call;

		r = transport_bulk_out(t, buf, n, 10000);
		if (r < 0 || (size_t)r != n) {
			printf("bulk OUT %zu bytes at %zu: %s\n", n, done, r < 0 ? strerror(-r) : "short");
			goto out;
		}
	}
	if (out_len)
		printf("bulk OUT %zu bytes in %.3f s (%.1f MB/s, calls of %zu)\n", out_len, now_s() - t0,
		       (double)out_len / 1e6 / (now_s() - t0), call);
	t0 = now_s();
	for (done = 0; done < in_len; done += (size_t)r) {
		r = transport_bulk_in(t, buf, in_len - done < call ? in_len - done : call, 10000);
		if (r <= 0)
			break;
	}
	if (in_len)
		printf("bulk IN %zu of %zu bytes in %.3f s (%.1f MB/s, %s)\n", done, in_len, now_s() - t0,
		       (double)done / 1e6 / (now_s() - t0), r < 0 ? strerror(-r) : "ok");
	rc = done == in_len ? 0 : 1;
out:
	transport_close(t);
	free(buf);
	return rc;
}

/* ---- watch: discovery driving a station -------------------------------- */

/* Open the board at every arrival on the job's port, whatever it is now, until
 * the watch ends; then hold. */
static int flow_probe(struct job *job, void *usrptr)
{
	unsigned wait_s = *(const unsigned *)usrptr;
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (now_s() < (double)start.tv_sec + wait_s) {
		struct transport *t;
		enum usb_role role;

		if (!job_device_info(job, &role, NULL, NULL, 0)) {
			usleep(20 * 1000);
			continue;
		}
		/* Returns at once for an arrival not yet opened, else times out. */
		if (job_wait_device(job, role, 200, &t) < 0)
			continue;
		printf("%s opened %s %04x:%04x iSerialNumber %u serial '%s' ep_out 0x%02x ep_in 0x%02x\n",
		       job_port(job), role_name(role), t->vid, t->pid, t->iserial_index, t->serial,
		       t->ep_out, t->ep_in);
		fflush(stdout);
		transport_close(t);
	}
	return JOB_HELD;
}

static int cmd_watch(unsigned seconds, bool poll_only)
{
	char dir[] = "/tmp/usb_probe-XXXXXX", db[PATH_MAX], logs[PATH_MAX], cmd[PATH_MAX];
	struct station_opts o = { .station_id = "usb_probe", .mode = DB_MODE_NAKED,
				  .debounce_ms = 3000, .flow = flow_probe, .flow_usrptr = &seconds };
	struct event_queue *q = NULL;
	struct discovery *d = NULL;
	struct station *st = NULL;
	double end;
	int r, rc = 1;

	if (!mkdtemp(dir))
		return 1;
	snprintf(db, sizeof(db), "%s/db", dir);
	snprintf(logs, sizeof(logs), "%s/log", dir);
	if (event_queue_new(&q) < 0 ||
	    disc_usb_new_at(USB_SYSFS_ROOT, poll_only ? DISC_USB_FORCE_POLL : 0, &d) < 0)
		goto out;
	o.db_path = db;
	o.log_dir = logs;
	o.events = q;
	o.disc = d;
	if ((r = station_new(&o, &st)) < 0 || (r = station_start(st)) < 0) {
		fprintf(stderr, "usb_probe: station: %s\n", strerror(-r));
		goto out;
	}
	/* The boards present at start have been reported (start scans first). */
	printf("watch: started\n");
	end = now_s() + seconds;
	while (now_s() < end) {
		struct event evs[32];
		size_t n = event_pop(q, evs, 32);

		for (size_t i = 0; i < n; i++) {
			char line[512];

			if (event_format_line(&evs[i], 0, line, sizeof(line)) >= 0)
				printf("event %s\n", line);
			event_clear(&evs[i]);
		}
		fflush(stdout);
		usleep(50 * 1000);
	}
	rc = 0;
out:
	if (st) {
		station_stop(st);
		station_free(st);
	}
	disc_usb_free(d);
	if (q) {
		struct event evs[32];
		size_t n;

		while ((n = event_pop(q, evs, 32)) > 0)
			for (size_t i = 0; i < n; i++)
				event_clear(&evs[i]);
		event_queue_free(q);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}

static int usage(void)
{
	fprintf(stderr, "usage: usb_probe list | open PORT | bulk PORT OUT_BYTES IN_BYTES [CALL_BYTES] | "
			"watch SECONDS [--poll]\n");
	return 2;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return cmd_list();
	if (argc == 3 && strcmp(argv[1], "open") == 0)
		return cmd_open(argv[2]);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "bulk") == 0)
		return cmd_bulk(argv[2], strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0),
				argc == 6 ? strtoul(argv[5], NULL, 0) : 0);
	if ((argc == 3 || (argc == 4 && strcmp(argv[3], "--poll") == 0)) &&
	    strcmp(argv[1], "watch") == 0)
		return cmd_watch((unsigned)strtoul(argv[2], NULL, 0), argc == 4);
	return usage();
}
