/* goldimage: checks that a file is an uncompressed MBR disk image with a FAT
 * boot partition and an ext4 root partition, entirely present.
 *
 * Reads four small pieces of the file (the MBR, the FAT boot sector, the ext
 * superblock magic) through one reader, so a file and a memory buffer go
 * through the same checks. No state: any thread may call it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/goldimage.h"

#define SECTOR 512u

struct source {
	int fd;              /* >= 0: read the file */
	const uint8_t *buf;  /* else: the memory image */
	uint64_t size;
};

/* Read exactly @n bytes at @off. 0, -ENODATA past the end, -errno on I/O errors. */
static int source_read(const struct source *s, uint64_t off, void *dst, size_t n)
{
	if (off > s->size || n > s->size - off)
		return -ENODATA;
	if (s->fd < 0) {
		memcpy(dst, s->buf + off, n);
		return 0;
	}
	for (size_t done = 0; done < n; ) {
		ssize_t r = pread(s->fd, (uint8_t *)dst + done, n - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		done += (size_t)r;
	}
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static const struct {
	const char *name;
	const char *magic;
	size_t len;
	const char *undo;
} compressed[] = {
	{ "gzip", "\x1f\x8b", 2, "gunzip -k" },
	{ "xz", "\xfd\x37\x7a\x58\x5a\x00", 6, "unxz -k" },
	{ "zstd", "\x28\xb5\x2f\xfd", 4, "unzstd" },
	{ "bzip2", "BZh", 3, "bunzip2 -k" },
	{ "zip", "PK\x03\x04", 4, "unzip" },
};

static bool is_fat_type(uint8_t t)
{
	return t == 0x0b || t == 0x0c || t == 0x0e;
}

static int check(const struct source *s, struct goldimage_info *info, char *err, size_t errlen)
{
	uint8_t mbr[SECTOR], bs[SECTOR], magic[2];
	struct goldimage_part part[2];
	int rc;

	memset(info, 0, sizeof(*info));
	info->file_size = s->size;
	if (s->size == 0)
		return fail(-EINVAL, err, errlen, "the file is empty (0 bytes); copy the image again");
	memset(mbr, 0, sizeof(mbr));
	rc = source_read(s, 0, mbr, s->size < SECTOR ? (size_t)s->size : SECTOR);
	if (rc < 0)
		return fail(rc, err, errlen, "cannot read the partition table: %s", strerror(-rc));
	for (size_t i = 0; i < sizeof(compressed) / sizeof(compressed[0]); i++)
		if (s->size >= compressed[i].len && memcmp(mbr, compressed[i].magic, compressed[i].len) == 0)
			return fail(-EINVAL, err, errlen,
				    "this is a %s-compressed file, not a disk image; decompress it "
				    "(e.g. %s FILE) and point the setting at the .img", compressed[i].name,
				    compressed[i].undo);
	if (s->size < SECTOR)
		return fail(-EINVAL, err, errlen,
			    "the file is only %llu bytes, too small to hold a partition table "
			    "(truncated copy?)", (unsigned long long)s->size);
	if (mbr[510] != 0x55 || mbr[511] != 0xaa)
		return fail(-EINVAL, err, errlen,
			    "no MBR partition table (no 0x55AA signature at byte 510); the image must "
			    "be a whole-disk image such as pi-gen's .img");
	for (int i = 0; i < 4; i++)
		if (mbr[446 + 16 * i + 4] == 0xee)
			return fail(-EINVAL, err, errlen,
				    "this is a GPT disk image (protective MBR, type 0xee); the station "
				    "needs an MBR image (pi-gen style: FAT boot + ext4 root)");
	for (int i = 0; i < 2; i++) {
		const uint8_t *e = mbr + 446 + 16 * i;

		part[i].type = e[4];
		part[i].offset = (uint64_t)le32(e + 8) * SECTOR;
		part[i].size = (uint64_t)le32(e + 12) * SECTOR;
	}
	if (!is_fat_type(part[0].type) || part[0].size == 0 || part[0].offset == 0)
		return fail(-EINVAL, err, errlen,
			    "partition 1 has type 0x%02x; it must be the FAT boot partition "
			    "(type 0x0c, 0x0b or 0x0e)", part[0].type);
	if (part[1].type != 0x83 || part[1].size == 0 || part[1].offset == 0)
		return fail(-EINVAL, err, errlen,
			    "partition 2 has type 0x%02x; it must be the Linux root partition (type 0x83, ext4)",
			    part[1].type);
	for (int i = 0; i < 2; i++) {
		uint64_t end = part[i].offset + part[i].size;

		if (end > s->size)
			return fail(-EINVAL, err, errlen,
				    "the image is truncated: partition %d ends at byte %llu but the file "
				    "has only %llu bytes (incomplete download or copy?)", i + 1,
				    (unsigned long long)end, (unsigned long long)s->size);
	}
	if (part[0].offset < part[1].offset + part[1].size && part[1].offset < part[0].offset + part[0].size)
		return fail(-EINVAL, err, errlen, "partitions 1 and 2 overlap; the partition table is damaged");

	rc = source_read(s, part[0].offset, bs, SECTOR);
	if (rc < 0)
		return fail(rc, err, errlen, "cannot read the boot partition: %s", strerror(-rc));
	if (bs[510] != 0x55 || bs[511] != 0xaa)
		return fail(-EINVAL, err, errlen,
			    "partition 1 (type 0x%02x) holds no FAT file system (no boot sector "
			    "signature); the boot partition was not formatted", part[0].type);
	if (memcmp(bs + 82, "FAT32", 5) == 0)
		info->fat_bits = 32;
	else if (memcmp(bs + 54, "FAT16", 5) == 0)
		info->fat_bits = 16;
	else if (memcmp(bs + 54, "FAT12", 5) == 0)
		info->fat_bits = 12;
	else if (memcmp(bs + 54, "FAT", 3) == 0 || memcmp(bs + 82, "FAT", 3) == 0)
		info->fat_bits = 0; /* FAT, type string not specific */
	else
		return fail(-EINVAL, err, errlen,
			    "partition 1 (type 0x%02x) holds no FAT file system (no 'FAT' type in its "
			    "boot sector)", part[0].type);

	rc = source_read(s, part[1].offset + 1024 + 56, magic, sizeof(magic));
	if (rc < 0)
		return fail(rc, err, errlen, "cannot read the root partition: %s", strerror(-rc));
	if (magic[0] != 0x53 || magic[1] != 0xef)
		return fail(-EINVAL, err, errlen,
			    "partition 2 (type 0x83) holds no ext4 file system (no ext superblock "
			    "magic 0xEF53)");
	info->boot = part[0];
	info->root = part[1];
	info->disk_id = le32(mbr + 440);
	return 0;
}

int goldimage_check_buffer(const uint8_t *buf, size_t len, struct goldimage_info *info,
			   char *err, size_t errlen)
{
	struct source s = { .fd = -1, .buf = buf, .size = len };

	return check(&s, info, err, errlen);
}

int goldimage_check(const char *path, struct goldimage_info *info, char *err, size_t errlen)
{
	struct source s = { .fd = -1 };
	struct stat st;
	int rc;

	memset(info, 0, sizeof(*info));
	/* O_NONBLOCK: a FIFO named by mistake must not hang `config check`. */
	s.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (s.fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			return fail(rc, err, errlen, "does not exist; copy the image there or fix the path");
		return fail(rc, err, errlen, "cannot open it: %s", strerror(-rc));
	}
	if (fstat(s.fd, &st) < 0) {
		rc = fail(-errno, err, errlen, "cannot stat it: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fail(-EINVAL, err, errlen, "not a regular file; point the setting at the .img file");
		goto out;
	}
	s.size = (uint64_t)st.st_size;
	rc = check(&s, info, err, errlen);
out:
	close(s.fd);
	return rc;
}
