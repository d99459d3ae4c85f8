/* disc_sim: discovery over the virtual USB bus, for `simulate`.
 *
 * The station finds virtual boards exactly as it finds real ones: devices
 * appear and disappear on ports, and it opens them as transports. Only this
 * file knows the bus is a simulator. */
#ifndef RPI_SB_STATION_DISC_SIM_H
#define RPI_SB_STATION_DISC_SIM_H

#include "station/station.h"

struct vpi_bus;

int disc_sim_new(struct vpi_bus *bus, struct discovery **out);
void disc_sim_free(struct discovery *d);

#endif
