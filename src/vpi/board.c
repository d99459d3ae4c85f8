/* vpi/board: the model table, a board's identity, its OTP and SPI EEPROM, its
 * options and faults, and the state directory that keeps them across runs.
 *
 * Any thread may call these functions: every mutable field is guarded by the
 * board mutex. Identity is a pure function of (model, serial_seed), so the same
 * seed always gives the same serial, MACs and storage id. OTP bits only ever
 * go from 0 to 1 and are written to <state>/otp before a call returns. */
#include "vpi/board.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include "core/paths.h"

#ifndef VPI_DEFAULT_FIRMWARE_DIR
#define VPI_DEFAULT_FIRMWARE_DIR "/usr/share/rpi-sb-provisioner/rpi-firmware"
#endif

#define GB(x) ((uint64_t)(x) * 1024u * 1024u * 1024u)
/* Typical card/part sizes: a "32 GB" SD card, a 32 GB eMMC, a 256 GB NVMe. */
#define SD_32G   31914983424ull
#define EMMC_32G 31268536320ull
#define NVME_256G 256060514304ull

/* New-style revision code: bit 23 new-style, 20..22 memory, 16..19 maker,
 * 12..15 processor, 4..11 board type, 0..3 revision (peer reference §1.2). */
#define REVCODE(mem, proc, type, rev) \
	((1u << 23) | ((uint32_t)(mem) << 20) | ((uint32_t)(proc) << 12) | \
	 ((uint32_t)(type) << 4) | (uint32_t)(rev))
enum { MEM_512M = 1, MEM_2G = 3, MEM_4G = 4, MEM_8G = 5 };
enum { PROC_2837 = 2, PROC_2711 = 3, PROC_2712 = 4 };

static const struct vpi_model_info models[] = {
	{ "pi5", "Raspberry Pi 5 Model B Rev 1.0", VPI_CHIP_2712, 0x2712,
	  REVCODE(MEM_8G, PROC_2712, 0x17, 0), GB(8), VPI_STORAGE_SD, SD_32G },
	{ "pi500", "Raspberry Pi 500 Rev 1.0", VPI_CHIP_2712, 0x2712,
	  REVCODE(MEM_8G, PROC_2712, 0x19, 0), GB(8), VPI_STORAGE_SD, SD_32G },
	{ "cm5", "Raspberry Pi Compute Module 5 Rev 1.0", VPI_CHIP_2712, 0x2712,
	  REVCODE(MEM_8G, PROC_2712, 0x18, 0), GB(8), VPI_STORAGE_EMMC, EMMC_32G },
	{ "cm5lite", "Raspberry Pi Compute Module 5 Lite Rev 1.0", VPI_CHIP_2712, 0x2712,
	  REVCODE(MEM_4G, PROC_2712, 0x1a, 0), GB(4), VPI_STORAGE_NVME, NVME_256G },
	{ "pi4", "Raspberry Pi 4 Model B Rev 1.5", VPI_CHIP_2711, 0x2711,
	  REVCODE(MEM_4G, PROC_2711, 0x11, 5), GB(4), VPI_STORAGE_SD, SD_32G },
	{ "pi400", "Raspberry Pi 400 Rev 1.1", VPI_CHIP_2711, 0x2711,
	  REVCODE(MEM_4G, PROC_2711, 0x13, 1), GB(4), VPI_STORAGE_SD, SD_32G },
	{ "cm4", "Raspberry Pi Compute Module 4 Rev 1.1", VPI_CHIP_2711, 0x2711,
	  REVCODE(MEM_4G, PROC_2711, 0x14, 1), GB(4), VPI_STORAGE_EMMC, EMMC_32G },
	{ "zero2w", "Raspberry Pi Zero 2 W Rev 1.0", VPI_CHIP_2710, 0x2764,
	  REVCODE(MEM_512M, PROC_2837, 0x12, 0), 512ull << 20, VPI_STORAGE_SD, SD_32G },
};

struct otp {
	uint8_t key_hash[32];
	bool jtag_lock, eeprom_wp, revoke_devkey, fwcrypto_init;
	unsigned rpiboot_gpio;
	uint8_t fwcrypto_d[32];   /* ECDSA P-256 private scalar; never leaves the board */
};

struct vpi_board {
	pthread_mutex_t *lock;     /* a pointer so const accessors can lock */
	const struct vpi_model_info *model;
	struct vpi_board_opts opts;
	char *state_dir, *otp_path, *eeprom_path, *storage_path, *log_path;
	uint64_t serial64;
	uint8_t mac_eth[6], mac_wifi[6], mac_bt[6];
	char hwid[40];
	char unique_id[33];
	struct otp otp;
	/* phase tracking for faults */
	char phase[32];
	uint64_t phase_bytes;
	bool unplugged;
	void (*unplug_hook)(void *);
	void *unplug_usrptr;
};

static char *firmware_dir_override;
static pthread_mutex_t firmware_dir_lock = PTHREAD_MUTEX_INITIALIZER;

void vpi_set_firmware_dir(const char *dir)
{
	pthread_mutex_lock(&firmware_dir_lock);
	free(firmware_dir_override);
	firmware_dir_override = dir ? strdup(dir) : NULL;
	pthread_mutex_unlock(&firmware_dir_lock);
}

const char *vpi_firmware_dir(void)
{
	const char *env;
	const char *r;

	pthread_mutex_lock(&firmware_dir_lock);
	r = firmware_dir_override;
	pthread_mutex_unlock(&firmware_dir_lock);
	if (r)
		return r;
	env = getenv("RPI_SB_VPI_FIRMWARE");
	if (env && *env)
		return env;
	return VPI_DEFAULT_FIRMWARE_DIR;
}

void vpi_board_opts_init(struct vpi_board_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->faults.bitflip_offset = -1;
	o->faults.slow_enum_ms = VPI_GUESS_REENUM_MS;
}

const struct vpi_model_info *vpi_model_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof(models) / sizeof(models[0]); i++)
		if (strcmp(models[i].name, name) == 0)
			return &models[i];
	return NULL;
}

const struct vpi_model_info *vpi_model_at(size_t i)
{
	return i < sizeof(models) / sizeof(models[0]) ? &models[i] : NULL;
}

/* ---- identity ---------------------------------------------------------- */

static void identity_hash(const char *model, uint32_t seed, const char *what, uint8_t out[32])
{
	mbedtls_sha256_context c;
	uint8_t s[4] = { (uint8_t)seed, (uint8_t)(seed >> 8), (uint8_t)(seed >> 16),
			 (uint8_t)(seed >> 24) };

	mbedtls_sha256_init(&c);
	mbedtls_sha256_starts_ret(&c, 0);
	mbedtls_sha256_update_ret(&c, (const unsigned char *)"rpi-sb-vpi identity\n", 20);
	mbedtls_sha256_update_ret(&c, (const unsigned char *)model, strlen(model) + 1);
	mbedtls_sha256_update_ret(&c, s, 4);
	mbedtls_sha256_update_ret(&c, (const unsigned char *)what, strlen(what) + 1);
	mbedtls_sha256_finish_ret(&c, out);
	mbedtls_sha256_free(&c);
}

static void make_identity(struct vpi_board *b)
{
	uint8_t h[32];
	static const uint8_t oui_2712[3] = { 0x2c, 0xcf, 0x67 };
	static const uint8_t oui_2711[3] = { 0xdc, 0xa6, 0x32 };
	static const uint8_t oui_2710[3] = { 0xb8, 0x27, 0xeb };
	const uint8_t *oui = b->model->chip == VPI_CHIP_2712 ? oui_2712 :
			     b->model->chip == VPI_CHIP_2711 ? oui_2711 : oui_2710;
	uint32_t seed = b->opts.serial_seed;
	const char *m = b->model->name;

	identity_hash(m, seed, "serial", h);
	b->serial64 = 0;
	for (int i = 0; i < 8; i++)
		b->serial64 = (b->serial64 << 8) | h[i];
	if ((uint32_t)b->serial64 == 0)  /* a zero ROM serial would read as "none" */
		b->serial64 |= 1;

	identity_hash(m, seed, "mac", h);
	memcpy(b->mac_eth, oui, 3);
	memcpy(b->mac_eth + 3, h, 3);
	memcpy(b->mac_wifi, oui, 3);
	memcpy(b->mac_wifi + 3, h + 3, 3);
	memcpy(b->mac_bt, oui, 3);
	memcpy(b->mac_bt + 3, h + 6, 3);
	if (b->model->chip == VPI_CHIP_2710)   /* Zero 2 W: no Ethernet */
		memset(b->mac_eth, 0, 6);

	identity_hash(m, seed, "storage", h);
	if (b->model->storage == VPI_STORAGE_NVME) {
		snprintf(b->hwid, sizeof(b->hwid), "VPI%02X%02X%02X%02X%02X%02X%02X%02X", h[0], h[1],
			 h[2], h[3], h[4], h[5], h[6], h[7]);
	} else {
		/* CID: MID, OID, PNM (5 chars), PRV, PSN (32 bit), MDT, CRC7|1. */
		uint8_t cid[16];
		cid[0] = b->model->storage == VPI_STORAGE_EMMC ? 0x15 : 0x03;
		cid[1] = 'V';
		cid[2] = 'P';
		memcpy(cid + 3, b->model->storage == VPI_STORAGE_EMMC ? "VEMMC" : "VSD32", 5);
		cid[8] = 0x10;
		memcpy(cid + 9, h, 4);
		cid[13] = 0x01;
		cid[14] = 0x9a;
		cid[15] = (uint8_t)((h[4] << 1) | 1);
		for (int i = 0; i < 16; i++)
			snprintf(b->hwid + 2 * i, 3, "%02x", cid[i]);
	}
	identity_hash(m, seed, "spi-flash-uid", h);
	for (int i = 0; i < 16; i++)
		snprintf(b->unique_id + 2 * i, 3, "%02x", h[i]);
}

/* ---- files ------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;
	int r = 0;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		r = -EIO;
		goto out;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	if (n && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		r = -EIO;
		goto out;
	}
	*data = buf;
	*len = (size_t)n;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return r;
}

/* Write via a temp file and rename, so a crash never leaves half a file. */
static int write_file_atomic(const char *path, const void *data, size_t len)
{
	char *tmp = NULL;
	FILE *f = NULL;
	int r = 0;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	f = fopen(tmp, "wb");
	if (!f) {
		r = -errno;
		goto out;
	}
	if ((len && fwrite(data, 1, len, f) != len) || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		r = -EIO;
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		r = -EIO;
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0)
		r = -errno;
out:
	if (f)
		fclose(f);
	if (r)
		unlink(tmp);
	free(tmp);
	return r;
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return s[2 * n] == '\0' ? 0 : -EINVAL;
}

/* <state>/otp: "name=value" lines. Unknown names are kept out (ignored). */
static int otp_load(struct vpi_board *b)
{
	FILE *f = fopen(b->otp_path, "r");
	char *line = NULL;
	size_t cap = 0;
	int r = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (getline(&line, &cap, f) > 0) {
		char *eq = strchr(line, '=');
		char *v;
		if (!eq || line[0] == '#')
			continue;
		*eq = '\0';
		v = eq + 1;
		v[strcspn(v, "\r\n")] = '\0';
		if (strcmp(line, "customer_key_hash") == 0)
			r = hex_decode(v, b->otp.key_hash, 32);
		else if (strcmp(line, "jtag_lock") == 0)
			b->otp.jtag_lock = atoi(v) != 0;
		else if (strcmp(line, "eeprom_write_protect") == 0)
			b->otp.eeprom_wp = atoi(v) != 0;
		else if (strcmp(line, "revoke_devkey") == 0)
			b->otp.revoke_devkey = atoi(v) != 0;
		else if (strcmp(line, "rpiboot_gpio") == 0)
			b->otp.rpiboot_gpio = (unsigned)atoi(v);
		else if (strcmp(line, "fwcrypto_private") == 0) {
			r = hex_decode(v, b->otp.fwcrypto_d, 32);
			b->otp.fwcrypto_init = r == 0;
		}
		if (r) {
			vpi_log(b, "OTP file %s: bad value for %s; fix or remove the state dir",
				b->otp_path, line);
			goto out;
		}
	}
out:
	free(line);
	fclose(f);
	return r;
}

static int otp_save(struct vpi_board *b)
{
	char kh[65], d[65];
	char *text = NULL;
	int n, r;

	hex_encode(b->otp.key_hash, 32, kh);
	hex_encode(b->otp.fwcrypto_d, 32, d);
	n = asprintf(&text,
		     "# virtual Pi OTP (one-way bits; do not edit)\n"
		     "customer_key_hash=%s\njtag_lock=%d\neeprom_write_protect=%d\n"
		     "revoke_devkey=%d\nrpiboot_gpio=%u\n%s%s%s",
		     kh, b->otp.jtag_lock, b->otp.eeprom_wp, b->otp.revoke_devkey,
		     b->otp.rpiboot_gpio, b->otp.fwcrypto_init ? "fwcrypto_private=" : "",
		     b->otp.fwcrypto_init ? d : "", b->otp.fwcrypto_init ? "\n" : "");
	if (n < 0)
		return -ENOMEM;
	r = write_file_atomic(b->otp_path, text, (size_t)n);
	free(text);
	return r;
}

static const char *fixture_eeprom_name(enum vpi_chip chip)
{
	return chip == VPI_CHIP_2712 ? "pieeprom-2026-08-12.bin" :
	       chip == VPI_CHIP_2711 ? "pieeprom-2026-08-04.bin" : NULL;
}

static int eeprom_create(struct vpi_board *b)
{
	const char *name = fixture_eeprom_name(b->model->chip);
	char *src = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	if (!name || access(b->eeprom_path, F_OK) == 0)
		return 0;
	src = path_join(vpi_firmware_dir(), name);
	if (!src)
		return -ENOMEM;
	r = read_file(src, &data, &len);
	if (r) {
		fprintf(stderr, "virtual-pi: cannot read the factory EEPROM image %s: %s; "
			"set RPI_SB_VPI_FIRMWARE to the rpi-firmware fixtures directory\n",
			src, strerror(-r));
		goto out;
	}
	r = write_file_atomic(b->eeprom_path, data, len);
out:
	free(src);
	free(data);
	return r;
}

/* <state>/identity pins model and seed: reopening with others is an error. */
static int identity_check(struct vpi_board *b)
{
	char *path = path_join(b->state_dir, "identity");
	char want[128], have[128] = "";
	FILE *f;
	int r = 0;

	if (!path)
		return -ENOMEM;
	snprintf(want, sizeof(want), "model=%s seed=%" PRIu32 "\n", b->model->name,
		 b->opts.serial_seed);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(have, sizeof(have), f))
			have[0] = '\0';
		fclose(f);
		if (strcmp(have, want) != 0) {
			have[strcspn(have, "\n")] = '\0';
			fprintf(stderr, "virtual-pi: state dir %s belongs to another board (%s); "
				"use another directory or remove it\n", b->state_dir, have);
			r = -EEXIST;
		}
	} else {
		r = write_file_atomic(path, want, strlen(want));
	}
	free(path);
	return r;
}

int vpi_board_open(const char *model, const char *state_dir, const struct vpi_board_opts *opts,
		   struct vpi_board **out)
{
	const struct vpi_model_info *mi = vpi_model_find(model);
	struct vpi_board *b = NULL;
	int r;

	*out = NULL;
	if (!mi) {
		fprintf(stderr, "virtual-pi: unknown model '%s' (pi5, pi500, cm5, cm5lite, pi4, "
			"pi400, cm4, zero2w)\n", model ? model : "(null)");
		return -EINVAL;
	}
	if (!state_dir || !*state_dir)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->lock = malloc(sizeof(*b->lock));
	if (!b->lock) {
		free(b);
		return -ENOMEM;
	}
	pthread_mutex_init(b->lock, NULL);
	b->model = mi;
	if (opts)
		b->opts = *opts;
	else
		vpi_board_opts_init(&b->opts);
	b->state_dir = strdup(state_dir);
	b->otp_path = path_join(state_dir, "otp");
	b->eeprom_path = path_join(state_dir, "eeprom.bin");
	b->storage_path = path_join(state_dir, "storage.img");
	b->log_path = path_join(state_dir, "vpi.log");
	if (!b->state_dir || !b->otp_path || !b->eeprom_path || !b->storage_path || !b->log_path) {
		r = -ENOMEM;
		goto out;
	}
	r = mkdir_p(state_dir, 0755);
	if (r) {
		fprintf(stderr, "virtual-pi: cannot create state dir %s: %s\n", state_dir,
			strerror(-r));
		goto out;
	}
	make_identity(b);
	r = identity_check(b);
	if (r)
		goto out;
	r = otp_load(b);
	if (r)
		goto out;
	if (access(b->otp_path, F_OK) != 0 && (r = otp_save(b)) != 0)
		goto out;
	r = eeprom_create(b);
	if (r)
		goto out;
	vpi_log(b, "board %s serial %016" PRIx64 " opened (state %s)", mi->name, b->serial64,
		state_dir);
	*out = b;
	b = NULL;
out:
	vpi_board_close(b);
	return r;
}

void vpi_board_close(struct vpi_board *b)
{
	if (!b)
		return;
	mbedtls_platform_zeroize(&b->otp, sizeof(b->otp));
	pthread_mutex_destroy(b->lock);
	free(b->lock);
	free(b->state_dir);
	free(b->otp_path);
	free(b->eeprom_path);
	free(b->storage_path);
	free(b->log_path);
	free(b);
}

const struct vpi_model_info *vpi_board_model(const struct vpi_board *b) { return b->model; }
const char *vpi_board_state_dir(const struct vpi_board *b) { return b->state_dir; }
uint32_t vpi_board_rom_serial(const struct vpi_board *b) { return (uint32_t)b->serial64; }
uint64_t vpi_board_serial64(const struct vpi_board *b) { return b->serial64; }
const char *vpi_board_storage_path(const struct vpi_board *b) { return b->storage_path; }
const char *vpi_board_storage_hwid(const struct vpi_board *b) { return b->hwid; }
const struct vpi_faults *vpi_board_faults(const struct vpi_board *b) { return &b->opts.faults; }
const struct vpi_board_opts *vpi_board_options(const struct vpi_board *b) { return &b->opts; }

uint64_t vpi_board_storage_bytes(const struct vpi_board *b)
{
	return b->opts.faults.storage_bytes ? b->opts.faults.storage_bytes : b->model->storage_bytes;
}

void vpi_board_macs(const struct vpi_board *b, uint8_t eth[6], uint8_t wifi[6], uint8_t bt[6])
{
	if (eth)
		memcpy(eth, b->mac_eth, 6);
	if (wifi)
		memcpy(wifi, b->mac_wifi, 6);
	if (bt)
		memcpy(bt, b->mac_bt, 6);
}

/* ---- OTP --------------------------------------------------------------- */

#define LOCKED_GET(b, expr) __extension__({ \
	pthread_mutex_lock((b)->lock); \
	__typeof__(expr) v_ = (expr); \
	pthread_mutex_unlock((b)->lock); \
	v_; })

static bool hash_is_zero(const uint8_t h[32])
{
	uint8_t acc = 0;
	for (int i = 0; i < 32; i++)
		acc |= h[i];
	return acc == 0;
}

bool vpi_otp_key_hash_programmed(const struct vpi_board *b)
{
	return LOCKED_GET(b, !hash_is_zero(b->otp.key_hash));
}

bool vpi_otp_jtag_locked(const struct vpi_board *b) { return LOCKED_GET(b, b->otp.jtag_lock); }
bool vpi_otp_eeprom_wp(const struct vpi_board *b) { return LOCKED_GET(b, b->otp.eeprom_wp); }
bool vpi_otp_devkey_revoked(const struct vpi_board *b) { return LOCKED_GET(b, b->otp.revoke_devkey); }
bool vpi_otp_fwcrypto_initialised(const struct vpi_board *b) { return LOCKED_GET(b, b->otp.fwcrypto_init); }
unsigned vpi_otp_rpiboot_gpio(const struct vpi_board *b) { return LOCKED_GET(b, b->otp.rpiboot_gpio); }

void vpi_otp_key_hash(const struct vpi_board *b, uint8_t hash[32])
{
	pthread_mutex_lock(b->lock);
	memcpy(hash, b->otp.key_hash, 32);
	pthread_mutex_unlock(b->lock);
}

int vpi_otp_program_key_hash(struct vpi_board *b, const uint8_t hash[32])
{
	int r = 0;
	char hex[65];

	hex_encode(hash, 32, hex);
	pthread_mutex_lock(b->lock);
	if (!hash_is_zero(b->otp.key_hash)) {
		if (memcmp(b->otp.key_hash, hash, 32) != 0)
			r = -EPERM;
		goto out;
	}
	memcpy(b->otp.key_hash, hash, 32);
	r = otp_save(b);
out:
	pthread_mutex_unlock(b->lock);
	if (r == -EPERM)
		vpi_log(b, "OTP: Conflicting OTP key: refusing to program %s over the burned hash", hex);
	else if (r == 0)
		vpi_log(b, "OTP updated for key %s", hex);
	return r;
}

static int otp_set_flag(struct vpi_board *b, bool *flag, const char *what)
{
	int r = 0;

	pthread_mutex_lock(b->lock);
	if (!*flag) {
		*flag = true;
		r = otp_save(b);
	}
	pthread_mutex_unlock(b->lock);
	if (r == 0)
		vpi_log(b, "OTP: %s set", what);
	return r;
}

int vpi_otp_program_jtag_lock(struct vpi_board *b) { return otp_set_flag(b, &b->otp.jtag_lock, "JTAG lock"); }
int vpi_otp_program_eeprom_wp(struct vpi_board *b) { return otp_set_flag(b, &b->otp.eeprom_wp, "EEPROM write protect"); }
int vpi_otp_program_revoke_devkey(struct vpi_board *b) { return otp_set_flag(b, &b->otp.revoke_devkey, "revoke devkey"); }

int vpi_otp_program_rpiboot_gpio(struct vpi_board *b, unsigned gpio)
{
	int r = 0;

	if (b->model->chip != VPI_CHIP_2711)
		return -EOPNOTSUPP;
	if (gpio != 2 && (gpio < 4 || gpio > 8))
		return -EINVAL;
	pthread_mutex_lock(b->lock);
	if (b->otp.rpiboot_gpio == 0) {
		b->otp.rpiboot_gpio = gpio;
		r = otp_save(b);
	} else if (b->otp.rpiboot_gpio != gpio) {
		r = -EPERM;   /* already burnt: the firmware reuses it only if unset */
	}
	pthread_mutex_unlock(b->lock);
	return r;
}

/* ---- fwcrypto (device-unique ECDSA P-256 key) -------------------------- */

int vpi_otp_fwcrypto_init(struct vpi_board *b)
{
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ecdsa_context ec;
	uint8_t ser[8];
	int r = 0;

	pthread_mutex_lock(b->lock);
	if (b->otp.fwcrypto_init)
		goto unlock;
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_ecdsa_init(&ec);
	for (int i = 0; i < 8; i++)
		ser[i] = (uint8_t)(b->serial64 >> (8 * i));
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, ser, sizeof(ser)) != 0 ||
	    mbedtls_ecdsa_genkey(&ec, MBEDTLS_ECP_DP_SECP256R1, mbedtls_ctr_drbg_random, &drbg) != 0 ||
	    mbedtls_mpi_write_binary(&ec.d, b->otp.fwcrypto_d, 32) != 0) {
		r = -EIO;
		goto free;
	}
	b->otp.fwcrypto_init = true;
	r = otp_save(b);
free:
	mbedtls_ecdsa_free(&ec);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
unlock:
	pthread_mutex_unlock(b->lock);
	if (r == 0)
		vpi_log(b, "OTP: fwcrypto key provisioned and locked");
	return r;
}

int vpi_otp_fwcrypto_hmac(struct vpi_board *b, const void *msg, size_t len, uint8_t out[32])
{
	int r = 0;

	pthread_mutex_lock(b->lock);
	if (!b->otp.fwcrypto_init) {
		r = -ENOKEY;
		goto out;
	}
	if (mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), b->otp.fwcrypto_d, 32,
			    msg, len, out) != 0)
		r = -EIO;
out:
	pthread_mutex_unlock(b->lock);
	return r;
}

/* Load the device key into @ec (d and Q). Caller holds the lock. */
static int fwcrypto_load(struct vpi_board *b, mbedtls_ecdsa_context *ec)
{
	if (!b->otp.fwcrypto_init)
		return -ENOKEY;
	if (mbedtls_ecp_group_load(&ec->grp, MBEDTLS_ECP_DP_SECP256R1) != 0 ||
	    mbedtls_mpi_read_binary(&ec->d, b->otp.fwcrypto_d, 32) != 0 ||
	    mbedtls_ecp_mul(&ec->grp, &ec->Q, &ec->d, &ec->grp.G, NULL, NULL) != 0)
		return -EIO;
	return 0;
}

int vpi_otp_fwcrypto_pubkey_pem(struct vpi_board *b, char **pem)
{
	mbedtls_pk_context pk;
	unsigned char buf[1024];
	int r;

	*pem = NULL;
	mbedtls_pk_init(&pk);
	pthread_mutex_lock(b->lock);
	r = mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) ? -EIO :
	    fwcrypto_load(b, mbedtls_pk_ec(pk));
	pthread_mutex_unlock(b->lock);
	if (r)
		goto out;
	mbedtls_mpi_free(&mbedtls_pk_ec(pk)->d);   /* public half only */
	if (mbedtls_pk_write_pubkey_pem(&pk, buf, sizeof(buf)) != 0) {
		r = -EIO;
		goto out;
	}
	*pem = strdup((const char *)buf);
	if (!*pem)
		r = -ENOMEM;
out:
	mbedtls_pk_free(&pk);
	mbedtls_platform_zeroize(buf, sizeof(buf));
	return r;
}

int vpi_otp_fwcrypto_sign_hash(struct vpi_board *b, const uint8_t digest[32], uint8_t **der,
			       size_t *der_len)
{
	mbedtls_ecdsa_context ec;
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	unsigned char sig[MBEDTLS_ECDSA_MAX_LEN];
	size_t n = 0;
	int r;

	*der = NULL;
	mbedtls_ecdsa_init(&ec);
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	pthread_mutex_lock(b->lock);
	r = fwcrypto_load(b, &ec);
	pthread_mutex_unlock(b->lock);
	if (r)
		goto out;
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0) != 0 ||
	    mbedtls_ecdsa_write_signature(&ec, MBEDTLS_MD_SHA256, digest, 32, sig, &n,
					  mbedtls_ctr_drbg_random, &drbg) != 0) {
		r = -EIO;
		goto out;
	}
	*der = malloc(n);
	if (!*der) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(*der, sig, n);
	*der_len = n;
out:
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	mbedtls_ecdsa_free(&ec);
	return r;
}

/* ---- SPI EEPROM -------------------------------------------------------- */

static uint32_t eeprom_part_size(const struct vpi_board *b)
{
	return b->model->chip == VPI_CHIP_2712 ? 2097152u :
	       b->model->chip == VPI_CHIP_2711 ? 524288u : 0;
}

bool vpi_eeprom_write_protected(const struct vpi_board *b)
{
	return vpi_otp_eeprom_wp(b) && VPI_GUESS_WP_PIN_LOW && !b->opts.wp_pin_high;
}

int vpi_eeprom_read(struct vpi_board *b, uint8_t **data, size_t *len)
{
	int r;

	if (!eeprom_part_size(b))
		return -ENODEV;
	pthread_mutex_lock(b->lock);
	r = read_file(b->eeprom_path, data, len);
	pthread_mutex_unlock(b->lock);
	return r;
}

int vpi_eeprom_write(struct vpi_board *b, const void *data, size_t len)
{
	int r;

	if (!eeprom_part_size(b))
		return -ENODEV;
	if (len > eeprom_part_size(b))
		return -EFBIG;
	if (vpi_eeprom_write_protected(b)) {
		vpi_log(b, "SPI flash: write refused, status register write protect is set "
			"and /WP is low");
		return -EROFS;
	}
	pthread_mutex_lock(b->lock);
	r = write_file_atomic(b->eeprom_path, data, len);
	pthread_mutex_unlock(b->lock);
	return r;
}

int vpi_eeprom_set_write_protect(struct vpi_board *b, bool on)
{
	int r = 0;

	if (!eeprom_part_size(b))
		return -ENODEV;
	if (on)
		return vpi_otp_program_eeprom_wp(b);
	pthread_mutex_lock(b->lock);
	if (b->otp.eeprom_wp) {
		if (VPI_GUESS_WP_PIN_LOW && !b->opts.wp_pin_high) {
			r = -EROFS;
		} else {
			b->otp.eeprom_wp = false;
			r = otp_save(b);
		}
	}
	pthread_mutex_unlock(b->lock);
	if (r == -EROFS)
		vpi_log(b, "SPI flash: cannot clear write protect while /WP is low");
	return r;
}

int vpi_eeprom_info(struct vpi_board *b, uint32_t *size, char jedec[7], char unique_id[33],
		    uint64_t *build_ts)
{
	static const char tag[] = "BUILD_TIMESTAMP=";
	uint8_t *img = NULL;
	size_t len = 0;
	int r;

	r = vpi_eeprom_read(b, &img, &len);
	if (r)
		return r;
	if (size)
		*size = eeprom_part_size(b);
	if (jedec)   /* Winbond W25Q16 (2 MiB) on 2712, W25X40 (512 KiB) on 2711 */
		snprintf(jedec, 7, "%s", b->model->chip == VPI_CHIP_2712 ? "ef4015" : "ef3013");
	if (unique_id)
		snprintf(unique_id, 33, "%s", b->unique_id);
	if (build_ts) {
		void *p = memmem(img, len, tag, sizeof(tag) - 1);
		*build_ts = 0;
		if (p) {
			size_t off = (size_t)((uint8_t *)p - img) + sizeof(tag) - 1;
			while (off < len && img[off] >= '0' && img[off] <= '9')
				*build_ts = *build_ts * 10 + (uint64_t)(img[off++] - '0');
		}
	}
	free(img);
	return 0;
}

/* ---- phases and faults ------------------------------------------------- */

static void fire_unplug(struct vpi_board *b)
{
	void (*fn)(void *) = NULL;
	void *usrptr = NULL;

	pthread_mutex_lock(b->lock);
	if (!b->unplugged) {
		b->unplugged = true;
		fn = b->unplug_hook;
		usrptr = b->unplug_usrptr;
	}
	pthread_mutex_unlock(b->lock);
	if (fn)
		fn(usrptr);
}

int vpi_board_phase_enter(struct vpi_board *b, const char *phase)
{
	bool fire;

	pthread_mutex_lock(b->lock);
	snprintf(b->phase, sizeof(b->phase), "%s", phase);
	b->phase_bytes = 0;
	fire = !b->unplugged && b->opts.faults.unplug_phase[0] &&
	       strcmp(b->opts.faults.unplug_phase, phase) == 0 && b->opts.faults.unplug_offset == 0;
	pthread_mutex_unlock(b->lock);
	vpi_log(b, "phase %s", phase);
	if (fire) {
		vpi_log(b, "fault: unplug at the start of phase %s", phase);
		fire_unplug(b);
	}
	return vpi_board_unplugged(b) ? -ENODEV : 0;
}

int vpi_board_phase_bytes(struct vpi_board *b, uint64_t n)
{
	bool fire = false;
	uint64_t at = 0;
	char phase[32];

	pthread_mutex_lock(b->lock);
	snprintf(phase, sizeof(phase), "%s", b->phase);
	if (!b->unplugged && b->opts.faults.unplug_phase[0] &&
	    strcmp(b->opts.faults.unplug_phase, b->phase) == 0 &&
	    b->phase_bytes < b->opts.faults.unplug_offset &&
	    b->phase_bytes + n >= b->opts.faults.unplug_offset) {
		fire = true;
		at = b->opts.faults.unplug_offset;
	}
	b->phase_bytes += n;
	pthread_mutex_unlock(b->lock);
	if (fire) {
		vpi_log(b, "fault: unplug at byte %" PRIu64 " of phase %s", at, phase);
		fire_unplug(b);
	}
	return vpi_board_unplugged(b) ? -ENODEV : 0;
}

bool vpi_board_phase_stalled(struct vpi_board *b)
{
	return LOCKED_GET(b, b->opts.faults.stall_phase[0] &&
				     strcmp(b->opts.faults.stall_phase, b->phase) == 0);
}

bool vpi_board_unplugged(const struct vpi_board *b) { return LOCKED_GET(b, b->unplugged); }

void vpi_board_unplug(struct vpi_board *b)
{
	vpi_log(b, "unplugged");
	fire_unplug(b);
}

void vpi_board_replug(struct vpi_board *b)
{
	pthread_mutex_lock(b->lock);
	b->unplugged = false;
	pthread_mutex_unlock(b->lock);
}

void vpi_board_set_unplug_hook(struct vpi_board *b, void (*fn)(void *), void *usrptr)
{
	pthread_mutex_lock(b->lock);
	b->unplug_hook = fn;
	b->unplug_usrptr = usrptr;
	pthread_mutex_unlock(b->lock);
}

/* ---- log --------------------------------------------------------------- */

void vpi_log(struct vpi_board *b, const char *fmt, ...)
{
	char *msg = NULL;
	struct timespec ts;
	va_list ap;
	FILE *f;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (getenv("RPI_SB_VPI_VERBOSE"))
		fprintf(stderr, "vpi %08" PRIx32 ": %s\n", (uint32_t)b->serial64, msg);
	f = b->log_path ? fopen(b->log_path, "a") : NULL;
	if (f) {
		fprintf(f, "%ld.%03ld %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000000, msg);
		fclose(f);
	}
	free(msg);
}
