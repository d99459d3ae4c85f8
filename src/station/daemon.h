/* daemon: the engine as a service and its command-line clients.
 *
 *   daemon   the engine with the control socket (station/daemon.c)
 *   status   boards in flight and last results from the running daemon
 *   ctl      one typed command to the running daemon, for scripts
 *            (station/cmd_ctl.c)
 * Main thread. */
#ifndef RPI_SB_STATION_DAEMON_H
#define RPI_SB_STATION_DAEMON_H

#include "core/cli.h"

/* `status` exits with this when no daemon answers. */
#define EXIT_NO_DAEMON 3

int cmd_daemon(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_ctl(struct cli *cli, int argc, char **argv);

#endif
