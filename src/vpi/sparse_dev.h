/* vpi/sparse_dev: the virtual Pi's own reader of Android sparse images.
 *
 * Device side of shared/spec/fastboot.md §5, written independently of the
 * host's sparse encoder. Pure functions over a memory buffer; any thread. */
#ifndef RPI_SB_VPI_SPARSE_DEV_H
#define RPI_SB_VPI_SPARSE_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VPI_SPARSE_MAGIC 0xED26FF3Au
#define VPI_SPARSE_FILE_HDR_SZ 28u
#define VPI_SPARSE_CHUNK_HDR_SZ 12u

enum vpi_sparse_chunk_type {
	VPI_SPARSE_RAW = 0xCAC1,
	VPI_SPARSE_FILL = 0xCAC2,
	VPI_SPARSE_DONT_CARE = 0xCAC3,
	VPI_SPARSE_CRC32 = 0xCAC4,
};

struct vpi_sparse_header {
	uint16_t major, minor;
	uint16_t file_hdr_sz, chunk_hdr_sz;
	uint32_t blk_sz;
	uint32_t total_blks;
	uint32_t total_chunks;
	uint32_t image_checksum;
};

/* One output action, in order of increasing offset (bytes from the start of
 * the target). RAW: @data/@len. FILL: @len bytes of @fill repeated (LE word).
 * DONT_CARE (also the trailing gap): skip @len bytes, keep what is there. */
struct vpi_sparse_op {
	enum vpi_sparse_chunk_type type;
	uint64_t offset;
	uint64_t len;
	const uint8_t *data;
	uint32_t fill;
};

typedef int (*vpi_sparse_op_fn)(void *usrptr, const struct vpi_sparse_op *op);

/* True when @buf starts with the sparse magic (the daemon's raw/sparse switch). */
bool vpi_sparse_has_magic(const void *buf, size_t len);

/* Validate the whole image without side effects: header rules of §5.1, every
 * chunk of §5.2 (exact total_sz per type, no unknown type, no truncation) and
 * sum(chunk_sz) == total_blks. Fills @hdr and the expanded size (total_blks *
 * blk_sz). 0, or -EINVAL with a reason in @why (static string) when not NULL. */
int vpi_sparse_check(const void *buf, size_t len, struct vpi_sparse_header *hdr,
		     uint64_t *expanded, const char **why);

/* Check, then call @fn for each op in order. Stops at the first non-zero
 * return of @fn and returns it. */
int vpi_sparse_walk(const void *buf, size_t len, vpi_sparse_op_fn fn, void *usrptr);

/* vpi_sparse_check() that also hands each op to @fn as soon as its chunk is
 * validated (later chunks are not yet): for callers following the pass over
 * the buffer (giving memory back), never for side effects on the target. */
int vpi_sparse_check_each(const void *buf, size_t len, uint64_t *expanded,
			  vpi_sparse_op_fn fn, void *usrptr);

/* The ops of an image vpi_sparse_check() accepted, without checking it again
 * (one pass over the chunk headers instead of two). */
int vpi_sparse_apply(const void *buf, size_t len, vpi_sparse_op_fn fn, void *usrptr);

#endif
