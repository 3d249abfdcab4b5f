// SPDX-License-Identifier: GPL-2.0-only
/*
 * malformed_test - every class of malformed frame is refused with its own
 * reason (bad magic, bad version, bad checksum, oversized length, truncated
 * header, truncated payload, unknown device, idx overflow, unknown flags,
 * unknown type, stray fields), and a destination session fed one fails
 * cleanly: protocol error, ERROR sent back, devices reset, threads joined.
 */
#include "kselftest_harness.h"
#include "test_util.h"

/* Why the last frame was refused. */
static char why[256];

/* Send raw bytes on one end of a socketpair (then close it) and receive on the other. */
static enum vfmig_ferr feed(const void *bytes, size_t n, unsigned ndev)
{
	struct vfmig_limits lim = { .ndevices = ndev, .max_chunk = 4096 };
	struct vfmig_frame f;
	enum vfmig_ferr fe;
	int sv[2], e;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return VFMIG_FERR_IO;
	if (n && raw_send_bytes(sv[0], bytes, n))
		return VFMIG_FERR_IO;
	close(sv[0]);
	fe = vfmig_recv_frame(sv[1], &lim, 1000, &f, &e, why, sizeof(why));
	if (fe == VFMIG_FERR_NONE)
		vfmig_frame_free(&f);
	close(sv[1]);
	return fe;
}

static size_t good(uint8_t *buf, uint16_t type, uint32_t flags, uint32_t dev, uint32_t idx,
		   uint32_t len)
{
	uint8_t payload[64] = { 1, 2, 3 };

	return vfmig_frame_encode(buf, type, flags, dev, idx, payload, len);
}

/* Feed a well-formed frame (to a receiver that knows @ndev devices). */
static enum vfmig_ferr feed_good(uint16_t type, uint32_t flags, uint32_t dev, uint32_t idx,
				 uint32_t len, unsigned ndev)
{
	uint8_t b[128];

	return feed(b, good(b, type, flags, dev, idx, len), ndev);
}

/*
 * Re-seal the checksum after editing a header, so only the edited field is
 * wrong; the payload hashed is what the @n bytes of the frame in @buf hold.
 */
static void reseal(uint8_t *buf, size_t n)
{
	uint32_t len = MIN(get_le32(buf + 20), (uint32_t)(n - VFMIG_HDR_LEN));

	put_le64(buf + 24, vfmig_frame_checksum(buf, buf + VFMIG_HDR_LEN, len));
}

TEST(malformed_valid_frame_is_accepted)
{
	EXPECT_EQ(VFMIG_FERR_NONE, feed_good(VFMIG_F_DEVICE_STATE, 0, 1, 7, 32, 2));
}

TEST(malformed_bad_magic)
{
	uint8_t b[128];
	size_t n = good(b, VFMIG_F_DEVICE_STATE, 0, 0, 0, 8);

	b[0] ^= 0xff;
	EXPECT_EQ(VFMIG_FERR_BAD_MAGIC, feed(b, n, 1));
	EXPECT_NE(NULL, strstr(why, "magic"));
}

TEST(malformed_bad_version)
{
	uint8_t b[128];
	size_t n = good(b, VFMIG_F_DEVICE_STATE, 0, 0, 0, 8);

	put_le16(b + 4, 2);
	reseal(b, n);
	EXPECT_EQ(VFMIG_FERR_BAD_VERSION, feed(b, n, 1));
}

TEST(malformed_bad_checksum_payload)
{
	uint8_t b[128];
	size_t n = good(b, VFMIG_F_DEVICE_STATE, 0, 0, 0, 8);

	b[VFMIG_HDR_LEN + 3] ^= 1;
	EXPECT_EQ(VFMIG_FERR_BAD_CHECKSUM, feed(b, n, 1));
}

TEST(malformed_bad_checksum_header_field)
{
	uint8_t b[128];
	size_t n = good(b, VFMIG_F_DEVICE_STATE, 0, 0, 5, 8);

	put_le32(b + 16, 6); /* idx changed in flight */
	EXPECT_EQ(VFMIG_FERR_BAD_CHECKSUM, feed(b, n, 1));
}

TEST(malformed_oversized_length)
{
	uint8_t b[128];
	size_t n = good(b, VFMIG_F_DEVICE_STATE, 0, 0, 0, 8);

	put_le32(b + 20, 4097); /* max_chunk is 4096 */
	reseal(b, n);
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, feed(b, n, 1));
	put_le32(b + 20, UINT32_MAX);
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, feed(b, n, 1));
}

TEST(malformed_wrong_length_for_type)
{
	/* PING carries nothing */
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, feed_good(VFMIG_F_PING, 0, 0, 0, 4, 1));
	/* empty data chunk */
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, feed_good(VFMIG_F_DEVICE_STATE, 0, 0, 0, 0, 1));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, feed_good(VFMIG_F_COMPLETE, 0, 0, 0, 8, 1));
}

TEST(malformed_truncated_header)
{
	uint8_t b[128];

	good(b, VFMIG_F_DEVICE_STATE, 0, 0, 0, 8);
	EXPECT_EQ(VFMIG_FERR_TRUNC_HEADER, feed(b, 17, 1));
	EXPECT_EQ(VFMIG_FERR_TRUNC_HEADER, feed(b, 1, 1));
	EXPECT_EQ(VFMIG_FERR_EOF, feed(b, 0, 1));
}

TEST(malformed_truncated_payload)
{
	uint8_t b[128];
	size_t n = good(b, VFMIG_F_DEVICE_STATE, 0, 0, 0, 40);

	EXPECT_EQ(VFMIG_FERR_TRUNC_PAYLOAD, feed(b, n - 1, 1));
	EXPECT_EQ(VFMIG_FERR_TRUNC_PAYLOAD, feed(b, VFMIG_HDR_LEN, 1));
}

TEST(malformed_unknown_device)
{
	EXPECT_EQ(VFMIG_FERR_BAD_DEVICE, feed_good(VFMIG_F_DEVICE_STATE, 0, 2, 0, 8, 2));
	EXPECT_EQ(VFMIG_FERR_BAD_DEVICE, feed_good(VFMIG_F_PRECOPY_DATA, 0, UINT32_MAX, 0, 8, 2));
	/* before the handshake no device is known */
	EXPECT_EQ(VFMIG_FERR_BAD_DEVICE, feed_good(VFMIG_F_SWITCHOVER_ACK, 0, 0, 0, 0, 0));
	/* a frame type without a device must carry 0 */
	EXPECT_EQ(VFMIG_FERR_BAD_DEVICE, feed_good(VFMIG_F_COMMIT, 0, 1, 0, 0, 2));
}

TEST(malformed_idx_overflow)
{
	EXPECT_EQ(VFMIG_FERR_BAD_IDX,
		  feed_good(VFMIG_F_DEVICE_STATE, 0, 0, VFMIG_IDX_INVALID, 8, 1));
	/* stray idx */
	EXPECT_EQ(VFMIG_FERR_BAD_IDX, feed_good(VFMIG_F_READY, 0, 0, 3, 0, 1));
}

TEST(malformed_unknown_flags)
{
	EXPECT_EQ(VFMIG_FERR_BAD_FLAGS, feed_good(VFMIG_F_DEVICE_STATE, 1u << 5, 0, 0, 8, 1));
	/* CONFIG only on DEVICE_STATE */
	EXPECT_EQ(VFMIG_FERR_BAD_FLAGS,
		  feed_good(VFMIG_F_PRECOPY_DATA, VFMIG_FLAG_CONFIG, 0, 0, 8, 1));
}

TEST(malformed_unknown_type)
{
	EXPECT_EQ(VFMIG_FERR_BAD_TYPE, feed_good(VFMIG_F_NR, 0, 0, 0, 0, 1));
	EXPECT_EQ(VFMIG_FERR_BAD_TYPE, feed_good(0, 0, 0, 0, 0, 1));
}

/* ---- a destination session fed a malformed frame ------------------------------------ */

struct rogue {
	struct pair p;
	int main_fd, ch_fd;
	pthread_t t; /* the destination session */
};

/* Handshake by hand with one multifd channel, up to READY. */
static int rogue_start(struct rogue *r)
{
	struct vfmig_frame f;

	if (pair_init(&r->p, 1) || pair_listen(&r->p))
		return -1;
	r->p.ds = vfmig_session_new(false, r->p.dst, 1, &r->p.dopt);
	if (!r->p.ds || pthread_create(&r->t, NULL, pair_recv_thread, &r->p))
		return -1;
	r->main_fd = vfmig_connect(&r->p.addr, 1000, NULL);
	if (r->main_fd < 0 || raw_hello(r->main_fd, r->p.dst, 1, 7, 1, 4096, 0))
		return -1;
	r->ch_fd = raw_channel(&r->p.addr, 7, 0, 1);
	if (r->ch_fd < 0)
		return -1;
	if (raw_recv(r->main_fd, 1, 4096, &f) || f.h.type != VFMIG_F_READY)
		return -1;
	return 0;
}

static void rogue_fini(struct rogue *r)
{
	close(r->main_fd);
	close(r->ch_fd);
	pair_fini(&r->p);
}

TEST(malformed_packet_fails_destination_cleanly)
{
	struct rogue r;
	struct vfmig_frame f;
	uint8_t junk[16] = { 0 }, b[2 * (VFMIG_HDR_LEN + sizeof(junk))];
	size_t n;

	ASSERT_EQ(0, rogue_start(&r));
	ASSERT_EQ(0, raw_send(r.main_fd, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0));
	/*
	 * A chunk the load thread does not take yet (it waits for idx 0: junk
	 * written to the device would fail it first), then one for device 5, which
	 * does not exist.  One write: the bad frame is sent whatever the
	 * destination does with the first.
	 */
	n = vfmig_frame_encode(b, VFMIG_F_DEVICE_STATE, 0, 0, 1, junk, 16);
	junk[0] = 1;
	n += vfmig_frame_encode(b + n, VFMIG_F_DEVICE_STATE, 0, 5, 1, junk, 16);
	ASSERT_EQ(0, raw_send_bytes(r.ch_fd, b, n));
	pthread_join(r.t, NULL);
	EXPECT_EQ(VFMIG_ERR_PROTOCOL, r.p.dst_rc);
	EXPECT_MSG(r.p.ds, "unknown device 5");
	/* The destination told us, and reset its device. */
	ASSERT_EQ(VFMIG_FERR_NONE, raw_recv(r.main_fd, 1, 4096, &f));
	EXPECT_EQ(VFMIG_F_ERROR, f.h.type);
	EXPECT_EQ(VFMIG_ERR_PROTOCOL, get_le32(f.payload));
	vfmig_frame_free(&f);
	EXPECT_EQ(1, vfmig_fake_resets(r.p.dst[0]));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(r.p.dst[0]));
	rogue_fini(&r);
}

TEST(malformed_duplicate_chunk_fails_destination)
{
	struct rogue r;
	uint8_t junk[16] = { 0 };

	ASSERT_EQ(0, rogue_start(&r));
	ASSERT_EQ(0, raw_send(r.ch_fd, VFMIG_F_DEVICE_STATE, 0, 0, 3, junk, 16));
	ASSERT_EQ(0, raw_send(r.ch_fd, VFMIG_F_DEVICE_STATE, 0, 0, 3, junk, 16));
	pthread_join(r.t, NULL);
	EXPECT_EQ(VFMIG_ERR_PROTOCOL, r.p.dst_rc);
	EXPECT_MSG(r.p.ds, "duplicate idx 3");
	EXPECT_EQ(1, vfmig_fake_resets(r.p.dst[0]));
	rogue_fini(&r);
}

TEST(malformed_precopy_out_of_sequence_fails_destination)
{
	struct rogue r;
	uint8_t junk[16] = { 0 };

	ASSERT_EQ(0, rogue_start(&r));
	ASSERT_EQ(0, raw_send(r.main_fd, VFMIG_F_PRECOPY_DATA, 0, 0, 1, junk,
			      16)); /* idx 0 expected */
	pthread_join(r.t, NULL);
	EXPECT_EQ(VFMIG_ERR_PROTOCOL, r.p.dst_rc);
	EXPECT_MSG(r.p.ds, "expected 0");
	rogue_fini(&r);
}

TEST(malformed_peer_vanishing_mid_stream_is_a_transport_error)
{
	struct rogue r;

	ASSERT_EQ(0, rogue_start(&r));
	ASSERT_EQ(0, raw_send(r.main_fd, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0));
	shutdown(r.ch_fd, SHUT_RDWR);
	pthread_join(r.t, NULL);
	EXPECT_EQ(VFMIG_ERR_TRANSPORT, r.p.dst_rc);
	EXPECT_EQ(1, vfmig_fake_resets(r.p.dst[0]));
	rogue_fini(&r);
}

TEST_HARNESS_MAIN
