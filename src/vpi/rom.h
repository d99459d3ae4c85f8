/* vpi/rom: a board's firmware main loop and its boot ROM in USB device boot
 * mode (shared/spec/rpiboot.md §1-§3, §7; secure-boot-artefacts.md §4), plus
 * the device side of the stage-2 file-server protocol (rpiboot.md §4) that
 * recovery and bootloader use. Runs on the board's device thread only. */
#ifndef RPI_SB_VPI_ROM_H
#define RPI_SB_VPI_ROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vpi/bus.h"

/* Named guesses (doc/virtual-pi.md). */
/* rpiboot.md §11: the 2712 ROM iSerialNumber was not determined; 3 is inferred. */
#define VPI_GUESS_2712_ROM_ISERIAL 3
/* rpiboot.md §1.1/§11: a 2712 stage 2 shows "not 0/3"; we use 4 like the 2711. */
#define VPI_GUESS_2712_STAGE2_ISERIAL 4
/* rpiboot.md §1.2/§11: "BCM2712 Boot" inferred; the stage-2 serial string format is
 * not determined: we show the 8-hex ROM serial in both stages. */
#define VPI_GUESS_2712_PRODUCT "BCM2712 Boot"
/* rpiboot.md §3.3/§11: the ROM's size limit was not determined; the signing tool's
 * 110 KiB cap is the practical bound. */
#define VPI_GUESS_ROM_MAX_STAGE2 112640u
/* rpiboot.md §7.1: the ROM stays attached "more than the host's 1 s status delay";
 * we wait this long for the status read before starting stage 2 anyway. */
#define VPI_GUESS_ROM_STATUS_WAIT_MS 2000u
/* rpiboot.md §7.1/§11: whether the ROM checks announce(N) against BootMessage.length
 * is not determined; we refuse a mismatch like a corrupt transfer. */
#define VPI_GUESS_ROM_CHECKS_LENGTH 1
/* secure-boot-artefacts.md §4.2: stand-ins carry no Raspberry Pi block (no RPi
 * key); the simulated 2712 ROM runs them without one, customer rules unchanged. */
#define VPI_GUESS_STANDIN_RPI_BLOCK 0
/* rpiboot.md §7.1: stage 2 must answer within the host's 20 s; it waits for the
 * host's next read at most this long before giving the session up. */
#define VPI_STAGE2_HOST_WAIT_MS 60000u

enum vpi_stage2_role { VPI_ROLE_RECOVERY, VPI_ROLE_BOOTLOADER };
/* What a stage does when it ends. */
enum vpi_next { VPI_NEXT_REBOOT = 0, VPI_NEXT_HALT = 1 };

/* The device thread body: power on, ROM, stages, reboots, until unplugged. */
void vpi_fw_run(struct vpi_fw *fw);

/* One ROM session: enumerate, take BootMessage + image, verify. 0 with the
 * accepted image in fw->stage2 and its role, or -ENODEV (unplugged) or
 * -EKEYREJECTED (refused: the ROM hangs until unplugged, as the real one). */
int vpi_rom_run(struct vpi_fw *fw, enum vpi_stage2_role *role);

/* Stage-2 file client (device side of rpiboot.md §4). */
int vpi_s2_enumerate(struct vpi_fw *fw);
/* GetFileSize @name: 0 with *size (0 = missing), or -errno. */
int vpi_s2_size(struct vpi_fw *fw, const char *name, uint32_t *size);
/* GetFileSize then ReadFile: *data malloc'd (NULL, *len 0 when missing). */
int vpi_s2_get(struct vpi_fw *fw, const char *name, uint8_t **data, size_t *len);
/* Metadata push "*KEY*VALUE" as a GetFileSize (§4.4). */
int vpi_s2_meta(struct vpi_fw *fw, const char *key, const char *value);
/* Done (command 2) carrying a stale name, as observed (§4.6). */
int vpi_s2_done(struct vpi_fw *fw, const char *stale_name);
/* The hang that a stall fault or a refusal causes, if the current phase says so. */
int vpi_fw_check_stall(struct vpi_fw *fw);

#endif
