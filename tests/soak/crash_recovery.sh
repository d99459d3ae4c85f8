#!/bin/bash
# crash_recovery: the station is killed with SIGKILL at random moments while
# it provisions virtual boards, and started again each time on the same root
# (the boards' state dirs persist: a board fused before a kill stays fused).
# After every restart the database passes integrity_check; attempts cut short
# become `interrupted` (never left `running`), the ones cut short during an
# OTP write with the message saying so; devices rows are never duplicated;
# cache entries, once in place, never change (image-sha256/, a memo of the
# gold image's hash keyed by its inode and mtime, is not an entry). At the end every board is
# plugged in again and must provision cleanly; a board the station says may
# have its OTP programmed (cut short between otp-write-started and -finished)
# and that stays in the boot ROM gets the reprovision flag and one more try,
# as that message tells the operator.
#
#   PROGRAM=... tests/soak/crash_recovery.sh [KILLS] [SEED]
# Not part of `make check`; tests/integration/crash_recovery_short.sh runs it
# with 5 kills. Exit 0 only when every check held.
set -uo pipefail
: "${PROGRAM:?PROGRAM must point at the built rpi-sb-provisioner}"
: "${RPI_SB_VPI_FIRMWARE:=${SHARED_DIR:-/work/shared}/fixtures/rpi-firmware}"
export RPI_SB_VPI_FIRMWARE
KILLS=${1:-20} SEED=${2:-$$}
RANDOM=$SEED
W=${CRASH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/rpisb-crash.XXXXXX")}
[ -n "${CRASH_DIR:-}" ] || [ -n "${CRASH_KEEP:-}" ] || trap 'rm -rf "$W"' EXIT
ROOT="$W/root" SIM="$W/root/srv/rpi-sb-provisioner/simulate"
DB="$SIM/manufacturing.db"
DEVICES=${CRASH_DEVICES:-pi5:2,pi4:1,cm4:1,zero2w:1}
mkdir -p "$ROOT"
q() { sqlite3 -cmd ".timeout 5000" "$DB" "$1"; }
problems=0
problem() { echo "crash_recovery: PROBLEM: $*"; problems=$((problems + 1)); }
sim() { "$PROGRAM" --root "$ROOT" simulate --until-done --headless --devices "$DEVICES" "$@"; }
cache_sums() { # every file of every finished cache entry, with its hash
	(cd "$SIM/cache" 2>/dev/null && find . \( -path './.tmp-*' -o -path ./image-sha256 \) -prune -o -type f ! -name '*.lock' -print0 |
		sort -z | xargs -0r sha256sum) || true
}

cut_running=0 otp_cut=0 otp_said=0
echo "crash_recovery: $KILLS kills, devices $DEVICES, seed $SEED"
for i in $(seq 1 "$KILLS"); do
	# A run lasts ~10-20 s for these boards: kill anywhere in it.
	delay=$(( (RANDOM % 140) + 3 ))
	# Started directly (not through a function: $! must be the station itself).
	"$PROGRAM" --root "$ROOT" simulate --until-done --headless --devices "$DEVICES" \
		>"$W/run$i.out" 2>"$W/run$i.err" &
	pid=$!
	sleep "$(printf '%d.%d' $((delay / 10)) $((delay % 10)))"
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
		killed=yes
	else
		wait "$pid"
		killed="no (run ended first, exit $?)"
	fi
	[ -f "$DB" ] || continue
	running=$(q "SELECT count(*) FROM attempts WHERE result = 'running'")
	otp=$(q "SELECT count(*) FROM attempts a WHERE result = 'running' AND EXISTS (SELECT 1 FROM events s WHERE s.attempt_id = a.id AND s.state = 'otp-write-started') AND NOT EXISTS (SELECT 1 FROM events f WHERE f.attempt_id = a.id AND f.state = 'otp-write-finished')")
	cut_running=$((cut_running + running)); otp_cut=$((otp_cut + otp))
	ic=$(q "PRAGMA integrity_check")
	[ "$ic" = ok ] || problem "kill $i: integrity_check: $ic"
	tmp=$(find "$SIM/cache" -maxdepth 1 -name '.tmp-*' 2>/dev/null | wc -l)
	echo "crash_recovery: kill $i after $((delay / 10)).$((delay % 10)) s (killed: $killed): $running attempt(s) left running ($otp during an OTP write), integrity $ic, $tmp cache temp dir(s)"
	cache_sums >"$W/cache.now"
	if [ -f "$W/cache.before" ]; then
		# An entry already in place never changes (content-addressed, renamed in whole).
		join -j 2 <(sort -k2 "$W/cache.before") <(sort -k2 "$W/cache.now") | awk '$2 != $3 {print "changed: " $1}' >"$W/cache.diff"
		[ -s "$W/cache.diff" ] && problem "kill $i: cache entries changed: $(head -3 "$W/cache.diff")"
	fi
	mv "$W/cache.now" "$W/cache.before"
done

# Re-plug every board: a run that is not killed.
sim >"$W/final.out" 2>"$W/final.err"
grep -c 'OTP write cut short' "$W"/run*.err "$W/final.err" 2>/dev/null | awk -F: '{s += $2} END {print s + 0}' >"$W/said"
otp_said=$(cat "$W/said")
reflagged=0
if grep -q FAIL "$W/final.out"; then
	# Only a board the station said may hold the key hash may need the flag.
	if [ "$otp_cut" -gt 0 ]; then
		while read -r port model serial rest; do
			grep -q "$model" <<<"$model" || continue
			"$PROGRAM" --root "$ROOT" --config "$SIM/provisioner.ini" flags set "${serial: -8}" reprovision --once >/dev/null 2>&1 &&
				reflagged=$((reflagged + 1))
		done < <(grep -E '^board .* FAIL: bootstrap: .*(boot ROM|did not start)' "$W/final.out" | awk '{print $2, $3, $4}')
		[ "$reflagged" -gt 0 ] && sim >"$W/final2.out" 2>"$W/final2.err" && cp "$W/final2.out" "$W/final.out"
	fi
fi
grep '^board ' "$W/final.out" | sed 's/^/  /'
fails=$(grep -c '^board .* FAIL' "$W/final.out")
[ "$fails" = 0 ] || problem "$fails board(s) did not provision cleanly when plugged in again"
running=$(q "SELECT count(*) FROM attempts WHERE result = 'running'")
[ "$running" = 0 ] || problem "$running attempt(s) still running"
interrupted=$(q "SELECT count(*) FROM attempts WHERE result = 'interrupted'")
[ "$interrupted" = "$cut_running" ] || problem "$cut_running attempts were cut short, $interrupted are marked interrupted"
otp_rows=$(q "SELECT count(*) FROM attempts WHERE result = 'interrupted' AND error_message LIKE 'OTP write cut short%'")
[ "$otp_rows" = "$otp_cut" ] || problem "$otp_cut attempts were cut short in an OTP write, $otp_rows say so"
[ "$otp_said" -ge "$otp_cut" ] || problem "the station named $otp_said of $otp_cut boards cut short in an OTP write at start-up"
dups=$(q "SELECT count(*) - count(DISTINCT serial) FROM devices")
[ "$dups" = 0 ] || problem "$dups duplicated devices rows"
nboards=$(grep -c '^board ' "$W/final.out")
devrows=$(q "SELECT count(*) FROM devices")
[ "$devrows" = "$nboards" ] || problem "$nboards boards, $devrows devices rows"
orphans=$(q "SELECT count(*) FROM devices d LEFT JOIN attempts a ON a.id = d.attempt_id WHERE a.result IS NOT 'ok'")
[ "$orphans" = 0 ] || problem "$orphans devices rows without their ok attempt"
ic=$(q "PRAGMA integrity_check")
[ "$ic" = ok ] || problem "final integrity_check: $ic"
tmp=$(find "$SIM/cache" -maxdepth 1 -name '.tmp-*' | wc -l)
echo "crash_recovery: $KILLS kills: $cut_running attempts cut short, $interrupted marked interrupted," \
	"$otp_cut cut short during an OTP write ($otp_rows rows and $otp_said start-up messages say so)," \
	"$reflagged board(s) needed the reprovision flag; final run: $nboards boards, $fails failed;" \
	"devices rows $devrows, duplicates $dups; integrity_check $ic; cache temp dirs left $tmp (removed by the next build of their key)"
echo "crash_recovery: attempts by result: $(q "SELECT group_concat(result || '=' || n, ' ') FROM (SELECT result, count(*) n FROM attempts GROUP BY result)")"
[ "$problems" = 0 ]
