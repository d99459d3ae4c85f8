/* vpi/recovery: what Raspberry Pi's recovery.bin does once the ROM runs it:
 * ask for config.txt and the EEPROM image, verify pieeprom.sig, write the SPI
 * EEPROM, program OTP, push metadata and reboot or halt as config.txt says
 * (shared/spec/rpiboot.md §4-§6, secure-boot-artefacts.md §2, §3, §6).
 * Device thread only. */
#ifndef RPI_SB_VPI_RECOVERY_H
#define RPI_SB_VPI_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vpi/bus.h"

/* secure-boot-artefacts.md §6.3 R10 / §9: whether recovery on a fused board
 * insists on a customer-signed pieeprom.sig is claimed by IM/SB only; we
 * follow them (refuse an unsigned one once the key hash is burned). */
#define VPI_GUESS_FUSED_REQUIRES_SIGNED_PIEEPROM 1
/* rpiboot.md §6 program_rpiboot_gpio: rpi-sb-provisioner reports that 2711
 * secure-boot provisioning fails without it on Pi 4B/400 ("Failed to set
 * RPIBOOT OTP gpio0"); CM4 needs none. */
#define VPI_GUESS_PI4_PUBKEY_NEEDS_GPIO 1
/* rpiboot.md §4.4 / rpi-sb-provisioner #200: after error code 24 we still push
 * the metadata (EEPROM_UPDATE=fail) and Done, then halt. */
#define VPI_GUESS_ERROR24_REPORTS 1
/* rpiboot.md §4.4 ADVANCED_BOOT is an OTP row whose layout is unknown: 0000e8e8
 * as observed, with (0x80|gpio) in bits 16..23 once an rpiboot GPIO is burnt. */
#define VPI_GUESS_ADVANCED_BOOT_BASE 0x0000e8e8u

/* The recovery switches of config.txt (§6); -1 = absent. */
struct vpi_recovery_config {
	long program_pubkey, revoke_devkey, program_jtag_lock, program_rpiboot_gpio;
	long eeprom_write_protect, erase_eeprom, recovery_reboot, set_reboot_order;
	long set_reboot_arg1, recovery_wait, recovery_metadata, uart_2ndstage;
};
void vpi_recovery_config_parse(const void *text, size_t len, struct vpi_recovery_config *c);

/* Run recovery on the stage-2 connection. enum vpi_next or -ENODEV. */
int vpi_recovery_run(struct vpi_fw *fw);

#endif
