/* fuzz_rpiboot_meta: the rpiboot metadata parsers (src/proto/rpiboot_meta.c).
 * First byte picks the parser: even = `*KEY*VALUE` pushes (the rest split on
 * '\n', one push per line), odd = a metadata JSON document. Whatever is
 * accepted must serialise and parse back to the same record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/rpiboot_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpiboot_metadata md, back;
	const char *p, *end;
	char *json = NULL;

	if (size < 1 || size > 65536)
		return 0;
	rpiboot_metadata_init(&md);
	rpiboot_metadata_init(&back);
	p = (const char *)data + 1;
	end = (const char *)data + size;
	if ((data[0] & 1) == 0) {
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

			rpiboot_metadata_push(&md, p, n);
			p += n + 1;
		}
	} else {
		rpiboot_metadata_from_json(&md, p, (size_t)(end - p));
	}
	if (rpiboot_metadata_to_json(&md, &json) == 0) {
		if (rpiboot_metadata_from_json(&back, json, strlen(json)) != 0)
			abort(); /* our own output must parse */
		if (back.serial != md.serial || back.boardrev != md.boardrev ||
		    strcmp(back.factory_uuid, md.factory_uuid) != 0 || back.n_unknown != md.n_unknown)
			abort();
	}
	free(json);
	rpiboot_metadata_clear(&back);
	rpiboot_metadata_clear(&md);
	return 0;
}
