/* fuzz_goldimage: the gold-image check (src/config/goldimage.c) on arbitrary
 * bytes, both from memory (goldimage_check_buffer) and from a file
 * (goldimage_check on a memfd): the two must agree, the message must be a
 * NUL-terminated string, and an accepted image's partitions must lie inside
 * the file without overlapping. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/goldimage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_part(const struct goldimage_part *x, const struct goldimage_part *y)
{
	return x->offset == y->offset && x->size == y->size && x->type == y->type;
}

static bool same_info(const struct goldimage_info *x, const struct goldimage_info *y)
{
	return x->file_size == y->file_size && same_part(&x->boot, &y->boot) &&
	       same_part(&x->root, &y->root) && x->fat_bits == y->fat_bits && x->disk_id == y->disk_id;
}

static void check_info(const struct goldimage_info *in, size_t size)
{
	const struct goldimage_part *b = &in->boot, *r = &in->root;

	if (in->file_size != size)
		abort();
	if (b->size == 0 || r->size == 0 || b->offset == 0 || r->offset == 0)
		abort();
	if (b->offset + b->size > size || r->offset + r->size > size)
		abort();
	if (b->offset < r->offset + r->size && r->offset < b->offset + b->size)
		abort();
	if (r->type != 0x83 || (b->type != 0x0b && b->type != 0x0c && b->type != 0x0e))
		abort();
	if (in->fat_bits != 0 && in->fat_bits != 12 && in->fat_bits != 16 && in->fat_bits != 32)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct goldimage_info a, b;
	char ea[GOLDIMAGE_ERRLEN], eb[GOLDIMAGE_ERRLEN], path[64];
	int ra, rb, fd;

	memset(ea, 'x', sizeof(ea));
	ra = goldimage_check_buffer(data, size, &a, ea, sizeof(ea));
	if (ra > 0 || (ra < 0 && !memchr(ea, '\0', sizeof(ea))))
		abort();
	if (ra == 0)
		check_info(&a, size);

	fd = memfd_create("fuzz_gold", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rb = goldimage_check(path, &b, eb, sizeof(eb));
	close(fd);
	/* the same bytes through the file reader: the same verdict and facts */
	if (ra != rb || (ra < 0 && strcmp(ea, eb)) || (ra == 0 && !same_info(&a, &b)))
		abort();
	return 0;
}
