#!/bin/bash
# simulate_e2e: the real station against four virtual boards of mixed models
# (Pi 5 x2, Pi 4, Zero 2 W) on the embedded default (secure-boot, OTP armed
# for virtual boards only; fde-only on the Zero 2 W). Every board must pass
# the virtual first boot, with its records and logs written. Then a fault
# injected into one board fails that board alone, with phase and reason.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"

expect_rc 0 rsb simulate --until-done --headless
expect_out '^board 9-1 +pi5 +[0-9a-f]{16} PASS$'
expect_out '^board 9-2 +pi5 +[0-9a-f]{16} PASS$'
expect_out '^board 9-3 +pi4 +[0-9a-f]{16} PASS$'
expect_out '^board 9-4 +zero2w +[0-9a-f]{16} PASS$'
expect_out '4 of 4 boards provisioned and passed the virtual first boot'
pass "four mixed boards provisioned and first-booted"

sim="$ROOT/srv/rpi-sb-provisioner/simulate"
db="$sim/manufacturing.db"
[ "$(sqlite3 "$db" 'SELECT count(*) FROM devices')" = 4 ] || fail "expected 4 device rows"
[ "$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE result = 'ok' AND bootstrap_ms IS NOT NULL AND provision_ms IS NOT NULL AND verify_ms IS NOT NULL")" = 4 ] \
	|| fail "expected 4 ok attempts with phase timings"
[ "$(sqlite3 "$db" 'SELECT count(*) FROM rpi_sb_provisioner WHERE secure = 1')" -ge 0 ] || fail "view"
[ "$(sqlite3 "$db" "SELECT count(*) FROM devices WHERE pubkey_programmed = 1")" = 3 ] \
	|| fail "the three Pi 4/5 boards must have their key hash programmed"
# Each attempt names its board's own mode, the image and (secure-boot only) the key.
[ "$(sqlite3 "$db" "SELECT mode || '|' || (key_fingerprint IS NULL) FROM attempts WHERE usb_port = '9-4' AND result = 'ok'")" = "fde-only|1" ] \
	|| fail "the Zero 2 W's attempt does not record fde-only without a key"
[ "$(sqlite3 "$db" "SELECT count(*) FROM attempts a JOIN devices d ON d.serial = a.serial WHERE a.result = 'ok' AND a.image_sha256 = d.os_image_sha256")" = 4 ] \
	|| fail "ok attempts do not carry the image hash of their devices row"
[ "$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE result = 'ok' AND mode = 'secure-boot' AND length(key_fingerprint) = 64")" = 3 ] \
	|| fail "secure-boot attempts do not carry the key fingerprint"
[ "$(sqlite3 "$db" "SELECT boardname FROM devices WHERE usb_port = '9-4'")" = "Zero 2 W" ] \
	|| fail "Zero 2 W board name"
[ "$(sqlite3 "$db" "SELECT count(*) FROM events WHERE state IN ('SB-PROVISIONER-FINISHED','FDE-PROVISIONER-FINISHED')")" = 4 ] \
	|| fail "finished events"
for serial in $(sqlite3 "$db" 'SELECT serial FROM devices'); do
	for f in bootstrap triage provisioner; do
		[ -s "$sim/log/$serial/$f.log" ] || fail "missing $f.log for $serial"
	done
	grep -q 'virtual first boot: pass' "$sim/log/$serial/provisioner.log" || fail "no first boot in $serial's log"
done
pass "records, events and logs complete"

# A FAIL from the gadget on cryptinit fails board 3 alone; the Pi 5s on fresh
# state dirs carry on.
rm -rf "$sim/boards"
expect_rc 1 rsb simulate --until-done --headless --devices pi5:1,pi4:1,pi5:1 --fault '2=fail:cmd=oem cryptinit'
expect_out '^board 9-1 +pi5 .* PASS$'
expect_out '^board 9-2 +pi4 .* FAIL: provision: oem cryptinit'
expect_out '^board 9-3 +pi5 .* PASS$'
row=$(sqlite3 "$db" "SELECT phase_reached || '|' || error_message FROM attempts WHERE usb_port = '9-2' ORDER BY id DESC LIMIT 1")
case "$row" in provision\|oem\ cryptinit*) ;; *) fail "attempt row of the failed board: $row" ;; esac
pass "an injected fault fails only its board, with phase and reason recorded"
