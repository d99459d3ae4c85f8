/* flags: the special per-board flag files and the `flags` command.
 * Work in progress: the command exists so the binary links. */
#include <stdio.h>

#include "core/cli.h"
#include "records/flags.h"

int cmd_flags(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	fprintf(stderr, "%s: not implemented yet\n", argv[0]);
	return EXIT_FAILED;
}
