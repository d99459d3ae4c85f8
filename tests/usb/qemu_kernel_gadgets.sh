#!/usr/bin/env bash
# qemu_kernel_gadgets.sh: the station's real-USB host side on a real USB stack,
# against the kernel's own gadgets (no virtual Pi): a QEMU guest (TCG) with
# dummy_hcd (two buses), udevd with conf/60-rpi-sb-provisioner.rules, and two
# configfs gadgets posing as a Pi 5 boot ROM (0a5c:2712: ACM + mass storage)
# and a Raspberry Pi fastboot gadget (18d1:4e40). tests/usb/usb_probe checks:
#   - discovery lists exactly the two boards, with sysfs port paths and serials;
#   - the udev rules: node group rpi-sb mode 0660, the ROM's mass-storage
#     interface deauthorised; a group member opens without root, anyone else
#     is refused with the advice;
#   - the libusb transport: endpoints from descriptors, 1 MiB bulk OUT and
#     300000 bytes bulk IN through the ACM data interface (its kernel driver
#     detached by libusb for the claim);
#   - discovery + station: a re-enumeration on the same port is one job;
#     a udevd that stopped sending events is detected and replaced by polling
#     (said once); without udevd the poll fallback is announced once;
#   - bulk throughput through a FunctionFS sink (tests/usb/ffs_sink): 32 MiB
#     each way, every byte counted by the device; the figures are printed;
#   - a UDC unbound mid-transfer (the cable pulled) fails the transfer with
#     -ENODEV, logged as LIBUSB_ERROR_NO_DEVICE or as LIBUSB_ERROR_IO followed
#     by the device leaving the bus.
# The guest writes "HARNESS_RESULT rc=N" on its second serial port.
# Skips (77) when qemu-system-x86_64, busybox-static, systemd-udevd or the
# kernel image package are not available. RPI_SB_QEMU_KERNEL=DIR reuses an
# unpacked linux-image package (DIR/boot/vmlinuz-*, DIR/lib/modules/*).
set -euo pipefail

: "${top_builddir:?}"
: "${top_srcdir:?}"
probe="$top_builddir/tests/usb/usb_probe"
udevd=/lib/systemd/systemd-udevd
skip() { echo "SKIP: $*"; exit 77; }
for tool in qemu-system-x86_64 depmod modprobe cpio gzip; do
	command -v "$tool" >/dev/null || skip "$tool not installed"
done
[ -x /bin/busybox ] && /bin/busybox --list | grep -x modprobe >/dev/null || skip "busybox-static not installed"
[ -x "$udevd" ] || skip "udev (systemd-udevd) not installed"
for b in "$probe" "$top_builddir/tests/usb/ffs_sink"; do
	[ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/rpisb-qemu-usb.XXXXXX")
trap 'rm -rf "$W"' EXIT
t0=$(date +%s.%N)

# ---- kernel (Debian's package, unpacked once per build tree) --------------
K=${RPI_SB_QEMU_KERNEL:-$top_builddir/tests/usb/kernel}
if ! ls "$K"/boot/vmlinuz-* >/dev/null 2>&1; then
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	[ -n "$pkg" ] || skip "no linux-image package known to apt"
	mkdir -p "$W/deb" "$(dirname "$K")"
	(cd "$W/deb" && apt-get download "$pkg" >/dev/null 2>&1) || skip "cannot download $pkg"
	# Unpacked beside the cache, then renamed: an interrupted run leaves no half tree.
	tmpk=$(mktemp -d "$K.XXXXXX")
	dpkg-deb -x "$W"/deb/linux-image-*.deb "$tmpk"
	rm -rf "$K" && mv "$tmpk" "$K"
fi
kver=$(ls "$K/lib/modules" | head -1)

# ---- initramfs -------------------------------------------------------------
R=$W/root
mkdir -p "$R"/{bin,etc/udev/rules.d,proc,sys,dev,run,tmp,lib/systemd,lib/modules/"$kver"}
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
[ -e "$K/lib/modules/$kver/modules.dep" ] || depmod -b "$K" "$kver"
for m in dummy_hcd libcomposite usb_f_fs usb_f_acm usb_f_mass_storage cdc-acm usb-storage; do
	modprobe -d "$K" -S "$kver" --show-depends "$m" | awk '/^insmod/{print $2}'
done | sort -u | while read -r ko; do
	rel=${ko#"$K"/}; mkdir -p "$R/$(dirname "$rel")"; cp "$ko" "$R/$rel"
done
cp "$K/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$kver/"
depmod -b "$R" "$kver"
cp "$udevd" "$R/lib/systemd/" && ln -s ../lib/systemd/systemd-udevd "$R/bin/udevadm"
cp "$probe" "$top_builddir/tests/usb/ffs_sink" "$R/bin/"
for b in "$udevd" "$probe"; do
	ldd "$b" | grep -o '/[^ ]*' | while read -r lib; do cp -L --parents "$lib" "$R/"; done
done
cp "$top_srcdir/conf/60-rpi-sb-provisioner.rules" "$R/etc/udev/rules.d/"
printf 'root:x:0:0::/:/bin/sh\nstation:x:1000:1000::/tmp:/bin/sh\nnobody:x:65534:65534::/tmp:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\nrpi-sb:x:990:station\nstation:x:1000:\nnogroup:x:65534:\n' >"$R/etc/group"

cat >"$R/init" <<'GUEST'
#!/bin/sh
export PATH=/bin ASAN_OPTIONS=detect_leaks=1
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /run; mount -t tmpfs tmp /tmp
exec 2>&1
echo "guest: /init at uptime $(cut -d' ' -f1 /proc/uptime) s"
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=$((fail+1)); fi; }
waitfor() { i=0; while [ $i -lt 200 ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; i=$((i+1)); done; return 1; }
modprobe dummy_hcd num=3; modprobe libcomposite; modprobe usb_f_acm; modprobe usb_f_mass_storage; modprobe usb_f_fs
modprobe cdc-acm; modprobe usb-storage
mount -t configfs configfs /sys/kernel/config
/lib/systemd/systemd-udevd --daemon; udevadm settle -t 5
dd if=/dev/zero of=/tmp/disk.img bs=1M count=2 2>/dev/null
G=/sys/kernel/config/usb_gadget
mkgadget() { # name udc vid pid manufacturer serial [mass-storage]
	g=$G/$1; mkdir $g; echo $3 >$g/idVendor; echo $4 >$g/idProduct; echo 0x0200 >$g/bcdUSB
	mkdir $g/strings/0x409; echo "$5" >$g/strings/0x409/manufacturer
	echo "$6" >$g/strings/0x409/serialnumber; echo "$1" >$g/strings/0x409/product
	mkdir $g/configs/c.1 $g/functions/acm.$1; ln -s $g/functions/acm.$1 $g/configs/c.1/
	if [ -n "$7" ]; then
		mkdir $g/functions/mass_storage.$1; echo /tmp/disk.img >$g/functions/mass_storage.$1/lun.0/file
		ln -s $g/functions/mass_storage.$1 $g/configs/c.1/
	fi
	echo $2 >$g/UDC
}
reenum() { # name udc vid pid manufacturer serial: what a board does between phases
	g=$G/$1; echo "" >$g/UDC; rm -f $g/configs/c.1/mass_storage.$1
	echo $3 >$g/idVendor; echo $4 >$g/idProduct; echo "$5" >$g/strings/0x409/manufacturer
	echo "$6" >$g/strings/0x409/serialnumber; sleep 0.3; echo $2 >$g/UDC
}
mkgadget g1 dummy_udc.0 0x0a5c 0x2712 Broadcom c85be8ea mass-storage
mkgadget g2 dummy_udc.1 0x18d1 0x4e40 "Raspberry Pi" 5e1f00d10badf00e
sleep 1; udevadm settle -t 5

echo "--- discovery lists the boards"
usb_probe list | tee /tmp/list
check "boot ROM on 1-1 with its serial" "grep -q \"^1-1 bootrom 0a5c:2712 .*serial 'c85be8ea'\" /tmp/list"
check "fastboot gadget on 2-1" "grep -q \"^2-1 gadget 18d1:4e40 .*serial '5e1f00d10badf00e'\" /tmp/list"
check "nothing else listed (root hubs, interfaces)" "[ \$(wc -l </tmp/list) -eq 2 ]"

echo "--- udev rules"
node=$(printf '/dev/bus/usb/%03d/%03d' $(cat /sys/bus/usb/devices/1-1/busnum) $(cat /sys/bus/usb/devices/1-1/devnum))
ls -l $node
check "boot-mode node: group rpi-sb, mode 0660" "ls -l $node | grep -q '^crw-rw---- .* root .*rpi-sb'"
node2=$(printf '/dev/bus/usb/%03d/%03d' $(cat /sys/bus/usb/devices/2-1/busnum) $(cat /sys/bus/usb/devices/2-1/devnum))
check "gadget node: group rpi-sb, mode 0660" "ls -l $node2 | grep -q '^crw-rw---- .* root .*rpi-sb'"
ms=$(grep -l '^08$' /sys/bus/usb/devices/1-1:1.*/bInterfaceClass | head -1); ms=${ms%/bInterfaceClass}
check "boot ROM mass-storage interface deauthorised, unbound" "[ -n '$ms' ] && [ \$(cat $ms/authorized) = 0 ] && [ ! -e $ms/driver ]"
su -s /bin/sh station -c "usb_probe open 1-1" >/tmp/open.log 2>&1; rc=$?; cat /tmp/open.log
check "group member opens without root; endpoints from descriptors" "[ $rc = 0 ] && grep -q 'ep_out 0x02 ep_in 0x81' /tmp/open.log"
su -s /bin/sh nobody -c "usb_probe open 1-1" >/tmp/open2.log 2>&1; rc=$?; cat /tmp/open2.log
check "others refused, told about the rules and group" "[ $rc = 1 ] && grep -q 'group rpi-sb' /tmp/open2.log"

echo "--- libusb transport: bulk through the ACM data interface"
tty=/dev/ttyGS$(cat $G/g1/functions/acm.g1/port_num); stty -F $tty raw -echo
cat $tty >/tmp/got & catpid=$!
usb_probe bulk 1-1 1048576 0
sleep 1; kill $catpid
check "1 MiB bulk OUT arrives whole" "[ \$(wc -c </tmp/got) -eq 1048576 ]"
(head -c 300000 /dev/zero >$tty) &
usb_probe bulk 1-1 0 300000 | tee /tmp/bulkin.log
check "300000 bytes bulk IN" "grep -q 'bulk IN 300000 of 300000' /tmp/bulkin.log"

echo "--- discovery + station, udevd running: re-enumeration on 1-1"
usb_probe watch 4 >/tmp/w1 2>&1 & wpid=$!
waitfor /tmp/w1 "watch: started"; waitfor /tmp/w1 "^1-1 opened"
reenum g1 dummy_udc.0 0x18d1 0x4e40 "Raspberry Pi" c561b701c85be8ea
wait $wpid; cat /tmp/w1
check "boot ROM opened on 1-1" "grep -q '^1-1 opened bootrom 0a5c:2712' /tmp/w1"
check "the gadget that replaced it opened by the same job" "grep -q '^1-1 opened gadget 18d1:4e40' /tmp/w1"
check "one job (one port-added) for 1-1" "[ \$(grep -c ' 1-1 .*port-added' /tmp/w1) = 1 ]"
check "gadget on 2-1 opened" "grep -q '^2-1 opened gadget' /tmp/w1"
check "udev events used (no polling notice)" "! grep -q polling /tmp/w1"

echo "--- udevd gone, its control socket left behind"
killall systemd-udevd; sleep 0.5
usb_probe watch 6 >/tmp/w2 2>&1 & wpid=$!
waitfor /tmp/w2 "watch: started"; waitfor /tmp/w2 "^1-1 opened"
reenum g1 dummy_udc.0 0x0a5c 0x2712 Broadcom c85be8ea
wait $wpid; cat /tmp/w2
check "silence noticed and said once" "[ \$(grep -c 'udevd sent no event' /tmp/w2) = 1 ]"
check "the board is found again by polling" "grep -q '^1-1 opened bootrom' /tmp/w2"

echo "--- no udevd at all"
rm -f /run/udev/control
usb_probe watch 3 >/tmp/w3 2>&1 & wpid=$!
waitfor /tmp/w3 "watch: started"; waitfor /tmp/w3 "^2-1 opened"
reenum g2 dummy_udc.1 0x0a5c 0x2711 Broadcom 0badf00d
wait $wpid; cat /tmp/w3
check "poll fallback said once" "[ \$(grep -c 'udevd is not running' /tmp/w3) = 1 ]"
check "arrival on 2-1 seen by polling" "grep -q '^2-1 opened bootrom 0a5c:2711' /tmp/w3"
echo "--- bulk throughput: FunctionFS sink on 3-1 (the kernel renumbers its endpoints)"
g=$G/g3; mkdir $g; echo 0x0a5c >$g/idVendor; echo 0x2712 >$g/idProduct; mkdir $g/strings/0x409
echo Broadcom >$g/strings/0x409/manufacturer; mkdir $g/configs/c.1 $g/functions/ffs.sink
ln -s $g/functions/ffs.sink $g/configs/c.1/; mkdir /dev/ffs-sink; mount -t functionfs sink /dev/ffs-sink
ffs_sink /dev/ffs-sink >/tmp/sink 2>&1 &
waitfor /tmp/sink ready; echo dummy_udc.2 >$g/UDC; sleep 1; udevadm settle -t 5 2>/dev/null
usb_probe bulk 3-1 33554432 33554432 | tee /tmp/tp
echo "" >$g/UDC; waitfor /tmp/sink received; cat /tmp/sink
check "32 MiB out and in through endpoints 0x02/0x81" "grep -q 'ep_out 0x02 ep_in 0x81' /tmp/tp && grep -q 'bulk IN 33554432 of 33554432' /tmp/tp"
check "the device got every byte" "grep -q 'received 33554432 bytes' /tmp/sink"
echo "--- the cable pulled mid-transfer (UDC unbound)"
echo dummy_udc.2 >$g/UDC
# Back on the bus and configured (slow under load) before the transfer starts.
i=0; until usb_probe open 3-1 >/dev/null 2>&1 || [ $i -ge 200 ]; do sleep 0.2; i=$((i+1)); done
# Under load the re-bound gadget can still be settling when the transfer
# opens it ("opening 3-1: No such device"): then try again, up to 5 times.
for try in 1 2 3 4 5; do
	usb_probe bulk 3-1 4294967296 0 >/tmp/pull 2>&1 & ppid=$!
	sleep 1.5
	if ! kill -0 $ppid 2>/dev/null && grep -q 'opening 3-1' /tmp/pull; then
		wait $ppid; echo "harness: open raced the re-bind (try $try)"; sleep 1; continue
	fi
	echo "" >$g/UDC; wait $ppid; rc=$?; break
done
cat /tmp/pull
# libusb says NO_DEVICE, or IO when the transfer broke before the hub saw the
# disconnect; the transport then finds the port empty and reports an unplug.
check "the transfer fails as an unplug (-ENODEV), named by libusb" "[ $rc = 1 ] && grep -q 'No such device' /tmp/pull && grep -q -E 'LIBUSB_ERROR_NO_DEVICE|LIBUSB_ERROR_IO \\(the device then left the bus' /tmp/pull"
check "no ASan/UBSan report" "! grep -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error' /tmp/w1 /tmp/w2 /tmp/w3 /tmp/open.log /tmp/bulkin.log /tmp/tp /tmp/pull"
echo "guest: done at uptime $(cut -d' ' -f1 /proc/uptime) s"
echo "HARNESS_RESULT rc=$fail" | tee /dev/ttyS1
poweroff -f
GUEST
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/initramfs.cpio.gz"
t1=$(date +%s.%N)

# ---- boot ------------------------------------------------------------------
timeout 400 qemu-system-x86_64 -accel tcg -cpu qemu64 -smp 1 -m 1024 -nographic -no-reboot \
	-kernel "$K"/boot/vmlinuz-"$kver" -initrd "$W/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1" \
	-serial mon:stdio -serial file:"$W/result.txt" </dev/null >"$W/console.log" 2>&1 || true
t2=$(date +%s.%N)
tr -d '\r' <"$W/console.log" | sed -n '/guest: \/init/,$p' | sed 's/^.*\(guest: \/init\)/\1/'
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "timings: kernel + initramfs %.1f s, QEMU run %.1f s\n", b - a, c - b }'
grep -q 'HARNESS_RESULT rc=0' "$W/result.txt" 2>/dev/null || {
	echo "FAIL: guest result: $(cat "$W/result.txt" 2>/dev/null || echo 'none (hang, panic or timeout)')"
	exit 1
}
echo "PASS: real USB stack checks"
