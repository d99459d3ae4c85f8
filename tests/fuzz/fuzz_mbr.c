/* fuzz_mbr: the DOS partition table parser. Input: a 512-byte sector
 * followed by an optional 8-byte little-endian disk size (else the input
 * length × 1 MiB). Invariant: whatever parses re-encodes to a table that
 * parses to the same partitions. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/mbr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sector[MBR_SECTOR], again[MBR_SECTOR];
	struct art_err err;
	struct mbr m, m2;
	uint64_t disk = (uint64_t)size << 20;
	int i;

	if (size < MBR_SECTOR)
		return 0;
	memcpy(sector, data, MBR_SECTOR);
	if (size >= MBR_SECTOR + 8) {
		disk = 0;
		for (i = 0; i < 8; i++)
			disk |= (uint64_t)data[MBR_SECTOR + i] << (8 * i);
	}
	if (mbr_parse(sector, disk, &m, &err))
		return 0;
	mbr_encode(&m, again);
	if (mbr_parse(again, disk, &m2, &err) || memcmp(&m, &m2, sizeof(m)))
		abort();
	return 0;
}
