/* mbr: the DOS partition table of a whole-disk image (the gold image, and the
 * secure-boot / fde-only layout the station computes before `oem partapp`).
 *
 * Only the four primary entries are modelled: pi-gen images and the
 * provisioned layouts never use extended partitions. Pure functions on
 * caller-owned buffers: any thread. */
#ifndef RPI_SB_IMAGE_MBR_H
#define RPI_SB_IMAGE_MBR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"

#define MBR_SECTOR 512u
#define MBR_PARTS 4

#define MBR_TYPE_EMPTY 0x00
#define MBR_TYPE_FAT32_LBA 0x0c
#define MBR_TYPE_LINUX 0x83
#define MBR_TYPE_GPT_PROTECTIVE 0xee

struct mbr_part {
	uint8_t type;		/* 0 = unused slot */
	bool bootable;		/* status byte 0x80 */
	uint32_t lba_start;	/* in 512-byte sectors */
	uint32_t lba_count;
};

struct mbr {
	uint32_t disk_id;	/* signature at offset 440: the PARTUUID prefix */
	struct mbr_part part[MBR_PARTS];
};

/* Parse the first sector of an image of @disk_bytes bytes. Rejects a missing
 * 0x55AA signature, a GPT protective entry, invalid status bytes, entries that
 * start in the MBR sector, run past the end of the image or overlap. -EINVAL
 * with the reason in @err. */
int mbr_parse(const uint8_t sector[MBR_SECTOR], uint64_t disk_bytes, struct mbr *out,
	      struct art_err *err);

/* Read and parse the MBR of an open image file. */
int mbr_read_fd(int fd, struct mbr *out, struct art_err *err);

/* Encode @m into @sector (boot code area zeroed, CHS fields set to the LBA
 * overflow marker as modern tools do). */
void mbr_encode(const struct mbr *m, uint8_t sector[MBR_SECTOR]);

static inline uint64_t mbr_part_offset(const struct mbr_part *p)
{
	return (uint64_t)p->lba_start * MBR_SECTOR;
}

static inline uint64_t mbr_part_bytes(const struct mbr_part *p)
{
	return (uint64_t)p->lba_count * MBR_SECTOR;
}

/* The provisioned secure-boot / fde-only layout on a disk of @disk_bytes, as
 * `oem partinit DOS` + `oem partapp 0c <boot>` + `oem partapp 83` make it:
 * p1 FAT32 (0x0c) of @boot_bytes rounded up to 1 MiB, starting at @first_lba
 * (0 means 2048, i.e. 1 MiB); p2 Linux (0x83) from the next MiB boundary to
 * the end of the disk. -ENOSPC when it does not fit. */
int mbr_layout_provisioned(uint64_t disk_bytes, uint64_t boot_bytes, uint32_t first_lba,
			   uint32_t disk_id, struct mbr *out, struct art_err *err);

#endif
