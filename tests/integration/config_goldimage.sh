#!/bin/bash
# config_goldimage: scripts/make-gold-image.sh builds a valid pi-gen style image
# quickly and deterministically, without root; fsck.vfat, e2fsck and debugfs are the
# oracles; goldimage_check (through config check) reads its layout.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/config_lib.sh"

MK="$top_srcdir/scripts/make-gold-image.sh"
# CPU time (user + sys of the script and its tools), not wall time: the limit must
# hold on an idle machine and not flake on a loaded one.
TIMEFORMAT='%3R %3U %3S'
times=$( { time bash "$MK" "$T/a.img" >/dev/null; } 2>&1 )
read -r real user sys <<<"$times"
cpu_ms=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }')
echo "make-gold-image: ${cpu_ms} ms CPU, ${real} s wall"
[ "$cpu_ms" -lt 3000 ] || fail "make-gold-image used ${cpu_ms} ms of CPU (limit 3000)"
[ "$(stat -c %s "$T/a.img")" = $((64 * 1024 * 1024)) ] || fail "default size is not 64 MiB"
SOURCE_DATE_EPOCH=1704067200 bash "$MK" "$T/b.img"
cmp -s "$T/a.img" "$T/b.img" || fail "two builds differ"
pass "fast and deterministic"

# partition table
sfdisk -d "$T/a.img" >"$T/table"
grep -q 'label-id: 0x5eed1234' "$T/table" || fail "disk id"
grep -q 'start= *8192, size= *73728, type=c' "$T/table" || fail "boot partition"
grep -q 'type=83' "$T/table" || fail "root partition"
root_start=$(sed -n 's/.*img2 : start= *\([0-9]*\),.*/\1/p' "$T/table")
dd if="$T/a.img" of="$T/boot.fat" bs=512 skip=8192 count=73728 status=none
dd if="$T/a.img" of="$T/root.ext4" bs=512 skip="$root_start" status=none
fsck.vfat -n "$T/boot.fat" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "fsck.vfat"; }
e2fsck -fn "$T/root.ext4" >"$T/e2fsck.out" 2>&1 || { cat "$T/e2fsck.out"; fail "e2fsck"; }
pass "fsck.vfat -n and e2fsck -fn are clean"

# boot partition content
mdir -i "$T/boot.fat" -b :: >"$T/boot.list"
for f in config.txt cmdline.txt kernel_2712.img kernel8.img bcm2712-rpi-5-b.dtb bcm2711-rpi-4-b.dtb; do
	grep -q "^::/$f$" "$T/boot.list" || fail "boot partition lacks $f"
done
mtype -i "$T/boot.fat" ::/cmdline.txt | grep -q 'root=PARTUUID=5eed1234-02 rootfstype=ext4 fsck.repair=yes rootwait' ||
	fail "cmdline.txt"
pass "boot partition content"

# root partition content: modes, owners, links, xattr, modules
# one debugfs run answers every question (each answer follows a "debugfs:" echo)
cat >"$T/q" <<'Q'
stat /usr/bin/suid-helper
stat /etc/shadow
stat /home/pi/.bashrc
stat /usr/bin/hello
stat /usr/bin/hello-symlink
cat /etc/hostname
cat /usr/lib/modules/6.6.51+rpt-rpi-2712/modules.dep
ls /usr/lib/modules/6.6.51+rpt-rpi-2712/kernel/fs/vfat
cat /usr/lib/modules/6.6.51+rpt-rpi-v8/modules.dep
ls /usr/lib/modules/6.6.51+rpt-rpi-v8/kernel/fs/vfat
Q
debugfs -f "$T/q" "$T/root.ext4" >"$T/a" 2>/dev/null
# answer CMD: the output of one query
answer() { awk -v q="debugfs: $1" '$0 == q { on = 1; next } /^debugfs: / { on = 0 } on' "$T/a"; }
answer 'stat /usr/bin/suid-helper' | grep -q 'Mode:  04755' || fail "setuid mode"
answer 'stat /etc/shadow' | grep -q 'Mode:  0600' || fail "0600 mode"
answer 'stat /etc/shadow' | grep -qE 'User: +0 +Group: +42' || fail "shadow group"
answer 'stat /home/pi/.bashrc' | grep -qE 'User: +1000 +Group: +1000' || fail "non-root owner"
answer 'stat /usr/bin/hello' | grep -q 'Links: 2' || fail "hard link"
answer 'stat /usr/bin/hello' | grep -q 'user.rpi-sb-provisioner (15) = "gold-image-test"' || fail "xattr"
answer 'stat /usr/bin/hello-symlink' | grep -q 'Fast link dest: "hello"' || fail "symlink"
answer 'cat /etc/hostname' | grep -qx raspberrypi || fail "/etc/hostname"
for k in 6.6.51+rpt-rpi-2712 6.6.51+rpt-rpi-v8; do
	answer "cat /usr/lib/modules/$k/modules.dep" | grep -q 'r8152.ko' || fail "modules.dep of $k"
	answer "ls /usr/lib/modules/$k/kernel/fs/vfat" | grep -q 'vfat.ko' || fail ".ko of $k"
done
pass "root partition content"

# goldimage_check (via config check) agrees with sfdisk
printf '[station]\nmode = naked\n[image]\ngold = %s\nstorage = sd\n' "$T/a.img" >"$T/cfg.ini"
expect_rc 0 "$PROGRAM" --root "$ROOT" --config "$T/cfg.ini" config check
out_has "64.0 MiB: boot FAT32 36.0 MiB, root ext4 24.0 MiB"
pass "goldimage_check reads the layout"

expect_rc 2 bash "$MK" "$T/c.img" 20
expect_rc 2 bash "$MK"
pass "usage errors"
