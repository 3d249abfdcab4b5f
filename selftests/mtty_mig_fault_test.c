// SPDX-License-Identifier: GPL-2.0-only
/*
 * Failures of mtty_mig, injected and real:
 *
 * - the debugfs fault files (uapi/linux/mtty_mig.h): fail_state on every
 *   FSM arc (exact errno, the step's source state, one-shot, "none"),
 *   fail_save_after / fail_resume_after (exactly N bytes, then -EIO),
 *   transition_delay_ms, and bad writes to each file;
 * - the sysfs pacing knobs: stop_copy_latency_ms, save_rate, resume_rate,
 *   initial_load_ms (lower bounds on CLOCK_MONOTONIC only);
 * - VFIO_DEVICE_RESET and closing the device in PRE_COPY, STOP_COPY and
 *   RESUMING: the data_fd is dead (-ENODEV), the device RUNNING, and a new
 *   migration works;
 * - refused sysfs writes, which change nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"
#include <linux/mtty_mig.h>

#define KIB 1024ULL
#define FLT_MEM (64 * KIB)
#define FLT_METADATA "4096"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* every instance here: FLT_METADATA bytes of metadata */
static const char *const flt_attrs[] = { MTTY_MIG_ATTR_METADATA_SIZE, FLT_METADATA, NULL };

/* Write @len bytes in @chunk-byte writes; 0 or -errno, *@done accepted. */
static int write_all(int fd, const uint8_t *p, size_t len, size_t chunk, size_t *done)
{
	size_t off = 0;
	int ret = 0;

	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		ssize_t w = write(fd, p + off, n);

		if (w <= 0) {
			ret = w < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)w;
	}
	if (done)
		*done = off;
	return ret;
}

/* Resume @s into @d (any state -> RESUMING -> STOP). */
static int resume(struct mt_inst *d, const struct mt_buf *s)
{
	int fd = -1, ret;

	ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_RESUMING, &fd);
	if (!ret)
		ret = write_all(fd, s->p, s->len, 64 * KIB, NULL);
	if (fd >= 0)
		close(fd);
	if (!ret)
		ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP, NULL);
	return ret;
}

/*
 * A full migration of @d onto itself works: save stopped, resume, digests
 * equal, RUNNING again.
 */
static void migration_works(struct __test_metadata *_metadata, struct mt_inst *d)
{
	char before[64], after[64];
	struct mt_buf s = { 0 };

	ASSERT_EQ(0, mt_save_stopped(d, &s, before, sizeof(before)));
	ASSERT_GT(s.len, 0);
	EXPECT_EQ(0, resume(d, &s));
	EXPECT_EQ(0, mt_digest(d->uuid, after, sizeof(after)));
	EXPECT_STREQ(before, after);
	EXPECT_EQ(0, mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	mt_buf_free(&s);
}

/* ------------------------------------------------------------------------ */
/* fail_state                                                                */
/* ------------------------------------------------------------------------ */

FIXTURE(flt)
{
	struct mt_inst d;
	int fd;
	struct mt_buf good;
};

FIXTURE_SETUP(flt)
{
	self->fd = -1;
	mt_inst_init(&self->d);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_up(&self->d, MTTY_MIG_TYPE_1, FLT_MEM, flt_attrs));
}

FIXTURE_TEARDOWN(flt)
{
	if (self->fd >= 0)
		close(self->fd);
	mt_buf_free(&self->good);
	EXPECT_EQ(0, mt_inst_down(&self->d));
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

TEST_F(flt, fail_state_fails_next_step_once_with_errno)
{
	char buf[64];

	ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, buf, sizeof(buf)));
	EXPECT_STREQ("none", buf);
	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, "pre_copy 28"));
	ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, buf, sizeof(buf)));
	EXPECT_STREQ("PRE_COPY 28", buf);

	EXPECT_EQ(-ENOSPC, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_PRE_COPY,
					    &self->fd));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mt_inst_state(&self->d));
	ASSERT_EQ(0, mt_dev_attr_read(self->d.uuid, MTTY_MIG_ATTR_STATE, buf, sizeof(buf)));
	EXPECT_STREQ("RUNNING", buf);
	/* one-shot: disarmed, and the retry succeeds */
	ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, buf, sizeof(buf)));
	EXPECT_STREQ("none", buf);
	self->fd = -1;
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	EXPECT_GE(self->fd, 0);
	EXPECT_EQ(VFIO_DEVICE_STATE_PRE_COPY, mt_inst_state(&self->d));
}

TEST_F(flt, fail_state_mid_path_leaves_step_source_state)
{
	/* RUNNING -> STOP_COPY is RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY */
	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, "stop -5"));
	EXPECT_EQ(-EIO, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY,
					 &self->fd));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING_P2P, mt_inst_state(&self->d));
	self->fd = -1;
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY,
				      &self->fd));
	EXPECT_GE(self->fd, 0);
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP_COPY, mt_inst_state(&self->d));
}

TEST_F(flt, fail_state_accepts_numbers_and_any_case)
{
	char buf[64];

	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	/* 3 = VFIO_DEVICE_STATE_STOP_COPY */
	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, "3 17\n"));
	ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, buf, sizeof(buf)));
	EXPECT_STREQ("STOP_COPY 17", buf);
	EXPECT_EQ(-EEXIST, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY,
					    &self->fd));
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP, mt_inst_state(&self->d));

	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, "ReSuMiNg 4095"));
	EXPECT_EQ(-4095, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RESUMING,
					  &self->fd));
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP, mt_inst_state(&self->d));
}

TEST_F(flt, fail_state_none_disarms)
{
	char buf[64];

	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, "stop 5"));
	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, "none"));
	ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, buf, sizeof(buf)));
	EXPECT_STREQ("none", buf);
	EXPECT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP, mt_inst_state(&self->d));
}

TEST_F(flt, fail_state_bad_writes_are_refused_and_change_nothing)
{
	static const char *const bad[] = {
		"garbage", "stop", "stop 0", "stop -0", "stop 4096", "stop -4096",
		"stop 99999999999", "stop 5x", "bogus 5", "8 5", "-1 5", "\n",
		"stop_copy_x 5",
	};
	char buf[64];
	size_t i;

	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, "resuming 7"));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, bad[i]))
			TH_LOG("'%s'", bad[i]);
		ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, buf,
					   sizeof(buf)));
		EXPECT_STREQ("RESUMING 7", buf) TH_LOG("after '%s'", bad[i]);
	}
	/* what was armed still fires: RUNNING -> RUNNING_P2P -> STOP -> RESUMING */
	EXPECT_EQ(-E2BIG, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RESUMING,
					   &self->fd));
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP, mt_inst_state(&self->d));
}

/*
 * Every single arc of a STOP_COPY | P2P | PRE_COPY device, failed with its
 * own errno: the step reports it, the device stays in the arc's source
 * state, the fault is spent, and the same request then succeeds.
 */
static const struct {
	uint32_t from, to;
	int err;
} arcs[] = {
	{ VFIO_DEVICE_STATE_RESUMING, VFIO_DEVICE_STATE_STOP, EPERM },
	{ VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_RESUMING, ENOMEM },
	{ VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_STOP_COPY, EBUSY },
	{ VFIO_DEVICE_STATE_STOP_COPY, VFIO_DEVICE_STATE_STOP, EAGAIN },
	{ VFIO_DEVICE_STATE_RUNNING, VFIO_DEVICE_STATE_RUNNING_P2P, ENOSPC },
	{ VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_RUNNING, EFAULT },
	{ VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_STOP, ENXIO },
	{ VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_RUNNING_P2P, E2BIG },
	{ VFIO_DEVICE_STATE_RUNNING, VFIO_DEVICE_STATE_PRE_COPY, ETIMEDOUT },
	{ VFIO_DEVICE_STATE_PRE_COPY, VFIO_DEVICE_STATE_RUNNING, ECONNRESET },
	{ VFIO_DEVICE_STATE_PRE_COPY, VFIO_DEVICE_STATE_PRE_COPY_P2P, EPROTO },
	{ VFIO_DEVICE_STATE_PRE_COPY_P2P, VFIO_DEVICE_STATE_PRE_COPY, EOVERFLOW },
	{ VFIO_DEVICE_STATE_PRE_COPY_P2P, VFIO_DEVICE_STATE_RUNNING_P2P, ENOLINK },
	{ VFIO_DEVICE_STATE_PRE_COPY_P2P, VFIO_DEVICE_STATE_STOP_COPY, 4095 },
	{ VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_PRE_COPY_P2P, 1000 },
};

TEST_F_TIMEOUT(flt, fail_state_on_every_arc, 120)
{
	char arm[64], buf[64];
	size_t i;
	int fd2;

	ASSERT_EQ(0, mt_save_stopped(&self->d, &self->good, NULL, 0));
	for (i = 0; i < sizeof(arcs) / sizeof(arcs[0]); i++) {
		const char *from = mt_state_name(arcs[i].from), *to = mt_state_name(arcs[i].to);

		ASSERT_EQ(0, ioctl(self->d.v.device, VFIO_DEVICE_RESET));
		ASSERT_EQ(VFIO_DEVICE_STATE_RUNNING, mt_inst_state(&self->d));
		close_fd(&self->fd);
		ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, arcs[i].from, &self->fd))
			TH_LOG("to %s", from);
		if (arcs[i].from == VFIO_DEVICE_STATE_RESUMING) {
			ASSERT_EQ(0, write_all(self->fd, self->good.p, self->good.len,
					       64 * KIB, NULL));
		}

		snprintf(arm, sizeof(arm), "%s %d", to, arcs[i].err);
		ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, arm));
		fd2 = -1;
		EXPECT_EQ(-arcs[i].err, mt_mig_set_state(self->d.v.device, arcs[i].to, &fd2))
			TH_LOG("%s -> %s", from, to);
		EXPECT_EQ(-1, fd2);
		EXPECT_EQ(arcs[i].from, mt_inst_state(&self->d))
			TH_LOG("%s -> %s failed", from, to);
		ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, buf,
					   sizeof(buf)));
		EXPECT_STREQ("none", buf);

		EXPECT_EQ(0, mt_mig_set_state(self->d.v.device, arcs[i].to, &fd2))
			TH_LOG("%s -> %s retried", from, to);
		EXPECT_EQ(arcs[i].to, mt_inst_state(&self->d));
		if (fd2 >= 0)
			close(fd2);
	}
	close_fd(&self->fd);
	ASSERT_EQ(0, ioctl(self->d.v.device, VFIO_DEVICE_RESET));
}

/* ------------------------------------------------------------------------ */
/* fail_save_after / fail_resume_after                                       */
/* ------------------------------------------------------------------------ */

TEST_F(flt, fail_save_after_yields_n_bytes_then_eio)
{
	static const struct {
		uint32_t state;
		size_t n, chunk;
	} cases[] = {
		{ VFIO_DEVICE_STATE_STOP_COPY, 1000, 300 },
		{ VFIO_DEVICE_STATE_STOP_COPY, 5000, 64 * KIB },
		{ VFIO_DEVICE_STATE_STOP_COPY, 0, 100 },
		{ VFIO_DEVICE_STATE_PRE_COPY, 700, 256 },
	};
	char val[32], buf[32];
	size_t i, got;
	int err;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_EQ(0, ioctl(self->d.v.device, VFIO_DEVICE_RESET));
		snprintf(val, sizeof(val), "%zu", cases[i].n);
		ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_SAVE_AFTER, val));
		ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_SAVE_AFTER, buf,
					   sizeof(buf)));
		EXPECT_STREQ(val, buf);
		ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, cases[i].state, &self->fd));
		ASSERT_GE(self->fd, 0);
		err = mt_read_to_end(self->fd, cases[i].chunk, NULL, &got);
		EXPECT_EQ(cases[i].n, got) TH_LOG("case %zu", i);
		EXPECT_EQ(-EIO, err) TH_LOG("case %zu", i);
		/* the fault disarmed itself */
		ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_SAVE_AFTER, buf,
					   sizeof(buf)));
		EXPECT_STREQ("-1", buf);
		close_fd(&self->fd);
	}
	ASSERT_EQ(0, ioctl(self->d.v.device, VFIO_DEVICE_RESET));
	migration_works(_metadata, &self->d);
}

TEST_F(flt, fail_resume_after_accepts_n_bytes_then_eio_and_stop_fails)
{
	static const struct {
		size_t n, chunk;
	} cases[] = {
		{ 1000, 300 },
		{ 5000, 64 * KIB },
		{ 0, 64 },
	};
	char val[32], buf[32];
	size_t i, done;
	uint32_t st;
	int ret;

	ASSERT_EQ(0, mt_save_stopped(&self->d, &self->good, NULL, 0));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_EQ(0, ioctl(self->d.v.device, VFIO_DEVICE_RESET));
		snprintf(val, sizeof(val), "%zu", cases[i].n);
		ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_RESUME_AFTER, val));
		ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RESUMING,
					      &self->fd));
		ret = write_all(self->fd, self->good.p, self->good.len, cases[i].chunk, &done);
		EXPECT_EQ(-EIO, ret) TH_LOG("case %zu", i);
		EXPECT_EQ(cases[i].n, done) TH_LOG("case %zu", i);
		ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_FAIL_RESUME_AFTER, buf,
					   sizeof(buf)));
		EXPECT_STREQ("-1", buf);
		/* the stream stays broken: later writes fail the same way */
		EXPECT_EQ(-1, write(self->fd, self->good.p + done, 16));
		EXPECT_EQ(EIO, errno);
		/* RESUMING -> STOP fails with the latched error, device in ERROR */
		ret = mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL);
		EXPECT_EQ(-EIO, ret) TH_LOG("case %zu", i);
		ASSERT_EQ(0, mt_mig_get_state(self->d.v.device, &st));
		EXPECT_EQ(VFIO_DEVICE_STATE_ERROR, st) TH_LOG("case %zu: %s", i, mt_state_name(st));
		close_fd(&self->fd);
	}
	ASSERT_EQ(0, ioctl(self->d.v.device, VFIO_DEVICE_RESET));
	ASSERT_EQ(VFIO_DEVICE_STATE_RUNNING, mt_inst_state(&self->d));
	ASSERT_EQ(0, resume(&self->d, &self->good));
}

TEST_F(flt, fault_counter_files_refuse_bad_writes)
{
	static const char *const files[] = {
		MTTY_MIG_FAULT_FAIL_SAVE_AFTER, MTTY_MIG_FAULT_FAIL_RESUME_AFTER,
	};
	static const char *const bad[] = { "garbage", "-2", "12x", "\n" };
	char buf[32];
	size_t f, i;

	for (f = 0; f < 2; f++) {
		ASSERT_EQ(0, mt_fault_read(self->d.uuid, files[f], buf, sizeof(buf)));
		EXPECT_STREQ("-1", buf) TH_LOG("%s starts disarmed", files[f]);
		ASSERT_EQ(0, mt_fault_write(self->d.uuid, files[f], "4096"));
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			EXPECT_EQ(-EINVAL, mt_fault_write(self->d.uuid, files[f], bad[i]))
				TH_LOG("%s '%s'", files[f], bad[i]);
			ASSERT_EQ(0, mt_fault_read(self->d.uuid, files[f], buf, sizeof(buf)));
			EXPECT_STREQ("4096", buf);
		}
		/* -1 disarms */
		EXPECT_EQ(0, mt_fault_write(self->d.uuid, files[f], "-1")) TH_LOG("%s", files[f]);
		ASSERT_EQ(0, mt_fault_read(self->d.uuid, files[f], buf, sizeof(buf)));
		EXPECT_STREQ("-1", buf) TH_LOG("%s", files[f]);
	}
	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_TRANSITION_DELAY_MS, "10"));
	EXPECT_EQ(-EINVAL, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_TRANSITION_DELAY_MS,
					  "60001"));
	EXPECT_EQ(-EINVAL, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_TRANSITION_DELAY_MS, "-1"));
	EXPECT_EQ(-EINVAL, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_TRANSITION_DELAY_MS, "x"));
	ASSERT_EQ(0, mt_fault_read(self->d.uuid, MTTY_MIG_FAULT_TRANSITION_DELAY_MS, buf,
				   sizeof(buf)));
	EXPECT_STREQ("10", buf);
	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_TRANSITION_DELAY_MS, "0"));
}

/* ------------------------------------------------------------------------ */
/* Delays and rates: lower bounds only                                       */
/* ------------------------------------------------------------------------ */

TEST_F(flt, transition_delay_applies_to_every_step)
{
	double t;

	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_TRANSITION_DELAY_MS, "200"));
	t = mt_now_s();
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_PRE_COPY, &self->fd));
	EXPECT_GE(mt_now_s() - t, 0.200) TH_LOG("RUNNING -> PRE_COPY: one step");
	t = mt_now_s();
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	EXPECT_GE(mt_now_s() - t, 0.400) TH_LOG("PRE_COPY -> PRE_COPY_P2P -> STOP_COPY");
	t = mt_now_s();
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_GE(mt_now_s() - t, 0.600) TH_LOG("STOP_COPY -> STOP -> RUNNING_P2P -> RUNNING");
	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_TRANSITION_DELAY_MS, "0"));
}

TEST_F(flt, stop_copy_latency_delays_entering_stop_copy)
{
	double t;

	ASSERT_EQ(0, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_STOP_COPY_LATENCY_MS, "300"));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	t = mt_now_s();
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY, &self->fd));
	EXPECT_GE(mt_now_s() - t, 0.300);
	close_fd(&self->fd);

	/* also on the PRE_COPY_P2P -> STOP_COPY arc */
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_PRE_COPY_P2P,
				      &self->fd));
	t = mt_now_s();
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	EXPECT_GE(mt_now_s() - t, 0.300);
}

#define RATE_BPS 200000ULL

TEST_F(flt, save_rate_bounds_read_time)
{
	char val[32];
	struct mt_buf s = { 0 };
	double t, min;

	snprintf(val, sizeof(val), "%llu", RATE_BPS);
	ASSERT_EQ(0, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_SAVE_RATE, val));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY, &self->fd));
	t = mt_now_s();
	ASSERT_EQ(0, mt_read_to_end(self->fd, 16 * KIB, &s, NULL));
	t = mt_now_s() - t;
	min = (double)s.len / RATE_BPS;
	TH_LOG("%zu bytes in %.3f s (at least %.3f s)", s.len, t, min);
	EXPECT_GE(t, min);
	mt_buf_free(&s);
}

TEST_F(flt, resume_rate_bounds_write_time)
{
	char val[32];
	double t, min;

	ASSERT_EQ(0, mt_save_stopped(&self->d, &self->good, NULL, 0));
	snprintf(val, sizeof(val), "%llu", RATE_BPS);
	ASSERT_EQ(0, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_RESUME_RATE, val));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RESUMING, &self->fd));
	t = mt_now_s();
	ASSERT_EQ(0, write_all(self->fd, self->good.p, self->good.len, 16 * KIB, NULL));
	t = mt_now_s() - t;
	min = (double)self->good.len / RATE_BPS;
	TH_LOG("%zu bytes in %.3f s (at least %.3f s)", self->good.len, t, min);
	EXPECT_GE(t, min);
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL));
}

TEST_F(flt, initial_load_delays_metadata_load)
{
	double t;

	ASSERT_EQ(0, mt_save_stopped(&self->d, &self->good, NULL, 0));
	ASSERT_EQ(0, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_INITIAL_LOAD_MS, "300"));
	t = mt_now_s();
	ASSERT_EQ(0, resume(&self->d, &self->good));
	EXPECT_GE(mt_now_s() - t, 0.300);
}

/* ------------------------------------------------------------------------ */
/* Reset and close in the middle of a migration                              */
/* ------------------------------------------------------------------------ */

FIXTURE(mid)
{
	struct mt_inst d;
	struct mt_buf good;
	int fd;
};

FIXTURE_VARIANT(mid)
{
	uint32_t state;
};

FIXTURE_VARIANT_ADD(mid, pre_copy)
{
	.state = VFIO_DEVICE_STATE_PRE_COPY,
};

FIXTURE_VARIANT_ADD(mid, stop_copy)
{
	.state = VFIO_DEVICE_STATE_STOP_COPY,
};

FIXTURE_VARIANT_ADD(mid, resuming)
{
	.state = VFIO_DEVICE_STATE_RESUMING,
};

/* Put the device in the variant's state with some data moved on its data_fd. */
FIXTURE_SETUP(mid)
{
	uint8_t tmp[512];

	self->fd = -1;
	mt_inst_init(&self->d);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_up(&self->d, MTTY_MIG_TYPE_2, FLT_MEM, flt_attrs));
	ASSERT_EQ(0, mt_save_stopped(&self->d, &self->good, NULL, 0));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, variant->state, &self->fd));
	ASSERT_GE(self->fd, 0);
	if (variant->state == VFIO_DEVICE_STATE_RESUMING) {
		ASSERT_EQ(sizeof(tmp), write(self->fd, self->good.p, sizeof(tmp)));
	} else {
		ASSERT_EQ(sizeof(tmp), read(self->fd, tmp, sizeof(tmp)));
	}
}

FIXTURE_TEARDOWN(mid)
{
	if (self->fd >= 0)
		close(self->fd);
	mt_buf_free(&self->good);
	EXPECT_EQ(0, mt_inst_down(&self->d));
}

/* The data_fd of a session that was ended under it. */
static void expect_dead_fd(struct __test_metadata *_metadata, int fd, uint32_t state,
			   const struct mt_buf *good)
{
	if (state == VFIO_DEVICE_STATE_RESUMING) {
		EXPECT_EQ(-1, write(fd, good->p + 512, 512));
		EXPECT_EQ(ENODEV, errno);
	} else {
		struct vfio_precopy_info info = { .argsz = sizeof(info) };
		uint8_t tmp[512];

		EXPECT_EQ(-1, read(fd, tmp, sizeof(tmp)));
		EXPECT_EQ(ENODEV, errno);
		EXPECT_EQ(-1, ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info));
		EXPECT_EQ(ENODEV, errno);
	}
}

TEST_F(mid, reset_ends_session)
{
	char buf[32];

	ASSERT_EQ(0, ioctl(self->d.v.device, VFIO_DEVICE_RESET));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mt_inst_state(&self->d));
	ASSERT_EQ(0, mt_dev_attr_read(self->d.uuid, MTTY_MIG_ATTR_STATE, buf, sizeof(buf)));
	EXPECT_STREQ("RUNNING", buf);
	expect_dead_fd(_metadata, self->fd, variant->state, &self->good);
	close_fd(&self->fd);
	migration_works(_metadata, &self->d);
}

TEST_F(mid, close_ends_session)
{
	char buf[32];

	/* device, group and container go; the data_fd stays open */
	mt_vfio_close(&self->d.v);
	expect_dead_fd(_metadata, self->fd, variant->state, &self->good);
	close_fd(&self->fd);
	ASSERT_EQ(0, mt_vfio_open(&self->d.v, self->d.uuid));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, mt_inst_state(&self->d));
	ASSERT_EQ(0, mt_dev_attr_read(self->d.uuid, MTTY_MIG_ATTR_STATE, buf, sizeof(buf)));
	EXPECT_STREQ("RUNNING", buf);
	migration_works(_metadata, &self->d);
}

TEST_F(mid, close_data_fd_last_after_remove)
{
	/* the instance goes away entirely while its data_fd is open */
	mt_vfio_close(&self->d.v);
	ASSERT_EQ(0, mt_mdev_remove(self->d.uuid));
	self->d.created = false;
	expect_dead_fd(_metadata, self->fd, variant->state, &self->good);
	close_fd(&self->fd);
}

/* ------------------------------------------------------------------------ */
/* Refused sysfs writes change nothing                                       */
/* ------------------------------------------------------------------------ */

static void expect_attr(struct __test_metadata *_metadata, const char *uuid, const char *attr,
			const char *want)
{
	char buf[64];

	ASSERT_EQ(0, mt_dev_attr_read(uuid, attr, buf, sizeof(buf)));
	EXPECT_STREQ(want, buf) TH_LOG("%s", attr);
}

static void expect_refused(struct __test_metadata *_metadata, const char *uuid,
			   const char *attr, const char *val, int err, const char *keep)
{
	EXPECT_EQ(-err, mt_dev_attr_write(uuid, attr, val)) TH_LOG("%s <- '%s'", attr, val);
	expect_attr(_metadata, uuid, attr, keep);
}

FIXTURE(sys)
{
	struct mt_inst a, b;
};

FIXTURE_SETUP(sys)
{
	mt_inst_init(&self->a);
	mt_inst_init(&self->b);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_create(&self->a, MTTY_MIG_TYPE_1, 8 * KIB, flt_attrs));
	ASSERT_EQ(0, mt_inst_create(&self->b, MTTY_MIG_TYPE_1, 8 * KIB, flt_attrs));
}

FIXTURE_TEARDOWN(sys)
{
	EXPECT_EQ(0, mt_inst_down(&self->a));
	EXPECT_EQ(0, mt_inst_down(&self->b));
}

TEST_F(sys, bad_mem_size_is_refused)
{
	char val[32];
	struct vfio_region_info r;
	const char *a = self->a.uuid;

	expect_refused(_metadata, a, MTTY_MIG_ATTR_MEM_SIZE, "4097", EINVAL, "8192");
	expect_refused(_metadata, a, MTTY_MIG_ATTR_MEM_SIZE, "6144", EINVAL, "8192");
	/* a multiple of the page size, but not a power of two: BAR1 could not be sized */
	expect_refused(_metadata, a, MTTY_MIG_ATTR_MEM_SIZE, "12288", EINVAL, "8192");
	expect_refused(_metadata, a, MTTY_MIG_ATTR_MEM_SIZE, "0", EINVAL, "8192");
	expect_refused(_metadata, a, MTTY_MIG_ATTR_MEM_SIZE, "-4096", EINVAL, "8192");
	expect_refused(_metadata, a, MTTY_MIG_ATTR_MEM_SIZE, "lots", EINVAL, "8192");
	snprintf(val, sizeof(val), "%llu", MTTY_MIG_MEM_SIZE_MAX + MTTY_MIG_PAGE_SIZE);
	expect_refused(_metadata, a, MTTY_MIG_ATTR_MEM_SIZE, val, EINVAL, "8192");
	/* the limits themselves are fine (nothing is allocated before open) */
	snprintf(val, sizeof(val), "%llu", MTTY_MIG_MEM_SIZE_MAX);
	EXPECT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_MEM_SIZE, val));
	snprintf(val, sizeof(val), "%llu", MTTY_MIG_MEM_SIZE_MIN);
	EXPECT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_MEM_SIZE, val));
	ASSERT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_MEM_SIZE, "8192"));

	/* busy while open: BAR1 keeps its size */
	ASSERT_EQ(0, mt_vfio_open(&self->a.v, a));
	expect_refused(_metadata, a, MTTY_MIG_ATTR_MEM_SIZE, "16384", EBUSY, "8192");
	ASSERT_EQ(0, mt_region_info(self->a.v.device, MTTY_MIG_MEM_REGION, &r));
	EXPECT_EQ(8192, r.size);
	mt_vfio_close(&self->a.v);
	EXPECT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_MEM_SIZE, "16384"));
}

TEST_F(sys, bad_peer_is_refused)
{
	char other[MT_UUID_LEN], upper[MT_UUID_LEN];
	const char *a = self->a.uuid;
	size_t i;

	expect_attr(_metadata, a, MTTY_MIG_ATTR_PEER, MTTY_MIG_PEER_NONE);
	ASSERT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_PEER, self->b.uuid));
	expect_attr(_metadata, a, MTTY_MIG_ATTR_PEER, self->b.uuid);

	expect_refused(_metadata, a, MTTY_MIG_ATTR_PEER, a, EINVAL, self->b.uuid);
	mt_uuid_random(other);
	expect_refused(_metadata, a, MTTY_MIG_ATTR_PEER, other, ENODEV, self->b.uuid);
	expect_refused(_metadata, a, MTTY_MIG_ATTR_PEER, "garbage", EINVAL, self->b.uuid);
	expect_refused(_metadata, a, MTTY_MIG_ATTR_PEER, "0123456789abcdef0123456789abcdef0123",
		       EINVAL, self->b.uuid);
	snprintf(upper, sizeof(upper), "%s", a);
	for (i = 0; upper[i]; i++)
		if (upper[i] >= 'a' && upper[i] <= 'f')
			upper[i] = (char)(upper[i] - 'a' + 'A');
	/* itself, however spelled */
	expect_refused(_metadata, a, MTTY_MIG_ATTR_PEER, upper, EINVAL, self->b.uuid);

	ASSERT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_PEER, MTTY_MIG_PEER_NONE));
	expect_attr(_metadata, a, MTTY_MIG_ATTR_PEER, MTTY_MIG_PEER_NONE);
}

TEST_F(sys, out_of_range_tunables_are_refused)
{
	static const struct {
		const char *attr;
		unsigned long long max;
	} u32s[] = {
		{ MTTY_MIG_ATTR_DIRTY_RATE, MTTY_MIG_RATE_MAX },
		{ MTTY_MIG_ATTR_P2P_RATE, MTTY_MIG_RATE_MAX },
		{ MTTY_MIG_ATTR_INITIAL_LOAD_MS, MTTY_MIG_DELAY_MAX_MS },
		{ MTTY_MIG_ATTR_STOP_COPY_LATENCY_MS, MTTY_MIG_DELAY_MAX_MS },
		{ MTTY_MIG_ATTR_METADATA_SIZE, MTTY_MIG_METADATA_MAX },
	};
	const char *a = self->a.uuid;
	char val[32];
	size_t i;

	for (i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
		ASSERT_EQ(0, mt_dev_attr_write(a, u32s[i].attr, "4096"));
		snprintf(val, sizeof(val), "%llu", u32s[i].max + 1);
		expect_refused(_metadata, a, u32s[i].attr, val, EINVAL, "4096");
		expect_refused(_metadata, a, u32s[i].attr, "4294967296", EINVAL, "4096");
		expect_refused(_metadata, a, u32s[i].attr, "-1", EINVAL, "4096");
		expect_refused(_metadata, a, u32s[i].attr, "fast", EINVAL, "4096");
		snprintf(val, sizeof(val), "%llu", u32s[i].max);
		EXPECT_EQ(0, mt_dev_attr_write(a, u32s[i].attr, val)) TH_LOG("%s", u32s[i].attr);
	}
	ASSERT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_METADATA_SIZE, "4096"));
	snprintf(val, sizeof(val), "%u", MTTY_MIG_METADATA_MIN - 1);
	expect_refused(_metadata, a, MTTY_MIG_ATTR_METADATA_SIZE, val, EINVAL, "4096");
	expect_refused(_metadata, a, MTTY_MIG_ATTR_METADATA_SIZE, "0", EINVAL, "4096");
	snprintf(val, sizeof(val), "%u", MTTY_MIG_METADATA_MIN);
	EXPECT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_METADATA_SIZE, val));

	ASSERT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_SAVE_RATE, "1000"));
	expect_refused(_metadata, a, MTTY_MIG_ATTR_SAVE_RATE, "-5", EINVAL, "1000");
	expect_refused(_metadata, a, MTTY_MIG_ATTR_SAVE_RATE, "quick", EINVAL, "1000");
	ASSERT_EQ(0, mt_dev_attr_write(a, MTTY_MIG_ATTR_RESUME_RATE, "1000"));
	expect_refused(_metadata, a, MTTY_MIG_ATTR_RESUME_RATE, "-5", EINVAL, "1000");
	for (i = 0; i < sizeof(u32s) / sizeof(u32s[0]) - 1; i++)
		ASSERT_EQ(0, mt_dev_attr_write(a, u32s[i].attr, "0"));
}

TEST_F(sys, read_only_attributes_refuse_writes)
{
	static const char *const ro[] = {
		MTTY_MIG_ATTR_NR_PORTS, MTTY_MIG_ATTR_STATE, MTTY_MIG_ATTR_DIGEST,
		MTTY_MIG_ATTR_DIRTY_PAGES, MTTY_MIG_ATTR_ENGINE_WRITES, MTTY_MIG_ATTR_P2P_TX,
		MTTY_MIG_ATTR_P2P_RX, MTTY_MIG_ATTR_P2P_VIOLATIONS, MTTY_MIG_ATTR_P2P_DROPPED,
	};
	size_t i;

	for (i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		int ret = mt_dev_attr_write(self->a.uuid, ro[i], "0");

		if (ret != -EACCES)
			TH_LOG("writing %s: %d", ro[i], ret);
		EXPECT_EQ(-EACCES, ret);
	}
	expect_attr(_metadata, self->a.uuid, MTTY_MIG_ATTR_NR_PORTS, "1");
}

TEST_HARNESS_MAIN
