# tests/tui/lib.sh: helpers for the tmux-driven TUI tests (sourced, not run).
#
# Each test gets a private root ($ROOT, from tests/integration/lib.sh) and a
# private tmux server ($T/tmux.sock, no user configuration). The TUI runs in a
# tmux window; tests type into it with `keys` and read it with `screen`.
# Every wait polls the screen (or a file) until a condition holds, with a long
# deadline, so the tests hold under ASan on a loaded machine; no test relies on
# a fixed sleep alone. Goldens: tests/tui/golden/NAME.txt, compared after
# `normalise` (times, rates, hex ids, trailing blanks); UPDATE_GOLDEN=1
# rewrites them.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"

command -v tmux >/dev/null || { echo "SKIP: tmux is not installed (scripts/install-deps.sh)"; exit 77; }

# Goldens are UTF-8 screens: the same locale whatever the caller's.
export LANG=C.UTF-8
unset LC_ALL LC_CTYPE
TMUX_SOCK="$T/tmux.sock"
GOLDEN="$top_srcdir/tests/tui/golden"
WAIT_S=${TUI_WAIT_S:-300}
SOCK="$ROOT/run/rpi-sb-provisioner/control-simulate"

tm() { tmux -S "$TMUX_SOCK" -f /dev/null "$@"; }

# The engines these tests started (found by their private socket path, which
# holds $T), then the tmux server, then the files.
tui_cleanup() {
	local pid
	tm kill-server 2>/dev/null || true
	for pid in $(engine_pids); do
		kill "$pid" 2>/dev/null || true
	done
	for _ in $(seq 1 100); do
		[ -z "$(engine_pids)" ] && break
		sleep 0.1
	done
	for pid in $(engine_pids); do
		kill -9 "$pid" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap tui_cleanup EXIT

# A session that keeps the server alive while tests kill and start the TUI's.
tm new-session -d -s keep -x 80 -y 24 "sleep 3600"

# PIDs of engines started under this test's root (their command line names it).
engine_pids() {
	local p
	for p in /proc/[0-9]*; do
		if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "--root $ROOT .*daemon"; then
			echo "${p#/proc/}"
		fi
	done
}

# tui_start [-x W] [-y H] ARGS... : run `rpi-sb-provisioner --root $ROOT ARGS`
# in a new tmux window (80x24 unless told). Its stderr goes to $T/tui.err and
# its exit status to $T/tui.rc.
tui_start() {
	local w=80 h=24
	while [ $# -gt 0 ]; do
		case $1 in
		-x) w=$2; shift 2 ;;
		-y) h=$2; shift 2 ;;
		*) break ;;
		esac
	done
	rm -f "$T/tui.rc"
	local cmd="$PROGRAM --root $ROOT"
	local a
	for a in "$@"; do
		cmd="$cmd '$a'"
	done
	if tm has-session -t tui 2>/dev/null; then
		# Replace the pane's process: killing the last session would end
		# the server under our feet.
		tm resize-window -t tui -x "$w" -y "$h"
		tm respawn-pane -k -t tui "exec 2>>$T/tui.err; $cmd; echo \$? > $T/tui.rc; sleep 3600"
	else
		tm new-session -d -s tui -x "$w" -y "$h" \
			"exec 2>>$T/tui.err; $cmd; echo \$? > $T/tui.rc; sleep 3600"
	fi
}

# The pid of the TUI process in the window.
tui_pid() {
	local shell
	shell=$(tm display-message -p -t tui '#{pane_pid}')
	# The pane runs sh -c "...; rpi-sb-provisioner ...": the TUI is its child.
	local c
	for c in $(cat /proc/"$shell"/task/*/children 2>/dev/null); do
		if { tr '\0' ' ' <"/proc/$c/cmdline"; } 2>/dev/null | grep -q -- "--root $ROOT"; then
			echo "$c"
			return
		fi
	done
	echo "$shell"
}

# WIN: the tmux target the helpers act on (default: the session's current window).
keys() { tm send-keys -t "${WIN:-tui}" "$@"; }

screen() { tm capture-pane -p -t "${WIN:-tui}"; }

# wait_screen REGEX [SECONDS]: until the screen matches (grep -E).
wait_screen() {
	local re=$1 limit=${2:-$WAIT_S} start=$SECONDS
	while ! screen | grep -Eq -- "$re"; do
		if [ $((SECONDS - start)) -ge "$limit" ]; then
			screen >&2
			echo "--- tui.err:" >&2
			tail -20 "$T/tui.err" >&2 2>/dev/null || true
			fail "screen never showed /$re/ in ${limit}s"
		fi
		sleep 0.2
	done
}

# wait_no_screen REGEX [SECONDS]: until the screen no longer matches.
wait_no_screen() {
	local re=$1 limit=${2:-$WAIT_S} start=$SECONDS
	while screen | grep -Eq -- "$re"; do
		if [ $((SECONDS - start)) -ge "$limit" ]; then
			screen >&2
			fail "screen still shows /$re/ after ${limit}s"
		fi
		sleep 0.2
	done
}

# wait_true SECONDS CMD... : until CMD succeeds.
wait_true() {
	local limit=$1 start=$SECONDS
	shift
	until "$@"; do
		if [ $((SECONDS - start)) -ge "$limit" ]; then
			screen >&2 2>/dev/null || true
			fail "never true in ${limit}s: $*"
		fi
		sleep 0.2
	done
}

# screen_count REGEX N: REGEX occurs N times on the screen (for wait_true).
screen_count() { [ "$(screen | grep -Eo -- "$1" | wc -l)" = "$2" ]; }
screen_count_ge() { [ "$(screen | grep -Eo -- "$1" | wc -l)" -ge "$2" ]; }
# sql_ge DB QUERY N: the query's value is at least N (for wait_true).
sql_ge() { [ "$(sql "$1" "$2")" -ge "$3" ]; }

# Times, rates, hex ids and trailing blanks vary between runs.
normalise() {
	sed -E \
		-e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}/DATE/g' \
		-e 's/[0-9]+:[0-9]{2}(:[0-9]{2})?(\.[0-9]+)?/T:TT/g' \
		-e 's/[0-9]+\.[0-9]+ ?MB\/s/R MB\/s/g' \
		-e 's/[0-9]+\.[0-9] boards\/h/N boards\/h/g' \
		-e 's/[0-9a-f]{8,}/HEX/g' -e 's/#[0-9]+ /#N /g' \
		-e "s|$T|TMP|g" \
		-e 's/[[:space:]]+$//'
}

# golden NAME: the normalised screen must equal tests/tui/golden/NAME.txt.
golden() {
	local name=$1 got="$T/$1.screen"
	screen | normalise >"$got"
	if [ "${UPDATE_GOLDEN:-}" = 1 ]; then
		mkdir -p "$GOLDEN"
		cp "$got" "$GOLDEN/$name.txt"
		echo "updated golden $name"
		return
	fi
	[ -f "$GOLDEN/$name.txt" ] || fail "no golden $GOLDEN/$name.txt (UPDATE_GOLDEN=1 writes it)"
	if ! diff -u "$GOLDEN/$name.txt" "$got" >&2; then
		fail "screen differs from golden $name"
	fi
}

# sql DB QUERY: one value from the manufacturing database.
sql() { sqlite3 -cmd '.timeout 5000' "$1" "$2"; }
