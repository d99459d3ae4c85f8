/* simg: Android sparse image files holding only the byte ranges that matter
 * (allocated FAT clusters, used ext4 blocks, the partition table), written
 * through libsparse. Block size is always 4096, as the peer's img2simg uses.
 *
 * The sparse file refers to the source image while it is written: data is
 * streamed in pieces of at most SIMG_PIECE bytes, never loaded whole, so
 * memory stays flat whatever the image size. Any thread (one list per
 * thread). */
#ifndef RPI_SB_IMAGE_SIMG_H
#define RPI_SB_IMAGE_SIMG_H

#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"

#define SIMG_BLOCK 4096u
#define SIMG_PIECE (4u << 20)

struct extent {
	uint64_t off, len;
};

/* Byte ranges of an image, in any order; simg_write() normalises them
 * (rounds out to blocks, sorts, merges). */
struct extent_list {
	struct extent *v;
	size_t n, cap;
};

int extents_add(struct extent_list *l, uint64_t off, uint64_t len);
void extents_free(struct extent_list *l);
/* Sort, round out to SIMG_BLOCK, clamp to @limit bytes and merge. */
void extents_normalise(struct extent_list *l, uint64_t limit);
/* Total bytes covered (after normalising). */
uint64_t extents_bytes(const struct extent_list *l);

struct simg_stats {
	uint64_t expanded_bytes;	/* total_blks × 4096 */
	uint64_t covered_bytes;		/* bytes that are not DONT_CARE */
	uint64_t data_bytes;		/* of those, bytes carried as RAW chunks (rest: FILL 0) */
	uint64_t file_bytes;		/* size of the sparse file */
};

/* Write @out_path (created/truncated, mode 0644): a sparse image of
 * @image_bytes (rounded up to a block) whose blocks covered by @ext (offsets
 * relative to @src_offset in @src_fd) carry the source bytes (all-zero blocks
 * as FILL 0) and all others are DONT_CARE. Bytes past the end of the source
 * file read as zero. */
int simg_write(int src_fd, uint64_t src_offset, uint64_t image_bytes, struct extent_list *ext,
	       const char *out_path, struct simg_stats *stats, struct art_err *err);

#endif
