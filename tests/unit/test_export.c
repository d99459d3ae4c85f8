/* test_export: CSV cell escaping and formula neutralisation, the --since
 * parser, and whole CSV/JSON exports of a small database (JSON read back
 * with json-c's parser, not compared as text). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "records/db.h"
#include "records/export.h"

/* Run export_csv_cell on @in, return what it wrote (static buffer; the
 * writer may write a byte at a time, so capture through a memstream). */
static const char *cell(const char *in)
{
	static char out[256];
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(export_csv_cell(f, in), 0);
	assert_int_equal(fclose(f), 0);
	assert_true(len < sizeof(out));
	memcpy(out, buf, len + 1);
	free(buf);
	return out;
}

static void test_csv_cells(void **state)
{
	(void)state;
	/* plain */
	assert_string_equal(cell("Sony UK"), "Sony UK");
	assert_string_equal(cell(""), "");
	assert_string_equal(cell("2c:cf:67:00:00:01"), "2c:cf:67:00:00:01");
	/* formula starters: a leading ' */
	assert_string_equal(cell("=1+1"), "'=1+1");
	assert_string_equal(cell("+x"), "'+x");
	assert_string_equal(cell("-x"), "'-x");
	assert_string_equal(cell("@x"), "'@x");
	assert_string_equal(cell("\tx"), "'\tx");
	assert_string_equal(cell("\rx"), "\"'\rx\"");   /* CR: neutralised and quoted */
	/* only the first character matters */
	assert_string_equal(cell("a=1"), "a=1");
	assert_string_equal(cell("x-y"), "x-y");
	/* RFC 4180 quoting */
	assert_string_equal(cell("a,b"), "\"a,b\"");
	assert_string_equal(cell("a\"b"), "\"a\"\"b\"");
	assert_string_equal(cell("line1\nline2"), "\"line1\nline2\"");
	assert_string_equal(cell("a\r\nb"), "\"a\r\nb\"");
	assert_string_equal(cell("\"quoted\""), "\"\"\"quoted\"\"\"");
	/* both: neutralised inside the quotes */
	assert_string_equal(cell("=HYPERLINK(\"http://x\",\"y\")"),
			    "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
	assert_string_equal(cell("-1,2"), "\"'-1,2\"");
}

/* Independent reader of one RFC 4180 field (the whole of @in). Returns a
 * malloc'd string, or NULL when @in is not one well-formed field. */
static char *csv_read_field(const char *in)
{
	size_t n = strlen(in);
	char *out = malloc(n + 1), *o = out;

	assert_non_null(out);
	if (in[0] != '"') {
		if (strpbrk(in, ",\"\r\n")) {
			free(out);
			return NULL;
		}
		memcpy(out, in, n + 1);
		return out;
	}
	for (size_t i = 1; i < n; i++) {
		if (in[i] != '"') {
			*o++ = in[i];
		} else if (i + 1 < n && in[i + 1] == '"') {
			*o++ = '"';
			i++;
		} else if (i + 1 == n) {
			*o = '\0';
			return out;
		} else {
			break;
		}
	}
	free(out);
	return NULL;
}

/* Property: for any text, reading the written field back gives the text,
 * with a ' in front exactly when it starts with a formula character. */
static void test_csv_cell_round_trip(void **state)
{
	static const char alphabet[] = "a1 ,\"\r\n=+-@\t'x";
	char in[16], want[20];

	(void)state;
	srand(4180);
	for (int t = 0; t < 5000; t++) {
		size_t len = (size_t)(rand() % 12);

		for (size_t i = 0; i < len; i++)
			in[i] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
		in[len] = '\0';
		snprintf(want, sizeof(want), "%s%s",
			 in[0] && strchr("=+-@\t\r", in[0]) ? "'" : "", in);
		char *got = csv_read_field(cell(in));
		if (!got || strcmp(got, want) != 0)
			fail_msg("cell %d did not round-trip: wrote [%s]", t, cell(in));
		free(got);
	}
}

static void test_parse_since(void **state)
{
	char out[EXPORT_TIME_LEN];
	static const char *const bad[] = {
		"", "2025", "2025-1-01", "2025-01-1", "2025/01/01", "2025-13-01", "2025-00-10",
		"2025-01-32", "2023-02-29", "2100-02-29", "2025-04-31", "2025-01-01T00:00:00",
		"2025-01-01 24:00:00", "2025-01-01 23:60:00", "2025-01-01 23:59:60",
		"2025-01-01 1:00:00", "2025-01-01 01:00", "2025-01-01 01:00:00Z",
		" 2025-01-01", "2025-01-01 ", "1969-12-31", "yesterday", "2025-01-01 01:00:0x",
	};

	(void)state;
	assert_int_equal(export_parse_since("2025-03-02", out), 0);
	assert_string_equal(out, "2025-03-02 00:00:00");
	assert_int_equal(export_parse_since("2025-03-02 09:30:01", out), 0);
	assert_string_equal(out, "2025-03-02 09:30:01");
	assert_int_equal(export_parse_since("2024-02-29", out), 0);
	assert_int_equal(export_parse_since("2000-02-29 23:59:59", out), 0);
	assert_string_equal(out, "2000-02-29 23:59:59");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (export_parse_since(bad[i], out) != -EINVAL)
			fail_msg("'%s' was accepted as a date", bad[i]);
	}
	assert_int_equal(export_parse_since(NULL, out), -EINVAL);
}

struct fx {
	char dir[64];
	char path[96];
	struct db *db;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_export.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/m.db", fx->dir);
	assert_int_equal(db_open(fx->path, DB_OPEN_CREATE, &fx->db), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	db_close(fx->db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void add(struct fx *fx, const char *serial, const char *ts, enum db_flag secure,
		const char *image)
{
	struct db_device_record rec = {
		.boardname = "CM5", .serial = serial, .eth_mac = "2c:cf:67:00:00:01",
		.mmc_size = DB_INT(0), .secure = secure, .jtag_locked = DB_FLAG_NULL,
		.eeprom_write_protected = DB_FLAG_NULL, .pubkey_programmed = DB_FLAG_NULL,
		.devkey_revoked = DB_FLAG_NULL, .signed_boot_enabled = DB_FLAG_NULL,
		.connect_registered = DB_FLAG_NULL, .os_image_filename = image,
		.provision_ts = ts, .station_id = "st,1", .usb_port = "1-1",
	};

	assert_int_equal(db_device_record(fx->db, 0, &rec), 0);
}

/* Export to memory; return a malloc'd string. */
static char *run_export(struct fx *fx, const struct db_device_filter *flt, bool json,
			size_t *rows)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	if (json)
		assert_int_equal(export_json(fx->db, flt, f, rows), 0);
	else
		assert_int_equal(export_csv(fx->db, flt, f, rows), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static const char header[] =
	"id,boardname,serial,eth_mac,wifi_mac,bt_mac,mmc_size,mmc_cid,rpi_duid,board_revision,"
	"processor,memory,manufacturer,secure,jtag_locked,eeprom_write_protected,"
	"pubkey_programmed,devkey_revoked,signed_boot_enabled,os_image_filename,os_image_sha256,"
	"connect_registered,connect_device_id,eeprom_size,eeprom_jedec,eeprom_unique_id,"
	"bootloader_build_timestamp,customer_key_fingerprint,customer_key_label,provision_ts,"
	"station_id,usb_port,attempt_id\r\n";

static void test_export_csv(void **state)
{
	struct fx *fx = *state;
	size_t rows = 99;
	char *out;

	/* Empty: the header alone. */
	out = run_export(fx, NULL, false, &rows);
	assert_string_equal(out, header);
	assert_int_equal(rows, 0);
	free(out);

	add(fx, "s1", "2025-03-01 08:00:00", DB_FLAG_YES, "=cmd|' /C calc'!A0");
	add(fx, "s2", "2025-03-05 08:00:00", DB_FLAG_NO, "gold \"v2\".img");
	out = run_export(fx, NULL, false, &rows);
	assert_int_equal(rows, 2);
	char want[2048];
	snprintf(want, sizeof(want), "%s"
		 "1,CM5,s1,2c:cf:67:00:00:01,,,0,,,,,,,1,,,,,,'=cmd|' /C calc'!A0,,,,,,,,,,"
		 "2025-03-01 08:00:00,\"st,1\",1-1,\r\n"
		 "2,CM5,s2,2c:cf:67:00:00:01,,,0,,,,,,,0,,,,,,\"gold \"\"v2\"\".img\",,,,,,,,,,"
		 "2025-03-05 08:00:00,\"st,1\",1-1,\r\n", header);
	assert_string_equal(out, want);
	free(out);

	struct db_device_filter f = { .secured_only = true };
	out = run_export(fx, &f, false, &rows);
	assert_int_equal(rows, 1);
	assert_non_null(strstr(out, ",s1,"));
	assert_null(strstr(out, ",s2,"));
	free(out);

	f = (struct db_device_filter){ .since = "2025-03-02 00:00:00" };
	out = run_export(fx, &f, false, &rows);
	assert_int_equal(rows, 1);
	assert_non_null(strstr(out, ",s2,"));
	free(out);
}

static void test_export_json(void **state)
{
	struct fx *fx = *state;
	size_t rows = 0;
	char *out;

	add(fx, "s1", "2025-03-01 08:00:00", DB_FLAG_NO, "a\"b\\c/d");
	out = run_export(fx, NULL, true, &rows);
	assert_int_equal(rows, 1);

	json_object *arr = json_tokener_parse(out);
	assert_non_null(arr);
	assert_true(json_object_is_type(arr, json_type_array));
	assert_int_equal(json_object_array_length(arr), 1);
	json_object *o = json_object_array_get_idx(arr, 0), *v = NULL;
	assert_int_equal(json_object_object_length(o), 33);
	assert_true(json_object_object_get_ex(o, "secure", &v));
	assert_true(json_object_is_type(v, json_type_int));
	assert_int_equal(json_object_get_int(v), 0);
	/* unknown is null, present as a key */
	assert_true(json_object_object_get_ex(o, "jtag_locked", &v));
	assert_null(v);
	assert_true(json_object_object_get_ex(o, "mmc_size", &v));
	assert_int_equal(json_object_get_int64(v), 0);
	assert_true(json_object_object_get_ex(o, "os_image_filename", &v));
	assert_string_equal(json_object_get_string(v), "a\"b\\c/d");
	assert_true(json_object_object_get_ex(o, "provision_ts", &v));
	assert_string_equal(json_object_get_string(v), "2025-03-01 08:00:00");
	json_object_put(arr);
	free(out);

	/* No rows: an empty array, still valid JSON. */
	struct db_device_filter f = { .since = "2030-01-01 00:00:00" };
	out = run_export(fx, &f, true, &rows);
	assert_int_equal(rows, 0);
	arr = json_tokener_parse(out);
	assert_non_null(arr);
	assert_int_equal(json_object_array_length(arr), 0);
	json_object_put(arr);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_cells),
		cmocka_unit_test(test_csv_cell_round_trip),
		cmocka_unit_test(test_parse_since),
		cmocka_unit_test_setup_teardown(test_export_csv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export_json, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
