// SPDX-License-Identifier: GPL-2.0-only
/*
 * precopy_mf_test.c - precopy over the multifd channels (HELLO option
 * PRECOPY_MULTIFD): every precopying device read in its own thread, its
 * packets on the channels in the same per-device sequence as its STOP_COPY
 * chunks, applied by the destination's load threads from READY on; and
 * --multifd off, where devices are read and saved one after another on the
 * main channel (the compatibility baseline).
 *
 * Every wait here is on a condition with a deadline: a hook that holds a
 * frame waits for the event it needs (another device read, a reader blocked
 * by the budget), never for a time.
 */
#include <stdatomic.h>

#include "kselftest_harness.h"
#include "pair_proxy.h"
#include "recorder.h"
#include "rogue.h"
#include "test_util.h"

#define WAIT_NS (10ull * 1000 * 1000 * 1000)

/* ---- shared by the tests ------------------------------------------------------------------ */

struct watch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* precopy_info calls per source device, and whether device 0 saw device 3 read */
	unsigned info_calls[PAIR_MAX];
	bool overlapped;
	/* frames the proxy passed */
	unsigned main_precopy;	      /* PRECOPY_DATA or INIT_DATA_SENT on any connection */
	unsigned dev_state;	      /* DEVICE_STATE */
	unsigned dev_state_at_switch; /* DEVICE_STATE before SWITCHOVER_START */
	bool held_ok;		      /* the held frame's condition came true */
	struct vfmig_session **ds;    /* the destination (budget test) */
	/* STOP_COPY reads: a global order, each device's first and last */
	unsigned sc_seq, sc_first[PAIR_MAX], sc_last[PAIR_MAX];
};

struct dev_hook {
	struct watch *w;
	unsigned dev;
};

static struct watch *watch_new(void)
{
	struct watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	vfmig_cond_init_mono(&w->cond);
	return w;
}

static void watch_free(struct watch *w)
{
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* Wait (at most @ns) until @pred(w) holds; its value then. */
static bool watch_until_ns(struct watch *w, bool (*pred)(struct watch *w), uint64_t ns)
{
	uint64_t end = vfmig_now_ns() + ns;
	bool ok;

	pthread_mutex_lock(&w->lock);
	while (!(ok = pred(w)) && vfmig_cond_wait_until(&w->cond, &w->lock, end))
		;
	pthread_mutex_unlock(&w->lock);
	return ok;
}

static bool watch_until(struct watch *w, bool (*pred)(struct watch *w))
{
	return watch_until_ns(w, pred, WAIT_NS);
}

static void watch_bump(struct watch *w, unsigned *counter)
{
	pthread_mutex_lock(&w->lock);
	(*counter)++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static bool dev3_read(struct watch *w)
{
	return w->info_calls[3] > 0;
}

/*
 * Device 0's first PRECOPY_INFO waits until device 3 asked too: with devices
 * read one after another, device 3 is only asked once device 0's share of
 * the pass is done, so the wait would end at its deadline instead.
 */
static void info_hook(void *opaque, unsigned n)
{
	struct dev_hook *h = opaque;

	watch_bump(h->w, &h->w->info_calls[h->dev]);
	/* 2 s: ample for a parallel read, and what a serial one waits in vain. */
	if (h->dev == 0 && n == 1 && watch_until_ns(h->w, dev3_read, 2000000000ull)) {
		pthread_mutex_lock(&h->w->lock);
		h->w->overlapped = true;
		pthread_mutex_unlock(&h->w->lock);
	}
}

static void sc_hook(void *opaque, unsigned n)
{
	struct dev_hook *h = opaque;

	pthread_mutex_lock(&h->w->lock);
	h->w->sc_seq++;
	if (n == 1)
		h->w->sc_first[h->dev] = h->w->sc_seq;
	h->w->sc_last[h->dev] = h->w->sc_seq;
	pthread_mutex_unlock(&h->w->lock);
}

static void count_main_precopy(void *arg, int in, int out)
{
	struct watch *w = arg;

	(void)in;
	(void)out;
	watch_bump(w, &w->main_precopy);
}

static void count_dev_state(void *arg, int in, int out)
{
	struct watch *w = arg;

	(void)in;
	(void)out;
	watch_bump(w, &w->dev_state);
}

static void at_switchover(void *arg, int in, int out)
{
	struct watch *w = arg;

	(void)in;
	(void)out;
	pthread_mutex_lock(&w->lock);
	w->dev_state_at_switch = w->dev_state;
	pthread_mutex_unlock(&w->lock);
}

/* n pairs of 1 MiB devices whose sources report to @w; with a proxy counting frames. */
static int setup(struct pair *p, struct pair_proxy *pp, struct watch *w, struct dev_hook *h,
		 unsigned n, unsigned fail_src_dev, unsigned fail_src_at)
{
	if (pair_init(p, n))
		return -1;
	for (unsigned i = 0; i < n; i++) {
		struct vfmig_fake_cfg cfg = fake_cfg(1 << 20, ALL_FLAGS, 100 + i);

		h[i] = (struct dev_hook){ .w = w, .dev = i };
		cfg.precopy_info_hook = info_hook;
		cfg.stopcopy_read_hook = sc_hook;
		cfg.hook_opaque = &h[i];
		/* Some pages dirtied on each PRECOPY_INFO: more than one pass moves data. */
		cfg.dirty_pages_per_info = 8;
		cfg.dirty_info_calls = 6;
		if (fail_src_at && i == fail_src_dev)
			cfg.fail_precopy_read_at = fail_src_at;
		vfmig_device_close(p->src[i]);
		p->src[i] = vfmig_fake_new("src", &cfg);
		if (!p->src[i])
			return -1;
	}
	p->so.channels = 2;
	p->so.max_iterations = 4;
	p->so.downtime_limit_ms = 0;
	if (pair_listen(p) || pair_proxy_start(pp, p))
		return -1;
	proxy_on_frame(pp->px, PROXY_TO_SERVER, VFMIG_F_PRECOPY_DATA, 0, count_main_precopy, w);
	proxy_on_frame(pp->px, PROXY_TO_SERVER, VFMIG_F_INIT_DATA_SENT, 0, count_main_precopy, w);
	proxy_on_frame(pp->px, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 0, count_dev_state, w);
	proxy_on_frame(pp->px, PROXY_TO_SERVER, VFMIG_F_SWITCHOVER_START, 1, at_switchover, w);
	return 0;
}

/* Failed before COMMIT: every source device runs with its state, every destination reset. */
static void expect_rolled_back(struct __test_metadata *_metadata, struct pair *p)
{
	EXPECT_NE(VFMIG_OK, p->src_rc);
	EXPECT_NE(VFMIG_OK, p->dst_rc);
	EXPECT_EQ(VFMIG_OWNER_SOURCE, vfmig_session_owner(p->ss));
	for (unsigned i = 0; i < p->n; i++) {
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p->src[i]));
		EXPECT_EQ(0, vfmig_fake_resets(p->src[i]));
		/* A reset device runs with its reset state (VFIO_DEVICE_RESET). */
		EXPECT_EQ(1, vfmig_fake_resets(p->dst[i]));
	}
}

static void teardown(struct pair *p, struct pair_proxy *pp, struct watch *w)
{
	pair_proxy_stop(pp, true);
	pair_fini(p);
	watch_free(w);
}

/* ---- the path -------------------------------------------------------------------------- */

TEST(devices_precopy_in_parallel_over_the_channels)
{
	struct dev_hook h[PAIR_MAX];
	struct pair_proxy pp = { 0 };
	struct watch *w = watch_new();
	const struct vfmig_stats *ss, *ds;
	struct pair p;

	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, setup(&p, &pp, w, h, 4, 0, 0));
	ASSERT_EQ(0, pair_run_to(&p, &pp.addr));
	EXPECT_PAIR_MIGRATED(&p);
	ss = vfmig_session_stats(p.ss);
	ds = vfmig_session_stats(p.ds);
	EXPECT_TRUE(ss->precopy_multifd);
	EXPECT_TRUE(ds->precopy_multifd);
	/* Device 3 was asked while device 0's first PRECOPY_INFO was still running. */
	EXPECT_TRUE(w->overlapped);
	/* No precopy byte on the main channel; packets on the channels before the switchover. */
	EXPECT_EQ(0, w->main_precopy);
	EXPECT_LT(4 * 16, w->dev_state_at_switch) TH_LOG("%u", w->dev_state_at_switch);
	/* Everything read in precopy was loaded in precopy: the initial bytes at least. */
	EXPECT_LE(4ull << 20, ss->precopy_bytes);
	EXPECT_EQ(ss->precopy_bytes, ds->precopy_bytes);
	EXPECT_LT(1, ss->precopy_iterations);
	teardown(&p, &pp, w);
}

/* The same devices with --multifd off: one after another, nothing on the channels. */
TEST(multifd_off_reads_and_saves_devices_one_after_another)
{
	struct dev_hook h[PAIR_MAX];
	struct pair_proxy pp = { 0 };
	struct watch *w = watch_new();
	struct pair p;

	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, setup(&p, &pp, w, h, 4, 0, 0));
	p.so.multifd = VFMIG_OFF;
	p.so.channels = 0;
	ASSERT_EQ(0, pair_run_to(&p, &pp.addr));
	EXPECT_PAIR_MIGRATED(&p);
	EXPECT_FALSE(vfmig_session_stats(p.ss)->precopy_multifd);
	/* Device 0 waited for device 3 until its deadline: the reads are serial. */
	EXPECT_FALSE(w->overlapped);
	EXPECT_LT(0, w->main_precopy);
	EXPECT_EQ(0, w->dev_state_at_switch);
	/* STOP_COPY: each device read to its end before the next one's first read. */
	for (unsigned i = 1; i < 4; i++) {
		EXPECT_LT(w->sc_last[i - 1], w->sc_first[i])
		TH_LOG("device %u: reads %u..%u, device %u from %u", i - 1, w->sc_first[i - 1],
		       w->sc_last[i - 1], i, w->sc_first[i]);
	}
	teardown(&p, &pp, w);
}

/* A destination that declines the option gets precopy on the main channel. */
TEST(destination_declining_precopy_multifd_gets_the_main_channel)
{
	struct dev_hook h[PAIR_MAX];
	struct pair_proxy pp = { 0 };
	struct watch *w = watch_new();
	struct pair p;

	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, setup(&p, &pp, w, h, 2, 0, 0));
	p.dopt.precopy_multifd = VFMIG_OFF;
	ASSERT_EQ(0, pair_run_to(&p, &pp.addr));
	EXPECT_PAIR_MIGRATED(&p);
	EXPECT_FALSE(vfmig_session_stats(p.ss)->precopy_multifd);
	EXPECT_FALSE(vfmig_session_stats(p.ds)->precopy_multifd);
	/* (STOP_COPY chunks may pass the proxy before SWITCHOVER_START does: not counted) */
	EXPECT_LT(0, w->main_precopy);
	teardown(&p, &pp, w);
}

/* Asked for explicitly, a refusal fails the handshake before any device changes state. */
TEST(precopy_multifd_on_refused_by_the_destination_fails_cleanly)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 2));
	p.so.precopy_multifd = VFMIG_ON;
	p.dopt.precopy_multifd = VFMIG_OFF;
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, p.src_rc);
	EXPECT_MSG(p.ss, "declined precopy over multifd");
	for (unsigned i = 0; i < p.n; i++) {
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[i]));
		EXPECT_EQ(p.src_digest[i], vfmig_fake_digest(p.src[i]));
	}
	pair_fini(&p);
}

/* ---- order and budget --------------------------------------------------------------- */

static bool five_later(struct watch *w)
{
	return w->dev_state >= 6;
}

/* Hold the first DEVICE_STATE until five later ones went by on the other channel. */
static void hold_first_packet(void *arg, int in, int out)
{
	struct watch *w = arg;

	(void)in;
	(void)out;
	w->held_ok = watch_until(w, five_later);
}

TEST(out_of_order_arrival_across_channels_is_reassembled)
{
	struct dev_hook h[PAIR_MAX];
	struct pair_proxy pp = { 0 };
	struct watch *w = watch_new();
	struct pair p;

	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, setup(&p, &pp, w, h, 2, 0, 0));
	proxy_on_frame(pp.px, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 1, hold_first_packet, w);
	ASSERT_EQ(0, pair_run_to(&p, &pp.addr));
	EXPECT_TRUE(w->held_ok);
	EXPECT_PAIR_MIGRATED(&p);
	EXPECT_TRUE(vfmig_session_stats(p.ss)->precopy_multifd);
	teardown(&p, &pp, w);
}

static bool reader_blocked(struct watch *w)
{
	return vfmig_test_reorder_blocked(*w->ds) > 0;
}

/*
 * Hold the first precopy packet (some device's idx 0) until the other
 * channel's reader waits for room: the skew filled the budget.
 */
static void hold_until_budget_full(void *arg, int in, int out)
{
	struct watch *w = arg;
	uint64_t end = vfmig_now_ns() + WAIT_NS;

	(void)in;
	(void)out;
	/* The reader's wait is inside the destination: look, briefly, until it shows. */
	while (!(w->held_ok = reader_blocked(w)) && vfmig_now_ns() < end)
		rec_sleep_ms(2); /* polling a condition, bounded */
}

TEST(budget_exhaustion_during_precopy_backpressures_within_the_bound)
{
	const uint64_t chunk = 64 << 10, budget = 2 * chunk;
	struct dev_hook h[PAIR_MAX];
	struct pair_proxy pp = { 0 };
	struct watch *w = watch_new();
	const struct vfmig_stats *ds;
	struct pair p;

	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, setup(&p, &pp, w, h, 2, 0, 0));
	p.dopt.max_queued_bytes = budget;
	w->ds = &p.ds;
	proxy_on_frame(pp.px, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 1, hold_until_budget_full, w);
	ASSERT_EQ(0, pair_run_to(&p, &pp.addr));
	EXPECT_TRUE(w->held_ok);
	EXPECT_PAIR_MIGRATED(&p);
	ds = vfmig_session_stats(p.ds);
	/* budget + one chunk per device: what reorder.c promises. */
	EXPECT_GE(budget + p.n * chunk, ds->reorder_peak_bytes)
	TH_LOG("peak %llu", (unsigned long long)ds->reorder_peak_bytes);
	teardown(&p, &pp, w);
}

/* ---- failures -------------------------------------------------------------------- */

TEST(source_device_failing_mid_precopy_rolls_back)
{
	struct dev_hook h[PAIR_MAX];
	struct pair_proxy pp = { 0 };
	struct watch *w = watch_new();
	struct pair p;

	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, setup(&p, &pp, w, h, 4, 2, 5));
	ASSERT_EQ(0, pair_run_to(&p, &pp.addr));
	EXPECT_EQ(VFMIG_ERR_DEVICE, p.src_rc);
	EXPECT_MSG(p.ss, "read precopy data");
	expect_rolled_back(_metadata, &p);
	teardown(&p, &pp, w);
}

TEST(destination_device_failing_mid_precopy_rolls_back)
{
	struct dev_hook h[PAIR_MAX];
	struct pair_proxy pp = { 0 };
	struct watch *w = watch_new();
	struct vfmig_fake_cfg cfg = fake_cfg(1 << 20, ALL_FLAGS, 201);
	struct pair p;

	ASSERT_NE(NULL, w);
	ASSERT_EQ(0, setup(&p, &pp, w, h, 4, 0, 0));
	cfg.fail_resume_write_at = 4;
	vfmig_device_close(p.dst[1]);
	p.dst[1] = vfmig_fake_new("dst", &cfg);
	ASSERT_NE(NULL, p.dst[1]);
	ASSERT_EQ(0, pair_run_to(&p, &pp.addr));
	EXPECT_EQ(VFMIG_ERR_DEVICE, p.dst_rc);
	EXPECT_MSG(p.ds, "write precopy data");
	expect_rolled_back(_metadata, &p);
	teardown(&p, &pp, w);
}

/* A REINIT over multifd: the new initial bytes go out, then a marker of generation 1. */
TEST(reinit_over_multifd_gets_a_fresh_ack)
{
	struct vfmig_fake_cfg cfg = fake_cfg(1 << 20, ALL_FLAGS, 100);
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 2));
	cfg.reinit_at_info = 3;
	vfmig_device_close(p.src[0]);
	p.src[0] = vfmig_fake_new("src", &cfg);
	ASSERT_NE(NULL, p.src[0]);
	p.so.channels = 2;
	p.so.max_iterations = 6;
	p.so.downtime_limit_ms = 0;
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_PAIR_MIGRATED(&p);
	EXPECT_TRUE(vfmig_session_stats(p.ss)->precopy_multifd);
	EXPECT_EQ(1, vfmig_fake_reinits(p.src[0]));
	EXPECT_EQ(1, vfmig_session_stats(p.ss)->precopy_reinits);
	EXPECT_EQ(1, vfmig_session_stats(p.ds)->precopy_reinits);
	EXPECT_EQ(1, vfmig_test_init_gen(p.ss, 0));
	pair_fini(&p);
}

/* ---- what a destination refuses --------------------------------------------------- */

TEST(device_state_packet_kinds_do_not_combine)
{
	struct vfmig_limits lim = { .ndevices = 1, .max_chunk = 65536 };
	struct vfmig_frame_hdr hd = {
		.magic = VFMIG_MAGIC,
		.version = VFMIG_FRAME_VERSION,
		.type = VFMIG_F_DEVICE_STATE,
		.idx = 0,
		.length = 4,
	};
	char why[128];

	hd.flags = VFMIG_FLAG_PRECOPY;
	EXPECT_EQ(VFMIG_FERR_NONE, vfmig_hdr_validate(&hd, &lim, why, sizeof(why)));
	hd.flags = VFMIG_FLAG_INIT_SENT;
	EXPECT_EQ(VFMIG_FERR_NONE, vfmig_hdr_validate(&hd, &lim, why, sizeof(why)));
	hd.flags = VFMIG_FLAG_PRECOPY | VFMIG_FLAG_CONFIG;
	EXPECT_EQ(VFMIG_FERR_BAD_FLAGS, vfmig_hdr_validate(&hd, &lim, why, sizeof(why)));
	hd.flags = VFMIG_FLAG_INIT_SENT | VFMIG_FLAG_PRECOPY;
	EXPECT_EQ(VFMIG_FERR_BAD_FLAGS, vfmig_hdr_validate(&hd, &lim, why, sizeof(why)));
	hd.flags = VFMIG_FLAG_INIT_SENT;
	hd.length = 8;
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, vfmig_hdr_validate(&hd, &lim, why, sizeof(why)));
	hd.flags = VFMIG_FLAG_PRECOPY;
	hd.length = 0;
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, vfmig_hdr_validate(&hd, &lim, why, sizeof(why)));
}

/* A rogue source, one device, 2 channels of 64 KiB, options @opts; the destination's end. */
static void rogue(struct __test_metadata *_metadata, uint32_t opts,
		  void (*play)(struct rogue_src *r), enum vfmig_errclass want, const char *msg)
{
	struct rogue_src r = { .main_fd = -1 };

	ASSERT_EQ(0, rogue_src_bounded(&r, 8 * MiB, 65536, 2));
	r.p.dopt.switchover_ack = VFMIG_AUTO;
	ASSERT_EQ(0, rogue_src_start(&r, 1, 2, 65536, opts));
	play(&r);
	rogue_src_wait(&r);
	EXPECT_EQ(want, r.p.dst_rc);
	EXPECT_MSG(r.p.ds, msg);
	EXPECT_EQ(1, vfmig_fake_resets(r.p.dst[0]));
	rogue_src_fini(&r);
}

static const uint8_t junk[4096];

static void precopy_packet(struct rogue_src *r)
{
	raw_send(r->ch_fd[0], VFMIG_F_DEVICE_STATE, VFMIG_FLAG_PRECOPY, 0, 0, junk, sizeof(junk));
}

TEST(precopy_packet_without_the_option_is_refused)
{
	rogue(_metadata, 0, precopy_packet, VFMIG_ERR_PROTOCOL, "without PRECOPY_MULTIFD");
}

/* A STOP_COPY chunk the device accepts (a real source's first), then a precopy packet. */
static void precopy_after_stop_copy(struct rogue_src *r)
{
	struct vfmig_device *d = fake("s", 1 << 20, ALL_FLAGS, 7);
	struct vfmig_error e;
	uint8_t *buf = malloc(65536);
	ssize_t n = -1;

	if (d && buf && !vfmig_device_set_state(d, VFMIG_STATE_STOP_COPY, VFMIG_STATE_ERROR, &e))
		n = vfmig_device_read(d, buf, 65536);
	if (n > 0)
		raw_send(r->ch_fd[0], VFMIG_F_DEVICE_STATE, 0, 0, 0, buf, (uint32_t)n);
	free(buf);
	vfmig_device_close(d);
	raw_send(r->ch_fd[1], VFMIG_F_DEVICE_STATE, VFMIG_FLAG_PRECOPY, 0, 1, junk, sizeof(junk));
}

TEST(precopy_packet_after_stop_copy_data_is_refused)
{
	rogue(_metadata, VFMIG_OPT_PRECOPY_MULTIFD, precopy_after_stop_copy, VFMIG_ERR_PROTOCOL,
	      "after its STOP_COPY data");
}

static void precopy_on_main(struct rogue_src *r)
{
	raw_send(r->main_fd, VFMIG_F_PRECOPY_DATA, 0, 0, 0, junk, sizeof(junk));
}

TEST(precopy_data_on_the_main_channel_is_refused_with_the_option)
{
	rogue(_metadata, VFMIG_OPT_PRECOPY_MULTIFD, precopy_on_main, VFMIG_ERR_PROTOCOL,
	      "while precopy goes over multifd");
}

static void marker_of_generation_1(struct rogue_src *r)
{
	uint8_t gen[4];

	put_le32(gen, 1);
	raw_send(r->ch_fd[0], VFMIG_F_DEVICE_STATE, VFMIG_FLAG_INIT_SENT, 0, 0, gen, sizeof(gen));
}

TEST(init_sent_marker_of_an_unexpected_generation_is_refused)
{
	rogue(_metadata, VFMIG_OPT_PRECOPY_MULTIFD | VFMIG_OPT_SWITCHOVER_ACK,
	      marker_of_generation_1, VFMIG_ERR_PROTOCOL, "unexpected INIT_DATA_SENT");
}

TEST(precopy_multifd_without_multifd_is_refused_at_the_handshake)
{
	struct rogue_src r = { .main_fd = -1 };

	ASSERT_EQ(0, rogue_src_bounded(&r, 8 * MiB, 65536, 2));
	EXPECT_EQ(-2, rogue_src_start(&r, 1, 0, 65536, VFMIG_OPT_PRECOPY_MULTIFD));
	rogue_src_wait(&r);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, r.p.dst_rc);
	EXPECT_MSG(r.p.ds, "multifd off");
	rogue_src_fini(&r);
}

TEST_HARNESS_MAIN
