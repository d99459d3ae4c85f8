#!/bin/bash
# daemon_ctl: every control command through `ctl`, each checked where it
# acts (flags dir, records, audit table, cache dir, the daemon's state), and
# `status` / `status --json` while boards are in flight and after.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/daemon_lib.sh"

SIM="$ROOT/srv/rpi-sb-provisioner/simulate"
audit_count() { sql "SELECT count(*) FROM audit WHERE action = '$1' AND origin = 'control-socket'"; }

# Board 2 fails in provision and stays on its port (a gadget): retry material.
# A slow link keeps board 1 in flight long enough to look at it.
start_daemon --simulate pi5:1,pi4:1 --fault '2=fail:cmd=oem cryptinit' --link-rate 8
wait_status "any(t['phase'] == 'provision' for t in d['tiles'])" 120
expect_rc 0 rsb status
expect_out '^station simulate  mode secure-boot  OTP ARMED'
expect_out '^9-1 +(bootstrap|triage|provision|verify) '
[ "$(status_json "d['snapshot']['counts']['in_progress'] >= 1")" = True ] || fail "nothing in progress"
expect_rc 1 rsb ctl clear-cache
expect_out 'refused: [0-9]+ board\(s\) in flight use the cache \(EBUSY\)'
pass "status in flight; clear-cache refused while boards use the cache"

wait_status "d['snapshot']['counts']['done'] == 1 and d['snapshot']['counts']['failed'] == 1" 300
expect_rc 0 rsb status
expect_out '^9-1 +done +[0-9a-f]{16} '
expect_out '^9-2 +failed +[0-9a-f]{16} .*in provision: .*oem cryptinit'
serial2=$(status_json "[t['serial'] for t in d['tiles'] if t['port'] == '9-2'][0]")
pass "status after: one done, one failed with its phase and reason"

# retry: a new attempt on the failed board's port (it fails again: the fault stays).
before=$(sql "SELECT count(*) FROM attempts WHERE usb_port = '9-2'")
expect_rc 0 rsb ctl retry 9-2
expect_out 'retrying the board on 9-2'
wait_status "[t for t in d['tiles'] if t['port'] == '9-2'][0]['phase'] == 'failed' and d['snapshot']['counts']['failed'] == 2" 300
after=$(sql "SELECT count(*) FROM attempts WHERE usb_port = '9-2'")
[ "$after" = $((before + 1)) ] || fail "retry: attempts on 9-2 $before -> $after"
[ "$(audit_count retry)" = 1 ] || fail "retry not audited"
expect_rc 1 rsb ctl retry 9-1
expect_out 'no board on 9-1 now'
expect_rc 1 rsb ctl retry 9-7
pass "retry runs the flow again on the failed board's port (new attempt row, audited)"

# set-flag, by port and by serial, once and persistent.
flags="$SIM"
expect_rc 0 rsb ctl set-flag 9-2 reprovision
[ "$(tr -d '[:space:]' < "$flags/special-reprovision-device/$serial2")" = once ] || fail "reprovision flag file"
expect_rc 0 rsb ctl set-flag "$serial2" skip-eeprom --persistent
[ "$(tr -d '[:space:]' < "$flags/special-skip-eeprom/$serial2")" = persistent ] || fail "skip-eeprom flag file"
expect_rc 1 rsb ctl set-flag 9-2 erase-everything
[ "$(audit_count flag-set)" = 2 ] || fail "flag-set audit rows"
[ "$(sql "SELECT detail FROM audit WHERE action = 'flag-set' ORDER BY id LIMIT 1")" = "reprovision once, port 9-2" ] \
	|| fail "flag-set audit detail"
pass "set-flag writes the flags dir (once/persistent, by port or serial), audited"

# OTP: disarm, a wrong suffix refused, the right one arms.
fp=$(status_json "d['info']['key_fingerprint']")
expect_rc 0 rsb ctl disarm-otp
[ "$(status_json "d['info']['otp_armed']")" = False ] || fail "still armed"
expect_rc 1 rsb ctl arm-otp 00000000
expect_out 'does not match the key fingerprint'
[ "$(status_json "d['info']['otp_armed']")" = False ] || fail "armed by a wrong suffix"
expect_rc 0 rsb ctl arm-otp "${fp: -8}"
[ "$(status_json "d['info']['otp_armed']")" = True ] || fail "not armed"
[ "$(audit_count otp-disarm)" = 1 ] && [ "$(audit_count otp-arm-refused)" = 1 ] && [ "$(audit_count otp-arm)" = 1 ] \
	|| fail "OTP audit rows"
pass "disarm/arm OTP with the typed fingerprint suffix, audited"

# export-csv: the path written, one row per board.
expect_rc 0 rsb ctl export-csv
csv=$OUT
[ -s "$csv" ] || fail "no CSV at '$csv'"
[ "$(tr -d '\r' < "$csv" | sed 1d | grep -c .)" = "$(sql 'SELECT count(*) FROM devices')" ] || fail "CSV rows"
expect_rc 1 rsb ctl export-csv "$csv"
expect_out 'File exists'
[ "$(sql "SELECT target FROM audit WHERE action = 'export-csv'")" = "$csv" ] || fail "export audit"
pass "export-csv writes a new file and replies with its path"

# reload-config: nothing changed, then a change.
expect_rc 0 rsb ctl reload-config
expect_out '^no change$'
sed -i 's/^\[station\]$/[station]\nhold = after-triage/' "$SIM/provisioner.ini"
expect_rc 0 rsb ctl reload-config
expect_out 'station.hold'
[ "$(sql "SELECT count(*) FROM audit WHERE action = 'config-reload'")" = 2 ] || fail "reload audit"
pass "reload-config says what changed"

# clear-cache: the cache dir is emptied.
[ -n "$(ls "$SIM/cache")" ] || fail "the cache is empty before clear-cache"
expect_rc 0 rsb ctl clear-cache
expect_out '^removed [0-9]+ entr'
[ -z "$(ls "$SIM/cache" | grep -v '\.lock$')" ] || fail "cache not empty: $(ls "$SIM/cache")"
[ "$(sql "SELECT count(*) FROM audit WHERE action = 'cache-clear'")" = 1 ] || fail "cache-clear audit"
pass "clear-cache empties the cache, audited"

# clear-finished: 9-1 (done, taken away) goes; 9-2 (failed, still there) waits.
expect_rc 0 rsb ctl clear-finished
expect_out 'cleared 1 tile'
[ "$(status_json "[(t['port'], t['phase']) for t in d['tiles']]")" = "[('9-2', 'waiting')]" ] \
	|| fail "tiles after clear-finished: $(status_json "d['tiles']")"
pass "clear-finished removes finished tiles of boards that left"

expect_rc 0 rsb ctl shutdown
set +e; wait "$DAEMON_PID"; rc=$?; set -e; DAEMON_PID=
[ "$rc" = 0 ] || fail "daemon exit $rc after shutdown"
[ "$(audit_count shutdown)" = 1 ] || fail "shutdown audit"
[ ! -e "$SOCK" ] || fail "socket left behind"
pass "shutdown: the daemon exits, the socket is gone"
