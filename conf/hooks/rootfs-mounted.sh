#!/bin/sh
# Hook template: rootfs-mounted. Runs right after bootfs-mounted, while the
# gold image's root file system is mounted. Changes made here go into what is
# written to the board (cached like bootfs-mounted: not per board).
#
# Install (as root), for the mode of [station] mode:
#   install -m 0755 /usr/share/rpi-sb-provisioner/hooks/rootfs-mounted.sh \
#       /etc/rpi-sb-provisioner/scripts/sb-provisioner-rootfs-mounted.sh
#
# Arguments: $1 the boot file system as a directory tree (its files: config.txt,
# cmdline.txt, ...), $2 the root file system mount point. In this version $2 is
# empty: the root file system is not presented as a directory yet (see
# doc/image-pipeline.md, Hooks).
# See doc/flags-and-hooks.md.
set -eu

boot=${1:-} root=${2:-}
echo "rootfs-mounted: boot tree $boot, root ${root:-(not presented)}"

# Example: record which line built the image.
# [ -n "$root" ] && echo "line=A" > "$root/etc/factory-line"
