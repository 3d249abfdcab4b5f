// SPDX-License-Identifier: GPL-2.0-only
/*
 * limits_test - the bounds the engine promises, measured:
 *   - the destination's memory: --max-queued-bytes plus one chunk per device
 *     (plus a stated constant), measured as process RSS (VmHWM) against a
 *     rogue source that opens 32 channels and sends a 16 MiB chunk on each,
 *     none of them the chunk the device needs;
 *   - recv's ceilings on channels and chunk size, refused at the handshake;
 *   - a gap in the DEVICE_STATE sequence on the main channel (--multifd off)
 *     is a protocol error at once, not a wait;
 *   - a cancel takes effect within a second while connecting, and while
 *     waiting for the peer's handshake, on either side;
 *   - precopy ends even when a driver's initial bytes never reach 0.
 */
#include <sys/resource.h>

#include "kselftest_harness.h"
#include "recorder.h"
#include "rogue.h"

/* Threads' stacks, socket and harness bookkeeping: what RSS may add to the payloads. */
#define RSS_SLACK (16 * MiB)

TEST(destination_rss_stays_within_budget_with_32_channels_of_16_mib)
{
	const uint64_t budget = 32 * MiB, chunk = 16 * MiB;
	struct flood fl[32];
	pthread_t ft[32];
	uint64_t base, peak;
	struct rogue_src r = { .main_fd = -1 };

	ASSERT_EQ(0, rogue_src_bounded(&r, budget, (uint32_t)chunk, 32));
	ASSERT_EQ(0, reset_peak_rss());
	base = status_bytes("VmRSS:");
	ASSERT_EQ(0, rogue_src_start(&r, 1, 32, (uint32_t)chunk, 0));
	ASSERT_EQ(0, raw_send(r.main_fd, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0));
	/* idx 1..32, never idx 0: nothing can be loaded, everything must wait. */
	for (unsigned i = 0; i < 32; i++) {
		fl[i] = (struct flood){ .fd = r.ch_fd[i],
					.type = VFMIG_F_DEVICE_STATE,
					.idx = i + 1,
					.len = (uint32_t)chunk };
		ASSERT_EQ(0, pthread_create(&ft[i], NULL, flood_thread, &fl[i]));
	}
	rogue_src_wait(&r);
	for (unsigned i = 0; i < 32; i++) {
		shutdown(r.ch_fd[i], SHUT_RDWR);
		pthread_join(ft[i], NULL);
	}
	peak = status_bytes("VmHWM:");
	EXPECT_NE(VFMIG_OK, r.p.dst_rc);
	TH_LOG("RSS %llu MiB at start, peak %llu MiB (bound: budget %llu MiB + %llu MiB)",
	       (unsigned long long)(base / MiB), (unsigned long long)(peak / MiB),
	       (unsigned long long)(budget / MiB), (unsigned long long)(RSS_SLACK / MiB));
	/* Not even the "next chunk always fits" allowance applies: idx 0 never came. */
	EXPECT_GE(base + budget + RSS_SLACK, peak);
	rogue_src_fini(&r);
}

TEST(recv_refuses_more_channels_or_larger_chunks_than_its_ceilings)
{
	struct rogue_src r = { .main_fd = -1 };

	ASSERT_EQ(0, pair_init(&r.p, 1));
	r.p.dopt.max_channels = 4;
	ASSERT_EQ(0, pair_listen(&r.p));
	r.p.ds = vfmig_session_new(false, r.p.dst, 1, &r.p.dopt);
	ASSERT_EQ(-2, rogue_src_start(&r, 1, 8, 64 << 10, 0));
	rogue_src_wait(&r);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, r.p.dst_rc);
	EXPECT_MSG(r.p.ds, "--max-channels");
	rogue_src_fini(&r);

	r = (struct rogue_src){ .main_fd = -1 };
	ASSERT_EQ(0, pair_init(&r.p, 1));
	ASSERT_EQ(0, pair_listen(&r.p));
	r.p.ds = vfmig_session_new(false, r.p.dst, 1, &r.p.dopt); /* default: 4 MiB */
	ASSERT_EQ(-2, rogue_src_start(&r, 1, 2, 8 << 20, 0));
	rogue_src_wait(&r);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, r.p.dst_rc);
	EXPECT_MSG(r.p.ds, "--max-chunk-size");
	rogue_src_fini(&r);
}

TEST(gap_on_the_main_channel_is_a_protocol_error)
{
	static uint8_t data[4096];
	struct rogue_src r = { .main_fd = -1 };

	ASSERT_EQ(0, pair_init(&r.p, 1));
	r.p.dopt.channels = 0;
	r.p.dopt.timeout_ms = 30000; /* the failure must not be a timeout */
	ASSERT_EQ(0, pair_listen(&r.p));
	r.p.ds = vfmig_session_new(false, r.p.dst, 1, &r.p.dopt);
	ASSERT_EQ(0, rogue_src_start(&r, 1, 0, 4096, 0));
	ASSERT_EQ(0, raw_send(r.main_fd, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0));
	/* Chunk 0 was lost: chunk 1 comes first on an ordered stream. */
	ASSERT_EQ(0, raw_send(r.main_fd, VFMIG_F_DEVICE_STATE, 0, 0, 1, data, sizeof(data)));
	rogue_src_wait(&r);
	EXPECT_EQ(VFMIG_ERR_PROTOCOL, r.p.dst_rc);
	EXPECT_MSG(r.p.ds, "expected 0");
	EXPECT_EQ(1, vfmig_fake_resets(r.p.dst[0]));
	rogue_src_fini(&r);
}

/* ---- cancels within a second ------------------------------------------------------------- */

struct canceller {
	struct vfmig_session *s;
	int lfd; /* wait for a connection on it first (-1: a fixed delay) */
	uint64_t cancelled_ns;
	pthread_t t;
};

static void *cancel_thread(void *arg)
{
	struct canceller *c = arg;

	if (c->lfd >= 0) {
		struct vfmig_frame f;
		int fd = vfmig_accept(c->lfd, 10000, -1);

		/* The source connected and sent its HELLO: it now waits for HELLO_ACK. */
		if (fd >= 0 && !raw_recv_any(fd, 0, 0, &f))
			vfmig_frame_free(&f);
		c->cancelled_ns = vfmig_now_ns();
		vfmig_session_cancel(c->s);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	/* Nothing to observe in a connect retry loop: cancel somewhere inside it. */
	nanosleep(&(struct timespec){ 0, 300 * 1000 * 1000 }, NULL);
	c->cancelled_ns = vfmig_now_ns();
	vfmig_session_cancel(c->s);
	return NULL;
}

static void expect_prompt_cancel(struct __test_metadata *_metadata, struct canceller *c,
				 enum vfmig_errclass rc)
{
	uint64_t took = vfmig_now_ns() - c->cancelled_ns;

	pthread_join(c->t, NULL);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, rc);
	EXPECT_GT(1000000000ull, took)
	TH_LOG("the cancel took %llu ms", (unsigned long long)(took / 1000000));
}

TEST(cancel_while_connecting_takes_effect_within_a_second)
{
	struct vfmig_device *d = fake("s", 1 << 20, ALL_FLAGS, 1);
	struct canceller c = { .lfd = -1 };
	struct vfmig_options o;
	struct vfmig_addr a;
	enum vfmig_errclass rc;

	vfmig_options_init(&o);
	o.timeout_ms = 20000;
	ASSERT_EQ(0, vfmig_addr_parse("unix:/tmp/vfmig-test-nobody-listens-here", &a, NULL));
	c.s = vfmig_session_new(true, &d, 1, &o);
	ASSERT_EQ(0, pthread_create(&c.t, NULL, cancel_thread, &c));
	rc = vfmig_session_send(c.s, &a);
	expect_prompt_cancel(_metadata, &c, rc);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(d));
	vfmig_session_free(c.s);
	vfmig_device_close(d);
}

TEST(cancel_while_waiting_for_hello_ack_takes_effect_within_a_second)
{
	struct canceller c = { 0 };
	struct pair p;
	enum vfmig_errclass rc;

	ASSERT_EQ(0, pair_init(&p, 1));
	p.so.timeout_ms = 20000;
	ASSERT_EQ(0, pair_listen(&p));
	c.lfd = p.lfd; /* a listener that never answers */
	c.s = p.ss = vfmig_session_new(true, p.src, 1, &p.so);
	ASSERT_EQ(0, pthread_create(&c.t, NULL, cancel_thread, &c));
	rc = vfmig_session_send(p.ss, &p.addr);
	expect_prompt_cancel(_metadata, &c, rc);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[0]));
	pair_fini(&p);
}

TEST(cancel_while_waiting_for_hello_takes_effect_within_a_second)
{
	struct canceller c = { .lfd = -1 };
	struct pair p;
	pthread_t t;
	int fd;

	ASSERT_EQ(0, pair_init(&p, 1));
	p.dopt.timeout_ms = 20000;
	ASSERT_EQ(0, pair_listen(&p));
	c.s = p.ds = vfmig_session_new(false, p.dst, 1, &p.dopt);
	ASSERT_EQ(0, pthread_create(&t, NULL, pair_recv_thread, &p));
	fd = vfmig_connect(&p.addr, 2000, NULL); /* connects, never says HELLO */
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pthread_create(&c.t, NULL, cancel_thread, &c));
	pthread_join(t, NULL);
	expect_prompt_cancel(_metadata, &c, p.dst_rc);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.dst[0]));
	close(fd);
	pair_fini(&p);
}

/* ---- precopy termination ---------------------------------------------------------------------- */

TEST(precopy_ends_when_initial_bytes_never_reach_zero)
{
	struct rec_log *log = rec_log_new();
	uint64_t digest;
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	vfmig_device_close(p.src[0]);
	p.src[0] = rec_wrap(log, fake("src", 1 << 20, ALL_FLAGS, 100), REC_SOURCE, 0);
	rec_initial_floor(p.src[0], 4096);
	digest = vfmig_fake_digest(rec_inner(p.src[0]));
	p.so.max_iterations = 5;
	p.so.timeout_ms = p.dopt.timeout_ms = 1000;
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_EQ(VFMIG_ERR_TIMEOUT, p.src_rc);
	EXPECT_MSG(p.ss, "switchover-ack");
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(rec_inner(p.src[0])));
	EXPECT_EQ(digest, vfmig_fake_digest(rec_inner(p.src[0])));
	EXPECT_LE(5, vfmig_session_stats(p.ss)->precopy_iterations);
	pair_fini(&p);
	rec_log_free(log);
}

TEST(precopy_time_limit_switches_over_without_switchover_ack)
{
	struct rec_log *log = rec_log_new();
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	vfmig_device_close(p.src[0]);
	p.src[0] = rec_wrap(log, fake("src", 1 << 20, ALL_FLAGS, 100), REC_SOURCE, 0);
	rec_initial_floor(p.src[0], 4096);
	p.so.switchover_ack = VFMIG_OFF;
	p.so.max_iterations = 1000000;
	p.so.max_precopy_ms = 300;
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_EQ(VFMIG_OK, p.src_rc) TH_LOG("%s", vfmig_session_error(p.ss)->msg);
	EXPECT_EQ(VFMIG_CONVERGE_MAX_TIME, vfmig_session_stats(p.ss)->converge);
	EXPECT_EQ(vfmig_fake_digest(rec_inner(p.src[0])), vfmig_fake_digest(p.dst[0]));
	pair_fini(&p);
	rec_log_free(log);
}

TEST_HARNESS_MAIN
