#!/bin/bash
# tui_firstrun: with no configuration the dashboard opens on one screen that
# names every missing setting and offers a rehearsal; `s` starts one.
. "$top_srcdir/tests/tui/lib.sh"

tui_start
wait_screen 'not configured yet'
screen | grep -q 'No configuration file at' || fail "the missing file is not named"
screen | grep -q 'image.gold' || fail "the missing image setting is not named"
screen | grep -q 's: rehearse now' || fail "no rehearsal offered"
# The start-up message fades after a few seconds; compare without it.
wait_no_screen 'started an engine' 60
golden firstrun
keys s
wait_screen 'SIMULATED'
wait_screen '─ 9-1 '
pass "first run: what is missing in one screen; s rehearses on virtual boards"
keys q
wait_screen 'in flight|^$'
keys y
