/* vpi/fault: parse the fault specs of `simulate --fault SPEC` into struct
 * vpi_faults (vpi/board.h). Pure; any thread.
 *
 *   unplug:phase=P[,offset=N]   pull the cable at the start of phase P or N bytes into it
 *   stall:phase=P               stop answering in phase P
 *   fail:cmd=PREFIX             answer fastboot commands starting with PREFIX with FAIL
 *   storage:size=N              storage size override
 *   bitflip:offset=N            flip bit 0 of the byte written to storage at offset N
 *   slow-enum:ms=N              re-enumeration delay
 *   dup-desc                    the boot ROM shows up twice on the bus
 *
 * N accepts decimal or 0x hex and a K/M/G/T suffix (powers of 1024). Several
 * specs may be joined with ';'. Phases: rom, recovery, bootloader, gadget,
 * download, flash (and other lowercase names the firmware enters). */
#ifndef RPI_SB_VPI_FAULT_H
#define RPI_SB_VPI_FAULT_H

#include <stddef.h>

#include "vpi/board.h"

/* Apply @spec to @f (fields not named stay as they are). 0, or -EINVAL with
 * a message in @err saying what is wrong and what is accepted. */
int vpi_fault_parse(const char *spec, struct vpi_faults *f, char *err, size_t errlen);

#endif
