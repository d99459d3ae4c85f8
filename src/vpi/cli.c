/* cli (virtual-pi): the `virtual-pi` command, one virtual board whose fastboot
 * gadget is served over TCP so the real `fastboot` client can drive it.
 *
 * Runs on the main thread only: parses options, opens the board, serves
 * connections until SIGINT/SIGTERM. With `--gadget UDC` the whole board is
 * served on a real USB device controller instead (vpi/gadget). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cli.h"
#include "vpi/board.h"
#include "vpi/fault.h"
#include "vpi/fastbootd.h"
#include "vpi/gadget.h"
#include "vpi/luks.h"
#include "vpi/storage.h"
#include "vpi/tcpfront.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: rpi-sb-provisioner virtual-pi --model M --state DIR --fastboot-tcp PORT\n"
		"       rpi-sb-provisioner virtual-pi --model M --state DIR --gadget UDC\n"
		"         [--link-rate MBPS] [--storage-rate MBPS|model] [--fault SPEC]...\n"
		"         [--data-plane] [--real-pbkdf] [--verbose]\n\n"
		"  --model M           pi5 pi500 cm5 cm5lite pi4 pi400 cm4 zero2w\n"
		"  --state DIR         board state (OTP, eeprom.bin, storage.img); created on first use\n"
		"  --fastboot-tcp PORT serve the fastboot gadget on tcp:127.0.0.1:PORT (0 = any free port)\n"
		"  --gadget UDC        serve the whole board (boot mode, then the fastboot gadget) as a\n"
		"                      real USB device on the UDC, e.g. dummy_udc.0 (root; see\n"
		"                      doc/virtual-pi-gadget.md). Unbinding the UDC pulls the cable.\n"
		"  --seed N            the board's identity seed (serial, MACs, storage id; default 0):\n"
		"                      boards served at once need different seeds\n"
		"  --link-rate MBPS    download link speed in MB/s (default unlimited)\n"
		"  --storage-rate R    storage write speed in MB/s, or 'model' for the storage kind's\n"
		"                      typical rate (default unlimited)\n"
		"  --fault SPEC        a fault spec as for simulate: fail:cmd=PREFIX | storage:size=N |\n"
		"                      bitflip:offset=N | unplug:phase=P[,offset=N] | stall:phase=P\n"
		"  --data-plane        answer as a `usb+tcp` daemon's TCP data plane (restricted commands)\n"
		"  --real-pbkdf        LUKS keyslots with the real argon2id cost (slow; ~1 GiB RAM)\n"
		"  --verbose           simulator log to stderr\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return (*s && !*end && !errno && s[0] != '-') ? 0 : -EINVAL;
}

/* The board on a real UDC until SIGINT/SIGTERM or until the UDC is unbound. */
static int serve_gadget(struct vpi_board *b, const char *model, const char *udc)
{
	struct sigaction sa = { .sa_handler = on_signal };
	int rc;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("virtual Pi %s serial %016" PRIx64 " USB gadget on %s\n", model,
	       vpi_board_serial64(b), udc);
	fflush(stdout);
	rc = vpi_gadget_serve(b, udc, &stop_flag);
	if (rc == -ENODEV) {
		fprintf(stderr, "virtual-pi: board %016" PRIx64 " unplugged (UDC %s unbound)\n",
			vpi_board_serial64(b), udc);
		return EXIT_FAILED;
	}
	if (rc < 0) {
		fprintf(stderr, "virtual-pi: USB gadget on %s failed: %s\n", udc, strerror(-rc));
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

int cmd_virtual_pi(struct cli *cli, int argc, char **argv)
{
	enum { O_MODEL = 256, O_STATE, O_TCP, O_LINK, O_STORAGE, O_FAULT, O_DATAPLANE, O_PBKDF, O_VERBOSE, O_HELP,
	       O_GADGET, O_SEED };
	static const struct option opts[] = {
		{ "model", required_argument, NULL, O_MODEL },
		{ "state", required_argument, NULL, O_STATE },
		{ "fastboot-tcp", required_argument, NULL, O_TCP },
		{ "gadget", required_argument, NULL, O_GADGET },
		{ "seed", required_argument, NULL, O_SEED },
		{ "link-rate", required_argument, NULL, O_LINK },
		{ "storage-rate", required_argument, NULL, O_STORAGE },
		{ "fault", required_argument, NULL, O_FAULT },
		{ "data-plane", no_argument, NULL, O_DATAPLANE },
		{ "real-pbkdf", no_argument, NULL, O_PBKDF },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 }
	};
	struct vpi_board_opts bo;
	char ferr[256];
	struct vpi_tcpfront_opts to = { .mode = VPI_FB_MODE_FULL };
	const char *model = NULL, *state = NULL, *udc = NULL;
	bool have_port = false, model_rate = false;
	struct vpi_board *b = NULL;
	struct vpi_tcpfront *t = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	uint64_t n;
	int c, rc, ret = EXIT_FAILED;

	(void)cli;
	vpi_board_opts_init(&bo);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_MODEL: model = optarg; break;
		case O_STATE: state = optarg; break;
		case O_TCP:
			if (parse_u64(optarg, &n) || n > 65535) {
				fprintf(stderr, "virtual-pi: --fastboot-tcp wants a port number 0-65535, got '%s'\n", optarg);
				return EXIT_USAGE;
			}
			to.port = (uint16_t)n;
			have_port = true;
			break;
		case O_GADGET: udc = optarg; break;
		case O_SEED:
			if (parse_u64(optarg, &n) || n > UINT32_MAX) {
				fprintf(stderr, "virtual-pi: --seed wants a number 0-4294967295, got '%s'\n", optarg);
				return EXIT_USAGE;
			}
			bo.serial_seed = (uint32_t)n;
			break;
		case O_LINK:
			if (parse_u64(optarg, &n)) {
				fprintf(stderr, "virtual-pi: --link-rate wants MB/s, got '%s'\n", optarg);
				return EXIT_USAGE;
			}
			bo.link_bytes_per_s = n * 1000000u;
			break;
		case O_STORAGE:
			if (strcmp(optarg, "model") == 0) {
				model_rate = true;
			} else if (parse_u64(optarg, &n)) {
				fprintf(stderr, "virtual-pi: --storage-rate wants MB/s or 'model', got '%s'\n", optarg);
				return EXIT_USAGE;
			} else {
				bo.storage_bytes_per_s = n * 1000000u;
			}
			break;
		case O_FAULT:
			if (vpi_fault_parse(optarg, &bo.faults, ferr, sizeof(ferr)) < 0) {
				fprintf(stderr, "virtual-pi: --fault '%s': %s\n", optarg, ferr);
				return EXIT_USAGE;
			}
			break;
		case O_DATAPLANE: to.mode = VPI_FB_MODE_DATA_PLANE; break;
		case O_PBKDF: vpi_luks_set_real_pbkdf(true); break;
		case O_VERBOSE: setenv("RPI_SB_VPI_VERBOSE", "1", 1); break;
		case O_HELP: usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (!model || !state || have_port == !!udc || optind != argc) {
		fprintf(stderr, "virtual-pi: --model, --state and one of --fastboot-tcp or --gadget are required\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!vpi_model_find(model)) {
		fprintf(stderr, "virtual-pi: unknown model '%s'; one of pi5 pi500 cm5 cm5lite pi4 pi400 cm4 zero2w\n",
			model);
		return EXIT_USAGE;
	}
	if (model_rate)
		bo.storage_bytes_per_s = vpi_storage_model_rate(vpi_model_find(model)->storage);
	rc = vpi_board_open(model, state, &bo, &b);
	if (rc) {
		fprintf(stderr, "virtual-pi: cannot open board %s in %s: %s\n", model, state, strerror(-rc));
		return EXIT_FAILED;
	}
	if (udc) {
		ret = serve_gadget(b, model, udc);
		goto out;
	}
	rc = vpi_tcpfront_listen(&to, &t);
	if (rc) {
		fprintf(stderr, "virtual-pi: cannot listen on 127.0.0.1:%u: %s (pick another --fastboot-tcp port)\n",
			to.port, strerror(-rc));
		goto out;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("virtual Pi %s serial %016" PRIx64 " fastboot on tcp:127.0.0.1:%u\n", model,
	       vpi_board_serial64(b), vpi_tcpfront_port(t));
	fflush(stdout);
	for (;;) {
		rc = vpi_tcpfront_run(t, b, &stop_flag);
		if (rc == VPI_FB_END_REBOOT || rc == VPI_FB_END_REBOOT_BOOTLOADER) {
			/* The board restarts into the gadget: kernel state is gone. */
			vpi_fastbootd_board_reset(b);
			vpi_log(b, "virtual-pi: rebooted, gadget up again");
			continue;
		}
		break;
	}
	if (rc == -ENODEV) {
		fprintf(stderr, "virtual-pi: board %016" PRIx64 " unplugged (fault)\n", vpi_board_serial64(b));
		goto out;
	}
	if (rc == VPI_FB_END_SHUTDOWN) {
		fprintf(stderr, "virtual-pi: board shut down\n");
		ret = EXIT_OK;
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "virtual-pi: serving failed: %s\n", strerror(-rc));
		goto out;
	}
	ret = EXIT_OK;
out:
	vpi_tcpfront_close(t);
	if (b)
		vpi_fastbootd_board_reset(b);
	vpi_board_close(b);
	return ret;
}
