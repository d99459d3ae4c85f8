/* vpi/storage: the virtual Pi's storage device (SD card, eMMC or NVMe) as the
 * fastboot gadget sees it: a backing file, its MBR partitions, a speed model
 * and the bit-flip fault. One struct vpi_storage belongs to one thread. */
#ifndef RPI_SB_VPI_STORAGE_H
#define RPI_SB_VPI_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vpi/board.h"

#define VPI_SECTOR 512u
/* libfdisk's alignment grain as rpi-fastbootd sets it (spec §3.3 partinit). */
#define VPI_MBR_GRAIN (4u << 20)
#define VPI_MBR_MAX_PARTS 4u

struct vpi_storage_params {
	const char *path;          /* backing file, created when missing */
	uint64_t size;             /* device size in bytes (a multiple of 512) */
	uint64_t bytes_per_s;      /* write speed; 0 = unlimited */
	int64_t bitflip_offset;    /* flip bit 0 of the byte written here; -1 = none */
	const char *disk;          /* "mmcblk0" or "nvme0n1" */
};

struct vpi_part {
	unsigned number;           /* 1..4 */
	uint8_t type;              /* DOS type code */
	uint64_t start, size;      /* bytes */
};

struct vpi_storage;

int vpi_storage_open(const struct vpi_storage_params *p, struct vpi_storage **out);
/* The board's storage: path, size (model or storage-size fault), speed option
 * and bit-flip fault taken from @b. */
int vpi_storage_open_board(struct vpi_board *b, struct vpi_storage **out);
void vpi_storage_close(struct vpi_storage *s);

const char *vpi_storage_disk(const struct vpi_storage *s);
uint64_t vpi_storage_size(const struct vpi_storage *s);
/* Disk name for a storage kind: "mmcblk0" (SD, eMMC) or "nvme0n1". */
const char *vpi_storage_disk_name(enum vpi_storage_kind kind);
/* A realistic sustained write rate for a kind (bytes/s), for --storage-rate model. */
uint64_t vpi_storage_model_rate(enum vpi_storage_kind kind);

/* Byte I/O at absolute offsets; writes honour the speed model and bit flip.
 * -ENOSPC past the end of the device. */
int vpi_storage_pwrite(struct vpi_storage *s, uint64_t off, const void *buf, size_t len);
int vpi_storage_fill(struct vpi_storage *s, uint64_t off, uint64_t len, uint32_t word);
int vpi_storage_pread(struct vpi_storage *s, uint64_t off, void *buf, size_t len);
int vpi_storage_sync(struct vpi_storage *s);

/* The MBR as the kernel would parse it: primary partitions with a non-zero
 * type and size. *n = 0 when there is no valid table. */
int vpi_storage_partitions(struct vpi_storage *s, struct vpi_part parts[VPI_MBR_MAX_PARTS],
			   unsigned *n);
/* Resolve "mmcblk0" / "mmcblk0p2" (no /dev/ prefix) to a byte range.
 * -ENOENT when no such node exists. @partno 0 for the whole disk. */
int vpi_storage_resolve(struct vpi_storage *s, const char *name, uint64_t *start, uint64_t *size,
			unsigned *partno);

/* oem partinit: a new empty DOS table with @disk_id. */
int vpi_storage_mbr_init(struct vpi_storage *s, uint32_t disk_id);
/* oem partapp: append a primary partition of @type, @bytes (0 = rest of disk)
 * rounded up to the grain, at the next aligned start. -EINVAL without a table,
 * -ENOSPC when it does not fit or all four slots are used. */
int vpi_storage_mbr_append(struct vpi_storage *s, uint8_t type, uint64_t bytes);

#endif
