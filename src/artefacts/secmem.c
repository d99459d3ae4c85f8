/* secmem: locked, wiped allocations (see secmem.h). Any thread.
 *
 * Each block is its own anonymous mapping, rounded to pages, so that mlock()
 * and madvise(MADV_DONTDUMP) cover exactly our bytes and nothing of the heap.
 * The first 64 bytes hold the mapping length (keeps user data aligned). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "artefacts/secmem.h"

#define SECMEM_HDR 64

static size_t page_round(size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t p = pg > 0 ? (size_t)pg : 4096;

	return (n + p - 1) / p * p;
}

void *secmem_alloc(size_t size)
{
	size_t total;
	uint8_t *base;

	if (size > SIZE_MAX - SECMEM_HDR - 65536) {
		errno = ENOMEM;
		return NULL;
	}
	total = page_round(size + SECMEM_HDR);
	base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	if (mlock(base, total) < 0) {
		int e = errno;

		munmap(base, total);
		errno = e;
		return NULL;
	}
	(void)madvise(base, total, MADV_DONTDUMP);
	memcpy(base, &total, sizeof(total));
	memcpy(base + sizeof(total), &size, sizeof(size));
	return base + SECMEM_HDR;
}

size_t secmem_size(const void *ptr)
{
	size_t size;

	if (!ptr)
		return 0;
	memcpy(&size, (const uint8_t *)ptr - SECMEM_HDR + sizeof(size_t), sizeof(size));
	return size;
}

void secmem_free(void *ptr)
{
	uint8_t *base;
	size_t total;

	if (!ptr)
		return;
	base = (uint8_t *)ptr - SECMEM_HDR;
	memcpy(&total, base, sizeof(total));
	explicit_bzero(base, total);
	munlock(base, total);
	munmap(base, total);
}
