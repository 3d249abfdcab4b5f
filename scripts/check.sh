#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The body of `make check`: run the host-side tests, boot the VM and run the
# kselftests there, once per lane: Debian's 6.12 kernel, the debug 6.12 kernel
# (lockdep, KASAN, UBSAN, kmemleak, ...; `make debug`) and Linux 7.2 built
# from Debian sid (`make next`), then count every test
# case once and print the closing line "N passed, N failed, N skipped". Exits
# non-zero on any failed case, a planned test that did not run, a guest that
# did not finish, or a kernel splat in either guest.
#
# usage: check.sh [--host-only] [--tests coll:prog,...] [--lane 'LANE...'|all]
#                 [--append 'k=v ...']
# --append passes k=v to every guest's kernel command line (vm-run.sh
# --append): the guest's jobs see them as environment variables.
# In the TAP, the debug lane's programs are "selftests: COLL-debug: PROG",
# the next lane's "selftests: COLL-next: PROG".
# VM_TIMEOUT (default 1500) bounds the boot of the Debian and next lanes,
# VM_TIMEOUT_DEBUG (default 5400) the debug lane's; KSFT_TIMEOUT_DEBUG (default 3000) is the
# kselftest runner's per-program timeout in the debug lane (the settings
# file's 600 s, scaled for a kernel that runs the tests ~7x slower).
set -uo pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$TOP/build}
export TOP BUILD

host_only=0 tests='' lane=all extra=''
while [ $# -gt 0 ]; do
	case $1 in
	--host-only) host_only=1 ;;
	--tests) tests=$2; shift ;;
	--lane) lane=$2; shift ;;
	--append) extra="$extra $2"; shift ;;
	*) echo "check: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done
lanes=
for l in $lane; do
	case $l in
	all) lanes="debian debug next" ;;
	debian|debug|next) lanes="$lanes $l" ;;
	*) echo "check: bad lane '$l' (debian, debug, next or all)" >&2; exit 2 ;;
	esac
done

out=$BUILD/check
mkdir -p "$out"
tap=$out/results.tap
: >"$tap"

# --- host-side tests, reported in the kselftest runner's nested format ---
host=()
for t in "$TOP"/scripts/tests/*_test.sh "$BUILD"/user/tests/*_test "$BUILD"/user-asan/tests/*_test; do
	[ -x "$t" ] && host+=("$t")
done
echo "check: ${#host[@]} host test program(s)"
{
	echo "TAP version 13"
	echo "1..${#host[@]}"
	i=0
	for t in "${host[@]}"; do
		i=$((i + 1))
		name=${t#"$BUILD"/}; name=${name#"$TOP"/}
		echo "# selftests: host: $name"
		timeout -k 5 300 "$t" 2>&1 | sed 's/^/# /'
		rc=${PIPESTATUS[0]}
		case $rc in
		0) echo "ok $i selftests: host: $name" ;;
		4) echo "ok $i selftests: host: $name # SKIP" ;;
		124) echo "not ok $i selftests: host: $name # TIMEOUT 300 seconds" ;;
		*) echo "not ok $i selftests: host: $name # exit=$rc" ;;
		esac
	done
} >>"$tap"

# --- kselftests in the VM, one lane per kernel ---
# run_lane LANE: boot it, append its TAP (program names tagged with the lane)
run_lane() {
	local kernel=$1 suffix='' vmout args vrc start
	args=(--mode check --kernel "$kernel" --quiet)
	[ "$kernel" = debian ] || suffix=-$kernel
	if [ "$kernel" = debug ]; then
		args+=(--timeout "${VM_TIMEOUT_DEBUG:-5400}")
		case " $extra" in
		*" mttytimeout="*) ;;
		*) args+=(--append "mttytimeout=${KSFT_TIMEOUT_DEBUG:-3000}") ;;
		esac
	else
		args+=(--timeout "${VM_TIMEOUT:-1500}")
	fi
	vmout=$BUILD/vm/check$suffix
	args+=(--out "$vmout")
	[ -n "$tests" ] && args+=(--tests "$tests")
	[ -n "$extra" ] && args+=(--append "$extra")
	echo "check: booting the test VM ($kernel kernel)"
	start=$(date +%s)
	"${VM_RUN:-$TOP/scripts/vm-run.sh}" "${args[@]}"
	vrc=$?
	echo "check: $kernel lane: VM run took $(( $(date +%s) - start ))s"
	{
		grep -av '^MTTY-VM-DONE' "$vmout/result.txt" 2>/dev/null
		case $vrc in
		0) ;;
		3) printf '1..1\nnot ok 1 selftests: vm: guest # did not finish (crash, panic or timeout)\n' ;;
		4) printf '1..1\nnot ok 1 selftests: vm: guest # kernel splat in dmesg\n' ;;
		*) printf '1..1\nnot ok 1 selftests: vm: guest # exit=%s\n' "$vrc" ;;
		esac
	} | sed -E "s/^(# |(not )?ok [0-9]+ )selftests: ([^ :]+): /\1selftests: \3$suffix: /" >"$out/$kernel.tap"
	cat "$out/$kernel.tap" >>"$tap"
	echo "check: $kernel lane: $("$TOP/scripts/tap-summary.sh" --quiet "$out/$kernel.tap")"
}
if [ $host_only -eq 0 ]; then
	for l in $lanes; do
		run_lane "$l"
	done
fi

"$TOP/scripts/tap-summary.sh" "$tap"
