// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * precopy.c - PRE_COPY iterations on the source, and their loading on the
 * destination (vfmig_precopy_load(), called by its main loop).
 *
 * Each iteration: for every device in PRE_COPY ask
 * VFIO_MIG_GET_PRECOPY_INFO, read up to initial_bytes + dirty_bytes in
 * chunks (read() -ENOMSG, or 0 from drivers like mtty, means "nothing now")
 * and send them on the main channel.  When a device's initial_bytes reach 0
 * it sends INIT_DATA_SENT; with switchover-ack the destination answers
 * SWITCHOVER_ACK once those bytes are written to its device, and the source
 * never switches over before every ack (QEMU: vfio_switchover_ack_needed(),
 * qemu_loadvm_approve_switchover() in migration/savevm.c).
 *
 * Convergence: switch over when the estimated STOP_COPY time (the sum of
 * VFIO_DEVICE_FEATURE_MIG_DATA_SIZE over the bandwidth measured during
 * precopy) is under --downtime-limit, after --max-iterations, or after
 * --max-precopy-time; in each case only once every needed ack arrived.  An
 * unknown data size counts as 100 GiB, as QEMU does.
 *
 * Termination is bounded from the first iteration: once --max-iterations or
 * --max-precopy-time is reached, or every initial byte is sent, missing
 * acks have --timeout to arrive, else the migration fails.  Without
 * switchover-ack a device whose initial bytes never reach 0 is switched over
 * at --max-iterations: STOP_COPY carries everything.
 *
 * An iteration that moved nothing waits 20 ms on the condvar (woken at once
 * by an ack or an abort).  Liveness PINGs are the keepalive thread's.
 *
 * PRECOPY_INFOv2 (Linux 7.1): each precopying device is opted in at the
 * start; a REINIT it then reports makes its initial bytes unsent again: the
 * new ones go out, then INIT_DATA_SENT with the next generation in its idx,
 * and with switchover-ack the switchover waits for a SWITCHOVER_ACK echoing
 * that generation (an ack of an older one is stale and ignored).  Once the
 * switchover is decided, PRECOPY_INFO is asked once more: a REINIT there
 * fails the migration when switchover-ack is on (QEMU master (2026) fails
 * a migration whose device requests an ack after the switchover decision).
 *
 * It sees no session: struct vfmig_precopy holds the main connection, the
 * devices, the error object and the ack state it shares with the source's
 * return-path thread (under *lock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

#define UNKNOWN_SIZE (100ull << 30)
#define IDLE_WAIT_NS (20ull * 1000 * 1000)

int vfmig_precopy_start(struct vfmig_precopy *pc)
{
	for (unsigned i = 0; i < pc->ndev; i++) {
		struct vfmig_device *d = pc->devs[i];
		struct vfmig_error e = { 0 };
		enum vfmig_state st;
		int ret;

		/* Only a running device precopies: a stopped one must not be run. */
		if (!(d->flags & VFMIG_MIG_PRE_COPY) || vfmig_device_get_state(d, &st) ||
		    st != VFMIG_STATE_RUNNING)
			continue;
		/* PRECOPY_INFOv2: refused by pre-7.1 kernels and drivers, which is no error. */
		if (pc->opt_in) {
			ret = d->ops->precopy_v2 ? d->ops->precopy_v2(d->priv) : -EOPNOTSUPP;
			pc->v2[i] = !ret;
			log_dbg(pc->log, "%s: PRECOPY_INFOv2 %s%s", d->name,
				ret ? "not available: " : "opted in (REINIT handled)",
				ret ? strerror(-ret) : "");
		}
		/* No recovery or reset here: the rollback puts every device back. */
		ret = vfmig_device_set_state_keep(d, VFMIG_STATE_PRE_COPY, &e);
		if (ret) {
			vfmig_fail(pc->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name, "%s", e.msg);
			return -1;
		}
		pc->precopy[i] = true;
	}
	return 0;
}

unsigned vfmig_precopy_acks_needed(const struct vfmig_precopy *pc)
{
	unsigned n = 0;

	for (unsigned i = 0; pc->sack && i < pc->ndev; i++)
		n += pc->precopy[i];
	return n;
}

int vfmig_precopy_ack(struct vfmig_precopy *pc, unsigned dev, uint32_t gen)
{
	int ret = -EPROTO;

	pthread_mutex_lock(pc->lock);
	/* One ack per INIT_DATA_SENT sent, in order: generation ack_next. */
	if (dev < pc->ndev && pc->sack && gen == pc->ack_next[dev] &&
	    (gen < pc->gen[dev] || (pc->init_sent[dev] && !pc->acked[dev]))) {
		pc->ack_next[dev]++;
		if (gen < pc->gen[dev]) {
			/* The destination acked initial bytes a REINIT has replaced since. */
			pc->st->switchover_acks_stale++;
			ret = 1;
		} else {
			pc->acked[dev] = true;
			pc->acks++;
			pthread_cond_broadcast(pc->cond);
			ret = 0;
		}
	}
	pthread_mutex_unlock(pc->lock);
	if (ret == 1)
		log_dbg(pc->log, "%s: stale switchover-ack (generation %u) ignored",
			pc->devs[dev]->name, gen);
	return ret;
}

/* VFIO_MIG_GET_PRECOPY_INFO; *reinit only from a device opted in to PRECOPY_INFOv2. */
static int precopy_info(struct vfmig_precopy *pc, unsigned i, uint64_t *init, uint64_t *dirty,
			bool *reinit)
{
	struct vfmig_device *d = pc->devs[i];
	uint32_t flags = 0;
	int ret = d->ops->precopy_info(d->priv, init, dirty, &flags);

	if (ret)
		vfmig_fail(pc->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
			   "%s: VFIO_MIG_GET_PRECOPY_INFO: %s", d->name, strerror(-ret));
	/* The flags are reserved without the opt-in: whatever is there means nothing. */
	*reinit = !ret && pc->v2[i] && (flags & VFMIG_PRECOPY_REINIT);
	return ret;
}

/*
 * Device @i restarted its initial data (REINIT, @init new initial bytes):
 * they are unsent again, and an INIT_DATA_SENT already sent for the old ones
 * is superseded by the next generation, whose ack the switchover waits for.
 */
static int on_reinit(struct vfmig_precopy *pc, unsigned i, uint64_t init)
{
	struct vfmig_device *d = pc->devs[i];
	bool decided;

	pthread_mutex_lock(pc->lock);
	pc->st->precopy_reinits++;
	decided = pc->decided;
	pthread_mutex_unlock(pc->lock);
	if (decided && pc->sack) {
		vfmig_fail(pc->ctl, VFMIG_ERR_DEVICE, EAGAIN, (int)i, d->name,
			   "%s: PRECOPY_INFO reported REINIT after the switchover decision: its "
			   "new initial bytes would need a fresh switchover-ack; migration "
			   "cancelled, devices back to RUNNING (retry the migration)",
			   d->name);
		return -1;
	}
	if (decided) {
		log_info(pc->log,
			 "%s: REINIT at the switchover decision (%llu new initial bytes): "
			 "STOP_COPY carries them (switchover-ack off)",
			 d->name, (unsigned long long)init);
		return 0;
	}
	if (pc->sack && !pc->reinit_ok) {
		vfmig_fail(pc->ctl, VFMIG_ERR_INCOMPATIBLE, EPROTO, (int)i, d->name,
			   "%s: PRECOPY_INFO reported REINIT (new initial bytes) but the "
			   "destination did not agree to PRECOPY_REINIT (an older vfio-mig, or "
			   "precopy-reinit off there): it cannot acknowledge them again; "
			   "migration cancelled, devices back to RUNNING",
			   d->name);
		return -1;
	}
	pthread_mutex_lock(pc->lock);
	if (pc->init_sent[i]) {
		if (pc->gen[i] == VFMIG_IDX_INVALID - 1) {
			pthread_mutex_unlock(pc->lock);
			vfmig_fail(pc->ctl, VFMIG_ERR_PROTOCOL, ERANGE, (int)i, d->name,
				   "%s: too many REINITs", d->name);
			return -1;
		}
		pc->gen[i]++;
		pc->init_sent[i] = false;
		if (pc->acked[i]) {
			pc->acked[i] = false;
			pc->acks--;
		}
	}
	pc->reinit_seen = true;
	pthread_mutex_unlock(pc->lock);
	log_info(pc->log, "%s: REINIT: %llu new initial bytes (generation %u)%s", d->name,
		 (unsigned long long)init, pc->gen[i],
		 pc->sack ? "; a fresh switchover-ack is needed" : "");
	return 0;
}

/* precopy_info(), and a REINIT handled. */
static int precopy_query(struct vfmig_precopy *pc, unsigned i, uint64_t *init, uint64_t *dirty)
{
	bool reinit;

	if (precopy_info(pc, i, init, dirty, &reinit))
		return -1;
	return reinit ? on_reinit(pc, i, *init) : 0;
}

/*
 * Send (*bp)->data[0..len) of device @i as its next precopy packet: on the
 * main channel, or with PRECOPY_MULTIFD as a DEVICE_STATE packet of kind
 * @flags queued for the channels (which hands *bp over and gives an empty
 * buffer back).
 */
static int send_precopy(struct vfmig_precopy *pc, unsigned i, struct vfmig_buf **bp, uint32_t len,
			uint32_t flags)
{
	struct vfmig_device *d = pc->devs[i];
	struct vfmig_buf *b = *bp;
	int ret;

	if (pc->pre_idx[i] == VFMIG_IDX_INVALID - 1) {
		vfmig_fail(pc->ctl, VFMIG_ERR_PROTOCOL, ERANGE, (int)i, d->name,
			   "%s: too many precopy packets", d->name);
		return -1;
	}
	if (pc->mf) {
		b->dev = i;
		b->idx = pc->pre_idx[i]++;
		b->flags = flags;
		b->len = len;
		/* A failure is recorded already (or is the abort). */
		return vfmig_multifd_send(pc->mf, bp) ? -1 : 0;
	}
	if (flags & VFMIG_FLAG_INIT_SENT)
		ret = vfmig_send_frame(pc->main, VFMIG_F_INIT_DATA_SENT, 0, i, get_le32(b->data),
				       NULL, 0);
	else
		ret = vfmig_send_frame(pc->main, VFMIG_F_PRECOPY_DATA, 0, i, pc->pre_idx[i]++,
				       b->data, len);
	if (ret) {
		vfmig_fail_send(pc->ctl, "main channel", "send precopy data", ret);
		return -1;
	}
	return 0;
}

/* Read up to @budget bytes of precopy data from device @i and send them. */
static int send_chunks(struct vfmig_precopy *pc, unsigned i, struct vfmig_buf **bp, uint64_t budget,
		       uint64_t *moved)
{
	struct vfmig_device *d = pc->devs[i];

	while (budget && !vfmig_aborted(pc->ctl)) {
		ssize_t n;

		/* A limit falls due inside a pass: stop reading, let the loop judge it. */
		if (pc->stop_ns && vfmig_now_ns() >= pc->stop_ns)
			break;
		n = vfmig_device_read(d, (*bp)->data, (size_t)MIN(budget, (uint64_t)pc->chunk));

		if (n == -ENOMSG || n == 0)
			break; /* temporary end of stream */
		if (n < 0) {
			vfmig_fail(pc->ctl, VFMIG_ERR_DEVICE, (int)-n, (int)i, d->name,
				   "%s: read precopy data: %s", d->name, strerror((int)-n));
			return -1;
		}
		if (send_precopy(pc, i, bp, (uint32_t)n, VFMIG_FLAG_PRECOPY))
			return -1;
		*moved += (uint64_t)n;
		budget -= MIN(budget, (uint64_t)n);
	}
	return 0;
}

/*
 * Every initial byte of device @i is sent: tell the destination
 * (switchover-ack), after them in the device's sequence: INIT_DATA_SENT on
 * the main channel, or the INIT_SENT marker among its packets.
 */
static int mark_init_sent(struct vfmig_precopy *pc, unsigned i, struct vfmig_buf **bp)
{
	pthread_mutex_lock(pc->lock);
	pc->init_sent[i] = true;
	pthread_mutex_unlock(pc->lock);
	if (!pc->sack)
		return 0;
	/* The generation only changes on this device's thread: no lock needed to read it. */
	put_le32((*bp)->data, pc->gen[i]);
	if (send_precopy(pc, i, bp, VFMIG_INIT_SENT_LEN, VFMIG_FLAG_INIT_SENT))
		return -1;
	log_dbg(pc->log, "%s: initial bytes sent (generation %u)", pc->devs[i]->name, pc->gen[i]);
	return 0;
}

/*
 * One device's share of an iteration. The initial bytes go first and
 * INIT_DATA_SENT follows them at once (as QEMU emits it in the iteration
 * where initial_bytes reaches 0), so the destination's switchover-ack waits
 * for the initial bytes only, not for the whole first pass of dirty data.
 */
static int send_device_precopy(struct vfmig_precopy *pc, unsigned i, struct vfmig_buf **bp,
			       uint64_t *moved)
{
	uint64_t init, dirty;

	if (precopy_query(pc, i, &init, &dirty))
		return -1;
	if (!pc->init_sent[i]) {
		if (init && send_chunks(pc, i, bp, init, moved))
			return -1;
		if (init && precopy_query(pc, i, &init, &dirty))
			return -1;
		if (!init && mark_init_sent(pc, i, bp))
			return -1;
	}
	return send_chunks(pc, i, bp, dirty, moved);
}

/* ---- PRECOPY_MULTIFD: one worker per precopying device ---------------------------- */

/*
 * Device @i's share of every pass, in its own thread: the devices are read
 * in parallel, and their packets share the multifd channels.  A pass ends
 * when every worker is done with it (the coordinator judges convergence
 * between passes, as in the serial loop).
 */
static void precopy_worker(void *arg, unsigned i)
{
	struct vfmig_precopy *pc = arg;
	struct vfmig_buf *b = vfmig_buf_new(pc->chunk);
	unsigned seen = 0;

	if (!b)
		vfmig_fail(pc->ctl, VFMIG_ERR_INTERNAL, ENOMEM, (int)i, pc->devs[i]->name,
			   "out of memory");
	while (b) {
		uint64_t moved = 0;
		int ret;

		pthread_mutex_lock(pc->lock);
		while (pc->w_round == seen && !pc->w_quit && !vfmig_aborted(pc->ctl))
			pthread_cond_wait(pc->wcond, pc->lock);
		if (pc->w_quit || vfmig_aborted(pc->ctl)) {
			pthread_mutex_unlock(pc->lock);
			break;
		}
		seen = pc->w_round;
		pthread_mutex_unlock(pc->lock);

		ret = send_device_precopy(pc, i, &b, &moved);

		pthread_mutex_lock(pc->lock);
		pc->w_moved += moved;
		if (!--pc->w_busy)
			pthread_cond_broadcast(pc->cond);
		pthread_mutex_unlock(pc->lock);
		if (ret)
			break;
	}
	vfmig_buf_free(b);
}

static int workers_start(struct vfmig_precopy *pc)
{
	for (unsigned i = 0; i < pc->ndev; i++) {
		if (!pc->precopy[i])
			continue;
		if (vfmig_thread_start(pc->ctl, &pc->w_thread[i], precopy_worker, pc, i))
			return -1;
		pc->w_started[i] = true;
	}
	return 0;
}

static void workers_stop(struct vfmig_precopy *pc)
{
	pthread_mutex_lock(pc->lock);
	pc->w_quit = true;
	pthread_cond_broadcast(pc->wcond);
	pthread_mutex_unlock(pc->lock);
	for (unsigned i = 0; i < pc->ndev; i++) {
		if (pc->w_started[i])
			pthread_join(pc->w_thread[i], NULL);
		pc->w_started[i] = false;
	}
}

/* One pass: every worker does its device's share; the bytes they moved in *moved. */
static int parallel_pass(struct vfmig_precopy *pc, unsigned nworkers, uint64_t *moved)
{
	pthread_mutex_lock(pc->lock);
	pc->w_moved = 0;
	pc->w_busy = nworkers;
	pc->w_round++;
	pthread_cond_broadcast(pc->wcond);
	/* A failing worker records its error: the abort wakes this wait. */
	while (pc->w_busy && !vfmig_aborted(pc->ctl))
		pthread_cond_wait(pc->cond, pc->lock);
	*moved = pc->w_moved;
	pthread_mutex_unlock(pc->lock);
	return vfmig_aborted(pc->ctl) ? -1 : 0;
}

static uint64_t estimate_stopcopy(struct vfmig_precopy *pc)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < pc->ndev; i++) {
		uint64_t b;

		if (vfmig_device_data_size(pc->devs[i], &b))
			b = UNKNOWN_SIZE;
		total += b;
	}
	return total;
}

/*
 * The switchover is decided: ask every precopying device once more, before
 * anything leaves PRE_COPY (it reports REINIT only there).  With
 * switchover-ack a REINIT now fails the migration: the new initial bytes
 * would need an ack the decision no longer waits for.
 */
static int switchover_check(struct vfmig_precopy *pc)
{
	pthread_mutex_lock(pc->lock);
	pc->decided = true;
	pthread_mutex_unlock(pc->lock);
	pc->progress(pc->progress_arg, VFMIG_PHASE_SWITCHOVER);
	for (unsigned i = 0; i < pc->ndev; i++) {
		uint64_t init, dirty;
		enum vfmig_state st;

		if (!pc->precopy[i] || !pc->v2[i] || vfmig_device_get_state(pc->devs[i], &st) ||
		    st != VFMIG_STATE_PRE_COPY)
			continue;
		if (precopy_query(pc, i, &init, &dirty))
			return -1;
	}
	return 0;
}

int vfmig_precopy_run(struct vfmig_precopy *pc)
{
	const struct vfmig_options *o = pc->o;
	struct vfmig_stats *st = pc->st;
	unsigned npre = 0, acks_needed = vfmig_precopy_acks_needed(pc);
	uint64_t busy_ns = 0, t0 = vfmig_now_ns(), ack_wait_start = 0, ack_waited = 0;
	uint64_t tmo_ns = (uint64_t)o->timeout_ms * 1000000ull;
	struct vfmig_buf *buf = NULL;
	int ret = -1;

	for (unsigned i = 0; i < pc->ndev; i++)
		npre += pc->precopy[i];
	if (!npre) {
		st->converge = VFMIG_CONVERGE_NONE;
		st->est_stopcopy_bytes = estimate_stopcopy(pc);
		return 0;
	}
	if (!pc->mf)
		buf = vfmig_buf_new(pc->chunk);
	if (pc->mf ? workers_start(pc) : !buf) {
		if (!pc->mf)
			vfmig_fail(pc->ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "source",
				   "out of memory");
		goto out;
	}
	pc->progress(pc->progress_arg, VFMIG_PHASE_PRECOPY);
	while (!vfmig_aborted(pc->ctl)) {
		uint64_t it0 = vfmig_now_ns(), moved = 0, est, now;
		bool all_init = true, acked, at_limit;

		/*
		 * The limits bound the time, not the passes: a pass stops reading when
		 * the precopy time limit falls due (once switching over is allowed,
		 * that is every ack is in), or when the acks' deadline does.
		 */
		pthread_mutex_lock(pc->lock);
		acked = pc->acks >= acks_needed;
		pthread_mutex_unlock(pc->lock);
		pc->stop_ns = 0;
		if (o->max_precopy_ms && acked)
			pc->stop_ns = t0 + (uint64_t)o->max_precopy_ms * 1000000ull;
		/* The acks' deadline limits a pass only while an ack is missing. */
		if (ack_wait_start && !acked &&
		    (!pc->stop_ns || ack_wait_start + tmo_ns < pc->stop_ns))
			pc->stop_ns = ack_wait_start + tmo_ns + 1;
		enum vfmig_converge why = VFMIG_CONVERGE_NONE;
		double est_ms;

		if (pc->mf && parallel_pass(pc, npre, &moved))
			goto out;
		for (unsigned i = 0; i < pc->ndev; i++) {
			if (!pc->mf && pc->precopy[i] && send_device_precopy(pc, i, &buf, &moved))
				goto out;
			all_init &= !pc->precopy[i] || pc->init_sent[i];
		}
		now = vfmig_now_ns();
		st->precopy_iterations++;
		if (moved) {
			busy_ns += now - it0;
			st->precopy_bytes += moved;
		}
		if (busy_ns)
			st->bandwidth_Bps = (double)st->precopy_bytes * 1e9 / (double)busy_ns;
		est = estimate_stopcopy(pc);
		st->est_stopcopy_bytes = est;
		est_ms = !est		       ? 0 :
			 st->bandwidth_Bps > 0 ? (double)est * 1e3 / st->bandwidth_Bps :
						 1e18;
		pthread_mutex_lock(pc->lock);
		acked = pc->acks >= acks_needed;
		pthread_mutex_unlock(pc->lock);
		pc->progress(pc->progress_arg, VFMIG_PHASE_PRECOPY);

		if (st->precopy_iterations >= o->max_iterations)
			why = VFMIG_CONVERGE_MAX_ITER;
		if (o->max_precopy_ms && now - t0 >= (uint64_t)o->max_precopy_ms * 1000000ull)
			why = VFMIG_CONVERGE_MAX_TIME;
		at_limit = why != VFMIG_CONVERGE_NONE;
		if (all_init && est_ms <= o->downtime_limit_ms)
			why = VFMIG_CONVERGE_DOWNTIME;
		/*
		 * Without switchover-ack nothing waits for the initial bytes at a
		 * limit; with it, the acks are the destination's to give, within the
		 * timeout from the moment they are due.
		 */
		if (why != VFMIG_CONVERGE_NONE && acked && (all_init || !acks_needed)) {
			st->converge = why;
			if (switchover_check(pc))
				goto out;
			break;
		}
		/*
		 * A REINIT made initial bytes unsent again: their acks are due once
		 * they are sent.  Not at a limit: from there on the acks' deadline
		 * stands, so a device that keeps restarting cannot hold precopy open.
		 */
		if (pc->reinit_seen && !at_limit && ack_wait_start) {
			ack_waited += now - ack_wait_start;
			ack_wait_start = 0;
		}
		pc->reinit_seen = false;
		/*
		 * Every ack is in: the deadline is spent. Left running, it would
		 * stop later passes from reading (dirty data no longer moving
		 * during precopy) and give a late REINIT's new initial bytes 0 ms
		 * instead of --timeout (review3_test).
		 */
		if (acked && ack_wait_start) {
			ack_waited += now - ack_wait_start;
			ack_wait_start = 0;
		}
		if ((all_init || at_limit) && !acked && !ack_wait_start)
			ack_wait_start = now;
		if (ack_wait_start && !acked && now - ack_wait_start > tmo_ns) {
			vfmig_fail(pc->ctl, VFMIG_ERR_TIMEOUT, ETIMEDOUT, -1, "source",
				   "switchover-ack: %s, and not every device acknowledged its "
				   "initial bytes within %u ms",
				   all_init ?
					   "every initial byte sent" :
					   "precopy limit reached with initial bytes still unsent",
				   o->timeout_ms);
			goto out;
		}
		if (moved)
			continue;
		/* Pacing only: an ack or an abort wakes it at once. */
		pthread_mutex_lock(pc->lock);
		if (!vfmig_aborted(pc->ctl))
			vfmig_cond_wait_until(pc->cond, pc->lock, now + IDLE_WAIT_NS);
		pthread_mutex_unlock(pc->lock);
	}
	if (!vfmig_aborted(pc->ctl))
		ret = 0;
out:
	st->switchover_ack_wait_ns = ack_waited;
	if (ack_wait_start)
		st->switchover_ack_wait_ns += vfmig_now_ns() - ack_wait_start;
	st->precopy_ns = vfmig_now_ns() - t0;
	if (pc->mf)
		workers_stop(pc);
	vfmig_buf_free(buf);
	return ret;
}

/* ---- the destination's side ---------------------------------------------------------- */

int vfmig_precopy_init_loaded(struct vfmig_precopy_load *pl, unsigned i, uint32_t gen,
			      const char *where)
{
	int ret;

	/*
	 * Generations 0, 1, 2, ... each once; after 0 only with PRECOPY_REINIT
	 * (the device restarted its initial data: a fresh ack is due).
	 */
	if (!pl->sack || gen != pl->next_gen[i] || (gen && !pl->reinit_ok)) {
		vfmig_fail(pl->ctl, VFMIG_ERR_PROTOCOL, EPROTO, (int)i, where,
			   "unexpected INIT_DATA_SENT for device %u (generation %u%s)", i, gen,
			   pl->sack ? "" : ", switchover-ack off");
		return -1;
	}
	pl->next_gen[i] = gen + 1;
	if (gen)
		atomic_fetch_add(&pl->reinits, 1);
	/* Every initial byte before this marker is already written to the device. */
	ret = vfmig_send_frame(pl->main, VFMIG_F_SWITCHOVER_ACK, 0, i, gen, NULL, 0);
	if (ret) {
		vfmig_fail_send(pl->ctl, "main channel", "send ack", ret);
		return -1;
	}
	log_dbg(pl->log, "%s: initial bytes loaded (generation %u), switchover-ack sent",
		pl->devs[i]->name, gen);
	return 0;
}

int vfmig_precopy_load(struct vfmig_precopy_load *pl, const struct vfmig_frame *f)
{
	unsigned i = f->h.device;
	struct vfmig_device *d = pl->devs[i];
	int ret;

	if (f->h.type == VFMIG_F_INIT_DATA_SENT)
		return vfmig_precopy_init_loaded(pl, i, f->h.idx, "main channel");
	if (f->h.idx != pl->pre_idx[i]) {
		vfmig_fail(pl->ctl, VFMIG_ERR_PROTOCOL, EPROTO, (int)i, "main channel",
			   "device %u: precopy idx %u, expected %u", i, f->h.idx, pl->pre_idx[i]);
		return -1;
	}
	ret = vfmig_device_write_all(d, f->payload, f->h.length);
	if (ret) {
		vfmig_fail(pl->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
			   "%s: write precopy data: %s", d->name, strerror(-ret));
		return -1;
	}
	pl->pre_idx[i]++;
	atomic_fetch_add(&pl->precopy_bytes, f->h.length);
	pl->st->ch[0].bytes += f->h.length;
	pl->st->ch[0].packets++;
	pl->st->ch[0].busy_ns += f->rx_ns;
	return 0;
}
