// SPDX-License-Identifier: GPL-2.0-only
/*
 * reorder_test - the destination reorder buffer: in-order delivery of
 * out-of-order chunks, duplicates, gaps, idx limits, the byte budget with
 * backpressure and its stuck detection.
 */
#include "kselftest_harness.h"
#include "test_util.h"

static uint8_t *chunk(uint32_t len, uint8_t v)
{
	uint8_t *p = malloc(len ? len : 1);

	memset(p, v, len ? len : 1);
	return p;
}

static int push(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint32_t flags, uint32_t len)
{
	char why[160];
	uint8_t *p = chunk(len, (uint8_t)idx);
	int ret = vfmig_reorder_push(r, dev, idx, flags, p, len, why, sizeof(why));

	if (ret)
		free(p);
	return ret;
}

/* Pop one chunk, check its idx, release it. */
static int pop_check(struct vfmig_reorder *r, uint32_t dev, uint32_t want_idx, uint32_t *flags)
{
	struct vfmig_slot s;
	uint32_t idx;
	int ret = vfmig_reorder_pop(r, dev, &s, &idx);

	if (ret)
		return ret;
	if (flags)
		*flags = s.flags;
	free(s.data);
	vfmig_reorder_release(r, dev, s.len);
	return idx == want_idx ? 0 : -1000 - (int)idx;
}

TEST(multifd_reorder_out_of_order_chunks)
{
	struct vfmig_reorder r;
	uint32_t fl;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 2, 2, 1 << 20, 64));
	ASSERT_EQ(0, push(&r, 0, 3, 0, 100));
	ASSERT_EQ(0, push(&r, 1, 1, 0, 100));
	ASSERT_EQ(0, push(&r, 0, 1, 0, 100));
	ASSERT_EQ(0, push(&r, 0, 4, VFMIG_FLAG_CONFIG, 10));
	ASSERT_EQ(0, push(&r, 0, 0, 0, 100));
	ASSERT_EQ(0, push(&r, 0, 2, 0, 100));
	ASSERT_EQ(0, push(&r, 1, 0, 0, 100));
	ASSERT_EQ(0, push(&r, 1, 2, VFMIG_FLAG_CONFIG, 0));
	for (uint32_t i = 0; i < 4; i++) {
		ASSERT_EQ(0, pop_check(&r, 0, i, &fl));
		EXPECT_EQ(0, fl);
	}
	ASSERT_EQ(0, pop_check(&r, 0, 4, &fl));
	EXPECT_EQ(VFMIG_FLAG_CONFIG, fl);
	ASSERT_EQ(0, pop_check(&r, 1, 0, NULL));
	ASSERT_EQ(0, pop_check(&r, 1, 1, NULL));
	ASSERT_EQ(0, pop_check(&r, 1, 2, &fl));
	EXPECT_EQ(VFMIG_FLAG_CONFIG, fl);
	EXPECT_EQ(610, vfmig_reorder_peak(&r));
	vfmig_reorder_destroy(&r);
}

TEST(multifd_reorder_duplicate_idx_is_an_error)
{
	struct vfmig_reorder r;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 1, 1 << 20, 16));
	ASSERT_EQ(0, push(&r, 0, 1, 0, 10));
	EXPECT_EQ(-EEXIST, push(&r, 0, 1, 0, 10)); /* still queued */
	ASSERT_EQ(0, push(&r, 0, 0, 0, 10));
	ASSERT_EQ(0, pop_check(&r, 0, 0, NULL));
	EXPECT_EQ(-EEXIST, push(&r, 0, 0, 0, 10)); /* already loaded */
	vfmig_reorder_destroy(&r);
}

TEST(multifd_reorder_gap_fails_when_all_channels_end)
{
	struct vfmig_reorder r;
	char why[160];

	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 2, 1 << 20, 16));
	ASSERT_EQ(0, push(&r, 0, 0, 0, 10));
	ASSERT_EQ(0, push(&r, 0, 2, VFMIG_FLAG_CONFIG, 10)); /* idx 1 never comes */
	vfmig_reorder_producer_exit(&r);
	vfmig_reorder_producer_exit(&r);
	ASSERT_EQ(0, pop_check(&r, 0, 0, NULL));
	EXPECT_EQ(-EPIPE, pop_check(&r, 0, 1, NULL));
	vfmig_reorder_why(&r, why, sizeof(why));
	EXPECT_NE(NULL, strstr(why, "missing idx 1"));
	/* Sticky: every later call sees it. */
	EXPECT_EQ(-EPIPE, push(&r, 0, 1, 0, 10));
	vfmig_reorder_destroy(&r);
}

TEST(multifd_reorder_idx_limits)
{
	struct vfmig_reorder r;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 2, 1, 1 << 20, 16));
	EXPECT_EQ(-ENODEV, push(&r, 2, 0, 0, 10));
	EXPECT_EQ(-ERANGE, push(&r, 0, VFMIG_IDX_INVALID, 0, 10));
	ASSERT_EQ(0, push(&r, 0, 5, 0, 10));
	/* config before an idx already seen */
	EXPECT_EQ(-ERANGE, push(&r, 0, 3, VFMIG_FLAG_CONFIG, 10));
	ASSERT_EQ(0, push(&r, 0, 6, VFMIG_FLAG_CONFIG, 10));
	/* nothing after the config chunk, and only one config chunk */
	EXPECT_EQ(-ERANGE, push(&r, 0, 7, 0, 10));
	EXPECT_EQ(-EPROTO, push(&r, 0, 4, VFMIG_FLAG_CONFIG, 10));
	vfmig_reorder_destroy(&r);
}

TEST(multifd_reorder_budget_exceeded_is_explained)
{
	struct vfmig_reorder r;
	char why[160];

	/* One producer, budget 100: chunks 1 and 2 fill it, chunk 3 must wait, and
	 * chunk 0 (the one that would unblock) is behind it: stuck. */
	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 1, 100, 16));
	ASSERT_EQ(0, push(&r, 0, 1, 0, 50));
	ASSERT_EQ(0, push(&r, 0, 2, 0, 50));
	EXPECT_EQ(-ENOBUFS, push(&r, 0, 3, 0, 50));
	vfmig_reorder_why(&r, why, sizeof(why));
	EXPECT_NE(NULL, strstr(why, "--max-queued-bytes"));
	EXPECT_EQ(-ENOBUFS, pop_check(&r, 0, 0, NULL));
	vfmig_reorder_destroy(&r);
}

TEST(multifd_reorder_window_exceeded_with_nothing_to_load_is_stuck)
{
	struct vfmig_reorder r;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 1, 1 << 20, 4));
	/* idx far beyond the window: the producer would wait forever. */
	EXPECT_EQ(-ENOBUFS, push(&r, 0, 1000000, 0, 10));
	vfmig_reorder_destroy(&r);
}

TEST(multifd_reorder_needed_chunk_is_admitted_over_budget)
{
	struct vfmig_reorder r;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 2, 100, 16));
	ASSERT_EQ(0, push(&r, 0, 1, 0, 100)); /* budget full */
	ASSERT_EQ(0, push(&r, 0, 0, 0, 100)); /* next needed: admitted anyway */
	ASSERT_EQ(0, pop_check(&r, 0, 0, NULL));
	ASSERT_EQ(0, pop_check(&r, 0, 1, NULL));
	EXPECT_EQ(200, vfmig_reorder_peak(&r));
	vfmig_reorder_destroy(&r);
}

struct bp {
	struct vfmig_reorder *r;
	int ret;
};

static void *blocked_pusher(void *arg)
{
	struct bp *b = arg;

	b->ret = push(b->r, 0, 1, 0, 100); /* waits for room */
	return NULL;
}

TEST(multifd_reorder_backpressure_waits_for_the_load_thread)
{
	struct vfmig_reorder r;
	struct bp b = { &r, -1 };
	struct vfmig_slot s;
	uint32_t idx;
	pthread_t t;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 2, 100, 16));
	ASSERT_EQ(0, push(&r, 0, 0, 0, 100)); /* budget full with the needed chunk */
	ASSERT_EQ(0, pthread_create(&t, NULL, blocked_pusher, &b));
	/* Wait until the pusher is blocked (condition observed under the lock, no sleep). */
	for (;;) {
		unsigned blocked;

		pthread_mutex_lock(&r.lock);
		blocked = r.blocked;
		pthread_mutex_unlock(&r.lock);
		if (blocked)
			break;
		sched_yield();
	}
	ASSERT_EQ(0, vfmig_reorder_pop(&r, 0, &s, &idx));
	EXPECT_EQ(0, idx);
	free(s.data);
	vfmig_reorder_release(&r, 0, s.len); /* frees the budget: the pusher proceeds */
	pthread_join(t, NULL);
	EXPECT_EQ(0, b.ret);
	ASSERT_EQ(0, pop_check(&r, 0, 1, NULL));
	vfmig_reorder_destroy(&r);
}

TEST(multifd_reorder_abort_wakes_waiters)
{
	struct vfmig_reorder r;
	struct bp b = { &r, 0 };
	pthread_t t;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 2, 100, 16));
	ASSERT_EQ(0, push(&r, 0, 0, 0, 100));
	ASSERT_EQ(0, pthread_create(&t, NULL, blocked_pusher, &b));
	vfmig_reorder_abort(&r);
	pthread_join(t, NULL);
	EXPECT_EQ(-ECANCELED, b.ret);
	vfmig_reorder_destroy(&r);
}

TEST(multifd_reorder_init_rejects_bad_sizes)
{
	struct vfmig_reorder r;

	EXPECT_EQ(-EINVAL, vfmig_reorder_init(&r, 0, 1, 100, 16));
	EXPECT_EQ(-EINVAL, vfmig_reorder_init(&r, VFMIG_MAX_DEVICES + 1, 1, 100, 16));
	EXPECT_EQ(-EINVAL, vfmig_reorder_init(&r, 1, 1, 0, 16));
	EXPECT_EQ(-EINVAL, vfmig_reorder_init(&r, 1, 1, 100, 0));
}

TEST_HARNESS_MAIN
