/* fuzz_allowlist: the USB port allow-list parser on arbitrary bytes (one .conf
 * file), then matching a few port paths against whatever rules it accepted.
 * Property: every rule it kept is a valid pattern. A violation aborts. */
#include <stdint.h>
#include <stdlib.h>

#include "config/allowlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ports[] = { "1-1", "1-1.2", "3-1.4.2.1", "", "12-3.10.1" };
	struct config_problems probs = { 0 };
	struct allowlist *al = allowlist_new();
	volatile int hits = 0;

	if (!al)
		return 0;
	allowlist_parse_buffer(al, "fuzz.conf", (const char *)data, size, &probs);
	for (size_t i = 0; i < al->n; i++)
		if (!allowlist_pattern_valid(al->v[i].pattern))
			abort();
	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
		hits += allowlist_permits(al, ports[i]);
	(void)hits;
	allowlist_free(al);
	config_problems_free(&probs);
	return 0;
}
