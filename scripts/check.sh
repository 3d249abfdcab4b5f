#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The body of `make check`: run the host-side tests, boot the VM and run the
# kselftests there, then count every test case once and print the closing
# line "N passed, N failed, N skipped". Exits non-zero on any failed case, a
# planned test that did not run, a guest that did not finish, or a kernel
# splat in the guest.
#
# usage: check.sh [--host-only] [--tests coll:prog,...]
set -uo pipefail

TOP=${TOP:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$TOP/build}
export TOP BUILD

host_only=0 tests=
while [ $# -gt 0 ]; do
	case $1 in
	--host-only) host_only=1 ;;
	--tests) tests=$2; shift ;;
	*) echo "check: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
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

# --- kselftests in the VM ---
if [ $host_only -eq 0 ]; then
	args=(--mode check --timeout "${VM_TIMEOUT:-1500}" --quiet)
	[ -n "$tests" ] && args+=(--tests "$tests")
	echo "check: booting the test VM"
	start=$(date +%s)
	"${VM_RUN:-$TOP/scripts/vm-run.sh}" "${args[@]}"
	vrc=$?
	echo "check: VM run took $(( $(date +%s) - start ))s"
	res=$BUILD/vm/check/result.txt
	grep -av '^MTTY-VM-DONE' "$res" >>"$tap" 2>/dev/null
	case $vrc in
	0) ;;
	3) printf '1..1\nnot ok 1 selftests: vm: guest # did not finish (crash, panic or timeout)\n' >>"$tap" ;;
	4) printf '1..1\nnot ok 1 selftests: vm: guest # kernel splat in dmesg\n' >>"$tap" ;;
	*) printf '1..1\nnot ok 1 selftests: vm: guest # exit=%s\n' "$vrc" >>"$tap" ;;
	esac
fi

"$TOP/scripts/tap-summary.sh" "$tap"
