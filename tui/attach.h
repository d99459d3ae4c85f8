/* attach: the operator's dashboard as a command.
 *
 * `rpi-sb-provisioner` (no command) and `rpi-sb-provisioner attach` open the
 * curses front end on the engine's control socket, starting a transient engine
 * first when none answers. Main thread only. */
#ifndef RPI_SB_TUI_ATTACH_H
#define RPI_SB_TUI_ATTACH_H

#include "core/cli.h"

/* attach [--socket P] [--read-only] [--simulate DEVICES] */
int cmd_attach(struct cli *cli, int argc, char **argv);

#endif
