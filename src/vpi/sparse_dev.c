/* vpi/sparse_dev: validating reader of Android sparse images (device side).
 *
 * Owns the strict parse of spec §5.1-5.2 for the virtual fastboot gadget: an
 * image is checked completely before anything is written, so a malformed
 * download never leaves a half-written partition. Stateless; any thread. */
#include <errno.h>
#include <string.h>

#include "vpi/sparse_dev.h"

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bool vpi_sparse_has_magic(const void *buf, size_t len)
{
	return len >= 4 && le32(buf) == VPI_SPARSE_MAGIC;
}

static int reject(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

/* One pass shared by check and walk: @fn NULL means validate only. */
static int sparse_pass(const uint8_t *p, size_t len, struct vpi_sparse_header *out,
		       uint64_t *expanded, const char **why, vpi_sparse_op_fn fn, void *usrptr)
{
	struct vpi_sparse_header h;
	uint64_t blocks = 0;
	size_t pos;

	if (len < VPI_SPARSE_FILE_HDR_SZ)
		return reject(why, "shorter than the 28-byte file header");
	if (le32(p) != VPI_SPARSE_MAGIC)
		return reject(why, "bad magic");
	h.major = le16(p + 4);
	h.minor = le16(p + 6);
	h.file_hdr_sz = le16(p + 8);
	h.chunk_hdr_sz = le16(p + 10);
	h.blk_sz = le32(p + 12);
	h.total_blks = le32(p + 16);
	h.total_chunks = le32(p + 20);
	h.image_checksum = le32(p + 24);
	if (h.major != 1)
		return reject(why, "unsupported major version");
	if (h.file_hdr_sz < VPI_SPARSE_FILE_HDR_SZ)
		return reject(why, "file header size below 28");
	if (h.chunk_hdr_sz < VPI_SPARSE_CHUNK_HDR_SZ)
		return reject(why, "chunk header size below 12");
	if (h.blk_sz == 0 || h.blk_sz % 4)
		return reject(why, "block size is zero or not a multiple of 4");
	if (h.total_blks == 0)
		return reject(why, "total_blks is zero");
	if (h.file_hdr_sz > len)
		return reject(why, "truncated file header");
	pos = h.file_hdr_sz;

	for (uint32_t i = 0; i < h.total_chunks; i++) {
		const uint8_t *c = p + pos;
		uint16_t type;
		uint32_t chunk_sz, total_sz;
		uint64_t data_sz, out_bytes;
		struct vpi_sparse_op op = { 0 };

		if (len - pos < h.chunk_hdr_sz)
			return reject(why, "truncated chunk header");
		type = le16(c);
		chunk_sz = le32(c + 4);
		total_sz = le32(c + 8);
		if (total_sz < h.chunk_hdr_sz)
			return reject(why, "chunk total_sz smaller than its header");
		data_sz = total_sz - h.chunk_hdr_sz;
		if (data_sz > len - pos - h.chunk_hdr_sz)
			return reject(why, "chunk runs past the end of the image");
		out_bytes = (uint64_t)chunk_sz * h.blk_sz;
		op.offset = blocks * h.blk_sz;
		op.len = out_bytes;
		switch (type) {
		case VPI_SPARSE_RAW:
			if (data_sz != out_bytes)
				return reject(why, "RAW chunk total_sz does not match chunk_sz");
			if (chunk_sz == 0)
				return reject(why, "RAW chunk covers no blocks");
			op.type = VPI_SPARSE_RAW;
			op.data = c + h.chunk_hdr_sz;
			break;
		case VPI_SPARSE_FILL:
			if (data_sz != 4)
				return reject(why, "FILL chunk payload is not 4 bytes");
			if (chunk_sz == 0)
				return reject(why, "FILL chunk covers no blocks");
			op.type = VPI_SPARSE_FILL;
			op.fill = le32(c + h.chunk_hdr_sz);
			break;
		case VPI_SPARSE_DONT_CARE:
			if (data_sz != 0)
				return reject(why, "DONT_CARE chunk carries a payload");
			op.type = VPI_SPARSE_DONT_CARE;
			break;
		case VPI_SPARSE_CRC32:
			/* Consumes no blocks whatever chunk_sz says; value not verified (§5.2). */
			if (data_sz != 4)
				return reject(why, "CRC32 chunk payload is not 4 bytes");
			out_bytes = 0;
			op.type = VPI_SPARSE_CRC32;
			break;
		default:
			return reject(why, "unknown chunk type");
		}
		blocks += out_bytes / h.blk_sz;
		if (blocks > h.total_blks)
			return reject(why, "chunks cover more blocks than total_blks");
		if (fn && type != VPI_SPARSE_CRC32 && op.len) {
			int rc = fn(usrptr, &op);
			if (rc)
				return rc;
		}
		pos += h.chunk_hdr_sz + (size_t)data_sz;
	}
	if (blocks != h.total_blks)
		return reject(why, "chunks cover fewer blocks than total_blks");
	if (out)
		*out = h;
	if (expanded)
		*expanded = (uint64_t)h.total_blks * h.blk_sz;
	return 0;
}

int vpi_sparse_check(const void *buf, size_t len, struct vpi_sparse_header *hdr,
		     uint64_t *expanded, const char **why)
{
	if (why)
		*why = NULL;
	return sparse_pass(buf, len, hdr, expanded, why, NULL, NULL);
}

int vpi_sparse_walk(const void *buf, size_t len, vpi_sparse_op_fn fn, void *usrptr)
{
	int rc = sparse_pass(buf, len, NULL, NULL, NULL, NULL, NULL);

	if (rc)
		return rc;
	return sparse_pass(buf, len, NULL, NULL, NULL, fn, usrptr);
}

int vpi_sparse_check_each(const void *buf, size_t len, uint64_t *expanded,
			  vpi_sparse_op_fn fn, void *usrptr)
{
	return sparse_pass(buf, len, NULL, expanded, NULL, fn, usrptr);
}

int vpi_sparse_apply(const void *buf, size_t len, vpi_sparse_op_fn fn, void *usrptr)
{
	return sparse_pass(buf, len, NULL, NULL, NULL, fn, usrptr);
}
