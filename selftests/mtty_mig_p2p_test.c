// SPDX-License-Identifier: GPL-2.0-only
/*
 * Peer-to-peer quiescence. Two mtty_mig instances linked as peers write into
 * each other's memory (simulated P2P DMA) while RUNNING. The uAPI's rule for
 * stopping several devices: every device goes to a P2P state (no new P2P
 * initiated, incoming still accepted) before any device stops. A peer write
 * that reaches a stopped device is a violation, counted by the device.
 * These tests prove the rule holds with the right ordering and that the
 * detector catches the wrong one.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <linux/mtty_mig.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"

#define DEADLINE_S 30

FIXTURE(p2p)
{
	char a[MT_UUID_LEN], b[MT_UUID_LEN];
	struct mt_vfio va, vb;
};

FIXTURE_SETUP(p2p)
{
	mt_vfio_init(&self->va);
	mt_vfio_init(&self->vb);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", self->a));
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", self->b));
	ASSERT_EQ(0, mt_dev_attr_write(self->a, MTTY_MIG_ATTR_MEM_SIZE, "1048576"));
	ASSERT_EQ(0, mt_dev_attr_write(self->b, MTTY_MIG_ATTR_MEM_SIZE, "1048576"));
	ASSERT_EQ(0, mt_dev_attr_write(self->a, MTTY_MIG_ATTR_PEER, self->b));
	ASSERT_EQ(0, mt_dev_attr_write(self->b, MTTY_MIG_ATTR_PEER, self->a));
	ASSERT_EQ(0, mt_vfio_open(&self->va, self->a));
	ASSERT_EQ(0, mt_vfio_open(&self->vb, self->b));
	ASSERT_EQ(0, mt_dev_attr_write(self->a, MTTY_MIG_ATTR_P2P_RATE, "2000"));
	ASSERT_EQ(0, mt_dev_attr_write(self->b, MTTY_MIG_ATTR_P2P_RATE, "2000"));
	/* both are writing into each other before the test starts */
	ASSERT_EQ(0, mt_wait_attr_above(self->a, MTTY_MIG_ATTR_P2P_RX, 0, DEADLINE_S));
	ASSERT_EQ(0, mt_wait_attr_above(self->b, MTTY_MIG_ATTR_P2P_RX, 0, DEADLINE_S));
}

FIXTURE_TEARDOWN(p2p)
{
	mt_dev_attr_write(self->a, MTTY_MIG_ATTR_P2P_RATE, "0");
	mt_dev_attr_write(self->b, MTTY_MIG_ATTR_P2P_RATE, "0");
	mt_vfio_close(&self->va);
	mt_vfio_close(&self->vb);
	EXPECT_EQ(0, mt_mdev_remove(self->a));
	EXPECT_EQ(0, mt_mdev_remove(self->b));
}

TEST_F(p2p, peer_link_reads_back)
{
	char buf[64];

	ASSERT_EQ(0, mt_dev_attr_read(self->a, MTTY_MIG_ATTR_PEER, buf, sizeof(buf)));
	EXPECT_STREQ(self->b, buf);
	EXPECT_EQ(0, mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	EXPECT_LT(0, mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_TX));
}

TEST_F(p2p, p2p_state_stops_initiating_but_accepts)
{
	uint64_t tx, rx;

	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	/* once the SET returned, A initiates nothing more */
	tx = mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_TX);
	rx = mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_RX);
	/* B keeps writing into A, and A accepts without a violation */
	ASSERT_EQ(0, mt_wait_attr_above(self->a, MTTY_MIG_ATTR_P2P_RX, rx + 10, DEADLINE_S));
	EXPECT_EQ(tx, mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_TX));
	EXPECT_EQ(0, mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	/* back to RUNNING, A initiates again */
	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(0, mt_wait_attr_above(self->a, MTTY_MIG_ATTR_P2P_TX, tx, DEADLINE_S));
}

TEST_F(p2p, two_phase_stop_has_no_violation)
{
	uint64_t tx_a, tx_b;

	/* phase 1: every device quiesced */
	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	tx_a = mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_TX);
	tx_b = mt_dev_attr_u64(self->b, MTTY_MIG_ATTR_P2P_TX);
	/* phase 2: every device stopped */
	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_STOP, NULL));
	EXPECT_EQ(tx_a, mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_TX));
	EXPECT_EQ(tx_b, mt_dev_attr_u64(self->b, MTTY_MIG_ATTR_P2P_TX));
	EXPECT_EQ(0, mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	EXPECT_EQ(0, mt_dev_attr_u64(self->b, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	/* and the two-phase start: both to RUNNING_P2P, then both RUNNING */
	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(0, mt_wait_attr_above(self->a, MTTY_MIG_ATTR_P2P_RX,
				       mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_RX), DEADLINE_S));
	EXPECT_EQ(0, mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	EXPECT_EQ(0, mt_dev_attr_u64(self->b, MTTY_MIG_ATTR_P2P_VIOLATIONS));
}

TEST_F(p2p, two_phase_precopy_to_stop_copy_has_no_violation)
{
	int fa = -1, fb = -1;

	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_PRE_COPY, &fa));
	ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_PRE_COPY, &fb));
	/* PRE_COPY still initiates P2P */
	EXPECT_EQ(0, mt_wait_attr_above(self->b, MTTY_MIG_ATTR_P2P_RX,
				       mt_dev_attr_u64(self->b, MTTY_MIG_ATTR_P2P_RX), DEADLINE_S));
	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	EXPECT_EQ(0, mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	EXPECT_EQ(0, mt_dev_attr_u64(self->b, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	close(fa);
	close(fb);
}

TEST_F(p2p, wrong_order_is_detected)
{
	uint64_t v;

	/* A stops while B still runs and writes into A: a violation */
	ASSERT_EQ(0, mt_mig_set_state(self->va.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_wait_attr_above(self->a, MTTY_MIG_ATTR_P2P_VIOLATIONS, 0, DEADLINE_S));
	ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_STOP, NULL));
	v = mt_dev_attr_u64(self->a, MTTY_MIG_ATTR_P2P_VIOLATIONS);
	EXPECT_LT(0, v);
	EXPECT_NE(~0ull, v);
	/* a violating write is not applied: A's state did not change while stopped */
	{
		char d1[32], d2[32];

		ASSERT_EQ(0, mt_digest(self->a, d1, sizeof(d1)));
		ASSERT_EQ(0, mt_mig_set_state(self->vb.device, VFIO_DEVICE_STATE_RUNNING, NULL));
		ASSERT_EQ(0, mt_wait_attr_above(self->a, MTTY_MIG_ATTR_P2P_VIOLATIONS, v,
						DEADLINE_S));
		ASSERT_EQ(0, mt_digest(self->a, d2, sizeof(d2)));
		EXPECT_STREQ(d1, d2);
	}
}

TEST_F(p2p, peer_removal_unlinks)
{
	char buf[64];

	mt_vfio_close(&self->vb);
	ASSERT_EQ(0, mt_mdev_remove(self->b));
	ASSERT_EQ(0, mt_dev_attr_read(self->a, MTTY_MIG_ATTR_PEER, buf, sizeof(buf)));
	EXPECT_STREQ(MTTY_MIG_PEER_NONE, buf);
	/* A keeps running without a peer; recreate B for the teardown */
	ASSERT_EQ(0, mt_mdev_create_uuid(MT_PARENT "-1", self->b));
}

TEST_HARNESS_MAIN
