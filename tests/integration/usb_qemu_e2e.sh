#!/bin/bash
# usb_qemu_e2e: scripts/qemu-e2e.sh under `make check`: virtual Pis as real USB
# gadgets on dummy_hcd in a QEMU guest, driven over libusb. Skips (77) only
# when qemu-system-x86_64 is missing outside CI; under CI=true it must run.
set -euo pipefail
: "${top_srcdir:?}" "${top_builddir:?}"
if ! command -v qemu-system-x86_64 >/dev/null && [ "${CI:-}" != true ]; then
	echo "SKIP: qemu-system-x86_64 not installed (scripts/install-deps.sh)"
	exit 77
fi
exec "$top_srcdir/scripts/qemu-e2e.sh" "$top_builddir"
