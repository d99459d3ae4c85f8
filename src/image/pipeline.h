/* pipeline: turn a gold image into what gets flashed, per mode, through the
 * content-addressed cache (cache.h).
 *
 *   secure-boot / fde-only (Pi 4/5):
 *     boot entry   bootfs.simg: a FAT32 partition image (sized as the gold
 *                  image's boot partition, MiB-rounded) holding boot.img,
 *                  boot.sig (secure-boot only) and config.txt (boot_ramdisk=1,
 *                  uart_2ndstage=1); boot.img (and boot.sig) also kept apart.
 *                  boot.img = FAT of the gold boot files with cmdline.txt and
 *                  config.txt rewritten and the augmented cryptroot
 *                  initramfs as initramfs8, pruned like `rpi-make-boot-image
 *                  -b pi<family> -a 64`.
 *     rootfs entry rootfs.simg: the gold root file system fitted to the LUKS
 *                  container (rootfs.h); built per container size.
 *   fde-only on Zero 2 W: bootfs.simg is a FAT32 with the plain boot files,
 *                  cmdline stripped, plus initramfs8 (no boot.img).
 *   naked:        disk.simg: the whole image, only the MBR, non-zero gaps,
 *                  allocated FAT clusters and used ext4 blocks (flashed after
 *                  an erase, so the rest is don't-care).
 *
 * Each entry also holds `manifest` (key=value sizes). Called from worker
 * threads; boards needing the same entry wait for one build. */
#ifndef RPI_SB_IMAGE_PIPELINE_H
#define RPI_SB_IMAGE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "artefacts/art_err.h"
#include "image/cache.h"
#include "image/simg.h"

enum pipeline_mode { PIPELINE_SECURE_BOOT, PIPELINE_FDE_ONLY, PIPELINE_NAKED };

/* Write the boot.sig for @boot_img to @sig_out (pipeline_sign_with_signer
 * adapts artefacts/sign.h). */
typedef int (*pipeline_sign_fn)(void *usr, const char *boot_img, const char *sig_out,
				struct art_err *err);
/* Called with the extracted, rewritten boot tree before boot.img is made
 * (the `*-bootfs-mounted` hook point): changes made under @boot_dir are in
 * boot.img. */
typedef int (*pipeline_tree_fn)(void *usr, const char *boot_dir, struct art_err *err);
/* Called with the root file system as a plain ext4 image file, already
 * fitted to the container, before it becomes rootfs.simg (the
 * `*-rootfs-mounted` hook point without a mount: edit it with debugfs -w,
 * e2tools or libext2fs; it must not be resized). */
typedef int (*pipeline_root_fn)(void *usr, const char *ext4_image, struct art_err *err);

struct pipeline_inputs {
	enum pipeline_mode mode;
	const char *gold;		/* .img, .img.zst or .img.xz */
	const char *cache_dir;
	const char *family;		/* "4", "5", "2W" */
	const char *storage;		/* sd | emmc | nvme */
	const char *cipher;		/* in the key only (the device formats LUKS) */
	const char *initramfs;		/* cryptroot initramfs (secure-boot, fde-only) */
	const char *const *modules;	/* NULL: the peer's kernel_modules.list */
	size_t nmodules;
	const char *key_fingerprint;	/* signing key identity (secure-boot) */
	pipeline_sign_fn sign;
	void *sign_usr;
	pipeline_tree_fn on_boot_tree;
	void *tree_usr;
	const char *tree_id;		/* identity of what on_boot_tree does (hook hash) */
	pipeline_root_fn on_root_image;
	void *root_usr;
	const char *root_id;		/* identity of what on_root_image does */
	const char *settings;		/* any other setting that changes the output */
	uint64_t container_bytes;	/* >0: also build rootfs.simg for this container */
	time_t timestamp;		/* FAT time stamps; 0: each file's time in the gold image */
};

struct pipeline_outputs {
	char image_sha256[CACHE_KEY_HEX];	/* of the gold file as configured */
	char *boot_entry;		/* cache entry dirs (NULL when not built) */
	char *rootfs_entry;
	char *disk_entry;
	char *bootfs_simg, *boot_img, *boot_sig;	/* boot_sig NULL outside secure-boot */
	char *rootfs_simg;
	char *disk_simg;
	uint64_t bootfs_bytes;		/* expanded bootfs.simg: `oem partapp <dev> 0c` size */
	uint64_t rootfs_bytes;		/* expanded rootfs.simg (= container, block-rounded) */
	uint64_t disk_bytes;		/* expanded disk.simg */
	uint64_t bootfs_file_bytes, rootfs_file_bytes, disk_file_bytes;	/* sparse files */
	unsigned boot_img_fat_bits;
	bool boot_hit, rootfs_hit, disk_hit;
	char warnings[512];
};

int image_pipeline_build(const struct pipeline_inputs *in, struct pipeline_outputs *out,
			 struct art_err *err);
void pipeline_outputs_free(struct pipeline_outputs *out);

/* naked mode with a per-board edit (the peer runs naked-provisioner-*-mounted
 * hooks per device): the used blocks of the gold image are copied to
 * @work_dir/disk.img (mode 0600), @edit changes it (a whole-disk image file),
 * and out->disk_simg = @work_dir/disk.simg is built from it; the copy is then
 * deleted. Not cached: the result may hold per-board secrets; the caller
 * deletes disk.simg after flashing. */
int image_pipeline_naked_custom(const struct pipeline_inputs *in, pipeline_root_fn edit,
				void *usr, const char *work_dir, struct pipeline_outputs *out,
				struct art_err *err);

/* Per-board customisation: the `*-bootfs-mounted` and `*-rootfs-mounted`
 * hooks get real directory trees of the board's own copy, in every mode.
 *
 *   pipeline_board_open()   after image_pipeline_build() (@base: its
 *                           outputs, the cached un-customised artefacts):
 *                           extracts the boot tree (naked: the gold boot
 *                           partition; Pi 4/5 LUKS modes: boot.img's files;
 *                           Zero 2 W fde-only: the boot partition) and the
 *                           root tree (the gold root file system, owners and
 *                           modes kept) into a private work dir (0700) under
 *                           @parent_dir, and snapshots both.
 *   ...the caller runs the hooks on the two directories...
 *   pipeline_board_commit() @out = @base, except what the trees' changes
 *                           need: LUKS modes: a per-board bootfs.simg (and
 *                           boot.img, boot.sig, signed again) when the boot
 *                           tree changed; naked: a per-board disk.simg when
 *                           either tree changed.
 *   pipeline_board_commit_root()  LUKS modes, with the container's cached
 *                           rootfs outputs: a per-board rootfs.simg with the
 *                           root tree's changes written in (debugfs -w) when
 *                           it changed; else a copy of @base_root.
 *   pipeline_board_close()  deletes the work dir and what was built there
 *                           (call it after flashing, and after anything that
 *                           checks the board against the root tree).
 * Untouched trees cost nothing more than their extraction. */
struct pipeline_board;

struct pipeline_board_stats {
	bool boot_changed, root_changed;
	size_t boot_changes, root_changes;	/* entries added, removed or changed */
	double open_s, commit_s, root_s;	/* wall time of each step */
};

int pipeline_board_open(const struct pipeline_inputs *in, const struct pipeline_outputs *base,
			const char *parent_dir, struct pipeline_board **out, struct art_err *err);
const char *pipeline_board_boot_dir(const struct pipeline_board *b);
const char *pipeline_board_root_dir(const struct pipeline_board *b);
int pipeline_board_commit(struct pipeline_board *b, struct pipeline_outputs *out,
			  struct art_err *err);
int pipeline_board_commit_root(struct pipeline_board *b, const struct pipeline_outputs *base_root,
			       struct pipeline_outputs *out, struct art_err *err);
const struct pipeline_board_stats *pipeline_board_stats(const struct pipeline_board *b);
/* After pipeline_board_commit(): the root tree's entries the hooks added,
 * changed or removed, as absolute paths in the root file system ("/" for its
 * top), sorted; *@n of them (0 when the root is untouched). What each should
 * now be is under pipeline_board_root_dir() (absent there: removed). Valid
 * until the next commit or pipeline_board_close(). */
const char *const *pipeline_board_root_changes(const struct pipeline_board *b, size_t *n);
void pipeline_board_close(struct pipeline_board *b);

/* A pipeline_sign_fn over a struct signer (artefacts/sign.h): @usr is the
 * struct signer *. */
int pipeline_sign_with_signer(void *usr, const char *boot_img, const char *sig_out,
			      struct art_err *err);

const char *pipeline_mode_name(enum pipeline_mode m);
int pipeline_mode_parse(const char *s, enum pipeline_mode *m);

#endif
