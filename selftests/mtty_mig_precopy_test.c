// SPDX-License-Identifier: GPL-2.0-only
/*
 * PRE_COPY as the uAPI defines it, on mtty_mig: VFIO_MIG_GET_PRECOPY_INFO's
 * initial_bytes (header, metadata and the first full image of the device
 * memory, decreasing exactly as it is read, never increasing) and
 * dirty_bytes (zero at PRE_COPY entry, then one page record per page written
 * after it was read), -ENOMSG at the
 * temporary end of precopy data, the permanent end of stream in STOP_COPY,
 * and VFIO_DEVICE_FEATURE_MIG_DATA_SIZE never under what STOP_COPY yields.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/mtty_mig.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"

#define MEM_SIZE (1u << 20)
#define NR_PAGES (MEM_SIZE / MTTY_MIG_PAGE_SIZE)
#define META_SIZE 8192u
#define HDR sizeof(struct mtty_mig_rec_hdr)
#define PAGE_REC (HDR + MTTY_MIG_REC_PAGE_PAYLOAD)
#define META_BYTES (HDR + sizeof(struct mtty_mig_rec_header) + HDR + META_SIZE)
#define INITIAL_BYTES (META_BYTES + (uint64_t)NR_PAGES * PAGE_REC)

FIXTURE(pre)
{
	char uuid[MT_UUID_LEN];
	struct mt_vfio v;
	int fd;
	char *buf;
};

FIXTURE_SETUP(pre)
{
	char val[32];

	mt_vfio_init(&self->v);
	self->fd = -1;
	self->buf = malloc(1 << 20);
	ASSERT_NE(NULL, self->buf);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-1", self->uuid));
	snprintf(val, sizeof(val), "%u", MEM_SIZE);
	ASSERT_EQ(0, mt_dev_attr_write(self->uuid, MTTY_MIG_ATTR_MEM_SIZE, val));
	snprintf(val, sizeof(val), "%u", META_SIZE);
	ASSERT_EQ(0, mt_dev_attr_write(self->uuid, MTTY_MIG_ATTR_METADATA_SIZE, val));
	ASSERT_EQ(0, mt_dev_attr_write(self->uuid, MTTY_MIG_ATTR_DIRTY_RATE, "0"));
	ASSERT_EQ(0, mt_vfio_open(&self->v, self->uuid));
}

FIXTURE_TEARDOWN(pre)
{
	if (self->fd >= 0)
		close(self->fd);
	mt_vfio_close(&self->v);
	EXPECT_EQ(0, mt_mdev_remove(self->uuid));
	free(self->buf);
}

/* read until the temporary end of precopy data; returns bytes read or -errno */
static long drain(int fd, size_t chunk)
{
	size_t total;
	int ret = mt_read_precopy(fd, chunk, NULL, &total);

	return ret ? ret : (long)total;
}

/* mt_wait_until() condition: the engine produced dirty bytes on data_fd @fd */
struct dirty_wait {
	int fd, err;
	uint64_t dirty;
};

static int has_dirty(void *arg)
{
	struct dirty_wait *w = arg;

	w->err = mt_precopy_info(w->fd, NULL, &w->dirty);
	return w->err ? w->err : w->dirty != 0;
}

static int write_page(int device, unsigned long page, uint8_t val)
{
	static uint8_t data[MTTY_MIG_PAGE_SIZE];
	ssize_t n;

	memset(data, val, sizeof(data));
	n = mt_region_write(device, VFIO_PCI_BAR1_REGION_INDEX, page * MTTY_MIG_PAGE_SIZE, data,
			    sizeof(data));
	return n == sizeof(data) ? 0 : (n < 0 ? (int)n : -EIO);
}

TEST_F(pre, initial_bytes_are_the_first_image_and_decrease_as_read)
{
	uint64_t initial, dirty, prev;
	size_t steps[] = { 1, 7, HDR, 100, 4096, META_BYTES, PAGE_REC, 3 * PAGE_REC + 5 };
	size_t i;

	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	/* header, metadata and every page once: the first full image */
	EXPECT_EQ(INITIAL_BYTES, initial);
	/* vfio.h: dirty_bytes "starts at zero" */
	EXPECT_EQ(0, dirty);

	prev = initial;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		ASSERT_EQ((ssize_t)steps[i], read(self->fd, self->buf, steps[i]));
		ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
		EXPECT_EQ(prev - steps[i], initial);
		EXPECT_EQ(0, dirty);
		prev = initial;
	}
	/* read exactly the rest of the initial data: initial reaches zero */
	ASSERT_EQ((ssize_t)prev, read(self->fd, self->buf, prev));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(0, dirty);
	/* and then the temporary end of precopy data */
	EXPECT_EQ(-1, read(self->fd, self->buf, 16));
	EXPECT_EQ(ENOMSG, errno);
}

TEST_F(pre, a_page_written_before_it_is_read_is_initial_not_dirty)
{
	uint64_t initial, dirty, initial0;
	uint8_t *rec;
	size_t first_page = META_BYTES + 2 * PAGE_REC; /* pages 0 and 1 sent */

	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ((ssize_t)first_page, read(self->fd, self->buf, first_page));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial0, &dirty));
	ASSERT_EQ(0, dirty);
	/* page 5 was not read yet: it goes out in the first image, new content */
	ASSERT_EQ(0, write_page(self->v.device, 5, 0x5a));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(initial0, initial);
	EXPECT_EQ(0, dirty);
	/* page 1 was read: it is dirty now, initial does not grow */
	ASSERT_EQ(0, write_page(self->v.device, 1, 0x11));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(initial0, initial);
	EXPECT_EQ(PAGE_REC, dirty);
	/* the first image carries page 5's new content */
	ASSERT_EQ((ssize_t)(4 * PAGE_REC), read(self->fd, self->buf, 4 * PAGE_REC));
	rec = (uint8_t *)self->buf + 3 * PAGE_REC; /* pages 2, 3, 4, 5 */
	EXPECT_EQ(5, rec[HDR]);
	EXPECT_EQ(0x5a, rec[HDR + sizeof(struct mtty_mig_rec_page)]);
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(initial0 - 4 * PAGE_REC, initial);
	EXPECT_EQ(PAGE_REC, dirty);
}

TEST_F(pre, enomsg_when_drained)
{
	uint64_t initial = 1, dirty = 1;
	long n;

	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	n = drain(self->fd, 65536);
	ASSERT_EQ((long)INITIAL_BYTES, n);
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(0, dirty);
	/* the temporary end stays ENOMSG, never 0 */
	EXPECT_EQ(-1, read(self->fd, self->buf, 16));
	EXPECT_EQ(ENOMSG, errno);
	EXPECT_EQ(-1, read(self->fd, self->buf, 16));
	EXPECT_EQ(ENOMSG, errno);
	/* new dirty data ends it */
	ASSERT_EQ(0, write_page(self->v.device, 3, 0xab));
	EXPECT_EQ((ssize_t)PAGE_REC, read(self->fd, self->buf, 1 << 20));
}

TEST_F(pre, dirty_bytes_count_written_pages)
{
	static const unsigned long pages[] = { 0, 1, 17, 100, NR_PAGES - 1 };
	uint64_t initial, dirty;
	size_t i;

	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_LT(0, drain(self->fd, 65536));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	ASSERT_EQ(0, dirty);

	for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		ASSERT_EQ(0, write_page(self->v.device, pages[i], (uint8_t)i));
		ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
		EXPECT_EQ((i + 1) * PAGE_REC, dirty);
		EXPECT_EQ(0, initial);
	}
	/* a page dirtied twice is sent once */
	ASSERT_EQ(0, write_page(self->v.device, pages[1], 0x55));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(5 * PAGE_REC, dirty);
	/* a partial write dirties the page it touches */
	{
		uint32_t w = 0xdeadbeef;

		ASSERT_EQ(4, mt_region_write(self->v.device, VFIO_PCI_BAR1_REGION_INDEX,
					     200 * MTTY_MIG_PAGE_SIZE + 12, &w, 4));
		ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
		EXPECT_EQ(6 * PAGE_REC, dirty);
	}
	/* reading one record takes one page off */
	ASSERT_EQ((ssize_t)PAGE_REC, read(self->fd, self->buf, PAGE_REC));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(5 * PAGE_REC, dirty);
	/* reading memory does not dirty it */
	ASSERT_EQ(64, mt_region_read(self->v.device, VFIO_PCI_BAR1_REGION_INDEX, 0, self->buf, 64));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	EXPECT_EQ(5 * PAGE_REC, dirty);
}

TEST_F(pre, engine_dirties_memory_during_precopy)
{
	struct dirty_wait w = { .fd = -1 };
	uint64_t dirty = 0, writes0 = 0, writes = 0;

	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_LT(0, drain(self->fd, 65536));
	ASSERT_EQ(0, mt_dev_attr_read_u64(self->uuid, MTTY_MIG_ATTR_ENGINE_WRITES, &writes0));
	ASSERT_EQ(0, mt_dev_attr_write(self->uuid, MTTY_MIG_ATTR_DIRTY_RATE, "1000"));
	/* wait for the condition, bounded: the engine must produce dirty bytes */
	w.fd = self->fd;
	mt_wait_until(has_dirty, &w, 20);
	ASSERT_EQ(0, w.err);
	dirty = w.dirty;
	EXPECT_LT(0, dirty);
	EXPECT_EQ(0, dirty % PAGE_REC);
	ASSERT_EQ(0, mt_dev_attr_read_u64(self->uuid, MTTY_MIG_ATTR_ENGINE_WRITES, &writes));
	EXPECT_LT(writes0, writes);
}

TEST_F(pre, info_only_in_precopy_states)
{
	uint64_t initial, dirty;
	int sc_fd = -1;

	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	/* PRE_COPY_P2P is a precopy state too */
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	EXPECT_EQ(0, mt_precopy_info(self->fd, &initial, &dirty));
	/* same session in STOP_COPY: EINVAL */
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_STOP_COPY, &sc_fd));
	EXPECT_EQ(-1, sc_fd);
	EXPECT_EQ(-EINVAL, mt_precopy_info(self->fd, &initial, &dirty));
	/* a STOP_COPY session opened from STOP: EINVAL */
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_STOP_COPY, &sc_fd));
	ASSERT_LE(0, sc_fd);
	EXPECT_EQ(-EINVAL, mt_precopy_info(sc_fd, &initial, &dirty));
	close(sc_fd);
}

TEST_F(pre, info_argument_checks)
{
	struct vfio_precopy_info info;

	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	memset(&info, 0, sizeof(info));
	info.argsz = offsetof(struct vfio_precopy_info, dirty_bytes); /* too small */
	EXPECT_EQ(-1, ioctl(self->fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
	/* flags are not echoed back */
	memset(&info, 0, sizeof(info));
	info.argsz = sizeof(info);
	info.flags = 0xffffffff;
	ASSERT_EQ(0, ioctl(self->fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
	EXPECT_EQ(0, info.flags);
	EXPECT_EQ(INITIAL_BYTES, info.initial_bytes);
	EXPECT_EQ(0, info.dirty_bytes);
	/* bad pointer */
	EXPECT_EQ(-1, ioctl(self->fd, VFIO_MIG_GET_PRECOPY_INFO, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	/* unknown ioctl on the data_fd */
	EXPECT_EQ(-1, ioctl(self->fd, _IO(';', 120), &info));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(pre, stop_copy_ends_with_permanent_eof)
{
	uint64_t size = 0;
	long total = 0;
	ssize_t n;

	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_LT(0, drain(self->fd, 65536));
	ASSERT_EQ(0, write_page(self->v.device, 9, 0x99));
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, mt_mig_data_size(self->v.device, &size));
	while ((n = read(self->fd, self->buf, 4096)) > 0)
		total += n;
	ASSERT_EQ(0, n) TH_LOG("read: %s", strerror(errno));
	/* the dirty page, the serial ports, the device record and END */
	EXPECT_LE((long)PAGE_REC, total);
	EXPECT_LE((uint64_t)total, size);
	/* EOF is permanent, and ENOMSG is never returned in STOP_COPY */
	EXPECT_EQ(0, read(self->fd, self->buf, 4096));
	EXPECT_EQ(0, read(self->fd, self->buf, 1));
}

TEST_F(pre, data_size_is_never_under_stop_copy)
{
	uint64_t running = 0, stopped = 0;
	long total = 0;
	ssize_t n;

	/* queryable in every state: RUNNING, STOP, then STOP_COPY */
	ASSERT_EQ(0, mt_mig_data_size(self->v.device, &running));
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_mig_data_size(self->v.device, &stopped));
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_STOP_COPY, &self->fd));
	ASSERT_LE(0, self->fd);
	while ((n = read(self->fd, self->buf, 1 << 20)) > 0)
		total += n;
	ASSERT_EQ(0, n);
	/* without precopy the whole memory is in the stream */
	EXPECT_LE((long)(NR_PAGES * PAGE_REC), total);
	EXPECT_LE((uint64_t)total, stopped);
	EXPECT_LE((uint64_t)total, running);
}

TEST_F(pre, data_size_shrinks_after_precopy)
{
	uint64_t before = 0, after = 0;
	long total = 0;
	ssize_t n;

	ASSERT_EQ(0, mt_mig_data_size(self->v.device, &before));
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	ASSERT_LT(0, drain(self->fd, 65536));
	ASSERT_EQ(0, mt_mig_data_size(self->v.device, &after));
	/* precopy moved the memory: what stop-copy still owes is much smaller */
	EXPECT_LT(after, before / 2);
	ASSERT_EQ(0, mt_mig_set_state(self->v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	while ((n = read(self->fd, self->buf, 1 << 20)) > 0)
		total += n;
	ASSERT_EQ(0, n);
	EXPECT_LE((uint64_t)total, after);
}

TEST_HARNESS_MAIN
