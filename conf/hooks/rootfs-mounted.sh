#!/bin/sh
# Hook template: rootfs-mounted. Runs right after bootfs-mounted, for every
# board, before its storage is erased, with the same two directory trees of
# this board's own copy: $1 its boot files, $2 its root file system. What you
# change under $2 reaches this board's root file system (only the changes are
# written; untouched files keep their bytes). A non-zero exit fails the board
# before anything is erased.
#
# Install (as root), for the mode of [station] mode:
#   install -m 0755 /usr/share/rpi-sb-provisioner/hooks/rootfs-mounted.sh \
#       /etc/rpi-sb-provisioner/scripts/sb-provisioner-rootfs-mounted.sh
#
# Arguments: $1 boot tree, $2 root tree.
# Environment: the TARGET_* variables and the manufacturing fields (SERIAL,
# ETH_MAC, ...) as post-flash gets them. See doc/flags-and-hooks.md and
# doc/provisioning.md ("Per-board customisation").
set -eu

boot=${1:-} root=${2:-}
echo "rootfs-mounted: board ${SERIAL:-?}: boot tree $boot, root tree $root"

# Example: give each board its own host name from its serial.
# [ -n "${SERIAL:-}" ] && echo "unit-${SERIAL}" > "$root/etc/hostname"
