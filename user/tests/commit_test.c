// SPDX-License-Identifier: GPL-2.0-only
/*
 * commit_test - the ownership protocol under every failure a reviewer can
 * think of: a cancel on either side at every protocol step, a destination
 * device failing to start after COMMIT, a destination reset that fails, a
 * COMMIT that could not be sent, a network that goes silent (connections
 * open, nothing arrives) at every phase, half a frame then silence.
 *
 * Every device is wrapped by the state recorder (recorder.h) and the two
 * sessions talk through a frame-aware proxy (proxy.h).  After each scenario:
 *   - no source device and its destination twin were ever both in a running
 *     state (RUNNING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P) while both held
 *     the device state (rec_check_never_both);
 *   - the state survives on exactly one side: the source RUNNING with its
 *     digest, or the destination RUNNING with the source's digest (source
 *     stopped), or, when the source says it cannot know (exit 12 / 13), the
 *     source stopped with its digest intact;
 *   - both sessions returned within --timeout + 5 s.
 */
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "pair_proxy.h"
#include "recorder.h"
#include "test_util.h"

#define TMO_MS 1000
#define NOPRE (VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P)

struct mig {
	struct pair p;
	struct rec_log *log;
	struct pair_proxy pp;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool dst_done;
	bool went_silent;
	uint64_t elapsed_ns, dst_end_ns, t0;
	uint64_t digest[PAIR_MAX];
};

static void *mig_recv_thread(void *arg)
{
	struct mig *m = arg;

	m->p.dst_rc = vfmig_session_recv(m->p.ds, m->p.lfd);
	pthread_mutex_lock(&m->lock);
	m->dst_done = true;
	m->dst_end_ns = vfmig_now_ns();
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* @n pairs of 1 MiB devices (@flags), wrapped, behind a proxy; timeouts TMO_MS. */
static int mig_init(struct mig *m, unsigned n, uint64_t flags)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	if (pair_init(&m->p, n))
		return -1;
	m->log = rec_log_new();
	if (!m->log)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		vfmig_device_close(m->p.src[i]);
		vfmig_device_close(m->p.dst[i]);
		m->p.src[i] = rec_wrap(m->log, fake("src", 1 << 20, flags, 100 + i), REC_SOURCE, i);
		m->p.dst[i] = rec_wrap(m->log, fake("dst", 1 << 20, flags, 200 + i), REC_DEST, i);
		if (!m->p.src[i] || !m->p.dst[i])
			return -1;
	}
	m->p.so.timeout_ms = m->p.dopt.timeout_ms = TMO_MS;
	m->p.so.verbose = m->p.dopt.verbose = getenv("VFMIG_TEST_DEBUG") ? 2 : 0;
	return 0;
}

/* Run both sides; the source talks to the proxy, the destination is never told. */
static int mig_run(struct mig *m)
{
	if (pair_listen(&m->p))
		return -1;
	if (pair_proxy_start(&m->pp, &m->p))
		return -1;
	return 0;
}

static int mig_go(struct mig *m)
{
	pthread_t t;

	m->p.ds = vfmig_session_new(false, m->p.dst, m->p.n, &m->p.dopt);
	m->p.ss = vfmig_session_new(true, m->p.src, m->p.n, &m->p.so);
	if (!m->p.ds || !m->p.ss)
		return -1;
	for (unsigned i = 0; i < m->p.n; i++)
		m->digest[i] = vfmig_fake_digest(rec_inner(m->p.src[i]));
	m->t0 = vfmig_now_ns();
	if (pthread_create(&t, NULL, mig_recv_thread, m))
		return -1;
	m->p.src_rc = vfmig_session_send(m->p.ss, &m->pp.addr);
	pthread_join(t, NULL);
	m->elapsed_ns = vfmig_now_ns() - m->t0;
	m->went_silent = proxy_went_silent(m->pp.px);
	pair_proxy_stop(&m->pp, false);
	return 0;
}

static void mig_fini(struct mig *m)
{
	pair_proxy_stop(&m->pp, true);
	pair_fini(&m->p);
	rec_log_free(m->log);
}

#define SRC(m, i) rec_inner((m)->p.src[i])
#define DST(m, i) rec_inner((m)->p.dst[i])

/* The invariants every scenario ends with. */
static void check_owner(struct __test_metadata *_metadata, struct mig *m)
{
	bool unknown =
		m->p.src_rc == VFMIG_ERR_OUTCOME_UNKNOWN || m->p.src_rc == VFMIG_ERR_INCOMPLETE;
	char why[512] = "";

	EXPECT_EQ(0, rec_check_never_both(m->log, m->p.n, why, sizeof(why)))
	{
		TH_LOG("%s", why);
		rec_dump(m->log, stderr);
	}
	/* Both sides end on their own, within --timeout + 5 s. */
	EXPECT_GT((uint64_t)TMO_MS * 1000000ull + 5000000000ull, m->elapsed_ns)
	TH_LOG("both sides ended after %llu ms", (unsigned long long)(m->elapsed_ns / 1000000));
	for (unsigned i = 0; i < m->p.n; i++) {
		enum vfmig_state ss = vfmig_fake_state(SRC(m, i));
		enum vfmig_state ds = vfmig_fake_state(DST(m, i));
		bool src_intact = vfmig_fake_digest(SRC(m, i)) == m->digest[i];
		bool src_holds = ss == VFMIG_STATE_RUNNING && src_intact;
		bool dst_holds = ds == VFMIG_STATE_RUNNING &&
				 vfmig_fake_digest(DST(m, i)) == m->digest[i] &&
				 ss == VFMIG_STATE_STOP;

		EXPECT_TRUE(src_intact) TH_LOG("pair %u: source digest changed", i);
		if (unknown) {
			EXPECT_EQ(VFMIG_STATE_STOP, ss) TH_LOG("pair %u: rc %d", i, m->p.src_rc);
		} else {
			EXPECT_TRUE(src_holds != dst_holds)
			TH_LOG("pair %u: src %s rc %d (%s), dst %s rc %d (%s)", i,
			       vfmig_state_name(ss), m->p.src_rc, vfmig_session_error(m->p.ss)->msg,
			       vfmig_state_name(ds), m->p.dst_rc,
			       vfmig_session_error(m->p.ds)->msg);
		}
	}
}

static void expect_migrated(struct __test_metadata *_metadata, struct mig *m)
{
	EXPECT_EQ(VFMIG_OK, m->p.src_rc) TH_LOG("%s", vfmig_session_error(m->p.ss)->msg);
	EXPECT_EQ(VFMIG_OK, m->p.dst_rc) TH_LOG("%s", vfmig_session_error(m->p.ds)->msg);
	for (unsigned i = 0; i < m->p.n; i++) {
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(DST(m, i)));
		EXPECT_EQ(m->digest[i], vfmig_fake_digest(DST(m, i)));
		EXPECT_EQ(0, vfmig_fake_resets(DST(m, i)));
	}
}

static void expect_rolled_back(struct __test_metadata *_metadata, struct mig *m)
{
	EXPECT_NE(VFMIG_OK, m->p.src_rc);
	EXPECT_NE(VFMIG_ERR_OUTCOME_UNKNOWN, m->p.src_rc)
	TH_LOG("source: %s; destination: %d %s", vfmig_session_error(m->p.ss)->msg, m->p.dst_rc,
	       vfmig_session_error(m->p.ds)->msg);
	EXPECT_NE(VFMIG_OK, m->p.dst_rc);
	for (unsigned i = 0; i < m->p.n; i++) {
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(SRC(m, i)))
		TH_LOG("%s", vfmig_session_error(m->p.ss)->msg);
		EXPECT_EQ(m->digest[i], vfmig_fake_digest(SRC(m, i)));
		/* Never RUNNING_P2P or RUNNING before COMMIT. */
		EXPECT_EQ(0, rec_count(m->log, REC_DEST, i, VFMIG_STATE_RUNNING_P2P));
	}
}

/* ---- cancels ---------------------------------------------------------------------- */

struct cancel_at {
	struct mig *m;
	bool dst;	    /* cancel the destination (else the source) */
	bool wait_dst_done; /* then hold the frame until the destination finished */
};

static void cancel_hook(void *arg, int in, int out)
{
	struct cancel_at *c = arg;
	struct mig *m = c->m;
	uint64_t deadline = vfmig_now_ns() + 10000000000ull;

	(void)in;
	(void)out;
	vfmig_session_cancel(c->dst ? m->p.ds : m->p.ss);
	if (!c->wait_dst_done)
		return;
	pthread_mutex_lock(&m->lock);
	while (!m->dst_done && vfmig_now_ns() < deadline) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&m->cond, &m->lock, &ts);
	}
	pthread_mutex_unlock(&m->lock);
}

static void run_cancel(struct __test_metadata *_metadata, struct mig *m, int dir, uint16_t type,
		       bool dst, bool wait)
{
	struct cancel_at c = { .m = m, .dst = dst, .wait_dst_done = wait };

	ASSERT_EQ(0, mig_init(m, 2, VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P | VFMIG_MIG_PRE_COPY));
	ASSERT_EQ(0, mig_run(m));
	proxy_on_frame(m->pp.px, dir, type, 1, cancel_hook, &c);
	ASSERT_EQ(0, mig_go(m));
	check_owner(_metadata, m);
}

TEST(cancel_source_before_loaded_rolls_back)
{
	struct mig m;

	run_cancel(_metadata, &m, PROXY_TO_CLIENT, VFMIG_F_LOADED, false, false);
	expect_rolled_back(_metadata, &m);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, m.p.src_rc);
	mig_fini(&m);
}

TEST(cancel_destination_before_loaded_rolls_back)
{
	struct mig m;

	run_cancel(_metadata, &m, PROXY_TO_CLIENT, VFMIG_F_LOADED, true, false);
	expect_rolled_back(_metadata, &m);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, m.p.dst_rc);
	mig_fini(&m);
}

/* The source already sent COMMIT: it can no longer know, it must not resume. */
TEST(cancel_source_after_commit_sent_leaves_it_stopped)
{
	struct mig m;

	run_cancel(_metadata, &m, PROXY_TO_SERVER, VFMIG_F_COMMIT, false, false);
	/* COMPLETE may beat the cancel to the return path: success is honest then. */
	EXPECT_TRUE(m.p.src_rc == VFMIG_ERR_OUTCOME_UNKNOWN || m.p.src_rc == VFMIG_OK)
	TH_LOG("%d %s", m.p.src_rc, vfmig_session_error(m.p.ss)->msg);
	EXPECT_EQ(VFMIG_OK, m.p.dst_rc) TH_LOG("%s", vfmig_session_error(m.p.ds)->msg);
	for (unsigned i = 0; i < 2; i++) {
		EXPECT_EQ(VFMIG_STATE_STOP, vfmig_fake_state(SRC(&m, i)));
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(DST(&m, i)));
	}
	mig_fini(&m);
}

/* COMMIT held in the network while the destination is cancelled: it resets and says so. */
TEST(cancel_destination_before_commit_arrives_source_resumes_on_reset)
{
	struct mig m;

	run_cancel(_metadata, &m, PROXY_TO_SERVER, VFMIG_F_COMMIT, true, true);
	expect_rolled_back(_metadata, &m);
	EXPECT_EQ(VFMIG_ERR_REMOTE, m.p.src_rc) TH_LOG("%s", vfmig_session_error(m.p.ss)->msg);
	for (unsigned i = 0; i < 2; i++)
		EXPECT_EQ(1, vfmig_fake_resets(DST(&m, i)));
	mig_fini(&m);
}

/* Same, but a destination reset fails: no "reset" word, the source cannot resume. */
TEST(destination_reset_fails_source_stays_stopped)
{
	struct cancel_at c = { .dst = true, .wait_dst_done = true };
	struct mig m;

	ASSERT_EQ(0, mig_init(&m, 2, ALL_FLAGS));
	c.m = &m;
	rec_fail_reset(m.p.dst[1], EIO);
	ASSERT_EQ(0, mig_run(&m));
	proxy_on_frame(m.pp.px, PROXY_TO_SERVER, VFMIG_F_COMMIT, 1, cancel_hook, &c);
	ASSERT_EQ(0, mig_go(&m));
	check_owner(_metadata, &m);
	EXPECT_EQ(VFMIG_ERR_OUTCOME_UNKNOWN, m.p.src_rc)
	TH_LOG("%s", vfmig_session_error(m.p.ss)->msg);
	EXPECT_MSG(m.p.ds, "reset FAILED");
	for (unsigned i = 0; i < 2; i++)
		EXPECT_EQ(VFMIG_STATE_STOP, vfmig_fake_state(SRC(&m, i)));
	mig_fini(&m);
}

/* The destination already runs when the cancel comes: it keeps the state (no reset). */
TEST(cancel_destination_after_complete_keeps_it_running)
{
	struct mig m;

	run_cancel(_metadata, &m, PROXY_TO_CLIENT, VFMIG_F_COMPLETE, true, false);
	expect_migrated(_metadata, &m);
	mig_fini(&m);
}

TEST(cancel_source_after_complete_is_a_success)
{
	struct mig m;

	run_cancel(_metadata, &m, PROXY_TO_CLIENT, VFMIG_F_COMPLETE, false, false);
	/* COMPLETE may or may not have been read before the cancel; both are honest. */
	EXPECT_TRUE(m.p.src_rc == VFMIG_OK || m.p.src_rc == VFMIG_ERR_OUTCOME_UNKNOWN);
	EXPECT_EQ(VFMIG_OK, m.p.dst_rc);
	mig_fini(&m);
}

/* ---- destination devices failing after COMMIT --------------------------------------- */

static void run_dst_fail_after_commit(struct __test_metadata *_metadata, struct mig *m,
				      unsigned dev, enum vfmig_state st)
{
	ASSERT_EQ(0, mig_init(m, 2, ALL_FLAGS));
	rec_fail_state(m->p.dst[dev], st, EIO);
	ASSERT_EQ(0, mig_run(m));
	ASSERT_EQ(0, mig_go(m));
	check_owner(_metadata, m);
	EXPECT_EQ(VFMIG_ERR_INCOMPLETE, m->p.dst_rc)
	TH_LOG("%s", vfmig_session_error(m->p.ds)->msg);
	EXPECT_EQ(VFMIG_ERR_INCOMPLETE, m->p.src_rc)
	TH_LOG("%s", vfmig_session_error(m->p.ss)->msg);
	for (unsigned i = 0; i < 2; i++) {
		EXPECT_EQ(VFMIG_STATE_STOP, vfmig_fake_state(SRC(m, i)));
		EXPECT_EQ(0, vfmig_fake_resets(DST(m, i))); /* never after COMMIT */
		EXPECT_EQ(m->digest[i], vfmig_fake_digest(DST(m, i)));
	}
}

TEST(destination_device_fails_running_after_commit_nothing_resets)
{
	struct mig m;

	run_dst_fail_after_commit(_metadata, &m, 1, VFMIG_STATE_RUNNING);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(DST(&m, 0)));
	EXPECT_EQ(VFMIG_STATE_RUNNING_P2P, vfmig_fake_state(DST(&m, 1)));
	mig_fini(&m);
}

TEST(destination_device_fails_running_p2p_after_commit_nothing_resets)
{
	struct mig m;

	run_dst_fail_after_commit(_metadata, &m, 0, VFMIG_STATE_RUNNING_P2P);
	EXPECT_EQ(VFMIG_STATE_STOP, vfmig_fake_state(DST(&m, 0)));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(DST(&m, 1)));
	mig_fini(&m);
}

/* ---- COMMIT that never left -------------------------------------------------------------- */

/* LOADED reaches the source, but the source's main socket no longer takes data. */
static void refuse_source_writes(void *arg, int in, int out)
{
	(void)arg;
	(void)in;
	shutdown(out, SHUT_RD); /* UNIX sockets: the peer's next send fails with EPIPE */
}

TEST(commit_send_failure_rolls_back)
{
	struct mig m;

	ASSERT_EQ(0, mig_init(&m, 2, ALL_FLAGS));
	ASSERT_EQ(0, mig_run(&m));
	proxy_on_frame(m.pp.px, PROXY_TO_CLIENT, VFMIG_F_LOADED, 1, refuse_source_writes, NULL);
	ASSERT_EQ(0, mig_go(&m));
	check_owner(_metadata, &m);
	expect_rolled_back(_metadata, &m);
	mig_fini(&m);
}

/* ---- liveness ------------------------------------------------------------------------------ */

struct ping_watch {
	pthread_mutex_t lock;
	int main_in; /* the destination's end of the main channel, as the proxy sees it */
	unsigned main_pings, other_pings;
};

static void saw_hello_ack(void *arg, int in, int out)
{
	struct ping_watch *w = arg;

	(void)out;
	pthread_mutex_lock(&w->lock);
	w->main_in = in;
	pthread_mutex_unlock(&w->lock);
}

static void saw_ping(void *arg, int in, int out)
{
	struct ping_watch *w = arg;

	(void)out;
	pthread_mutex_lock(&w->lock);
	if (in == w->main_in)
		w->main_pings++;
	else
		w->other_pings++;
	pthread_mutex_unlock(&w->lock);
}

/*
 * A long precopy: both sides stay alive on PINGs, and the destination PINGs
 * only the main channel (the source never reads its multifd channels: PINGs
 * there would fill the socket and block the keepalive thread).
 */
TEST(destination_pings_only_where_the_source_reads)
{
	struct ping_watch w = { .lock = PTHREAD_MUTEX_INITIALIZER, .main_in = -1 };
	struct mig m;

	ASSERT_EQ(0, mig_init(&m, 2, ALL_FLAGS));
	for (unsigned i = 0; i < 2; i++)
		rec_initial_floor(m.p.src[i], 4096); /* precopy never converges by itself */
	m.p.so.switchover_ack = m.p.dopt.switchover_ack = VFMIG_OFF;
	m.p.so.max_iterations = 1000000;
	m.p.so.max_precopy_ms = 4 * TMO_MS;
	m.p.so.channels = 2;
	ASSERT_EQ(0, mig_run(&m));
	proxy_on_frame(m.pp.px, PROXY_TO_CLIENT, VFMIG_F_HELLO_ACK, 1, saw_hello_ack, &w);
	proxy_on_frame(m.pp.px, PROXY_TO_CLIENT, VFMIG_F_PING, 0, saw_ping, &w);
	ASSERT_EQ(0, mig_go(&m));
	expect_migrated(_metadata, &m);
	EXPECT_EQ(VFMIG_CONVERGE_MAX_TIME, vfmig_session_stats(m.p.ss)->converge);
	EXPECT_LT(0, w.main_pings);
	EXPECT_EQ(0, w.other_pings);
	mig_fini(&m);
}

struct end_watch {
	pthread_mutex_t lock;
	int ended[8]; /* multifd channels that carried CHANNEL_END (the proxy's in-fd) */
	unsigned nended, pings_after;
};

static void saw_channel_end(void *arg, int in, int out)
{
	struct end_watch *w = arg;

	(void)out;
	pthread_mutex_lock(&w->lock);
	if (w->nended < ARRAY_SIZE(w->ended))
		w->ended[w->nended++] = in;
	pthread_mutex_unlock(&w->lock);
}

static void saw_source_ping(void *arg, int in, int out)
{
	struct end_watch *w = arg;

	(void)out;
	pthread_mutex_lock(&w->lock);
	for (unsigned i = 0; i < w->nended; i++)
		w->pings_after += w->ended[i] == in;
	pthread_mutex_unlock(&w->lock);
}

/* A slow validation on the destination (RESUMING -> STOP): the source idles meanwhile. */
static void slow_validation(void *arg, enum vfmig_state target)
{
	(void)arg;
	if (target == VFMIG_STATE_STOP)
		nanosleep(&(struct timespec){ 0, 300 * 1000 * 1000 }, NULL); /* device model */
}

/* Nothing follows CHANNEL_END on its channel, not even a PING. */
TEST(no_ping_after_channel_end)
{
	struct end_watch w = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct mig m;

	ASSERT_EQ(0, mig_init(&m, 2, NOPRE));
	for (unsigned i = 0; i < 2; i++)
		rec_set_hook(m.p.dst[i], slow_validation, NULL);
	m.p.so.channels = 2;
	ASSERT_EQ(0, mig_run(&m));
	proxy_on_frame(m.pp.px, PROXY_TO_SERVER, VFMIG_F_CHANNEL_END, 0, saw_channel_end, &w);
	proxy_on_frame(m.pp.px, PROXY_TO_SERVER, VFMIG_F_PING, 0, saw_source_ping, &w);
	ASSERT_EQ(0, mig_go(&m));
	expect_migrated(_metadata, &m);
	EXPECT_EQ(2, w.nended);
	EXPECT_EQ(0, w.pings_after);
	mig_fini(&m);
}

/* The only function that starts devices after a migration began wants a reason. */
TEST(devset_start_refuses_without_a_proof)
{
	struct vfmig_device *d = fake("d", 1 << 20, ALL_FLAGS, 1);
	struct vfmig_error e = { 0 };
	struct vfmig_log log = { 0 };

	ASSERT_EQ(0, vfmig_device_set_state(d, VFMIG_STATE_STOP, VFMIG_STATE_ERROR, &e));
	EXPECT_EQ(-EPERM, vfmig_devset_start(&d, 1, VFMIG_GO_NONE, &log, NULL, 0));
	EXPECT_EQ(VFMIG_STATE_STOP, vfmig_fake_state(d));
	EXPECT_EQ(0, vfmig_devset_start(&d, 1, VFMIG_GO_COMMIT_RECEIVED, &log, NULL, 0));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(d));
	vfmig_device_close(d);
}

/* ---- a silent network --------------------------------------------------------------------- */

struct silence {
	int dir;
	uint16_t type;
	unsigned nth;
	enum proxy_cut how;
	bool after_commit; /* the source sent COMMIT before the silence */
	bool dst_runs;	   /* the destination got COMMIT */
	bool pre_main;	   /* precopy on the main channel (precopy_multifd off) */
};

static void run_silence(struct __test_metadata *_metadata, const struct silence *sc, uint64_t flags)
{
	struct mig m;

	ASSERT_EQ(0, mig_init(&m, 2, flags));
	if (sc->pre_main)
		m.p.so.precopy_multifd = VFMIG_OFF;
	ASSERT_EQ(0, mig_run(&m));
	proxy_silence_at(m.pp.px, sc->dir, sc->type, sc->nth, sc->how);
	ASSERT_EQ(0, mig_go(&m));
	EXPECT_TRUE(m.went_silent);
	check_owner(_metadata, &m);
	if (!sc->after_commit) {
		expect_rolled_back(_metadata, &m);
	} else {
		EXPECT_EQ(VFMIG_ERR_OUTCOME_UNKNOWN, m.p.src_rc)
		TH_LOG("%s", vfmig_session_error(m.p.ss)->msg);
		EXPECT_EQ(VFMIG_OWNER_UNKNOWN, vfmig_session_owner(m.p.ss));
		EXPECT_EQ(sc->dst_runs ? VFMIG_OK : VFMIG_ERR_TIMEOUT, m.p.dst_rc)
		TH_LOG("%s", vfmig_session_error(m.p.ds)->msg);
		/*
		 * Whoever knows both sides decides (vfio-mig migrate does): a
		 * destination that reset before COMMIT lets the source resume.
		 */
		EXPECT_EQ(sc->dst_runs ? VFMIG_OWNER_DESTINATION : VFMIG_OWNER_SOURCE,
			  vfmig_session_owner(m.p.ds));
		if (!sc->dst_runs) {
			EXPECT_EQ(0, vfmig_session_resume(m.p.ss));
			EXPECT_EQ(VFMIG_OWNER_SOURCE, vfmig_session_owner(m.p.ss));
			for (unsigned i = 0; i < m.p.n; i++) {
				EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(SRC(&m, i)));
				EXPECT_EQ(m.digest[i], vfmig_fake_digest(SRC(&m, i)));
			}
			EXPECT_EQ(0, rec_check_never_both(m.log, m.p.n, NULL, 0));
		}
		EXPECT_EQ(-EPERM, vfmig_session_resume(m.p.ds));
	}
	mig_fini(&m);
}

#define SILENCE_TEST(name, flags, d, t, n, h, ...)                           \
	TEST(silent_network_##name)                                          \
	{                                                                    \
		static const struct silence sc = {                           \
			.dir = d, .type = t, .nth = n, .how = h, __VA_ARGS__ \
		};                                                           \
                                                                             \
		run_silence(_metadata, &sc, flags);                          \
	}

SILENCE_TEST(before_hello_ack, ALL_FLAGS, PROXY_TO_CLIENT, VFMIG_F_HELLO_ACK, 1, PROXY_BEFORE, )
SILENCE_TEST(before_ready, ALL_FLAGS, PROXY_TO_CLIENT, VFMIG_F_READY, 1, PROXY_BEFORE, )
SILENCE_TEST(during_precopy_on_the_main_channel, ALL_FLAGS, PROXY_TO_SERVER, VFMIG_F_PRECOPY_DATA,
	     3, PROXY_BEFORE, .pre_main = true)
/* Precopy over multifd: its packets are the first DEVICE_STATE frames. */
SILENCE_TEST(during_precopy_over_multifd, ALL_FLAGS, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 3,
	     PROXY_BEFORE, )
SILENCE_TEST(half_a_precopy_packet_over_multifd, ALL_FLAGS, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE,
	     2, PROXY_HALF, )
SILENCE_TEST(before_switchover_ack, ALL_FLAGS, PROXY_TO_CLIENT, VFMIG_F_SWITCHOVER_ACK, 1,
	     PROXY_BEFORE, )
SILENCE_TEST(before_switchover_start, ALL_FLAGS, PROXY_TO_SERVER, VFMIG_F_SWITCHOVER_START, 1,
	     PROXY_BEFORE, )
SILENCE_TEST(mid_stop_copy, NOPRE, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 3, PROXY_BEFORE, )
SILENCE_TEST(half_a_frame_mid_stop_copy, NOPRE, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 3,
	     PROXY_HALF, )
SILENCE_TEST(before_channel_end, NOPRE, PROXY_TO_SERVER, VFMIG_F_CHANNEL_END, 1, PROXY_BEFORE, )
SILENCE_TEST(before_loaded, ALL_FLAGS, PROXY_TO_CLIENT, VFMIG_F_LOADED, 1, PROXY_BEFORE, )
SILENCE_TEST(before_commit, ALL_FLAGS, PROXY_TO_SERVER, VFMIG_F_COMMIT, 1, PROXY_BEFORE,
	     .after_commit = true)
SILENCE_TEST(half_commit, ALL_FLAGS, PROXY_TO_SERVER, VFMIG_F_COMMIT, 1, PROXY_HALF,
	     .after_commit = true)
SILENCE_TEST(before_complete, ALL_FLAGS, PROXY_TO_CLIENT, VFMIG_F_COMPLETE, 1, PROXY_BEFORE,
	     .after_commit = true, .dst_runs = true)

TEST_HARNESS_MAIN
