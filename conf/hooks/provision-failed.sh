#!/bin/sh
# Hook template: provision-failed. Runs when any phase of a board fails. Its
# exit status is logged and otherwise ignored (the board has failed already).
#
# Install (as root), for the mode of [station] mode:
#   install -m 0755 /usr/share/rpi-sb-provisioner/hooks/provision-failed.sh \
#       /etc/rpi-sb-provisioner/scripts/sb-provisioner-provision-failed.sh
#
# Arguments depend on where it failed (PROVISION_FAILED_CONTEXT):
#   bootstrap:    $1 serial, $2 family (USB product id), $3 USB port path, $4 device node
#   provisioning: $1 fastboot specifier, $2 serial, $3 storage device
# PROVISION_FAILED_PERMANENT is 1 when retrying cannot help (a configuration
# or image problem), else 0. See doc/flags-and-hooks.md.
set -eu

context=${PROVISION_FAILED_CONTEXT:-unknown}
permanent=${PROVISION_FAILED_PERMANENT:-0}
echo "provision-failed: board ${TARGET_DEVICE_SERIAL:-unknown} on port" \
	"${TARGET_USB_PATH:-?} failed in $context (permanent: $permanent)"

# Example: light the jig's red LED; a permanent failure also stops the line.
# jig-led "${TARGET_USB_PATH:-}" fail
# [ "$permanent" = 1 ] && jig-stop-line
