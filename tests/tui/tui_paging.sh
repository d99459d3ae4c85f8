#!/bin/bash
# tui_paging: 16 ports on 80x24 page by 8 ([ ] PgUp PgDn, and moving past the
# last tile of a page); the selection keeps its port. With 16 boards busy the
# TUI's CPU use is measured over 20 s (utime+stime from /proc) and must stay
# low: paints are coalesced, no busy loop. The figure goes to the log.
. "$top_srcdir/tests/tui/lib.sh"

# A slow link keeps all sixteen boards busy while we look.
rsb daemon --socket "$SOCK" --simulate pi5:8,pi4:8 --link-rate 1 >"$T/daemon.log" 2>&1 &
wait_true "$WAIT_S" test -S "$SOCK"
tui_start attach --socket "$SOCK"
wait_screen 'page 1/2'
wait_true "$WAIT_S" screen_count '─ 9-' 8
screen | grep -q '─ 9-1 ' || fail "page 1 lacks 9-1"
screen | grep -q '─ 9-9 ' && fail "page 1 shows 9-9"
keys ']'
wait_screen 'page 2/2'
screen | grep -q '─ 9-9 ' || fail "page 2 lacks 9-9"
screen | grep -q '─ 9-16 ' || fail "page 2 lacks 9-16"
keys '['
wait_screen 'page 1/2'
keys NPage
wait_screen 'page 2/2'
keys PPage
wait_screen 'page 1/2'
# Moving down from the last row of page 1 turns the page.
keys j j j j
wait_screen 'page 2/2'
pass "16 ports page on 80x24 ([ ] PgUp PgDn, cursor)"

# CPU of the TUI while the boards are busy.
wait_screen 'in progress ([5-9]|1[0-6])'
pid=$(tui_pid)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks)
s0=$(date +%s.%N)
sleep 20
t1=$(ticks)
s1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
busy=$(screen | grep -Eo 'in progress [0-9]+' | grep -Eo '[0-9]+$')
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" \
	'BEGIN { printf "%.2f", 100 * (b - a) / hz / (s1 - s0) }')
echo "TUI CPU with $busy boards in progress: $cpu % of one core (20 s, $(basename "$PROGRAM"))"
awk -v c="$cpu" 'BEGIN { exit !(c < 15) }' || fail "TUI CPU $cpu % with $busy busy boards"
pass "TUI CPU with 16 ports, $busy busy: $cpu %"
keys q
# With boards still in flight it asks first; if they have all finished (a
# fast machine) it quits at once.
for _ in $(seq 1 300); do
	[ -s "$T/tui.rc" ] && break
	if screen 2>/dev/null | grep -q 'in flight'; then keys y; break; fi
	sleep 0.2
done
wait_true 60 test -s "$T/tui.rc"
