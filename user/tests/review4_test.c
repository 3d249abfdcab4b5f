// SPDX-License-Identifier: GPL-2.0-only
/*
 * review4_test.c - adversarial review of precopy over multifd (HELLO option
 * PRECOPY_MULTIFD, commit c496f64): abort paths of the parallel passes and
 * of the destination's load threads, the LOADED condition, idx accounting,
 * what a rogue source can do with the new packet kinds.
 *
 * No sleep synchronises anything: a test waits for a condition, polling it
 * with a deadline where the condition lives inside a session.
 */
#include <linux/sockios.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "pair_proxy.h"
#include "recorder.h"
#include "rogue.h"
#include "test_util.h"

#define WAIT_NS (10ull * 1000 * 1000 * 1000)

/* Poll @pred(arg) every 2 ms for at most @ns; its last value. */
static bool poll_until(bool (*pred)(void *arg), void *arg, uint64_t ns)
{
	uint64_t end = vfmig_now_ns() + ns;
	bool ok;

	while (!(ok = pred(arg)) && vfmig_now_ns() < end)
		rec_sleep_ms(2); /* polling a condition, bounded */
	return ok;
}

/* ---- the destination: a load thread blocked sending an ack ----------------------- */

struct markers {
	int fd;
	uint32_t n;
};

/* INIT_SENT markers of generations 0, 1, 2, ... as device 0's idx 0, 1, 2, ... */
static void *marker_flood(void *arg)
{
	struct markers *m = arg;

	for (uint32_t g = 0; g < m->n; g++) {
		uint8_t p[4];

		put_le32(p, g);
		if (raw_send(m->fd, VFMIG_F_DEVICE_STATE, VFMIG_FLAG_INIT_SENT, 0, g, p, 4))
			break;
	}
	return NULL;
}

static bool dst_reader_blocked(void *arg)
{
	return vfmig_test_reorder_blocked(arg) > 0;
}

/*
 * A source that never reads its main channel: the destination's load thread
 * blocks sending a SWITCHOVER_ACK (the socket is full), the reader behind it
 * fills the window and waits.  A cancel must still end the destination
 * within a second, with its device reset.
 */
TEST(destination_cancel_with_a_load_thread_blocked_on_an_ack)
{
	struct rogue_src r = { .main_fd = -1 };
	struct markers m;
	pthread_t ft;
	uint64_t t0, took;

	ASSERT_EQ(0, rogue_src_bounded(&r, 8 * MiB, 65536, 2));
	r.p.dopt.switchover_ack = VFMIG_AUTO;
	r.p.dopt.timeout_ms = 20000;
	vfmig_session_free(r.p.ds);
	r.p.ds = vfmig_session_new(false, r.p.dst, 1, &r.p.dopt);
	ASSERT_NE(NULL, r.p.ds);
	ASSERT_EQ(0, rogue_src_start(&r, 1, 2, 65536,
				     VFMIG_OPT_PRECOPY_MULTIFD | VFMIG_OPT_SWITCHOVER_ACK |
					     VFMIG_OPT_PRECOPY_REINIT));
	m = (struct markers){ .fd = r.ch_fd[0], .n = 100000 };
	ASSERT_EQ(0, pthread_create(&ft, NULL, marker_flood, &m));
	ASSERT_TRUE(poll_until(dst_reader_blocked, r.p.ds, WAIT_NS));
	t0 = vfmig_now_ns();
	vfmig_session_cancel(r.p.ds);
	rogue_src_wait(&r);
	took = vfmig_now_ns() - t0;
	for (unsigned i = 0; i < r.nch; i++)
		shutdown(r.ch_fd[i], SHUT_RDWR);
	pthread_join(ft, NULL);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, r.p.dst_rc) TH_LOG("%s", vfmig_session_error(r.p.ds)->msg);
	EXPECT_EQ(1, vfmig_fake_resets(r.p.dst[0]));
	EXPECT_GT(1000000000ull, took)
	TH_LOG("ended %llu ms after the cancel", (unsigned long long)(took / 1000000));
	rogue_src_fini(&r);
}

/* ---- the source: cancel during a parallel pass on a stalled network ------------- */

struct stall {
	struct pair p;
	struct pair_proxy pp;
	pthread_t ct;
	uint64_t cancelled_ns;
};

/* Bytes the silent proxy has not read from the source's sockets. */
static bool source_sockets_full(void *arg)
{
	struct stall *st = arg;
	struct proxy *px = st->pp.px;
	uint64_t q = 0;

	if (!proxy_went_silent(px))
		return false;
	pthread_mutex_lock(&px->lock);
	for (unsigned i = 0; i < px->nconns; i++) {
		int n = 0;

		if (px->conns[i]->fd[0] >= 0 && !ioctl(px->conns[i]->fd[0], SIOCINQ, &n))
			q += (uint64_t)n;
	}
	pthread_mutex_unlock(&px->lock);
	return q >= 256 << 10;
}

static void *stall_cancel(void *arg)
{
	struct stall *st = arg;

	poll_until(source_sockets_full, st, WAIT_NS);
	st->cancelled_ns = vfmig_now_ns();
	vfmig_session_cancel(st->p.ss);
	return NULL;
}

TEST(source_cancel_during_a_parallel_pass_on_a_stalled_network)
{
	struct stall st = { 0 };
	uint64_t took;

	ASSERT_EQ(0, pair_init(&st.p, 2));
	for (unsigned i = 0; i < 2; i++) {
		vfmig_device_close(st.p.src[i]);
		vfmig_device_close(st.p.dst[i]);
		st.p.src[i] = fake("src", 16 << 20, ALL_FLAGS, 100 + i);
		st.p.dst[i] = fake("dst", 16 << 20, ALL_FLAGS, 200 + i);
	}
	st.p.so.channels = 2;
	st.p.so.timeout_ms = 20000;
	st.p.dopt.timeout_ms = 1500;
	ASSERT_EQ(0, pair_listen(&st.p));
	ASSERT_EQ(0, pair_proxy_start(&st.pp, &st.p));
	/* The network goes silent at the 4th precopy packet. */
	proxy_silence_at(st.pp.px, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 4, PROXY_BEFORE);
	ASSERT_EQ(0, pthread_create(&st.ct, NULL, stall_cancel, &st));
	ASSERT_EQ(0, pair_run_to(&st.p, &st.pp.addr));
	took = vfmig_now_ns() - st.cancelled_ns;
	pthread_join(st.ct, NULL);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, st.p.src_rc) TH_LOG("%s", vfmig_session_error(st.p.ss)->msg);
	EXPECT_TRUE(vfmig_session_stats(st.p.ss)->precopy_multifd);
	for (unsigned i = 0; i < 2; i++)
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(st.p.src[i]));
	EXPECT_GT(1000000000ull, took)
	TH_LOG("vfmig_session_send() returned %llu ms after the cancel",
	       (unsigned long long)(took / 1000000));
	pair_proxy_stop(&st.pp, true);
	pair_fini(&st.p);
}

/* ---- the destination: every device loaded before SWITCHOVER_START is read ---------- */

struct hold {
	struct pair *p;
	pthread_mutex_t lock;
	unsigned ends; /* CHANNEL_END frames forwarded */
	atomic_uint configs;
	bool held_ok;
};

static struct hold *the_hold;

/* A destination device that counts its config writes (the last step of its load). */
static int count_config_write(void *priv, const void *buf, size_t len)
{
	struct vfmig_device *inner = priv;

	atomic_fetch_add(&the_hold->configs, 1);
	return inner->ops->config_write(inner->priv, buf, len);
}

static int fwd_get_state(void *priv, enum vfmig_state *st)
{
	struct vfmig_device *d = priv;

	return d->ops->get_state(d->priv, st);
}

static int fwd_set_state(void *priv, enum vfmig_state st)
{
	struct vfmig_device *d = priv;

	return d->ops->set_state(d->priv, st);
}

static ssize_t fwd_read(void *priv, void *buf, size_t len)
{
	struct vfmig_device *d = priv;

	return d->ops->read(d->priv, buf, len);
}

static ssize_t fwd_write(void *priv, const void *buf, size_t len)
{
	struct vfmig_device *d = priv;

	return d->ops->write(d->priv, buf, len);
}

static int fwd_precopy_info(void *priv, uint64_t *i, uint64_t *dty, uint32_t *f)
{
	struct vfmig_device *d = priv;

	return d->ops->precopy_info(d->priv, i, dty, f);
}

static int fwd_data_size(void *priv, uint64_t *b)
{
	struct vfmig_device *d = priv;

	return d->ops->data_size(d->priv, b);
}

static ssize_t fwd_config_read(void *priv, void *buf, size_t len)
{
	struct vfmig_device *d = priv;

	return d->ops->config_read(d->priv, buf, len);
}

static int fwd_reset(void *priv)
{
	struct vfmig_device *d = priv;

	return d->ops->reset(d->priv);
}

static void fwd_close(void *priv)
{
	vfmig_device_close(priv);
}

static const struct vfmig_device_ops counting_ops = {
	.get_state = fwd_get_state,
	.set_state = fwd_set_state,
	.read = fwd_read,
	.write = fwd_write,
	.precopy_info = fwd_precopy_info,
	.data_size = fwd_data_size,
	.config_read = fwd_config_read,
	.config_write = count_config_write,
	.reset = fwd_reset,
	.close = fwd_close,
};

static struct vfmig_device *counting(struct vfmig_device *inner)
{
	return vfmig_device_new(vfmig_device_name(inner), vfmig_device_compat(inner),
				vfmig_device_flags(inner), vfmig_device_config_size(inner),
				&counting_ops, inner);
}

static void count_end(void *arg, int in, int out)
{
	struct hold *h = arg;

	(void)in;
	(void)out;
	pthread_mutex_lock(&h->lock);
	h->ends++;
	pthread_mutex_unlock(&h->lock);
}

static bool all_loaded(void *arg)
{
	struct hold *h = arg;

	return atomic_load(&h->configs) == h->p->n;
}

/* Hold SWITCHOVER_START until every destination device has loaded its config. */
static void hold_switchover(void *arg, int in, int out)
{
	struct hold *h = arg;

	(void)in;
	(void)out;
	h->held_ok = poll_until(all_loaded, h, WAIT_NS);
}

TEST(every_device_loaded_before_switchover_start_is_read)
{
	struct hold h = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct pair_proxy pp = { 0 };
	struct pair p;

	the_hold = &h;
	h.p = &p;
	ASSERT_EQ(0, pair_init(&p, 2));
	for (unsigned i = 0; i < 2; i++) {
		p.dst[i] = counting(p.dst[i]);
		ASSERT_NE(NULL, p.dst[i]);
	}
	p.so.channels = 2;
	p.so.max_iterations = 3;
	p.so.downtime_limit_ms = 0;
	ASSERT_EQ(0, pair_listen(&p));
	ASSERT_EQ(0, pair_proxy_start(&pp, &p));
	proxy_on_frame(pp.px, PROXY_TO_SERVER, VFMIG_F_CHANNEL_END, 0, count_end, &h);
	proxy_on_frame(pp.px, PROXY_TO_SERVER, VFMIG_F_SWITCHOVER_START, 1, hold_switchover, &h);
	ASSERT_EQ(0, pair_run_to(&p, &pp.addr));
	EXPECT_TRUE(h.held_ok);
	EXPECT_EQ(VFMIG_OK, p.src_rc) TH_LOG("source: %s", vfmig_session_error(p.ss)->msg);
	EXPECT_EQ(VFMIG_OK, p.dst_rc) TH_LOG("destination: %s", vfmig_session_error(p.ds)->msg);
	EXPECT_TRUE(vfmig_session_stats(p.ss)->precopy_multifd);
	for (unsigned i = 0; i < 2; i++) {
		struct vfmig_device *in = p.dst[i]->priv;

		EXPECT_EQ(vfmig_fake_digest(p.src[i]), vfmig_fake_digest(in));
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(in));
	}
	pair_proxy_stop(&pp, true);
	pair_fini(&p);
}

TEST_HARNESS_MAIN
