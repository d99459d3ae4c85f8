/* eeprom: Raspberry Pi SPI EEPROM images (pieeprom-*.bin) laid out as
 * rpi-eeprom-config lays them out (spec secure-boot-artefacts.md §1): a chain
 * of 8-byte-aligned sections, section 0 the bootcode, named FILE sections
 * (bootconf.txt, bootconf.sig, pubkey.bin, cacert.der, updatetime, bootsys).
 *
 * Loading checks every bound; edits follow the tool's procedure exactly (so an
 * edit gives the tool's bytes) and re-parse the chain after each change.
 * A struct eeprom belongs to one thread at a time. */
#ifndef RPI_SB_ARTEFACTS_EEPROM_H
#define RPI_SB_ARTEFACTS_EEPROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"

#define EEPROM_SIZE_2711 524288u
#define EEPROM_SIZE_2712 2097152u

#define EEPROM_MAGIC_BOOTCODE 0x55AAF00Fu
#define EEPROM_MAGIC_FILE 0x55AAF11Fu
#define EEPROM_MAGIC_RESOURCE 0x55AAF33Fu
#define EEPROM_MAGIC_RESOURCE_LZ4 0x55AAF44Fu
#define EEPROM_MAGIC_PAD 0x55AAFEEFu

#define EEPROM_SECTION_HDR 8
#define EEPROM_FILE_HDR 24		/* magic, length, 12-byte name, reserved word */
#define EEPROM_NAME_LEN 12
#define EEPROM_FILE_MAX 4076		/* MAX_FILE_SIZE of the tool (all but bootsys) */
#define EEPROM_SCRATCH 4096		/* last 4 KiB: bootloader scratch, never written */
#define EEPROM_RO_SIZE 0x10000u		/* AB read-only area */
#define EEPROM_PARTITION_SIZE 0xF7000u	/* AB partition A/B: 1011712 bytes */
#define EEPROM_BOOTCODE_RESERVED 0x20000u /* non-AB: bootcode replaceable only with 128 KiB */

struct eeprom_section {
	uint32_t magic;
	uint32_t offset;	/* of the 8-byte header */
	uint32_t length;	/* bytes after the header */
	char name[EEPROM_NAME_LEN + 1];	/* named sections; "" otherwise */
};

struct eeprom {
	uint8_t *data;
	size_t size;
	unsigned chip;		/* 2711 or 2712, from the size */
	bool ab;		/* AB-capable (bootsys FILE at 0x10000) */
	struct eeprom_section *sec;
	size_t nsec;
};

/* Load a copy of @len bytes / a file. A malformed image gives -EINVAL and a
 * message naming the offset. On failure @ee is left empty (eeprom_free safe). */
int eeprom_load_buffer(struct eeprom *ee, const uint8_t *buf, size_t len, struct art_err *err);
int eeprom_load_file(struct eeprom *ee, const char *path, struct art_err *err);
void eeprom_free(struct eeprom *ee);

/* Write the image (temp file + fsync + rename). */
int eeprom_save(const struct eeprom *ee, const char *path, struct art_err *err);

/* Section 0's payload. Pointers stay valid until the next edit. */
int eeprom_bootcode_get(const struct eeprom *ee, const uint8_t **data, size_t *len);
/* First FILE section called @name in chain order (what `-x` extracts). */
int eeprom_file_get(const struct eeprom *ee, const char *name, const uint8_t **data,
		    size_t *len);
/* Index of the section of the FILE that eeprom_file_replace() would edit, or
 * -ENOENT. Its header offset is ee->sec[i].offset. */
int eeprom_file_index(const struct eeprom *ee, const char *name);

/* Replace an existing FILE (bootconf.txt, bootconf.sig, pubkey.bin,
 * cacert.der, bootsys) as `rpi-eeprom-config` does (§1.5). -ENOENT if absent,
 * -EFBIG over the 4076-byte limit, -ENOSPC when it does not fit its slot. */
int eeprom_file_replace(struct eeprom *ee, const char *name, const uint8_t *data, size_t len,
			struct art_err *err);
/* Replace, or when the image has no such FILE, append a new FILE section after
 * the last non-pad section of partition A (or of the image, non-AB). */
int eeprom_file_put(struct eeprom *ee, const char *name, const uint8_t *data, size_t len,
		    struct art_err *err);
/* Replace section 0 (§1.6). Refused on non-AB images with < 128 KiB for it. */
int eeprom_bootcode_replace(struct eeprom *ee, const uint8_t *data, size_t len,
			    struct art_err *err);
/* The update timestamp (§1.8): LE32 ~ts, LE32 ts. */
int eeprom_set_timestamp(struct eeprom *ee, uint32_t ts, struct art_err *err);

/* AB detection (§1.9 C rule) on raw bytes. */
bool eeprom_is_ab(const uint8_t *data, size_t size);
/* 2711, 2712 or 0 from the image size. */
unsigned eeprom_chip_for_size(size_t size);

#endif
