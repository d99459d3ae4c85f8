/* gadget_boot: boot a virtual Pi gadget into its fastboot gadget over real USB,
 * with the project's libusb transport and rpiboot host code, for the QEMU
 * end-to-end test (scripts/qemu-e2e.sh).
 *
 *   gadget_boot PORT STAGE2 DIR [SECONDS]
 *
 * Waits (up to SECONDS, default 120) for a boot-mode device on PORT. A boot
 * ROM gets STAGE2 as its second stage; a second stage is served files from
 * DIR until it is done. Repeats until the device on PORT is no longer in boot
 * mode (it re-enumerated as something else), then exits 0.
 *
 * This is a test tool, not the station: it sends the simulator's stand-in
 * boot.img to whatever is on PORT, which the station refuses to do over USB
 * (only a virtual Pi accepts it). Single threaded. Exit 1 on failure, 2 on
 * usage errors. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/rpiboot.h"
#include "proto/rpiboot_meta.h"
#include "transport/usb.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_log(void *usrptr, enum rpiboot_log_level level, const char *msg)
{
	(void)usrptr;
	if (level <= RPIBOOT_LOG_INFO)
		printf("rpiboot: %s\n", msg);
}

static int read_all(const char *path, uint8_t **data, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0 || !(*data = malloc((size_t)st.st_size + 1))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	n = read(fd, *data, (size_t)st.st_size);
	close(fd);
	*len = n > 0 ? (size_t)n : 0;
	return n == st.st_size ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *port, *dir;
	uint8_t *img = NULL;
	size_t len = 0;
	double t0 = now_s(), limit;
	bool served = false;
	int rc = 1;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: gadget_boot PORT STAGE2 DIR [SECONDS]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	port = argv[1];
	dir = argv[3];
	limit = argc == 5 ? atof(argv[4]) : 120.0;
	if (read_all(argv[2], &img, &len) < 0) {
		fprintf(stderr, "gadget_boot: cannot read %s\n", argv[2]);
		return 1;
	}
	while (now_s() - t0 < limit) {
		struct rpiboot_opts o;
		struct rpiboot_status st = { 0 };
		struct transport *t = NULL;
		int r = usb_transport_open(port, &t);

		if (r < 0) {
			usleep(100000);
			continue;
		}
		if (t->vid != 0x0a5c) {
			printf("gadget_boot: %s is %04x:%04x serial '%s' after %.2f s\n", port, t->vid,
			       t->pid, t->serial, now_s() - t0);
			transport_close(t);
			rc = served ? 0 : 1;
			break;
		}
		rpiboot_opts_default(&o);
		if (rpiboot_is_rom_stage(t->iserial_index)) {
			r = rpiboot_send_second_stage(t, img, len, &o, &st);
			printf("gadget_boot: %s boot ROM took %zu bytes: %s\n", port, len,
			       r < 0 ? strerror(-r) : "ok");
		} else {
			struct rpiboot_metadata md;

			int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			rpiboot_metadata_init(&md);
			r = dfd < 0 ? -errno : rpiboot_serve_files(t, dfd, &md, &o, on_log, NULL, &st);
			if (dfd >= 0)
				close(dfd);
			printf("gadget_boot: %s second stage (iSerialNumber %u): %u file(s) served, %s\n",
			       port, t->iserial_index, st.files_served, r < 0 ? strerror(-r) : "done");
			served = served || st.files_served > 0;
		}
		transport_close(t);
		usleep(300000);
	}
	free(img);
	if (rc)
		fprintf(stderr, "gadget_boot: %s never left boot mode within %.0f s\n", port, limit);
	return rc;
}
