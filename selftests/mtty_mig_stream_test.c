// SPDX-License-Identifier: GPL-2.0-only
/*
 * The device migration stream of mtty_mig, driven by hand with plain
 * read()/write() loops on the data_fd (no engine):
 *
 * - rt.*: a save -> resume round trip between two instances of the same type
 *   and mem_size, with and without PRE_COPY (several precopy iterations while
 *   the internal engine keeps dirtying pages), 1, 2 and 4 ports, and the
 *   destination written with random segmentation (single bytes first).  The
 *   source digest at stop equals the destination digest after RESUMING ->
 *   STOP, and the destination then runs.
 * - bad.*: a good stream taken from a source, then broken in one way each
 *   (corrupted, truncated, reordered, duplicated, incompatible, oversized,
 *   unknown, trailing garbage, empty).  Each is refused with the documented
 *   errno, RESUMING -> STOP fails, the device is left in the documented
 *   state, a VFIO_DEVICE_RESET brings it back to RUNNING and the good stream
 *   then resumes on the same instance.
 *
 * The stream format is the one of uapi/linux/mtty_mig.h; the records are
 * checked against it here too (framing, seq, xxh32 checksums, END counts;
 * lib/stream.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"
#include "lib/stream.h"
#include <linux/mtty_mig.h>

#define KIB 1024ULL
#define MIB (1024 * KIB)

/* 16550 register offsets within a port's 8-byte window in BAR0 */
#define UART_RX 0
#define UART_LCR 3
#define UART_SCR 7

/*
 * What a refused stream gets (Documentation/stream-format.rst): the write()
 * that completes a bad record fails with -EINVAL, a stream that ends early
 * fails RESUMING -> STOP with -EINVAL, and the device is then in ERROR until
 * VFIO_DEVICE_RESET.
 */
#define BAD_STREAM_ERRNO EINVAL
#define BAD_STREAM_STATE VFIO_DEVICE_STATE_ERROR

/* ------------------------------------------------------------------------ */
/* Records (framing, checksums: lib/stream.c)                                */
/* ------------------------------------------------------------------------ */

#define HDR_SIZE MT_REC_HDR_SIZE

static struct mtty_mig_rec_hdr *rec_hdr(uint8_t *rec)
{
	return (struct mtty_mig_rec_hdr *)rec;
}

/* ------------------------------------------------------------------------ */
/* Data transfer                                                             */
/* ------------------------------------------------------------------------ */

/*
 * Segmentation of the writes into a resuming data_fd: 0 = whole chunks;
 * otherwise the first 'ones' bytes of the stream go one byte per write(),
 * then writes of 1..max bytes from a fixed-seed generator.
 */
struct seg {
	size_t max;
	size_t ones;
	size_t done;
	uint64_t rng;
};

static size_t seg_next(struct seg *s, size_t left)
{
	size_t n;

	if (!s || !s->max)
		return left;
	if (s->done < s->ones) {
		n = 1;
	} else {
		s->rng ^= s->rng << 13;
		s->rng ^= s->rng >> 7;
		s->rng ^= s->rng << 17;
		n = 1 + (size_t)(s->rng % s->max);
	}
	return n < left ? n : left;
}

/*
 * Write @len bytes to @fd in segments; 0, or the first write error as a
 * negative errno with *@written the bytes accepted before it.
 */
static int write_stream(int fd, const uint8_t *p, size_t len, struct seg *s, size_t *written)
{
	size_t off = 0;
	int ret = 0;

	while (off < len) {
		size_t n = seg_next(s, len - off);
		ssize_t w = write(fd, p + off, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (w == 0) {
			ret = -EIO;
			break;
		}
		off += (size_t)w;
		if (s)
			s->done += (size_t)w;
	}
	if (written)
		*written = off;
	return ret;
}

/*
 * Read a saving data_fd until 0 (STOP_COPY, @enomsg false) or -ENOMSG
 * (PRE_COPY, @enomsg true), appending to @out and writing each chunk to
 * @dest_fd (if >= 0).  Returns 0 or a negative errno.
 */
static int pump(int src_fd, bool enomsg, struct mt_buf *out, int dest_fd, struct seg *s,
		size_t *moved)
{
	static uint8_t chunk[64 * KIB];
	size_t total = 0;
	int ret;

	for (;;) {
		ssize_t n = read(src_fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (enomsg && errno == ENOMSG)
				break;
			return -errno;
		}
		if (n == 0) {
			if (enomsg)
				return -EPIPE; /* PRE_COPY must not end the stream */
			break;
		}
		total += (size_t)n;
		if (out) {
			ret = mt_buf_put(out, chunk, (size_t)n);
			if (ret)
				return ret;
		}
		if (dest_fd >= 0) {
			ret = write_stream(dest_fd, chunk, (size_t)n, s, NULL);
			if (ret)
				return ret;
		}
	}
	if (moved)
		*moved = total;
	return 0;
}

/* Fill device memory page @page of @d with a pattern derived from @tag. */
static int fill_page(struct mt_inst *d, uint64_t page, uint8_t tag)
{
	uint8_t data[MTTY_MIG_PAGE_SIZE];
	size_t i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(tag + i * 13);
	return mt_region_write(d->v.device, MTTY_MIG_MEM_REGION, page * MTTY_MIG_PAGE_SIZE,
			       data, sizeof(data)) == sizeof(data) ? 0 : -EIO;
}

static int check_page(struct mt_inst *d, uint64_t page, uint8_t tag)
{
	uint8_t data[MTTY_MIG_PAGE_SIZE];
	size_t i;

	if (mt_region_read(d->v.device, MTTY_MIG_MEM_REGION, page * MTTY_MIG_PAGE_SIZE, data,
			   sizeof(data)) != sizeof(data))
		return -EIO;
	for (i = 0; i < sizeof(data); i++)
		if (data[i] != (uint8_t)(tag + i * 13))
			return -EBADMSG;
	return 0;
}

static int reg_write(struct mt_inst *d, int port, int reg, uint8_t v)
{
	return mt_region_write(d->v.device, MTTY_MIG_SERIAL_REGION,
			       port * MTTY_MIG_PORT_STRIDE + reg, &v, 1) == 1 ? 0 : -EIO;
}

static int reg_read(struct mt_inst *d, int port, int reg, uint8_t *v)
{
	return mt_region_read(d->v.device, MTTY_MIG_SERIAL_REGION,
			      port * MTTY_MIG_PORT_STRIDE + reg, v, 1) == 1 ? 0 : -EIO;
}

/* ------------------------------------------------------------------------ */
/* Round trip                                                                */
/* ------------------------------------------------------------------------ */

#define RT_MEM (1 * MIB)
#define RT_DIRTY_RATE "500"
#define RT_PRECOPY_ROUNDS 3

FIXTURE(rt)
{
	struct mt_inst src, dst;
	int src_fd, dst_fd;
};

FIXTURE_VARIANT(rt)
{
	const char *type;
	int ports;
	bool precopy;
	size_t seg_max; /* 0: write whole chunks */
};

FIXTURE_VARIANT_ADD(rt, one_port_precopy)
{
	.type = MTTY_MIG_TYPE_1, .ports = 1, .precopy = true,
};

FIXTURE_VARIANT_ADD(rt, two_ports_precopy)
{
	.type = MTTY_MIG_TYPE_2, .ports = 2, .precopy = true,
};

FIXTURE_VARIANT_ADD(rt, four_ports_precopy)
{
	.type = MTTY_MIG_TYPE_4, .ports = 4, .precopy = true,
};

FIXTURE_VARIANT_ADD(rt, one_port_stop_copy_only)
{
	.type = MTTY_MIG_TYPE_1, .ports = 1, .precopy = false,
};

FIXTURE_VARIANT_ADD(rt, four_ports_stop_copy_only)
{
	.type = MTTY_MIG_TYPE_4, .ports = 4, .precopy = false,
};

FIXTURE_VARIANT_ADD(rt, two_ports_precopy_random_segments)
{
	.type = MTTY_MIG_TYPE_2, .ports = 2, .precopy = true, .seg_max = 5000,
};

FIXTURE_VARIANT_ADD(rt, one_port_stop_copy_only_random_segments)
{
	.type = MTTY_MIG_TYPE_1, .ports = 1, .precopy = false, .seg_max = 3000,
};

FIXTURE_SETUP(rt)
{
	self->src_fd = self->dst_fd = -1;
	mt_inst_init(&self->src);
	mt_inst_init(&self->dst);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_up(&self->src, variant->type, RT_MEM, NULL));
	ASSERT_EQ(0, mt_inst_up(&self->dst, variant->type, RT_MEM, NULL));
}

FIXTURE_TEARDOWN(rt)
{
	if (self->src_fd >= 0)
		close(self->src_fd);
	if (self->dst_fd >= 0)
		close(self->dst_fd);
	EXPECT_EQ(0, mt_inst_down(&self->src));
	EXPECT_EQ(0, mt_inst_down(&self->dst));
}

TEST_F_TIMEOUT(rt, digests_equal_after_manual_round_trip, 120)
{
	char src_digest[64], src_digest2[64], dst_digest[64];
	struct seg seg = { .max = variant->seg_max, .ones = 256, .rng = 0x9e3779b97f4a7c15ULL };
	struct seg *s = variant->seg_max ? &seg : NULL;
	uint32_t st;
	int port, fd = -2;

	/* Source: registers, FIFO contents, memory, and the engine running. */
	for (port = 0; port < variant->ports; port++) {
		ASSERT_EQ(0, reg_write(&self->src, port, UART_SCR, (uint8_t)(0xa0 + port)));
		ASSERT_EQ(0, reg_write(&self->src, port, UART_LCR, 0x03));
		ASSERT_EQ(0, reg_write(&self->src, port, UART_RX, (uint8_t)('a' + port)));
		ASSERT_EQ(0, reg_write(&self->src, port, UART_RX, (uint8_t)('A' + port)));
	}
	ASSERT_EQ(0, fill_page(&self->src, 0, 1));
	ASSERT_EQ(0, fill_page(&self->src, RT_MEM / MTTY_MIG_PAGE_SIZE - 1, 2));
	if (variant->precopy) {
		ASSERT_EQ(0, mt_dev_attr_write(self->src.uuid, MTTY_MIG_ATTR_DIRTY_RATE,
					       RT_DIRTY_RATE));
	}

	/* Destination: RUNNING -> RESUMING gives the resuming data_fd. */
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RESUMING,
				      &self->dst_fd));
	ASSERT_GE(self->dst_fd, 0);
	ASSERT_EQ(VFIO_DEVICE_STATE_RESUMING, mt_inst_state(&self->dst));

	if (variant->precopy) {
		uint64_t initial = 1, dirty = 0, w0, w1;
		size_t moved, total = 0;
		int round;
		double end;

		ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_PRE_COPY,
					      &self->src_fd));
		ASSERT_GE(self->src_fd, 0);
		ASSERT_EQ(0, mt_precopy_info(self->src_fd, &initial, &dirty));
		ASSERT_GT(initial, 0);
		w0 = mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_ENGINE_WRITES);
		for (round = 0; round < RT_PRECOPY_ROUNDS; round++) {
			ASSERT_EQ(0, pump(self->src_fd, true, NULL, self->dst_fd, s, &moved))
				TH_LOG("precopy round %d", round);
			ASSERT_GT(moved, 0) TH_LOG("precopy round %d read nothing", round);
			total += moved;
			ASSERT_EQ(0, mt_precopy_info(self->src_fd, &initial, &dirty));
			EXPECT_EQ(0, initial);
			/* the engine dirties pages again: wait for them */
			end = mt_now_s() + 20;
			while (!dirty && mt_now_s() < end) {
				struct pollfd pfd = { .fd = self->src_fd, .events = POLLIN };

				ASSERT_LE(0, poll(&pfd, 1, 100));
				ASSERT_EQ(0, mt_precopy_info(self->src_fd, &initial, &dirty));
			}
			ASSERT_GT(dirty, 0) TH_LOG("no dirty bytes after round %d", round);
		}
		w1 = mt_dev_attr_u64(self->src.uuid, MTTY_MIG_ATTR_ENGINE_WRITES);
		EXPECT_GT(w1, w0) TH_LOG("the engine did not write during PRE_COPY");
		TH_LOG("precopy: %zu bytes in %d rounds, engine wrote %llu pages", total,
		       RT_PRECOPY_ROUNDS, (unsigned long long)(w1 - w0));

		/* phase 1: no P2P initiated; phase 2: stop and copy the rest */
		ASSERT_EQ(0, mt_mig_set_state(self->src.v.device,
					      VFIO_DEVICE_STATE_PRE_COPY_P2P, &fd));
		EXPECT_EQ(-1, fd);
		ASSERT_EQ(VFIO_DEVICE_STATE_PRE_COPY_P2P, mt_inst_state(&self->src));
		ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_STOP_COPY,
					      &fd));
		EXPECT_EQ(-1, fd);
	} else {
		ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_STOP, NULL));
		ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_STOP_COPY,
					      &self->src_fd));
		ASSERT_GE(self->src_fd, 0);
	}
	ASSERT_EQ(VFIO_DEVICE_STATE_STOP_COPY, mt_inst_state(&self->src));
	ASSERT_EQ(0, mt_digest(self->src.uuid, src_digest, sizeof(src_digest)));

	ASSERT_EQ(0, pump(self->src_fd, false, NULL, self->dst_fd, s, NULL));
	/* end of stream is permanent in STOP_COPY */
	{
		uint8_t b;

		EXPECT_EQ(0, read(self->src_fd, &b, 1));
	}
	ASSERT_EQ(0, mt_digest(self->src.uuid, src_digest2, sizeof(src_digest2)));
	EXPECT_STREQ(src_digest, src_digest2) TH_LOG("source changed while stopped");

	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(VFIO_DEVICE_STATE_STOP, mt_inst_state(&self->dst));
	ASSERT_EQ(0, mt_digest(self->dst.uuid, dst_digest, sizeof(dst_digest)));
	EXPECT_STREQ(src_digest, dst_digest);

	/* the destination runs, with the source's registers and memory */
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mt_mig_get_state(self->dst.v.device, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
	for (port = 0; port < variant->ports; port++) {
		uint8_t v = 0;

		ASSERT_EQ(0, reg_read(&self->dst, port, UART_SCR, &v));
		EXPECT_EQ(0xa0 + port, v);
		ASSERT_EQ(0, reg_read(&self->dst, port, UART_LCR, &v));
		EXPECT_EQ(0x03, v);
		ASSERT_EQ(0, reg_read(&self->dst, port, UART_RX, &v));
		EXPECT_EQ('a' + port, v);
		ASSERT_EQ(0, reg_read(&self->dst, port, UART_RX, &v));
		EXPECT_EQ('A' + port, v);
	}
	if (!variant->precopy) {
		/* no engine on the source: the test's own pages are intact */
		EXPECT_EQ(0, check_page(&self->dst, 0, 1));
		EXPECT_EQ(0, check_page(&self->dst, RT_MEM / MTTY_MIG_PAGE_SIZE - 1, 2));
	}

	/* the source still returns to RUNNING */
	ASSERT_EQ(0, mt_mig_set_state(self->src.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
}

/* ------------------------------------------------------------------------ */
/* Bad streams                                                               */
/* ------------------------------------------------------------------------ */

#define BAD_MEM (64 * KIB)
#define BAD_PAGES (BAD_MEM / MTTY_MIG_PAGE_SIZE)
#define BAD_METADATA "4096"

/* Where a refusal must show up. */
enum where {
	AT_WRITE, /* a write() fails, and then RESUMING -> STOP */
	AT_STOP,  /* every write() succeeds, RESUMING -> STOP fails */
	AT_ANY,   /* a write() may fail (with the errno); RESUMING -> STOP fails */
};

FIXTURE(bad)
{
	struct mt_inst dst;
	struct mt_buf good;
	struct mt_recs *recs;
	char digest[64];
	struct mt_buf mod;
	int fd;
};

FIXTURE_SETUP(bad)
{
	struct mt_inst src;
	char why[128] = "";
	uint64_t page;

	self->fd = -1;
	mt_inst_init(&self->dst);
	self->recs = calloc(1, sizeof(*self->recs));
	ASSERT_NE(NULL, self->recs);
	ASSERT_EQ(0, mt_module_load());

	/* A source with known memory, saved while stopped. */
	ASSERT_EQ(0, mt_inst_up(&src, MTTY_MIG_TYPE_1, BAD_MEM, NULL));
	ASSERT_EQ(0, mt_dev_attr_write(src.uuid, MTTY_MIG_ATTR_METADATA_SIZE, BAD_METADATA));
	for (page = 0; page < BAD_PAGES; page++)
		ASSERT_EQ(0, fill_page(&src, page, (uint8_t)(page + 1)));
	ASSERT_EQ(0, reg_write(&src, 0, UART_SCR, 0x5a));
	ASSERT_EQ(0, mt_save_stopped(&src, &self->good, self->digest, sizeof(self->digest)));
	ASSERT_EQ(0, mt_inst_down(&src));
	ASSERT_EQ(0, mt_recs_parse(self->good.p, self->good.len, self->recs, why, sizeof(why)))
		TH_LOG("%s", why);
	ASSERT_GE(mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 2), 0);

	ASSERT_EQ(0, mt_inst_up(&self->dst, MTTY_MIG_TYPE_1, BAD_MEM, NULL));
}

FIXTURE_TEARDOWN(bad)
{
	if (self->fd >= 0)
		close(self->fd);
	EXPECT_EQ(0, mt_inst_down(&self->dst));
	mt_buf_free(&self->good);
	mt_buf_free(&self->mod);
	free(self->recs);
}

/* Replace the modified stream by a copy of records [from, to) of the good one. */
static int mod_copy(FIXTURE_DATA(bad) *self, size_t from, size_t to)
{
	size_t start = self->recs->off[from];
	size_t end = to < self->recs->nr ? self->recs->off[to] : self->good.len;

	return mt_buf_put(&self->mod, self->good.p + start, end - start);
}

static uint8_t *mod_rec(FIXTURE_DATA(bad) *self, size_t idx)
{
	return self->mod.p + self->recs->off[idx];
}

static uint8_t *good_rec(FIXTURE_DATA(bad) *self, size_t idx)
{
	return self->good.p + self->recs->off[idx];
}

/*
 * Feed @len bytes of @p to the destination (RUNNING -> RESUMING, writes,
 * RESUMING -> STOP) and check the refusal: the errno, where it shows, the
 * defined state afterwards; then reset, and resume the good stream on the
 * same instance.
 */
/*
 * After a refusal on @fd (resuming data_fd of @d, the stream latched bad if
 * @latched): later writes fail the same way, RESUMING -> STOP fails with
 * the errno, the device is in the defined state (ERROR), its data_fd is
 * disabled, and no state change but a reset leaves ERROR.
 */
static void expect_refused_tail(struct __test_metadata *_metadata, struct mt_inst *d, int fd,
				bool latched)
{
	static const uint8_t more[HDR_SIZE];
	char state[32];
	uint32_t st;

	if (latched) {
		EXPECT_EQ(-1, write(fd, more, sizeof(more)));
		EXPECT_EQ(BAD_STREAM_ERRNO, errno) TH_LOG("the refusal is not latched");
	}
	/* RESUMING -> STOP must fail, with the documented errno */
	ASSERT_EQ(-BAD_STREAM_ERRNO, mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_mig_get_state(d->v.device, &st));
	EXPECT_EQ(BAD_STREAM_STATE, st) TH_LOG("state %s after a refused stream",
					       mt_state_name(st));
	ASSERT_EQ(0, mt_dev_attr_read(d->uuid, MTTY_MIG_ATTR_STATE, state, sizeof(state)));
	EXPECT_STREQ(mt_state_name(BAD_STREAM_STATE), state);
	EXPECT_EQ(-1, write(fd, more, sizeof(more)));
	EXPECT_EQ(ENODEV, errno) TH_LOG("data_fd still live after RESUMING -> STOP failed");
	EXPECT_EQ(-EINVAL, mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(-EINVAL, mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_RESUMING, NULL));
	EXPECT_EQ(BAD_STREAM_STATE, mt_inst_state(d));
}

/*
 * Feed @len bytes of @p to the destination (RUNNING -> RESUMING, writes,
 * RESUMING -> STOP) and check the refusal: the errno, where it shows, the
 * defined state afterwards; then reset, and resume the good stream on the
 * same instance.
 */
static void expect_refused(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
			   const uint8_t *p, size_t len, struct seg *seg, enum where where)
{
	char digest[64];
	size_t written = 0;
	uint32_t st;
	int ret;

	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RESUMING,
				      &self->fd));
	ASSERT_GE(self->fd, 0);
	ret = write_stream(self->fd, p, len, seg, &written);
	if (where == AT_WRITE) {
		EXPECT_EQ(-BAD_STREAM_ERRNO, ret) TH_LOG("write refused after %zu of %zu bytes",
							 written, len);
		EXPECT_LT(written, len);
	} else if (where == AT_STOP || !ret) {
		EXPECT_EQ(0, ret) TH_LOG("write failed after %zu of %zu bytes", written, len);
	} else {
		EXPECT_EQ(-BAD_STREAM_ERRNO, ret);
	}
	expect_refused_tail(_metadata, &self->dst, self->fd, ret != 0);
	close(self->fd);
	self->fd = -1;

	/* a reset brings it back, and the good stream then resumes */
	ASSERT_EQ(0, ioctl(self->dst.v.device, VFIO_DEVICE_RESET));
	ASSERT_EQ(0, mt_mig_get_state(self->dst.v.device, &st));
	ASSERT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RESUMING,
				      &self->fd));
	ASSERT_EQ(0, write_stream(self->fd, self->good.p, self->good.len, NULL, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, mt_digest(self->dst.uuid, digest, sizeof(digest)));
	EXPECT_STREQ(self->digest, digest);
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
}

TEST_F(bad, good_stream_is_well_formed_and_resumes)
{
	char digest[64];
	size_t i, pages = 0, serial = 0;
	const struct mtty_mig_rec_header *h = (const void *)(good_rec(self, 0) + HDR_SIZE);

	/* HEADER: the compatibility data of the source */
	EXPECT_EQ(MTTY_MIG_STREAM_MAGIC, h->magic);
	EXPECT_EQ(MTTY_MIG_STREAM_VERSION_MAJOR, h->version_major);
	EXPECT_EQ(1, h->nr_ports);
	EXPECT_EQ(MTTY_MIG_PAGE_SIZE, h->page_size);
	EXPECT_EQ(BAD_MEM, h->mem_size);
	EXPECT_EQ(atoi(BAD_METADATA), h->metadata_size);
	EXPECT_EQ(h->metadata_size, self->recs->size[1] - HDR_SIZE);
	for (i = 0; i < self->recs->nr; i++) {
		if (self->recs->type[i] == MTTY_MIG_REC_PAGE) {
			EXPECT_EQ(MTTY_MIG_REC_PAGE_PAYLOAD, self->recs->size[i] - HDR_SIZE);
			pages++;
		}
		if (self->recs->type[i] == MTTY_MIG_REC_SERIAL)
			serial++;
	}
	EXPECT_EQ(BAD_PAGES, pages); /* every page once in a stopped save */
	EXPECT_EQ(1, serial);
	EXPECT_EQ(MTTY_MIG_REC_DEVICE, self->recs->type[self->recs->nr - 2]);

	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RESUMING,
				      &self->fd));
	ASSERT_EQ(0, write_stream(self->fd, self->good.p, self->good.len, NULL, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_digest(self->dst.uuid, digest, sizeof(digest)));
	EXPECT_STREQ(self->digest, digest);
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(0, check_page(&self->dst, BAD_PAGES - 1, (uint8_t)BAD_PAGES));
}

TEST_F(bad, flipped_payload_byte_is_refused)
{
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 1);

	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	mod_rec(self, i)[HDR_SIZE + 100] ^= 0x01;
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, flipped_metadata_byte_is_refused)
{
	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	mod_rec(self, 1)[self->recs->size[1] - 1] ^= 0x80;
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, flipped_header_field_is_refused)
{
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 1);

	/* a flags bit, checksum left as it was */
	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	rec_hdr(mod_rec(self, i))->flags ^= 0x4;
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, nonzero_record_flags_are_refused)
{
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 1);

	/* flags must be 0 even with a matching checksum */
	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	rec_hdr(mod_rec(self, i))->flags = 1;
	mt_rec_seal(mod_rec(self, i), self->recs->size[i]);
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, truncated_stream_without_end_is_refused)
{
	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr - 1));
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_STOP);
}

TEST_F(bad, truncated_stream_mid_record_is_refused)
{
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 2);

	ASSERT_EQ(0, mod_copy(self, 0, i));
	ASSERT_EQ(0, mt_buf_put(&self->mod, good_rec(self, i), HDR_SIZE + 1000));
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_STOP);
}

TEST_F(bad, truncated_stream_mid_header_is_refused)
{
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 2);

	ASSERT_EQ(0, mod_copy(self, 0, i));
	ASSERT_EQ(0, mt_buf_put(&self->mod, good_rec(self, i), HDR_SIZE - 3));
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_STOP);
}

TEST_F(bad, reordered_page_records_are_refused)
{
	int a = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 0);
	int b = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 1);

	/* swapped as they are: their seq numbers are out of order */
	ASSERT_EQ(b, a + 1);
	ASSERT_EQ(0, mod_copy(self, 0, a));
	ASSERT_EQ(0, mod_copy(self, b, b + 1));
	ASSERT_EQ(0, mod_copy(self, a, a + 1));
	ASSERT_EQ(0, mod_copy(self, b + 1, self->recs->nr));
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, duplicated_record_is_refused)
{
	int a = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 1);

	ASSERT_EQ(0, mod_copy(self, 0, a + 1));
	ASSERT_EQ(0, mod_copy(self, a, self->recs->nr));
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, missing_header_record_is_refused)
{
	/* METADATA first: the stream does not start with its HEADER */
	ASSERT_EQ(0, mod_copy(self, 1, self->recs->nr));
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, bad_magic_is_refused)
{
	struct mtty_mig_rec_header *h;

	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	h = (void *)(mod_rec(self, 0) + HDR_SIZE);
	h->magic ^= 0x100;
	mt_rec_seal(mod_rec(self, 0), self->recs->size[0]);
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, newer_major_version_is_refused)
{
	struct mtty_mig_rec_header *h;

	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	h = (void *)(mod_rec(self, 0) + HDR_SIZE);
	h->version_major = MTTY_MIG_STREAM_VERSION_MAJOR + 1;
	mt_rec_seal(mod_rec(self, 0), self->recs->size[0]);
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

/* The header says a minor version "may be lower or equal": a newer one is refused. */
TEST_F(bad, newer_minor_version_is_refused)
{
	struct mtty_mig_rec_header *h;

	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	h = (void *)(mod_rec(self, 0) + HDR_SIZE);
	h->version_minor = MTTY_MIG_STREAM_VERSION_MINOR + 1;
	mt_rec_seal(mod_rec(self, 0), self->recs->size[0]);
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, page_index_out_of_range_is_refused)
{
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 1);
	struct mtty_mig_rec_page *pg;

	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	pg = (void *)(mod_rec(self, i) + HDR_SIZE);
	pg->index = BAD_PAGES;
	mt_rec_seal(mod_rec(self, i), self->recs->size[i]);
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, record_length_over_cap_is_refused_at_its_header)
{
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 1);
	struct mtty_mig_rec_hdr h;
	size_t written = 0;

	/*
	 * The records before it, then only the header of a PAGE record that
	 * claims 2 GiB: the write of that header alone must fail, without
	 * waiting for (or staging) a payload.
	 */
	ASSERT_EQ(0, mod_copy(self, 0, i));
	memcpy(&h, good_rec(self, i), HDR_SIZE);
	h.length = 0x80000000U;
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RESUMING,
				      &self->fd));
	ASSERT_EQ(0, write_stream(self->fd, self->mod.p, self->mod.len, NULL, NULL));
	EXPECT_EQ(-BAD_STREAM_ERRNO, write_stream(self->fd, (void *)&h, HDR_SIZE, NULL, &written));
	EXPECT_EQ(0, written);
	expect_refused_tail(_metadata, &self->dst, self->fd, true);
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, ioctl(self->dst.v.device, VFIO_DEVICE_RESET));

	/* the same through expect_refused, with the rest of the stream after it */
	mt_buf_free(&self->mod);
	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	rec_hdr(mod_rec(self, i))->length = 0xffffffffU;
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, metadata_length_over_cap_is_refused)
{
	struct mtty_mig_rec_header *h;

	/* HEADER and METADATA agree on a size above MTTY_MIG_METADATA_MAX */
	ASSERT_EQ(0, mod_copy(self, 0, 1));
	h = (void *)(mod_rec(self, 0) + HDR_SIZE);
	h->metadata_size = MTTY_MIG_METADATA_MAX + 1;
	mt_rec_seal(mod_rec(self, 0), self->recs->size[0]);
	{
		struct mtty_mig_rec_hdr m;

		memcpy(&m, good_rec(self, 1), HDR_SIZE);
		m.length = MTTY_MIG_METADATA_MAX + 1;
		ASSERT_EQ(0, mt_buf_put(&self->mod, &m, HDR_SIZE));
	}
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, unknown_record_type_is_refused)
{
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 1);

	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	rec_hdr(mod_rec(self, i))->type = 0x77;
	mt_rec_seal(mod_rec(self, i), self->recs->size[i]);
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, trailing_garbage_after_end_is_refused)
{
	static const uint8_t junk[32] = { 0xde, 0xad, 0xbe, 0xef };

	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	ASSERT_EQ(0, mt_buf_put(&self->mod, junk, sizeof(junk)));
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_WRITE);
}

TEST_F(bad, trailing_bytes_shorter_than_a_header_are_refused)
{
	static const uint8_t junk[3] = { 0x01, 0x00, 0x00 };

	/* nothing may follow END, not even part of a record header */
	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	ASSERT_EQ(0, mt_buf_put(&self->mod, junk, sizeof(junk)));
	expect_refused(_metadata, self, self->mod.p, self->mod.len, NULL, AT_ANY);
}

TEST_F(bad, empty_stream_is_refused)
{
	expect_refused(_metadata, self, NULL, 0, NULL, AT_STOP);
}

TEST_F(bad, corrupted_stream_is_refused_whatever_the_segmentation)
{
	struct seg seg = { .max = 7, .ones = 200, .rng = 12345 };
	int i = mt_recs_find(self->recs, MTTY_MIG_REC_PAGE, 2);

	ASSERT_EQ(0, mod_copy(self, 0, self->recs->nr));
	mod_rec(self, i)[HDR_SIZE + MTTY_MIG_PAGE_SIZE] ^= 0x10;
	expect_refused(_metadata, self, self->mod.p, self->mod.len, &seg, AT_WRITE);
}

/* Incompatible destinations: a good stream from another kind of instance. */

static void refused_by(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
		       const char *type, uint64_t mem_size)
{
	struct mt_inst other;

	/* the stream into a destination that does not match it */
	ASSERT_EQ(0, mt_inst_down(&self->dst));
	ASSERT_EQ(0, mt_inst_up(&self->dst, type, mem_size, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RESUMING,
				      &self->fd));
	EXPECT_EQ(-BAD_STREAM_ERRNO, write_stream(self->fd, self->good.p, self->good.len, NULL,
						  NULL));
	expect_refused_tail(_metadata, &self->dst, self->fd, true);
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, ioctl(self->dst.v.device, VFIO_DEVICE_RESET));
	ASSERT_EQ(VFIO_DEVICE_STATE_RUNNING, mt_inst_state(&self->dst));

	/* and a stream of its own kind still resumes there */
	{
		char sd[64], dd[64];
		struct mt_buf s = { 0 };

		ASSERT_EQ(0, mt_inst_up(&other, type, mem_size, NULL));
		ASSERT_EQ(0, fill_page(&other, 0, 9));
		EXPECT_EQ(0, mt_save_stopped(&other, &s, sd, sizeof(sd)));
		EXPECT_EQ(0, mt_inst_down(&other));
		ASSERT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_RESUMING,
					      &self->fd));
		EXPECT_EQ(0, write_stream(self->fd, s.p, s.len, NULL, NULL));
		EXPECT_EQ(0, mt_mig_set_state(self->dst.v.device, VFIO_DEVICE_STATE_STOP, NULL));
		EXPECT_EQ(0, mt_digest(self->dst.uuid, dd, sizeof(dd)));
		EXPECT_STREQ(sd, dd);
		mt_buf_free(&s);
	}
}

TEST_F(bad, different_mem_size_is_refused)
{
	refused_by(_metadata, self, MTTY_MIG_TYPE_1, 2 * BAD_MEM);
}

TEST_F(bad, different_nr_ports_is_refused)
{
	refused_by(_metadata, self, MTTY_MIG_TYPE_2, BAD_MEM);
}

TEST_HARNESS_MAIN
