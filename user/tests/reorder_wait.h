/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * reorder_wait.h - bounded waits on a reorder buffer's internals, for the
 * tests that check its wakeups (reorder_wake_test, review5_test): a join
 * deadline, and a poll until a load thread waited and producers block.
 */
#ifndef VFMIG_TEST_REORDER_WAIT_H
#define VFMIG_TEST_REORDER_WAIT_H

#include <sched.h>
#include <stdbool.h>
#include <time.h>

#include "vfmig_internal.h"

/* CLOCK_REALTIME now + @s seconds (pthread_timedjoin_np()). */
static inline struct timespec deadline_in(unsigned s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += s;
	return ts;
}

/*
 * Poll (at most @wait_s seconds) until device @dev's load thread waited @n
 * times (@dev < 0: any) and @blocked producers wait for room.
 */
static inline bool reorder_wait_for(struct vfmig_reorder *r, int dev, uint64_t n, unsigned blocked,
				    unsigned wait_s)
{
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		bool ok;

		pthread_mutex_lock(&r->lock);
		ok = (dev < 0 || r->dev[dev].waits >= n) && r->blocked >= blocked;
		pthread_mutex_unlock(&r->lock);
		if (ok)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > (time_t)wait_s)
			return false;
		sched_yield();
	}
}

#endif
