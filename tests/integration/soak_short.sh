#!/bin/bash
# soak_short: tests/soak/soak.sh with 50 boards (8 ports, 10 % faults, a fixed
# seed): no crash, no record lost or duplicated, no wrong success, no failure
# without a fault to explain it.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
printf 'leak:libsparse.so\nleak:libcrypto.so\n' >"$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
SOAK_DIR="$T/soak" "$top_srcdir/tests/soak/soak.sh" 50 8 10 4242 || fail "the soak found a problem (above)"
pass "50 boards soaked"
