// SPDX-License-Identifier: GPL-2.0-only
/*
 * infra_test - the test helpers prove themselves, without migration sessions:
 * the state recorder (recorder.h) flags a source and a destination running
 * at once and nothing else, its reset fault works, and the proxy (proxy.h)
 * forwards frames both ways, goes silent exactly where it is told to while
 * keeping every connection open, and is freed promptly whatever its threads
 * are doing.
 */
#include <sched.h>

#include "kselftest_harness.h"
#include "proxy.h"
#include "recorder.h"
#include "test_util.h"

#define DEV_SIZE (64u << 10)
#define SILENT_MS 300 /* "nothing arrives": a receive times out after this */
#define PROMPT_NS 1000000000ull

/* ---- recorder ------------------------------------------------------------------ */

static void set(struct __test_metadata *_metadata, struct vfmig_device *dev, enum vfmig_state st)
{
	struct vfmig_error e = { 0 };

	ASSERT_EQ(0, vfmig_device_set_state(dev, st, VFMIG_STATE_ERROR, &e)) TH_LOG("%s", e.msg);
}

/* Put the STOP_COPY stream of a fresh fake device into @dst (in RESUMING). */
static void load_donor(struct __test_metadata *_metadata, struct vfmig_device *dst)
{
	struct vfmig_device *donor = fake("donor", DEV_SIZE, ALL_FLAGS, 7);
	static uint8_t buf[16 << 10];
	ssize_t n;

	ASSERT_NE(NULL, donor);
	set(_metadata, donor, VFMIG_STATE_STOP_COPY);
	while ((n = vfmig_device_read(donor, buf, sizeof(buf))) > 0)
		ASSERT_EQ(0, vfmig_device_write_all(dst, buf, (size_t)n));
	ASSERT_EQ(0, n);
	vfmig_device_close(donor);
}

/* Destination: RESUMING, load a whole stream, STOP (its state is now migrated state). */
static void resume_stop(struct __test_metadata *_metadata, struct vfmig_device *dst)
{
	set(_metadata, dst, VFMIG_STATE_RESUMING);
	load_donor(_metadata, dst);
	set(_metadata, dst, VFMIG_STATE_STOP);
}

FIXTURE(rec)
{
	struct rec_log *l;
	struct vfmig_device *src, *dst;
	char why[512];
};

FIXTURE_SETUP(rec)
{
	self->l = rec_log_new();
	ASSERT_NE(NULL, self->l);
	self->src = rec_wrap(self->l, fake("src0", DEV_SIZE, ALL_FLAGS, 1), REC_SOURCE, 0);
	self->dst = rec_wrap(self->l, fake("dst0", DEV_SIZE, ALL_FLAGS, 2), REC_DEST, 0);
	ASSERT_NE(NULL, self->src);
	ASSERT_NE(NULL, self->dst);
}

FIXTURE_TEARDOWN(rec)
{
	vfmig_device_close(self->src);
	vfmig_device_close(self->dst);
	rec_log_free(self->l);
}

TEST_F(rec, wrapper_forwards_and_starts_clean)
{
	EXPECT_STREQ("src0", vfmig_device_name(self->src));
	EXPECT_TRUE(vfmig_is_fake(rec_inner(self->src)));
	EXPECT_FALSE(vfmig_is_fake(self->src));
	EXPECT_EQ(NULL, rec_inner(rec_inner(self->src)));
	EXPECT_EQ(ALL_FLAGS, vfmig_device_flags(self->dst));
	EXPECT_EQ(vfmig_device_config_size(rec_inner(self->dst)),
		  vfmig_device_config_size(self->dst));
	/* Both fakes start RUNNING, but the destination is blank. */
	EXPECT_EQ(VFMIG_STATE_RUNNING, rec_last(self->l, REC_SOURCE, 0));
	EXPECT_EQ(VFMIG_STATE_RUNNING, rec_last(self->l, REC_DEST, 0));
	EXPECT_EQ(0, rec_count(self->l, REC_DEST, 0, VFMIG_STATE_RUNNING));
	EXPECT_EQ(0, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)))
	TH_LOG("%s", self->why);
	/* Pairs the caller did not announce are an error, not ignored. */
	EXPECT_EQ(-1, rec_check_never_both(self->l, 0, self->why, sizeof(self->why)));
	EXPECT_NE(NULL, strstr(self->why, "out of range")) TH_LOG("%s", self->why);
}

TEST_F(rec, destination_running_while_source_runs_is_flagged)
{
	resume_stop(_metadata, self->dst);
	EXPECT_EQ(0, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)))
	TH_LOG("RESUMING/STOP next to a running source is fine: %s", self->why);
	set(_metadata, self->dst, VFMIG_STATE_RUNNING);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(rec_inner(self->dst)));

	ASSERT_EQ(-1, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)));
	TH_LOG("flagged: %s", self->why);
	EXPECT_NE(NULL, strstr(self->why, "both live"));
	EXPECT_NE(NULL, strstr(self->why, "pair 0"));
	/* Caught at the earliest point: when the SET RUNNING started. */
	EXPECT_NE(NULL, strstr(self->why, "source RUNNING, holds state"));
	EXPECT_NE(NULL, strstr(self->why, "destination STOP (may be running"));
	EXPECT_NE(NULL, strstr(self->why, "event #"));
	EXPECT_EQ(1, rec_count(self->l, REC_DEST, 0, VFMIG_STATE_RESUMING));
	EXPECT_EQ(1, rec_count(self->l, REC_DEST, 0, VFMIG_STATE_RUNNING));
	EXPECT_EQ(0, rec_count(self->l, REC_SOURCE, 0, VFMIG_STATE_RUNNING));
	EXPECT_EQ(VFMIG_STATE_RUNNING, rec_last(self->l, REC_DEST, 0));
}

TEST_F(rec, source_stopped_before_destination_runs_passes)
{
	set(_metadata, self->src, VFMIG_STATE_STOP);
	resume_stop(_metadata, self->dst);
	set(_metadata, self->dst, VFMIG_STATE_RUNNING);
	EXPECT_EQ(0, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)))
	TH_LOG("%s", self->why);
	EXPECT_EQ(1, rec_count(self->l, REC_SOURCE, 0, VFMIG_STATE_STOP));
	EXPECT_EQ(VFMIG_STATE_STOP, rec_last(self->l, REC_SOURCE, 0));
	EXPECT_EQ(0, rec_count(self->l, REC_DEST, 0, VFMIG_STATE_RUNNING_P2P));
	/* RESUMING -> RUNNING goes through STOP: counted once by the explicit SET. */
	EXPECT_EQ(1, rec_count(self->l, REC_DEST, 0, VFMIG_STATE_STOP));
}

TEST_F(rec, destination_reset_makes_it_blank)
{
	set(_metadata, self->dst, VFMIG_STATE_RESUMING);
	load_donor(_metadata, self->dst);
	ASSERT_EQ(0, vfmig_device_reset(self->dst));
	/* RUNNING again, next to a running source, but with nothing migrated in it. */
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(rec_inner(self->dst)));
	EXPECT_EQ(1, vfmig_fake_resets(rec_inner(self->dst)));
	EXPECT_EQ(1, rec_count(self->l, REC_DEST, 0, VFMIG_STATE_RUNNING));
	EXPECT_EQ(0, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)))
	TH_LOG("%s", self->why);
}

TEST_F(rec, a_set_in_flight_counts_as_running)
{
	struct vfmig_fake_cfg cfg = fake_cfg(DEV_SIZE, ALL_FLAGS, 2);
	struct vfmig_error e = { 0 };

	/* A destination whose SET RUNNING fails: it never runs, but it may have. */
	vfmig_device_close(self->dst);
	cfg.fail_set_state = VFMIG_STATE_RUNNING;
	self->dst = rec_wrap(self->l, vfmig_fake_new("dst0", &cfg), REC_DEST, 0);
	ASSERT_NE(NULL, self->dst);
	set(_metadata, self->src, VFMIG_STATE_STOP);
	resume_stop(_metadata, self->dst);
	set(_metadata, self->src, VFMIG_STATE_RUNNING);
	EXPECT_EQ(0, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)))
	TH_LOG("%s", self->why);

	EXPECT_EQ(-EIO,
		  vfmig_device_set_state(self->dst, VFMIG_STATE_RUNNING, VFMIG_STATE_STOP, &e));
	EXPECT_EQ(VFMIG_STATE_STOP, vfmig_fake_state(rec_inner(self->dst)));
	EXPECT_EQ(0, rec_count(self->l, REC_DEST, 0, VFMIG_STATE_RUNNING));
	ASSERT_EQ(-1, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)));
	TH_LOG("flagged: %s", self->why);
	EXPECT_NE(NULL, strstr(self->why, "may be running"));
}

TEST_F(rec, failing_reset_leaves_the_state_in_place)
{
	struct vfmig_error e = { 0 };

	set(_metadata, self->src, VFMIG_STATE_STOP);
	resume_stop(_metadata, self->dst);
	set(_metadata, self->dst, VFMIG_STATE_RUNNING);
	ASSERT_EQ(0, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)))
	TH_LOG("%s", self->why);

	/* Roll back with a destination whose reset fails: two running copies. */
	rec_fail_reset(self->dst, EIO);
	EXPECT_EQ(-EIO, vfmig_device_reset(self->dst));
	EXPECT_EQ(0, vfmig_fake_resets(rec_inner(self->dst)));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(rec_inner(self->dst)));
	set(_metadata, self->src, VFMIG_STATE_RUNNING);
	ASSERT_EQ(-1, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)));
	TH_LOG("flagged: %s", self->why);
	EXPECT_NE(NULL, strstr(self->why, "destination RUNNING, holds state"));

	/* The engine's reset-on-failure path reports it. */
	set(_metadata, self->dst, VFMIG_STATE_RESUMING);
	EXPECT_NE(0, vfmig_device_set_state(self->dst, VFMIG_STATE_STOP, VFMIG_STATE_ERROR, &e));
	EXPECT_NE(NULL, strstr(e.msg, "device reset FAILED")) TH_LOG("%s", e.msg);
	EXPECT_EQ(VFMIG_STATE_ERROR, rec_last(self->l, REC_DEST, 0));
	EXPECT_EQ(0, vfmig_fake_resets(rec_inner(self->dst)));

	/* Forwarding again. */
	rec_fail_reset(self->dst, 0);
	EXPECT_EQ(0, vfmig_device_reset(self->dst));
	EXPECT_EQ(1, vfmig_fake_resets(rec_inner(self->dst)));
	EXPECT_EQ(VFMIG_STATE_RUNNING, rec_last(self->l, REC_DEST, 0));
}

TEST_F(rec, working_reset_before_rollback_passes)
{
	set(_metadata, self->src, VFMIG_STATE_STOP);
	resume_stop(_metadata, self->dst);
	set(_metadata, self->dst, VFMIG_STATE_RUNNING);
	ASSERT_EQ(0, vfmig_device_reset(self->dst));
	set(_metadata, self->src, VFMIG_STATE_RUNNING);
	EXPECT_EQ(0, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)))
	TH_LOG("%s", self->why);
	EXPECT_EQ(1, rec_count(self->l, REC_SOURCE, 0, VFMIG_STATE_RUNNING));
	/* The reset went from RUNNING to RUNNING: not an entry. */
	EXPECT_EQ(1, rec_count(self->l, REC_DEST, 0, VFMIG_STATE_RUNNING));
	EXPECT_EQ(1, vfmig_fake_resets(rec_inner(self->dst)));
}

TEST_F(rec, overflow_fails_the_check)
{
	for (unsigned i = 0; i < REC_MAX_EVENTS / 2; i++) {
		set(_metadata, self->src, VFMIG_STATE_STOP);
		set(_metadata, self->src, VFMIG_STATE_RUNNING);
	}
	ASSERT_EQ(-1, rec_check_never_both(self->l, 1, self->why, sizeof(self->why)));
	EXPECT_NE(NULL, strstr(self->why, "overflowed")) TH_LOG("%s", self->why);
}

#define NTHREADS 4
#define TOGGLES 500

struct toggler {
	struct vfmig_device *dev;
	int failed;
};

static void *toggle_thread(void *arg)
{
	struct toggler *t = arg;

	for (unsigned i = 0; i < TOGGLES; i++) {
		t->failed |=
			vfmig_device_set_state(t->dev, VFMIG_STATE_STOP, VFMIG_STATE_ERROR, NULL);
		t->failed |= vfmig_device_set_state(t->dev, VFMIG_STATE_RUNNING, VFMIG_STATE_ERROR,
						    NULL);
	}
	return NULL;
}

TEST(recorder_is_thread_safe)
{
	struct rec_log *l = rec_log_new();
	struct toggler t[NTHREADS];
	pthread_t th[NTHREADS];
	char why[512];

	ASSERT_NE(NULL, l);
	for (unsigned i = 0; i < NTHREADS; i++) {
		t[i].dev = rec_wrap(l, fake("s", DEV_SIZE, ALL_FLAGS, i), REC_SOURCE, i);
		t[i].failed = 0;
		ASSERT_NE(NULL, t[i].dev);
	}
	for (unsigned i = 0; i < NTHREADS; i++)
		ASSERT_EQ(0, pthread_create(&th[i], NULL, toggle_thread, &t[i]));
	for (unsigned i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	EXPECT_EQ(0, rec_check_never_both(l, NTHREADS, why, sizeof(why))) TH_LOG("%s", why);
	/* Per toggle: STOP (state), RUNNING (may-run, state); plus the initial states. */
	EXPECT_EQ(NTHREADS * (1 + 3 * TOGGLES), l->n);
	for (unsigned i = 0; i < l->n; i++)
		ASSERT_EQ(i + 1, l->ev[i].seq);
	for (unsigned i = 0; i < NTHREADS; i++) {
		EXPECT_EQ(0, t[i].failed);
		EXPECT_EQ(TOGGLES, rec_count(l, REC_SOURCE, i, VFMIG_STATE_RUNNING));
		EXPECT_EQ(TOGGLES, rec_count(l, REC_SOURCE, i, VFMIG_STATE_STOP));
		vfmig_device_close(t[i].dev);
	}
	rec_log_free(l);
}

/* ---- proxy ------------------------------------------------------------------------- */

/* The one place that calls vfmig_recv_frame() (its signature may grow an abort flag). */
static enum vfmig_ferr recv_ms(int fd, int timeout_ms, struct vfmig_frame *f)
{
	struct vfmig_limits lim = { .ndevices = 1, .max_chunk = 1 << 20 };
	char why[256];
	int e;

	return vfmig_recv_frame(fd, &lim, timeout_ms, f, &e, why, sizeof(why));
}

FIXTURE(px)
{
	char dir[64];
	struct vfmig_addr srv, pxa;
	int lfd;
	struct proxy *p;
};

FIXTURE_SETUP(px)
{
	char a[128];

	self->lfd = -1;
	snprintf(self->dir, sizeof(self->dir), "/tmp/vfmig-infra.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(a, sizeof(a), "unix:%s/srv", self->dir);
	ASSERT_EQ(0, vfmig_addr_parse(a, &self->srv, NULL));
	snprintf(a, sizeof(a), "unix:%s/px", self->dir);
	ASSERT_EQ(0, vfmig_addr_parse(a, &self->pxa, NULL));
	self->lfd = vfmig_listen(&self->srv, NULL);
	ASSERT_LE(0, self->lfd);
	self->p = proxy_new(&self->srv, self->pxa.path);
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(px)
{
	proxy_free(self->p);
	if (self->lfd >= 0)
		close(self->lfd);
	unlink(self->srv.path);
	rmdir(self->dir);
}

/* A client connected through the proxy and the server's end of it. */
static void connect_through(struct __test_metadata *_metadata, FIXTURE_DATA(px) * self, int *cfd,
			    int *sfd)
{
	*cfd = vfmig_connect(&self->pxa, 2000, NULL);
	ASSERT_LE(0, *cfd);
	*sfd = vfmig_accept(self->lfd, 2000, -1);
	ASSERT_LE(0, *sfd);
}

/* Receive a frame of @type (device 0, idx @idx) with @len payload bytes equal to @want. */
static void expect_frame(struct __test_metadata *_metadata, int fd, uint16_t type, uint32_t idx,
			 const void *want, uint32_t len)
{
	struct vfmig_frame f;

	ASSERT_EQ(VFMIG_FERR_NONE, recv_ms(fd, 2000, &f));
	EXPECT_EQ(type, f.h.type);
	EXPECT_EQ(idx, f.h.idx);
	EXPECT_EQ(len, f.h.length);
	if (len && f.h.length == len)
		EXPECT_EQ(0, memcmp(want, f.payload, len));
	vfmig_frame_free(&f);
}

static void expect_nothing(struct __test_metadata *_metadata, int fd)
{
	struct vfmig_frame f;
	enum vfmig_ferr fe = recv_ms(fd, SILENT_MS, &f);

	EXPECT_EQ(VFMIG_FERR_TIMEOUT, fe) TH_LOG("got %s", vfmig_ferr_name(fe));
	if (!fe)
		vfmig_frame_free(&f);
}

/* The connection ended: end of stream, or a reset when the closed end had unread data. */
static void expect_ended(struct __test_metadata *_metadata, int fd)
{
	struct vfmig_frame f;
	enum vfmig_ferr fe = recv_ms(fd, 2000, &f);

	EXPECT_TRUE(fe == VFMIG_FERR_EOF || fe == VFMIG_FERR_IO)
	TH_LOG("got %s", vfmig_ferr_name(fe));
	if (!fe)
		vfmig_frame_free(&f);
}

/* Free the proxy (once) and check it took less than a second. */
static void free_promptly(struct __test_metadata *_metadata, FIXTURE_DATA(px) * self)
{
	uint64_t t0 = vfmig_now_ns();

	proxy_free(self->p);
	self->p = NULL;
	EXPECT_GT(PROMPT_NS, vfmig_now_ns() - t0);
}

/* Every byte that arrives on @fd until it is quiet for SILENT_MS (at most @cap). */
static size_t drain(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pf, 1, SILENT_MS) <= 0)
			break;
		n = recv(fd, buf + got, cap - got, MSG_DONTWAIT);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static uint8_t pattern[1 << 20];

static void fill_pattern(void)
{
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + (i >> 12));
}

TEST_F(px, forwards_frames_both_ways)
{
	struct vfmig_frame f;
	int c, s;

	fill_pattern();
	connect_through(_metadata, self, &c, &s);
	ASSERT_EQ(0, raw_send(c, VFMIG_F_PING, 0, 0, 0, NULL, 0));
	ASSERT_EQ(0, raw_send(c, VFMIG_F_PRECOPY_DATA, 0, 0, 5, pattern, 1000));
	/* Bigger than the socket buffers: partial writes on every hop. */
	ASSERT_EQ(0, raw_send(c, VFMIG_F_DEVICE_STATE, 0, 0, 6, pattern, sizeof(pattern)));
	expect_frame(_metadata, s, VFMIG_F_PING, 0, NULL, 0);
	expect_frame(_metadata, s, VFMIG_F_PRECOPY_DATA, 5, pattern, 1000);
	expect_frame(_metadata, s, VFMIG_F_DEVICE_STATE, 6, pattern, sizeof(pattern));

	ASSERT_EQ(0, raw_send(s, VFMIG_F_READY, 0, 0, 0, NULL, 0));
	ASSERT_EQ(0, raw_send(s, VFMIG_F_SWITCHOVER_ACK, 0, 0, 0, NULL, 0));
	expect_frame(_metadata, c, VFMIG_F_READY, 0, NULL, 0);
	expect_frame(_metadata, c, VFMIG_F_SWITCHOVER_ACK, 0, NULL, 0);
	EXPECT_EQ(1, proxy_connections(self->p));
	EXPECT_FALSE(proxy_went_silent(self->p));
	EXPECT_FALSE(proxy_is_silent(self->p));

	/* An end of stream is passed on, one direction at a time. */
	ASSERT_EQ(0, shutdown(c, SHUT_WR));
	EXPECT_EQ(VFMIG_FERR_EOF, recv_ms(s, 2000, &f));
	ASSERT_EQ(0, raw_send(s, VFMIG_F_COMPLETE, 0, 0, 0, pattern, VFMIG_COMPLETE_LEN));
	expect_frame(_metadata, c, VFMIG_F_COMPLETE, 0, pattern, VFMIG_COMPLETE_LEN);
	close(s);
	EXPECT_EQ(VFMIG_FERR_EOF, recv_ms(c, 2000, &f));
	close(c);
	free_promptly(_metadata, self);
}

TEST_F(px, garbage_is_forwarded_raw)
{
	uint8_t junk[48];
	struct vfmig_frame f;
	int c, s;

	memset(junk, 0xa5, sizeof(junk));
	connect_through(_metadata, self, &c, &s);
	ASSERT_EQ(0, raw_send_bytes(c, junk, sizeof(junk)));
	EXPECT_EQ(VFMIG_FERR_BAD_MAGIC, recv_ms(s, 2000, &f));
	close(c);
	close(s);
}

TEST_F(px, before_silences_every_connection_both_ways)
{
	int c1, s1, c2, s2, c3;

	connect_through(_metadata, self, &c1, &s1);
	connect_through(_metadata, self, &c2, &s2);
	proxy_silence_at(self->p, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 2, PROXY_BEFORE);

	ASSERT_EQ(0, raw_send(c1, VFMIG_F_DEVICE_STATE, 0, 0, 0, "a", 1));
	expect_frame(_metadata, s1, VFMIG_F_DEVICE_STATE, 0, "a", 1);
	EXPECT_FALSE(proxy_went_silent(self->p));
	/* Other types and the other direction do not count. */
	ASSERT_EQ(0, raw_send(s2, VFMIG_F_READY, 0, 0, 0, NULL, 0));
	expect_frame(_metadata, c2, VFMIG_F_READY, 0, NULL, 0);
	ASSERT_EQ(0, raw_send(c2, VFMIG_F_PING, 0, 0, 0, NULL, 0));
	expect_frame(_metadata, s2, VFMIG_F_PING, 0, NULL, 0);

	/* The second DEVICE_STATE, on the other connection, is the one. */
	ASSERT_EQ(0, raw_send(c2, VFMIG_F_DEVICE_STATE, 0, 0, 1, "b", 1));
	expect_nothing(_metadata, s2);
	EXPECT_TRUE(proxy_went_silent(self->p));
	EXPECT_TRUE(proxy_is_silent(self->p));

	/* Silent everywhere, but nobody sees the connections end. */
	ASSERT_EQ(0, raw_send(c1, VFMIG_F_PING, 0, 0, 0, NULL, 0));
	ASSERT_EQ(0, raw_send(s1, VFMIG_F_READY, 0, 0, 0, NULL, 0));
	ASSERT_EQ(0, raw_send(s2, VFMIG_F_READY, 0, 0, 0, NULL, 0));
	expect_nothing(_metadata, s1);
	expect_nothing(_metadata, c1);
	expect_nothing(_metadata, c2);

	/* A new connection is accepted and held: the server never sees it. */
	c3 = vfmig_connect(&self->pxa, 2000, NULL);
	ASSERT_LE(0, c3);
	ASSERT_EQ(0, raw_send(c3, VFMIG_F_PING, 0, 0, 0, NULL, 0));
	expect_nothing(_metadata, c3);
	EXPECT_EQ(-ETIMEDOUT, vfmig_accept(self->lfd, SILENT_MS, -1));
	EXPECT_EQ(3, proxy_connections(self->p));

	/* proxy_free() closes everything: now the peers see the end. */
	free_promptly(_metadata, self);
	expect_ended(_metadata, s1);
	expect_ended(_metadata, c2);
	expect_ended(_metadata, c3);
	close(c1);
	close(s1);
	close(c2);
	close(s2);
	close(c3);
}

TEST_F(px, after_forwards_the_frame_then_silences)
{
	int c, s;

	connect_through(_metadata, self, &c, &s);
	proxy_silence_at(self->p, PROXY_TO_CLIENT, VFMIG_F_READY, 1, PROXY_AFTER);
	ASSERT_EQ(0, raw_send(s, VFMIG_F_READY, 0, 0, 0, NULL, 0));
	expect_frame(_metadata, c, VFMIG_F_READY, 0, NULL, 0);
	EXPECT_TRUE(proxy_went_silent(self->p));
	ASSERT_EQ(0, raw_send(s, VFMIG_F_SWITCHOVER_ACK, 0, 0, 0, NULL, 0));
	ASSERT_EQ(0, raw_send(c, VFMIG_F_PING, 0, 0, 0, NULL, 0));
	expect_nothing(_metadata, c);
	expect_nothing(_metadata, s);
	free_promptly(_metadata, self);
	close(c);
	close(s);
}

TEST_F(px, half_forwards_half_a_frame)
{
	static uint8_t got[4096];
	int c, s;

	fill_pattern();
	connect_through(_metadata, self, &c, &s);
	proxy_silence_at(self->p, PROXY_TO_SERVER, VFMIG_F_DEVICE_STATE, 1, PROXY_HALF);
	ASSERT_EQ(0, raw_send(c, VFMIG_F_DEVICE_STATE, 0, 0, 3, pattern, 1000));
	ASSERT_EQ(VFMIG_HDR_LEN + 500, drain(s, got, sizeof(got)));
	EXPECT_EQ(VFMIG_MAGIC, get_le32(got));
	EXPECT_EQ(VFMIG_F_DEVICE_STATE, get_le16(got + 6));
	EXPECT_EQ(1000, get_le32(got + 20));
	EXPECT_EQ(0, memcmp(pattern, got + VFMIG_HDR_LEN, 500));
	EXPECT_TRUE(proxy_went_silent(self->p));
	free_promptly(_metadata, self);
	close(c);
	close(s);
}

TEST_F(px, half_of_an_empty_frame_is_half_its_header)
{
	uint8_t want[VFMIG_HDR_LEN], got[64];
	int c, s;

	connect_through(_metadata, self, &c, &s);
	proxy_silence_at(self->p, PROXY_TO_CLIENT, VFMIG_F_LOADED, 1, PROXY_HALF);
	ASSERT_EQ(0, raw_send(s, VFMIG_F_READY, 0, 0, 0, NULL, 0));
	expect_frame(_metadata, c, VFMIG_F_READY, 0, NULL, 0);
	ASSERT_EQ(0, raw_send(s, VFMIG_F_LOADED, 0, 0, 0, NULL, 0));
	vfmig_frame_encode(want, VFMIG_F_LOADED, 0, 0, 0, NULL, 0);
	ASSERT_EQ(VFMIG_HDR_LEN / 2, drain(c, got, sizeof(got)));
	EXPECT_EQ(0, memcmp(want, got, VFMIG_HDR_LEN / 2));
	EXPECT_TRUE(proxy_went_silent(self->p));
	free_promptly(_metadata, self);
	close(c);
	close(s);
}

TEST_F(px, silence_now_and_cut_now)
{
	struct vfmig_frame f;
	int c1, s1, c2, s2;

	connect_through(_metadata, self, &c1, &s1);
	connect_through(_metadata, self, &c2, &s2);
	proxy_silence_now(self->p);
	EXPECT_TRUE(proxy_is_silent(self->p));
	EXPECT_FALSE(proxy_went_silent(self->p)); /* no rule fired */
	ASSERT_EQ(0, raw_send(c1, VFMIG_F_PING, 0, 0, 0, NULL, 0));
	expect_nothing(_metadata, s1);
	/* Cut: both ends of every connection see it end at once. */
	proxy_cut_now(self->p);
	EXPECT_EQ(VFMIG_FERR_EOF, recv_ms(c1, 2000, &f));
	EXPECT_EQ(VFMIG_FERR_EOF, recv_ms(s2, 2000, &f));
	EXPECT_EQ(VFMIG_FERR_EOF, recv_ms(c2, 2000, &f));
	free_promptly(_metadata, self);
	close(c1);
	close(s1);
	close(c2);
	close(s2);
}

TEST_F(px, free_is_prompt_with_a_blocked_writer)
{
	static uint8_t frame[VFMIG_HDR_LEN + (64 << 10)];
	size_t n = vfmig_frame_encode(frame, VFMIG_F_DEVICE_STATE, 0, 0, 0, pattern, 64 << 10);
	unsigned sent = 0;
	int c, s;

	/* The server reads nothing: the proxy's writer waits for room, the client too. */
	connect_through(_metadata, self, &c, &s);
	for (;;) {
		ssize_t w = send(c, frame, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0)
			break;
		sent++;
	}
	ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
	EXPECT_LT(2, sent);
	free_promptly(_metadata, self);
	close(c);
	close(s);
}

TEST_F(px, free_is_prompt_while_connecting_to_a_missing_target)
{
	uint64_t deadline = vfmig_now_ns() + 2 * PROMPT_NS;
	struct vfmig_frame f;
	int c;

	/* Nobody listens on the target any more: connects are refused and retried for 5 s. */
	close(self->lfd);
	self->lfd = -1;
	c = vfmig_connect(&self->pxa, 2000, NULL);
	ASSERT_LE(0, c);
	while (proxy_connections(self->p) < 1 && vfmig_now_ns() < deadline)
		sched_yield();
	EXPECT_EQ(1, proxy_connections(self->p));
	free_promptly(_metadata, self);
	EXPECT_EQ(VFMIG_FERR_EOF, recv_ms(c, 2000, &f));
	close(c);
}

TEST_HARNESS_MAIN
