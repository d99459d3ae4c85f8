#!/bin/bash
# first_run: with no configuration file, `config check` lists every missing
# setting at once (the file, each required setting of the schema, the key
# secure-boot needs), exits 2, and says how to start; the shipped example
# leaves exactly those settings to the operator.
. "$top_srcdir/tests/integration/lib.sh"

# The required settings, from the schema table itself (rows marked required).
required=$("$PROGRAM" config schema --markdown | sed -n 's/^| `\([a-z_]*\)` |.*\*\*required\*\*.*/\1/p')
sections=$("$PROGRAM" config schema --markdown | awk '
	/^## \[/ { sec = $2; gsub(/[][]/, "", sec) }
	/^\| `.*\*\*required\*\*/ { split($0, f, "`"); print sec "." f[2] }')
[ -n "$sections" ] || fail "no required setting found in the schema"
[ "$(wc -l <<<"$sections")" = "$(wc -l <<<"$required")" ] || fail "schema parse: $sections / $required"

expect_rc 2 "$PROGRAM" --root "$ROOT" config check
cfg="$ROOT/etc/rpi-sb-provisioner/provisioner.ini"
expect_out "^$cfg: file not found; create it \(see provisioner.ini.example"
n=1
for k in $sections key.pem; do
	expect_out "^$cfg: key '$k': "
	n=$((n + 1))
done
# Nothing else is an error: only the lines above (warnings aside) and the count.
errors=$(grep -v ': warning: ' <<<"$OUT" | grep -c "^$cfg: \(key '\|file not found\)")
[ "$errors" = "$n" ] || { printf '%s\n' "$OUT" >&2; fail "expected $n error lines, got $errors"; }
expect_out "^$cfg: $n problems; fix them and run \`config check\` again"
pass "no configuration: all $n problems listed at once"

# The example installed beside the real file: the same settings are left to fill.
expect_rc 2 "$PROGRAM" --root "$ROOT" --config "$top_srcdir/conf/provisioner.ini.example" config check
for k in $sections key.pem; do
	expect_out "provisioner.ini.example: key '$k': "
done
expect_out "provisioner.ini.example: $((n - 1)) problems"
pass "the example leaves exactly the required settings and the key"
