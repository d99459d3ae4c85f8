/* eeprom: parse and edit SPI EEPROM images (see eeprom.h).
 *
 * Owns the section-chain parser (bounds-checked: the reference tool trusts
 * lengths, we do not) and the tool's write procedure for FILE sections and
 * the bootcode. Pure functions on a caller-owned struct: one thread at a time. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artefacts/eeprom.h"

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

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static size_t align8(size_t x)
{
	return (x + 7) & ~(size_t)7;
}

static bool is_named(uint32_t magic)
{
	return magic == EEPROM_MAGIC_FILE || magic == EEPROM_MAGIC_RESOURCE ||
	       magic == EEPROM_MAGIC_RESOURCE_LZ4;
}

unsigned eeprom_chip_for_size(size_t size)
{
	if (size == EEPROM_SIZE_2711)
		return 2711;
	if (size == EEPROM_SIZE_2712)
		return 2712;
	return 0;
}

bool eeprom_is_ab(const uint8_t *data, size_t size)
{
	static const uint8_t name[EEPROM_NAME_LEN] = "bootsys";

	return size == EEPROM_SIZE_2712 && be32(data + EEPROM_RO_SIZE) == EEPROM_MAGIC_FILE &&
	       memcmp(data + EEPROM_RO_SIZE + 8, name, sizeof(name)) == 0;
}

/* (Re)build ee->sec from ee->data. */
static int parse_chain(struct eeprom *ee, struct art_err *err)
{
	struct eeprom_section *sec = NULL;
	size_t nsec = 0, cap = 0, off = 0;
	int rc;

	while (off + EEPROM_SECTION_HDR <= ee->size) {
		uint32_t magic = be32(ee->data + off), length = be32(ee->data + off + 4);
		struct eeprom_section *s;

		if (magic == 0 || magic == 0xFFFFFFFFu)
			break;
		if ((magic & 0xFFFFF00Fu) != 0x55AAF00Fu) {
			rc = art_err_set(err, -EINVAL, "EEPROM image is corrupt: section header at "
					 "offset 0x%06zx has magic 0x%08x (not 0x55AAFxxF)", off, magic);
			goto out;
		}
		if (nsec == 0 && magic != EEPROM_MAGIC_BOOTCODE) {
			rc = art_err_set(err, -EINVAL, "not a Raspberry Pi EEPROM image: section 0 at "
					 "offset 0 has magic 0x%08x, not the bootcode magic 0x%08x",
					 magic, EEPROM_MAGIC_BOOTCODE);
			goto out;
		}
		if (length > ee->size - off - EEPROM_SECTION_HDR) {
			rc = art_err_set(err, -EINVAL, "EEPROM image is corrupt: section at offset "
					 "0x%06zx (magic 0x%08x) has length %u, running past the end "
					 "of the %zu-byte image", off, magic, length, ee->size);
			goto out;
		}
		if (is_named(magic) && length < EEPROM_FILE_HDR - EEPROM_SECTION_HDR) {
			rc = art_err_set(err, -EINVAL, "EEPROM image is corrupt: named section at "
					 "offset 0x%06zx has length %u, shorter than its 16-byte "
					 "name header", off, length);
			goto out;
		}
		if (nsec == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct eeprom_section *n = realloc(sec, ncap * sizeof(*n));

			if (!n) {
				rc = art_err_set(err, -ENOMEM, "out of memory");
				goto out;
			}
			sec = n;
			cap = ncap;
		}
		s = &sec[nsec++];
		memset(s, 0, sizeof(*s));
		s->magic = magic;
		s->offset = (uint32_t)off;
		s->length = length;
		if (is_named(magic)) {
			memcpy(s->name, ee->data + off + 8, EEPROM_NAME_LEN);
			s->name[EEPROM_NAME_LEN] = '\0';
		}
		off = align8(off + EEPROM_SECTION_HDR + length);
	}
	if (nsec == 0) {
		rc = art_err_set(err, -EINVAL, "not a Raspberry Pi EEPROM image: no section at "
				 "offset 0 (erased or blank)");
		goto out;
	}
	free(ee->sec);
	ee->sec = sec;
	ee->nsec = nsec;
	ee->ab = eeprom_is_ab(ee->data, ee->size);
	return 0;
out:
	free(sec);
	return rc;
}

void eeprom_free(struct eeprom *ee)
{
	free(ee->data);
	free(ee->sec);
	memset(ee, 0, sizeof(*ee));
}

int eeprom_load_buffer(struct eeprom *ee, const uint8_t *buf, size_t len, struct art_err *err)
{
	int rc;

	memset(ee, 0, sizeof(*ee));
	ee->chip = eeprom_chip_for_size(len);
	if (!ee->chip)
		return art_err_set(err, -EINVAL, "EEPROM image is %zu bytes; a BCM2711 image is %u "
				   "and a BCM2712 image %u bytes", len, EEPROM_SIZE_2711,
				   EEPROM_SIZE_2712);
	ee->data = malloc(len);
	if (!ee->data)
		return art_err_set(err, -ENOMEM, "out of memory");
	memcpy(ee->data, buf, len);
	ee->size = len;
	rc = parse_chain(ee, err);
	if (rc < 0)
		eeprom_free(ee);
	return rc;
}

int eeprom_load_file(struct eeprom *ee, const char *path, struct art_err *err)
{
	uint8_t *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd, rc;

	memset(ee, 0, sizeof(*ee));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return art_err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = art_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || !eeprom_chip_for_size((size_t)st.st_size)) {
		rc = art_err_set(err, -EINVAL, "%s: %lld bytes; a BCM2711 EEPROM image is %u and a "
				 "BCM2712 image %u bytes", path, (long long)st.st_size,
				 EEPROM_SIZE_2711, EEPROM_SIZE_2712);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		rc = art_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = art_err_set(err, n ? -errno : -EIO, "%s: short read", path);
			goto out;
		}
		got += (size_t)n;
	}
	rc = eeprom_load_buffer(ee, buf, got, err);
	if (rc < 0)
		art_err_prefix(err, "%s: ", path);
out:
	free(buf);
	close(fd);
	return rc;
}

int eeprom_save(const struct eeprom *ee, const char *path, struct art_err *err)
{
	char *tmp = NULL;
	size_t done = 0;
	int fd = -1, rc;

	if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
		return art_err_set(err, -ENOMEM, "out of memory");
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = art_err_set(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
		free(tmp);
		return rc;
	}
	while (done < ee->size) {
		ssize_t n = write(fd, ee->data + done, ee->size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = art_err_set(err, -errno, "%s: write: %s", tmp, strerror(errno));
			goto out;
		}
		done += (size_t)n;
	}
	if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		rc = art_err_set(err, -errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = art_err_set(err, -errno, "%s: rename: %s", path, strerror(errno));
		goto out;
	}
	free(tmp);
	return 0;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return rc;
}

int eeprom_bootcode_get(const struct eeprom *ee, const uint8_t **data, size_t *len)
{
	*data = ee->data + EEPROM_SECTION_HDR;
	*len = ee->sec[0].length;
	return 0;
}

static bool name_is(const struct eeprom_section *s, const char *name)
{
	return s->magic == EEPROM_MAGIC_FILE && strcmp(s->name, name) == 0;
}

int eeprom_file_get(const struct eeprom *ee, const char *name, const uint8_t **data,
		    size_t *len)
{
	for (size_t i = 0; i < ee->nsec; i++) {
		if (name_is(&ee->sec[i], name)) {
			*data = ee->data + ee->sec[i].offset + EEPROM_FILE_HDR;
			*len = ee->sec[i].length - (EEPROM_FILE_HDR - EEPROM_SECTION_HDR);
			return 0;
		}
	}
	return -ENOENT;
}

static int find_in(const struct eeprom *ee, const char *name, size_t lo, size_t hi)
{
	for (size_t i = 0; i < ee->nsec; i++)
		if (name_is(&ee->sec[i], name) && ee->sec[i].offset >= lo && ee->sec[i].offset < hi)
			return (int)i;
	return -ENOENT;
}

int eeprom_file_index(const struct eeprom *ee, const char *name)
{
	return find_in(ee, name, EEPROM_RO_SIZE, EEPROM_RO_SIZE + EEPROM_PARTITION_SIZE);
}

/* Where the space after section @i ends: the next non-pad section, else the
 * end of partition A or of the writable image, whichever is first. */
static size_t next_boundary(const struct eeprom *ee, size_t i)
{
	size_t lim = ee->size - EEPROM_SCRATCH;

	for (size_t j = i + 1; j < ee->nsec; j++)
		if (ee->sec[j].magic != EEPROM_MAGIC_PAD)
			return ee->sec[j].offset;
	if (lim > EEPROM_RO_SIZE + EEPROM_PARTITION_SIZE)
		lim = EEPROM_RO_SIZE + EEPROM_PARTITION_SIZE;
	return lim;
}

/* The tool's steps 3-5: align with 0xFF, pad header when room and not last,
 * 0xFF up to @next. @p is the first byte after the payload. */
static void pad_to(struct eeprom *ee, size_t p, size_t next, bool is_last)
{
	size_t gap;

	while (p % 8 && p < next)
		ee->data[p++] = 0xFF;
	gap = next - p;
	if (gap >= 8 && !is_last) {
		put_be32(ee->data + p, EEPROM_MAGIC_PAD);
		put_be32(ee->data + p + 4, (uint32_t)(gap - 8));
		p += 8;
		gap -= 8;
	}
	memset(ee->data + p, 0xFF, gap);
}

static int check_payload(const char *name, size_t len, struct art_err *err)
{
	if (strcmp(name, "bootsys") != 0 && len > EEPROM_FILE_MAX)
		return art_err_set(err, -EFBIG, "%s is %zu bytes; an EEPROM file may hold at most "
				   "%d bytes", name, len, EEPROM_FILE_MAX);
	if (len > UINT32_MAX - 64)
		return art_err_set(err, -EFBIG, "%s is too large", name);
	return 0;
}

int eeprom_file_replace(struct eeprom *ee, const char *name, const uint8_t *data, size_t len,
			struct art_err *err)
{
	size_t hdr, next;
	bool is_last;
	int i, rc;

	rc = check_payload(name, len, err);
	if (rc < 0)
		return rc;
	i = eeprom_file_index(ee, name);
	if (i < 0)
		return art_err_set(err, -ENOENT, "update target %s not found in the EEPROM image "
				   "(this image has no placeholder for it)", name);
	hdr = ee->sec[i].offset;
	is_last = (size_t)i == ee->nsec - 1;
	next = next_boundary(ee, (size_t)i);
	if (hdr + EEPROM_FILE_HDR + len > next || hdr + EEPROM_FILE_HDR + len > ee->size - EEPROM_SCRATCH)
		return art_err_set(err, -ENOSPC, "%s (%zu bytes) does not fit its slot at offset "
				   "0x%06zx: %zu bytes free before 0x%06zx", name, len, hdr,
				   next - hdr - EEPROM_FILE_HDR, next);
	put_be32(ee->data + hdr + 4, (uint32_t)(len + EEPROM_FILE_HDR - EEPROM_SECTION_HDR));
	memcpy(ee->data + hdr + EEPROM_FILE_HDR, data, len);
	pad_to(ee, hdr + EEPROM_FILE_HDR + len, next, is_last);
	return parse_chain(ee, err);
}

int eeprom_file_put(struct eeprom *ee, const char *name, const uint8_t *data, size_t len,
		    struct art_err *err)
{
	size_t lo = ee->ab ? EEPROM_RO_SIZE : 0, hi = EEPROM_RO_SIZE + EEPROM_PARTITION_SIZE;
	size_t nl = strlen(name), hdr, next, last = SIZE_MAX;
	bool is_last;
	int rc;

	if (eeprom_file_index(ee, name) >= 0)
		return eeprom_file_replace(ee, name, data, len, err);
	if (nl == 0 || nl > EEPROM_NAME_LEN)
		return art_err_set(err, -EINVAL, "EEPROM file name `%s` must be 1..%d characters",
				   name, EEPROM_NAME_LEN);
	rc = check_payload(name, len, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < ee->nsec; i++)
		if (ee->sec[i].offset >= lo && ee->sec[i].offset < hi &&
		    ee->sec[i].magic != EEPROM_MAGIC_PAD)
			last = i;
	if (last == SIZE_MAX)
		return art_err_set(err, -ENOSPC, "no section in partition A to append %s after",
				   name);
	hdr = align8(ee->sec[last].offset + EEPROM_SECTION_HDR + ee->sec[last].length);
	next = next_boundary(ee, last);
	is_last = last == ee->nsec - 1;
	if (hdr + EEPROM_FILE_HDR + len > next || hdr + EEPROM_FILE_HDR + len > ee->size - EEPROM_SCRATCH)
		return art_err_set(err, -ENOSPC, "no room to add %s (%zu bytes) at offset 0x%06zx: "
				   "free space ends at 0x%06zx", name, len, hdr, next);
	put_be32(ee->data + hdr, EEPROM_MAGIC_FILE);
	put_be32(ee->data + hdr + 4, (uint32_t)(len + EEPROM_FILE_HDR - EEPROM_SECTION_HDR));
	memset(ee->data + hdr + 8, 0, EEPROM_NAME_LEN + 4);
	memcpy(ee->data + hdr + 8, name, nl);
	memcpy(ee->data + hdr + EEPROM_FILE_HDR, data, len);
	pad_to(ee, hdr + EEPROM_FILE_HDR + len, next, is_last);
	return parse_chain(ee, err);
}

int eeprom_bootcode_replace(struct eeprom *ee, const uint8_t *data, size_t len,
			    struct art_err *err)
{
	size_t next = 0;
	bool found = false;

	for (size_t j = 1; j < ee->nsec && !found; j++) {
		if (ee->sec[j].magic != EEPROM_MAGIC_PAD) {
			next = ee->sec[j].offset;
			found = true;
		}
	}
	if (!found)
		return art_err_set(err, -EINVAL, "EEPROM image has nothing after the bootcode: "
				   "cannot replace it");
	if (!ee->ab && next < EEPROM_BOOTCODE_RESERVED)
		return art_err_set(err, -ENOSPC, "this %s image keeps only %zu bytes for the "
				   "bootcode (128K must be reserved for bootcode): its bootcode "
				   "cannot be replaced; is it the image for the right chip?",
				   ee->chip == 2711 ? "BCM2711" : "non-AB BCM2712", next);
	if (len > UINT32_MAX || align8(EEPROM_SECTION_HDR + len) > next)
		return art_err_set(err, -ENOSPC, "bootcode of %zu bytes does not fit before the "
				   "next section at 0x%06zx (room for %zu)", len, next,
				   next - EEPROM_SECTION_HDR);
	put_be32(ee->data + 4, (uint32_t)len);
	memcpy(ee->data + EEPROM_SECTION_HDR, data, len);
	pad_to(ee, EEPROM_SECTION_HDR + len, next, false);
	return parse_chain(ee, err);
}

static int put_updatetime(struct eeprom *ee, int i, uint32_t ts, struct art_err *err)
{
	const struct eeprom_section *s = &ee->sec[i];

	if (s->length < EEPROM_FILE_HDR - EEPROM_SECTION_HDR + 8)
		return art_err_set(err, -EINVAL, "updatetime at 0x%06x holds fewer than 8 bytes",
				   s->offset);
	put_le32(ee->data + s->offset + EEPROM_FILE_HDR, ~ts);
	put_le32(ee->data + s->offset + EEPROM_FILE_HDR + 4, ts);
	return 0;
}

int eeprom_set_timestamp(struct eeprom *ee, uint32_t ts, struct art_err *err)
{
	int ro = find_in(ee, "updatetime", 0, EEPROM_RO_SIZE), part, rc;

	if (ro < 0) {
		put_le32(ee->data + ee->size - 8, ~ts);
		put_le32(ee->data + ee->size - 4, ts);
		return 0;
	}
	part = eeprom_file_index(ee, "updatetime");
	if (part < 0)
		return art_err_set(err, -ENOENT, "AB image has a read-only updatetime but none in "
				   "partition A");
	rc = put_updatetime(ee, ro, ts, err);
	return rc < 0 ? rc : put_updatetime(ee, part, ts, err);
}
