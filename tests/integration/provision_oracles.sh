#!/bin/bash
# provision_oracles: what the station wrote to a board, checked with the
# real tools after a simulate run (a Pi 5 in secure-boot, a Zero 2 W in
# fde-only): the cached sparse images expand with simg2img to exactly the
# bytes on the board's storage (boot partition), the boot partition passes
# fsck.vfat -n and holds the cached boot.img, boot.sig verifies with openssl
# against the throw-away key, the LUKS2 container reads with cryptsetup
# luksDump and is as large as the root image plus its header, and the root
# image passes e2fsck -fn.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
# libcryptsetup's OpenSSL back end sometimes loses contexts (seen with several
# boards formatting LUKS at once; frames end in libcrypto); LeakSanitizer would then end simulate
# before its summary is flushed. Suppressed by library only.
printf 'leak:libcrypto.so\n' >"$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

expect_rc 0 rsb simulate --until-done --headless --devices pi5:1,zero2w:1
sim="$ROOT/srv/rpi-sb-provisioner/simulate"
db="$sim/manufacturing.db"
key="$sim/keys/throwaway-key.pem"
openssl rsa -in "$key" -pubout -out "$T/pub.pem" 2>/dev/null || fail "cannot read the throw-away key"

part() { # part IMG N FIELD: sectors of partition N (1-based) from sfdisk -J
	sfdisk -J "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['partitiontable']['partitions'][$2 - 1]['$3'])"
}

for port in 9-1 9-2; do
	serial=$(sqlite3 "$db" "SELECT serial FROM devices WHERE usb_port = '$port'")
	[ -n "$serial" ] || fail "no devices row for $port"
	model=$(sed -n "s/^board $port  *\([a-z0-9]*\) .*/\1/p" <<<"$OUT")
	img="$sim/boards/$model-${port#9-}/storage.img"
	log="$sim/log/$serial/provisioner.log"
	[ -f "$img" ] && [ -s "$log" ] || fail "no storage or log for $port ($model)"
	# What was flashed where, as the station logged it.
	bootfs=$(sed -n 's/.*\] flash mmcblk0p1 <- \(.*\) ([0-9]* bytes sparse)$/\1/p' "$log" | tail -1)
	rootfs=$(sed -n 's/.*\] flash mapper\/cryptroot <- \(.*\) ([0-9]* bytes sparse)$/\1/p' "$log" | tail -1)
	case "$bootfs:$rootfs" in "$sim/cache/"*/bootfs.simg:"$sim/cache/"*/rootfs.simg) ;;
	*) fail "$port: flashed files not found in the log: '$bootfs' '$rootfs'" ;; esac

	# Boot partition: the expanded sparse image is exactly what the board holds.
	simg2img "$bootfs" "$T/bootfs.raw" || fail "simg2img $bootfs"
	p1=$(part "$img" 1 start); n1=$(part "$img" 1 size)
	[ "$(stat -c %s "$T/bootfs.raw")" = $((n1 * 512)) ] \
		|| fail "$port: bootfs.simg expands to $(stat -c %s "$T/bootfs.raw") bytes, partition 1 is $((n1 * 512))"
	dd if="$img" of="$T/p1.raw" bs=512 skip="$p1" count="$n1" status=none
	cmp "$T/bootfs.raw" "$T/p1.raw" || fail "$port: the boot partition differs from bootfs.simg expanded"
	fsck.vfat -n "$T/p1.raw" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; fail "$port: fsck.vfat -n on the boot partition"; }
	pass "$port ($model): boot partition = simg2img(bootfs.simg) byte for byte, fsck.vfat clean"

	if [ "$model" = pi5 ]; then
		entry=$(dirname "$bootfs")
		mcopy -n -i "$T/p1.raw" ::boot.img "$T/boot.img.onboard" || fail "$port: no boot.img on the boot partition"
		cmp "$entry/boot.img" "$T/boot.img.onboard" || fail "$port: boot.img on the board differs from the cached one"
		mcopy -n -i "$T/p1.raw" ::boot.sig "$T/boot.sig.onboard" || fail "$port: no boot.sig on the boot partition"
		cmp "$entry/boot.sig" "$T/boot.sig.onboard" || fail "$port: boot.sig on the board differs from the cached one"
		[ "$(head -1 "$entry/boot.sig")" = "$(sha256sum <"$entry/boot.img" | cut -d' ' -f1)" ] \
			|| fail "$port: boot.sig's first line is not boot.img's SHA-256"
		sed -n 's/^rsa2048: *\([0-9a-f]*\)$/\1/p' "$entry/boot.sig" | xxd -r -p >"$T/sig.bin"
		[ "$(stat -c %s "$T/sig.bin")" = 256 ] || fail "$port: boot.sig's rsa2048 line is not 256 bytes"
		openssl dgst -sha256 -verify "$T/pub.pem" -signature "$T/sig.bin" "$entry/boot.img" >/dev/null \
			|| fail "$port: openssl does not verify boot.sig over boot.img with the throw-away key"
		# A signature that verifies anything would prove nothing.
		cp "$entry/boot.img" "$T/boot.img.bad"
		printf '\x01' | dd of="$T/boot.img.bad" bs=1 seek=4096 conv=notrunc status=none
		! openssl dgst -sha256 -verify "$T/pub.pem" -signature "$T/sig.bin" "$T/boot.img.bad" >/dev/null 2>&1 \
			|| fail "$port: boot.sig verifies a changed boot.img"
		pass "$port: boot.img and boot.sig on the board are the cached ones; openssl verifies boot.sig"
	fi

	# Root: a LUKS2 container in partition 2, as large as the root image + header.
	p2=$(part "$img" 2 start); n2=$(part "$img" 2 size)
	dd if="$img" of="$T/p2.raw" bs=1M iflag=skip_bytes,count_bytes skip=$((p2 * 512)) count=$((n2 * 512)) status=none
	cryptsetup luksDump "$T/p2.raw" >"$T/luks.txt" || fail "$port: cryptsetup luksDump on partition 2"
	grep -Eq '^Version:[[:space:]]*2$' "$T/luks.txt" || fail "$port: not LUKS2: $(head -3 "$T/luks.txt")"
	grep -Eq 'cipher:[[:space:]]*aes-xts-plain64' "$T/luks.txt" || fail "$port: LUKS cipher is not the configured one"
	off=$(awk '/^Data segments:/ {d = 1} d && /offset:/ {print $2; exit}' "$T/luks.txt")
	simg2img "$rootfs" "$T/root.raw" || fail "simg2img $rootfs"
	[ "$(stat -c %s "$T/root.raw")" = $((n2 * 512 - off)) ] \
		|| fail "$port: rootfs.simg expands to $(stat -c %s "$T/root.raw") bytes; the container holds $((n2 * 512 - off))"
	e2fsck -fn "$T/root.raw" >"$T/e2fsck.out" 2>&1 || { cat "$T/e2fsck.out" >&2; fail "$port: e2fsck -fn on the root image"; }
	# The root is encrypted on the board: its plaintext must not be there.
	! cmp -s <(dd if="$T/root.raw" bs=4096 iflag=skip_bytes,count_bytes skip=1024 count=4096 status=none) \
		<(dd if="$T/p2.raw" bs=4096 iflag=skip_bytes,count_bytes skip=$((off + 1024)) count=4096 status=none) \
		|| fail "$port: the root superblock is stored in clear"
	pass "$port: LUKS2 container reads with luksDump (data at $off), root = simg2img(rootfs.simg) fits it, e2fsck clean"
	rm -f "$T"/*.raw
done
