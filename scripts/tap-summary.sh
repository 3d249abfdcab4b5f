#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Count test cases in kselftest-runner style TAP and print the closing line
# "N passed, N failed, N skipped". Exit 0 only when nothing failed.
#
# usage: tap-summary.sh [--quiet] FILE...
#
# Input is what run_kselftest.sh prints: one top-level result per program
# ("ok 1 selftests: coll: prog"), each preceded by that program's own TAP
# nested under one "# " prefix. A test case is a nested result line. A program
# whose plan ("# 1..N") promises more cases than it reported has the missing
# ones counted as failed (they did not run); a program that reports "not ok"
# without any failing case (crash, timeout, bad exit) counts one failure; a
# program without nested TAP counts as one case. "# SKIP" and "# XFAIL" are
# skips: a skip never counts as a pass.
set -uo pipefail

quiet=0
[ "${1:-}" = --quiet ] && { quiet=1; shift; }
[ $# -gt 0 ] || { echo "usage: tap-summary.sh [--quiet] FILE..." >&2; exit 2; }

awk -v quiet="$quiet" '
function reset_prog() { plan = -1; ncases = 0; nfail_case = 0; npend = 0 }
function report(kind, name, why) {
	if (!quiet) printf "%s: %s%s\n", kind, name, (why != "" ? " (" why ")" : "")
}
# a case is reported once its program is known (the program line comes last)
function pend(kind, name, why) { pk[npend] = kind; pn[npend] = name; pw[npend] = why; npend++ }
function flush_pend(prog,    i) {
	for (i = 0; i < npend; i++) report(pk[i], pn[i] " [" prog "]", pw[i])
	npend = 0
}
function flush_prog(ok, name,    missing) {
	flush_pend(name)
	if (ncases == 0) {
		# no nested TAP: the program itself is the case
		if (ok == "skip") { skipped++; report("SKIP", name, skipwhy) }
		else if (ok == "ok") passed++
		else { failed++; report("FAIL", name, "no test case output") }
	} else {
		if (plan > ncases) {
			missing = plan - ncases
			failed += missing
			report("FAIL", name, missing " planned test(s) did not run")
		}
		if (ok == "notok" && nfail_case == 0 && plan <= ncases) {
			failed++
			report("FAIL", name, "program failed: " why)
		}
	}
	reset_prog()
}
BEGIN { passed = failed = skipped = tplan = nprogs = 0; reset_prog() }
{
	sub(/\r$/, "")
	line = $0
}
# top-level plan: programs the runner promised to run
line ~ /^1\.\.[0-9]+/ { tplan += substr(line, 4) + 0; next }
# nested plan of the current program
line ~ /^# 1\.\.[0-9]+/ { plan = substr(line, 6) + 0; next }
# nested case result
line ~ /^# (not )?ok [0-9]+/ {
	s = substr(line, 3)
	ncases++
	if (s ~ /# *(SKIP|XFAIL)/) {
		skipped++
		r = s; sub(/.*# */, "", r)
		n = s; sub(/^(not )?ok [0-9]+ */, "", n); sub(/ *#.*/, "", n)
		pend("SKIP", n, r)
	} else if (s ~ /^not ok/) {
		failed++; nfail_case++
		n = s; sub(/^not ok [0-9]+ */, "", n)
		pend("FAIL", n, "")
	} else passed++
	next
}
# top-level program result
line ~ /^(not )?ok [0-9]+ / {
	n = line; sub(/^(not )?ok [0-9]+ */, "", n)
	why = ""; skipwhy = ""
	if (n ~ /#/) { why = n; sub(/.*# */, "", why); skipwhy = why; sub(/ *#.*/, "", n) }
	if (line ~ /# *SKIP/) st = "skip"
	else if (line ~ /^not ok/) st = "notok"
	else st = "ok"
	flush_prog(st, n)
	nprogs++
	next
}
END {
	if (ncases > 0 || plan > 0) {
		# cases after the last program line: the runner never finished
		flush_pend("(unterminated program)")
		failed++
		report("FAIL", "(unterminated program)", "output ended before its result line")
		nprogs++
	}
	if (tplan > nprogs) {
		failed += tplan - nprogs
		report("FAIL", "(runner)", (tplan - nprogs) " planned program(s) never reported")
	}
	printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped
	exit (failed > 0 || passed == 0) ? 1 : 0
}
' "$@"
