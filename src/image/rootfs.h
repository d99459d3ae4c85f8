/* rootfs: the root file system that goes into the LUKS2 container of the
 * secure-boot and fde-only modes, as a sparse image.
 *
 * The gold image's ext4 partition is copied block for block (only the blocks
 * its bitmap marks used), so every file keeps its bytes, owners, modes,
 * xattrs, file capabilities, hard links and inode numbers; then `resize2fs`
 * (e2fsprogs; libext2fs has no resize API) grows or shrinks the copy to fill
 * the container exactly; then the used blocks of the result become the sparse
 * image. The peer instead rebuilt the file system with `mke2fs -d` from a
 * loop mount, which this host cannot do and which loses hard links' identity
 * and inode numbers. Any thread; the work file lives in @work_dir. */
#ifndef RPI_SB_IMAGE_ROOTFS_H
#define RPI_SB_IMAGE_ROOTFS_H

#include <stdbool.h>
#include <stdint.h>

#include "artefacts/art_err.h"
#include "image/simg.h"

/* LUKS2 header that `cryptsetup luksFormat` (and so `oem cryptinit`) puts
 * before the data segment by default: 16 MiB. */
#define ROOTFS_LUKS2_HEADER_DEFAULT (16ull << 20)

/* Bytes of /dev/mapper/cryptroot on a partition of @partition_bytes. */
uint64_t rootfs_container_bytes(uint64_t partition_bytes, uint64_t luks_header_bytes);

struct rootfs_stats {
	uint32_t block_size;
	uint64_t source_bytes;		/* the gold image's file system */
	uint64_t fs_bytes;		/* the new one: container rounded down to a block */
	bool resized;
	struct simg_stats simg;
};

/* Called with the fitted file system image (a plain ext4 file) before its
 * used blocks are read: a customisation step may change it (debugfs -w,
 * e2tools, libext2fs). */
typedef int (*rootfs_edit_fn)(void *usr, const char *ext4_image, struct art_err *err);

/* Build @out_simg from the ext4 file system at @part_offset (@part_bytes
 * long) of @image, sized to @container_bytes. @edit may be NULL. */
int rootfs_build(const char *image, uint64_t part_offset, uint64_t part_bytes,
		 uint64_t container_bytes, const char *work_dir, const char *out_simg,
		 rootfs_edit_fn edit, void *edit_usr, struct rootfs_stats *stats,
		 struct art_err *err);

/* Run an e2fsprogs tool (looked up in /sbin, /usr/sbin, then PATH) with
 * @argv (argv[0] = tool name), stdin from /dev/null, output captured.
 * 0 when it exits 0; else -EIO with the exit status and the output's last
 * line in @err. */
int rootfs_run_tool(const char *const argv[], struct art_err *err);

#endif
