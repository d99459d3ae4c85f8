/* mbr: parse and write DOS partition tables (see mbr.h). Pure functions on
 * caller-owned memory plus one pread: any thread. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/mbr.h"

#define MBR_TABLE_OFFSET 446
#define MBR_DISK_ID_OFFSET 440
#define MIB_SECTORS 2048u

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int mbr_parse(const uint8_t sector[MBR_SECTOR], uint64_t disk_bytes, struct mbr *out,
	      struct art_err *err)
{
	uint64_t disk_sectors = disk_bytes / MBR_SECTOR;
	struct mbr m;
	int i, j;

	memset(&m, 0, sizeof(m));
	if (sector[510] != 0x55 || sector[511] != 0xaa)
		return art_err_set(err, -EINVAL,
				   "no DOS partition table (bytes 510-511 are %02x %02x, not 55 aa): "
				   "not a whole-disk image", sector[510], sector[511]);
	m.disk_id = get_le32(sector + MBR_DISK_ID_OFFSET);
	for (i = 0; i < MBR_PARTS; i++) {
		const uint8_t *e = sector + MBR_TABLE_OFFSET + 16 * i;
		struct mbr_part *p = &m.part[i];

		if (e[0] != 0x00 && e[0] != 0x80)
			return art_err_set(err, -EINVAL,
					   "partition %d has status byte 0x%02x (only 00 or 80 "
					   "are valid): not a partition table", i + 1, e[0]);
		p->bootable = e[0] == 0x80;
		p->type = e[4];
		p->lba_start = get_le32(e + 8);
		p->lba_count = get_le32(e + 12);
		if (p->type == MBR_TYPE_EMPTY) {
			memset(p, 0, sizeof(*p));
			continue;
		}
		if (p->type == MBR_TYPE_GPT_PROTECTIVE)
			return art_err_set(err, -EINVAL,
					   "GPT disk (protective MBR entry 0xee): only DOS "
					   "partition tables are supported; use a pi-gen style image");
		if (p->lba_count == 0)
			return art_err_set(err, -EINVAL, "partition %d (type 0x%02x) has no sectors",
					   i + 1, p->type);
		if (p->lba_start == 0)
			return art_err_set(err, -EINVAL,
					   "partition %d starts in the partition table sector", i + 1);
		if ((uint64_t)p->lba_start + p->lba_count > disk_sectors)
			return art_err_set(err, -EINVAL,
					   "partition %d (sectors %u..%llu) runs past the end of the "
					   "image (%llu sectors): truncated download?", i + 1,
					   p->lba_start,
					   (unsigned long long)p->lba_start + p->lba_count - 1,
					   (unsigned long long)disk_sectors);
	}
	for (i = 0; i < MBR_PARTS; i++) {
		for (j = i + 1; j < MBR_PARTS; j++) {
			const struct mbr_part *a = &m.part[i], *b = &m.part[j];

			if (!a->type || !b->type)
				continue;
			if ((uint64_t)a->lba_start < (uint64_t)b->lba_start + b->lba_count &&
			    (uint64_t)b->lba_start < (uint64_t)a->lba_start + a->lba_count)
				return art_err_set(err, -EINVAL, "partitions %d and %d overlap",
						   i + 1, j + 1);
		}
	}
	*out = m;
	return 0;
}

int mbr_read_fd(int fd, struct mbr *out, struct art_err *err)
{
	uint8_t sector[MBR_SECTOR];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0)
		return art_err_set(err, -errno, "cannot stat the image: %s", strerror(errno));
	n = pread(fd, sector, sizeof(sector), 0);
	if (n < 0)
		return art_err_set(err, -errno, "cannot read the partition table: %s",
				   strerror(errno));
	if (n != (ssize_t)sizeof(sector))
		return art_err_set(err, -EINVAL, "image is %lld bytes, shorter than one sector",
				   (long long)st.st_size);
	return mbr_parse(sector, (uint64_t)st.st_size, out, err);
}

void mbr_encode(const struct mbr *m, uint8_t sector[MBR_SECTOR])
{
	int i;

	memset(sector, 0, MBR_SECTOR);
	put_le32(sector + MBR_DISK_ID_OFFSET, m->disk_id);
	for (i = 0; i < MBR_PARTS; i++) {
		uint8_t *e = sector + MBR_TABLE_OFFSET + 16 * i;
		const struct mbr_part *p = &m->part[i];

		if (!p->type)
			continue;
		e[0] = p->bootable ? 0x80 : 0x00;
		/* CHS: "use LBA" marker (1023/254/63) as fdisk writes past 8 GiB */
		e[1] = 0xfe;
		e[2] = 0xff;
		e[3] = 0xff;
		e[4] = p->type;
		e[5] = 0xfe;
		e[6] = 0xff;
		e[7] = 0xff;
		put_le32(e + 8, p->lba_start);
		put_le32(e + 12, p->lba_count);
	}
	sector[510] = 0x55;
	sector[511] = 0xaa;
}

int mbr_layout_provisioned(uint64_t disk_bytes, uint64_t boot_bytes, uint32_t first_lba,
			   uint32_t disk_id, struct mbr *out, struct art_err *err)
{
	uint64_t disk_sectors = disk_bytes / MBR_SECTOR;
	uint64_t boot_sectors, p2_start;

	if (first_lba == 0)
		first_lba = MIB_SECTORS;
	boot_sectors = (boot_bytes + MBR_SECTOR - 1) / MBR_SECTOR;
	boot_sectors = (boot_sectors + MIB_SECTORS - 1) / MIB_SECTORS * MIB_SECTORS;
	if (boot_sectors == 0)
		return art_err_set(err, -EINVAL, "boot partition size is 0");
	p2_start = (first_lba + boot_sectors + MIB_SECTORS - 1) / MIB_SECTORS * MIB_SECTORS;
	if (disk_sectors > UINT32_MAX)
		disk_sectors = UINT32_MAX;	/* DOS tables end at 2 TiB */
	if (p2_start + MIB_SECTORS > disk_sectors)
		return art_err_set(err, -ENOSPC,
				   "disk of %llu bytes has no room for a %llu-byte boot partition "
				   "and a root partition", (unsigned long long)disk_bytes,
				   (unsigned long long)boot_bytes);
	memset(out, 0, sizeof(*out));
	out->disk_id = disk_id;
	out->part[0].type = MBR_TYPE_FAT32_LBA;
	out->part[0].lba_start = first_lba;
	out->part[0].lba_count = (uint32_t)boot_sectors;
	out->part[1].type = MBR_TYPE_LINUX;
	out->part[1].lba_start = (uint32_t)p2_start;
	out->part[1].lba_count = (uint32_t)(disk_sectors - p2_start);
	return 0;
}
