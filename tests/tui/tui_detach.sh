#!/bin/bash
# tui_detach: the engine never depends on the screen.
# 1. With no engine running, `attach --simulate` starts one in its own
#    session; losing the terminal (tmux kills the window: SIGHUP) mid-
#    provisioning leaves it running, and it finishes every board.
# 2. Re-attaching shows the true state (the database's).
# 3. A crash (SIGSEGV) restores the terminal: the pane leaves the alternate
#    screen and the shell sees the signal.
. "$top_srcdir/tests/tui/lib.sh"

tui_start attach --simulate pi5:2,pi4:1
wait_screen 'SIMULATED'
wait_screen 'BOOTSTRAP|TRIAGE|PROVISION|VERIFY'
engine=$(engine_pids)
[ -n "$engine" ] || fail "no engine was started"
[ "$(ps -o sid= -p "$engine" | tr -d ' ')" = "$engine" ] || fail "the engine is not in its own session"
tm kill-session -t tui
pass "the dashboard started an engine ($engine) in its own session; terminal gone"

db=$(find "$ROOT" -name manufacturing.db | head -1)
wait_true "$WAIT_S" test -n "$(find "$ROOT" -name manufacturing.db)"
db=$(find "$ROOT" -name manufacturing.db | head -1)
# Re-attach while boards are still in flight or just done: the transient
# engine stays while a viewer is attached.
tui_start attach --simulate pi5:2,pi4:1
wait_screen 'SIMULATED'
[ "$(engine_pids)" = "$engine" ] || fail "re-attach started another engine: $(engine_pids) vs $engine"
kill -0 "$engine" || fail "the engine died with its terminal"
wait_true "$WAIT_S" sql_ge "$db" "SELECT count(*) FROM attempts WHERE result = 'ok'" 3
[ "$(sql "$db" "SELECT count(*) FROM attempts WHERE result <> 'ok'")" = 0 ] || fail "an attempt did not finish ok"
wait_true 60 screen_count ' DONE ─' 3
for s in $(sql "$db" "SELECT serial FROM devices"); do
	screen | grep -q "SN $s" || fail "re-attached screen lacks board $s"
done
pass "the engine finished every board; the re-attached dashboard shows all 3 done, as the DB"

# A crash restores the terminal.
[ "$(tm display-message -p -t tui '#{alternate_on}')" = 1 ] || fail "the TUI is not on the alternate screen"
kill -SEGV "$(tui_pid)"
wait_true 60 test -s "$T/tui.rc"
[ "$(cat "$T/tui.rc")" = $((128 + 11)) ] || fail "exit status after SIGSEGV: $(cat "$T/tui.rc")"
[ "$(tm display-message -p -t tui '#{alternate_on}')" = 0 ] || fail "terminal left on the alternate screen"
pass "SIGSEGV: terminal restored, signal re-raised"
