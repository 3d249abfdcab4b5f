// SPDX-License-Identifier: GPL-2.0-only
/*
 * tls_test - TLS 1.3 on every channel (tls.c, tls_creds.c) and the
 * destination's front door (accept.c): PSK and X.509 migrations over four
 * multifd channels; every refusal (wrong key, unknown identity, untrusted
 * certificate, wrong name, client DN not allowed, plain against TLS either
 * way, a readable key file) at the handshake with no device touched;
 * strangers before the real source; a tampered TLS record mid STOP_COPY.
 * Credentials are made at test time (tlsgen.h).
 */
#include "kselftest_harness.h"
#include "proxy.h"
#include "test_util.h"
#include "tls.h"
#include "tlsgen.h"

#include <sys/wait.h>

struct tls_case {
	struct tlsgen g;
	struct pair p;
	struct vfmig_tls *ct, *st; /* client (source), server (destination) */
	uint64_t dst_digest[PAIR_MAX];
	struct vfmig_addr target; /* what the source connects to (a proxy, or the listener) */
};

static struct vfmig_tls *creds(struct tls_case *tc, bool server, const char *psk, const char *id,
			       const char *x509, const char *host, const char *allow)
{
	char pp[128], xp[128];
	const char *dns[1] = { allow };
	struct vfmig_tls_config cfg = {
		.psk_identity = id,
		.hostname = host,
		.allow_dn = dns,
		.n_allow_dn = allow ? 1 : 0,
	};
	struct vfmig_error e = { 0 };
	struct vfmig_tls *t;

	if (psk) {
		snprintf(pp, sizeof(pp), "%s/%s", tc->g.dir, psk);
		cfg.psk_file = pp;
	}
	if (x509) {
		snprintf(xp, sizeof(xp), "%s/%s", tc->g.dir, x509);
		cfg.creds_dir = xp;
	}
	t = vfmig_tls_new(&cfg, server, &e);
	if (!t)
		fprintf(stderr, "# vfmig_tls_new: %s\n", e.msg);
	return t;
}

/* Two device pairs, four multifd channels, short accept probes; credentials made. */
static int tc_init(struct tls_case *tc)
{
	memset(tc, 0, sizeof(*tc));
	if (tlsgen_init(&tc->g) || pair_init(&tc->p, 2) ||
	    tlsgen_psk(&tc->g, "keys.psk", "qemu", 1) ||
	    tlsgen_psk(&tc->g, "other.psk", "qemu", 2) || tlsgen_psk(&tc->g, "id.psk", "bob", 1) ||
	    tlsgen_x509(&tc->g, "pki", "CA one") || tlsgen_x509(&tc->g, "rogue", "CA two"))
		return -1;
	tc->p.so.multifd = VFMIG_ON;
	tc->p.so.channels = 4;
	tc->p.dopt.accept_ms = 500;
	for (unsigned i = 0; i < tc->p.n; i++)
		tc->dst_digest[i] = vfmig_fake_digest(tc->p.dst[i]);
	return 0;
}

static void tc_set(struct tls_case *tc, struct vfmig_tls *client, struct vfmig_tls *server)
{
	tc->ct = client;
	tc->st = server;
	tc->p.so.tls = client;
	tc->p.dopt.tls = server;
}

/* Listen (if not yet), start the destination, run the source against tc->target. */
static int tc_run(struct tls_case *tc)
{
	return pair_run_to(&tc->p, tc->target.family ? &tc->target : NULL);
}

static void tc_fini(struct tls_case *tc)
{
	pair_fini(&tc->p);
	vfmig_tls_free(tc->ct);
	vfmig_tls_free(tc->st);
	tlsgen_fini(&tc->g);
}

/* A successful migration: both sides OK, every destination digest equals its source's. */
#define EXPECT_MIGRATED(tc)                                                                    \
	do {                                                                                   \
		EXPECT_EQ(VFMIG_OK, (tc)->p.src_rc)                                            \
		TH_LOG("source: %s", vfmig_session_error((tc)->p.ss)->msg);                    \
		EXPECT_EQ(VFMIG_OK, (tc)->p.dst_rc)                                            \
		TH_LOG("destination: %s", vfmig_session_error((tc)->p.ds)->msg);               \
		for (unsigned i_ = 0; i_ < (tc)->p.n; i_++) {                                  \
			EXPECT_EQ((tc)->p.src_digest[i_], vfmig_fake_digest((tc)->p.dst[i_])); \
			EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state((tc)->p.dst[i_]));     \
		}                                                                              \
		EXPECT_EQ(4u, vfmig_session_stats((tc)->p.ss)->nchannels);                     \
	} while (0)

/*
 * Both ends name the cipher they agreed; with AES-NI it is AES-GCM
 * (tls_creds.c: CHACHA20-POLY1305 is nine times slower there).
 */
#define EXPECT_CIPHER(tc)                                                                 \
	do {                                                                              \
		const char *c_ = vfmig_session_stats((tc)->p.ss)->tls_cipher;             \
		bool aes_;                                                                \
		EXPECT_STREQ(c_, vfmig_session_stats((tc)->p.ds)->tls_cipher);            \
		__builtin_cpu_init();                                                     \
		aes_ = __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul"); \
		EXPECT_EQ(aes_, !strncmp(c_, "AES-128-GCM", 11)) TH_LOG("cipher %s", c_); \
		EXPECT_NE(0, c_[0]);                                                      \
	} while (0)

/* Refused at the handshake: the source fails with @cls saying @needle, no device moved. */
#define EXPECT_REFUSED(tc, cls, needle)                                                        \
	do {                                                                                   \
		EXPECT_EQ(cls, (tc)->p.src_rc)                                                 \
		TH_LOG("source: %s", vfmig_session_error((tc)->p.ss)->msg);                    \
		EXPECT_MSG((tc)->p.ss, needle);                                                \
		EXPECT_NE(VFMIG_OK, (tc)->p.dst_rc);                                           \
		for (unsigned i_ = 0; i_ < (tc)->p.n; i_++) {                                  \
			EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state((tc)->p.src[i_]));     \
			EXPECT_EQ((tc)->p.src_digest[i_], vfmig_fake_digest((tc)->p.src[i_])); \
			EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state((tc)->p.dst[i_]));     \
			EXPECT_EQ((tc)->dst_digest[i_], vfmig_fake_digest((tc)->p.dst[i_]));   \
			EXPECT_EQ(0u, vfmig_fake_resets((tc)->p.dst[i_]));                     \
		}                                                                              \
	} while (0)

/* ---- migrations -------------------------------------------------------------------------- */

TEST(tls_psk_migration_multifd4_digests_equal)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, "keys.psk", NULL, NULL, NULL, NULL),
	       creds(&tc, true, "keys.psk", NULL, NULL, NULL, NULL));
	ASSERT_NE(NULL, tc.ct);
	ASSERT_NE(NULL, tc.st);
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_MIGRATED(&tc);
	EXPECT_CIPHER(&tc);
	tc_fini(&tc);
}

TEST(tls_x509_migration_multifd4_digests_equal_dn_allowed)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, NULL, NULL, "pki", TLSGEN_SERVER_NAME, NULL),
	       creds(&tc, true, NULL, NULL, "pki", NULL, TLSGEN_CLIENT_DN));
	ASSERT_NE(NULL, tc.ct);
	ASSERT_NE(NULL, tc.st);
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_MIGRATED(&tc);
	EXPECT_CIPHER(&tc);
	tc_fini(&tc);
}

/* ---- refusals at the handshake ----------------------------------------------------------- */

TEST(tls_psk_wrong_key_refused_before_any_state_change)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, "other.psk", NULL, NULL, NULL, NULL),
	       creds(&tc, true, "keys.psk", NULL, NULL, NULL, NULL));
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "TLS handshake");
	tc_fini(&tc);
}

TEST(tls_psk_unknown_identity_refused)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, "id.psk", "bob", NULL, NULL, NULL),
	       creds(&tc, true, "keys.psk", NULL, NULL, NULL, NULL));
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "destination");
	tc_fini(&tc);
}

TEST(tls_x509_untrusted_certificate_refused)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	/* The source trusts another CA: the destination's certificate is a stranger's. */
	tc_set(&tc, creds(&tc, false, NULL, NULL, "rogue", TLSGEN_SERVER_NAME, NULL),
	       creds(&tc, true, NULL, NULL, "pki", NULL, NULL));
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "NOT trusted");
	tc_fini(&tc);
}

TEST(tls_x509_name_mismatch_refused)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, NULL, NULL, "pki", "other.example", NULL),
	       creds(&tc, true, NULL, NULL, "pki", NULL, NULL));
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "--tls-hostname");
	tc_fini(&tc);
}

TEST(tls_x509_client_dn_not_allowed_refused)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, NULL, NULL, "pki", TLSGEN_SERVER_NAME, NULL),
	       creds(&tc, true, NULL, NULL, "pki", NULL, "CN=somebody else"));
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "destination");
	tc_fini(&tc);
}

/* Copy g->dir/@from to g->dir/@to, keeping @mode. */
static int copy_file(struct tls_case *tc, const char *from, const char *to, mode_t mode)
{
	char a[160], b[160], buf[8192];
	ssize_t n;
	int in, ret;

	snprintf(a, sizeof(a), "%s/%s", tc->g.dir, from);
	snprintf(b, sizeof(b), "%s/%s", tc->g.dir, to);
	in = open(a, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	n = read(in, buf, sizeof(buf));
	close(in);
	ret = n > 0 ? tlsgen_write(b, buf, (size_t)n, mode) : -1;
	explicit_bzero(buf, sizeof(buf));
	return ret;
}

TEST(tls_x509_client_certificate_of_another_ca_refused)
{
	struct tls_case tc;
	char dir[128];

	ASSERT_EQ(0, tc_init(&tc));
	/* The source trusts the destination's CA but shows a certificate another CA signed. */
	snprintf(dir, sizeof(dir), "%s/mixed", tc.g.dir);
	ASSERT_EQ(0, mkdir(dir, 0700));
	ASSERT_EQ(0, copy_file(&tc, "pki/ca-cert.pem", "mixed/ca-cert.pem", 0644));
	ASSERT_EQ(0, copy_file(&tc, "rogue/client-cert.pem", "mixed/client-cert.pem", 0644));
	ASSERT_EQ(0, copy_file(&tc, "rogue/client-key.pem", "mixed/client-key.pem", 0600));
	tc_set(&tc, creds(&tc, false, NULL, NULL, "mixed", TLSGEN_SERVER_NAME, NULL),
	       creds(&tc, true, NULL, NULL, "pki", NULL, NULL));
	ASSERT_NE(NULL, tc.ct);
	ASSERT_EQ(0, tc_run(&tc));
	/* Its alert, or its close while our handshake still writes: either names it. */
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "destination");
	tc_fini(&tc);
}

TEST(tls_plain_source_at_tls_destination_refused)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, NULL, creds(&tc, true, "keys.psk", NULL, NULL, NULL, NULL));
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "requires TLS");
	tc_fini(&tc);
}

TEST(tls_source_at_plain_destination_refused)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, "keys.psk", NULL, NULL, NULL, NULL), NULL);
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "does not use TLS");
	tc_fini(&tc);
}

TEST(tls_key_files_readable_by_others_refused)
{
	struct vfmig_tls_config cfg = { 0 };
	struct vfmig_error e = { 0 };
	struct tls_case tc;
	char path[160];

	ASSERT_EQ(0, tc_init(&tc));
	ASSERT_EQ(0, tlsgen_psk_mode(&tc.g, "open.psk", "qemu", 1, 0644));
	snprintf(path, sizeof(path), "%s/open.psk", tc.g.dir);
	cfg.psk_file = path;
	EXPECT_EQ(NULL, vfmig_tls_new(&cfg, true, &e));
	EXPECT_NE(NULL, strstr(e.msg, "group or others")) TH_LOG("%s", e.msg);
	/* Nothing of the key in the message. */
	EXPECT_EQ(NULL, strstr(e.msg, "qemu:"));

	snprintf(path, sizeof(path), "%s/pki/server-key.pem", tc.g.dir);
	ASSERT_EQ(0, chmod(path, 0640));
	snprintf(path, sizeof(path), "%s/pki", tc.g.dir);
	cfg.psk_file = NULL;
	cfg.creds_dir = path;
	memset(&e, 0, sizeof(e));
	EXPECT_EQ(NULL, vfmig_tls_new(&cfg, true, &e));
	EXPECT_NE(NULL, strstr(e.msg, "server-key.pem")) TH_LOG("%s", e.msg);
	/* The client's key is still private: its end loads. */
	tc.ct = vfmig_tls_new(&cfg, false, &e);
	EXPECT_NE(NULL, tc.ct) TH_LOG("%s", e.msg);
	tc_fini(&tc);
}

/* Two files of g->dir/pki copied to g->dir/@sub as @c-{cert,key}.pem, with its CA. */
static int swap_dir(struct tls_case *tc, const char *sub, const char *from, const char *to)
{
	char dir[128], a[64], b[64];

	snprintf(dir, sizeof(dir), "%s/%s", tc->g.dir, sub);
	if (mkdir(dir, 0700) || (snprintf(b, sizeof(b), "%s/ca-cert.pem", sub),
				 copy_file(tc, "pki/ca-cert.pem", b, 0644)))
		return -1;
	snprintf(a, sizeof(a), "pki/%s-cert.pem", from);
	snprintf(b, sizeof(b), "%s/%s-cert.pem", sub, to);
	if (copy_file(tc, a, b, 0644))
		return -1;
	snprintf(a, sizeof(a), "pki/%s-key.pem", from);
	snprintf(b, sizeof(b), "%s/%s-key.pem", sub, to);
	return copy_file(tc, a, b, 0600);
}

/* The CA's server certificate is not a client certificate (extended key usage). */
TEST(tls_x509_server_certificate_as_client_refused)
{
	struct tls_case tc;

	ASSERT_EQ(0, tc_init(&tc));
	ASSERT_EQ(0, swap_dir(&tc, "evil", "server", "client"));
	tc_set(&tc, creds(&tc, false, NULL, NULL, "evil", TLSGEN_SERVER_NAME, NULL),
	       creds(&tc, true, NULL, NULL, "pki", NULL, NULL));
	ASSERT_NE(NULL, tc.ct);
	ASSERT_NE(NULL, tc.st);
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_REFUSED(&tc, VFMIG_ERR_AUTH, "destination");
	tc_fini(&tc);
}

/* ... nor the client's a server certificate: refused, with a message that says why. */
TEST(tls_x509_client_certificate_as_server_refused)
{
	struct vfmig_tls_config cfg = { 0 };
	struct vfmig_error e = { 0 };
	struct vfmig_tls *t;
	struct tls_case tc;
	char dir[128];

	ASSERT_EQ(0, tc_init(&tc));
	ASSERT_EQ(0, swap_dir(&tc, "evil", "client", "server"));
	snprintf(dir, sizeof(dir), "%s/evil", tc.g.dir);
	cfg.creds_dir = dir;
	t = vfmig_tls_new(&cfg, true, &e);
	EXPECT_EQ(NULL, t);
	EXPECT_NE(NULL, strstr(e.msg, "key purpose")) TH_LOG("%s", e.msg);
	vfmig_tls_free(t);
	tc_fini(&tc);
}

/* A PSK shorter than 16 bytes is refused, with the reason. */
TEST(tls_psk_short_key_refused)
{
	struct vfmig_tls_config cfg = { 0 };
	struct vfmig_error e = { 0 };
	struct tls_case tc;
	char path[160];
	static const char line[] = "qemu:00112233445566778899aabbccddee\n"; /* 15 bytes */

	ASSERT_EQ(0, tc_init(&tc));
	snprintf(path, sizeof(path), "%s/short.psk", tc.g.dir);
	ASSERT_EQ(0, tlsgen_write(path, line, sizeof(line) - 1, 0600));
	cfg.psk_file = path;
	EXPECT_EQ(NULL, vfmig_tls_new(&cfg, true, &e));
	EXPECT_NE(NULL, strstr(e.msg, "16 bytes")) TH_LOG("%s", e.msg);
	EXPECT_EQ(NULL, strstr(e.msg, "00112233"));
	tc_fini(&tc);
}

/* A key file owned by another user (not root) is refused. */
TEST(tls_key_file_of_another_owner_refused)
{
	struct vfmig_tls_config cfg = { 0 };
	struct vfmig_error e = { 0 };
	struct tls_case tc;
	char path[160];

	if (geteuid())
		SKIP(return, "needs root to give the key file to another user");
	ASSERT_EQ(0, tc_init(&tc));
	snprintf(path, sizeof(path), "%s/keys.psk", tc.g.dir);
	ASSERT_EQ(0, chown(path, 65534, 65534));
	cfg.psk_file = path;
	EXPECT_EQ(NULL, vfmig_tls_new(&cfg, true, &e));
	EXPECT_NE(NULL, strstr(e.msg, "owned by")) TH_LOG("%s", e.msg);
	tc_fini(&tc);
}

/* A destination that accepts and hangs up during the handshake: a transport error, not 14. */
TEST(tls_peer_hangs_up_in_handshake_is_transport_error)
{
	struct tls_case tc;
	pid_t pid;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, "keys.psk", NULL, NULL, NULL, NULL), NULL);
	ASSERT_EQ(0, pair_listen(&tc.p));
	tc.p.ss = vfmig_session_new(true, tc.p.src, tc.p.n, &tc.p.so);
	ASSERT_NE(NULL, tc.p.ss);
	/* A child accepts the connection and closes it at once. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int c = vfmig_accept(tc.p.lfd, 5000, -1);

		if (c >= 0)
			close(c);
		_exit(0);
	}
	tc.p.src_rc = vfmig_session_send(tc.p.ss, &tc.p.addr);
	waitpid(pid, NULL, 0);
	EXPECT_EQ(VFMIG_ERR_TRANSPORT, tc.p.src_rc)
	TH_LOG("source: %s", vfmig_session_error(tc.p.ss)->msg);
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(tc.p.src[0]));
	tc_fini(&tc);
}

/* ---- strangers before the real source ---------------------------------------------------- */

struct stranger {
	int fd;
	const struct vfmig_tls *t; /* NULL: no TLS handshake */
	pthread_t th;
};

/* A TLS client with a key the destination does not know: it tries, and is refused. */
static void *stranger_thread(void *arg)
{
	struct stranger *st = arg;
	struct vfmig_tls_sess *ts;
	char why[256];
	bool plain;

	if (!vfmig_tls_handshake(st->t, st->fd, NULL, 5000, NULL, &ts, &plain, why, sizeof(why)))
		vfmig_tls_sess_free(ts);
	return NULL;
}

TEST(tls_strangers_first_then_the_real_source_migrates)
{
	struct stranger wrong = { .fd = -1 };
	struct tls_case tc;
	uint8_t junk[4096];
	int silent, garbage;

	ASSERT_EQ(0, tc_init(&tc));
	tc_set(&tc, creds(&tc, false, "keys.psk", NULL, NULL, NULL, NULL),
	       creds(&tc, true, "keys.psk", NULL, NULL, NULL, NULL));
	wrong.t = creds(&tc, false, "other.psk", NULL, NULL, NULL, NULL);
	ASSERT_NE(NULL, wrong.t);
	ASSERT_EQ(0, pair_listen(&tc.p));
	/* Three strangers queue before the source: wrong key, silent, garbage. */
	wrong.fd = vfmig_connect(&tc.p.addr, 2000, NULL);
	silent = vfmig_connect(&tc.p.addr, 2000, NULL);
	garbage = vfmig_connect(&tc.p.addr, 2000, NULL);
	ASSERT_LE(0, wrong.fd);
	ASSERT_LE(0, silent);
	ASSERT_LE(0, garbage);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 7);
	ASSERT_EQ(0, raw_send_bytes(garbage, junk, sizeof(junk)));
	ASSERT_EQ(0, pthread_create(&wrong.th, NULL, stranger_thread, &wrong));
	ASSERT_EQ(0, tc_run(&tc));
	pthread_join(wrong.th, NULL);
	EXPECT_MIGRATED(&tc);
	close(wrong.fd);
	close(silent);
	close(garbage);
	vfmig_tls_free((struct vfmig_tls *)wrong.t);
	tc_fini(&tc);
}

/*
 * Without TLS (a loopback or UNIX listener): a stranger's garbage and
 * silence before the source are refused and the session goes on.
 */
TEST(plain_strangers_first_then_the_real_source_migrates)
{
	struct tls_case tc;
	uint8_t junk[64];
	int silent, garbage;

	ASSERT_EQ(0, tc_init(&tc));
	ASSERT_EQ(0, pair_listen(&tc.p));
	silent = vfmig_connect(&tc.p.addr, 2000, NULL);
	garbage = vfmig_connect(&tc.p.addr, 2000, NULL);
	ASSERT_LE(0, silent);
	ASSERT_LE(0, garbage);
	memset(junk, 0x5a, sizeof(junk));
	ASSERT_EQ(0, raw_send_bytes(garbage, junk, sizeof(junk)));
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_MIGRATED(&tc);
	close(silent);
	close(garbage);
	tc_fini(&tc);
}

/* A multifd channel that does not present the session's token is refused; the session goes on. */
TEST(channel_without_the_session_token_refused_session_goes_on)
{
	struct vfmig_frame f;
	struct pair p;
	pthread_t dt;
	int fd, bad, ch[2];

	ASSERT_EQ(0, pair_init(&p, 1));
	p.dopt.accept_ms = 500;
	p.dopt.timeout_ms = 3000;
	ASSERT_EQ(0, pair_listen(&p));
	p.ds = vfmig_session_new(false, p.dst, 1, &p.dopt);
	ASSERT_NE(NULL, p.ds);
	ASSERT_EQ(0, pthread_create(&dt, NULL, pair_recv_thread, &p));
	fd = vfmig_connect(&p.addr, 2000, NULL);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, raw_hello(fd, p.dst, 1, 9, 2, 64 << 10, 0));
	bad = raw_channel(&p.addr, 8, 0, 2); /* a guess at the token */
	ch[0] = raw_channel(&p.addr, 9, 0, 2);
	ch[1] = raw_channel(&p.addr, 9, 1, 2);
	ASSERT_LE(0, bad);
	ASSERT_LE(0, ch[0]);
	ASSERT_LE(0, ch[1]);
	/* The destination took the two real channels and is RESUMING. */
	ASSERT_EQ(VFMIG_FERR_NONE, raw_recv(fd, 1, 64 << 10, &f));
	EXPECT_EQ(VFMIG_F_READY, f.h.type);
	vfmig_frame_free(&f);
	EXPECT_EQ(VFMIG_STATE_RESUMING, vfmig_fake_state(p.dst[0]));
	shutdown(fd, SHUT_RDWR);
	pthread_join(dt, NULL);
	close(fd);
	close(bad);
	close(ch[0]);
	close(ch[1]);
	pair_fini(&p);
}

/* ---- tampering --------------------------------------------------------------------------- */

TEST(tls_tampered_record_mid_stopcopy_rolls_back)
{
	struct tls_case tc;
	struct proxy *px;
	char path[96];

	ASSERT_EQ(0, tc_init(&tc));
	/* No PRE_COPY: all of the 2 x 1 MiB goes in STOP_COPY, over the multifd channels. */
	for (unsigned i = 0; i < tc.p.n; i++) {
		vfmig_device_close(tc.p.src[i]);
		vfmig_device_close(tc.p.dst[i]);
		tc.p.src[i] = fake("src", 1 << 20, VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P, 100 + i);
		tc.p.dst[i] = fake("dst", 1 << 20, VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P, 200 + i);
		ASSERT_NE(NULL, tc.p.src[i]);
		ASSERT_NE(NULL, tc.p.dst[i]);
	}
	tc_set(&tc, creds(&tc, false, "keys.psk", NULL, NULL, NULL, NULL),
	       creds(&tc, true, "keys.psk", NULL, NULL, NULL, NULL));
	ASSERT_EQ(0, pair_listen(&tc.p));
	snprintf(path, sizeof(path), "%s/px", tc.p.dir);
	px = proxy_new(&tc.p.addr, path);
	ASSERT_NE(NULL, px);
	/*
	 * Connection 1 is the first multifd channel: it carries only STOP_COPY
	 * data, about 512 KiB of it here; 100000 bytes in is mid-stream.
	 */
	proxy_flip_byte(px, PROXY_TO_SERVER, 1, 100000);
	tc.target.family = AF_UNIX;
	snprintf(tc.target.path, sizeof(tc.target.path), "%s", path);
	ASSERT_EQ(0, tc_run(&tc));
	EXPECT_TRUE(proxy_flipped(px));
	/* The destination saw the record fail authentication: a transport error. */
	EXPECT_EQ(VFMIG_ERR_TRANSPORT, tc.p.dst_rc)
	TH_LOG("destination: %s", vfmig_session_error(tc.p.ds)->msg);
	EXPECT_MSG(tc.p.ds, "failed authentication");
	/* The normal failure path: destination reset, source back to RUNNING with its state. */
	EXPECT_NE(VFMIG_OK, tc.p.src_rc);
	for (unsigned i = 0; i < tc.p.n; i++) {
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(tc.p.src[i]));
		EXPECT_EQ(tc.p.src_digest[i], vfmig_fake_digest(tc.p.src[i]));
		EXPECT_EQ(1u, vfmig_fake_resets(tc.p.dst[i]));
	}
	EXPECT_EQ(VFMIG_OWNER_SOURCE, vfmig_session_owner(tc.p.ss));
	proxy_free(px);
	tc_fini(&tc);
}

TEST(addr_is_local_only_for_loopback_and_unix)
{
	struct vfmig_addr a;

	ASSERT_EQ(0, vfmig_addr_parse("unix:/tmp/x", &a, NULL));
	EXPECT_TRUE(vfmig_addr_is_local(&a));
	ASSERT_EQ(0, vfmig_addr_parse("127.0.0.1:4444", &a, NULL));
	EXPECT_TRUE(vfmig_addr_is_local(&a));
	ASSERT_EQ(0, vfmig_addr_parse("[::1]:4444", &a, NULL));
	EXPECT_TRUE(vfmig_addr_is_local(&a));
	ASSERT_EQ(0, vfmig_addr_parse("tcp:[::]:4444", &a, NULL));
	EXPECT_FALSE(vfmig_addr_is_local(&a));
	ASSERT_EQ(0, vfmig_addr_parse("0.0.0.0:4444", &a, NULL));
	EXPECT_FALSE(vfmig_addr_is_local(&a));
	ASSERT_EQ(0, vfmig_addr_parse("*:4444", &a, NULL));
	EXPECT_FALSE(vfmig_addr_is_local(&a));
}

TEST_HARNESS_MAIN
