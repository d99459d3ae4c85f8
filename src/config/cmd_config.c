/* cmd_config: the `config` command (check, dump, import, schema).
 * Main thread only. First version: a placeholder that links; filled in next. */
#include <stdio.h>

#include "config/config.h"
#include "core/cli.h"

int cmd_config(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	fprintf(stderr, "%s: not implemented yet\n", argv[0]);
	return EXIT_FAILED;
}
