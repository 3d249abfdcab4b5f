// SPDX-License-Identifier: GPL-2.0-only
/*
 * bounds_test - nothing is sized by an unchecked value from the wire: every
 * frame type has a payload cap enforced before allocation, the reorder
 * buffer holds at most budget + one needed chunk per device, and the fake
 * device and handshake refuse out-of-range sizes.
 */
#include "kselftest_harness.h"
#include "test_util.h"

static enum vfmig_ferr hdr_only(uint16_t type, uint32_t flags, uint32_t dev, uint32_t len,
				unsigned ndev, uint32_t max_chunk)
{
	struct vfmig_limits lim = { ndev, max_chunk };
	struct vfmig_frame_hdr h = {
		.magic = VFMIG_MAGIC,
		.version = VFMIG_FRAME_VERSION,
		.type = type,
		.flags = flags,
		.device = dev,
		.length = len,
	};
	char why[256];

	return vfmig_hdr_validate(&h, &lim, why, sizeof(why));
}

TEST(bounds_data_payload_capped_by_negotiated_chunk)
{
	EXPECT_EQ(VFMIG_FERR_NONE, hdr_only(VFMIG_F_DEVICE_STATE, 0, 0, 65536, 1, 65536));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, hdr_only(VFMIG_F_DEVICE_STATE, 0, 0, 65537, 1, 65536));
	EXPECT_EQ(VFMIG_FERR_NONE, hdr_only(VFMIG_F_PRECOPY_DATA, 0, 0, 65536, 1, 65536));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH,
		  hdr_only(VFMIG_F_PRECOPY_DATA, 0, 0, UINT32_MAX, 1, 65536));
}

TEST(bounds_config_payload_capped)
{
	EXPECT_EQ(VFMIG_FERR_NONE, hdr_only(VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, 0,
					    VFMIG_MAX_CONFIG, 1, VFMIG_MAX_CHUNK));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, hdr_only(VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, 0,
						  VFMIG_MAX_CONFIG + 1, 1, VFMIG_MAX_CHUNK));
	EXPECT_EQ(VFMIG_FERR_NONE,
		  hdr_only(VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, 0, 0, 1, 4096));
}

TEST(bounds_control_payloads_capped)
{
	EXPECT_EQ(VFMIG_FERR_NONE, hdr_only(VFMIG_F_HELLO, 0, 0, VFMIG_HELLO_MAX, 0, 0));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, hdr_only(VFMIG_F_HELLO, 0, 0, VFMIG_HELLO_MAX + 1, 0, 0));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, hdr_only(VFMIG_F_HELLO, 0, 0, VFMIG_HELLO_FIXED, 0, 0));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH,
		  hdr_only(VFMIG_F_ERROR, 0, 0, VFMIG_ERROR_FIXED + VFMIG_MSG_MAX + 1, 1, 4096));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, hdr_only(VFMIG_F_HELLO_ACK, 0, 0, 1 << 20, 1, 4096));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, hdr_only(VFMIG_F_CHANNEL_HELLO, 0, 0, 17, 1, 4096));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, hdr_only(VFMIG_F_COMPLETE, 0, 0, 33, 1, 4096));
	for (uint16_t t = 1; t < VFMIG_F_NR; t++)
		EXPECT_EQ(VFMIG_FERR_BAD_LENGTH, hdr_only(t, 0, 0, UINT32_MAX, 1, VFMIG_MAX_CHUNK));
}

TEST(bounds_oversized_length_never_reads_payload)
{
	struct vfmig_limits lim = { 1, 4096 };
	struct vfmig_frame f;
	uint8_t b[VFMIG_HDR_LEN];
	char why[256];
	int sv[2], e;

	/* A header claiming 4 GiB, and no payload behind it: refused at once, not read. */
	vfmig_frame_encode(b, VFMIG_F_DEVICE_STATE, 0, 0, 0, NULL, 0);
	put_le32(b + 20, UINT32_MAX);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, raw_send_bytes(sv[0], b, sizeof(b)));
	EXPECT_EQ(VFMIG_FERR_BAD_LENGTH,
		  vfmig_recv_frame(sv[1], &lim, 1000, &f, &e, why, sizeof(why)));
	EXPECT_EQ(NULL, f.payload);
	close(sv[0]);
	close(sv[1]);
}

TEST(bounds_reorder_memory_is_budget_plus_needed_chunks)
{
	struct vfmig_reorder r;
	char why[160];
	const uint32_t ch = 1000;

	ASSERT_EQ(0, vfmig_reorder_init(&r, 2, 4, 3 * ch, 64));
	/* fill the budget with non-needed chunks */
	for (uint32_t i = 1; i <= 3; i++)
		ASSERT_EQ(0, vfmig_reorder_push(&r, 0, i, 0, malloc(ch), ch, why, sizeof(why)));
	/* the needed chunk of each device still gets in */
	ASSERT_EQ(0, vfmig_reorder_push(&r, 0, 0, 0, malloc(ch), ch, why, sizeof(why)));
	ASSERT_EQ(0, vfmig_reorder_push(&r, 1, 0, 0, malloc(ch), ch, why, sizeof(why)));
	EXPECT_EQ(5 * ch, vfmig_reorder_peak(&r));
	EXPECT_GE(3 * ch + 2 * ch, vfmig_reorder_peak(&r));
	vfmig_reorder_abort(&r);
	vfmig_reorder_destroy(&r); /* frees what is queued */
}

TEST(bounds_fake_device_sizes)
{
	struct vfmig_fake_cfg cfg;
	struct vfmig_device *d;
	struct vfmig_error e;

	vfmig_fake_cfg_init(&cfg);
	cfg.mem_size = 4097;
	EXPECT_EQ(NULL, vfmig_fake_new("x", &cfg));
	cfg.mem_size = 2ull << 30;
	EXPECT_EQ(NULL, vfmig_fake_new("x", &cfg));
	cfg.mem_size = 4096;
	cfg.flags = VFMIG_MIG_P2P;
	EXPECT_EQ(NULL, vfmig_fake_new("x", &cfg));
	EXPECT_EQ(-EINVAL, vfmig_fake_new_from_spec("fake:3G", &d, &e));
	EXPECT_EQ(-EINVAL, vfmig_fake_new_from_spec("fake:4M:bogus", &d, &e));
	ASSERT_EQ(0, vfmig_fake_new_from_spec("fake:64K:stop_copy+p2p:seed7", &d, &e));
	EXPECT_EQ(VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P, vfmig_device_flags(d));
	vfmig_device_close(d);
}

TEST(bounds_session_limits)
{
	struct vfmig_device *d = fake("d", 1 << 20, ALL_FLAGS, 1);
	struct vfmig_device *many[VFMIG_MAX_DEVICES + 1];
	struct vfmig_options o;

	vfmig_options_init(&o);
	EXPECT_EQ(0, o.max_queued_bytes == 0); /* finite, non-zero default budget */
	EXPECT_GE(1ull << 30, o.max_queued_bytes);
	for (unsigned i = 0; i <= VFMIG_MAX_DEVICES; i++)
		many[i] = d;
	EXPECT_EQ(NULL, vfmig_session_new(true, many, VFMIG_MAX_DEVICES + 1, &o));
	EXPECT_EQ(NULL, vfmig_session_new(true, many, 0, &o));
	o.channels = VFMIG_MAX_CHANNELS + 1;
	EXPECT_EQ(NULL, vfmig_session_new(true, many, 1, &o));
	vfmig_device_close(d);
}

/* Device state changes: failed SET -> GET, recovery, reset from ERROR. */
TEST(device_failed_set_recovers_to_the_given_state)
{
	struct vfmig_fake_cfg cfg;
	struct vfmig_device *d;
	struct vfmig_error e = { 0 };

	vfmig_fake_cfg_init(&cfg);
	cfg.fail_set_state = VFMIG_STATE_STOP;
	d = vfmig_fake_new("d", &cfg);
	ASSERT_NE(NULL, d);
	/* RUNNING -> STOP_COPY walks RUNNING_P2P, STOP (fails): device left in RUNNING_P2P */
	EXPECT_EQ(-EIO, vfmig_device_set_state(d, VFMIG_STATE_STOP_COPY, VFMIG_STATE_RUNNING, &e));
	EXPECT_NE(NULL, strstr(e.msg, "device now RUNNING_P2P"));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(d));
	EXPECT_EQ(0, vfmig_fake_resets(d));
	vfmig_device_close(d);
}

TEST(device_error_state_is_reset)
{
	struct vfmig_fake_cfg cfg;
	struct vfmig_device *d;
	struct vfmig_error e = { 0 };

	vfmig_fake_cfg_init(&cfg);
	d = vfmig_fake_new("d", &cfg);
	ASSERT_NE(NULL, d);
	ASSERT_EQ(0, vfmig_device_set_state(d, VFMIG_STATE_RESUMING, VFMIG_STATE_ERROR, &e));
	/* An incomplete stream fails RESUMING -> STOP and puts the device in ERROR. */
	EXPECT_EQ(-EINVAL, vfmig_device_set_state(d, VFMIG_STATE_STOP, VFMIG_STATE_ERROR, &e));
	EXPECT_NE(NULL, strstr(e.msg, "reset done"));
	EXPECT_EQ(1, vfmig_fake_resets(d));
	EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state(d));
	vfmig_device_close(d);
}

TEST_HARNESS_MAIN
