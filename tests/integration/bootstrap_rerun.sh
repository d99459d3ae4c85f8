#!/bin/bash
# bootstrap_rerun: the embedded default run twice on the same root passes
# 4/4 both times (the fused Pi 5s are reprovisioned with a counter-signed
# recovery because the records show them secured with this key); the
# bootstrap payloads come from the content-addressed cache on the second run,
# a changed bootloader config gets a new entry, `cache clear` empties it and
# is audited; a stall and an unplug mid-recovery fail board 1 alone in
# bootstrap with a clear reason.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
sim="$ROOT/srv/rpi-sb-provisioner/simulate"
db="$sim/manufacturing.db"
cache="$sim/cache"

for run in 1 2; do
	expect_rc 0 rsb simulate --until-done --headless
	fp=$(sed -n 's/.*fingerprint \([0-9a-f]\{64\}\)$/\1/p' <<<"$OUT" | head -1)
	expect_out '4 of 4 boards provisioned and passed the virtual first boot'
done
pass "a second run of the embedded default passes 4/4"
for port in 9-1 9-2; do
	serial=$(grep -E "^board $port " <<<"$OUT" | awk '{print $4}')
	log="$sim/log/$serial/bootstrap.log"
	grep -q 'the records show board .* provisioned with its OTP holding the hash of key' "$log" \
		|| fail "$port: the log does not say why the board is reprovisioned"
	grep -q 'boot ROM: sending recovery.bin (counter-signed)' "$log" || fail "$port: no counter-signed recovery"
done
pi4=$(grep -E '^board 9-3 ' <<<"$OUT" | awk '{print $4}')
! grep -q 'the records show' "$sim/log/$pi4/bootstrap.log" || fail "a Pi 4 needs no counter-signed recovery"
[ "$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE result = 'ok'")" = 8 ] || fail "expected 8 ok attempts"
pass "the fused Pi 5s were reprovisioned with a counter-signed recovery, saying why"

# With OTP disarmed (an explicit configuration is never armed by itself), a
# board the records show fused with this key is still reprovisioned, and its
# recovery carries no OTP switch.
expect_rc 0 rsb --config "$sim/provisioner.ini" simulate --devices pi5:1 --until-done --headless
expect_out '^board 9-1 +pi5 .* PASS$'
serial=$(grep -E '^board 9-1 ' <<<"$OUT" | awk '{print $4}')
grep -q 'OTP disarmed: reprovisioning a board that already holds the key hash' "$sim/log/$serial/bootstrap.log" \
	|| fail "a disarmed reprovision does not say that nothing is burned"
pass "a fused Pi 5 reprovisions with OTP disarmed, nothing burned"

# Second run: the gadget payloads (same inputs) came from the cache.
[ "$(grep -h 'gadget payload .*: from the cache' "$sim"/log/????????????????/bootstrap.log | wc -l)" -ge 4 ] \
	|| fail "the second run rebuilt the gadget payloads"
entries() { find "$cache" -mindepth 2 -maxdepth 2 -name stage2.bin | wc -l; }
before=$(entries)

# A changed input never meets a stale artefact: another bootloader config,
# another entry, and the EEPROM the board got carries it.
marker=$RANDOM
printf '[all]\nBOOT_UART=1\nBOOT_ORDER=0xf461\nMARKER_TEST=%s\n' "$marker" > "$T/boot.conf"
sed -e "s|^\[bootloader\]\$|[bootloader]\nconfig = $T/boot.conf|" "$sim/provisioner.ini" > "$T/changed.ini"
grep -q "^config = $T/boot.conf" "$T/changed.ini" || fail "could not derive the changed configuration"
expect_rc 0 rsb --config "$T/changed.ini" simulate --devices pi5:1 --until-done --headless --arm-otp "${fp: -8}"
expect_out '^board 9-1 +pi5 .* PASS$'
serial=$(grep -E '^board 9-1 ' <<<"$OUT" | awk '{print $4}')
tail -n 40 "$sim/log/$serial/bootstrap.log" | grep -q 'recovery payload [0-9a-f]*: built and cached' \
	|| fail "a changed bootloader config reused a cached recovery payload"
[ "$(entries)" = $((before + 1)) ] || fail "expected one new cache entry, have $(entries) after $before"
grep -aq "MARKER_TEST=$marker" "$sim/boards/pi5-1/eeprom.bin" || fail "the board's EEPROM lacks the changed config"
pass "a changed bootloader config builds a new cache entry, which the board got"

n=$(ls -A "$cache" | grep -vc '\.lock$')
[ "$n" -gt "$before" ] || fail "the cache holds only $n entries"
expect_rc 0 rsb --config "$sim/provisioner.ini" cache clear
expect_out "cache clear: removed $n entries \([0-9.]+ MiB\) from $cache\$"
[ "$(entries)" = 0 ] || fail "cache clear left entries"
[ "$(sqlite3 "$db" "SELECT count(*) FROM audit WHERE action = 'cache-clear' AND target = '$cache'")" = 1 ] \
	|| fail "cache clear is not audited"
pass "cache clear empties the cache and is audited"

# Faults into board 1 (a fused Pi 5) fail it alone, in bootstrap, saying why.
expect_rc 1 rsb simulate --until-done --headless --devices pi5:1,pi4:1 --fault 1=stall:phase=rom
expect_out '^board 9-1 +pi5 .* FAIL: bootstrap: sending recovery.bin \(counter-signed\) to the boot ROM failed'
expect_out '^board 9-2 +pi4 .* PASS$'
row=$(sqlite3 "$db" "SELECT phase_reached || '|' || error_message FROM attempts WHERE usb_port = '9-1' ORDER BY id DESC LIMIT 1")
case "$row" in bootstrap\|*boot\ ROM*stopped\ answering*) ;; *) fail "stall: attempt row $row" ;; esac
pass "a stalled boot ROM fails board 1 alone in bootstrap"
expect_rc 1 rsb simulate --until-done --headless --devices pi5:1,pi4:1 --fault 1=unplug:phase=recovery,offset=65536
expect_out '^board 9-1 +pi5 .* FAIL: bootstrap: unplugged during bootstrap: the board left the bus during the recovery stage'
expect_out '^board 9-2 +pi4 .* PASS$'
row=$(sqlite3 "$db" "SELECT phase_reached || '|' || error_message FROM attempts WHERE usb_port = '9-1' ORDER BY id DESC LIMIT 1")
case "$row" in bootstrap\|unplugged\ during\ bootstrap:\ *left\ the\ bus*pieeprom*half-written*) ;; *) fail "unplug: attempt row $row" ;; esac
pass "an unplug mid-recovery fails board 1 alone in bootstrap"
