# lib.sh: helpers for the shell integration tests (sourced, not run).
# Each test gets a private root under a temp dir; the station runs with --root.
set -euo pipefail

: "${PROGRAM:?PROGRAM must point at the built rpi-sb-provisioner}"
: "${top_srcdir:?}"

T=$(mktemp -d "${TMPDIR:-/tmp}/rpisb-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
ROOT="$T/root"
mkdir -p "$ROOT"

rsb() { "$PROGRAM" --root "$ROOT" "$@"; }

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_rc WANT CMD... : run CMD, capture stdout+stderr into $OUT, check exit code.
expect_rc() {
	local want=$1; shift
	set +e
	OUT=$("$@" 2>&1)
	local rc=$?
	set -e
	if [ "$rc" != "$want" ]; then
		printf '%s\n' "$OUT" >&2
		fail "expected exit $want, got $rc: $*"
	fi
}

# expect_out PATTERN : grep -E the last captured output.
expect_out() {
	grep -Eq -- "$1" <<<"$OUT" || { printf '%s\n' "$OUT" >&2; fail "output lacks /$1/"; }
}
