#!/bin/bash
# image_pipeline: the gold image through every mode, checked with real tools
# (fsck.vfat, mtools, cpio, simg2img, e2fsck, debugfs, openssl).
source "$top_srcdir/tests/integration/lib.sh"
source "$top_srcdir/tests/integration/image_common.sh"

GOLD="$T/gold.img"
CACHE="$T/cache"
IRD="$T/cryptroot.cpio.zst"
# The key loader refuses a private key others can read (the shared fixture
# is 0444): a private 0600 copy.
KEY="$T/example-private.pem"
(umask 077 && cp "$SHARED_DIR/fixtures/rpi-firmware/example-private.pem" "$KEY") &&
	chmod 0600 "$KEY" || fail "cannot make a private copy of the example key"
PUB="$SHARED_DIR/fixtures/rpi-firmware/example-public.pem"
make_gold "$GOLD" 64
"$top_srcdir/scripts/make-standin-initramfs.sh" "$IRD"
ROOT_OFF=$(part_offset "$GOLD" 2)
BOOT_BYTES=$(part_bytes "$GOLD" 1)
CONTAINER=$((48 * 1048576 + 1000))	# not a block multiple: rounded down

# ---- secure-boot
expect_rc 0 "$DRIVER" build secure-boot "$GOLD" "$CACHE" --initramfs "$IRD" --key "$KEY" \
	--storage sd --family 5 --container "$CONTAINER"
[ "$(kv boot_hit)" = 0 ] && [ "$(kv rootfs_hit)" = 0 ] || fail "first build was a cache hit"
cold=$(kv seconds)
BOOTIMG=$(kv boot_img) BOOTSIG=$(kv boot_sig) BOOTFS=$(kv bootfs_simg) ROOTFS=$(kv rootfs_simg)
[ "$(kv bootfs_bytes)" = $(( (BOOT_BYTES + 1048575) / 1048576 * 1048576 )) ] ||
	fail "bootfs is $(kv bootfs_bytes) bytes, boot partition is $BOOT_BYTES"
[ "$(kv rootfs_bytes)" = $((48 * 1048576)) ] || fail "rootfs is $(kv rootfs_bytes) bytes"
fsck.vfat -n "$BOOTIMG" >/dev/null || fail "boot.img is not a clean FAT"
mtype -i "$BOOTIMG" ::/cmdline.txt >"$T/cmdline"
grep -Eq 'root=|rootfstype=|rootwait|quiet' "$T/cmdline" && fail "cmdline.txt kept root options"
grep -q 'console=serial0,115200' "$T/cmdline" || fail "cmdline.txt lost its console"
mtype -i "$BOOTIMG" ::/config.txt >"$T/config"
grep -qx '#auto_initramfs=1' "$T/config" || fail "auto_initramfs not commented out"
tail -2 "$T/config" | tr -d '\r' | diff - <(printf 'initramfs initramfs8\nlock_device_private_key=1\n') ||
	fail "config.txt does not end with initramfs8 + lock_device_private_key"
mdir -i "$BOOTIMG" ::/ | grep -q 'kernel_2712.img' || fail "kernel_2712.img missing from boot.img"
pass "boot.img: clean FAT$(kv boot_img_fat_bits), cmdline and config rewritten"

mcopy -o -i "$BOOTIMG" ::/initramfs8 "$T/initramfs8"
if command -v cpio >/dev/null; then
	zstd -dc "$T/initramfs8" | cpio -t --quiet >"$T/ird.list"
	for v in 6.6.51+rpt-rpi-2712 6.6.51+rpt-rpi-v8; do
		for m in drivers/md/dm-crypt drivers/md/dm-mod crypto/xts crypto/chacha_generic; do
			grep -qx "usr/lib/modules/$v/kernel/$m.ko" "$T/ird.list" || fail "initramfs lacks $v $m"
		done
		grep -qx "usr/lib/modules/$v/modules.dep" "$T/ird.list" || fail "initramfs lacks $v modules.dep"
	done
	grep -q 'stale.ko' "$T/ird.list" && fail "initramfs kept the old usr/lib/modules"
	zstd -dc "$T/initramfs8" | cpio -i --quiet --to-stdout init | grep -q RPI-SB-VPI-STANDIN ||
		fail "stand-in marker lost"
	zstd -dc "$T/initramfs8" | cpio -i --quiet --to-stdout usr/bin/init_cryptroot.sh | grep -q mmcblk0p2 ||
		fail "sd storage must keep mmcblk0"
	pass "initramfs8: modules of both flavours, marker kept"
else
	echo "SKIP part: cpio not installed, initramfs listing not checked"
fi

simg2img "$BOOTFS" "$T/bootfs.raw"
fsck.vfat -n "$T/bootfs.raw" >/dev/null || fail "boot partition is not a clean FAT"
mdir -i "$T/bootfs.raw" ::/ | awk '{print $1"."$2}' | grep -E '^(boot|config)\.' | sort | tr '\n' ' ' |
	grep -qx 'boot.img boot.sig config.txt ' || fail "boot partition files: $(mdir -i "$T/bootfs.raw" ::/)"
mtype -i "$T/bootfs.raw" ::/boot.img | cmp - "$BOOTIMG" || fail "boot.img in the partition differs"
[ "$(mtype -i "$T/bootfs.raw" ::/config.txt)" = "$(printf 'boot_ramdisk=1\nuart_2ndstage=1')" ] ||
	fail "boot partition config.txt is wrong"
[ "$(head -1 "$BOOTSIG")" = "$(sha256sum "$BOOTIMG" | cut -c1-64)" ] || fail "boot.sig hash line"
sighex=$(sed -n 's/^rsa2048: //p' "$BOOTSIG")
[ ${#sighex} = 512 ] || fail "boot.sig has no 512-hex rsa2048 line"
printf "$(printf '%s' "$sighex" | sed 's/../\\x&/g')" >"$T/sig.bin"
openssl dgst -sha256 -verify "$PUB" -signature "$T/sig.bin" "$BOOTIMG" >/dev/null ||
	fail "boot.sig does not verify with the public key"
pass "boot partition: FAT32 with boot.img, verified boot.sig, ramdisk config.txt"

simg2img "$ROOTFS" "$T/rootfs.raw"
[ "$(stat -c %s "$T/rootfs.raw")" = $((48 * 1048576)) ] || fail "expanded rootfs size"
e2fsck -fn "$T/rootfs.raw" >"$T/e2fsck.out" 2>&1 || { cat "$T/e2fsck.out"; fail "rootfs not clean"; }
# one debugfs session per image: stat of the interesting files, listings of
# directories, contents of two files; everything but times and checksums must match
{
	for p in /usr/bin/hello /usr/bin/hello-hardlink /usr/bin/suid-helper /etc/shadow /home/pi/.bashrc /bin; do
		echo "stat $p"
	done
	for d in / /usr/bin /etc /home/pi /usr/lib/modules/6.6.51+rpt-rpi-v8/kernel/crypto; do
		echo "ls -l $d"
	done
	echo "cat /usr/bin/hello"
	echo "cat /etc/shadow"
} >"$T/dbg.cmds"
debugfs -f "$T/dbg.cmds" "$GOLD?offset=$ROOT_OFF" 2>/dev/null | grep -aEiv 'time|checksum|^debugfs' >"$T/dbg.gold"
debugfs -f "$T/dbg.cmds" "$T/rootfs.raw" 2>/dev/null | grep -aEiv 'time|checksum|^debugfs' >"$T/dbg.new"
# ls -l prints dates: keep inode, mode, owner, group, size, name
sed -E 's/^( *[0-9]+ +[0-7]+ \([0-9]+\) +[0-9]+ +[0-9]+ +[0-9]+) +[0-9]+-[A-Za-z]+-[0-9]+ [0-9:]+ /\1 /' -i "$T/dbg.gold" "$T/dbg.new"
grep -aq 'user.rpi-sb-provisioner' "$T/dbg.gold" || fail "debugfs listing of the gold image is incomplete"
diff "$T/dbg.gold" "$T/dbg.new" || fail "root file system differs after the copy"
grep -a -A4 'Inode: .*regular' "$T/dbg.new" | grep -q 'Links: 2' || fail "hard link lost"
grep -aq 'security.capability' "$T/dbg.new" || fail "file capability lost"
grep -aq 'Mode:  04755' "$T/dbg.new" || fail "setuid lost"
pass "rootfs: fills the container, e2fsck clean, owners/modes/xattr/cap/hard link kept"

expect_rc 0 "$DRIVER" build secure-boot "$GOLD" "$CACHE" --initramfs "$IRD" --key "$KEY" \
	--storage sd --family 5 --container "$CONTAINER"
[ "$(kv boot_hit)" = 1 ] && [ "$(kv rootfs_hit)" = 1 ] || fail "second build was not a cache hit"
pass "warm cache: hit (cold ${cold}s, warm $(kv seconds)s)"

# the rootfs-mounted hook point: edit the fitted file system, then it is sparse
printf 'per-device file from the hook\n' >"$T/hookfile"
printf 'write %s /etc/provisioned-by-hook\n' "$T/hookfile" >"$T/root-edit.cmds"
expect_rc 0 "$DRIVER" build secure-boot "$GOLD" "$CACHE" --initramfs "$IRD" --key "$KEY" \
	--storage sd --family 5 --container "$CONTAINER" --root-edit "$T/root-edit.cmds"
[ "$(kv boot_hit)" = 1 ] && [ "$(kv rootfs_hit)" = 0 ] || fail "a root hook must rebuild only the rootfs"
simg2img "$(kv rootfs_simg)" "$T/rootfs-hook.raw"
e2fsck -fn "$T/rootfs-hook.raw" >/dev/null 2>&1 || fail "rootfs edited by the hook is not clean"
[ "$(debugfs -R 'cat /etc/provisioned-by-hook' "$T/rootfs-hook.raw" 2>/dev/null)" = "per-device file from the hook" ] ||
	fail "the hook's change is not in rootfs.simg"
pass "root hook: its edit of the fitted file system is in rootfs.simg"

# ---- fde-only on NVMe: no boot.sig, device renamed in the initramfs
expect_rc 0 "$DRIVER" build fde-only "$GOLD" "$CACHE" --initramfs "$IRD" --storage nvme --family 4
[ "$(kv boot_hit)" = 0 ] || fail "fde-only reused the secure-boot entry"
simg2img "$(kv bootfs_simg)" "$T/fde.raw"
mdir -i "$T/fde.raw" ::/ | grep -q '^boot *sig' && fail "fde-only boot partition has a boot.sig"
mcopy -o -i "$(kv boot_img)" ::/initramfs8 "$T/initramfs8.nvme"
if command -v cpio >/dev/null; then
	zstd -dc "$T/initramfs8.nvme" | cpio -i --quiet --to-stdout usr/bin/init_cryptroot.sh >"$T/icr"
	grep -q 'nvme0n1p2' "$T/icr" && ! grep -q mmcblk0 "$T/icr" || fail "mmcblk0 not replaced by nvme0n1"
fi
mdir -i "$(kv boot_img)" ::/ | grep -q 'kernel_2712' && fail "Pi 4 boot.img kept kernel_2712.img"
pass "fde-only (nvme, Pi 4): no boot.sig, init_cryptroot.sh uses nvme0n1, pruned for pi4"

# ---- fde-only on Zero 2 W: plain boot files + initramfs8
expect_rc 0 "$DRIVER" build fde-only "$GOLD" "$CACHE" --initramfs "$IRD" --family 2W
simg2img "$(kv bootfs_simg)" "$T/2w.raw"
fsck.vfat -n "$T/2w.raw" >/dev/null || fail "2W boot partition not clean"
mdir -i "$T/2w.raw" ::/ | grep -q initramfs8 || fail "2W boot partition lacks initramfs8"
mtype -i "$T/2w.raw" ::/cmdline.txt | grep -q 'root=' && fail "2W cmdline kept root="
pass "fde-only (2W): plain boot files + initramfs8"

# ---- naked
expect_rc 0 "$DRIVER" build naked "$GOLD" "$CACHE"
DISK=$(kv disk_simg)
simg2img "$DISK" "$T/disk.raw"
cmp -n 512 "$T/disk.raw" "$GOLD" || fail "MBR differs"
dd if="$T/disk.raw" of="$T/p2" bs=1M skip=$((ROOT_OFF / 1048576)) status=none
e2fsck -fn "$T/p2" >/dev/null 2>&1 || fail "naked root partition not clean"
cmp "$T/disk.raw" "$GOLD" || fail "expanded naked image differs from the gold image"
sz=$(stat -c %s "$DISK")
echo "naked: raw $(stat -c %s "$GOLD") bytes, sparse $sz bytes, ratio $(awk -v a="$(stat -c %s "$GOLD")" -v b="$sz" 'BEGIN{printf "%.1f", a/b}')"
[ "$sz" -lt $(( $(stat -c %s "$GOLD") / 4 )) ] || fail "naked sparse image is not much smaller"
pass "naked: only used blocks, expands to the gold image"

# free blocks are not carried: garbage left by a deleted file stays out
cp --sparse=always "$GOLD" "$T/dirty.img"
head -c $((4 * 1048576)) /dev/urandom >"$T/junk"
printf 'write %s /junk\nrm /junk\n' "$T/junk" | debugfs -w -f - "$T/dirty.img?offset=$ROOT_OFF" >/dev/null 2>&1
expect_rc 0 "$DRIVER" build naked "$T/dirty.img" "$CACHE"
[ "$(kv disk_file_bytes)" -lt $((sz + 1048576)) ] || fail "naked image carries freed blocks"
simg2img "$(kv disk_simg)" "$T/dirty.raw"
dd if="$T/dirty.raw" of="$T/p2d" bs=1M skip=$((ROOT_OFF / 1048576)) status=none
e2fsck -fn "$T/p2d" >/dev/null 2>&1 || fail "naked root partition (dirty source) not clean"
cmp <(debugfs -R "cat /usr/bin/hello" "$T/p2d" 2>/dev/null) <(debugfs -R "cat /usr/bin/hello" "$GOLD?offset=$ROOT_OFF" 2>/dev/null) ||
	fail "file content differs"
pass "naked: freed blocks of the source are left out ($(kv disk_file_bytes) bytes)"

# naked with a per-board edit: a private copy, edited, never cached
cat >"$T/disk-edit.sh" <<EOS
printf 'serial=%s\\n' 1234abcd >"$T/serial"
debugfs -w -R "write $T/serial /etc/board-serial" "\$1?offset=$ROOT_OFF" >/dev/null 2>&1
EOS
expect_rc 0 "$DRIVER" build naked "$GOLD" "$CACHE" --disk-edit "$T/disk-edit.sh"
CUSTOM=$(kv disk_simg)
case $CUSTOM in "$CACHE"/*) fail "a per-board image went into the cache" ;; esac
[ "$(ls "$(dirname "$CUSTOM")")" = disk.simg ] || fail "the edited copy was not deleted"
simg2img "$CUSTOM" "$T/custom.raw"
rm -rf "$(dirname "$CUSTOM")"
dd if="$T/custom.raw" of="$T/p2c" bs=1M skip=$((ROOT_OFF / 1048576)) status=none
e2fsck -fn "$T/p2c" >/dev/null 2>&1 || fail "edited naked root partition not clean"
[ "$(debugfs -R 'cat /etc/board-serial' "$T/p2c" 2>/dev/null)" = "serial=1234abcd" ] || fail "per-board edit missing"
debugfs -R 'stat /etc/board-serial' "$GOLD?offset=$ROOT_OFF" 2>&1 | grep -q 'not found' || fail "the edit touched the gold image"
pass "naked per-board edit: private copy edited, flashed image has it, gold untouched"
