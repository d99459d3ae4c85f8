/* test_vpi_fastbootd: the virtual Pi's rpi-fastbootd through an in-memory
 * channel: every command family, the exact FAIL texts of spec §3, the
 * buffer lifecycle, flashing raw and sparse into the storage file, LUKS via
 * oem cryptinit/cryptopen, data-plane restrictions and the injected faults
 * (FAIL of a named command, bit flip caught by bmap-verify, storage too
 * small, unplug in a download). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vpi/board.h"
#include "vpi/fastbootd.h"
#include "vpi/luks.h"
#include "vpi/storage.h"

#define MAXMSG 128

struct msg {
	uint8_t *p;
	size_t len, off;
};

struct fx {
	char dir[64];
	struct vpi_board *b;
	struct msg in[MAXMSG];
	int nin, cur;
	struct msg out[4 * MAXMSG];
	int nout, seen;
};

static ssize_t ch_read(void *usrptr, void *buf, size_t len)
{
	struct fx *f = usrptr;
	struct msg *m;
	size_t n;

	while (f->cur < f->nin && f->in[f->cur].off == f->in[f->cur].len)
		f->cur++;
	if (f->cur >= f->nin)
		return 0;
	m = &f->in[f->cur];
	n = m->len - m->off < len ? m->len - m->off : len;
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static ssize_t ch_write(void *usrptr, const void *buf, size_t len)
{
	struct fx *f = usrptr;
	struct msg *m = &f->out[f->nout++];

	assert_true(f->nout < 4 * MAXMSG);
	m->p = malloc(len + 1);
	memcpy(m->p, buf, len);
	m->p[len] = 0;
	m->len = len;
	return (ssize_t)len;
}

static void clear(struct fx *f)
{
	for (int i = 0; i < f->nin; i++)
		free(f->in[i].p);
	for (int i = 0; i < f->nout; i++)
		free(f->out[i].p);
	f->nin = f->cur = f->nout = f->seen = 0;
}

static void q(struct fx *f, const void *p, size_t len)
{
	assert_true(f->nin < MAXMSG);
	f->in[f->nin].p = malloc(len ? len : 1);
	memcpy(f->in[f->nin].p, p, len);
	f->in[f->nin].len = len;
	f->in[f->nin].off = 0;
	f->nin++;
}

static void qc(struct fx *f, const char *cmd) { q(f, cmd, strlen(cmd)); }

/* download:%08x + payload */
static void qdl(struct fx *f, const void *p, size_t len)
{
	char c[32];
	snprintf(c, sizeof(c), "download:%08zx", len);
	qc(f, c);
	q(f, p, len);
}

static int serve_mode(struct fx *f, enum vpi_fb_mode mode)
{
	struct vpi_fb_channel ch = { .read = ch_read, .write = ch_write, .usrptr = f, .transport_name = "usb" };
	return vpi_fastbootd_serve_mode(f->b, &ch, mode, false);
}

static int serve(struct fx *f) { return serve_mode(f, VPI_FB_MODE_FULL); }

/* The next response must be exactly @want (bytes, NULs allowed via @len). */
static void next_n(struct fx *f, const char *want, size_t len)
{
	struct msg *m;

	if (f->seen >= f->nout)
		fail_msg("no response left, wanted '%s'", want);
	m = &f->out[f->seen++];
	if (m->len != len || memcmp(m->p, want, len))
		fail_msg("response %d: got '%.*s' (%zu bytes), wanted '%s'", f->seen - 1, (int)m->len,
			 (const char *)m->p, m->len, want);
}

static void next(struct fx *f, const char *want) { next_n(f, want, strlen(want)); }

static void open_board(struct fx *f, const struct vpi_board_opts *o)
{
	struct vpi_board_opts d;

	if (!o) {
		vpi_board_opts_init(&d);
		d.faults.storage_bytes = 64u << 20;
		o = &d;
	}
	assert_int_equal(vpi_board_open("pi5", f->dir, o, &f->b), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/vpi-fbd-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	clear(f);
	if (f->b) {
		vpi_fastbootd_board_reset(f->b);
		vpi_board_close(f->b);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void test_getvar(void **state)
{
	struct fx *f = *state;
	char want[64], cmd[300];

	open_board(f, NULL);
	qc(f, "getvar:version");
	qc(f, "getvar:serialno");
	qc(f, "getvar:product");
	qc(f, "getvar:max-download-size");
	qc(f, "getvar:nosuch");
	qc(f, "getvar:has-slot:mmcblk0");
	qc(f, "getvar");
	qc(f, "getvar:");
	qc(f, "getvar:partition-size:mmcblk0");
	qc(f, "getvar:partition-size:/dev/mmcblk0");
	qc(f, "getvar:partition-size:mmcblk0p1");
	qc(f, "getvar:partition-size");
	qc(f, "getvar:is-logical:mmcblk0");
	qc(f, "getvar:is-logical:mmcblk0p1");
	qc(f, "getvar:revision-type");
	qc(f, "getvar:sdram-size-bytes");
	qc(f, "getvar:tcp-data-plane-only");
	qc(f, "getvar:block-devices");
	qc(f, "getvar:block-device-size:mmcblk0");
	qc(f, "getvar:block-device-size:../x");
	qc(f, "getvar:block-device-type:mmcblk0");
	qc(f, "getvar:secure");
	qc(f, "getvar:private-key");
	qc(f, "getvar:public-key");
	qc(f, "getvar:ipv4-address");
	qc(f, "getvar:mmc-cid");
	qc(f, "getvar:mmc-extcsd");
	qc(f, "getvar:max-fetch-size");
	qc(f, "getvar:eeprom-device");
	qc(f, "getvar:version\n");
	memset(cmd, 'a', sizeof(cmd));
	memcpy(cmd, "getvar:", 7);
	q(f, cmd, sizeof(cmd));   /* 300 bytes: read as 256 + 44 */
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);

	next(f, "OKAY0.4");
	snprintf(want, sizeof(want), "OKAY%016" PRIx64, vpi_board_serial64(f->b));
	next_n(f, want, 21);       /* DT string: trailing NUL included */
	next_n(f, "OKAYRaspberry Pi 5 Model B Rev 1.0", 35);
	next(f, "OKAY0x10000000");
	next(f, "FAILUnknown variable");
	next(f, "FAILUnknown variable");
	next(f, "FAILMissing argument");
	next(f, "FAILUnknown variable");
	next(f, "OKAY0x4000000");
	next(f, "OKAY0x4000000");
	next(f, "FAILCould not open partition");
	next(f, "FAILMissing argument");
	next(f, "OKAYno");
	next(f, "FAILPartition not found");
	next(f, "OKAY0x17");
	next(f, "OKAY8000000000");
	next(f, "OKAYno");
	next(f, "OKAYmmcblk0");
	next(f, "OKAY67108864");
	next(f, "FAILInvalid device name");
	next(f, "OKAYsd");
	next(f, "OKAYno");
	next(f, "OKAYerror");
	next(f, "FAILCould not read public key");
	next(f, "FAILNo IPv4 address found");
	snprintf(want, sizeof(want), "OKAY%s\n", vpi_board_storage_hwid(f->b));
	next(f, want);
	next(f, "FAILUnable to read EXT_CSD");
	next(f, "OKAY");            /* the daemon's unsolicited second OKAY */
	next(f, "FAILfetch not supported on user builds");
	next(f, "OKAY/dev/spidev10.0");
	next(f, "FAILCommand contains control character");
	next(f, "FAILUnknown variable");   /* first 256 bytes */
	next(f, "FAILUnrecognized command aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(f->seen, f->nout);
}

static void test_getvar_all(void **state)
{
	struct fx *f = *state;
	bool saw_serial = false, saw_size = false;

	open_board(f, NULL);
	qc(f, "getvar:all");
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	assert_true(f->nout > 20);
	for (int i = 0; i < f->nout - 1; i++) {
		assert_memory_equal(f->out[i].p, "INFO", 4);
		if (strncmp((char *)f->out[i].p + 4, "serialno:", 9) == 0)
			saw_serial = strlen((char *)f->out[i].p) == 4 + 9 + 16;
		if (strcmp((char *)f->out[i].p + 4, "partition-size:mmcblk0:0x4000000") == 0)
			saw_size = true;
	}
	assert_true(saw_serial);
	assert_true(saw_size);
	assert_string_equal((char *)f->out[f->nout - 1].p, "OKAY");
}

static void test_download_upload(void **state)
{
	struct fx *f = *state;
	uint8_t data[3000];

	open_board(f, NULL);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	qc(f, "download");
	qc(f, "download:123");
	qc(f, "download:0000zz00");
	qc(f, "download:10000001");
	qc(f, "download:00000000");
	qc(f, "upload");
	qdl(f, data, sizeof(data));
	qc(f, "upload");
	qc(f, "upload");
	qc(f, "stage:00000004");
	q(f, "abcd", 4);
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	next(f, "FAILsize argument unspecified");
	next(f, "FAILInvalid size (length of size != 8)");
	next(f, "FAILInvalid size");
	next(f, "FAILInvalid size");
	next(f, "FAILInvalid size (0)");
	next(f, "FAILInvalid size (0)");
	next(f, "DATA00000bb8");
	next(f, "OKAY");
	next(f, "DATA00000bb8");
	next_n(f, (const char *)data, sizeof(data));
	next(f, "OKAY");
	next(f, "FAILInvalid size (0)");   /* upload cleared the buffer */
	next(f, "DATA00000004");
	next(f, "OKAY");
}

static void read_storage(struct fx *f, uint64_t off, void *buf, size_t len)
{
	struct vpi_storage *s;
	assert_int_equal(vpi_storage_open_board(f->b, &s), 0);
	assert_int_equal(vpi_storage_pread(s, off, buf, len), 0);
	vpi_storage_close(s);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Sparse: RAW 1 block of 0x11, DONT_CARE 1, FILL 2 of 0x01020304; 4 x 4096. */
static size_t make_sparse(uint8_t *out)
{
	uint8_t *c;

	memset(out, 0, 28);
	put32(out, 0xED26FF3A);
	out[4] = 1;
	out[8] = 28;
	out[10] = 12;
	put32(out + 12, 4096);
	put32(out + 16, 4);
	put32(out + 20, 3);
	c = out + 28;
	memset(c, 0, 12);
	c[0] = 0xC1; c[1] = 0xCA;
	put32(c + 4, 1);
	put32(c + 8, 12 + 4096);
	memset(c + 12, 0x11, 4096);
	c += 12 + 4096;
	memset(c, 0, 12);
	c[0] = 0xC3; c[1] = 0xCA;
	put32(c + 4, 1);
	put32(c + 8, 12);
	c += 12;
	memset(c, 0, 12);
	c[0] = 0xC2; c[1] = 0xCA;
	put32(c + 4, 2);
	put32(c + 8, 16);
	put32(c + 12, 0x01020304);
	c += 16;
	return (size_t)(c - out);
}

static void test_partition_and_flash(void **state)
{
	struct fx *f = *state;
	uint8_t *raw = malloc(1u << 20), *sp = malloc(8192 + 100), *back = malloc(1u << 20);
	size_t splen = make_sparse(sp);

	open_board(f, NULL);
	for (size_t i = 0; i < (1u << 20); i++)
		raw[i] = (uint8_t)(i * 13);
	qc(f, "flash:mmcblk0p1");                       /* no such partition yet */
	qc(f, "oem partinit mmcblk0 gpt");
	qc(f, "oem partinit mmcblk0p1 dos");
	qc(f, "oem partinit mmcblk0");
	qc(f, "oem partinit mmcblk0 DOS 0x1234abcd");
	qc(f, "oem partapp mmcblk0 0c 0x800000");
	qc(f, "oem partapp mmcblk0 83 12abc");
	qc(f, "oem partapp mmcblk0 zz");
	qc(f, "oem partapp mmcblk0 83");
	qc(f, "oem partapp mmcblk0 83");                /* disk full */
	qc(f, "getvar:partition-size:mmcblk0p1");
	qc(f, "flash:mmcblk0p1");                       /* empty buffer */
	qdl(f, raw, 1u << 20);
	qc(f, "flash:mmcblk0p1");
	qc(f, "flash:mmcblk0p1");                       /* buffer consumed */
	/* Old data under the DONT_CARE block must survive a sparse flash. */
	qdl(f, raw, 8192);
	qc(f, "flash:mmcblk0p2");
	qdl(f, sp, splen);
	qc(f, "flash:mmcblk0p2");
	qc(f, "flash:../mmcblk0");
	qc(f, "flash");
	qc(f, "erase:mmcblk0p2");
	qc(f, "erase:mmcblk0p9");
	qc(f, "erase");
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	next(f, "FAILcannot access partition /dev/mmcblk0p1 (OpenPartition failed; partition may not exist)");
	next(f, "FAILFailed to create disk label.e.g:\r\n\toem partinit mmcblk0 <label> [id]");
	next(f, "FAILIncorrect block device. e.g:\r\n\toem partinit mmcblk0 <label> [id]");
	next(f, "FAILInvalid argument count. Wanted oem partinit mmcblk0 <label> [id]");
	next(f, "OKAYInitialised partition successfully");
	next(f, "OKAYWrote new partition.");
	next(f, "FAILUnable to parse partition size. e.g:\r\n\toem partapp mmcblk0 <part code> <size>");
	next(f, "FAILFailed to append partition. e.g:\r\n\toem partapp mmcblk0 <part code> <size>");
	next(f, "OKAYWrote new partition.");
	next(f, "FAILFailed to append partition. e.g:\r\n\toem partapp mmcblk0 <part code> <size>");
	next(f, "OKAY0x800000");
	next(f, "FAILdownload buffer is empty; stage data before flashing mmcblk0p1");
	next(f, "DATA00100000");
	next(f, "OKAY");
	next(f, "OKAYFlashing succeeded");
	next(f, "FAILdownload buffer is empty; stage data before flashing mmcblk0p1");
	next(f, "DATA00002000");
	next(f, "OKAY");
	next(f, "OKAYFlashing succeeded");
	next(f, "DATA00001044");
	next(f, "OKAY");
	next(f, "OKAYFlashing succeeded");
	next(f, "FAILInvalid arguments");
	next(f, "FAILInvalid arguments");
	next(f, "OKAYErasing succeeded");
	next(f, "FAILPartition doesn't exist");
	next(f, "FAILInvalid arguments");

	uint8_t mbr[512];
	read_storage(f, 0, mbr, 512);
	assert_int_equal(mbr[440] | mbr[441] << 8 | mbr[442] << 16 | (uint32_t)mbr[443] << 24, 0x1234abcd);
	read_storage(f, 4u << 20, back, 1u << 20);
	assert_memory_equal(back, raw, 1u << 20);
	/* p2 at 12 MiB: RAW block, kept old block (DONT_CARE), FILL. */
	read_storage(f, 12u << 20, back, 4 * 4096);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(back[i], 0x11);
	assert_memory_equal(back + 4096, raw + 4096, 4096);
	for (int i = 8192; i < 16384; i += 4)
		assert_memory_equal(back + i, "\x04\x03\x02\x01", 4);
	free(raw);
	free(sp);
	free(back);
}

static void test_bad_sparse_and_too_small(void **state)
{
	struct fx *f = *state;
	struct vpi_board_opts o;
	uint8_t *sp = malloc(8192 + 100), *raw = calloc(1, 5u << 20);
	size_t splen = make_sparse(sp);

	vpi_board_opts_init(&o);
	o.faults.storage_bytes = 4u << 20;     /* storage smaller than the image */
	open_board(f, &o);
	sp[28] = 0xC5;                          /* unknown chunk type */
	qdl(f, sp, splen);
	qc(f, "flash:mmcblk0");
	sp[28] = 0xC1;
	put32(sp + 16, 0x10000);                /* 256 MiB expanded: does not fit */
	put32(sp + 28 + 12 + 4096 + 12 + 4, 0x10000 - 2);   /* FILL chunk_sz: covers the rest */
	qdl(f, sp, splen);
	qc(f, "flash:mmcblk0");
	qdl(f, raw, 5u << 20);
	qc(f, "flash:mmcblk0");
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	next(f, "DATA00001044");
	next(f, "OKAY");
	next(f, "FAILnot a valid sparse image (sparse_file_import_buf failed on 4164B payload)");
	next(f, "DATA00001044");
	next(f, "OKAY");
	next(f, "FAILsparse image expands to 268435456B but partition /dev/mmcblk0 is only 4194304B");
	next(f, "DATA00500000");
	next(f, "OKAY");
	next(f, "FAILpayload 5242880B exceeds partition /dev/mmcblk0 size 4194304B");
	free(sp);
	free(raw);
}

static void test_luks_flow(void **state)
{
	struct fx *f = *state;
	uint8_t *data = malloc(1u << 20), *back = malloc(1u << 20);
	struct vpi_luks_reader *r;
	char want[64];

	open_board(f, NULL);
	for (size_t i = 0; i < (1u << 20); i++)
		data[i] = (uint8_t)(i ^ (i >> 9));
	qc(f, "oem partinit mmcblk0 dos");
	qc(f, "oem partapp mmcblk0 0c 4194304");
	qc(f, "oem partapp mmcblk0 83");
	qc(f, "oem fwcrypto status");
	qc(f, "oem cryptinit mmcblk0p2 root");
	qc(f, "oem fwcrypto init");
	qc(f, "oem fwcrypto init");
	qc(f, "oem fwcrypto status");
	qc(f, "getvar:private-key");
	qc(f, "getvar:secure");
	qc(f, "oem cryptinit mmcblk0p2");
	qc(f, "oem cryptinit  root");
	qc(f, "oem cryptinit mmcblk0p2 ");
	qc(f, "oem cryptinit mmcblk0p7 root");
	qc(f, "oem cryptinit mmcblk0p2 root aes-xts-plain64");
	qc(f, "oem cryptopen mmcblk0p2");
	qc(f, "oem cryptopen mmcblk0p9 cryptroot");
	qc(f, "oem cryptopen mmcblk0p2 cryptroot");
	qc(f, "oem cryptopen mmcblk0p2 cryptroot");      /* already open */
	qc(f, "getvar:partition-size:mapper/cryptroot");
	qc(f, "getvar:partition-size:mmcblk0p2");
	qc(f, "getvar:partition-size:mmcblk0");
	qc(f, "oem cryptinit mmcblk0p2 root");           /* busy */
	qdl(f, data, 1u << 20);
	qc(f, "flash:mmcblk0p2");                        /* busy: buffer kept */
	qc(f, "flash:mapper/cryptroot");
	qc(f, "oem cryptsetpassword mmcblk0p2 operator-secret");
	qc(f, "oem cryptsetpassword mmcblk0p2");
	qc(f, "oem cryptsetpassword mmcblk0p1 x");
	qc(f, "oem fwcrypto sign-hash 00");
	qc(f, "oem fwcrypto sign-hash 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg");
	qc(f, "oem fwcrypto frob");
	qc(f, "oem fwcrypto");
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	next(f, "OKAYInitialised partition successfully");
	next(f, "OKAYWrote new partition.");
	next(f, "OKAYWrote new partition.");
	next(f, "OKAYKey is not provisioned");
	next(f, "FAILCannot generate LUKS key - unsupported device type");
	next(f, "OKAYKey provisioned and LOCKed");
	next(f, "OKAYKey already provisioned");
	next(f, "OKAYKey is provisioned");
	next(f, "OKAYrefused");
	next(f, "OKAYyes");
	next(f, "FAILInsufficient arguments. Usage: oem cryptinit <block_device> <label> [cipher]");
	next(f, "FAILBlock device not specified. Usage: oem cryptinit <block_device> <label> [cipher]");
	next(f, "FAILLabel not specified. Usage: oem cryptinit <block_device> <label> [cipher]");
	next(f, "FAILCannot create context for device /dev/mmcblk0p7 as failed to open");
	next(f, "OKAYLUKS device formatted successfully");
	next(f, "FAILInsufficient arguments provided. Usage: oem cryptopen <block_device_path> <mapped_name>");
	next(f, "FAILCannot perform cryptopen for device /dev/mmcblk0p9 as failed to open.");
	next(f, "OKAYLUKS device opened successfully");
	next(f, "FAILcryptsetup luksOpen failed.");
	snprintf(want, sizeof(want), "OKAY0x%X", (56u - 16u) << 20);
	next(f, want);
	next(f, "FAILCould not open partition");
	next(f, "FAILCould not open partition");
	next(f, "FAILCryptsetup failed");
	next(f, "DATA00100000");
	next(f, "OKAY");
	next(f, "FAILopen(/dev/mmcblk0p2, O_WRONLY|O_DIRECT) failed: Device or resource busy");
	next(f, "OKAYFlashing succeeded");
	next(f, "OKAYUser passphrase set successfully");
	next(f, "FAILUsage: oem cryptsetpassword <block_device> <passphrase>");
	next(f, "FAILFailed to set user passphrase");      /* p1 holds no LUKS */
	next(f, "FAILDigest must be exactly 64 hex characters (SHA-256)");
	next(f, "FAILInvalid hex character in digest");
	next(f, "FAILUnknown fwcrypto subcommand. Use 'status', 'init', or 'sign-hash'");
	next(f, "FAILUsage: oem fwcrypto <status|init|sign-hash>");

	/* The mapping persists across sessions of the same board (kernel state). */
	clear(f);
	qc(f, "getvar:is-logical:mapper/cryptroot");
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	next(f, "OKAYno");

	/* Virtual first boot's view: unlock with the derived key, plaintext equal. */
	assert_int_equal(vpi_luks_open_reader(f->b, "mmcblk0p2", &r), 0);
	assert_int_equal(vpi_luks_reader_read(r, 0, back, 1u << 20), 0);
	assert_memory_equal(back, data, 1u << 20);
	vpi_luks_reader_close(r);
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p2", "0000", 4), -EPERM);
	/* Keyslot 1 opens with the user passphrase; removing it closes that door. */
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p2", "operator-secret", 15), 0);
	clear(f);
	qc(f, "oem cryptsetpassword mmcblk0p2 ");
	qc(f, "oem cryptsetpassword mmcblk0p2 ");
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	next(f, "OKAYUser passphrase removed");
	next(f, "FAILFailed to remove user passphrase");
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p2", "operator-secret", 15), -EPERM);
	assert_int_equal(vpi_luks_unlock_check(f->b, "mmcblk0p2", NULL, 0), 0);
	free(data);
	free(back);
}

static void test_oem_misc(void **state)
{
	struct fx *f = *state;
	char led[8];
	uint8_t bm[16 + 40];
	uint8_t blk[4096];

	open_board(f, NULL);
	qc(f, "oem led PWR 0");
	qc(f, "oem led ACT 255");
	qc(f, "oem led pwr 1");
	qc(f, "oem led PWR x");
	qc(f, "oem led PWR");
	qc(f, "oem gpioset gpiochip0 5=1 6=0");
	qc(f, "oem gpioset gpiochip0 5");
	qc(f, "oem");
	qc(f, "oem frobnicate");
	qc(f, "oem idpinit");
	qc(f, "oem idpgetblk");
	qc(f, "oem idpdone");
	qc(f, "oem umount /mnt");
	qc(f, "oem verityappend mmcblk0p2 100 system-a");
	qc(f, "oem veritysetup mmcblk0 System-A");
	qc(f, "oem veritysetup mmcblk0");
	qc(f, "oem bmap-verify mmcblk0");
	qc(f, "oem bmap-load mmcblk0");
	qc(f, "boot");
	qc(f, "continue");
	qc(f, "set_active");
	qc(f, "set_active:ab");
	qc(f, "set_active:a");
	qc(f, "fetch:x");
	qdl(f, "payload", 7);
	qc(f, "oem download-file /tmp/x.bin");
	qc(f, "oem download-file /tmp/x.bin");
	qc(f, "oem upload-file /tmp/x.bin");
	qc(f, "upload");
	qc(f, "oem upload-file /nonexistent/x");
	qc(f, "oem download-file /tmp/../../escape");
	qc(f, "reboot");
	qc(f, "getvar:version");                /* never read: the board rebooted */
	assert_int_equal(mkdir(strcat(strcpy((char *)blk, f->dir), "/fs"), 0755), 0);
	assert_int_equal(mkdir(strcat((char *)blk, "/tmp"), 0755), 0);
	assert_int_equal(serve(f), VPI_FB_END_REBOOT);
	next(f, "OKAYWrote LED value");
	next(f, "OKAYWrote LED value");
	next(f, "INFOCould not find LED device: Usage:\r\n\toem led PWR 0");
	next(f, "OKAY");
	next(f, "INFOCould not wite LED value.");
	next(f, "OKAY");
	next(f, "FAILIncorrect arguments for LED command: Usage:\r\n\toem led PWR 0");
	next(f, "OKAYGPIO set successfully");
	next(f, "FAILgpioset failed");
	next(f, "FAILUnknown OEM command.");
	next(f, "FAILUnknown OEM command.");
	next(f, "FAILIDP:No data. Check description was staged");
	next(f, "FAILIDP:not initialised");
	next(f, "OKAYIDP:not initialised");
	next(f, "FAILUnmount failed for /mnt: Invalid argument");
	next(f, "FAILCannot get device size");
	next(f, "FAILinvalid slot name (expected ^system-[a-z0-9]{1,14}$): System-A");
	next(f, "FAILUsage: oem veritysetup <device_name> <slot>");
	next(f, "FAILbmap-verify: no bmap loaded; run oem bmap-load first");
	next(f, "FAILbmap-load: download buffer too small for header");
	next(f, "FAILUnrecognized command boot");
	next(f, "FAILUnrecognized command continue");
	next(f, "FAILMissing slot argument");
	next(f, "FAILBad slot suffix");
	next(f, "FAILUnable to set slot");
	next(f, "FAILFetch is not allowed on user build");
	next(f, "DATA00000007");
	next(f, "OKAY");
	next(f, "OKAYWrite Successful!");
	next(f, "FAILBuffer size zero. Check file was successfully staged");
	next(f, "FAILFilesize zero. Will not upload empty file");   /* truncated by the failed write */
	next(f, "FAILInvalid size (0)");
	next(f, "FAILError opening file, ERRNO: 2");
	next(f, "FAILError opening file, ERRNO: 13");
	next(f, "OKAYRebooting");
	assert_int_equal(f->seen, f->nout);
	assert_int_equal(vpi_fastbootd_led(f->b, "PWR", led, sizeof(led)), 0);
	assert_string_equal(led, "0");
	assert_int_equal(vpi_fastbootd_led(f->b, "ACT", led, sizeof(led)), 0);
	assert_string_equal(led, "255");
	assert_int_equal(vpi_fastbootd_led(f->b, "FOO", led, sizeof(led)), -ENOENT);

	/* bmap-load / bmap-verify over the whole disk's first block. */
	clear(f);
	memset(blk, 0x5a, sizeof(blk));
	memset(bm, 0, sizeof(bm));
	put32(bm, 0x50414D42);
	put32(bm + 4, 4096);
	put32(bm + 8, 1);
	put32(bm + 16, 4);
	put32(bm + 20, 4);
	mbedtls_sha256_ret(blk, sizeof(blk), bm + 24, 0);
	qdl(f, blk, sizeof(blk));
	qc(f, "flash:mmcblk0");
	qdl(f, bm, sizeof(bm));
	qc(f, "oem bmap-load mmcblk0");
	qc(f, "oem bmap-verify mmcblk0");       /* block 4 was never written */
	qc(f, "oem bmap-verify mmcblk0p1");
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	next(f, "DATA00001000");
	next(f, "OKAY");
	next(f, "OKAYFlashing succeeded");
	next(f, "DATA00000038");
	next(f, "OKAY");
	next(f, "OKAYbmap loaded: 1 ranges, block_size=4096, device=mmcblk0");
	next(f, "INFOverifying range 1/1 (blocks 4-4)");
	assert_memory_equal(f->out[f->seen].p, "FAIL0:", 6);
	f->seen++;
	next(f, "FAILbmap-verify: loaded bmap is for /dev/mmcblk0, not /dev/mmcblk0p1");
}

static void test_fault_fail_command_and_bitflip(void **state)
{
	struct fx *f = *state;
	struct vpi_board_opts o;
	uint8_t *img = malloc(1u << 20), bm[16 + 40];

	vpi_board_opts_init(&o);
	o.faults.storage_bytes = 64u << 20;
	snprintf(o.faults.fail_command, sizeof(o.faults.fail_command), "oem cryptinit");
	o.faults.bitflip_offset = (4 << 20) + 12345;   /* inside p1 */
	open_board(f, &o);
	memset(img, 0x77, 1u << 20);
	/* The bmap the host would send: SHA-256 of what it meant to write. */
	memset(bm, 0, sizeof(bm));
	put32(bm, 0x50414D42);
	put32(bm + 4, 4096);
	put32(bm + 8, 1);
	put32(bm + 16, 0);
	put32(bm + 20, 255);
	mbedtls_sha256_ret(img, 1u << 20, bm + 24, 0);
	qc(f, "oem partinit mmcblk0 dos");
	qc(f, "oem partapp mmcblk0 0c 8388608");
	qc(f, "oem fwcrypto init");
	qc(f, "oem cryptinit mmcblk0p1 root");
	qdl(f, img, 1u << 20);
	qc(f, "flash:mmcblk0p1");
	qdl(f, bm, sizeof(bm));
	qc(f, "oem bmap-load mmcblk0p1");
	qc(f, "oem bmap-verify mmcblk0p1");
	assert_int_equal(serve(f), VPI_FB_END_CLOSED);
	next(f, "OKAYInitialised partition successfully");
	next(f, "OKAYWrote new partition.");
	next(f, "OKAYKey provisioned and LOCKed");
	next(f, "FAILoem cryptinit mmcblk0p1 root failed (simulated fault)");
	next(f, "DATA00100000");
	next(f, "OKAY");
	next(f, "OKAYFlashing succeeded");   /* the device does not notice */
	next(f, "DATA00000038");
	next(f, "OKAY");
	next(f, "OKAYbmap loaded: 1 ranges, block_size=4096, device=mmcblk0p1");
	next(f, "INFOverifying range 1/1 (blocks 0-255)");
	assert_memory_equal(f->out[f->seen].p, "FAIL0:", 6);   /* verification catches it */
	uint8_t b;
	read_storage(f, (4 << 20) + 12345, &b, 1);
	assert_int_equal(b, 0x76);
	free(img);
}

static void test_fault_unplug_in_download(void **state)
{
	struct fx *f = *state;
	struct vpi_board_opts o;
	uint8_t data[8192] = { 0 };

	vpi_board_opts_init(&o);
	o.faults.storage_bytes = 64u << 20;
	snprintf(o.faults.unplug_phase, sizeof(o.faults.unplug_phase), "download");
	o.faults.unplug_offset = 5000;
	open_board(f, &o);
	qc(f, "getvar:version");
	qc(f, "download:00002000");
	q(f, data, 4096);
	q(f, data + 4096, 4096);
	qc(f, "getvar:version");
	assert_int_equal(serve(f), -ENODEV);
	next(f, "OKAY0.4");
	next(f, "DATA00002000");
	assert_int_equal(f->seen, f->nout);   /* nothing after the unplug */
}

static void test_data_plane(void **state)
{
	struct fx *f = *state;

	open_board(f, NULL);
	qc(f, "getvar:version");
	qc(f, "getvar:max-download-size");
	qc(f, "getvar:serialno");
	qc(f, "getvar");
	qc(f, "oem fwcrypto init");
	qc(f, "erase:mmcblk0");
	qc(f, "stage:00000010");
	qdl(f, "abcd", 4);
	qc(f, "flash:mmcblk0");
	assert_int_equal(serve_mode(f, VPI_FB_MODE_DATA_PLANE), VPI_FB_END_CLOSED);
	next(f, "OKAY0.4");
	next(f, "OKAY0x10000000");
	next(f, "FAILdata-plane connection: getvar serialno not permitted");
	next(f, "FAILdata-plane connection: getvar requires a variable name");
	next(f, "FAILUnrecognized command oem fwcrypto init");
	next(f, "FAILUnrecognized command erase");
	next(f, "FAILUnrecognized command stage");
	next(f, "DATA00000004");
	next(f, "OKAY");
	next(f, "OKAYFlashing succeeded");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_getvar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_getvar_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_download_upload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partition_and_flash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_sparse_and_too_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_luks_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oem_misc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_fail_command_and_bitflip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_unplug_in_download, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_plane, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
