#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build (once) the debug-lane kernel: Debian's linux-source-6.12 configured
# as `make tinyconfig` plus scripts/kernel/debug.config (lockdep, KASAN,
# UBSAN, kmemleak, KFENCE, DEBUG_ATOMIC_SLEEP, hung-task detection), with the
# VFIO stack and the kernel's mtty sample as modules.
#
# The result is cached outside the clone, keyed by the source package
# version, the config fragment and the compiler, so CI (a fresh clone on the
# same machine) and every later run reuse it; a fresh machine builds it once
# (about 10 minutes on 2 cores). Prints the cache entry's directory:
#   DIR/bzImage        the kernel
#   DIR/modroot        lib/modules/KREL (modules_install, depmod'd)
#   DIR/tree           the built tree, for M= builds of out-of-tree modules
#   DIR/krel           the kernel release string
#
# usage: debug-kernel.sh [--check]   (--check: print DIR only if already built)
set -euo pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
frag=$TOP/scripts/kernel/debug.config
tarball=${KSRC_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
if [ -z "${MTTY_CACHE:-}" ]; then
	if [ -w /var/cache ] || [ -w /var/cache/mtty-mig ]; then
		MTTY_CACHE=/var/cache/mtty-mig
	else
		MTTY_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/mtty-mig
	fi
fi

[ -r "$tarball" ] || { echo "debug-kernel: $tarball missing (make deps)" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || stat -c %Y "$tarball")
key=$( { echo "$srcver"; cat "$frag"; ${CC:-gcc} --version | head -n1; } | sha256sum | cut -c1-16)
dir=$MTTY_CACHE/debug-kernel-$key

if [ -f "$dir/krel" ]; then
	echo "$dir"
	exit 0
fi
[ "${1:-}" = --check ] && exit 1

mkdir -p "$MTTY_CACHE"
exec 9>"$MTTY_CACHE/.debug-kernel.lock"
flock 9
if [ -f "$dir/krel" ]; then
	echo "$dir"
	exit 0
fi

for t in flex bison bc; do
	command -v $t >/dev/null || { echo "debug-kernel: $t missing (make deps)" >&2; exit 1; }
done
# objtool (x86_64 with the checkers) links against libelf
[ -e /usr/include/gelf.h ] || { echo "debug-kernel: libelf-dev missing (make deps)" >&2; exit 1; }

tmp=$dir.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
start=$(date +%s)
echo "debug-kernel: building a lockdep/KASAN kernel from $tarball ($srcver) into $dir" >&2
tar -xJf "$tarball" -C "$tmp"
mv "$tmp"/linux-source-6.12 "$tmp/tree"
cd "$tmp/tree"
make -s ARCH=x86_64 tinyconfig
scripts/kconfig/merge_config.sh -m .config "$frag" >/dev/null
make -s ARCH=x86_64 olddefconfig
# a symbol that did not land (a missing dependency) fails the build here,
# not as a strange VM failure later
bad=0
while IFS= read -r l; do
	k=${l%%=*} v=${l#*=}
	if [ "$v" = n ]; then
		grep -q "^$k=" .config && { echo "debug-kernel: $k is set, wanted off" >&2; bad=1; }
	else
		grep -qx "$l" .config || { echo "debug-kernel: wanted $l, got: $(grep -E "^$k=|^# $k is" .config || echo unset)" >&2; bad=1; }
	fi
done < <(grep -E '^CONFIG_' "$frag")
[ $bad -eq 0 ] || exit 1

jobs=$(nproc)
make -s ARCH=x86_64 -j"$jobs" bzImage modules >"$tmp/build.log" 2>&1 || {
	tail -n 40 "$tmp/build.log" >&2
	exit 1
}
krel=$(make -s ARCH=x86_64 kernelrelease)
make -s ARCH=x86_64 INSTALL_MOD_PATH="$tmp/modroot" modules_install >>"$tmp/build.log" 2>&1
cp arch/x86/boot/bzImage "$tmp/bzImage"
# modules_install pointed "build" at the temporary path: point it at tree/,
# relatively, so that it survives the rename below
ln -sfn ../../../../tree "$tmp/modroot/lib/modules/$krel/build"
# drop the build's object files, which an M= build does not need: it needs
# .config, Module.symvers, include/ and the generated headers, scripts/ (with
# modpost and fixdep) and tools/objtool; the tree works after the rename
# below, as nothing in what an M= build reads holds the temporary path
find . -name '*.o' ! -path './scripts/*' ! -path './tools/*' -delete 2>/dev/null || true
echo "$krel" >"$tmp/krel.tmp"
cd /
echo "built in $(( $(date +%s) - start )) s" >"$tmp/build-time"
mv "$tmp" "$dir"
mv "$dir/krel.tmp" "$dir/krel"
echo "debug-kernel: built $krel in $(( $(date +%s) - start )) s" >&2
echo "$dir"
