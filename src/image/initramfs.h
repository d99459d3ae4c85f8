/* initramfs: make the cryptroot initramfs (`initramfs8`) fit the gold image,
 * as the peer's provisioner does (peer §4.2 step 4): read the pre-boot
 * authentication initramfs (cpio newc, any compression libarchive reads),
 * drop its usr/lib/modules, add the kernel modules of every kernel flavour
 * found in the image's root file system (/usr/lib/modules/<ver>/ or
 * /lib/modules/<ver>/, read through libext2fs) that kernel_modules.list names
 * plus their modules.dep dependencies and the modules.* index files, point
 * usr/bin/init_cryptroot.sh at the target device, and write cpio newc + zstd
 * level 6. Streams entry by entry: memory does not grow with the archive.
 * Any thread. */
#ifndef RPI_SB_IMAGE_INITRAMFS_H
#define RPI_SB_IMAGE_INITRAMFS_H

#include <stddef.h>

#include "artefacts/art_err.h"
#include "image/ext4.h"

/* The peer's kernel_modules.list. */
extern const char *const initramfs_default_modules[];
extern const size_t initramfs_default_modules_count;

#define INITRAMFS_CRYPTROOT_SCRIPT "usr/bin/init_cryptroot.sh"

struct initramfs_opts {
	const char *in_path;		/* the cryptroot initramfs */
	const char *out_path;		/* written (created/truncated) */
	struct ext4_fs *root;		/* the gold image's root file system */
	const char *const *modules;	/* NULL: initramfs_default_modules */
	size_t nmodules;
	const char *device;		/* "mmcblk0" (no change) or "nvme0n1" */
};

struct initramfs_report {
	unsigned flavours_found;	/* kernel version directories seen */
	unsigned flavours_ok;		/* those with at least one listed module */
	unsigned modules_added;		/* .ko files, all flavours */
	unsigned replacements;		/* mmcblk0 occurrences replaced */
	char flavours[256];		/* "6.6.51+rpt-rpi-2712 6.6.51+rpt-rpi-v8" (truncated) */
	char warnings[512];		/* modules missing per flavour (truncated) */
};

/* Fails (-ENOENT) when no flavour provided any listed module, or when the
 * initramfs lacks usr/bin/init_cryptroot.sh. */
int initramfs_augment(const struct initramfs_opts *o, struct initramfs_report *rep,
		      struct art_err *err);

#endif
