#!/bin/sh
# Hook template: provision-started. Runs when the provisioner starts on a board
# in fastboot, before its storage is written. A non-zero exit fails the board
# before anything is erased.
#
# Install (as root), for the mode of [station] mode:
#   install -m 0755 /usr/share/rpi-sb-provisioner/hooks/provision-started.sh \
#       /etc/rpi-sb-provisioner/scripts/sb-provisioner-provision-started.sh
#
# Arguments: $1 fastboot specifier (as `fastboot -s` names the board),
# $2 serial (16 hex), $3 storage device (e.g. mmcblk0, nvme0n1).
# Environment: TARGET_DEVICE_SERIAL TARGET_DEVICE_FAMILY TARGET_USB_PATH
# TARGET_DEVICE_PATH FASTBOOT_DEVICE_SPECIFIER RPI_DEVICE_STORAGE_TYPE
# GOLD_MASTER_OS_KIND. See doc/flags-and-hooks.md.
set -eu

spec=${1:-} serial=${2:-} storage=${3:-}
echo "provision-started: board $serial, writing $storage (${RPI_DEVICE_STORAGE_TYPE:-?}) via $spec"

# Example: refuse a board an external system has not released for this line.
# mes-check "$serial" || { echo "board $serial is not released by the MES"; exit 1; }
