// SPDX-License-Identifier: GPL-2.0-only
/*
 * The VFIO core's migration state machine, as data (see fsm.h).
 */
#include <errno.h>

#include "fsm.h"

/* vfio_mig_get_next_state(): next hop from [cur] towards [target], all features */
static const uint32_t next_hop[MT_FSM_NSTATES][MT_FSM_NSTATES] = {
	[STOP] = { [STOP] = STOP, [RUN] = RP2P, [SC] = SC, [RES] = RES,
		   [RP2P] = RP2P, [PC] = RP2P, [PCP2P] = RP2P, [ERR] = ERR },
	[RUN] = { [STOP] = RP2P, [RUN] = RUN, [SC] = RP2P, [RES] = RP2P,
		  [RP2P] = RP2P, [PC] = PC, [PCP2P] = RP2P, [ERR] = ERR },
	[SC] = { [STOP] = STOP, [RUN] = STOP, [SC] = SC, [RES] = STOP,
		 [RP2P] = STOP, [PC] = ERR, [PCP2P] = ERR, [ERR] = ERR },
	[RES] = { [STOP] = STOP, [RUN] = STOP, [SC] = STOP, [RES] = RES,
		  [RP2P] = STOP, [PC] = STOP, [PCP2P] = STOP, [ERR] = ERR },
	[RP2P] = { [STOP] = STOP, [RUN] = RUN, [SC] = STOP, [RES] = STOP,
		   [RP2P] = RP2P, [PC] = RUN, [PCP2P] = PCP2P, [ERR] = ERR },
	[PC] = { [STOP] = RUN, [RUN] = RUN, [SC] = PCP2P, [RES] = RUN,
		 [RP2P] = RUN, [PC] = PC, [PCP2P] = PCP2P, [ERR] = ERR },
	[PCP2P] = { [STOP] = RP2P, [RUN] = RP2P, [SC] = SC, [RES] = RP2P,
		    [RP2P] = RP2P, [PC] = PC, [PCP2P] = PCP2P, [ERR] = ERR },
	[ERR] = { ERR, ERR, ERR, ERR, ERR, ERR, ERR, ERR },
};

/* the migration flags a state needs (ERROR is never a valid target) */
static const uint64_t state_flags[MT_FSM_NSTATES] = {
	[STOP] = F_SC, [RUN] = F_SC, [SC] = F_SC, [RES] = F_SC,
	[RP2P] = F_SC | F_P2P, [PC] = F_SC | F_PC, [PCP2P] = F_SC | F_P2P | F_PC,
	[ERR] = ~0ULL,
};

uint32_t mt_fsm_next_state(uint32_t cur, uint32_t target)
{
	if (cur >= MT_FSM_NSTATES || target >= MT_FSM_NSTATES)
		return ERR;
	return next_hop[cur][target];
}

bool mt_fsm_supported(uint64_t flags, uint32_t state)
{
	return state < MT_FSM_NSTATES && state != ERR &&
	       (state_flags[state] & flags) == state_flags[state];
}

int mt_fsm_path(uint64_t flags, uint32_t from, uint32_t to, uint32_t path[MT_FSM_NSTATES])
{
	uint32_t cur = from;
	int n = 0;

	if (!mt_fsm_supported(flags, to) || !mt_fsm_supported(flags, from))
		return -EINVAL;
	while (cur != to) {
		uint32_t nxt = mt_fsm_next_state(cur, to);

		while (nxt != ERR && !mt_fsm_supported(flags, nxt))
			nxt = mt_fsm_next_state(nxt, to);
		if (nxt == ERR || n == MT_FSM_NSTATES)
			return -EINVAL;
		path[n++] = nxt;
		cur = nxt;
	}
	return n;
}
