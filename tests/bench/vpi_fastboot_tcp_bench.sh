#!/bin/bash
# vpi_fastboot_tcp_bench: flash throughput of the virtual Pi's fastboot gadget
# driven by Debian's real `fastboot` client over TCP (unlimited link), into a
# plain partition and into mapper/cryptroot (user-space AES-XTS). Prints
# figures; not a pass/fail test. Usage: PROGRAM=... vpi_fastboot_tcp_bench.sh [MiB]
set -euo pipefail
: "${PROGRAM:?PROGRAM must point at a built rpi-sb-provisioner (use a non-ASan build)}"
MIB=${1:-256}
T=$(mktemp -d "${TMPDIR:-/tmp}/vpi-bench.XXXXXX")
"$PROGRAM" virtual-pi --model pi5 --state "$T/pi5" --fastboot-tcp 0 >"$T/out" 2>"$T/err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$T"' EXIT
for _ in $(seq 1 200); do grep -q 'fastboot on tcp:' "$T/out" && break; sleep 0.05; done
PORT=$(sed -n 's/.*tcp:127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/out")
fb() { timeout 600 fastboot -s "tcp:127.0.0.1:$PORT" "$@" 2>&1; }

fb oem partinit mmcblk0 DOS >/dev/null
fb oem partapp mmcblk0 0c $(( (MIB + 4) * 1024 * 1024 )) >/dev/null
fb oem partapp mmcblk0 83 >/dev/null
fb oem fwcrypto init >/dev/null
fb oem cryptinit mmcblk0p2 root >/dev/null
fb oem cryptopen mmcblk0p2 cryptroot >/dev/null

head -c "${MIB}M" /dev/urandom >"$T/img.raw"      # incompressible: every block RAW
img2simg "$T/img.raw" "$T/img.simg"
SIZE=$(stat -c %s "$T/img.simg")

rate() { # label start end
	awk -v l="$1" -v s="$2" -v e="$3" -v b="$SIZE" \
		'BEGIN { t = (e - s) / 1e9; printf "%-44s %7.2f s  %7.1f MB/s\n", l, t, b / t / 1e6 }'
}
s=$(date +%s%N); fb flash mmcblk0p1 "$T/img.simg" >/dev/null; e=$(date +%s%N)
rate "flash ${MIB} MiB sparse -> mmcblk0p1 (plain)" "$s" "$e"
s=$(date +%s%N); fb flash mapper/cryptroot "$T/img.simg" >/dev/null; e=$(date +%s%N)
rate "flash ${MIB} MiB sparse -> mapper/cryptroot" "$s" "$e"
