#!/bin/bash
# records_sqlite3: the manufacturing DB read by the real sqlite3 CLI with the
# peer's documented commands (unchanged), and by `export --csv` and
# `devices --json`, whose output is checked with python3's csv and json
# modules. Rows are written by tests/unit/db_fixture through the db API.
. "$top_srcdir/tests/integration/lib.sh"

FIXTURE="$top_builddir/tests/unit/db_fixture"
[ -x "$FIXTURE" ] || fail "$FIXTURE is not built (make check builds it)"
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing: skipped"; exit 77; }
command -v python3 >/dev/null || { echo "python3 missing: skipped"; exit 77; }

DB="$ROOT/srv/rpi-sb-provisioner/manufacturing.db"
N=12
"$FIXTURE" "$DB" "$N" || fail "db_fixture could not write $DB"

# --- the seed's two commands, verbatim -----------------------------------
OUT=$(sqlite3 "$DB" -cmd ".headers on" -cmd ".mode csv" "SELECT serial FROM rpi_sb_provisioner WHERE secure = 1;" | tr -d '\r')
WANT=$(printf 'serial\n'; for i in $(seq 0 3 $((N - 1))); do printf '10000000000000%02x\n' "$i"; done)
[ "$OUT" = "$WANT" ] || { printf 'got:\n%s\nwant:\n%s\n' "$OUT" "$WANT" >&2; fail "secured serials"; }
pass "sqlite3 csv query of secured serials"

OUT=$(sqlite3 "$DB" "SELECT * FROM rpi_sb_provisioner")
# One row per board, 30 '|'-separated columns; board 2's label holds a newline.
[ "$(printf '%s\n' "$OUT" | grep -c '^[0-9]*|')" = "$N" ] || fail "SELECT * rows: $OUT"
[ "$(printf '%s\n' "$OUT" | head -1 | awk -F'|' '{print NF}')" = 30 ] || fail "view width"
printf '%s\n' "$OUT" | head -1 | grep -q '^1|5|1000000000000000|2c:cf:67:00:00:00|' ||
	fail "first row: $(printf '%s\n' "$OUT" | head -1)"
pass "sqlite3 SELECT * FROM rpi_sb_provisioner"

OUT=$(sqlite3 -header "$DB" "SELECT * FROM devices LIMIT 1")
printf '%s\n' "$OUT" | head -1 | grep -q '|provision_ts|station_id|usb_port|attempt_id$' ||
	fail "devices header: $OUT"
[ "$(sqlite3 "$DB" "SELECT count(*) FROM attempts WHERE result = 'failed'")" = 4 ] ||
	fail "failed attempts are recorded too"
[ "$(sqlite3 "$DB" 'PRAGMA journal_mode')" = wal ] || fail "not WAL"
pass "SELECT * FROM devices, attempts, WAL"

# --- export --csv ----------------------------------------------------------
# check_csv FILE ROWS SECURED [FILE ROWS SECURED ...]: one python3 run for all
# (it is the slow part of this test on a loaded machine).
check_csv() {
	python3 - "$@" <<'EOF'
import csv, sys

def check(path, rows, secured):
    raw = open(path, 'rb').read()
    assert raw.endswith(b'\r\n'), 'rows must end in CRLF'
    with open(path, newline='') as f:
        table = list(csv.reader(f, strict=True))
    head, body = table[0], table[1:]
    assert head[:3] == ['id', 'boardname', 'serial'] and len(head) == 33, head
    assert len(body) == rows, (len(body), rows)
    for r in body:
        assert len(r) == len(head), r
        row = dict(zip(head, r))
        if secured:
            assert row['secure'] == '1', row
        # nothing a spreadsheet would run
        for cell in r:
            assert not cell or cell[0] not in '=+-@\t\r', repr(cell)
    by = {r[2]: dict(zip(head, r)) for r in body}
    if '1000000000000001' in by:
        assert by['1000000000000001']['os_image_filename'] == \
            '\'=HYPERLINK("http://example.invalid","click")', by['1000000000000001']
    if '1000000000000002' in by:
        row = by['1000000000000002']
        assert row['customer_key_label'] == 'night shift, "B"\nline 2', row
        assert row['secure'] == '' and row['jtag_locked'] == '', row   # NULL is empty
        assert row['mmc_size'] == '31914983424'
    if '1000000000000003' in by:
        assert by['1000000000000003']['connect_device_id'] == "'-1+2"

args = sys.argv[1:]
for k in range(0, len(args), 3):
    try:
        check(args[k], int(args[k + 1]), args[k + 2] == 'secured')
    except AssertionError as e:
        sys.exit('%s: %r' % (args[k], e))
EOF
}

OUT=$("$PROGRAM" --root "$ROOT" export --csv -o "$T/all.csv" 2>/dev/null)
[ "$OUT" = "$T/all.csv" ] || fail "export prints the path (alone on stdout): $OUT"
ls "$T"/all.csv.* >/dev/null 2>&1 && fail "a temporary file was left behind"
expect_rc 0 rsb export --csv --secured-only -o "$T/sec.csv"
expect_rc 0 rsb export --csv --since 2025-01-05 -o "$T/since.csv"
expect_rc 0 rsb export --csv --since "2025-01-05 10:00:01" -o "$T/since2.csv"
check_csv "$T/all.csv" "$N" all "$T/sec.csv" 4 secured "$T/since.csv" $((N - 4)) all \
	"$T/since2.csv" $((N - 5)) all || fail "CSV exports"
pass "export --csv -o (RFC 4180, neutralised, atomic), --secured-only, --since"

"$PROGRAM" --root "$ROOT" export --csv > "$T/stdout.csv" 2>/dev/null || fail "export to stdout"
cmp -s "$T/stdout.csv" "$T/all.csv" || fail "stdout export differs from -o export"
pass "export to standard output"

expect_rc 2 rsb export --csv --since 2025-02-30
expect_out "not a date"
expect_rc 2 rsb export --csv --since "2025-01-01T10:00:00"
expect_rc 2 rsb export
expect_out "--csv"
expect_rc 1 rsb export --csv -o "$T/no/such/dir/x.csv"
expect_out "no/such/dir"
pass "export usage errors"

# Every export is audited (5 so far, all by the cli; refused ones are not).
[ "$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE origin = 'cli' AND action = 'export-csv'")" = 5 ] ||
	fail "audit rows: $(sqlite3 "$DB" 'SELECT * FROM audit')"
sqlite3 "$DB" "SELECT target || ' ' || detail FROM audit WHERE id = 2" | grep -q "sec.csv 4 rows, secured only" ||
	fail "audit detail: $(sqlite3 "$DB" 'SELECT * FROM audit')"
pass "exports are audited"

# The configured path wins; an unrelated bad setting does not stop an export.
mkdir -p "$ROOT/etc/rpi-sb-provisioner" "$T/elsewhere"
cp "$DB" "$T/elsewhere/m.db"
cat > "$ROOT/etc/rpi-sb-provisioner/provisioner.ini" <<EOF
[paths]
database = $T/elsewhere/m.db
[timeouts]
bootstrap = 1
EOF
expect_rc 0 rsb export --csv -o "$T/cfg.csv"
check_csv "$T/cfg.csv" "$N" all || fail "cfg.csv"
[ "$(sqlite3 "$T/elsewhere/m.db" "SELECT count(*) FROM audit WHERE target LIKE '%/cfg.csv'")" = 1 ] &&
[ "$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE target LIKE '%/cfg.csv'")" = 0 ] ||
	fail "the export did not use the configured database"
rm "$ROOT/etc/rpi-sb-provisioner/provisioner.ini"
pass "export uses [paths] database despite an unrelated config problem"

# --- devices ---------------------------------------------------------------
"$PROGRAM" --root "$ROOT" devices --json > "$T/devices.json" || fail "devices --json"
python3 -m json.tool "$T/devices.json" >/dev/null || fail "devices --json is not JSON"
"$PROGRAM" --root "$ROOT" devices --json --secured-only > "$T/secured.json" ||
	fail "devices --json --secured-only"
python3 - "$T/devices.json" "$N" "$T/secured.json" <<'EOF' || fail "devices --json content"
import json, sys
rows = json.load(open(sys.argv[1]))
assert isinstance(rows, list) and len(rows) == int(sys.argv[2]), len(rows)
assert all(len(r) == 33 for r in rows)
by = {r['serial']: r for r in rows}
assert by['1000000000000000']['secure'] == 1
assert by['1000000000000001']['secure'] == 0
assert by['1000000000000002']['secure'] is None          # unknown, not 0
assert by['1000000000000002']['customer_key_label'] == 'night shift, "B"\nline 2'
assert by['1000000000000001']['os_image_filename'].startswith('=HYPERLINK')  # JSON is not neutralised
assert by['1000000000000000']['mmc_size'] == 31914983424
assert by['1000000000000000']['jtag_locked'] is None
sec = json.load(open(sys.argv[3]))
assert len(sec) == 4 and all(x['secure'] == 1 for x in sec), sec
EOF
pass "devices --json"

expect_rc 0 rsb devices
[ "$(printf '%s\n' "$OUT" | wc -l)" = $((N + 1)) ] || fail "devices table lines: $OUT"
printf '%s\n' "$OUT" | head -1 | grep -Eq '^SERIAL +BOARD +SECURE +PROVISIONED AT \(UTC\) +STATION +PORT$' ||
	fail "devices header: $(printf '%s\n' "$OUT" | head -1)"
printf '%s\n' "$OUT" | grep -Eq '^1000000000000002 +4B +unknown +2025-01-03 10:00:00 +station-1 +1-1.2$' ||
	fail "devices row: $OUT"
# Aligned: on every line the SECURE and PORT columns start where their headings do.
printf '%s\n' "$OUT" | awk 'NR == 1 { s = index($0, "SECURE"); p = index($0, "PORT"); next }
	substr($0, s - 2, 2) != "  " || substr($0, s, 1) == " " ||
	substr($0, p - 2, 2) != "  " || substr($0, p, 1) == " " { bad = 1 }
	END { exit bad }' || fail "columns not aligned: $OUT"
pass "devices table"

# A station that has recorded nothing yet: an empty list, not an error.
rm -rf "$ROOT/srv"
expect_rc 0 rsb devices --json
expect_out '^\[\]$'
expect_rc 1 rsb export --csv
expect_out "cannot open"
pass "no database yet"
