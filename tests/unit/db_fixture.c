/* db_fixture: write N realistic boards into a manufacturing database through
 * the db API, for the shell tests (tests/integration/records_*.sh).
 *
 *   db_fixture DB N
 *
 * Board i (0-based): serial 10000000000000<i in hex, 2 digits>, secure = 1 when
 * i%3 == 0, 0 when i%3 == 1, unknown when i%3 == 2; provisioned on
 * 2025-01-(1+i%28) 10:00:00 (month 1 + i/28); every third board also has a
 * failed attempt before its success. Boards 1..3 carry text a spreadsheet
 * would run or a CSV writer could get wrong (formula, comma, quote, newline).
 * Single-threaded test tool. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/db.h"

static const char *const boards[] = { "5", "CM5", "4B", "400", "CM4", "Zero 2 W", "500" };

static int write_board(struct db *db, int i)
{
	char serial[24], ts[32], mac[3][24], image[64];
	int64_t id;
	int r;

	snprintf(serial, sizeof(serial), "10000000000000%02x", (unsigned)i & 0xff);
	snprintf(ts, sizeof(ts), "2025-%02d-%02d 10:00:00", 1 + (i / 28) % 12, 1 + i % 28);
	for (int k = 0; k < 3; k++)
		snprintf(mac[k], sizeof(mac[k]), "2c:cf:67:%02x:%02x:%02x", k, (i >> 8) & 0xff,
			 i & 0xff);
	snprintf(image, sizeof(image), "gold-2025-%02d.img", 1 + i % 12);

	struct db_attempt_start a = {
		.usb_port = "1-1.2", .mode = i % 3 == 0 ? DB_MODE_SECURE_BOOT : DB_MODE_FDE_ONLY,
		.station_id = "station-1",
		.image_sha256 = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
		.key_fingerprint = "ab12",
	};
	if (i % 3 == 0) {
		r = db_attempt_begin(db, &a, &id);
		if (r == 0)
			r = db_attempt_phase(db, id, DB_PHASE_BOOTSTRAP, 1200);
		if (r == 0)
			r = db_attempt_finish(db, id, DB_RESULT_FAILED, -ETIMEDOUT,
					      "triage: the board did not come back as a fastboot "
					      "gadget within 60 s");
		if (r < 0)
			return r;
	}
	r = db_attempt_begin(db, &a, &id);
	if (r < 0)
		return r;
	static const enum db_phase phases[] = { DB_PHASE_BOOTSTRAP, DB_PHASE_TRIAGE,
						DB_PHASE_PROVISION, DB_PHASE_VERIFY };
	for (size_t k = 0; k < sizeof(phases) / sizeof(phases[0]) && r == 0; k++)
		r = db_attempt_phase(db, id, phases[k], 1000 * (int64_t)(k + 1) + i);
	if (r == 0)
		r = db_attempt_update_serial(db, id, serial);
	if (r == 0)
		r = db_event(db, id, serial, "1-1.2", DB_EVENT_TRIAGE_FINISHED, NULL);
	if (r < 0)
		return r;

	enum db_flag secure = i % 3 == 0 ? DB_FLAG_YES : i % 3 == 1 ? DB_FLAG_NO : DB_FLAG_NULL;
	struct db_device_record rec = {
		.boardname = boards[i % (int)(sizeof(boards) / sizeof(boards[0]))],
		.serial = serial, .eth_mac = mac[0], .wifi_mac = mac[1], .bt_mac = mac[2],
		.mmc_size = DB_INT(31914983424LL), .mmc_cid = "9f544930303030300000000000000000",
		.rpi_duid = "0123456789abcdef0123456789abcdef", .board_revision = "1.0",
		.processor = "BCM2712", .memory = "8GB", .manufacturer = "Sony UK",
		.secure = secure,
		.jtag_locked = DB_FLAG_NULL, .eeprom_write_protected = DB_FLAG_NULL,
		.pubkey_programmed = secure, .devkey_revoked = DB_FLAG_NULL,
		.signed_boot_enabled = secure,
		.os_image_filename = image, .os_image_sha256 = a.image_sha256,
		.connect_registered = DB_FLAG_NULL,
		.eeprom_size = DB_INT(2097152), .eeprom_jedec = "ef4015",
		.eeprom_unique_id = "d5b7e0a1b2c3", .bootloader_build_timestamp = DB_INT(1730000000),
		.customer_key_fingerprint = a.key_fingerprint, .customer_key_label = "line-1",
		.provision_ts = ts, .station_id = "station-1", .usb_port = "1-1.2",
	};
	if (i == 1)
		rec.os_image_filename = "=HYPERLINK(\"http://example.invalid\",\"click\")";
	if (i == 2)
		rec.customer_key_label = "night shift, \"B\"\nline 2";
	if (i == 3)
		rec.connect_device_id = "-1+2";
	return db_device_record(db, id, &rec);
}

int main(int argc, char **argv)
{
	struct db *db = NULL;
	char *end;
	long n;
	int r = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DB N\n", argv[0]);
		return 2;
	}
	n = strtol(argv[2], &end, 10);
	if (*end || n < 0 || n > 255) {
		fprintf(stderr, "%s: N must be 0..255\n", argv[0]);
		return 2;
	}
	if (db_open(argv[1], DB_OPEN_CREATE, &db) < 0)
		return 1;
	for (int i = 0; i < n && r == 0; i++)
		r = write_board(db, i);
	db_close(db);
	return r < 0 ? 1 : 0;
}
