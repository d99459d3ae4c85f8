#!/bin/bash
# bootstrap_flags: the OTP interlock and the special flags, from a
# configuration file (not the embedded default, which arms itself):
#  - not armed: every Pi 4/5 board fails in bootstrap saying OTP is
#    disarmed, nothing is burned;
#  - a wrong --arm-otp exits 2 and is audited as refused;
#  - --dry-run: the run completes, no key hash burned (pubkey_programmed 0);
#  - the right suffix burns the key hash and is audited;
#  - a persistent skip-eeprom flag skips the EEPROM and stays.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
sim="$ROOT/srv/rpi-sb-provisioner/simulate"
db="$sim/manufacturing.db"
zero_hash=customer_key_hash=0000000000000000000000000000000000000000000000000000000000000000

# The embedded default arms itself, and says so in the audit table.
expect_rc 1 rsb simulate --devices zero2w:1 --until-done --headless --hold after-triage
expect_out 'OTP ARMED \(embedded default'
fp=$(sed -n 's/.*fingerprint \([0-9a-f]\{64\}\)$/\1/p' <<<"$OUT" | head -1)
[ -n "$fp" ] || fail "no key fingerprint shown"
[ "$(sqlite3 "$db" "SELECT count(*) FROM audit WHERE action = 'otp-arm' AND origin = 'cli' AND target = '$fp' AND detail LIKE '%embedded default%'")" = 1 ] \
	|| fail "the implicit arming is not audited: $(sqlite3 "$db" 'SELECT * FROM audit')"
pass "the embedded default's implicit arming is audited"

cp "$sim/provisioner.ini" "$T/secure.ini"
rm -rf "$sim/boards"
otp_clean() {
	for f in "$sim"/boards/*/otp; do
		grep -qx "$zero_hash" "$f" || fail "OTP of $(dirname "$f") was burned: $(grep customer_key_hash "$f")"
	done
}

# Not armed: refused in bootstrap, before any payload is sent.
expect_rc 1 rsb --config "$T/secure.ini" simulate --devices pi5:1,cm4:1 --until-done --headless
expect_out 'OTP disarmed'
expect_out '^board 9-1 +pi5 .* FAIL: bootstrap: OTP is disarmed'
expect_out '^board 9-2 +cm4 .* FAIL: bootstrap: OTP is disarmed'
[ "$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE result = 'failed' AND phase_reached = 'bootstrap' AND error_message LIKE 'OTP is disarmed%--arm-otp%'")" = 2 ] \
	|| fail "the attempt rows do not say OTP is disarmed"
otp_clean
for s16 in $(grep -E '^board ' <<<"$OUT" | awk '{print $4}'); do
	log="$sim/log/${s16:8:8}/bootstrap.log"
	[ -s "$log" ] || fail "no bootstrap log for ${s16:8:8}"
	! grep -q 'boot ROM: sending' "$log" || fail "a payload was sent to ${s16:8:8} while disarmed"
done
pass "disarmed secure-boot fails each board in bootstrap and burns nothing"

# A wrong fingerprint suffix: usage error, audited, nothing runs.
expect_rc 2 rsb --config "$T/secure.ini" simulate --devices pi5:1 --until-done --headless --arm-otp deadbeef
expect_out 'does not match the key fingerprint'
[ "$(sqlite3 "$db" "SELECT count(*) FROM audit WHERE action = 'otp-arm-refused' AND target = '$fp' AND detail LIKE '%deadbeef%'")" = 1 ] \
	|| fail "the refused arming is not audited"
pass "a wrong --arm-otp exits 2 and is audited"

# Dry run: everything but the burn; the run completes.
expect_rc 0 rsb --config "$T/secure.ini" simulate --devices pi5:1,cm4:1 --until-done --headless --dry-run
expect_out '^board 9-1 +pi5 .* PASS$'
expect_out '^board 9-2 +cm4 .* PASS$'
otp_clean
for port in 9-1 9-2; do
	serial=$(grep -E "^board $port " <<<"$OUT" | awk '{print $4}')
	[ "$(sqlite3 "$db" "SELECT pubkey_programmed FROM devices WHERE serial = '$serial'")" = 0 ] \
		|| fail "dry run $port: pubkey_programmed is not 0"
	grep -q 'dry run: the real run would program the key hash' "$sim/log/$serial/bootstrap.log" \
		|| fail "dry run $port: the log does not say what the real run would burn"
done
pi5=$(grep -E '^board 9-1 ' <<<"$OUT" | awk '{print $4}')
grep -q 'dry run: the secure-boot EEPROM image was built and signed .* not flashed' "$sim/log/$pi5/bootstrap.log" \
	|| fail "dry run: the Pi 5 log does not say its secure EEPROM was not flashed"
pass "--dry-run completes with no key hash burned"

# Armed with the right suffix: the key hash is burned, audited.
expect_rc 0 rsb --config "$T/secure.ini" simulate --devices pi5:1,cm4:1 --until-done --headless --arm-otp "${fp: -8}"
expect_out 'OTP ARMED'
expect_out '^board 9-1 +pi5 .* PASS$'
expect_out '^board 9-2 +cm4 .* PASS$'
for f in "$sim"/boards/*/otp; do
	grep -qx "customer_key_hash=$fp" "$f" || fail "OTP of $(dirname "$f"): $(grep customer_key_hash "$f")"
done
[ "$(sqlite3 "$db" "SELECT count(*) FROM devices WHERE pubkey_programmed = 1 AND customer_key_fingerprint = '$fp'")" = 2 ] \
	|| fail "the records do not show the key hash programmed"
[ "$(sqlite3 "$db" "SELECT count(*) FROM audit WHERE action = 'otp-arm' AND target = '$fp' AND detail LIKE '%--arm-otp ${fp: -8}%'")" = 1 ] \
	|| fail "the arming is not audited"
pass "the right --arm-otp suffix burns the key hash, audited"

# A persistent skip-eeprom flag on the (now fused) CM4: skipped, and kept.
cm4=$(grep -E '^board 9-2 ' <<<"$OUT" | awk '{print $4}')
expect_rc 0 rsb --config "$T/secure.ini" flags set "${cm4:8:8}" skip-eeprom
expect_rc 0 rsb --config "$T/secure.ini" simulate --devices pi5:1,cm4:1 --until-done --headless --arm-otp "${fp: -8}"
expect_out '^board 9-1 +pi5 .* PASS$'
expect_out '^board 9-2 +cm4 .* PASS$'
[ "$(grep -c 'special flag skip-eeprom: EEPROM update skipped' "$sim/log/$cm4/bootstrap.log")" = 1 ] \
	|| fail "the CM4 bootstrap log does not say the EEPROM was skipped (once)"
[ -f "$sim/special-skip-eeprom/${cm4:8:8}" ] || fail "the persistent flag was removed"
expect_rc 0 rsb --config "$T/secure.ini" flags list
expect_out "${cm4:8:8} +skip-eeprom +persistent"
pass "a persistent skip-eeprom flag skips the EEPROM and stays"
