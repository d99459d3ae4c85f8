#!/bin/bash
# daemon_events_schema: every line `daemon --events-json` prints validates
# against doc/events.schema.json (python3-jsonschema), for boards that pass
# and one that fails, and the schema rejects what it must (so it can fail).
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/daemon_lib.sh"
schema="$top_srcdir/doc/events.schema.json"
python3 -c 'import jsonschema' 2>/dev/null || { echo "SKIP: python3-jsonschema is not installed"; exit 77; }

validate() {
	python3 - "$schema" "$1" <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
types, n = set(), 0
for lineno, line in enumerate(open(sys.argv[2]), 1):
    ev = json.loads(line)
    errs = sorted(v.iter_errors(ev), key=str)
    if errs:
        sys.exit(f"line {lineno}: {errs[0].message}: {line.strip()}")
    types.add(ev["type"]); n += 1
print(n, " ".join(sorted(types)))
PY
}

expect_rc 1 rsb daemon --simulate pi5:1,pi4:1,zero2w:1 --fault '2=fail:cmd=oem cryptinit' \
	--events-json --until-done 3
grep '^{' <<<"$OUT" > "$T/events.jsonl"
res=$(validate "$T/events.jsonl") || fail "schema: $res"
for t in port-added port-removed phase progress log error record; do
	grep -qw -- "$t" <<<"$res" || fail "no $t event in the run ($res)"
done
pass "$(cut -d' ' -f1 <<<"$res") events of every type validate against the schema"

# The schema is not a rubber stamp.
printf '%s\n' '{"seq":1,"mono_ns":5,"type":"progress","port":"9-1","serial":null,"phase":"provision"}' > "$T/bad1"
printf '%s\n' '{"seq":1,"mono_ns":5,"type":"phase","port":"9-1","serial":"xyz","phase":"done"}' > "$T/bad2"
printf '%s\n' '{"seq":0,"mono_ns":5,"type":"log","port":"9-1","serial":null,"phase":"done","text":"x"}' > "$T/bad3"
printf '%s\n' '{"seq":1,"mono_ns":5,"type":"error","port":"9-1","serial":null,"phase":"provision","text":"x"}' > "$T/bad4"
for b in bad1 bad2 bad3 bad4; do
	if validate "$T/$b" >/dev/null 2>&1; then fail "the schema accepts $b: $(cat "$T/$b")"; fi
done
pass "the schema rejects malformed events"
