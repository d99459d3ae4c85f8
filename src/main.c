/* main: global options and the command table of rpi-sb-provisioner.
 *
 * Runs on the main thread only. Global options come before the command:
 *   rpi-sb-provisioner [--root DIR] [--config FILE] [COMMAND [ARGS...]]
 * With no command on a terminal it opens the dashboard (attach).
 * Every command is one row of the table below; help is generated from it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cli.h"
#include "station/daemon.h"
#include "../tui/attach.h"

struct command {
	const char *name;
	cli_command_fn fn;
	const char *usage;
	const char *help;
};

static const struct command commands[] = {
	{ "attach", cmd_attach, "attach [--socket P] [--read-only] [--simulate DEVICES]",
	  "open the dashboard (the default on a terminal); starts the engine if none runs" },
	{ "cache", cmd_cache, "cache clear", "empty the artefact cache ([paths] cache_dir); audited" },
	{ "config", cmd_config, "config check|dump|import FILE [-o OUT]|schema --markdown|--ini",
	  "validate, show or import the station configuration" },
	{ "ctl", cmd_ctl, "ctl COMMAND [ARGS] [--socket P]",
	  "send one command to the running daemon (see `ctl --help`)" },
	{ "daemon", cmd_daemon,
	  "daemon [--socket P] [--log|--events-json] [--simulate DEVICES] ...",
	  "run the engine as a service, with the control socket" },
	{ "devices", cmd_devices, "devices [--json] [--secured-only]",
	  "list the manufacturing records" },
	{ "export", cmd_export, "export --csv [-o FILE] [--secured-only] [--since DATE]",
	  "export the manufacturing records as CSV" },
	{ "flags", cmd_flags, "flags list | set SERIAL FLAG [--once] | clear SERIAL FLAG",
	  "manage the special per-board flags (skip-eeprom, reprovision)" },
	{ "key", cmd_key, "key generate [-o FILE] | key fingerprint FILE",
	  "make a new RSA-2048 signing key, or show a key's fingerprint" },
	{ "simulate", cmd_simulate,
	  "simulate [--devices pi5:2,pi4:1,zero2w:1] [--until-done] [--fault [N=]SPEC] ...",
	  "rehearse the line: the real station against virtual boards" },
	{ "status", cmd_status, "status [--json] [--socket P]",
	  "boards in flight and last results from the running daemon" },
	{ "virtual-pi", cmd_virtual_pi, "virtual-pi --model M --state DIR --fastboot-tcp PORT",
	  "serve one virtual board (device simulator), e.g. its fastboot gadget over TCP" },
};

static void usage(FILE *f, const char *argv0)
{
	fprintf(f, "Usage: %s [--root DIR] [--config FILE] [COMMAND [ARGS...]]\n\n"
		"Provision Raspberry Pi boards: secure boot, encrypted storage, OS image, records.\n\n"
		"Global options:\n"
		"  --root DIR      relocate every default path (etc, srv, log, run) under DIR\n"
		"                  (also RPI_SB_ROOT)\n"
		"  --config FILE   configuration file (default <etc>/provisioner.ini)\n"
		"  --version       print the version and exit\n"
		"  --help          print this help and exit\n\n"
		"Commands:\n", argv0);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-58s %s\n", commands[i].usage, commands[i].help);
	fprintf(f, "\nSee rpi-sb-provisioner(1).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, 'r' },
		{ "config", required_argument, NULL, 'c' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct cli cli = { .argv0 = argv[0] };
	const char *root = getenv("RPI_SB_ROOT");
	int c, rc;

	/* '+': stop at the first non-option, the command name. */
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root = optarg; break;
		case 'c': cli.config_path = optarg; break;
		case 'V': printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION); return EXIT_OK;
		case 'h': usage(stdout, argv[0]); return EXIT_OK;
		default: usage(stderr, argv[0]); return EXIT_USAGE;
		}
	}
	if (optind >= argc && !isatty(STDIN_FILENO)) {
		usage(stderr, argv[0]);
		return EXIT_USAGE;
	}
	if (optind >= argc) {
		/* No command on a terminal: the dashboard. */
		static char attach_name[] = "attach";
		static char *attach_argv[] = { attach_name, NULL };

		argc = 1;
		argv = attach_argv;
		optind = 0;
	}
	if (paths_init(&cli.paths, root) < 0) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return EXIT_FAILED;
	}
	if (!cli.config_path)
		cli.config_path = cli.paths.config;

	int first = optind;
	const char *name = argv[first];

	rc = -1;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) == 0) {
			optind = 0; /* commands run their own getopt from a fresh state */
			rc = commands[i].fn(&cli, argc - first, argv + first);
			break;
		}
	}
	if (rc < 0) {
		fprintf(stderr, "%s: unknown command '%s'; try --help\n", argv[0], name);
		rc = EXIT_USAGE;
	}
	paths_free(&cli.paths);
	return rc;
}
