/* firmware: choosing the source EEPROM image for a board's chip
 * ([bootloader] firmware / firmware_dir / firmware_sha256). Any thread. */
#ifndef RPI_SB_ARTEFACTS_FIRMWARE_H
#define RPI_SB_ARTEFACTS_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"

/* Oldest bootloader that supports secure boot (usbboot update-pieeprom.sh). */
#define FIRMWARE_SECURE_BOOT_MIN_TS 1632136573u

/* @file (may be NULL) wins; else the newest pieeprom-YYYY-MM-DD.bin of the
 * chip's exact image size in @dir ("%chip%" in @dir becomes 2711|2712). The
 * chosen file must parse as an EEPROM image of @chip (the family mismatch
 * guard) and, when @sha256_pin (64 hex) is set, hash to it. *path malloc'd. */
int firmware_select(const char *file, const char *dir, unsigned chip, const char *sha256_pin,
		    char **path, struct art_err *err);

/* The "BUILD_TIMESTAMP=<digits>" string inside an EEPROM image (what the
 * reference scripts read with `strings`). 0, or -ENOENT if absent. */
int firmware_build_timestamp(const uint8_t *img, size_t len, uint32_t *ts);

#endif
