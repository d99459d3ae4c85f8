#!/bin/bash
# daemon_simulate: `daemon --simulate` provisions virtual boards with the
# embedded default and --until-done exits once they are final (1 when one
# failed); --log prints a line per event; `status` says no daemon runs (3).
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/daemon_lib.sh"

expect_rc 3 rsb status
expect_out 'no daemon answers on .*/run/rpi-sb-provisioner/control'
expect_rc 3 rsb ctl disarm-otp
pass "no daemon: status and ctl exit 3"

expect_rc 0 rsb daemon --simulate pi5:1,pi4:1,zero2w:1 --log --until-done 3
expect_out '^\[\+[0-9]+\.[0-9]{3}s\] 9-1 [0-9a-f]{16} -> done$'
expect_out '^\[\+[0-9]+\.[0-9]{3}s\] 9-2 [0-9a-f]{16} -> done$'
expect_out '^\[\+[0-9]+\.[0-9]{3}s\] 9-3 [0-9a-f]{16} -> done$'
expect_out 'daemon: stopped: 3 done, 0 failed'
[ "$(sql 'SELECT count(*) FROM devices')" = 3 ] || fail "expected 3 device rows"
[ "$(sql "SELECT count(*) FROM attempts WHERE result = 'ok'")" = 3 ] || fail "expected 3 ok attempts"
[ ! -e "$SOCK" ] || fail "the socket outlived the daemon"
pass "three boards provisioned, --until-done 3 exits 0"

rm -rf "$ROOT/srv/rpi-sb-provisioner/simulate/boards"
expect_rc 1 rsb daemon --simulate pi5:1,pi4:1 --fault '2=fail:cmd=oem cryptinit' --log --until-done 2
expect_out '9-2 [0-9a-f]{16} failed in provision \(.*\): .*oem cryptinit'
expect_out '9-1 [0-9a-f]{16} -> done'
expect_out 'daemon: stopped: 1 done, 1 failed'
pass "a failed board makes --until-done exit 1"

expect_rc 2 rsb daemon --simulate pi9:1
expect_out "unknown model 'pi9'"
expect_rc 2 rsb daemon --simulate pi5:1 --fault 'nonsense'
pass "bad --simulate and --fault are usage errors"

# No configuration, real USB: the daemon starts anyway, provisions nothing,
# and says what is missing (a front end's first-run screen).
start_daemon
expect_rc 0 rsb status
expect_out '^warning: no configuration at .*/etc/rpi-sb-provisioner/provisioner.ini: boards are shown, not provisioned'
[ "$(status_json "d['info']['simulated']")" = False ] || fail "real USB expected"
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit $DAEMON_RC"
pass "no configuration: the daemon runs and warns"

# An invalid configuration: boards are shown (held), never touched.
printf '[station]\nmode = sideways\n' > "$T/bad.ini"
rm -rf "$ROOT/srv/rpi-sb-provisioner/simulate/boards"
expect_rc 0 rsb daemon --config "$T/bad.ini" --simulate pi5:1 --log --until-done 1
expect_out "daemon: warning: .*bad.ini:2: station.mode: "
expect_out '9-1 - log not provisioned: '
expect_out '9-1 - -> held$'
pass "an invalid configuration: the board is held, not provisioned"
