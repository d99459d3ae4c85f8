/* art_err: formatting of artefact error messages (see art_err.h).
 * Pure functions on caller-owned structs: any thread. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "artefacts/art_err.h"

int art_err_set(struct art_err *err, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return rc;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return rc;
}

void art_err_prefix(struct art_err *err, const char *fmt, ...)
{
	char head[256], tail[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(tail, err->msg, sizeof(tail));
	tail[sizeof(tail) - 1] = '\0';
	{
		size_t hl = strnlen(head, sizeof(head) - 1);
		size_t tl = strnlen(tail, sizeof(err->msg) - 1 - hl);

		memcpy(err->msg, head, hl);
		memcpy(err->msg + hl, tail, tl);
		err->msg[hl + tl] = '\0';
	}
}
