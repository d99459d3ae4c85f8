/* ext4: the reading side of the gold image's root file system, through
 * libext2fs (e2fsprogs' own library): open a file system at an offset inside
 * an image file, list the blocks in use, read files and directories. No
 * mounts. A handle belongs to one thread at a time. */
#ifndef RPI_SB_IMAGE_EXT4_H
#define RPI_SB_IMAGE_EXT4_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "artefacts/art_err.h"

struct ext4_fs;

/* Open the file system @offset bytes into @path, read-only. Refuses a file
 * system that does not fit in @size bytes (0: no limit). */
int ext4_open(const char *path, uint64_t offset, uint64_t size, struct ext4_fs **out,
	      struct art_err *err);
void ext4_close(struct ext4_fs *fs);

uint32_t ext4_block_size(const struct ext4_fs *fs);
uint64_t ext4_blocks(const struct ext4_fs *fs);

/* Byte ranges (relative to the file system start) of every block in use per
 * the block bitmap, plus block 0 (boot area and superblock). */
typedef int (*ext4_extent_cb)(void *usr, uint64_t offset, uint64_t len);
int ext4_used_extents(struct ext4_fs *fs, ext4_extent_cb cb, void *usr, struct art_err *err);

struct ext4_stat {
	uint32_t ino;
	mode_t mode;
	uint32_t uid, gid;
	uint64_t size;
	int64_t mtime;
};

/* Look @path up (absolute; intermediate symlinks followed, the last one only
 * when @follow). -ENOENT when absent. */
int ext4_stat_path(struct ext4_fs *fs, const char *path, bool follow, struct ext4_stat *st,
		   struct art_err *err);

/* The entries of directory @path ("." and ".." left out). */
typedef int (*ext4_dir_cb)(void *usr, const char *name, uint32_t ino, bool is_dir);
int ext4_list_dir(struct ext4_fs *fs, const char *path, ext4_dir_cb cb, void *usr,
		  struct art_err *err);

/* Stream a regular file's contents to @cb in pieces (at most @max_bytes in
 * total, else -EFBIG). */
typedef int (*ext4_data_cb)(void *usr, const void *data, size_t len);
int ext4_read_file(struct ext4_fs *fs, uint32_t ino, uint64_t max_bytes, ext4_data_cb cb,
		   void *usr, struct art_err *err);

#endif
