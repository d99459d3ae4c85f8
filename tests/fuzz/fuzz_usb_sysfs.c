/* fuzz_usb_sysfs: discovery's parsing of a USB device's sysfs attributes on
 * arbitrary bytes. The input is split at newlines into the directory name,
 * busnum, devnum, devpath, idVendor, idProduct, manufacturer and serial
 * (missing fields are absent attributes). Properties of an accepted device:
 * its port is a valid topology path equal to the name, its role is what
 * usb_classify says, its serial is plain or empty. A violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "station/disc_usb.h"
#include "transport/usb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *field[8] = { 0 }, *p;
	struct usb_sysdev d;
	size_t nf = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (p = buf; nf < 8 && p; nf++) {
		field[nf] = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = '\0';
	}
	if (field[0] && usb_sysdev_parse(field[0], &(struct usb_sysattrs){
			.busnum = field[1], .devnum = field[2], .devpath = field[3],
			.idVendor = field[4], .idProduct = field[5], .manufacturer = field[6],
			.serial = field[7] }, &d) == 0) {
		if (!usb_port_path_valid(d.port) || strcmp(d.port, field[0]) != 0)
			abort();
		if (d.role != usb_classify(d.vid, d.pid, field[6]))
			abort();
		if (d.serial[0] && !usb_serial_plain(d.serial))
			abort();
	}
	free(buf);
	return 0;
}
