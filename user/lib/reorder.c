// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * reorder.c - the destination's reorder buffer.
 *
 * STOP_COPY chunks of one device arrive on several multifd channels in any
 * order; the device needs them in idx order.  Each device has a ring of
 * `window` slots indexed by idx % window, holding chunks from next_idx (the
 * one its load thread needs) onward.  The last chunk of a device carries the
 * CONFIG flag; its idx closes the device's sequence.
 *
 * A packet is admitted from its header, before its payload is allocated
 * (vfmig_reorder_reserve, called by vfmig_conn_recv() through
 * vfmig_reorder_admit): the budget bounds the memory a destination holds,
 * not only what it has queued, whatever the number of channels.
 *
 * Bounds (nothing here is sized by a value read from the wire):
 *   - bytes admitted (reserved, queued or being written) <= budget
 *     (--max-queued-bytes), except that the chunk a device needs next is
 *     admitted once the device's previous chunk is written, so the true
 *     maximum is budget + ndevices * max_chunk;
 *   - idx must fall inside [next_idx, next_idx + window);
 *   - a producer whose chunk does not fit waits (backpressure).
 * If every producer waits and no load thread can make progress (no device has
 * its next chunk present or being written) the buffer is stuck: the skew
 * between channels is larger than the budget.  That is a clean failure,
 * -ENOBUFS with an explanation, never a hang or an unbounded allocation.
 *
 * Errors are sticky: once failed, every push/pop returns the error.
 *
 * Wakeups: producers wait on reorder.room, broadcast (when one waits) by
 * every change that may admit or refuse them, as before (fill, pop,
 * release, unreserve, a producer leaving: the epoch); each device's load
 * thread waits on its own cond, woken only when the chunk it needs next is
 * filled, on failure/abort, or when the last producer leaves.
 *
 * The budget is also the room of the payload pool (frame.c): buffers freed
 * while a reorder buffer lives are kept for reuse, within it.
 *
 * Locks: reorder.lock protects everything here; it is a leaf.  Chunks are
 * copied to and from the device with the lock dropped (pop hands ownership
 * of the buffer to the load thread).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

int vfmig_reorder_init(struct vfmig_reorder *r, unsigned ndev, unsigned producers, uint64_t budget,
		       uint32_t window)
{
	unsigned conds = 0;
	int ret;

	memset(r, 0, sizeof(*r));
	if (!ndev || ndev > VFMIG_MAX_DEVICES || !window || !budget)
		return -EINVAL;
	r->dev = calloc(ndev, sizeof(*r->dev));
	if (!r->dev)
		return -ENOMEM;
	for (unsigned i = 0; i < ndev; i++) {
		r->dev[i].ring = calloc(window, sizeof(*r->dev[i].ring));
		r->dev[i].last_idx = VFMIG_IDX_INVALID;
		if (!r->dev[i].ring) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	for (; conds < ndev; conds++) {
		ret = -pthread_cond_init(&r->dev[conds].cond, NULL);
		if (ret)
			goto fail;
	}
	ret = -pthread_mutex_init(&r->lock, NULL);
	if (ret)
		goto fail;
	ret = -pthread_cond_init(&r->room, NULL);
	if (ret) {
		pthread_mutex_destroy(&r->lock);
		goto fail;
	}
	r->ndev = ndev;
	r->window = window;
	r->budget = budget;
	r->producers = producers;
	/* Payload buffers freed while the budget lives may be kept for reuse, within it. */
	vfmig_payload_pool_grow(budget);
	return 0;
fail:
	for (unsigned i = 0; i < conds; i++)
		pthread_cond_destroy(&r->dev[i].cond);
	for (unsigned i = 0; i < ndev; i++)
		free(r->dev[i].ring);
	free(r->dev);
	r->dev = NULL;
	return ret;
}

void vfmig_reorder_destroy(struct vfmig_reorder *r)
{
	if (!r->dev)
		return;
	for (unsigned i = 0; i < r->ndev; i++) {
		for (uint32_t j = 0; j < r->window; j++)
			vfmig_payload_free(r->dev[i].ring[j].data, r->dev[i].ring[j].len);
		free(r->dev[i].ring);
		pthread_cond_destroy(&r->dev[i].cond);
	}
	free(r->dev);
	r->dev = NULL;
	pthread_cond_destroy(&r->room);
	pthread_mutex_destroy(&r->lock);
	vfmig_payload_pool_shrink(r->budget); /* the session's pooled buffers go */
}

/* Every load thread looks again (failure, abort, no producer left). */
static void wake_loaders_locked(struct vfmig_reorder *r)
{
	for (unsigned i = 0; i < r->ndev; i++)
		pthread_cond_broadcast(&r->dev[i].cond);
}

static void fail_locked(struct vfmig_reorder *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail_locked(struct vfmig_reorder *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->failed)
		return;
	r->failed = err;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	pthread_cond_broadcast(&r->room);
	wake_loaders_locked(r);
}

/*
 * Something changed that may let a waiting producer in or refuse it (a fill
 * turns its idx into a duplicate): they must all look again.  Load threads
 * are not woken here: each only for its own next chunk.
 */
static void progress_locked(struct vfmig_reorder *r)
{
	r->epoch++;
	r->stalled = 0;
	if (r->blocked)
		pthread_cond_broadcast(&r->room);
}

/*
 * No producer can add and no load thread can take: nothing will ever change.
 * Only producers that re-checked after the last change count as stalled, so a
 * producer woken by a release but not yet running never looks stuck.
 */
static bool stuck_locked(struct vfmig_reorder *r)
{
	if (!r->stalled || r->stalled < r->producers)
		return false;
	for (unsigned i = 0; i < r->ndev; i++) {
		struct vfmig_reorder_dev *d = &r->dev[i];

		if (d->writing)
			return false; /* its release will let a producer in */
		if (!d->complete && (d->ring[d->next_idx % r->window].present ||
				     d->ring[d->next_idx % r->window].reserved))
			return false;
	}
	return true;
}

static void fail_stuck_locked(struct vfmig_reorder *r)
{
	fail_locked(r, -ENOBUFS,
		    "reorder buffer full (%llu of %llu bytes queued) and every channel waits for a "
		    "chunk still behind it: raise --max-queued-bytes or use fewer channels",
		    (unsigned long long)r->queued, (unsigned long long)r->budget);
}

int vfmig_reorder_reserve(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint32_t flags,
			  uint32_t len, char *why, size_t whylen)
{
	struct vfmig_reorder_dev *d;
	struct vfmig_slot *slot;
	int ret = 0;

	why[0] = '\0';
	pthread_mutex_lock(&r->lock);
	if (r->failed) {
		ret = r->failed;
		snprintf(why, whylen, "%s", r->why);
		goto out;
	}
	if (dev >= r->ndev) {
		ret = -ENODEV;
		snprintf(why, whylen, "chunk for unknown device %u", dev);
		goto out;
	}
	d = &r->dev[dev];
	if (idx == VFMIG_IDX_INVALID) {
		ret = -ERANGE;
		snprintf(why, whylen, "device %u: invalid idx %u", dev, idx);
		goto out;
	}
	if (idx < d->next_idx) {
		ret = -EEXIST;
		snprintf(why, whylen, "device %u: duplicate idx %u (already loaded)", dev, idx);
		goto out;
	}
	if (d->last_idx != VFMIG_IDX_INVALID && idx > d->last_idx) {
		ret = -ERANGE;
		snprintf(why, whylen, "device %u: idx %u after the config chunk (idx %u)", dev, idx,
			 d->last_idx);
		goto out;
	}
	if (flags & VFMIG_FLAG_CONFIG) {
		if (d->last_idx != VFMIG_IDX_INVALID) {
			ret = -EPROTO;
			snprintf(why, whylen, "device %u: second config chunk (idx %u, first %u)",
				 dev, idx, d->last_idx);
			goto out;
		}
		if (idx < d->max_seen) {
			ret = -ERANGE;
			snprintf(why, whylen, "device %u: config chunk idx %u before data idx %u",
				 dev, idx, d->max_seen - 1);
			goto out;
		}
	}
	for (uint64_t counted = UINT64_MAX;;) {
		bool in_window = idx - d->next_idx < r->window;

		if (r->failed) {
			ret = r->failed;
			snprintf(why, whylen, "%s", r->why);
			goto out;
		}
		if (in_window &&
		    (d->ring[idx % r->window].present || d->ring[idx % r->window].reserved)) {
			ret = -EEXIST;
			snprintf(why, whylen, "device %u: duplicate idx %u", dev, idx);
			goto out;
		}
		/*
		 * The chunk a device needs next gets in over the budget (it unblocks
		 * everyone), but only once its load thread released the previous one:
		 * at most one chunk per device beyond the budget.
		 */
		if (in_window &&
		    ((idx == d->next_idx && !d->writing) || r->queued + len <= r->budget))
			break;
		if (counted != r->epoch) {
			counted = r->epoch;
			r->stalled++;
		}
		if (stuck_locked(r)) {
			fail_stuck_locked(r);
			continue;
		}
		r->blocked++;
		pthread_cond_wait(&r->room, &r->lock);
		r->blocked--;
	}
	slot = &d->ring[idx % r->window];
	slot->reserved = true;
	slot->flags = flags;
	slot->len = len;
	slot->data = NULL;
	r->queued += len;
	r->peak = MAX(r->peak, r->queued);
	/* A second CONFIG or a later idx is refused from now on, even before the payload. */
	if (flags & VFMIG_FLAG_CONFIG)
		d->last_idx = idx;
	if (idx + 1 > d->max_seen)
		d->max_seen = idx + 1;
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void vfmig_reorder_fill(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint8_t *data)
{
	struct vfmig_reorder_dev *d = &r->dev[dev];
	struct vfmig_slot *slot = &d->ring[idx % r->window];

	pthread_mutex_lock(&r->lock);
	slot->reserved = false;
	slot->present = true;
	slot->data = data;
	progress_locked(r);
	/* Its load thread waits only for next_idx; later chunks it finds when it gets there. */
	if (idx == d->next_idx)
		pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&r->lock);
}

void vfmig_reorder_unreserve(struct vfmig_reorder *r, uint32_t dev, uint32_t idx)
{
	struct vfmig_slot *slot = &r->dev[dev].ring[idx % r->window];

	pthread_mutex_lock(&r->lock);
	if (slot->reserved) {
		r->queued -= slot->len;
		memset(slot, 0, sizeof(*slot));
		progress_locked(r);
	}
	pthread_mutex_unlock(&r->lock);
}

int vfmig_reorder_push(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint32_t flags,
		       uint8_t *data, uint32_t len, char *why, size_t whylen)
{
	int ret = vfmig_reorder_reserve(r, dev, idx, flags, len, why, whylen);

	if (!ret)
		vfmig_reorder_fill(r, dev, idx, data);
	return ret;
}

int vfmig_reorder_admit(void *arg, const struct vfmig_frame_hdr *h, char *why, size_t whylen)
{
	if (h->type != VFMIG_F_DEVICE_STATE)
		return 0;
	return vfmig_reorder_reserve(arg, h->device, h->idx, h->flags, h->length, why, whylen);
}

void vfmig_reorder_admit_release(void *arg, const struct vfmig_frame_hdr *h)
{
	if (h->type == VFMIG_F_DEVICE_STATE)
		vfmig_reorder_unreserve(arg, h->device, h->idx);
}

int vfmig_reorder_pop(struct vfmig_reorder *r, uint32_t dev, struct vfmig_slot *out, uint32_t *idx)
{
	struct vfmig_reorder_dev *d = &r->dev[dev];
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct vfmig_slot *slot = &d->ring[d->next_idx % r->window];

		if (r->failed) {
			ret = r->failed;
			break;
		}
		if (d->complete) {
			ret = -EINVAL;
			break;
		}
		if (slot->present) {
			*out = *slot;
			*idx = d->next_idx;
			memset(slot, 0, sizeof(*slot));
			d->next_idx++;
			d->writing = true;
			if (out->flags & VFMIG_FLAG_CONFIG)
				d->complete = true;
			/* The window moved: a producer may fit now. */
			progress_locked(r);
			break;
		}
		if (!r->producers) {
			fail_locked(r, -EPIPE, "all channels ended but device %u is missing idx %u",
				    dev, d->next_idx);
			continue;
		}
		if (stuck_locked(r)) {
			fail_stuck_locked(r);
			continue;
		}
		d->waits++;
		pthread_cond_wait(&d->cond, &r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void vfmig_reorder_release(struct vfmig_reorder *r, uint32_t dev, uint32_t len)
{
	pthread_mutex_lock(&r->lock);
	r->queued -= len;
	r->dev[dev].writing = false;
	progress_locked(r);
	pthread_mutex_unlock(&r->lock);
}

void vfmig_reorder_producer_exit(struct vfmig_reorder *r)
{
	pthread_mutex_lock(&r->lock);
	if (r->producers)
		r->producers--;
	progress_locked(r);
	/* A load thread still missing a chunk now fails (-EPIPE) instead of waiting. */
	if (!r->producers)
		wake_loaders_locked(r);
	pthread_mutex_unlock(&r->lock);
}

void vfmig_reorder_abort(struct vfmig_reorder *r)
{
	pthread_mutex_lock(&r->lock);
	fail_locked(r, -ECANCELED, "migration aborted");
	pthread_cond_broadcast(&r->room);
	wake_loaders_locked(r);
	pthread_mutex_unlock(&r->lock);
}

uint64_t vfmig_reorder_peak(struct vfmig_reorder *r)
{
	uint64_t p;

	pthread_mutex_lock(&r->lock);
	p = r->peak;
	pthread_mutex_unlock(&r->lock);
	return p;
}

const char *vfmig_reorder_why(struct vfmig_reorder *r, char *buf, size_t len)
{
	pthread_mutex_lock(&r->lock);
	snprintf(buf, len, "%s", r->why);
	pthread_mutex_unlock(&r->lock);
	return buf;
}
