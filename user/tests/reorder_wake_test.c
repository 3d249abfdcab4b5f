// SPDX-License-Identifier: GPL-2.0-only
/*
 * reorder_wake_test - who the reorder buffer wakes: a device's load thread
 * only when the chunk it needs next arrives (not for other devices' chunks,
 * nor for its own later ones), every waiter on abort, every load thread when
 * the last producer leaves, and the stuck detection still firing when a fill
 * comes between two producers' stalls.  Every wait here is bounded.
 */
#include <time.h>

#include "kselftest_harness.h"
#include "reorder_wait.h"
#include "test_util.h"

#define WAIT_S 10

static int push(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint32_t len)
{
	char why[160];
	uint8_t *p = calloc(1, len ? len : 1);
	int ret = p ? vfmig_reorder_push(r, dev, idx, 0, p, len, why, sizeof(why)) : -ENOMEM;

	if (ret)
		free(p);
	return ret;
}

static int pop_release(struct vfmig_reorder *r, uint32_t dev, uint32_t *idx)
{
	struct vfmig_slot s;
	int ret = vfmig_reorder_pop(r, dev, &s, idx);

	if (ret)
		return ret;
	free(s.data);
	vfmig_reorder_release(r, dev, s.len);
	return 0;
}

struct waiter {
	struct vfmig_reorder *r;
	uint32_t dev, idx, len;
	bool producer; /* push (dev, idx, len), else pop dev */
	int ret;
	pthread_t t;
};

static void *waiter_thread(void *arg)
{
	struct waiter *w = arg;

	if (w->producer)
		w->ret = push(w->r, w->dev, w->idx, w->len);
	else
		w->ret = pop_release(w->r, w->dev, &w->idx);
	return NULL;
}

static int start(struct waiter *w)
{
	w->ret = 1;
	return pthread_create(&w->t, NULL, waiter_thread, w);
}

static struct timespec deadline(void)
{
	return deadline_in(WAIT_S);
}

static int join(struct waiter *w)
{
	struct timespec dl = deadline();

	return pthread_timedjoin_np(w->t, NULL, &dl);
}

static bool wait_for(struct vfmig_reorder *r, int dev, uint64_t n, unsigned blocked)
{
	return reorder_wait_for(r, dev, n, blocked, WAIT_S);
}

static uint64_t waits(struct vfmig_reorder *r, unsigned dev)
{
	uint64_t n;

	pthread_mutex_lock(&r->lock);
	n = r->dev[dev].waits;
	pthread_mutex_unlock(&r->lock);
	return n;
}

TEST(reorder_wake_load_thread_only_for_its_next_chunk)
{
	struct vfmig_reorder r;
	struct waiter w = { .r = &r, .dev = 0 };
	char why[160];
	uint32_t idx;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 2, 1, 1 << 20, 64));
	ASSERT_EQ(0, start(&w));
	ASSERT_TRUE(wait_for(&r, 0, 1, 0));
	/* Another device's traffic: fills, pops, releases. */
	for (uint32_t i = 0; i < 200; i++) {
		ASSERT_EQ(0, push(&r, 1, i, 100));
		ASSERT_EQ(0, pop_release(&r, 1, &idx));
		ASSERT_EQ(i, idx);
	}
	/* Its own chunks, but not the one it needs; then that one reserved, not filled. */
	ASSERT_EQ(0, push(&r, 0, 2, 100));
	ASSERT_EQ(0, push(&r, 0, 1, 100));
	ASSERT_EQ(0, vfmig_reorder_reserve(&r, 0, 0, 0, 100, why, sizeof(why)));
	for (int i = 0; i < 1000; i++)
		sched_yield(); /* a woken thread would run and wait again */
	EXPECT_EQ(EBUSY, pthread_tryjoin_np(w.t, NULL));
	/* One wait, where the shared condvar woke it for each of ~800 changes. */
	EXPECT_GE(2, waits(&r, 0));
	vfmig_reorder_fill(&r, 0, 0, calloc(1, 100));
	ASSERT_EQ(0, join(&w));
	EXPECT_EQ(0, w.ret);
	EXPECT_EQ(0, w.idx);
	/* The chunks after it are there: no wait for them. */
	ASSERT_EQ(0, pop_release(&r, 0, &idx));
	ASSERT_EQ(0, pop_release(&r, 0, &idx));
	EXPECT_EQ(2, idx);
	EXPECT_GE(2, waits(&r, 0));
	vfmig_reorder_destroy(&r);
}

TEST(reorder_wake_abort_wakes_every_waiter)
{
	struct vfmig_reorder r;
	struct waiter ld[3], pr[2];
	char why[160];

	ASSERT_EQ(0, vfmig_reorder_init(&r, 3, 2, 100, 16));
	ASSERT_EQ(0, push(&r, 0, 1, 100)); /* budget full */
	/* Device 0's next chunk is on its way (reserved): not stuck, everybody waits. */
	ASSERT_EQ(0, vfmig_reorder_reserve(&r, 0, 0, 0, 10, why, sizeof(why)));
	for (unsigned i = 0; i < 3; i++) {
		ld[i] = (struct waiter){ .r = &r, .dev = i };
		ASSERT_EQ(0, start(&ld[i]));
	}
	for (unsigned i = 0; i < 2; i++) {
		pr[i] = (struct waiter){
			.r = &r, .dev = 0, .idx = 2 + i, .len = 50, .producer = true
		};
		ASSERT_EQ(0, start(&pr[i]));
	}
	for (unsigned i = 0; i < 3; i++)
		ASSERT_TRUE(wait_for(&r, (int)i, 1, 2));
	vfmig_reorder_abort(&r);
	for (unsigned i = 0; i < 3; i++) {
		ASSERT_EQ(0, join(&ld[i]));
		EXPECT_EQ(-ECANCELED, ld[i].ret);
	}
	for (unsigned i = 0; i < 2; i++) {
		ASSERT_EQ(0, join(&pr[i]));
		EXPECT_EQ(-ECANCELED, pr[i].ret);
	}
	vfmig_reorder_unreserve(&r, 0, 0);
	vfmig_reorder_destroy(&r);
}

TEST(reorder_wake_last_producer_gone_wakes_every_load_thread)
{
	struct vfmig_reorder r;
	struct waiter ld[3];
	char why[160];

	ASSERT_EQ(0, vfmig_reorder_init(&r, 3, 2, 1 << 20, 16));
	for (unsigned i = 0; i < 3; i++) {
		ld[i] = (struct waiter){ .r = &r, .dev = i };
		ASSERT_EQ(0, start(&ld[i]));
		ASSERT_TRUE(wait_for(&r, (int)i, 1, 0));
	}
	vfmig_reorder_producer_exit(&r);
	for (int i = 0; i < 1000; i++)
		sched_yield();
	for (unsigned i = 0; i < 3; i++)
		EXPECT_EQ(EBUSY, pthread_tryjoin_np(ld[i].t, NULL)); /* one producer is left */
	vfmig_reorder_producer_exit(&r);
	for (unsigned i = 0; i < 3; i++) {
		ASSERT_EQ(0, join(&ld[i]));
		EXPECT_EQ(-EPIPE, ld[i].ret);
	}
	EXPECT_NE(NULL, strstr(vfmig_reorder_why(&r, why, sizeof(why)), "missing idx 0"));
	vfmig_reorder_destroy(&r);
}

TEST(reorder_wake_stuck_is_detected_across_a_fill)
{
	struct vfmig_reorder r;
	struct waiter a = { .r = &r, .dev = 0, .idx = 3, .len = 50, .producer = true };
	char why[160];

	/* Two producers, budget 100 full with idx 1 and 2 (idx 2 still being read). */
	ASSERT_EQ(0, vfmig_reorder_init(&r, 2, 2, 100, 16));
	ASSERT_EQ(0, push(&r, 0, 1, 50));
	ASSERT_EQ(0, vfmig_reorder_reserve(&r, 0, 2, 0, 50, why, sizeof(why)));
	ASSERT_EQ(0, start(&a));
	ASSERT_TRUE(wait_for(&r, -1, 0, 1)); /* a stalled: 1 of 2 */
	/* idx 2 arrives: no room made, nothing for a load thread (idx 0 is missing). */
	vfmig_reorder_fill(&r, 0, 2, calloc(1, 50));
	/* The second producer stalls too: both wait for idx 0 behind them. */
	EXPECT_EQ(-ENOBUFS, push(&r, 0, 4, 50));
	ASSERT_EQ(0, join(&a));
	EXPECT_EQ(-ENOBUFS, a.ret);
	vfmig_reorder_destroy(&r);
}

TEST_HARNESS_MAIN
