#!/bin/bash
# daemon_empty_ports: issue 7 wants one tile a USB port, empty ones too. A
# daemon on real USB with an allow-list shows each literal port of it as an
# empty tile before any board came (a glob names no port: no tile); with
# --simulate the virtual ports are there from the start.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/daemon_lib.sh"

mkdir -p "$ROOT/etc/rpi-sb-provisioner/usb-ports.d"
printf '# bench\n1-1.2\n1-1.10\n3-*\n1-1.[34]\n' >"$ROOT/etc/rpi-sb-provisioner/usb-ports.d/bench.conf"
# No configuration: the daemon only shows boards, which is enough here.
start_daemon
got=$(status_json "' '.join(t['port'] + ':' + str(t['present']) + ':' + t['phase'] for t in d['tiles'])")
[ "$got" = "1-1.2:False:waiting 1-1.10:False:waiting" ] || fail "tiles of the allow-list: '$got'"
expect_rc 0 rsb status
expect_out '^1-1\.2 '
pass "allow-list ports are empty tiles; globs give none"
stop_daemon
