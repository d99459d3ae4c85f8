/* Fuzz target: the virtual Pi's fault-spec parser (vpi/fault.c) on arbitrary
 * text; a spec that parses must round-trip its fields within bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vpi/fault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vpi_board_opts o;
	char err[256];
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	vpi_board_opts_init(&o);
	if (vpi_fault_parse(s, &o.faults, err, sizeof(err)) == 0) {
		if (strnlen(o.faults.unplug_phase, sizeof(o.faults.unplug_phase)) >=
			    sizeof(o.faults.unplug_phase) ||
		    strnlen(o.faults.fail_command, sizeof(o.faults.fail_command)) >=
			    sizeof(o.faults.fail_command))
			abort();
	} else if (strnlen(err, sizeof(err)) == 0) {
		abort();   /* every refusal says why */
	}
	free(s);
	return 0;
}
