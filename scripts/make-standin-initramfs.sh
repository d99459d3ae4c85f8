#!/bin/bash
# make-standin-initramfs.sh: a stand-in cryptroot initramfs for the virtual Pi.
#
#   scripts/make-standin-initramfs.sh OUT.cpio.zst
#
# Raspberry Pi's real pre-boot authentication initramfs comes from their
# package (pi-gen-micro); tests and rehearsals need something with the same
# shape: cpio newc + zstd, an `init`, `usr/bin/init_cryptroot.sh` that names
# the boot device `mmcblk0` (the station rewrites it for NVMe), a
# usr/lib/modules tree the station must drop, and the marker
# RPI-SB-VPI-STANDIN (a line in init and the file etc/RPI-SB-VPI-STANDIN) so
# nobody mistakes it for the real thing. It cannot boot a real board.
#
# The cpio is written by this script (no cpio tool needed), deterministic:
# fixed inode numbers and SOURCE_DATE_EPOCH time stamps.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUT.cpio.zst" >&2; exit 2; }
out=$1
command -v zstd >/dev/null || { echo "$0: zstd not found (package zstd)" >&2; exit 1; }
mtime=${SOURCE_DATE_EPOCH:-1704067200}
tmp="$out.tmp.$$"
trap 'rm -f "$tmp" "$tmp.zst"' EXIT
: >"$tmp"
ino=1000
off=0

# entry MODE NAME [DATA]: one newc record (header, name, data, 4-byte padding)
entry() {
	local mode=$1 name=$2 data=${3-} nlen size pad
	nlen=$((${#name} + 1))
	size=${#data}
	ino=$((ino + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$ino" "$mode" 0 0 1 "$mtime" "$size" 0 0 0 0 "$nlen" 0 >>"$tmp"
	printf '%s\0' "$name" >>"$tmp"
	off=$((off + 110 + nlen))
	pad=$(((4 - off % 4) % 4))
	head -c "$pad" /dev/zero >>"$tmp"
	off=$((off + pad))
	printf '%s' "$data" >>"$tmp"
	off=$((off + size))
	pad=$(((4 - off % 4) % 4))
	head -c "$pad" /dev/zero >>"$tmp"
	off=$((off + pad))
}

LC_ALL=C
dir=$((0040755)) file=$((0100644)) exe=$((0100755)) lnk=$((0120777))
entry "$dir" .
entry "$dir" etc
entry "$file" etc/RPI-SB-VPI-STANDIN "rpi-sb-provisioner stand-in cryptroot initramfs: not for real boards
"
entry "$dir" usr
entry "$dir" usr/bin
entry "$lnk" bin usr/bin
entry "$exe" init "#!/bin/sh
# RPI-SB-VPI-STANDIN: stand-in cryptroot initramfs for the virtual Pi
exec /usr/bin/init_cryptroot.sh
"
entry "$exe" usr/bin/init_cryptroot.sh "#!/bin/sh
# RPI-SB-VPI-STANDIN
# Unlock the root partition with the device-unique key, then switch root.
DEV=/dev/mmcblk0
KEY=\$(block-device-id \$DEV | rpi-fw-crypto hmac)
cryptsetup luksOpen /dev/mmcblk0p2 cryptroot --key-file=- <<K
\$KEY
K
mount /dev/mapper/cryptroot /sysroot && exec switch_root /sysroot /sbin/init
"
entry "$dir" usr/lib
entry "$dir" usr/lib/modules
entry "$dir" usr/lib/modules/0.0.0-standin
entry "$file" usr/lib/modules/0.0.0-standin/stale.ko "stale module the station must drop
"
entry 0 TRAILER!!!
pad=$(((512 - off % 512) % 512))
head -c "$pad" /dev/zero >>"$tmp"
zstd -q -f -6 "$tmp" -o "$tmp.zst"
mv -f "$tmp.zst" "$out"
