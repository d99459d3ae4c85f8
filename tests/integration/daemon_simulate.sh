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
