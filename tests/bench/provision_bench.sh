#!/bin/bash
# provision_bench: how fast and how lean the station provisions virtual boards
# over a USB 2 sized link, and our fastboot client against Debian's. Not part
# of make check (minutes, and its figures depend on the machine).
#
#   tests/bench/provision_bench.sh [BUILDDIR [BUILDDIR_B]]
#
# With BUILDDIR_B, every configuration runs with both builds in turn (A B A
# B ...), each on its own root, so a before/after comparison shares the
# machine's load; the medians are printed per build.
#
# BUILDDIR holds rpi-sb-provisioner and tests/unit/fbclient_cli (make
# tests/unit/fbclient_cli); use a build without ASan for meaningful figures.
# Needs /usr/bin/time, sqlite3, python3, img2simg, fastboot, and farm-bench
# for the client comparison (skipped without it). Environment: REPS (runs
# per simulate configuration, default 3), LINK (MB/s, default 40).
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${1:-.}" && pwd)
PROGRAM="$B/rpi-sb-provisioner"
BUILDS="A"
PROGRAM_A=$PROGRAM
if [ -n "${2:-}" ]; then
	PROGRAM_B="$(cd "$2" && pwd)/rpi-sb-provisioner"
	[ -x "$PROGRAM_B" ] || { echo "no $PROGRAM_B" >&2; exit 2; }
	BUILDS="A B"
fi
FBC="$B/tests/unit/fbclient_cli"
if [ -n "${2:-}" ]; then	# the client comparison uses build B
	PROGRAM=$PROGRAM_B
	FBC="$(cd "$2" && pwd)/tests/unit/fbclient_cli"
fi
REPS=${REPS:-3}
LINK=${LINK:-40}
export RPI_SB_VPI_FIRMWARE=${RPI_SB_VPI_FIRMWARE:-/work/shared/fixtures/rpi-firmware}
export RPI_SB_SCRIPTS_DIR=${RPI_SB_SCRIPTS_DIR:-$here/scripts}
[ -x "$PROGRAM" ] || { echo "no $PROGRAM" >&2; exit 2; }
W=$(mktemp -d "${TMPDIR:-/tmp}/provbench.XXXXXX")
VPI=
trap '[ -n "$VPI" ] && kill $VPI 2>/dev/null; rm -rf "$W"' EXIT

echo "# provision_bench $(date -u '+%F %T') UTC on $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# A = $PROGRAM_A${PROGRAM_B:+, B = $PROGRAM_B}"

# sim NAME ROOT ARGS...: one simulate run with a clean board/record state and
# the artefact cache kept; /usr/bin/time -v of the whole process. The build
# is PROGRAM_<X> for a NAME starting with "X:" (else A); its root is ROOT-X.
sim() {
	local name=$1 root=$2 build=A; shift 2
	case "$name" in ?:*) build=${name%%:*} ;; *) name="A:$name" ;; esac
	root="$root-$build"
	local prog_var="PROGRAM_$build"
	local s="$root/srv/rpi-sb-provisioner/simulate"
	mkdir -p "$root"
	rm -rf "$s/boards" "$s/log" "$s/manufacturing.db" "$s/device-keys"
	/usr/bin/time -v -o "$W/$name.time" "${!prog_var}" --root "$root" simulate --until-done --headless \
		--link-rate "$LINK" "$@" >"$W/$name.out" 2>&1 || {
		tail -20 "$W/$name.out" >&2; echo "bench run $name failed" >&2; exit 1; }
	python3 - "$name" "$s" "$W/$name.time" "$LINK" >>"$W/summary.tsv" <<'PY'
import glob, os, re, sqlite3, sys
name, s, timef, link = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
t = open(timef).read()
def tv(label):
    return re.search(re.escape(label) + r': *([0-9.:]+)', t).group(1)
cpu = float(tv('User time (seconds)')) + float(tv('System time (seconds)'))
el = tv('Elapsed (wall clock) time (h:mm:ss or m:ss)').split(':')
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(el)))
rss_mb = int(tv('Maximum resident set size (kbytes)')) / 1024
db = sqlite3.connect(os.path.join(s, 'manufacturing.db'))
total = 0
for serial, port, b, tr, p, v, res in db.execute(
        "SELECT serial, usb_port, bootstrap_ms, triage_ms, provision_ms, verify_ms, result FROM attempts ORDER BY usb_port"):
    boot = flash = bmap = 0
    for line in open(os.path.join(s, 'log', serial, 'bootstrap.log')):
        m = re.search(r'sending (?:\S+ )?\(?([0-9]+) bytes', line)
        if m:
            boot += int(m.group(1))
    for line in open(os.path.join(s, 'log', serial, 'provisioner.log')):
        m = re.search(r'\] flash .* \(([0-9]+) bytes sparse\)', line)
        if m:
            flash += int(m.group(1))
        m = re.search(r'\] verify .*\(([0-9]+) bytes of bmap[^)]*\)', line)
        if m:
            bmap += int(m.group(1))
    sent = boot + flash + bmap
    link_s = sent / (link * 1e6)
    # "timing provision: W s: S s sending, B s waiting for the board, X s in the station"
    wait_ms = st_ms = ''
    for line in open(os.path.join(s, 'log', serial, 'provisioner.log')):
        m = re.search(r'timing provision: ([0-9.]+) s: ([0-9.]+) s sending, ([0-9.]+) s waiting for the board, (-?[0-9.]+) s in the station', line)
        if m:
            wait_ms, st_ms = f"{float(m.group(3)) * 1000:.0f}", f"{float(m.group(4)) * 1000:.0f}"
    sratio = f"{(p - float(wait_ms)) / (flash / (link * 1e3)):.2f}" if wait_ms and flash else ''
    print(f"board\t{name}\t{port}\t{res}\t{b}\t{tr}\t{p}\t{v}\t{boot}\t{flash}\t{bmap}\t{link_s*1000:.0f}\t{(b + p) / (link_s * 1000):.2f}\t{wait_ms}\t{st_ms}\t{sratio}")
    total += sent
print(f"run\t{name}\t{wall:.2f}\t{cpu:.2f}\t{rss_mb:.0f}\t{total}\t{cpu / (total / 1e9):.1f}")
PY
}

# gold IMG SIZE_MB DATA_MB: scripts/make-gold-image.sh plus DATA_MB of random
# bytes in /data.bin of its root (the generated image is nearly empty
# otherwise, so per-byte costs would not show).
gold() {
	local img=$1 size=$2 data=$3 start sectors
	bash "$here/scripts/make-gold-image.sh" "$img" "$size" >/dev/null
	[ "$data" -gt 0 ] || return 0
	start=$(sfdisk -J "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][1]["start"])')
	sectors=$(sfdisk -J "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][1]["size"])')
	dd if="$img" of="$W/p2.img" bs=512 skip="$start" count="$sectors" status=none
	head -c $((data << 20)) /dev/urandom >"$W/data.bin"
	debugfs -w -R "write $W/data.bin data.bin" "$W/p2.img" >/dev/null 2>&1
	dd if="$W/p2.img" of="$img" bs=512 seek="$start" conv=notrunc status=none
	rm -f "$W/p2.img" "$W/data.bin"
}
simgold() { echo "$1/srv/rpi-sb-provisioner/simulate/images/gold.img"; }

R0="$W/root-default" R1="$W/root-128" R2="$W/root-512"
# each NAME ARGS...: sim once per build, in turn
each() { local n=$1 r=$2; shift 2; for x in $BUILDS; do sim "$x:$n" "$r" "$@"; done; }
echo "# 1) the embedded default gold image (64 MiB, ~0.4 MB of used blocks): fixed costs; cold cache first"
each cold-default "$R0" --devices pi5:1
for i in $(seq "$REPS"); do each "default-x1-$i" "$R0" --devices pi5:1; done

echo "# 2) 128 MiB gold with 48 MiB of random data in its root, 1 GiB storage: 1 board vs 4 boards"
each init-128 "$R1" --devices pi5:1 >/dev/null        # lays out the embedded default
for x in $BUILDS; do
	if [ "$x" = A ]; then gold "$(simgold "$R1-A")" 128 48; else cp "$(simgold "$R1-A")" "$(simgold "$R1-$x")"; fi
done
each warm-128 "$R1" --devices pi5:1 --storage-size 1024
for i in $(seq "$REPS"); do each "g128-x1-$i" "$R1" --devices pi5:1 --storage-size 1024; done
for i in $(seq "$REPS"); do each "g128-x4-$i" "$R1" --devices pi5:4 --storage-size 1024; done

echo "# 3) 512 MiB gold with 384 MiB of random data, 1 GiB storage, 1 board"
each init-512 "$R2" --devices pi5:1 >/dev/null
for x in $BUILDS; do
	if [ "$x" = A ]; then gold "$(simgold "$R2-A")" 512 384; else cp "$(simgold "$R2-A")" "$(simgold "$R2-$x")"; fi
done
each warm-512 "$R2" --devices pi5:1 --storage-size 1024
for i in $(seq "$REPS"); do each "g512-x1-$i" "$R2" --devices pi5:1 --storage-size 1024; done

python3 - "$W/summary.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1])]
print("\n## per board (ms; bytes; link-min = bytes / link; ratio = (bootstrap + provision) / link-min;")
print("## bwait / stat = provision phase time waiting for the board / in the station itself (from the")
print("## provisioner's timing line); sratio = (provision - bwait) / (flash bytes / link))")
print(f"{'run':14} {'port':5} {'result':6} {'boot':>6} {'triage':>6} {'prov':>6} {'verify':>6} {'rpiboot B':>10} {'flash B':>9} {'bmap B':>7} {'link-min':>8} {'ratio':>6} {'bwait':>6} {'stat':>5} {'sratio':>6}")
for r in rows:
    if r[0] == 'board':
        print(f"{r[1]:14} {r[2]:5} {r[3]:6} {r[4]:>6} {r[5]:>6} {r[6]:>6} {r[7]:>6} {r[8]:>10} {r[9]:>9} {r[10]:>7} {r[11]:>8} {r[12]:>6} {r[13]:>6} {r[14]:>5} {r[15]:>6}")
print("\n## whole process (simulator and virtual first boot included): wall s, CPU s, peak RSS MiB, bytes sent, CPU s per GB sent")
runs = [r for r in rows if r[0] == 'run']
for r in runs:
    print(f"{r[1]:14} wall {r[2]:>6} cpu {r[3]:>6} rss {r[4]:>5} MiB sent {r[5]:>9} cpu/GB {r[6]:>7}")
boards = [r for r in rows if r[0] == 'board']
print("\n## medians (per board: ratio, sratio, provision ms, time waiting for the board, station ms)")
for build in sorted({r[1].split(':')[0] for r in runs}):
    for group in ('default-x1', 'g128-x1', 'g128-x4', 'g512-x1'):
        pre = f"{build}:{group}-"
        g = [r for r in runs if r[1].startswith(pre)]
        if not g:
            continue
        med = lambda i: statistics.median(float(r[i]) for r in g)
        bg = [r for r in boards if r[1].startswith(pre)]
        bmed = lambda i: (f"{statistics.median(float(r[i]) for r in bg if r[i]):.2f}"
                          if any(r[i] for r in bg) else '-')
        print(f"{build}:{group:10} n={len(g)} wall {med(2):.2f} s, cpu {med(3):.2f} s, peak RSS {med(4):.0f} MiB, "
              f"sent {med(5) / 1e6:.2f} MB, cpu/GB {med(6):.1f} s | per board: ratio {bmed(12)}, "
              f"sratio {bmed(15)}, prov {bmed(6)} ms, bwait {bmed(13)} ms, station {bmed(14)} ms")
PY

# ---- fastboot client: ours vs Debian's over TCP to the virtual Pi ----------
if ! command -v farm-bench >/dev/null || ! command -v fastboot >/dev/null || [ ! -x "$FBC" ]; then
	echo "# client comparison skipped (needs farm-bench, fastboot, $FBC)"
	exit 0
fi
echo
echo "## fastboot client: ours (fbclient_cli) vs Debian fastboot, same sparse image, virtual-pi over TCP"
mkfifo "$W/vpi.fifo"
"$PROGRAM" virtual-pi --model pi5 --state "$W/fbboard" --fastboot-tcp 0 ${CLIENT_LINK:+--link-rate $CLIENT_LINK} \
	>"$W/vpi.fifo" 2>"$W/vpi.err" &
VPI=$!
exec 3<"$W/vpi.fifo"
read -r -t 20 -u 3 LINE || { echo "virtual-pi did not start: $(cat "$W/vpi.err")" >&2; exit 1; }
PORT=$(sed -n 's/.*tcp:127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' <<<"$LINE")
# MiB sizes: three quarters random, one quarter zeros (FILL chunks).
for mib in ${CLIENT_MIB:-64 256}; do
	for i in $(seq 0 $((mib - 1))); do
		if [ $((i % 4)) = 3 ]; then head -c 1048576 /dev/zero; else head -c 1048576 /dev/urandom; fi
	done >"$W/img.raw"
	img2simg "$W/img.raw" "$W/img.simg"
	echo "# image: $(stat -c %s "$W/img.simg") bytes sparse, $(stat -c %s "$W/img.raw") expanded"
	"$FBC" "tcp:127.0.0.1:$PORT" flash mmcblk0 "$W/img.simg" >/dev/null
	cmp -n "$(stat -c %s "$W/img.raw")" "$W/img.raw" "$W/fbboard/storage.img" || { echo "ours: storage differs" >&2; exit 1; }
	fastboot -s "tcp:127.0.0.1:$PORT" flash mmcblk0 "$W/img.simg" 2>/dev/null
	cmp -n "$(stat -c %s "$W/img.raw")" "$W/img.raw" "$W/fbboard/storage.img" || { echo "fastboot: storage differs" >&2; exit 1; }
	echo "# both clients leave the same bytes on the board's storage"
	farm-bench -n 5 --timeout 400 --vs "fastboot -s tcp:127.0.0.1:$PORT flash mmcblk0 $W/img.simg" -- \
		"$FBC" "tcp:127.0.0.1:$PORT" flash mmcblk0 "$W/img.simg"
done
