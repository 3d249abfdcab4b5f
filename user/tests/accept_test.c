// SPDX-License-Identifier: GPL-2.0-only
/*
 * accept_test - the destination's front door (accept.c) against strangers
 * that arrive before the real source: more garbage connections than any
 * count limit, silent connections that together outlast the source's own
 * timeout, a well-framed HELLO that does not decode, and the library's own
 * refusal of a network listener without TLS.  In every case the real source
 * then migrates.
 */
#include "kselftest_harness.h"
#include "proxy.h"
#include "test_util.h"
#include "tls.h"
#include "tlsgen.h"

struct acc {
	struct tlsgen g;
	struct pair p;
	struct vfmig_tls *ct, *st;
};

static struct vfmig_tls *psk_creds(struct acc *a, bool server)
{
	struct vfmig_tls_config cfg = { 0 };
	struct vfmig_error e = { 0 };
	struct vfmig_tls *t;
	char path[128];

	snprintf(path, sizeof(path), "%s/keys.psk", a->g.dir);
	cfg.psk_file = path;
	t = vfmig_tls_new(&cfg, server, &e);
	if (!t)
		fprintf(stderr, "# vfmig_tls_new: %s\n", e.msg);
	return t;
}

/* One device pair, listening; with PSK credentials on both ends when @tls. */
static int acc_init(struct acc *a, bool tls)
{
	memset(a, 0, sizeof(*a));
	if (tlsgen_init(&a->g) || tlsgen_psk(&a->g, "keys.psk", "qemu", 1) || pair_init(&a->p, 1))
		return -1;
	if (tls) {
		a->ct = psk_creds(a, false);
		a->st = psk_creds(a, true);
		if (!a->ct || !a->st)
			return -1;
		a->p.so.tls = a->ct;
		a->p.dopt.tls = a->st;
	}
	return pair_listen(&a->p);
}

/* Start the destination, run the source, join; both results in a->p. */
static int acc_run(struct acc *a)
{
	return pair_run(&a->p);
}

static void acc_fini(struct acc *a)
{
	pair_fini(&a->p);
	vfmig_tls_free(a->ct);
	vfmig_tls_free(a->st);
	tlsgen_fini(&a->g);
}

#define EXPECT_MIGRATED(a)                                                         \
	do {                                                                       \
		EXPECT_EQ(VFMIG_OK, (a)->p.src_rc)                                 \
		TH_LOG("source: %s", vfmig_session_error((a)->p.ss)->msg);         \
		EXPECT_EQ(VFMIG_OK, (a)->p.dst_rc)                                 \
		TH_LOG("destination: %s", vfmig_session_error((a)->p.ds)->msg);    \
		EXPECT_EQ((a)->p.src_digest[0], vfmig_fake_digest((a)->p.dst[0])); \
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state((a)->p.dst[0]));   \
	} while (0)

/* 40 garbage connections, more than any count of refusals: the session still goes on. */
TEST(forty_garbage_connections_then_the_real_source_migrates)
{
	static const char junk[] = "GET / HTTP/1.0\r\n\r\n";
	struct acc a;
	int fds[40];

	ASSERT_EQ(0, acc_init(&a, true));
	for (int i = 0; i < 40; i++) {
		fds[i] = vfmig_connect(&a.p.addr, 2000, NULL);
		ASSERT_LE(0, fds[i]);
		ASSERT_EQ(0, raw_send_bytes(fds[i], junk, sizeof(junk) - 1));
	}
	ASSERT_EQ(0, acc_run(&a));
	EXPECT_MIGRATED(&a);
	for (int i = 0; i < 40; i++)
		close(fds[i]);
	acc_fini(&a);
}

/*
 * Eight connections that say nothing, each given accept_ms = 1 s to speak:
 * probed one after the other they would hold the door 8 s, far past the
 * source's 3 s.  Probed together, the source is heard at once.
 */
TEST(silent_connections_do_not_outlast_the_source_timeout)
{
	struct acc a;
	uint64_t t0;
	int fds[8];

	ASSERT_EQ(0, acc_init(&a, true));
	a.p.dopt.accept_ms = 1000;
	a.p.so.timeout_ms = 3000;
	for (int i = 0; i < 8; i++) {
		fds[i] = vfmig_connect(&a.p.addr, 2000, NULL);
		ASSERT_LE(0, fds[i]);
	}
	t0 = vfmig_now_ns();
	ASSERT_EQ(0, acc_run(&a));
	EXPECT_MIGRATED(&a);
	TH_LOG("migrated in %llu ms", (unsigned long long)((vfmig_now_ns() - t0) / 1000000));
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	acc_fini(&a);
}

/* A HELLO with a valid frame header and checksum whose payload does not decode: a stranger. */
TEST(framed_garbage_hello_is_a_stranger)
{
	uint8_t payload[VFMIG_HELLO_FIXED + VFMIG_HELLO_DEV_LEN];
	struct acc a;
	int fd;

	ASSERT_EQ(0, acc_init(&a, false));
	a.p.dopt.accept_ms = 1000;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 37 + 11);
	fd = vfmig_connect(&a.p.addr, 2000, NULL);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, raw_send(fd, VFMIG_F_HELLO, 0, 0, 0, payload, sizeof(payload)));
	ASSERT_EQ(0, acc_run(&a));
	EXPECT_MIGRATED(&a);
	close(fd);
	acc_fini(&a);
}

/* vfmig_session_recv() itself: a non-loopback TCP listener needs TLS or options.insecure. */
TEST(library_refuses_network_listener_without_tls)
{
	struct vfmig_addr addr;
	struct vfmig_error e;
	struct pair p;
	char a[32];
	int lfd;

	ASSERT_EQ(0, pair_init(&p, 1));

	snprintf(a, sizeof(a), "0.0.0.0:%u", 20000 + (unsigned)getpid() % 20000);
	ASSERT_EQ(0, vfmig_addr_parse(a, &addr, &e));
	lfd = vfmig_listen(&addr, &e);
	ASSERT_LE(0, lfd);
	p.dopt.timeout_ms = 300;
	p.ds = vfmig_session_new(false, p.dst, 1, &p.dopt);
	ASSERT_NE(NULL, p.ds);
	EXPECT_EQ(VFMIG_ERR_USAGE, vfmig_session_recv(p.ds, lfd));
	EXPECT_MSG(p.ds, "insecure");
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.dst[0]));
	vfmig_session_free(p.ds);
	/* Told so explicitly, it listens (and times out here: nobody comes). */
	p.dopt.insecure = true;
	p.ds = vfmig_session_new(false, p.dst, 1, &p.dopt);
	ASSERT_NE(NULL, p.ds);
	EXPECT_EQ(VFMIG_ERR_TIMEOUT, vfmig_session_recv(p.ds, lfd));
	close(lfd);
	pair_fini(&p);
}

TEST_HARNESS_MAIN
