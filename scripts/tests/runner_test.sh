#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Tests of the test runner itself: the TAP counter, the splat detector and
# check.sh's verdict must turn every kind of failure into a failed run.
# Prints TAP; exit 1 if any case failed.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
S=$TOP/scripts
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0 bad=0
ok() { n=$((n + 1)); echo "ok $n $1"; }
notok() { n=$((n + 1)); bad=$((bad + 1)); echo "not ok $n $1"; }
# expect NAME WANT_RC WANT_LINE FILE: tap-summary's exit code and last line
expect() {
	local out rc
	out=$("$S/tap-summary.sh" --quiet "$4" | tail -n1)
	rc=${PIPESTATUS[0]}
	"$S/tap-summary.sh" --quiet "$4" >/dev/null; rc=$?
	if [ "$rc" = "$2" ] && [ "$out" = "$3" ]; then ok "$1"
	else echo "# $1: got rc=$rc '$out', want rc=$2 '$3'"; notok "$1"; fi
}
prog() { # NAME NR PLAN RESULT-LINES... : one program in runner format
	local name=$1 plan=$3; shift 3 # $2, the number, is implied
	echo "# selftests: c: $name"; echo "# TAP version 13"; echo "# 1..$plan"
	for l in "$@"; do echo "# $l"; done
}

echo "TAP version 13"
echo "1..31"

{ echo "1..1"; prog p 1 3 "ok 1 a" "ok 2 b" "ok 3 c"; echo "ok 1 selftests: c: p"; } >"$tmp/pass"
expect tap_all_pass_counts_cases 0 "3 passed, 0 failed, 0 skipped" "$tmp/pass"

{ echo "1..1"; prog p 1 3 "ok 1 a" "not ok 2 b" "ok 3 c"; echo "not ok 1 selftests: c: p # exit=1"; } >"$tmp/fail"
expect tap_failing_case_fails_run 1 "2 passed, 1 failed, 0 skipped" "$tmp/fail"

{ echo "1..1"; prog p 1 4 "ok 1 a"; echo "not ok 1 selftests: c: p # exit=134"; } >"$tmp/crash"
expect tap_crash_counts_unrun_cases 1 "1 passed, 3 failed, 0 skipped" "$tmp/crash"

{ echo "1..1"; prog p 1 2 "ok 1 a" "ok 2 b # SKIP no device"; echo "ok 1 selftests: c: p"; } >"$tmp/skip"
expect tap_skip_is_not_a_pass 0 "1 passed, 0 failed, 1 skipped" "$tmp/skip"

{ echo "1..2"; prog p 1 1 "ok 1 a"; echo "ok 1 selftests: c: p"; } >"$tmp/missing"
expect tap_program_never_reported_fails 1 "1 passed, 1 failed, 0 skipped" "$tmp/missing"

{ echo "1..1"; prog p 1 2 "ok 1 a" "ok 2 b"; } >"$tmp/unterminated"
expect tap_unterminated_output_fails 1 "2 passed, 1 failed, 0 skipped" "$tmp/unterminated"

{ echo "1..1"; prog p 1 1 "ok 1 a"; echo "not ok 1 selftests: c: p # TIMEOUT 45 seconds"; } >"$tmp/timeout"
expect tap_program_timeout_fails 1 "1 passed, 1 failed, 0 skipped" "$tmp/timeout"

: >"$tmp/empty"
expect tap_no_tests_is_a_failure 1 "0 passed, 0 failed, 0 skipped" "$tmp/empty"

printf '[    1.0] ok\n[    2.0] WARNING: CPU: 0 PID: 1 at drivers/x.c:1 f+0x1/0x2\n' >"$tmp/warn"
if ! "$S/splat-check.sh" "$tmp/warn" >/dev/null; then ok splat_warn_detected; else notok splat_warn_detected; fi
printf '[    3.0] BUG: KFENCE: out-of-bounds read in f+0x1/0x2\n' >"$tmp/kfence"
if ! "$S/splat-check.sh" "$tmp/kfence" >/dev/null; then ok splat_kfence_detected; else notok splat_kfence_detected; fi
printf '[    1.0] mtty_mig: loaded\n[    2.0] mtty_mig 1234: resume: bad record checksum\n' >"$tmp/clean"
if "$S/splat-check.sh" "$tmp/clean" >/dev/null; then ok splat_clean_log_passes; else notok splat_clean_log_passes; fi
# the debug kernel's reports (first line of each, as the kernel prints it;
# lockdep's and ODEBUG's on their own, without a "WARNING:"/"BUG:" prefix)
debug_splats=(
	"lockdep_circular:possible circular locking dependency detected"
	"lockdep_recursive:possible recursive locking detected"
	"lockdep_inconsistent:inconsistent lock state"
	"lockdep_debug_locks:DEBUG_LOCKS_WARN_ON(1)"
	"rcu_lockdep:suspicious RCU usage."
	"kasan:BUG: KASAN: slab-out-of-bounds in f+0x1/0x2"
	"ubsan:UBSAN: shift-out-of-bounds in drivers/x.c:1:2"
	"atomic_sleep:BUG: sleeping function called from invalid context at kernel/x.c:1"
	"odebug:ODEBUG: free active (active state 0) object: 000000001 object type: timer_list"
	"hung_task:INFO: task insmod:77 blocked for more than 5 seconds."
	"kmemleak:unreferenced object 0xffff888005a4e400 (size 64):"
)
for d in "${debug_splats[@]}"; do
	printf '[    1.0] ok\n[    9.0] %s\n' "${d#*:}" >"$tmp/splat"
	if ! "$S/splat-check.sh" "$tmp/splat" >/dev/null; then ok "splat_${d%%:*}_detected"
	else notok "splat_${d%%:*}_detected"; fi
done

# check.sh end to end with a fake VM: a guest splat (vm-run exit 4) and a
# failing kselftest must both make `make check` fail, in either lane.
cat >"$tmp/fakevm" <<'EOS'
#!/bin/bash
out= kernel=debian
while [ $# -gt 0 ]; do
	case $1 in --out) out=$2; shift ;; --kernel) kernel=$2; shift ;; esac
	shift
done
mkdir -p "$out"
if [ "$kernel" = debug ]; then
	cat "${FAKE_RESULT_DEBUG:-$FAKE_RESULT}" >"$out/result.txt"
	exit "${FAKE_RC_DEBUG:-$FAKE_RC}"
fi
if [ "$kernel" = next ]; then
	cat "${FAKE_RESULT_NEXT:-$FAKE_RESULT}" >"$out/result.txt"
	exit "${FAKE_RC_NEXT:-$FAKE_RC}"
fi
cat "$FAKE_RESULT" >"$out/result.txt"
exit "$FAKE_RC"
EOS
chmod +x "$tmp/fakevm"
{ cat "$tmp/pass"; echo "MTTY-VM-DONE rc=0"; } >"$tmp/pass.res"
{ cat "$tmp/fail"; echo "MTTY-VM-DONE rc=0"; } >"$tmp/fail.res"
run_check() { # RESULT RC [check.sh args] -> exit of check.sh (host tests disabled by an empty tree)
	local res=$1 rc=$2; shift 2
	BUILD=$tmp/b TOP=$tmp/b VM_RUN=$tmp/fakevm FAKE_RESULT=$res FAKE_RC=$rc \
		"$S/check.sh" "$@" >"$tmp/check.out" 2>&1
}
mkdir -p "$tmp/b/scripts"; ln -sf "$S/tap-summary.sh" "$tmp/b/scripts/tap-summary.sh"
if run_check "$tmp/pass.res" 4; then notok check_fails_on_guest_splat; else ok check_fails_on_guest_splat; fi
if run_check "$tmp/fail.res" 0; then notok check_fails_on_failing_kselftest; else ok check_fails_on_failing_kselftest; fi
if FAKE_RC_DEBUG=4 run_check "$tmp/pass.res" 0; then notok check_fails_on_debug_lane_splat
else ok check_fails_on_debug_lane_splat; fi
if FAKE_RESULT_DEBUG=$tmp/fail.res run_check "$tmp/pass.res" 0; then notok check_fails_on_debug_lane_kselftest
else ok check_fails_on_debug_lane_kselftest; fi
if FAKE_RC_NEXT=4 run_check "$tmp/pass.res" 0; then notok check_fails_on_next_lane_splat
else ok check_fails_on_next_lane_splat; fi
if FAKE_RESULT_NEXT=$tmp/fail.res run_check "$tmp/pass.res" 0; then notok check_fails_on_next_lane_kselftest
else ok check_fails_on_next_lane_kselftest; fi
# every lane counted, the debug and next lanes' programs named apart
if run_check "$tmp/pass.res" 0 && [ "$(tail -n1 "$tmp/check.out")" = "9 passed, 0 failed, 0 skipped" ] &&
	grep -qx 'ok 1 selftests: c: p' "$tmp/b/check/results.tap" &&
	grep -qx 'ok 1 selftests: c-debug: p' "$tmp/b/check/results.tap" &&
	grep -qx 'ok 1 selftests: c-next: p' "$tmp/b/check/results.tap"; then ok check_counts_every_lane
else notok check_counts_every_lane; fi
if run_check "$tmp/pass.res" 0 --lane 'debian next' && [ "$(tail -n1 "$tmp/check.out")" = "6 passed, 0 failed, 0 skipped" ] &&
	! grep -q 'c-debug' "$tmp/b/check/results.tap"; then ok check_lane_list
else notok check_lane_list; fi
if run_check "$tmp/pass.res" 0 --lane debian && [ "$(tail -n1 "$tmp/check.out")" = "3 passed, 0 failed, 0 skipped" ] &&
	! grep -q 'c-debug' "$tmp/b/check/results.tap"; then ok check_lane_debian_only
else notok check_lane_debian_only; fi
[ $bad -eq 0 ]
