#!/bin/bash
# image_sources: .img.zst / .img.xz gold images are decompressed once into
# the cache; anything else is refused with a message that says what it is.
source "$top_srcdir/tests/integration/lib.sh"
source "$top_srcdir/tests/integration/image_common.sh"

GOLD="$T/gold.img"
CACHE="$T/cache"
"$top_srcdir/scripts/make-gold-image.sh" "$GOLD" 48 >/dev/null

zstd -q -3 "$GOLD" -o "$T/gold.img.zst"
xz -T1 -0 -k -c "$GOLD" >"$T/gold.img.xz"
for src in "$T/gold.img.zst" "$T/gold.img.xz"; do
	expect_rc 0 "$DRIVER" build naked "$src" "$CACHE"
	simg2img "$(kv disk_simg)" "$T/expanded"
	cmp "$T/expanded" "$GOLD" || fail "$src: expanded image differs from the original"
	[ "$(kv image_sha256)" = "$(sha256sum "$src" | cut -c1-64)" ] || fail "$src: image hash"
	expect_rc 0 "$DRIVER" build naked "$src" "$CACHE"
	[ "$(kv disk_hit)" = 1 ] || fail "$src: second build not a hit"
done
n=$(find "$CACHE" -name image.img | wc -l)
[ "$n" = 2 ] || fail "expected 2 decompressed images in the cache, found $n"
# the decompressed copy keeps the zero areas as holes
img=$(find "$CACHE" -name image.img | head -1)
[ "$(du -k "$img" | cut -f1)" -lt $(( $(stat -c %s "$img") / 1024 / 2 )) ] || fail "decompressed image is not sparse"
pass "zst and xz gold images: decompressed once, cached, identical"

# the image hash is remembered per (path, size, mtime, inode)
ls "$CACHE/image-sha256" | grep -q . || fail "no remembered image hashes"

check_refused() { # FILE PATTERN
	expect_rc 1 "$DRIVER" build naked "$1" "$CACHE"
	expect_out "$2"
}
gzip -1 -c "$GOLD" >"$T/gold.img.gz"
check_refused "$T/gold.img.gz" 'gzip-compressed'
mkdir "$T/idp"
check_refused "$T/idp" 'is a directory'
img2simg "$GOLD" "$T/gold.simg"
check_refused "$T/gold.simg" 'Android sparse'
head -c 3000000 "$GOLD" >"$T/truncated.img"
check_refused "$T/truncated.img" 'past the end'
truncate -s 8M "$T/gpt.img"
printf 'label: gpt\nstart=2048, size=4096\n' | sfdisk -q "$T/gpt.img" >/dev/null
check_refused "$T/gpt.img" 'GPT'
head -c 1000000 /dev/zero >"$T/zeros.img"
check_refused "$T/zeros.img" 'no DOS partition table'
head -c $(( $(stat -c %s "$T/gold.img.zst") / 2 )) "$T/gold.img.zst" >"$T/cut.img.zst"
check_refused "$T/cut.img.zst" 'truncated'
check_refused "$T/missing.img" 'No such file'
pass "unusable gold images refused with what they are"

# secure-boot needs a signer and an initramfs; a pi-gen layout
"$top_srcdir/scripts/make-standin-initramfs.sh" "$T/ird.zst"
expect_rc 1 "$DRIVER" build secure-boot "$GOLD" "$CACHE" --initramfs "$T/ird.zst"
expect_out 'signing key'
expect_rc 1 "$DRIVER" build fde-only "$GOLD" "$CACHE"
expect_out 'initramfs'
expect_rc 1 "$DRIVER" build fde-only "$GOLD" "$CACHE" --initramfs "$T/ird.zst" --storage usb
expect_out 'not sd, emmc or nvme'
# a root file system without kernel modules: the board could not unlock
cp --sparse=always "$GOLD" "$T/nomods.img"
debugfs -w -R "unlink /usr/lib/modules" "$T/nomods.img?offset=$(part_offset "$GOLD" 2)" >/dev/null 2>&1
expect_rc 1 "$DRIVER" build fde-only "$T/nomods.img" "$CACHE" --initramfs "$T/ird.zst"
expect_out 'no kernel modules'
# modules present but none of kernel_modules.list
cp --sparse=always "$GOLD" "$T/nocrypto.img"
for d in drivers/md crypto; do
	for v in 6.6.51+rpt-rpi-2712 6.6.51+rpt-rpi-v8; do
		debugfs -w -R "unlink /usr/lib/modules/$v/kernel/$d" "$T/nocrypto.img?offset=$(part_offset "$GOLD" 2)" >/dev/null 2>&1
	done
done
expect_rc 1 "$DRIVER" build fde-only "$T/nocrypto.img" "$CACHE" --initramfs "$T/ird.zst"
expect_out 'kernel_modules.list'
ls "$CACHE" | grep -q '^\.tmp-' && fail "a failed build left a temp dir"
pass "secure-boot/fde-only refuse missing signer, initramfs, storage, modules"
