// SPDX-License-Identifier: GPL-2.0-only
/*
 * review5_test.c - adversarial review of the payload pool (frame.c, commit
 * 8f48ca0) and of the reorder buffer's per-device load condvars (reorder.c,
 * commit a4f07fa): a session's end with another session alive, the pool
 * racing sessions that come and go, lost wakeups of a load thread (its
 * next chunk pushed before or after it waits, unreserved, the last
 * producer leaving after an unreserve), stuck detection reaching a load
 * thread that only waits on its own condvar, and random multi-producer
 * traffic that must either complete or fail cleanly, never hang.
 *
 * No sleep synchronises anything: threads are joined with a deadline and
 * conditions inside the reorder buffer are polled with a deadline.  Each TEST
 * runs in its own process (the harness forks), so the pool starts empty.
 */
#include <sched.h>
#include <time.h>

#include "kselftest_harness.h"
#include "reorder_wait.h"
#include "rogue.h"

#define WAIT_S 20

static struct vfmig_payload_pool_stats pool_st(void)
{
	struct vfmig_payload_pool_stats st;

	vfmig_payload_pool_stats(&st);
	return st;
}

static bool pool_ok(const struct vfmig_payload_pool_stats *st)
{
	return (!st->pooled || st->mapped <= st->cap) && st->pooled <= st->mapped &&
	       !st->unmap_errors;
}

static struct timespec deadline(void)
{
	return deadline_in(WAIT_S);
}

static int join_by(pthread_t t, const struct timespec *dl)
{
	return pthread_timedjoin_np(t, NULL, dl);
}

/* Payloads as the library has them: vfmig_payload_alloc(), whatever the length. */
static int push(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint32_t flags, uint32_t len)
{
	char why[160];
	uint8_t *p = vfmig_payload_alloc(len);
	int ret;

	if (!p)
		return -ENOMEM;
	memset(p, (int)idx, len > 64 ? 64 : len);
	ret = vfmig_reorder_push(r, dev, idx, flags, p, len, why, sizeof(why));
	if (ret)
		vfmig_payload_free(p, len);
	return ret;
}

static int pop_release(struct vfmig_reorder *r, uint32_t dev, uint32_t *idx, uint32_t *flags)
{
	struct vfmig_slot s;
	int ret = vfmig_reorder_pop(r, dev, &s, idx);

	if (ret)
		return ret;
	if (flags)
		*flags = s.flags;
	vfmig_payload_free(s.data, s.len);
	vfmig_reorder_release(r, dev, s.len);
	return 0;
}

static bool wait_for(struct vfmig_reorder *r, int dev, uint64_t n, unsigned blocked)
{
	return reorder_wait_for(r, dev, n, blocked, WAIT_S);
}

struct popper {
	struct vfmig_reorder *r;
	uint32_t dev, idx;
	int ret;
	pthread_t t;
};

static void *popper_thread(void *arg)
{
	struct popper *p = arg;

	p->ret = pop_release(p->r, p->dev, &p->idx, NULL);
	return NULL;
}

struct pusher {
	struct vfmig_reorder *r;
	uint32_t dev, idx, len;
	int ret;
	pthread_t t;
};

static void *pusher_thread(void *arg)
{
	struct pusher *p = arg;

	p->ret = push(p->r, p->dev, p->idx, 0, p->len);
	return NULL;
}

/* ---- the pool and several sessions ------------------------------------------------ */

/*
 * Two destinations in one process.  The second one's session ends: its freed
 * payloads must go with it (the RSS falls back), not stay in the pool under
 * the room of the first one, which does not use them.
 */
TEST(review5_pool_session_end_gives_back_its_buffers_while_another_lives)
{
	struct vfmig_reorder a, b;
	void *p[32];
	uint64_t rss_full, rss_after;

	ASSERT_EQ(0, vfmig_reorder_init(&a, 1, 1, 64 * MiB, 16)); /* alive, idle */
	ASSERT_EQ(0, vfmig_reorder_init(&b, 1, 1, 64 * MiB, 16));
	for (int i = 0; i < 32; i++) {
		ASSERT_NE(NULL, p[i] = vfmig_payload_alloc(MiB));
		memset(p[i], i, MiB);
	}
	for (int i = 0; i < 32; i++)
		vfmig_payload_free(p[i], MiB); /* b's session freed its payloads */
	EXPECT_EQ(32 * MiB, pool_st().pooled);
	rss_full = status_bytes("VmRSS:");
	vfmig_reorder_destroy(&b); /* b's session ends */
	rss_after = status_bytes("VmRSS:");
	TH_LOG("after the 2nd session: %llu MiB pooled, RSS %llu -> %llu MiB",
	       (unsigned long long)(pool_st().pooled / MiB), (unsigned long long)(rss_full / MiB),
	       (unsigned long long)(rss_after / MiB));
	EXPECT_EQ(0, pool_st().pooled);
	EXPECT_LE(rss_after + 24 * MiB, rss_full);
	vfmig_reorder_destroy(&a);
	EXPECT_EQ(0, pool_st().mapped);
	EXPECT_EQ(0, pool_st().cap);
}

struct churn {
	unsigned seed;
	atomic_bool *stop;
	int bad;
	uint64_t ops;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	void *p[6] = { 0 };
	size_t l[6] = { 0 };

	while (!atomic_load(c->stop)) {
		unsigned i = (unsigned)rand_r(&c->seed) % 6;
		struct vfmig_payload_pool_stats st;

		if (p[i]) {
			if (((uint8_t *)p[i])[l[i] - 1] != (uint8_t)l[i])
				c->bad++; /* somebody else wrote into our buffer */
			vfmig_payload_free(p[i], l[i]);
			p[i] = NULL;
		} else {
			static const size_t lens[] = { MiB, 256 << 10, 200000, 2 * MiB, MiB + 1 };

			l[i] = lens[(unsigned)rand_r(&c->seed) % ARRAY_SIZE(lens)];
			p[i] = vfmig_payload_alloc(l[i]);
			if (!p[i]) {
				c->bad++;
				break;
			}
			((uint8_t *)p[i])[l[i] - 1] = (uint8_t)l[i];
		}
		vfmig_payload_pool_stats(&st);
		if (!pool_ok(&st))
			c->bad++;
		c->ops++;
	}
	for (unsigned i = 0; i < 6; i++)
		vfmig_payload_free(p[i], l[i]);
	return NULL;
}

/* Sessions begin and end (grow/shrink) while others allocate and free. */
TEST(review5_pool_shrink_races_other_sessions)
{
	atomic_bool stop = false;
	struct churn c[3];
	pthread_t t[3];
	struct timespec dl;

	for (unsigned i = 0; i < 3; i++) {
		c[i] = (struct churn){ .seed = 7 * i + 1, .stop = &stop };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, churn_thread, &c[i]));
	}
	for (int k = 0; k < 2000; k++) {
		struct vfmig_reorder r;
		struct vfmig_payload_pool_stats st;

		ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 1, (uint64_t)(1 + k % 5) * MiB, 16));
		sched_yield();
		vfmig_reorder_destroy(&r);
		st = pool_st();
		EXPECT_TRUE(pool_ok(&st));
	}
	atomic_store(&stop, true);
	dl = deadline();
	for (unsigned i = 0; i < 3; i++) {
		ASSERT_EQ(0, join_by(t[i], &dl));
		EXPECT_EQ(0, c[i].bad);
	}
	EXPECT_EQ(0, pool_st().cap);
	EXPECT_EQ(0, pool_st().mapped);
	EXPECT_EQ(0, pool_st().pooled);
	EXPECT_EQ(0, pool_st().unmap_errors);
}

/* ---- load threads: no lost wakeup -------------------------------------------------- */

/* Its next chunk pushed before it pops, another one later while it waits. */
TEST(review5_wake_next_chunk_before_and_after_the_wait)
{
	struct vfmig_reorder r;
	struct popper ld = { .r = &r, .dev = 0 };
	struct timespec dl;
	uint32_t idx;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 2, 1, 1 << 20, 16));
	ASSERT_EQ(0, push(&r, 0, 1, 0, 100)); /* later chunk first */
	ASSERT_EQ(0, push(&r, 0, 0, 0, 100));
	ASSERT_EQ(0, pop_release(&r, 0, &idx, NULL));
	ASSERT_EQ(0, idx);
	/* next_idx moved to 1, already present: no wait. */
	ASSERT_EQ(0, pop_release(&r, 0, &idx, NULL));
	ASSERT_EQ(1, idx);
	EXPECT_EQ(0, r.dev[0].waits);
	/* Now it waits for 2; 3 then 2 arrive; idx 2 is next_idx when filled. */
	ASSERT_EQ(0, pthread_create(&ld.t, NULL, popper_thread, &ld));
	ASSERT_TRUE(wait_for(&r, 0, 1, 0));
	ASSERT_EQ(0, push(&r, 0, 3, 0, 100));
	ASSERT_EQ(0, push(&r, 0, 2, 0, 100));
	dl = deadline();
	ASSERT_EQ(0, join_by(ld.t, &dl));
	EXPECT_EQ(0, ld.ret);
	EXPECT_EQ(2, ld.idx);
	vfmig_reorder_destroy(&r);
}

/*
 * The next chunk was reserved (being read) when the load thread went to wait;
 * its channel fails (unreserve) and ends: the last producer leaving must wake
 * the load thread to -EPIPE.
 */
TEST(review5_wake_unreserve_then_last_producer_leaves)
{
	struct vfmig_reorder r;
	struct popper ld = { .r = &r, .dev = 1 };
	struct timespec dl;
	char why[160];

	ASSERT_EQ(0, vfmig_reorder_init(&r, 2, 1, 1 << 20, 16));
	ASSERT_EQ(0, vfmig_reorder_reserve(&r, 1, 0, 0, 100, why, sizeof(why)));
	ASSERT_EQ(0, pthread_create(&ld.t, NULL, popper_thread, &ld));
	ASSERT_TRUE(wait_for(&r, 1, 1, 0));
	vfmig_reorder_unreserve(&r, 1, 0);
	vfmig_reorder_producer_exit(&r);
	dl = deadline();
	ASSERT_EQ(0, join_by(ld.t, &dl));
	EXPECT_EQ(-EPIPE, ld.ret);
	vfmig_reorder_destroy(&r);
}

/*
 * Budget full of device 0's later chunks; device 0's next chunk is reserved
 * by producer B while producer A waits for room, and the load thread of
 * device 0 waits for it.  B's read fails (unreserve) and B leaves: A alone
 * is left, stalled, nothing can progress: -ENOBUFS must reach the load
 * thread, which only waits on its own condvar.
 */
TEST(review5_wake_stuck_after_unreserve_reaches_the_load_thread)
{
	struct vfmig_reorder r;
	struct popper ld = { .r = &r, .dev = 0 };
	struct pusher a = { .r = &r, .dev = 0, .idx = 3, .len = 60 };
	struct timespec dl;
	char why[160];

	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 2, 100, 16));
	ASSERT_EQ(0, push(&r, 0, 1, 0, 50));
	ASSERT_EQ(0, push(&r, 0, 2, 0, 50));					/* budget full */
	ASSERT_EQ(0, vfmig_reorder_reserve(&r, 0, 0, 0, 10, why, sizeof(why))); /* B */
	ASSERT_EQ(0, pthread_create(&ld.t, NULL, popper_thread, &ld));
	ASSERT_TRUE(wait_for(&r, 0, 1, 0));
	ASSERT_EQ(0, pthread_create(&a.t, NULL, pusher_thread, &a));
	ASSERT_TRUE(wait_for(&r, -1, 0, 1));
	vfmig_reorder_unreserve(&r, 0, 0); /* B's read failed */
	vfmig_reorder_producer_exit(&r);   /* B ends */
	dl = deadline();
	ASSERT_EQ(0, join_by(a.t, &dl));
	ASSERT_EQ(0, join_by(ld.t, &dl));
	EXPECT_EQ(-ENOBUFS, a.ret);
	EXPECT_EQ(-ENOBUFS, ld.ret);
	vfmig_reorder_destroy(&r);
}

/* ---- random traffic: complete or fail cleanly, never hang -------------------------- */

#define ST_DEV 3
#define ST_PROD 4
#define ST_N 300

struct stress {
	struct vfmig_reorder r;
	unsigned seed;
	bool backwards; /* producers push their share in descending idx: must get stuck */
	int pret[ST_PROD], lret[ST_DEV];
	uint32_t loaded[ST_DEV];
	bool order_ok[ST_DEV];
};

struct st_arg {
	struct stress *s;
	unsigned i;
	pthread_t t;
};

static uint32_t st_len(uint32_t dev, uint32_t idx)
{
	return 20 + (dev * 7919u + idx * 104729u) % 200;
}

static void *st_producer(void *arg)
{
	struct st_arg *a = arg;
	struct stress *s = a->s;
	unsigned seed = s->seed * 31 + a->i;
	int ret = 0;

	for (uint32_t k = 0; k < ST_N && !ret; k++) {
		uint32_t idx = s->backwards ? ST_N - 1 - k : k;

		if (idx % ST_PROD != a->i)
			continue;
		for (uint32_t d = 0; d < ST_DEV && !ret; d++) {
			if (rand_r(&seed) % 4 == 0)
				sched_yield();
			ret = push(&s->r, d, idx, idx == ST_N - 1 ? VFMIG_FLAG_CONFIG : 0,
				   idx == ST_N - 1 ? 16 : st_len(d, idx));
		}
	}
	s->pret[a->i] = ret;
	vfmig_reorder_producer_exit(&s->r);
	return NULL;
}

static void *st_loader(void *arg)
{
	struct st_arg *a = arg;
	struct stress *s = a->s;
	unsigned seed = s->seed * 17 + a->i;
	int ret;

	s->order_ok[a->i] = true;
	for (;;) {
		uint32_t idx, flags;

		ret = pop_release(&s->r, a->i, &idx, &flags);
		if (ret)
			break;
		if (idx != s->loaded[a->i])
			s->order_ok[a->i] = false;
		s->loaded[a->i]++;
		if (rand_r(&seed) % 3 == 0)
			sched_yield();
		if (flags & VFMIG_FLAG_CONFIG)
			break;
	}
	s->lret[a->i] = ret;
	return NULL;
}

/* Run one round; false if a thread did not end by the deadline (a hang). */
static bool st_run(struct stress *s, uint64_t budget)
{
	struct st_arg pa[ST_PROD], la[ST_DEV];
	struct timespec dl;
	bool ok = true;

	if (vfmig_reorder_init(&s->r, ST_DEV, ST_PROD, budget, 64))
		return false;
	for (unsigned i = 0; i < ST_DEV; i++) {
		la[i] = (struct st_arg){ .s = s, .i = i };
		pthread_create(&la[i].t, NULL, st_loader, &la[i]);
	}
	for (unsigned i = 0; i < ST_PROD; i++) {
		pa[i] = (struct st_arg){ .s = s, .i = i };
		pthread_create(&pa[i].t, NULL, st_producer, &pa[i]);
	}
	dl = deadline();
	for (unsigned i = 0; i < ST_PROD; i++)
		if (join_by(pa[i].t, &dl)) {
			ok = false;
			break;
		}
	for (unsigned i = 0; ok && i < ST_DEV; i++)
		if (join_by(la[i].t, &dl))
			ok = false;
	if (!ok) {
		/* A hang: unblock everything so that the process can report it. */
		vfmig_reorder_abort(&s->r);
		for (unsigned i = 0; i < ST_PROD; i++)
			pthread_join(pa[i].t, NULL);
		for (unsigned i = 0; i < ST_DEV; i++)
			pthread_join(la[i].t, NULL);
	}
	vfmig_reorder_destroy(&s->r);
	return ok;
}

/* Producers push in idx order: whoever holds the lowest missing chunk gets in. */
TEST(review5_stress_random_traffic_completes)
{
	for (unsigned round = 0; round < 40; round++) {
		struct stress s = { .seed = round + 1 };

		ASSERT_TRUE(st_run(&s, 600 + 100 * (round % 5)));
		for (unsigned i = 0; i < ST_PROD; i++)
			ASSERT_EQ(0, s.pret[i]);
		for (unsigned i = 0; i < ST_DEV; i++) {
			ASSERT_EQ(0, s.lret[i]);
			ASSERT_EQ(ST_N, s.loaded[i]);
			ASSERT_TRUE(s.order_ok[i]);
		}
	}
}

/* Producers push backwards in a budget of a few chunks: stuck, every thread told so. */
TEST(review5_stress_backwards_traffic_fails_stuck_everywhere)
{
	for (unsigned round = 0; round < 40; round++) {
		struct stress s = { .seed = round + 1, .backwards = true };

		ASSERT_TRUE(st_run(&s, 500));
		for (unsigned i = 0; i < ST_PROD; i++)
			ASSERT_EQ(-ENOBUFS, s.pret[i]);
		for (unsigned i = 0; i < ST_DEV; i++)
			ASSERT_EQ(-ENOBUFS, s.lret[i]);
	}
}

TEST_HARNESS_MAIN
