#!/bin/bash
# config_check: `config check` reports every problem with file, line, key and the
# allowed values (exit 2), and prints a summary for a valid file (exit 0).
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/config_lib.sh"

GOLD=$(gold_image 48)
KEY=$(test_key)
CFG="$T/cfg.ini"

# write_cfg LINES...: one argument per line of $CFG
write_cfg() { printf '%s\n' "$@" >"$CFG"; }
check() { expect_rc "$1" "$PROGRAM" --root "$ROOT" --config "$CFG" config check; }

base=( "[station]" "mode = secure-boot" "family = 5" "[image]" "gold = $GOLD" "storage = emmc"
       "[key]" "pem = $KEY" )

# valid: exit 0 and a one-screen summary
write_cfg "${base[@]}"
check 0
out_has "cfg.ini: valid"
out_has "mode secure-boot, family 5"
out_has "boot FAT32 .* root ext4"
out_has "storage +emmc, cipher aes-xts-plain64"
out_has "key +PEM private key $KEY"
out_has "OTP +jtag_lock no, eeprom_write_protect no, rpiboot_gpio \(unset\)"
out_has "database +$ROOT/srv/rpi-sb-provisioner/manufacturing.db"
out_has "USB ports +all ports"
[ "$(wc -l <<<"$OUT")" -le 24 ] || fail "summary longer than a screen"
pass "valid configuration"

# --config after `check` works too
expect_rc 0 "$PROGRAM" --root "$ROOT" config check --config "$CFG"
pass "--config after check"

# unknown key
write_cfg "${base[@]}" "colour = blue"
check 2
out_has "cfg.ini:9: key 'key.colour': unknown key in \[key\]; allowed: pem\|signer\|public"
pass "unknown key"

# bad enum value
write_cfg "[station]" "mode = secureboot" "family = 5" "${base[@]:3}"
check 2
out_has "cfg.ini:2: key 'station.mode': 'secureboot': not one of the allowed values; allowed: secure-boot\|fde-only\|naked"
pass "bad enum value"

# missing key file
write_cfg "${base[@]:0:7}" "pem = $T/nokey.pem"
check 2
out_has "cfg.ini:8: key 'key.pem': key file $T/nokey.pem: does not exist.*; allowed: a readable file"
pass "missing key file"

# secure-boot on Zero 2 W
write_cfg "[station]" "mode = secure-boot" "family = 2W" "${base[@]:3}"
check 2
out_has "cfg.ini:2: key 'station.mode': Zero 2 W boards cannot use secure-boot.*; allowed: fde-only\|naked"
pass "secure-boot on 2W"

# the gold image: missing, GPT, compressed, truncated
gold_case() { # NAME IMAGE PATTERN
	write_cfg "${base[@]:0:4}" "gold = $2" "${base[@]:5}"
	check 2
	out_has "cfg.ini:5: key 'image.gold': gold image $2: $3.*; allowed: an uncompressed MBR disk image"
	pass "gold image: $1"
}
gold_case missing "$T/none.img" "does not exist"
truncate -s 8M "$T/gpt.img"
printf 'label: gpt\nstart=2048, size=8192, type=linux\n' | sfdisk --quiet "$T/gpt.img" >/dev/null
gold_case GPT "$T/gpt.img" "this is a GPT disk image"
# (the first MiB is enough: the check reads the magic, and compressing 48 MiB is slow)
head -c 1048576 "$GOLD" | zstd -q -1 >"$T/gold.img.zst"
gold_case zstd "$T/gold.img.zst" "this is a zstd-compressed file"
head -c 1048576 "$GOLD" | xz -0 -T1 >"$T/gold.img.xz"
gold_case xz "$T/gold.img.xz" "this is a xz-compressed file"
head -c $((40 * 1024 * 1024)) "$GOLD" >"$T/short.img"
gold_case truncated "$T/short.img" "the image is truncated: partition 2 ends at byte [0-9]+ but the file has only 41943040 bytes"

# several problems: all of them at once, then a count
write_cfg "[station]" "mode = fast" "[timeouts]" "triage = 1" "[image]" "storage = tape"
check 2
out_has "cfg.ini:2: key 'station.mode'"
out_has "cfg.ini:4: key 'timeouts.triage': '1': out of range; allowed: 5\.\.600"
out_has "cfg.ini:6: key 'image.storage'.*; allowed: sd\|emmc\|nvme"
out_has "cfg.ini: key 'image.gold': required but not set"
out_has "cfg.ini: [0-9]+ problems; fix them"
pass "every problem at once"

# a missing file is a problem, not a crash
expect_rc 2 "$PROGRAM" --root "$ROOT" config check
out_has "$ROOT/etc/rpi-sb-provisioner/provisioner.ini: file not found"
pass "missing configuration file"

# an invalid allow-list line is reported with its file and line
mkdir -p "$ROOT/etc/rpi-sb-provisioner/usb-ports.d"
printf '1-1.2\nport 3\n' >"$ROOT/etc/rpi-sb-provisioner/usb-ports.d/bench.conf"
write_cfg "${base[@]}"
check 2
out_has "usb-ports.d/bench.conf:2: 'port 3' is not a USB port path"
printf '1-1.2\n1-1.[34]\n' >"$ROOT/etc/rpi-sb-provisioner/usb-ports.d/bench.conf"
check 0
out_has "USB ports +2 rules from 1 file"
pass "allow-list problems and summary"
