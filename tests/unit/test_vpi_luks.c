/* test_vpi_luks: LUKS2 on a partition of the virtual Pi's storage: format and
 * unlock with the device-derived key, a wrong key refused, the header readable
 * by cryptsetup, the volume key equal to `cryptsetup luksDump
 * --dump-volume-key`, and the user-space aes-xts-plain64 equal to an
 * independent decrypt with OpenSSL (dm-crypt's IV rule). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vpi/board.h"
#include "vpi/luks.h"
#include "vpi/storage.h"

struct fx {
	char dir[64];
	struct vpi_board *b;
	struct vpi_storage *s;
	uint64_t p2_start, p2_size;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vpi_board_opts o;
	unsigned pn;

	vpi_board_opts_init(&o);
	o.faults.storage_bytes = 64u << 20;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vpi-luks-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(vpi_board_open("pi5", f->dir, &o, &f->b), 0);
	assert_int_equal(vpi_storage_open_board(f->b, &f->s), 0);
	assert_int_equal(vpi_storage_size(f->s), 64u << 20);
	assert_int_equal(vpi_storage_mbr_init(f->s, 7), 0);
	assert_int_equal(vpi_storage_mbr_append(f->s, 0x0c, 4u << 20), 0);
	assert_int_equal(vpi_storage_mbr_append(f->s, 0x83, 0), 0);
	assert_int_equal(vpi_storage_resolve(f->s, "mmcblk0p2", &f->p2_start, &f->p2_size, &pn), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	vpi_storage_close(f->s);
	vpi_board_close(f->b);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void write_file(const char *path, const void *p, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, len, fp), len);
	fclose(fp);
}

/* Copy the partition out of storage.img into its own file (the oracle's input). */
static void extract_p2(struct fx *f, const char *path)
{
	uint8_t *buf = malloc(f->p2_size);
	assert_non_null(buf);
	assert_int_equal(vpi_storage_pread(f->s, f->p2_start, buf, f->p2_size), 0);
	write_file(path, buf, f->p2_size);
	free(buf);
}

static void test_key_needs_fwcrypto(void **state)
{
	struct fx *f = *state;
	char pass[VPI_LUKS_PASSPHRASE_LEN + 1], again[VPI_LUKS_PASSPHRASE_LEN + 1];

	assert_int_equal(vpi_luks_board_passphrase(f->b, pass), -ENOKEY);
	assert_int_equal(vpi_otp_fwcrypto_init(f->b), 0);
	assert_int_equal(vpi_luks_board_passphrase(f->b, pass), 0);
	assert_int_equal(strlen(pass), 64);
	for (int i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", pass[i]));
	assert_int_equal(vpi_luks_board_passphrase(f->b, again), 0);
	assert_string_equal(pass, again);   /* deterministic per board */
}

static void test_format_unlock_wrong_key_oracle(void **state)
{
	struct fx *f = *state;
	char pass[VPI_LUKS_PASSPHRASE_LEN + 1], path[128], cmd[512], line[512], mk[300] = "";
	uint8_t vk[VPI_LUKS_VK_BYTES], pt[8192], back[8192], ct[8192], dec[8192];
	struct vpi_luks_format_result res;
	struct vpi_luks_map *m = NULL;
	struct vpi_luks_reader *r = NULL;
	FILE *p;

	assert_int_equal(vpi_otp_fwcrypto_init(f->b), 0);
	assert_int_equal(vpi_luks_board_passphrase(f->b, pass), 0);
	assert_int_equal(vpi_luks_format(f->s, f->p2_start, f->p2_size, pass, 64, "root", NULL,
					 f->dir, vk, &res), 0);
	assert_false(res.cli_fallback);
	assert_int_equal(res.data_offset, 16u << 20);

	/* Right key (derived), wrong key refused. */
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p2", NULL, 0), 0);
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p2", "not-the-key", 11), -EPERM);
	pass[0] = pass[0] == '0' ? '1' : '0';
	assert_int_equal(vpi_luks_open(f->s, f->p2_start, f->p2_size, pass, 64, f->dir, &m), -EPERM);
	assert_null(m);
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p1", NULL, 0), -EINVAL);   /* no LUKS */
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p3", NULL, 0), -ENOENT);

	/* Write through the mapping: aligned and unaligned. */
	assert_int_equal(vpi_luks_board_passphrase(f->b, pass), 0);
	assert_int_equal(vpi_luks_open(f->s, f->p2_start, f->p2_size, pass, 64, f->dir, &m), 0);
	assert_int_equal(vpi_luks_size(m), f->p2_size - (16u << 20));
	for (size_t i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(vpi_luks_write(m, 0, pt, sizeof(pt)), 0);
	assert_int_equal(vpi_luks_write(m, 1000, "hello, world", 12), 0);
	memcpy(pt + 1000, "hello, world", 12);
	assert_int_equal(vpi_luks_read(m, 0, back, sizeof(back)), 0);
	assert_memory_equal(pt, back, sizeof(pt));
	assert_int_equal(vpi_luks_read(m, 999, back, 14), 0);
	assert_memory_equal(pt + 999, back, 14);
	assert_int_equal(vpi_luks_write(m, vpi_luks_size(m) - 4, pt, 8), -ENOSPC);
	vpi_luks_close(m);

	/* The reader the virtual first boot uses sees the same plaintext. */
	assert_int_equal(vpi_luks_open_reader(f->b, "mmcblk0p2", &r), 0);
	assert_int_equal(vpi_luks_reader_size(r), f->p2_size - (16u << 20));
	assert_int_equal(vpi_luks_reader_read(r, 0, back, sizeof(back)), 0);
	assert_memory_equal(pt, back, sizeof(pt));
	vpi_luks_reader_close(r);

	/* Independent decrypt (OpenSSL): IV = 512-byte sector number from the data segment. */
	assert_int_equal(vpi_storage_pread(f->s, f->p2_start + (16u << 20), ct, sizeof(ct)), 0);
	assert_memory_not_equal(ct, pt, 512);
	for (unsigned sec = 0; sec < sizeof(ct) / 512; sec++) {
		uint8_t iv[16] = { (uint8_t)sec };
		EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
		int outl = 0;
		assert_int_equal(EVP_DecryptInit_ex(c, EVP_aes_256_xts(), NULL, vk, iv), 1);
		assert_int_equal(EVP_DecryptUpdate(c, dec + 512 * sec, &outl, ct + 512 * sec, 512), 1);
		assert_int_equal(outl, 512);
		EVP_CIPHER_CTX_free(c);
	}
	assert_memory_equal(dec, pt, sizeof(pt));
	/* And the helper agrees on a single sector. */
	assert_int_equal(vpi_luks_xts(vk, false, 3, ct + 3 * 512, dec, 512), 0);
	assert_memory_equal(dec, pt + 3 * 512, 512);

	/* Oracle: cryptsetup reads the header and dumps the same volume key. */
	snprintf(path, sizeof(path), "%s/p2.img", f->dir);
	extract_p2(f, path);
	snprintf(cmd, sizeof(cmd), "%s/pass", f->dir);
	write_file(cmd, pass, 64);
	snprintf(cmd, sizeof(cmd), "cryptsetup luksDump %s | grep -q 'Label:.*root'", path);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd),
		 "cryptsetup luksDump --dump-volume-key --batch-mode --key-file %s/pass %s 2>&1",
		 f->dir, path);
	p = popen(cmd, "r");
	assert_non_null(p);
	bool in_mk = false;
	while (fgets(line, sizeof(line), p)) {
		char *s = line;
		if (strncmp(line, "MK dump:", 8) == 0) {
			in_mk = true;
			s = line + 8;
		} else if (!in_mk || (line[0] != '\t' && line[0] != ' ')) {
			in_mk = false;
			continue;
		}
		for (size_t l = strlen(mk); *s && l < sizeof(mk) - 1; s++)
			if (strchr("0123456789abcdef", *s)) {
				mk[l++] = *s;
				mk[l] = '\0';
			}
	}
	assert_int_equal(pclose(p), 0);
	char want[2 * VPI_LUKS_VK_BYTES + 1];
	for (unsigned i = 0; i < VPI_LUKS_VK_BYTES; i++)
		snprintf(want + 2 * i, 3, "%02x", vk[i]);
	assert_string_equal(mk, want);
	/* The wrong passphrase is refused by cryptsetup too. */
	snprintf(cmd, sizeof(cmd), "printf wrong | cryptsetup open --test-passphrase --key-file - %s 2>/dev/null",
		 path);
	assert_int_not_equal(system(cmd), 0);
}

static void test_adiantum_formats_like_cli_fallback(void **state)
{
	struct fx *f = *state;
	char pass[VPI_LUKS_PASSPHRASE_LEN + 1];
	struct vpi_luks_format_result res;
	struct vpi_luks_map *m = NULL;
	int rc;

	assert_int_equal(vpi_otp_fwcrypto_init(f->b), 0);
	assert_int_equal(vpi_luks_board_passphrase(f->b, pass), 0);
	rc = vpi_luks_format(f->s, f->p2_start, f->p2_size, pass, 64, "root",
			     "xchacha12,aes-adiantum-plain64", f->dir, NULL, &res);
	if (access("/dev/mapper/control", W_OK) != 0 || rc) {
		/* Without device-mapper libcryptsetup cannot wrap Adiantum keyslots
		 * (doc/virtual-pi-gadget.md): cryptinit then answers "Cryptsetup failed". */
		assert_true(rc < 0);
		return;
	}
	assert_true(res.cli_fallback);
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p2", NULL, 0), 0);
	assert_int_equal(vpi_luks_open(f->s, f->p2_start, f->p2_size, pass, 64, f->dir, &m), -EOPNOTSUPP);
}

static void test_bad_cipher_and_small_partition(void **state)
{
	struct fx *f = *state;
	struct vpi_luks_format_result res;

	assert_int_equal(vpi_luks_format(f->s, f->p2_start, f->p2_size, "x", 1, "root", "aes", f->dir,
					 NULL, &res), -EINVAL);
	/* 4 MiB p1 cannot hold the 16 MiB LUKS2 metadata area. */
	assert_true(vpi_luks_format(f->s, 4u << 20, 4u << 20, "x", 1, "root", NULL, f->dir, NULL, &res) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_needs_fwcrypto, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_unlock_wrong_key_oracle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adiantum_formats_like_cli_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_cipher_and_small_partition, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
