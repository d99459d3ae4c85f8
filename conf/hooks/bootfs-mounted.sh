#!/bin/sh
# Hook template: bootfs-mounted. Runs for every board, before its storage is
# erased, on this board's own copy of the image: $1 is its boot files and $2
# its root file system, both as plain directory trees (nothing is mounted).
# What you write, remove, rename, chmod or chown there reaches this board's
# storage; only a partition whose tree changed is rebuilt (in secure-boot the
# boot image is signed again). A non-zero exit fails the board before
# anything is erased. While this hook (or rootfs-mounted) is enabled every
# board costs a private copy; chmod -x it to flash from the cache again.
#
# Install (as root), for the mode of [station] mode:
#   install -m 0755 /usr/share/rpi-sb-provisioner/hooks/bootfs-mounted.sh \
#       /etc/rpi-sb-provisioner/scripts/sb-provisioner-bootfs-mounted.sh
# (fde-provisioner-... or naked-provisioner-... for the other modes.)
#
# Arguments: $1 boot tree (config.txt, cmdline.txt, ...), $2 root tree.
# Environment: the TARGET_* variables and the manufacturing fields (SERIAL,
# ETH_MAC, ...) as post-flash gets them. See doc/flags-and-hooks.md and
# doc/provisioning.md ("Per-board customisation").
set -eu

boot=${1:-} root=${2:-}
echo "bootfs-mounted: board ${SERIAL:-?}: boot tree $boot, root tree $root"

# Example: enable the UART console on every board of this line.
# grep -q '^enable_uart=1' "$boot/config.txt" || echo 'enable_uart=1' >> "$boot/config.txt"
