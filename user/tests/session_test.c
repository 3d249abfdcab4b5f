// SPDX-License-Identifier: GPL-2.0-only
/*
 * session_test - whole migrations of fake devices between a source and a
 * destination session over UNIX sockets (two threads, real sockets), and
 * failure injection: whatever fails, the source ends RUNNING with its data
 * intact, the destination is reset, and both report what failed.
 */
#include "kselftest_harness.h"
#include "test_util.h"

#define NOPRE (VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P)

/* Run the pair: both sides succeed and every destination device equals its source. */
static void run_migrated(struct __test_metadata *_metadata, struct pair *p)
{
	ASSERT_EQ(0, pair_run(p));
	/* The source may have changed during precopy: compared with it as stopped. */
	EXPECT_PAIR_MIGRATED(p);
}

static void expect_rolled_back(struct __test_metadata *_metadata, struct pair *p)
{
	EXPECT_NE(VFMIG_OK, p->src_rc);
	EXPECT_NE(VFMIG_OK, p->dst_rc);
	EXPECT_NE(VFMIG_ERR_ROLLBACK, p->src_rc) TH_LOG("%s", vfmig_session_error(p->ss)->msg);
	for (unsigned i = 0; i < p->n; i++) {
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p->src[i]));
		EXPECT_EQ(p->src_digest[i], vfmig_fake_digest(p->src[i]));
		EXPECT_EQ(0, vfmig_fake_resets(p->src[i]));
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p->dst[i]));
		EXPECT_EQ(1, vfmig_fake_resets(p->dst[i]));
	}
}

static void replace_src(struct pair *p, unsigned i, const struct vfmig_fake_cfg *cfg)
{
	vfmig_device_close(p->src[i]);
	p->src[i] = vfmig_fake_new("src", cfg);
}

static void replace_dst(struct pair *p, unsigned i, const struct vfmig_fake_cfg *cfg)
{
	vfmig_device_close(p->dst[i]);
	p->dst[i] = vfmig_fake_new("dst", cfg);
}

/* Device pair i becomes two fakes of @size with @flags, seeded @sseed and @dseed. */
static void replace_pair(struct pair *p, unsigned i, size_t size, uint64_t flags, uint32_t sseed,
			 uint32_t dseed)
{
	vfmig_device_close(p->src[i]);
	vfmig_device_close(p->dst[i]);
	p->src[i] = fake("s", size, flags, sseed);
	p->dst[i] = fake("d", size, flags, dseed);
}

TEST(session_migrates_one_device_with_precopy_and_switchover_ack)
{
	const struct vfmig_stats *st;
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	run_migrated(_metadata, &p);
	st = vfmig_session_stats(p.ss);
	EXPECT_TRUE(st->switchover_ack);
	EXPECT_TRUE(st->multifd);
	EXPECT_LE(1, st->precopy_iterations);
	EXPECT_LE(1 << 20, st->precopy_bytes); /* initial bytes: the whole memory */
	EXPECT_EQ(256, st->config_bytes);
	EXPECT_LT(0, st->downtime_ns);
	EXPECT_EQ(st->precopy_bytes, vfmig_session_stats(p.ds)->precopy_bytes);
	pair_fini(&p);
}

TEST(session_migrates_three_devices_two_phase_p2p)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 3));
	p.so.channels = 3;
	run_migrated(_metadata, &p);
	EXPECT_EQ(3, vfmig_session_stats(p.ds)->nchannels);
	pair_fini(&p);
}

TEST(session_migrates_stop_copy_only_devices_over_multifd)
{
	struct pair p;
	uint64_t total = 0;

	ASSERT_EQ(0, pair_init(&p, 2));
	for (unsigned i = 0; i < 2; i++)
		replace_pair(&p, i, 2 << 20, NOPRE, 10 + i, 20 + i);
	p.so.channels = 4;
	run_migrated(_metadata, &p);
	EXPECT_EQ(0, vfmig_session_stats(p.ss)->precopy_iterations);
	EXPECT_FALSE(vfmig_session_stats(p.ss)->switchover_ack);
	for (unsigned c = 1; c <= 4; c++) {
		EXPECT_LT(0,
			  vfmig_session_stats(p.ss)->ch[c].packets); /* round robin used them all */
		total += vfmig_session_stats(p.ds)->ch[c].bytes;
	}
	EXPECT_LE(4ull << 20, total);
	pair_fini(&p);
}

TEST(session_migrates_with_multifd_off)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 2));
	p.so.multifd = VFMIG_OFF;
	run_migrated(_metadata, &p);
	EXPECT_FALSE(vfmig_session_stats(p.ss)->multifd);
	pair_fini(&p);
}

TEST(session_dirty_pages_need_more_iterations)
{
	struct vfmig_fake_cfg cfg = fake_cfg(1 << 20, ALL_FLAGS, 100);
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	cfg.dirty_pages_per_info = 8;
	cfg.dirty_info_calls = 6;
	replace_src(&p, 0, &cfg);
	p.so.downtime_limit_ms = 0; /* only max-iterations ends precopy */
	p.so.max_iterations = 5;
	run_migrated(_metadata, &p);
	/* At least max-iterations: the switchover also waits for the ack. */
	EXPECT_LE(5, vfmig_session_stats(p.ss)->precopy_iterations);
	EXPECT_NE(p.src_digest[0], vfmig_fake_digest(p.src[0])); /* it did change */
	EXPECT_EQ(VFMIG_CONVERGE_MAX_ITER, vfmig_session_stats(p.ss)->converge);
	EXPECT_LT(1 << 20, vfmig_session_stats(p.ss)->precopy_bytes); /* re-sent dirty pages */
	pair_fini(&p);
}

TEST(session_switchover_ack_off_and_mtty_style_eof)
{
	struct vfmig_fake_cfg cfg = fake_cfg(1 << 20, ALL_FLAGS, 100);
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	cfg.zero_for_enomsg = true; /* read() returns 0, not -ENOMSG, at the temporary end */
	replace_src(&p, 0, &cfg);
	p.so.switchover_ack = VFMIG_OFF;
	run_migrated(_metadata, &p);
	EXPECT_FALSE(vfmig_session_stats(p.ds)->switchover_ack);
	pair_fini(&p);
}

TEST(session_load_config_after_iter)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 3));
	p.dopt.load_config_after_iter = VFMIG_ON;
	run_migrated(_metadata, &p);
	EXPECT_TRUE(vfmig_session_stats(p.ss)->load_config_after_iter);
	pair_fini(&p);
}

TEST(session_small_budget_backpressure_single_channel)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	replace_pair(&p, 0, 4 << 20, NOPRE, 1, 2);
	p.so.multifd = VFMIG_OFF;
	p.dopt.max_queued_bytes = 2 * (64 << 10);
	run_migrated(_metadata, &p);
	/* budget + one needed chunk per device */
	EXPECT_GE(2 * (64 << 10) + (64 << 10), vfmig_session_stats(p.ds)->reorder_peak_bytes);
	pair_fini(&p);
}

/*
 * A save thread keeps reading its device while its previous chunk waits for
 * a busy channel.  The hook makes a helper thread hold the only channel's
 * send lock before the first STOP_COPY read (the channel then blocks in its
 * first send) and release it once the device's third read starts: chunk 0
 * in the channel, chunk 1 queued, chunk 2 being read.  A source that waits
 * for a channel before reading again never gets there (the helper gives up
 * after 5 s and the test fails).
 */
struct stall {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pair *p;
	bool started, held, reached, in_time;
	pthread_t t;
};

static void *stall_thread(void *arg)
{
	struct stall *st = arg;
	pthread_mutex_t *send_lock = &vfmig_test_conn(st->p->ss, 1)->send_lock;
	struct timespec ts;

	pthread_mutex_lock(send_lock);
	pthread_mutex_lock(&st->lock);
	st->held = true;
	pthread_cond_broadcast(&st->cond);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	while (!st->reached && pthread_cond_timedwait(&st->cond, &st->lock, &ts) != ETIMEDOUT)
		;
	st->in_time = st->reached;
	pthread_mutex_unlock(&st->lock);
	pthread_mutex_unlock(send_lock);
	return NULL;
}

static void stall_hook(void *opaque, unsigned n)
{
	struct stall *st = opaque;

	pthread_mutex_lock(&st->lock);
	if (n == 1 && !pthread_create(&st->t, NULL, stall_thread, st)) {
		st->started = true;
		while (!st->held)
			pthread_cond_wait(&st->cond, &st->lock);
	}
	if (n == 3) {
		st->reached = true;
		pthread_cond_broadcast(&st->cond);
	}
	pthread_mutex_unlock(&st->lock);
}

TEST(session_source_reads_ahead_while_the_channel_is_busy)
{
	struct vfmig_fake_cfg cfg = fake_cfg(1 << 20, NOPRE, 100);
	struct stall st = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	replace_pair(&p, 0, 1 << 20, NOPRE, 100, 200);
	st.p = &p;
	cfg.stopcopy_read_hook = stall_hook;
	cfg.hook_opaque = &st;
	replace_src(&p, 0, &cfg);
	p.so.channels = 1;
	run_migrated(_metadata, &p);
	ASSERT_TRUE(st.started);
	pthread_join(st.t, NULL);
	EXPECT_TRUE(st.in_time) TH_LOG("the third read waited for the channel");
	pair_fini(&p);
}

TEST(session_refuses_multi_device_without_p2p)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 2));
	vfmig_device_close(p.src[1]);
	p.src[1] = fake("nop2p", 1 << 20, VFMIG_MIG_STOP_COPY | VFMIG_MIG_PRE_COPY, 5);
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, p.src_rc);
	EXPECT_MSG(p.ss, "lacks P2P");
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[0]));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[1]));
	EXPECT_EQ(0, vfmig_fake_resets(p.dst[0]));
	pair_fini(&p);
}

/* ---- failure injection ----------------------------------------------------------- */

/* One faulty 1 MiB device among @n pairs (default 1), seeded as pair_init() seeds it. */
struct fault {
	unsigned n;
	bool dst;	/* the faulty device is a destination device */
	unsigned dev;	/* its index */
	uint64_t flags; /* its migration flags (default all) */
	unsigned fail_read_at, fail_write_at;
	enum vfmig_state fail_state;
	void (*hook)(void *pair, unsigned n); /* before the n-th STOP_COPY read */
};

/* Set the pair up with the fault and run it; the caller checks and pair_fini()s. */
static void run_fault(struct __test_metadata *_metadata, struct pair *p, const struct fault *ft)
{
	struct vfmig_fake_cfg cfg = fake_cfg(1 << 20, ft->flags ? ft->flags : ALL_FLAGS,
					     (ft->dst ? 200 : 100) + ft->dev);

	ASSERT_EQ(0, pair_init(p, ft->n ? ft->n : 1));
	cfg.fail_stopcopy_read_at = ft->fail_read_at;
	cfg.fail_resume_write_at = ft->fail_write_at;
	cfg.fail_set_state = ft->fail_state;
	cfg.stopcopy_read_hook = ft->hook;
	cfg.hook_opaque = p;
	if (ft->dst)
		replace_dst(p, ft->dev, &cfg);
	else
		replace_src(p, ft->dev, &cfg);
	ASSERT_EQ(0, pair_run(p));
}

static void kill_channel_hook(void *opaque, unsigned n)
{
	struct pair *p = opaque;

	if (n == 3) /* mid STOP_COPY: two chunks are out */
		shutdown(vfmig_test_conn(p->ss, 1)->fd, SHUT_RDWR);
}

TEST(session_channel_killed_mid_stop_copy_rolls_source_back)
{
	struct vfmig_fake_cfg cfg = fake_cfg(1 << 20, NOPRE, 100);
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 2));
	for (unsigned i = 0; i < 2; i++)
		replace_pair(&p, i, 1 << 20, NOPRE, 100 + i, 200 + i);
	cfg.stopcopy_read_hook = kill_channel_hook;
	cfg.hook_opaque = &p;
	replace_src(&p, 0, &cfg);
	ASSERT_EQ(0, pair_run(&p));
	expect_rolled_back(_metadata, &p);
	EXPECT_TRUE(p.src_rc == VFMIG_ERR_TRANSPORT || p.src_rc == VFMIG_ERR_REMOTE)
	TH_LOG("source: %d %s", p.src_rc, vfmig_session_error(p.ss)->msg);
	pair_fini(&p);
}

TEST(session_source_device_read_error_rolls_back)
{
	static const struct fault ft = { .flags = NOPRE, .fail_read_at = 4 };
	struct pair p;

	run_fault(_metadata, &p, &ft);
	expect_rolled_back(_metadata, &p);
	EXPECT_EQ(VFMIG_ERR_DEVICE, p.src_rc);
	EXPECT_MSG(p.ss, "read STOP_COPY data");
	EXPECT_EQ(VFMIG_ERR_REMOTE, p.dst_rc);
	EXPECT_MSG(p.ds, "read STOP_COPY data");
	pair_fini(&p);
}

TEST(session_destination_write_error_rolls_source_back)
{
	static const struct fault ft = { .dst = true, .fail_write_at = 2 };
	struct pair p;

	run_fault(_metadata, &p, &ft);
	expect_rolled_back(_metadata, &p);
	EXPECT_EQ(VFMIG_ERR_DEVICE, p.dst_rc);
	EXPECT_EQ(VFMIG_ERR_REMOTE, p.src_rc);
	pair_fini(&p);
}

TEST(session_phase1_state_failure_rolls_back)
{
	static const struct fault ft = { .n = 2, .dev = 1, .fail_state = VFMIG_STATE_PRE_COPY_P2P };
	struct pair p;

	run_fault(_metadata, &p, &ft);
	expect_rolled_back(_metadata, &p);
	EXPECT_EQ(VFMIG_ERR_DEVICE, p.src_rc);
	EXPECT_MSG(p.ss, "PRE_COPY_P2P");
	pair_fini(&p);
}

TEST(session_destination_validation_failure_rolls_source_back)
{
	/* A destination device that refuses RESUMING -> STOP (its final check). */
	static const struct fault ft = { .dst = true, .fail_state = VFMIG_STATE_STOP };
	struct pair p;

	run_fault(_metadata, &p, &ft);
	EXPECT_EQ(VFMIG_ERR_DEVICE, p.dst_rc);
	EXPECT_EQ(VFMIG_ERR_REMOTE, p.src_rc);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[0]));
	EXPECT_EQ(p.src_digest[0], vfmig_fake_digest(p.src[0]));
	pair_fini(&p);
}

static void cancel_hook(void *opaque, unsigned n)
{
	struct pair *p = opaque;

	if (n == 2)
		vfmig_session_cancel(p->ss);
}

TEST(session_cancel_mid_stop_copy_rolls_back)
{
	static const struct fault ft = { .flags = NOPRE, .hook = cancel_hook };
	struct pair p;

	run_fault(_metadata, &p, &ft);
	expect_rolled_back(_metadata, &p);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, p.src_rc);
	EXPECT_EQ(VFMIG_ERR_REMOTE, p.dst_rc);
	EXPECT_MSG(p.ds, "interrupted");
	pair_fini(&p);
}

static void cancel_dst_hook(void *opaque, unsigned n)
{
	struct pair *p = opaque;

	if (n == 2)
		vfmig_session_cancel(p->ds);
}

TEST(session_destination_cancel_rolls_source_back)
{
	static const struct fault ft = { .flags = NOPRE, .hook = cancel_dst_hook };
	struct pair p;

	run_fault(_metadata, &p, &ft);
	expect_rolled_back(_metadata, &p);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, p.dst_rc);
	pair_fini(&p);
}

TEST(session_no_destination_times_out)
{
	struct vfmig_addr a;
	struct vfmig_device *d = fake("s", 1 << 20, ALL_FLAGS, 1);
	struct vfmig_options o;
	struct vfmig_session *s;

	vfmig_options_init(&o);
	o.timeout_ms = 200;
	ASSERT_EQ(0, vfmig_addr_parse("unix:/tmp/vfmig-test-nobody-listens", &a, NULL));
	s = vfmig_session_new(true, &d, 1, &o);
	ASSERT_NE(NULL, s);
	EXPECT_EQ(VFMIG_ERR_TIMEOUT, vfmig_session_send(s, &a));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(d));
	vfmig_session_free(s);
	vfmig_device_close(d);
}

TEST_HARNESS_MAIN
