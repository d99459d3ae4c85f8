/* verify: what the station asks a board to prove about what it wrote. */
#ifndef RPI_SB_FLOWS_VERIFY_H
#define RPI_SB_FLOWS_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The binary bmap (spec fastboot.md §3.3 `bmap-load`) of the blocks a sparse
 * image defines: header {magic, block size, range count, 0} then per range
 * {first, last (inclusive), SHA-256}. *out malloc'd. 0 or -errno. */
int verify_bmap_from_sparse(const char *simg_path, uint8_t **out, size_t *out_len,
			    uint32_t *ranges);

/* The same, kept beside the image as <simg_path>.bmap and read from there
 * when it is there and not older than the image (*hit says so). */
int verify_bmap_cached(const char *simg_path, uint8_t **out, size_t *out_len, uint32_t *ranges,
		       bool *hit);

#endif
