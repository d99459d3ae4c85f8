# image_common.sh: helpers for the image pipeline's shell tests (sourced).
# Needs lib.sh sourced first ($T). Builds, once per test, a gold image from
# scripts/make-gold-image.sh with stand-in crypto modules added to both kernel
# flavours (the peer's kernel_modules.list), and the stand-in initramfs.
export PATH="$PATH:/sbin:/usr/sbin"
export MTOOLS_SKIP_CHECK=1
DRIVER="$top_builddir/tests/unit/test_image_driver"
[ -x "$DRIVER" ] || fail "$DRIVER not built"

# partition N's start byte and length (sfdisk -d of a DOS image)
part_offset() { sfdisk -d "$1" | awk -v n="$2" '$1 ~ ("[^0-9]" n "$") { gsub(/[ ,]/,""); split($0,a,/start=|size=|type=/); print a[2]*512 }'; }
part_bytes() { sfdisk -d "$1" | awk -v n="$2" '$1 ~ ("[^0-9]" n "$") { gsub(/[ ,]/,""); split($0,a,/start=|size=|type=/); print a[3]*512 }'; }

# make_gold OUT [SIZE_MB]
make_gold() {
	local out=$1 size=${2:-64} off cmds v
	"$top_srcdir/scripts/make-gold-image.sh" "$out" "$size" >/dev/null
	off=$(part_offset "$out" 2)
	cmds="$T/debugfs-mods.cmds"
	: >"$cmds"
	printf 'stand-in module\n' >"$T/mod.ko"
	for v in 6.6.51+rpt-rpi-2712 6.6.51+rpt-rpi-v8; do
		local m=/usr/lib/modules/$v
		printf 'kernel/drivers/net/usb/r8152.ko:\nkernel/fs/vfat/vfat.ko: kernel/fs/fat/fat.ko\n' >"$T/dep"
		printf 'kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\nkernel/drivers/md/dm-mod.ko:\n' >>"$T/dep"
		printf 'kernel/crypto/algif_skcipher.ko:\nkernel/crypto/xts.ko:\nkernel/crypto/aes_generic.ko:\n' >>"$T/dep"
		printf 'kernel/crypto/adiantum.ko: kernel/crypto/nhpoly1305.ko\nkernel/crypto/nhpoly1305.ko:\nkernel/crypto/chacha_generic.ko:\n' >>"$T/dep"
		printf 'alias crypto-aes aes_generic\nalias crypto-xchacha12 chacha_generic\n' >"$T/alias"
		{
			echo "mkdir $m/kernel/drivers/md"
			echo "mkdir $m/kernel/crypto"
			for k in drivers/md/dm-crypt drivers/md/dm-mod crypto/algif_skcipher crypto/xts \
				crypto/aes_generic crypto/adiantum crypto/nhpoly1305 crypto/chacha_generic; do
				echo "write $T/mod.ko $m/kernel/$k.ko"
			done
			echo "rm $m/modules.dep"
			echo "write $T/dep $m/modules.dep"
			echo "write $T/alias $m/modules.alias"
		} >>"$cmds"
		# a file capability (cap_net_raw+ep, VFS v2 layout) on the setuid helper
		printf '\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' >"$T/cap"
		[ "$v" = 6.6.51+rpt-rpi-2712 ] && echo "ea_set -f $T/cap /usr/bin/suid-helper security.capability" >>"$cmds"
		E2FSPROGS_FAKE_TIME=1704067200 debugfs -w -f "$cmds" "$out?offset=$off" >/dev/null 2>"$T/debugfs.err" ||
			{ cat "$T/debugfs.err" >&2; fail "debugfs could not add modules"; }
		: >"$cmds"
	done
}

# kv KEY : value of KEY= in $OUT
kv() { printf '%s\n' "$OUT" | sed -n "s/^$1=//p" | head -1; }
