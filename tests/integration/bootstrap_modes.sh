#!/bin/bash
# bootstrap_modes: a Pi 5, a CM4 and a Pi 4B go from USB boot mode to done
# in fde-only and in naked mode (the Pi 4B through skip-eeprom: it cannot
# come back to USB boot mode after its EEPROM update on its own) (configuration files of our own, derived from
# the embedded default), with no key hash burned into OTP: the records say
# pubkey_programmed = 0 and a later secure-boot run that is not armed is
# refused before anything is burned. [station] hold from the configuration
# stops the boards where it says.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
sim="$ROOT/srv/rpi-sb-provisioner/simulate"
db="$sim/manufacturing.db"
zero_hash=customer_key_hash=0000000000000000000000000000000000000000000000000000000000000000

# The embedded default is built by a first run; [station] hold =
# after-bootstrap in a configuration copied from it stops the board there.
expect_rc 1 rsb simulate --devices zero2w:1 --until-done --headless --hold after-triage
expect_out 'FAIL: held as configured'
sed -e 's/^\[station\]$/[station]\nhold = after-bootstrap/' "$sim/provisioner.ini" > "$T/hold.ini"
rm -rf "$sim/boards"
expect_rc 1 rsb --config "$T/hold.ini" simulate --devices zero2w:1 --until-done --headless
expect_out '^board 9-1 +zero2w .* FAIL: held as configured'
grep -q 'held after bootstrap as configured' "$sim"/log/*/bootstrap.log || fail "no hold in the bootstrap log"
pass "[station] hold from the configuration is honoured"

otp_clean() { # every board's OTP still has no key hash
	for f in "$sim"/boards/*/otp; do
		grep -qx "$zero_hash" "$f" || fail "OTP of $(dirname "$f") holds a key hash: $(grep customer_key_hash "$f")"
	done
}

flag_dir="$sim/special-skip-eeprom"
for mode in fde-only naked; do
	rm -rf "$sim/boards"
	sed -e "s/^mode = secure-boot\$/mode = $mode/" "$sim/provisioner.ini" > "$T/$mode.ini"
	grep -q "^mode = $mode\$" "$T/$mode.ini" || fail "could not derive the $mode configuration"
	# A Pi 5 and a CM4 come back in USB boot mode after their EEPROM update
	# by themselves (set_reboot_order; the jig's nRPIBOOT) and go on to done.
	# A Pi 4B does not (no rpiboot GPIO burnt outside secure-boot): it fails
	# in bootstrap saying so, and goes to done with skip-eeprom.
	expect_rc 1 rsb --config "$T/$mode.ini" simulate --devices pi4:1,pi5:1,cm4:1 --until-done --headless
	expect_out 'OTP disarmed'
	expect_out '^board 9-2 +pi5 +[0-9a-f]{16} PASS$'
	expect_out '^board 9-3 +cm4 +[0-9a-f]{16} PASS$'
	expect_out '^board 9-1 +pi4 +[0-9a-f]{16} FAIL: bootstrap: after its EEPROM update the Pi 4 did not come back in USB boot mode'
	pi4=$(grep -E '^board 9-1 ' <<<"$OUT" | awk '{print $4}')
	row=$(sqlite3 "$db" "SELECT phase_reached || '|' || error_message FROM attempts WHERE usb_port = '9-1' ORDER BY id DESC LIMIT 1")
	case "$row" in bootstrap\|after\ its\ EEPROM\ update*skip-eeprom*) ;; *) fail "$mode: Pi 4B attempt row: $row" ;; esac
	expect_rc 0 rsb --config "$T/$mode.ini" flags set "${pi4:8:8}" skip-eeprom --once
	[ -f "$flag_dir/${pi4:8:8}" ] || fail "$mode: no skip-eeprom flag file for ${pi4:8:8}"
	expect_rc 0 rsb --config "$T/$mode.ini" simulate --devices pi4:1 --until-done --headless
	expect_out "^board 9-1 +pi4 +$pi4 PASS\$"
	grep -q 'special flag skip-eeprom: EEPROM update skipped' "$sim/log/$pi4/bootstrap.log" \
		|| fail "$mode: the bootstrap log does not say the EEPROM was skipped"
	[ ! -e "$flag_dir/${pi4:8:8}" ] || fail "$mode: the once flag survived a successful bootstrap"
	for port in 9-1 9-2 9-3; do
		serial=$(sqlite3 "$db" "SELECT serial FROM attempts WHERE usb_port = '$port' AND result = 'ok' ORDER BY id DESC LIMIT 1")
		row=$(sqlite3 "$db" "SELECT coalesce(pubkey_programmed,'NULL') FROM devices WHERE serial = '$serial'")
		case "$row" in 0|NULL) ;; *) fail "$mode $port ($serial): pubkey_programmed = '$row'" ;; esac
		# secure means secure boot in force: never for fde-only or naked
		# (the gadget's own `secure` says yes for fde-only: device key set).
		row=$(sqlite3 "$db" "SELECT coalesce(secure,'NULL') FROM devices WHERE serial = '$serial'")
		[ "$row" = 0 ] || fail "$mode $port ($serial): secure = '$row'"
		[ "$(sqlite3 "$db" "SELECT mode FROM attempts WHERE serial = '$serial' AND result = 'ok' ORDER BY id DESC LIMIT 1")" = "$mode" ] \
			|| fail "$mode $port: the ok attempt does not say mode $mode"
		grep -q 'EEPROM firmware' "$sim/log/$serial/bootstrap.log" || fail "$mode $port: no EEPROM update in the log"
	done
	otp_clean
	pass "$mode: Pi 5, CM4 and Pi 4B (skip-eeprom once) provisioned from boot mode, nothing burned into OTP"
	# A Zero 2 W (no secure boot at all) is recorded secure = 0 too.
	expect_rc 0 rsb --config "$T/$mode.ini" simulate --devices zero2w:1 --until-done --headless
	z2=$(grep -E '^board 9-1 ' <<<"$OUT" | awk '{print $4}')
	row=$(sqlite3 "$db" "SELECT coalesce(secure,'NULL') FROM devices WHERE serial = '$z2'")
	[ "$row" = 0 ] || fail "$mode Zero 2 W ($z2): secure = '$row'"
	pass "$mode: secure = 0 for the Pi 5, CM4, Pi 4B and Zero 2 W"
done

# The same boards, secure-boot from a configuration file, not armed: refused
# in bootstrap, before anything is sent, and still nothing burned.
cp "$sim/provisioner.ini" "$T/secure.ini"
expect_rc 1 rsb --config "$T/secure.ini" simulate --devices pi4:1,pi5:1,cm4:1 --until-done --headless
expect_out '^board 9-1 +pi4 .* FAIL: bootstrap: OTP is disarmed'
expect_out '^board 9-2 +pi5 .* FAIL: bootstrap: OTP is disarmed'
expect_out '^board 9-3 +cm4 .* FAIL: bootstrap: OTP is disarmed'
otp_clean
pass "the naked boards, secure-boot disarmed: refused, OTP untouched"
