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
 *   size;
 * - from an adversarial review (each seen failing first): a REINIT report
 *   survives a failed copy-out, PRECOPY_INFO copies its argument in before
 *   migf->lock, an ended session frees its REINIT buffer, a size written in
 *   PRE_COPY_P2P and again in PRE_COPY is a REINIT; and races of reads,
 *   PRECOPY_INFO, reconfigurations, resets and FSM arcs.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/userfaultfd.h>
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

/* ---- found by an adversarial review: accounting, lifetime, races ---- */

/* VmallocUsed of /proc/meminfo, in KiB (-1 if unreadable) */
static long vmalloc_kib(void)
{
	char line[128];
	FILE *f = fopen("/proc/meminfo", "re");
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmallocUsed: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* REINIT while the HEADER record itself is half read */
TEST_F(reinit, reinit_while_the_header_is_half_read)
{
	struct mt_buf stream = { 0 };
	uint64_t initial, dirty;
	struct mt_recs r;
	uint32_t flags;
	char why[128];

	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ(10, read(self->fd, self->buf, 10));
	ASSERT_EQ(0, mt_buf_put(&stream, self->buf, 10));
	ASSERT_EQ(0, write_page(self->src.v.device, 2, 0x22));
	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, 0, &initial, &dirty, &flags));
	EXPECT_EQ(VFIO_PRECOPY_INFO_REINIT, flags);
	EXPECT_EQ(META_BYTES - 10 + REINIT_BYTES(META2_SIZE) + IMAGE_BYTES, initial);
	EXPECT_EQ(0, dirty);
	ASSERT_EQ((ssize_t)initial, read(self->fd, self->buf, initial));
	ASSERT_EQ(0, mt_buf_put(&stream, self->buf, initial));
	finish(_metadata, self, &stream);
	ASSERT_EQ(0, mt_recs_parse(stream.p, stream.len, &r, why, sizeof(why)));
	EXPECT_EQ(2, mt_recs_find(&r, MTTY_MIG_REC_REINIT, 0));
	mt_buf_free(&stream);
}

/* a REINIT queued and never read before STOP_COPY, and one at the largest size */
TEST_F(reinit, an_unread_largest_reinit_then_stop_copy_loads)
{
	struct mt_buf stream = { 0 };
	size_t mid = META_BYTES + 3 * PAGE_REC + 7;
	uint64_t size;

	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ((ssize_t)mid, read(self->fd, self->buf, mid));
	ASSERT_EQ(0, mt_buf_put(&stream, self->buf, mid));
	ASSERT_EQ(0, set_meta(self->src.uuid, MTTY_MIG_METADATA_MAX));
	ASSERT_EQ(0, mt_mig_data_size(self->src.v.device, &size));
	EXPECT_EQ(PAGE_REC - 7 + REINIT_BYTES(MTTY_MIG_METADATA_MAX) + IMAGE_BYTES +
		  (HDR + sizeof(struct mtty_mig_rec_serial)) + 2 * (HDR + 16), size);
	ASSERT_EQ(0, write_page(self->src.v.device, 1, 0x11));
	finish(_metadata, self, &stream);
	mt_buf_free(&stream);
}

/*
 * The opt-in buffer of a session is released when the FSM ends it (the
 * initial HEADER+METADATA buffer is, in mtty_mig_file_disable()); the REINIT
 * buffer should be too, not kept until the user closes the data_fd.
 */
/*
 * A session an FSM arc ended frees its buffers, the REINIT one too, even
 * while the user keeps its data_fd open: with the largest METADATA that is
 * 32 MiB of memcg-charged vmalloc (seen failing: the REINIT buffer stayed
 * until the data_fd was closed).
 */
TEST_F(reinit, an_ended_session_frees_its_reinit_buffer)
{
	long v0, v1, v2;

	ASSERT_EQ(0, set_meta(self->src.uuid, MTTY_MIG_METADATA_MAX));
	v0 = vmalloc_kib();
	ASSERT_LE(0, v0);
	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ(0, set_meta(self->src.uuid, MTTY_MIG_METADATA_MAX - 8));
	v1 = vmalloc_kib();
	TH_LOG("VmallocUsed %ld kB, in PRE_COPY with a REINIT queued %ld kB", v0, v1);
	/* the initial data and the REINIT: two buffers of 16 MiB each */
	ASSERT_LE(v0 + 30 * 1024, v1);
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	v2 = vmalloc_kib();
	TH_LOG("session ended, data_fd still open: %ld kB", v2);
	EXPECT_GT(v0 + 4 * 1024, v2);
}

/*
 * A metadata_size written in PRE_COPY_P2P goes to the next session; written
 * again (the same value) back in PRE_COPY it differs from what the session
 * sends, so it is a REINIT (seen failing: compared with the attribute, it
 * was "no change" and the stream kept the old METADATA).
 */
TEST_F(reinit, a_size_written_in_p2p_then_in_pre_copy_is_a_reinit)
{
	struct mt_buf stream = { 0 };
	struct mt_recs r;
	char why[128];
	int i;

	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, NULL));
	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	EXPECT_EQ(META2_SIZE, mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_METADATA_SIZE));
	EXPECT_EQ(1, mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_REINITS));
	finish(_metadata, self, &stream);
	ASSERT_EQ(0, mt_recs_parse(stream.p, stream.len, &r, why, sizeof(why)));
	i = mt_recs_find(&r, MTTY_MIG_REC_METADATA, 0);
	TH_LOG("session METADATA payload %zu, sysfs metadata_size %u, REINITs in stream: %d",
	       r.size[i] - HDR, META2_SIZE, mt_recs_find(&r, MTTY_MIG_REC_REINIT, 0) >= 0);
	mt_buf_free(&stream);
}

/* ---- races ---- */

struct race {
	const char *uuid;
	int device;
	_Atomic int fd;
	atomic_bool stop;
	atomic_bool stop_writer;
	struct mt_buf stream;		/* reader only */
	atomic_long reads, enomsg, bad_read, bad_info, bad_meta, mono, infos, busy, metas;
	int bad_read_err, bad_info_err, bad_meta_err;
	uint64_t mono_prev, mono_now;
	bool keep;			/* reader keeps the stream */
	int stop_on_zero;
};

static unsigned int rnd(unsigned int *seed, unsigned int n)
{
	return rand_r(seed) % n;
}

static void *race_reader(void *arg)
{
	struct race *rc = arg;
	unsigned int seed = 1;
	static char buf[1 << 17];

	while (!atomic_load(&rc->stop)) {
		int fd = atomic_load(&rc->fd);
		size_t len = 1 + rnd(&seed, rnd(&seed, 2) ? 64 : sizeof(buf));
		ssize_t n;

		if (fd < 0) {
			usleep(100);
			continue;
		}
		n = read(fd, buf, len);
		if (n > 0) {
			atomic_fetch_add(&rc->reads, 1);
			if (rc->keep && mt_buf_put(&rc->stream, buf, n))
				atomic_fetch_add(&rc->bad_read, 1);
		} else if (n == 0) {
			if (rc->stop_on_zero)
				break;
			usleep(100);
		} else if (errno == ENOMSG) {
			atomic_fetch_add(&rc->enomsg, 1);
			usleep(50 + rnd(&seed, 300));
		} else if (errno == ENODEV && !rc->keep) {
			usleep(100);
		} else {
			rc->bad_read_err = errno;
			atomic_fetch_add(&rc->bad_read, 1);
			usleep(1000);
		}
	}
	return NULL;
}

static void *race_info(void *arg)
{
	struct race *rc = arg;
	uint64_t prev = UINT64_MAX;
	int prevfd = -1;

	while (!atomic_load(&rc->stop)) {
		struct vfio_precopy_info info = { .argsz = sizeof(info) };
		int fd = atomic_load(&rc->fd);

		if (fd < 0) {
			usleep(100);
			continue;
		}
		if (fd != prevfd) {
			prev = UINT64_MAX;
			prevfd = fd;
		}
		if (ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info)) {
			if (rc->keep || (errno != ENODEV && errno != EINVAL && errno != EBADF)) {
				rc->bad_info_err = errno;
				atomic_fetch_add(&rc->bad_info, 1);
			}
			usleep(200);
			continue;
		}
		atomic_fetch_add(&rc->infos, 1);
		/* without REINIT, initial_bytes never grows */
		if (!(info.flags & VFIO_PRECOPY_INFO_REINIT) && prev != UINT64_MAX &&
		    info.initial_bytes > prev) {
			rc->mono_prev = prev;
			rc->mono_now = info.initial_bytes;
			atomic_fetch_add(&rc->mono, 1);
		}
		if (info.flags & ~VFIO_PRECOPY_INFO_REINIT)
			atomic_fetch_add(&rc->bad_info, 1);
		prev = info.initial_bytes;
		usleep(20);
	}
	return NULL;
}

static void *race_meta(void *arg)
{
	static const unsigned int sizes[] = { 32, 4096, 20000, 70000, 8192, 1000 };
	struct race *rc = arg;
	unsigned int seed = 7, i = 0;

	while (!atomic_load(&rc->stop_writer)) {
		int ret = set_meta(rc->uuid, sizes[i++ % 6]);

		if (ret == -EBUSY)
			atomic_fetch_add(&rc->busy, 1);
		else if (ret) {
			rc->bad_meta_err = -ret;
			atomic_fetch_add(&rc->bad_meta, 1);
		} else
			atomic_fetch_add(&rc->metas, 1);
		usleep(rnd(&seed, 3000));
	}
	return NULL;
}

/*
 * Reader, PRECOPY_INFO and metadata_size writes at once with the engine
 * dirtying pages: the stream must still load to the source's digest, and
 * initial_bytes may only grow in a report that carries REINIT.
 */
TEST_F(reinit, race_read_info_and_reconfigure)
{
	pthread_t tr, ti, tm;
	struct race *rc = calloc(1, sizeof(*rc));
	char dsrc[64], ddst[64];

	ASSERT_NE(NULL, rc);
	rc->uuid = self->src.uuid;
	rc->keep = true;
	atomic_store(&rc->fd, -1);
	ASSERT_EQ(0, mt_dev_attr_write(self->src.uuid, MTTY_MIG_ATTR_DIRTY_RATE, "3000"));
	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	atomic_store(&rc->fd, self->fd);
	ASSERT_EQ(0, pthread_create(&tr, NULL, race_reader, rc));
	ASSERT_EQ(0, pthread_create(&ti, NULL, race_info, rc));
	ASSERT_EQ(0, pthread_create(&tm, NULL, race_meta, rc));
	sleep(3);
	atomic_store(&rc->stop_writer, true);
	pthread_join(tm, NULL);
	atomic_store(&rc->stop, true);
	pthread_join(tr, NULL);
	pthread_join(ti, NULL);
	TH_LOG("reads %ld enomsg %ld infos %ld metas %ld busy %ld reinits %llu", (long)rc->reads,
	       (long)rc->enomsg, (long)rc->infos, (long)rc->metas, (long)rc->busy,
	       (unsigned long long)mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_REINITS));
	EXPECT_EQ(0, rc->bad_read) TH_LOG("read errno %d", rc->bad_read_err);
	EXPECT_EQ(0, rc->bad_info) TH_LOG("info errno %d", rc->bad_info_err);
	EXPECT_EQ(0, rc->bad_meta) TH_LOG("metadata_size errno %d", rc->bad_meta_err);
	EXPECT_EQ(0, rc->mono) TH_LOG("initial_bytes %llu -> %llu without REINIT",
				     (unsigned long long)rc->mono_prev,
				     (unsigned long long)rc->mono_now);

	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, mt_read_to_end(self->fd, 64 * 1024, &rc->stream, NULL));
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, mt_digest(self->src.uuid, dsrc, sizeof(dsrc)));
	ASSERT_EQ(0, mt_resume(&self->dst, rc->stream.p, rc->stream.len));
	ASSERT_EQ(0, mt_digest(self->dst.uuid, ddst, sizeof(ddst)));
	EXPECT_STREQ(dsrc, ddst);
	mt_buf_free(&rc->stream);
	free(rc);
}

/*
 * metadata_size writes and data_fd readers/PRECOPY_INFO against sessions
 * ended by VFIO_DEVICE_RESET, PRE_COPY -> RUNNING and STOP_COPY (for
 * lockdep/KASAN on the debug kernel).
 */
TEST_F(reinit, race_reset_and_arcs_against_reconfigure)
{
	struct race *rc = calloc(1, sizeof(*rc));
	pthread_t tr, ti, tm;
	unsigned int seed = 3;
	int it, fd;

	ASSERT_NE(NULL, rc);
	rc->uuid = self->src.uuid;
	atomic_store(&rc->fd, -1);
	ASSERT_EQ(0, mt_dev_attr_write(self->src.uuid, MTTY_MIG_ATTR_DIRTY_RATE, "3000"));
	ASSERT_EQ(0, pthread_create(&tm, NULL, race_meta, rc));
	for (it = 0; it < 60; it++) {
		fd = -1;
		ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
		ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &fd));
		atomic_store(&rc->stop, false);
		atomic_store(&rc->fd, fd);
		ASSERT_EQ(0, pthread_create(&tr, NULL, race_reader, rc));
		ASSERT_EQ(0, pthread_create(&ti, NULL, race_info, rc));
		usleep(rnd(&seed, 20000));
		switch (it % 4) {
		case 0:
			ASSERT_EQ(0, mt_dev_reset(self->src.v.device));
			break;
		case 1:
			ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
			break;
		case 2:
			ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
			usleep(rnd(&seed, 5000));
			ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
			break;
		case 3:
			/* the device closed under the session */
			atomic_store(&rc->stop, true);
			pthread_join(tr, NULL);
			pthread_join(ti, NULL);
			atomic_store(&rc->fd, -1);
			close(fd);
			mt_vfio_close(&self->src.v);
			ASSERT_EQ(0, mt_vfio_open(&self->src.v, self->src.uuid));
			continue;
		}
		usleep(rnd(&seed, 3000));
		atomic_store(&rc->stop, true);
		pthread_join(tr, NULL);
		pthread_join(ti, NULL);
		atomic_store(&rc->fd, -1);
		close(fd);
	}
	atomic_store(&rc->stop_writer, true);
	pthread_join(tm, NULL);
	TH_LOG("reads %ld enomsg %ld infos %ld metas %ld busy %ld reinits %llu", (long)rc->reads,
	       (long)rc->enomsg, (long)rc->infos, (long)rc->metas, (long)rc->busy,
	       (unsigned long long)mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_REINITS));
	EXPECT_EQ(0, rc->bad_read) TH_LOG("read errno %d", rc->bad_read_err);
	EXPECT_EQ(0, rc->bad_info) TH_LOG("info errno %d", rc->bad_info_err);
	EXPECT_EQ(0, rc->bad_meta) TH_LOG("metadata_size errno %d", rc->bad_meta_err);
	free(rc);
}

/*
 * The one-shot REINIT report is consumed only by an answer that reached the
 * user: after a copy-out that failed (-EFAULT) the next PRECOPY_INFO still
 * reports it (seen failing: it was cleared before the copy).
 */
TEST_F(reinit, a_failed_copy_out_keeps_the_reinit_report)
{
	struct vfio_precopy_info *info;
	uint64_t initial, dirty;
	uint32_t flags;

	info = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, info);
	info->argsz = sizeof(*info);
	ASSERT_EQ(0, mprotect(info, 4096, PROT_READ));
	ASSERT_EQ(0, mt_precopy_v2(self->src.v.device, VFIO_DEVICE_FEATURE_SET, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ((ssize_t)META_BYTES, read(self->fd, self->buf, META_BYTES));
	ASSERT_EQ(0, set_meta(self->src.uuid, META2_SIZE));
	EXPECT_EQ(-1, ioctl(self->fd, VFIO_MIG_GET_PRECOPY_INFO, info));
	EXPECT_EQ(EFAULT, errno);
	ASSERT_EQ(0, mt_precopy_info_flags(self->fd, 0, &initial, &dirty, &flags));
	TH_LOG("after the -EFAULT: flags %u initial %llu (REINIT_BYTES + image = %llu)", flags,
	       (unsigned long long)initial,
	       (unsigned long long)(REINIT_BYTES(META2_SIZE) + IMAGE_BYTES));
	EXPECT_EQ(VFIO_PRECOPY_INFO_REINIT, flags);
	munmap(info, 4096);
}

struct uffd_call {
	int fd;
	void *arg;
	int ret, err;
	atomic_bool done;
};

static void *uffd_precopy(void *a)
{
	struct uffd_call *c = a;

	c->ret = ioctl(c->fd, VFIO_MIG_GET_PRECOPY_INFO, c->arg);
	c->err = errno;
	atomic_store(&c->done, true);
	return NULL;
}

static void *uffd_reset(void *a)
{
	struct uffd_call *c = a;

	c->ret = mt_dev_reset(c->fd);
	atomic_store(&c->done, true);
	return NULL;
}

/* mt_wait_until() condition: the call of @arg returned */
static int uffd_done(void *arg)
{
	return atomic_load(&((struct uffd_call *)arg)->done);
}

/*
 * A PRECOPY_INFO whose argument faults on userfaultfd memory (a user copy
 * that takes as long as the user likes) must not hold migf->lock, or
 * VFIO_DEVICE_RESET (state_lock, then migf->lock in
 * mtty_mig_file_disable()) waits for it, and with it every FSM step and
 * sysfs write (seen failing: the reset was still waiting after 10 s).
 */
TEST_F(reinit, precopy_info_copies_its_argument_before_the_lock)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { 0 };
	struct uffdio_zeropage zp = { 0 };
	struct uffd_call info = { 0 }, rst = { 0 };
	struct pollfd pfd;
	struct uffd_msg msg;
	pthread_t ti, tr;
	void *page;
	int uffd;

	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	ASSERT_LE(0, uffd) TH_LOG("userfaultfd: %s (CONFIG_USERFAULTFD)", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, page);
	reg.range.start = (unsigned long)page;
	reg.range.len = 4096;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));

	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	info.fd = self->fd;
	info.arg = page;
	ASSERT_EQ(0, pthread_create(&ti, NULL, uffd_precopy, &info));
	/* the ioctl is inside its copy-in once the fault is reported */
	pfd.fd = uffd;
	pfd.events = POLLIN;
	ASSERT_EQ(1, poll(&pfd, 1, 30000));
	ASSERT_EQ((ssize_t)sizeof(msg), read(uffd, &msg, sizeof(msg)));
	ASSERT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);
	rst.fd = self->src.v.device;
	ASSERT_EQ(0, pthread_create(&tr, NULL, uffd_reset, &rst));
	EXPECT_EQ(0, mt_wait_until(uffd_done, &rst, 10))
	TH_LOG("VFIO_DEVICE_RESET waited for a PRECOPY_INFO stuck in its copy-in");
	EXPECT_FALSE(atomic_load(&info.done));
	/* release the fault: the ioctl then finds its session reset */
	zp.range.start = (unsigned long)page;
	zp.range.len = 4096;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_ZEROPAGE, &zp));
	pthread_join(ti, NULL);
	pthread_join(tr, NULL);
	EXPECT_EQ(0, rst.ret);
	EXPECT_EQ(-1, info.ret);
	TH_LOG("PRECOPY_INFO after the reset: errno %d", info.err);
	munmap(page, 4096);
	close(uffd);
}

TEST_HARNESS_MAIN
