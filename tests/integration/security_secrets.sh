#!/bin/bash
# security_secrets: a simulate run with a real signing key (the embedded
# default's RSA-2048 key, secure-boot, OTP armed) leaks no key material: not
# in its logs, database, CSV export, stdout/stderr, nor in the running
# station's /proc/<pid>/environ and cmdline; core files are off (RLIMIT_CORE
# 0). The files it writes have the modes doc/security.md states. The key
# file's own mode is enforced (a 0644 key is refused). There is no PIN or
# passphrase setting (keys are unencrypted PEM or an external signer), so
# none can leak.
. "$top_srcdir/tests/integration/lib.sh"
export RPI_SB_VPI_FIRMWARE="$SHARED_DIR/fixtures/rpi-firmware"
printf 'leak:libsparse.so\nleak:libcrypto.so\n' >"$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
SIM="$ROOT/srv/rpi-sb-provisioner/simulate"
KEY="$SIM/keys/throwaway-key.pem"

# Run 1 builds the default (and its key); run 2 is watched while it runs.
rsb simulate --until-done --headless --devices pi5:1 >"$T/run1.out" 2>&1 || { cat "$T/run1.out"; fail "first run"; }
[ -s "$KEY" ] || fail "no key at $KEY"
"$PROGRAM" --root "$ROOT" simulate --until-done --headless --devices pi5:1,zero2w:1 >"$T/run2.out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	grep -q 'OTP ARMED' "$T/run2.out" 2>/dev/null && break
	sleep 0.1
done
grep -q 'OTP ARMED' "$T/run2.out" || fail "the station did not load its key"
cp /proc/$pid/environ "$T/environ" && cp /proc/$pid/cmdline "$T/cmdline" || fail "cannot read /proc/$pid"
core=$(awk '/^Max core file size/ {print $5}' /proc/$pid/limits)
wait $pid || { cat "$T/run2.out"; fail "second run"; }
[ "$core" = 0 ] || fail "core files are on in the station (soft limit $core)"
pass "RLIMIT_CORE is 0 in the running station"

rsb --config "$SIM/provisioner.ini" export --csv -o "$T/export.csv" >/dev/null 2>&1 || fail "export"
# Key material: every base64 line of the PEM body, and the private exponent
# and primes in hex (openssl is the oracle).
grep -v '^-----' "$KEY" | grep -E '^.{24,}$' >"$T/needles"
[ "$(wc -l <"$T/needles")" -gt 10 ] || fail "could not take lines from the key"
openssl rsa -in "$KEY" -noout -text 2>/dev/null | awk '/^(privateExponent|prime1|prime2):/ {on = 1; next} /^[a-zA-Z]/ {on = 0} on' |
	tr -d ' :\n' | fold -w 32 | head -20 >"$T/hex"
[ -s "$T/hex" ] || fail "openssl did not print the private key"
haystacks=("$SIM/log" "$SIM/manufacturing.db" "$T/export.csv" "$T/run1.out" "$T/run2.out" "$T/environ" "$T/cmdline" "$SIM/device-keys")
for h in "${haystacks[@]}"; do
	[ -e "$h" ] || continue
	if grep -rqaFf "$T/needles" "$h"; then fail "PEM key material in $h"; fi
	if grep -rqaiFf "$T/hex" "$h"; then fail "private key numbers (hex) in $h"; fi
done
# The oracle can find it: the needles do match the key file itself.
grep -qaFf "$T/needles" "$KEY" && grep -qaiFf "$T/hex" <(openssl rsa -in "$KEY" -noout -text 2>/dev/null | tr -d ' :\n') ||
	fail "the search itself is broken"
pass "no key material in logs, database, CSV export, output, environ or cmdline"

# Modes of what the station writes (umask 027 in the station).
mode() { stat -c '%a' "$1"; }
[ "$(mode "$SIM/manufacturing.db")" = 640 ] || fail "database mode $(mode "$SIM/manufacturing.db")"
[ "$(mode "$KEY")" = 600 ] || fail "key mode $(mode "$KEY")"
bad=$(find "$SIM/log" "$SIM/device-keys" -perm /0027 ! -type l | head -3)
[ -z "$bad" ] || fail "logs or device keys writable by group or readable by others: $bad"
# Cache entries are signed payloads and images (no secrets): readable, never writable by others.
bad=$(find "$SIM/cache" -perm /0022 ! -type l | head -3)
[ -z "$bad" ] || fail "cache writable by group or others: $bad"
[ "$(mode "$SIM/cache")" = 750 ] || fail "cache dir mode $(mode "$SIM/cache")"
n=$(find "$SIM/log" -type f | wc -l)
[ "$n" -ge 6 ] || fail "only $n log files"
pass "database 0640, key 0600, $n log files 0640 in 0750 dirs, cache not writable by others"

chmod 644 "$KEY"
expect_rc 1 rsb simulate --until-done --headless --devices pi5:1
expect_out "throwaway-key.pem: private key file is accessible by group/others \\(mode 0644"
chmod 600 "$KEY"
pass "a key file readable by others is refused, naming file and mode"

# Nothing in simulate needs root: a run as nobody (when this test runs as
# root and can switch) provisions and records a board.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	mkdir -p "$T/nobody" && chown 65534:65534 "$T/nobody" && chmod 755 "$T"
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$T/nobody" \
		"$PROGRAM" --root "$T/nobody" simulate --until-done --headless --devices pi5:1 >"$T/nobody.out" 2>&1 ||
		{ cat "$T/nobody.out"; fail "simulate as an unprivileged user"; }
	grep -q '^board 9-1 .* PASS$' "$T/nobody.out" || fail "no PASS as nobody"
	[ "$(stat -c %u "$T/nobody/srv/rpi-sb-provisioner/simulate/manufacturing.db")" = 65534 ] || fail "db not owned by nobody"
	pass "simulate provisions and records a board without root (as uid 65534)"
fi
