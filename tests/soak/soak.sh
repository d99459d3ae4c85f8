#!/bin/bash
# soak: boards streamed through `simulate` with random faults, then the
# records checked with sqlite3. Not part of `make check` (500 boards take a
# while); tests/integration/soak_short.sh runs it with 50.
#
#   PROGRAM=path/to/rpi-sb-provisioner tests/soak/soak.sh [BOARDS] [PORTS] [FAULT%] [SEED]
#
# Two segments on one root and one database, because the mode is chosen per
# board family, not per board:
#   A (4/5 of the boards): the embedded default: Pi 5 and Pi 4 families in
#     secure-boot (OTP armed, virtual boards), Zero 2 W in fde-only;
#   B (the rest): Pi 5 family naked, CM4 fde-only, Zero 2 W naked (a Pi 4B or
#     Pi 400 does not come back in USB boot mode without secure-boot's rpiboot
#     GPIO, so B leaves them out).
# Prints boards ok, failed by phase and reason, crashes, records lost or
# duplicated, wrong successes, station RSS (after 50 boards and at the end),
# fds and threads at the end. Exit 0 only when crashes, lost/duplicated
# records, wrong successes and unexplained failures are all 0.
set -uo pipefail
: "${PROGRAM:?PROGRAM must point at the built rpi-sb-provisioner}"
here=$(cd "$(dirname "$0")" && pwd)
: "${RPI_SB_VPI_FIRMWARE:=$(cd "$here/../.." && pwd)/../shared/fixtures/rpi-firmware}"
[ -d "$RPI_SB_VPI_FIRMWARE" ] || RPI_SB_VPI_FIRMWARE="${SHARED_DIR:-/work/shared}/fixtures/rpi-firmware"
export RPI_SB_VPI_FIRMWARE
BOARDS=${1:-500} PORTS=${2:-8} RATE=${3:-10} SEED=${4:-$RANDOM}
W=${SOAK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/rpisb-soak.XXXXXX")}
ROOT="$W/root"
SIM="$ROOT/srv/rpi-sb-provisioner/simulate"
DB="$SIM/manufacturing.db"
mkdir -p "$ROOT"
[ -n "${SOAK_DIR:-}" ] || [ -n "${SOAK_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
q() { sqlite3 -cmd ".timeout 5000" "$DB" "$1"; }

NA=$((BOARDS * 4 / 5)); NB=$((BOARDS - NA))
crashes=0
run_segment() { # NAME N MIX [simulate args...]
	local name=$1 n=$2 mix=$3; shift 3
	[ "$n" -gt 0 ] || return 0
	echo "soak: segment $name: $n boards, $PORTS ports, mix $mix, fault rate $RATE%, seed $SEED"
	"$PROGRAM" --root "$ROOT" "$@" simulate --headless --boards "$n" --ports "$PORTS" \
		--mix "$mix" --fault-rate "$RATE" --seed "$SEED" >"$W/$name.out" 2>"$W/$name.err"
	local rc=$?
	# 0: all as expected; 1: some board failed without a fault to explain it
	# (counted below). Anything else, or a sanitizer report, is a crash.
	if [ $rc -gt 1 ] || grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error:|Segmentation|Aborted' "$W/$name.err"; then
		crashes=$((crashes + 1))
		echo "soak: segment $name CRASHED (exit $rc); stderr tail:"; tail -20 "$W/$name.err"
	fi
	grep -E '^simulate: (stream|stats)' "$W/$name.out" | sed 's/^/  /'
}

run_segment A "$NA" "pi5:2,pi500:1,cm5:1,pi4:1,pi400:1,cm4:1,zero2w:1"
# Segment B's configuration: the embedded default, other modes per family.
if [ "$NB" -gt 0 ]; then
	ini="$W/modes-b.ini"
	sed -e 's/^mode = secure-boot$/mode = fde-only/' -e '/^\[family.2W\]/,$d' "$SIM/provisioner.ini" >"$ini"
	printf '[family.5]\nmode = naked\n\n[family.4]\nmode = fde-only\n\n[family.2W]\nmode = naked\n' >>"$ini"
	run_segment B "$NB" "pi5:1,pi500:1,cm5:1,cm4:2,zero2w:1" --config "$ini"
fi

cat "$W"/*.out | grep '^stream board ' >"$W/boards.txt"
total=$(wc -l <"$W/boards.txt")
ok=$(grep -c ' PASS \[' "$W/boards.txt")
failed=$(grep -c ' FAIL' "$W/boards.txt")
echo
echo "soak: boards: $total of $BOARDS reported, $ok ok, $failed failed"
echo "soak: failed by phase and reason (fault injected -> what the station said):"
grep ' FAIL' "$W/boards.txt" | sed -E 's/^stream board [0-9]+ [^ ]+ ([^ ]+) [0-9a-f]+ FAIL: ([a-z]+): (.*) \[fault: ([a-z-]+)[^]]*\].*/\2 | \4 | \3/' |
	sed -E 's/[0-9a-f]{16}/<serial>/g; s/[0-9]+/N/g' | cut -c1-150 | sort | uniq -c | sort -rn | sed 's/^/  /'

# Records: every attempt final, every ok board exactly one devices row and
# one ok attempt, no failed board with a devices row or an ok attempt.
running=$(q "SELECT count(*) FROM attempts WHERE result = 'running' OR ended_at IS NULL")
lost=0 dup=0 bad=0 wrong=0
while read -r serial; do
	n=$(q "SELECT count(*) FROM devices WHERE serial = '$serial'")
	a=$(q "SELECT count(*) FROM attempts WHERE serial = '$serial' AND result = 'ok'")
	[ "$n" -eq 0 ] && lost=$((lost + 1))
	[ "$n" -gt 1 ] || [ "$a" -gt 1 ] && dup=$((dup + 1))
	[ "$a" -eq 0 ] && lost=$((lost + 1))
done < <(grep ' PASS \[' "$W/boards.txt" | awk '{print $6}')
while read -r serial fault; do
	n=$(q "SELECT count(*) FROM devices WHERE serial = '$serial'")
	a=$(q "SELECT count(*) FROM attempts WHERE serial = '$serial' AND result = 'ok'")
	[ "$n" -gt 0 ] || [ "$a" -gt 0 ] && bad=$((bad + 1))
done < <(grep ' FAIL' "$W/boards.txt" | awk '{print $6}')
wrong=$(grep ' PASS \[fault: bitflip' "$W/boards.txt" | wc -l)
devrows=$(q "SELECT count(*) FROM devices")
okatt=$(q "SELECT count(*) FROM attempts WHERE result = 'ok'")
orphans=$(q "SELECT count(*) FROM devices d LEFT JOIN attempts a ON a.id = d.attempt_id WHERE a.result IS NOT 'ok'")
attempts=$(q "SELECT count(*) FROM attempts")
integrity=$(q "PRAGMA integrity_check")
unexplained=$(grep ' FAIL' "$W/boards.txt" | grep -Ec '\[fault: (none|slow-enum)')
echo "soak: crashes: $crashes"
echo "soak: records: $attempts attempts ($running not final), $okatt ok attempts, $devrows devices rows," \
	"$orphans devices rows without their ok attempt; integrity_check: $integrity"
echo "soak: records lost: $lost, duplicated: $dup, failed boards with a devices row or ok attempt: $bad"
echo "soak: wrong successes (flipped bit recorded ok): $wrong"
echo "soak: failures without a fault to explain them: $unexplained"
for f in "$W"/*.out; do
	s50=$(grep -m1 '^simulate: stats progress: boards 50 ' "$f" || grep -m1 '^simulate: stats progress' "$f")
	send=$(grep '^simulate: stats end' "$f")
	echo "soak: $(basename "$f" .out): RSS ${s50:+after $(awk '{print $5}' <<<"$s50") boards $(awk '{print $7}' <<<"$s50") KiB (fds $(awk '{print $9}' <<<"$s50"), threads $(awk '{print $11}' <<<"$s50")), }at the end $(awk '{print $7}' <<<"$send") KiB after $(awk '{print $5}' <<<"$send") boards; fds $(awk '{print $9}' <<<"$send"), threads $(awk '{print $11}' <<<"$send")"
done
[ "$crashes" = 0 ] && [ "$running" = 0 ] && [ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "$bad" = 0 ] &&
	[ "$wrong" = 0 ] && [ "$orphans" = 0 ] && [ "$integrity" = ok ] && [ "$unexplained" = 0 ] &&
	[ "$total" = "$BOARDS" ] && [ "$devrows" = "$okatt" ] && [ "$okatt" = "$ok" ]
