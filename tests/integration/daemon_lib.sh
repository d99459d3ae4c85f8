# daemon_lib.sh: helpers for the daemon_*.sh tests (sourced after lib.sh).
# The daemon runs on virtual boards under the test's private root; its
# control socket is <root>/run/rpi-sb-provisioner/control.
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
SOCK="$ROOT/run/rpi-sb-provisioner/control"
DAEMON_PID=

# start_daemon ARGS...: run `daemon ARGS` in the background (stdout in
# $T/daemon.out, stderr in $T/daemon.err) and wait for its socket.
start_daemon() {
	"$PROGRAM" --root "$ROOT" daemon "$@" >"$T/daemon.out" 2>"$T/daemon.err" &
	DAEMON_PID=$!
	for _ in $(seq 1 600); do
		[ -S "$SOCK" ] && rsb status >/dev/null 2>&1 && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$T/daemon.err" >&2; fail "the daemon died"; }
		sleep 0.1
	done
	cat "$T/daemon.err" >&2
	fail "the daemon's socket did not appear"
}

# status_json PYTHON-EXPR: evaluate EXPR with d = `status --json`; print it.
status_json() {
	rsb status --json | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

# wait_status PYTHON-COND [SECONDS]: poll `status --json` until COND holds.
wait_status() {
	local cond=$1 secs=${2:-120}
	for _ in $(seq 1 $((secs * 5))); do
		[ "$(status_json "bool($cond)" 2>/dev/null)" = True ] && return 0
		sleep 0.2
	done
	rsb status >&2 || true
	fail "timed out waiting for: $cond"
}

# stop_daemon: SIGTERM, then wait for it; its exit status in $DAEMON_RC.
stop_daemon() {
	kill -TERM "$DAEMON_PID" 2>/dev/null || true
	set +e
	wait "$DAEMON_PID"
	DAEMON_RC=$?
	set -e
	DAEMON_PID=
}

daemon_cleanup() {
	if [ -n "$DAEMON_PID" ]; then
		kill -TERM "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap daemon_cleanup EXIT

DB="$ROOT/srv/rpi-sb-provisioner/simulate/manufacturing.db"
sql() { sqlite3 "$DB" "$1"; }
