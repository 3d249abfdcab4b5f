# SPDX-License-Identifier: GPL-2.0-only
#
# QEMU 10 in the test VM, for bench section P4 (Documentation/benchmarks.rst):
# start a firmware-only q35 VM holding one mtty_mig device through vfio-pci
# and talk QMP to it.  Sourced by bench.sh after lib.sh.
#
# The image carries QEMU only when the bench asks for P4 (vm-run.sh sets
# QEMU10_DIR for mkinitramfs.sh): /opt/qemu10/bin/qemu-system-x86_64 and the
# libraries it needs.
#
# QMP goes through a pipe chardev (-chardev pipe,path=/tmp/NAME: QEMU reads
# /tmp/NAME.in and writes /tmp/NAME.out, two FIFOs), so no socket tool is
# needed: busybox's sh reads the replies line by line.  QEMU opens both FIFOs
# O_RDWR and so do we, so no open() ever blocks on a QEMU that died; a dead
# QEMU is noticed by its pid.

Q10=${Q10:-/opt/qemu10}
Q10_BIN=$Q10/bin/qemu-system-x86_64

have_qemu10() { [ -x "$Q10_BIN" ]; }

# q10_firmware FILE: a 64 KiB BIOS image that halts at once (cli; hlt;
# jmp .-1 at the reset vector).  SeaBIOS under nested TCG spends many seconds
# of CPU in POST, which would compete with the migration on 2 vCPUs; a guest
# that sleeps in hlt costs nothing, and the migration does not care what the
# guest runs.  P4_FW=seabios uses /opt/qemu10/share/bios-256k.bin instead.
q10_firmware() {
	if [ "${P4_FW:-halt}" = seabios ]; then
		echo "$Q10/share/bios-256k.bin"
		return
	fi
	head -c 65536 /dev/zero >"$1"
	# 0xfff0 (reset vector 0xffff0): fa f4 eb fd
	printf '\372\364\353\375' | dd of="$1" bs=1 seek=65520 conv=notrunc 2>/dev/null
	echo "$1"
}

# q10_start NAME UUID [QEMU options...]: start a QEMU 10 whose QMP monitor is
# /tmp/NAME.{in,out}, holding the mdev UUID as a vfio-pci device; its pid goes
# to /tmp/NAME.pid, its stderr to /tmp/NAME.err
q10_start() {
	local n=$1 u=$2 fw
	shift 2
	rm -f "/tmp/$n.in" "/tmp/$n.out" "/tmp/$n.err" "/tmp/$n.pid"
	mkfifo "/tmp/$n.in" "/tmp/$n.out"
	fw=$(q10_firmware /tmp/p4-halt.rom)
	"$Q10_BIN" -machine q35 -accel tcg -nodefaults -display none -m 64M \
		-bios "$fw" -L "$Q10/share" \
		-device "vfio-pci,sysfsdev=$DEVS/$u,x-migration-multifd-transfer=on,enable-migration=on,x-device-dirty-page-tracking=off,rombar=0" \
		-chardev "pipe,id=qmp,path=/tmp/$n" -mon chardev=qmp,mode=control \
		"$@" </dev/null 2>"/tmp/$n.err" &
	echo $! >"/tmp/$n.pid"
}

q10_alive() { kill -0 "$(cat "/tmp/$1.pid" 2>/dev/null)" 2>/dev/null; }

# q10_reply NAME SECONDS: print the next "return" or "error" line of NAME's
# QMP output, or its greeting; skip events.  Fails on an error reply, when
# QEMU died, or after SECONDS without such a line.
q10_reply() {
	local n=$1 left=$2 line
	while [ "$left" -gt 0 ]; do
		while IFS= read -r -t 1 line; do
			case $line in
			'{"return"'*|'{"QMP"'*) echo "$line"; return 0 ;;
			'{"error"'*) echo "$line"; return 1 ;;
			esac
		done <>"/tmp/$n.out"
		q10_alive "$n" || { echo "{\"error\": {\"desc\": \"QEMU $n exited\"}}"; return 1; }
		left=$((left - 1))
	done
	echo "{\"error\": {\"desc\": \"no QMP reply from $n in $2 s\"}}"
	return 1
}

# q10_ready NAME: wait (60 s at most) for the QMP greeting, i.e. for QEMU to
# have opened both FIFOs: a command written before that would be lost with
# the FIFO's last writer.  Then negotiate capabilities.
q10_ready() {
	q10_reply "$1" 60 >/dev/null && qmp "$1" '{"execute": "qmp_capabilities"}' >/dev/null
}

# qmp NAME JSON [SECONDS]: send one command, print its reply line.  Fails on
# an error reply, when QEMU died, or after SECONDS (default 30) without a reply.
qmp() {
	q10_alive "$1" || { echo "{\"error\": {\"desc\": \"QEMU $1 is not running\"}}"; return 1; }
	printf '%s\n' "$2" 1<>"/tmp/$1.in"
	q10_reply "$1" "${3:-30}"
}

# jnum KEY LINE: the number after "KEY": in a one-line QMP reply (first match)
jnum() { printf '%s\n' "$2" | sed -n "s/.*\"$1\": \([0-9][0-9]*\).*/\1/p" | head -n1; }
# jstr KEY LINE: the string after "KEY":
jstr() { printf '%s\n' "$2" | sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" | head -n1; }

# q10_stop NAME: quit (QMP), then SIGKILL after 10 s; remove the FIFOs
q10_stop() {
	local n=$1 pid i=0
	pid=$(cat "/tmp/$n.pid" 2>/dev/null) || return 0
	q10_alive "$n" && qmp "$n" '{"execute": "quit"}' 5 >/dev/null 2>&1
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "/tmp/$n.in" "/tmp/$n.out" "/tmp/$n.pid"
}
