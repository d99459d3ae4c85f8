#!/bin/bash
# daemon_privilege: what the daemon gives up once it runs. Started without
# root (uid 4242, no groups, as the systemd unit's capability-free service
# would be), on virtual boards with the embedded default's real key:
#   - it holds no capabilities (CapEff 0) and core files are off (RLIMIT_CORE 0);
#   - once the key is loaded it is not dumpable: the kernel then gives its
#     /proc/<pid> files to root, so uid 4242 itself cannot read its environ
#     and no ptrace/core of the same user can reach the key;
#   - what it creates is 0640/0750 at most (umask 027): database, socket dir;
#   - its control socket is 0660.
# Needs root to switch to the test uid (skipped otherwise).
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null || { echo "SKIP: needs root and setpriv"; exit 77; }

U=4242
R="$T/u"
mkdir -p "$R" && chown $U:$U "$R" && chmod 755 "$T"
setpriv --reuid=$U --regid=$U --clear-groups env HOME="$R" \
	"$PROGRAM" --root "$R" daemon --simulate pi5:1 --link-rate 2 >"$T/d.out" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$T"' EXIT
SOCK="$R/run/rpi-sb-provisioner/control"
for _ in $(seq 1 600); do
	[ -S "$SOCK" ] && break
	kill -0 $pid 2>/dev/null || { cat "$T/d.out"; fail "the daemon died"; }
	sleep 0.1
done
[ -S "$SOCK" ] || { cat "$T/d.out"; fail "no control socket"; }
grep -q 'OTP ARMED' "$T/d.out" || { cat "$T/d.out"; fail "the daemon did not load its key"; }

[ "$(awk '/^Uid:/ {print $2}' /proc/$pid/status)" = $U ] || fail "not running as uid $U"
[ "$(awk '/^CapEff:/ {print $2}' /proc/$pid/status)" = 0000000000000000 ] || fail "holds capabilities"
pass "runs as uid $U with no capabilities"
[ "$(awk '/^Max core file size/ {print $5}' /proc/$pid/limits)" = 0 ] || fail "core files are on"
pass "RLIMIT_CORE is 0"
# Not dumpable: /proc/<pid>/environ belongs to root, and its own uid cannot read it.
[ "$(stat -c %u /proc/$pid/environ)" = 0 ] || fail "dumpable after loading a key (/proc/$pid owned by $(stat -c %u /proc/$pid/environ))"
if setpriv --reuid=$U --regid=$U --clear-groups cat /proc/$pid/environ >/dev/null 2>&1; then
	fail "its own uid can read the key-holding daemon's environ"
fi
pass "not dumpable once the key is loaded"

mode=$(stat -c %a "$SOCK")
[ "$mode" = 660 ] || fail "control socket mode $mode, want 660"
pass "control socket 0660"
db=$(find "$R" -name manufacturing.db | head -1)
[ -n "$db" ] || fail "no database"
for f in "$db" "$R/run/rpi-sb-provisioner"; do
	m=$(stat -c %a "$f")
	[ $((8#$m & 8#027)) = 0 ] || fail "$f has mode $m (group write or others access)"
done
pass "database and run dir carry no group-write or others bits"
