#!/bin/bash
# flags_cmd.sh: the `flags` command: set, list, clear, --once, bad input,
# the flags directory from the configuration, and the audit trail.
. "$top_srcdir/tests/integration/lib.sh"

ETC="$ROOT/etc/rpi-sb-provisioner"

# nothing set yet: empty list, success
expect_rc 0 rsb flags list
[ -z "$OUT" ] || fail "empty flags list printed: $OUT"

# set with the short serial, --once; the file is the peer's
expect_rc 0 rsb flags set 1A2B3C4D skip-eeprom --once
expect_out 'skip-eeprom set for 1a2b3c4d \(once'
[ "$(cat "$ETC/special-skip-eeprom/1a2b3c4d")" = once ] || fail "once file content"
pass "set --once writes special-skip-eeprom/1a2b3c4d = once"

# --once may come anywhere; persistent by default
expect_rc 0 rsb flags set --once 00000000deadbeef reprovision
expect_rc 0 rsb flags set 00000000deadbeef reprovision
[ "$(cat "$ETC/special-reprovision-device/00000000deadbeef")" = persistent ] || fail "persistent content"
pass "set without --once replaces with persistent"

expect_rc 0 rsb flags list
expect_out '^1a2b3c4d +skip-eeprom +once$'
expect_out '^00000000deadbeef +reprovision +persistent$'
[ "$(printf '%s\n' "$OUT" | wc -l)" = 2 ] || fail "list shows exactly two flags: $OUT"
pass "list shows both flags"

# a hand-made file (as the peer's docs describe) is listed too; a bad name is pointed out
printf 'once\n' > "$ETC/special-skip-eeprom/CAFEF00D"
expect_rc 0 rsb flags list
expect_out '^CAFEF00D +skip-eeprom +once +\(not a lowercase'
rm "$ETC/special-skip-eeprom/CAFEF00D"

# clear by the other serial form removes it
expect_rc 0 rsb flags clear 000000001a2b3c4d skip-eeprom
expect_out 'skip-eeprom cleared for 000000001a2b3c4d'
[ ! -e "$ETC/special-skip-eeprom/1a2b3c4d" ] || fail "clear left the short-form file"
expect_rc 0 rsb flags clear 1a2b3c4d skip-eeprom
expect_out 'was not set'
pass "clear by either form; clearing twice is harmless"

# bad input: exit 2 naming what is allowed
expect_rc 2 rsb flags set 1a2b3c4 skip-eeprom
expect_out '8 hex digits'
expect_rc 2 rsb flags set ../../etc skip-eeprom
expect_rc 2 rsb flags set 1a2b3c4d skip-everything
expect_out 'allowed: skip-eeprom, reprovision'
expect_rc 2 rsb flags clear 1a2b3c4d
expect_rc 2 rsb flags set 1a2b3c4d skip-eeprom --twice
expect_rc 2 rsb flags frobnicate
expect_out 'list, set or clear'
expect_rc 2 rsb flags list extra
pass "bad serial, flag, option or sub-command: exit 2"

# the flags directory comes from the configuration; a problem elsewhere in
# the file does not stop flag management
mkdir -p "$ETC"
cat > "$ETC/provisioner.ini" <<INI
[station]
mode = not-a-mode
[paths]
flags_dir = $T/flags
INI
expect_rc 0 rsb flags set 0123456789abcdef skip-eeprom
[ -f "$T/flags/special-skip-eeprom/0123456789abcdef" ] || fail "flags_dir from the config not used"
expect_rc 0 rsb flags list
expect_out '^0123456789abcdef +skip-eeprom +persistent$'
printf '%s\n' "$OUT" | grep -q deadbeef && fail "list read the default dir, not flags_dir"
pass "flags_dir from the configuration, despite an unrelated config problem"

# every change is audited in the database: 4 sets and 1 clear (not the no-op clear)
DB="$ROOT/srv/rpi-sb-provisioner/manufacturing.db"
if command -v sqlite3 >/dev/null && [ -f "$DB" ]; then
	n=$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE action LIKE 'flag-%'")
	[ "$n" = 5 ] || fail "expected 5 audited flag changes, found $n"
	sqlite3 "$DB" "SELECT action, target, detail FROM audit ORDER BY id" | head -1 |
		grep -qx 'flag-set|1a2b3c4d|skip-eeprom once' || fail "first audit row"
	pass "flag changes are in the audit table"
else
	fail "no audit database at $DB"
fi
