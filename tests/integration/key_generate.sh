#!/bin/bash
# key_generate: `key generate` / `key fingerprint` end to end. openssl is the
# oracle for the key (RSA-2048, e = 65537) and, with xxd + sha256sum, for the
# fingerprint (SHA-256 of pubkey.bin = N little-endian || e LE64).
. "$top_srcdir/tests/integration/lib.sh"
FIXD="$SHARED_DIR/fixtures/rpi-firmware"

oracle_fp() {	# oracle_fp PEM [-pubin]
	local mod le
	mod=$(openssl rsa -in "$1" ${2:-} -noout -modulus 2>/dev/null | sed 's/^Modulus=//')
	le=$(printf '%s' "$mod" | fold -w2 | tac | tr -d '\n')
	printf '%s0100010000000000' "$le" | xxd -r -p | sha256sum | cut -c1-64
}

# generate: default path under <etc>, 0600, fingerprint + public key + arming hint
expect_rc 0 rsb key generate
KEY="$ROOT/etc/rpi-sb-provisioner/keys/customer-key.pem"
[ -f "$KEY" ] || fail "no key at the default path $KEY"
[ "$(stat -c %a "$KEY")" = 600 ] || fail "key mode is $(stat -c %a "$KEY"), not 600"
expect_out '^fingerprint: [0-9a-f]{64}$'
fp=$(printf '%s\n' "$OUT" | sed -n 's/^fingerprint: //p')
expect_out "last 8 hex of the fingerprint: ${fp:56:8}\$"
openssl rsa -in "$KEY" -noout -text 2>/dev/null | grep -q 'Private-Key: (2048 bit' ||
	fail "openssl does not see an RSA-2048 key"
openssl rsa -in "$KEY" -noout -text 2>/dev/null | grep -q 'publicExponent: 65537' ||
	fail "public exponent is not 65537"
[ "$(oracle_fp "$KEY")" = "$fp" ] || fail "fingerprint $fp differs from the openssl oracle"
printf '%s\n' "$OUT" | sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' > "$T/printed.pem"
openssl rsa -in "$KEY" -pubout 2>/dev/null | cmp -s - "$T/printed.pem" ||
	fail "printed public key differs from openssl's"
pass "key generate: RSA-2048, 0600, fingerprint matches openssl"

# never overwrite
before=$(sha256sum < "$KEY")
expect_rc 2 rsb key generate
expect_out 'already exists; refusing to overwrite'
[ "$(sha256sum < "$KEY")" = "$before" ] || fail "existing key was changed"
expect_rc 0 rsb key generate -o "$T/second.pem"
[ "$(stat -c %a "$T/second.pem")" = 600 ] || fail "-o key mode"
cmp -s "$KEY" "$T/second.pem" && fail "two generated keys are identical"
expect_rc 2 rsb key generate -o "$T/second.pem"
pass "key generate refuses to overwrite"

# fingerprint: the example key (spec V1), public and private PEM
expect_rc 0 rsb key fingerprint "$FIXD/example-public.pem"
expect_out '^fingerprint: 8251a63a2edee9d8f710d63e9da5d639064929ce15a2238986a189ac6fcd3cee$'
expect_out 'fingerprint: 6fcd3cee$'
[ "$(oracle_fp "$FIXD/example-public.pem" -pubin)" = \
  8251a63a2edee9d8f710d63e9da5d639064929ce15a2238986a189ac6fcd3cee ] || fail "oracle disagrees on V1"
cp "$FIXD/example-private.pem" "$T/ex.pem"
chmod 644 "$T/ex.pem"
expect_rc 0 rsb key fingerprint "$T/ex.pem"
expect_out '^fingerprint: 8251a63a'
expect_out 'warning: .*accessible by group/others.*chmod 600'
chmod 600 "$T/ex.pem"
expect_rc 0 rsb key fingerprint "$T/ex.pem"
printf '%s\n' "$OUT" | grep -q warning && fail "warning for a 0600 key"
pass "key fingerprint = SHA-256(pubkey.bin), mode warning"

# keys that are not RSA-2048 are refused, naming the file and the key type
openssl genrsa -out "$T/r1024.pem" 1024 2>/dev/null
expect_rc 1 rsb key fingerprint "$T/r1024.pem"
expect_out "r1024.pem: this is an RSA-1024 key"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/ec.pem" 2>/dev/null
expect_rc 1 rsb key fingerprint "$T/ec.pem"
expect_out "ec.pem: this is an EC key"
expect_rc 1 rsb key fingerprint "$T/missing.pem"
expect_rc 2 rsb key
expect_rc 2 rsb key frobnicate
pass "non-RSA-2048 keys refused"
