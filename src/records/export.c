/* export: the `export --csv` and `devices` commands over the manufacturing DB.
 * Main thread only (CLI commands). Being filled in by the records helper. */
#include <stdio.h>

#include "core/cli.h"
#include "records/export.h"

int cmd_export(struct cli *cli, int argc, char **argv)
{
	(void)cli; (void)argc;
	fprintf(stderr, "%s: not available yet in this build\n", argv[0]);
	return EXIT_FAILED;
}

int cmd_devices(struct cli *cli, int argc, char **argv)
{
	(void)cli; (void)argc;
	fprintf(stderr, "%s: not available yet in this build\n", argv[0]);
	return EXIT_FAILED;
}
