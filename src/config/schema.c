/* schema: the one table of every configuration setting, and its renderings.
 *
 * Everything about a setting (section, key, type, allowed values or range,
 * default, help, the peer's variable, secret, irreversible) lives in one row
 * here; the loader, validator, `config dump`, `config schema`, the importer and
 * the generated docs read this table and nothing else. Read-only data: any
 * thread may use it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"

#define ENUM(v) CONFIG_ENUM, v, 0, 0
#define PATH CONFIG_PATH, NULL, 0, 0
#define STR CONFIG_STRING, NULL, 0, 0
#define BOOL CONFIG_BOOL, "true|false", 0, 0
#define INT(lo, hi) CONFIG_INT, NULL, lo, hi
#define HEX64 CONFIG_HEX64, NULL, 0, 0

const struct config_setting config_schema[] = {
	/* section, key, type..., default, help, peer variable, peer style, overrides, secret, irreversible, required */
	{ "station", "id", STR, "station-1",
	  "name of this station, written into every manufacturing record",
	  NULL, 0, NULL, false, false, false },
	{ "station", "mode", ENUM("secure-boot|fde-only|naked"), "secure-boot",
	  "secure-boot: signed boot + LUKS2 root; fde-only: LUKS2, unsigned; naked: plain image",
	  "PROVISIONING_STYLE", CONFIG_PEER_VERBATIM, NULL, false, false, false },
	{ "station", "family", ENUM("auto|4|5|2W"), "auto",
	  "board family this line provisions; auto takes it from each board's chip",
	  "RPI_DEVICE_FAMILY", CONFIG_PEER_VERBATIM, NULL, false, false, false },
	{ "station", "hold", ENUM("none|after-bootstrap|after-triage"), "none",
	  "stop boards in fastboot after this phase (bench testing)",
	  NULL, 0, NULL, false, false, false },

	{ "image", "gold", PATH, NULL,
	  "uncompressed OS image: MBR, FAT boot partition, ext4 root partition",
	  "GOLD_MASTER_OS_FILE", CONFIG_PEER_VERBATIM, NULL, false, false, true },
	{ "image", "storage", ENUM("sd|emmc|nvme"), NULL,
	  "storage device the image is written to",
	  "RPI_DEVICE_STORAGE_TYPE", CONFIG_PEER_VERBATIM, NULL, false, false, true },
	{ "image", "cipher", ENUM("aes-xts-plain64|xchacha12,aes-adiantum-plain64"), "aes-xts-plain64",
	  "LUKS2 cipher (Adiantum is faster on boards without AES instructions: Pi 4, Zero 2 W)",
	  "RPI_DEVICE_STORAGE_CIPHER", CONFIG_PEER_VERBATIM, NULL, false, false, false },

	{ "key", "pem", PATH, NULL,
	  "customer RSA-2048 private key (PEM) that signs the EEPROM and boot image",
	  "CUSTOMER_KEY_FILE_PEM", CONFIG_PEER_VERBATIM, NULL, true, false, false },
	{ "key", "signer", STR, NULL,
	  "external signing command (usbboot HSM wrapper contract) used instead of pem",
	  NULL, 0, NULL, true, false, false },
	{ "key", "public", PATH, NULL,
	  "public key (PEM) matching signer; required with signer",
	  NULL, 0, NULL, false, false, false },

	{ "bootloader", "config", PATH, NULL,
	  "EEPROM bootloader config (not config.txt); unset: built-in secure or plain default",
	  "RPI_DEVICE_BOOTLOADER_CONFIG_FILE", CONFIG_PEER_VERBATIM, NULL, false, false, false },
	{ "bootloader", "firmware", PATH, NULL,
	  "explicit pieeprom-*.bin; unset: newest in firmware_dir",
	  "RPI_DEVICE_FIRMWARE_FILE", CONFIG_PEER_VERBATIM, NULL, false, false, false },
	{ "bootloader", "firmware_dir", PATH, "/lib/firmware/raspberrypi/bootloader-%chip%/latest",
	  "where to look for the newest firmware; %chip% is 2711 or 2712 (package rpi-eeprom)",
	  NULL, 0, NULL, false, false, false },
	{ "bootloader", "channel", ENUM("default|latest|beta|stable|critical"), "latest",
	  "rpi-eeprom release channel firmware_dir points into",
	  NULL, 0, NULL, false, false, false },
	{ "bootloader", "firmware_sha256", HEX64, NULL,
	  "pin: refuse any firmware file whose SHA-256 differs",
	  NULL, 0, NULL, false, false, false },
	{ "bootloader", "boot_order_match_storage", BOOL, "true",
	  "put the configured storage first in the bootloader's BOOT_ORDER",
	  "RPI_DEVICE_BOOT_ORDER_MATCH_STORAGE", CONFIG_PEER_OFF_WORDS, NULL, false, false, false },

	{ "otp", "jtag_lock", BOOL, "false",
	  "lock JTAG in OTP (permanent)",
	  "RPI_DEVICE_LOCK_JTAG", CONFIG_PEER_NONEMPTY_TRUE, NULL, false, true, false },
	{ "otp", "eeprom_write_protect", BOOL, "false",
	  "honour the EEPROM write-protect pin, set in OTP (permanent)",
	  "RPI_DEVICE_EEPROM_WP_SET", CONFIG_PEER_NONEMPTY_TRUE, NULL, false, true, false },
	{ "otp", "rpiboot_gpio", ENUM("2|4|5|6|7|8"), NULL,
	  "Pi 4 family: GPIO that selects rpiboot once secured (OTP, permanent; 8 recommended)",
	  "RPI_DEVICE_RPIBOOT_GPIO", CONFIG_PEER_VERBATIM, NULL, false, true, false },

	{ "paths", "key_retrieval_dir", PATH, NULL,
	  "directory that receives <serial>.pub of each board's device key",
	  "RPI_DEVICE_RETRIEVE_KEYPAIR", CONFIG_PEER_VERBATIM, NULL, false, false, false },
	{ "paths", "cache_dir", PATH, "/srv/rpi-sb-provisioner/cache",
	  "content-addressed cache of prepared images",
	  "RPI_SB_WORKDIR", CONFIG_PEER_VERBATIM, NULL, false, false, false },
	{ "paths", "database", PATH, "/srv/rpi-sb-provisioner/manufacturing.db",
	  "manufacturing database (SQLite, local file system only)",
	  "RPI_SB_PROVISIONER_MANUFACTURING_DB", CONFIG_PEER_VERBATIM, NULL, false, false, false },
	{ "paths", "log_dir", PATH, "/var/log/rpi-sb-provisioner",
	  "per-board logs <serial>/{bootstrap,triage,provisioner}.log",
	  NULL, 0, NULL, false, false, false },
	{ "paths", "hooks_dir", PATH, "/etc/rpi-sb-provisioner/scripts",
	  "hook scripts <provisioner>-<stage>.sh",
	  NULL, 0, NULL, false, false, false },
	{ "paths", "flags_dir", PATH, "/etc/rpi-sb-provisioner",
	  "holds special-skip-eeprom/ and special-reprovision-device/",
	  NULL, 0, NULL, false, false, false },
	{ "paths", "usb_ports_vendor_dir", PATH, "/usr/share/rpi-sb-provisioner/usb-ports.d",
	  "USB port allow-list drop-ins shipped by packages",
	  NULL, 0, NULL, false, false, false },
	{ "paths", "usb_ports_dir", PATH, "/etc/rpi-sb-provisioner/usb-ports.d",
	  "USB port allow-list drop-ins of the administrator (mask same-name vendor files)",
	  NULL, 0, NULL, false, false, false },
	{ "paths", "payload_dir", PATH, "/usr/share/rpiboot",
	  "usbboot payloads (bootfiles.bin etc.)",
	  NULL, 0, NULL, false, false, false },
	{ "paths", "gadget_image", PATH, "/var/lib/rpi-sb-provisioner/fastboot-gadget.img",
	  "fastboot gadget boot image sent to boards in bootstrap",
	  NULL, 0, NULL, false, false, false },
	{ "paths", "cryptroot_initramfs", PATH, "/var/lib/rpi-sb-provisioner/cryptroot_initramfs",
	  "pre-boot authentication initramfs put into the boot image (secure-boot, fde-only)",
	  NULL, 0, NULL, false, false, false },

	{ "timeouts", "bootstrap", INT(10, 3600), "120",
	  "seconds for the bootstrap phase (rpiboot, EEPROM, OTP)",
	  NULL, 0, NULL, false, false, false },
	{ "timeouts", "triage", INT(5, 600), "60",
	  "seconds for triage (find the fastboot gadget, read identity)",
	  NULL, 0, NULL, false, false, false },
	{ "timeouts", "provision", INT(60, 86400), "1800",
	  "seconds for writing the image",
	  NULL, 0, NULL, false, false, false },
	{ "timeouts", "verify", INT(10, 86400), "600",
	  "seconds for verifying what was written",
	  NULL, 0, NULL, false, false, false },
	{ "timeouts", "hook", INT(1, 3600), "60",
	  "seconds any one hook script may run",
	  NULL, 0, NULL, false, false, false },

	/* [family.4] [family.5] [family.2W]: type and allowed values come from the overridden row. */
	{ "family", "mode", ENUM("secure-boot|fde-only|naked"), NULL,
	  "mode for boards of this family", NULL, 0, "station.mode", false, false, false },
	{ "family", "storage", ENUM("sd|emmc|nvme"), NULL,
	  "storage for boards of this family", NULL, 0, "image.storage", false, false, false },
	{ "family", "gold", PATH, NULL,
	  "gold image for boards of this family", NULL, 0, "image.gold", false, false, false },
	{ "family", "bootloader_config", PATH, NULL,
	  "EEPROM bootloader config for boards of this family", NULL, 0, "bootloader.config",
	  false, false, false },
};

const size_t config_schema_len = sizeof(config_schema) / sizeof(config_schema[0]);

/* What cross_checks() in config.c enforces, for the docs and help views; keep the
 * two in step (tests/unit/test_config.c exercises each rule). */
const char *const config_rules[] = {
	"The families in use are the one in `[station] family`, or all of 4, 5 and 2W when it is "
	"`auto`. A board's mode, storage, gold image and bootloader config are its `[family.X]` "
	"value when set, else the main one.",
	"`image.gold` and `image.storage` must have a value for every family in use.",
	"The gold image must exist and be an uncompressed MBR disk image whose partition 1 is FAT "
	"(type 0x0c, 0x0b or 0x0e, with a FAT boot sector) and partition 2 is ext4 (type 0x83, ext "
	"superblock magic), both wholly inside the file. GPT images, compressed files (gzip, xz, "
	"zstd, bzip2, zip) and truncated copies are refused with the reason.",
	"secure-boot needs a key: `[key] pem`, or `[key] signer` with `[key] public` (not both pem "
	"and signer). Key files must exist and be readable.",
	"Zero 2 W (family 2W) cannot use secure-boot: an error when chosen explicitly (`family = "
	"2W` or `[family.2W] mode`); with `family = auto` a warning, and such boards are refused "
	"unless `[family.2W] mode` says fde-only or naked.",
	"Pi 4 family secure-boot needs `[otp] rpiboot_gpio`: an error with `family = 4` or "
	"`[family.4] mode = secure-boot`; with `family = auto` a warning, and Pi 4 boards are "
	"refused until it is set.",
	"`[otp]` jtag_lock and eeprom_write_protect only act in secure-boot mode (a warning "
	"otherwise).",
	"Files named in `[bootloader]` and `[family.X] bootloader_config` must exist and be readable.",
	"Raspberry Pi's payloads must be where `[bootloader] firmware_dir` (recovery.bin per chip in "
	"use; package rpi-eeprom), `[paths] payload_dir` (mass-storage-gadget64/bootfiles.bin; "
	"package rpiboot), `[paths] gadget_image` (and fastboot-gadget.2710-bootfiles-bin beside it "
	"for Zero 2 W) and `[paths] cryptroot_initramfs` (encrypted modes) say; each missing one is "
	"a warning naming the package that installs it.",
};
const size_t config_rules_len = sizeof(config_rules) / sizeof(config_rules[0]);

const char *const config_families[] = { "4", "5", "2W" };
const size_t config_families_len = sizeof(config_families) / sizeof(config_families[0]);

const struct config_setting *config_setting_find(const char *section, const char *key)
{
	const char *sec = section;

	if (strcmp(section, "family") == 0)
		return NULL; /* only as [family.X] */
	if (strncmp(section, "family.", 7) == 0) {
		bool known = false;

		for (size_t i = 0; i < config_families_len; i++)
			known |= strcmp(section + 7, config_families[i]) == 0;
		if (!known)
			return NULL;
		sec = "family";
	}
	for (size_t i = 0; i < config_schema_len; i++)
		if (strcmp(config_schema[i].section, sec) == 0 && strcmp(config_schema[i].key, key) == 0)
			return &config_schema[i];
	return NULL;
}

static const char *type_name(const struct config_setting *s)
{
	switch (s->type) {
	case CONFIG_STRING: return "string";
	case CONFIG_PATH: return "path";
	case CONFIG_ENUM: return "enum";
	case CONFIG_BOOL: return "bool";
	case CONFIG_INT: return "integer";
	case CONFIG_HEX64: return "hex64";
	}
	return "?";
}

/* Allowed values as one human string ("a|b", "10..3600", "64 hex digits", ""). */
static void allowed_text(const struct config_setting *s, char *buf, size_t len)
{
	switch (s->type) {
	case CONFIG_ENUM:
	case CONFIG_BOOL:
		snprintf(buf, len, "%s", s->allowed);
		break;
	case CONFIG_INT:
		snprintf(buf, len, "%ld..%ld", s->min, s->max);
		break;
	case CONFIG_HEX64:
		snprintf(buf, len, "64 hex digits");
		break;
	case CONFIG_PATH:
		snprintf(buf, len, "file path");
		break;
	case CONFIG_STRING:
		snprintf(buf, len, "text");
		break;
	}
}

static const char *section_title(const char *section)
{
	static const struct { const char *section, *title; } titles[] = {
		{ "station", "What this station does" },
		{ "image", "The OS image and where it goes" },
		{ "key", "The customer signing key (secure-boot)" },
		{ "bootloader", "The EEPROM bootloader" },
		{ "otp", "One-time-programmable settings: PERMANENT on every board" },
		{ "paths", "Where the station keeps its files" },
		{ "timeouts", "Per-phase time limits, in seconds" },
		{ "family", "Per-family overrides: [family.4] [family.5] [family.2W]" },
	};

	for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++)
		if (strcmp(titles[i].section, section) == 0)
			return titles[i].title;
	return "";
}

/* Markdown table cells must not contain a bare '|'. */
static void md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else
			fputc(*s, f);
	}
}

int config_schema_markdown(FILE *f)
{
	const char *prev = "";
	char allowed[128];

	fputs("<!-- Generated by `rpi-sb-provisioner config schema --markdown` from the schema\n"
	      "     table in src/config/schema.c; edit that table, then regenerate. A test\n"
	      "     (tests/integration/config_schema.sh) fails when this file drifts. -->\n"
	      "# Configuration reference\n\n"
	      "The station reads one INI file, by default `/etc/rpi-sb-provisioner/provisioner.ini`\n"
	      "(`--config FILE` to use another; `--root DIR` relocates every default path below).\n"
	      "Lines are `key = value` under a `[section]`; `#` or `;` start a comment line, and\n"
	      "` ;` (space, semicolon) starts a comment after a value (` #` there is an error, as\n"
	      "it would silently become part of the value). An unknown section or key is an\n"
	      "error, never ignored; so is a setting given twice. A relative path is taken\n"
	      "relative to the directory of the configuration file.\n\n"
	      "Check a file with `rpi-sb-provisioner config check`, see the effective values and\n"
	      "where each came from with `config dump`, and convert the peer's\n"
	      "`/etc/rpi-sb-provisioner/config` with `config import FILE`.\n\n"
	      "Legend: **secret** values print as `(set)`; **OTP** settings are burned into the\n"
	      "board and can never be undone; **required** settings have no usable default.\n", f);
	for (size_t i = 0; i < config_schema_len; i++) {
		const struct config_setting *s = &config_schema[i];

		if (strcmp(prev, s->section) != 0) {
			if (strcmp(s->section, "family") == 0)
				fputs("\n## [family.4] [family.5] [family.2W]\n\n"
				      "Optional per-family overrides, for a line that takes boards of several\n"
				      "families. A board uses its family's value when set, else the main one.\n", f);
			else
				fprintf(f, "\n## [%s]\n\n%s.\n", s->section, section_title(s->section));
			fputs("\n| key | type | allowed | default | peer variable | description |\n"
			      "|---|---|---|---|---|---|\n", f);
			prev = s->section;
		}
		allowed_text(s, allowed, sizeof(allowed));
		fprintf(f, "| `%s` | %s | ", s->key, type_name(s));
		md_cell(f, allowed);
		fputs(" | ", f);
		if (s->def)
			fprintf(f, "`%s`", s->def);
		else
			fputs(s->overrides ? "(main value)" : "(none)", f);
		fprintf(f, " | %s | ", s->peer ? s->peer : "");
		md_cell(f, s->help);
		if (s->overrides)
			fprintf(f, "; overrides `%s`", s->overrides);
		if (s->required)
			fputs(" **required**", f);
		if (s->secret)
			fputs(" **secret**", f);
		if (s->irreversible)
			fputs(" **OTP**", f);
		fputs(" |\n", f);
	}
	fputs("\n## Rules across settings\n\n`config check` also applies these rules (and reports every broken one):\n\n", f);
	for (size_t i = 0; i < config_rules_len; i++)
		fprintf(f, "- %s\n", config_rules[i]);
	fputs("\n## For contributors\n\n"
	      "Every setting is one row of `config_schema[]` in `src/config/schema.c` (type, allowed\n"
	      "values or range, default, help, peer variable, secret, OTP); the loader, validator,\n"
	      "`config dump`, `config import` and this page all read that table. To add a setting,\n"
	      "add a row, read it with `config_get()` / `config_get_int()` / `config_get_bool()` /\n"
	      "`config_get_for_family()` (`src/config/config.h`), and regenerate this page and\n"
	      "`conf/provisioner.ini.example` with `config schema --markdown` and `--ini`.\n"
	      "`goldimage_check()` (`src/config/goldimage.h`) is the image check, reusable before\n"
	      "anything is erased. `scripts/make-gold-image.sh OUT.img [SIZE_MB]` builds a small,\n"
	      "deterministic pi-gen style image without root for tests and rehearsals. The port\n"
	      "allow-list is described in `doc/allowlist.md`.\n", f);
	return ferror(f) ? -EIO : 0;
}

int config_schema_ini(FILE *f)
{
	const char *prev = "";
	char allowed[128];

	fputs("# provisioner.ini: rpi-sb-provisioner station configuration (example).\n"
	      "# Generated by `rpi-sb-provisioner config schema --ini`; every setting is listed\n"
	      "# with its default (commented out). Copy to /etc/rpi-sb-provisioner/provisioner.ini,\n"
	      "# set at least [image] gold and storage and a [key], then run\n"
	      "# `rpi-sb-provisioner config check`. See doc/configuration.md.\n", f);
	for (size_t i = 0; i < config_schema_len; i++) {
		const struct config_setting *s = &config_schema[i];

		if (strcmp(prev, s->section) != 0) {
			if (strcmp(s->section, "family") == 0)
				fputs("\n# Per-family overrides: a board uses its family's value when set.\n"
				      "# Copy this section as [family.4], [family.5] or [family.2W].\n"
				      "#[family.4]\n", f);
			else
				fprintf(f, "\n# %s.\n[%s]\n", section_title(s->section), s->section);
			prev = s->section;
		}
		allowed_text(s, allowed, sizeof(allowed));
		fprintf(f, "# %s%s%s%s\n#   %s: %s\n", s->help,
			s->required ? " (required)" : "", s->secret ? " (secret)" : "",
			s->irreversible ? " (PERMANENT: OTP)" : "", type_name(s), allowed);
		if (s->peer)
			fprintf(f, "#   peer variable: %s\n", s->peer);
		fprintf(f, "#%s =%s%s\n", s->key, s->def ? " " : "", s->def ? s->def : "");
	}
	return ferror(f) ? -EIO : 0;
}
