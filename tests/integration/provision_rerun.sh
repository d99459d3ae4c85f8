#!/bin/bash
# provision_rerun: in fde-only and in naked mode, a second run on the same
# boards reprovisions them cleanly: every board passes the virtual first boot
# again, gets a second ok attempt and keeps one devices row; the image
# artefacts come from the cache (no new entry); nothing is burned into OTP
# and each board keeps its device key (fwcrypto) and serial. In fde-only the
# root is formatted anew (a new LUKS2 container UUID) and still unlocks with
# the same device-derived key. (secure-boot: tests/integration/bootstrap_rerun.sh.)
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
printf 'leak:libcrypto.so\n' >"$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
sim="$ROOT/srv/rpi-sb-provisioner/simulate"
db="$sim/manufacturing.db"
zero_hash=customer_key_hash=0000000000000000000000000000000000000000000000000000000000000000

# The embedded default is built by a first run held after triage (no board
# state is kept: the boards are removed before each mode).
expect_rc 1 rsb simulate --devices zero2w:1 --until-done --headless --hold after-triage

part() { # part IMG N FIELD: sectors of partition N (1-based) from sfdisk -J
	sfdisk -J "$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['partitiontable']['partitions'][$2 - 1]['$3'])"
}
luks_uuid() { # luks_uuid IMG: the UUID of the LUKS2 container in partition 2
	local s n
	s=$(part "$1" 2 start); n=$(part "$1" 2 size)
	dd if="$1" of="$T/p2.raw" bs=1M iflag=skip_bytes,count_bytes skip=$((s * 512)) count=$((n * 512 < (32 << 20) ? n * 512 : (32 << 20))) status=none
	cryptsetup luksUUID "$T/p2.raw" 2>/dev/null || echo none
}
entries() { find "$sim/cache" -mindepth 2 -maxdepth 2 -name manifest | wc -l; }

for mode in fde-only naked; do
	rm -rf "$sim/boards"
	sed -e "s/^mode = secure-boot\$/mode = $mode/" -e '/^\[family.2W\]$/,$d' "$sim/provisioner.ini" >"$T/$mode.ini"
	grep -q "^mode = $mode\$" "$T/$mode.ini" || fail "could not derive the $mode configuration"
	declare -A fw=() uuid=() serials=()
	for run in 1 2; do
		expect_rc 0 rsb --config "$T/$mode.ini" simulate --devices pi5:1,cm4:1,zero2w:1 --until-done --headless
		expect_out '3 of 3 boards provisioned and passed the virtual first boot'
		for port in 9-1 9-2 9-3; do
			read -r model serial <<<"$(grep -E "^board $port " <<<"$OUT" | awk '{print $3, $4}')"
			dir="$sim/boards/$model-${port#9-}"
			grep -qx "$zero_hash" "$dir/otp" || fail "$mode run $run $port: a key hash was burned: $(grep customer_key_hash "$dir/otp")"
			key=$(sed -n 's/^fwcrypto_private=//p' "$dir/otp")
			[ -n "$key" ] || fail "$mode run $run $port: no device key in OTP"
			u=$(luks_uuid "$dir/storage.img")
			if [ "$run" = 1 ]; then
				fw[$port]=$key uuid[$port]=$u serials[$port]=$serial
				continue
			fi
			[ "$serial" = "${serials[$port]}" ] || fail "$mode $port: serial changed between runs"
			[ "$key" = "${fw[$port]}" ] || fail "$mode $port: the device key changed on the second run"
			[ "$(sqlite3 "$db" "SELECT count(*) FROM attempts WHERE serial = '$serial' AND mode = '$mode' AND result = 'ok'")" = 2 ] \
				|| fail "$mode $port: expected 2 ok attempts for $serial"
			[ "$(sqlite3 "$db" "SELECT count(*) FROM devices WHERE serial = '$serial'")" -ge 1 ] \
				|| fail "$mode $port: no devices row for $serial"
			if [ "$mode" = fde-only ]; then
				[ "$u" != none ] && [ "$u" != "${uuid[$port]}" ] \
					|| fail "$mode $port: the root was not formatted anew (LUKS UUID '${uuid[$port]}' then '$u')"
			else
				[ "$u" = none ] || fail "$mode $port: a LUKS container in naked mode"
			fi
		done
		[ "$run" = 1 ] && before=$(entries)
	done
	[ "$(entries)" = "$before" ] || fail "$mode: the second run built new image artefacts ($before entries, now $(entries))"
	pass "$mode: a second run reprovisions all 3 boards cleanly (same device key, no OTP burned, artefacts from the cache)"
	unset fw uuid serials
done
