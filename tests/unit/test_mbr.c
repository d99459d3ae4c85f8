/* test_mbr: DOS partition table parsing (bounds, overlaps, GPT) and writing,
 * checked against sfdisk's view of what we write. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/mbr.h"

#define DISK (64ull << 20)

static void two_parts(struct mbr *m)
{
	memset(m, 0, sizeof(*m));
	m->disk_id = 0x5eed1234;
	m->part[0].type = MBR_TYPE_FAT32_LBA;
	m->part[0].lba_start = 8192;
	m->part[0].lba_count = 73728;
	m->part[1].type = MBR_TYPE_LINUX;
	m->part[1].lba_start = 81920;
	m->part[1].lba_count = (uint32_t)(DISK / 512 - 81920);
}

static void test_roundtrip(void **state)
{
	struct art_err err = {{0}};
	uint8_t s[MBR_SECTOR];
	struct mbr m, back;

	(void)state;
	two_parts(&m);
	mbr_encode(&m, s);
	assert_int_equal(s[510], 0x55);
	assert_int_equal(s[511], 0xaa);
	assert_int_equal(mbr_parse(s, DISK, &back, &err), 0);
	assert_int_equal(back.disk_id, 0x5eed1234);
	assert_int_equal(back.part[0].type, 0x0c);
	assert_int_equal(back.part[1].lba_start, 81920);
	assert_int_equal(back.part[1].lba_count, m.part[1].lba_count);
	assert_int_equal(back.part[2].type, 0);
	assert_int_equal(mbr_part_offset(&back.part[1]), 81920ull * 512);
}

static void test_rejects(void **state)
{
	struct art_err err = {{0}};
	uint8_t s[MBR_SECTOR];
	struct mbr m, back;

	(void)state;
	two_parts(&m);
	mbr_encode(&m, s);
	/* image shorter than partition 2 */
	assert_int_equal(mbr_parse(s, DISK - 512, &back, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "past the end"));
	/* overlap */
	m.part[1].lba_start = 80000;
	m.part[1].lba_count = 1000;
	mbr_encode(&m, s);
	assert_int_equal(mbr_parse(s, DISK, &back, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "overlap"));
	/* GPT protective */
	two_parts(&m);
	m.part[0].type = MBR_TYPE_GPT_PROTECTIVE;
	mbr_encode(&m, s);
	assert_int_equal(mbr_parse(s, DISK, &back, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "GPT"));
	/* no signature */
	two_parts(&m);
	mbr_encode(&m, s);
	s[511] = 0;
	assert_int_equal(mbr_parse(s, DISK, &back, &err), -EINVAL);
	/* bad status byte */
	mbr_encode(&m, s);
	s[446] = 0x12;
	assert_int_equal(mbr_parse(s, DISK, &back, &err), -EINVAL);
	/* starts in sector 0 */
	two_parts(&m);
	m.part[0].lba_start = 0;
	mbr_encode(&m, s);
	assert_int_equal(mbr_parse(s, DISK, &back, &err), -EINVAL);
	/* empty slots are fine */
	memset(&m, 0, sizeof(m));
	mbr_encode(&m, s);
	assert_int_equal(mbr_parse(s, DISK, &back, &err), 0);
}

static void test_layout_and_sfdisk(void **state)
{
	struct art_err err = {{0}};
	char path[] = "/tmp/test_mbr.XXXXXX", cmd[256], line[256];
	uint8_t s[MBR_SECTOR];
	struct mbr m;
	FILE *p;
	int fd, found = 0;

	(void)state;
	assert_int_equal(mbr_layout_provisioned(DISK, 37748736 - 5, 0, 0xabcd0001, &m, &err), 0);
	assert_int_equal(m.part[0].lba_start, 2048);
	assert_int_equal(m.part[0].lba_count, 73728);	/* rounded up to the MiB */
	assert_int_equal(m.part[1].lba_start, 2048 + 73728);
	assert_int_equal(m.part[1].lba_start + m.part[1].lba_count, DISK / 512);
	assert_int_equal(mbr_layout_provisioned(8 << 20, 16 << 20, 0, 1, &m, &err), -ENOSPC);

	assert_int_equal(mbr_layout_provisioned(DISK, 37748736, 0, 0xabcd0001, &m, &err), 0);
	mbr_encode(&m, s);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)DISK), 0);
	assert_int_equal(pwrite(fd, s, sizeof(s), 0), (ssize_t)sizeof(s));
	close(fd);
	snprintf(cmd, sizeof(cmd), "PATH=$PATH:/sbin:/usr/sbin sfdisk -d %s 2>/dev/null", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p)) {
		if (strstr(line, "label-id: 0xabcd0001"))
			found++;
		if (strstr(line, "start=        2048, size=       73728, type=c"))
			found++;
		if (strstr(line, "start=       75776, size=       55296, type=83"))
			found++;
	}
	pclose(p);
	unlink(path);
	assert_int_equal(found, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_layout_and_sfdisk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
