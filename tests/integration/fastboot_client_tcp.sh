#!/bin/bash
# fastboot_client_tcp: the station's own fastboot client (src/proto, through
# tests/unit/fbclient_cli) drives the virtual Pi's fastboot gadget over TCP:
# getvar, FAIL text, oem, and flashing a raw image resparsed into 4 MiB pieces
# and a sparse image made by img2simg; the board's storage file is the oracle.
. "$top_srcdir/tests/integration/lib.sh"

FBC="$top_builddir/tests/unit/fbclient_cli"
[ -x "$FBC" ] || { echo "SKIP: $FBC not built (make check builds it)"; exit 77; }
"$PROGRAM" virtual-pi --help >/dev/null 2>&1 || { echo "SKIP: virtual-pi not available"; exit 77; }
command -v img2simg >/dev/null || { echo "SKIP: img2simg not installed"; exit 77; }

# The simulator prints its port on its first line; read it through a FIFO
# (blocking read with a deadline, no polling).
mkfifo "$T/vpi.fifo"
"$PROGRAM" virtual-pi --model pi5 --state "$T/board" --fastboot-tcp 0 >"$T/vpi.fifo" 2>"$T/vpi.err" &
VPI=$!
trap 'kill $VPI 2>/dev/null; wait $VPI 2>/dev/null; rm -rf "$T"' EXIT
exec 3<"$T/vpi.fifo"
read -r -t 20 -u 3 LINE || fail "virtual-pi did not start: $(cat "$T/vpi.err")"
PORT=$(printf '%s\n' "$LINE" | sed -n 's/.*tcp:127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p')
SERIAL=$(printf '%s\n' "$LINE" | sed -n 's/.* serial \([0-9a-f]*\) .*/\1/p')
[ -n "$PORT" ] && [ -n "$SERIAL" ] || fail "cannot parse virtual-pi banner: $LINE"
DEV="tcp:127.0.0.1:$PORT"

expect_rc 0 "$FBC" "$DEV" getvar version
expect_out '^version: 0\.4$'
expect_rc 0 "$FBC" "$DEV" getvar serialno
expect_out "^serialno: $SERIAL\$"
pass "getvar over TCP"

expect_rc 1 "$FBC" "$DEV" getvar no-such-variable
expect_out "getvar:no-such-variable'.*refused: Unknown variable"
pass "device FAIL text reaches the caller"

expect_rc 0 "$FBC" "$DEV" oem led PWR 0
expect_out '^OKAY|^\(bootloader\)'
pass "oem command"

# 24 MiB raw image: 3 parts random, 1 part zeros (becomes FILL), flashed whole-disk
# in pieces of at most 4 MiB each.
for i in $(seq 0 23); do
	if [ $((i % 4)) = 3 ]; then head -c 1048576 /dev/zero; else head -c 1048576 /dev/urandom; fi
done >"$T/a.raw"
SIZE=$(stat -c %s "$T/a.raw")
expect_rc 0 "$FBC" -S 0x400000 "$DEV" flash mmcblk0 "$T/a.raw"
cmp -n "$SIZE" "$T/a.raw" "$T/board/storage.img" || fail "storage differs from the raw image after a split flash"
pass "raw image resparsed into 4 MiB pieces lands byte-exact"

# A sparse image from the real img2simg, flashed in one piece over the first.
head -c 5242880 /dev/urandom >"$T/b.raw"
img2simg "$T/b.raw" "$T/b.simg"
expect_rc 0 "$FBC" "$DEV" flash mmcblk0 "$T/b.simg"
cmp -n 5242880 "$T/b.raw" "$T/board/storage.img" || fail "storage differs from the img2simg image"
# beyond b, the first image's bytes are untouched only if b's tail was DONT_CARE;
# img2simg covers exactly b, so a's remainder must still be there
cmp -i 5242880:5242880 -n $((SIZE - 5242880)) "$T/a.raw" "$T/board/storage.img" ||
	fail "flashing a sparse image disturbed blocks outside it"
pass "img2simg sparse image lands, rest of the disk kept"

# A size the device refuses: the client refuses above max-download-size itself.
expect_rc 1 "$FBC" -S 0x10 "$DEV" flash mmcblk0 "$T/b.simg"
pass "piece limit below one block is refused"
