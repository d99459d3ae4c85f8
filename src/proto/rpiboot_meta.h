/* rpiboot_meta: the facts a recovery second stage pushes as `*KEY*VALUE`
 * file requests (spec rpiboot.md §4.4), kept for the board's record.
 *
 * Outside bytes: every value is checked against the shape its key is known to
 * have; unknown keys are kept verbatim within fixed limits; anything else is
 * refused and counted. All functions return 0 or a negative errno. */
#ifndef RPI_SB_PROTO_RPIBOOT_META_H
#define RPI_SB_PROTO_RPIBOOT_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The keys recovery.bin is known to send, in the order it sends them. */
enum rpiboot_md_key {
	RPIBOOT_MD_USER_SERIAL_NUM,
	RPIBOOT_MD_MAC_ADDR,
	RPIBOOT_MD_EEPROM_UPDATE,
	RPIBOOT_MD_EEPROM_HASH,
	RPIBOOT_MD_EEPROM_ERASE,
	RPIBOOT_MD_SECURE_BOOT_PROVISION,
	RPIBOOT_MD_CUSTOMER_KEY_HASH,
	RPIBOOT_MD_BOOT_ROM,
	RPIBOOT_MD_BOARD_ATTR,
	RPIBOOT_MD_USER_BOARDREV,
	RPIBOOT_MD_JTAG_LOCKED,
	RPIBOOT_MD_ADVANCED_BOOT,
	RPIBOOT_MD_SIGNATURE_MODE,
	RPIBOOT_MD_MAC_WIFI_ADDR,
	RPIBOOT_MD_MAC_BT_ADDR,
	RPIBOOT_MD_FACTORY_UUID,
	RPIBOOT_MD_KEY_COUNT
};

#define RPIBOOT_MD_UNKNOWN_MAX 16      /* unknown keys kept per board */
#define RPIBOOT_MD_UNKNOWN_KEY_MAX 32  /* characters of an unknown key */
#define RPIBOOT_MD_VALUE_MAX 128       /* characters of any value */
#define RPIBOOT_MD_JSON_MAX 16384      /* bytes of a metadata JSON document */
#define RPIBOOT_FACTORY_UUID_MAX 36    /* decoded C40 characters */

struct rpiboot_md_pair {
	char *key;
	char *value;
};

struct rpiboot_metadata {
	char *known[RPIBOOT_MD_KEY_COUNT];     /* raw value as pushed, NULL when absent */
	struct rpiboot_md_pair unknown[RPIBOOT_MD_UNKNOWN_MAX];
	size_t n_unknown;
	unsigned refused;                      /* pushes rejected (bad shape, limits) */
	/* Decoded forms of the keys the station uses. */
	bool have_serial, have_boardrev;
	uint32_t serial;                       /* USER_SERIAL_NUM */
	uint32_t boardrev;                     /* USER_BOARDREV; board type = bits 4-11 */
	char factory_uuid[RPIBOOT_FACTORY_UUID_MAX + 1]; /* decoded FACTORY_UUID, "" when absent */
};

void rpiboot_metadata_init(struct rpiboot_metadata *md);
void rpiboot_metadata_clear(struct rpiboot_metadata *md);

/* Name of a known key ("USER_BOARDREV"), NULL when out of range. */
const char *rpiboot_md_key_name(enum rpiboot_md_key k);
/* Value of a key (known or unknown) as stored, NULL when absent. */
const char *rpiboot_metadata_get(const struct rpiboot_metadata *md, const char *key);

/* Record one push: `name` is the FileMessage name including the leading '*',
 * `len` its length. -EINVAL when the push is malformed or the value does not
 * have its key's shape (md->refused counts it); -ENOSPC when the unknown-key
 * table is full; -ENODATA when the value is missing (the entry is skipped,
 * as the reference host does). */
int rpiboot_metadata_push(struct rpiboot_metadata *md, const char *name, size_t len);

/* Set KEY=VALUE with the same checks as a push (FACTORY_UUID in raw word form). */
int rpiboot_metadata_set(struct rpiboot_metadata *md, const char *key, const char *value);

/* Serialise to a JSON object (the reference host's `<serial>.json` shape:
 * string values, FACTORY_UUID decoded). Caller frees *out. */
int rpiboot_metadata_to_json(const struct rpiboot_metadata *md, char **out);

/* Parse such a JSON document (json-c, at most RPIBOOT_MD_JSON_MAX bytes, an
 * object of string values only) into md. Values get the same checks as pushes;
 * FACTORY_UUID is expected in decoded form. -EINVAL on anything else. */
int rpiboot_metadata_from_json(struct rpiboot_metadata *md, const char *text, size_t len);

/* C40-decode a FACTORY_UUID value ("19a519a6_19ab520e_...") into out
 * (RPIBOOT_FACTORY_UUID_MAX + 1 bytes). -EINVAL when any word is invalid. */
int rpiboot_factory_uuid_decode(const char *raw, char *out, size_t outsz);

#endif
