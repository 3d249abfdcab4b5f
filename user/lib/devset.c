// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * devset.c - the two-phase walks over a set of devices, and the one place
 * that decides whether a set of devices may run.
 *
 * P2P (include/uapi/linux/vfio.h, "RUNNING_P2P"): a device in a P2P state
 * still serves peer DMA but initiates none.  Stopping a set: every device
 * first to its P2P state, only then any device further (STOP_COPY), so no
 * device writes into a peer that already stopped.  Starting a set: every
 * stopped device first to RUNNING_P2P, only then any device to RUNNING, so no
 * device writes into a peer that is not ready yet.  QEMU does the same in
 * vfio_vmstate_change_prepare() / vfio_vmstate_change() (hw/vfio/migration.c).
 *
 * Ownership: exactly one side runs the device state at any instant
 * (Documentation/engine-design.rst).  vfmig_devset_start() is the only
 * function of the engine that moves a device to RUNNING_P2P or RUNNING after
 * a migration began, and it demands the reason that makes it safe:
 *   - source, VFMIG_GO_NOT_COMMITTED: COMMIT never wholly left, so the
 *     destination cannot have started (it starts only on a whole COMMIT);
 *   - source, VFMIG_GO_PEER_RESET: the destination said its devices are
 *     reset (it sends that only after every reset succeeded);
 *   - destination, VFMIG_GO_COMMIT_RECEIVED: the source gave the state away.
 * The source rolls back (a device in ERROR is reset: its state is gone and
 * the message says so); the destination never resets after COMMIT: a device
 * that fails is left where it is and reported, the others still start.
 *
 * Locks: none.  The caller owns the devices (no save or load thread runs).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vfmig_internal.h"

const char *vfmig_go_name(enum vfmig_go why)
{
	switch (why) {
	case VFMIG_GO_NOT_COMMITTED:
		return "COMMIT was not sent";
	case VFMIG_GO_PEER_RESET:
		return "the destination reset its devices";
	case VFMIG_GO_COMMIT_RECEIVED:
		return "COMMIT received";
	default:
		return "no proof";
	}
}

static bool is_running(enum vfmig_state st)
{
	return st == VFMIG_STATE_RUNNING || st == VFMIG_STATE_PRE_COPY;
}

int vfmig_devset_quiesce(struct vfmig_device **devs, unsigned n, struct vfmig_ctl *ctl)
{
	for (unsigned i = 0; i < n; i++) {
		struct vfmig_device *d = devs[i];
		struct vfmig_error e = { 0 };
		enum vfmig_state st, to;
		int ret;

		if (!(d->flags & VFMIG_MIG_P2P))
			continue;
		ret = vfmig_device_get_state(d, &st);
		if (ret) {
			vfmig_fail(ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
				   "%s: get state: %s", d->name, strerror(-ret));
			return -1;
		}
		if (!is_running(st))
			continue;
		to = st == VFMIG_STATE_PRE_COPY ? VFMIG_STATE_PRE_COPY_P2P :
						  VFMIG_STATE_RUNNING_P2P;
		/* No reset here: the rollback resets a device in ERROR and reports it. */
		ret = vfmig_device_set_state_keep(d, to, &e);
		if (ret) {
			vfmig_fail(ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name, "%s", e.msg);
			return -1;
		}
	}
	return 0;
}

static void note_add(char *note, size_t len, const char *fmt, const char *a, const char *b)
{
	size_t l;

	if (!note || !len)
		return;
	l = strlen(note);
	snprintf(note + l, len - l, fmt, a, b);
}

int vfmig_devset_start(struct vfmig_device **devs, unsigned n, enum vfmig_go why,
		       struct vfmig_log *log, char *note, size_t notelen)
{
	bool dst = why == VFMIG_GO_COMMIT_RECEIVED;
	bool failed[VFMIG_MAX_DEVICES] = { false };
	int nfail = 0;

	if (why != VFMIG_GO_NOT_COMMITTED && why != VFMIG_GO_PEER_RESET && !dst)
		return -EPERM;
	if (n > VFMIG_MAX_DEVICES)
		return -EINVAL;
	if (note && notelen)
		note[0] = '\0';
	log_dbg(log, "starting %u device(s): %s", n, vfmig_go_name(why));
	/* Phase 1: every stopped P2P device to RUNNING_P2P before any device runs. */
	for (unsigned i = 0; i < n; i++) {
		struct vfmig_device *d = devs[i];
		struct vfmig_error e = { 0 };
		enum vfmig_state st;

		if (vfmig_device_get_state(d, &st))
			st = VFMIG_STATE_ERROR;
		if (is_running(st) || st == VFMIG_STATE_RUNNING_P2P || st == VFMIG_STATE_ERROR ||
		    !(d->flags & VFMIG_MIG_P2P))
			continue;
		if (dst ? vfmig_device_set_state_keep(d, VFMIG_STATE_RUNNING_P2P, &e) :
			  vfmig_device_set_state(d, VFMIG_STATE_RUNNING_P2P, VFMIG_STATE_ERROR,
						 &e)) {
			failed[i] = true;
			nfail++;
			note_add(note, notelen, "; %s%s", e.msg, "");
		}
	}
	/* Phase 2. */
	for (unsigned i = 0; i < n; i++) {
		struct vfmig_device *d = devs[i];
		struct vfmig_error e = { 0 };
		enum vfmig_state st;

		if (failed[i])
			continue;
		if (vfmig_device_get_state(d, &st))
			st = VFMIG_STATE_ERROR;
		if (st == VFMIG_STATE_ERROR) {
			nfail++;
			if (dst) {
				note_add(note, notelen, "; %s is in ERROR%s", d->name,
					 " (left as it is)");
				continue;
			}
			/* Source: leaving ERROR needs a reset, which loses the state. */
			note_add(note, notelen, "; %s was in ERROR and has been reset%s", d->name,
				 vfmig_device_reset(d) ? " (the reset FAILED)" : "");
			continue;
		}
		if (st == VFMIG_STATE_RUNNING)
			continue;
		if (dst ? vfmig_device_set_state_keep(d, VFMIG_STATE_RUNNING, &e) :
			  vfmig_device_set_state(d, VFMIG_STATE_RUNNING, VFMIG_STATE_ERROR, &e)) {
			nfail++;
			note_add(note, notelen, "; %s%s", e.msg, "");
			continue;
		}
		log_info(log, "%s: %s", d->name, dst ? "RUNNING" : "rolled back to RUNNING");
	}
	return nfail;
}

int vfmig_devset_restore(struct vfmig_device **devs, unsigned n, const enum vfmig_state *orig,
			 enum vfmig_go why, struct vfmig_log *log, char *note, size_t len)
{
	struct vfmig_device *run[VFMIG_MAX_DEVICES];
	unsigned nrun = 0;
	int failed = 0;

	if (n > VFMIG_MAX_DEVICES)
		return -EINVAL;
	note[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		struct vfmig_device *d = devs[i];
		struct vfmig_error e = { 0 };
		enum vfmig_state st;
		size_t l = strlen(note);

		if (orig[i] == VFMIG_STATE_RUNNING) {
			run[nrun++] = d;
			continue;
		}
		if (vfmig_device_get_state(d, &st) || st == VFMIG_STATE_ERROR) {
			snprintf(note + l, len - l, "; %s was in ERROR and has been reset%s",
				 d->name, vfmig_device_reset(d) ? " (the reset FAILED)" : "");
			failed = -1;
		} else if (st != VFMIG_STATE_STOP &&
			   vfmig_device_set_state_keep(d, VFMIG_STATE_STOP, &e)) {
			snprintf(note + l, len - l, "; %s", e.msg);
			failed = -1;
		}
	}
	if (nrun) {
		size_t l = strlen(note);
		int r = vfmig_devset_start(run, nrun, why, log, note + l, len - l);

		if (r)
			failed = r < 0 ? r : -1;
	}
	return failed;
}
