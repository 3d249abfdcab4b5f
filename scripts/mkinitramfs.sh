#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the test VM's initramfs: busybox-static, the VFIO modules of the
# kernel we boot (with their modules.dep, so libkmod resolves them by name),
# the project module at /opt/mtty-mig/mtty_mig.ko and the kernel's mtty sample
# at /opt/mtty-mig/mtty.ko (deliberately outside modules.dep: the selftests
# load them by path, as a developer would), the installed kselftests, the
# vfio-mig tool and every shared library they need.
#
# usage: mkinitramfs.sh OUT.cpio.gz
# Environment: TOP, BUILD, KVER; MODROOT (default /: the root that holds
# lib/modules/$KVER), MODULE_KO (default kmod-mtty-mig/mtty_mig.ko), MTTY_KO
# (default $BUILD/mtty-sample/mtty.ko; left out if missing); QEMU10_DIR (an
# unpacked qemu-system-x86 package, scripts/debian-pkg.sh; default unset: the
# image carries no QEMU) for bench section P4.
set -euo pipefail

out=$1
: "${TOP:?}" "${BUILD:?}" "${KVER:?}"
MODROOT=${MODROOT:-/}
MODROOT=${MODROOT%/}
root=$(mktemp -d "$BUILD/initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,tmp,run,root,etc,opt/mtty-mig}

# busybox and its applets (not busybox itself: a self-link loops)
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list-full); do
	[ "$a" = bin/busybox ] && continue
	[ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
done

# Real binaries where busybox falls short: coreutils timeout (the kselftest
# runner needs --foreground), iproute2 ip (network namespaces), kmod.
copy_bin() {
	local src=$1 dst=$2
	rm -f "$root/$dst"
	cp -L "$src" "$root/$dst"
	copy_libs "$src"
}
copy_libs() {
	local lib
	for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}
copy_bin /usr/bin/timeout usr/bin/timeout
copy_bin /usr/bin/stdbuf usr/bin/stdbuf 2>/dev/null || true
[ -e /usr/libexec/coreutils/libstdbuf.so ] && { mkdir -p "$root/usr/libexec/coreutils"; cp /usr/libexec/coreutils/libstdbuf.so "$root/usr/libexec/coreutils/"; }
copy_bin /bin/ip sbin/ip
copy_bin /bin/kmod bin/kmod
for t in modprobe insmod rmmod lsmod modinfo depmod; do
	rm -f "$root/sbin/$t" "$root/bin/$t"
	ln -s /bin/kmod "$root/sbin/$t"
done

# Kernel modules: the VFIO stack (+ veth for the two-host test) with deps.
moddir=$MODROOT/lib/modules/$KVER
minfo=(modinfo -k "$KVER")
[ -n "$MODROOT" ] && minfo+=(-b "$MODROOT")
want="vfio vfio_iommu_type1 mdev veth"
mods=
resolve() {
	local m path dep
	for m in "$@"; do
		path=$("${minfo[@]}" -n "$m" 2>/dev/null) ||
			{ echo "mkinitramfs: no module $m in $moddir" >&2; exit 1; }
		case " $mods " in *" $path "*) continue ;; esac
		mods="$mods $path"
		for dep in $("${minfo[@]}" -F depends "$m" | tr ',' ' '); do
			resolve "$dep"
		done
	done
}
# shellcheck disable=SC2086 # a list of names
resolve $want
for p in $mods; do
	rel=${p#"$moddir"/}
	mkdir -p "$root/lib/modules/$KVER/$(dirname "$rel")"
	cp "$p" "$root/lib/modules/$KVER/$rel"
done
cp "$moddir"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$root" "$KVER"

# The project: module, tool, selftests
cp "${MODULE_KO:-$TOP/kmod-mtty-mig/mtty_mig.ko}" "$root/opt/mtty-mig/mtty_mig.ko"
# the kernel's mtty sample: a migratable device we did not write
mtty_ko=${MTTY_KO:-$BUILD/mtty-sample/mtty.ko}
if [ -f "$mtty_ko" ]; then
	cp "$mtty_ko" "$root/opt/mtty-mig/mtty.ko"
else
	echo "mkinitramfs: no $mtty_ko: the image has no mtty sample" >&2
fi
for b in "$BUILD"/user/vfio-mig "$BUILD"/user/vfio-mig-copy; do
	[ -x "$b" ] && copy_bin "$b" "usr/bin/$(basename "$b")"
done
# glibc dlopen()s libgcc_s when a thread of its own exits (getaddrinfo_a's
# resolver and notification threads, which vfio-mig uses for a bounded name
# lookup): ldd cannot see it, every Debian system has it (libgcc-s1).
# (awk reads all of ldconfig's output: an early exit would SIGPIPE it under pipefail)
gcc_s=$(ldconfig -p | awk '/libgcc_s\.so\.1 .*x86-64/ && !p { p = $NF } END { print p }')
if [ -n "$gcc_s" ]; then
	mkdir -p "$root$(dirname "$gcc_s")"
	cp -L "$gcc_s" "$root$gcc_s"
fi
if [ -d "$BUILD/kselftest" ]; then
	cp -a "$BUILD/kselftest" "$root/opt/kselftest"
	while IFS= read -r f; do
		file_is_elf=$(head -c4 "$f" | od -An -c | tr -d ' ')
		[ "$file_is_elf" = 177ELF ] && copy_libs "$f"
	done < <(find "$root/opt/kselftest" -type f -perm -u+x)
fi
# QEMU 10 and its ~50 libraries, only for bench section P4 (vm-run.sh sets
# QEMU10_DIR when BENCH_SECTIONS asks for it): /opt/qemu10/bin, and SeaBIOS in
# /opt/qemu10/share (P4_FW=seabios; P4 boots a halting stub by default).
if [ -n "${QEMU10_DIR:-}" ]; then
	q10=$QEMU10_DIR/usr/bin/qemu-system-x86_64
	[ -x "$q10" ] || { echo "mkinitramfs: no $q10" >&2; exit 1; }
	if ldd "$q10" | grep -q 'not found'; then
		echo "mkinitramfs: $q10 needs libraries this host lacks:" >&2
		ldd "$q10" | grep 'not found' >&2
		exit 1
	fi
	mkdir -p "$root/opt/qemu10/bin" "$root/opt/qemu10/share"
	copy_bin "$q10" opt/qemu10/bin/qemu-system-x86_64
	for f in /usr/share/seabios/bios-256k.bin /usr/share/qemu/bios-256k.bin; do
		[ -r "$f" ] && { cp -L "$f" "$root/opt/qemu10/share/"; break; }
	done
fi
cp -a "$TOP/scripts/guest" "$root/opt/mtty-mig/guest"
cp "$TOP/scripts/guest/init" "$root/init"
chmod +x "$root/init"

echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
