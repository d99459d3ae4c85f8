/* Test-side helpers for the virtual Pi tests (see vpi_testlib.h). The rpiboot
 * host here is deliberately minimal and written from rpiboot.md §2-§4 for the
 * tests only; the station's real host lives in src/proto. Test thread only. */
#include "vpi_testlib.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/sha256.h>

#include "transport/transport.h"
#include "vpi/bus.h"

char *tl_fixture(const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/fixtures/rpi-firmware/%s", SHARED_DIR, name) > 0);
	return p;
}

uint8_t *tl_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

uint8_t *tl_slurp_fixture(const char *name, size_t *len)
{
	char *p = tl_fixture(name);
	uint8_t *d = tl_slurp(p, len);

	free(p);
	return d;
}

char *tl_tmpdir(void)
{
	char *t = strdup("/tmp/vpi-test-XXXXXX");

	assert_non_null(t);
	assert_non_null(mkdtemp(t));
	return t;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void tl_rmrf(const char *dir)
{
	if (dir)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- keys -------------------------------------------------------------- */

static mbedtls_pk_context keys[2];
static bool keys_loaded[2];
static mbedtls_ctr_drbg_context drbg;
static mbedtls_entropy_context ent;
static bool drbg_ready;

static void rng_init(void)
{
	if (drbg_ready)
		return;
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent,
					       (const unsigned char *)"vpi-test", 8), 0);
	drbg_ready = true;
}

static mbedtls_pk_context *key(bool other)
{
	int i = other ? 1 : 0;

	if (keys_loaded[i])
		return &keys[i];
	rng_init();
	mbedtls_pk_init(&keys[i]);
	if (!other) {
		char *p = tl_fixture("example-private.pem");
		assert_int_equal(mbedtls_pk_parse_keyfile(&keys[i], p, NULL), 0);
		free(p);
	} else {
		assert_int_equal(mbedtls_pk_setup(&keys[i], mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), 0);
		assert_int_equal(mbedtls_rsa_gen_key(mbedtls_pk_rsa(keys[i]), mbedtls_ctr_drbg_random,
						     &drbg, 2048, 65537), 0);
	}
	keys_loaded[i] = true;
	return &keys[i];
}

void tl_pubkey_bin(bool other, uint8_t out[264])
{
	mbedtls_rsa_context *rsa = mbedtls_pk_rsa(*key(other));
	uint8_t n[256], e[8];

	assert_int_equal(mbedtls_rsa_export_raw(rsa, n, 256, NULL, 0, NULL, 0, NULL, 0, e, 8), 0);
	for (int i = 0; i < 256; i++)
		out[i] = n[255 - i];
	for (int i = 0; i < 8; i++)
		out[256 + i] = e[7 - i];
}

void tl_sign(bool other, const void *data, size_t len, uint8_t sig[256])
{
	uint8_t h[32];
	size_t sl = 0;

	mbedtls_sha256_ret(data, len, h, 0);
	assert_int_equal(mbedtls_pk_sign(key(other), MBEDTLS_MD_SHA256, h, 32, sig, &sl,
					 mbedtls_ctr_drbg_random, &drbg), 0);
	assert_int_equal(sl, 256);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

uint8_t *tl_countersign(bool other, const uint8_t *img, size_t len, size_t *outlen)
{
	uint8_t *o = malloc(len + 532);

	assert_non_null(o);
	memcpy(o, img, len);
	put_le32(o + len, (uint32_t)len);
	put_le32(o + len + 4, 16);
	put_le32(o + len + 8, 0);
	tl_sign(other, o, len + 12, o + len + 12);
	tl_pubkey_bin(other, o + len + 268);
	*outlen = len + 532;
	return o;
}

char *tl_sigfile(bool other, const void *data, size_t len, bool with_rsa)
{
	uint8_t h[32], sig[256];
	char *out = malloc(64 + 1 + 16 + 10 + 512 + 16);
	size_t p = 0;

	assert_non_null(out);
	mbedtls_sha256_ret(data, len, h, 0);
	for (int i = 0; i < 32; i++)
		p += (size_t)sprintf(out + p, "%02x", h[i]);
	p += (size_t)sprintf(out + p, "\nts: 1700000000\n");
	if (with_rsa) {
		tl_sign(other, data, len, sig);
		p += (size_t)sprintf(out + p, "rsa2048: ");
		for (int i = 0; i < 256; i++)
			p += (size_t)sprintf(out + p, "%02x", sig[i]);
		p += (size_t)sprintf(out + p, "\n");
	}
	return out;
}

/* ---- EEPROM editing (test side, §1.5 / §1.6) ---------------------------- */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void tl_ee_replace(uint8_t *img, size_t len, const char *name, const void *payload, size_t plen)
{
	size_t off = 0, hdr = (size_t)-1, next = (size_t)-1, hlen;
	bool is_bootcode = strcmp(name, "bootcode.bin") == 0;

	while (off + 8 <= len) {
		uint32_t m = be32(img + off), l = be32(img + off + 4);
		if (m == 0 || m == 0xffffffffu)
			break;
		if (hdr != (size_t)-1 && next == (size_t)-1 && m != 0x55AAFEEFu) {
			next = off;
			break;
		}
		if (hdr == (size_t)-1 && ((is_bootcode && off == 0) ||
		    (!is_bootcode && m == 0x55AAF11Fu && strncmp((const char *)img + off + 8, name, 12) == 0)))
			hdr = off;
		off = (off + 8 + l + 7) & ~(size_t)7;
	}
	assert_true(hdr != (size_t)-1);
	if (next == (size_t)-1)
		next = len - 4096 < 0x107000 ? len - 4096 : 0x107000;
	hlen = is_bootcode ? 8 : 24;
	assert_true(hdr + hlen + plen <= next);
	put_be32(img + hdr + 4, (uint32_t)(plen + hlen - 8));
	memcpy(img + hdr + hlen, payload, plen);
	off = hdr + hlen + plen;
	while (off % 8)
		img[off++] = 0xff;
	if (next - off >= 8) {
		put_be32(img + off, 0x55AAFEEFu);
		put_be32(img + off + 4, (uint32_t)(next - off - 8));
		off += 8;
	}
	memset(img + off, 0xff, next - off);
}

static int find_file(const uint8_t *img, size_t len, const char *name, size_t *payload, size_t *plen)
{
	size_t off = 0;

	while (off + 8 <= len) {
		uint32_t m = be32(img + off), l = be32(img + off + 4);
		if (m == 0 || m == 0xffffffffu)
			break;
		if ((strcmp(name, "bootcode.bin") == 0 && off == 0) ||
		    (m == 0x55AAF11Fu && strncmp((const char *)img + off + 8, name, 12) == 0)) {
			*payload = off + (off == 0 ? 8 : 24);
			*plen = off == 0 ? l : l - 16;
			return 0;
		}
		off = (off + 8 + l + 7) & ~(size_t)7;
	}
	return -1;
}

uint8_t *tl_secure_eeprom(int chip, bool other, const char *conf, size_t *len)
{
	uint8_t *img = tl_slurp_fixture(chip == 0x2712 ? "pieeprom-2026-08-12.bin" :
					"pieeprom-2026-08-04.bin", len);
	uint8_t pk[264];
	char *sig;

	if (chip == 0x2712) {
		const char *names[2] = { "bootcode.bin", "bootsys" };
		for (int i = 0; i < 2; i++) {
			size_t off = 0, pl = 0, sl = 0;
			uint8_t *cs;
			assert_int_equal(find_file(img, *len, names[i], &off, &pl), 0);
			cs = tl_countersign(other, img + off, pl, &sl);
			tl_ee_replace(img, *len, names[i], cs, sl);
			free(cs);
		}
	}
	tl_ee_replace(img, *len, "bootconf.txt", conf, strlen(conf));
	sig = tl_sigfile(other, conf, strlen(conf), true);
	tl_ee_replace(img, *len, "bootconf.sig", sig, strlen(sig));
	free(sig);
	tl_pubkey_bin(other, pk);
	tl_ee_replace(img, *len, "pubkey.bin", pk, sizeof(pk));
	return img;
}

/* ---- minimal rpiboot host ---------------------------------------------- */

static int ctrl(struct transport *t, uint8_t type, uint16_t wv, uint16_t wi, uint16_t wl,
		void *data, unsigned ms)
{
	struct usb_ctrl_setup s = { type, 0, wv, wi, wl };

	return transport_control(t, &s, data, ms);
}

static int ep_write(struct transport *t, const void *buf, size_t len)
{
	int r = ctrl(t, 0x40, (uint16_t)(len & 0xffff), (uint16_t)(len >> 16), 0, NULL, 1000);
	size_t sent = 0;

	if (r < 0)
		return r;
	while (sent < len) {
		size_t n = len - sent > 16384 ? 16384 : len - sent;
		r = transport_bulk_out(t, (const uint8_t *)buf + sent, n, 5000);
		if (r < 0)
			return r;
		sent += (size_t)r;
	}
	return 0;
}

int tl_rom_upload(struct transport *t, const void *img, size_t len, int32_t *status)
{
	uint8_t msg[24] = { 0 };
	uint8_t st[4];
	int r;

	put_le32(msg, (uint32_t)len);
	r = ep_write(t, msg, sizeof(msg));
	if (r)
		return r;
	r = ep_write(t, img, len);
	if (r)
		return r;
	r = ctrl(t, 0xC0, 4, 0, 4, st, 3000);
	if (r < 0)
		return r;
	if (status)
		*status = (int32_t)((uint32_t)st[0] | (uint32_t)st[1] << 8 | (uint32_t)st[2] << 16 |
				    (uint32_t)st[3] << 24);
	return 0;
}

int tl_file_server(struct transport *t, const struct tl_file *files, size_t nfiles,
		   struct tl_session *s)
{
	memset(s, 0, sizeof(*s));
	for (;;) {
		uint8_t m[260];
		char name[257];
		uint32_t cmd;
		const struct tl_file *f = NULL;
		int r;

		memset(m, 0, sizeof(m));
		r = ctrl(t, 0xC0, 260, 0, 260, m, 5000);
		if (r == -ENODEV || r == -EIO)
			return 0;
		if (r < 0)
			return r;
		if (r < 4)
			return -EPROTO;
		cmd = (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
		memcpy(name, m + 4, 256);
		name[256] = '\0';
		if (!name[0])
			return ctrl(t, 0x40, 0, 0, 0, NULL, 1000) < 0 ? -EIO : 0;
		if (name[0] == '*' && cmd != 2) {
			char *v = strchr(name + 1, '*');
			if (v && s->nmeta < 32) {
				*v++ = '\0';
				snprintf(s->metadata[s->nmeta++], sizeof(s->metadata[0]), "%s=%s",
					 name + 1, v);
			}
			ctrl(t, 0x40, 0, 0, 0, NULL, 1000);
			continue;
		}
		if (cmd == 2) {
			s->done = true;
			return 0;
		}
		if (cmd > 2)
			return -EPROTO;
		if (s->nreq < 64)
			snprintf(s->requests[s->nreq++], sizeof(s->requests[0]), "%s:%s",
				 cmd == 0 ? "GS" : "RF", name);
		for (size_t i = 0; i < nfiles; i++)
			if (strcmp(files[i].name, name) == 0 && files[i].len)
				f = &files[i];
		if (cmd == 0)
			r = ctrl(t, 0x40, f ? (uint16_t)(f->len & 0xffff) : 0,
				 f ? (uint16_t)(f->len >> 16) : 0, 0, NULL, 1000);
		else
			r = f ? ep_write(t, f->data, f->len) : ctrl(t, 0x40, 0, 0, 0, NULL, 1000);
		if (r < 0)
			return r == -ENODEV ? 0 : r;
	}
}

const char *tl_meta(const struct tl_session *s, const char *key)
{
	size_t kl = strlen(key);

	for (int i = 0; i < s->nmeta; i++)
		if (strncmp(s->metadata[i], key, kl) == 0 && s->metadata[i][kl] == '=')
			return s->metadata[i] + kl + 1;
	return NULL;
}

bool tl_requested(const struct tl_session *s, const char *req)
{
	for (int i = 0; i < s->nreq; i++)
		if (strcmp(s->requests[i], req) == 0)
			return true;
	return false;
}

static long ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int tl_wait_open(struct vpi_bus *bus, const char *port, uint16_t pid, int iserial,
		 unsigned not_addr, unsigned timeout_ms, struct transport **t, unsigned *addr)
{
	long end = ms_now() + timeout_ms;

	for (;;) {
		uint64_t gen = vpi_bus_generation(bus);
		struct vpi_bus_dev *devs = NULL;
		size_t n = 0;
		long left;

		assert_int_equal(vpi_bus_list(bus, &devs, &n), 0);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(devs[i].port, port) != 0 || devs[i].ghost ||
			    devs[i].desc.pid != pid || devs[i].address == not_addr ||
			    (iserial >= 0 && devs[i].desc.iserial_index != iserial))
				continue;
			if (addr)
				*addr = devs[i].address;
			if (vpi_bus_open_address(bus, port, devs[i].address, t) == 0) {
				free(devs);
				return 0;
			}
		}
		free(devs);
		left = end - ms_now();
		if (left <= 0)
			return -ETIMEDOUT;
		vpi_bus_wait_change(bus, gen, (unsigned)left);
	}
}
