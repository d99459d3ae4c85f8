#!/usr/bin/env bash
# qemu-e2e.sh: the whole station against two virtual Pi 5s through a real USB
# stack. A QEMU guest (TCG) boots Debian's kernel with dummy_hcd (two UDCs, two
# buses), udevd and the project's udev rules. Each virtual Pi is a real USB
# gadget (`virtual-pi --gadget dummy_udc.N`): boot ROM and second stage through
# GadgetFS, then the fastboot gadget through FunctionFS after a real
# re-enumeration. The station (`daemon --rehearse-usb --until-done 2`) finds
# them with libudev and drives them with libusb through every phase. Only a
# rehearsal, and only to a device whose iProduct says it is a virtual Pi,
# lets the station serve the simulator's stand-in gadget boot over USB (see
# doc/virtual-pi-gadget.md).
#   A: the station provisions both boards end to end; records written.
#   B: two fresh boards; the second one's UDC is unbound in the middle of a
#      fastboot flash (its encrypted root): it fails alone ("unplugged during <phase>") while
#      the other finishes.
#   C: a board's UDC is detached while the station sends it its EEPROM image:
#      the station fails it in bootstrap (its reason is printed).
# The guest sends its verdict, the records (`devices --json`) and its timings
# over its second serial port; this script fails unless the verdict is rc=0.
#
# Usage: scripts/qemu-e2e.sh [BUILD_DIR]   (default: $top_builddir or .)
# The kernel package is fetched once (apt-get download) and unpacked under
# $RPI_SB_QEMU_KERNEL, else BUILD_DIR/tests/usb/kernel-e2e. Exit 77 when a tool is
# missing (never under CI=true: there it is a failure).
set -euo pipefail

build=$(cd "${1:-${top_builddir:-.}}" && pwd)
src=$(cd "${top_srcdir:-$(dirname "$0")/..}" && pwd)
prog="$build/rpi-sb-provisioner"
udevd=/lib/systemd/systemd-udevd
skip() {
	if [ "${CI:-}" = true ]; then echo "FAIL: $* (required under CI)"; exit 1; fi
	echo "SKIP: $*"; exit 77
}
for tool in qemu-system-x86_64 depmod modprobe cpio gzip apt-get dpkg-deb; do
	command -v "$tool" >/dev/null || skip "$tool not installed (scripts/install-deps.sh)"
done
[ -x /bin/busybox ] && /bin/busybox --list | grep -x modprobe >/dev/null || skip "busybox-static not installed"
[ -x "$udevd" ] || skip "udev (systemd-udevd) not installed"
[ -x "$prog" ] || { echo "FAIL: $prog not built"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/rpisb-qemu-e2e.XXXXXX")
trap 'rm -rf "$W"' EXIT
t0=$(date +%s.%N)

# ---- kernel: Debian's image package, unpacked once -----------------------
K=${RPI_SB_QEMU_KERNEL:-$build/tests/usb/kernel-e2e}
mkdir -p "$(dirname "$K")"
exec 9>"$K.lock"; flock 9   # parallel make check: one download, whole or not at all
if ! ls "$K"/boot/vmlinuz-* >/dev/null 2>&1; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	[ -n "$pkg" ] || skip "no linux-image package known to apt (apt-get update)"
	mkdir -p "$W/deb"
	(cd "$W/deb" && apt-get download "$pkg" >/dev/null 2>&1) || skip "cannot download $pkg"
	rm -rf "$K.tmp" && dpkg-deb -x "$W"/deb/linux-image-*.deb "$K.tmp" && rm -rf "$K" && mv "$K.tmp" "$K"
fi
exec 9>&-
kver=$(ls "$K/lib/modules" | head -1)

# ---- the station's files: the tree `simulate` lays out, run once here -----
# (Raspberry Pi's firmware fixtures, stand-in gadget payloads, a small gold
# image.) The guest uses it at the same path, in naked mode (no LUKS: under TCG the virtual Pi's software XTS made fde-only take minutes): no OTP burn.
H="$W/station"
export RPI_SB_VPI_FIRMWARE="${RPI_SB_VPI_FIRMWARE:-${SHARED_DIR:-/work/shared}/fixtures/rpi-firmware}"
[ -d "$RPI_SB_VPI_FIRMWARE" ] || { echo "FAIL: firmware fixtures $RPI_SB_VPI_FIRMWARE missing"; exit 1; }
"$prog" --root "$H" simulate --devices pi5:1 --until-done --headless >"$W/host-simulate.log" 2>&1 ||
	{ cat "$W/host-simulate.log"; echo "FAIL: laying out the station tree"; exit 1; }
S="$H/srv/rpi-sb-provisioner/simulate"
rm -rf "$S/boards" "$S/log" "$S/manufacturing.db" "$S/serial-seed"
sed -i 's/^mode = secure-boot$/mode = naked/; s/^id = simulate$/id = qemu-e2e/' "$S/provisioner.ini"

# ---- initramfs --------------------------------------------------------------
R=$W/root
mkdir -p "$R"/{bin,etc/udev/rules.d,proc,sys,dev,run,tmp,lib/systemd,lib/modules/"$kver"}
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
[ -e "$K/lib/modules/$kver/modules.dep" ] || depmod -b "$K" "$kver"
for m in dummy_hcd libcomposite usb_f_fs gadgetfs; do
	modprobe -d "$K" -S "$kver" --show-depends "$m" | awk '/^insmod/{print $2}'
done | sort -u | while read -r ko; do
	rel=${ko#"$K"/}; mkdir -p "$R/$(dirname "$rel")"; cp "$ko" "$R/$rel"
done
cp "$K/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$kver/"
depmod -b "$R" "$kver"
cp "$udevd" "$R/lib/systemd/" && ln -s ../lib/systemd/systemd-udevd "$R/bin/udevadm"
cp "$prog" "$R/bin/"
# The host tools the station's image pipeline runs (a real busybox applet of
# the same name is replaced: busybox's gzip/xz lack options the station uses).
tools=
for t in resize2fs e2fsck debugfs mkfs.fat mcopy zstd xz gzip; do
	p=$(command -v "$t") || skip "$t not installed (scripts/install-deps.sh)"
	rm -f "$R/bin/$t"; cp -L "$p" "$R/bin/$t"; tools="$tools $p"
done
for b in "$udevd" "$prog" $tools; do
	ldd "$b" | grep -o '/[^ ]*' | while read -r lib; do cp -L --parents "$lib" "$R/"; done
done
cp "$src/conf/60-rpi-sb-provisioner.rules" "$R/etc/udev/rules.d/"
printf 'root:x:0:0::/:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\nrpi-sb:x:990:\n' >"$R/etc/group"
mkdir -p "$R$(dirname "$S")" "$R$RPI_SB_VPI_FIRMWARE" "$R$H/etc/rpi-sb-provisioner"
cp "$S/provisioner.ini" "$R$H/etc/rpi-sb-provisioner/"
cp -a "$S" "$R$S"
cp -a "$RPI_SB_VPI_FIRMWARE/." "$R$RPI_SB_VPI_FIRMWARE/"
# The station runs its hook scripts with /bin/sh and looks for helpers in PATH.
cat >"$R/env" <<EOF
S=$S
H=$H
export RPI_SB_VPI_FIRMWARE=$RPI_SB_VPI_FIRMWARE
EOF

cat >"$R/init" <<'GUEST'
#!/bin/sh
export PATH=/bin HOME=/tmp ASAN_OPTIONS=detect_leaks=1
. /env
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /run   # /tmp stays in the rootfs: the station tree lives under it
exec 2>&1
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "$*"; echo "$*" >>/tmp/out; }
echo "guest: /init at uptime $(up) s"
say "TIMING guest_init_uptime_s $(up)"
fail=0
check() { if eval "$2"; then say "ok: $1"; else say "FAIL: $1"; fail=$((fail+1)); fi; }
waitfor() { i=0; while [ $i -lt ${3:-300} ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; i=$((i+1)); done; return 1; }
modprobe dummy_hcd num=2; modprobe libcomposite; modprobe usb_f_fs; modprobe gadgetfs
mount -t configfs configfs /sys/kernel/config
/lib/systemd/systemd-udevd --daemon; udevadm settle -t 5
say "TIMING usb_stack_ready_uptime_s $(up)"
RSB="rpi-sb-provisioner --root $H"
vpi() { # name udc [options]: a virtual Pi 5 as a real USB gadget
	n=$1; u=$2; shift 2
	rpi-sb-provisioner virtual-pi --model pi5 --state /tmp/vpi-$n --gadget $u "$@" >/tmp/vpi-$n.log 2>&1 &
	eval "pid_$n=\$!"
}
station() { # log N [daemon options]: the daemon until N boards finished; its exit status in /tmp/rc
	s=$(up); l=$1; n=$2; shift 2
	: >$l; tail -f $l & tp=$!
	timeout 420 $RSB daemon --until-done $n --log "$@" >$l 2>&1; echo $? >/tmp/rc
	e=$(up); sleep 0.2; kill $tp
	echo "$s $e" >/tmp/span
}

echo "=== A: the station provisions two boards over real USB (rehearsal)"
vpi a dummy_udc.0 --seed 1; vpi b dummy_udc.1 --seed 2 --link-rate 8
# GadgetFS serves one device per kernel: the boards take turns in boot mode.
waitfor /sys/bus/usb/devices/1-1/idVendor 0a5c 100
check "a boot ROM enumerates as 0a5c:2712 with its 8-hex serial, iProduct says virtual Pi" \
	"grep -q 2712 /sys/bus/usb/devices/1-1/idProduct && grep -q -E '^[0-9a-f]{8}\$' /sys/bus/usb/devices/1-1/serial && grep -q 'rpi-sb-provisioner virtual Pi' /sys/bus/usb/devices/1-1/product"
station /tmp/station.log 2 --rehearse-usb
rcA=$(cat /tmp/rc); set -- $(cat /tmp/span)
say "TIMING station_provision_2_boards_s $(awk -v a=$1 -v b=$2 'BEGIN{printf "%.1f", b-a}')"
check "station: rehearsal said at start" "grep -q 'REHEARSAL over USB' /tmp/station.log"
check "station: EEPROM recovery served over GadgetFS (file server, short FileMessage reads)" \
	"[ \$(grep -c 'recovery: 3 file(s) served, 0 missing' /tmp/station.log) -ge 2 ]"
check "station: both boards came back to their boot ROM and took bootcode5.bin" \
	"[ \$(grep -c 'boot ROM: sending bootcode5.bin' /tmp/station.log) -ge 2 ]"
check "station: the stand-in gadget boot served to the virtual Pis it identified" \
	"[ \$(grep -c 'rehearsal: serving the stand-in' /tmp/station.log) -ge 2 ]"
check "station: both boards provisioned (daemon --until-done 2 exit 0)" "[ $rcA = 0 ]"
$RSB devices --json >/tmp/dev.json 2>&1
sa=$(grep -o 'serial [0-9a-f]*' /tmp/vpi-a.log | head -1 | cut -d' ' -f2)
sb=$(grep -o 'serial [0-9a-f]*' /tmp/vpi-b.log | head -1 | cut -d' ' -f2)
check "records: devices --json lists both boards ($sa, $sb)" \
	"[ -n '$sa' ] && [ -n '$sb' ] && grep -q '$sa' /tmp/dev.json && grep -q '$sb' /tmp/dev.json"
grep -h 'MB/s' /tmp/vpi-a.log /tmp/vpi-b.log | sed 's/^/THROUGHPUT /' | tee -a /tmp/out
kill $pid_a $pid_b 2>/dev/null; wait $pid_a $pid_b 2>/dev/null
# The guest's root is RAM: boards a and b's storage must go before d and e write theirs.
rm -rf /tmp/vpi-a /tmp/vpi-b

echo "=== B: board e unplugged mid-download, board d finishes (station)"
vpi d dummy_udc.0 --seed 4; vpi e dummy_udc.1 --seed 5 --link-rate 1
waitfor /sys/bus/usb/devices/1-1/idVendor 0a5c 100
# The station's image goes down in chunks under 1 MiB (the gadget logs no
# block start): the station's own line says when board e's root flash began.
( waitfor /tmp/station-b.log '2-1 .* flash mmcblk0' 3000 && sleep 0.3 &&
  echo "" >/sys/kernel/config/usb_gadget/vpi_dummy_udc_1/UDC && echo "harness: dummy_udc.1 unbound at $(up) s" ) &
station /tmp/station-b.log 2 --rehearse-usb
rcB=$(cat /tmp/rc); set -- $(cat /tmp/span)
say "TIMING station_scenario_b_s $(awk -v a=$1 -v b=$2 'BEGIN{printf "%.1f", b-a}')"
$RSB devices --json >/tmp/dev-b.json 2>&1
sd=$(grep -o 'serial [0-9a-f]*' /tmp/vpi-d.log | head -1 | cut -d' ' -f2)
check "board e saw its cable pulled, and only e" \
	"grep -q 'UDC unbound: cable pulled' /tmp/vpi-e.log && ! grep -q 'cable pulled' /tmp/vpi-d.log"
check "station: exactly one board failed, with 'unplugged during <phase>'" \
	"[ $rcB != 0 ] && grep -q 'stopped: 1 done, 1 failed' /tmp/station-b.log && grep -q -E 'unplugged during [a-z]+' /tmp/station-b.log"
say "station reason: $(grep -o -E 'unplugged during [a-z]+' /tmp/station-b.log | head -1)"
check "board d finished and is in the records" "[ -n '$sd' ] && grep -q '$sd' /tmp/dev-b.json"
kill $pid_d $pid_e 2>/dev/null; wait $pid_d $pid_e 2>/dev/null
for n in a b d e; do echo "--- vpi-$n"; tail -8 /tmp/vpi-$n.log; done
echo "--- station-b (rc $rcB)"; tail -20 /tmp/station-b.log
echo "=== C: the station sees a board unplugged mid-transfer (boot mode)"
# Board c's link is slow (1 MB/s), so its 2 MiB EEPROM image takes 2 s; its
# UDC is detached (soft_connect) half a second into it.
vpi c dummy_udc.0 --seed 3 --link-rate 1
( waitfor /tmp/vpi-c.log 'bulk OUT of 2097152 bytes started' 600 && sleep 0.5 &&
  echo disconnect >/sys/class/udc/dummy_udc.0/soft_connect && echo "harness: dummy_udc.0 detached at $(up) s" ) &
station /tmp/station-c.log 1
rcC=$(cat /tmp/rc)
sleep 1
check "station: the board failed in bootstrap, its file server ended by the disconnect" \
	"[ $rcC != 0 ] && grep -q 'failed in bootstrap' /tmp/station-c.log && grep -q 'ended: disconnect' /tmp/station-c.log"
check "station: board c's reason is 'unplugged during bootstrap'" "grep -q 'unplugged during bootstrap' /tmp/station-c.log"
check "board c saw its cable pulled" "grep -q 'cable pulled' /tmp/vpi-c.log"
kill $pid_c 2>/dev/null; wait $pid_c 2>/dev/null
echo "--- vpi-c"; tail -6 /tmp/vpi-c.log; echo "--- station-c (rc $rcC)"; tail -8 /tmp/station-c.log
check "no ASan/UBSan report" "! grep -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error' /tmp/station*.log /tmp/vpi-*.log /tmp/boot-*.log"

say "TIMING guest_done_uptime_s $(up)"
{ cat /tmp/out; echo "STATION_RECORDS"; cat /tmp/dev-b.json
  echo "HARNESS_RESULT rc=$fail"; } >/dev/ttyS1
echo "HARNESS_RESULT rc=$fail"
poweroff -f
GUEST
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initramfs.cpio.gz"
t1=$(date +%s.%N)

# ---- boot ------------------------------------------------------------------
timeout 1200 qemu-system-x86_64 -accel tcg -cpu qemu64 -smp 1 -m 3072 -nographic -no-reboot \
	-kernel "$K"/boot/vmlinuz-"$kver" -initrd "$W/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1" \
	-serial mon:stdio -serial file:"$W/result.txt" </dev/null >"$W/console.log" 2>&1 || true
t2=$(date +%s.%N)
tr -d '\r' <"$W/console.log" | sed -n '/guest: \/init/,$p'
echo "--- result channel"
cat "$W/result.txt" 2>/dev/null || true
awk -v a="$t0" -v b="$t1" -v c="$t2" -v s="$(du -m "$W/initramfs.cpio.gz" | cut -f1)" \
	'BEGIN { printf "timings: host setup (station tree, initramfs %s MiB) %.1f s, QEMU run %.1f s\n", s, b - a, c - b }'
grep -q 'HARNESS_RESULT rc=0' "$W/result.txt" 2>/dev/null || {
	echo "FAIL: guest result: $(grep HARNESS_RESULT "$W/result.txt" 2>/dev/null || echo 'none (hang, panic or timeout)')"
	exit 1
}
echo "PASS: two virtual Pi 5s as real USB gadgets provisioned by the station (rehearsal)," \
	"an unplugged board failed alone while the other finished, the station failed a board pulled in bootstrap"
