#!/bin/bash
# memory_split: the station's flashing memory measured apart from the virtual
# Pi's. The station's fastboot client (tests/unit/fbclient_cli, the src/proto
# client provision.c uses) flashes a sparse image over TCP to
# `rpi-sb-provisioner virtual-pi --fastboot-tcp 0` running in another process;
# the client's peak RSS (/usr/bin/time) and the virtual Pi's (VmHWM of a fresh
# process per image) are printed per image size. Not part of make check.
#
#   tests/bench/memory_split.sh BUILDDIR [BUILDDIR_B]
#
# Environment: MIBS (image sizes in MiB, default "64 256 768").
set -euo pipefail
MIBS=${MIBS:-64 256 768}
W=$(mktemp -d "${TMPDIR:-/tmp}/memsplit.XXXXXX")
VPI=
trap '[ -n "$VPI" ] && kill "$VPI" 2>/dev/null; rm -rf "$W"' EXIT

echo "# memory_split $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %8s %12s %14s %14s\n' build "image" "sparse MB" "client peak" "virtual-pi peak"
for mib in $MIBS; do
	# three quarters random, one quarter zeros (FILL chunks)
	for i in $(seq 0 $((mib - 1))); do
		if [ $((i % 4)) = 3 ]; then head -c 1048576 /dev/zero; else head -c 1048576 /dev/urandom; fi
	done >"$W/img.raw"
	img2simg "$W/img.raw" "$W/img.simg"
	rm -f "$W/img.raw"
	label=A
	for b in "$@"; do
		B=$(cd "$b" && pwd)
		rm -rf "$W/board"
		"$B/rpi-sb-provisioner" virtual-pi --model pi5 --state "$W/board" --fastboot-tcp 0 \
			>"$W/vpi.out" 2>"$W/vpi.err" &
		VPI=$!
		for _ in $(seq 1 200); do grep -q 'tcp:127' "$W/vpi.out" && break; sleep 0.05; done
		port=$(sed -n 's/.*tcp:127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$W/vpi.out" | head -1)
		/usr/bin/time -f '%M' -o "$W/client.kb" "$B/tests/unit/fbclient_cli" "tcp:127.0.0.1:$port" \
			flash mmcblk0 "$W/img.simg" >/dev/null
		vpi_kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$VPI/status")
		kill "$VPI"
		wait "$VPI" 2>/dev/null || true
		VPI=
		printf '%-6s %5s MiB %12.1f %10.1f MiB %10.1f MiB\n' "$label" "$mib" \
			"$(echo "$(stat -c %s "$W/img.simg") / 1000000" | bc -l)" \
			"$(echo "$(cat "$W/client.kb") / 1024" | bc -l)" "$(echo "$vpi_kb / 1024" | bc -l)"
		label=B
	done
done
