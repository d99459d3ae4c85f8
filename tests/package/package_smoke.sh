#!/usr/bin/env bash
# package_smoke.sh: build the Debian package from a clean copy of the tree,
# install it, check what an operator gets, and purge it again.
#
#   tests/package/package_smoke.sh [--trs FILE] [--keep]
#
# The copy is git's index (git checkout-index: in CI exactly HEAD; for a
# developer, HEAD plus what is staged): no build product of an in-tree build
# and no unstaged edit leaks into the package. As root the package is installed with dpkg -i and purged at the end
# (a previously installed rpi-sb-station is purged too); otherwise it is
# unpacked into a scratch root and the system checks (group, conffiles) are
# skipped. Every check prints "ok ..." or "FAIL ..."; with --trs the results
# are also written as automake :test-result: lines, which .ci/run counts.
# Exit status: 0 when every check passed, 1 otherwise.
set -uo pipefail

trs="" keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--trs) trs=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	*) echo "usage: $0 [--trs FILE] [--keep]" >&2; exit 2 ;;
	esac
done

top=$(cd "$(dirname "$0")/../.." && pwd)
pkg=rpi-sb-station
passed=0 failed=0
[ -n "$trs" ] && : >"$trs"

ok() { passed=$((passed + 1)); echo "ok   $*"; [ -n "$trs" ] && echo ":test-result: PASS $*" >>"$trs"; return 0; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; [ -n "$trs" ] && echo ":test-result: FAIL $*" >>"$trs"; return 0; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

work=$(mktemp -d /tmp/rpi-sb-pkg.XXXXXX)
root_mode=0
[ "$(id -u)" = 0 ] && root_mode=1
installed=0
cleanup() {
	if [ "$installed" = 1 ]; then
		dpkg --purge "$pkg" >/dev/null 2>&1
	fi
	if [ "$keep" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

t_start=$(now)

# ---- a clean copy of the tree ---------------------------------------------
src="$work/src"
mkdir -p "$src"
if ! git -c safe.directory="$top" -C "$top" checkout-index -a --prefix="$src/"; then
	bad "copy the tracked files of $top"
	exit 1
fi
check "clean copy has debian/control" test -f "$src/debian/control"

# ---- build -----------------------------------------------------------------
t0=$(now)
if (cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b ($(secs "$t0" "$(now)") s)"
else
	bad "dpkg-buildpackage -us -uc -b (log: $work/build.log)"
	tail -40 "$work/build.log"
	keep=1
	echo "package smoke: $passed passed, $failed failed"
	exit 1
fi
build_s=$(secs "$t0" "$(now)")
version=$(cd "$src" && dpkg-parsechangelog -S Version)
deb=$(ls "$work"/${pkg}_"${version}"_*.deb 2>/dev/null | head -1)
changes=$(ls "$work"/rpi-sb-station_"${version}"_*.changes 2>/dev/null | head -1)
check "built ${deb##*/}" test -s "$deb"
grep -E '^(PASS|FAIL|ERROR|# (TOTAL|PASS|FAIL))' "$work/build.log" | sed 's/^/     build test: /'

# ---- lintian ---------------------------------------------------------------
t0=$(now)
if command -v lintian >/dev/null; then
	lintian --tag-display-limit 0 "$changes" >"$work/lintian.log" 2>&1
	errors=$(grep -c '^E: ' "$work/lintian.log")
	warnings=$(grep -c '^W: ' "$work/lintian.log")
	sed 's/^/     lintian: /' "$work/lintian.log"
	check "lintian: no errors ($errors errors, $warnings warnings, $(secs "$t0" "$(now)") s)" test "$errors" = 0
else
	bad "lintian is not installed (scripts/install-deps.sh installs it)"
fi

# ---- contents ----------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$work/contents"
has() { grep -qx -- "$1" "$work/contents"; }
check "package: /usr/bin/rpi-sb-provisioner" has /usr/bin/rpi-sb-provisioner
check "package: man page rpi-sb-provisioner(1)" has /usr/share/man/man1/rpi-sb-provisioner.1.gz
check "package: example INI in /etc/rpi-sb-provisioner" has /etc/rpi-sb-provisioner/provisioner.ini.example
check "package: allow-list example" has /etc/rpi-sb-provisioner/usb-ports.d/README.conf.example
for stage in bootstrap provision-started bootfs-mounted rootfs-mounted post-flash provision-failed; do
	check "package: hook template $stage.sh" has /usr/share/rpi-sb-provisioner/hooks/$stage.sh
done
check "package: operator guide" has /usr/share/doc/$pkg/operator-guide.md
check "package: migration note" has /usr/share/doc/$pkg/migration.md
check "package: configuration reference" has /usr/share/doc/$pkg/configuration.md
check "package: bench set-up guide" has /usr/share/doc/$pkg/bench-setup.md
check "package: dashboard guide" has /usr/share/doc/$pkg/tui.md
# udev rules and systemd unit: whatever conf/ holds must be installed.
for f in "$src"/conf/*.rules; do
	[ -e "$f" ] || continue
	check "package: udev rules ${f##*/}" grep -qE "^/(usr/)?lib/udev/rules.d/${f##*/}\$" "$work/contents"
done
for f in "$src"/conf/*.service; do
	[ -e "$f" ] || continue
	check "package: systemd unit ${f##*/}" grep -qE "^/(usr/)?lib/systemd/system/${f##*/}\$" "$work/contents"
done
check "conf/ ships udev rules" bash -c "compgen -G '$src/conf/*.rules' >/dev/null"
check "conf/ ships a systemd unit" bash -c "compgen -G '$src/conf/*.service' >/dev/null"
check "package: nothing under /srv (the station creates it)" bash -c "! grep -q '^/srv' '$work/contents'"

# ---- install -----------------------------------------------------------------
t0=$(now)
if [ "$root_mode" = 1 ]; then
	dpkg --purge "$pkg" >/dev/null 2>&1
	had_cfg=0 had_srv=0
	[ -e /etc/rpi-sb-provisioner/provisioner.ini ] && had_cfg=1
	[ -e /srv/rpi-sb-provisioner ] && had_srv=1
	if dpkg -i "$deb" >"$work/install.log" 2>&1; then
		installed=1
		ok "dpkg -i ${deb##*/} ($(secs "$t0" "$(now)") s)"
	else
		bad "dpkg -i ${deb##*/}"
		cat "$work/install.log"
	fi
	inst=""
else
	dpkg-deb -x "$deb" "$work/inst" && ok "dpkg-deb -x into a scratch root (not root: no install)"
	inst="$work/inst"
fi
prog="$inst/usr/bin/rpi-sb-provisioner"

if [ "$root_mode" = 1 ] && [ "$installed" = 1 ]; then
	check "group rpi-sb exists" bash -c "getent group rpi-sb >/dev/null"
	check "example INI is a conffile" bash -c "dpkg-query -W -f='\${Conffiles}' $pkg | grep -q ' /etc/rpi-sb-provisioner/provisioner.ini.example '"
	check "service not enabled by the install" bash -c "! ls /etc/systemd/system/*.wants/rpi-sb-provisioner* >/dev/null 2>&1"
	if [ "$had_cfg" = 0 ]; then
		check "no configuration written by the install" test ! -e /etc/rpi-sb-provisioner/provisioner.ini
	else
		echo "skip no configuration written: this host already had one"
	fi
	check "records directory /srv/rpi-sb-provisioner exists for the service" test -d /srv/rpi-sb-provisioner
	if [ "$had_srv" = 0 ]; then
		check "records directory is root:rpi-sb 0750" \
			test "$(stat -c '%U:%G %a' /srv/rpi-sb-provisioner)" = "root:rpi-sb 750"
	fi
fi

# ---- the program -------------------------------------------------------------
out=$("$prog" --version 2>&1)
check "rpi-sb-provisioner --version says $version ($out)" test "$out" = "rpi-sb-provisioner $version"

scratch="$work/root"
mkdir -p "$scratch"
example="$inst/etc/rpi-sb-provisioner/provisioner.ini.example"

# First run: no configuration file at all lists every missing setting at once.
out=$("$prog" --root "$scratch" config check 2>&1); rc=$?
check "first run: config check exits 2 (configuration problems)" test "$rc" = 2
check "first run: says the file is missing and how to create it" grep -q "provisioner.ini: file not found; create it" <<<"$out"
for k in key.pem image.gold image.storage; do
	check "first run: names the missing setting $k" grep -q "key '$k'" <<<"$out"
done

# The shipped example: valid syntax; the only errors are the three settings
# it leaves for the operator (image, storage, key); exit status 2.
out=$("$prog" --root "$scratch" --config "$example" config check 2>&1); rc=$?
check "example: config check exits 2" test "$rc" = 2
errs=$(grep -v ': warning: ' <<<"$out" | grep -oE "key '[a-z0-9_.]+'" | sort | tr '\n' ' ')
check "example: errors are exactly image.gold image.storage key.pem ($errs)" \
	test "$errs" = "key 'image.gold' key 'image.storage' key 'key.pem' "
check "example: says 3 problems" grep -q ": 3 problems; fix them" <<<"$out"

# The example with those three filled in (a gold image made by the installed
# helper, a key made by the installed program) is valid: exit 0.
t0=$(now)
mkdir -p "$scratch/etc/rpi-sb-provisioner" "$scratch/keys" "$scratch/images"
if bash "$inst/usr/share/rpi-sb-provisioner/scripts/make-gold-image.sh" "$scratch/images/gold.img" 48 >"$work/gold.log" 2>&1; then
	ok "installed make-gold-image.sh made an image"
else
	bad "installed make-gold-image.sh (log: $work/gold.log)"
fi
check "installed program: key generate" bash -c '"$0" --root "$1" key generate -o "$1/keys/customer.pem" >"$2/key.log" 2>&1' "$prog" "$scratch" "$work"
sed -e "0,/^#gold =.*/s||gold = $scratch/images/gold.img|" -e '0,/^#storage =.*/s||storage = sd|' \
	-e "0,/^#pem =.*/s||pem = $scratch/keys/customer.pem|" "$example" >"$scratch/etc/rpi-sb-provisioner/provisioner.ini"
out=$("$prog" --root "$scratch" config check 2>&1); rc=$?
check "completed example: config check exits 0" test "$rc" = 0
check "completed example: reported valid" grep -q "provisioner.ini: valid" <<<"$out"
[ "$rc" = 0 ] || printf '%s\n' "$out" | sed 's/^/     /'

# Every hook template runs as installed (exit 0, says its stage), then
# post-flash with the station's arguments and manufacturing variables.
for stage in bootstrap provision-started bootfs-mounted rootfs-mounted post-flash provision-failed; do
	out=$(env -i PATH=/usr/bin:/bin "$inst/usr/share/rpi-sb-provisioner/hooks/$stage.sh" a b c d 2>&1); rc=$?
	check "hook template $stage.sh runs (rc $rc)" bash -c '[ "$1" = 0 ] && grep -q "^$2: " <<<"$3"' _ "$rc" "$stage" "$out"
done
out=$(env -i PATH=/usr/bin:/bin TARGET_USB_PATH=1-1.2 BOARDNAME="Raspberry Pi 5" ETH_MAC=2c:cf:67:00:00:01 \
	SECURE=1 OS_IMAGE_SHA256=ab12 "$inst/usr/share/rpi-sb-provisioner/hooks/post-flash.sh" \
	tcp:127.0.0.1 0123456789abcdef mmcblk0 2>&1); rc=$?
check "hook template post-flash.sh with the station's arguments (rc $rc)" test "$rc" = 0
check "hook template post-flash.sh reports the board" grep -q "board 0123456789abcdef (Raspberry Pi 5) on port 1-1.2" <<<"$out"

# A rehearsal on virtual boards with the installed program and scripts (the
# guide's section 2). It needs Raspberry Pi's firmware files, which the
# package does not ship: the shared fixtures beside the tree, when present.
fw="${RPI_SB_VPI_FIRMWARE:-$top/../shared/fixtures/rpi-firmware}"
if [ -r "$fw/pieeprom-2026-08-12.bin" ]; then
	t0=$(now)
	out=$(RPI_SB_VPI_FIRMWARE="$fw" RPI_SB_SCRIPTS_DIR="$inst/usr/share/rpi-sb-provisioner/scripts" "$prog" --root "$work/rehearsal" simulate --devices pi5:1,zero2w:1 \
		--until-done 2>&1); rc=$?
	check "installed simulate: 2 virtual boards provisioned ($(secs "$t0" "$(now)") s)" test "$rc" = 0
	check "installed simulate: both passed the virtual first boot" \
		grep -q "2 of 2 boards provisioned and passed the virtual first boot" <<<"$out"
	[ "$rc" = 0 ] || printf '%s\n' "$out" | tail -20 | sed 's/^/     /'
	# The guide's jig hook: the installed template, called by the station
	# (the boards, now secured, are reprovisioned).
	sim="$work/rehearsal/srv/rpi-sb-provisioner/simulate"
	install -m 0755 "$inst/usr/share/rpi-sb-provisioner/hooks/post-flash.sh" \
		"$sim/scripts/sb-provisioner-post-flash.sh"
	out=$(RPI_SB_VPI_FIRMWARE="$fw" RPI_SB_SCRIPTS_DIR="$inst/usr/share/rpi-sb-provisioner/scripts" "$prog" \
		--root "$work/rehearsal" simulate --devices pi5:1 --until-done 2>&1); rc=$?
	check "installed simulate again with the post-flash template (rc $rc)" test "$rc" = 0
	check "the station ran the post-flash template with the board's fields" bash -c \
		"grep -hq 'hook sb-provisioner-post-flash.sh: post-flash: board [0-9a-f]\{16\} (5) on port 9-1: eth [0-9a-f:]\{17\}, secure 1' '$sim'/log/*/provisioner.log"
else
	echo "skip installed simulate: no Raspberry Pi firmware fixtures at $fw"
fi

# ---- purge -------------------------------------------------------------------
if [ "$installed" = 1 ]; then
	if dpkg --purge "$pkg" >"$work/purge.log" 2>&1; then
		installed=0
		ok "dpkg --purge $pkg"
		check "purge removed the program" test ! -e /usr/bin/rpi-sb-provisioner
		check "purge removed the example INI" test ! -e /etc/rpi-sb-provisioner/provisioner.ini.example
		check "purge kept the records directory" test -d /srv/rpi-sb-provisioner
		[ "$had_srv" = 0 ] && rmdir /srv/rpi-sb-provisioner 2>/dev/null
	else
		bad "dpkg --purge $pkg"
		cat "$work/purge.log"
	fi
fi

echo "package smoke: build ${build_s} s, total $(secs "$t_start" "$(now)") s"
echo "package smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
