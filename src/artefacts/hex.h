/* hex: lower-case hex encoding and strict decoding for signatures and hashes.
 * Pure functions: any thread. */
#ifndef RPI_SB_ARTEFACTS_HEX_H
#define RPI_SB_ARTEFACTS_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2*len lower-case hex chars and a NUL to @out (2*len+1 bytes). */
void hex_encode(const uint8_t *in, size_t len, char *out);

/* Decodes exactly 2*outlen hex chars (either case) from @in. 0 or -EINVAL. */
int hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen);

int hex_is_digit(int c);

#endif
