/* keyfile: reading key files (PEM) into locked memory, and the one place that
 * decides whether a private key file's permissions are acceptable.
 * Any thread (no shared state). */
#ifndef RPI_SB_ARTEFACTS_KEYFILE_H
#define RPI_SB_ARTEFACTS_KEYFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "artefacts/art_err.h"

#define KEYFILE_MAX_BYTES 65536

/* Read @path whole into secmem, NUL-terminated; *len counts the NUL (what
 * mbedtls_pk_parse_key wants). @st (may be NULL) gets the opened file's stat.
 * Free *buf with secmem_free(). 0 or -errno. */
int keyfile_read(const char *path, uint8_t **buf, size_t *len, struct stat *st,
		 struct art_err *err);

/* write(2) all @n bytes, retrying on EINTR. 0 or -errno. */
int keyfile_write_all(int fd, const void *p, size_t n);

/* Permission policy for a private key file: 0 when it is a regular file
 * owned by root or by this process's effective user with no group/others
 * access; -EPERM otherwise (-EINVAL: not a regular file), with a message in
 * @err naming the file, its mode and owner, and the command that fixes it. */
int keyfile_check_mode(const char *path, const struct stat *st, struct art_err *err);

#endif
