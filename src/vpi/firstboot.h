/* vpi/firstboot: the virtual first boot, the simulator's acceptance oracle.
 *
 * Powers the board on from its SPI EEPROM and storage (not USB boot mode) and
 * checks what the real chain checks: the EEPROM's stages and config against
 * the burned key hash (secure-boot-artefacts.md §4.2, §6.3 R1-R5), boot.img /
 * boot.sig on the boot partition against the key embedded in the EEPROM (R7),
 * LUKS2 unlock of the root partition with the device-derived key, the root
 * file system clean under `e2fsck -fn`, and its file tree equal to the gold
 * image's root (paths, types, modes, owners, sizes, contents, symlink targets,
 * xattrs), except the paths the station's per-board hooks changed, which
 * must equal the station's customised tree instead (vpi_board_power_on_expect).
 * Uses e2fsck, debugfs and mcopy (e2fsprogs, mtools). Call it on a
 * board that is not plugged into a bus (or whose firmware has booted). */
#ifndef RPI_SB_VPI_FIRSTBOOT_H
#define RPI_SB_VPI_FIRSTBOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vpi/board.h"

struct vpi_firstboot_report {
	bool pass;               /* every check below passed */
	bool eeprom_ok;          /* SPI stages, pubkey.bin vs OTP, bootconf.sig */
	bool signed_boot;        /* SIGNED_BOOT=1 or key hash burned */
	bool boot_ok;            /* boot.img (+ boot.sig when signed) or boot files */
	bool encrypted;          /* the root partition is LUKS2 */
	bool unlock_ok;          /* unlocked with the device-derived key (or plain) */
	bool fsck_ok;            /* e2fsck -fn exit 0 */
	bool tree_ok;            /* tree equal to the gold image's root */
	uint64_t entries_compared;
	uint64_t entries_expected; /* listed paths checked against the expected tree */
	char reason[512];        /* the first failure: what, where, why */
};

/* 0 when the checks ran (verdict in @r), -errno when they could not run
 * (no gold image, tools missing, I/O error). */
int vpi_board_power_on(struct vpi_board *b, const char *gold_image, struct vpi_firstboot_report *r);

/* The differences from the gold image's root the board may have: exactly
 * the listed paths (absolute in the root file system, "/" for its top), each
 * of which must be what it is under @tree (a directory on this host): absent
 * there = removed, so absent on the board too; present = the same type,
 * mode, owner and (files, symlinks) size and contents on the board. Listed
 * entries' extended attributes must be the gold image's or none (a host tree
 * cannot carry ext4 xattrs). Every path not listed must still equal the gold
 * image's. The oracle reads @tree itself (lstat, readlink, SHA-256). */
struct vpi_firstboot_expect {
	const char *tree;
	const char *const *paths;
	size_t npaths;
};

/* vpi_board_power_on() accepting @x's differences (@x NULL: none). */
int vpi_board_power_on_expect(struct vpi_board *b, const char *gold_image,
			      const struct vpi_firstboot_expect *x, struct vpi_firstboot_report *r);

#endif
