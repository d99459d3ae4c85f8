/* goldimage: is this file an OS image the station can write?
 *
 * A gold image is a whole-disk, uncompressed pi-gen style image: an MBR whose
 * partition 1 is a FAT boot partition (type 0x0b, 0x0c or 0x0e, with a FAT boot
 * sector) and whose partition 2 is an ext4 root (type 0x83, ext superblock
 * magic), both wholly inside the file. Used by `config check` and by the
 * provisioning flow before anything is erased. */
#ifndef RPI_SB_CONFIG_GOLDIMAGE_H
#define RPI_SB_CONFIG_GOLDIMAGE_H

#include <stddef.h>
#include <stdint.h>

struct goldimage_part {
	uint64_t offset;  /* bytes from the start of the image */
	uint64_t size;    /* bytes */
	uint8_t type;     /* MBR partition type */
};

struct goldimage_info {
	uint64_t file_size;
	struct goldimage_part boot;  /* partition 1, FAT */
	struct goldimage_part root;  /* partition 2, ext4 */
	unsigned fat_bits;           /* 12, 16 or 32, from the boot sector's type string */
	uint32_t disk_id;            /* MBR disk signature (PARTUUID prefix) */
};

/* A message buffer this long always holds the whole explanation. */
#define GOLDIMAGE_ERRLEN 320

/* Check @path. 0 and *info filled, or a negative errno with a one-line explanation
 * in @err (what is wrong with the file and what to do; the caller names the path): -ENOENT missing, -EINVAL not
 * a usable image (GPT, compressed, truncated, wrong partitions), other -errno for
 * read errors. Any thread. */
int goldimage_check(const char *path, struct goldimage_info *info, char *err, size_t errlen);

/* The same checks on an image held in memory (tests, fuzzing). */
int goldimage_check_buffer(const uint8_t *buf, size_t len, struct goldimage_info *info,
			   char *err, size_t errlen);

#endif
