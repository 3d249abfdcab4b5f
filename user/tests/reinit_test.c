// SPDX-License-Identifier: GPL-2.0-only
/*
 * reinit_test - PRECOPY_INFOv2 and REINIT (Linux 7.1): a precopying device
 * restarts its initial data.  Fake devices opt in (or refuse, like a
 * pre-7.1 kernel), report REINIT at a chosen precopy_info call or when a
 * test says so, and then stream a full new image, so the destination's
 * digest still has to come out equal.  A frame-aware proxy between the two
 * sessions records when the SWITCHOVER_ACKs went by and when
 * SWITCHOVER_START did, and holds an ack back to make it stale.
 */
#include "kselftest_harness.h"
#include "pair_proxy.h"
#include "test_util.h"

struct rt {
	struct pair p;
	struct pair_proxy pp;
	atomic_uint acks_fwd;	    /* SWITCHOVER_ACKs the proxy passed to the source */
	atomic_uint ids_fwd;	    /* INIT_DATA_SENTs it passed to the destination */
	atomic_int acks_at_start;   /* ... when SWITCHOVER_START went by, -1 if it never did */
	atomic_bool reinit_decided; /* (c), (e): REINIT once the switchover is decided */
	atomic_bool decided_fired;
	atomic_bool reinit_after_ack; /* (b): REINIT once the first ack is counted */
	atomic_bool after_ack_fired;
	atomic_bool hold_failed; /* (b): the held ack's REINIT was not seen in time */
	atomic_uint iter;	 /* the source's last precopy iteration */
	atomic_uint held;	 /* acks counted in acks_fwd but held, not forwarded yet */
};

static struct rt *the_rt; /* for the hooks without an argument of ours */

static void saw_ack(void *arg, int in, int out)
{
	struct rt *r = arg;

	(void)in;
	(void)out;
	atomic_fetch_add(&r->acks_fwd, 1);
}

static void saw_init_data_sent(void *arg, int in, int out)
{
	struct rt *r = arg;

	(void)in;
	(void)out;
	atomic_fetch_add(&r->ids_fwd, 1);
}

static void saw_start(void *arg, int in, int out)
{
	struct rt *r = arg;

	(void)in;
	(void)out;
	atomic_store(&r->acks_at_start, (int)(atomic_load(&r->acks_fwd) - atomic_load(&r->held)));
}

/*
 * (b) The second ack (generation 1) is held here: the source device reports
 * a REINIT, and the ack goes on only once the source sent the new initial
 * bytes and INIT_DATA_SENT(2): it reaches a source that waits for a fresh
 * ack, deterministically stale.
 */
static void hold_ack_until_reinit(void *arg, int in, int out)
{
	struct rt *r = arg;
	uint64_t end = vfmig_now_ns() + 5000000000ull;

	(void)in;
	(void)out;
	vfmig_fake_reinit(r->p.src[0]);
	while (atomic_load(&r->ids_fwd) < 3 && vfmig_now_ns() < end)
		usleep(1000);
	if (atomic_load(&r->ids_fwd) < 3 || vfmig_test_init_gen(r->p.ss, 0) != 2)
		atomic_store(&r->hold_failed, true);
}

/*
 * (b) The fresh ack (generation 2) is held until the source is past its
 * iteration limit: a source that counted the stale ack switches over now,
 * before this ack went by; a correct one keeps waiting for it.
 */
static void hold_fresh_ack(void *arg, int in, int out)
{
	struct rt *r = arg;
	uint64_t end = vfmig_now_ns() + 5000000000ull;

	(void)in;
	(void)out;
	atomic_fetch_add(&r->held, 1);
	while (atomic_load(&r->iter) < r->p.so.max_iterations + 2 &&
	       atomic_load(&r->acks_at_start) < 0 && vfmig_now_ns() < end)
		usleep(1000);
	atomic_fetch_sub(&r->held, 1);
}

/* Source precopy_info hook: a device event once the switchover is decided. */
static void info_hook(void *opaque, unsigned n)
{
	struct rt *r = opaque;

	(void)n;
	if (atomic_load(&r->reinit_decided) && !atomic_load(&r->decided_fired) &&
	    vfmig_test_switchover_decided(r->p.ss)) {
		atomic_store(&r->decided_fired, true);
		vfmig_fake_reinit(r->p.src[0]);
	}
}

/* Source progress: a device event once the first ack is in. */
static void progress(const struct vfmig_progress *pr, void *opaque)
{
	struct rt *r = opaque;

	atomic_store(&r->iter, pr->iteration);
	if (pr->phase == VFMIG_PHASE_PRECOPY && atomic_load(&r->reinit_after_ack) &&
	    !atomic_load(&r->after_ack_fired) && pr->acks == 1) {
		atomic_store(&r->after_ack_fired, true);
		vfmig_fake_reinit(r->p.src[0]);
	}
}

/* One pair; the source device from @cfg (its hooks get @r). */
static int rt_init(struct rt *r, struct vfmig_fake_cfg *cfg)
{
	memset(r, 0, sizeof(*r));
	the_rt = r;
	atomic_init(&r->acks_at_start, -1);
	if (pair_init(&r->p, 1))
		return -1;
	cfg->precopy_info_hook = info_hook;
	cfg->hook_opaque = r;
	vfmig_device_close(r->p.src[0]);
	r->p.src[0] = vfmig_fake_new("src0", cfg);
	if (!r->p.src[0])
		return -1;
	/* Only the iteration limit ends precopy: REINITs land where the test puts them. */
	r->p.so.downtime_limit_ms = 0;
	r->p.so.max_iterations = 8;
	/*
	 * The proxy hooks count INIT_DATA_SENT frames of the main channel: these
	 * tests take that path (precopy_mf_test covers REINIT over multifd).
	 */
	r->p.so.precopy_multifd = VFMIG_OFF;
	r->p.so.progress = progress;
	r->p.so.progress_opaque = r;
	r->p.so.verbose = r->p.dopt.verbose = getenv("VFMIG_TEST_DEBUG") ? 2 : 0;
	return 0;
}

static int rt_run(struct rt *r)
{
	if (pair_listen(&r->p))
		return -1;
	if (pair_proxy_start(&r->pp, &r->p))
		return -1;
	proxy_on_frame(r->pp.px, PROXY_TO_CLIENT, VFMIG_F_SWITCHOVER_ACK, 0, saw_ack, r);
	proxy_on_frame(r->pp.px, PROXY_TO_SERVER, VFMIG_F_INIT_DATA_SENT, 0, saw_init_data_sent, r);
	proxy_on_frame(r->pp.px, PROXY_TO_SERVER, VFMIG_F_SWITCHOVER_START, 1, saw_start, r);
	return 0;
}

static int rt_go(struct rt *r)
{
	int ret = pair_run_to(&r->p, &r->pp.addr);

	pair_proxy_stop(&r->pp, false);
	return ret;
}

static void rt_fini(struct rt *r)
{
	pair_proxy_stop(&r->pp, true);
	pair_fini(&r->p);
	the_rt = NULL;
}

static struct vfmig_fake_cfg src_cfg(void)
{
	return fake_cfg(1 << 20, ALL_FLAGS, 100);
}

static void expect_migrated(struct __test_metadata *_metadata, struct rt *r)
{
	ASSERT_EQ(VFMIG_OK, r->p.src_rc) TH_LOG("source: %s", vfmig_session_error(r->p.ss)->msg);
	ASSERT_EQ(VFMIG_OK, r->p.dst_rc)
	TH_LOG("destination: %s", vfmig_session_error(r->p.ds)->msg);
	EXPECT_EQ(vfmig_fake_digest(r->p.src[0]), vfmig_fake_digest(r->p.dst[0]));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(r->p.dst[0]));
	EXPECT_EQ(VFMIG_STATE_STOP, vfmig_fake_state(r->p.src[0]));
}

/* Failed before COMMIT: the source runs with its state, the destination was reset. */
static void expect_rolled_back(struct __test_metadata *_metadata, struct rt *r)
{
	EXPECT_NE(VFMIG_OK, r->p.dst_rc);
	EXPECT_EQ(VFMIG_OWNER_SOURCE, vfmig_session_owner(r->p.ss));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(r->p.src[0]));
	EXPECT_EQ(r->p.src_digest[0], vfmig_fake_digest(r->p.src[0]));
	EXPECT_EQ(0, vfmig_fake_resets(r->p.src[0]));
	EXPECT_EQ(1, vfmig_fake_resets(r->p.dst[0]));
	EXPECT_EQ(-1, atomic_load(&the_rt->acks_at_start)); /* never switched over */
}

/* (a) REINIT mid precopy, switchover-ack on: the switchover waits for a fresh ack. */
TEST(reinit_mid_precopy_rearms_the_switchover_ack)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	const struct vfmig_stats *st;
	struct rt r;

	cfg.reinit_at_info = 3; /* iteration 2: INIT_DATA_SENT(0) is out */
	ASSERT_EQ(0, rt_init(&r, &cfg));
	ASSERT_EQ(0, rt_run(&r));
	ASSERT_EQ(0, rt_go(&r));
	expect_migrated(_metadata, &r);
	st = vfmig_session_stats(r.p.ss);
	EXPECT_TRUE(st->precopy_reinit);
	EXPECT_TRUE(vfmig_fake_precopy_v2(r.p.src[0]));
	EXPECT_EQ(1, vfmig_fake_reinits(r.p.src[0]));
	EXPECT_EQ(1, st->precopy_reinits);
	EXPECT_EQ(1, vfmig_session_stats(r.p.ds)->precopy_reinits); /* generation 1 acked */
	/* Two acks went by before SWITCHOVER_START: not on the first one. */
	EXPECT_EQ(2, atomic_load(&r.acks_at_start));
	/* The new initial bytes went in precopy: the whole memory twice at least. */
	EXPECT_LE(2ull << 20, st->precopy_bytes);
	rt_fini(&r);
}

/*
 * (b) REINIT after the first ack arrived, then a second one while the ack of
 * generation 1 is in flight: that ack is stale and must not count; the
 * switchover waits for generation 2's.
 */
TEST(reinit_with_a_stale_ack_in_flight)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	const struct vfmig_stats *st;
	struct rt r;

	ASSERT_EQ(0, rt_init(&r, &cfg));
	r.p.so.max_iterations = 20;
	atomic_store(&r.reinit_after_ack, true);
	ASSERT_EQ(0, rt_run(&r));
	proxy_on_frame(r.pp.px, PROXY_TO_CLIENT, VFMIG_F_SWITCHOVER_ACK, 2, hold_ack_until_reinit,
		       &r);
	proxy_on_frame(r.pp.px, PROXY_TO_CLIENT, VFMIG_F_SWITCHOVER_ACK, 3, hold_fresh_ack, &r);
	ASSERT_EQ(0, rt_go(&r));
	EXPECT_FALSE(atomic_load(&r.hold_failed));
	expect_migrated(_metadata, &r);
	st = vfmig_session_stats(r.p.ss);
	EXPECT_TRUE(atomic_load(&r.after_ack_fired));
	EXPECT_EQ(2, vfmig_fake_reinits(r.p.src[0]));
	EXPECT_EQ(2, st->precopy_reinits);
	EXPECT_EQ(1, st->switchover_acks_stale);
	/* SWITCHOVER_START only after the fresh ack, held past the iteration limit. */
	EXPECT_EQ(3, atomic_load(&r.acks_at_start));
	EXPECT_LE(r.p.so.max_iterations + 2, vfmig_session_stats(r.p.ss)->precopy_iterations);
	EXPECT_EQ(3, atomic_load(&r.ids_fwd));
	EXPECT_EQ(2, vfmig_test_init_gen(r.p.ss, 0));
	rt_fini(&r);
}

/* (c) REINIT at the switchover check: the migration fails, nothing changed hands. */
TEST(reinit_at_the_switchover_decision_fails_cleanly)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct rt r;

	ASSERT_EQ(0, rt_init(&r, &cfg));
	r.p.so.max_iterations = 3;
	atomic_store(&r.reinit_decided, true);
	ASSERT_EQ(0, rt_run(&r));
	ASSERT_EQ(0, rt_go(&r));
	EXPECT_TRUE(atomic_load(&r.decided_fired));
	EXPECT_EQ(VFMIG_ERR_DEVICE, r.p.src_rc);
	EXPECT_MSG(r.p.ss, "REINIT after the switchover decision");
	EXPECT_EQ(1, vfmig_session_stats(r.p.ss)->precopy_reinits);
	expect_rolled_back(_metadata, &r);
	rt_fini(&r);
}

/* (d) A device that refuses the opt-in (pre-7.1): today's path, its flags ignored. */
TEST(reinit_refused_opt_in_keeps_the_v1_path)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct rt r;

	cfg.refuse_precopy_v2 = true;
	cfg.v1_flags_out = ~0u; /* reserved bits set: must mean nothing */
	cfg.reinit_at_info = 3;
	ASSERT_EQ(0, rt_init(&r, &cfg));
	ASSERT_EQ(0, rt_run(&r));
	ASSERT_EQ(0, rt_go(&r));
	expect_migrated(_metadata, &r);
	EXPECT_FALSE(vfmig_fake_precopy_v2(r.p.src[0]));
	EXPECT_EQ(0, vfmig_fake_reinits(r.p.src[0]));
	EXPECT_EQ(0, vfmig_session_stats(r.p.ss)->precopy_reinits);
	EXPECT_EQ(1, atomic_load(&r.acks_at_start));
	rt_fini(&r);
}

/*
 * (e) Switchover-ack off: a REINIT mid precopy resends the initial bytes, one
 * at the switchover decision is carried by STOP_COPY; both migrate.
 */
TEST(reinit_without_switchover_ack_migrates)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	const struct vfmig_stats *st;
	struct rt r;

	cfg.reinit_at_info = 3;
	ASSERT_EQ(0, rt_init(&r, &cfg));
	r.p.so.switchover_ack = VFMIG_OFF;
	r.p.so.max_iterations = 5;
	atomic_store(&r.reinit_decided, true);
	ASSERT_EQ(0, rt_run(&r));
	ASSERT_EQ(0, rt_go(&r));
	expect_migrated(_metadata, &r);
	st = vfmig_session_stats(r.p.ss);
	EXPECT_FALSE(st->switchover_ack);
	EXPECT_TRUE(atomic_load(&r.decided_fired));
	EXPECT_EQ(2, vfmig_fake_reinits(r.p.src[0]));
	EXPECT_EQ(2, st->precopy_reinits);
	EXPECT_EQ(0, atomic_load(&r.acks_fwd));
	/* The decision's REINIT made every page initial again: STOP_COPY sent them all. */
	EXPECT_LE(1ull << 20, st->stopcopy_bytes);
	rt_fini(&r);
}

/* (f) A destination without PRECOPY_REINIT, switchover-ack on, a REINIT: clean failure. */
TEST(reinit_with_a_peer_lacking_the_option_fails_cleanly)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct rt r;

	cfg.reinit_at_info = 3;
	ASSERT_EQ(0, rt_init(&r, &cfg));
	r.p.dopt.precopy_reinit = VFMIG_OFF; /* as an older destination */
	ASSERT_EQ(0, rt_run(&r));
	ASSERT_EQ(0, rt_go(&r));
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, r.p.src_rc);
	EXPECT_MSG(r.p.ss, "did not agree to PRECOPY_REINIT");
	EXPECT_FALSE(vfmig_session_stats(r.p.ss)->precopy_reinit);
	EXPECT_EQ(1, vfmig_fake_reinits(r.p.src[0]));
	expect_rolled_back(_metadata, &r);
	rt_fini(&r);
}

/* (f') The same destination, no REINIT: the option's absence costs nothing. */
TEST(reinit_peer_lacking_the_option_migrates_without_reinit)
{
	struct vfmig_fake_cfg cfg = src_cfg();
	struct rt r;

	ASSERT_EQ(0, rt_init(&r, &cfg));
	r.p.dopt.precopy_reinit = VFMIG_OFF;
	ASSERT_EQ(0, rt_run(&r));
	ASSERT_EQ(0, rt_go(&r));
	expect_migrated(_metadata, &r);
	EXPECT_FALSE(vfmig_session_stats(r.p.ss)->precopy_reinit);
	rt_fini(&r);
}

TEST_HARNESS_MAIN
