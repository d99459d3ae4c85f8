#!/bin/sh
# Hook template: post-flash. Runs when a board has been written and verified
# and its manufacturing fields are known, before its record is final. A
# non-zero exit fails the board.
#
# Install (as root), for the mode of [station] mode:
#   install -m 0755 /usr/share/rpi-sb-provisioner/hooks/post-flash.sh \
#       /etc/rpi-sb-provisioner/scripts/sb-provisioner-post-flash.sh
#
# Arguments: $1 fastboot specifier, $2 serial (16 hex), $3 storage device.
# Environment: the TARGET_* variables of every hook, and the manufacturing
# fields in upper case: BOARDNAME SERIAL ETH_MAC WIFI_MAC BT_MAC MMC_SIZE
# MMC_CID RPI_DUID BOARD_REVISION PROCESSOR MEMORY MANUFACTURER SECURE
# JTAG_LOCKED EEPROM_WRITE_PROTECTED PUBKEY_PROGRAMMED DEVKEY_REVOKED
# SIGNED_BOOT_ENABLED OS_IMAGE_FILENAME OS_IMAGE_SHA256 CONNECT_REGISTERED
# CONNECT_DEVICE_ID EEPROM_SIZE EEPROM_JEDEC EEPROM_UNIQUE_ID
# BOOTLOADER_BUILD_TIMESTAMP CUSTOMER_KEY_FINGERPRINT CUSTOMER_KEY_LABEL
# (an unknown field is empty). See doc/flags-and-hooks.md.
set -eu

serial=${2:-}
echo "post-flash: board $serial (${BOARDNAME:-?}) on port ${TARGET_USB_PATH:-?}:" \
	"eth ${ETH_MAC:-?}, secure ${SECURE:-?}, image sha256 ${OS_IMAGE_SHA256:-?}"

# Example: print a label with the serial and the Ethernet MAC.
# label-print --serial "$serial" --mac "${ETH_MAC:-}"
