/* Fuzz target: the virtual Pi's own readers of outside bytes (vpi/eeprom_dev.c):
 * EEPROM section chain and FILE lookup, `.sig` text, the BCM2712 signature
 * blocks and the BCM2711 trailer, and the recovery config.txt parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vpi/eeprom_dev.h"
#include "vpi/recovery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "bootcode.bin", "bootconf.txt", "bootconf.sig",
					     "pubkey.bin", "bootsys" };
	struct vpi_ee_section *secs = NULL;
	struct vpi_recovery_config c;
	struct vpi_sig sig;
	uint8_t zero[32] = { 0 };
	char why[200];
	size_t n = 0;

	if (vpi_ee_parse(data, size, &secs, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			if ((uint64_t)secs[i].offset + 8 + secs[i].length > size)
				abort();
		free(secs);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const uint8_t *d;
		size_t dl;
		if (vpi_ee_file(data, size, names[i], &d, &dl) == 0 &&
		    (d < data || d + dl > data + size))
			abort();
	}
	vpi_sig_parse(data, size, &sig, why, sizeof(why));
	vpi_bootcode2712_check(data, size, zero, true, NULL, why, sizeof(why));
	vpi_bootcode2711_check(data, size, false, why, sizeof(why));
	vpi_recovery_config_parse(data, size, &c);
	(void)vpi_ee_config_int(data, size, "SIGNED_BOOT");
	return 0;
}
