// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fsm.c - the VFIO migration v2 state machine as data.
 *
 * Two independent encodings of the uAPI, checked against each other by
 * tests/fsm_test.c: the list of single arcs a driver implements (arcs[]) and
 * the kernel's next-hop table with its "skip unsupported states" loop
 * (vfio_mig_get_next_state() in drivers/vfio/vfio_main.c).  The engine uses
 * vfmig_fsm_next() to predict which data session a combination transition
 * opens, and the fake device uses it to walk transitions like the kernel.
 *
 * Locks: none (constant tables).
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "vfmig_internal.h"

#define S(x) VFMIG_STATE_##x
#define F_SC VFMIG_MIG_STOP_COPY
#define F_P2P VFMIG_MIG_P2P
#define F_PRE VFMIG_MIG_PRE_COPY

/* clang-format off */
static const char *const state_names[VFMIG_STATE_NR] = {
	[S(ERROR)] = "ERROR",
	[S(STOP)] = "STOP",
	[S(RUNNING)] = "RUNNING",
	[S(STOP_COPY)] = "STOP_COPY",
	[S(RESUMING)] = "RESUMING",
	[S(RUNNING_P2P)] = "RUNNING_P2P",
	[S(PRE_COPY)] = "PRE_COPY",
	[S(PRE_COPY_P2P)] = "PRE_COPY_P2P",
};
/* clang-format on */

/* Migration flags a state needs (ERROR is never a state one can be "in" legally). */
/* clang-format off */
static const uint64_t state_flags[VFMIG_STATE_NR] = {
	[S(ERROR)] = ~0ull,
	[S(STOP)] = F_SC,
	[S(RUNNING)] = F_SC,
	[S(STOP_COPY)] = F_SC,
	[S(RESUMING)] = F_SC,
	[S(RUNNING_P2P)] = F_SC | F_P2P,
	[S(PRE_COPY)] = F_SC | F_PRE,
	[S(PRE_COPY_P2P)] = F_SC | F_P2P | F_PRE,
};
/* clang-format on */

/*
 * Single arcs, as the uAPI comment lists them.  An arc with "unless" set
 * exists only when the device lacks that flag (it replaces a path through a
 * P2P state the device does not have).
 */
/* clang-format off */
static const struct {
	enum vfmig_state from, to;
	uint64_t unless;
} arcs[] = {
	{ S(STOP), S(RESUMING), 0 },
	{ S(RESUMING), S(STOP), 0 },
	{ S(STOP), S(STOP_COPY), 0 },
	{ S(STOP_COPY), S(STOP), 0 },
	{ S(RUNNING), S(RUNNING_P2P), 0 },
	{ S(RUNNING_P2P), S(RUNNING), 0 },
	{ S(RUNNING_P2P), S(STOP), 0 },
	{ S(STOP), S(RUNNING_P2P), 0 },
	{ S(RUNNING), S(PRE_COPY), 0 },
	{ S(PRE_COPY), S(RUNNING), 0 },
	{ S(PRE_COPY), S(PRE_COPY_P2P), 0 },
	{ S(PRE_COPY_P2P), S(PRE_COPY), 0 },
	{ S(PRE_COPY_P2P), S(RUNNING_P2P), 0 },
	{ S(PRE_COPY_P2P), S(STOP_COPY), 0 },
	{ S(RUNNING_P2P), S(PRE_COPY_P2P), 0 },
	/* Without P2P. */
	{ S(RUNNING), S(STOP), F_P2P },
	{ S(STOP), S(RUNNING), F_P2P },
	{ S(PRE_COPY), S(STOP_COPY), F_P2P },
};
/* clang-format on */

/* Next hop assuming every feature (kernel vfio_from_fsm_table). */
/* clang-format off */
static const uint8_t next_table[VFMIG_STATE_NR][VFMIG_STATE_NR] = {
	[S(STOP)] = {
		[S(STOP)] = S(STOP),
		[S(RUNNING)] = S(RUNNING_P2P),
		[S(PRE_COPY)] = S(RUNNING_P2P),
		[S(PRE_COPY_P2P)] = S(RUNNING_P2P),
		[S(STOP_COPY)] = S(STOP_COPY),
		[S(RESUMING)] = S(RESUMING),
		[S(RUNNING_P2P)] = S(RUNNING_P2P),
		[S(ERROR)] = S(ERROR),
	},
	[S(RUNNING)] = {
		[S(STOP)] = S(RUNNING_P2P),
		[S(RUNNING)] = S(RUNNING),
		[S(PRE_COPY)] = S(PRE_COPY),
		[S(PRE_COPY_P2P)] = S(RUNNING_P2P),
		[S(STOP_COPY)] = S(RUNNING_P2P),
		[S(RESUMING)] = S(RUNNING_P2P),
		[S(RUNNING_P2P)] = S(RUNNING_P2P),
		[S(ERROR)] = S(ERROR),
	},
	[S(PRE_COPY)] = {
		[S(STOP)] = S(RUNNING),
		[S(RUNNING)] = S(RUNNING),
		[S(PRE_COPY)] = S(PRE_COPY),
		[S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		[S(STOP_COPY)] = S(PRE_COPY_P2P),
		[S(RESUMING)] = S(RUNNING),
		[S(RUNNING_P2P)] = S(RUNNING),
		[S(ERROR)] = S(ERROR),
	},
	[S(PRE_COPY_P2P)] = {
		[S(STOP)] = S(RUNNING_P2P),
		[S(RUNNING)] = S(RUNNING_P2P),
		[S(PRE_COPY)] = S(PRE_COPY),
		[S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		[S(STOP_COPY)] = S(STOP_COPY),
		[S(RESUMING)] = S(RUNNING_P2P),
		[S(RUNNING_P2P)] = S(RUNNING_P2P),
		[S(ERROR)] = S(ERROR),
	},
	[S(STOP_COPY)] = {
		[S(STOP)] = S(STOP),
		[S(RUNNING)] = S(STOP),
		[S(PRE_COPY)] = S(ERROR),
		[S(PRE_COPY_P2P)] = S(ERROR),
		[S(STOP_COPY)] = S(STOP_COPY),
		[S(RESUMING)] = S(STOP),
		[S(RUNNING_P2P)] = S(STOP),
		[S(ERROR)] = S(ERROR),
	},
	[S(RESUMING)] = {
		[S(STOP)] = S(STOP),
		[S(RUNNING)] = S(STOP),
		[S(PRE_COPY)] = S(STOP),
		[S(PRE_COPY_P2P)] = S(STOP),
		[S(STOP_COPY)] = S(STOP),
		[S(RESUMING)] = S(RESUMING),
		[S(RUNNING_P2P)] = S(STOP),
		[S(ERROR)] = S(ERROR),
	},
	[S(RUNNING_P2P)] = {
		[S(STOP)] = S(STOP),
		[S(RUNNING)] = S(RUNNING),
		[S(PRE_COPY)] = S(RUNNING),
		[S(PRE_COPY_P2P)] = S(PRE_COPY_P2P),
		[S(STOP_COPY)] = S(STOP),
		[S(RESUMING)] = S(STOP),
		[S(RUNNING_P2P)] = S(RUNNING_P2P),
		[S(ERROR)] = S(ERROR),
	},
	[S(ERROR)] = {
		[S(STOP)] = S(ERROR),
		[S(RUNNING)] = S(ERROR),
		[S(PRE_COPY)] = S(ERROR),
		[S(PRE_COPY_P2P)] = S(ERROR),
		[S(STOP_COPY)] = S(ERROR),
		[S(RESUMING)] = S(ERROR),
		[S(RUNNING_P2P)] = S(ERROR),
		[S(ERROR)] = S(ERROR),
	},
};
/* clang-format on */

const char *vfmig_state_name(enum vfmig_state st)
{
	if ((unsigned)st >= VFMIG_STATE_NR)
		return "INVALID";
	return state_names[st];
}

int vfmig_state_parse(const char *s, enum vfmig_state *st)
{
	for (unsigned i = 0; i < VFMIG_STATE_NR; i++) {
		if (!strcasecmp(s, state_names[i])) {
			*st = i;
			return 0;
		}
	}
	return -EINVAL;
}

bool vfmig_state_supported(enum vfmig_state st, uint64_t mig_flags)
{
	/* ">=" on purpose: libvfio-user's ">" let index NR through. */
	if ((unsigned)st >= VFMIG_STATE_NR)
		return false;
	return (state_flags[st] & mig_flags) == state_flags[st];
}

bool vfmig_fsm_arc_valid(enum vfmig_state from, enum vfmig_state to, uint64_t mig_flags)
{
	if (!vfmig_state_supported(from, mig_flags) || !vfmig_state_supported(to, mig_flags))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(arcs); i++) {
		if (arcs[i].from == from && arcs[i].to == to)
			return !(arcs[i].unless & mig_flags);
	}
	return false;
}

int vfmig_fsm_next(enum vfmig_state cur, enum vfmig_state target, uint64_t mig_flags,
		   enum vfmig_state *next)
{
	enum vfmig_state n;

	if (!(mig_flags & F_SC) || !vfmig_state_supported(cur, mig_flags) ||
	    !vfmig_state_supported(target, mig_flags))
		return -EINVAL;
	n = next_table[cur][target];
	while (n != S(ERROR) && !vfmig_state_supported(n, mig_flags))
		n = next_table[n][target];
	if (n == S(ERROR))
		return -EINVAL;
	*next = n;
	return 0;
}
