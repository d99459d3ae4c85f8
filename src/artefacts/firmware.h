/* firmware: choosing the source EEPROM image for a board's chip
 * ([bootloader] firmware / firmware_dir / firmware_sha256). Any thread. */
#ifndef RPI_SB_ARTEFACTS_FIRMWARE_H
#define RPI_SB_ARTEFACTS_FIRMWARE_H

#include "artefacts/art_err.h"

/* @file (may be NULL) wins; else the newest pieeprom-YYYY-MM-DD.bin of the
 * chip's exact image size in @dir ("%chip%" in @dir becomes 2711|2712). The
 * chosen file must parse as an EEPROM image of @chip (the family mismatch
 * guard) and, when @sha256_pin (64 hex) is set, hash to it. *path malloc'd. */
int firmware_select(const char *file, const char *dir, unsigned chip, const char *sha256_pin,
		    char **path, struct art_err *err);

#endif
