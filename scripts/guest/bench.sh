#!/bin/sh
# calibration (temporary)
. /opt/mtty-mig/guest/lib.sh
load_modules
J=/tmp/j.json
jget() { awk -v sec="$1" -v key="$2" '
	/^  "source":/ {cur="source"} /^  "destination":/ {cur="destination"}
	cur==sec && index($0, "\"" key "\":") { v=$0; sub(/^[^:]*:/,"",v); sub(/,$/,"",v); gsub(/"/,"",v); print v; exit }' "$J"; }
show() { say "  rc=$rc pre_it=$(jget source precopy_iterations) pre_B=$(jget source precopy_bytes) pre_ns=$(jget source precopy_ns) sc_B=$(jget source stopcopy_bytes) sc_ns=$(jget source stopcopy_ns) down_ns=$(jget source downtime_ns) ddown=$(jget destination dest_downtime_ns) ack_ns=$(jget source switchover_ack_wait_ns) conv=$(jget source converged_by) bw=$(jget source bandwidth_Bps) tot=$(jget source total_ns)"; }
mig() { vfio-mig migrate --json "$@" >$J 2>/tmp/err; rc=$?; [ $rc = 0 ] || cat /tmp/err; show; }
t0=$(date +%s)
s=$(mdev_new mtty_mig-1 mem_size=67108864); d=$(mdev_new mtty_mig-1 mem_size=67108864)
say "== plain copy 64M"; for i in 1 2; do vfio-mig-copy $s $d; done
say "== engine 64M unlimited ack off c4"; for i in 1 2; do mig -c 4 -a off $s=$d; done
say "== engine 64M unlimited ack off c1"; mig -c 1 -a off $s=$d
say "== engine 64M unlimited ack on c4"; mig -c 4 $s=$d
mdev_rm $s; mdev_rm $d
say "t=$(( $(date +%s) - t0 ))"
s=$(mdev_new mtty_mig-1 mem_size=16777216 dirty_rate=51200); d=$(mdev_new mtty_mig-1 mem_size=16777216)
say "== engine 16M dirty 51200 -i1 ack off d0 c1/c4"
for c in 1 4 1 4; do mig -c $c -a off -i 1 -d 0 $s=$d; say "   writes $(attr $s engine_writes)"; done
say "== plain 16M"; vfio-mig-copy $s $d
say "t=$(( $(date +%s) - t0 ))"
set_attr $s save_rate 8388608; set_attr $d resume_rate 8388608
say "== 16M rate 8M/s dirty 51200 -i1 ack off c1/c4"
for c in 1 4; do mig -c $c -a off -i 1 -d 0 $s=$d; done
say "== plain 16M rate 8M"; vfio-mig-copy $s $d
mdev_rm $s; mdev_rm $d
say "t=$(( $(date +%s) - t0 ))"
s=$(mdev_new mtty_mig-1 mem_size=16777216); d=$(mdev_new mtty_mig-1 mem_size=16777216 initial_load_ms=500)
say "== ack on/off initial_load 500"
for a in on off on off; do mig -c 2 -a $a $s=$d; done
mdev_rm $s; mdev_rm $d
say "== convergence 64M"
s=$(mdev_new mtty_mig-1 mem_size=67108864); d=$(mdev_new mtty_mig-1 mem_size=67108864)
for r in 0 2000 10000 40000; do set_attr $s dirty_rate $r; mig -c 2 $s=$d; done
say "t=$(( $(date +%s) - t0 ))"
