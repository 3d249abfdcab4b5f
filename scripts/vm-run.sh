#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Boot the test kernel under QEMU TCG with the project's initramfs and run one
# job in it. Needs no terminal and no stdin (except --mode shell), and a
# host-side timeout bounds every boot: a hung guest is a failed run.
#
# usage: vm-run.sh --mode check|demo|bench|shell [--kernel debian|debug|next]
#                  [--tests coll:prog,...] [--append 'k=v ...']
#                  [--timeout SECONDS] [--out DIR]
# --kernel debian (default) boots Debian's /boot/vmlinuz-$KVER; debug boots
# the lockdep/KASAN/kmemleak 6.12 kernel of scripts/kernel-build.sh
# (`make debug`), next its Linux 7.2 from Debian sid (`make next`), each with
# the module built against it. --append adds to the kernel command line
# (the guest's /init sees unknown k=v as environment variables).
# Results: DIR/result.txt (what the guest job printed, ending with
# "MTTY-VM-DONE rc=N"), DIR/dmesg.txt, DIR/console.txt. Exit status: 0 if the
# guest finished its job and reported rc=0 with no kernel splat; 3 if it did
# not finish; 4 if the kernel reported a splat.
set -euo pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$TOP/build}
export TOP BUILD

mode=shell tests='' timeout=900 out='' quiet=0 kernel=debian extra=''
while [ $# -gt 0 ]; do
	case $1 in
	--mode) mode=$2; shift ;;
	--kernel) kernel=$2; shift ;;
	--tests) tests=$2; shift ;;
	--append) extra="$extra $2"; shift ;;
	--timeout) timeout=$2; shift ;;
	--out) out=$2; shift ;;
	--quiet) quiet=1 ;;
	-h|--help) sed -n '4,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "vm-run: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
case $mode in check|demo|bench|shell) ;; *) echo "vm-run: bad mode '$mode'" >&2; exit 2 ;; esac

# What each kernel boots with. MODROOT is where mkinitramfs finds
# lib/modules/$KVER; MODULE_KO and MTTY_KO are the two mdev drivers.
case $kernel in
debian)
	KVER=${KVER:-$("$TOP/scripts/kver.sh")}
	vmlinuz=/boot/vmlinuz-$KVER
	MODROOT=/
	MODULE_KO=${MODULE_KO:-$TOP/kmod-mtty-mig/mtty_mig.ko}
	MTTY_KO=$BUILD/mtty-sample/mtty.ko
	cpio=$BUILD/vm/initramfs.cpio.gz
	suffix=
	mem=${VM_MEM:-3G}
	loglevel=4
	;;
debug|next)
	dk=$("$TOP/scripts/kernel-build.sh" "$kernel" --check) ||
		{ echo "vm-run: the $kernel kernel is not built (make $kernel)" >&2; exit 1; }
	KVER=$(cat "$dk/krel")
	vmlinuz=$dk/bzImage
	MODROOT=$dk/modroot
	MODULE_KO=${MODULE_KO:-$BUILD/$kernel/module/kmod-mtty-mig/mtty_mig.ko}
	MTTY_KO=$MODROOT/lib/modules/$KVER/kernel/samples/vfio-mdev/mtty.ko
	cpio=$BUILD/vm/initramfs-$kernel.cpio.gz
	suffix=-$kernel
	if [ "$kernel" = debug ]; then
		# KASAN's shadow is an eighth of memory, kmemleak and lockdep
		# keep their own metadata; the tests' device memory comes on top
		mem=${VM_MEM_DEBUG:-4G}
		# lockdep reports at KERN_WARNING: get them on the console too,
		# so a splat that is followed by a hang is not lost
		loglevel=5
	else
		mem=${VM_MEM:-3G}
		loglevel=4
	fi
	;;
*) echo "vm-run: bad kernel '$kernel' (debian, debug or next)" >&2; exit 2 ;;
esac
export TOP BUILD KVER MODROOT MODULE_KO MTTY_KO
out=${out:-$BUILD/vm/$mode$suffix}
mkdir -p "$out"
rm -f "$out"/{result,dmesg,console,splats}.txt

[ -r "$vmlinuz" ] || { echo "vm-run: $vmlinuz missing (make deps)" >&2; exit 1; }
[ -f "$MODULE_KO" ] || { echo "vm-run: module not built: $MODULE_KO (make${suffix:+ ${suffix#-}})" >&2; exit 1; }

# Bench section P4 runs QEMU 10 (bookworm-backports, unpacked by
# debian-pkg.sh, never installed) in the guest: only a bench that runs P4
# (BENCH_SECTIONS unset or naming it) carries it in its image. QEMU10_DIR=DIR names the unpacked package; QEMU10=1 adds it in
# any mode (e.g. a shell).
QEMU10_DIR=${QEMU10_DIR:-}
if [ -z "$QEMU10_DIR" ] && { [ "${QEMU10:-0}" = 1 ] ||
	{ [ "$mode" = bench ] && { ! echo " $extra " | grep -q ' BENCH_SECTIONS=' ||
		echo " $extra " | grep -qE ' BENCH_SECTIONS=([^ ]*,)?P4(,| )'; }; }; }; then
	# Without it the bench runs and says P4 was left out ("!! P4" in its table).
	if ! QEMU10_DIR=$("$TOP/scripts/debian-pkg.sh" bookworm-backports qemu-system-x86); then
		echo "vm-run: cannot fetch QEMU 10 (bookworm-backports qemu-system-x86): no P4" >&2
		QEMU10_DIR=
	elif ldd "$QEMU10_DIR/usr/bin/qemu-system-x86_64" 2>&1 | grep -q 'not found'; then
		echo "vm-run: QEMU 10 needs libraries this host lacks: no P4" >&2
		ldd "$QEMU10_DIR/usr/bin/qemu-system-x86_64" | grep 'not found' >&2
		QEMU10_DIR=
	fi
fi
export QEMU10_DIR
mkdir -p "$(dirname "$cpio")"
"$TOP/scripts/mkinitramfs.sh" "$cpio"

append="console=ttyS0 panic=-1 oops=panic panic_on_warn=1"
# KASAN checks every access on the debug kernel: SLUB debugging and KFENCE
# sampling only on Debian's, which has no KASAN.
[ "$kernel" = debian ] && append="$append slub_debug=FZPU kfence.sample_interval=10"
append="$append loglevel=$loglevel mttymode=$mode"
[ -n "$tests" ] && append="$append mttytests=$tests"
append="$append$extra"

# shellcheck disable=SC2054 # the commas are QEMU's
qemu=(qemu-system-x86_64 -machine q35,accel=tcg -cpu "${VM_CPU:-max}" -smp 2 -m "$mem"
	-no-reboot -nodefaults -kernel "$vmlinuz" -initrd "$cpio" -append "$append"
	-device virtio-serial-pci
	-chardev "file,id=res,path=$out/result.txt" -device virtserialport,chardev=res,name=result
	-chardev "file,id=dm,path=$out/dmesg.txt" -device virtserialport,chardev=dm,name=dmesg)

if [ "$mode" = shell ]; then
	exec "${qemu[@]}" -nographic -serial mon:stdio
fi

[ "$quiet" = 1 ] || echo "vm-run: booting $KVER ($kernel) under TCG (mode $mode, timeout ${timeout}s)" >&2
# boot: one run of the guest; qrc is QEMU's (timeout's) exit status
boot() {
	: >"$out/result.txt"
	timeout -k 10 "$timeout" "${qemu[@]}" -display none -monitor none \
		-serial "file:$out/console.txt" </dev/null &
	qpid=$!
	# demo and bench: show what the guest prints as it prints it
	if [ "$mode" != check ] && [ "$quiet" = 0 ]; then
		tail -n +1 -f --pid=$qpid "$out/result.txt" | grep --line-buffered -v '^MTTY-VM-DONE' &
		tpid=$!
	fi
	wait $qpid
	qrc=$?
	[ -n "${tpid:-}" ] && wait "$tpid" 2>/dev/null
}
set +e
boot
# A guest of check mode that died before its job printed a byte (the
# kselftest runner's "TAP version 13" comes before any test loads a module)
# crashed in the kernel's own boot: under TCG, text patching on 2 vCPUs once
# hit an int3 in sched_clock_cpu() this way. Nothing of ours had run; boot
# once more, and say so. A second such crash fails the run as usual.
if [ "$mode" = check ] && [ ! -s "$out/result.txt" ] && [ $qrc -ne 124 ] && [ $qrc -ne 137 ] &&
	grep -aqE 'Kernel panic|Oops' "$out/console.txt"; then
	echo "vm-run: the guest crashed in its own boot, before its job started; booting once more:" >&2
	grep -aE -m3 'Oops|RIP:|Kernel panic' "$out/console.txt" | sed 's/^/  /' >&2
	mv "$out/console.txt" "$out/console-first-boot.txt"
	boot
fi
set -e
if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
	echo "vm-run: guest did not finish within ${timeout}s (killed)" >&2
fi

# A kernel splat fails the run whatever the job printed.
splat=0
if ! "$TOP/scripts/splat-check.sh" "$out/console.txt" "$out/dmesg.txt" >"$out/splats.txt"; then
	splat=1
	echo "vm-run: kernel splat in the guest:" >&2
	sed 's/^/  /' "$out/splats.txt" >&2
fi

done_line=$(grep -a '^MTTY-VM-DONE rc=' "$out/result.txt" 2>/dev/null | tail -n1 || true)
if [ -z "$done_line" ]; then
	echo "vm-run: the guest never finished its job (crash, panic or timeout; see $out/console.txt)" >&2
	exit 3
fi
grc=${done_line#MTTY-VM-DONE rc=}
[ $splat -eq 0 ] || exit 4
exit "$grc"
