/* scratch: a per-process scratch directory for fuzz targets that need a
 * file system (under /dev/shm when writable, else TMPDIR, else /tmp), removed
 * at exit. Header-only: each target is its own program. */
#ifndef RPI_SB_TESTS_FUZZ_SCRATCH_H
#define RPI_SB_TESTS_FUZZ_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "image/cache.h"

static char fuzz_scratch_root[256];

static void fuzz_scratch_cleanup(void)
{
	if (fuzz_scratch_root[0])
		cache_remove_tree(fuzz_scratch_root);
}

/* Create the directory once; put "<root>/<sub>" into @out. */
static void fuzz_scratch(const char *name, const char *sub, char *out, size_t outlen)
{
	if (!fuzz_scratch_root[0]) {
		const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");

		snprintf(fuzz_scratch_root, sizeof(fuzz_scratch_root), "%s/%s.XXXXXX",
			 base ? base : "/tmp", name);
		if (!mkdtemp(fuzz_scratch_root))
			abort();
		atexit(fuzz_scratch_cleanup);
	}
	if ((size_t)snprintf(out, outlen, "%s/%s", fuzz_scratch_root, sub) >= outlen)
		abort();
}

#endif
