#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make demo`: migrate two P2P-linked mtty_mig devices, each with 64 MiB of
# device memory and its internal engine dirtying it, from one pair of
# instances to another with vfio-mig over 4 multifd channels, then show that
# the destination holds exactly the state the source had when it stopped.
set -e
. /opt/mtty-mig/guest/lib.sh

say "== mtty-mig demo: kernel $(uname -r), $(nproc) vCPUs (TCG)"
load_modules
say "== loaded: $(lsmod | awk '$1 ~ /^(vfio|mdev|mtty_mig|vfio_iommu_type1)$/ {print $1}' | tr '\n' ' ')"

# source: two devices that write into their memory and into each other
s1=$(mdev_new mtty_mig-2 mem_size=67108864 dirty_rate=2000 p2p_rate=500 \
	metadata_size=262144 save_rate=0)
s2=$(mdev_new mtty_mig-2 mem_size=67108864 dirty_rate=2000 p2p_rate=500 \
	metadata_size=262144)
link_peers "$s1" "$s2"
# destination: same type and memory size; loading the initial bytes costs 200 ms
d1=$(mdev_new mtty_mig-2 mem_size=67108864 initial_load_ms=200)
d2=$(mdev_new mtty_mig-2 mem_size=67108864 initial_load_ms=200)
link_peers "$d1" "$d2"
say "== source      $s1  $s2"
say "== destination $d1  $d2"
say
vfio-mig info "$s1"
say
say "== vfio-mig migrate --channels 4 (multifd, switchover-ack on)"
vfio-mig migrate --channels 4 --multifd on --switchover-ack on \
	"$s1=$d1" "$s2=$d2"
rc=$?
say
say "== after migration (vfio-mig has exited and closed the devices: a closed"
say "   device reports RUNNING, and its engine does not run until it is opened)"
ok=0
for pair in "$s1 $d1" "$s2 $d2"; do
	set -- $pair
	ds=$(attr "$1" digest); dd=$(attr "$2" digest)
	if [ "$ds" = "$dd" ]; then verdict=equal; else verdict=DIFFERENT; ok=1; fi
	say "   $1 ($(attr "$1" state)) digest $ds"
	say "   $2 ($(attr "$2" state)) digest $dd   -> $verdict"
done
for u in "$s1" "$s2" "$d1" "$d2"; do
	v=$(attr "$u" p2p_violations)
	[ "$v" = 0 ] || ok=1
	say "   $u p2p_violations=$v engine_writes=$(attr "$u" engine_writes) p2p_tx=$(attr "$u" p2p_tx)"
done
if [ $rc -eq 0 ] && [ $ok -eq 0 ]; then
	say "== demo: migration succeeded, digests equal, no P2P violation"
else
	say "== demo: FAILED (vfio-mig exit $rc)"
	exit 1
fi
