/* vpi/fastbootd: the virtual Pi's rpi-fastbootd (shared/spec/fastboot.md §3-5).
 *
 * Owns the command parser, the getvar table, the download buffer, flashing
 * (raw and sparse) into the storage file, the partition table commands, LUKS
 * (oem cryptinit/cryptopen) and the OEM extras. A session (one call of
 * vpi_fastbootd_serve) runs on the thread that owns its channel; the per-board
 * "kernel" state (open mappings, LEDs, cached key status) is shared by the
 * sessions of a board and guarded by its mutex, so a USB session and TCP
 * data-plane sessions of one board serialise like the daemon's device mutex.
 * Where the spec leaves a value open, a VPI_GUESS_* constant names the choice;
 * doc/virtual-pi-gadget.md lists them. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha256.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vpi/fastbootd.h"
#include "vpi/luks.h"
#include "vpi/sparse_dev.h"
#include "vpi/storage.h"

/* Spec §3.4: DT strings keep their trailing NUL in getvar replies (inferred there). */
#define VPI_GUESS_DT_TRAILING_NUL 1
/* Spec §3.4 version-bootloader "may be empty": the simulator's DT has no
 * chosen/bootloader/version property. */
#define VPI_GUESS_BOOTLOADER_VERSION ""
/* Spec §3.4 rpi-duid: the DUID string is the 16-hex serial64 (the example in
 * the spec differs from the serial example; no rule is given). */
#define VPI_GUESS_DUID_IS_SERIAL64 1
/* Spec §3.4 eeprom-spi-speed: not given; the Pi 5 bootloader's SPI clock. */
#define VPI_GUESS_EEPROM_SPI_HZ "20000000"
/* Spec §3.3 partinit without [id]: libfdisk picks a random id; the simulator
 * derives it from the serial so golden files stay stable. */
#define VPI_GUESS_DISK_ID_FROM_SERIAL 1
/* Spec §3.4 mmc-extcsd failure text on SD cards: not given. */
#define VPI_GUESS_EXTCSD_FAIL "Unable to read EXT_CSD"
/* Spec §3.3 partinit/partapp usage suffixes after "e.g:" are elided ("…"). */
#define PARTINIT_EG "e.g:\r\n\toem partinit mmcblk0 <label> [id]"
#define PARTAPP_EG "e.g:\r\n\toem partapp mmcblk0 <part code> <size>"
#define LED_USAGE "Usage:\r\n\toem led PWR 0"
#define CRYPTINIT_USAGE "Usage: oem cryptinit <block_device> <label> [cipher]"

#define MAX_MAPS 4
#define MAX_LEDS 4

struct map_entry {
	char name[64];              /* "cryptroot" -> mapper/cryptroot */
	char part[80];              /* the partition it holds, e.g. "mmcblk0p2" */
	struct vpi_luks_map *m;
};

struct led_entry {
	char name[16];
	char value[32];
};

/* What the gadget's Linux holds between host sessions, per board. */
struct board_state {
	struct board_state *next;
	struct vpi_board *b;
	pthread_mutex_t lock;       /* the daemon's device mutex */
	struct vpi_storage *s;
	bool key_cached;            /* fwcrypto key status cached at daemon start */
	struct map_entry maps[MAX_MAPS];
	struct led_entry leds[MAX_LEDS];
	char *kmsg[32];             /* ring of kernel-log-like lines for getvar:dmesg */
	unsigned kmsg_next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct board_state *registry;

struct bmap_range {
	uint32_t first, last;
	uint8_t sha[32];
};

struct session {
	struct vpi_board *b;
	struct board_state *st;
	const struct vpi_fb_channel *ch;
	enum vpi_fb_mode mode;
	bool split;
	uint8_t *buf;               /* download buffer */
	size_t len;                 /* bytes staged (0 = empty) */
	size_t cap;                 /* bytes allocated */
	bool buf_mapped;            /* buf is a file mapping (download), not malloc'd */
	size_t buf_dropped;         /* bytes of buf already given back (page aligned) */
	struct bmap_range *bmap;
	uint32_t bmap_n, bmap_block;
	char bmap_disk[32];
	struct timespec link_busy;  /* link speed model */
};

/* ------------------------------------------------------------------ */
/* board state */

static void kmsg(struct board_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kmsg(struct board_state *st, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;
	unsigned i = st->kmsg_next++ % (sizeof(st->kmsg) / sizeof(st->kmsg[0]));

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	va_end(ap);
	free(st->kmsg[i]);
	st->kmsg[i] = line;
	if (line)
		vpi_log(st->b, "fastbootd: %s", line);
}

static void state_free(struct board_state *st)
{
	if (!st)
		return;
	for (int i = 0; i < MAX_MAPS; i++)
		vpi_luks_close(st->maps[i].m);
	for (size_t i = 0; i < sizeof(st->kmsg) / sizeof(st->kmsg[0]); i++)
		free(st->kmsg[i]);
	vpi_storage_close(st->s);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static int state_get(struct vpi_board *b, struct board_state **out)
{
	struct board_state *st;
	int rc = 0;

	pthread_mutex_lock(&registry_lock);
	for (st = registry; st; st = st->next)
		if (st->b == b)
			break;
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st) {
			rc = -ENOMEM;
			goto out;
		}
		pthread_mutex_init(&st->lock, NULL);
		st->b = b;
		st->key_cached = vpi_otp_fwcrypto_initialised(b);
		rc = vpi_storage_open_board(b, &st->s);
		if (rc) {
			vpi_log(b, "fastbootd: cannot open storage %s: %s", vpi_board_storage_path(b),
				strerror(-rc));
			state_free(st);
			st = NULL;
			goto out;
		}
		st->next = registry;
		registry = st;
	}
out:
	pthread_mutex_unlock(&registry_lock);
	*out = st;
	return rc;
}

void vpi_fastbootd_board_reset(struct vpi_board *b)
{
	struct board_state **pp, *st = NULL;

	pthread_mutex_lock(&registry_lock);
	for (pp = &registry; *pp; pp = &(*pp)->next) {
		if ((*pp)->b == b) {
			st = *pp;
			*pp = st->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	state_free(st);
}

int vpi_fastbootd_led(struct vpi_board *b, const char *name, char *out, size_t len)
{
	struct board_state *st;
	int rc = -ENOENT;

	pthread_mutex_lock(&registry_lock);
	for (st = registry; st; st = st->next) {
		if (st->b != b)
			continue;
		for (int i = 0; i < MAX_LEDS; i++) {
			if (strcmp(st->leds[i].name, name) == 0) {
				snprintf(out, len, "%s", st->leds[i].value);
				rc = 0;
			}
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* responses */

static int send_raw(struct session *ss, const char *status, const void *msg, size_t len)
{
	uint8_t out[VPI_FB_MAX_RESPONSE];
	ssize_t n;

	if (len > VPI_FB_MAX_RESPONSE - 4)
		len = VPI_FB_MAX_RESPONSE - 4;   /* WriteStatus truncates silently */
	memcpy(out, status, 4);
	if (len)
		memcpy(out + 4, msg, len);
	n = ss->ch->write(ss->ch->usrptr, out, 4 + len);
	if (n < 0)
		return (int)n;
	return n == (ssize_t)(4 + len) ? 0 : -EIO;
}

static int reply(struct session *ss, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int reply(struct session *ss, const char *status, const char *fmt, ...)
{
	char msg[VPI_FB_MAX_RESPONSE];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	return send_raw(ss, status, msg, (size_t)n);
}

#define OKAY(ss, ...) reply(ss, "OKAY", __VA_ARGS__)
#define FAIL(ss, ...) reply(ss, "FAIL", __VA_ARGS__)
#define INFO(ss, ...) reply(ss, "INFO", __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* argument helpers */

struct args {
	char *v[32];
	int n;
	char *copy;
};

/* Split on every @sep (no merging: "a  b" gives an empty middle argument). */
static int split(const char *cmd, char sep, struct args *a)
{
	char *p;

	memset(a, 0, sizeof(*a));
	a->copy = strdup(cmd);
	if (!a->copy)
		return -ENOMEM;
	p = a->copy;
	a->v[a->n++] = p;
	for (; *p; p++) {
		if (*p != sep)
			continue;
		*p = '\0';
		if (a->n == (int)(sizeof(a->v) / sizeof(a->v[0])))
			break;   /* further text stays part of the last argument */
		a->v[a->n++] = p + 1;
	}
	return 0;
}

static bool bad_node_name(const char *p)
{
	return strncmp(p, "../", 3) == 0 || strstr(p, "/../") != NULL || strcmp(p, "..") == 0;
}

static struct map_entry *find_map(struct board_state *st, const char *name)
{
	for (int i = 0; i < MAX_MAPS; i++)
		if (st->maps[i].m && strcmp(st->maps[i].name, name) == 0)
			return &st->maps[i];
	return NULL;
}

/* A node held by a mapping (its partition, or the disk under it) is busy
 * for O_EXCL opens. */
static bool node_busy(struct board_state *st, const char *node)
{
	const char *disk = vpi_storage_disk(st->s);

	for (int i = 0; i < MAX_MAPS; i++) {
		if (!st->maps[i].m)
			continue;
		if (strcmp(st->maps[i].part, node) == 0 || strcmp(disk, node) == 0)
			return true;
	}
	return false;
}

/* A block device node: a region of the storage file or a mapping. */
struct node {
	char name[80];
	uint64_t start, size;
	unsigned partno;
	struct vpi_luks_map *map;
};

static int node_open(struct board_state *st, const char *name, struct node *n)
{
	memset(n, 0, sizeof(*n));
	if (strlen(name) >= sizeof(n->name))
		return -ENOENT;
	snprintf(n->name, sizeof(n->name), "%s", name);
	if (strncmp(name, "mapper/", 7) == 0) {
		struct map_entry *me = find_map(st, name + 7);
		if (!me)
			return -ENOENT;
		n->map = me->m;
		n->size = vpi_luks_size(me->m);
		return 0;
	}
	return vpi_storage_resolve(st->s, name, &n->start, &n->size, &n->partno);
}

static int node_write(struct board_state *st, const struct node *n, uint64_t off, const void *p, size_t len)
{
	if (off > n->size || len > n->size - off)
		return -ENOSPC;
	if (n->map)
		return vpi_luks_write(n->map, off, p, len);
	return vpi_storage_pwrite(st->s, n->start + off, p, len);
}

static int node_fill(struct board_state *st, const struct node *n, uint64_t off, uint64_t len, uint32_t w)
{
	if (off > n->size || len > n->size - off)
		return -ENOSPC;
	if (n->map)
		return vpi_luks_fill(n->map, off, len, w);
	return vpi_storage_fill(st->s, n->start + off, len, w);
}

static int node_read(struct board_state *st, const struct node *n, uint64_t off, void *p, size_t len)
{
	if (off > n->size || len > n->size - off)
		return -ENOSPC;
	if (n->map)
		return vpi_luks_read(n->map, off, p, len);
	return vpi_storage_pread(st->s, n->start + off, p, len);
}

/* ------------------------------------------------------------------ */
/* link speed model */

static void link_pace(struct session *ss, size_t n)
{
	const struct vpi_board_opts *o = vpi_board_options(ss->b);
	struct timespec now;
	uint64_t ns;

	if (!o || !o->link_bytes_per_s)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (ss->link_busy.tv_sec < now.tv_sec ||
	    (ss->link_busy.tv_sec == now.tv_sec && ss->link_busy.tv_nsec < now.tv_nsec))
		ss->link_busy = now;
	ns = (uint64_t)n * 1000000000u / o->link_bytes_per_s + (uint64_t)ss->link_busy.tv_nsec;
	ss->link_busy.tv_sec += (time_t)(ns / 1000000000u);
	ss->link_busy.tv_nsec = (long)(ns % 1000000000u);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ss->link_busy, NULL) == EINTR)
		;
}

/* ------------------------------------------------------------------ */
/* getvar */

struct val {
	char *p;
	size_t len;
	bool fail;                  /* p holds the FAIL message */
};

static int val_set(struct val *v, bool fail, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int val_set(struct val *v, bool fail, const char *fmt, ...)
{
	va_list ap;
	int n;

	free(v->p);
	va_start(ap, fmt);
	n = vasprintf(&v->p, fmt, ap);
	va_end(ap);
	if (n < 0) {
		v->p = NULL;
		return -ENOMEM;
	}
	v->len = (size_t)n;
	v->fail = fail;
	return 0;
}

#define VAL(v, ...) val_set(v, false, __VA_ARGS__)
#define VFAIL(v, ...) val_set(v, true, __VA_ARGS__)

/* A device-tree string: value plus its trailing NUL. */
static int val_dt(struct val *v, const char *s)
{
	int rc = VAL(v, "%s", s);
	if (!rc && VPI_GUESS_DT_TRAILING_NUL)
		v->len++;   /* vasprintf's terminator is the property's NUL */
	return rc;
}

typedef int (*var_fn)(struct session *ss, const char *arg, struct val *v);

static int var_version(struct session *ss, const char *arg, struct val *v) { return VAL(v, VPI_FB_VERSION); }
static int var_version_bl(struct session *ss, const char *arg, struct val *v)
{
	return val_dt(v, VPI_GUESS_BOOTLOADER_VERSION);
}
static int var_version_fbd(struct session *ss, const char *arg, struct val *v)
{
	return VAL(v, VPI_FB_DAEMON_VERSION);
}
static int var_product(struct session *ss, const char *arg, struct val *v)
{
	return val_dt(v, vpi_board_model(ss->b)->product);
}
static int var_serialno(struct session *ss, const char *arg, struct val *v)
{
	char s[17];
	snprintf(s, sizeof(s), "%016" PRIx64, vpi_board_serial64(ss->b));
	return val_dt(v, s);
}
static int var_duid(struct session *ss, const char *arg, struct val *v)
{
	return var_serialno(ss, arg, v);
}
static int var_secure(struct session *ss, const char *arg, struct val *v)
{
	/* rpi-otp-private-key -c: the device private key rows are non-zero. */
	return VAL(v, "%s", vpi_otp_fwcrypto_initialised(ss->b) ? "yes" : "no");
}
static int var_maxdl(struct session *ss, const char *arg, struct val *v)
{
	return VAL(v, "0x%08x", VPI_FB_MAX_DOWNLOAD);
}

static const char *node_arg(const char *arg)
{
	return strncmp(arg, "/dev/", 5) == 0 ? arg + 5 : arg;
}

static int var_partsize(struct session *ss, const char *arg, struct val *v)
{
	struct node n;

	if (!arg || !*arg)
		return VFAIL(v, "Missing argument");
	arg = node_arg(arg);
	if (bad_node_name(arg) || node_open(ss->st, arg, &n) || node_busy(ss->st, arg))
		return VFAIL(v, "Could not open partition");
	return VAL(v, "0x%" PRIX64, n.size);
}
static int var_parttype(struct session *ss, const char *arg, struct val *v)
{
	struct node n;

	if (!arg || !*arg || node_open(ss->st, node_arg(arg), &n))
		return VFAIL(v, "Invalid partition");
	return VFAIL(v, "Unable to retrieve partition type");
}
static int var_islogical(struct session *ss, const char *arg, struct val *v)
{
	struct node n;

	if (!arg || bad_node_name(arg) || node_open(ss->st, arg, &n))
		return VFAIL(v, "Partition not found");
	return VAL(v, "no");
}
static int var_yes(struct session *ss, const char *arg, struct val *v) { return VAL(v, "yes"); }
static int var_cpuabi(struct session *ss, const char *arg, struct val *v) { return VAL(v, "arm64-v8a"); }
static int var_maxfetch(struct session *ss, const char *arg, struct val *v)
{
	return VFAIL(v, "fetch not supported on user builds");
}
static int var_pubkey(struct session *ss, const char *arg, struct val *v)
{
	char *pem = NULL;
	int rc;

	if (vpi_otp_fwcrypto_pubkey_pem(ss->b, &pem) || !pem)
		return VFAIL(v, "Could not read public key");
	rc = VAL(v, "%s", pem);
	free(pem);
	return rc;
}
static int var_privkey(struct session *ss, const char *arg, struct val *v)
{
	/* The simulated key never leaves the OTP: "refused" once provisioned; a
	 * blank slot has no key to show (the real tool prints the zero key). */
	return VAL(v, "%s", vpi_otp_fwcrypto_initialised(ss->b) ? "refused" : "error");
}
static int var_otplock(struct session *ss, const char *arg, struct val *v)
{
	return VAL(v, "%s", vpi_otp_fwcrypto_initialised(ss->b) ? "ok" : "not-provisioned");
}

static int rev_field(struct session *ss, struct val *v, unsigned shift, uint32_t mask)
{
	return VAL(v, "0x%X", (vpi_board_model(ss->b)->revision_code >> shift) & mask);
}
static int var_rev_type(struct session *ss, const char *arg, struct val *v) { return rev_field(ss, v, 4, 0xff); }
static int var_rev_proc(struct session *ss, const char *arg, struct val *v) { return rev_field(ss, v, 12, 0xf); }
static int var_rev_manu(struct session *ss, const char *arg, struct val *v) { return rev_field(ss, v, 16, 0xf); }
static int var_rev_mem(struct session *ss, const char *arg, struct val *v) { return rev_field(ss, v, 20, 0x7); }
static int var_rev_rev(struct session *ss, const char *arg, struct val *v) { return rev_field(ss, v, 0, 0xf); }

static int var_sdram(struct session *ss, const char *arg, struct val *v)
{
	/* DT rpi-sdram-size-gbit x 10^9 / 8, as the daemon computes it. */
	uint64_t gbit = vpi_board_model(ss->b)->ram_bytes * 8u >> 30;
	return VAL(v, "%" PRIu64, gbit * 1000000000u / 8u);
}

static int mac(struct session *ss, struct val *v, int which)
{
	uint8_t m[3][6];
	const uint8_t *p;

	vpi_board_macs(ss->b, m[0], m[1], m[2]);
	p = m[which];
	return VAL(v, "%02x:%02x:%02x:%02x:%02x:%02x", p[0], p[1], p[2], p[3], p[4], p[5]);
}
static int var_mac_eth(struct session *ss, const char *arg, struct val *v) { return mac(ss, v, 0); }
static int var_mac_wifi(struct session *ss, const char *arg, struct val *v) { return mac(ss, v, 1); }
static int var_mac_bt(struct session *ss, const char *arg, struct val *v) { return mac(ss, v, 2); }

static bool is_mmc(struct session *ss)
{
	return vpi_board_model(ss->b)->storage != VPI_STORAGE_NVME;
}
/* sysfs text keeps its trailing newline; empty when there is no mmcblk0. */
static int var_mmc_ssize(struct session *ss, const char *arg, struct val *v)
{
	return is_mmc(ss) ? VAL(v, "512\n") : VAL(v, "%s", "");
}
static int var_mmc_scount(struct session *ss, const char *arg, struct val *v)
{
	return is_mmc(ss) ? VAL(v, "%" PRIu64 "\n", vpi_storage_size(ss->st->s) / 512) : VAL(v, "%s", "");
}
static int var_mmc_cid(struct session *ss, const char *arg, struct val *v)
{
	return is_mmc(ss) ? VAL(v, "%s\n", vpi_board_storage_hwid(ss->b)) : VAL(v, "%s", "");
}

/* DT chosen/bootloader/signed bits (VPI_GUESS_SIGNED_BITS): bit 0 secure
 * boot enforced (key hash burned), bit 2 devkey revoked, bit 3 OTP key hash. */
static int signed_bit(struct session *ss, struct val *v, bool set)
{
	return VAL(v, "%s", set ? "present" : "not present");
}
static int var_sec_eeprom(struct session *ss, const char *arg, struct val *v)
{
	return signed_bit(ss, v, vpi_otp_key_hash_programmed(ss->b));
}
static int var_sec_devkey(struct session *ss, const char *arg, struct val *v)
{
	return signed_bit(ss, v, vpi_otp_devkey_revoked(ss->b));
}
static int var_sec_otp(struct session *ss, const char *arg, struct val *v)
{
	return signed_bit(ss, v, vpi_otp_key_hash_programmed(ss->b));
}

static const char *spidev(struct session *ss)
{
	switch (vpi_board_model(ss->b)->chip) {
	case VPI_CHIP_2712: return "/dev/spidev10.0";
	case VPI_CHIP_2711: return "/dev/spidev0.0";
	default: return NULL;
	}
}
static int var_eeprom_dev(struct session *ss, const char *arg, struct val *v)
{
	return VAL(v, "%s", spidev(ss) ? spidev(ss) : "not available");
}
static int eeprom_fact(struct session *ss, struct val *v, int which)
{
	uint32_t size;
	char jedec[7], uid[33];
	uint64_t ts;

	if (!spidev(ss) || vpi_eeprom_info(ss->b, &size, jedec, uid, &ts))
		return VAL(v, "not available");
	switch (which) {
	case 0: return VAL(v, "%" PRIu32, size);
	case 1: return VAL(v, "%s", jedec);
	case 2: return VAL(v, "%s", uid);
	default: return ts ? VAL(v, "%" PRIu64, ts) : VAL(v, "not available");
	}
}
static int var_eeprom_size(struct session *ss, const char *arg, struct val *v) { return eeprom_fact(ss, v, 0); }
static int var_eeprom_jedec(struct session *ss, const char *arg, struct val *v) { return eeprom_fact(ss, v, 1); }
static int var_eeprom_uid(struct session *ss, const char *arg, struct val *v) { return eeprom_fact(ss, v, 2); }
static int var_bl_ts(struct session *ss, const char *arg, struct val *v) { return eeprom_fact(ss, v, 3); }
static int var_eeprom_speed(struct session *ss, const char *arg, struct val *v)
{
	return VAL(v, "%s", spidev(ss) ? VPI_GUESS_EEPROM_SPI_HZ : "not available");
}

static void hex(char *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int var_eeprom_sha(struct session *ss, const char *arg, struct val *v)
{
	uint8_t *img = NULL, d[32];
	size_t len;
	char h[65];

	if (!spidev(ss) || vpi_eeprom_read(ss->b, &img, &len))
		return VAL(v, "not available");
	mbedtls_sha256_ret(img, len, d, 0);
	free(img);
	hex(h, d, 32);
	return VAL(v, "%s", h);
}

/* The virtual board has no network interface: end0/eth0 carry no address. */
static int var_v4(struct session *ss, const char *arg, struct val *v) { return VFAIL(v, "No IPv4 address found"); }
static int var_v4gw(struct session *ss, const char *arg, struct val *v) { return VFAIL(v, "No IPv4 gateway found"); }
static int var_v4nm(struct session *ss, const char *arg, struct val *v) { return VFAIL(v, "No IPv4 netmask found"); }
static int var_v4dns(struct session *ss, const char *arg, struct val *v) { return VFAIL(v, "No IPv4 DNS servers found"); }
static int var_v6(struct session *ss, const char *arg, struct val *v) { return VFAIL(v, "No IPv6 address found"); }
static int var_v6gw(struct session *ss, const char *arg, struct val *v) { return VFAIL(v, "No IPv6 gateway found"); }
static int var_v6nm(struct session *ss, const char *arg, struct val *v) { return VFAIL(v, "No IPv6 prefix length found"); }
static int var_v6dns(struct session *ss, const char *arg, struct val *v) { return VFAIL(v, "No IPv6 DNS servers found"); }
static int var_no(struct session *ss, const char *arg, struct val *v) { return VAL(v, "no"); }

static int var_blockdevs(struct session *ss, const char *arg, struct val *v)
{
	return VAL(v, "%s", vpi_storage_disk(ss->st->s));
}
static int var_bdsize(struct session *ss, const char *arg, struct val *v)
{
	if (!arg || !*arg)
		return VFAIL(v, "Missing device name");
	if (strchr(arg, '/') || strstr(arg, ".."))
		return VFAIL(v, "Invalid device name");
	if (strcmp(arg, vpi_storage_disk(ss->st->s)))
		return VFAIL(v, "Cannot read device size");
	return VAL(v, "%" PRIu64, vpi_storage_size(ss->st->s));
}
static int var_bdtype(struct session *ss, const char *arg, struct val *v)
{
	enum vpi_storage_kind k = vpi_board_model(ss->b)->storage;

	if (!arg || !*arg)
		return VFAIL(v, "Missing device name");
	if (strchr(arg, '/') || strstr(arg, ".."))
		return VFAIL(v, "Invalid device name");
	if (strcmp(arg, vpi_storage_disk(ss->st->s)) == 0)
		return VAL(v, "%s", k == VPI_STORAGE_NVME ? "nvme" : k == VPI_STORAGE_EMMC ? "emmc" : "sd");
	if (strncmp(arg, "mmcblk", 6) == 0)
		return VAL(v, "mmc");
	if (strncmp(arg, "nvme", 4) == 0)
		return VAL(v, "nvme");
	if (strncmp(arg, "sd", 2) == 0)
		return VAL(v, "scsi");
	return VAL(v, "unknown");
}
static int var_dataplane(struct session *ss, const char *arg, struct val *v)
{
	return VAL(v, "%s", ss->split ? "yes" : "no");
}

enum { VAR_PLAIN, VAR_PART, VAR_DISK };

static const struct var_entry {
	const char *name;
	var_fn fn;
	int kind;                   /* for getvar:all: which arguments to enumerate */
} vars[] = {
	{ "version", var_version, VAR_PLAIN },
	{ "version-bootloader", var_version_bl, VAR_PLAIN },
	{ "version-fastbootd", var_version_fbd, VAR_PLAIN },
	{ "product", var_product, VAR_PLAIN },
	{ "serialno", var_serialno, VAR_PLAIN },
	{ "secure", var_secure, VAR_PLAIN },
	{ "max-download-size", var_maxdl, VAR_PLAIN },
	{ "partition-size", var_partsize, VAR_PART },
	{ "partition-type", var_parttype, VAR_PART },
	{ "is-logical", var_islogical, VAR_PART },
	{ "is-userspace", var_yes, VAR_PLAIN },
	{ "cpu-abi", var_cpuabi, VAR_PLAIN },
	{ "max-fetch-size", var_maxfetch, VAR_PLAIN },
	{ "public-key", var_pubkey, VAR_PLAIN },
	{ "private-key", var_privkey, VAR_PLAIN },
	{ "otp-lock-status", var_otplock, VAR_PLAIN },
	{ "revision-type", var_rev_type, VAR_PLAIN },
	{ "revision-processor", var_rev_proc, VAR_PLAIN },
	{ "revision-manufacturer", var_rev_manu, VAR_PLAIN },
	{ "revision-memory", var_rev_mem, VAR_PLAIN },
	{ "revision-revision", var_rev_rev, VAR_PLAIN },
	{ "sdram-size-bytes", var_sdram, VAR_PLAIN },
	{ "mac-ethernet", var_mac_eth, VAR_PLAIN },
	{ "mac-wifi", var_mac_wifi, VAR_PLAIN },
	{ "mac-bt", var_mac_bt, VAR_PLAIN },
	{ "rpi-duid", var_duid, VAR_PLAIN },
	{ "mmc-sector-size", var_mmc_ssize, VAR_PLAIN },
	{ "mmc-sector-count", var_mmc_scount, VAR_PLAIN },
	{ "mmc-cid", var_mmc_cid, VAR_PLAIN },
	{ "secure-eeprom", var_sec_eeprom, VAR_PLAIN },
	{ "secure-devkey", var_sec_devkey, VAR_PLAIN },
	{ "secure-otp", var_sec_otp, VAR_PLAIN },
	{ "eeprom-device", var_eeprom_dev, VAR_PLAIN },
	{ "eeprom-size", var_eeprom_size, VAR_PLAIN },
	{ "eeprom-sha256", var_eeprom_sha, VAR_PLAIN },
	{ "eeprom-jedec", var_eeprom_jedec, VAR_PLAIN },
	{ "eeprom-unique-id", var_eeprom_uid, VAR_PLAIN },
	{ "eeprom-spi-speed", var_eeprom_speed, VAR_PLAIN },
	{ "bootloader-build-timestamp", var_bl_ts, VAR_PLAIN },
	{ "ipv4-address", var_v4, VAR_PLAIN },
	{ "ipv4-gateway", var_v4gw, VAR_PLAIN },
	{ "ipv4-netmask", var_v4nm, VAR_PLAIN },
	{ "ipv4-dns", var_v4dns, VAR_PLAIN },
	{ "ipv4-dhcp", var_no, VAR_PLAIN },
	{ "ipv6-address", var_v6, VAR_PLAIN },
	{ "ipv6-gateway", var_v6gw, VAR_PLAIN },
	{ "ipv6-netmask", var_v6nm, VAR_PLAIN },
	{ "ipv6-dns", var_v6dns, VAR_PLAIN },
	{ "ipv6-dhcp", var_no, VAR_PLAIN },
	{ "block-devices", var_blockdevs, VAR_PLAIN },
	{ "block-device-size", var_bdsize, VAR_DISK },
	{ "block-device-type", var_bdtype, VAR_DISK },
	{ "tcp-data-plane-only", var_dataplane, VAR_PLAIN },
};

static const struct var_entry *var_find(const char *name)
{
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (strcmp(vars[i].name, name) == 0)
			return &vars[i];
	return NULL;
}

/* One INFO "name[:arg]:value" for getvar:all, failing ones omitted. */
static int all_one(struct session *ss, const struct var_entry *e, const char *arg)
{
	struct val v = { 0 };
	int rc = e->fn(ss, arg, &v);

	if (!rc && !v.fail && v.p) {
		size_t l = v.len;
		while (l && v.p[l - 1] == '\0')
			l--;
		if (arg)
			rc = INFO(ss, "%s:%s:%.*s", e->name, arg, (int)l, v.p);
		else
			rc = INFO(ss, "%s:%.*s", e->name, (int)l, v.p);
	}
	free(v.p);
	return rc;
}

static int getvar_all(struct session *ss)
{
	struct vpi_part parts[VPI_MBR_MAX_PARTS];
	const char *disk = vpi_storage_disk(ss->st->s);
	unsigned np = 0;
	int rc = 0;

	vpi_storage_partitions(ss->st->s, parts, &np);
	for (size_t i = 0; !rc && i < sizeof(vars) / sizeof(vars[0]); i++) {
		const struct var_entry *e = &vars[i];
		if (e->kind == VAR_PLAIN) {
			rc = all_one(ss, e, NULL);
		} else {
			rc = all_one(ss, e, disk);
			for (unsigned p = 0; !rc && e->kind == VAR_PART && p < np; p++) {
				char name[48];
				snprintf(name, sizeof(name), "%s%s%u", disk,
					 isdigit((unsigned char)disk[strlen(disk) - 1]) ? "p" : "", parts[p].number);
				rc = all_one(ss, e, name);
			}
		}
	}
	return rc ? rc : OKAY(ss, "%s", "");
}

static int getvar_extcsd(struct session *ss)
{
	int rc;

	if (vpi_board_model(ss->b)->storage == VPI_STORAGE_EMMC) {
		uint8_t csd[512] = { 0 };
		uint64_t sec = vpi_storage_size(ss->st->s) / 512;

		csd[192] = 8;           /* EXT_CSD_REV: 5.1 */
		for (int i = 0; i < 4; i++)
			csd[212 + i] = (uint8_t)(sec >> (8 * i));   /* SEC_COUNT */
		rc = 0;
		for (int line = 0; !rc && line < 16; line++) {
			char h[65];
			hex(h, csd + 32 * line, 32);
			rc = INFO(ss, "[%03d] %s", 32 * line, h);
		}
		if (!rc)
			rc = OKAY(ss, "%s", "");
	} else {
		rc = FAIL(ss, "%s", VPI_GUESS_EXTCSD_FAIL);
	}
	/* Quirk of the real daemon: the dispatcher answers a second time. */
	return rc ? rc : OKAY(ss, "%s", "");
}

static int cmd_getvar(struct session *ss, struct args *a)
{
	const struct var_entry *e;
	struct val v = { 0 };
	const char *name = a->n >= 2 ? a->v[1] : NULL;
	int rc;

	if (ss->mode == VPI_FB_MODE_DATA_PLANE) {
		if (!name || !*name)
			return FAIL(ss, "data-plane connection: getvar requires a variable name");
		if (strcmp(name, "version") && strcmp(name, "max-download-size"))
			return FAIL(ss, "data-plane connection: getvar %s not permitted", name);
	}
	if (!name)
		return FAIL(ss, "Missing argument");
	if (strcmp(name, "all") == 0)
		return getvar_all(ss);
	if (strcmp(name, "mmc-extcsd") == 0)
		return getvar_extcsd(ss);
	if (strcmp(name, "dmesg") == 0) {
		unsigned cap = sizeof(ss->st->kmsg) / sizeof(ss->st->kmsg[0]);
		rc = 0;
		for (unsigned i = 0; !rc && i < cap; i++) {
			const char *l = ss->st->kmsg[(ss->st->kmsg_next + i) % cap];
			if (l)
				rc = INFO(ss, "%s", l);
		}
		return rc ? rc : OKAY(ss, "%s", "");
	}
	e = var_find(name);
	if (!e)
		return FAIL(ss, "Unknown variable");
	rc = e->fn(ss, a->n >= 3 ? a->v[2] : NULL, &v);
	if (!rc)
		rc = send_raw(ss, v.fail ? "FAIL" : "OKAY", v.p, v.len);
	free(v.p);
	return rc;
}

/* ------------------------------------------------------------------ */
/* download / upload */

static int parse_size(struct session *ss, struct args *a, uint32_t *size)
{
	const char *s = a->n >= 2 ? a->v[1] : NULL;
	char *end;
	unsigned long v;

	if (!s || !*s)
		return FAIL(ss, "size argument unspecified") ? -EIO : 1;
	if (strlen(s) != 8)
		return FAIL(ss, "Invalid size (length of size != 8)") ? -EIO : 1;
	errno = 0;
	v = strtoul(s, &end, 16);
	if (*end || errno || !isxdigit((unsigned char)s[0]) || v > VPI_FB_MAX_DOWNLOAD)
		return FAIL(ss, "Invalid size") ? -EIO : 1;
	if (v == 0)
		return FAIL(ss, "Invalid size (0)") ? -EIO : 1;
	*size = (uint32_t)v;
	return 0;
}

/* The download buffer is as large as the download (up to 256 MiB), as on
 * the real gadget. Here it is a shared mapping of an unlinked file in the
 * board's state dir, whose pages are given back to the page cache as soon as
 * they have been received or consumed (buf_drop): the process that hosts
 * the virtual Pi (simulate) keeps a flat resident size whatever the image
 * size, so its memory figures show the station's own. */
static void buf_release(struct session *ss)
{
	if (ss->buf_mapped)
		munmap(ss->buf, ss->cap);
	else
		free(ss->buf);
	ss->buf = NULL;
	ss->cap = ss->len = 0;
	ss->buf_mapped = false;
}

static int buf_map(struct session *ss, size_t size)
{
	const char *dir = vpi_board_state_dir(ss->b);
	void *p = MAP_FAILED;
	int fd = open(dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED) {
		ss->buf = malloc(size);   /* no file: plain memory, as before */
		ss->buf_mapped = false;
	} else {
		ss->buf = p;
		ss->buf_mapped = true;
	}
	if (!ss->buf)
		return -ENOMEM;
	ss->cap = size;
	return 0;
}

/* Give back the whole MiBs of buf below @upto (received or consumed). */
static void buf_drop(struct session *ss, size_t upto)
{
	size_t step = 1u << 20, end = upto / step * step;

	if (!ss->buf_mapped || end <= ss->buf_dropped)
		return;
	madvise(ss->buf + ss->buf_dropped, end - ss->buf_dropped, MADV_DONTNEED);
	ss->buf_dropped = end;
}

/* Give back all of buf (a pass over the chunk headers faults in whole
 * folios of the file around each one). */
static void buf_drop_all(struct session *ss)
{
	if (ss->buf_mapped)
		madvise(ss->buf, ss->cap, MADV_DONTNEED);
	ss->buf_dropped = 0;
}

static int cmd_download(struct session *ss, struct args *a)
{
	uint32_t size;
	size_t got = 0;
	int rc = parse_size(ss, a, &size);

	if (rc)
		return rc < 0 ? rc : 0;
	/* Like the daemon's vector resize: keep the allocation between downloads
	 * (a 256 MiB buffer is not faulted in again for every sparse piece). */
	ss->len = 0;
	if (ss->cap < size) {
		buf_release(ss);
		if (buf_map(ss, size))
			return FAIL(ss, "Couldn't download data");
	}
	ss->buf_dropped = 0;
	rc = vpi_board_phase_enter(ss->b, "download");
	if (rc)
		return rc;
	rc = reply(ss, "DATA", "%08x", size);
	if (rc)
		return rc;
	while (got < size) {
		ssize_t n = ss->ch->read(ss->ch->usrptr, ss->buf + got, size - got);
		if (n <= 0) {
			/* The host vanished mid-download: the session ends. */
			ss->len = 0;
			return n < 0 ? (int)n : -ECONNRESET;
		}
		link_pace(ss, (size_t)n);
		got += (size_t)n;
		buf_drop(ss, got);
		rc = vpi_board_phase_bytes(ss->b, (uint64_t)n);
		if (rc) {
			ss->len = 0;
			return rc;
		}
	}
	ss->len = size;
	ss->buf_dropped = 0;
	return OKAY(ss, "%s", "");
}

static int cmd_upload(struct session *ss, struct args *a)
{
	ssize_t n;
	int rc;

	if (!ss->buf || !ss->len)
		return FAIL(ss, "Invalid size (0)");
	rc = reply(ss, "DATA", "%08zx", ss->len);
	if (rc)
		return rc;
	n = ss->ch->write(ss->ch->usrptr, ss->buf, ss->len);
	if (n != (ssize_t)ss->len)
		return FAIL(ss, "Couldn't upload data");
	ss->len = 0;
	return OKAY(ss, "%s", "");
}

/* ------------------------------------------------------------------ */
/* flash */

struct flash_ctx {
	struct session *ss;
	struct node *n;
	uint64_t err_off;
};

static int flash_op(void *usrptr, const struct vpi_sparse_op *op)
{
	struct flash_ctx *fc = usrptr;
	int rc = 0;

	fc->err_off = op->offset;
	if (op->type == VPI_SPARSE_RAW) {
		for (uint64_t done = 0; !rc && done < op->len; done += 1u << 20) {
			size_t n = op->len - done < (1u << 20) ? (size_t)(op->len - done) : (1u << 20);
			fc->err_off = op->offset + done;
			rc = node_write(fc->ss->st, fc->n, op->offset + done, op->data + done, n);
			if (!rc)
				rc = vpi_board_phase_bytes(fc->ss->b, n);
			buf_drop(fc->ss, (size_t)(op->data + done + n - fc->ss->buf));
		}
	} else if (op->type == VPI_SPARSE_FILL) {
		rc = node_fill(fc->ss->st, fc->n, op->offset, op->len, op->fill);
		if (!rc)
			rc = vpi_board_phase_bytes(fc->ss->b, op->len);
	}
	return rc;
}

/* The check pass over a download: give back what it has passed. */
static int drop_op(void *usrptr, const struct vpi_sparse_op *op)
{
	struct session *ss = usrptr;

	if (op->type == VPI_SPARSE_RAW)
		buf_drop(ss, (size_t)(op->data - ss->buf));
	return 0;
}

static int cmd_flash(struct session *ss, struct args *a)
{
	const char *p = a->n >= 2 ? a->v[1] : NULL;
	struct node n;
	struct flash_ctx fc = { .ss = ss, .n = &n };
	uint8_t *buf;
	size_t len;
	uint64_t expanded;
	int rc;

	if (!p || !*p || bad_node_name(p))
		return FAIL(ss, "Invalid arguments");
	if (node_open(ss->st, p, &n))
		return FAIL(ss, "cannot access partition /dev/%s (OpenPartition failed; partition may not exist)", p);
	if (node_busy(ss->st, p))
		return FAIL(ss, "open(/dev/%s, O_WRONLY|O_DIRECT) failed: %s", p, strerror(EBUSY));
	if (!ss->buf || !ss->len)
		return FAIL(ss, "download buffer is empty; stage data before flashing %s", p);
	/* The partition is open: the buffer is consumed whatever happens next. */
	buf = ss->buf;
	len = ss->len;
	ss->len = 0;
	rc = vpi_board_phase_enter(ss->b, "flash");
	if (rc)
		goto out;
	if (vpi_board_phase_stalled(ss->b)) {
		rc = 1;   /* stop answering */
		goto out;
	}
	if (len > n.size) {
		rc = FAIL(ss, "payload %zuB exceeds partition /dev/%s size %" PRIu64 "B", len, p, n.size);
		goto out;
	}
	if (!vpi_sparse_has_magic(buf, len)) {
		for (size_t done = 0; done < len; done += 1u << 20) {
			size_t k = len - done < (1u << 20) ? len - done : (1u << 20);
			fc.err_off = done;
			rc = node_write(ss->st, &n, done, buf + done, k);
			if (!rc)
				rc = vpi_board_phase_bytes(ss->b, k);
			buf_drop(ss, done + k);
			if (rc)
				break;
		}
	} else {
		if (vpi_sparse_check_each(buf, len, &expanded, drop_op, ss)) {
			rc = FAIL(ss, "not a valid sparse image (sparse_file_import_buf failed on %zuB payload)", len);
			goto out;
		}
		if (expanded > n.size) {
			rc = FAIL(ss, "sparse image expands to %" PRIu64 "B but partition /dev/%s is only %" PRIu64 "B",
				  expanded, p, n.size);
			goto out;
		}
		buf_drop_all(ss);
		rc = vpi_sparse_apply(buf, len, flash_op, &fc);
	}
	buf_drop_all(ss);
	if (rc == -ENODEV)
		goto out;   /* unplugged mid-write */
	if (rc) {
		kmsg(ss->st, "flash %s: write failed at offset %" PRIu64 ": %s", p, fc.err_off, strerror(-rc));
		rc = FAIL(ss, "write to /dev/%s failed at offset %" PRIu64 ": %s", p, fc.err_off, strerror(-rc));
		goto out;
	}
	vpi_storage_sync(ss->st->s);
	kmsg(ss->st, "flash %s: %zu bytes%s", p, len, vpi_sparse_has_magic(buf, len) ? " (sparse)" : "");
	rc = OKAY(ss, "Flashing succeeded");
out:
	return rc;
}

static int cmd_erase(struct session *ss, struct args *a)
{
	const char *p = a->n >= 2 ? a->v[1] : NULL;
	struct node n;

	if (!p || !*p || bad_node_name(p))
		return FAIL(ss, "Invalid arguments");
	if (node_open(ss->st, p, &n))
		return FAIL(ss, "Partition doesn't exist");
	/* As coded in rpi-fastbootd the discard handle is never opened: nothing
	 * is wiped (spec §3.2, §7.1 quirk 12). */
	kmsg(ss->st, "erase %s: no discard issued (as the real daemon)", p);
	return OKAY(ss, "Erasing succeeded");
}

/* ------------------------------------------------------------------ */
/* OEM commands */

static bool is_whole_disk(struct session *ss, const char *name)
{
	return strcmp(name, vpi_storage_disk(ss->st->s)) == 0;
}

static int oem_partinit(struct session *ss, struct args *a)
{
	int argc = a->n - 2;
	const char *disk, *label;
	uint32_t id;
	int rc;

	if (argc < 2 || argc > 3)
		return FAIL(ss, "Invalid argument count. Wanted oem partinit mmcblk0 <label> [id]");
	disk = a->v[2];
	label = a->v[3];
	if (!is_whole_disk(ss, disk))
		return FAIL(ss, "Incorrect block device. " PARTINIT_EG);
	if (strcasecmp(label, "dos") && strcasecmp(label, "mbr")) {
		/* GPT is not modelled (doc/virtual-pi-gadget.md, known gaps). */
		return FAIL(ss, "Failed to create disk label." PARTINIT_EG);
	}
	if (argc == 3) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(a->v[4], &end, 0);
		if (*end || errno || v > UINT32_MAX)
			return FAIL(ss, "Failed to create disk label." PARTINIT_EG);
		id = (uint32_t)v;
	} else {
		uint64_t s = vpi_board_serial64(ss->b);
		id = (uint32_t)(s ^ (s >> 32)) | 1u;
	}
	rc = vpi_storage_mbr_init(ss->st->s, id);
	if (rc)
		return FAIL(ss, "Error writing PT." PARTINIT_EG);
	kmsg(ss->st, "partinit %s: dos, disk id 0x%08x", disk, id);
	return OKAY(ss, "Initialised partition successfully");
}

static int oem_partapp(struct session *ss, struct args *a)
{
	int argc = a->n - 2;
	unsigned long long size = 0;
	unsigned long type;
	char *end;
	int rc;

	if (argc < 2 || argc > 3)
		return FAIL(ss, "Invalid argument count. " PARTAPP_EG);
	if (!is_whole_disk(ss, a->v[2]))
		return FAIL(ss, "Incorrect block device. " PARTAPP_EG);
	if (argc == 3) {
		errno = 0;
		size = strtoull(a->v[4], &end, 0);
		if (*end || errno || !*a->v[4] || a->v[4][0] == '-')
			return FAIL(ss, "Unable to parse partition size. " PARTAPP_EG);
	}
	errno = 0;
	type = strtoul(a->v[3], &end, 16);
	if (*end || errno || !*a->v[3] || type == 0 || type > 0xff)
		return FAIL(ss, "Failed to append partition. " PARTAPP_EG);
	rc = vpi_storage_mbr_append(ss->st->s, (uint8_t)type, size);
	if (rc)
		return FAIL(ss, "Failed to append partition. " PARTAPP_EG);
	kmsg(ss->st, "partapp %s: type %02lx size %llu", a->v[2], type, size);
	return OKAY(ss, "Wrote new partition.");
}

static int board_pass(struct session *ss, char pass[VPI_LUKS_PASSPHRASE_LEN + 1])
{
	if (!ss->st->key_cached)
		return -ENOKEY;
	return vpi_luks_board_passphrase(ss->b, pass);
}

static int oem_cryptinit(struct session *ss, struct args *a)
{
	int argc = a->n - 2;
	char pass[VPI_LUKS_PASSPHRASE_LEN + 1];
	struct vpi_luks_format_result res;
	const char *dev, *label, *cipher;
	struct node n;
	int rc;

	if (argc < 2)
		return FAIL(ss, "Insufficient arguments. " CRYPTINIT_USAGE);
	dev = a->v[2];
	label = a->v[3];
	cipher = argc >= 3 && *a->v[4] ? a->v[4] : VPI_LUKS_DEFAULT_CIPHER;
	if (!*dev)
		return FAIL(ss, "Block device not specified. " CRYPTINIT_USAGE);
	if (!*label)
		return FAIL(ss, "Label not specified. " CRYPTINIT_USAGE);
	if (bad_node_name(dev) || node_open(ss->st, dev, &n) || n.map)
		return FAIL(ss, "Cannot create context for device /dev/%s as failed to open", dev);
	if (board_pass(ss, pass))
		return FAIL(ss, "Cannot generate LUKS key - unsupported device type");
	if (node_busy(ss->st, dev)) {
		rc = -EBUSY;
	} else {
		rc = vpi_luks_format(ss->st->s, n.start, n.size, pass, VPI_LUKS_PASSPHRASE_LEN, label,
				     cipher, vpi_board_state_dir(ss->b), NULL, &res);
	}
	memset(pass, 0, sizeof(pass));
	if (rc) {
		kmsg(ss->st, "cryptinit /dev/%s (%s): %s", dev, cipher, strerror(-rc));
		return FAIL(ss, "Cryptsetup failed");
	}
	kmsg(ss->st, "cryptinit /dev/%s: LUKS2 %s label %s, data offset %" PRIu64, dev, cipher, label,
	     res.data_offset);
	return OKAY(ss, "%s", res.cli_fallback ? "Cryptsetup completed." : "LUKS device formatted successfully");
}

static int oem_cryptopen(struct session *ss, struct args *a)
{
	int argc = a->n - 2;
	char pass[VPI_LUKS_PASSPHRASE_LEN + 1], mapped[80];
	const char *dev, *name;
	struct map_entry *slot = NULL;
	struct node n;
	int rc;

	if (argc < 2)
		return FAIL(ss, "Insufficient arguments provided. Usage: oem cryptopen <block_device_path> <mapped_name>");
	dev = a->v[2];
	name = a->v[3];
	/* Absolute paths as given; else /dev/mapper/<x> if it exists, else /dev/<x>. */
	if (strncmp(dev, "/dev/", 5) == 0)
		dev += 5;
	snprintf(mapped, sizeof(mapped), "mapper/%s", dev);
	if (node_open(ss->st, mapped, &n) == 0)
		dev = mapped;
	if (board_pass(ss, pass))
		return FAIL(ss, "Cannot generate LUKS key - unsupported device type");
	memset(pass, 0, sizeof(pass));
	if (bad_node_name(dev) || node_open(ss->st, dev, &n))
		return FAIL(ss, "Cannot perform cryptopen for device /dev/%s as failed to open.", dev);
	if (!*name)
		return FAIL(ss, "Cannot perform cryptopen for device /dev/%s as no mapped name specified.", dev);
	if (n.map || find_map(ss->st, name) || node_busy(ss->st, dev) || strlen(name) >= sizeof(slot->name) ||
	    strchr(name, '/')) {
		kmsg(ss->st, "cryptopen /dev/%s as %s: device busy or name in use", dev, name);
		return FAIL(ss, "cryptsetup luksOpen failed.");
	}
	for (int i = 0; i < MAX_MAPS && !slot; i++)
		if (!ss->st->maps[i].m)
			slot = &ss->st->maps[i];
	if (!slot)
		return FAIL(ss, "cryptsetup luksOpen failed.");
	board_pass(ss, pass);
	rc = vpi_luks_open(ss->st->s, n.start, n.size, pass, VPI_LUKS_PASSPHRASE_LEN,
			   vpi_board_state_dir(ss->b), &slot->m);
	memset(pass, 0, sizeof(pass));
	if (rc) {
		kmsg(ss->st, "cryptopen /dev/%s as %s: %s%s", dev, name, strerror(-rc),
		     rc == -EOPNOTSUPP ? " (cipher not available in the simulator's user-space dm-crypt)" : "");
		return FAIL(ss, "cryptsetup luksOpen failed.");
	}
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	snprintf(slot->part, sizeof(slot->part), "%s", dev);
	kmsg(ss->st, "cryptopen /dev/%s as /dev/mapper/%s (%" PRIu64 " bytes)", dev, name, vpi_luks_size(slot->m));
	{
		uint8_t sig[8];
		if (vpi_luks_read(slot->m, 512, sig, sizeof(sig)) == 0 && memcmp(sig, "EFI PART", 8) == 0) {
			rc = INFO(ss, "cryptopen: GPT detected but kpartx failed: %s",
				  "inner partitions are not modelled by the virtual Pi");
			if (rc)
				return rc;
		}
	}
	return OKAY(ss, "LUKS device opened successfully");
}

static int oem_cryptsetpassword(struct session *ss, struct args *a)
{
	char pass[VPI_LUKS_PASSPHRASE_LEN + 1];
	const char *dev, *user;
	struct node n;
	int rc;

	if (a->n - 2 != 2)
		return FAIL(ss, "Usage: oem cryptsetpassword <block_device> <passphrase>");
	dev = a->v[2];
	user = a->v[3];
	if (board_pass(ss, pass))
		return FAIL(ss, "Cannot generate LUKS key - unsupported device type");
	if (bad_node_name(dev) || node_open(ss->st, dev, &n) || n.map)
		rc = -ENOENT;
	else
		rc = vpi_luks_set_user_passphrase(ss->st->s, n.start, n.size, pass, VPI_LUKS_PASSPHRASE_LEN,
						  user, strlen(user), vpi_board_state_dir(ss->b));
	memset(pass, 0, sizeof(pass));
	if (rc) {
		kmsg(ss->st, "cryptsetpassword /dev/%s: %s", dev, strerror(-rc));
		return FAIL(ss, "%s", *user ? "Failed to set user passphrase" : "Failed to remove user passphrase");
	}
	kmsg(ss->st, "cryptsetpassword /dev/%s: keyslot 1 %s", dev, *user ? "set" : "removed");
	return OKAY(ss, "%s", *user ? "User passphrase set successfully" : "User passphrase removed");
}

static int oem_fwcrypto(struct session *ss, struct args *a)
{
	const char *sub = a->n >= 3 ? a->v[2] : NULL;
	int rc;

	if (!sub)
		return FAIL(ss, "Usage: oem fwcrypto <status|init|sign-hash>");
	if (strcmp(sub, "status") == 0)
		return OKAY(ss, "%s", ss->st->key_cached ? "Key is provisioned" : "Key is not provisioned");
	if (strcmp(sub, "init") == 0) {
		if (vpi_otp_fwcrypto_initialised(ss->b)) {
			ss->st->key_cached = true;
			return OKAY(ss, "Key already provisioned");
		}
		rc = vpi_otp_fwcrypto_init(ss->b);
		if (rc)
			return FAIL(ss, "Failed to provision key: %s", strerror(-rc));
		ss->st->key_cached = true;
		kmsg(ss->st, "fwcrypto: device key provisioned and locked");
		return OKAY(ss, "Key provisioned and LOCKed");
	}
	if (strcmp(sub, "sign-hash") == 0) {
		const char *hx = a->n >= 4 ? a->v[3] : NULL;
		uint8_t digest[32], *der = NULL;
		size_t der_len = 0, b64_len = 0;
		unsigned char *b64;

		if (!hx || a->n != 4)
			return FAIL(ss, "Usage: oem fwcrypto sign-hash <64-char-hex-sha256-digest>");
		if (strlen(hx) != 64)
			return FAIL(ss, "Digest must be exactly 64 hex characters (SHA-256)");
		for (int i = 0; i < 64; i++)
			if (!isxdigit((unsigned char)hx[i]))
				return FAIL(ss, "Invalid hex character in digest");
		for (int i = 0; i < 32; i++) {
			char two[3] = { hx[2 * i], hx[2 * i + 1], 0 };
			digest[i] = (uint8_t)strtoul(two, NULL, 16);
		}
		rc = vpi_otp_fwcrypto_sign_hash(ss->b, digest, &der, &der_len);
		if (rc)
			return FAIL(ss, "ECDSA sign failed: %s", strerror(-rc));
		mbedtls_base64_encode(NULL, 0, &b64_len, der, der_len);
		b64 = malloc(b64_len + 1);
		if (!b64 || mbedtls_base64_encode(b64, b64_len + 1, &b64_len, der, der_len)) {
			free(b64);
			free(der);
			return FAIL(ss, "ECDSA sign failed: %s", strerror(ENOMEM));
		}
		rc = INFO(ss, "connect-signature:%.*s", (int)b64_len, b64);
		free(b64);
		free(der);
		return rc ? rc : OKAY(ss, "%s", "");
	}
	return FAIL(ss, "Unknown fwcrypto subcommand. Use 'status', 'init', or 'sign-hash'");
}

static int oem_led(struct session *ss, struct args *a)
{
	const char *name, *value;
	struct led_entry *slot = NULL;
	int rc;

	if (a->n - 2 < 2)
		return FAIL(ss, "Incorrect arguments for LED command: " LED_USAGE);
	name = a->v[2];
	value = a->v[3];
	/* Zero 2 W has no PWR LED; every board has ACT. Names are A-Z only. */
	bool known = strcmp(name, "ACT") == 0 ||
		     (strcmp(name, "PWR") == 0 && vpi_board_model(ss->b)->chip != VPI_CHIP_2710);
	for (const char *p = name; *p; p++)
		if (*p < 'A' || *p > 'Z')
			known = false;
	if (!known) {
		rc = INFO(ss, "Could not find LED device: " LED_USAGE);
		return rc ? rc : OKAY(ss, "%s", "");
	}
	/* sysfs brightness takes an unsigned decimal. */
	char *end;
	errno = 0;
	strtoul(value, &end, 10);
	if (!*value || *end || errno || value[0] == '-' || strlen(value) >= sizeof(slot->value)) {
		rc = INFO(ss, "Could not wite LED value.");
		return rc ? rc : OKAY(ss, "%s", "");
	}
	for (int i = 0; i < MAX_LEDS && !slot; i++)
		if (!ss->st->leds[i].name[0] || strcmp(ss->st->leds[i].name, name) == 0)
			slot = &ss->st->leds[i];
	if (slot) {
		pthread_mutex_lock(&registry_lock);
		snprintf(slot->name, sizeof(slot->name), "%s", name);
		snprintf(slot->value, sizeof(slot->value), "%s", value);
		pthread_mutex_unlock(&registry_lock);
	}
	kmsg(ss->st, "led %s = %s", name, value);
	return OKAY(ss, "Wrote LED value");
}

static int oem_gpioset(struct session *ss, struct args *a)
{
	if (a->n - 2 < 2 || strncmp(a->v[2], "gpiochip", 8) != 0)
		return FAIL(ss, "oem gpioset gpiochip0 [OPTIONS] <line=value>...");
	for (int i = 3; i < a->n; i++) {
		char *eq = strchr(a->v[i], '=');
		if (a->v[i][0] == '-')
			continue;   /* options pass through */
		if (!eq || eq == a->v[i] || (strcmp(eq + 1, "0") && strcmp(eq + 1, "1")))
			return FAIL(ss, "gpioset failed");
	}
	kmsg(ss->st, "gpioset %s (%d lines)", a->v[2], a->n - 3);
	return OKAY(ss, "GPIO set successfully");
}

/* The gadget's root file system is modelled as <state>/fs. */
static char *fs_path(struct session *ss, const char *path)
{
	char *out = NULL;

	if (path[0] != '/' || strstr(path, "/../") || strstr(path, "/..\0") ||
	    (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
		return NULL;
	if (asprintf(&out, "%s/fs%s", vpi_board_state_dir(ss->b), path) < 0)
		return NULL;
	return out;
}

static int oem_download_file(struct session *ss, struct args *a)
{
	char *path;
	int fd, rc;

	if (a->n - 2 != 1)
		return FAIL(ss, "Invalid argument count. Wanted oem download-file <current-path> <path-to-destination>");
	path = fs_path(ss, a->v[2]);
	if (!path)
		return FAIL(ss, "Error opening file, ERRNO: %d", EACCES);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	free(path);
	if (fd < 0)
		return FAIL(ss, "Error opening file, ERRNO: %d", errno);
	if (!ss->buf || !ss->len) {
		close(fd);
		return FAIL(ss, "Buffer size zero. Check file was successfully staged");
	}
	rc = write(fd, ss->buf, ss->len) == (ssize_t)ss->len ? 0 : errno ? errno : EIO;
	close(fd);
	if (rc)
		return FAIL(ss, "Error opening file, ERRNO: %d", rc);
	ss->len = 0;
	return OKAY(ss, "Write Successful!");
}

static int oem_upload_file(struct session *ss, struct args *a)
{
	struct stat stt;
	char *path;
	uint8_t *buf;
	int fd;

	if (a->n - 2 != 1)
		return FAIL(ss, "Invalid argument count. Wanted [oem upload-file <path-on-client>]");
	path = fs_path(ss, a->v[2]);
	if (!path)
		return FAIL(ss, "Error opening file, ERRNO: %d", EACCES);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return FAIL(ss, "Error opening file, ERRNO: %d", errno);
	if (fstat(fd, &stt) < 0 || stt.st_size == 0 || (uint64_t)stt.st_size > VPI_FB_MAX_DOWNLOAD) {
		close(fd);
		return FAIL(ss, "Filesize zero. Will not upload empty file");
	}
	buf = malloc((size_t)stt.st_size);
	if (!buf || read(fd, buf, (size_t)stt.st_size) != stt.st_size) {
		free(buf);
		close(fd);
		return FAIL(ss, "Error opening file, ERRNO: %d", EIO);
	}
	close(fd);
	buf_release(ss);
	ss->buf = buf;
	ss->len = ss->cap = (size_t)stt.st_size;
	return OKAY(ss, "Write Successful!");
}

static uint32_t rd32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int oem_bmap_load(struct session *ss, struct args *a)
{
	uint32_t bs, n;

	if (a->n - 2 != 1)
		return FAIL(ss, "Usage: oem bmap-load <block_device>");
	if (!ss->buf || ss->len < 16)
		return FAIL(ss, "bmap-load: download buffer too small for header");
	if (rd32le(ss->buf) != 0x50414D42u)
		return FAIL(ss, "bmap-load: bad magic");
	bs = rd32le(ss->buf + 4);
	n = rd32le(ss->buf + 8);
	if (bs == 0 || (bs & (bs - 1)))
		return FAIL(ss, "bmap-load: block_size must be a power of two");
	if ((uint64_t)n * 40u > ss->len - 16)
		return FAIL(ss, "bmap-load: download buffer too small for declared ranges");
	free(ss->bmap);
	ss->bmap = calloc(n ? n : 1, sizeof(*ss->bmap));
	if (!ss->bmap)
		return FAIL(ss, "bmap-load: %s", strerror(ENOMEM));
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *r = ss->buf + 16 + 40u * i;
		ss->bmap[i].first = rd32le(r);
		ss->bmap[i].last = rd32le(r + 4);
		memcpy(ss->bmap[i].sha, r + 8, 32);
	}
	ss->bmap_n = n;
	ss->bmap_block = bs;
	snprintf(ss->bmap_disk, sizeof(ss->bmap_disk), "%s", a->v[2]);
	return OKAY(ss, "bmap loaded: %u ranges, block_size=%u, device=%s", n, bs, a->v[2]);
}

static int oem_bmap_verify(struct session *ss, struct args *a)
{
	struct node n;
	uint8_t *blk = NULL;
	int rc = 0;

	if (a->n - 2 != 1)
		return FAIL(ss, "Usage: oem bmap-verify <block_device>");
	if (!ss->bmap)
		return FAIL(ss, "bmap-verify: no bmap loaded; run oem bmap-load first");
	if (strcmp(ss->bmap_disk, a->v[2]))
		return FAIL(ss, "bmap-verify: loaded bmap is for /dev/%s, not /dev/%s", ss->bmap_disk, a->v[2]);
	if (bad_node_name(a->v[2]) || node_open(ss->st, a->v[2], &n))
		return FAIL(ss, "bmap-verify: cannot access /dev/%s", a->v[2]);
	blk = malloc(ss->bmap_block);
	if (!blk)
		return FAIL(ss, "bmap-verify: %s", strerror(ENOMEM));
	for (uint32_t i = 0; i < ss->bmap_n; i++) {
		const struct bmap_range *r = &ss->bmap[i];
		mbedtls_sha256_context c;
		uint8_t d[32];
		char he[65], ha[65];

		rc = INFO(ss, "verifying range %u/%u (blocks %u-%u)", i + 1, ss->bmap_n, r->first, r->last);
		if (rc)
			break;
		mbedtls_sha256_init(&c);
		mbedtls_sha256_starts_ret(&c, 0);
		for (uint64_t bl = r->first; bl <= r->last; bl++) {
			rc = node_read(ss->st, &n, bl * ss->bmap_block, blk, ss->bmap_block);
			if (rc)
				break;
			mbedtls_sha256_update_ret(&c, blk, ss->bmap_block);
		}
		mbedtls_sha256_finish_ret(&c, d);
		mbedtls_sha256_free(&c);
		if (rc) {
			/* A read error restarts the session in the real daemon. */
			FAIL(ss, "bmap-verify: read error on /dev/%s: %s", a->v[2], strerror(-rc));
			rc = -EIO;
			break;
		}
		if (memcmp(d, r->sha, 32)) {
			hex(he, r->sha, 32);
			hex(ha, d, 32);
			rc = FAIL(ss, "%u:%s:%s", i, he, ha);
			goto out;
		}
	}
	if (!rc)
		rc = OKAY(ss, "verified %u ranges ok", ss->bmap_n);
out:
	free(blk);
	return rc;
}

/* oem eeprom-update|verify|read [spidev]. */
static int oem_eeprom(struct session *ss, struct args *a, const char *verb)
{
	const char *dev = a->n >= 3 ? a->v[2] : spidev(ss);
	uint8_t *img = NULL;
	size_t len = 0;
	int rc;

	if (!dev || !spidev(ss)) {
		if (strcmp(verb, "eeprom-update") == 0)
			return FAIL(ss, "eeprom-update: no SPI device found; pass explicitly: oem eeprom-update /dev/spidevN.0");
		return FAIL(ss, "%s: no SPI device found", verb);
	}
	if (strcmp(dev, spidev(ss)))
		return FAIL(ss, "%s: cannot open %s: %s", verb, dev, strerror(ENOENT));
	if (strcmp(verb, "eeprom-read") == 0) {
		uint8_t d[32];
		char h[65];

		rc = vpi_eeprom_read(ss->b, &img, &len);
		if (rc)
			return FAIL(ss, "eeprom-read: %s", strerror(-rc));
		mbedtls_sha256_ret(img, len, d, 0);
		hex(h, d, 32);
		buf_release(ss);
		ss->buf = img;
		ss->len = ss->cap = len;
		rc = INFO(ss, "eeprom-read: sha256=%s", h);
		return rc ? rc : OKAY(ss, "eeprom-read: %zu bytes staged for upload", len);
	}
	if (!ss->buf || !ss->len)
		return FAIL(ss, "%s: no image staged; download signed image first", verb);
	rc = vpi_eeprom_read(ss->b, &img, &len);
	if (rc)
		return FAIL(ss, "%s: %s", verb, strerror(-rc));
	if (len != ss->len) {
		free(img);
		return FAIL(ss, "%s: image size %zu does not match EEPROM size %zu", verb, ss->len, len);
	}
	if (strcmp(verb, "eeprom-verify") == 0) {
		rc = memcmp(img, ss->buf, len);
		free(img);
		return rc ? FAIL(ss, "eeprom-verify: EEPROM contents do not match supplied image")
			  : OKAY(ss, "eeprom-verify: match");
	}
	free(img);
	rc = vpi_eeprom_write(ss->b, ss->buf, ss->len);
	if (rc)
		return FAIL(ss, "eeprom-update: %s", strerror(-rc));
	return OKAY(ss, "eeprom-update: %s written (%zu bytes)", dev, ss->len);
}

/* Preconditions as the daemon checks them; the hash tree itself is not
 * modelled (doc/virtual-pi-gadget.md, known gaps). */
static int oem_veritysetup(struct session *ss, struct args *a)
{
	const char *slot;
	size_t sl;
	struct node n;

	if (a->n - 2 != 2)
		return FAIL(ss, "Usage: oem veritysetup <device_name> <slot>");
	if (bad_node_name(a->v[2]) || node_open(ss->st, a->v[2], &n))
		return FAIL(ss, "Cannot open device /dev/%s", a->v[2]);
	slot = a->v[3];
	sl = strlen(slot);
	bool ok = strncmp(slot, "system-", 7) == 0 && sl > 7 && sl <= 7 + 14;
	for (size_t i = 7; ok && i < sl; i++)
		ok = (slot[i] >= 'a' && slot[i] <= 'z') || (slot[i] >= '0' && slot[i] <= '9');
	if (!ok)
		return FAIL(ss, "invalid slot name (expected ^system-[a-z0-9]{1,14}$): %s", slot);
	return FAIL(ss, "VERITY_SETUP: dm-verity is not modelled by the virtual Pi");
}

static int cmd_oem(struct session *ss, const char *cmd)
{
	struct args a;
	const char *sub;
	int rc;

	if (split(cmd, ' ', &a))
		return -ENOMEM;
	sub = a.n >= 2 ? a.v[1] : "";
	if (strcmp(sub, "partinit") == 0)
		rc = oem_partinit(ss, &a);
	else if (strcmp(sub, "partapp") == 0)
		rc = oem_partapp(ss, &a);
	else if (strcmp(sub, "cryptinit") == 0)
		rc = oem_cryptinit(ss, &a);
	else if (strcmp(sub, "cryptopen") == 0)
		rc = oem_cryptopen(ss, &a);
	else if (strcmp(sub, "cryptsetpassword") == 0)
		rc = oem_cryptsetpassword(ss, &a);
	else if (strcmp(sub, "fwcrypto") == 0)
		rc = oem_fwcrypto(ss, &a);
	else if (strcmp(sub, "led") == 0)
		rc = oem_led(ss, &a);
	else if (strcmp(sub, "gpioset") == 0)
		rc = oem_gpioset(ss, &a);
	else if (strcmp(sub, "download-file") == 0)
		rc = oem_download_file(ss, &a);
	else if (strcmp(sub, "upload-file") == 0)
		rc = oem_upload_file(ss, &a);
	else if (strcmp(sub, "bmap-load") == 0)
		rc = oem_bmap_load(ss, &a);
	else if (strcmp(sub, "bmap-verify") == 0)
		rc = oem_bmap_verify(ss, &a);
	else if (!strcmp(sub, "eeprom-update") || !strcmp(sub, "eeprom-verify") || !strcmp(sub, "eeprom-read"))
		rc = oem_eeprom(ss, &a, sub);
	else if (strcmp(sub, "umount") == 0)
		rc = a.n != 3 ? FAIL(ss, "Usage: oem umount <mountpoint>")
			      : FAIL(ss, "Unmount failed for %s: %s", a.v[2], strerror(EINVAL));
	else if (strcmp(sub, "mount") == 0)
		rc = a.n < 4 ? FAIL(ss, "Usage: oem mount <device> <mountpoint> [fstype]")
			     : FAIL(ss, "Mount failed for /dev/%s on %s: %s", a.v[2], a.v[3],
				    "file systems are not mounted by the virtual Pi");
	else if (strcmp(sub, "veritysetup") == 0)
		rc = oem_veritysetup(ss, &a);
	else if (strcmp(sub, "verityappend") == 0)
		rc = FAIL(ss, "Cannot get device size");   /* as coded in the real daemon */
	else if (strcmp(sub, "idpinit") == 0)
		rc = !ss->buf || !ss->len ? FAIL(ss, "IDP:No data. Check description was staged")
			: FAIL(ss, "IDP:cannot provision: %s", "IDP descriptions are not modelled by the virtual Pi");
	else if (!strcmp(sub, "idpwrite") || !strcmp(sub, "idpgetblk"))
		rc = FAIL(ss, "IDP:not initialised");
	else if (strcmp(sub, "idpdone") == 0)
		rc = OKAY(ss, "IDP:not initialised");
	else
		rc = FAIL(ss, "Unknown OEM command.");
	free(a.copy);
	return rc;
}

/* ------------------------------------------------------------------ */
/* dispatch */

static bool fault_fails(struct session *ss, const char *cmd)
{
	const struct vpi_faults *f = vpi_board_faults(ss->b);
	size_t n = f ? strnlen(f->fail_command, sizeof(f->fail_command)) : 0;

	return n && strncmp(cmd, f->fail_command, n) == 0;
}

/* 0 to continue, > 0 a session end (enum vpi_fb_end), < 0 an error. */
static int dispatch(struct session *ss, const char *cmd)
{
	struct args a;
	const char *verb;
	int rc;

	if (fault_fails(ss, cmd)) {
		kmsg(ss->st, "fault: failing \"%s\"", cmd);
		return FAIL(ss, "%s failed (simulated fault)", cmd);
	}
	if (ss->mode == VPI_FB_MODE_DATA_PLANE && strncmp(cmd, "download:", 9) &&
	    strncmp(cmd, "flash:", 6) && strncmp(cmd, "getvar:", 7) && strcmp(cmd, "getvar")) {
		if (strncmp(cmd, "oem", 3) == 0)
			return FAIL(ss, "Unrecognized command %s", cmd);
	}
	if (strncmp(cmd, "oem ", 4) == 0 && ss->mode == VPI_FB_MODE_FULL)
		return cmd_oem(ss, cmd);
	if (strcmp(cmd, "oem") == 0 && ss->mode == VPI_FB_MODE_FULL)
		return FAIL(ss, "Unknown OEM command.");
	if (split(cmd, ':', &a))
		return -ENOMEM;
	verb = a.v[0];
	if (ss->mode == VPI_FB_MODE_DATA_PLANE && strcmp(verb, "download") && strcmp(verb, "flash") &&
	    strcmp(verb, "getvar"))
		rc = FAIL(ss, "Unrecognized command %s", verb);
	else if (strcmp(verb, "getvar") == 0)
		rc = cmd_getvar(ss, &a);
	else if (strcmp(verb, "download") == 0 || strcmp(verb, "stage") == 0)
		rc = cmd_download(ss, &a);
	else if (strcmp(verb, "upload") == 0)
		rc = cmd_upload(ss, &a);
	else if (strcmp(verb, "flash") == 0)
		rc = cmd_flash(ss, &a);
	else if (strcmp(verb, "erase") == 0)
		rc = cmd_erase(ss, &a);
	else if (strcmp(verb, "reboot") == 0)
		rc = OKAY(ss, "Rebooting") ? -EIO : VPI_FB_END_REBOOT;
	else if (strcmp(verb, "reboot-bootloader") == 0)
		rc = OKAY(ss, "Rebooting bootloader") ? -EIO : VPI_FB_END_REBOOT_BOOTLOADER;
	else if (strcmp(verb, "shutdown") == 0)
		rc = OKAY(ss, "Shutting down") ? -EIO : VPI_FB_END_SHUTDOWN;
	else if (strcmp(verb, "set_active") == 0) {
		const char *s = a.n >= 2 ? a.v[1] : "";
		if (!*s)
			rc = FAIL(ss, "Missing slot argument");
		else if (strlen(s) != 1 || *s < 'a' || *s > 'z')
			rc = FAIL(ss, "Bad slot suffix");
		else
			rc = FAIL(ss, "Unable to set slot");
	} else if (strcmp(verb, "fetch") == 0)
		rc = FAIL(ss, "Fetch is not allowed on user build");
	else
		rc = FAIL(ss, "Unrecognized command %s", verb);
	free(a.copy);
	return rc;
}

/* Stall fault: stop answering; wait for the host to give up. */
static int stall(struct session *ss)
{
	uint8_t sink[4096];

	kmsg(ss->st, "fault: stalled, no more answers");
	while (ss->ch->read(ss->ch->usrptr, sink, sizeof(sink)) > 0)
		;
	return VPI_FB_END_CLOSED;
}

int vpi_fastbootd_serve_mode(struct vpi_board *b, const struct vpi_fb_channel *ch,
			     enum vpi_fb_mode mode, bool split_mode)
{
	struct session ss = { .b = b, .ch = ch, .mode = mode, .split = split_mode };
	char cmd[VPI_FB_MAX_COMMAND + 1];
	int rc;

	rc = state_get(b, &ss.st);
	if (rc)
		return rc;
	rc = vpi_board_phase_enter(b, "gadget");
	if (rc)
		return rc;
	if (vpi_board_phase_stalled(b))
		return stall(&ss);
	for (;;) {
		ssize_t n = ch->read(ch->usrptr, cmd, VPI_FB_MAX_COMMAND);
		bool ctrl = false;

		if (n <= 0) {
			rc = n < 0 ? (int)n : VPI_FB_END_CLOSED;
			break;
		}
		cmd[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (iscntrl((unsigned char)cmd[i]))
				ctrl = true;
		pthread_mutex_lock(&ss.st->lock);
		if (ctrl)
			rc = FAIL(&ss, "Command contains control character");
		else
			rc = dispatch(&ss, cmd);
		pthread_mutex_unlock(&ss.st->lock);
		if (rc == 1 && strncmp(cmd, "flash:", 6) == 0) {
			rc = stall(&ss);
			break;
		}
		if (rc)
			break;
	}
	buf_release(&ss);
	free(ss.bmap);
	return rc;
}

int vpi_fastbootd_serve(struct vpi_board *b, const struct vpi_fb_channel *ch)
{
	return vpi_fastbootd_serve_mode(b, ch, VPI_FB_MODE_FULL, false);
}
