/* sparse: Android sparse images for fastboot flashing, through libsparse
 * (spec fastboot.md §5). Builds sparse images from raw regions without
 * buffering them (data chunks reference the file descriptor), splits an image
 * larger than max-download-size into independent valid sparse images
 * (sparse_file_resparse, as the AOSP client does), and streams each piece
 * straight into a fastboot download.
 *
 * Our names avoid libsparse's sparse_file_* (and src/image's simg_*). */
#ifndef RPI_SB_PROTO_SPARSE_H
#define RPI_SB_PROTO_SPARSE_H

#include <stdint.h>
#include <sys/types.h>

#include "proto/fastboot.h"

struct sparse_file; /* libsparse */

#define SPARSE_BLOCK_SIZE 4096u
#define SPARSE_PIECE_LIMIT (1u << 30) /* the AOSP client never sends more than 1 GiB per piece */

/* What a raw block of zeros becomes. FILL(0) is the safe default: DONT_CARE
 * keeps whatever the partition held before, so use it only when a block map
 * proves the blocks unused. */
enum sparse_zero_policy { SPARSE_ZERO_FILL, SPARSE_ZERO_DONT_CARE };

/* A used block range [first, first + count) of a raw region, in blocks. */
struct sparse_extent {
	uint64_t first, count;
};

/* Build a sparse image of fd's bytes [offset, offset + len): blocks outside
 * the map (if map != NULL) are DONT_CARE; inside, uniform-word blocks become
 * FILL, zero blocks follow zero_policy, the rest are RAW chunks that refer to
 * fd (fd must stay open until the image is written). The last partial block
 * is zero-padded. Returns 0 and *out, or a negative errno. */
int sparse_build_from_fd(int fd, off_t offset, uint64_t len, unsigned block_size,
		 const struct sparse_extent *map, size_t n_extents, enum sparse_zero_policy zero_policy,
		 struct sparse_file **out);

/* Look at the sparse header at the start of fd (pread: the offset is kept)
 * before libsparse does: it allocates a block-sized buffer, so a damaged
 * header with a block size of gigabytes must not reach it. 1: a sparse header
 * with a block size that is a multiple of 4 in [4, SPARSE_BLOCK_MAX] and
 * header sizes of at least 28 / 12 bytes; 0: no sparse magic (a raw file);
 * -EINVAL: a sparse header outside those bounds; -errno on a read error. */
#define SPARSE_BLOCK_MAX (64u << 10)
int sparse_header_check(int fd);

/* Import an image file: a sparse image as it is, a raw file as in sparse_build_from_fd
 * with FILL for zero blocks. *out refers to fd. -EINVAL for a sparse header
 * that sparse_header_check() refuses. */
int sparse_open_image(int fd, struct sparse_file **out);

/* Free an image (sparse_file_destroy, so callers need no libsparse header). */
void sparse_destroy_image(struct sparse_file *s);

/* Bytes of the encoded sparse image (no CRC chunk). */
int64_t sparse_encoded_len(struct sparse_file *s);

/* Split s into pieces each at most max_len bytes when encoded; each piece is a
 * complete sparse image over the same total_blks (DONT_CARE elsewhere). The
 * blocks of s move into the pieces: s is left empty. Caller frees with
 * sparse_pieces_free(). */
int sparse_split(struct sparse_file *s, uint64_t max_len, struct sparse_file ***pieces, int *count);
void sparse_pieces_free(struct sparse_file **pieces, int count);

/* Write s as a sparse image file to fd. */
int sparse_write_image(struct sparse_file *s, int fd);

/* Flash s to partition: one download + flash per piece, each piece at most
 * max_download bytes (0 = ask getvar:max-download-size), never more than
 * 1 GiB; each piece streams from libsparse into the download without a
 * whole-image buffer. s is consumed as by sparse_split when it must be split. */
int fb_flash_sparse(struct fb *fb, const char *partition, struct sparse_file *s, uint64_t max_download);

#endif
