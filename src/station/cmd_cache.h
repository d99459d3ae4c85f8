/* cmd_cache: emptying the artefact cache, for the `cache clear` command and
 * the control socket's clear-cache. Main thread. */
#ifndef RPI_SB_STATION_CMD_CACHE_H
#define RPI_SB_STATION_CMD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"

/* Remove every entry of @dir (lock files aside). *removed and *bytes: what
 * went. *left: entries that could not be removed. 0 or -errno with @err. */
int cache_clear_counted(const char *dir, size_t *removed, uint64_t *bytes, size_t *left,
			struct art_err *err);

#endif
