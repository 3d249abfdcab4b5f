# SPDX-License-Identifier: GPL-2.0-only
#
# Shell helpers for jobs run inside the test VM (demo, bench, engine tests).
# Sourced, not executed.

MTTY_MIG_KO=${MTTY_MIG_KO:-/opt/mtty-mig/mtty_mig.ko}
TYPES=/sys/class/mdev_bus/mtty_mig/mdev_supported_types
DEVS=/sys/bus/mdev/devices

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

load_modules() {
	/sbin/modprobe -a vfio vfio_iommu_type1 mdev || die "cannot load the VFIO modules"
	[ -d /sys/module/mtty_mig ] || /sbin/insmod "$MTTY_MIG_KO" || die "cannot load $MTTY_MIG_KO"
}

new_uuid() { cat /proc/sys/kernel/random/uuid; }

# mdev_new TYPE [attr=value...]: create an instance, set attributes, print its UUID
mdev_new() {
	local type=$1 u kv
	shift
	u=$(new_uuid)
	echo "$u" >"$TYPES/$type/create" || die "cannot create a $type instance"
	for kv in "$@"; do
		echo "${kv#*=}" >"$DEVS/$u/${kv%%=*}" || die "cannot set ${kv%%=*} on $u"
	done
	echo "$u"
}

mdev_rm() { echo 1 >"$DEVS/$1/remove"; }
attr() { cat "$DEVS/$1/$2"; }
set_attr() { echo "$3" >"$DEVS/$1/$2"; }
# link A B: make A and B peers of each other
link_peers() { set_attr "$1" peer "$2" && set_attr "$2" peer "$1"; }

# Note: busybox sh runs its own applets before anything in PATH; call the
# real kmod and iproute2 tools by absolute path (/sbin/modprobe, /sbin/ip).
