/* fat: FAT12/16/32 file systems inside image files, in user space (this host
 * has no VFAT driver and the station never mounts anything).
 *
 * Reader: open a FAT at a byte offset of an image (the gold image's boot
 * partition, a boot.img), walk its tree (long names included), extract files
 * and whole trees, and list the byte ranges that hold data (reserved area,
 * FATs, root directory, allocated clusters) so a sparse image carries only
 * those. Every field read from the image is bounds-checked; a corrupt file
 * system fails with -EINVAL and a message, never a crash or a loop.
 *
 * Writer: build a new FAT image file from a directory tree: boot.img the way
 * `rpi-make-boot-image` sizes it (spec secure-boot-artefacts §5.1), and the
 * provisioned FAT32 boot partition (`mkfs.fat -s 1 -F 32 -n BOOT`).
 *
 * A struct fat_vol belongs to one thread at a time; different volumes may be
 * used from different threads. */
#ifndef RPI_SB_IMAGE_FAT_H
#define RPI_SB_IMAGE_FAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "artefacts/art_err.h"

/* A long name is at most 255 UCS-2 units; in UTF-8 at most 3 bytes each. */
#define FAT_NAME_MAX (255 * 3 + 1)
#define FAT_DEPTH_MAX 32

struct fat_vol;

struct fat_dirent {
	char name[FAT_NAME_MAX];	/* long name if present, else the 8.3 name */
	bool is_dir;
	uint8_t attr;
	uint32_t size;
	uint32_t first_cluster;
	time_t mtime;			/* from the DOS date/time, taken as UTC */
};

/* Open the FAT that starts @offset bytes into @fd and is at most @size bytes
 * long. The fd stays owned by the caller and must stay open until fat_close. */
int fat_open(int fd, uint64_t offset, uint64_t size, struct fat_vol **out, struct art_err *err);
void fat_close(struct fat_vol *v);

unsigned fat_bits(const struct fat_vol *v);		/* 12, 16 or 32 */
uint32_t fat_cluster_bytes(const struct fat_vol *v);
uint32_t fat_cluster_count(const struct fat_vol *v);
uint64_t fat_fs_bytes(const struct fat_vol *v);		/* total sectors × sector size */
/* The volume label (root directory label entry, else the boot sector's),
 * trailing blanks removed. */
const char *fat_label(const struct fat_vol *v);

/* Depth-first walk, directories before their contents, entries in directory
 * order. @path is relative ("overlays/README"). A non-zero return from @cb
 * stops the walk and is returned. */
typedef int (*fat_walk_cb)(void *usr, const char *path, const struct fat_dirent *e);
int fat_walk(struct fat_vol *v, fat_walk_cb cb, void *usr, struct art_err *err);

/* Find @path (relative, '/'-separated, names compared case-insensitively as
 * FAT does). -ENOENT when absent. */
int fat_lookup(struct fat_vol *v, const char *path, struct fat_dirent *out, struct art_err *err);

/* Stream a file's contents to @out_fd (at its current position). */
int fat_read_file(struct fat_vol *v, const struct fat_dirent *e, int out_fd, struct art_err *err);

/* Extract the whole tree under the (existing) directory @dir: files mode 0644,
 * directories 0755, modification times from the FAT. Names that could escape
 * @dir ("..", '/', control characters) are refused. */
int fat_extract_tree(struct fat_vol *v, const char *dir, struct art_err *err);

/* The byte ranges (relative to the start of the file system) that carry
 * data: everything up to the first data cluster, then every allocated
 * cluster, adjacent ranges merged, in ascending order. */
typedef int (*fat_extent_cb)(void *usr, uint64_t offset, uint64_t len);
int fat_used_extents(struct fat_vol *v, fat_extent_cb cb, void *usr, struct art_err *err);

/* ---- writer ---- */

struct fat_mkfs_opts {
	unsigned fat_bits;		/* 0: by cluster count (12/16/32); else wanted type */
	unsigned sectors_per_cluster;	/* 0: 1 */
	unsigned nfats;			/* 0: 2 */
	unsigned root_entries;		/* FAT12/16 root directory slots; 0: 512 */
	unsigned heads, sectors_per_track;	/* BPB geometry; 0: 64 / 32 */
	uint64_t size_bytes;		/* 0: estimate as rpi-make-boot-image does */
	const char *label;		/* NULL: "NO NAME" */
	uint32_t volume_id;
	time_t timestamp;		/* 0: each file's own mtime */
};

/* Build a FAT image at @out_path (created or truncated) holding the files and
 * directories under @src_dir (regular files and directories only; anything
 * else is refused by name). Entries are written in name order, so the same
 * tree and options give the same bytes. Only the written areas are
 * allocated in the output (it is a sparse file). *@bits_out (may be NULL)
 * gets the FAT type chosen. */
int fat_build_from_dir(const char *src_dir, const struct fat_mkfs_opts *opts,
		       const char *out_path, unsigned *bits_out, struct art_err *err);

/* The options rpi-make-boot-image uses for boot.img (1 FAT, 1 sector per
 * cluster, 256 root entries, geometry 1/1, label BOOT, size estimated). */
void fat_opts_boot_img(struct fat_mkfs_opts *o);

/* The provisioned boot partition: FAT32, 1 sector per cluster, 2 FATs,
 * label BOOT, @bytes long (FAT16 when too small for FAT32). */
void fat_opts_boot_partition(struct fat_mkfs_opts *o, uint64_t bytes);

#endif
