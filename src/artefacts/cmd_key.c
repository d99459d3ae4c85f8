/* cmd_key: the `key` command (key generate | key fingerprint).
 *
 * Runs on the main thread only. Placeholder so the binary links while the
 * signing module (sign.c, secmem.c) is written; it refuses to run. */
#include <stdio.h>

#include "core/cli.h"

int cmd_key(struct cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	fprintf(stderr, "%s: key generation is not built yet in this tree\n", argv[0]);
	return EXIT_FAILED;
}
