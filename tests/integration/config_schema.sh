#!/bin/bash
# config_schema: the checked-in reference (doc/configuration.md) and example
# (conf/provisioner.ini.example) are exactly what the schema table generates,
# so neither can drift from the code. Regenerate with:
#   rpi-sb-provisioner config schema --markdown > doc/configuration.md
#   rpi-sb-provisioner config schema --ini > conf/provisioner.ini.example
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/config_lib.sh"

"$PROGRAM" config schema --markdown >"$T/configuration.md"
diff -u "$top_srcdir/doc/configuration.md" "$T/configuration.md" ||
	fail "doc/configuration.md is stale: regenerate it with config schema --markdown"
pass "doc/configuration.md matches the schema"

"$PROGRAM" config schema --ini >"$T/example.ini"
diff -u "$top_srcdir/conf/provisioner.ini.example" "$T/example.ini" ||
	fail "conf/provisioner.ini.example is stale: regenerate it with config schema --ini"
pass "conf/provisioner.ini.example matches the schema"

# The example, with the required values filled in, is a valid configuration.
GOLD=$(gold_image 48)
# (first occurrences only: the commented [family.X] template repeats the names)
sed -e "0,/^#gold =/s|^#gold =.*|gold = $GOLD|" -e '0,/^#storage =/s|^#storage =.*|storage = sd|' \
	-e '0,/^#mode =/s|^#mode = secure-boot$|mode = naked|' "$T/example.ini" >"$T/filled.ini"
expect_rc 0 "$PROGRAM" --root "$ROOT" --config "$T/filled.ini" config check
pass "the example becomes valid with gold, storage and mode set"

expect_rc 2 "$PROGRAM" config schema
expect_rc 2 "$PROGRAM" config frobnicate
pass "usage errors"
