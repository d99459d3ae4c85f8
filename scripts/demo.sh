#!/bin/sh
# demo.sh: build rpi-sb-provisioner (if needed) and run the station on
# virtual Pis: `simulate` with its embedded default (a generated gold image, a
# throw-away key, secure-boot with OTP armed for virtual boards only) on two
# Pi 5, a Pi 4 and a Zero 2 W, under the throw-away root ./demo.
# This is README's first quick-start command.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ ! -x ./rpi-sb-provisioner ]; then
	[ -x ./configure ] || autoreconf -fi
	[ -f Makefile ] || ./configure
	make -j"$(nproc)"
fi

exec ./rpi-sb-provisioner --root "$top/demo" simulate --until-done --headless "$@"
