// SPDX-License-Identifier: GPL-2.0-only
/*
 * VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 and VFIO_PRECOPY_INFO_REINIT
 * (Linux 7.1 uAPI) on mtty_mig, on every kernel: through the core's
 * vfio_ioctl_device_feature_migration_precopy_info_v2() on 7.1 and later,
 * through the driver's own device_feature op before.
 *
 * - the opt-in: a SET (vfio_check_feature() with no minimum size, as the
 *   core); GET and neither GET nor SET refused; a PROBE does not opt in; it
 *   ends when the device is closed;
 * - without the opt-in, flags is never echoed back and a reconfiguration
 *   in PRE_COPY changes nothing in the session (stream version 1.0);
 * - after it, a new metadata_size in PRE_COPY is reported once as REINIT
 *   with the new initial_bytes (the rest of the record being read, REINIT,
 *   the new METADATA and a whole new image) and dirty_bytes 0; the stream
 *   carries it and a destination loads it to the same digest;
 * - REINIT only in PRE_COPY, -EBUSY while one is half read, a queued one
 *   replaced, and a REINIT record refused in a 1.0 stream or with a bad
 *   size.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/mtty_mig.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"
#include "lib/stream.h"

#define MEM_SIZE (256u << 10)
#define NR_PAGES (MEM_SIZE / MTTY_MIG_PAGE_SIZE)
#define META_SIZE 8192u
#define META2_SIZE 20000u
#define HDR sizeof(struct mtty_mig_rec_hdr)
#define PAGE_REC (HDR + MTTY_MIG_REC_PAGE_PAYLOAD)
#define META_BYTES (HDR + sizeof(struct mtty_mig_rec_header) + HDR + META_SIZE)
#define REINIT_BYTES(meta) (HDR + sizeof(struct mtty_mig_rec_reinit) + HDR + (meta))
#define IMAGE_BYTES ((uint64_t)NR_PAGES * PAGE_REC)
#define HEAD (HDR + sizeof(struct mtty_mig_rec_header))

FIXTURE(reinit)
{
	struct mt_inst src, dst;
	int fd;
	char *buf;
};

FIXTURE_SETUP(reinit)
{
	char meta[32];
	const char *attrs[] = { MTTY_MIG_ATTR_METADATA_SIZE, meta, MTTY_MIG_ATTR_DIRTY_RATE, "0",
				NULL };

	snprintf(meta, sizeof(meta), "%u", META_SIZE);
	mt_inst_init(&self->src);
	mt_inst_init(&self->dst);
	self->fd = -1;
	self->buf = malloc(4 << 20);
	ASSERT_NE(NULL, self->buf);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_up(&self->src, MT_PARENT "-1", MEM_SIZE, attrs));
	ASSERT_EQ(0, mt_inst_up(&self->dst, MT_PARENT "-1", MEM_SIZE, attrs));
}

FIXTURE_TEARDOWN(reinit)
{
	if (self->fd >= 0)
		close(self->fd);
	EXPECT_EQ(0, mt_inst_down(&self->src));
	EXPECT_EQ(0, mt_inst_down(&self->dst));
	free(self->buf);
}

static int set_meta(const char *uuid, unsigned int size)
{
	char val[32];

	snprintf(val, sizeof(val), "%u", size);
	return mt_dev_attr_write(uuid, MTTY_MIG_ATTR_METADATA_SIZE, val);
}

/* the version_minor of the stream's HEADER, from its first bytes */
static int header_minor(const char *buf)
{
	const struct mtty_mig_rec_header *h = (const void *)(buf + HDR);

	return h->version_minor;
}

static int write_page(int device, unsigned long page, uint8_t val)
{
	uint8_t data[MTTY_MIG_PAGE_SIZE];
	ssize_t n;

	memset(data, val, sizeof(data));
	n = mt_region_write(device, VFIO_PCI_BAR1_REGION_INDEX, page * MTTY_MIG_PAGE_SIZE, data,
			    sizeof(data));
	return n == sizeof(data) ? 0 : (n < 0 ? (int)n : -EIO);
}

/* Finish the migration: STOP_COPY to the end, resume @dst, compare digests. */
static void finish(struct __test_metadata *_metadata, FIXTURE_DATA(reinit) * self,
		   struct mt_buf *stream)
{
	char dsrc[64], ddst[64], why[128];
	struct mt_recs r;

	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, mt_read_to_end(self->fd, 64 * 1024, stream, NULL));
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, mt_digest(self->src.uuid, dsrc, sizeof(dsrc)));
	ASSERT_EQ(0, mt_recs_parse(stream->p, stream->len, &r, why, sizeof(why)))
	TH_LOG("%s", why);
	ASSERT_EQ(0, mt_resume(&self->dst, stream->p, stream->len));
	ASSERT_EQ(0, mt_digest(self->dst.uuid, ddst, sizeof(ddst)));
	EXPECT_STREQ(dsrc, ddst);
}

TEST_F(reinit, optin_is_a_set_with_no_data_and_ends_with_the_open)
{
	uint32_t flags;

	EXPECT_EQ(0, mt_precopy_v2(self->src.v.device,
				   VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET, 0));
	EXPECT_EQ(-EINVAL, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_GET, 0));
	EXPECT_EQ(-EINVAL, mt_precopy_v2(self->src.v.device, 0, 0));
	/* a PROBE does not opt in: the session is a 1.0 stream */
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ((ssize_t)HEAD, read(self->fd, self->buf, HEAD));
	EXPECT_EQ(0, header_minor(self->buf));
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));

	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ((ssize_t)HEAD, read(self->fd, self->buf, HEAD));
	EXPECT_EQ(1, header_minor(self->buf));
	/* opted in, nothing happened: flags is an output, and it is 0 */
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, ~0u, NULL, NULL, &flags));
	EXPECT_EQ(0, flags);
	close(self->fd);
	self->fd = -1;

	/* closing the device ends the opt-in */
	mt_vfio_close(&self->src.v);
	ASSERT_EQ(0, mt_vfio_open(&self->src.v, self->src.uuid));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ((ssize_t)HEAD, read(self->fd, self->buf, HEAD));
	EXPECT_EQ(0, header_minor(self->buf));
}

TEST_F(reinit, without_the_optin_flags_are_zero_and_a_reconfiguration_waits)
{
	uint64_t initial, dirty, before;
	uint32_t flags;
	struct mt_buf stream = { 0 };
	struct mt_recs r;
	char why[128];

	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	/* flags in is never echoed back */
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, ~0u, &before, NULL, &flags));
	EXPECT_EQ(0, flags);
	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, VFIO_PRECOPY_INFO_REINIT, &initial, &dirty,
					   &flags));
	EXPECT_EQ(0, flags);
	EXPECT_EQ(before, initial);
	EXPECT_EQ(0, dirty);
	EXPECT_EQ(0, mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_REINITS));
	finish(_metadata, self, &stream);
	ASSERT_EQ(0, mt_recs_parse(stream.p, stream.len, &r, why, sizeof(why)));
	EXPECT_EQ(-1, mt_recs_find(&r, MTTY_MIG_REC_REINIT, 0));
	EXPECT_EQ(0, header_minor((const char *)stream.p));
	mt_buf_free(&stream);
}

TEST_F(reinit, reinit_mid_precopy_is_new_initial_data_loaded_to_the_same_digest)
{
	uint64_t initial, dirty;
	size_t mid = META_BYTES + 5 * PAGE_REC + 100;
	struct mt_buf stream = { 0 };
	const struct mtty_mig_rec_reinit *ri;
	struct mt_recs r;
	uint32_t flags;
	char why[128];
	int i;

	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	/* into the 6th page record, then two pages already sent are written */
	ASSERT_EQ((ssize_t)mid, read(self->fd, self->buf, mid));
	ASSERT_EQ(0, mt_buf_put(&stream, self->buf, mid));
	ASSERT_EQ(0, write_page(self->src.v.device, 1, 0xa1));
	ASSERT_EQ(0, write_page(self->src.v.device, 3, 0xa3));
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, 0, &initial, &dirty, &flags));
	EXPECT_EQ(0, flags);
	EXPECT_EQ(2 * PAGE_REC, dirty);

	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, 0, &initial, &dirty, &flags));
	EXPECT_EQ(VFIO_PRECOPY_INFO_REINIT, flags);
	/* the rest of the record being read, REINIT + METADATA, a new image */
	EXPECT_EQ(PAGE_REC - 100 + REINIT_BYTES(META2_SIZE) + IMAGE_BYTES, initial);
	EXPECT_EQ(0, dirty);
	EXPECT_EQ(1, mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_REINITS));
	/* reported once */
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, 0, NULL, NULL, &flags));
	EXPECT_EQ(0, flags);

	/* the new initial data, then a page written after it: dirty again */
	ASSERT_EQ((ssize_t)initial, read(self->fd, self->buf, initial));
	ASSERT_EQ(0, mt_buf_put(&stream, self->buf, initial));
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, 0, &initial, &dirty, &flags));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(0, dirty);
	ASSERT_EQ(0, write_page(self->src.v.device, 7, 0xa7));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(PAGE_REC, dirty);

	finish(_metadata, self, &stream);
	ASSERT_EQ(0, mt_recs_parse(stream.p, stream.len, &r, why, sizeof(why)));
	EXPECT_EQ(1, header_minor((const char *)stream.p));
	/* REINIT right after the 6th page record, a METADATA of the new size after it */
	i = mt_recs_find(&r, MTTY_MIG_REC_REINIT, 0);
	ASSERT_EQ(2 + 6, i);
	EXPECT_EQ(-1, mt_recs_find(&r, MTTY_MIG_REC_REINIT, 1));
	ri = (const void *)(stream.p + r.off[i] + HDR);
	EXPECT_EQ(META2_SIZE, ri->metadata_size);
	EXPECT_EQ(MTTY_MIG_REC_METADATA, r.type[i + 1]);
	EXPECT_EQ(HDR + META2_SIZE, r.size[i + 1]);
	mt_buf_free(&stream);
}

TEST_F(reinit, reinit_only_in_pre_copy)
{
	uint32_t flags;
	uint64_t dirty;

	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	/* quiesced: after the user's switchover decision, nothing to report */
	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, 0, NULL, &dirty, &flags));
	EXPECT_EQ(0, flags);
	EXPECT_EQ(0, mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_REINITS));
	/* nor in STOP (no session) */
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, set_meta(self->src.uuid, META_SIZE));
	EXPECT_EQ(0, mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_REINITS));
}

TEST_F(reinit, a_half_read_reinit_is_busy_and_a_queued_one_is_replaced)
{
	struct mt_buf stream = { 0 };
	uint64_t initial, dirty;
	struct mt_recs r;
	uint32_t flags;
	char why[128];
	int i;

	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ((ssize_t)META_BYTES, read(self->fd, self->buf, META_BYTES));
	ASSERT_EQ(0, mt_buf_put(&stream, self->buf, META_BYTES));
	/* two before any is read: the second replaces the first */
	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	ASSERT_EQ(0, set_meta(self->src.uuid, 4096));
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, 0, &initial, &dirty, &flags));
	EXPECT_EQ(VFIO_PRECOPY_INFO_REINIT, flags);
	EXPECT_EQ(REINIT_BYTES(4096) + IMAGE_BYTES, initial);
	/* half way through the REINIT's records: busy, and nothing changes */
	ASSERT_EQ((ssize_t)10, read(self->fd, self->buf, 10));
	ASSERT_EQ(0, mt_buf_put(&stream, self->buf, 10));
	EXPECT_EQ(-EBUSY, set_meta(self->src.uuid, META2_SIZE));
	EXPECT_EQ(4096, mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_METADATA_SIZE));
	/* once read, a new one is accepted */
	ASSERT_EQ((ssize_t)REINIT_BYTES(4096) - 10,
		  read(self->fd, self->buf, REINIT_BYTES(4096) - 10));
	ASSERT_EQ(0, mt_buf_put(&stream, self->buf, REINIT_BYTES(4096) - 10));
	EXPECT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	EXPECT_EQ(3, mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_REINITS));

	finish(_metadata, self, &stream);
	ASSERT_EQ(0, mt_recs_parse(stream.p, stream.len, &r, why, sizeof(why)));
	EXPECT_EQ(2, mt_recs_find(&r, MTTY_MIG_REC_REINIT, 0));
	i = mt_recs_find(&r, MTTY_MIG_REC_REINIT, 1);
	EXPECT_EQ(4, i);
	EXPECT_EQ(-1, mt_recs_find(&r, MTTY_MIG_REC_REINIT, 2));
	mt_buf_free(&stream);
}

/* A stream with a REINIT, then broken in @how; resuming it must fail. */
static void refuse(struct __test_metadata *_metadata, FIXTURE_DATA(reinit) * self, int how)
{
	struct mt_buf stream = { 0 };
	struct mtty_mig_rec_reinit *ri;
	struct mt_recs r;
	char why[128];
	int i;

	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, mt_read_to_end(self->fd, 64 * 1024, &stream, NULL));
	ASSERT_EQ(0, mt_recs_parse(stream.p, stream.len, &r, why, sizeof(why)));
	i = mt_recs_find(&r, MTTY_MIG_REC_REINIT, 0);
	ASSERT_LE(0, i);
	ri = (void *)(stream.p + r.off[i] + HDR);
	if (how == 0)
		((struct mtty_mig_rec_header *)(stream.p + HDR))->version_minor = 0;
	else if (how == 1)
		ri->metadata_size = MTTY_MIG_METADATA_MAX + 1;
	else
		ri->reserved = 1;
	mt_stream_seal(stream.p, &r, false);
	EXPECT_EQ(-EINVAL, mt_resume(&self->dst, stream.p, stream.len));
	mt_buf_free(&stream);
}

TEST_F(reinit, a_reinit_record_in_a_1_0_stream_is_refused)
{
	refuse(_metadata, self, 0);
}

TEST_F(reinit, a_reinit_record_with_a_bad_size_is_refused)
{
	refuse(_metadata, self, 1);
}

TEST_F(reinit, a_reinit_record_with_reserved_bits_is_refused)
{
	refuse(_metadata, self, 2);
}

TEST_HARNESS_MAIN
