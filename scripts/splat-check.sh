#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Scan kernel logs for reports that must fail a test run even when every test
# passed: WARN, BUG, Oops, panics, KFENCE and SLUB debug reports, lockups and
# stalls, and what only the debug kernel reports: lockdep, KASAN, UBSAN,
# sleeping in atomic context, debugobjects (ODEBUG), hung tasks and kmemleak
# (the guest appends kmemleak's report to its kernel log).
# Prints the offending lines; exit 1 if any, 0 if the logs are clean.
#
# usage: splat-check.sh LOG...
set -uo pipefail
# generic
re='WARNING:|BUG:|BUG |Oops|KFENCE:|general protection fault|Kernel panic|kernel BUG|'
re+='Call Trace:|list_add corruption|list_del corruption|refcount_t:|'
# SLUB debug
re+='Redzone|Poison overwritten|Object corrupt|Freepointer corrupt|slab_out_of_bounds|'
# lockups, stalls, hung tasks
re+='INFO: task .* blocked|soft lockup|hard LOCKUP|RCU stall|detected stalls? on CPU|'
re+='self-detected stall|BUG: workqueue lockup|'
# lockdep
re+='possible circular locking dependency|possible recursive locking|DEBUG_LOCKS_WARN_ON|'
re+='inconsistent lock state|suspicious RCU usage|possible irq lock inversion|'
re+='bad unlock balance|held lock freed|lock held when returning to user space|'
re+='BUG: MAX_LOCKDEP|'
# sanitizers and debug checks
re+='BUG: KASAN|UBSAN:|sleeping function called from invalid context|ODEBUG:|'
# kmemleak: the guest's end-of-run scan, or an automatic one
re+='unreferenced object|new suspected memory leaks'
out=$(grep -aEh "$re" "$@" 2>/dev/null | head -40)
[ -z "$out" ] && exit 0
printf '%s\n' "$out"
exit 1
