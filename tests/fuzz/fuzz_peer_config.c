/* fuzz_peer_config: the importer of the peer's shell-style config on arbitrary
 * bytes, and a property of its output: whatever the input, the INI it writes
 * parses with no syntax error and no unknown key (bad values may remain; those
 * are for `config check` to report). A violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	struct config_problems probs = { 0 };
	struct config *c = NULL;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (!devnull && !(devnull = fopen("/dev/null", "w")))
		abort();
	f = open_memstream(&out, &len);
	if (!f)
		abort();
	config_import_peer("fuzz.conf", (const char *)data, size, f, devnull);
	if (fclose(f) != 0)
		abort();
	config_load_buffer("/fuzz/imported.ini", out, len, NULL, &c, &probs);
	for (size_t i = 0; i < probs.n; i++) {
		const struct config_problem *p = &probs.v[i];

		/* Problems from the text itself carry a line; syntax ones have no key,
		 * unknown keys say so. Neither may come from the importer's output. */
		if (p->line > 0 && (!p->key || strncmp(p->message, "unknown ", 8) == 0)) {
			config_problem_print(stderr, p);
			fputs(out, stderr);
			abort();
		}
	}
	config_free(c);
	config_problems_free(&probs);
	free(out);
	return 0;
}
