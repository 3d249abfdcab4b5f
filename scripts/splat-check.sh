#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Scan kernel logs for reports that must fail a test run even when every test
# passed: WARN, BUG, Oops, panics, KFENCE and SLUB debug reports, lockups.
# Prints the offending lines; exit 1 if any, 0 if the logs are clean.
#
# usage: splat-check.sh LOG...
set -uo pipefail
re='WARNING:|BUG:|BUG |Oops|KFENCE:|general protection fault|Kernel panic|kernel BUG|'
re+='INFO: task .* blocked|soft lockup|hard LOCKUP|RCU stall|Call Trace:|'
re+='Redzone|Poison overwritten|Object corrupt|Freepointer corrupt|slab_out_of_bounds|'
re+='list_add corruption|list_del corruption|UBSAN:|refcount_t:'
out=$(grep -aEh "$re" "$@" 2>/dev/null | head -40)
[ -z "$out" ] && exit 0
printf '%s\n' "$out"
exit 1
