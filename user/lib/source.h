/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * source.h - the source side of a session, shared by source.c (the
 * coordinator) and returnpath.c (the reader of the main channel).
 */
#ifndef VFMIG_SOURCE_H
#define VFMIG_SOURCE_H

#include "session.h"

struct vfmig_src {
	struct vfmig_precopy pc;
	pthread_cond_t pc_wcond; /* with session.lock: wakes the precopy workers */
	struct vfmig_multifd mf;
	bool mf_up; /* under session.lock: the wake may reach mf */
	pthread_t rp_thread;
	bool rp_started;
	/* Under session.lock, set by the return path. */
	bool ready, loaded, complete;
	/* Under session.lock, set by the coordinator: what the return path may accept. */
	bool switching;	 /* SWITCHOVER_START is being sent: LOADED may come */
	bool committing; /* COMMIT is being sent: COMPLETE may come */
	bool peer_error;
	uint32_t peer_error_flags;
	atomic_uint_fast64_t data_bytes, config_bytes;
	uint64_t t_down;
	/* Each device's state before the migration: RUNNING or STOP. */
	enum vfmig_state orig[VFMIG_MAX_DEVICES];
	enum vfmig_owner owner; /* when the session ended */
};

#endif /* VFMIG_SOURCE_H */
