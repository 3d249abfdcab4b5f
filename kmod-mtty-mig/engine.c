// SPDX-License-Identifier: GPL-2.0
/*
 * The internal engine: a per-instance delayed work that, while the device is
 * RUNNING or PRE_COPY, writes sequence-numbered pattern pages into its own
 * memory (dirty_rate pages/s) and into its peer's memory (p2p_rate pages/s,
 * simulated P2P DMA).  It ticks every 20 ms while it has work and not at
 * all when both rates are 0 or the device is stopped; writes it could not
 * do in a tick are owed and done at once (up to a second's worth), so the
 * rate set is the rate delivered as long as the CPU keeps up.
 *
 * Gating: each batch of writes runs under engine.lock and only if
 * 'initiate' is set; the FSM clears 'initiate' under the same lock.  So once
 * a step to a P2P or stopped state has returned, no batch is in flight and
 * none will start: no write is initiated after set_state() returns.
 *
 * The peer link is a plain pointer protected by engine.lock (for the writer)
 * and mtty_mig_list_lock (for linking); an instance being removed unlinks
 * every link to it under both locks before it can be freed.
 */
#include <linux/slab.h>
#include <linux/ktime.h>
#include <linux/jiffies.h>
#include <linux/minmax.h>

#include "mtty_mig.h"

#define MTTY_MIG_ENGINE_TICK	msecs_to_jiffies(20)
/* Writes per engine.lock hold: what set_initiate() may wait for. */
#define MTTY_MIG_ENGINE_MAX_BATCH	256
/* Writes owed are carried over, up to one second's worth at the rate. */
#define MTTY_MIG_ENGINE_MAX_LAG_NS	NSEC_PER_SEC

/* Whether the engine has anything to do. */
static bool mtty_mig_engine_busy(struct mtty_mig_dev *mdev)
{
	struct mtty_mig_engine *e = &mdev->engine;

	lockdep_assert_held(&e->lock);
	return e->open && e->initiate &&
	       (READ_ONCE(mdev->tun.dirty_rate) ||
		(e->peer && READ_ONCE(mdev->tun.p2p_rate)));
}

/*
 * Under engine.lock: tick again if there is work, at once if writes are
 * owed.  A tick already pending is never pushed back.
 */
static void mtty_mig_engine_schedule(struct mtty_mig_dev *mdev, bool now)
{
	lockdep_assert_held(&mdev->engine.lock);
	if (!mtty_mig_engine_busy(mdev))
		return;
	if (now)
		mod_delayed_work(system_unbound_wq, &mdev->engine.work, 0);
	else
		queue_delayed_work(system_unbound_wq, &mdev->engine.work,
				   MTTY_MIG_ENGINE_TICK);
}

/*
 * Turn elapsed time into writes owed at @rate per second.  @acc keeps the
 * fraction of a write (pages * ns), @owed the whole writes not done yet,
 * at most a second's worth: a device that fell behind catches up, one that
 * was starved for longer does not burst forever.
 */
static void mtty_mig_engine_credit(u64 *acc, u64 *owed, u32 rate,
				   u64 elapsed_ns)
{
	u64 n;

	if (!rate) {
		*acc = 0;
		*owed = 0;
		return;
	}
	*acc += (u64)rate * min_t(u64, elapsed_ns, MTTY_MIG_ENGINE_MAX_LAG_NS);
	n = div64_u64(*acc, NSEC_PER_SEC);
	*acc -= n * NSEC_PER_SEC;
	*owed = min_t(u64, *owed + n, rate);
}

/* Return: true if writes are still owed after this batch. */
static bool mtty_mig_engine_batch(struct mtty_mig_dev *mdev, u64 elapsed_ns)
{
	struct mtty_mig_engine *e = &mdev->engine;
	unsigned long nr_pages;
	u32 own, p2p;

	lockdep_assert_held(&e->lock);

	mtty_mig_engine_credit(&e->own_acc, &e->own_owed,
			       READ_ONCE(mdev->tun.dirty_rate), elapsed_ns);
	mtty_mig_engine_credit(&e->p2p_acc, &e->p2p_owed,
			       e->peer ? READ_ONCE(mdev->tun.p2p_rate) : 0,
			       elapsed_ns);
	own = min_t(u64, e->own_owed, MTTY_MIG_ENGINE_MAX_BATCH);
	p2p = min_t(u64, e->p2p_owed, MTTY_MIG_ENGINE_MAX_BATCH);
	e->own_owed -= own;
	e->p2p_owed -= p2p;

	nr_pages = MTTY_MIG_NR_PAGES(mtty_mig_mem_size(mdev));
	while (own--) {
		mtty_mig_fill_pattern(e->page, e->seq, MTTY_MIG_PATTERN_OWN);
		/* nr_pages is a power of two: no 64-bit division. */
		mtty_mig_mem_write_page(mdev, e->seq & (nr_pages - 1),
					e->page);
		e->seq++;
		atomic64_inc(&mdev->cnt.engine_writes);
	}
	while (e->peer && p2p--) {
		mtty_mig_mem_peer_write(e->peer, e->p2p_seq, e->page);
		e->p2p_seq++;
		atomic64_inc(&mdev->cnt.p2p_tx);
	}
	return e->own_owed || e->p2p_owed;
}

static void mtty_mig_engine_work(struct work_struct *work)
{
	struct mtty_mig_engine *e =
		container_of(to_delayed_work(work), struct mtty_mig_engine,
			     work);
	struct mtty_mig_dev *mdev = container_of(e, struct mtty_mig_dev,
						 engine);
	bool behind = false;
	ktime_t now;
	u64 elapsed;

	guard(mutex)(&e->lock);
	/* Read under the lock: a restart may have moved 'last' meanwhile. */
	now = ktime_get();
	elapsed = ktime_after(now, e->last) ?
		  ktime_to_ns(ktime_sub(now, e->last)) : 0;
	e->last = now;
	if (e->initiate)
		behind = mtty_mig_engine_batch(mdev, elapsed);
	mtty_mig_engine_schedule(mdev, behind);
}

/*
 * Under engine.lock: the engine starts initiating (device opened, or back
 * in RUNNING/PRE_COPY).  Time spent stopped is not owed: the clock and the
 * credit start afresh.
 */
static void mtty_mig_engine_restart(struct mtty_mig_dev *mdev)
{
	struct mtty_mig_engine *e = &mdev->engine;

	lockdep_assert_held(&e->lock);
	e->own_acc = 0;
	e->p2p_acc = 0;
	e->own_owed = 0;
	e->p2p_owed = 0;
	e->last = ktime_get();
	mtty_mig_engine_schedule(mdev, false);
}

/**
 * mtty_mig_engine_init() - set up the engine of a new instance
 * @mdev: instance
 *
 * Return: 0 or -ENOMEM.
 */
int mtty_mig_engine_init(struct mtty_mig_dev *mdev)
{
	struct mtty_mig_engine *e = &mdev->engine;

	e->page = kmalloc(MTTY_MIG_PAGE_SIZE, GFP_KERNEL_ACCOUNT);
	if (!e->page)
		return -ENOMEM;
	mutex_init(&e->lock);
	INIT_DELAYED_WORK(&e->work, mtty_mig_engine_work);
	return 0;
}

/**
 * mtty_mig_engine_destroy() - free the engine of a released instance
 * @mdev: instance
 */
void mtty_mig_engine_destroy(struct mtty_mig_dev *mdev)
{
	mutex_destroy(&mdev->engine.lock);
	kfree(mdev->engine.page);
}

/**
 * mtty_mig_engine_start() - the device opened: the engine may tick
 * @mdev: instance
 *
 * It ticks only while it has work: initiating, with a rate above zero.
 */
void mtty_mig_engine_start(struct mtty_mig_dev *mdev)
{
	guard(mutex)(&mdev->engine.lock);
	mdev->engine.open = true;
	mtty_mig_engine_restart(mdev);
}

/**
 * mtty_mig_engine_stop() - stop ticking and wait for a batch in flight
 * @mdev: instance
 */
void mtty_mig_engine_stop(struct mtty_mig_dev *mdev)
{
	scoped_guard(mutex, &mdev->engine.lock)
		mdev->engine.open = false;
	cancel_delayed_work_sync(&mdev->engine.work);
}

/**
 * mtty_mig_engine_kick() - a rate changed: tick if there is work now
 * @mdev: instance
 *
 * The credit carries on: writes owed are capped to the new rate by the next
 * tick (a rate of 0 drops them).  An engine that was idle starts its clock.
 */
void mtty_mig_engine_kick(struct mtty_mig_dev *mdev)
{
	struct mtty_mig_engine *e = &mdev->engine;

	guard(mutex)(&e->lock);
	if (!delayed_work_pending(&e->work))
		e->last = ktime_get();
	mtty_mig_engine_schedule(mdev, false);
}

/**
 * mtty_mig_engine_set_initiate() - allow or forbid initiating writes
 * @mdev: instance
 * @initiate: true only in RUNNING and PRE_COPY
 *
 * Waits for a batch in flight, so on return no write is being initiated
 * unless @initiate is true.
 */
void mtty_mig_engine_set_initiate(struct mtty_mig_dev *mdev, bool initiate)
{
	guard(mutex)(&mdev->engine.lock);
	if (initiate == mdev->engine.initiate)
		return;
	mdev->engine.initiate = initiate;
	if (initiate)
		mtty_mig_engine_restart(mdev);
}

/**
 * mtty_mig_engine_link() - set or clear the P2P peer
 * @mdev: instance
 * @peer: peer instance or NULL; mtty_mig_list_lock held by the caller
 *
 * Return: 0.
 */
int mtty_mig_engine_link(struct mtty_mig_dev *mdev, struct mtty_mig_dev *peer)
{
	struct mtty_mig_engine *e = &mdev->engine;

	guard(mutex)(&e->lock);
	e->peer = peer;
	e->p2p_acc = 0;
	e->p2p_owed = 0;
	if (!delayed_work_pending(&e->work))
		e->last = ktime_get();
	mtty_mig_engine_schedule(mdev, false);
	return 0;
}

/**
 * mtty_mig_engine_get_seq() - sequence numbers for the DEVICE record
 * @mdev: instance
 * @seq: next own write
 * @p2p_seq: next peer write
 */
void mtty_mig_engine_get_seq(struct mtty_mig_dev *mdev, u64 *seq, u64 *p2p_seq)
{
	guard(mutex)(&mdev->engine.lock);
	*seq = mdev->engine.seq;
	*p2p_seq = mdev->engine.p2p_seq;
}

/**
 * mtty_mig_engine_set_seq() - restore sequence numbers from a DEVICE record
 * @mdev: instance
 * @seq: next own write
 * @p2p_seq: next peer write
 */
void mtty_mig_engine_set_seq(struct mtty_mig_dev *mdev, u64 seq, u64 p2p_seq)
{
	guard(mutex)(&mdev->engine.lock);
	mdev->engine.seq = seq;
	mdev->engine.p2p_seq = p2p_seq;
}
