/* vpi/storage: backing file, MBR partitions and speed model of the virtual
 * Pi's storage device.
 *
 * Owns <state>/storage.img as the block device the gadget writes: partition
 * nodes are whatever the MBR in the file says at the moment of the lookup (the
 * kernel's re-read after a whole-disk flash or partapp), writes are paced to
 * the configured rate, and the bit-flip fault corrupts one byte on its way to
 * the medium. A struct vpi_storage is used by one thread at a time. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vpi/storage.h"

struct vpi_storage {
	int fd;
	char *path;
	char *disk;
	uint64_t size;
	uint64_t bytes_per_s;
	int64_t bitflip_offset;
	struct timespec busy_until;   /* the medium is busy until then (speed model) */
};

const char *vpi_storage_disk_name(enum vpi_storage_kind kind)
{
	return kind == VPI_STORAGE_NVME ? "nvme0n1" : "mmcblk0";
}

/* Sustained sequential write rates of typical parts (VPI_GUESS_STORAGE_RATES,
 * doc/virtual-pi-gadget.md): A1 SD card, CM eMMC, PCIe gen2 x1 NVMe. */
uint64_t vpi_storage_model_rate(enum vpi_storage_kind kind)
{
	switch (kind) {
	case VPI_STORAGE_SD: return 30u * 1000 * 1000;
	case VPI_STORAGE_EMMC: return 90u * 1000 * 1000;
	case VPI_STORAGE_NVME: return 400u * 1000 * 1000;
	}
	return 0;
}

int vpi_storage_open(const struct vpi_storage_params *p, struct vpi_storage **out)
{
	struct vpi_storage *s = NULL;
	struct stat st;
	int rc;

	*out = NULL;
	if (!p->path || !p->disk || p->size == 0 || p->size % VPI_SECTOR)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->path = strdup(p->path);
	s->disk = strdup(p->disk);
	if (!s->path || !s->disk) {
		rc = -ENOMEM;
		goto out;
	}
	s->size = p->size;
	s->bytes_per_s = p->bytes_per_s;
	s->bitflip_offset = p->bitflip_offset;
	s->fd = open(p->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->fd < 0) {
		rc = -errno;
		goto out;
	}
	if (fstat(s->fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	/* Grow (sparse) to the device size; a larger file keeps its bytes and the
	 * device is simply smaller (storage-size fault on a used state dir). */
	if ((uint64_t)st.st_size < p->size && ftruncate(s->fd, (off_t)p->size) < 0) {
		rc = -errno;
		goto out;
	}
	*out = s;
	s = NULL;
	rc = 0;
out:
	vpi_storage_close(s);
	return rc;
}

int vpi_storage_open_board(struct vpi_board *b, struct vpi_storage **out)
{
	const struct vpi_model_info *m = vpi_board_model(b);
	const struct vpi_board_opts *o = vpi_board_options(b);
	const struct vpi_faults *f = vpi_board_faults(b);
	struct vpi_storage_params p = {
		.path = vpi_board_storage_path(b),
		.size = vpi_board_storage_bytes(b),
		.bytes_per_s = o ? o->storage_bytes_per_s : 0,
		.bitflip_offset = f ? f->bitflip_offset : -1,
		.disk = vpi_storage_disk_name(m->storage),
	};

	if (f && f->storage_bytes)
		p.size = f->storage_bytes;
	p.size -= p.size % VPI_SECTOR;
	return vpi_storage_open(&p, out);
}

void vpi_storage_close(struct vpi_storage *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s->disk);
	free(s);
}

const char *vpi_storage_disk(const struct vpi_storage *s) { return s->disk; }
uint64_t vpi_storage_size(const struct vpi_storage *s) { return s->size; }

static void ts_add_ns(struct timespec *t, uint64_t ns)
{
	ns += (uint64_t)t->tv_nsec;
	t->tv_sec += (time_t)(ns / 1000000000u);
	t->tv_nsec = (long)(ns % 1000000000u);
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The medium takes len/rate seconds per write; back-to-back writes queue. */
static void pace(struct vpi_storage *s, size_t len)
{
	struct timespec now;

	if (!s->bytes_per_s)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (ts_before(&s->busy_until, &now))
		s->busy_until = now;
	ts_add_ns(&s->busy_until, (uint64_t)len * 1000000000u / s->bytes_per_s);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &s->busy_until, NULL) == EINTR)
		;
}

static int check_range(const struct vpi_storage *s, uint64_t off, uint64_t len)
{
	if (off > s->size || len > s->size - off)
		return -ENOSPC;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int vpi_storage_pwrite(struct vpi_storage *s, uint64_t off, const void *buf, size_t len)
{
	int rc = check_range(s, off, len);
	uint64_t flip = (uint64_t)s->bitflip_offset;

	if (rc)
		return rc;
	pace(s, len);
	if (s->bitflip_offset >= 0 && flip >= off && flip - off < len) {
		size_t at = (size_t)(flip - off);
		uint8_t bad;

		/* Write around the flipped byte so the caller's buffer stays intact. */
		rc = write_all(s->fd, buf, at, off);
		if (rc)
			return rc;
		bad = ((const uint8_t *)buf)[at] ^ 1u;
		rc = write_all(s->fd, &bad, 1, flip);
		if (rc)
			return rc;
		return write_all(s->fd, (const uint8_t *)buf + at + 1, len - at - 1, flip + 1);
	}
	return write_all(s->fd, buf, len, off);
}

int vpi_storage_fill(struct vpi_storage *s, uint64_t off, uint64_t len, uint32_t word)
{
	size_t chunk = len < (1u << 20) ? (size_t)len : (1u << 20);
	uint8_t *buf;
	int rc = check_range(s, off, len);

	if (rc || !len)
		return rc;
	buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	/* The LE word repeats from a block boundary; offsets are multiples of 4. */
	for (size_t i = 0; i < chunk; i++)
		buf[i] = (uint8_t)(word >> (8 * (i % 4)));
	while (len) {
		size_t n = len < chunk ? (size_t)len : chunk;
		rc = vpi_storage_pwrite(s, off, buf, n);
		if (rc)
			break;
		off += n;
		len -= n;
	}
	free(buf);
	return rc;
}

int vpi_storage_pread(struct vpi_storage *s, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;
	int rc = check_range(s, off, len);

	if (rc)
		return rc;
	while (len) {
		ssize_t n = pread(s->fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {   /* a shorter file than the device reads as zeros */
			memset(p, 0, len);
			break;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int vpi_storage_sync(struct vpi_storage *s)
{
	return fdatasync(s->fd) < 0 ? -errno : 0;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int vpi_storage_partitions(struct vpi_storage *s, struct vpi_part parts[VPI_MBR_MAX_PARTS],
			   unsigned *n)
{
	uint8_t mbr[VPI_SECTOR];
	int rc = vpi_storage_pread(s, 0, mbr, sizeof(mbr));

	*n = 0;
	if (rc)
		return rc;
	if (mbr[510] != 0x55 || mbr[511] != 0xAA)
		return 0;
	for (unsigned i = 0; i < VPI_MBR_MAX_PARTS; i++) {
		const uint8_t *e = mbr + 446 + 16 * i;
		uint64_t start = (uint64_t)rd32(e + 8) * VPI_SECTOR;
		uint64_t size = (uint64_t)rd32(e + 12) * VPI_SECTOR;

		if (e[4] == 0 || size == 0)
			continue;
		/* The kernel clips a partition that runs past the end of the disk. */
		if (start >= s->size)
			continue;
		if (size > s->size - start)
			size = s->size - start;
		parts[*n] = (struct vpi_part){ .number = i + 1, .type = e[4], .start = start, .size = size };
		(*n)++;
	}
	return 0;
}

int vpi_storage_resolve(struct vpi_storage *s, const char *name, uint64_t *start, uint64_t *size,
			unsigned *partno)
{
	size_t dl = strlen(s->disk);
	struct vpi_part parts[VPI_MBR_MAX_PARTS];
	unsigned n, want;
	char *end;
	int rc;

	if (strcmp(name, s->disk) == 0) {
		*start = 0;
		*size = s->size;
		if (partno)
			*partno = 0;
		return 0;
	}
	if (strncmp(name, s->disk, dl) != 0 || name[dl] != 'p' || name[dl + 1] < '1' ||
	    name[dl + 1] > '9')
		return -ENOENT;
	errno = 0;
	want = (unsigned)strtoul(name + dl + 1, &end, 10);
	if (*end || errno || want > VPI_MBR_MAX_PARTS)
		return -ENOENT;
	rc = vpi_storage_partitions(s, parts, &n);
	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		if (parts[i].number == want) {
			*start = parts[i].start;
			*size = parts[i].size;
			if (partno)
				*partno = want;
			return 0;
		}
	}
	return -ENOENT;
}

/* CHS fields as libfdisk writes them for LBA disks: 255 heads, 63 sectors,
 * saturating at 1023/254/63 for addresses past the CHS limit. */
static void chs(uint8_t out[3], uint64_t lba)
{
	uint64_t c = lba / (255 * 63), h = (lba / 63) % 255, sct = lba % 63 + 1;

	if (c > 1023) {
		c = 1023;
		h = 254;
		sct = 63;
	}
	out[0] = (uint8_t)h;
	out[1] = (uint8_t)(sct | ((c >> 2) & 0xC0));
	out[2] = (uint8_t)c;
}

int vpi_storage_mbr_init(struct vpi_storage *s, uint32_t disk_id)
{
	uint8_t mbr[VPI_SECTOR];
	int rc = vpi_storage_pread(s, 0, mbr, sizeof(mbr));

	if (rc)
		return rc;
	/* Keep the boot code area, replace id and table (libfdisk keeps 0..439). */
	memset(mbr + 440, 0, sizeof(mbr) - 440);
	wr32(mbr + 440, disk_id);
	mbr[510] = 0x55;
	mbr[511] = 0xAA;
	return vpi_storage_pwrite(s, 0, mbr, sizeof(mbr));
}

int vpi_storage_mbr_append(struct vpi_storage *s, uint8_t type, uint64_t bytes)
{
	const uint64_t grain = VPI_MBR_GRAIN / VPI_SECTOR;
	uint64_t total = s->size / VPI_SECTOR, first = grain, count;
	uint8_t mbr[VPI_SECTOR], *e = NULL;
	int rc = vpi_storage_pread(s, 0, mbr, sizeof(mbr));

	if (rc)
		return rc;
	if (mbr[510] != 0x55 || mbr[511] != 0xAA)
		return -EINVAL;
	for (unsigned i = 0; i < VPI_MBR_MAX_PARTS; i++) {
		uint8_t *pe = mbr + 446 + 16 * i;
		uint64_t end = (uint64_t)rd32(pe + 8) + rd32(pe + 12);

		if (pe[4] == 0 || rd32(pe + 12) == 0) {
			if (!e)
				e = pe;
			continue;
		}
		if (end > first)
			first = end;
	}
	if (!e || type == 0)
		return -ENOSPC;
	first = (first + grain - 1) / grain * grain;
	if (first >= total)
		return -ENOSPC;
	if (bytes == 0) {
		/* Rest of the disk, to its last sector (VPI_GUESS_PARTAPP_REST). */
		count = total - first;
	} else {
		count = (bytes + VPI_SECTOR - 1) / VPI_SECTOR;
		count = (count + grain - 1) / grain * grain;
		if (count > total - first)
			return -ENOSPC;
	}
	if (first > UINT32_MAX || count > UINT32_MAX || first + count - 1 > UINT32_MAX)
		return -ENOSPC;
	memset(e, 0, 16);
	chs(e + 1, first);
	e[4] = type;
	chs(e + 5, first + count - 1);
	wr32(e + 8, (uint32_t)first);
	wr32(e + 12, (uint32_t)count);
	return vpi_storage_pwrite(s, 0, mbr, sizeof(mbr));
}
