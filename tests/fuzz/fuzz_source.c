/* fuzz_source: the gold image source reader (src/image/source.c) on
 * arbitrary bytes: source_identify() sniffs the file, and source_prepare()
 * decompresses a .zst/.xz into a scratch cache (then checks the MBR of what
 * came out). The scratch directory lives under /dev/shm (else TMPDIR) and is
 * emptied after every input; RLIMIT_FSIZE caps what one input may expand to
 * (64 MiB), so a decompression bomb ends in a clean write error. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/cache.h"
#include "image/source.h"
#include "scratch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FSIZE_CAP (64ull << 20)

static char in_path[300], cache_dir[300];

static void setup(void)
{
	struct rlimit rl = { FSIZE_CAP, FSIZE_CAP };

	fuzz_scratch("fuzz_source", "in.img", in_path, sizeof(in_path));
	fuzz_scratch("fuzz_source", "cache", cache_dir, sizeof(cache_dir));
	/* a write past the cap fails with EFBIG instead of killing the process */
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct art_err err = { { 0 } };
	enum source_kind kind;
	char sha[CACHE_KEY_HEX], *raw = NULL;
	struct stat st;
	FILE *f;
	int rc, rc_id;

	if (!in_path[0])
		setup();
	f = fopen(in_path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();

	rc = rc_id = source_identify(in_path, &kind, &err);
	if (rc > 0 || !memchr(err.msg, '\0', sizeof(err.msg)))
		abort();
	if (rc == 0 && kind != SOURCE_RAW && kind != SOURCE_ZSTD && kind != SOURCE_XZ)
		abort();

	rc = source_prepare(cache_dir, in_path, &raw, sha, &err);
	if (rc > 0 || !memchr(err.msg, '\0', sizeof(err.msg)))
		abort();
	if (rc == 0 && rc_id != 0)
		abort();  /* prepared what identify refused */
	if (rc == 0) {
		/* a raw image is used in place; a decompressed one is a file in the cache */
		if (!raw || strlen(sha) != 64 || stat(raw, &st) < 0 || !S_ISREG(st.st_mode))
			abort();
		if (kind == SOURCE_RAW ? strcmp(raw, in_path) != 0
				       : strncmp(raw, cache_dir, strlen(cache_dir)) != 0)
			abort();
		if ((uint64_t)st.st_size > FSIZE_CAP || st.st_size < 512)
			abort();
	} else if (raw) {
		abort();
	}
	free(raw);
	cache_remove_tree(cache_dir);
	return 0;
}
