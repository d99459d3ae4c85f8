#!/bin/bash
# vpi_fastboot_tcp: Debian's real `fastboot` client drives the virtual Pi's
# fastboot gadget over TCP: getvars, partitioning, a sparse flash made by
# img2simg (read back from storage.img and compared), erase, OEM commands,
# LUKS2 on p2 with a flash through mapper/cryptroot, and the FAIL paths.
source "${top_srcdir}/tests/integration/lib.sh"

for tool in fastboot img2simg sfdisk cryptsetup; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

# Port 0: the gadget binds a free loopback port and prints it.
"$PROGRAM" virtual-pi --model pi5 --state "$T/pi5" --fastboot-tcp 0 >"$T/server.out" 2>"$T/server.err" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
for _ in $(seq 1 200); do
	grep -q 'fastboot on tcp:' "$T/server.out" 2>/dev/null && break
	kill -0 "$SERVER" 2>/dev/null || { cat "$T/server.err" >&2; fail "virtual-pi exited early"; }
	sleep 0.05
done
LINE=$(cat "$T/server.out")
[[ $LINE =~ ^virtual\ Pi\ pi5\ serial\ ([0-9a-f]{16})\ fastboot\ on\ tcp:127\.0\.0\.1:([0-9]+)$ ]] ||
	fail "unexpected banner: $LINE"
SERIAL=${BASH_REMATCH[1]}
PORT=${BASH_REMATCH[2]}
pass "virtual-pi up: serial $SERIAL port $PORT"

fb() { timeout 60 fastboot -s "tcp:127.0.0.1:$PORT" "$@"; }

expect_rc 0 fb getvar serialno
expect_out "^serialno: $SERIAL"
expect_rc 0 fb getvar product
expect_out '^product: Raspberry Pi 5 Model B'
expect_rc 0 fb getvar max-download-size
expect_out '^max-download-size: 0x10000000'
expect_rc 0 fb getvar block-devices
expect_out '^block-devices: mmcblk0$'
pass "getvar serialno/product/max-download-size/block-devices"

# The AOSP client exits 0 on a FAILed getvar.
expect_rc 0 fb getvar no-such-variable
expect_out "FAILED \(remote: 'Unknown variable'\)"
pass "unknown variable FAILs"

# Secure-boot sequence (spec §6.3): erase, DOS table, 16 MiB FAT + rest.
expect_rc 0 fb erase mmcblk0
expect_rc 0 fb oem partinit mmcblk0 DOS
expect_rc 0 fb oem partapp mmcblk0 0c 16777216
expect_rc 0 fb oem partapp mmcblk0 83
sfdisk -d "$T/pi5/storage.img" >"$T/pt" || fail "sfdisk cannot read the MBR the gadget wrote"
P1=$(sed -n 's/.*img1 : start= *\([0-9]*\), size= *\([0-9]*\), type=c$/\1 \2/p' "$T/pt")
P2=$(sed -n 's/.*img2 : start= *\([0-9]*\), size= *\([0-9]*\), type=83$/\1 \2/p' "$T/pt")
[ "$P1" = "8192 32768" ] || { cat "$T/pt" >&2; fail "p1 not at 4 MiB with 16 MiB: $P1"; }
read -r P2_START P2_SECTORS <<<"$P2"
[ "$P2_START" = 40960 ] || fail "p2 does not start at 20 MiB: $P2"
expect_rc 0 fb getvar partition-size:mmcblk0p1
expect_out '^partition-size:mmcblk0p1: 0x1000000'
pass "oem partinit/partapp wrote an MBR sfdisk reads"

# A 16 MiB image with data, a zero run (FILL) and more data, sparse by img2simg.
head -c 4M /dev/urandom >"$T/p2.raw"
head -c 8M /dev/zero >>"$T/p2.raw"
head -c 4M /dev/urandom >>"$T/p2.raw"
img2simg "$T/p2.raw" "$T/p2.simg"
expect_rc 0 fb flash mmcblk0p2 "$T/p2.simg"
expect_out "Writing 'mmcblk0p2' +OKAY"
dd if="$T/pi5/storage.img" of="$T/p2.back" bs=512 skip="$P2_START" count=32768 status=none
cmp "$T/p2.raw" "$T/p2.back" || fail "mmcblk0p2 read back differs from the flashed image"
pass "sparse flash of mmcblk0p2 reads back equal"

# A raw image bigger than p1 is refused with the daemon's message.
head -c 17M /dev/zero >"$T/big.raw"
expect_rc 1 fb flash mmcblk0p1 "$T/big.raw"
expect_out "payload 17825792B exceeds partition /dev/mmcblk0p1 size 16777216B"
pass "image larger than the partition refused"

expect_rc 0 fb erase mmcblk0p1
expect_out "Erasing 'mmcblk0p1' +OKAY"
expect_rc 1 fb erase mmcblk0p7
expect_out "Partition doesn't exist"
pass "erase"

# OEM: LED, device key, LUKS2 on p2 keyed by the device.
expect_rc 0 fb oem led PWR 0
expect_rc 1 fb oem cryptinit mmcblk0p2 root
expect_out 'Cannot generate LUKS key - unsupported device type'
# (The AOSP client does not print an OKAY's message, only FAIL's.)
expect_rc 0 fb oem fwcrypto init
expect_rc 0 fb oem fwcrypto init
expect_rc 0 fb getvar private-key
expect_out '^private-key: refused'
expect_rc 0 fb oem cryptinit mmcblk0p2 root aes-xts-plain64
expect_rc 0 fb oem cryptopen mmcblk0p2 cryptroot
expect_rc 0 fb getvar partition-size:mapper/cryptroot
WANT=$(printf '0x%X' $(( (P2_SECTORS * 512) - 16 * 1024 * 1024 )))
expect_out "^partition-size:mapper/cryptroot: $WANT\$"
expect_rc 0 fb getvar partition-size:mmcblk0p2
expect_out "Could not open partition"
expect_rc 0 fb flash mapper/cryptroot "$T/p2.simg"
dd if="$T/pi5/storage.img" of="$T/luks.hdr" bs=512 skip="$P2_START" count=65536 status=none
cryptsetup luksDump "$T/luks.hdr" >"$T/dump" || fail "cryptsetup cannot read the LUKS2 header"
grep -q 'Label:.*root' "$T/dump" || fail "LUKS label is not root"
grep -q 'cipher: aes-xts-plain64' "$T/dump" || fail "LUKS cipher is not aes-xts-plain64"
grep -q 'sector: 512 \[bytes\]' "$T/dump" || fail "LUKS sector size is not 512"
# Ciphertext, not plaintext, lies under the mapping.
dd if="$T/pi5/storage.img" of="$T/ct" bs=512 skip=$((P2_START + 32768)) count=8192 status=none
cmp -s "$T/ct" <(head -c 4M "$T/p2.raw") && fail "mapper/cryptroot data was stored in clear"
pass "LUKS2 cryptinit/cryptopen and a flash through mapper/cryptroot"

expect_rc 1 fb oem no-such-thing
expect_out "Unknown OEM command."
expect_rc 1 fb reboot-recovery
expect_out "Unrecognized command reboot-recovery"
pass "unknown commands FAIL as the daemon does"

kill -TERM "$SERVER"
wait "$SERVER" || fail "virtual-pi did not exit cleanly on SIGTERM"
pass "clean exit on SIGTERM"
