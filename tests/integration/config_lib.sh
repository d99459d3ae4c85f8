# config_lib.sh: helpers for the config_*.sh tests (sourced after lib.sh; not a test).

# gold_image [SIZE_MB]: print the path of a gold image made by scripts/make-gold-image.sh.
# It is built once and kept in the build tree, keyed by the script's hash and the size,
# so every test does not rebuild it. Tests must treat it as read-only.
gold_image() {
	local size=${1:-48} mk="$top_srcdir/scripts/make-gold-image.sh" key dir img
	key=$(sha256sum <"$mk" | cut -c1-16)
	dir="${top_builddir:-$T}/tests/integration"
	mkdir -p "$dir"
	img="$dir/gold-$key-$size.img"
	if [ ! -s "$img" ]; then
		bash "$mk" "$img.$$" "$size" >&2
		mv -f "$img.$$" "$img"
	fi
	printf '%s\n' "$img"
}

# test_key: a readable RSA-2048 private key (the shared example key, else a new one).
test_key() {
	local fixture="${SHARED_DIR:-}/fixtures/rpi-firmware/example-private.pem"

	if [ -r "$fixture" ]; then
		printf '%s\n' "$fixture"
	else
		openssl genrsa -out "$T/key.pem" 2048 2>/dev/null
		printf '%s\n' "$T/key.pem"
	fi
}

# out_has PATTERN: grep -E the last captured output ($OUT, from expect_rc).
# A here-string, not `printf | grep -q`: under pipefail, grep -q quitting early can
# kill printf with SIGPIPE and turn a match into a failure on large outputs.
out_has() {
	grep -Eq -- "$1" <<<"$OUT" || { printf '%s\n' "$OUT" >&2; fail "output lacks /$1/"; }
}
