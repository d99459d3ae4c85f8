/* fuzz_eeprom: the EEPROM image parser and editor on hostile images.
 *
 * Input: byte 0 picks the chip (even: BCM2711 512 KiB, odd: BCM2712 2 MiB),
 * bytes 1-2 (LE) say how many of the following bytes go at offset 0; the rest
 * goes at offset 0x10000 (partition A, where the editable FILEs live); every
 * other byte is 0xFF (erased flash). A parsed image is then edited and must
 * still load: edits never break the chain. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "artefacts/eeprom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_reparse(const struct eeprom *ee)
{
	struct eeprom again;

	if (eeprom_load_buffer(&again, ee->data, ee->size, NULL) != 0)
		abort();	/* an edit produced an image we cannot read back */
	eeprom_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t cfg[] = "[all]\nBOOT_UART=1\nSIGNED_BOOT=1\n";
	static uint8_t key[264], code[600];
	size_t img_size, head, tail;
	struct eeprom ee;
	const uint8_t *p;
	uint8_t *img;
	size_t len;

	if (size < 3)
		return 0;
	img_size = (data[0] & 1) ? EEPROM_SIZE_2712 : EEPROM_SIZE_2711;
	head = (size_t)data[1] | (size_t)data[2] << 8;
	data += 3;
	size -= 3;
	if (head > size)
		head = size;
	tail = size - head;
	if (tail > img_size - EEPROM_RO_SIZE)
		tail = img_size - EEPROM_RO_SIZE;
	if (head > EEPROM_RO_SIZE)
		head = EEPROM_RO_SIZE;
	img = malloc(img_size);
	if (!img)
		return 0;
	memset(img, 0xFF, img_size);
	memcpy(img, data, head);
	memcpy(img + EEPROM_RO_SIZE, data + head, tail);
	(void)eeprom_is_ab(img, img_size);
	if (eeprom_load_buffer(&ee, img, img_size, NULL) == 0) {
		int edited = 0;

		eeprom_bootcode_get(&ee, &p, &len);
		(void)eeprom_file_get(&ee, "bootconf.txt", &p, &len);
		memset(key, 0x5a, sizeof(key));
		/* Each edit re-parses the chain itself; one independent re-load at
		 * the end proves the edited bytes are a valid image. */
		edited |= eeprom_file_replace(&ee, "bootconf.txt", cfg, sizeof(cfg) - 1, NULL) == 0;
		edited |= eeprom_file_replace(&ee, "pubkey.bin", key, sizeof(key), NULL) == 0;
		edited |= eeprom_file_put(&ee, "fuzz.txt", cfg, 8, NULL) == 0;
		edited |= eeprom_bootcode_replace(&ee, code, sizeof(code), NULL) == 0;
		edited |= eeprom_set_timestamp(&ee, 1700000000, NULL) == 0;
		if (edited)
			must_reparse(&ee);
		eeprom_free(&ee);
	}
	free(img);
	return 0;
}
