#!/bin/bash
# provision_hooks: the per-board customisation hooks (*-bootfs-mounted,
# *-rootfs-mounted) get real directory trees of THAT board's copy, in every
# mode, with the manufacturing fields in their environment, and what they
# change reaches that board's storage. The test's hooks write the board's
# serial into the boot tree (board-serial.txt) and into the root tree
# (/etc/board-serial); the test reads both back from each virtual board's
# storage: the boot partition (and, on a Pi 5, the boot.img inside it, whose
# boot.sig must verify) with mtools, the root with debugfs, decrypted the way
# the board unlocks it in the LUKS modes (tests/unit/vpi_read_root). The
# board's root must equal the gold image's root plus /etc/board-serial and
# nothing else. Then the hooks are disabled (chmod -x): no per-board copy,
# the cached artefacts are flashed and the virtual first boot passes.
#
# The virtual first boot gets the paths the hooks changed and this board's
# tree: every hooked board must pass it (its root = the gold root except
# exactly those paths, each equal to the hook's tree), get its devices row
# and run its post-flash hook. Negative: a hooked board whose storage got a
# bit flipped in /etc/hostname (a file no hook touched) fails and gets no
# row and no post-flash hook. See doc/provisioning.md.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
printf 'leak:libcrypto.so\n' >"$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
sim="$ROOT/srv/rpi-sb-provisioner/simulate"
scripts="$sim/scripts"
READ_ROOT="$top_builddir/tests/unit/vpi_read_root"
key="$sim/keys/throwaway-key.pem"

mkdir -p "$scripts"
for prov in sb fde naked; do
	cat >"$scripts/$prov-provisioner-bootfs-mounted.sh" <<'EOF'
#!/bin/sh
# args: boot tree, root tree (both this board's own copy)
set -e
[ -d "$1" ] && [ -d "$2/etc" ] || { echo "bad trees: '$1' '$2'"; exit 1; }
printf '%s %s %s\n' "$TARGET_DEVICE_SERIAL" "$SERIAL" "$ETH_MAC" >"$1/board-serial.txt"
EOF
	cat >"$scripts/$prov-provisioner-rootfs-mounted.sh" <<'EOF'
#!/bin/sh
set -e
[ -f "$1/board-serial.txt" ] || { echo "bootfs-mounted did not run first"; exit 1; }
printf '%s\n' "$SERIAL" >"$2/etc/board-serial"
EOF
	cat >"$scripts/$prov-provisioner-post-flash.sh" <<EOF
#!/bin/sh
printf '%s\n' "\$SERIAL" >>"$T/post-flash.log"
EOF
done
chmod +x "$scripts"/*.sh
q() { sqlite3 "$sim/manufacturing.db" "$1"; }
devrows() { q "SELECT count(*) FROM devices WHERE serial IN ('$1', '${1: -8}')"; }

part() { # part IMG N FIELD: sectors of partition N (1-based) from sfdisk -J
	sfdisk -J "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['partitiontable']['partitions'][$2 - 1]['$3'])"
}

# gold_root: the gold image's root file system, extracted once.
gold_root() {
	[ -d "$T/gold-root" ] && return
	local gold="$sim/images/gold.img" s
	s=$(part "$gold" 2 start)
	mkdir "$T/gold-root"
	debugfs -R "rdump / $T/gold-root" "$gold?offset=$((s * 512))" >/dev/null 2>&1
	[ -f "$T/gold-root/etc/hostname" ] || fail "could not extract the gold image's root"
}

# check_root PORT SERIAL FS: the board's root file system (a plain ext4 image
# or "image?offset=N") is clean, holds /etc/board-serial = SERIAL, and is
# otherwise the gold image's root (contents, modes, owners).
check_root() {
	local port=$1 serial=$2 fs=$3 got
	got=$(debugfs -R "cat /etc/board-serial" "$fs" 2>/dev/null)
	[ "$got" = "$serial" ] || fail "$port: /etc/board-serial on the board holds '$got', not $serial"
	gold_root
	rm -rf "$T/board-root" && mkdir "$T/board-root"
	debugfs -R "rdump / $T/board-root" "$fs" >/dev/null 2>&1
	diff -r --no-dereference "$T/gold-root" "$T/board-root" >"$T/diff.out" 2>&1 || true
	[ "$(cat "$T/diff.out")" = "Only in $T/board-root/etc: board-serial" ] \
		|| { cat "$T/diff.out" >&2; fail "$port: the board's root differs from the gold image's in more than /etc/board-serial"; }
	(cd "$T/gold-root" && find . -path ./etc/board-serial -prune -o -printf '%p %m %U %G %l\n' | sort) >"$T/gold.meta"
	(cd "$T/board-root" && find . -path ./etc/board-serial -prune -o -printf '%p %m %U %G %l\n' | sort) >"$T/board.meta"
	cmp -s "$T/gold.meta" "$T/board.meta" || fail "$port: modes, owners or links differ from the gold image's root"
	pass "$port: the root on the board = the gold root + /etc/board-serial ($serial)"
}

# check_boot_file PORT SERIAL FATIMG: board-serial.txt in the FAT image FATIMG.
check_boot_file() {
	local port=$1 serial=$2 got
	got=$(mtype -i "$3" ::board-serial.txt 2>/dev/null) || fail "$port: no board-serial.txt in the boot files"
	case "$got" in
	"$serial $serial "[0-9a-f][0-9a-f]:*) ;;
	*) fail "$port: board-serial.txt holds '$got' (want '$serial $serial <eth mac>')" ;;
	esac
	pass "$port: the boot files on the board hold the hook's board-serial.txt ($got)"
}

# run_hooked CONFIG DEVICES: one run with the hooks; every board must pass,
# its virtual first boot included, with the hooks' root changes (/etc and
# /etc/board-serial) checked against its tree, be recorded (devices row)
# and run the post-flash hook.
run_hooked() {
	: >"$T/post-flash.log"
	expect_rc 0 rsb ${1:+--config "$1"} simulate --devices "$2" --until-done --headless
	local port model serial log
	for port in $(grep -o '^board 9-[0-9]*' <<<"$OUT" | cut -d' ' -f2); do
		read -r model serial <<<"$(board_of "$port")"
		grep -Eq "^board $port +$model +$serial PASS$" <<<"$OUT" || fail "$port did not pass"
		log="$sim/log/$serial/provisioner.log"
		grep -q 'virtual first boot: pass (.* 2 changed by the hooks checked against their tree)' "$log" \
			|| fail "$port: the first boot did not check the hooks' 2 root changes: $(grep 'virtual first boot' "$log")"
		[ "$(devrows "$serial")" = 1 ] || fail "$port: no devices row for $serial"
		grep -qx "$serial" "$T/post-flash.log" || fail "$port: the post-flash hook did not run for $serial"
	done
	pass "hooked boards ($2) passed their virtual first boot ($(grep -o 'virtual first boot: pass.*' "$log")), got a devices row and the post-flash hook"
}

board_of() { grep -E "^board $1 " <<<"$OUT" | awk '{print $3, $4}'; }

# ---- secure-boot (Pi 5) and fde-only (Zero 2 W) ----------------------------
run_hooked "" pi5:1,zero2w:1
for port in 9-1 9-2; do
	read -r model serial <<<"$(board_of $port)"
	img="$sim/boards/$model-${port#9-}/storage.img"
	log="$sim/log/$serial/provisioner.log"
	grep -Eq "hook (sb|fde)-provisioner-bootfs-mounted.sh: exited with status 0" "$log" \
		|| fail "$port: no bootfs-mounted hook in the log"
	grep -Eq 'per-board copy: trees extracted in [0-9.]+ s; the hooks changed 2 boot and 2 root entries; the boot partition rebuilt' "$log" \
		|| fail "$port: the log does not show the per-board copy: $(grep per-board "$log")"
	grep -Eq 'per-board root file system built in [0-9.]+ s' "$log" || fail "$port: no per-board root"
	bootfs=$(sed -n 's/.*\] flash mmcblk0p1 <- \(.*\) ([0-9]* bytes sparse)$/\1/p' "$log" | tail -1)
	case "$bootfs" in "$sim/cache/staging/"*/board-*/bootout/bootfs.simg) ;;
	*) fail "$port: flashed $bootfs, not the board's own boot partition" ;; esac
	grep -q 'verified mapper/cryptroot: verified' "$log" || fail "$port: the per-board root was not verified on the board"
	p1=$(part "$img" 1 start); n1=$(part "$img" 1 size)
	dd if="$img" of="$T/p1.raw" bs=512 skip="$p1" count="$n1" status=none
	fsck.vfat -n "$T/p1.raw" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; fail "$port: fsck.vfat -n"; }
	if [ "$model" = pi5 ]; then
		mcopy -n -i "$T/p1.raw" ::boot.img "$T/boot.img" || fail "$port: no boot.img on the board"
		mcopy -n -i "$T/p1.raw" ::boot.sig "$T/boot.sig" || fail "$port: no boot.sig on the board"
		fsck.vfat -n "$T/boot.img" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; fail "$port: fsck.vfat -n boot.img"; }
		check_boot_file "$port" "$serial" "$T/boot.img"
		openssl rsa -in "$key" -pubout -out "$T/pub.pem" 2>/dev/null
		sed -n 's/^rsa2048: *\([0-9a-f]*\)$/\1/p' "$T/boot.sig" | xxd -r -p >"$T/sig.bin"
		openssl dgst -sha256 -verify "$T/pub.pem" -signature "$T/sig.bin" "$T/boot.img" >/dev/null \
			|| fail "$port: boot.sig does not verify over this board's boot.img"
		[ "$(head -1 "$T/boot.sig")" = "$(sha256sum <"$T/boot.img" | cut -d' ' -f1)" ] \
			|| fail "$port: boot.sig's first line is not this boot.img's SHA-256"
		pass "$port: this board's boot.img is signed again: openssl verifies boot.sig"
	else
		check_boot_file "$port" "$serial" "$T/p1.raw"
	fi
	"$READ_ROOT" "$model" "$sim/boards/$model-${port#9-}" mmcblk0p2 "$T/root.raw" \
		|| fail "$port: cannot read the encrypted root back"
	e2fsck -fn "$T/root.raw" >"$T/e2fsck.out" 2>&1 || { cat "$T/e2fsck.out" >&2; fail "$port: e2fsck -fn on the root"; }
	check_root "$port" "$serial" "$T/root.raw"
	rm -f "$T"/*.raw
done
[ -z "$(ls -A "$sim"/cache/staging 2>/dev/null)" ] || fail "per-board copies were left behind: $(ls "$sim"/cache/staging)"

# ---- naked (Pi 5, CM4) ----------------------------------------------------
sed -e 's/^mode = secure-boot$/mode = naked/' -e '/^\[family.2W\]$/,$d' "$sim/provisioner.ini" >"$T/naked.ini"
grep -q '^mode = naked$' "$T/naked.ini" || fail "could not derive the naked configuration"
rm -rf "$sim/boards"
run_hooked "$T/naked.ini" pi5:1,cm4:1
for port in 9-1 9-2; do
	read -r model serial <<<"$(board_of $port)"
	img="$sim/boards/$model-${port#9-}/storage.img"
	log="$sim/log/$serial/provisioner.log"
	grep -Eq 'per-board copy: .*the hooks changed 2 boot and 2 root entries; the disk image rebuilt' "$log" \
		|| fail "$port: the log does not show the per-board disk image"
	p1=$(part "$img" 1 start)
	dd if="$img" of="$T/p1.raw" bs=512 skip="$p1" count="$(part "$img" 1 size)" status=none
	fsck.vfat -n "$T/p1.raw" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; fail "$port: fsck.vfat -n"; }
	check_boot_file "$port" "$serial" "$T/p1.raw"
	p2=$(part "$img" 2 start); n2=$(part "$img" 2 size)
	dd if="$img" of="$T/root.raw" bs=1M iflag=skip_bytes,count_bytes skip=$((p2 * 512)) count=$((n2 * 512)) status=none
	e2fsck -fn "$T/root.raw" >"$T/e2fsck.out" 2>&1 || { cat "$T/e2fsck.out" >&2; fail "$port: e2fsck -fn on the root"; }
	check_root "$port" "$serial" "$T/root.raw"
	rm -f "$T"/*.raw
done

# ---- negative: storage differs where no hook wrote ----------------------------
# A bit of /etc/hostname (no hook touches it) flips on its way to board 2's
# storage: that board fails (no devices row, no post-flash hook), board 1
# beside it passes.
gold="$sim/images/gold.img"
g2=$(part "$gold" 2 start)
bs=$(dumpe2fs -h "$gold?offset=$((g2 * 512))" 2>/dev/null | sed -n 's/^Block size: *//p')
blk=$(debugfs -R "bmap /etc/hostname 0" "$gold?offset=$((g2 * 512))" 2>/dev/null)
[ -n "$bs" ] && [ "${blk:-0}" -gt 0 ] || fail "cannot locate /etc/hostname in the gold image"
rm -rf "$sim/boards"
: >"$T/post-flash.log"
expect_rc 1 rsb --config "$T/naked.ini" simulate --devices pi5:2 --until-done --headless \
	--fault "2=bitflip:offset=$((g2 * 512 + blk * bs + 3))"
expect_out '^board 9-1 +pi5 +[0-9a-f]{16} PASS$'
expect_out '^board 9-2 +pi5 +[0-9a-f]{16} FAIL: verify: '
read -r model serial <<<"$(board_of 9-2)"
[ "$(devrows "$serial")" = 0 ] || fail "the bit-flipped board got a devices row"
! grep -qx "$serial" "$T/post-flash.log" || fail "the post-flash hook ran for the bit-flipped board"
read -r model serial1 <<<"$(board_of 9-1)"
[ "$(devrows "$serial1")" = 1 ] && grep -qx "$serial1" "$T/post-flash.log" || fail "the board beside it was not recorded"
pass "a hooked board whose /etc/hostname differs fails ($(sed -n 's/^board 9-2 .* FAIL: //p' <<<"$OUT")); the one beside it passed"

# ---- hooks disabled: nothing per board ---------------------------------------
chmod -x "$scripts"/*-mounted.sh
expect_rc 0 rsb --config "$T/naked.ini" simulate --devices pi5:1 --until-done --headless
expect_out '^board 9-1 +pi5 .* PASS$'
read -r model serial <<<"$(board_of 9-1)"
log="$sim/log/$serial/provisioner.log"
[ "$(grep -c 'per-board copy' "$log")" = 1 ] || fail "a per-board copy was made with the hooks disabled"
last=$(grep 'flash mmcblk0 <- ' "$log" | tail -1)
case "$last" in
*"<- $sim/cache/staging/"*) fail "with no hooks, a per-board disk image was flashed: $last" ;;
*"<- $sim/cache/"*/disk.simg" ("*) ;;
*) fail "with no hooks, the cached disk image must be flashed: $last" ;;
esac
pass "with the hooks disabled the cached image is flashed and the virtual first boot passes"
