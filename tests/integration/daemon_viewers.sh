#!/bin/bash
# daemon_viewers: provisioning never depends on a viewer. A read-only viewer
# and a user outside the station group cannot act; viewers killed mid-run
# (or never reading) leave every board finishing, and a new viewer sees the
# true state; SIGTERM and SIGHUP drain in-flight boards before exiting;
# --transient exits once no viewer is attached and no board is in flight.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/daemon_lib.sh"

# A viewer: attach, read a little, then hang (never read again) until killed.
viewer() {
	python3 - "$SOCK" "$1" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
if sys.argv[2] == "read-some":
    s.recv(4096)
time.sleep(3600)
PY
	VIEWERS="$VIEWERS $!"
}

start_daemon --simulate pi5:1,pi4:1 --link-rate 8
# read-only: refused by the engine, nothing changes.
expect_rc 1 rsb ctl --read-only disarm-otp
expect_out 'this viewer is read-only \(EPERM\)'
[ "$(status_json "d['info']['otp_armed']")" = True ] || fail "a read-only viewer disarmed OTP"
[ "$(sql "SELECT count(*) FROM audit WHERE origin = 'control-socket'")" = 0 ] || fail "a refused command was audited"
[ "$(status_json "d['info']['read_only']")" = True ] || fail "status is not read-only"
pass "a read-only viewer is refused (EPERM), nothing changes"

# Another user, not in the station group: the socket (0660) keeps it out...
nobody_id=4242
chmod o+x "$T" "$ROOT" "$ROOT/run" "$ROOT/run/rpi-sb-provisioner"
[ "$(stat -c %a "$SOCK")" = 660 ] || fail "socket mode $(stat -c %a "$SOCK")"
expect_rc 1 setpriv --reuid=$nobody_id --regid=$nobody_id --clear-groups \
	"$PROGRAM" --root "$ROOT" ctl disarm-otp
expect_out 'permission denied: join the station group'
# ... and were the socket opened to it, it could only look.
chmod 0666 "$SOCK"
expect_rc 1 setpriv --reuid=$nobody_id --regid=$nobody_id --clear-groups \
	"$PROGRAM" --root "$ROOT" ctl disarm-otp
expect_out 'not permitted: only root, the engine.s user and the station group may act \(EPERM\)'
expect_rc 0 setpriv --reuid=$nobody_id --regid=$nobody_id --clear-groups \
	"$PROGRAM" --root "$ROOT" status
[ "$(status_json "d['info']['otp_armed']")" = True ] || fail "another user disarmed OTP"
chmod 0660 "$SOCK"
pass "a user outside the station group cannot connect, and could only look"

# Viewers that die or stall mid-provisioning.
VIEWERS=
viewer read-some
viewer never-read
viewer read-some
wait_status "any(t['phase'] in ('provision', 'verify') for t in d['tiles'])" 120
kill -9 $VIEWERS
wait $VIEWERS 2>/dev/null || true
VIEWERS=
viewer never-read
wait_status "d['snapshot']['counts']['done'] == 2" 300
expect_rc 0 rsb status
expect_out '^9-1 +done +[0-9a-f]{16} .*\(gone\)'
expect_out '^9-2 +done +[0-9a-f]{16} .*\(gone\)'
expect_out '^done 2  failed 0  in progress 0'
[ "$(sql "SELECT count(*) FROM attempts WHERE result = 'ok'")" = 2 ] || fail "records"
kill -9 $VIEWERS; wait $VIEWERS 2>/dev/null || true
stop_daemon
[ "$DAEMON_RC" = 0 ] || fail "daemon exit $DAEMON_RC"
pass "viewers killed or stalled mid-run: every board finished; re-attaching shows the true state"

# SIGTERM / SIGHUP: drain (boards in flight finish, none start), then exit.
for sig in TERM HUP; do
	rm -rf "$ROOT/srv/rpi-sb-provisioner/simulate/boards"
	n0=$(sql "SELECT count(*) FROM attempts WHERE result = 'ok'")
	start_daemon --simulate pi5:1,zero2w:1 --link-rate 8 --log
	# In bootstrap: the board still has to come back as a gadget after the
	# signal, so discovery must keep running while the daemon drains.
	for _ in $(seq 1 3000); do
		grep -q '9-1 .* -> bootstrap$' "$T/daemon.out" && break
		sleep 0.02
	done
	kill -$sig "$DAEMON_PID"
	set +e; wait "$DAEMON_PID"; rc=$?; set -e; DAEMON_PID=
	[ "$rc" = 0 ] || { cat "$T/daemon.err" >&2; fail "SIG$sig: exit $rc"; }
	grep -q 'no new boards; [1-9] in flight finish first' "$T/daemon.err" || fail "SIG$sig: no drain message"
	[ "$(sql "SELECT count(*) FROM attempts WHERE result = 'ok'")" = $((n0 + 2)) ] \
		|| fail "SIG$sig: the boards in flight did not finish"
	[ "$(grep -c -- '-> done$' "$T/daemon.out")" = 2 ] || fail "SIG$sig: done lines"
	pass "SIG$sig drains the boards in flight, then exits 0"
done

# --transient: no viewer, no board in flight -> gone within seconds.
rm -rf "$ROOT/srv/rpi-sb-provisioner/simulate/boards"
start=$(date +%s)
expect_rc 0 rsb daemon --transient --simulate pi5:1
expect_out 'no viewer and no board in flight: exiting \(transient\)'
[ $(( $(date +%s) - start )) -lt 120 ] || fail "--transient took too long"
[ "$(sql "SELECT result FROM attempts ORDER BY id DESC LIMIT 1")" = ok ] || fail "--transient: the board did not finish"
pass "--transient finishes its board and exits with nobody attached"
