// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * load.c - destination load threads: one per device, started at
 * SWITCHOVER_START (so every precopy byte is already in the device), takes
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
 * Locks: session.lock for data_done / loads_done and the config barrier;
 * reorder.lock inside vfmig_reorder_pop/release.  Never both at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfmig_internal.h"

static void load_fail_pop(struct vfmig_session *s, unsigned i, int ret)
{
	char why[160];

	if (ret == -ECANCELED)
		return;
	vfmig_reorder_why(&s->ro, why, sizeof(why));
	vfmig_fail(s, ret == -ENOBUFS ? VFMIG_ERR_BUDGET : VFMIG_ERR_PROTOCOL, -ret, (int)i,
		   "reorder buffer", "%s", why);
}

static int load_config(struct vfmig_session *s, unsigned i, const struct vfmig_slot *sl)
{
	struct vfmig_device *d = s->devs[i];
	bool wait_all = s->options & VFMIG_OPT_LOAD_CONFIG_AFTER_ITER;
	int ret;

	pthread_mutex_lock(&s->lock);
	s->data_done++;
	pthread_cond_broadcast(&s->cond);
	while (wait_all && s->data_done < s->ndev && !vfmig_aborted(s))
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (vfmig_aborted(s))
		return -1;
	if (sl->len != d->config_size) {
		vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, (int)i, d->name,
			   "%s: config state of %u bytes, device has %u", d->name, sl->len,
			   d->config_size);
		return -1;
	}
	if (!sl->len)
		return 0;
	ret = d->ops->config_write(d->priv, sl->data, sl->len);
	if (ret) {
		vfmig_fail(s, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
			   "%s: write config region: %s", d->name, strerror(-ret));
		return -1;
	}
	atomic_fetch_add(&s->config_bytes, sl->len);
	return 0;
}

static void load_device(struct vfmig_session *s, unsigned i)
{
	struct vfmig_device *d = s->devs[i];
	uint64_t one = 1;

	for (;;) {
		struct vfmig_slot sl;
		uint32_t idx;
		bool last;
		int ret;

		ret = vfmig_reorder_pop(&s->ro, i, &sl, &idx);
		if (ret) {
			load_fail_pop(s, i, ret);
			break;
		}
		last = sl.flags & VFMIG_FLAG_CONFIG;
		if (last) {
			ret = load_config(s, i, &sl);
		} else if (vfmig_aborted(s)) {
			ret = -1;
		} else {
			ret = vfmig_device_write_all(d, sl.data, sl.len);
			if (ret)
				vfmig_fail(s, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
					   "%s: write STOP_COPY chunk %u: %s", d->name, idx,
					   strerror(-ret));
			else
				atomic_fetch_add(&s->stopcopy_bytes, sl.len);
		}
		free(sl.data);
		vfmig_reorder_release(&s->ro, i, sl.len);
		if (ret)
			break;
		if (last) {
			pthread_mutex_lock(&s->lock);
			s->loads_done++;
			pthread_mutex_unlock(&s->lock);
			log_dbg(&s->log, "%s: loaded", d->name);
			break;
		}
	}
	/* Wake the main loop: either everything is loaded or an error is recorded. */
	if (write(s->wakefd, &one, sizeof(one)) < 0) {
		/* eventfd counters do not overflow here; poll sees it readable anyway */
	}
}

int vfmig_load_start(struct vfmig_session *s)
{
	for (unsigned i = 0; i < s->ndev; i++) {
		if (vfmig_thread_start(s, &s->ds[i].load_thread, load_device, i))
			return -1;
		s->ds[i].load_started = true;
	}
	return 0;
}

void vfmig_load_join(struct vfmig_session *s)
{
	for (unsigned i = 0; i < s->ndev; i++) {
		if (s->ds[i].load_started)
			pthread_join(s->ds[i].load_thread, NULL);
		s->ds[i].load_started = false;
	}
}
