/* fat: FAT12/16/32 reader and writer working on image files (see fat.h).
 * Owns the on-disk encoding: boot sector, FSInfo, FAT packing, directory
 * entries with VFAT long names. A volume is used by one thread at a time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "image/fat.h"

#define DIRENT_SIZE 32
#define ATTR_RO 0x01
#define ATTR_HIDDEN 0x02
#define ATTR_SYSTEM 0x04
#define ATTR_VOLUME 0x08
#define ATTR_DIR 0x10
#define ATTR_ARCHIVE 0x20
#define ATTR_LFN 0x0f
#define NT_BASE_LOWER 0x08
#define NT_EXT_LOWER 0x10
#define FAT12_MAX_CLUSTERS 4084u
#define FAT16_MAX_CLUSTERS 65524u
#define FAT_READ_MAX (64u << 20)	/* refuse FAT tables larger than this */
#define COPY_BUF (64u << 10)

struct fat_vol {
	int fd;
	uint64_t offset, size;
	unsigned bits;
	uint32_t bps, spc, cluster_bytes;
	uint32_t fat_start;		/* sector */
	uint32_t fat_sectors, nfats;
	uint32_t root_start, root_sectors;	/* FAT12/16 fixed root */
	uint32_t root_cluster;		/* FAT32 */
	uint32_t data_start;		/* sector */
	uint32_t clusters;		/* data clusters, numbered 2..clusters+1 */
	uint64_t total_sectors;
	uint8_t *fat;			/* first FAT, fat_sectors * bps bytes */
	char label[12];
};

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v);
	put16(p + 2, v >> 16);
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* short file: the image is truncated */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void trim_label(char *s)
{
	size_t n = strlen(s);

	while (n && s[n - 1] == ' ')
		s[--n] = '\0';
}

/* ---------------------------------------------------------------- reader */

int fat_open(int fd, uint64_t offset, uint64_t size, struct fat_vol **out, struct art_err *err)
{
	uint8_t bs[512];
	struct fat_vol *v = NULL;
	uint32_t reserved, root_entries, fat16_sectors, total16;
	uint64_t fat_bytes, meta;
	int rc;

	*out = NULL;
	if (size < sizeof(bs))
		return art_err_set(err, -EINVAL, "FAT area of %llu bytes is too small",
				   (unsigned long long)size);
	rc = pread_full(fd, bs, sizeof(bs), offset);
	if (rc)
		return art_err_set(err, rc, "cannot read the FAT boot sector at offset %llu: %s",
				   (unsigned long long)offset, strerror(-rc));
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->fd = fd;
	v->offset = offset;
	v->size = size;
	v->bps = le16(bs + 11);
	v->spc = bs[13];
	reserved = le16(bs + 14);
	v->nfats = bs[16];
	root_entries = le16(bs + 17);
	total16 = le16(bs + 19);
	fat16_sectors = le16(bs + 22);
	v->total_sectors = total16 ? total16 : le32(bs + 32);
	rc = -EINVAL;
	if (bs[510] != 0x55 || bs[511] != 0xaa) {
		art_err_set(err, rc, "no FAT boot sector signature (55 aa) at offset %llu",
			    (unsigned long long)offset);
		goto out;
	}
	if (v->bps != 512 && v->bps != 1024 && v->bps != 2048 && v->bps != 4096) {
		art_err_set(err, rc, "FAT sector size %u is invalid", v->bps);
		goto out;
	}
	if (v->spc == 0 || (v->spc & (v->spc - 1)) || v->spc > 128) {
		art_err_set(err, rc, "FAT sectors per cluster %u is invalid", v->spc);
		goto out;
	}
	if (reserved == 0 || v->nfats == 0 || v->nfats > 4 || v->total_sectors == 0) {
		art_err_set(err, rc, "FAT boot sector has impossible values (reserved %u, "
			    "FATs %u, sectors %llu)", reserved, v->nfats,
			    (unsigned long long)v->total_sectors);
		goto out;
	}
	v->cluster_bytes = v->bps * v->spc;
	v->fat_sectors = fat16_sectors ? fat16_sectors : le32(bs + 36);
	if (v->fat_sectors == 0) {
		art_err_set(err, rc, "FAT size is 0 sectors");
		goto out;
	}
	v->fat_start = reserved;
	v->root_start = reserved + v->nfats * v->fat_sectors;
	v->root_sectors = (uint32_t)(((uint64_t)root_entries * DIRENT_SIZE + v->bps - 1) / v->bps);
	meta = (uint64_t)v->root_start + v->root_sectors;
	if (meta >= v->total_sectors) {
		art_err_set(err, rc, "FAT metadata (%llu sectors) fills the whole file system",
			    (unsigned long long)meta);
		goto out;
	}
	if (v->total_sectors * v->bps > size) {
		art_err_set(err, rc, "FAT file system claims %llu bytes but its partition has "
			    "only %llu", (unsigned long long)(v->total_sectors * v->bps),
			    (unsigned long long)size);
		goto out;
	}
	v->data_start = (uint32_t)meta;
	v->clusters = (uint32_t)((v->total_sectors - meta) / v->spc);
	if (v->clusters == 0) {
		art_err_set(err, rc, "FAT file system has no data clusters");
		goto out;
	}
	if (v->clusters <= FAT12_MAX_CLUSTERS)
		v->bits = 12;
	else if (v->clusters <= FAT16_MAX_CLUSTERS)
		v->bits = 16;
	else
		v->bits = 32;
	if ((v->bits == 32) != (fat16_sectors == 0) || (v->bits == 32 && root_entries)) {
		art_err_set(err, rc, "FAT boot sector is inconsistent: %u clusters mean FAT%u "
			    "but the FAT-size and root-entry fields say otherwise",
			    v->clusters, v->bits);
		goto out;
	}
	fat_bytes = (uint64_t)v->fat_sectors * v->bps;
	if (fat_bytes * 8 < ((uint64_t)v->clusters + 2) * v->bits) {
		art_err_set(err, rc, "FAT of %llu bytes is too small for %u clusters",
			    (unsigned long long)fat_bytes, v->clusters);
		goto out;
	}
	if (fat_bytes > FAT_READ_MAX) {
		art_err_set(err, rc, "FAT of %llu bytes is larger than this reader accepts",
			    (unsigned long long)fat_bytes);
		goto out;
	}
	if (v->bits == 32) {
		v->root_cluster = le32(bs + 44);
		if (v->root_cluster < 2 || v->root_cluster > v->clusters + 1) {
			art_err_set(err, rc, "FAT32 root cluster %u is out of range", v->root_cluster);
			goto out;
		}
		memcpy(v->label, bs + 71, 11);
	} else {
		memcpy(v->label, bs + 43, 11);
	}
	trim_label(v->label);
	v->fat = malloc(fat_bytes);
	if (!v->fat) {
		rc = -ENOMEM;
		goto out;
	}
	rc = pread_full(fd, v->fat, fat_bytes, offset + (uint64_t)v->fat_start * v->bps);
	if (rc) {
		art_err_set(err, rc, "cannot read the FAT: %s", strerror(-rc));
		goto out;
	}
	*out = v;
	v = NULL;
	rc = 0;
out:
	fat_close(v);
	return rc;
}

void fat_close(struct fat_vol *v)
{
	if (!v)
		return;
	free(v->fat);
	free(v);
}

unsigned fat_bits(const struct fat_vol *v)
{
	return v->bits;
}

uint32_t fat_cluster_bytes(const struct fat_vol *v)
{
	return v->cluster_bytes;
}

uint32_t fat_cluster_count(const struct fat_vol *v)
{
	return v->clusters;
}

uint64_t fat_fs_bytes(const struct fat_vol *v)
{
	return v->total_sectors * v->bps;
}

const char *fat_label(const struct fat_vol *v)
{
	return v->label;
}

static uint32_t fat_entry(const struct fat_vol *v, uint32_t c)
{
	const uint8_t *p;

	switch (v->bits) {
	case 12:
		p = v->fat + c + c / 2;
		return (c & 1) ? (uint32_t)(le16(p) >> 4) : (uint32_t)(le16(p) & 0xfff);
	case 16:
		return le16(v->fat + 2 * c);
	default:
		return le32(v->fat + 4 * c) & 0x0fffffff;
	}
}

static bool is_eoc(const struct fat_vol *v, uint32_t e)
{
	switch (v->bits) {
	case 12:
		return e >= 0xff8;
	case 16:
		return e >= 0xfff8;
	default:
		return e >= 0x0ffffff8;
	}
}

static bool is_free_or_bad(const struct fat_vol *v, uint32_t e)
{
	uint32_t bad = v->bits == 12 ? 0xff7 : v->bits == 16 ? 0xfff7 : 0x0ffffff7;

	return e == 0 || e == bad;
}

/* Next cluster of a chain: 0 at the end, -EINVAL for a broken chain. */
static int64_t chain_next(const struct fat_vol *v, uint32_t c)
{
	uint32_t e = fat_entry(v, c);

	if (is_eoc(v, e))
		return 0;
	if (e < 2 || e > v->clusters + 1)
		return -EINVAL;
	return e;
}

/* A cluster visited twice in one chain means a loop: chains are walked with a
 * bitmap so a corrupt FAT cannot make a file repeat its own data. */
static uint8_t *visit_map(const struct fat_vol *v)
{
	return calloc(1, ((size_t)v->clusters + 2 + 7) / 8);
}

static bool visit(uint8_t *map, uint32_t c)
{
	bool seen = map[c / 8] & (1u << (c % 8));

	map[c / 8] |= (uint8_t)(1u << (c % 8));
	return seen;
}

static uint64_t cluster_offset(const struct fat_vol *v, uint32_t c)
{
	return v->offset + ((uint64_t)v->data_start + (uint64_t)(c - 2) * v->spc) * v->bps;
}

/* Read a whole directory (fixed root or cluster chain) into a buffer. */
static int dir_load(struct fat_vol *v, uint32_t first_cluster, bool root, uint8_t **buf,
		    size_t *len, struct art_err *err)
{
	uint8_t *b = NULL, *nb, *map = NULL;
	size_t n = 0, cap = 0;
	uint32_t c, steps = 0;
	int64_t next;
	int rc;

	*buf = NULL;
	*len = 0;
	if (root && v->bits != 32) {
		n = (size_t)v->root_sectors * v->bps;
		b = malloc(n ? n : 1);
		if (!b)
			return -ENOMEM;
		rc = pread_full(v->fd, b, n, v->offset + (uint64_t)v->root_start * v->bps);
		if (rc) {
			free(b);
			return art_err_set(err, rc, "cannot read the FAT root directory: %s",
					   strerror(-rc));
		}
		*buf = b;
		*len = n;
		return 0;
	}
	c = root ? v->root_cluster : first_cluster;
	if (c < 2 || c > v->clusters + 1)
		return art_err_set(err, -EINVAL, "directory starts at invalid cluster %u", c);
	map = visit_map(v);
	if (!map)
		return -ENOMEM;
	while (c) {
		if (++steps > v->clusters || n > (16u << 20) || visit(map, c)) {
			free(map);
			free(b);
			return art_err_set(err, -EINVAL, "directory cluster chain loops or is "
					   "absurdly long (at cluster %u)", c);
		}
		if (n + v->cluster_bytes > cap) {
			cap = cap ? cap * 2 : v->cluster_bytes;
			nb = realloc(b, cap);
			if (!nb) {
				free(map);
				free(b);
				return -ENOMEM;
			}
			b = nb;
		}
		rc = pread_full(v->fd, b + n, v->cluster_bytes, cluster_offset(v, c));
		if (rc) {
			free(map);
			free(b);
			return art_err_set(err, rc, "cannot read directory cluster %u: %s", c,
					   strerror(-rc));
		}
		n += v->cluster_bytes;
		next = chain_next(v, c);
		if (next < 0) {
			free(map);
			free(b);
			return art_err_set(err, -EINVAL, "directory cluster chain is broken "
					   "after cluster %u", c);
		}
		c = (uint32_t)next;
	}
	free(map);
	*buf = b;
	*len = n;
	return 0;
}

static uint8_t lfn_checksum(const uint8_t name[11])
{
	uint8_t sum = 0;
	int i;

	for (i = 0; i < 11; i++)
		sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + name[i]);
	return sum;
}

/* UCS-2 unit to UTF-8; returns bytes written (≤ 3). */
static size_t utf8_put(char *out, uint16_t u)
{
	if (u < 0x80) {
		out[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		out[0] = (char)(0xc0 | u >> 6);
		out[1] = (char)(0x80 | (u & 0x3f));
		return 2;
	}
	out[0] = (char)(0xe0 | u >> 12);
	out[1] = (char)(0x80 | ((u >> 6) & 0x3f));
	out[2] = (char)(0x80 | (u & 0x3f));
	return 3;
}

static time_t dos_time(uint16_t date, uint16_t tm)
{
	struct tm t;

	memset(&t, 0, sizeof(t));
	t.tm_year = 80 + (date >> 9);
	t.tm_mon = ((date >> 5) & 15) - 1;
	t.tm_mday = date & 31;
	t.tm_hour = tm >> 11;
	t.tm_min = (tm >> 5) & 63;
	t.tm_sec = (tm & 31) * 2;
	if (t.tm_mon < 0 || t.tm_mon > 11 || t.tm_mday < 1)
		return 0;
	return timegm(&t);
}

static void short_name(const uint8_t *e, char *out)
{
	size_t n = 0;
	int i;

	for (i = 0; i < 8 && e[i] != ' '; i++) {
		char ch = (char)(i == 0 && e[0] == 0x05 ? 0xe5 : e[i]);

		out[n++] = (e[12] & NT_BASE_LOWER) && ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
	}
	if (e[8] != ' ') {
		out[n++] = '.';
		for (i = 8; i < 11 && e[i] != ' '; i++) {
			char ch = (char)e[i];

			out[n++] = (e[12] & NT_EXT_LOWER) && ch >= 'A' && ch <= 'Z' ?
				(char)(ch + 32) : ch;
		}
	}
	out[n] = '\0';
}

typedef int (*dir_entry_cb)(void *usr, const struct fat_dirent *e);

/* Parse directory entries; long names are used when their checksum and
 * sequence are intact, else the 8.3 name (as Linux does). */
static int dir_parse(struct fat_vol *v, const uint8_t *buf, size_t len, bool root,
		     dir_entry_cb cb, void *usr)
{
	uint16_t lfn[260];
	int lfn_expect = 0, lfn_total = 0;
	uint8_t lfn_sum = 0;
	size_t off;
	int rc;

	for (off = 0; off + DIRENT_SIZE <= len; off += DIRENT_SIZE) {
		const uint8_t *e = buf + off;
		struct fat_dirent d;

		if (e[0] == 0x00)
			break;
		if (e[0] == 0xe5) {
			lfn_expect = 0;
			continue;
		}
		if ((e[11] & 0x3f) == ATTR_LFN) {
			int ord = e[0] & 0x1f, k;
			static const int pos[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};

			if (e[0] & 0x40) {
				if (ord < 1 || ord > 20) {
					lfn_expect = 0;
					continue;
				}
				lfn_total = ord;
				lfn_expect = ord;
				lfn_sum = e[13];
				memset(lfn, 0xff, sizeof(lfn));
			} else if (ord != lfn_expect || e[13] != lfn_sum) {
				lfn_expect = 0;
				continue;
			}
			for (k = 0; k < 13; k++)
				lfn[(ord - 1) * 13 + k] = le16(e + pos[k]);
			lfn_expect = ord - 1;
			continue;
		}
		memset(&d, 0, sizeof(d));
		d.attr = e[11];
		if (d.attr & ATTR_VOLUME) {
			if (root && !(d.attr & ATTR_DIR)) {
				memcpy(v->label, e, 11);
				v->label[11] = '\0';
				trim_label(v->label);
			}
			lfn_expect = 0;
			continue;
		}
		if (lfn_total && lfn_expect == 0 && lfn_checksum(e) == lfn_sum) {
			size_t n = 0;
			int k;

			for (k = 0; k < lfn_total * 13 && k < 255; k++) {
				if (lfn[k] == 0x0000 || lfn[k] == 0xffff)
					break;
				n += utf8_put(d.name + n, lfn[k]);
			}
			d.name[n] = '\0';
		} else {
			short_name(e, d.name);
		}
		lfn_total = 0;
		lfn_expect = 0;
		if (!strcmp(d.name, ".") || !strcmp(d.name, ".."))
			continue;
		d.is_dir = (d.attr & ATTR_DIR) != 0;
		d.size = d.is_dir ? 0 : le32(e + 28);
		d.first_cluster = le16(e + 26) | (v->bits == 32 ? (uint32_t)le16(e + 20) << 16 : 0);
		d.mtime = dos_time(le16(e + 24), le16(e + 22));
		if (d.name[0] == '\0')
			continue;
		rc = cb(usr, &d);
		if (rc)
			return rc;
	}
	return 0;
}

struct walk_ctx {
	struct fat_vol *v;
	fat_walk_cb cb;
	void *usr;
	struct art_err *err;
	char *path;
	size_t path_len;
	int depth;
	/* lookup mode */
	const char *want;
	struct fat_dirent *found;
};

static int walk_dir(struct walk_ctx *w, uint32_t cluster, bool root);

static int walk_entry(void *usr, const struct fat_dirent *e)
{
	struct walk_ctx *w = usr;
	size_t base = w->path_len, nl = strlen(e->name);
	int rc;

	if (base + 1 + nl + 1 > PATH_MAX)
		return art_err_set(w->err, -ENAMETOOLONG, "FAT path too long under %s", w->path);
	if (base)
		w->path[w->path_len++] = '/';
	memcpy(w->path + w->path_len, e->name, nl + 1);
	w->path_len += nl;
	rc = w->cb(w->usr, w->path, e);
	if (!rc && e->is_dir) {
		if (w->depth >= FAT_DEPTH_MAX)
			rc = art_err_set(w->err, -EINVAL, "FAT directories nested deeper than %d "
					 "at %s (a loop?)", FAT_DEPTH_MAX, w->path);
		else {
			w->depth++;
			rc = walk_dir(w, e->first_cluster, false);
			w->depth--;
		}
	}
	w->path_len = base;
	w->path[base] = '\0';
	return rc;
}

static int walk_dir(struct walk_ctx *w, uint32_t cluster, bool root)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	rc = dir_load(w->v, cluster, root, &buf, &len, w->err);
	if (rc)
		return rc;
	rc = dir_parse(w->v, buf, len, root, walk_entry, w);
	free(buf);
	return rc;
}

int fat_walk(struct fat_vol *v, fat_walk_cb cb, void *usr, struct art_err *err)
{
	struct walk_ctx w = {.v = v, .cb = cb, .usr = usr, .err = err};
	int rc;

	w.path = calloc(1, PATH_MAX);
	if (!w.path)
		return -ENOMEM;
	rc = walk_dir(&w, 0, true);
	free(w.path);
	return rc;
}

struct lookup_ctx {
	const char *name;
	size_t name_len;
	struct fat_dirent *out;
};

static int lookup_entry(void *usr, const struct fat_dirent *e)
{
	struct lookup_ctx *l = usr;

	if (strlen(e->name) == l->name_len && !strncasecmp(e->name, l->name, l->name_len)) {
		*l->out = *e;
		return 1;
	}
	return 0;
}

int fat_lookup(struct fat_vol *v, const char *path, struct fat_dirent *out, struct art_err *err)
{
	struct fat_dirent cur;
	bool root = true;
	const char *p = path;
	int rc;

	memset(&cur, 0, sizeof(cur));
	cur.is_dir = true;
	while (*p == '/')
		p++;
	if (!*p)
		return art_err_set(err, -EINVAL, "empty FAT path");
	while (*p) {
		const char *slash = strchr(p, '/');
		struct lookup_ctx l;
		uint8_t *buf = NULL;
		size_t len = 0;

		if (!cur.is_dir)
			return art_err_set(err, -ENOTDIR, "%s: a path component is a file", path);
		l.name = p;
		l.name_len = slash ? (size_t)(slash - p) : strlen(p);
		l.out = &cur;
		rc = dir_load(v, cur.first_cluster, root, &buf, &len, err);
		if (rc)
			return rc;
		rc = dir_parse(v, buf, len, root, lookup_entry, &l);
		free(buf);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return art_err_set(err, -ENOENT, "%s not found in the FAT file system", path);
		root = false;
		p += l.name_len;
		while (*p == '/')
			p++;
	}
	*out = cur;
	return 0;
}

int fat_read_file(struct fat_vol *v, const struct fat_dirent *e, int out_fd, struct art_err *err)
{
	uint32_t left = e->size, c = e->first_cluster, steps = 0;
	uint8_t *buf, *map;
	int rc = 0;

	if (e->is_dir)
		return art_err_set(err, -EISDIR, "%s is a directory", e->name);
	if (!left)
		return 0;
	buf = malloc(v->cluster_bytes);
	map = visit_map(v);
	if (!buf || !map) {
		free(buf);
		free(map);
		return -ENOMEM;
	}
	while (left) {
		uint32_t n = left < v->cluster_bytes ? left : v->cluster_bytes;
		int64_t next;

		if (c < 2 || c > v->clusters + 1 || ++steps > v->clusters || visit(map, c)) {
			rc = art_err_set(err, -EINVAL, "%s: cluster chain ends or loops with %u "
					 "bytes still to read", e->name, left);
			goto out;
		}
		rc = pread_full(v->fd, buf, n, cluster_offset(v, c));
		if (rc) {
			art_err_set(err, rc, "%s: cannot read cluster %u: %s", e->name, c,
				    strerror(-rc));
			goto out;
		}
		rc = write_full(out_fd, buf, n);
		if (rc) {
			art_err_set(err, rc, "%s: cannot write the extracted copy: %s", e->name,
				    strerror(-rc));
			goto out;
		}
		left -= n;
		next = chain_next(v, c);
		if (next < 0) {
			rc = art_err_set(err, -EINVAL, "%s: broken cluster chain after %u",
					 e->name, c);
			goto out;
		}
		c = (uint32_t)next;
	}
out:
	free(map);
	free(buf);
	return rc;
}

static bool name_is_safe(const char *name)
{
	const unsigned char *p;

	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == '/' || *p == '\\' || *p == 0x7f)
			return false;
	return true;
}

struct extract_ctx {
	struct fat_vol *v;
	const char *dir;
	struct art_err *err;
};

static int extract_entry(void *usr, const char *path, const struct fat_dirent *e)
{
	struct extract_ctx *x = usr;
	struct timespec ts[2];
	char *full = NULL;
	int fd = -1, rc = 0;

	if (!name_is_safe(e->name))
		return art_err_set(x->err, -EINVAL, "FAT entry name \"%s\" is unsafe to extract",
				   e->name);
	if (asprintf(&full, "%s/%s", x->dir, path) < 0)
		return -ENOMEM;
	if (e->is_dir) {
		if (mkdir(full, 0755) < 0 && errno != EEXIST)
			rc = art_err_set(x->err, -errno, "cannot create %s: %s", full,
					 strerror(errno));
		goto out;
	}
	fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		rc = art_err_set(x->err, -errno, "cannot create %s: %s (duplicate name in the "
				 "FAT?)", full, strerror(errno));
		goto out;
	}
	rc = fat_read_file(x->v, e, fd, x->err);
	if (rc)
		goto out;
	ts[0].tv_sec = ts[1].tv_sec = e->mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	futimens(fd, ts);
out:
	if (fd >= 0 && close(fd) < 0 && !rc)
		rc = art_err_set(x->err, -errno, "cannot write %s: %s", full, strerror(errno));
	free(full);
	return rc;
}

/* Second pass: directory times, once nothing more is written into them. */
static int stamp_dir(void *usr, const char *path, const struct fat_dirent *e)
{
	struct extract_ctx *x = usr;
	struct timespec ts[2];
	char *full = NULL;

	if (!e->is_dir)
		return 0;
	if (asprintf(&full, "%s/%s", x->dir, path) < 0)
		return -ENOMEM;
	ts[0].tv_sec = ts[1].tv_sec = e->mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	utimensat(AT_FDCWD, full, ts, AT_SYMLINK_NOFOLLOW);
	free(full);
	return 0;
}

int fat_extract_tree(struct fat_vol *v, const char *dir, struct art_err *err)
{
	struct extract_ctx x = {.v = v, .dir = dir, .err = err};
	int rc = fat_walk(v, extract_entry, &x, err);

	return rc ? rc : fat_walk(v, stamp_dir, &x, err);
}

int fat_used_extents(struct fat_vol *v, fat_extent_cb cb, void *usr, struct art_err *err)
{
	uint64_t run_start = 0, run_len = (uint64_t)v->data_start * v->bps;
	uint64_t cb_bytes = v->cluster_bytes;
	uint32_t c;
	int rc;

	(void)err;
	for (c = 2; c < v->clusters + 2; c++) {
		uint64_t off;

		if (is_free_or_bad(v, fat_entry(v, c)))
			continue;
		off = ((uint64_t)v->data_start + (uint64_t)(c - 2) * v->spc) * v->bps;
		if (run_len && run_start + run_len == off) {
			run_len += cb_bytes;
			continue;
		}
		if (run_len) {
			rc = cb(usr, run_start, run_len);
			if (rc)
				return rc;
		}
		run_start = off;
		run_len = cb_bytes;
	}
	return run_len ? cb(usr, run_start, run_len) : 0;
}

/* ---------------------------------------------------------------- writer */

struct wnode {
	char *name;		/* base name, UTF-8 */
	char *src;		/* host path */
	bool is_dir;
	uint64_t size;
	time_t mtime;
	struct wnode *kids;	/* array, sorted by name */
	size_t nkids;
	/* layout */
	uint32_t first_cluster, nclusters;
	uint8_t shortname[11];
	uint8_t ntflags;
	int lfn_entries;	/* 0 when the 8.3 name says it all */
};

static void wnode_free(struct wnode *n)
{
	size_t i;

	for (i = 0; i < n->nkids; i++)
		wnode_free(&n->kids[i]);
	free(n->kids);
	free(n->name);
	free(n->src);
}

static int wnode_cmp(const void *a, const void *b)
{
	const char *x = ((const struct wnode *)a)->name, *y = ((const struct wnode *)b)->name;
	int c = strcasecmp(x, y);

	/* case-insensitive first, so names FAT would confuse end up adjacent */
	return c ? c : strcmp(x, y);
}

static int scan_dir(struct wnode *dir, int depth, struct art_err *err)
{
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (depth > FAT_DEPTH_MAX)
		return art_err_set(err, -ELOOP, "%s: directories nested too deep", dir->src);
	d = opendir(dir->src);
	if (!d)
		return art_err_set(err, -errno, "cannot read directory %s: %s", dir->src,
				   strerror(errno));
	while ((de = readdir(d))) {
		struct wnode *nk, *k;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		nk = realloc(dir->kids, (dir->nkids + 1) * sizeof(*nk));
		if (!nk) {
			rc = -ENOMEM;
			break;
		}
		dir->kids = nk;
		k = &dir->kids[dir->nkids];
		memset(k, 0, sizeof(*k));
		k->name = strdup(de->d_name);
		if (!k->name || asprintf(&k->src, "%s/%s", dir->src, de->d_name) < 0) {
			free(k->name);
			rc = -ENOMEM;
			break;
		}
		dir->nkids++;
		if (lstat(k->src, &st) < 0) {
			rc = art_err_set(err, -errno, "cannot stat %s: %s", k->src, strerror(errno));
			break;
		}
		k->mtime = st.st_mtime;
		if (S_ISDIR(st.st_mode)) {
			k->is_dir = true;
			rc = scan_dir(k, depth + 1, err);
			if (rc)
				break;
		} else if (S_ISREG(st.st_mode)) {
			if ((uint64_t)st.st_size > UINT32_MAX) {
				rc = art_err_set(err, -EFBIG, "%s is %lld bytes: FAT files end at "
						 "4 GiB", k->src, (long long)st.st_size);
				break;
			}
			k->size = (uint64_t)st.st_size;
		} else {
			rc = art_err_set(err, -EINVAL, "%s is neither a file nor a directory: "
					 "FAT cannot hold it", k->src);
			break;
		}
	}
	closedir(d);
	if (!rc && dir->nkids)
		qsort(dir->kids, dir->nkids, sizeof(*dir->kids), wnode_cmp);
	return rc;
}

/* UTF-8 to UCS-2; -EINVAL for invalid sequences or characters outside the BMP. */
static int utf8_to_ucs2(const char *s, uint16_t *out, size_t max, size_t *n_out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p) {
		uint32_t c;

		if (n >= max)
			return -ENAMETOOLONG;
		if (p[0] < 0x80) {
			c = p[0];
			p += 1;
		} else if ((p[0] & 0xe0) == 0xc0 && (p[1] & 0xc0) == 0x80) {
			c = (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
			p += 2;
		} else if ((p[0] & 0xf0) == 0xe0 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80) {
			c = (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
			p += 3;
		} else {
			return -EINVAL;
		}
		out[n++] = (uint16_t)c;
	}
	*n_out = n;
	return 0;
}

static bool sfn_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$%&'()-@^_`{}~", c);
}

/* Does @name fit 8.3 exactly (maybe all-lower base / ext, which NT flags
 * record)? Fills @sn and @nt if so. */
static bool fits_83(const char *name, uint8_t sn[11], uint8_t *nt)
{
	const char *dot = strrchr(name, '.');
	size_t blen = dot ? (size_t)(dot - name) : strlen(name);
	size_t elen = dot ? strlen(dot + 1) : 0;
	bool bl = false, bu = false, el = false, eu = false;
	size_t i;

	if (blen == 0 || blen > 8 || elen > 3 || (dot && elen == 0) || (dot && strchr(name, '.') != dot))
		return false;
	memset(sn, ' ', 11);
	for (i = 0; i < blen + (dot ? 1 + elen : 0); i++) {
		char c = name[i];
		bool in_ext = dot && name + i > dot;

		if (name + i == dot)
			continue;
		if (c >= 'a' && c <= 'z') {
			*(in_ext ? &el : &bl) = true;
			c = (char)(c - 32);
		} else if (c >= 'A' && c <= 'Z') {
			*(in_ext ? &eu : &bu) = true;
		}
		if (!sfn_char_ok(c))
			return false;
		if (in_ext)
			sn[8 + (size_t)(name + i - dot - 1)] = (uint8_t)c;
		else
			sn[i] = (uint8_t)c;
	}
	if ((bl && bu) || (el && eu))
		return false;	/* mixed case needs a long name */
	*nt = (uint8_t)((bl ? NT_BASE_LOWER : 0) | (el ? NT_EXT_LOWER : 0));
	return true;
}

static bool sfn_taken(const struct wnode *dir, size_t upto, const uint8_t sn[11])
{
	size_t i;

	for (i = 0; i < upto; i++)
		if (!memcmp(dir->kids[i].shortname, sn, 11))
			return true;
	return false;
}

/* Names for every child of @dir: 8.3 when the name fits, else a long name
 * plus a unique BASIS~N.EXT alias. */
static int assign_names(struct wnode *dir, struct art_err *err)
{
	size_t i;

	for (i = 0; i < dir->nkids; i++) {
		struct wnode *k = &dir->kids[i];
		uint16_t u[256];
		size_t ulen;
		char basis[9], ext[4];
		const char *dot;
		size_t bn = 0, en = 0, j;
		unsigned tail;

		if (i && !strcasecmp(dir->kids[i - 1].name, k->name))
			return art_err_set(err, -EEXIST, "%s and %s differ only in case: FAT "
					   "cannot hold both", dir->kids[i - 1].src, k->src);
		if (utf8_to_ucs2(k->name, u, 255, &ulen) < 0 || ulen == 0)
			return art_err_set(err, -EINVAL, "%s: name is not valid UTF-8 within the "
					   "255-character FAT limit", k->src);
		if (fits_83(k->name, k->shortname, &k->ntflags) &&
		    !sfn_taken(dir, i, k->shortname)) {
			k->lfn_entries = 0;
			continue;
		}
		k->ntflags = 0;
		k->lfn_entries = (int)((ulen + 12) / 13);
		dot = strrchr(k->name, '.');
		if (dot == k->name)
			dot = NULL;
		for (j = 0; k->name[j] && (!dot || k->name + j < dot) && bn < 8; j++) {
			char c = k->name[j];

			if (c == ' ' || c == '.')
				continue;
			if (c >= 'a' && c <= 'z')
				c = (char)(c - 32);
			basis[bn++] = sfn_char_ok(c) ? c : '_';
		}
		for (j = 0; dot && dot[1 + j] && en < 3; j++) {
			char c = dot[1 + j];

			if (c == ' ')
				continue;
			if (c >= 'a' && c <= 'z')
				c = (char)(c - 32);
			ext[en++] = sfn_char_ok(c) ? c : '_';
		}
		if (bn == 0)
			basis[bn++] = '_';
		for (tail = 1; tail < 1000000; tail++) {
			char t[8];
			int tl = snprintf(t, sizeof(t), "~%u", tail);
			size_t keep = bn + (size_t)tl > 8 ? 8 - (size_t)tl : bn;

			memset(k->shortname, ' ', 11);
			memcpy(k->shortname, basis, keep);
			memcpy(k->shortname + keep, t, (size_t)tl);
			memcpy(k->shortname + 8, ext, en);
			if (!sfn_taken(dir, i, k->shortname))
				break;
		}
		if (tail == 1000000)
			return art_err_set(err, -EEXIST, "%s: no free 8.3 alias", k->src);
	}
	for (i = 0; i < dir->nkids; i++) {
		if (dir->kids[i].is_dir) {
			int rc = assign_names(&dir->kids[i], err);

			if (rc)
				return rc;
		}
	}
	return 0;
}

static size_t dir_entries(const struct wnode *dir, bool root, bool has_label)
{
	size_t n = root ? (has_label ? 1 : 0) : 2, i;

	for (i = 0; i < dir->nkids; i++)
		n += 1 + (size_t)dir->kids[i].lfn_entries;
	return n;
}

struct layout {
	unsigned bits;
	uint32_t spc, nfats, reserved, root_entries, root_sectors;
	uint32_t fat_sectors, clusters;
	uint64_t total_sectors;
	uint32_t next_free;	/* allocator */
};

/* Clusters the tree needs (FAT32: the root directory too). */
static uint64_t need_clusters(const struct wnode *dir, bool root, bool fat32, bool has_label,
			      uint32_t cluster_bytes)
{
	uint64_t n = 0;
	size_t i;

	if (!root || fat32) {
		uint64_t bytes = (uint64_t)dir_entries(dir, root, has_label) * DIRENT_SIZE;

		n += bytes ? (bytes + cluster_bytes - 1) / cluster_bytes : 1;
	}
	for (i = 0; i < dir->nkids; i++) {
		const struct wnode *k = &dir->kids[i];

		if (k->is_dir)
			n += need_clusters(k, false, fat32, has_label, cluster_bytes);
		else
			n += (k->size + cluster_bytes - 1) / cluster_bytes;
	}
	return n;
}

/* Geometry for @bits over @total sectors: 0 when the cluster count fits the
 * type, -ERANGE otherwise. */
static int geometry(struct layout *l, unsigned bits, uint64_t total)
{
	uint64_t f = 1, clusters = 0, meta;

	l->bits = bits;
	l->reserved = bits == 32 ? 32 : 1;
	l->root_sectors = bits == 32 ? 0 : (l->root_entries * DIRENT_SIZE + 511) / 512;
	for (;;) {
		uint64_t need;

		meta = l->reserved + l->nfats * f + l->root_sectors;
		if (meta >= total)
			return -ERANGE;
		clusters = (total - meta) / l->spc;
		need = ((clusters + 2) * bits + 8 * 512 - 1) / (8 * 512);
		if (need <= f)
			break;
		f = need;
	}
	if (clusters > 0x0ffffff0u)
		return -ERANGE;
	l->fat_sectors = (uint32_t)f;
	l->clusters = (uint32_t)clusters;
	l->total_sectors = total;
	if (bits == 12 && clusters > FAT12_MAX_CLUSTERS)
		return -ERANGE;
	if (bits == 16 && (clusters <= FAT12_MAX_CLUSTERS || clusters > FAT16_MAX_CLUSTERS))
		return -ERANGE;
	if (bits == 32 && clusters <= FAT16_MAX_CLUSTERS)
		return -ERANGE;
	return 0;
}

/* Pick the FAT type (wanted one if it fits, else by cluster count). A total
 * that fits no type (a boundary case) loses one cluster at a time. */
static int choose_layout(struct layout *l, unsigned want, uint64_t total)
{
	static const unsigned order[3] = {12, 16, 32};
	int tries, i;

	for (tries = 0; tries < 64 && total > 8; tries++, total -= l->spc) {
		if (want && geometry(l, want, total) == 0)
			return 0;
		for (i = 0; i < 3; i++)
			if (geometry(l, order[i], total) == 0)
				return 0;
	}
	return -ERANGE;
}

static void alloc_tree(struct layout *l, struct wnode *dir, bool root, bool has_label)
{
	size_t i;
	uint32_t cb = l->spc * 512;

	if (!root || l->bits == 32) {
		uint64_t bytes = (uint64_t)dir_entries(dir, root, has_label) * DIRENT_SIZE;

		dir->nclusters = (uint32_t)(bytes ? (bytes + cb - 1) / cb : 1);
		dir->first_cluster = l->next_free;
		l->next_free += dir->nclusters;
	}
	for (i = 0; i < dir->nkids; i++) {
		struct wnode *k = &dir->kids[i];

		if (k->is_dir)
			continue;
		k->nclusters = (uint32_t)((k->size + cb - 1) / cb);
		k->first_cluster = k->nclusters ? l->next_free : 0;
		l->next_free += k->nclusters;
	}
	for (i = 0; i < dir->nkids; i++)
		if (dir->kids[i].is_dir)
			alloc_tree(l, &dir->kids[i], false, has_label);
}

static void fat_set(uint8_t *fat, unsigned bits, uint32_t c, uint32_t val)
{
	uint8_t *p;

	switch (bits) {
	case 12:
		p = fat + c + c / 2;
		if (c & 1)
			put16(p, (uint32_t)(le16(p) & 0x000f) | (val & 0xfff) << 4);
		else
			put16(p, (uint32_t)(le16(p) & 0xf000) | (val & 0xfff));
		break;
	case 16:
		put16(fat + 2 * c, val);
		break;
	default:
		put32(fat + 4 * c, val & 0x0fffffff);
		break;
	}
}

static void chain_tree(uint8_t *fat, unsigned bits, const struct wnode *n)
{
	uint32_t eoc = bits == 12 ? 0xfff : bits == 16 ? 0xffff : 0x0fffffff, i;
	size_t k;

	for (i = 0; i < n->nclusters; i++)
		fat_set(fat, bits, n->first_cluster + i,
			i + 1 == n->nclusters ? eoc : n->first_cluster + i + 1);
	for (k = 0; k < n->nkids; k++)
		chain_tree(fat, bits, &n->kids[k]);
}

static void dos_stamp(time_t t, uint8_t *date_out, uint8_t *time_out)
{
	struct tm tm;

	if (t < 315532800)	/* 1980-01-01 */
		t = 315532800;
	gmtime_r(&t, &tm);
	if (tm.tm_year > 207) {
		tm.tm_year = 207;
		tm.tm_mon = 11;
		tm.tm_mday = 31;
	}
	put16(date_out, (uint32_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday));
	put16(time_out, (uint32_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2));
}

static void put_sfn(uint8_t *e, const uint8_t sn[11], uint8_t attr, uint8_t nt, uint32_t cluster,
		    uint32_t size, time_t t)
{
	memcpy(e, sn, 11);
	e[11] = attr;
	e[12] = nt;
	dos_stamp(t, e + 16, e + 14);	/* creation */
	memcpy(e + 18, e + 16, 2);	/* access date */
	put16(e + 20, cluster >> 16);
	dos_stamp(t, e + 24, e + 22);	/* modification */
	put16(e + 26, cluster & 0xffff);
	put32(e + 28, size);
}

/* Encode the directory @dir into @buf (zeroed, large enough). */
static void encode_dir(const struct layout *l, const struct wnode *dir, uint32_t parent_cluster,
		       bool root, const char *label, time_t dir_time, uint8_t *buf)
{
	static const int pos[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
	uint8_t *e = buf;
	size_t i;

	if (root && label) {
		uint8_t lab[11];

		memset(lab, ' ', 11);
		memcpy(lab, label, strlen(label) < 11 ? strlen(label) : 11);
		put_sfn(e, lab, ATTR_VOLUME, 0, 0, 0, dir_time);
		memset(e + 12, 0, 8);	/* labels carry only the modification stamp */
		e += DIRENT_SIZE;
	}
	if (!root) {
		static const uint8_t dot[11] = {'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		static const uint8_t dotdot[11] = {'.', '.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

		put_sfn(e, dot, ATTR_DIR, 0, dir->first_cluster, 0, dir->mtime);
		e += DIRENT_SIZE;
		put_sfn(e, dotdot, ATTR_DIR, 0, parent_cluster, 0, dir->mtime);
		e += DIRENT_SIZE;
	}
	for (i = 0; i < dir->nkids; i++) {
		const struct wnode *k = &dir->kids[i];
		time_t t = k->mtime;
		int s;

		if (k->lfn_entries) {
			uint16_t u[256 + 13];
			size_t ulen = 0;
			uint8_t sum = lfn_checksum(k->shortname);

			utf8_to_ucs2(k->name, u, 255, &ulen);
			u[ulen] = 0x0000;
			for (s = (int)ulen + 1; s < k->lfn_entries * 13; s++)
				u[s] = 0xffff;
			for (s = k->lfn_entries; s >= 1; s--) {
				int c;

				e[0] = (uint8_t)(s | (s == k->lfn_entries ? 0x40 : 0));
				e[11] = ATTR_LFN;
				e[13] = sum;
				for (c = 0; c < 13; c++)
					put16(e + pos[c], u[(s - 1) * 13 + c]);
				e += DIRENT_SIZE;
			}
		}
		put_sfn(e, k->shortname, k->is_dir ? ATTR_DIR : ATTR_ARCHIVE, k->ntflags,
			k->first_cluster, k->is_dir ? 0 : (uint32_t)k->size, t);
		e += DIRENT_SIZE;
	}
}

struct writer {
	int fd;
	const struct layout *l;
	const char *label;
	time_t stamp;
	struct art_err *err;
	uint8_t *copybuf;
};

static uint64_t data_offset(const struct layout *l, uint32_t c)
{
	uint64_t first = l->reserved + (uint64_t)l->nfats * l->fat_sectors + l->root_sectors;

	return (first + (uint64_t)(c - 2) * l->spc) * 512;
}

static int copy_file(struct writer *w, const struct wnode *k)
{
	uint64_t off = data_offset(w->l, k->first_cluster), left = k->size;
	struct stat st;
	int fd, rc = 0;

	if (!left)
		return 0;
	fd = open(k->src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return art_err_set(w->err, -errno, "cannot open %s: %s", k->src, strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != k->size) {
		rc = art_err_set(w->err, -EAGAIN, "%s changed size while the FAT image was "
				 "being built: build again", k->src);
		goto out;
	}
	while (left) {
		size_t n = left < COPY_BUF ? (size_t)left : COPY_BUF;
		ssize_t r = read(fd, w->copybuf, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = art_err_set(w->err, r < 0 ? -errno : -EIO, "cannot read %s: %s",
					 k->src, r < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		rc = pwrite_full(w->fd, w->copybuf, (size_t)r, off);
		if (rc) {
			art_err_set(w->err, rc, "cannot write the FAT image: %s", strerror(-rc));
			goto out;
		}
		off += (uint64_t)r;
		left -= (uint64_t)r;
	}
out:
	close(fd);
	return rc;
}

static int write_tree(struct writer *w, const struct wnode *dir, uint32_t parent, bool root)
{
	const struct layout *l = w->l;
	size_t bytes, i;
	uint64_t off;
	uint8_t *buf;
	int rc;

	if (root && l->bits != 32) {
		bytes = (size_t)l->root_sectors * 512;
		off = (l->reserved + (uint64_t)l->nfats * l->fat_sectors) * 512;
	} else {
		bytes = (size_t)dir->nclusters * l->spc * 512;
		off = data_offset(l, dir->first_cluster);
	}
	buf = calloc(1, bytes);
	if (!buf)
		return -ENOMEM;
	encode_dir(l, dir, parent, root, w->label, w->stamp ? w->stamp : dir->mtime, buf);
	rc = pwrite_full(w->fd, buf, bytes, off);
	free(buf);
	if (rc)
		return art_err_set(w->err, rc, "cannot write the FAT image: %s", strerror(-rc));
	for (i = 0; i < dir->nkids && !rc; i++) {
		const struct wnode *k = &dir->kids[i];

		if (k->is_dir)
			rc = write_tree(w, k, root ? 0 : dir->first_cluster, false);
		else
			rc = copy_file(w, k);
	}
	return rc;
}

static void stamp_tree(struct wnode *n, time_t t)
{
	size_t i;

	n->mtime = t;
	for (i = 0; i < n->nkids; i++)
		stamp_tree(&n->kids[i], t);
}

void fat_opts_boot_img(struct fat_mkfs_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sectors_per_cluster = 1;
	o->nfats = 1;
	o->root_entries = 256;
	o->heads = 1;
	o->sectors_per_track = 1;
	o->label = "BOOT";
}

void fat_opts_boot_partition(struct fat_mkfs_opts *o, uint64_t bytes)
{
	memset(o, 0, sizeof(*o));
	o->fat_bits = 32;
	o->sectors_per_cluster = 1;
	o->nfats = 2;
	o->root_entries = 512;
	o->size_bytes = bytes;
	o->label = "BOOT";
}

/* rpi-make-boot-image's estimate (spec §5.1), using the base name's length. */
static uint64_t estimate_clusters(const struct wnode *dir, uint32_t cb)
{
	uint64_t entries = 2, n = 0;
	size_t i;

	for (i = 0; i < dir->nkids; i++) {
		const struct wnode *k = &dir->kids[i];
		uint8_t sn[11], nt;

		entries += 1;
		if (!fits_83(k->name, sn, &nt) || nt)
			entries += (2 * strlen(k->name) + 25) / 26;
		if (k->is_dir)
			n += estimate_clusters(k, cb);
		else
			n += (k->size + cb - 1) / cb;
	}
	return n + (32 * entries + cb - 1) / cb;
}

static uint64_t estimate_bytes(const struct wnode *root, const struct layout *l)
{
	uint32_t cb = l->spc * 512;
	uint64_t clusters = estimate_clusters(root, cb), fat_bytes, fat_sectors;

	if (clusters > 65526)
		fat_bytes = (clusters + 2) * 4;
	else if (clusters > 4085)
		fat_bytes = (clusters + 2) * 2;
	else
		fat_bytes = ((clusters + 2) * 3 + 1) / 2;
	fat_sectors = (fat_bytes + 511) / 512 * l->nfats;
	if (clusters <= 65526)
		fat_sectors += (l->root_entries * DIRENT_SIZE + 511) / 512;
	return ((clusters * cb + fat_sectors * 512 + 1023) / 1024 + 16) * 1024;
}

static void encode_boot_sector(const struct layout *l, const struct fat_mkfs_opts *o,
			       uint8_t bs[512])
{
	static const uint8_t boot_code[] = {0x0e, 0x1f, 0xbe, 0x77, 0x7c, 0xac, 0x22, 0xc0,
					    0x74, 0x0b, 0x56, 0xb4, 0x0e, 0xbb, 0x07, 0x00,
					    0xcd, 0x10, 0x5e, 0xeb, 0xf0, 0x32, 0xe4, 0xcd,
					    0x16, 0xcd, 0x19, 0xeb, 0xfe};
	uint8_t label[11];
	uint8_t *ext;

	memset(bs, 0, 512);
	memset(label, ' ', 11);
	if (o->label)
		memcpy(label, o->label, strlen(o->label) < 11 ? strlen(o->label) : 11);
	else
		memcpy(label, "NO NAME", 7);
	bs[0] = 0xeb;
	bs[1] = l->bits == 32 ? 0x58 : 0x3c;
	bs[2] = 0x90;
	memcpy(bs + 3, "mkfs.fat", 8);
	put16(bs + 11, 512);
	bs[13] = (uint8_t)l->spc;
	put16(bs + 14, l->reserved);
	bs[16] = (uint8_t)l->nfats;
	put16(bs + 17, l->bits == 32 ? 0 : l->root_entries);
	if (l->total_sectors < 65536)
		put16(bs + 19, (uint32_t)l->total_sectors);
	else
		put32(bs + 32, (uint32_t)l->total_sectors);
	bs[21] = 0xf8;
	put16(bs + 24, o->sectors_per_track ? o->sectors_per_track : 32);
	put16(bs + 26, o->heads ? o->heads : 64);
	if (l->bits == 32) {
		put32(bs + 36, l->fat_sectors);
		put32(bs + 44, 2);	/* root cluster */
		put16(bs + 48, 1);	/* FSInfo sector */
		put16(bs + 50, 6);	/* backup boot sector */
		ext = bs + 64;
	} else {
		put16(bs + 22, l->fat_sectors);
		ext = bs + 36;
	}
	ext[0] = 0x80;
	ext[2] = 0x29;
	put32(ext + 3, o->volume_id);
	memcpy(ext + 7, label, 11);
	memcpy(ext + 18, l->bits == 32 ? "FAT32   " : l->bits == 16 ? "FAT16   " : "FAT12   ", 8);
	memcpy(ext + 26, boot_code, sizeof(boot_code));
	bs[510] = 0x55;
	bs[511] = 0xaa;
}

int fat_build_from_dir(const char *src_dir, const struct fat_mkfs_opts *opts,
		       const char *out_path, unsigned *bits_out, struct art_err *err)
{
	struct wnode root;
	struct layout l;
	struct writer w;
	uint8_t *fat = NULL, bs[512];
	uint64_t size, need, fat_bytes;
	bool has_label = opts->label != NULL;
	int fd = -1, rc, attempt;
	uint32_t i;

	memset(&root, 0, sizeof(root));
	memset(&l, 0, sizeof(l));
	memset(&w, 0, sizeof(w));
	root.is_dir = true;
	root.src = strdup(src_dir);
	if (!root.src)
		return -ENOMEM;
	rc = scan_dir(&root, 0, err);
	if (rc)
		goto out;
	if (opts->timestamp)
		stamp_tree(&root, opts->timestamp);
	rc = assign_names(&root, err);
	if (rc)
		goto out;
	l.spc = opts->sectors_per_cluster ? opts->sectors_per_cluster : 1;
	l.nfats = opts->nfats ? opts->nfats : 2;
	l.root_entries = opts->root_entries ? opts->root_entries : 512;
	if (l.spc > 128 || (l.spc & (l.spc - 1)) || l.nfats > 4 || l.root_entries % 16) {
		rc = art_err_set(err, -EINVAL, "invalid FAT options (cluster %u sectors, %u FATs, "
				 "%u root entries)", l.spc, l.nfats, l.root_entries);
		goto out;
	}
	size = opts->size_bytes ? opts->size_bytes : estimate_bytes(&root, &l);
	/* An estimate may fall short by a cluster or two (a type switch at a
	 * boundary); grow it. A fixed size either fits or fails. */
	for (attempt = 0;; attempt++) {
		rc = choose_layout(&l, opts->fat_bits, size / 512);
		if (rc) {
			rc = art_err_set(err, -ENOSPC, "no valid FAT layout in %llu bytes",
					 (unsigned long long)size);
			goto out;
		}
		need = need_clusters(&root, true, l.bits == 32, has_label, l.spc * 512);
		if (l.bits != 32 && dir_entries(&root, true, has_label) > l.root_entries) {
			rc = art_err_set(err, -ENOSPC, "%s has %zu root entries; the FAT%u root "
					 "directory holds %u", src_dir,
					 dir_entries(&root, true, has_label), l.bits, l.root_entries);
			goto out;
		}
		if (need <= l.clusters)
			break;
		if (opts->size_bytes || attempt > 100) {
			rc = art_err_set(err, -ENOSPC, "files under %s need %llu clusters of %u "
					 "bytes; a %llu-byte FAT%u holds %u", src_dir,
					 (unsigned long long)need, l.spc * 512,
					 (unsigned long long)size, l.bits, l.clusters);
			goto out;
		}
		size += (need - l.clusters + 16) * l.spc * 512;
	}
	l.next_free = 2;
	alloc_tree(&l, &root, true, has_label);
	fat_bytes = (uint64_t)l.fat_sectors * 512;
	fat = calloc(1, fat_bytes);
	if (!fat) {
		rc = -ENOMEM;
		goto out;
	}
	fat_set(fat, l.bits, 0, 0x0ffffff8);
	fat_set(fat, l.bits, 1, 0x0fffffff);
	chain_tree(fat, l.bits, &root);

	fd = open(out_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = art_err_set(err, -errno, "cannot create %s: %s", out_path, strerror(errno));
		goto out;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = art_err_set(err, -errno, "cannot size %s to %llu bytes: %s", out_path,
				 (unsigned long long)size, strerror(errno));
		goto out;
	}
	encode_boot_sector(&l, opts, bs);
	rc = pwrite_full(fd, bs, 512, 0);
	if (!rc && l.bits == 32) {
		uint8_t fsinfo[512];

		rc = pwrite_full(fd, bs, 512, 6 * 512);
		memset(fsinfo, 0, sizeof(fsinfo));
		put32(fsinfo, 0x41615252);
		put32(fsinfo + 484, 0x61417272);
		put32(fsinfo + 488, l.clusters - (l.next_free - 2));
		put32(fsinfo + 492, l.next_free);
		put32(fsinfo + 508, 0xaa550000);
		if (!rc)
			rc = pwrite_full(fd, fsinfo, 512, 512);
		if (!rc)
			rc = pwrite_full(fd, fsinfo, 512, 7 * 512);
	}
	for (i = 0; i < l.nfats && !rc; i++)
		rc = pwrite_full(fd, fat, fat_bytes, (l.reserved + (uint64_t)i * l.fat_sectors) * 512);
	if (rc) {
		art_err_set(err, rc, "cannot write %s: %s", out_path, strerror(-rc));
		goto out;
	}
	w.fd = fd;
	w.l = &l;
	w.label = opts->label;
	w.stamp = opts->timestamp;
	w.err = err;
	w.copybuf = malloc(COPY_BUF);
	if (!w.copybuf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = write_tree(&w, &root, 0, true);
	if (rc)
		goto out;
	if (fsync(fd) < 0) {
		rc = art_err_set(err, -errno, "cannot flush %s: %s", out_path, strerror(errno));
		goto out;
	}
	if (bits_out)
		*bits_out = l.bits;
out:
	if (fd >= 0)
		close(fd);
	if (rc && fd >= 0)
		unlink(out_path);
	free(w.copybuf);
	free(fat);
	wnode_free(&root);
	return rc;
}
