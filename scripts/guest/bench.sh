#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# `make bench`: the migration benchmark, run in the TCG test VM.  It is not a
# test: it prints absolute numbers and ratios measured side by side in one run
# (under TCG only the ratios mean anything), and exits non-zero only when a
# migration or a plain copy fails.  Documentation/benchmarks.rst explains
# every measurement and records a run.
#
#   A. stop-copy throughput: engine vs a plain read/write copy of the data_fd
#   B. downtime, 1 vs N multifd channels, 1 and 4 devices, device rate
#      modelled (RATE) and unlimited
#   C. downtime with switchover-ack on vs off, destination initial-load delay
#   D. precopy convergence with the internal engine dirtying memory
#   E. TLS (PSK) on vs off over loopback TCP: stop-copy throughput, downtime
#   P. parallel precopy and multifd device state: P1 (from A), P2, P5
#   P4. QEMU 10.0 side by side: one device migrated by QEMU (nested TCG VM)
#      and by vfio-mig, downtime ratio
#
# Every configuration runs REPS times, interleaved with the configurations
# it is compared with; the tables show medians.
. /opt/mtty-mig/guest/lib.sh

REPS=${REPS:-3}
N=4				# multifd channels of the "N" configurations
MEM=16777216			# 16 MiB of device memory per device
RATE=8388608			# "realistic" device save/resume rate: 8 MiB/s (see the doc)
HOT=16384			# dirty_rate that re-dirties the whole memory during a pass:
				# the module's ceiling, MTTY_MIG_RATE_MAX (64 MiB/s)
LOAD_MS=500			# destination initial_load_ms for section C

J=/tmp/bench.json
R=/tmp/bench.rows
ERR=/tmp/bench.err
fail=0
: >"$R"

# ---- helpers ----------------------------------------------------------------
# BENCH_SECTIONS (kernel command line, `make bench BENCH_SECTIONS=AB,E`):
# the sections to run (AB, C, D, E, P; default all); the others report "-".
# P4 (QEMU 10 side by side) needs QEMU 10 in the image: vm-run.sh adds it
# when BENCH_SECTIONS is unset or names P4.
want() { case ",${BENCH_SECTIONS:-AB,C,D,E,P,P4}," in *",$1,"*) return 0 ;; esac; return 1; }

# jget SECTION KEY: a top-level value of the "source"/"destination" object in $J
jget() {
	awk -v sec="$1" -v key="$2" '
		/^  "source":/ { cur = "source" }
		/^  "destination":/ { cur = "destination" }
		cur == sec && index($0, "\"" key "\":") == 5 {
			v = $0; sub(/^[^:]*:/, "", v); sub(/,$/, "", v); gsub(/"/, "", v)
			print v; exit
		}' "$J"
}

# rec CFG key=value...: one measured row
rec() { echo "$*" >>"$R"; }

# med CFG KEY: median of KEY over the rows of CFG (empty if none)
med() {
	awk -v cfg="$1" -v key="$2" '
		$1 == cfg { for (i = 2; i <= NF; i++) { split($i, kv, "=");
			if (kv[1] == key) v[n++] = kv[2] + 0 } }
		END {
			if (!n) exit
			for (i = 1; i < n; i++) for (j = i; j > 0 && v[j-1] > v[j]; j--) {
				t = v[j]; v[j] = v[j-1]; v[j-1] = t }
			print (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
		}' "$R"
}

# medq CFG NUM DEN: median over the rows of CFG of NUM/DEN (a per-run rate)
medq() {
	awk -v cfg="$1" -v a="$2" -v b="$3" '
		$1 == cfg { split("", x); for (i = 2; i <= NF; i++) { split($i, kv, "=");
			x[kv[1]] = kv[2] + 0 } ; if (x[b] > 0) v[n++] = x[a] / x[b] }
		END {
			if (!n) exit
			for (i = 1; i < n; i++) for (j = i; j > 0 && v[j-1] > v[j]; j--) {
				t = v[j]; v[j] = v[j-1]; v[j-1] = t }
			printf "%.9g\n", (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
		}' "$R"
}

# tally CFG KEY: "value xcount" of a text column, e.g. "max-iterations x3"
tally() {
	awk -v cfg="$1" -v key="$2" '
		$1 == cfg { for (i = 2; i <= NF; i++) { split($i, kv, "=");
			if (kv[1] == key) c[kv[2]]++ } }
		END { s = ""; for (k in c) s = s (s ? "," : "") k " x" c[k]; print s }' "$R"
}

# calc AWK-EXPR: floating-point arithmetic for the tables ("-" on bad input)
calc() { awk "BEGIN { x = $1; print x }" 2>/dev/null || echo -; }
ms() { [ -n "$1" ] && calc "sprintf(\"%.1f\", $1 / 1e6)" || echo -; }
mib() { [ -n "$1" ] && calc "sprintf(\"%.1f\", $1 / 1048576)" || echo -; }
mibps() { [ -n "$1" ] && [ -n "$2" ] && calc "$2 > 0 ? sprintf(\"%.1f\", $1 / 1048576 / ($2 / 1e9)) : \"-\"" || echo -; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && calc "$2 > 0 ? sprintf(\"%.2f\", $1 / $2) : \"-\"" || echo -; }

now_ns() { awk '{ printf "%.0f\n", $1 * 1e9 }' /proc/uptime; }
# CPU time (ms, user + system) of this shell's waited-for children so far
# (/proc/PID/stat cutime + cstime, in USER_HZ ticks): a run's CPU is the
# difference around it (the device's engine kthread is not counted).
child_cpu_ms() { awk -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" '{ printf "%.0f\n", ($16 + $17) * 1000 / hz }' /proc/$$/stat; }

# migrate CFG vfio-mig-options... SRC=DST...: one engine run, recorded as CFG
migrate() {
	local cfg=$1 w0 w1 s u rc
	shift
	w0=0
	for u in $SRCS; do w0=$((w0 + $(attr "$u" engine_writes))); done
	c0=$(child_cpu_ms)
	vfio-mig migrate --json "$@" >"$J" 2>"$ERR"
	rc=$?
	c1=$(child_cpu_ms)
	if [ $rc -ne 0 ] || [ "$(jget source ok)" != true ]; then
		say "!! $cfg: vfio-mig migrate $* failed (exit $rc):"
		sed 's/^/!!   /' "$ERR"
		fail=1
		return
	fi
	# The destination must hold what the source had when it stopped.
	for s in "$@"; do
		case $s in *=*) ;; *) continue ;; esac
		if [ "$(attr "${s%%=*}" digest)" != "$(attr "${s#*=}" digest)" ]; then
			say "!! $cfg: digest of ${s#*=} differs from its source after migration"
			fail=1
		fi
	done
	w1=0
	for u in $SRCS; do w1=$((w1 + $(attr "$u" engine_writes))); done
	rec "$cfg" down=$(jget source downtime_ns) ddown=$(jget destination dest_downtime_ns) \
		scB=$(jget source stopcopy_bytes) scns=$(jget source stopcopy_ns) \
		preB=$(jget source precopy_bytes) prens=$(jget source precopy_ns) \
		it=$(jget source precopy_iterations) conv=$(jget source converged_by) \
		est=$(jget source est_stopcopy_bytes) bw=$(jget source bandwidth_Bps) \
		ack=$(jget source switchover_ack_wait_ns) total=$(jget source total_ns) \
		setup=$(jget source setup_ns) writes=$((w1 - w0)) cpu=$((c1 - c0)) \
		mvB=$(($(jget source precopy_bytes) + $(jget source stopcopy_bytes)))
}

# plain CFG SRC DST: one vfio-mig-copy run, recorded as CFG
plain() {
	local cfg=$1 out rc c0 c1
	c0=$(child_cpu_ms)
	out=$(vfio-mig-copy "$2" "$3" 2>"$ERR")
	rc=$?
	c1=$(child_cpu_ms)
	if [ $rc -ne 0 ]; then
		say "!! $cfg: vfio-mig-copy $2 $3 failed (exit $rc):"
		sed 's/^/!!   /' "$ERR"
		fail=1
		return
	fi
	if [ "$(attr "$2" digest)" != "$(attr "$3" digest)" ]; then
		say "!! $cfg: digest of $3 differs from its source after the plain copy"
		fail=1
	fi
	# "bytes=B copy_ns=T total_ns=U" -> "scB=B scns=T total=U"
	rec "$cfg" $(echo "$out" | sed 's/bytes=/scB=/; s/copy_ns=/scns=/; s/total_ns=/total=/') \
		cpu=$((c1 - c0))
}

# rates RATE DEV...: save_rate on sources, resume_rate on destinations
rates() {
	local r=$1 u
	shift
	for u in "$@"; do set_attr "$u" save_rate "$r"; set_attr "$u" resume_rate "$r"; done
}

row() { printf '  %-34s %s\n' "$1" "$2"; }

T0=$(now_ns)
say "== mtty-mig bench: kernel $(uname -r), $(nproc) vCPUs (TCG), $REPS runs per configuration (medians)"
load_modules

# ---- devices ------------------------------------------------------------------
# Four sources whose engine re-dirties all of their memory during a pass, four
# destinations.  A pair keeps its numbers (s1 -> d1, ...).
s1=$(mdev_new mtty_mig-1 mem_size=$MEM dirty_rate=$HOT)
s2=$(mdev_new mtty_mig-1 mem_size=$MEM dirty_rate=$HOT)
s3=$(mdev_new mtty_mig-1 mem_size=$MEM dirty_rate=$HOT)
s4=$(mdev_new mtty_mig-1 mem_size=$MEM dirty_rate=$HOT)
d1=$(mdev_new mtty_mig-1 mem_size=$MEM)
d2=$(mdev_new mtty_mig-1 mem_size=$MEM)
d3=$(mdev_new mtty_mig-1 mem_size=$MEM)
d4=$(mdev_new mtty_mig-1 mem_size=$MEM)
ALL="$s1 $s2 $s3 $s4 $d1 $d2 $d3 $d4"
ONE="$s1=$d1"
FOUR="$s1=$d1 $s2=$d2 $s3=$d3 $s4=$d4"
# Switch over right after the first precopy pass (-i 1 and a limit no
# estimate meets), without waiting for acks: the STOP_COPY data is then the
# memory the engine re-dirtied during that pass, i.e. nearly all of it.
HOTOPTS="--switchover-ack off --max-iterations 1 --downtime-limit 0"

# Warm-up (TCG translation, first touch of every page); not recorded.
say "== warm-up"
SRCS="$s1 $s2 $s3 $s4"
migrate warmup -c $N $HOTOPTS $FOUR
plain warmup "$s1" "$d1"

say "== A/B: stop-copy throughput and downtime ($REPS rounds)"
want AB && for i in $(seq "$REPS"); do
	for rate in 0 $RATE; do
		rates "$rate" $ALL
		tag=unl; [ "$rate" = 0 ] || tag=dev
		SRCS=$s1
		plain "plain.$tag" "$s1" "$d1"
		migrate "1d.1c.$tag" -c 1 $HOTOPTS $ONE
		migrate "1d.Nc.$tag" -c $N $HOTOPTS $ONE
		SRCS="$s1 $s2 $s3 $s4"
		migrate "4d.1c.$tag" -c 1 $HOTOPTS $FOUR
		migrate "4d.Nc.$tag" -c $N $HOTOPTS $FOUR
	done
	say "   round $i done ($(ms $(( $(now_ns) - T0 ))) ms since start)"
done
rates 0 $ALL

# ---- C: switchover-ack ----------------------------------------------------------
# Destinations that sleep LOAD_MS when they load the METADATA initial bytes.
# A 64 KiB device: its whole precopy stream (~130 KiB) fits in the socket
# buffers, so without an ack the source can switch over before the
# destination has loaded it.  A 16 MiB device: the destination's main thread
# applies precopy data in order, so its sleep back-pressures the source.
cs=$(mdev_new mtty_mig-1 mem_size=65536)
cd=$(mdev_new mtty_mig-1 mem_size=65536 initial_load_ms=$LOAD_MS)
bs=$s1
bd=$(mdev_new mtty_mig-1 mem_size=$MEM initial_load_ms=$LOAD_MS)
set_attr "$bs" dirty_rate 0
say "== C: switchover-ack on/off, initial_load_ms=$LOAD_MS ($REPS rounds)"
want C && for i in $(seq "$REPS"); do
	for a in on off; do
		SRCS=$cs
		migrate "ack.small.$a" -c $N --switchover-ack $a "$cs=$cd"
		SRCS=$bs
		migrate "ack.big.$a" -c $N --switchover-ack $a "$bs=$bd"
	done
done

# ---- D: precopy convergence -------------------------------------------------------
# Default convergence options (--downtime-limit 300, --max-iterations 30,
# switchover-ack on), N channels, the engine dirtying at several rates.
# 32 MiB: a dirty set as large as the memory (32 MiB at ~70 MiB/s) must not
# fit in the 300 ms limit, or every rate would converge.
CMEM=33554432
LEVELS="0 2048 4096 8192 16384"
vs=$(mdev_new mtty_mig-1 mem_size=$CMEM)
vd=$(mdev_new mtty_mig-1 mem_size=$CMEM)
say "== D: precopy convergence, $(mib $CMEM) MiB, dirty_rate $LEVELS pages/s ($REPS rounds)"
SRCS=$vs
want D && for i in $(seq "$REPS"); do
	for r in $LEVELS; do
		set_attr "$vs" dirty_rate "$r"
		migrate "conv.$r" -c $N "$vs=$vd"
	done
done

# ---- E: TLS on vs off -------------------------------------------------------------
# The same hot 16 MiB device as A/B, N channels, over loopback TCP with and
# without TLS 1.3 (PSK): what encryption and the MAC cost the data path.
PSK=/tmp/bench.psk
umask 077
printf 'qemu:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$PSK"
umask 022
set_attr "$s1" dirty_rate $HOT
say "== E: TLS (PSK) on vs off, loopback TCP, $N channels ($REPS rounds)"
SRCS=$s1
want E && for i in $(seq "$REPS"); do
	migrate "tcp.plain" -c $N $HOTOPTS --listen tcp:127.0.0.1:$((4600 + i)) $ONE
	migrate "tcp.tls" -c $N $HOTOPTS --listen tcp:127.0.0.1:$((4700 + i)) --tls-psk "$PSK" $ONE
done

# ---- P: parallel precopy and multifd device state --------------------------------
# The four 16 MiB devices at the modelled device rate (RATE, save and resume),
# their engines re-dirtying all of their memory during a pass, one pass
# (HOTOPTS): the STOP_COPY set is the whole memory of every device.
#   p.4d.off  --multifd off: devices read one after another, precopy and
#             STOP_COPY, on the main channel (QEMU without multifd device
#             state transfer)
#   p.4d.on   $N channels: every device read in its own thread, precopy and
#             STOP_COPY over the channels
#   p.4d.ser  $N channels, --precopy-multifd off: precopy device after device on
#             the main channel (the engine before parallel precopy), STOP_COPY
#             in parallel over the channels
#   p.1d.*    one device, the same two precopy paths
say "== P: 4 devices and 1 at $(mib $RATE) MiB/s, multifd off / on / serial precopy ($REPS rounds)"
want P && for i in $(seq "$REPS"); do
	rates $RATE $ALL
	SRCS="$s1 $s2 $s3 $s4"
	migrate "p.4d.off" --multifd off $HOTOPTS $FOUR
	migrate "p.4d.on" -c $N $HOTOPTS $FOUR
	migrate "p.4d.ser" -c $N --precopy-multifd off $HOTOPTS $FOUR
	SRCS=$s1
	migrate "p.1d.on" -c $N $HOTOPTS $ONE
	migrate "p.1d.ser" -c $N --precopy-multifd off $HOTOPTS $ONE
	say "   round $i done ($(ms $(( $(now_ns) - T0 ))) ms since start)"
done
rates 0 $ALL
# ---- P4: QEMU 10 side by side -----------------------------------------------------
# One 16 MiB device pair, migrated in turn by QEMU 10.0 (a firmware-only q35
# VM holding the source mdev through vfio-pci, to a second QEMU started with
# -incoming, over a unix socket, multifd $N channels, return-path,
# switchover-ack, multifd device state transfer) and by vfio-mig -c $N, the
# same devices, the same dirty rate, the same downtime limit:
#   p4.a  dirty_rate $HOT, one precopy pass, the same rule on both sides: a
#         downtime limit any estimate meets (QEMU's ceiling 2000 s, vfio-mig's
#         3600 s) with switchover-ack on, so each switches over as soon as the
#         destination acknowledged the initial bytes: after the first pass
#         (QEMU has no iteration cap; see the doc)
#   p4.b  dirty_rate $P4LOW, default limits on both sides (downtime-limit
#         300 ms, switchover-ack on; vfio-mig --max-iterations 30)
# QEMU's downtime is query-migrate's "downtime" (ms), vfio-mig's downtime_ns.
P4LOW=2048
P4_TIMEOUT=${P4_TIMEOUT:-90}	# seconds a QEMU migration may take before it is cancelled
P4DT_MAX=2000000		# QEMU's ceiling for downtime-limit (ms)
. /opt/mtty-mig/guest/qemu10.sh

# p4_qemu CFG DOWNTIME_LIMIT_MS SRC DST: one QEMU migration, recorded as CFG;
# on failure says why (QMP error, QEMU's stderr) and records nothing
p4_qemu() {
	local cfg=$1 dl=$2 src=$3 dst=$4 caps par out r st t n why=
	rm -f /tmp/p4.sock
	q10_start p4d "$dst" -incoming defer
	q10_start p4s "$src"
	caps='{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "multifd", "state": true}, {"capability": "return-path", "state": true}, {"capability": "switchover-ack", "state": true}]}}'
	par="{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"multifd-channels\": $N, \"downtime-limit\": $dl}}"
	out=$(q10_ready p4d && q10_ready p4s && qmp p4d "$caps" && qmp p4s "$caps" &&
		qmp p4d "$par" && qmp p4s "$par" &&
		qmp p4d '{"execute": "migrate-incoming", "arguments": {"uri": "unix:/tmp/p4.sock"}}' &&
		qmp p4s '{"execute": "migrate", "arguments": {"uri": "unix:/tmp/p4.sock"}}') ||
		why=$(printf '%s\n' "$out" | tail -n1)
	t=0
	while [ -z "$why" ]; do
		r=$(qmp p4s '{"execute": "query-migrate"}') || { why=$r; break; }
		st=$(jstr status "$r")
		case $st in
		completed) break ;;
		failed|cancelled) why="status $st: $(jstr error-desc "$r")"; break ;;
		esac
		if [ $t -ge $((P4_TIMEOUT * 5)) ]; then
			qmp p4s '{"execute": "migrate_cancel"}' >/dev/null
			why="not completed after ${P4_TIMEOUT} s (status $st): cancelled"
			break
		fi
		sleep 0.2
		t=$((t + 1))
	done
	if [ -z "$why" ] && [ "$(attr "$src" digest)" != "$(attr "$dst" digest)" ]; then
		why="digest of the destination differs from its source after migration"
	fi
	q10_stop p4s
	q10_stop p4d
	if [ -n "$why" ]; then
		say "!! $cfg: QEMU 10 migration failed: $why"
		for n in p4s p4d; do
			[ -s /tmp/$n.err ] && sed "s/^/!!   $n: /" /tmp/$n.err | head -n 20
		done
		return
	fi
	# "vfio": {"transferred": N}: the device's bytes, precopy and stop-copy
	rec "$cfg" down=$(($(jnum downtime "$r") * 1000000)) total=$(($(jnum total-time "$r") * 1000000)) \
		setup=$(($(jnum setup-time "$r") * 1000000)) mfB=$(jnum multifd-bytes "$r") \
		vfioB=$(printf '%s\n' "$r" | sed -n 's/.*"vfio": {"transferred": \([0-9]*\).*/\1/p')
}

if want P4 && ! have_qemu10; then
	say "!! P4: no QEMU 10 in this image (vm-run.sh could not stage it: see its message)"
elif want P4; then
	qs=$(mdev_new mtty_mig-1 mem_size=$MEM dirty_rate=$HOT)
	qd=$(mdev_new mtty_mig-1 mem_size=$MEM)
	say "== P4: QEMU $("$Q10_BIN" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p') vs vfio-mig, 1 device of $(mib $MEM) MiB, $N channels ($REPS rounds)"
	SRCS=$qs
	# warm-up: the nested QEMU's first run (page cache, TCG translation)
	p4_qemu p4.warm $P4DT_MAX "$qs" "$qd"
	for i in $(seq "$REPS"); do
		set_attr "$qs" dirty_rate $HOT
		p4_qemu p4.a.q $P4DT_MAX "$qs" "$qd"
		migrate p4.a.v -c $N --downtime-limit 3600000 "$qs=$qd"
		set_attr "$qs" dirty_rate $P4LOW
		p4_qemu p4.b.q 300 "$qs" "$qd"
		migrate p4.b.v -c $N "$qs=$qd"
		say "   round $i done ($(ms $(( $(now_ns) - T0 ))) ms since start)"
	done
	set_attr "$qs" dirty_rate 0
fi
T1=$(now_ns)

# ---- report ------------------------------------------------------------------------
say
say "================================================================================"
say "mtty-mig bench: $(nproc) vCPUs TCG; medians of $REPS; device memory $(mib $MEM) MiB;"
say "modelled device rate $(mib $RATE) MiB/s save and resume; $N = N channels"
say "================================================================================"

say
say "A. Stop-copy throughput, 1 device.  xfer: SET STOP_COPY to the last byte read and"
say "   sent (engine: stopcopy_ns) or written (plain); e2e: to the destination RUNNING"
say "   (engine: downtime_ns; plain: total_ns).  Rates are medians of per-run rates."
printf '  %-28s %6s %8s %8s %8s %8s %8s %8s\n' "" "MiB" "xfer ms" "MiB/s" "e2e ms" "MiB/s" \
	"xfer/pl" "e2e/pl"
for tag in unl dev; do
	[ $tag = unl ] && lbl="unlimited" || lbl="device $(mib $RATE) MiB/s"
	pX=$(medq plain.$tag scB scns); pE=$(medq plain.$tag scB total)
	for cfg in plain.$tag 1d.1c.$tag 1d.Nc.$tag; do
		case $cfg in
		plain.*) name="plain copy, $lbl"; e2e=total ;;
		1d.1c.*) name="engine 1 ch, $lbl"; e2e=down ;;
		*) name="engine $N ch, $lbl"; e2e=down ;;
		esac
		x=$(medq $cfg scB scns); e=$(medq $cfg scB $e2e)
		printf '  %-28s %6s %8s %8s %8s %8s %8s %8s\n' "$name" "$(mib "$(med $cfg scB)")" \
			"$(ms "$(med $cfg scns)")" "$(mibps "$x" 1)" "$(ms "$(med $cfg $e2e)")" \
			"$(mibps "$e" 1)" "$(ratio "$x" "$pX")" "$(ratio "$e" "$pE")"
	done
done

say
say "B. Downtime: first source device stopping -> last destination device RUNNING."
say "   The stop-copy set (what the engine re-dirtied during the pass) varies between"
say "   runs: /MiB is the median of downtime per stop-copy MiB."
printf '  %-24s %7s %8s %7s %8s %9s %9s\n' "" "1ch MiB" "1ch ms" "${N}ch MiB" "${N}ch ms" \
	"1ch/${N}ch" "(/MiB)"
for tag in unl dev; do
	[ $tag = unl ] && lbl="unlimited" || lbl="$(mib $RATE) MiB/s"
	for d in 1d 4d; do
		d1c=$(med $d.1c.$tag down); dNc=$(med $d.Nc.$tag down)
		printf '  %-24s %7s %8s %7s %8s %9s %9s\n' "${d%d} dev, $lbl" \
			"$(mib "$(med $d.1c.$tag scB)")" "$(ms "$d1c")" \
			"$(mib "$(med $d.Nc.$tag scB)")" "$(ms "$dNc")" "$(ratio "$d1c" "$dNc")" \
			"$(ratio "$(medq $d.1c.$tag down scB)" "$(medq $d.Nc.$tag down scB)")"
	done
done
for tag in unl dev; do
	[ $tag = unl ] && lbl="unlimited" || lbl="$(mib $RATE) MiB/s"
	row "4 dev / 1 dev, $lbl:" \
		"downtime $(ratio "$(med 4d.Nc.$tag down)" "$(med 1d.Nc.$tag down)") (${N} ch, 4x the data), precopy time $(ratio "$(med 4d.Nc.$tag prens)" "$(med 1d.Nc.$tag prens)") ($(ms "$(med 4d.Nc.$tag prens)") vs $(ms "$(med 1d.Nc.$tag prens)") ms)"
done

say
say "C. Switchover-ack, destination initial_load_ms=$LOAD_MS"
printf '  %-30s %10s %10s %10s %10s %10s\n' "" "downtime" "ack wait" "precopy" "total" "off / on"
for sz in small big; do
	[ $sz = small ] && lbl="64 KiB device" || lbl="$(mib $MEM) MiB device"
	on=$(med ack.$sz.on down)
	for a in on off; do
		dt=$(med ack.$sz.$a down)
		r=; [ $a = off ] && r=$(ratio "$dt" "$on")
		printf '  %-30s %10s %10s %10s %10s %10s\n' "$lbl, ack $a" "$(ms "$dt")" \
			"$(ms "$(med ack.$sz.$a ack)")" "$(ms "$(med ack.$sz.$a prens)")" \
			"$(ms "$(med ack.$sz.$a total)")" "$r"
	done
done

say
say "D. Precopy convergence, 1 device of $(mib $CMEM) MiB, $N channels, default limits"
say "   (--downtime-limit 300, --max-iterations 30, switchover-ack on)"
printf '  %-7s %8s %5s %9s %9s %9s %9s %10s  %s\n' "dirty/s" "achieved" "iter" "precopyMiB" \
	"est MiB" "stopcMiB" "bw MiB/s" "downtime" "switched over by"
for r in $LEVELS; do
	cfg=conv.$r
	# achieved dirty rate: the engine's writes over the time it could write
	ach=$(calc "sprintf(\"%.0f\", $(med $cfg writes) / (($(med $cfg setup) + $(med $cfg prens)) / 1e9))")
	printf '  %-7s %8s %5s %9s %9s %9s %9s %10s  %s\n' "$r" "$ach" "$(med $cfg it)" \
		"$(mib "$(med $cfg preB)")" "$(mib "$(med $cfg est)")" "$(mib "$(med $cfg scB)")" \
		"$(mib "$(med $cfg bw)")" "$(ms "$(med $cfg down)")" "$(tally $cfg conv)"
done

say
say "E. TLS 1.3 (PSK) vs plain TCP, 1 device of $(mib $MEM) MiB, $N channels, loopback"
printf '  %-20s %8s %8s %8s %10s\n' "" "MiB" "xfer ms" "MiB/s" "downtime"
for c in plain tls; do
	printf '  %-20s %8s %8s %8s %10s\n' "$c" "$(mib "$(med tcp.$c scB)")" \
		"$(ms "$(med tcp.$c scns)")" "$(mibps "$(medq tcp.$c scB scns)" 1)" \
		"$(ms "$(med tcp.$c down)")"
done
row "TLS / plain:" "stop-copy throughput $(ratio "$(medq tcp.tls scB scns)" "$(medq tcp.plain scB scns)") (goal >= 0.80), downtime $(ratio "$(med tcp.tls down)" "$(med tcp.plain down)")"

say
say "P. Parallel precopy and multifd device state: 4 devices of $(mib $MEM) MiB and 1, device"
say "   rate $(mib $RATE) MiB/s, the whole memory re-dirtied during the one precopy pass"
printf '  %-40s %10s %10s %10s %10s\n' "" "precopy" "downtime" "stopcMiB" "preMiB"
for c in p.4d.off p.4d.on p.4d.ser p.1d.on p.1d.ser; do
	case $c in
	p.4d.off) lbl="4 dev, multifd off (serial, main ch)" ;;
	p.4d.on) lbl="4 dev, multifd $N ch (parallel)" ;;
	p.4d.ser) lbl="4 dev, $N ch, precopy serial on main" ;;
	p.1d.on) lbl="1 dev, multifd $N ch (parallel)" ;;
	*) lbl="1 dev, $N ch, precopy serial on main" ;;
	esac
	printf '  %-40s %10s %10s %10s %10s\n' "$lbl" "$(ms "$(med $c prens)")" \
		"$(ms "$(med $c down)")" "$(mib "$(med $c scB)")" "$(mib "$(med $c preB)")"
done
pX=$(medq plain.unl scB scns)
row "P1 stop-copy, engine / plain:" "1 ch $(ratio "$(medq 1d.1c.unl scB scns)" "$pX"), $N ch $(ratio "$(medq 1d.Nc.unl scB scns)" "$pX") (unlimited rate, from A; goal >= 0.90)"
# CPU per MiB moved: the whole vfio-mig process (both ends, precopy included,
# per byte of precopy + STOP_COPY) vs vfio-mig-copy (one read and one write).
cpuper() { calc "sprintf(\"%.1f\", $(medq "$1" cpu "$2") * 1048576)"; }
row "P1 CPU ms per MiB:" "plain $(cpuper plain.unl scB), engine 1 ch $(cpuper 1d.1c.unl mvB), $N ch $(cpuper 1d.Nc.unl mvB) (both ends in one process)"
row "P2 downtime, multifd on / off:" "$(ratio "$(med p.4d.on down)" "$(med p.4d.off down)") (goal <= 0.30, limit 0.25)"
row "P5 precopy, 4 devices / 1:" "parallel $(ratio "$(med p.4d.on prens)" "$(med p.1d.on prens)") (goal <= 1.2), serial $(ratio "$(med p.4d.ser prens)" "$(med p.1d.ser prens)")"

if want P4; then
	say
	say "P4. QEMU 10.0 vs vfio-mig: 1 device of $(mib $MEM) MiB, $N multifd channels, the same pair."
	say "   downtime: QEMU query-migrate \"downtime\" (source VM stopped -> the destination's"
	say "   SHUT on the return path, after its vm_start), vfio-mig downtime_ns.  stopcMiB: QEMU"
	say "   \"multifd-bytes\" (the device's STOP_COPY packets + the idle VM's RAM pages, ~0.2 MiB),"
	say "   vfio-mig stopcopy_bytes; /MiB: the ratio of downtime per stop-copy MiB.  devMiB: the"
	say "   device's bytes, precopy + stop-copy (QEMU \"vfio\" transferred)."
	printf '  %-28s %4s %8s %8s %6s %7s %7s %6s %7s %7s\n' "" "QEMU" "QEMU ms" "vfmig ms" \
		"ratio" "QstopcM" "VstopcM" "/MiB" "QdevMiB" "VdevMiB"
	# downtime per stop-copy MiB, vfio-mig / QEMU: only when both sets are >= 1 MiB
	p4_perMiB() {
		if [ "$(calc "($(med p4.$1.v scB) >= 1048576 && $(med p4.$1.q mfB) >= 1048576)")" = 1 ]; then
			ratio "$(medq p4.$1.v down scB)" "$(medq p4.$1.q down mfB)"
		else
			echo -
		fi
	}
	for c in a b; do
		[ $c = a ] && lbl="(a) dirty $HOT/s, one pass" || lbl="(b) dirty $P4LOW/s, defaults"
		qn=$(awk -v c=p4.$c.q '$1 == c' "$R" | wc -l)
		qd_=$(med p4.$c.q down); vd_=$(med p4.$c.v down)
		printf '  %-28s %4s %8s %8s %6s %7s %7s %6s %7s %7s\n' "$lbl" "$qn/$REPS" "$(ms "$qd_")" \
			"$(ms "$vd_")" "$(ratio "$vd_" "$qd_")" "$(mib "$(med p4.$c.q mfB)")" \
			"$(mib "$(med p4.$c.v scB)")" \
			"$(p4_perMiB $c)" \
			"$(mib "$(med p4.$c.q vfioB)")" \
			"$(mib "$(calc "$(med p4.$c.v preB) + $(med p4.$c.v scB)")")"
	done
	row "P4 downtime, vfio-mig / QEMU 10:" "(a) $(ratio "$(med p4.a.v down)" "$(med p4.a.q down)"), (b) $(ratio "$(med p4.b.v down)" "$(med p4.b.q down)") (goal <= 0.55); vfio-mig (b) switched over by $(tally p4.b.v conv)"
fi

say
say "bench: $(ms $((T1 - T0))) ms of VM time for the measurements"
if [ $fail -ne 0 ]; then
	say "bench: FAILED: at least one migration or copy failed (see the !! lines)"
	exit 1
fi
say "bench: done"
