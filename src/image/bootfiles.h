/* bootfiles: the text edits the secure-boot and fde-only modes make to the
 * gold image's boot files (peer §4.2 steps 5-6), as pure functions so they
 * are tested without images. Any thread. */
#ifndef RPI_SB_IMAGE_BOOTFILES_H
#define RPI_SB_IMAGE_BOOTFILES_H

#include <stddef.h>

#include "artefacts/art_err.h"

/* cmdline.txt: drop root=…, init=…, rootfstype=…, rootwait and quiet (the
 * cryptroot initramfs mounts /sysroot itself). Words are joined by single
 * blanks; the result ends with one newline. Result malloc'd. */
int bootfiles_cmdline_rewrite(const char *in, size_t len, char **out, struct art_err *err);

/* config.txt: comment out `auto_initramfs=` and earlier `initramfs` lines,
 * append `initramfs initramfs8`, and make sure `lock_device_private_key=1`
 * applies under [all]. A line setting lock_device_private_key to anything
 * but 1 is a conflict: -EINVAL naming the line. Result malloc'd. */
int bootfiles_config_rewrite(const char *in, size_t len, char **out, struct art_err *err);

/* The config.txt that sits next to boot.img on the provisioned boot
 * partition (the peer's boot_ramdisk_config.txt). */
extern const char bootfiles_ramdisk_config[];

/* The kernel's name for the target storage: mmcblk0 for sd and emmc,
 * nvme0n1 for nvme, NULL otherwise. */
const char *bootfiles_storage_device(const char *storage);

#endif
