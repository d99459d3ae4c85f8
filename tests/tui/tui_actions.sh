#!/bin/bash
# tui_actions: every key action reaches the engine and has its effect in the
# database, the flags directory or the cache; the OTP arming dialog; a
# read-only viewer is refused. Two boards: 9-1 (Pi 5) finishes, 9-2 (Pi 4)
# fails (FAIL from the gadget) so it can be retried.
. "$top_srcdir/tests/tui/lib.sh"

rsb daemon --socket "$SOCK" --simulate pi5:1,pi4:1 \
	--fault '2=fail:cmd=oem cryptinit' >"$T/daemon.log" 2>&1 &
wait_true "$WAIT_S" test -S "$SOCK"
tui_start attach --socket "$SOCK"
wait_screen '─ 9-1 .* DONE ─'
wait_screen '─ 9-2 .* FAILED ─'
db=$(find "$ROOT" -name manufacturing.db | head -1)
[ -n "$db" ] || fail "no database"
serial=$(sql "$db" "SELECT serial FROM devices WHERE usb_port = '9-1'")
[ -n "$serial" ] || fail "no record for 9-1"
audits() { sql "$db" "SELECT count(*) FROM audit WHERE action LIKE '$1'"; }

# Flags for the selected board (9-1): reprovision once, skip-EEPROM persistent.
keys p
wait_screen 'o: once'
golden flag-dialog
keys o
wait_screen 'reprovision flag set \(once\)'
f=$(find "$ROOT" -path "*special-reprovision-device/$serial" | head -1)
[ -n "$f" ] || fail "no reprovision flag file for $serial"
grep -qx once "$f" || fail "reprovision flag is not 'once': $(cat "$f")"
keys e
wait_screen 'p: persistent'
keys p
wait_screen 'skip-eeprom flag set \(persistent\)'
f=$(find "$ROOT" -path "*special-skip-eeprom/$serial" | head -1)
[ -n "$f" ] || fail "no skip-eeprom flag file for $serial"
grep -qx once "$f" && fail "skip-eeprom flag should be persistent"
pass "p/e set the flags (once, persistent) in the flags directory"

# Detail shows the flags.
keys Enter
wait_screen 'reprovision once'
wait_screen 'skip-eeprom persistent'
keys Escape

# Export CSV: the dialog names the file written.
keys E
wait_screen 'records were written to'
csv=$(find "$ROOT" -name 'records-*.csv' | head -1)
[ -n "$csv" ] && [ -s "$csv" ] || fail "no CSV written"
screen | grep -q "$(basename "$csv")" || fail "the dialog does not name $csv"
grep -q "$serial" "$csv" || fail "the CSV lacks board $serial"
keys Enter
wait_no_screen 'records were written to'
pass "export: CSV written, path shown"

# Clear cache: asks first; n keeps it, y clears it (audited).
before=$(audits 'cache%')
keys C
wait_screen 'Clear the artefact cache\?'
keys n
wait_no_screen 'Clear the artefact cache\?'
[ "$(audits 'cache%')" = "$before" ] || fail "cache cleared without a yes"
keys C
wait_screen 'Clear the artefact cache\?'
keys y
wait_screen 'cache cleared'
wait_true 30 sql_ge "$db" "SELECT count(*) FROM audit WHERE action LIKE 'cache%'" $((before + 1))
pass "clear cache: confirm, audited"

# OTP: the embedded default is armed; disarm, a wrong suffix is refused, the
# right one arms again. Each decision is audited.
wait_screen 'OTP ARMED'
keys A
wait_screen 'Disarm OTP'
keys y
wait_screen 'OTP disarmed'
keys A
wait_screen 'Type at least its last 8 hex digits'
golden otp-dialog
fp=$(screen | grep -Eo '[0-9a-f]{64}' | head -1 || true)
[ -n "$fp" ] || fail "the dialog does not show the fingerprint"
keys 00000000 Enter
wait_screen 'refused'
screen | grep -q 'OTP ARMED' && fail "armed with a wrong suffix"
keys A
wait_screen 'Type at least its last 8 hex digits'
keys "${fp: -8}" Enter
wait_screen ' OTP ARMED '
[ "$(audits 'otp-arm-refused')" -ge 1 ] || fail "no otp-arm-refused audit row"
[ "$(audits 'otp-disarm%')" -ge 1 ] || fail "no otp-disarm audit row"
pass "OTP dialog: disarm, wrong suffix refused, right suffix arms; audited"

# Reload: the dialog says what changed (or why refused).
keys R
wait_screen 'Configuration reloaded|Reload refused'
keys Enter

# Retry the failed board: a new attempt on 9-2.
n=$(sql "$db" "SELECT count(*) FROM attempts WHERE usb_port = '9-2'")
keys r
wait_screen 'retry: 9-1 has not failed'
keys Right r
wait_screen 'retrying 9-2'
wait_true "$WAIT_S" sql_ge "$db" "SELECT count(*) FROM attempts WHERE usb_port = '9-2'" $((n + 1))
wait_screen '─ 9-2 .* FAILED ─'
pass "retry: a new attempt for the failed board"

# A read-only viewer looks but cannot act.
tm new-window -t tui -n ro \
	"exec 2>>$T/ro.err; $PROGRAM --root $ROOT attach --read-only --socket $SOCK; sleep 3600"
WIN=tui:ro
wait_screen 'READ-ONLY'
keys E
wait_screen 'refused: this viewer is read-only'
keys C
wait_screen 'Clear the artefact cache'
keys y
wait_screen 'refused: this viewer is read-only'
keys q
WIN=tui:0
pass "read-only viewer: actions refused"

# Clear finished and failed tiles; then quit (nothing in flight: no question).
keys x
wait_screen 'cleared finished'
wait_no_screen ' (DONE|FAILED) ─'
keys q
wait_true 60 test -s "$T/tui.rc"
[ "$(cat "$T/tui.rc")" = 0 ] || fail "quit exit status $(cat "$T/tui.rc")"
pass "clear finished tiles; quit"
