// SPDX-License-Identifier: GPL-2.0-only
/*
 * review3_test - an adversarial review of PRECOPY_INFOv2/REINIT (generations,
 * the acks' deadline, the switchover check) and of the destination's and the
 * source's handling of the generation in INIT_DATA_SENT / SWITCHOVER_ACK.
 *
 * A frame-aware proxy sits between the two sessions: it delays the first
 * SWITCHOVER_ACK a little (so the source's acks' deadline certainly starts),
 * and can inject forged SWITCHOVER_ACKs towards the source.
 */
#include "kselftest_harness.h"
#include "pair_proxy.h"
#include "rogue.h"

struct r3 {
	struct pair p;
	struct pair_proxy pp;
	/* progress: a REINIT requested at the end of this iteration (0: none) */
	unsigned reinit_after_iter;
	atomic_bool reinit_fired;
	/* every precopy_info call of src0 reports REINIT (a device restarting forever) */
	atomic_bool reinit_forever;
	/* precopy_info sleeps this long (a slow pass) */
	unsigned info_sleep_us;
	/* precopy bytes seen by progress at two iterations */
	unsigned mark_a, mark_b;
	atomic_ullong bytes_a, bytes_b;
	atomic_uint last_iter;
	/* info_hook: a REINIT once this long after precopy began (0: none) */
	unsigned reinit_after_ms;
	atomic_ullong t_first;
	/* forged ack injection */
	uint32_t forge_dev, forge_gen;
	atomic_bool forged;
};

static void info_hook(void *opaque, unsigned n)
{
	struct r3 *r = opaque;

	(void)n;
	if (r->info_sleep_us)
		usleep(r->info_sleep_us);
	if (atomic_load(&r->reinit_forever))
		vfmig_fake_reinit(r->p.src[0]);
	if (r->reinit_after_ms && atomic_load(&r->t_first) &&
	    vfmig_now_ns() - atomic_load(&r->t_first) >= r->reinit_after_ms * 1000000ull &&
	    !atomic_exchange(&r->reinit_fired, true))
		vfmig_fake_reinit(r->p.src[0]);
}

static void progress(const struct vfmig_progress *pr, void *opaque)
{
	struct r3 *r = opaque;

	if (pr->phase != VFMIG_PHASE_PRECOPY)
		return;
	if (!atomic_load(&r->t_first))
		atomic_store(&r->t_first, vfmig_now_ns());
	atomic_store(&r->last_iter, pr->iteration);
	if (r->reinit_after_iter && pr->iteration == r->reinit_after_iter &&
	    !atomic_exchange(&r->reinit_fired, true)) {
		for (unsigned i = 0; i < r->p.n; i++)
			vfmig_fake_reinit(r->p.src[i]);
	}
	if (r->mark_a && pr->iteration == r->mark_a)
		atomic_store(&r->bytes_a, pr->precopy_bytes);
	if (r->mark_b && pr->iteration == r->mark_b)
		atomic_store(&r->bytes_b, pr->precopy_bytes);
}

/* The first SWITCHOVER_ACK is held 80 ms: the acks' deadline certainly starts. */
static void delay_ack(void *arg, int in, int out)
{
	(void)arg;
	(void)in;
	(void)out;
	usleep(80 * 1000);
}

/* Before the real ack goes on: a forged SWITCHOVER_ACK towards the source. */
static void forge_ack(void *arg, int in, int out)
{
	struct r3 *r = arg;

	(void)in;
	if (!raw_send(out, VFMIG_F_SWITCHOVER_ACK, 0, r->forge_dev, r->forge_gen, NULL, 0))
		atomic_store(&r->forged, true);
}

static int r3_init(struct r3 *r, unsigned n, struct vfmig_fake_cfg *cfg)
{
	memset(r, 0, sizeof(*r));
	if (pair_init(&r->p, n))
		return -1;
	for (unsigned i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "src%u", i);
		cfg->seed = 100 + i;
		cfg->precopy_info_hook = i ? NULL : info_hook;
		cfg->hook_opaque = r;
		vfmig_device_close(r->p.src[i]);
		r->p.src[i] = vfmig_fake_new(name, cfg);
		if (!r->p.src[i])
			return -1;
	}
	r->p.so.downtime_limit_ms = 0;
	r->p.so.max_iterations = 8;
	r->p.so.progress = progress;
	r->p.so.progress_opaque = r;
	r->p.so.verbose = r->p.dopt.verbose = getenv("VFMIG_TEST_DEBUG") ? 2 : 0;
	return 0;
}

static int r3_proxy(struct r3 *r)
{
	if (pair_listen(&r->p))
		return -1;
	if (pair_proxy_start(&r->pp, &r->p))
		return -1;
	return 0;
}

static int r3_go(struct r3 *r)
{
	int ret = pair_run_to(&r->p, &r->pp.addr);

	pair_proxy_stop(&r->pp, false);
	return ret;
}

static void r3_fini(struct r3 *r)
{
	pair_proxy_stop(&r->pp, true);
	pair_fini(&r->p);
}

static struct vfmig_fake_cfg src_cfg(void)
{
	return fake_cfg(1 << 20, ALL_FLAGS, 100);
}

static void expect_ok(struct __test_metadata *_metadata, struct r3 *r)
{
	ASSERT_EQ(VFMIG_OK, r->p.src_rc) TH_LOG("source: %s", vfmig_session_error(r->p.ss)->msg);
	ASSERT_EQ(VFMIG_OK, r->p.dst_rc)
	TH_LOG("destination: %s", vfmig_session_error(r->p.ds)->msg);
	for (unsigned i = 0; i < r->p.n; i++) {
		EXPECT_EQ(vfmig_fake_digest(r->p.src[i]), vfmig_fake_digest(r->p.dst[i]));
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(r->p.dst[i]));
	}
}

static void expect_rolled_back(struct __test_metadata *_metadata, struct r3 *r)
{
	EXPECT_NE(VFMIG_OK, r->p.src_rc);
	EXPECT_NE(VFMIG_OK, r->p.dst_rc);
	EXPECT_EQ(VFMIG_OWNER_SOURCE, vfmig_session_owner(r->p.ss));
	for (unsigned i = 0; i < r->p.n; i++) {
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(r->p.src[i]));
		EXPECT_EQ(r->p.src_digest[i], vfmig_fake_digest(r->p.src[i]));
	}
}

/*
 * BUG 1: the acks' deadline is never cleared once the ack arrives.  A REINIT
 * found in the pass where --max-iterations is reached, more than --timeout
 * after the first INIT_DATA_SENT, fails at once as "not acknowledged within
 * --timeout" (the fresh ack had 0 ms, and the pass even refused to send the
 * new initial bytes because stop_ns = old ack_wait_start + timeout is past).
 * Documented: "once --max-iterations ... is reached ... missing acks have
 * --timeout to arrive".
 */
TEST(reinit_in_the_limit_pass_long_after_the_first_ack)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	uint64_t t0, el;
	struct r3 r;

	ASSERT_EQ(0, r3_init(&r, 1, &cfg));
	r.p.so.timeout_ms = r.p.dopt.timeout_ms = 500;
	r.p.so.max_iterations = 60; /* idle passes of 20 ms: ~1.2 s > 500 ms */
	r.reinit_after_iter = r.p.so.max_iterations - 1;
	ASSERT_EQ(0, r3_proxy(&r));
	proxy_on_frame(r.pp.px, PROXY_TO_CLIENT, VFMIG_F_SWITCHOVER_ACK, 1, delay_ack, &r);
	t0 = vfmig_now_ns();
	ASSERT_EQ(0, r3_go(&r));
	el = (vfmig_now_ns() - t0) / 1000000;
	TH_LOG("elapsed %llu ms, src rc %d: %s", (unsigned long long)el, r.p.src_rc,
	       vfmig_session_error(r.p.ss)->msg);
	EXPECT_TRUE(atomic_load(&r.reinit_fired));
	expect_ok(_metadata, &r);
	EXPECT_EQ(1, vfmig_fake_reinits(r.p.src[0]));
	r3_fini(&r);
}

/* The same with the time limit: a REINIT in the pass where --max-precopy-time falls due. */
TEST(reinit_at_the_time_limit_long_after_the_first_ack)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct r3 r;

	ASSERT_EQ(0, r3_init(&r, 1, &cfg));
	r.p.so.timeout_ms = r.p.dopt.timeout_ms = 400;
	r.p.so.max_iterations = 100000;
	r.p.so.max_precopy_ms = 1000;
	/* the first pass that begins once --max-precopy-time is reached finds a REINIT */
	r.reinit_after_ms = 1000;
	ASSERT_EQ(0, r3_proxy(&r));
	proxy_on_frame(r.pp.px, PROXY_TO_CLIENT, VFMIG_F_SWITCHOVER_ACK, 1, delay_ack, &r);
	ASSERT_EQ(0, r3_go(&r));
	TH_LOG("src rc %d after %u iterations (REINIT %s): %s", r.p.src_rc,
	       vfmig_session_stats(r.p.ss)->precopy_iterations,
	       atomic_load(&r.reinit_fired) ? "requested" : "not requested",
	       vfmig_session_error(r.p.ss)->msg);
	expect_ok(_metadata, &r);
	r3_fini(&r);
}

/*
 * BUG 2 (the same root cause, older): --timeout after the first ack wait
 * began, every pass stops reading at once (stop_ns = ack_wait_start +
 * timeout, never cleared once acked): a dirtying device's dirty pages are no
 * longer sent in precopy, STOP_COPY carries them all (downtime).
 */
TEST(dirty_data_still_flows_after_timeout_ms_of_precopy)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	uint64_t a, b;
	struct r3 r;

	cfg.dirty_pages_per_info = 4;
	cfg.dirty_info_calls = 1000000;
	ASSERT_EQ(0, r3_init(&r, 1, &cfg));
	r.info_sleep_us = 10000; /* a pass takes >= 10 ms */
	r.p.so.timeout_ms = r.p.dopt.timeout_ms = 400;
	r.p.so.max_iterations = 100;
	r.mark_a = 60; /* > 600 ms: past the 400 ms */
	r.mark_b = 95;
	ASSERT_EQ(0, r3_proxy(&r));
	proxy_on_frame(r.pp.px, PROXY_TO_CLIENT, VFMIG_F_SWITCHOVER_ACK, 1, delay_ack, &r);
	ASSERT_EQ(0, r3_go(&r));
	expect_ok(_metadata, &r);
	a = atomic_load(&r.bytes_a);
	b = atomic_load(&r.bytes_b);
	TH_LOG("precopy bytes at iteration %u: %llu, at %u: %llu; stop-copy %llu bytes", r.mark_a,
	       (unsigned long long)a, r.mark_b, (unsigned long long)b,
	       (unsigned long long)vfmig_session_stats(r.p.ss)->stopcopy_bytes);
	/* 35 passes of 4 dirty pages each (16 KiB + headers) */
	EXPECT_LE(a + 35 * 4 * 4096ull, b);
	/* The only ack was held 80 ms; the statistic says the whole precopy. */
	EXPECT_GT(300000000ull, vfmig_session_stats(r.p.ss)->switchover_ack_wait_ns)
	TH_LOG("switchover_ack_wait_ns %llu of precopy_ns %llu",
	       (unsigned long long)vfmig_session_stats(r.p.ss)->switchover_ack_wait_ns,
	       (unsigned long long)vfmig_session_stats(r.p.ss)->precopy_ns);
	r3_fini(&r);
}

/* A device that reports REINIT on every PRECOPY_INFO: precopy ends within limit + timeout. */
TEST(reinit_forever_terminates_with_switchover_ack)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	uint64_t t0, el;
	struct r3 r;

	ASSERT_EQ(0, r3_init(&r, 1, &cfg));
	r.p.so.timeout_ms = 1000;
	r.p.so.max_iterations = 5;
	atomic_store(&r.reinit_forever, true);
	ASSERT_EQ(0, r3_proxy(&r));
	t0 = vfmig_now_ns();
	ASSERT_EQ(0, r3_go(&r));
	el = (vfmig_now_ns() - t0) / 1000000;
	TH_LOG("elapsed %llu ms, %u iterations, src rc %d: %s", (unsigned long long)el,
	       vfmig_session_stats(r.p.ss)->precopy_iterations, r.p.src_rc,
	       vfmig_session_error(r.p.ss)->msg);
	EXPECT_GT(4000, el);
	expect_rolled_back(_metadata, &r);
	r3_fini(&r);
}

/* The same without switchover-ack: switched over at the limit, STOP_COPY carries it all. */
TEST(reinit_forever_without_switchover_ack_migrates)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct r3 r;

	ASSERT_EQ(0, r3_init(&r, 1, &cfg));
	r.p.so.switchover_ack = VFMIG_OFF;
	r.p.so.max_iterations = 5;
	atomic_store(&r.reinit_forever, true);
	ASSERT_EQ(0, r3_proxy(&r));
	ASSERT_EQ(0, r3_go(&r));
	expect_ok(_metadata, &r);
	EXPECT_LE(5, vfmig_fake_reinits(r.p.src[0]));
	r3_fini(&r);
}

/* REINIT on two devices in the same pass (after their first acks): both re-armed. */
TEST(reinit_on_two_devices_at_once)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct r3 r;

	ASSERT_EQ(0, r3_init(&r, 2, &cfg));
	r.p.so.max_iterations = 12;
	r.reinit_after_iter = 4;
	ASSERT_EQ(0, r3_proxy(&r));
	ASSERT_EQ(0, r3_go(&r));
	expect_ok(_metadata, &r);
	EXPECT_EQ(1, vfmig_fake_reinits(r.p.src[0]));
	EXPECT_EQ(1, vfmig_fake_reinits(r.p.src[1]));
	EXPECT_EQ(2, vfmig_session_stats(r.p.ds)->precopy_reinits);
	EXPECT_EQ(1, vfmig_test_init_gen(r.p.ss, 0));
	EXPECT_EQ(1, vfmig_test_init_gen(r.p.ss, 1));
	r3_fini(&r);
}

/* REINIT while the first initial bytes are still going out: generation stays 0. */
TEST(reinit_before_the_first_init_data_sent)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct r3 r;

	cfg.reinit_at_info = 2; /* the query right after the first initial bytes */
	ASSERT_EQ(0, r3_init(&r, 1, &cfg));
	ASSERT_EQ(0, r3_proxy(&r));
	ASSERT_EQ(0, r3_go(&r));
	expect_ok(_metadata, &r);
	EXPECT_EQ(1, vfmig_fake_reinits(r.p.src[0]));
	EXPECT_EQ(0, vfmig_test_init_gen(r.p.ss, 0));
	EXPECT_EQ(0, vfmig_session_stats(r.p.ds)->precopy_reinits);
	r3_fini(&r);
}

/* The fake's REINIT model with a device that keeps dirtying: the digests still agree. */
static void dirty_reinit_case(struct __test_metadata *_metadata, enum vfmig_onoff sack)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct r3 r;

	cfg.dirty_pages_per_info = 3;
	cfg.dirty_info_calls = 100000;
	cfg.reinit_at_info = 2; /* mid first image */
	ASSERT_EQ(0, r3_init(&r, 1, &cfg));
	r.p.so.switchover_ack = sack;
	r.p.so.chunk_size = r.p.dopt.chunk_size = 4096; /* records split across chunks */
	r.p.so.max_iterations = 14;
	r.reinit_after_iter = 6;
	ASSERT_EQ(0, r3_proxy(&r));
	ASSERT_EQ(0, r3_go(&r));
	expect_ok(_metadata, &r);
	EXPECT_EQ(2, vfmig_fake_reinits(r.p.src[0]));
	r3_fini(&r);
}

TEST(dirtying_device_reinit_digest_sack_on)
{
	dirty_reinit_case(_metadata, VFMIG_AUTO);
}

TEST(dirtying_device_reinit_digest_sack_off)
{
	dirty_reinit_case(_metadata, VFMIG_OFF);
}

/* Forged acks towards the source: a generation ahead, a duplicate, an ack for a stranger device. */
static void forged_ack_case(struct __test_metadata *_metadata, uint32_t dev, uint32_t gen,
			    unsigned nth)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct r3 r;

	ASSERT_EQ(0, r3_init(&r, 1, &cfg));
	r.forge_dev = dev;
	r.forge_gen = gen;
	ASSERT_EQ(0, r3_proxy(&r));
	proxy_on_frame(r.pp.px, PROXY_TO_CLIENT, VFMIG_F_SWITCHOVER_ACK, nth, forge_ack, &r);
	ASSERT_EQ(0, r3_go(&r));
	EXPECT_TRUE(atomic_load(&r.forged));
	EXPECT_EQ(VFMIG_ERR_PROTOCOL, r.p.src_rc)
	TH_LOG("source: %s", vfmig_session_error(r.p.ss)->msg);
	EXPECT_MSG(r.p.ss, "unexpected switchover-ack");
	expect_rolled_back(_metadata, &r);
	r3_fini(&r);
}

TEST(forged_ack_of_a_generation_ahead)
{
	forged_ack_case(_metadata, 0, 1, 1);
}

TEST(forged_ack_duplicate_generation_0)
{
	forged_ack_case(_metadata, 0, 0, 1);
}

TEST(forged_ack_of_a_huge_generation)
{
	forged_ack_case(_metadata, 0, 0xfffffffeu, 1);
}

/* The destination: INIT_DATA_SENT generations from a hand-played source. */
static void rogue_ids(struct __test_metadata *_metadata, uint32_t opts, const uint32_t *gens,
		      unsigned n, unsigned nacked, bool fails)
{
	struct rogue_src r = { .main_fd = -1 };
	struct vfmig_frame f;
	unsigned acks = 0;

	ASSERT_EQ(0, rogue_src_bounded(&r, 64 << 20, 64 << 10, 0));
	ASSERT_EQ(0, rogue_src_start(&r, 1, 0, 64 << 10, opts));
	for (unsigned i = 0; i < n; i++)
		ASSERT_EQ(0, raw_send(r.main_fd, VFMIG_F_INIT_DATA_SENT, 0, 0, gens[i], NULL, 0));
	while (!raw_recv(r.main_fd, 1, 64 << 10, &f)) {
		if (f.h.type == VFMIG_F_SWITCHOVER_ACK) {
			EXPECT_EQ(gens[acks], f.h.idx);
			acks++;
		}
		vfmig_frame_free(&f);
		if (f.h.type == VFMIG_F_ERROR || (!fails && acks == nacked))
			break;
	}
	EXPECT_EQ(nacked, acks);
	shutdown(r.main_fd, SHUT_RDWR);
	rogue_src_wait(&r);
	if (fails) {
		EXPECT_EQ(VFMIG_ERR_PROTOCOL, r.p.dst_rc)
		TH_LOG("destination: %s", vfmig_session_error(r.p.ds)->msg);
		EXPECT_MSG(r.p.ds, "INIT_DATA_SENT");
	}
	rogue_src_fini(&r);
}

TEST(dest_generations_in_turn_are_acked)
{
	const uint32_t g[] = { 0, 1, 2, 3 };

	rogue_ids(_metadata, VFMIG_OPT_SWITCHOVER_ACK | VFMIG_OPT_PRECOPY_REINIT, g, 4, 4, false);
}

TEST(dest_refuses_generation_1_without_the_option)
{
	const uint32_t g[] = { 0, 1 };

	rogue_ids(_metadata, VFMIG_OPT_SWITCHOVER_ACK, g, 2, 1, true);
}

TEST(dest_refuses_a_skipped_generation)
{
	const uint32_t g[] = { 0, 2 };

	rogue_ids(_metadata, VFMIG_OPT_SWITCHOVER_ACK | VFMIG_OPT_PRECOPY_REINIT, g, 2, 1, true);
}

TEST(dest_refuses_a_replayed_generation)
{
	const uint32_t g[] = { 0, 1, 1 };

	rogue_ids(_metadata, VFMIG_OPT_SWITCHOVER_ACK | VFMIG_OPT_PRECOPY_REINIT, g, 3, 2, true);
}

TEST(dest_refuses_generation_1_first)
{
	const uint32_t g[] = { 1 };

	rogue_ids(_metadata, VFMIG_OPT_SWITCHOVER_ACK | VFMIG_OPT_PRECOPY_REINIT, g, 1, 0, true);
}

TEST(dest_refuses_init_data_sent_without_switchover_ack)
{
	const uint32_t g[] = { 0 };

	rogue_ids(_metadata, VFMIG_OPT_PRECOPY_REINIT, g, 1, 0, true);
}

TEST_HARNESS_MAIN
