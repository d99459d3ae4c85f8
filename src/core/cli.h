/* cli: what every sub-command receives, and the sub-commands' entry points.
 *
 * main.c owns the command table and the global options (--root, --config);
 * each module that provides a command implements its cmd_* function here.
 * Exit codes: 0 success, 1 the work failed, 2 usage or configuration error. */
#ifndef RPI_SB_CORE_CLI_H
#define RPI_SB_CORE_CLI_H

#include "core/paths.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

struct cli {
	struct paths paths;
	const char *config_path;   /* --config, else paths.config */
	const char *argv0;
};

typedef int (*cli_command_fn)(struct cli *cli, int argc, char **argv);

/* argv[0] is the command name in each of these. */
int cmd_cache(struct cli *cli, int argc, char **argv);      /* cache clear */
int cmd_config(struct cli *cli, int argc, char **argv);     /* config check|dump|import */
int cmd_export(struct cli *cli, int argc, char **argv);     /* export --csv */
int cmd_devices(struct cli *cli, int argc, char **argv);    /* devices [--json] */
int cmd_flags(struct cli *cli, int argc, char **argv);      /* flags list|set|clear */
int cmd_key(struct cli *cli, int argc, char **argv);        /* key generate|fingerprint */
int cmd_virtual_pi(struct cli *cli, int argc, char **argv); /* virtual-pi --model ... */
int cmd_simulate(struct cli *cli, int argc, char **argv);   /* simulate [--devices ...] */

#endif
