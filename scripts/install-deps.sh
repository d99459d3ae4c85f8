#!/bin/sh
# install-deps.sh: install everything rpi-sb-provisioner needs to build, run
# and test on Debian 12. Idempotent: packages already present are left alone.
# Used by README's quick start and by .ci/run. Runs apt-get through sudo when
# not already root.
set -eu

PACKAGES="
build-essential autoconf automake libtool pkg-config clang
libncurses-dev libusb-1.0-0-dev libudev-dev libsqlite3-dev libmbedtls-dev
libcryptsetup-dev libinih-dev libjson-c-dev libcmocka-dev
android-libsparse-dev libext2fs-dev libarchive-dev libzstd-dev liblzma-dev
sqlite3 openssl cryptsetup-bin dosfstools mtools e2fsprogs fdisk
fastboot android-sdk-libsparse-utils zstd xz-utils tmux cpio
dpkg-dev debhelper lintian fakeroot adduser
python3-jsonschema
qemu-system-x86 busybox-static kmod udev
"

SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
