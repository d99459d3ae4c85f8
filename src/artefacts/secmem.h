/* secmem: locked, wiped memory for private key bytes and PINs.
 *
 * secmem_alloc() returns zeroed memory that is mlock()ed (never swapped) and
 * excluded from core dumps; secmem_free() wipes it with explicit_bzero before
 * unlocking and freeing. Any thread. */
#ifndef RPI_SB_ARTEFACTS_SECMEM_H
#define RPI_SB_ARTEFACTS_SECMEM_H

#include <stddef.h>

/* NULL with errno set (ENOMEM, or EPERM/EAGAIN when the memory cannot be
 * locked: raise RLIMIT_MEMLOCK). */
void *secmem_alloc(size_t size);

/* Wipe and free; NULL is a no-op. */
void secmem_free(void *ptr);

/* Usable size of a secmem block. */
size_t secmem_size(const void *ptr);

#endif
