/* source: what kind of file the configured gold image is, and a raw copy of
 * it when it is compressed. `.img` is used in place; `.img.zst` and `.img.xz`
 * are decompressed once (streamed, zero blocks left as holes) into the cache
 * entry keyed by the compressed file's SHA-256. Anything else is refused with
 * a message naming what it is. Any thread. */
#ifndef RPI_SB_IMAGE_SOURCE_H
#define RPI_SB_IMAGE_SOURCE_H

#include <stdbool.h>

#include "artefacts/art_err.h"
#include "image/cache.h"

enum source_kind {
	SOURCE_RAW,		/* whole-disk image with a DOS partition table */
	SOURCE_ZSTD,
	SOURCE_XZ,
};

/* Classify @path by its first bytes. -EINVAL (with what it is) for anything
 * the pipeline cannot use: directories (IDP artefacts), gzip, bzip2, zip,
 * Android sparse, qcow2, GPT disks, no partition table. */
int source_identify(const char *path, enum source_kind *kind, struct art_err *err);

/* Resolve @path to a raw image: *raw_path (malloc'd) is @path itself or the
 * decompressed copy in the cache; @sha256 is the hash of the file as given
 * (remembered, see cache_file_sha256). */
int source_prepare(const char *cache_dir, const char *path, char **raw_path,
		   char sha256[CACHE_KEY_HEX], struct art_err *err);

#endif
