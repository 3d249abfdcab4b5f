// SPDX-License-Identifier: GPL-2.0-only
/*
 * review_test - regression tests for defects a hostile review found after
 * the ownership protocol landed: control frames out of phase from a rogue
 * destination (a crash, a COMPLETE before COMMIT), a source device reset
 * reported as rolled back, a fixed LOADED deadline against a busy
 * destination, a cancel slowed by a stalled network, frames that bypassed
 * the memory budget, a stuck buffer hidden by the config barrier, a PING
 * half-sent on a full TCP socket.  Every test states the promise it checks
 * (Documentation/engine-design.rst, vfmig.h); each failed before its fix.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "proxy.h"
#include "recorder.h"
#include "rogue.h"

#define NOPRE (VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P)

/* ---- helpers ------------------------------------------------------------------------ */

/* ---- a rogue destination: HELLO_ACK, then a script of frames ------------------------- */

struct rogue_dst {
	int lfd, fd;
	unsigned nframes;
	struct {
		uint16_t type;
		uint32_t device;
		uint32_t len;
	} script[4];
	unsigned hold_ms; /* keep the connection open this long after the script */
	pthread_t t;
};

static void *rogue_dst_thread(void *arg)
{
	struct rogue_dst *r = arg;
	uint8_t p[VFMIG_HELLO_ACK_FIXED + VFMIG_MSG_MAX], zero[64] = { 0 };
	struct vfmig_hello h;
	struct vfmig_frame f;
	char why[256];
	uint32_t n;

	r->fd = vfmig_accept(r->lfd, 5000, -1);
	if (r->fd < 0)
		return NULL;
	if (raw_recv(r->fd, 1, 4096, &f))
		return NULL;
	if (f.h.type != VFMIG_F_HELLO ||
	    vfmig_hello_decode(f.payload, f.h.length, &h, why, sizeof(why))) {
		vfmig_frame_free(&f);
		return NULL;
	}
	vfmig_frame_free(&f);
	n = vfmig_report_encode(p, VFMIG_OK, h.options, 0, "ok");
	raw_send(r->fd, VFMIG_F_HELLO_ACK, 0, 0, 0, p, n);
	for (unsigned i = 0; i < r->nframes; i++)
		raw_send(r->fd, r->script[i].type, 0, r->script[i].device, 0, zero,
			 r->script[i].len);
	/* Hold the connection until the source closes it (hold_ms at most). */
	for (uint64_t end = vfmig_now_ns() + (uint64_t)r->hold_ms * 1000000ull, now;
	     (now = vfmig_now_ns()) < end;) {
		struct pollfd pf = { .fd = r->fd, .events = POLLIN };
		uint8_t sink[4096];

		if (poll(&pf, 1, (int)((end - now) / 1000000) + 1) <= 0 ||
		    recv(r->fd, sink, sizeof(sink), 0) <= 0)
			break;
	}
	return NULL;
}

/*
 * Run a source session (one 1 MiB fake device, multifd off, timeout 1 s)
 * against a rogue destination playing @r's script.
 */
static enum vfmig_errclass run_against_rogue_dst(struct pair *p, struct rogue_dst *r)
{
	enum vfmig_errclass rc;

	p->so.multifd = VFMIG_OFF;
	p->so.timeout_ms = 1000;
	if (pair_listen(p))
		return VFMIG_ERR_NR;
	p->ss = vfmig_session_new(true, p->src, 1, &p->so);
	if (!p->ss)
		return VFMIG_ERR_NR;
	r->lfd = p->lfd;
	r->fd = -1;
	if (pthread_create(&r->t, NULL, rogue_dst_thread, r))
		return VFMIG_ERR_NR;
	rc = vfmig_session_send(p->ss, &p->addr);
	pthread_join(r->t, NULL);
	if (r->fd >= 0)
		close(r->fd);
	return rc;
}

/*
 * Defect: the return path starts before src->pc is set up (source.c,
 * vfmig_session_send: vfmig_thread_start(return_path) ... src->pc = ...), so
 * a SWITCHOVER_ACK that arrives before READY is handed to
 * vfmig_precopy_ack() with pc->lock == NULL: the source crashes instead of
 * failing with a protocol error.
 */
TEST(switchover_ack_before_ready_is_a_protocol_error_not_a_crash)
{
	struct rogue_dst r = {
		.nframes = 2,
		.script = { { VFMIG_F_SWITCHOVER_ACK, 0, 0 }, { VFMIG_F_READY, 0, 0 } },
		.hold_ms = 100,
	};
	enum vfmig_errclass rc;
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	rc = run_against_rogue_dst(&p, &r);
	EXPECT_EQ(VFMIG_ERR_PROTOCOL, rc) TH_LOG("%s", vfmig_session_error(p.ss)->msg);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[0]));
	pair_fini(&p);
}

/*
 * Defect: the source takes COMPLETE as success whether or not it sent
 * COMMIT (source.c, fail path: "if (src->complete) ... return VFMIG_OK").  A
 * COMPLETE that comes before COMMIT (here: before READY) makes the source
 * stop its devices and return 0 although it never gave the state away: it
 * still owns the state and nobody runs it.
 */
/* Control frames out of phase: a second READY, LOADED before SWITCHOVER_START. */
TEST(out_of_phase_ready_and_loaded_are_protocol_errors)
{
	static const struct {
		uint16_t first, second;
	} cases[] = {
		{ VFMIG_F_READY, VFMIG_F_READY },
		{ VFMIG_F_READY, VFMIG_F_LOADED },
	};

	for (unsigned k = 0; k < ARRAY_SIZE(cases); k++) {
		struct rogue_dst r = {
			.nframes = 2,
			.script = { { cases[k].first, 0, 0 }, { cases[k].second, 0, 0 } },
			.hold_ms = 1500,
		};
		enum vfmig_errclass rc;
		uint64_t digest;
		struct pair p;

		ASSERT_EQ(0, pair_init(&p, 1));
		digest = vfmig_fake_digest(p.src[0]);
		rc = run_against_rogue_dst(&p, &r);
		EXPECT_EQ(VFMIG_ERR_PROTOCOL, rc)
		TH_LOG("case %u: %s", k, vfmig_session_error(p.ss)->msg);
		EXPECT_MSG(p.ss, "out of sequence");
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[0]));
		EXPECT_EQ(digest, vfmig_fake_digest(p.src[0]));
		pair_fini(&p);
	}
}

TEST(complete_before_commit_does_not_stop_the_source)
{
	struct rogue_dst r = {
		.nframes = 1,
		.script = { { VFMIG_F_COMPLETE, 0, VFMIG_COMPLETE_LEN } },
		.hold_ms = 1500,
	};
	enum vfmig_errclass rc;
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	rc = run_against_rogue_dst(&p, &r);
	EXPECT_NE(VFMIG_OK, rc);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[0]))
	TH_LOG("rc %d (%s): COMMIT never left, yet the source device is %s", rc,
	       vfmig_session_error(p.ss)->msg, vfmig_state_name(vfmig_fake_state(p.src[0])));
	pair_fini(&p);
}

/* ---- exit code when the source loses a device's state --------------------------------- */

/*
 * Defect: a source device that goes to ERROR on SET STOP_COPY is reset by
 * save_thread() (multifd.c: vfmig_device_set_state(.., recover ERROR) resets a
 * device in ERROR): its state is gone.  The rollback then finds it RUNNING
 * and counts no failure, so the exit code is 3 (device), which the CLI
 * documents as "the source devices run again", instead of 11 (rollback
 * failed: "a device could not be put back (it was reset: its state is lost)").
 */
TEST(source_device_reset_in_stop_copy_is_rollback_failed)
{
	struct pair p;
	uint64_t digest;

	ASSERT_EQ(0, pair_init(&p, 1));
	p.src[0] = rec_wrap(NULL, p.src[0], REC_SOURCE, 0);
	rec_error_on(p.src[0], VFMIG_STATE_STOP_COPY);
	ASSERT_NE(NULL, p.src[0]);
	digest = vfmig_fake_digest(rec_inner(p.src[0]));
	ASSERT_EQ(0, pair_run(&p));
	/* The state is lost: the device was reset. */
	EXPECT_NE(digest, vfmig_fake_digest(rec_inner(p.src[0])));
	EXPECT_EQ(1, vfmig_fake_resets(rec_inner(p.src[0])));
	EXPECT_EQ(VFMIG_ERR_ROLLBACK, p.src_rc)
	TH_LOG("rc %d: %s", p.src_rc, vfmig_session_error(p.ss)->msg);
	pair_fini(&p);
}

/* ---- liveness: a destination busy loading is not a dead one ---------------------------- */

/*
 * Defect: the source waits for LOADED (and COMPLETE) with a fixed deadline of
 * --timeout from the moment it finished sending (core.c,
 * vfmig_session_wait_flag), although the destination is alive, PINGs the main
 * channel every quarter timeout, and is only slow at writing the buffered
 * chunks into its device.  engine-design.rst: "a receiver's --timeout fires
 * only when the peer or the path is dead, not when it is merely busy (... a
 * destination loading)".
 */
TEST(loaded_wait_does_not_time_out_while_the_destination_loads)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	vfmig_device_close(p.src[0]);
	vfmig_device_close(p.dst[0]);
	p.src[0] = fake("src", 1 << 20, NOPRE, 100);
	/* ~17 chunks of 64 KiB at 150 ms each: ~2.5 s of loading, progress all along. */
	p.dst[0] = rec_wrap(NULL, fake("dst", 1 << 20, NOPRE, 200), REC_DEST, 0);
	rec_io_delay(p.dst[0], 0, 150);
	ASSERT_NE(NULL, p.dst[0]);
	p.so.timeout_ms = p.dopt.timeout_ms = 1000;
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_EQ(VFMIG_OK, p.src_rc) TH_LOG("source: %s", vfmig_session_error(p.ss)->msg);
	EXPECT_EQ(VFMIG_OK, p.dst_rc) TH_LOG("destination: %s", vfmig_session_error(p.ds)->msg);
	pair_fini(&p);
}

/* ---- cancel within a second ------------------------------------------------------------ */

struct stall {
	struct pair p;
	struct proxy *px;
	struct vfmig_addr px_addr;
	char px_path[96];
	uint64_t cancelled_ns;
	pthread_t dt, ct;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool silent;
};

static void *stall_recv_thread(void *arg)
{
	struct stall *st = arg;

	st->p.dst_rc = vfmig_session_recv(st->p.ds, st->p.lfd);
	return NULL;
}

/* The network goes silent at this frame (a proxy hook): wake the canceller. */
static void stall_hook(void *arg, int in, int out)
{
	struct stall *st = arg;

	(void)in;
	(void)out;
	pthread_mutex_lock(&st->lock);
	st->silent = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

/*
 * Cancel the source 500 ms after the network went silent: with 16 MiB of
 * precopy data against ~200 KiB of socket buffers its send blocks within
 * a few milliseconds (were it not blocked yet, the test would only be
 * weaker, never wrong).
 */
static void *stall_cancel_thread(void *arg)
{
	struct stall *st = arg;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&st->lock);
	while (!st->silent && pthread_cond_timedwait(&st->cond, &st->lock, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&st->lock);
	rec_sleep_ms(500);
	st->cancelled_ns = vfmig_now_ns();
	vfmig_session_cancel(st->p.ss);
	return NULL;
}

/*
 * Defect: after a cancel the source says its last word (ERROR) with
 * vfmig_send_frame_final(), which ignores the abort flag and waits up to one
 * second for the socket (plus up to one second for the send lock).  With a
 * stalled network the socket is full, so vfmig_session_send() returns more
 * than a second after vfmig_session_cancel() (SIGINT): the 1 s promise does
 * not hold in precopy or stop-copy.  The network goes silent at the first
 * PRECOPY_DATA, so nothing drains the source's socket once it is full (as on
 * a dead TCP path).
 */
TEST(source_cancel_with_a_stalled_network_returns_within_a_second)
{
	struct stall st = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	uint64_t took;

	ASSERT_EQ(0, pair_init(&st.p, 1));
	vfmig_device_close(st.p.src[0]);
	vfmig_device_close(st.p.dst[0]);
	st.p.src[0] = fake("src", 16 << 20, ALL_FLAGS, 100);
	st.p.dst[0] = fake("dst", 16 << 20, ALL_FLAGS, 200);
	st.p.so.timeout_ms = 20000;
	st.p.dopt.timeout_ms = 1500;
	/* The main channel's socket fills (precopy_mf_test: a multifd channel's). */
	st.p.so.precopy_multifd = VFMIG_OFF;
	ASSERT_EQ(0, pair_listen(&st.p));
	snprintf(st.px_path, sizeof(st.px_path), "%s/px", st.p.dir);
	st.px = proxy_new(&st.p.addr, st.px_path);
	ASSERT_NE(NULL, st.px);
	ASSERT_EQ(0, vfmig_addr_parse(st.px_path, &st.px_addr, NULL));
	proxy_on_frame(st.px, PROXY_TO_SERVER, VFMIG_F_PRECOPY_DATA, 1, stall_hook, &st);
	proxy_silence_at(st.px, PROXY_TO_SERVER, VFMIG_F_PRECOPY_DATA, 1, PROXY_BEFORE);
	st.p.ds = vfmig_session_new(false, st.p.dst, 1, &st.p.dopt);
	st.p.ss = vfmig_session_new(true, st.p.src, 1, &st.p.so);
	ASSERT_NE(NULL, st.p.ds);
	ASSERT_NE(NULL, st.p.ss);
	ASSERT_EQ(0, pthread_create(&st.dt, NULL, stall_recv_thread, &st));
	ASSERT_EQ(0, pthread_create(&st.ct, NULL, stall_cancel_thread, &st));
	st.p.src_rc = vfmig_session_send(st.p.ss, &st.px_addr);
	took = vfmig_now_ns() - st.cancelled_ns;
	pthread_join(st.ct, NULL);
	pthread_join(st.dt, NULL);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, st.p.src_rc) TH_LOG("%s", vfmig_session_error(st.p.ss)->msg);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(st.p.src[0]));
	EXPECT_GT(1000000000ull, took)
	TH_LOG("vfmig_session_send() returned %llu ms after the cancel",
	       (unsigned long long)(took / 1000000));
	proxy_free(st.px);
	unlink(st.px_path);
	pair_fini(&st.p);
}

/* ---- rogue sources against the destination's bounds ------------------------------------ */

/*
 * Defect: on a multifd channel only DEVICE_STATE is admitted against the
 * reorder budget (reorder.c, vfmig_reorder_admit: "if (h->type !=
 * VFMIG_F_DEVICE_STATE) return 0"), but vfmig_hdr_validate() lets any type
 * with a chunk-sized length through, so recv_frame() allocates and reads a
 * PRECOPY_DATA payload of up to max_chunk on every channel before
 * recv_channel() refuses the type.  16 channels x 4 MiB against an 8 MiB
 * budget: the destination holds 64 MiB, not budget + one chunk per device.
 */
TEST(precopy_data_on_multifd_channels_is_held_within_the_budget)
{
	const uint64_t budget = 8 * MiB, chunk = 4 * MiB, slack = 16 * MiB;
	struct rogue_src r = { .main_fd = -1 };
	struct flood fl[16];
	pthread_t ft[16];
	uint64_t base, peak;

	ASSERT_EQ(0, rogue_src_bounded(&r, budget, (uint32_t)chunk, 16));
	ASSERT_EQ(0, reset_peak_rss());
	base = status_bytes("VmRSS:");
	ASSERT_EQ(0, rogue_src_start(&r, 1, 16, (uint32_t)chunk, 0));
	for (unsigned i = 0; i < 16; i++) {
		fl[i] = (struct flood){ .fd = r.ch_fd[i],
					.type = VFMIG_F_PRECOPY_DATA,
					.len = (uint32_t)chunk,
					.short_by = 1 };
		ASSERT_EQ(0, pthread_create(&ft[i], NULL, flood_thread, &fl[i]));
	}
	for (unsigned i = 0; i < 16; i++)
		pthread_join(ft[i], NULL);
	/*
	 * Wait until the destination read every byte sent (an AF_UNIX sender's
	 * SIOCOUTQ counts what its peer has not consumed yet) or gave up.
	 */
	for (uint64_t end = vfmig_now_ns() + 10000000000ull; vfmig_now_ns() < end;) {
		unsigned busy = 0;

		for (unsigned i = 0; i < 16; i++) {
			int q = 0;

			busy += !ioctl(r.ch_fd[i], SIOCOUTQ, &q) && q > 0;
		}
		if (!busy)
			break;
		rec_sleep_ms(5); /* polling a condition, bounded */
	}
	peak = status_bytes("VmHWM:");
	rogue_src_fini(&r);
	TH_LOG("RSS %llu MiB at start, peak %llu MiB; bound: budget %llu + chunk %llu + main-loop "
	       "frame %llu + slack %llu MiB",
	       (unsigned long long)(base / MiB), (unsigned long long)(peak / MiB),
	       (unsigned long long)(budget / MiB), (unsigned long long)(chunk / MiB),
	       (unsigned long long)(chunk / MiB), (unsigned long long)(slack / MiB));
	EXPECT_GE(base + budget + 2 * chunk + slack, peak);
}

/*
 * Defect: with load-config-after-iter, a load thread that popped its config
 * chunk waits at the config barrier with d->writing set (load.c,
 * load_config()), and stuck_locked() (reorder.c) takes "writing" as "its
 * release will let a producer in".  It will not: the barrier waits for the
 * other devices' data.  A skew larger than the budget then never fails with
 * class 9: every channel reader sleeps in pthread_cond_wait() with no
 * deadline, and the destination waits for as long as the source PINGs its
 * main channel.  Without the barrier the same stream fails at once with
 * class 9.
 */
TEST(config_barrier_does_not_hide_a_stuck_reorder_buffer)
{
	static uint8_t data[4096];
	struct rogue_src r = { .main_fd = -1 };
	uint64_t t0, end = 0;
	uint32_t csize;

	ASSERT_EQ(0, pair_init(&r.p, 2));
	r.p.dopt.max_queued_bytes = 8192;
	r.p.dopt.timeout_ms = 1000;
	r.p.dopt.load_config_after_iter = VFMIG_ON;
	ASSERT_EQ(0, pair_listen(&r.p));
	r.p.ds = vfmig_session_new(false, r.p.dst, 2, &r.p.dopt);
	ASSERT_NE(NULL, r.p.ds);
	csize = vfmig_device_config_size(r.p.dst[0]);
	ASSERT_EQ(0, rogue_src_start(&r, 2, 2, 4096, VFMIG_OPT_LOAD_CONFIG_AFTER_ITER));
	ASSERT_EQ(0, raw_send(r.main_fd, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0));
	/* Device 0: only its config (idx 0): its load thread waits at the barrier. */
	ASSERT_EQ(0,
		  raw_send(r.ch_fd[0], VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, 0, 0, data, csize));
	/*
	 * Device 1: idx 0 never comes; idx 1..6 (three per channel, two fit in the
	 * budget) block both readers.
	 */
	for (uint32_t idx = 1; idx <= 6; idx++)
		ASSERT_EQ(0, raw_send(r.ch_fd[idx % 2], VFMIG_F_DEVICE_STATE, 0, 1, idx, data,
				      sizeof(data)));
	/* A live source: PINGs on the main channel, for 5 s at most. */
	t0 = vfmig_now_ns();
	while (vfmig_now_ns() - t0 < 5000000000ull) {
		struct pollfd pf = { .fd = r.main_fd, .events = POLLIN };

		if (poll(&pf, 1, 200) > 0) {
			struct vfmig_frame f;

			/* The destination's PING, or its ERROR: it gave up. */
			if (raw_recv_any(r.main_fd, 2, 4096, &f))
				break;
			vfmig_frame_free(&f);
			if (f.h.type == VFMIG_F_ERROR) {
				end = vfmig_now_ns();
				break;
			}
		}
		if (raw_send(r.main_fd, VFMIG_F_PING, 0, 0, 0, NULL, 0))
			break;
	}
	if (!end)
		end = vfmig_now_ns();
	/* The rogue closes its sockets: the destination ends (join it) before we look. */
	if (r.main_fd >= 0)
		shutdown(r.main_fd, SHUT_RDWR);
	for (unsigned i = 0; i < r.nch; i++)
		shutdown(r.ch_fd[i], SHUT_RDWR);
	pthread_join(r.dt, NULL);
	r.dt_started = false;
	EXPECT_EQ(VFMIG_ERR_BUDGET, r.p.dst_rc)
	TH_LOG("destination: rc %d after %llu ms: %s", r.p.dst_rc,
	       (unsigned long long)((end - t0) / 1000000), vfmig_session_error(r.p.ds)->msg);
	EXPECT_GT(2000000000ull, end - t0);
	rogue_src_fini(&r);
}

/* ---- liveness PINGs never wait ---------------------------------------------------------- */

/* A TCP loopback connection: the client end (TCP_NODELAY, like vfmig_sock_setup) and *server. */
static int tcp_pair(int *server)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c, one = 1;

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		return -1;
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	*server = accept(l, NULL, NULL);
	close(l);
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return *server < 0 ? -1 : c;
}

/* Write @n bytes without blocking (1000 at a time); the bytes written. */
static uint64_t fill(int fd, uint64_t n)
{
	static uint8_t junk[1000];
	uint64_t tot = 0;

	while (tot < n) {
		ssize_t w = send(fd, junk, MIN((uint64_t)sizeof(junk), n - tot),
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w <= 0)
			break;
		tot += (uint64_t)w;
	}
	return tot;
}

/*
 * Defect: vfmig_conn_ping() sends "optional" frames: -EAGAIN at once only if
 * not a byte could be sent (transport.c, send_locked).  On TCP a PING can be
 * accepted in part (the last skb has room for a few bytes); send_locked()
 * then waits for POLLOUT for the whole --timeout, holding the connection's
 * send lock and blocking the keepalive thread (no other connection is
 * PINGed meanwhile, so the peer's receivers time out on live channels).  If
 * the peer still does not read, the PING stays half-sent and the next frame on
 * that connection (COMMIT, say) is appended to half a header.
 */
TEST(keepalive_ping_does_not_wait_on_a_nearly_full_tcp_socket)
{
	atomic_bool abort_flag = false;
	struct vfmig_conn c;
	uint64_t cap, t0, took;
	int s1, s2, c1, c2;

	/* The send buffer's capacity with nothing read, measured on a twin connection. */
	c1 = tcp_pair(&s1);
	ASSERT_LE(0, c1);
	cap = fill(c1, UINT64_MAX);
	close(c1);
	close(s1);
	/* The same connection filled to 10 bytes under that capacity; the peer never reads. */
	c2 = tcp_pair(&s2);
	ASSERT_LE(0, c2);
	ASSERT_EQ(cap - 10, fill(c2, cap - 10));
	ASSERT_EQ(0, vfmig_conn_init(&c, c2, 1, NULL));
	vfmig_conn_bound(&c, &abort_flag, 2000);
	t0 = vfmig_now_ns();
	vfmig_conn_ping(&c);
	took = vfmig_now_ns() - t0;
	EXPECT_GT(200000000ull, took)
	TH_LOG("vfmig_conn_ping() took %llu ms (capacity %llu bytes)",
	       (unsigned long long)(took / 1000000), (unsigned long long)cap);
	vfmig_conn_destroy(&c);
	/* What reached the peer: the filler and a whole PING or none of it, never a part. */
	{
		static uint8_t sink[1 << 16];
		uint64_t got = 0;
		ssize_t n;

		while ((n = recv(s2, sink, sizeof(sink), 0)) > 0)
			got += (uint64_t)n;
		EXPECT_TRUE(got == cap - 10 || got == cap - 10 + VFMIG_HDR_LEN)
		TH_LOG("the peer got %llu bytes of a PING", (unsigned long long)(got - (cap - 10)));
	}
	close(s2);
}

TEST_HARNESS_MAIN
