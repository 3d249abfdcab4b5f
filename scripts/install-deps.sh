#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Install what building, testing and demoing mtty-mig needs, and only what is
# missing: a provisioned machine returns in well under a second. Called by
# `make check`, `make demo` and .ci/run; safe to run any number of times.
#
# Everything comes from Debian bookworm + bookworm-security (which carries
# Linux 6.12). linux-headers-6.12-amd64 pulls the matching image and kbuild,
# so the module we build and the kernel we boot always share one ABI.
set -eu

# The second line is what building the debug and next lanes' kernels from
# Debian's linux-source packages need (scripts/kernel-build.sh; libelf-dev for
# objtool); debian-archive-keyring checks sid's packages (scripts/debian-pkg.sh).
PKGS="build-essential linux-headers-6.12-amd64 pahole libkmod-dev kmod pkgconf
flex bison bc libelf-dev util-linux
qemu-system-x86 busybox-static cpio xz-utils rsync linux-source-6.12 sparse
coreutils iproute2 gzip libxxhash-dev libjson-c-dev libgnutls28-dev gnutls-bin
debian-archive-keyring"

missing=
for p in $PKGS; do
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in
	ii*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "install-deps: need root (or sudo) to install:$missing" >&2
		exit 1
	}
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing </dev/null
