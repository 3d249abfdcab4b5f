// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * load.c - destination load threads: one per device, started at
 * SWITCHOVER_START (so every precopy byte is already in the device), or with
 * PRECOPY_MULTIFD at READY (the device's sequence then starts with its
 * precopy packets, which it writes and acknowledges as they come), takes
 * the device's chunks from the reorder buffer strictly in idx order and
 * writes them to its data_fd (short writes looped over), then loads the
 * config state, which is always the last chunk of the sequence.  With
 * load-config-after-iter the config of every device waits until every
 * device's data is written (QEMU's ARM64 interlock, done locally here).
 *
 * The chunk is owned by the thread while it writes (the reorder buffer
 * dropped its lock), and its bytes stay counted against the budget until
 * vfmig_reorder_release().
 *
 * It sees no session: struct vfmig_loader holds the devices, the reorder
 * buffer, the error object and the eventfd that wakes the destination.
 *
 * Locks: loader.lock for data_done / loads_done and the config barrier;
 * reorder.lock inside vfmig_reorder_pop/release.  Never both at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfmig_internal.h"

int vfmig_loader_init(struct vfmig_loader *ld)
{
	if (pthread_mutex_init(&ld->lock, NULL))
		return -ENOMEM;
	if (vfmig_cond_init_mono(&ld->cond)) {
		pthread_mutex_destroy(&ld->lock);
		return -ENOMEM;
	}
	atomic_init(&ld->data_bytes, 0);
	atomic_init(&ld->config_bytes, 0);
	return 0;
}

void vfmig_loader_destroy(struct vfmig_loader *ld)
{
	pthread_cond_destroy(&ld->cond);
	pthread_mutex_destroy(&ld->lock);
}

static void load_fail_pop(struct vfmig_loader *ld, unsigned i, int ret)
{
	char why[160];

	if (ret == -ECANCELED)
		return;
	vfmig_reorder_why(ld->ro, why, sizeof(why));
	vfmig_fail(ld->ctl, ret == -ENOBUFS ? VFMIG_ERR_BUDGET : VFMIG_ERR_PROTOCOL, -ret, (int)i,
		   "reorder buffer", "%s", why);
}

static int load_config(struct vfmig_loader *ld, unsigned i, const struct vfmig_slot *sl)
{
	struct vfmig_device *d = ld->devs[i];
	int ret;

	pthread_mutex_lock(&ld->lock);
	ld->data_done++;
	pthread_cond_broadcast(&ld->cond);
	while (ld->config_after_iter && ld->data_done < ld->ndev && !vfmig_aborted(ld->ctl))
		pthread_cond_wait(&ld->cond, &ld->lock);
	pthread_mutex_unlock(&ld->lock);
	if (vfmig_aborted(ld->ctl))
		return -1;
	if (sl->len != d->config_size) {
		vfmig_fail(ld->ctl, VFMIG_ERR_PROTOCOL, EPROTO, (int)i, d->name,
			   "%s: config state of %u bytes, device has %u", d->name, sl->len,
			   d->config_size);
		return -1;
	}
	if (!sl->len)
		return 0;
	ret = d->ops->config_write(d->priv, sl->data, sl->len);
	if (ret) {
		vfmig_fail(ld->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
			   "%s: write config region: %s", d->name, strerror(-ret));
		return -1;
	}
	atomic_fetch_add(&ld->config_bytes, sl->len);
	return 0;
}

/*
 * A precopy packet (PRECOPY_MULTIFD): PRE_COPY bytes, written like any
 * chunk, or the INIT_SENT marker, acknowledged once every byte before it is
 * written.  Both only come before the device's first STOP_COPY chunk.
 */
static int load_precopy(struct vfmig_loader *ld, unsigned i, const struct vfmig_slot *sl,
			uint32_t idx, bool stopcopy_seen)
{
	struct vfmig_device *d = ld->devs[i];
	int ret;

	if (!ld->precopy_mf || stopcopy_seen) {
		vfmig_fail(ld->ctl, VFMIG_ERR_PROTOCOL, EPROTO, (int)i, "multifd channel",
			   "device %u: precopy packet idx %u %s", i, idx,
			   ld->precopy_mf ? "after its STOP_COPY data" : "without PRECOPY_MULTIFD");
		return -1;
	}
	if (sl->flags & VFMIG_FLAG_INIT_SENT)
		return vfmig_precopy_init_loaded(ld->pl, i, get_le32(sl->data), "multifd channel");
	ret = vfmig_device_write_all(d, sl->data, sl->len);
	if (ret) {
		vfmig_fail(ld->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
			   "%s: write precopy data (idx %u): %s", d->name, idx, strerror(-ret));
		return -1;
	}
	atomic_fetch_add(&ld->pl->precopy_bytes, sl->len);
	return 0;
}

static void load_device(void *arg, unsigned i)
{
	struct vfmig_loader *ld = arg;
	struct vfmig_device *d = ld->devs[i];
	bool stopcopy_seen = false;
	uint64_t one = 1;

	for (;;) {
		struct vfmig_slot sl;
		uint32_t idx;
		bool last;
		int ret;

		ret = vfmig_reorder_pop(ld->ro, i, &sl, &idx);
		if (ret) {
			load_fail_pop(ld, i, ret);
			break;
		}
		last = sl.flags & VFMIG_FLAG_CONFIG;
		if (last) {
			/*
			 * Release the config chunk (at most 4 KiB) before the barrier:
			 * a device waiting for the others must not look like one that
			 * makes progress, or a stuck buffer is never detected.
			 */
			vfmig_reorder_release(ld->ro, i, sl.len);
			ret = load_config(ld, i, &sl);
			vfmig_payload_free(sl.data, sl.len);
		} else if (vfmig_aborted(ld->ctl)) {
			ret = -1;
		} else if (sl.flags & (VFMIG_FLAG_PRECOPY | VFMIG_FLAG_INIT_SENT)) {
			ret = load_precopy(ld, i, &sl, idx, stopcopy_seen);
		} else {
			stopcopy_seen = true;
			ret = vfmig_device_write_all(d, sl.data, sl.len);
			if (ret)
				vfmig_fail(ld->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
					   "%s: write STOP_COPY chunk %u: %s", d->name, idx,
					   strerror(-ret));
			else
				atomic_fetch_add(&ld->data_bytes, sl.len);
		}
		if (!last) {
			vfmig_payload_free(sl.data, sl.len);
			vfmig_reorder_release(ld->ro, i, sl.len);
		}
		if (ret)
			break;
		if (last) {
			pthread_mutex_lock(&ld->lock);
			ld->loads_done++;
			pthread_mutex_unlock(&ld->lock);
			log_dbg(ld->log, "%s: loaded", d->name);
			break;
		}
	}
	/* Wake the destination: either everything is loaded or an error is recorded. */
	if (write(ld->wakefd, &one, sizeof(one)) < 0) {
		/* eventfd counters do not overflow here; poll sees it readable anyway */
	}
}

int vfmig_load_start(struct vfmig_loader *ld)
{
	for (unsigned i = 0; i < ld->ndev; i++) {
		if (vfmig_thread_start(ld->ctl, &ld->load_threads[i], load_device, ld, i))
			return -1;
		ld->load_started[i] = true;
	}
	return 0;
}

void vfmig_load_join(struct vfmig_loader *ld)
{
	for (unsigned i = 0; i < ld->ndev; i++) {
		if (ld->load_started[i])
			pthread_join(ld->load_threads[i], NULL);
		ld->load_started[i] = false;
	}
}

unsigned vfmig_loads_done(struct vfmig_loader *ld)
{
	unsigned n;

	pthread_mutex_lock(&ld->lock);
	n = ld->loads_done;
	pthread_mutex_unlock(&ld->lock);
	return n;
}
