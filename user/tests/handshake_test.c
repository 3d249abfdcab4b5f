// SPDX-License-Identifier: GPL-2.0-only
/*
 * handshake_test - HELLO encoding and the destination's verdict: version,
 * option, channel, device-count and device mismatches are refused before
 * any device changes state, on both sides.
 */
#include "kselftest_harness.h"
#include "test_util.h"

struct hs {
	struct vfmig_device *devs[2];
	struct vfmig_options o;
	struct vfmig_local l;
	struct vfmig_hello h;
};

static void hs_init(struct hs *x, unsigned n)
{
	memset(x, 0, sizeof(*x));
	vfmig_options_init(&x->o);
	x->o.channels = 0;
	for (unsigned i = 0; i < n; i++)
		x->devs[i] = fake("d", 1 << 20, ALL_FLAGS, i);
	x->l.ndevices = n;
	x->l.devs = x->devs;
	x->l.o = &x->o;
	x->h.proto_version = VFMIG_PROTO_VERSION;
	x->h.min_proto_version = VFMIG_PROTO_MIN_VERSION;
	x->h.session_id = 42;
	x->h.options = VFMIG_OPT_MULTIFD | VFMIG_OPT_SWITCHOVER_ACK;
	x->h.nchannels = 2;
	x->h.chunk_size = 1 << 20;
	x->h.ndevices = n;
	for (unsigned i = 0; i < n; i++) {
		x->h.dev[i].mig_flags = ALL_FLAGS;
		x->h.dev[i].config_size = vfmig_device_config_size(x->devs[i]);
		snprintf(x->h.dev[i].compat, VFMIG_COMPAT_LEN, "%s",
			 vfmig_device_compat(x->devs[i]));
	}
}

static void hs_fini(struct hs *x)
{
	for (unsigned i = 0; i < 2; i++)
		vfmig_device_close(x->devs[i]);
}

static enum vfmig_errclass check(struct hs *x, char *why, size_t len)
{
	uint32_t agreed = 0;

	return vfmig_hello_check(&x->h, &x->l, &agreed, why, len);
}

/* The destination refuses x's HELLO as incompatible, saying @needle. */
#define EXPECT_REFUSED(x, needle)                                                  \
	do {                                                                       \
		char why_[256] = "";                                               \
                                                                                   \
		EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, check(x, why_, sizeof(why_)));   \
		EXPECT_NE(NULL, strstr(why_, needle)) TH_LOG("refused: %s", why_); \
	} while (0)

TEST(handshake_hello_round_trip)
{
	uint8_t buf[VFMIG_HELLO_MAX];
	struct vfmig_hello d;
	struct hs x;
	char why[256];
	size_t n;

	hs_init(&x, 2);
	x.h.dev[1].stop_copy_estimate = 123456789;
	snprintf(x.h.dev[1].label, VFMIG_LABEL_LEN, "nic0");
	n = vfmig_hello_encode(buf, sizeof(buf), &x.h);
	ASSERT_EQ(VFMIG_HELLO_FIXED + 2 * VFMIG_HELLO_DEV_LEN, n);
	ASSERT_EQ(0, vfmig_hello_decode(buf, n, &d, why, sizeof(why)));
	EXPECT_EQ(42, d.session_id);
	EXPECT_EQ(2, d.ndevices);
	EXPECT_EQ(123456789, d.dev[1].stop_copy_estimate);
	EXPECT_STREQ(x.h.dev[0].compat, d.dev[0].compat);
	EXPECT_STREQ("nic0", d.dev[1].label);
	EXPECT_EQ(0, memcmp(&x.h, &d, sizeof(d)));
	hs_fini(&x);
}

/* Device pairs listed in a different order on the two sides: refused by label. */
TEST(handshake_label_mismatch_refused)
{
	struct hs x;

	hs_init(&x, 2);
	ASSERT_EQ(0, vfmig_device_set_label(x.devs[0], "gpu0"));
	ASSERT_EQ(0, vfmig_device_set_label(x.devs[1], "nic0"));
	snprintf(x.h.dev[0].label, VFMIG_LABEL_LEN, "nic0");
	snprintf(x.h.dev[1].label, VFMIG_LABEL_LEN, "gpu0");
	EXPECT_REFUSED(&x, "same order");
	/* One side unlabelled: nothing to compare, accepted. */
	x.h.dev[0].label[0] = x.h.dev[1].label[0] = '\0';
	{
		char why[256];
		uint32_t agreed;

		EXPECT_EQ(VFMIG_OK, vfmig_hello_check(&x.h, &x.l, &agreed, why, sizeof(why)));
	}
	EXPECT_EQ(-EINVAL, vfmig_device_set_label(x.devs[0], "has space"));
	EXPECT_EQ(-EINVAL, vfmig_device_set_label(x.devs[0], "0123456789012345678901234567890123"));
	hs_fini(&x);
}

TEST(handshake_label_mismatch_end_to_end)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 2));
	ASSERT_EQ(0, vfmig_device_set_label(p.src[0], "a"));
	ASSERT_EQ(0, vfmig_device_set_label(p.src[1], "b"));
	ASSERT_EQ(0, vfmig_device_set_label(p.dst[0], "b"));
	ASSERT_EQ(0, vfmig_device_set_label(p.dst[1], "a"));
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, p.src_rc);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, p.dst_rc);
	EXPECT_MSG(p.ss, "labelled 'a'");
	for (unsigned i = 0; i < 2; i++) {
		EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[i]));
		EXPECT_EQ(0, vfmig_fake_resets(p.dst[i]));
	}
	pair_fini(&p);
}

TEST(handshake_accepts_matching_peer)
{
	struct hs x;
	char why[256];
	uint32_t agreed = 0;

	hs_init(&x, 2);
	x.o.load_config_after_iter = VFMIG_ON;
	ASSERT_EQ(VFMIG_OK, vfmig_hello_check(&x.h, &x.l, &agreed, why, sizeof(why)));
	EXPECT_EQ(VFMIG_OPT_MULTIFD | VFMIG_OPT_SWITCHOVER_ACK | VFMIG_OPT_LOAD_CONFIG_AFTER_ITER,
		  agreed);
	hs_fini(&x);
}

TEST(handshake_version_mismatch)
{
	struct hs x;

	hs_init(&x, 1);
	x.h.proto_version = 7;
	x.h.min_proto_version = 7;
	EXPECT_REFUSED(&x, "protocol version");
	x.h.proto_version = 0;
	x.h.min_proto_version = 0;
	EXPECT_REFUSED(&x, "");
	hs_fini(&x);
}

TEST(handshake_option_mismatch)
{
	struct hs x;

	hs_init(&x, 1);
	x.o.multifd = VFMIG_OFF;
	EXPECT_REFUSED(&x, "multifd");
	x.o.multifd = VFMIG_AUTO;
	x.o.switchover_ack = VFMIG_OFF;
	EXPECT_REFUSED(&x, "switchover-ack");
	x.o.switchover_ack = VFMIG_AUTO;
	x.o.channels = 4;
	EXPECT_REFUSED(&x, "channels");
	x.o.channels = 0;
	x.h.options |= 1u << 7;
	EXPECT_REFUSED(&x, "unknown option");
	x.h.options = VFMIG_OPT_MULTIFD;
	x.h.nchannels = 0;
	EXPECT_REFUSED(&x, "");
	x.h.options = 0;
	x.h.nchannels = 3;
	EXPECT_REFUSED(&x, "");
	hs_fini(&x);
}

TEST(handshake_device_count_mismatch)
{
	struct hs x;

	hs_init(&x, 2);
	x.l.ndevices = 1;
	EXPECT_REFUSED(&x, "device count mismatch");
	hs_fini(&x);
}

TEST(handshake_device_mismatch)
{
	struct hs x;

	hs_init(&x, 1);
	snprintf(x.h.dev[0].compat, VFMIG_COMPAT_LEN, "mdev:other-type");
	EXPECT_REFUSED(&x, "mdev:other-type");
	hs_fini(&x);
	hs_init(&x, 1);
	x.h.dev[0].config_size = 4096;
	EXPECT_REFUSED(&x, "config size");
	hs_fini(&x);
}

TEST(handshake_multi_device_needs_p2p_on_destination)
{
	struct hs x;

	hs_init(&x, 2);
	vfmig_device_close(x.devs[1]);
	x.devs[1] = fake("nop2p", 1 << 20, VFMIG_MIG_STOP_COPY | VFMIG_MIG_PRE_COPY, 1);
	EXPECT_REFUSED(&x, "P2P");
	hs_fini(&x);
}

TEST(handshake_chunk_size_and_budget)
{
	struct hs x;

	hs_init(&x, 1);
	x.h.chunk_size = VFMIG_MAX_CHUNK + 1;
	EXPECT_REFUSED(&x, "");
	x.h.chunk_size = 100;
	EXPECT_REFUSED(&x, "");
	x.h.chunk_size = 1 << 20;
	x.o.max_queued_bytes = 1 << 20;
	EXPECT_REFUSED(&x, "--max-queued-bytes");
	hs_fini(&x);
}

TEST(handshake_decode_rejects_malformed_hello)
{
	uint8_t buf[VFMIG_HELLO_MAX];
	struct vfmig_hello d;
	struct hs x;
	char why[256];
	size_t n;

	hs_init(&x, 1);
	n = vfmig_hello_encode(buf, sizeof(buf), &x.h);
	EXPECT_EQ(-EPROTO, vfmig_hello_decode(buf, 10, &d, why, sizeof(why)));
	EXPECT_EQ(-EPROTO, vfmig_hello_decode(buf, n - 1, &d, why, sizeof(why)));
	put_le32(buf + 28, 0);
	EXPECT_EQ(-EPROTO, vfmig_hello_decode(buf, n, &d, why, sizeof(why)));
	put_le32(buf + 28, VFMIG_MAX_DEVICES + 1);
	EXPECT_EQ(-EPROTO, vfmig_hello_decode(buf, n, &d, why, sizeof(why)));
	put_le32(buf + 28, 1);
	memset(buf + VFMIG_HELLO_FIXED + 24, 'x', VFMIG_COMPAT_LEN); /* no NUL */
	EXPECT_EQ(-EPROTO, vfmig_hello_decode(buf, n, &d, why, sizeof(why)));
	EXPECT_NE(NULL, strstr(why, "not terminated"));
	n = vfmig_hello_encode(buf, sizeof(buf), &x.h);
	put_le32(buf + VFMIG_HELLO_FIXED + 20, 1);
	EXPECT_EQ(-EPROTO, vfmig_hello_decode(buf, n, &d, why, sizeof(why)));
	hs_fini(&x);
}

/* End to end: the sessions refuse before any device changes state. */
TEST(handshake_mismatch_fails_both_sides_before_any_state_change)
{
	struct pair p;

	ASSERT_EQ(0, pair_init(&p, 1));
	p.so.switchover_ack = VFMIG_ON;
	p.dopt.switchover_ack = VFMIG_OFF;
	ASSERT_EQ(0, pair_run(&p));
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, p.src_rc);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, p.dst_rc);
	EXPECT_MSG(p.ss, "switchover-ack");
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[0]));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.dst[0]));
	EXPECT_EQ(0, vfmig_fake_resets(p.dst[0]));
	EXPECT_EQ(p.src_digest[0], vfmig_fake_digest(p.src[0]));
	pair_fini(&p);
}

TEST(handshake_device_count_mismatch_end_to_end)
{
	struct pair p;
	pthread_t t;

	ASSERT_EQ(0, pair_init(&p, 2));
	ASSERT_EQ(0, pair_listen(&p));
	/* the destination only brings one device */
	p.ds = vfmig_session_new(false, p.dst, 1, &p.dopt);
	p.ss = vfmig_session_new(true, p.src, 2, &p.so);
	ASSERT_EQ(0, pthread_create(&t, NULL, pair_recv_thread, &p));
	p.src_rc = vfmig_session_send(p.ss, &p.addr);
	pthread_join(t, NULL);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, p.src_rc);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, p.dst_rc);
	EXPECT_MSG(p.ds, "device count mismatch");
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[0]));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.src[1]));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(p.dst[0]));
	pair_fini(&p);
}

TEST_HARNESS_MAIN
