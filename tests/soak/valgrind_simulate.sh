#!/bin/bash
# valgrind_simulate: `simulate` with 4 boards (pi5, pi5, pi4, zero2w) under
# valgrind memcheck (a non-ASan build: PROGRAM) and, when ASAN_PROGRAM names
# an --enable-asan build, under ASan/UBSan. Not part of `make check` (slow).
# Exit 0 only when every board passed and neither tool reported an error.
#   PROGRAM=... [ASAN_PROGRAM=...] tests/soak/valgrind_simulate.sh
set -uo pipefail
: "${PROGRAM:?PROGRAM must point at a non-ASan build of rpi-sb-provisioner}"
: "${RPI_SB_VPI_FIRMWARE:=${SHARED_DIR:-/work/shared}/fixtures/rpi-firmware}"
export RPI_SB_VPI_FIRMWARE
W=$(mktemp -d "${TMPDIR:-/tmp}/rpisb-vg.XXXXXX")
trap 'rm -rf "$W"' EXIT
rc=0
# The embedded default is built first without valgrind (its helper scripts
# run mkfs and friends, which are not ours to check).
"$PROGRAM" --root "$W/vg" simulate --until-done --headless --devices pi5:1 >/dev/null 2>&1
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --track-fds=no --log-file="$W/vg.log" \
	"$PROGRAM" --root "$W/vg" simulate --until-done --headless >"$W/vg.out" 2>&1
vrc=$?
errs=$(awk '/ERROR SUMMARY/ {print $4}' "$W/vg.log" | tail -1)
definite=$(awk '/definitely lost:/ {print $4}' "$W/vg.log" | tail -1)
echo "valgrind: exit $vrc, $(tail -1 "$W/vg.out"); ERROR SUMMARY ${errs:-?} errors, definitely lost ${definite:-0} bytes"
[ "$vrc" = 0 ] && [ "${errs:-1}" = 0 ] || { rc=1; grep -A12 -m5 -E 'Invalid|uninitialised|definitely lost in' "$W/vg.log"; }
if [ -n "${ASAN_PROGRAM:-}" ]; then
	printf 'leak:libsparse.so\nleak:libcrypto.so\n' >"$W/lsan.supp"
	LSAN_OPTIONS="suppressions=$W/lsan.supp" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
		"$ASAN_PROGRAM" --root "$W/asan" simulate --until-done --headless >"$W/asan.out" 2>"$W/asan.err"
	arc=$?
	reports=$(grep -cE 'AddressSanitizer|LeakSanitizer|runtime error:' "$W/asan.err")
	echo "asan/ubsan: exit $arc, $(tail -1 "$W/asan.out"); $reports sanitizer reports"
	[ "$arc" = 0 ] && [ "$reports" = 0 ] || { rc=1; grep -A10 -m3 -E 'Sanitizer|runtime error' "$W/asan.err"; }
fi
exit $rc
