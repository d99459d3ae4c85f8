#!/bin/bash
# tui_states: the dashboard with boards in every state on the virtual Pi,
# the detail view, help, and resizes (80x24 -> 200x50 -> 80x24), against
# goldens. Board 2 fails (FAIL from the gadget), the others finish.
# (HELD tiles are not produced here: a held run needs a configuration other
# than simulate's embedded default, which did not hold a virtual board in time.)
# In-progress tiles are checked while the boards run. (Excluded ports come
# from the USB allow-list, which only real discovery applies; the virtual
# bus serves every port, so no EXCLUDED tile can be produced here.)
. "$top_srcdir/tests/tui/lib.sh"

rsb daemon --socket "$SOCK" --simulate pi5:1,pi4:1,zero2w:1,pi5:2 \
	--fault '2=fail:cmd=oem cryptinit' >"$T/daemon.log" 2>&1 &
wait_true "$WAIT_S" test -S "$SOCK"

tui_start attach --socket "$SOCK"
wait_screen 'BOOTSTRAP|TRIAGE|PROVISION|VERIFY'
screen | grep -Eq '(●|▶)Boot' || fail "no phase tracker on a busy tile"
pass "boards in progress show their phase and tracker"

wait_screen 'FAILED'
# Every board reaches a final state.
wait_true "$WAIT_S" screen_count ' (DONE|FAILED) ─' 5
golden states-80x24
pass "dashboard: done, failed (phase and reason)"

# Detail of the failed board (9-2): phase, reason, attempts from the DB, log.
keys Right
keys Enter
wait_screen '^Port 9-2'
wait_screen 'Attempts'
screen | grep -q 'failed in provision' || fail "detail lacks the failure"
screen | grep -Eq '#[0-9]+ .* failed' || fail "detail lacks the failed attempt row"
golden detail-failed
keys Escape
wait_screen '─ 9-1 '
pass "detail view: identity, state, attempts, history, log"

keys '?'
wait_screen 'Keys \(Esc: back\)'
golden help
keys Escape
wait_screen '─ 9-1 '

# Resize to 200x50: all five tiles on one row, then back to 80x24.
tm resize-window -t tui -x 200 -y 50
wait_screen '─ 9-5 .*DONE.*$'
wait_true 60 screen_count_ge ' 9-[1-5] ' 5
golden states-200x50
tm resize-window -t tui -x 80 -y 24
wait_screen 'page|─ 9-3'
golden states-80x24
pass "resize to 200x50 and back to 80x24"

# Monochrome and ASCII: the words carry the meaning.
keys q
wait_true 60 test -s "$T/tui.rc"
rm -f "$T/tui.rc"
tm respawn-pane -k -t tui \
	"exec 2>>$T/tui.err; env LANG=C LC_ALL=C NO_COLOR=1 TERM=vt100 $PROGRAM --root $ROOT attach --socket $SOCK; echo \$? > $T/tui.rc; sleep 3600"
wait_screen '^- 9-1 -+ DONE -'
golden states-ascii
screen | grep -q '●' && fail "UTF-8 glyphs under LANG=C"
pass "ASCII and monochrome fallback"
keys q
wait_true 60 test -s "$T/tui.rc"

