/* Test-side helpers for the virtual Pi tests: fixtures, signing with the
 * example key (mbedtls, never the host's signer), a test-side EEPROM editor
 * and a minimal rpiboot host driver (never src/proto). Test thread only. */
#ifndef RPI_SB_TESTS_VPI_TESTLIB_H
#define RPI_SB_TESTS_VPI_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct transport;
struct vpi_bus;

/* malloc'd path of a file in shared/fixtures/rpi-firmware. */
char *tl_fixture(const char *name);
/* Read a whole file (aborts the test on failure). */
uint8_t *tl_slurp(const char *path, size_t *len);
uint8_t *tl_slurp_fixture(const char *name, size_t *len);
/* Fresh empty temp dir (malloc'd); tl_rmrf removes it. */
char *tl_tmpdir(void);
void tl_rmrf(const char *dir);

/* The example key (fixtures/example-private.pem), or another generated key
 * when @other is true. */
void tl_pubkey_bin(bool other, uint8_t out[264]);
void tl_sign(bool other, const void *data, size_t len, uint8_t sig[256]);
/* B ‖ customer block (keynum 16, version 0) signed with the key. malloc'd. */
uint8_t *tl_countersign(bool other, const uint8_t *img, size_t len, size_t *outlen);
/* `.sig` text of data: hash line, ts line, optional rsa2048 line. malloc'd. */
char *tl_sigfile(bool other, const void *data, size_t len, bool with_rsa);
/* Replace FILE @name (or "bootcode.bin" = section 0) in place, as §1.5/§1.6. */
void tl_ee_replace(uint8_t *img, size_t len, const char *name, const void *payload, size_t plen);

/* A secure-boot EEPROM image for @chip: fixture image with bootconf.txt
 * (@conf), its bootconf.sig and pubkey.bin of the key; on 2712 section 0 and
 * bootsys counter-signed. malloc'd, *len = image size. */
uint8_t *tl_secure_eeprom(int chip, bool other, const char *conf, size_t *len);

/* Minimal rpiboot host. Files served by name from a table. */
struct tl_file {
	const char *name;
	const void *data;
	size_t len;
};
struct tl_session {
	char requests[64][264];   /* names asked for, "GS:name" / "RF:name" */
	int nreq;
	char metadata[32][264];  /* "KEY=VALUE" */
	int nmeta;
	bool done;               /* Done received (else device left) */
};
/* Upload a second stage over the ROM protocol (§3.2). Returns 0 or -errno of
 * the first failing step; *status gets the status word when read. */
int tl_rom_upload(struct transport *t, const void *img, size_t len, int32_t *status);
/* Run the file server until Done / empty name / device gone (§4.2). */
int tl_file_server(struct transport *t, const struct tl_file *files, size_t nfiles,
		   struct tl_session *s);
const char *tl_meta(const struct tl_session *s, const char *key);
bool tl_requested(const struct tl_session *s, const char *req);

/* Wait for a device on @port with @vid/@pid and optional iSerialNumber index
 * (-1 any) whose address differs from @not_addr; open it. -ETIMEDOUT. */
int tl_wait_open(struct vpi_bus *bus, const char *port, uint16_t pid, int iserial,
		 unsigned not_addr, unsigned timeout_ms, struct transport **t, unsigned *addr);

#endif
