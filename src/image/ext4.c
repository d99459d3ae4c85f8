/* ext4: libext2fs-backed reading of ext2/3/4 file systems inside image files
 * (see ext4.h). One thread per handle; libext2fs keeps no global state that
 * these calls change. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "image/ext4.h"

struct ext4_fs {
	ext2_filsys fs;
	char *path;
};

static int e2err(struct art_err *err, errcode_t ec, const char *what, const char *detail)
{
	return art_err_set(err, -EINVAL, "%s%s%s: %s", what, detail ? " " : "",
			   detail ? detail : "", error_message(ec));
}

/* libext2fs reports some errors itself through com_err(), which prints to
 * stderr; that would scribble over the TUI. Errors reach the operator
 * through our return values instead. */
static void quiet_com_err(const char *whoami, errcode_t code, const char *fmt, va_list args)
{
	(void)whoami;
	(void)code;
	(void)fmt;
	(void)args;
}

static void quiet_once(void)
{
	set_com_err_hook(quiet_com_err);
}

int ext4_open(const char *path, uint64_t offset, uint64_t size, struct ext4_fs **out,
	      struct art_err *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct ext4_fs *h;
	char opts[64];
	errcode_t ec;

	pthread_once(&once, quiet_once);
	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	snprintf(opts, sizeof(opts), "offset=%llu", (unsigned long long)offset);
	ec = ext2fs_open2(path, opts, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &h->fs);
	if (ec) {
		free(h);
		return art_err_set(err, -EINVAL, "no usable ext4 file system at offset %llu of "
				   "%s: %s", (unsigned long long)offset, path, error_message(ec));
	}
	/* libext2fs trusts these when it reads the bitmaps (a wrong first data
	 * block overflows its buffers: found by fuzz_ext4); refuse them here. */
	{
		struct ext2_super_block *sb = h->fs->super;
		bool bigalloc = ext2fs_has_feature_bigalloc(sb);
		uint32_t want_first = (h->fs->blocksize == 1024 && !bigalloc) ? 1 : 0;

		if (sb->s_first_data_block != want_first ||
		    sb->s_blocks_per_group == 0 || sb->s_inodes_per_group == 0 ||
		    sb->s_first_data_block >= ext2fs_blocks_count(sb)) {
			art_err_set(err, -EINVAL, "ext4 file system at offset %llu of %s is "
				    "corrupt (first data block %u, %u blocks and %u inodes per "
				    "group): run e2fsck on the gold image",
				    (unsigned long long)offset, path, sb->s_first_data_block,
				    sb->s_blocks_per_group, sb->s_inodes_per_group);
			ext2fs_close_free(&h->fs);
			free(h);
			return -EINVAL;
		}
	}
	if (size && ext2fs_blocks_count(h->fs->super) * (uint64_t)h->fs->blocksize > size) {
		art_err_set(err, -EINVAL, "ext4 file system at offset %llu of %s claims %llu "
			    "bytes but its partition has %llu", (unsigned long long)offset, path,
			    (unsigned long long)(ext2fs_blocks_count(h->fs->super) *
						 (uint64_t)h->fs->blocksize),
			    (unsigned long long)size);
		ext2fs_close_free(&h->fs);
		free(h);
		return -EINVAL;
	}
	*out = h;
	return 0;
}

void ext4_close(struct ext4_fs *h)
{
	if (!h)
		return;
	ext2fs_close_free(&h->fs);
	free(h);
}

uint32_t ext4_block_size(const struct ext4_fs *h)
{
	return h->fs->blocksize;
}

uint64_t ext4_blocks(const struct ext4_fs *h)
{
	return ext2fs_blocks_count(h->fs->super);
}

int ext4_used_extents(struct ext4_fs *h, ext4_extent_cb cb, void *usr, struct art_err *err)
{
	ext2_filsys fs = h->fs;
	blk64_t start, end, b, first_free;
	uint64_t bs = fs->blocksize;
	errcode_t ec;
	int rc;

	ec = ext2fs_read_block_bitmap(fs);
	if (ec)
		return e2err(err, ec, "cannot read the ext4 block bitmap", NULL);
	start = ext2fs_get_block_bitmap_start2(fs->block_map);
	end = ext2fs_get_block_bitmap_end2(fs->block_map);
	if (end >= ext2fs_blocks_count(fs->super))
		end = ext2fs_blocks_count(fs->super) - 1;
	/* block 0 (and the superblock in it) even when the bitmap starts at 1 */
	rc = cb(usr, 0, start ? start * bs : bs);
	if (rc)
		return rc;
	b = start;
	while (b <= end) {
		if (ext2fs_find_first_set_block_bitmap2(fs->block_map, b, end, &b))
			break;
		if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, b, end, &first_free))
			first_free = end + 1;
		rc = cb(usr, b * bs, (first_free - b) * bs);
		if (rc)
			return rc;
		b = first_free;
	}
	return 0;
}

static int lookup(struct ext4_fs *h, const char *path, bool follow, ext2_ino_t *ino,
		  struct art_err *err)
{
	errcode_t ec;

	if (follow)
		ec = ext2fs_namei_follow(h->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino);
	else
		ec = ext2fs_namei(h->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino);
	if (ec == EXT2_ET_FILE_NOT_FOUND || ec == EXT2_ET_NO_DIRECTORY)
		return art_err_set(err, -ENOENT, "%s not found in the ext4 root file system", path);
	if (ec)
		return e2err(err, ec, "cannot look up", path);
	return 0;
}

int ext4_stat_path(struct ext4_fs *h, const char *path, bool follow, struct ext4_stat *st,
		   struct art_err *err)
{
	struct ext2_inode_large inode;
	ext2_ino_t ino;
	errcode_t ec;
	int rc;

	rc = lookup(h, path, follow, &ino, err);
	if (rc)
		return rc;
	memset(&inode, 0, sizeof(inode));
	ec = ext2fs_read_inode_full(h->fs, ino, (struct ext2_inode *)&inode, sizeof(inode));
	if (ec)
		return e2err(err, ec, "cannot read the inode of", path);
	memset(st, 0, sizeof(*st));
	st->ino = ino;
	st->mode = inode.i_mode;
	st->uid = inode_uid(inode);
	st->gid = inode_gid(inode);
	st->size = EXT2_I_SIZE(&inode);
	st->mtime = (int32_t)inode.i_mtime;
	return 0;
}

struct list_ctx {
	ext4_dir_cb cb;
	void *usr;
	int rc;
};

static int list_one(struct ext2_dir_entry *dirent, int offset, int blocksize, char *buf,
		    void *priv)
{
	struct list_ctx *l = priv;
	int len = ext2fs_dirent_name_len(dirent);
	char name[EXT2_NAME_LEN + 1];

	(void)offset;
	(void)blocksize;
	(void)buf;
	if (len <= 0 || len > EXT2_NAME_LEN)
		return 0;
	memcpy(name, dirent->name, (size_t)len);
	name[len] = '\0';
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	l->rc = l->cb(l->usr, name, dirent->inode,
		      ext2fs_dirent_file_type(dirent) == EXT2_FT_DIR);
	return l->rc ? DIRENT_ABORT : 0;
}

int ext4_list_dir(struct ext4_fs *h, const char *path, ext4_dir_cb cb, void *usr,
		  struct art_err *err)
{
	struct list_ctx l = {.cb = cb, .usr = usr};
	ext2_ino_t ino;
	errcode_t ec;
	int rc;

	rc = lookup(h, path, true, &ino, err);
	if (rc)
		return rc;
	ec = ext2fs_dir_iterate(h->fs, ino, 0, NULL, list_one, &l);
	if (l.rc)
		return l.rc;
	if (ec)
		return e2err(err, ec, "cannot list directory", path);
	return 0;
}

int ext4_read_file(struct ext4_fs *h, uint32_t ino, uint64_t max_bytes, ext4_data_cb cb,
		   void *usr, struct art_err *err)
{
	ext2_file_t f = NULL;
	uint64_t size, done = 0;
	char *buf = NULL;
	errcode_t ec;
	int rc = 0;

	ec = ext2fs_file_open(h->fs, ino, 0, &f);
	if (ec)
		return e2err(err, ec, "cannot open an ext4 file", NULL);
	size = ext2fs_file_get_size(f);
	if (size > max_bytes) {
		rc = art_err_set(err, -EFBIG, "ext4 inode %u is %llu bytes, over the %llu-byte "
				 "limit", ino, (unsigned long long)size,
				 (unsigned long long)max_bytes);
		goto out;
	}
	buf = malloc(65536);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (done < size) {
		unsigned int got = 0;

		ec = ext2fs_file_read(f, buf, 65536, &got);
		if (ec) {
			rc = e2err(err, ec, "cannot read an ext4 file", NULL);
			goto out;
		}
		if (got == 0) {
			rc = art_err_set(err, -EIO, "ext4 inode %u ended early", ino);
			goto out;
		}
		rc = cb(usr, buf, got);
		if (rc)
			goto out;
		done += got;
	}
out:
	free(buf);
	ext2fs_file_close(f);
	return rc;
}
