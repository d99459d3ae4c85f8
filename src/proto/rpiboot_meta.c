/* rpiboot_meta: parsing, checking and serialising the `*KEY*VALUE` metadata a
 * recovery second stage pushes (spec rpiboot.md §4.4, §4.5).
 *
 * The key table below is the one source of truth for which keys exist and
 * what shape their values have. Called by the worker thread that owns the
 * board (no shared state); the fuzz target calls it too. */
#include "proto/rpiboot_meta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

enum md_shape {
	SHAPE_HEX32,     /* 1-8 hex digits (%x / %08x) */
	SHAPE_HEX256,    /* exactly 64 hex digits */
	SHAPE_MAC,       /* aa:bb:cc:dd:ee:ff */
	SHAPE_STATUS,    /* a lowercase word: success, fail, ... */
	SHAPE_DECIMAL,   /* optional '-' and 1-10 digits */
	SHAPE_UUIDWORDS, /* '_'-joined hex words, C40-decodable */
};

static const struct md_key_def {
	const char *name;
	enum md_shape shape;
} md_keys[RPIBOOT_MD_KEY_COUNT] = {
	[RPIBOOT_MD_USER_SERIAL_NUM] = { "USER_SERIAL_NUM", SHAPE_HEX32 },
	[RPIBOOT_MD_MAC_ADDR] = { "MAC_ADDR", SHAPE_MAC },
	[RPIBOOT_MD_EEPROM_UPDATE] = { "EEPROM_UPDATE", SHAPE_STATUS },
	[RPIBOOT_MD_EEPROM_HASH] = { "EEPROM_HASH", SHAPE_HEX256 },
	[RPIBOOT_MD_EEPROM_ERASE] = { "EEPROM_ERASE", SHAPE_STATUS },
	[RPIBOOT_MD_SECURE_BOOT_PROVISION] = { "SECURE_BOOT_PROVISION", SHAPE_STATUS },
	[RPIBOOT_MD_CUSTOMER_KEY_HASH] = { "CUSTOMER_KEY_HASH", SHAPE_HEX256 },
	[RPIBOOT_MD_BOOT_ROM] = { "BOOT_ROM", SHAPE_HEX32 },
	[RPIBOOT_MD_BOARD_ATTR] = { "BOARD_ATTR", SHAPE_HEX32 },
	[RPIBOOT_MD_USER_BOARDREV] = { "USER_BOARDREV", SHAPE_HEX32 },
	[RPIBOOT_MD_JTAG_LOCKED] = { "JTAG_LOCKED", SHAPE_DECIMAL },
	[RPIBOOT_MD_ADVANCED_BOOT] = { "ADVANCED_BOOT", SHAPE_HEX32 },
	[RPIBOOT_MD_SIGNATURE_MODE] = { "SIGNATURE_MODE", SHAPE_DECIMAL },
	[RPIBOOT_MD_MAC_WIFI_ADDR] = { "MAC_WIFI_ADDR", SHAPE_MAC },
	[RPIBOOT_MD_MAC_BT_ADDR] = { "MAC_BT_ADDR", SHAPE_MAC },
	[RPIBOOT_MD_FACTORY_UUID] = { "FACTORY_UUID", SHAPE_UUIDWORDS },
};

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_hex(s[i]))
			return false;
	return true;
}

static bool shape_ok(enum md_shape shape, const char *v)
{
	size_t n = strlen(v);

	switch (shape) {
	case SHAPE_HEX32:
		return n >= 1 && n <= 8 && all_hex(v, n);
	case SHAPE_HEX256:
		return n == 64 && all_hex(v, n);
	case SHAPE_MAC:
		if (n != 17)
			return false;
		for (size_t i = 0; i < n; i++)
			if (i % 3 == 2 ? v[i] != ':' : !is_hex(v[i]))
				return false;
		return true;
	case SHAPE_STATUS:
		if (n < 1 || n > 32)
			return false;
		for (size_t i = 0; i < n; i++)
			if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
			      v[i] == '_' || v[i] == '-'))
				return false;
		return true;
	case SHAPE_DECIMAL: {
		size_t i = v[0] == '-' ? 1 : 0;

		if (n - i < 1 || n - i > 10)
			return false;
		for (; i < n; i++)
			if (v[i] < '0' || v[i] > '9')
				return false;
		return true;
	}
	case SHAPE_UUIDWORDS: {
		char tmp[RPIBOOT_FACTORY_UUID_MAX + 1];

		return n >= 1 && n <= RPIBOOT_MD_VALUE_MAX &&
		       rpiboot_factory_uuid_decode(v, tmp, sizeof(tmp)) == 0;
	}
	}
	return false;
}

static int c40_char(unsigned v, char *out)
{
	if (v >= 4 && v <= 13)
		*out = (char)('0' + (v - 4));
	else if (v >= 14 && v <= 39)
		*out = (char)('A' + (v - 14));
	else
		return -EINVAL;
	return 0;
}

/* One 16-bit C40 group holds three characters. */
static int c40_group(unsigned h, char *out, size_t *pos, size_t outsz)
{
	unsigned a, b, c;

	if (h == 0)
		return -EINVAL;
	a = (h - 1) / 1600;
	h -= a * 1600;
	b = (h - 1) / 40;
	h -= b * 40;
	c = h - 1;
	if (*pos + 3 > outsz - 1 || *pos + 3 > RPIBOOT_FACTORY_UUID_MAX)
		return -EINVAL;
	if (c40_char(a, &out[*pos]) || c40_char(b, &out[*pos + 1]) || c40_char(c, &out[*pos + 2]))
		return -EINVAL;
	*pos += 3;
	return 0;
}

int rpiboot_factory_uuid_decode(const char *raw, char *out, size_t outsz)
{
	size_t pos = 0;
	const char *p = raw;

	if (!raw || !out || outsz == 0)
		return -EINVAL;
	out[0] = '\0';
	while (*p) {
		const char *end = strchr(p, '_');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		unsigned long w = 0;

		if (n == 0 || n > 8 || !all_hex(p, n))
			return -EINVAL;
		for (size_t i = 0; i < n; i++)
			w = w * 16 + (unsigned long)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
		if (w == 0)
			break;
		if (c40_group(w & 0xffff, out, &pos, outsz))
			return -EINVAL;
		if ((w >> 16) && c40_group(w >> 16, out, &pos, outsz))
			return -EINVAL;
		if (!end)
			break;
		p = end + 1;
	}
	out[pos] = '\0';
	return pos ? 0 : -EINVAL;
}

void rpiboot_metadata_init(struct rpiboot_metadata *md)
{
	memset(md, 0, sizeof(*md));
}

void rpiboot_metadata_clear(struct rpiboot_metadata *md)
{
	for (size_t i = 0; i < RPIBOOT_MD_KEY_COUNT; i++)
		free(md->known[i]);
	for (size_t i = 0; i < md->n_unknown; i++) {
		free(md->unknown[i].key);
		free(md->unknown[i].value);
	}
	rpiboot_metadata_init(md);
}

const char *rpiboot_md_key_name(enum rpiboot_md_key k)
{
	return (unsigned)k < RPIBOOT_MD_KEY_COUNT ? md_keys[k].name : NULL;
}

static int key_index(const char *key)
{
	for (int i = 0; i < RPIBOOT_MD_KEY_COUNT; i++)
		if (strcmp(md_keys[i].name, key) == 0)
			return i;
	return -1;
}

const char *rpiboot_metadata_get(const struct rpiboot_metadata *md, const char *key)
{
	int k = key_index(key);

	if (k >= 0)
		return md->known[k];
	for (size_t i = 0; i < md->n_unknown; i++)
		if (strcmp(md->unknown[i].key, key) == 0)
			return md->unknown[i].value;
	return NULL;
}

static bool unknown_key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n < 1 || n > RPIBOOT_MD_UNKNOWN_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

static bool unknown_value_ok(const char *v)
{
	size_t n = strlen(v);

	if (n < 1 || n > RPIBOOT_MD_VALUE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] > 0x7e || v[i] == '"' || v[i] == '\\')
			return false;
	return true;
}

static uint32_t hex32(const char *v)
{
	return (uint32_t)strtoul(v, NULL, 16);
}

/* decoded_uuid: FACTORY_UUID given in decoded form (from our own JSON). */
static int md_set(struct rpiboot_metadata *md, const char *key, const char *value,
		  bool decoded_uuid)
{
	int k = key_index(key);
	char *copy;

	if (strlen(value) > RPIBOOT_MD_VALUE_MAX)
		goto refuse;
	if (k == RPIBOOT_MD_FACTORY_UUID && decoded_uuid) {
		size_t n = strlen(value);

		if (n < 1 || n > RPIBOOT_FACTORY_UUID_MAX)
			goto refuse;
		for (size_t i = 0; i < n; i++)
			if (!((value[i] >= '0' && value[i] <= '9') || (value[i] >= 'A' && value[i] <= 'Z')))
				goto refuse;
	} else if (k >= 0) {
		if (!shape_ok(md_keys[k].shape, value))
			goto refuse;
	} else {
		if (!unknown_key_ok(key) || !unknown_value_ok(value))
			goto refuse;
	}

	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	if (k < 0) {
		size_t i;

		for (i = 0; i < md->n_unknown; i++)
			if (strcmp(md->unknown[i].key, key) == 0)
				break;
		if (i == md->n_unknown) {
			if (md->n_unknown == RPIBOOT_MD_UNKNOWN_MAX) {
				free(copy);
				md->refused++;
				return -ENOSPC;
			}
			md->unknown[i].key = strdup(key);
			if (!md->unknown[i].key) {
				free(copy);
				return -ENOMEM;
			}
			md->n_unknown++;
		}
		free(md->unknown[i].value);
		md->unknown[i].value = copy;
		return 0;
	}

	free(md->known[k]);
	md->known[k] = copy;
	switch (k) {
	case RPIBOOT_MD_USER_SERIAL_NUM:
		md->serial = hex32(value);
		md->have_serial = true;
		break;
	case RPIBOOT_MD_USER_BOARDREV:
		md->boardrev = hex32(value);
		md->have_boardrev = true;
		break;
	case RPIBOOT_MD_FACTORY_UUID:
		if (decoded_uuid)
			snprintf(md->factory_uuid, sizeof(md->factory_uuid), "%s", value);
		else
			rpiboot_factory_uuid_decode(value, md->factory_uuid, sizeof(md->factory_uuid));
		break;
	default:
		break;
	}
	return 0;
refuse:
	md->refused++;
	return -EINVAL;
}

int rpiboot_metadata_set(struct rpiboot_metadata *md, const char *key, const char *value)
{
	return md_set(md, key, value, false);
}

int rpiboot_metadata_push(struct rpiboot_metadata *md, const char *name, size_t len)
{
	char key[RPIBOOT_MD_UNKNOWN_KEY_MAX + 1], value[RPIBOOT_MD_VALUE_MAX + 1];
	const char *p, *end = name + len, *star;
	size_t kn, vn;

	if (!name || len < 1 || name[0] != '*') {
		md->refused++;
		return -EINVAL;
	}
	if (memchr(name, '\0', len)) {
		md->refused++;
		return -EINVAL;
	}
	p = name + 1;
	star = memchr(p, '*', (size_t)(end - p));
	if (!star) {
		md->refused++;
		return -ENODATA;
	}
	kn = (size_t)(star - p);
	if (kn == 0 || kn >= sizeof(key)) {
		md->refused++;
		return -EINVAL;
	}
	memcpy(key, p, kn);
	key[kn] = '\0';
	p = star + 1;
	/* Like the reference host: the value is the second '*'-separated token. */
	star = memchr(p, '*', (size_t)(end - p));
	vn = star ? (size_t)(star - p) : (size_t)(end - p);
	if (vn == 0) {
		md->refused++;
		return -ENODATA;
	}
	if (vn >= sizeof(value)) {
		md->refused++;
		return -EINVAL;
	}
	memcpy(value, p, vn);
	value[vn] = '\0';
	return md_set(md, key, value, false);
}

int rpiboot_metadata_to_json(const struct rpiboot_metadata *md, char **out)
{
	struct json_object *o = json_object_new_object();
	int r = 0;

	*out = NULL;
	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < RPIBOOT_MD_KEY_COUNT; i++) {
		const char *v = md->known[i];

		if (!v)
			continue;
		if (i == RPIBOOT_MD_FACTORY_UUID)
			v = md->factory_uuid;
		if (json_object_object_add(o, md_keys[i].name, json_object_new_string(v))) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < md->n_unknown; i++)
		if (json_object_object_add(o, md->unknown[i].key,
					   json_object_new_string(md->unknown[i].value))) {
			r = -ENOMEM;
			goto out;
		}
	*out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY_TAB |
							  JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	if (!*out)
		r = -ENOMEM;
out:
	json_object_put(o);
	return r;
}

int rpiboot_metadata_from_json(struct rpiboot_metadata *md, const char *text, size_t len)
{
	struct json_tokener *tok = NULL;
	struct json_object *o = NULL;
	int r = 0;

	if (!text || len == 0 || len > RPIBOOT_MD_JSON_MAX || memchr(text, '\0', len))
		return -EINVAL;
	tok = json_tokener_new_ex(2); /* an object of strings: nothing deeper */
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object)) {
		r = -EINVAL;
		goto out;
	}
	if (json_object_object_length(o) > RPIBOOT_MD_KEY_COUNT + RPIBOOT_MD_UNKNOWN_MAX) {
		r = -EINVAL;
		goto out;
	}
	json_object_object_foreach(o, key, val) {
		if (!json_object_is_type(val, json_type_string)) {
			r = -EINVAL;
			goto out;
		}
		r = md_set(md, key, json_object_get_string(val), true);
		if (r < 0)
			goto out;
	}
out:
	json_object_put(o);
	json_tokener_free(tok);
	return r;
}
