#!/bin/sh
# Hook template: bootfs-mounted. Runs while the gold image's boot file system
# is mounted, before it is packed (and, in secure-boot, signed). Changes made
# here go into what is written to the board. The prepared image is cached and
# shared by every board with the same inputs: this hook runs when a cache entry
# is built, not once per board, so make no per-board changes here.
#
# Install (as root), for the mode of [station] mode:
#   install -m 0755 /usr/share/rpi-sb-provisioner/hooks/bootfs-mounted.sh \
#       /etc/rpi-sb-provisioner/scripts/sb-provisioner-bootfs-mounted.sh
#
# Arguments: $1 the boot file system as a directory tree (its files: config.txt,
# cmdline.txt, ...), $2 the root file system mount point. In this version $2 is
# empty: the root file system is not presented as a directory yet (see
# doc/image-pipeline.md, Hooks).
# See doc/flags-and-hooks.md.
set -eu

boot=${1:-} root=${2:-}
echo "bootfs-mounted: boot tree $boot, root ${root:-(not presented)}"

# Example: enable the UART console on every board of this line.
# grep -q '^enable_uart=1' "$boot/config.txt" || echo 'enable_uart=1' >> "$boot/config.txt"
