#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Print the Debian 6.12 kernel ABI this project builds and boots: the newest
# one for which both the headers (to build the module) and the image (to boot
# the test VM) are installed, e.g. "6.12.117+deb12-amd64". Never hard-coded:
# bookworm-security moves the ABI with every kernel update.
set -eu
best=
for d in /usr/src/linux-headers-6.12.*-amd64; do
	[ -d "$d" ] || continue
	v=${d#/usr/src/linux-headers-}
	[ -r "/boot/vmlinuz-$v" ] || continue
	best="$best $v"
done
[ -n "$best" ] || { echo "kver.sh: no 6.12 headers+image pair installed (run scripts/install-deps.sh)" >&2; exit 1; }
printf '%s\n' $best | sort -V | tail -n 1
