// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * precopy.c - PRE_COPY iterations (source) and their loading (destination).
 *
 * Source, each iteration: for every device in PRE_COPY ask
 * VFIO_MIG_GET_PRECOPY_INFO, read up to initial_bytes + dirty_bytes in
 * chunks (read() -ENOMSG, or 0 from drivers like mtty, means "nothing now")
 * and send them on the main channel.  When a device's initial_bytes reach 0
 * it sends INIT_DATA_SENT; with switchover-ack the destination answers
 * SWITCHOVER_ACK once those bytes are written to its device, and the source
 * never switches over before every ack.
 *
 * Convergence: switch over when the estimated STOP_COPY time (the sum of
 * VFIO_DEVICE_FEATURE_MIG_DATA_SIZE over the bandwidth measured during
 * precopy) is under --downtime-limit, or after --max-iterations; in both
 * cases only once every initial byte is sent and acknowledged.  An unknown
 * data size counts as 100 GiB, as QEMU does, so the limit is never violated
 * by a device that cannot estimate.
 *
 * An iteration that moved nothing waits 20 ms on the session condvar (woken
 * at once by an ack or an abort) and sends a PING every second so that the
 * destination's no-progress timeout only fires on a dead source.
 *
 * Locks: session.lock for ds[].init_sent/acked and s->acks (shared with the
 * return-path thread).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

#define UNKNOWN_SIZE (100ull << 30)
#define IDLE_WAIT_NS (20ull * 1000 * 1000)
#define PING_NS (1000ull * 1000 * 1000)

int vfmig_precopy_start(struct vfmig_session *s)
{
	for (unsigned i = 0; i < s->ndev; i++) {
		if (!(s->devs[i]->flags & VFMIG_MIG_PRE_COPY))
			continue;
		if (vfmig_set_state(s, i, VFMIG_STATE_PRE_COPY, VFMIG_STATE_RUNNING))
			return -1;
		s->ds[i].precopy = true;
	}
	return 0;
}

static int precopy_info(struct vfmig_session *s, unsigned i, uint64_t *init, uint64_t *dirty)
{
	struct vfmig_device *d = s->devs[i];
	int ret = d->ops->precopy_info(d->priv, init, dirty);

	if (ret)
		vfmig_fail(s, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
			   "%s: VFIO_MIG_GET_PRECOPY_INFO: %s", d->name, strerror(-ret));
	return ret;
}

/* Read up to @budget bytes of precopy data from device @i and send them. */
static int send_chunks(struct vfmig_session *s, unsigned i, uint8_t *buf, uint64_t budget,
		       uint64_t *moved)
{
	struct vfmig_device *d = s->devs[i];
	int ret;

	while (budget && !vfmig_aborted(s)) {
		ssize_t n = vfmig_device_read(d, buf, (size_t)MIN(budget, (uint64_t)s->chunk));

		if (n == -ENOMSG || n == 0)
			break; /* temporary end of stream */
		if (n < 0) {
			vfmig_fail(s, VFMIG_ERR_DEVICE, (int)-n, (int)i, d->name,
				   "%s: read precopy data: %s", d->name, strerror((int)-n));
			return -1;
		}
		if (s->ds[i].pre_idx == VFMIG_IDX_INVALID - 1) {
			vfmig_fail(s, VFMIG_ERR_PROTOCOL, ERANGE, (int)i, d->name,
				   "%s: too many precopy chunks", d->name);
			return -1;
		}
		ret = vfmig_send_frame(&s->main, VFMIG_F_PRECOPY_DATA, 0, i, s->ds[i].pre_idx++,
				       buf, (uint32_t)n);
		if (ret) {
			vfmig_fail_send(s, "main channel", "send precopy data", ret);
			return -1;
		}
		*moved += (uint64_t)n;
		budget -= MIN(budget, (uint64_t)n);
	}
	return 0;
}

/* Every initial byte of device @i is sent: tell the destination (switchover-ack). */
static int mark_init_sent(struct vfmig_session *s, unsigned i)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	s->ds[i].init_sent = true;
	pthread_mutex_unlock(&s->lock);
	if (!(s->options & VFMIG_OPT_SWITCHOVER_ACK))
		return 0;
	ret = vfmig_send_frame(&s->main, VFMIG_F_INIT_DATA_SENT, 0, i, 0, NULL, 0);
	if (ret) {
		vfmig_fail_send(s, "main channel", "send", ret);
		return -1;
	}
	log_dbg(&s->log, "%s: initial bytes sent", s->devs[i]->name);
	return 0;
}

/*
 * One device's share of an iteration. The initial bytes go first and
 * INIT_DATA_SENT follows them at once (as QEMU emits it in the iteration
 * where initial_bytes reaches 0), so the destination's switchover-ack waits
 * for the initial bytes only, not for the whole first pass of dirty data.
 */
static int send_device_precopy(struct vfmig_session *s, unsigned i, uint8_t *buf, uint64_t *moved)
{
	uint64_t init, dirty;

	if (precopy_info(s, i, &init, &dirty))
		return -1;
	if (!s->ds[i].init_sent) {
		if (init && send_chunks(s, i, buf, init, moved))
			return -1;
		if (init && precopy_info(s, i, &init, &dirty))
			return -1;
		if (!init && mark_init_sent(s, i))
			return -1;
	}
	return send_chunks(s, i, buf, dirty, moved);
}

static uint64_t estimate_stopcopy(struct vfmig_session *s)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < s->ndev; i++) {
		uint64_t b;

		if (vfmig_device_data_size(s->devs[i], &b))
			b = UNKNOWN_SIZE;
		total += b;
	}
	return total;
}

int vfmig_precopy_run(struct vfmig_session *s)
{
	unsigned npre = 0, acks_needed;
	uint64_t busy_ns = 0, last_send, ack_wait_start = 0, t0 = vfmig_now_ns();
	uint8_t *buf;
	int ret = -1;

	for (unsigned i = 0; i < s->ndev; i++)
		npre += s->ds[i].precopy;
	acks_needed = (s->options & VFMIG_OPT_SWITCHOVER_ACK) ? npre : 0;
	if (!npre) {
		s->st.converge = VFMIG_CONVERGE_NONE;
		s->st.est_stopcopy_bytes = estimate_stopcopy(s);
		return 0;
	}
	buf = malloc(s->chunk);
	if (!buf) {
		vfmig_fail(s, VFMIG_ERR_INTERNAL, ENOMEM, -1, "source", "out of memory");
		return -1;
	}
	vfmig_progress(s, VFMIG_PHASE_PRECOPY);
	last_send = vfmig_now_ns();
	while (!vfmig_aborted(s)) {
		uint64_t it0 = vfmig_now_ns(), moved = 0, est, now;
		bool all_init = true, acked;
		double est_ms;

		for (unsigned i = 0; i < s->ndev; i++) {
			if (s->ds[i].precopy && send_device_precopy(s, i, buf, &moved))
				goto out;
			all_init &= !s->ds[i].precopy || s->ds[i].init_sent;
		}
		now = vfmig_now_ns();
		s->st.precopy_iterations++;
		if (moved) {
			busy_ns += now - it0;
			last_send = now;
			s->st.precopy_bytes += moved;
		}
		if (busy_ns)
			s->st.bandwidth_Bps = (double)s->st.precopy_bytes * 1e9 / (double)busy_ns;
		est = estimate_stopcopy(s);
		s->st.est_stopcopy_bytes = est;
		est_ms = !est			 ? 0 :
			 s->st.bandwidth_Bps > 0 ? (double)est * 1e3 / s->st.bandwidth_Bps :
						   1e18;
		pthread_mutex_lock(&s->lock);
		acked = s->acks >= acks_needed;
		pthread_mutex_unlock(&s->lock);
		vfmig_progress(s, VFMIG_PHASE_PRECOPY);

		if (all_init && acks_needed && !ack_wait_start)
			ack_wait_start = now;
		if (all_init && acked) {
			if (est_ms <= s->o.downtime_limit_ms) {
				s->st.converge = VFMIG_CONVERGE_DOWNTIME;
				break;
			}
			if (s->st.precopy_iterations >= s->o.max_iterations) {
				s->st.converge = VFMIG_CONVERGE_MAX_ITER;
				break;
			}
		}
		if (ack_wait_start && !acked &&
		    now - ack_wait_start > (uint64_t)s->o.timeout_ms * 1000000ull) {
			vfmig_fail(s, VFMIG_ERR_TIMEOUT, ETIMEDOUT, -1, "source",
				   "switchover-ack: not every device acknowledged within %u ms",
				   s->o.timeout_ms);
			goto out;
		}
		if (moved)
			continue;
		if (now - last_send >= PING_NS) {
			int r = vfmig_send_frame(&s->main, VFMIG_F_PING, 0, 0, 0, NULL, 0);

			if (r) {
				vfmig_fail_send(s, "main channel", "send", r);
				goto out;
			}
			last_send = now;
		}
		/* Pacing only: an ack or an abort wakes it at once. */
		pthread_mutex_lock(&s->lock);
		if (!vfmig_aborted(s))
			vfmig_session_wait(s, now + IDLE_WAIT_NS);
		pthread_mutex_unlock(&s->lock);
	}
	if (!vfmig_aborted(s))
		ret = 0;
out:
	if (ack_wait_start)
		s->st.switchover_ack_wait_ns = vfmig_now_ns() - ack_wait_start;
	s->st.precopy_ns = vfmig_now_ns() - t0;
	free(buf);
	return ret;
}

int vfmig_precopy_load(struct vfmig_session *s, const struct vfmig_frame *f)
{
	unsigned i = f->h.device;
	struct vfmig_device *d = s->devs[i];
	int ret;

	if (f->h.type == VFMIG_F_INIT_DATA_SENT) {
		if (!(s->options & VFMIG_OPT_SWITCHOVER_ACK) || s->ds[i].acked) {
			vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, (int)i, "main channel",
				   "unexpected INIT_DATA_SENT for device %u", i);
			return -1;
		}
		/* Every initial byte before this marker is already written to the device. */
		s->ds[i].acked = true;
		ret = vfmig_send_frame(&s->main, VFMIG_F_SWITCHOVER_ACK, 0, i, 0, NULL, 0);
		if (ret) {
			vfmig_fail_send(s, "main channel", "send ack", ret);
			return -1;
		}
		log_dbg(&s->log, "%s: initial bytes loaded, switchover-ack sent", d->name);
		return 0;
	}
	if (f->h.idx != s->ds[i].pre_idx) {
		vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, (int)i, "main channel",
			   "device %u: precopy idx %u, expected %u", i, f->h.idx, s->ds[i].pre_idx);
		return -1;
	}
	ret = vfmig_device_write_all(d, f->payload, f->h.length);
	if (ret) {
		vfmig_fail(s, VFMIG_ERR_DEVICE, -ret, (int)i, d->name, "%s: write precopy data: %s",
			   d->name, strerror(-ret));
		return -1;
	}
	s->ds[i].pre_idx++;
	s->st.precopy_bytes += f->h.length;
	s->st.ch[0].bytes += f->h.length;
	s->st.ch[0].packets++;
	s->st.ch[0].busy_ns += f->rx_ns;
	return 0;
}
