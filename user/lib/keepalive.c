// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * keepalive.c - liveness: one thread per session sends a PING on every
 * connection that sent nothing for a while, so that the peer's receive
 * timeout (--timeout) fires only when this side, or the path, is dead: in
 * every phase, in both directions, on the main and on every multifd channel.
 *
 * The interval is a quarter of the timeout (at least 20 ms, at most 1 s).
 * A connection busy sending a frame is not pinged (vfmig_conn_ping() tries
 * its send lock), nor one that ended (CHANNEL_END sent, or closed).  A PING
 * that fails is not an error here: the receive side of that connection, or
 * the sender of the next frame, reports it.
 *
 * Locks: keepalive.lock protects stop and the connection list; it is a leaf
 * (vfmig_conn_ping() takes conn.send_lock with it dropped).
 */
#include <errno.h>
#include <string.h>

#include "vfmig_internal.h"

static void keepalive_thread(void *arg, unsigned unused)
{
	struct vfmig_keepalive *k = arg;

	(void)unused;
	pthread_mutex_lock(&k->lock);
	while (!k->stop) {
		uint64_t now = vfmig_now_ns();
		struct vfmig_conn *due[VFMIG_MAX_CHANNELS + 1];
		unsigned n = 0;

		for (unsigned i = 0; i < k->nconns; i++) {
			if (now - atomic_load(&k->conns[i]->last_tx_ns) >= k->interval_ns)
				due[n++] = k->conns[i];
		}
		pthread_mutex_unlock(&k->lock);
		for (unsigned i = 0; i < n; i++)
			vfmig_conn_ping(due[i]);
		pthread_mutex_lock(&k->lock);
		if (!k->stop)
			vfmig_cond_wait_until(&k->cond, &k->lock, now + k->interval_ns / 2);
	}
	pthread_mutex_unlock(&k->lock);
}

int vfmig_keepalive_start(struct vfmig_keepalive *k, struct vfmig_ctl *ctl, unsigned timeout_ms)
{
	uint64_t iv = (uint64_t)timeout_ms * 1000000ull / 4;

	k->interval_ns = MIN(MAX(iv, 20000000ull), 1000000000ull);
	k->stop = false;
	if (vfmig_thread_start(ctl, &k->thread, keepalive_thread, k, 0))
		return -1;
	k->started = true;
	return 0;
}

void vfmig_keepalive_add(struct vfmig_keepalive *k, struct vfmig_conn *c)
{
	pthread_mutex_lock(&k->lock);
	if (k->nconns < ARRAY_SIZE(k->conns))
		k->conns[k->nconns++] = c;
	pthread_mutex_unlock(&k->lock);
}

void vfmig_keepalive_stop(struct vfmig_keepalive *k)
{
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
	if (k->started)
		pthread_join(k->thread, NULL);
	k->started = false;
	pthread_mutex_lock(&k->lock);
	k->nconns = 0;
	pthread_mutex_unlock(&k->lock);
}
