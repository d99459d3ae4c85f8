/* vpi/bootloader: the second stage from bootfiles.bin (bootcode5.bin /
 * bootcode4.bin) booting a ramdisk over rpiboot: DDR files, bootmain,
 * config.txt, boot.img and boot.sig, signed-boot checks against the key in the
 * SPI EEPROM, then the fastboot gadget OS (shared/spec/rpiboot.md §5,
 * secure-boot-artefacts.md §5.4, §6). Device thread only. */
#ifndef RPI_SB_VPI_BOOTLOADER_H
#define RPI_SB_VPI_BOOTLOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vpi/bus.h"

struct vpi_board;

/* The chain checks of the EEPROM against OTP (R4, R5 of secure-boot §6.3) and
 * whether signed boot is on (§5.4). 0 or -EKEYREJECTED with @why. Also used by
 * the virtual first boot. *pubkey (264 bytes) is malloc'd when signed boot is
 * on. */
int vpi_bootloader_eeprom_chain(struct vpi_board *b, bool *signed_boot, uint8_t **pubkey,
				char *why, size_t whylen);
/* boot.img / boot.sig check with @pubkey (R7). 0 or -EKEYREJECTED with @why. */
int vpi_bootloader_check_boot_sig(const uint8_t *img, size_t img_len, const uint8_t *sig,
				  size_t sig_len, const uint8_t *pubkey, char *why, size_t whylen);

/* Run the bootloader stage. enum vpi_next or -ENODEV. */
int vpi_bootloader_run(struct vpi_fw *fw);

/* The fastboot gadget's USB identity (fastboot.md §1) */
void vpi_gadget_descriptor(struct vpi_board *b, struct vpi_usbdesc *d);

#endif
