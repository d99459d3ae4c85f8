#!/bin/bash
# make-gold-image.sh: build a small pi-gen style gold image for tests and rehearsals.
#
#   scripts/make-gold-image.sh OUT.img [SIZE_MB]      (default 64 MiB, at least 48)
#
# The image is what Raspberry Pi OS's .img looks like, shrunk: an MBR (disk id
# 0x5eed1234), partition 1 FAT32 "bootfs" (type 0x0c) with config.txt,
# cmdline.txt, kernel and dtb stand-ins, partition 2 ext4 "rootfs" (type 0x83)
# with real files: modes 0755/0600/4755, non-root owners, a symlink, a hard
# link, an extended attribute, and kernel module trees for 2712 and v8.
#
# No root, no mounts, no loop devices: sfdisk, mkfs.vfat --offset, mtools
# (mcopy -i IMG@@OFFSET), mke2fs -d and debugfs. Deterministic: the same
# inputs give the same bytes (fixed UUIDs and ids, SOURCE_DATE_EPOCH for every
# time stamp), so caches keyed on the image's hash stay valid.
set -euo pipefail

usage() { echo "usage: $0 OUT.img [SIZE_MB]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
out=$1
size_mb=${2:-64}
case $size_mb in ''|*[!0-9]*) usage ;; esac
[ "$size_mb" -ge 48 ] || { echo "$0: SIZE_MB must be at least 48 (FAT32 needs ~33 MiB)" >&2; exit 2; }

for tool in sfdisk mkfs.vfat mcopy mmd mke2fs debugfs; do
	command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/sbin:/usr/sbin"
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "$0: $tool not found (packages: fdisk dosfstools mtools e2fsprogs)" >&2; exit 1; }
done

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}   # 2024-01-01T00:00:00Z
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
export TZ=UTC LC_ALL=C
export MTOOLS_SKIP_CHECK=1 MTOOLS_NO_VFAT=0
DISK_ID=5eed1234
FAT_ID=5EED0001
ROOT_UUID=5eed0002-0000-4000-8000-000000000002
HASH_SEED=5eed0003-0000-4000-8000-000000000003
KVER_2712=6.6.51+rpt-rpi-2712
KVER_V8=6.6.51+rpt-rpi-v8

# Layout in 512-byte sectors: boot at 4 MiB (36 MiB), root right after, to the end.
boot_start=8192
boot_sectors=$((36 * 2048))
root_start=$((boot_start + boot_sectors))
root_sectors=$((size_mb * 2048 - root_start))

work=$(mktemp -d "${TMPDIR:-/tmp}/gold.XXXXXX")
trap 'rm -rf "$work"' EXIT
tmpimg="$out.tmp.$$"
trap 'rm -rf "$work" "$tmpimg"' EXIT

# stand_in BYTES LABEL: deterministic filler bytes (not all zero) on stdout.
stand_in() {
	local bytes=$1 s="$2: rpi-sb-provisioner test stand-in, not a real binary. "
	while [ "${#s}" -lt "$bytes" ]; do s=$s$s; done
	printf '%s' "${s:0:$bytes}"
}

# ---- boot partition content
boot="$work/boot"
mkdir -p "$boot/overlays"
cat >"$boot/config.txt" <<'EOF'
# For more options and information see http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[cm4]
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
EOF
printf 'console=serial0,115200 console=tty1 root=PARTUUID=%s-02 rootfstype=ext4 fsck.repair=yes rootwait quiet\n' \
	"$DISK_ID" >"$boot/cmdline.txt"
stand_in 12288 "KERNEL_2712" >"$boot/kernel_2712.img"
stand_in 12288 "KERNEL8" >"$boot/kernel8.img"
for dtb in bcm2712-rpi-5-b bcm2712-rpi-500 bcm2712-rpi-cm5-cm5io bcm2711-rpi-4-b \
	bcm2711-rpi-400 bcm2711-rpi-cm4 bcm2710-rpi-zero-2-w; do
	{ printf '\xd0\x0d\xfe\xed'; stand_in 2044 "DTB $dtb"; } >"$boot/$dtb.dtb"
done
printf 'Device tree overlays would live here.\n' >"$boot/overlays/README"

# ---- root file system content (owners and xattrs are set afterwards by debugfs)
root="$work/root"
mkdir -p "$root"/{etc,home/pi,root,tmp,usr/bin,usr/sbin,usr/lib,var/log,boot/firmware}
ln -s usr/bin "$root/bin"
ln -s usr/lib "$root/lib"
ln -s usr/sbin "$root/sbin"
printf 'raspberrypi\n' >"$root/etc/hostname"
cat >"$root/etc/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
EOF
printf 'proc /proc proc defaults 0 0\nPARTUUID=%s-01 /boot/firmware vfat defaults 0 2\nPARTUUID=%s-02 / ext4 defaults,noatime 0 1\n' \
	"$DISK_ID" "$DISK_ID" >"$root/etc/fstab"
printf 'root:*:19723:0:99999:7:::\npi:$y$j9T$stand-in$hash:19723:0:99999:7:::\n' >"$root/etc/shadow"
{ printf '\x7fELF\x02\x01\x01\x00'; stand_in 8184 "HELLO"; } >"$root/usr/bin/hello"
{ printf '\x7fELF\x02\x01\x01\x00'; stand_in 4088 "SUID"; } >"$root/usr/bin/suid-helper"
ln "$root/usr/bin/hello" "$root/usr/bin/hello-hardlink"
ln -s hello "$root/usr/bin/hello-symlink"
printf '# ~/.bashrc\nalias ll="ls -l"\n' >"$root/home/pi/.bashrc"
for kver in "$KVER_2712" "$KVER_V8"; do
	mdir="$root/usr/lib/modules/$kver"
	mkdir -p "$mdir/kernel/drivers/net/usb" "$mdir/kernel/fs/vfat" "$mdir/kernel/drivers/md" \
		"$mdir/kernel/crypto"
	stand_in 3072 "KO r8152 $kver" >"$mdir/kernel/drivers/net/usb/r8152.ko"
	stand_in 2048 "KO vfat $kver" >"$mdir/kernel/fs/vfat/vfat.ko"
	# What the cryptroot initramfs needs (the peer's kernel_modules.list);
	# aes and xchacha12 are built in or aliases on Raspberry Pi kernels.
	stand_in 4096 "KO dm-crypt $kver" >"$mdir/kernel/drivers/md/dm-crypt.ko"
	for m in algif_skcipher xts adiantum nhpoly1305; do
		stand_in 1024 "KO $m $kver" >"$mdir/kernel/crypto/$m.ko"
	done
	printf 'kernel/drivers/net/usb/r8152.ko:\nkernel/fs/vfat/vfat.ko: kernel/fs/fat/fat.ko\nkernel/drivers/md/dm-crypt.ko:\nkernel/crypto/algif_skcipher.ko:\nkernel/crypto/xts.ko:\nkernel/crypto/adiantum.ko: kernel/crypto/nhpoly1305.ko\nkernel/crypto/nhpoly1305.ko:\n' >"$mdir/modules.dep"
done
chmod 0755 "$root/usr/bin/hello"
chmod 4755 "$root/usr/bin/suid-helper"
chmod 0600 "$root/etc/shadow"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp"
chmod 0644 "$root/etc/hostname" "$root/etc/os-release" "$root/etc/fstab" "$root/home/pi/.bashrc"
# Every time stamp from SOURCE_DATE_EPOCH (mke2fs -d and mcopy -m copy them).
find "$work" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# ---- partition table
truncate -s 0 "$tmpimg"
truncate -s "${size_mb}M" "$tmpimg"
sfdisk --quiet --no-reread --no-tell-kernel "$tmpimg" >/dev/null <<EOF
label: dos
label-id: 0x$DISK_ID
unit: sectors

start=$boot_start, size=$boot_sectors, type=c
start=$root_start, size=$root_sectors, type=83
EOF

# ---- FAT32 boot partition, files added with mtools (no mount)
# (its stderr only carries warnings about the small size and the lower-case label
# pi-gen uses; shown when it fails)
mkfs.vfat --invariant -F 32 -n bootfs -i "$FAT_ID" -S 512 -s 1 --offset="$boot_start" "$tmpimg" \
	$((boot_sectors / 2)) >/dev/null 2>"$work/mkfs.err" || { cat "$work/mkfs.err" >&2; exit 1; }
fat="$tmpimg@@$((boot_start * 512))"
mmd -i "$fat" ::/overlays
for f in "$boot"/*; do
	[ -f "$f" ] && mcopy -m -i "$fat" "$f" "::/${f##*/}"
done
mcopy -m -i "$fat" "$boot/overlays/README" ::/overlays/README

# ---- ext4 root partition
# resize=: room to grow to a 64 GiB card as a real pi-gen image can (resize2fs
# 1.47 cannot grow a tiny file system past its reserved GDT blocks).
mke2fs -q -F -t ext4 -b 4096 -I 256 -L rootfs -U "$ROOT_UUID" \
	-E "offset=$((root_start * 512)),hash_seed=$HASH_SEED,root_owner=0:0,resize=16777216" \
	-d "$root" "$tmpimg" $((root_sectors / 8)) >/dev/null
# Owners (mke2fs -d copied the builder's uid), time stamps it cannot copy
# (ctime), and an extended attribute, all through debugfs.
cmds="$work/debugfs.cmds"
: >"$cmds"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort) | while read -r p; do
	p=${p#.}
	owner=0 group=0
	case $p in
	/home/pi|/home/pi/*) owner=1000 group=1000 ;;
	/etc/shadow) group=42 ;;
	esac
	printf 'sif "%s" uid %s\nsif "%s" gid %s\n' "$p" "$owner" "$p" "$group" >>"$cmds"
done
(cd "$root" && find . | LC_ALL=C sort) | while read -r p; do
	p=${p#.}
	p=${p:-/}
	for t in atime ctime mtime crtime; do
		printf 'sif "%s" %s @%s\n' "$p" "$t" "$SOURCE_DATE_EPOCH" >>"$cmds"
	done
done
printf 'ea_set /usr/bin/hello user.rpi-sb-provisioner gold-image-test\n' >>"$cmds"
debugfs -w -f "$cmds" "$tmpimg?offset=$((root_start * 512))" >/dev/null 2>"$work/debugfs.err" || {
	cat "$work/debugfs.err" >&2
	exit 1
}
if grep -v '^debugfs ' "$work/debugfs.err" | grep -q .; then
	cat "$work/debugfs.err" >&2
	echo "$0: debugfs reported errors" >&2
	exit 1
fi
mv -f "$tmpimg" "$out"
