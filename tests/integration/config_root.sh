#!/bin/bash
# config_root: --root relocates every default path (and only the defaults), and
# `config dump` shows each value with its source; secrets print as (set).
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/config_lib.sh"

X="$T/x"
expect_rc 0 "$PROGRAM" --root "$X" config dump
out_has "^database = $X/srv/rpi-sb-provisioner/manufacturing.db ; default$"
out_has "^cache_dir = $X/srv/rpi-sb-provisioner/cache ; default$"
out_has "^log_dir = $X/var/log/rpi-sb-provisioner ; default$"
out_has "^usb_ports_dir = $X/etc/rpi-sb-provisioner/usb-ports.d ; default$"
out_has "^firmware_dir = $X/lib/firmware/raspberrypi/bootloader-%chip%/latest ; default$"
out_has "^gold =  ; unset$"
out_has "note: .* has [0-9]+ problems"
grep -E '= /(srv|var|etc|usr|lib)/' <<<"$OUT" && fail "a default escaped --root"
pass "defaults relocated under --root"

# every schema key is listed exactly once per section
n_keys=$("$PROGRAM" config schema --markdown | grep -c '^| `')
n_dump=$(grep -cE '^#?[a-z_0-9]+ = ' <<<"$OUT")
fam_rows=$("$PROGRAM" config schema --markdown | sed -n '/^## \[family/,$p' | grep -c '^| `')
[ "$n_dump" = $((n_keys + 2 * fam_rows)) ] || fail "dump has $n_dump keys, schema $n_keys (+2x$fam_rows)"
pass "dump lists every key"

mkdir -p "$X/etc/rpi-sb-provisioner"
printf '[station]\nmode = naked\n[key]\nsigner = /usr/bin/hsm --pin 1234\n[paths]\nlog_dir = /var/log/mine\n[family.4]\nstorage = sd\n' \
	>"$X/etc/rpi-sb-provisioner/provisioner.ini"
expect_rc 0 "$PROGRAM" --root "$X" config dump
out_has "^mode = naked ; $X/etc/rpi-sb-provisioner/provisioner.ini:2$"
out_has "^signer = \(set\) ; .*provisioner.ini:4$"
grep -q 1234 <<<"$OUT" && fail "a secret was printed"
out_has "^log_dir = /var/log/mine ; .*provisioner.ini:6$"
out_has "^storage = sd ; .*provisioner.ini:8$"
out_has "^#mode = ; unset: uses station.mode$"
pass "dump shows sources and hides secrets"
