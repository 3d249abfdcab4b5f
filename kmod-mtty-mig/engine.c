// SPDX-License-Identifier: GPL-2.0
/*
 * The internal engine: a per-instance delayed work that, while the device is
 * RUNNING or PRE_COPY, writes sequence-numbered pattern pages into its own
 * memory (dirty_rate pages/s) and into its peer's memory (p2p_rate pages/s,
 * simulated P2P DMA).
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
/* Bound the work done in one tick after a long pause. */
#define MTTY_MIG_ENGINE_MAX_BATCH	1024

static void mtty_mig_engine_schedule(struct mtty_mig_dev *mdev)
{
	queue_delayed_work(system_unbound_wq, &mdev->engine.work,
			   MTTY_MIG_ENGINE_TICK);
}

/* Turn elapsed time into a whole number of writes at @rate per second. */
static unsigned int mtty_mig_engine_credit(u64 *acc, u32 rate, u64 elapsed_ns)
{
	u64 n;

	if (!rate) {
		*acc = 0;
		return 0;
	}
	*acc += (u64)rate * elapsed_ns;
	n = div64_u64(*acc, NSEC_PER_SEC);
	*acc -= n * NSEC_PER_SEC;
	return min_t(u64, n, MTTY_MIG_ENGINE_MAX_BATCH);
}

static void mtty_mig_engine_batch(struct mtty_mig_dev *mdev, u64 elapsed_ns)
{
	struct mtty_mig_engine *e = &mdev->engine;
	unsigned int own, p2p;
	unsigned long nr_pages;

	lockdep_assert_held(&e->lock);

	own = mtty_mig_engine_credit(&e->own_acc,
				     READ_ONCE(mdev->tun.dirty_rate),
				     elapsed_ns);
	p2p = mtty_mig_engine_credit(&e->p2p_acc,
				     READ_ONCE(mdev->tun.p2p_rate),
				     elapsed_ns);

	nr_pages = MTTY_MIG_NR_PAGES(mtty_mig_mem_size(mdev));
	while (own--) {
		mtty_mig_fill_pattern(e->page, e->seq, MTTY_MIG_PATTERN_OWN);
		mtty_mig_mem_write_page(mdev, e->seq % nr_pages, e->page);
		e->seq++;
		atomic64_inc(&mdev->cnt.engine_writes);
	}

	if (!e->peer)
		return;
	while (p2p--) {
		mtty_mig_mem_peer_write(e->peer, e->p2p_seq, e->page);
		e->p2p_seq++;
		atomic64_inc(&mdev->cnt.p2p_tx);
	}
}

static void mtty_mig_engine_work(struct work_struct *work)
{
	struct mtty_mig_engine *e =
		container_of(to_delayed_work(work), struct mtty_mig_engine,
			     work);
	struct mtty_mig_dev *mdev = container_of(e, struct mtty_mig_dev,
						 engine);
	ktime_t now = ktime_get();
	u64 elapsed;

	scoped_guard(mutex, &e->lock) {
		elapsed = min_t(u64, ktime_to_ns(ktime_sub(now, e->last)),
				NSEC_PER_SEC);
		e->last = now;
		if (e->initiate)
			mtty_mig_engine_batch(mdev, elapsed);
	}
	mtty_mig_engine_schedule(mdev);
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

	e->page = kmalloc(MTTY_MIG_PAGE_SIZE, GFP_KERNEL);
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
 * mtty_mig_engine_start() - start ticking (device opened)
 * @mdev: instance
 */
void mtty_mig_engine_start(struct mtty_mig_dev *mdev)
{
	scoped_guard(mutex, &mdev->engine.lock)
		mdev->engine.last = ktime_get();
	mtty_mig_engine_schedule(mdev);
}

/**
 * mtty_mig_engine_stop() - stop ticking and wait for a batch in flight
 * @mdev: instance
 */
void mtty_mig_engine_stop(struct mtty_mig_dev *mdev)
{
	cancel_delayed_work_sync(&mdev->engine.work);
}

/**
 * mtty_mig_engine_kick() - a rate changed: restart the rate accounting
 * @mdev: instance
 */
void mtty_mig_engine_kick(struct mtty_mig_dev *mdev)
{
	guard(mutex)(&mdev->engine.lock);
	mdev->engine.own_acc = 0;
	mdev->engine.p2p_acc = 0;
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
	if (initiate && !mdev->engine.initiate)
		mdev->engine.last = ktime_get();
	mdev->engine.initiate = initiate;
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
	guard(mutex)(&mdev->engine.lock);
	mdev->engine.peer = peer;
	mdev->engine.p2p_acc = 0;
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
