#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build (once) the sparse that Linux 7.2's `make C=2` accepts: bookworm's
# sparse 0.6.4 fails the kernel's scripts/checker-valid.sh
# (__typeof_unqual__), and sid's binary package needs a newer glibc. So
# sparse is built from Debian sid's source package (scripts/debian-pkg.sh
# --source), with this machine's compiler, and cached. Prints the path of
# the sparse binary.
#
# usage: sparse-build.sh [--check]   (--check: print it only if built)
set -euo pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
if [ "${1:-}" = --check ]; then
	src=$(MTTY_OFFLINE=1 "$TOP/scripts/debian-pkg.sh" --source sid sparse 2>/dev/null) || exit 1
else
	src=$("$TOP/scripts/debian-pkg.sh" --source sid sparse)
fi
out=$src/build
if [ -x "$out/sparse" ]; then
	echo "$out/sparse"
	exit 0
fi
[ "${1:-}" = --check ] && exit 1
exec 9>"$src/.lock"
flock 9
if [ ! -x "$out/sparse" ]; then
	rm -rf "$out.tmp"
	mkdir -p "$out.tmp"
	tar -xzf "$src"/sparse_*.orig.tar.gz -C "$out.tmp" --strip-components=1
	make -s -C "$out.tmp" -j"$(nproc)" sparse >"$src/build.log" 2>&1 ||
		{ tail -n 20 "$src/build.log" >&2; exit 1; }
	mv "$out.tmp" "$out"
fi
echo "$out/sparse"
