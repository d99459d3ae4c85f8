/* fuzz_sig: the .sig parser on hostile text. Whatever parses must format and
 * parse back to the same values (lower-case normal form). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artefacts/sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sig_file a, b;
	char *text = NULL;
	size_t len = 0;

	if (sig_parse(data, size, &a, NULL) != 0)
		return 0;
	if (sig_format(&a, &text, &len) != 0)
		return 0;
	if (sig_parse((const uint8_t *)text, len, &b, NULL) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	(void)sig_validate(&a, data, size, NULL, false, NULL);
	free(text);
	return 0;
}
