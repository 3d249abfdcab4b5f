// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * multifd.c - source side of the STOP_COPY transfer: N channel sender
 * threads and one save thread per device (QEMU's migration-multifd.c shape).
 *
 * With --multifd off the devices are saved one after another in the
 * coordinator's thread, each read to its end before the next one stops, as
 * QEMU does without multifd device state transfer
 * (vfio_save_complete_precopy() called per device by
 * qemu_savevm_state_complete_precopy_iterable()): the compatibility
 * baseline.  With PRECOPY_MULTIFD each device's STOP_COPY chunks continue
 * the sequence of its precopy packets (first_idx).
 *
 * A save thread moves its device to STOP_COPY, reads its data_fd in
 * chunk-size pieces until end of stream, then reads the config region, and
 * hands each piece to vfmig_multifd_send().  That appends the caller's full
 * buffer to a FIFO queue and gives it an empty one from a pool (no copy), so
 * the device is read again at once, while its chunk waits for a channel.
 * Whenever a channel is idle it takes the oldest queued buffer (idle
 * channels are picked round-robin).  A device has at most one buffer in the
 * queue: a caller whose previous chunk is still queued waits for a channel,
 * which is the source's only backpressure and bounds its memory to
 * (channels + 2 * devices) * chunk.  The queue is what keeps a slow device's
 * reads going while faster devices keep every channel busy: with one buffer
 * per device, a save thread that waited for a channel did not read its
 * device meanwhile, and several devices on fewer channels serialised behind
 * each other.  With --multifd off there is one "channel": the main
 * connection.
 *
 * It sees no session: the connections, the devices and the error object
 * (struct vfmig_ctl) are handed to vfmig_multifd_start().  Every loop checks
 * the abort flag between chunks; a failed thread records its error with
 * vfmig_fail() (first error wins) and leaves aborting and joining to the
 * source.  A thread blocked in read() on a device is not interrupted (the
 * uAPI offers no way); a send gives up on the abort flag within 100 ms.
 *
 * Lock order: session.lock -> multifd.lock (only when the session wakes it);
 * multifd.lock -> conn.send_lock is never taken: channels send with
 * multifd.lock dropped.  multifd.lock protects every channel's pending flag
 * and job pointer, the queue, the pool, quit and the round-robin cursor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

struct vfmig_buf *vfmig_buf_new(uint32_t cap)
{
	struct vfmig_buf *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->data = malloc(cap);
	if (!b->data) {
		free(b);
		return NULL;
	}
	b->cap = cap;
	return b;
}

void vfmig_buf_free(struct vfmig_buf *b)
{
	if (!b)
		return;
	free(b->data);
	free(b);
}

/* Give queued buffers, oldest first, to idle channels (round-robin). */
static void dispatch_locked(struct vfmig_multifd *mf)
{
	bool moved = false;

	while (mf->q_len) {
		struct vfmig_mf_channel *ch = NULL;
		struct vfmig_buf *b;

		for (unsigned k = 0; k < mf->nch; k++) {
			unsigned i = (mf->next + k) % mf->nch;

			if (!mf->ch[i].pending) {
				ch = &mf->ch[i];
				mf->next = (i + 1) % mf->nch;
				break;
			}
		}
		if (!ch)
			break;
		b = mf->queue[mf->q_head];
		mf->q_head = (mf->q_head + 1) % mf->ndev;
		mf->q_len--;
		mf->queued[b->dev] = false;
		ch->job = b;
		ch->pending = true;
		pthread_cond_signal(&ch->cond);
		moved = true;
	}
	if (moved)
		pthread_cond_broadcast(&mf->ready);
}

static void channel_thread(void *arg, unsigned i)
{
	struct vfmig_multifd *mf = arg;
	struct vfmig_mf_channel *ch = &mf->ch[i];
	const char *where = ch->conn->id ? "multifd channel" : "main channel";
	char what[64];
	int ret;

	for (;;) {
		struct vfmig_buf *job;

		pthread_mutex_lock(&mf->lock);
		while (!ch->pending && !mf->quit && !vfmig_aborted(mf->ctl))
			pthread_cond_wait(&ch->cond, &mf->lock);
		if (vfmig_aborted(mf->ctl)) {
			pthread_mutex_unlock(&mf->lock);
			break;
		}
		if (!ch->pending) {
			/* quit with nothing queued (an idle channel means an empty queue). */
			pthread_mutex_unlock(&mf->lock);
			/* Nothing may follow CHANNEL_END, not even a PING. */
			ret = ch->send_end ? vfmig_send_frame_last(ch->conn, VFMIG_F_CHANNEL_END, 0,
								   0, 0, NULL, 0) :
					     0;
			if (ret) {
				snprintf(what, sizeof(what), "channel %u: send", ch->conn->id);
				vfmig_fail_send(mf->ctl, where, what, ret);
			}
			break;
		}
		job = ch->job;
		pthread_mutex_unlock(&mf->lock);

		ret = vfmig_send_frame(ch->conn, VFMIG_F_DEVICE_STATE, job->flags, job->dev,
				       job->idx, job->data, job->len);
		if (ret) {
			snprintf(what, sizeof(what), "channel %u: sending device %u chunk %u",
				 ch->conn->id, job->dev, job->idx);
			vfmig_fail_send(mf->ctl, where, what, ret);
			break;
		}
		pthread_mutex_lock(&mf->lock);
		mf->pool[mf->pool_len++] = job;
		ch->job = NULL;
		ch->pending = false;
		dispatch_locked(mf);
		pthread_mutex_unlock(&mf->lock);
	}
}

int vfmig_multifd_start(struct vfmig_multifd *mf, struct vfmig_ctl *ctl, struct vfmig_log *log,
			struct vfmig_conn **conns, unsigned nconn, bool send_end,
			struct vfmig_device **devs, unsigned ndev, uint32_t chunk,
			atomic_uint_fast64_t *data_bytes, atomic_uint_fast64_t *config_bytes)
{
	unsigned n = nconn;

	memset(mf, 0, sizeof(*mf));
	mf->ctl = ctl;
	mf->log = log;
	mf->devs = devs;
	mf->chunk = chunk;
	mf->data_bytes = data_bytes;
	mf->config_bytes = config_bytes;
	mf->ndev = ndev;
	mf->ch = calloc(n, sizeof(*mf->ch));
	mf->queue = calloc(ndev, sizeof(*mf->queue));
	mf->queued = calloc(ndev, sizeof(*mf->queued));
	mf->pool = calloc(n + ndev, sizeof(*mf->pool));
	mf->save_threads = calloc(ndev, sizeof(*mf->save_threads));
	mf->save_started = calloc(ndev, sizeof(*mf->save_started));
	if (!mf->ch || !mf->queue || !mf->queued || !mf->pool || !mf->save_threads ||
	    !mf->save_started || pthread_mutex_init(&mf->lock, NULL))
		goto nomem;
	if (vfmig_cond_init_mono(&mf->ready)) {
		pthread_mutex_destroy(&mf->lock);
		goto nomem;
	}
	mf->up = true;
	/* The save threads hold one buffer each; the pool backs the queue and the channels. */
	for (unsigned i = 0; i < n + ndev; i++) {
		mf->pool[i] = vfmig_buf_new(chunk);
		if (!mf->pool[i]) {
			vfmig_fail(ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "source", "out of memory");
			goto undo;
		}
		mf->pool_len = i + 1;
	}
	for (unsigned i = 0; i < n; i++) {
		struct vfmig_mf_channel *ch = &mf->ch[i];

		ch->mf = mf;
		ch->conn = conns[i];
		ch->send_end = send_end;
		if (vfmig_cond_init_mono(&ch->cond)) {
			vfmig_fail(ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "source", "out of memory");
			goto undo;
		}
		mf->nch = i + 1;
	}
	for (unsigned i = 0; i < n; i++) {
		if (vfmig_thread_start(ctl, &mf->ch[i].thread, channel_thread, mf, i))
			return -1;
		mf->ch[i].started = true;
	}
	return 0;
nomem:
	free(mf->ch);
	free(mf->queue);
	free(mf->queued);
	free(mf->pool);
	free(mf->save_threads);
	free(mf->save_started);
	memset(mf, 0, sizeof(*mf));
	vfmig_fail(ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "source", "out of memory");
	return -1;
undo:
	vfmig_multifd_destroy(mf);
	return -1;
}

int vfmig_multifd_send(struct vfmig_multifd *mf, struct vfmig_buf **bufp)
{
	unsigned dev = (*bufp)->dev;

	pthread_mutex_lock(&mf->lock);
	/* One queued buffer per device: the previous one must have gone to a channel. */
	while (mf->queued[dev] && !vfmig_aborted(mf->ctl))
		pthread_cond_wait(&mf->ready, &mf->lock);
	if (vfmig_aborted(mf->ctl)) {
		pthread_mutex_unlock(&mf->lock);
		return -ECANCELED;
	}
	/* Never empty: at most ndev - 1 other buffers are queued, nch sent, ndev - 1 held. */
	if (!mf->pool_len) {
		pthread_mutex_unlock(&mf->lock);
		vfmig_fail(mf->ctl, VFMIG_ERR_INTERNAL, EFAULT, (int)dev, "source",
			   "no free buffer");
		return -EFAULT;
	}
	mf->queue[(mf->q_head + mf->q_len) % mf->ndev] = *bufp;
	mf->q_len++;
	mf->queued[dev] = true;
	*bufp = mf->pool[--mf->pool_len];
	dispatch_locked(mf);
	pthread_mutex_unlock(&mf->lock);
	return 0;
}

static void save_thread(void *arg, unsigned i)
{
	struct vfmig_multifd *mf = arg;
	struct vfmig_device *d = mf->devs[i];
	struct vfmig_error e = { 0 };
	struct vfmig_buf *buf = NULL;
	uint32_t idx = mf->first_idx[i];
	ssize_t n;
	int ret;

	/*
	 * PRE_COPY_P2P -> STOP_COPY keeps the session; RUNNING_P2P -> STOP_COPY
	 * opens one.  A failing device is left as it is: the rollback decides,
	 * and says so when a device in ERROR must be reset (its state is lost).
	 */
	ret = vfmig_device_set_state_keep(d, VFMIG_STATE_STOP_COPY, &e);
	if (ret) {
		vfmig_fail(mf->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name, "%s", e.msg);
		return;
	}
	buf = vfmig_buf_new(mf->chunk);
	if (!buf) {
		vfmig_fail(mf->ctl, VFMIG_ERR_INTERNAL, ENOMEM, (int)i, d->name, "out of memory");
		return;
	}
	for (;;) {
		if (vfmig_aborted(mf->ctl))
			goto out;
		n = vfmig_device_read(d, buf->data, mf->chunk);
		if (n == 0)
			break; /* permanent end of stream */
		if (n < 0) {
			vfmig_fail(mf->ctl, VFMIG_ERR_DEVICE, (int)-n, (int)i, d->name,
				   "%s: read STOP_COPY data (chunk %u): %s", d->name, idx,
				   strerror((int)-n));
			goto out;
		}
		if (idx >= VFMIG_IDX_INVALID - 1) {
			vfmig_fail(mf->ctl, VFMIG_ERR_PROTOCOL, ERANGE, (int)i, d->name,
				   "%s: more than %u chunks", d->name, VFMIG_IDX_INVALID - 1);
			goto out;
		}
		buf->dev = i;
		buf->idx = idx++;
		buf->flags = 0;
		buf->len = (uint32_t)n;
		if (vfmig_multifd_send(mf, &buf))
			goto out;
		atomic_fetch_add(mf->data_bytes, (uint64_t)n);
	}
	/* Config state last, in the same sequence: the destination loads it after the data. */
	n = d->config_size ? d->ops->config_read(d->priv, buf->data, d->config_size) : 0;
	if (n < 0 || (size_t)n != d->config_size) {
		vfmig_fail(mf->ctl, VFMIG_ERR_DEVICE, n < 0 ? (int)-n : EIO, (int)i, d->name,
			   "%s: read config region: %s", d->name,
			   n < 0 ? strerror((int)-n) : "short read");
		goto out;
	}
	buf->dev = i;
	buf->idx = idx;
	buf->flags = VFMIG_FLAG_CONFIG;
	buf->len = (uint32_t)n;
	if (vfmig_multifd_send(mf, &buf))
		goto out;
	atomic_fetch_add(mf->config_bytes, (uint64_t)n);
	log_dbg(mf->log, "%s: STOP_COPY data sent (%u chunks)", d->name, idx - mf->first_idx[i]);
out:
	vfmig_buf_free(buf);
}

int vfmig_multifd_save_devices(struct vfmig_multifd *mf, bool serial)
{
	for (unsigned i = 0; serial && i < mf->ndev && !vfmig_aborted(mf->ctl); i++)
		save_thread(mf, i);
	for (unsigned i = 0; !serial && i < mf->ndev; i++) {
		if (vfmig_thread_start(mf->ctl, &mf->save_threads[i], save_thread, mf, i))
			return -1;
		mf->save_started[i] = true;
	}
	return 0;
}

void vfmig_multifd_join_saves(struct vfmig_multifd *mf)
{
	if (!mf->save_started)
		return;
	for (unsigned i = 0; i < mf->ndev; i++) {
		if (mf->save_started[i])
			pthread_join(mf->save_threads[i], NULL);
		mf->save_started[i] = false;
	}
}

void vfmig_multifd_wake(struct vfmig_multifd *mf)
{
	if (!mf->up)
		return;
	pthread_mutex_lock(&mf->lock);
	pthread_cond_broadcast(&mf->ready);
	for (unsigned i = 0; i < mf->nch; i++)
		pthread_cond_broadcast(&mf->ch[i].cond);
	pthread_mutex_unlock(&mf->lock);
}

void vfmig_multifd_finish(struct vfmig_multifd *mf)
{
	if (!mf->up)
		return;
	pthread_mutex_lock(&mf->lock);
	mf->quit = true;
	for (unsigned i = 0; i < mf->nch; i++)
		pthread_cond_broadcast(&mf->ch[i].cond);
	pthread_mutex_unlock(&mf->lock);
	for (unsigned i = 0; i < mf->nch; i++) {
		if (mf->ch[i].started)
			pthread_join(mf->ch[i].thread, NULL);
		mf->ch[i].started = false;
	}
}

/* The caller unpublished mf (under the lock its wake takes) before this. */
void vfmig_multifd_destroy(struct vfmig_multifd *mf)
{
	if (mf->up) {
		vfmig_multifd_join_saves(mf);
		vfmig_multifd_finish(mf);
		for (unsigned i = 0; i < mf->nch; i++) {
			vfmig_buf_free(mf->ch[i].job);
			pthread_cond_destroy(&mf->ch[i].cond);
		}
		for (unsigned k = 0; k < mf->q_len; k++)
			vfmig_buf_free(mf->queue[(mf->q_head + k) % mf->ndev]);
		for (unsigned k = 0; k < mf->pool_len; k++)
			vfmig_buf_free(mf->pool[k]);
		pthread_cond_destroy(&mf->ready);
		pthread_mutex_destroy(&mf->lock);
	}
	free(mf->ch);
	free(mf->queue);
	free(mf->queued);
	free(mf->pool);
	free(mf->save_threads);
	free(mf->save_started);
	memset(mf, 0, sizeof(*mf));
}
