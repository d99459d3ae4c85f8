/* art_err: the human message that goes with an artefact module's negative errno.
 *
 * Every artefact function that can fail on outside input takes an optional
 * `struct art_err *` and fills it with what went wrong, to which file and at
 * which offset; the caller (a worker, a command) logs it with the device
 * context first. NULL means "caller does not want the text". */
#ifndef RPI_SB_ARTEFACTS_ART_ERR_H
#define RPI_SB_ARTEFACTS_ART_ERR_H

struct art_err {
	char msg[512];	/* truncated, never overflowed */
};

/* Set the message (printf format) and return @rc, so callers can write
 * `return art_err_set(err, -EINVAL, "...")`. */
int art_err_set(struct art_err *err, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix an existing message with more context ("pieeprom.bin: " + msg). */
void art_err_prefix(struct art_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
