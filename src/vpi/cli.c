/* cli (virtual-pi): the `virtual-pi` command, one virtual board served over TCP.
 *
 * Runs on the main thread only. Placeholder so the binary links while the
 * gadget (fastbootd.c, tcpfront.c) is being written; it refuses to run. */
#include <stdio.h>

#include "core/cli.h"

int cmd_virtual_pi(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	fprintf(stderr, "%s: the virtual Pi's fastboot gadget is not built yet in this tree\n",
		argv[0]);
	return EXIT_FAILED;
}
