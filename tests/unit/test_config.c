/* test_config: the schema table, the INI loader and validator, the cross-field
 * rules, family overrides, --root relocation, the peer importer and the
 * gold-image check on hand-built images. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/goldimage.h"

static char tmpdir[64];
static char gold[128];
static char pem[128];

#define MiB (1024u * 1024u)

/* A minimal MBR image: p1 FAT32 (type 0x0c) at 1 MiB, 1 MiB long; p2 ext4 (0x83)
 * at 2 MiB, 1 MiB long; 3 MiB in all. */
static uint8_t *make_image(size_t *len)
{
	uint8_t *b = calloc(1, 3 * MiB);
	uint8_t *e;

	assert_non_null(b);
	for (int i = 0; i < 2; i++) {
		uint32_t start = (uint32_t)(2048 * (i + 1)), count = 2048;

		e = b + 446 + 16 * i;
		e[4] = i == 0 ? 0x0c : 0x83;
		memcpy(e + 8, &start, 4);   /* little-endian host (x86, arm) */
		memcpy(e + 12, &count, 4);
	}
	b[440] = 0x34, b[441] = 0x12, b[442] = 0xed, b[443] = 0x5e;
	b[510] = 0x55, b[511] = 0xaa;
	memcpy(b + MiB + 82, "FAT32   ", 8);
	b[MiB + 510] = 0x55, b[MiB + 511] = 0xaa;
	b[2 * MiB + 1024 + 56] = 0x53, b[2 * MiB + 1024 + 57] = 0xef;
	*len = 3 * MiB;
	return b;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	size_t len;
	uint8_t *img;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(gold, sizeof(gold), "%s/gold.img", tmpdir);
	snprintf(pem, sizeof(pem), "%s/key.pem", tmpdir);
	img = make_image(&len);
	write_file(gold, img, len);
	free(img);
	write_file(pem, "-----BEGIN PRIVATE KEY-----\n", 28);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Load @text (printf format) as "<tmpdir>/test.ini". */
static int load_text(struct config **c, struct config_problems *p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int load_text(struct config **c, struct config_problems *p, const char *fmt, ...)
{
	char name[128], *text = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	assert_true(vasprintf(&text, fmt, ap) >= 0);
	va_end(ap);
	snprintf(name, sizeof(name), "%s/test.ini", tmpdir);
	rc = config_load_buffer(name, text, strlen(text), NULL, c, p);
	free(text);
	return rc;
}

/* The problem about @key (or the first without a key when NULL) at @line, or fail. */
static const struct config_problem *find_problem(const struct config_problems *p, const char *key,
						 int line)
{
	for (size_t i = 0; i < p->n; i++)
		if ((key ? p->v[i].key && strcmp(p->v[i].key, key) == 0 : !p->v[i].key) &&
		    (line < 0 || p->v[i].line == line))
			return &p->v[i];
	for (size_t i = 0; i < p->n; i++)
		config_problem_print(stderr, &p->v[i]);
	fail_msg("no problem for key %s at line %d", key ? key : "(none)", line);
	return NULL;
}

static void test_schema_rows_are_consistent(void **state)
{
	(void)state;
	assert_true(config_schema_len > 30);
	for (size_t i = 0; i < config_schema_len; i++) {
		const struct config_setting *s = &config_schema[i];

		assert_non_null(s->help);
		if (s->type == CONFIG_ENUM || s->type == CONFIG_BOOL)
			assert_non_null(s->allowed);
		if (s->def)
			assert_null(config_check_value(s, s->def));
		if (s->overrides) {
			assert_string_equal(s->section, "family");
			assert_non_null(strchr(s->overrides, '.'));
		}
		for (size_t j = 0; j < i; j++) {
			assert_false(strcmp(s->section, config_schema[j].section) == 0 &&
				     strcmp(s->key, config_schema[j].key) == 0);
			if (s->peer && config_schema[j].peer)
				assert_string_not_equal(s->peer, config_schema[j].peer);
		}
		if (strcmp(s->section, "family") == 0) {
			assert_ptr_equal(config_setting_find("family.2W", s->key), s);
		} else {
			assert_ptr_equal(config_setting_find(s->section, s->key), s);
		}
	}
	assert_null(config_setting_find("family.3", "mode"));
	assert_null(config_setting_find("family", "mode"));
	assert_null(config_setting_find("station", "nope"));
}

/* Problems other than the payload-presence warnings (Raspberry Pi's packages
 * are not installed where these tests run). */
static size_t count_non_payload(const struct config_problems *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n; i++) {
		const char *k = p->v[i].key ? p->v[i].key : "";

		if (p->v[i].warning && (strcmp(k, "bootloader.firmware_dir") == 0 ||
					strcmp(k, "paths.payload_dir") == 0 ||
					strcmp(k, "paths.gadget_image") == 0 ||
					strcmp(k, "paths.cryptroot_initramfs") == 0))
			continue;
		n++;
	}
	return n;
}

static void test_valid_file_and_defaults(void **state)
{
	struct config_problems p = { 0 };
	struct config *c = NULL;
	char want[160];

	(void)state;
	assert_int_equal(load_text(&c, &p,
				   "; comment\n# another\n[station]\nmode = naked  ; inline comment\n"
				   "id=bench-7\n\n[image]\ngold = gold.img\nstorage = emmc\n"
				   "[timeouts]\ntriage = 5\n[otp]\njtag_lock = yes\n"), 0);
	/* one warning: OTP settings do nothing outside secure-boot */
	assert_int_equal(count_non_payload(&p), 1);
	assert_true(find_problem(&p, "otp.jtag_lock", 13)->warning);
	assert_string_equal(config_get(c, "station", "mode"), "naked");
	assert_string_equal(config_get(c, "station", "id"), "bench-7");
	/* relative path resolved against the file's directory */
	snprintf(want, sizeof(want), "%s/gold.img", tmpdir);
	assert_string_equal(config_get(c, "image", "gold"), want);
	assert_string_equal(config_get(c, "image", "cipher"), "aes-xts-plain64");
	assert_string_equal(config_get(c, "paths", "database"), "/srv/rpi-sb-provisioner/manufacturing.db");
	assert_string_equal(config_get(c, "key", "pem"), "");
	assert_int_equal(config_get_int(c, "timeouts", "triage"), 5);
	assert_int_equal(config_get_int(c, "timeouts", "bootstrap"), 120);
	assert_true(config_get_bool(c, "otp", "jtag_lock"));
	assert_true(config_get_bool(c, "bootloader", "boot_order_match_storage"));
	assert_string_equal(config_get(c, "nosuch", "key"), "");
	{
		const char *file = NULL;
		int line = 0;

		assert_int_equal(config_origin(c, "station", "mode", &file, &line), 1);
		assert_int_equal(line, 4);
		assert_int_equal(config_origin(c, "station", "hold", &file, &line), 0);
		assert_int_equal(config_origin(c, "x", "y", &file, &line), -ENOENT);
	}
	config_free(c);
	config_problems_free(&p);
}

static void test_root_relocates_defaults_only(void **state)
{
	struct config_problems p = { 0 };
	struct config *c = NULL;
	struct paths paths;
	char text[256];

	(void)state;
	assert_int_equal(paths_init(&paths, "/tmp/x"), 0);
	snprintf(text, sizeof(text), "[image]\ngold=%s\nstorage=sd\n[station]\nmode=naked\n"
		 "[paths]\nlog_dir=/abs/logs\n", gold);
	assert_int_equal(config_load_buffer("/nowhere/p.ini", text, strlen(text), &paths, &c, &p), 0);
	assert_string_equal(config_get(c, "paths", "database"),
			    "/tmp/x/srv/rpi-sb-provisioner/manufacturing.db");
	assert_string_equal(config_get(c, "bootloader", "firmware_dir"),
			    "/tmp/x/lib/firmware/raspberrypi/bootloader-%chip%/latest");
	assert_string_equal(config_get(c, "paths", "log_dir"), "/abs/logs"); /* explicit: as given */
	assert_string_equal(config_get(c, "station", "id"), "station-1");     /* not a path */
	config_free(c);
	config_problems_free(&p);
	paths_free(&paths);
}

static void test_every_problem_is_reported(void **state)
{
	struct config_problems p = { 0 };
	struct config *c = NULL;
	const struct config_problem *pr;

	(void)state;
	assert_int_equal(load_text(&c, &p,
				   "[station]\n"                  /* 1 */
				   "mode = secureboot\n"          /* 2 bad enum */
				   "colour = blue\n"              /* 3 unknown key */
				   "[timeouts]\n"                 /* 4 */
				   "triage = 4\n"                 /* 5 out of range */
				   "hook = soon\n"                /* 6 not a number */
				   "[otp]\n"                      /* 7 */
				   "jtag_lock = maybe\n"          /* 8 bad bool */
				   "[bootloader]\n"               /* 9 */
				   "firmware_sha256 = abc\n"      /* 10 bad hex */
				   "[statoin]\n"                  /* 11 unknown section */
				   "id = x\n"                     /* 12 (not reported again) */
				   "[image]\n"                    /* 13 */
				   "gold = %s\n"                  /* 14 */
				   "storage = sd\n"               /* 15 */
				   "storage = emmc\n"             /* 16 duplicate */
				   "just words\n",                /* 17 syntax */
				   gold), -EINVAL);
	pr = find_problem(&p, "station.mode", 2);
	assert_string_equal(pr->allowed, "secure-boot|fde-only|naked");
	assert_non_null(strstr(pr->message, "secureboot"));
	pr = find_problem(&p, "station.colour", 3);
	assert_non_null(strstr(pr->allowed, "mode"));
	assert_non_null(strstr(pr->allowed, "family"));
	pr = find_problem(&p, "timeouts.triage", 5);
	assert_string_equal(pr->allowed, "5..600");
	assert_non_null(strstr(pr->message, "out of range"));
	find_problem(&p, "timeouts.hook", 6);
	assert_string_equal(find_problem(&p, "otp.jtag_lock", 8)->allowed, "true|false");
	assert_string_equal(find_problem(&p, "bootloader.firmware_sha256", 10)->allowed, "64 hex digits");
	pr = find_problem(&p, NULL, 11);
	assert_non_null(strstr(pr->message, "[statoin]"));
	assert_non_null(strstr(pr->allowed, "family.2W"));
	assert_non_null(strstr(find_problem(&p, "image.storage", 16)->message, "line 15"));
	find_problem(&p, NULL, 17);
	for (size_t i = 0; i < p.n; i++)
		assert_int_not_equal(p.v[i].line, 12);
	/* The config is still usable: bad values fall back to the defaults. */
	assert_non_null(c);
	assert_string_equal(config_get(c, "station", "mode"), "secure-boot");
	assert_int_equal(config_get_int(c, "timeouts", "triage"), 60);
	assert_string_equal(config_get(c, "image", "storage"), "sd");
	/* and the printed form carries file, line, key, allowed */
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);

		config_problem_print(f, find_problem(&p, "station.mode", 2));
		fclose(f);
		assert_non_null(strstr(buf, "/test.ini:2: key 'station.mode': "));
		assert_non_null(strstr(buf, "; allowed: secure-boot|fde-only|naked\n"));
		free(buf);
	}
	config_free(c);
	config_problems_free(&p);
}

static void test_lines_inih_would_misread(void **state)
{
	struct config_problems p = { 0 };
	struct config *c = NULL;
	char text[600];
	size_t n;

	(void)state;
	/* key before a section, missing ']', a 400-character line, a NUL byte, and an
	 * indented line (which inih would glue onto the previous value) */
	n = (size_t)snprintf(text, sizeof(text), "id = x\n[station\n[station]\nid = %0400d\n", 7);
	memcpy(text + n, "hold = no\0ne\n  mode = naked\n", 28);
	n += 28;
	assert_int_equal(config_load_buffer("t.ini", text, n, NULL, &c, &p), -EINVAL);
	find_problem(&p, "id", 1);
	find_problem(&p, NULL, 2);
	assert_non_null(strstr(find_problem(&p, NULL, 4)->message, "too long"));
	assert_non_null(strstr(find_problem(&p, NULL, 5)->message, "NUL"));
	assert_string_equal(config_get(c, "station", "mode"), "naked"); /* line 6 stands alone */
	assert_string_equal(config_get(c, "station", "id"), "station-1");
	config_free(c);
	config_problems_free(&p);

	/* keys under a broken header are not filed under the previous section */
	assert_int_equal(config_load_buffer("t.ini", "[station]\nmode = naked\n[image] x\nid = y\n", 40,
					    NULL, &c, &p), -EINVAL);
	find_problem(&p, NULL, 3);
	assert_string_equal(config_get(c, "station", "id"), "station-1");
	for (size_t i = 0; i < p.n; i++)
		assert_int_not_equal(p.v[i].line, 4);
	config_free(c);
	config_problems_free(&p);

	/* inih keeps " # ..." in the value: refused, never silently part of a path */
	assert_int_equal(config_load_buffer("t.ini", "[station]\nid = bench # A\nhold = none ; ok\n", 42,
					    NULL, &c, &p), -EINVAL);
	assert_non_null(strstr(find_problem(&p, "station.id", 2)->message, "' ;'"));
	assert_string_equal(config_get(c, "station", "hold"), "none");
	config_free(c);
	config_problems_free(&p);
}

static void test_family_overrides(void **state)
{
	struct config_problems p = { 0 };
	struct config *c = NULL;

	(void)state;
	assert_int_equal(load_text(&c, &p,
				   "[station]\nmode = secure-boot\n[key]\npem = %s\n[otp]\nrpiboot_gpio = 8\n"
				   "[image]\ngold = %s\nstorage = sd\n"
				   "[family.2W]\nmode = naked\nstorage = emmc\n[family.5]\nstorage = nvme\n",
				   pem, gold), 0);
	assert_int_equal(count_non_payload(&p), 0);
	assert_string_equal(config_get_for_family(c, "2W", "station", "mode"), "naked");
	assert_string_equal(config_get_for_family(c, "4", "station", "mode"), "secure-boot");
	assert_string_equal(config_get_for_family(c, "5", "image", "storage"), "nvme");
	assert_string_equal(config_get_for_family(c, "4", "image", "storage"), "sd");
	assert_string_equal(config_get_for_family(c, "2W", "image", "storage"), "emmc");
	assert_string_equal(config_get_for_family(c, NULL, "image", "storage"), "sd");
	assert_string_equal(config_get_for_family(c, "5", "station", "id"), "station-1");
	assert_string_equal(config_get(c, "family.5", "storage"), "nvme");
	assert_string_equal(config_get(c, "family.4", "storage"), "");
	config_free(c);
	config_problems_free(&p);

	/* a family value is validated like the value it overrides */
	assert_int_equal(load_text(&c, &p, "[family.5]\nstorage = usb\n"), -EINVAL);
	assert_string_equal(find_problem(&p, "family.5.storage", 2)->allowed, "sd|emmc|nvme");
	config_free(c);
	config_problems_free(&p);
}

static void test_cross_field_rules(void **state)
{
	struct config_problems p = { 0 };
	struct config *c = NULL;
	const struct config_problem *pr;

	(void)state;
	/* 2W cannot use secure-boot: explicit family -> error */
	assert_int_equal(load_text(&c, &p, "[station]\nfamily = 2W\nmode = secure-boot\n[key]\npem = %s\n"
				   "[image]\ngold = %s\nstorage = sd\n", pem, gold), -EINVAL);
	pr = find_problem(&p, "station.mode", 3);
	assert_false(pr->warning);
	assert_non_null(strstr(pr->message, "Zero 2 W"));
	config_free(c);
	config_problems_free(&p);

	/* ... through [family.2W] too */
	assert_int_equal(load_text(&c, &p, "[station]\nmode = naked\n[family.2W]\nmode = secure-boot\n"
				   "[image]\ngold = %s\nstorage = sd\n[key]\npem = %s\n", gold, pem), -EINVAL);
	assert_false(find_problem(&p, "family.2W.mode", 4)->warning);
	config_free(c);
	config_problems_free(&p);

	/* auto + secure-boot: warnings only (Pi 4 needs the GPIO, 2W is refused) */
	assert_int_equal(load_text(&c, &p, "[key]\npem = %s\n[image]\ngold = %s\nstorage = sd\n", pem, gold), 0);
	assert_true(find_problem(&p, "otp.rpiboot_gpio", -1)->warning);
	assert_true(find_problem(&p, "station.family", -1)->warning);
	assert_int_equal(config_problems_errors(&p), 0);
	config_free(c);
	config_problems_free(&p);

	/* family 4 + secure-boot without rpiboot_gpio: error */
	assert_int_equal(load_text(&c, &p, "[station]\nfamily = 4\n[key]\npem = %s\n[image]\ngold = %s\n"
				   "storage = sd\n", pem, gold), -EINVAL);
	pr = find_problem(&p, "otp.rpiboot_gpio", -1);
	assert_false(pr->warning);
	assert_string_equal(pr->allowed, "2|4|5|6|7|8");
	config_free(c);
	config_problems_free(&p);

	/* secure-boot with no key; signer without public; missing key file */
	assert_int_equal(load_text(&c, &p, "[station]\nfamily = 5\n[image]\ngold = %s\nstorage = sd\n",
				   gold), -EINVAL);
	assert_non_null(strstr(find_problem(&p, "key.pem", -1)->message, "needs a signing key"));
	config_free(c);
	config_problems_free(&p);
	assert_int_equal(load_text(&c, &p, "[station]\nfamily = 5\n[key]\nsigner = /usr/bin/hsm-sign\n"
				   "[image]\ngold = %s\nstorage = sd\n", gold), -EINVAL);
	find_problem(&p, "key.public", 4);
	config_free(c);
	config_problems_free(&p);
	assert_int_equal(load_text(&c, &p, "[station]\nfamily = 5\n[key]\npem = %s/missing.pem\n"
				   "[image]\ngold = %s\nstorage = sd\n", tmpdir, gold), -EINVAL);
	pr = find_problem(&p, "key.pem", 4);
	assert_non_null(strstr(pr->message, "missing.pem"));
	assert_non_null(strstr(pr->message, "does not exist"));
	config_free(c);
	config_problems_free(&p);

	/* required settings; a missing gold image */
	assert_int_equal(load_text(&c, &p, "[station]\nmode = naked\n[image]\ngold = %s/nope.img\n", tmpdir),
			 -EINVAL);
	assert_string_equal(find_problem(&p, "image.storage", 0)->allowed, "sd|emmc|nvme");
	assert_non_null(strstr(find_problem(&p, "image.gold", 4)->message, "does not exist"));
	config_free(c);
	config_problems_free(&p);
}

static void test_missing_file(void **state)
{
	struct config_problems p = { 0 };
	struct config *c = NULL;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/absent.ini", tmpdir);
	assert_int_equal(config_load(path, NULL, &c, &p), -EINVAL);
	assert_non_null(c);
	assert_non_null(strstr(find_problem(&p, NULL, 0)->message, "file not found"));
	assert_string_equal(config_get(c, "station", "mode"), "secure-boot");
	config_free(c);
	config_problems_free(&p);
}

static void test_goldimage_check(void **state)
{
	struct goldimage_info info;
	char err[GOLDIMAGE_ERRLEN];
	size_t len;
	uint8_t *img = make_image(&len);

	(void)state;
	assert_int_equal(goldimage_check_buffer(img, len, &info, err, sizeof(err)), 0);
	assert_int_equal(info.boot.offset, MiB);
	assert_int_equal(info.boot.size, MiB);
	assert_int_equal(info.root.offset, 2 * MiB);
	assert_int_equal(info.fat_bits, 32);
	assert_int_equal(info.disk_id, 0x5eed1234);
	assert_int_equal(goldimage_check(gold, &info, err, sizeof(err)), 0);
	assert_int_equal(info.file_size, 3 * MiB);

	/* truncated: partition 2 runs past the end */
	assert_int_equal(goldimage_check_buffer(img, len - 4096, &info, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(goldimage_check_buffer(img, 100, &info, err, sizeof(err)), -EINVAL);
	assert_int_equal(goldimage_check_buffer(img, 0, &info, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "empty"));
	/* no ext magic */
	img[2 * MiB + 1024 + 56] = 0;
	assert_int_equal(goldimage_check_buffer(img, len, &info, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ext4"));
	img[2 * MiB + 1024 + 56] = 0x53;
	/* no FAT type string */
	memcpy(img + MiB + 82, "NTFS", 4);
	assert_int_equal(goldimage_check_buffer(img, len, &info, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "FAT"));
	memcpy(img + MiB + 82, "FAT32", 5);
	/* wrong partition types */
	img[446 + 4] = 0x83;
	assert_int_equal(goldimage_check_buffer(img, len, &info, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "partition 1 has type 0x83"));
	img[446 + 4] = 0x0c;
	/* GPT: protective MBR */
	img[446 + 16 * 2 + 4] = 0xee;
	assert_int_equal(goldimage_check_buffer(img, len, &info, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "GPT"));
	img[446 + 16 * 2 + 4] = 0;
	/* compressed files are named */
	{
		static const struct { const char *magic; size_t n; const char *name; } z[] = {
			{ "\x1f\x8b\x08", 3, "gzip" }, { "\xfd" "7zXZ\0", 6, "xz" },
			{ "\x28\xb5\x2f\xfd", 4, "zstd" }, { "BZh9", 4, "bzip2" }, { "PK\x03\x04", 4, "zip" },
		};

		for (size_t i = 0; i < sizeof(z) / sizeof(z[0]); i++) {
			uint8_t head[8];

			memcpy(head, img, sizeof(head));
			memcpy(img, z[i].magic, z[i].n);
			assert_int_equal(goldimage_check_buffer(img, len, &info, err, sizeof(err)), -EINVAL);
			assert_non_null(strstr(err, z[i].name));
			memcpy(img, head, sizeof(head));
		}
	}
	img[510] = 0;
	assert_int_equal(goldimage_check_buffer(img, len, &info, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no MBR"));
	free(img);
	assert_int_equal(goldimage_check("/nonexistent/x.img", &info, err, sizeof(err)), -ENOENT);
	assert_int_equal(goldimage_check(tmpdir, &info, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
}

/* Run the importer over @in; returns its rc, output and notes in the buffers. */
static int import(const char *in, char **out, char **notes)
{
	size_t ol = 0, nl = 0;
	FILE *o = open_memstream(out, &ol), *n = open_memstream(notes, &nl);
	int rc;

	assert_non_null(o);
	assert_non_null(n);
	rc = config_import_peer("peer.conf", in, strlen(in), o, n);
	fclose(o);
	fclose(n);
	return rc;
}

static void test_import_peer_config(void **state)
{
	struct config_problems p = { 0 };
	struct config *c = NULL;
	char *in = NULL, *out = NULL, *notes = NULL;
	char ini[128];

	(void)state;
	assert_true(asprintf(&in,
			     "# peer config\n"
			     "PROVISIONING_STYLE=secure-boot\n"
			     "CUSTOMER_KEY_FILE_PEM='%s'\n"
			     "export GOLD_MASTER_OS_FILE=\"%s\"  # the image\n"
			     "RPI_DEVICE_STORAGE_TYPE=emmc\n"
			     "RPI_DEVICE_FAMILY=5\n"
			     "RPI_DEVICE_STORAGE_CIPHER='xchacha12,aes-adiantum-plain64'\n"
			     "RPI_DEVICE_LOCK_JTAG=1\n"
			     "RPI_DEVICE_EEPROM_WP_SET=\n"
			     "RPI_DEVICE_BOOT_ORDER_MATCH_STORAGE=off\n"
			     "RPI_SB_WORKDIR='/srv/it'\\''s/work'\n"
			     "RPI_SB_PROVISIONER_MANUFACTURING_DB=\"/srv/db \\\"x\\\".db\"\n"
			     "RPI_CONNECT_API_KEY=abc\n"
			     "CUSTOMER_KEY_PKCS11_NAME=\n"
			     "SOMETHING_ELSE=1\n",
			     pem, gold) > 0);
	assert_int_equal(import(in, &out, &notes), 0);
	assert_non_null(strstr(out, "[station]\n# from PROVISIONING_STYLE (line 2)\nmode = secure-boot\n"));
	assert_non_null(strstr(out, "family = 5\n"));
	assert_non_null(strstr(out, "cipher = xchacha12,aes-adiantum-plain64\n"));
	assert_non_null(strstr(out, "jtag_lock = true\n"));
	assert_null(strstr(out, "eeprom_write_protect"));   /* empty: the default, false */
	assert_non_null(strstr(out, "boot_order_match_storage = false\n"));
	assert_non_null(strstr(out, "cache_dir = /srv/it's/work\n"));
	assert_non_null(strstr(out, "database = /srv/db \"x\".db\n"));
	assert_non_null(strstr(notes, "peer.conf:13: RPI_CONNECT_API_KEY is not imported"));
	assert_non_null(strstr(notes, "peer.conf:15: SOMETHING_ELSE is not a setting"));
	assert_null(strstr(notes, "PKCS11"));                 /* empty: nothing lost */

	/* The output loads cleanly. */
	snprintf(ini, sizeof(ini), "%s/imported.ini", tmpdir);
	if (config_load_buffer(ini, out, strlen(out), NULL, &c, &p) != 0) {
		fputs(out, stderr);
		for (size_t i = 0; i < p.n; i++)
			config_problem_print(stderr, &p.v[i]);
		fail();
	}
	assert_int_equal(config_problems_errors(&p), 0);
	assert_string_equal(config_get(c, "key", "pem"), pem);
	assert_string_equal(config_get(c, "image", "gold"), gold);
	assert_false(config_get_bool(c, "bootloader", "boot_order_match_storage"));
	config_free(c);
	config_problems_free(&p);
	free(in);
	free(out);
	free(notes);
}

static void test_import_refuses_shell(void **state)
{
	char *out = NULL, *notes = NULL;

	(void)state;
	assert_int_equal(import("PROVISIONING_STYLE=$(rm -rf /)\n"
				"GOLD_MASTER_OS_FILE=a b\n"
				"RPI_DEVICE_STORAGE_TYPE='sd\n"
				"RPI_DEVICE_FAMILY=`id`\n"
				"RPI_SB_WORKDIR=\"$HOME/x\"\n"
				"RPI_DEVICE_RPIBOOT_GPIO=8;reboot\n"
				"just text\n"
				"RPI_DEVICE_LOCK_JTAG=1\n"
				"RPI_DEVICE_LOCK_JTAG=\n", &out, &notes), -EINVAL);
	assert_null(strstr(out, "mode ="));
	assert_null(strstr(out, "gold ="));
	assert_null(strstr(out, "storage ="));
	assert_null(strstr(out, "family ="));
	assert_null(strstr(out, "cache_dir"));
	assert_null(strstr(out, "rpiboot_gpio"));
	assert_null(strstr(out, "jtag_lock"));   /* the last assignment wins, as in the shell */
	for (int line = 1; line <= 7; line++) {
		char tag[32];

		snprintf(tag, sizeof(tag), "peer.conf:%d: ", line);
		assert_non_null(strstr(notes, tag));
	}
	assert_non_null(strstr(notes, "set again later"));
	free(out);
	free(notes);

	/* an invalid value is carried over, with a note, for config check to flag */
	assert_int_equal(import("PROVISIONING_STYLE=secureboot\n", &out, &notes), 0);
	assert_non_null(strstr(out, "mode = secureboot\n"));
	assert_non_null(strstr(notes, "allowed: secure-boot|fde-only|naked"));
	free(out);
	free(notes);
}

static void test_schema_renderings(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	f = open_memstream(&buf, &len);
	assert_int_equal(config_schema_markdown(f), 0);
	fclose(f);
	for (size_t i = 0; i < config_schema_len; i++) {
		char row[96];

		snprintf(row, sizeof(row), "| `%s` |", config_schema[i].key);
		assert_non_null(strstr(buf, row));
	}
	assert_non_null(strstr(buf, "secure-boot\\|fde-only\\|naked"));
	free(buf);

	/* The example INI is itself a valid (if incomplete) configuration. */
	f = open_memstream(&buf, &len);
	assert_int_equal(config_schema_ini(f), 0);
	fclose(f);
	{
		struct config_problems p = { 0 };
		struct config *c = NULL;

		config_load_buffer("example.ini", buf, len, NULL, &c, &p);
		for (size_t i = 0; i < p.n; i++)
			assert_int_equal(p.v[i].line, 0); /* only "required" problems, no syntax ones */
		config_free(c);
		config_problems_free(&p);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_rows_are_consistent),
		cmocka_unit_test(test_valid_file_and_defaults),
		cmocka_unit_test(test_root_relocates_defaults_only),
		cmocka_unit_test(test_every_problem_is_reported),
		cmocka_unit_test(test_lines_inih_would_misread),
		cmocka_unit_test(test_family_overrides),
		cmocka_unit_test(test_cross_field_rules),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_goldimage_check),
		cmocka_unit_test(test_import_peer_config),
		cmocka_unit_test(test_import_refuses_shell),
		cmocka_unit_test(test_schema_renderings),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
