/* fuzz_ini: the INI loader and validator on arbitrary bytes.
 *
 * Loads the input as a configuration, reads every setting back (plain, per
 * family, as int and bool) and prints every problem, so a crash, leak or
 * undefined behaviour anywhere on that path is found. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	struct config_problems probs = { 0 };
	struct config *c = NULL;

	if (!devnull && !(devnull = fopen("/dev/null", "w")))
		abort();
	config_load_buffer("/fuzz/provisioner.ini", (const char *)data, size, NULL, &c, &probs);
	for (size_t i = 0; c && i < config_schema_len; i++) {
		const struct config_setting *s = &config_schema[i];

		if (s->overrides) {
			for (size_t f = 0; f < config_families_len; f++) {
				char sec[16];

				snprintf(sec, sizeof(sec), "family.%s", config_families[f]);
				fputs(config_get(c, sec, s->key), devnull);
			}
			continue;
		}
		fputs(config_get(c, s->section, s->key), devnull);
		fprintf(devnull, "%ld%d", config_get_int(c, s->section, s->key),
			config_get_bool(c, s->section, s->key));
		for (size_t f = 0; f < config_families_len; f++)
			fputs(config_get_for_family(c, config_families[f], s->section, s->key), devnull);
	}
	for (size_t i = 0; i < probs.n; i++)
		config_problem_print(devnull, &probs.v[i]);
	config_free(c);
	config_problems_free(&probs);
	return 0;
}
