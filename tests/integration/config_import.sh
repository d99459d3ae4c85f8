#!/bin/bash
# config_import: the peer's shell-style config becomes an INI that loads cleanly;
# what cannot be mapped is listed on stderr; nothing in the file is executed.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/config_lib.sh"

GOLD=$(gold_image 48)
KEY=$(test_key)
printf 'boot_order=0xf461\n' >"$T/boot.conf"
cat >"$T/config" <<PEER
# /etc/rpi-sb-provisioner/config as the peer's web UI writes it (values shell-quoted)
PROVISIONING_STYLE='secure-boot'
CUSTOMER_KEY_FILE_PEM='$KEY'
GOLD_MASTER_OS_FILE="$GOLD"
RPI_DEVICE_STORAGE_TYPE=sd
RPI_DEVICE_FAMILY=4
RPI_DEVICE_BOOTLOADER_CONFIG_FILE='$T/boot.conf'
RPI_DEVICE_LOCK_JTAG=yes
RPI_DEVICE_EEPROM_WP_SET=''
RPI_DEVICE_RPIBOOT_GPIO=8
RPI_DEVICE_BOOT_ORDER_MATCH_STORAGE=no
RPI_SB_WORKDIR='$T/work dir'
RPI_SB_PROVISIONER_MANUFACTURING_DB='$T/it'\\''s.db'
RPI_CONNECT_API_KEY='key-123'
RPI_SB_PROVISIONER_ENABLE_PRIVATE_KEY_API=true
CUSTOMER_KEY_PKCS11_NAME='pkcs11:token=x;object=y;type=private'
TOUCHED=\$(touch $T/executed)
PEER

expect_rc 2 "$PROGRAM" config import "$T/config" -o "$T/out.ini"
[ ! -e "$T/executed" ] || fail "import executed the file"
out_has "config:14: RPI_CONNECT_API_KEY is not imported"
out_has "config:15: RPI_SB_PROVISIONER_ENABLE_PRIVATE_KEY_API is not imported"
out_has "config:16: CUSTOMER_KEY_PKCS11_NAME is not imported: PKCS#11"
out_has "config:17: TOUCHED: uses shell expansion"
grep -q '^mode = secure-boot$' "$T/out.ini" || fail "mode not imported"
grep -q '^family = 4$' "$T/out.ini" || fail "family not imported"
grep -q '^jtag_lock = true$' "$T/out.ini" || fail "LOCK_JTAG (any value) not true"
grep -q '^eeprom_write_protect' "$T/out.ini" && fail "empty EEPROM_WP_SET imported"
grep -q '^boot_order_match_storage = false$' "$T/out.ini" || fail "'no' did not mean false"
grep -qF "database = $T/it's.db" "$T/out.ini" || fail "'\\'' idiom not decoded"
grep -qF "cache_dir = $T/work dir" "$T/out.ini" || fail "quoted blank lost"
pass "import maps every known variable"

expect_rc 0 "$PROGRAM" --root "$ROOT" --config "$T/out.ini" config check
out_has "valid"
out_has "mode secure-boot, family 4"
out_has "rpiboot_gpio 8"
pass "imported configuration checks clean"

# stdout form equals the file form
sed -i '/^TOUCHED=/d' "$T/config"
expect_rc 0 "$PROGRAM" config import "$T/config"
"$PROGRAM" config import "$T/config" 2>/dev/null | cmp -s - "$T/out.ini" || fail "stdout differs from -o"
pass "import to stdout"

expect_rc 2 "$PROGRAM" config import
expect_rc 2 "$PROGRAM" config import "$T/absent"
out_has "cannot read $T/absent"
pass "import usage errors"
