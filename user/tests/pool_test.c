// SPDX-License-Identifier: GPL-2.0-only
/*
 * pool_test - the payload buffer pool (frame.c): freed payload mappings are
 * reused for the same length without a new mapping or page faults, the pool
 * only keeps memory within the room registered for it (the reorder budget),
 * so in use + pooled never exceeds max(room, in use), and the session's end
 * gives the memory back.  Each TEST runs in its own process (the harness
 * forks), so the pool starts empty.
 */
#include <sys/resource.h>

#include "kselftest_harness.h"
#include "rogue.h"

static struct vfmig_payload_pool_stats pool_st(void)
{
	struct vfmig_payload_pool_stats st;

	vfmig_payload_pool_stats(&st);
	return st;
}

static long minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		return -1;
	return ru.ru_minflt;
}

static uint64_t pagelen(size_t len)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);

	return (len + pg - 1) / pg * pg;
}

/* The pool's invariant, and nothing lost or leaked. */
static bool pool_ok(const struct vfmig_payload_pool_stats *st)
{
	return (!st->pooled || st->mapped <= st->cap) && st->pooled <= st->mapped &&
	       !st->unmap_errors;
}

TEST(pool_small_payloads_come_from_the_heap)
{
	void *p = vfmig_payload_alloc(100);

	ASSERT_NE(NULL, p);
	EXPECT_EQ(0, pool_st().mapped);
	vfmig_payload_free(p, 100);
	EXPECT_EQ(0, pool_st().pooled);
}

TEST(pool_without_room_unmaps_on_free)
{
	void *p = vfmig_payload_alloc(MiB);

	ASSERT_NE(NULL, p);
	EXPECT_EQ(MiB, pool_st().mapped);
	vfmig_payload_free(p, MiB);
	EXPECT_EQ(0, pool_st().mapped);
	EXPECT_EQ(0, pool_st().pooled);
}

TEST(pool_reuses_a_freed_buffer_without_page_faults)
{
	uint8_t *p, *q;
	long f0, f1;

	vfmig_payload_pool_grow(4 * MiB);
	p = vfmig_payload_alloc(MiB);
	ASSERT_NE(NULL, p);
	memset(p, 1, MiB); /* faults its pages in, once */
	vfmig_payload_free(p, MiB);
	EXPECT_EQ(MiB, pool_st().pooled);
	q = vfmig_payload_alloc(MiB);
	EXPECT_EQ(p, q);
	f0 = minflt();
	memset(q, 2, MiB);
	f1 = minflt();
	/* 256 pages were faulted the first time; a reused buffer costs none. */
	EXPECT_GE(4, f1 - f0);
	EXPECT_EQ(1, pool_st().hits);
	EXPECT_EQ(1, pool_st().misses);
	vfmig_payload_free(q, MiB);
	vfmig_payload_pool_shrink(4 * MiB);
	EXPECT_EQ(0, pool_st().mapped);
	EXPECT_EQ(0, pool_st().cap);
}

TEST(pool_keeps_no_more_than_its_room)
{
	void *p[5];

	vfmig_payload_pool_grow(3 * MiB);
	for (int i = 0; i < 5; i++)
		ASSERT_NE(NULL, p[i] = vfmig_payload_alloc(MiB));
	EXPECT_EQ(5 * MiB, pool_st().mapped); /* in use may exceed the room... */
	for (int i = 0; i < 5; i++) {
		struct vfmig_payload_pool_stats st;

		vfmig_payload_free(p[i], MiB);
		st = pool_st();
		EXPECT_TRUE(pool_ok(&st));
	}
	/* ...but what stays mapped once freed is within it. */
	EXPECT_EQ(3 * MiB, pool_st().pooled);
	EXPECT_EQ(3 * MiB, pool_st().mapped);
	vfmig_payload_pool_shrink(3 * MiB);
	EXPECT_EQ(0, pool_st().mapped);
}

TEST(pool_new_lengths_evict_within_the_room)
{
	/* More lengths than bins, in use beyond the room at times. */
	static const size_t lens[] = { MiB,	  MiB + 4096, 256 << 10, 512 << 10,
				       768 << 10, 2 * MiB,    200000 };
	void *p[16] = { 0 };
	size_t l[16] = { 0 };
	uint64_t inuse = 0;
	unsigned seed = 1;

	vfmig_payload_pool_grow(4 * MiB);
	for (int op = 0; op < 20000; op++) {
		unsigned i = (unsigned)rand_r(&seed) % 16;
		struct vfmig_payload_pool_stats st;

		if (p[i]) {
			vfmig_payload_free(p[i], l[i]);
			inuse -= pagelen(l[i]);
			p[i] = NULL;
		} else {
			l[i] = lens[(unsigned)rand_r(&seed) % ARRAY_SIZE(lens)];
			p[i] = vfmig_payload_alloc(l[i]);
			ASSERT_NE(NULL, p[i]);
			((uint8_t *)p[i])[l[i] - 1] = 1;
			inuse += pagelen(l[i]);
		}
		st = pool_st();
		ASSERT_TRUE(pool_ok(&st));
		ASSERT_EQ(inuse + st.pooled, st.mapped);
		ASSERT_GE(MAX(st.cap, inuse), st.mapped);
	}
	for (unsigned i = 0; i < 16; i++)
		vfmig_payload_free(p[i], l[i]);
	EXPECT_GT(pool_st().hits, 0);
	EXPECT_GT(pool_st().evicted, 0);
	vfmig_payload_pool_shrink(4 * MiB);
	EXPECT_EQ(0, pool_st().mapped);
}

struct churn {
	unsigned seed;
	int bad;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	void *p[4] = { 0 };
	size_t l[4] = { 0 };

	for (int op = 0; op < 20000; op++) {
		unsigned i = (unsigned)rand_r(&c->seed) % 4;
		struct vfmig_payload_pool_stats st;

		if (p[i]) {
			vfmig_payload_free(p[i], l[i]);
			p[i] = NULL;
		} else {
			l[i] = (rand_r(&c->seed) % 3 + 1) * (256 << 10);
			p[i] = vfmig_payload_alloc(l[i]);
			if (!p[i]) {
				c->bad++;
				break;
			}
			memset(p[i], (int)op, 64);
		}
		vfmig_payload_pool_stats(&st);
		if (!pool_ok(&st))
			c->bad++;
	}
	for (unsigned i = 0; i < 4; i++)
		vfmig_payload_free(p[i], l[i]);
	return NULL;
}

TEST(pool_is_thread_safe)
{
	struct churn c[4];
	pthread_t t[4];
	struct timespec dl;

	vfmig_payload_pool_grow(2 * MiB);
	for (unsigned i = 0; i < 4; i++) {
		c[i] = (struct churn){ .seed = i + 1 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, churn_thread, &c[i]));
	}
	ASSERT_EQ(0, clock_gettime(CLOCK_REALTIME, &dl));
	dl.tv_sec += 20;
	for (unsigned i = 0; i < 4; i++) {
		ASSERT_EQ(0, pthread_timedjoin_np(t[i], NULL, &dl));
		EXPECT_EQ(0, c[i].bad);
	}
	EXPECT_GE(2 * MiB, pool_st().mapped); /* all freed: only the pool's room is left */
	vfmig_payload_pool_shrink(2 * MiB);
	EXPECT_EQ(0, pool_st().mapped);
	EXPECT_EQ(0, pool_st().unmap_errors);
}

TEST(pool_room_is_the_reorder_budget_and_its_end_frees_the_memory)
{
	struct vfmig_reorder r;
	void *p[32];
	uint64_t rss_full, rss_after;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 1, 1, 64 * MiB, 16));
	EXPECT_EQ(64 * MiB, pool_st().cap);
	for (int i = 0; i < 32; i++) {
		ASSERT_NE(NULL, p[i] = vfmig_payload_alloc(MiB));
		memset(p[i], i, MiB);
	}
	for (int i = 0; i < 32; i++)
		vfmig_payload_free(p[i], MiB);
	EXPECT_EQ(32 * MiB, pool_st().pooled);
	rss_full = status_bytes("VmRSS:");
	vfmig_reorder_destroy(&r);
	rss_after = status_bytes("VmRSS:");
	EXPECT_EQ(0, pool_st().cap);
	EXPECT_EQ(0, pool_st().mapped);
	TH_LOG("RSS %llu MiB with the pool full, %llu MiB after the session",
	       (unsigned long long)(rss_full / MiB), (unsigned long long)(rss_after / MiB));
	EXPECT_LE(rss_after + 30 * MiB, rss_full);
}

TEST(pool_serves_a_migration_and_is_empty_after_it)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 2));
	for (unsigned i = 0; i < 2; i++) {
		vfmig_device_close(p.src[i]);
		vfmig_device_close(p.dst[i]);
		p.src[i] = fake("src", 16 << 20, ALL_FLAGS, 100 + i);
		p.dst[i] = fake("dst", 16 << 20, ALL_FLAGS, 200 + i);
		ASSERT_NE(NULL, p.src[i]);
		ASSERT_NE(NULL, p.dst[i]);
	}
	p.so.chunk_size = p.dopt.chunk_size = 1 << 20;
	p.so.channels = 2;
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_EQ(VFMIG_OK, p.src_rc);
	EXPECT_EQ(VFMIG_OK, p.dst_rc);
	for (unsigned i = 0; i < 2; i++)
		EXPECT_EQ(p.src_digest[i], vfmig_fake_digest(p.dst[i]));
	TH_LOG("pool: %llu hits, %llu new mappings", (unsigned long long)pool_st().hits,
	       (unsigned long long)pool_st().misses);
	EXPECT_GT(pool_st().hits, pool_st().misses);
	/* The destination's session ended: its room and its buffers are gone. */
	EXPECT_EQ(0, pool_st().cap);
	EXPECT_EQ(0, pool_st().mapped);
	pair_fini(&p);
}

TEST_HARNESS_MAIN
