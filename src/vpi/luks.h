/* vpi/luks: LUKS2 containers on the virtual Pi's storage, and the user-space
 * dm-crypt that stands in for /dev/mapper/<name> on a kernel without
 * device-mapper. One object belongs to one thread at a time. */
#ifndef RPI_SB_VPI_LUKS_H
#define RPI_SB_VPI_LUKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vpi/board.h"
#include "vpi/storage.h"

#define VPI_LUKS_DEFAULT_CIPHER "aes-xts-plain64"
#define VPI_LUKS_VK_BYTES 64u          /* native path: 512-bit volume key always (spec §4) */
#define VPI_LUKS_SECTOR 512u           /* native path: LUKS2 sector size 512 */
#define VPI_LUKS_PASSPHRASE_LEN 64u    /* HMAC-SHA256 as lowercase hex (spec §4 step 3) */

/* Simulator deviation VPI_DEVIATION_FAST_PBKDF (doc/virtual-pi-gadget.md):
 * the real board benchmarks argon2id (~1 GiB, seconds per unlock). The
 * simulator uses argon2id with a fixed small cost unless env
 * RPI_SB_VPI_PBKDF=real or vpi_luks_set_real_pbkdf(true). */
void vpi_luks_set_real_pbkdf(bool real);

struct vpi_luks_format_result {
	bool cli_fallback;             /* formatted the way the cryptsetup CLI fallback would */
	uint64_t data_offset;          /* bytes from the partition start */
};

/* LUKS2-format the byte range [@part_off, +@part_size) of @s with @pass in
 * keyslot 0, label @label, cipher @cipher (NULL = aes-xts-plain64), random
 * volume key (@vk_out receives it when not NULL). Temporary header files go to
 * @tmpdir. 0 or -errno (-ENOSPC partition too small, -EINVAL bad cipher). */
int vpi_luks_format(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
		    const char *pass, size_t pass_len, const char *label, const char *cipher,
		    const char *tmpdir, uint8_t vk_out[VPI_LUKS_VK_BYTES],
		    struct vpi_luks_format_result *res);

/* oem cryptsetpassword: replace keyslot 1 with @user (authorised by @pass,
 * the derived key), or destroy slot 1 when @user_len is 0. The header is
 * written back to the partition. -EPERM when @pass does not unlock. */
int vpi_luks_set_user_passphrase(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
				 const char *pass, size_t pass_len, const char *user, size_t user_len,
				 const char *tmpdir);

/* An opened container: the plaintext view of its data segment. */
struct vpi_luks_map;

/* Unlock with @pass (any keyslot). -EPERM wrong passphrase, -EINVAL not LUKS2,
 * -EOPNOTSUPP a cipher the simulator cannot run in user space. */
int vpi_luks_open(struct vpi_storage *s, uint64_t part_off, uint64_t part_size,
		  const char *pass, size_t pass_len, const char *tmpdir, struct vpi_luks_map **out);
void vpi_luks_close(struct vpi_luks_map *m);
uint64_t vpi_luks_size(const struct vpi_luks_map *m);          /* mapper device size, bytes */
uint64_t vpi_luks_data_offset(const struct vpi_luks_map *m);   /* from the partition start */
/* Plaintext I/O at offsets of the mapper device (any alignment: partial
 * sectors are read, decrypted, patched and re-encrypted like the page cache). */
int vpi_luks_write(struct vpi_luks_map *m, uint64_t off, const void *buf, size_t len);
int vpi_luks_fill(struct vpi_luks_map *m, uint64_t off, uint64_t len, uint32_t word);
int vpi_luks_read(struct vpi_luks_map *m, uint64_t off, void *buf, size_t len);
/* Encrypt/decrypt whole sectors with the aes-xts-plain64 rule: IV = 512-byte
 * sector number counted from the data segment start (machine-facts §4). */
int vpi_luks_xts(const uint8_t vk[VPI_LUKS_VK_BYTES], bool encrypt, uint64_t first_sector,
		 const uint8_t *in, uint8_t *out, size_t len);

/* Board level: the passphrase the board derives for its storage (spec §4):
 * HMAC-SHA256 by the fwcrypto key over the storage hardware id bytes, as 64
 * lowercase hex characters. -ENOKEY when `oem fwcrypto init` never ran. */
int vpi_luks_board_passphrase(struct vpi_board *b, char pass[VPI_LUKS_PASSPHRASE_LEN + 1]);
/* Does @key (NULL = the board's derived passphrase) unlock @partition
 * ("mmcblk0p2")? 0 yes, -EPERM refused, -ENOENT no such partition, -EINVAL
 * no LUKS2 header there. */
int vpi_luks_unlock_check(struct vpi_board *b, const char *partition, const void *key,
			  size_t key_len);

/* Decrypting reader for the virtual first boot: unlock @partition with the
 * board's derived key and read the plaintext. */
struct vpi_luks_reader;
int vpi_luks_open_reader(struct vpi_board *b, const char *partition, struct vpi_luks_reader **out);
uint64_t vpi_luks_reader_size(const struct vpi_luks_reader *r);
int vpi_luks_reader_read(struct vpi_luks_reader *r, uint64_t off, void *buf, size_t len);
void vpi_luks_reader_close(struct vpi_luks_reader *r);

#endif
