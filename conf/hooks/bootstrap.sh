#!/bin/sh
# Hook template: bootstrap. Runs when a board is found in USB boot mode, before
# any EEPROM or OTP work. A non-zero exit fails the board (nothing has been
# written to it yet).
#
# Install (as root), for the mode of [station] mode:
#   install -m 0755 /usr/share/rpi-sb-provisioner/hooks/bootstrap.sh \
#       /etc/rpi-sb-provisioner/scripts/sb-provisioner-bootstrap.sh
# (fde-provisioner-... or naked-provisioner-... for the other modes.)
#
# Arguments: $1 serial (8 hex, may be empty), $2 family (USB product id, e.g.
# 2712), $3 USB port path (e.g. 1-1.2), $4 USB device node.
# Environment: TARGET_DEVICE_SERIAL TARGET_DEVICE_FAMILY TARGET_USB_PATH
# TARGET_DEVICE_PATH RPI_DEVICE_STORAGE_TYPE GOLD_MASTER_OS_KIND.
# Output goes to the board's bootstrap.log. See doc/flags-and-hooks.md.
set -eu

serial=${1:-} family=${2:-} port=${3:-} node=${4:-}
echo "bootstrap: board ${serial:-unknown} (chip $family) on port $port ($node)"

# Example: light the jig's "busy" LED for this port.
# jig-led "$port" busy
