#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build (once) one of the test VM's own kernels, as `make tinyconfig` plus
# scripts/kernel/vm.config plus the flavour's fragment, with the VFIO stack
# and the kernel's mtty sample as modules:
#   debug  Debian's linux-source-6.12 + debug.config: lockdep, KASAN, UBSAN,
#          kmemleak, KFENCE, DEBUG_ATOMIC_SLEEP, hung-task detection
#   next   Debian sid's linux-source-$KNEXT_SERIES (default 7.2), fetched by
#          scripts/debian-pkg.sh, + next.config; built with this machine's
#          gcc (sid's own kernel needs gcc-16 for out-of-tree modules)
#
# The result is cached outside the clone, keyed by the source package
# version, the fragments and the compiler, so CI (a fresh clone on the same
# machine) and every later run reuse it; a fresh machine builds each once
# (about 10 to 17 minutes on 2 cores). Prints the cache entry's directory:
#   DIR/bzImage        the kernel
#   DIR/modroot        lib/modules/KREL (modules_install, depmod'd)
#   DIR/tree           the built tree, for M= builds of out-of-tree modules
#   DIR/krel           the kernel release string
#
# usage: kernel-build.sh debug|next [--check]
#        (--check: print DIR only if already built, never build or fetch)
set -euo pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
flavour=${1:-}
check=${2:-}
if [ -z "${MTTY_CACHE:-}" ]; then
	if [ -w /var/cache ] || [ -w /var/cache/mtty-mig ]; then
		MTTY_CACHE=/var/cache/mtty-mig
	else
		MTTY_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/mtty-mig
	fi
fi

export MTTY_CACHE
frags=("$TOP/scripts/kernel/vm.config" "$TOP/scripts/kernel/$flavour.config")
case $flavour in
debug)
	tarball=${KSRC_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
	[ -r "$tarball" ] || { echo "kernel-build: $tarball missing (make deps)" >&2; exit 1; }
	srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || stat -c %Y "$tarball")
	;;
next)
	series=${KNEXT_SERIES:-7.2}
	# --check never goes to the network: it looks at what was fetched
	if [ "$check" = --check ]; then
		pkgdir=$(MTTY_OFFLINE=1 "$TOP/scripts/debian-pkg.sh" sid "linux-source-$series" 2>/dev/null) || exit 1
	else
		pkgdir=$("$TOP/scripts/debian-pkg.sh" sid "linux-source-$series")
	fi
	tarball=$pkgdir/usr/src/linux-source-$series.tar.xz
	srcver=${pkgdir##*_}
	;;
*) echo "usage: kernel-build.sh debug|next [--check]" >&2; exit 2 ;;
esac
key=$( { echo "$srcver"; cat "${frags[@]}"; ${CC:-gcc} --version | head -n1; } | sha256sum | cut -c1-16)
dir=$MTTY_CACHE/$flavour-kernel-$key

if [ -f "$dir/krel" ]; then
	echo "$dir"
	exit 0
fi
[ "$check" = --check ] && exit 1

mkdir -p "$MTTY_CACHE"
exec 9>"$MTTY_CACHE/.$flavour-kernel.lock"
flock 9
if [ -f "$dir/krel" ]; then
	echo "$dir"
	exit 0
fi

for t in flex bison bc; do
	command -v $t >/dev/null || { echo "kernel-build: $t missing (make deps)" >&2; exit 1; }
done
# objtool (x86_64 with the checkers) links against libelf
[ -e /usr/include/gelf.h ] || { echo "kernel-build: libelf-dev missing (make deps)" >&2; exit 1; }

tmp=$dir.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
start=$(date +%s)
echo "kernel-build: building the $flavour kernel from $tarball ($srcver) into $dir" >&2
tar -xJf "$tarball" -C "$tmp"
mv "$tmp"/linux-source-* "$tmp/tree"
cd "$tmp/tree"
make -s ARCH=x86_64 tinyconfig
scripts/kconfig/merge_config.sh -m .config "${frags[@]}" >/dev/null
make -s ARCH=x86_64 olddefconfig
# a symbol that did not land (a missing dependency) fails the build here,
# not as a strange VM failure later
bad=0
while IFS= read -r l; do
	k=${l%%=*} v=${l#*=}
	if [ "$v" = n ]; then
		grep -q "^$k=" .config && { echo "kernel-build: $k is set, wanted off" >&2; bad=1; }
	else
		grep -qx "$l" .config || { echo "kernel-build: wanted $l, got: $(grep -E "^$k=|^# $k is" .config || echo unset)" >&2; bad=1; }
	fi
done < <(grep -hE '^CONFIG_' "${frags[@]}")
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
echo "kernel-build: built $krel in $(( $(date +%s) - start )) s" >&2
echo "$dir"
