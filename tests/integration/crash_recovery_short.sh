#!/bin/bash
# crash_recovery_short: tests/soak/crash_recovery.sh with 5 SIGKILLs.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
printf 'leak:libsparse.so\nleak:libcrypto.so\n' >"$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
CRASH_DIR="$T/crash" "$top_srcdir/tests/soak/crash_recovery.sh" 5 4242 || fail "crash recovery found a problem (above)"
pass "5 kills recovered"
