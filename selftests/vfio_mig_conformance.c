// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio_mig_conformance: the VFIO migration uAPI v2 contract, checked on any
 * device that advertises migration, from its advertised flags alone.
 *
 * What a device must do is derived from include/uapi/linux/vfio.h (6.12) and
 * from vfio_mig_get_next_state() in drivers/vfio/vfio_main.c, which every
 * driver's set_state loop walks; nothing here knows a driver's stream format.
 * Each check cites the vfio.h sentence it enforces. Three outcomes:
 *
 * - a hard violation (the text says must, must not, may not, or states a
 *   fact such as "starts at zero") is a failure;
 * - a deviation from what the text only recommends ("should", "it is
 *   recommended") or only estimates is reported as XFAIL with the reason
 *   (DEVIATION() below), never as a pass and never as a failure;
 * - everything else passes.
 *
 * Targets, one FIXTURE_VARIANT each:
 *   named	the devices given with -d (or VFIO_MIG_CONFORMANCE_DEV and
 *		VFIO_MIG_CONFORMANCE_DEV2): an mdev UUID, a sysfs device path
 *		or a PCI address bound to vfio-pci; the second, if any, is the
 *		destination of the round trips.
 *   mtty_mig	with no device named: two instances of this project's module,
 *		the reference, held strictly: a deviation fails it.
 *   mtty_sample	with no device named: two instances of the kernel's
 *		samples/vfio-mdev/mtty.c (type mtty-2).
 * main() parses its own options before test_harness_run() and excludes the
 * variants that do not apply with the harness's own -V.
 *
 * The device must be idle: nothing but this program may use it while it
 * runs (an idle device does not change its internal state, which some checks
 * rely on, e.g. dirty_bytes and the PRE_COPY temporary end of stream).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include <linux/mtty_mig.h> /* only the digest attribute's name */

#include "kselftest_harness.h"
#include "lib/mtty_test.h"
#include "lib/fsm.h"

#define NSTATES MT_FSM_NSTATES

#define CONF_SAMPLE_KO "/opt/mtty-mig/mtty.ko"
#define CONF_SAMPLE_CREATE "/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create"
#define CONF_MTTY_MIG_MEM (1024 * 1024)	/* small: the checks are about the uAPI */
#define CONF_MAX_STREAM (1UL << 30)	/* no device stream here is larger */
#define CONF_READ_CHUNK (64 * 1024)
#define CONF_WRITE_CHUNK 4093		/* odd, to split any record a driver has */

/*
 * A deviation from a recommendation: logged, the first one becomes the
 * XFAIL reason, and a test that has not failed ends as XFAIL.
 */
/*
 * A strict target (mtty_mig, the reference; or any device with --strict or
 * VFIO_MIG_CONFORMANCE_STRICT=1) is held to the recommendations too: a
 * deviation fails it.  Set by FIXTURE_SETUP in the test's own process.
 */
static bool conf_strict;

/*
 * The documented deviations of a built-in target we did not write
 * (Documentation/conformance.rst): in make check's VM they are what the
 * test asserts, so the test passes only if the deviation is seen, and fails
 * if the driver changed (the document is then out of date).  Set by
 * FIXTURE_SETUP; counted by DEVIATION(); checked by FIXTURE_TEARDOWN.
 */
enum conf_target { CONF_NAMED, CONF_MTTY_MIG, CONF_SAMPLE };

static const struct {
	enum conf_target target;
	const char *test;
} conf_known[] = {
	/* samples/vfio-mdev/mtty.c: mtty_save_read() returns 0, not -ENOMSG */
	{ CONF_SAMPLE, "precopy_temporary_end_is_enomsg" },
};
static bool conf_known_here;
static int conf_known_seen;

#define DEVIATION(fmt, ...) do { \
	TH_LOG("DEVIATION: " fmt, ##__VA_ARGS__); \
	if (conf_strict) { \
		_metadata->exit_code = KSFT_FAIL; \
		break; \
	} \
	if (conf_known_here) { \
		TH_LOG("the documented deviation of this target: asserted, not excused"); \
		conf_known_seen++; \
		break; \
	} \
	if (!_metadata->results->reason[0]) \
		snprintf(_metadata->results->reason, sizeof(_metadata->results->reason), \
			 "deviation: " fmt, ##__VA_ARGS__); \
	if (_metadata->exit_code == KSFT_PASS) \
		_metadata->exit_code = KSFT_XFAIL; \
} while (0)

/* the devices named on the command line, as sysfs paths */
static char conf_named[2][PATH_MAX];
static int conf_nnamed;

/* ---- the core's FSM (the table itself: lib/fsm.c) -------------------------------- */

static bool conf_saving(uint32_t s)
{
	return s == PC || s == PCP2P || s == SC;
}

/*
 * "RUNNING -> PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P, STOP -> STOP_COPY ...
 * These arcs begin the process of saving the device state and will return a
 * new data_fd." "STOP -> RESUMING ... will return a new data_fd."
 */
static bool conf_opens_session(uint32_t from, uint32_t to)
{
	return to == RES || (conf_saving(to) && !conf_saving(from));
}

/* ---- device I/O --------------------------------------------------------------------- */

/*
 * read() @fd until it returns <= 0 or @cap bytes came; what was read goes to
 * @out (may be NULL) and is counted in *@total. 0 with *@end = 0 at end of
 * stream or *@end = errno at an error; -EFBIG if @cap came first.
 */
static int conf_drain(int fd, struct mt_buf *out, size_t cap, size_t *total, int *end)
{
	static uint8_t buf[CONF_READ_CHUNK];
	size_t got = 0;
	int ret = 0;

	for (;;) {
		ssize_t n;

		if (got >= cap) {
			ret = -EFBIG;
			break;
		}
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*end = n ? errno : 0;
			break;
		}
		got += n;
		if (out) {
			ret = mt_buf_put(out, buf, n);
			if (ret)
				break;
		}
	}
	if (total)
		*total = got;
	return ret;
}

/*
 * Write @len bytes of a stream to @fd without preserving the segmentation it
 * was read with: pieces of 1, 2, 3... bytes first (they split any header),
 * then odd-sized chunks. 0, or the first error (a write taking nothing: -EIO).
 */
static int conf_write_stream(int fd, const uint8_t *p, size_t len)
{
	size_t off = 0, piece = 1;

	while (off < len) {
		size_t want = piece < 16 ? piece++ : CONF_WRITE_CHUNK;
		ssize_t n;

		if (want > len - off)
			want = len - off;
		n = write(fd, p + off, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		off += n;
	}
	return 0;
}

static int conf_state(int dev, uint32_t *state)
{
	*state = MT_NO_STATE;
	return mt_mig_get_state(dev, state);
}

/* VFIO_DEVICE_RESET, then the combination transition to @state */
static int conf_enter(int dev, uint32_t state, int *fd)
{
	int ret = mt_dev_reset(dev);

	*fd = -1;
	return ret ? ret : mt_mig_set_state(dev, state, fd);
}

static void conf_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * From RUNNING: STOP, the whole STOP_COPY stream into @out (may be NULL),
 * STOP, RUNNING. 0 or the first error.
 */
static int conf_save(int dev, struct mt_buf *out)
{
	int fd = -1, end = 0, ret;

	ret = mt_mig_set_state(dev, STOP, NULL);
	if (!ret)
		ret = mt_mig_set_state(dev, SC, &fd);
	if (!ret && fd < 0)
		ret = -EBADF;
	if (!ret)
		ret = conf_drain(fd, out, CONF_MAX_STREAM, NULL, &end);
	if (!ret && end)
		ret = -end;
	conf_close(&fd);
	if (!ret)
		ret = mt_mig_set_state(dev, STOP, NULL);
	if (!ret)
		ret = mt_mig_set_state(dev, RUN, NULL);
	return ret;
}

/* From RUNNING: STOP, RESUMING with @len bytes of @p, STOP, RUNNING. */
static int conf_resume(int dev, const uint8_t *p, size_t len)
{
	int fd = -1, ret;

	ret = mt_mig_set_state(dev, STOP, NULL);
	if (!ret)
		ret = mt_mig_set_state(dev, RES, &fd);
	if (!ret && fd < 0)
		ret = -EBADF;
	if (!ret)
		ret = conf_write_stream(fd, p, len);
	if (!ret)
		ret = mt_mig_set_state(dev, STOP, NULL);
	conf_close(&fd);
	if (!ret)
		ret = mt_mig_set_state(dev, RUN, NULL);
	return ret;
}

/* ---- targets ------------------------------------------------------------------------ */


struct conf_dev {
	char sysfs[PATH_MAX];
	struct mt_vfio v;
	bool created; /* an mdev we made: removed at teardown */
};

FIXTURE(vfio_mig)
{
	struct conf_dev dev[2];
	int ndev;
	uint64_t flags;
	int a, b; /* device fds: the source, the destination (== a with one device) */
};

FIXTURE_VARIANT(vfio_mig)
{
	enum conf_target target;
};

FIXTURE_VARIANT_ADD(vfio_mig, named) { .target = CONF_NAMED };
FIXTURE_VARIANT_ADD(vfio_mig, mtty_mig) { .target = CONF_MTTY_MIG };
FIXTURE_VARIANT_ADD(vfio_mig, mtty_sample) { .target = CONF_SAMPLE };

static const char *conf_sample_ko(void)
{
	const char *p = getenv("MTTY_SAMPLE_KO");

	return p && *p ? p : CONF_SAMPLE_KO;
}

static int conf_create(struct conf_dev *d, enum conf_target target)
{
	char uuid[MT_UUID_LEN];
	int ret;

	if (target == CONF_MTTY_MIG) {
		struct mt_inst in;

		ret = mt_inst_create(&in, MT_PARENT "-2", CONF_MTTY_MIG_MEM, NULL);
		d->created = in.created;
		memcpy(uuid, in.uuid, sizeof(uuid));
	} else {
		mt_uuid_random(uuid);
		ret = mt_sysfs_write(CONF_SAMPLE_CREATE, uuid);
		d->created = !ret;
	}
	snprintf(d->sysfs, sizeof(d->sysfs), MT_DEVICES "/%s", uuid);
	return ret;
}

static int conf_remove(struct conf_dev *d)
{
	char path[PATH_MAX + 8];

	if (!d->created)
		return 0;
	d->created = false;
	snprintf(path, sizeof(path), "%s/remove", d->sysfs);
	return mt_sysfs_write(path, "1");
}

static void conf_teardown(FIXTURE_DATA(vfio_mig) *self, int *err)
{
	int i, ret;

	for (i = 0; i < 2; i++) {
		mt_vfio_close(&self->dev[i].v);
		ret = conf_remove(&self->dev[i]);
		if (ret && !*err)
			*err = ret;
	}
}

/* 0, or an error explained in @why; on error nothing is left behind */
static int conf_setup(FIXTURE_DATA(vfio_mig) *self, enum conf_target target,
		      char *why, size_t wlen)
{
	int i, ret = 0, ignored = 0;

	for (i = 0; i < 2; i++) {
		memset(&self->dev[i], 0, sizeof(self->dev[i]));
		mt_vfio_init(&self->dev[i].v);
	}
	self->ndev = target == CONF_NAMED ? conf_nnamed : 2;
	if (target == CONF_MTTY_MIG || target == CONF_SAMPLE) {
		/* vfio, mdev and vfio_iommu_type1 come with mtty_mig's dependencies */
		ret = mt_module_load();
		snprintf(why, wlen, "loading %s: %s", mt_module_path(), strerror(-ret));
		if (!ret && target == CONF_SAMPLE) {
			ret = mt_kmod_insert_path(conf_sample_ko());
			snprintf(why, wlen, "loading %s: %s", conf_sample_ko(), strerror(-ret));
		}
		for (i = 0; !ret && i < 2; i++) {
			ret = conf_create(&self->dev[i], target);
			snprintf(why, wlen, "creating an mdev: %s", strerror(-ret));
		}
	} else {
		for (i = 0; i < self->ndev; i++)
			snprintf(self->dev[i].sysfs, sizeof(self->dev[i].sysfs), "%s",
				 conf_named[i]);
	}
	for (i = 0; !ret && i < self->ndev; i++) {
		struct conf_dev *d = &self->dev[i];
		uint64_t flags = 0;
		uint32_t state;

		ret = mt_vfio_open_path(&d->v, d->sysfs);
		snprintf(why, wlen, "opening %s: %s", d->sysfs, strerror(-ret));
		if (ret)
			break;
		/*
		 * "Indicates the device can support the migration API through
		 * VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE. If this GET succeeds,
		 * the RUNNING and ERROR states are always supported."
		 */
		ret = mt_mig_flags(d->v.device, &flags);
		snprintf(why, wlen, "%s: VFIO_DEVICE_FEATURE_MIGRATION: %s", d->sysfs,
			 strerror(-ret));
		if (ret)
			break;
		if (i && flags != self->flags) {
			ret = -EINVAL;
			snprintf(why, wlen, "the two devices advertise different flags");
			break;
		}
		self->flags = flags;
		/* every check starts from RUNNING, whatever a previous user left */
		ret = mt_dev_reset(d->v.device);
		if (!ret)
			ret = conf_state(d->v.device, &state);
		if (!ret && state != RUN)
			ret = -EPROTO;
		snprintf(why, wlen, "%s: reset to RUNNING: %s (state %s)", d->sysfs,
			 strerror(-ret), mt_state_name(state));
	}
	if (ret) {
		conf_teardown(self, &ignored);
		return ret;
	}
	self->a = self->dev[0].v.device;
	self->b = self->dev[self->ndev - 1].v.device;
	return 0;
}

FIXTURE_SETUP(vfio_mig)
{
	char why[PATH_MAX + 128] = "";
	const char *strict = getenv("VFIO_MIG_CONFORMANCE_STRICT");

	conf_strict = variant->target == CONF_MTTY_MIG || (strict && !strcmp(strict, "1"));
	conf_known_here = false;
	for (size_t i = 0; i < sizeof(conf_known) / sizeof(conf_known[0]); i++)
		conf_known_here |= conf_known[i].target == variant->target &&
				   !strcmp(conf_known[i].test, _metadata->name);

	if (variant->target == CONF_MTTY_MIG && access(mt_module_path(), R_OK))
		SKIP(return, "no %s: name a device with -d", mt_module_path());
	if (variant->target == CONF_SAMPLE && access(conf_sample_ko(), R_OK))
		SKIP(return, "no %s: name a device with -d", conf_sample_ko());
	ASSERT_EQ(0, conf_setup(self, variant->target, why, sizeof(why))) TH_LOG("%s", why);
	/* "at least VFIO_MIGRATION_STOP_COPY must be set" */
	ASSERT_TRUE(self->flags & F_SC) TH_LOG("flags 0x%llx", (unsigned long long)self->flags);
}

FIXTURE_TEARDOWN(vfio_mig)
{
	int err = 0;

	conf_teardown(self, &err);
	EXPECT_EQ(0, err);
	/* a documented deviation that did not happen: the document is stale */
	if (conf_known_here)
		EXPECT_LT(0, conf_known_seen);
}

#define NEED(f) do { \
	if ((self->flags & (f)) != (f)) \
		SKIP(return, "the device does not advertise flags 0x%x", (unsigned int)(f)); \
} while (0)

/* ---- flags and the state machine ------------------------------------------------------ */

/*
 * "VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P means that RUNNING_P2P is
 * supported", "... | VFIO_MIGRATION_PRE_COPY means that PRE_COPY is
 * supported", all three "means that RUNNING_P2P, PRE_COPY and PRE_COPY_P2P
 * are supported"; "The optional states cannot be used with SET_STATE if the
 * device does not support them." Each optional state is reachable from
 * RUNNING exactly when the flags say so; a refused request leaves RUNNING.
 */
TEST_F(vfio_mig, optional_states_reachable_iff_advertised)
{
	static const uint32_t optional[] = { RP2P, PC, PCP2P };
	size_t i;

	TH_LOG("flags 0x%llx:%s%s%s", (unsigned long long)self->flags,
	       self->flags & F_SC ? " STOP_COPY" : "", self->flags & F_P2P ? " P2P" : "",
	       self->flags & F_PC ? " PRE_COPY" : "");
	/* "Other combinations of flags have behavior to be defined in the future." */
	if (self->flags & ~(uint64_t)(F_SC | F_P2P | F_PC))
		TH_LOG("unknown flags 0x%llx: not checked",
		       (unsigned long long)(self->flags & ~(uint64_t)(F_SC | F_P2P | F_PC)));

	for (i = 0; i < ARRAY_SIZE(optional); i++) {
		uint32_t s = optional[i], state;
		int fd = -1, ret;

		ASSERT_EQ(0, mt_dev_reset(self->a));
		ret = mt_mig_set_state(self->a, s, &fd);
		ASSERT_EQ(0, conf_state(self->a, &state));
		if (mt_fsm_supported(self->flags, s)) {
			EXPECT_EQ(0, ret) TH_LOG("advertised %s refused", mt_state_name(s));
			EXPECT_EQ(s, state) TH_LOG("in %s", mt_state_name(state));
		} else {
			EXPECT_NE(0, ret) TH_LOG("%s reachable but not advertised",
						 mt_state_name(s));
			EXPECT_EQ(RUN, state) TH_LOG("refused %s left RUNNING for %s",
						     mt_state_name(s), mt_state_name(state));
			if (ret && ret != -EINVAL)
				DEVIATION("unsupported %s refused with %s, the core says EINVAL",
					  mt_state_name(s), strerror(-ret));
		}
		conf_close(&fd);
	}
}

/*
 * Every (from, to) pair of supported states against vfio_mig_get_next_state():
 * "Refer to vfio_mig_get_next_state() for the result of the algorithm."
 * - a reachable target succeeds and is the state afterwards ("The kernel
 *   migration driver must fully transition the device to the new state value
 *   before the operation returns to the user");
 * - an unreachable one (an unsupported state, ERROR: "ERROR cannot be
 *   specified as a device state", "STOP_COPY -> PRE_COPY(_P2P) ... are not
 *   permitted and return error if requested", out of range) fails and leaves
 *   the state alone;
 * - a data_fd comes back exactly when the path ends on an arc that opens a
 *   session ("will return a new data_fd"), -1 otherwise ("data_fd will be -1"
 *   is GET's; a SET without a new session returns none);
 * - leaving RESUMING with nothing written cannot complete a device state:
 *   "If the user provided data is found to be incomplete ... the migration
 *   driver must fail the SET_STATE ioctl and optionally go to the ERROR
 *   state". Accepting it is a deviation (finding it incomplete is a should);
 *   a failure must leave RESUMING or ERROR ("current device_state may be the
 *   original operating state or some other state along the combination
 *   transition path").
 */
TEST_F_TIMEOUT(vfio_mig, every_state_pair_follows_the_core_fsm, 240)
{
	uint32_t from, to;

	for (from = 0; from < NSTATES; from++) {
		if (!mt_fsm_supported(self->flags, from))
			continue;
		for (to = 0; to <= NSTATES; to++) {
			uint32_t path[NSTATES], state;
			int src_fd = -1, fd = -1, n, ret;

			ASSERT_EQ(0, conf_enter(self->a, from, &src_fd))
				TH_LOG("reaching %s", mt_state_name(from));
			ASSERT_EQ(0, conf_state(self->a, &state));
			ASSERT_EQ(from, state);

			n = mt_fsm_path(self->flags, from, to, path);
			ret = mt_mig_set_state(self->a, to, &fd);
			ASSERT_EQ(0, conf_state(self->a, &state));
			if (n < 0) {
				EXPECT_NE(0, ret) TH_LOG("%s -> %s must be refused",
							 mt_state_name(from), mt_state_name(to));
				EXPECT_EQ(from, state) TH_LOG("refused %s -> %s left %s",
							      mt_state_name(from),
							      mt_state_name(to),
							      mt_state_name(state));
				if (ret && ret != -EINVAL)
					DEVIATION("%s -> %s refused with %s, the core says EINVAL",
						  mt_state_name(from), mt_state_name(to),
						  strerror(-ret));
			} else if (from == RES && to != RES) {
				if (ret) {
					EXPECT_TRUE(state == RES || state == ERR)
						TH_LOG("failed RESUMING -> %s left %s",
						       mt_state_name(to), mt_state_name(state));
				} else {
					DEVIATION("RESUMING -> %s accepted an empty stream",
						  mt_state_name(to));
					EXPECT_EQ(to, state);
				}
			} else {
				bool want_fd = n > 0 &&
					conf_opens_session(n > 1 ? path[n - 2] : from, to);

				EXPECT_EQ(0, ret) TH_LOG("%s -> %s: %s", mt_state_name(from),
							 mt_state_name(to), strerror(-ret));
				EXPECT_EQ(to, state) TH_LOG("%s -> %s ended in %s",
							    mt_state_name(from), mt_state_name(to),
							    mt_state_name(state));
				EXPECT_EQ(want_fd, fd >= 0)
					TH_LOG("%s -> %s: data_fd %d, expected %s",
					       mt_state_name(from), mt_state_name(to), fd,
					       want_fd ? "a new one" : "none");
			}
			conf_close(&fd);
			conf_close(&src_fd);
		}
	}
	ASSERT_EQ(0, mt_dev_reset(self->a));
}

/*
 * "To recover from ERROR VFIO_DEVICE_RESET must be used to return the
 * device_state back to RUNNING", and "The kernel migration driver must not
 * generate asynchronous device state transitions outside of manipulation by
 * the user or the VFIO_DEVICE_RESET ioctl": the reset is the one way back to
 * RUNNING from anywhere, and it ends any session ("To abort a RESUMING
 * session the device must be reset"), so the old data_fd moves no more data.
 */
TEST_F_TIMEOUT(vfio_mig, reset_from_every_state_returns_to_running, 120)
{
	uint32_t s, state;
	bool reached_error = false;
	uint8_t byte = 0;
	int fd = -1;

	for (s = 0; s < NSTATES; s++) {
		if (!mt_fsm_supported(self->flags, s))
			continue;
		ASSERT_EQ(0, conf_enter(self->a, s, &fd)) TH_LOG("reaching %s", mt_state_name(s));
		ASSERT_EQ(0, mt_dev_reset(self->a)) TH_LOG("reset in %s", mt_state_name(s));
		ASSERT_EQ(0, conf_state(self->a, &state));
		EXPECT_EQ(RUN, state) TH_LOG("reset in %s left %s", mt_state_name(s),
					     mt_state_name(state));
		if (fd >= 0 && s == RES) {
			EXPECT_GE(0, write(fd, &byte, 1))
				TH_LOG("the RESUMING fd took data after reset");
		} else if (fd >= 0) {
			EXPECT_GE(0, read(fd, &byte, 1)) TH_LOG("the %s fd gave data after reset",
								mt_state_name(s));
		}
		conf_close(&fd);
	}

	/* ERROR, where a device goes when it cannot leave RESUMING (optional) */
	ASSERT_EQ(0, conf_enter(self->a, RES, &fd));
	if (mt_mig_set_state(self->a, STOP, NULL)) {
		ASSERT_EQ(0, conf_state(self->a, &state));
		reached_error = state == ERR;
		ASSERT_EQ(0, mt_dev_reset(self->a));
		ASSERT_EQ(0, conf_state(self->a, &state));
		EXPECT_EQ(RUN, state) TH_LOG("reset in ERROR left %s", mt_state_name(state));
	}
	conf_close(&fd);
	TH_LOG("ERROR %s", reached_error ? "reached and left by reset" :
		"not reachable from userspace on this device");

	/* and the device migrates again */
	EXPECT_EQ(0, conf_save(self->a, NULL));
}

/* ---- data_fd lifetime ------------------------------------------------------------------ */

/*
 * "Once in STOP_COPY the migration data FD has a permanent end of stream
 * signaled in the usual way by read() always returning 0 and poll always
 * returning readable. ENOMSG may not be returned in STOP_COPY."
 */
TEST_F_TIMEOUT(vfio_mig, stop_copy_stream_ends_with_permanent_eof, 120)
{
	struct pollfd p;
	size_t total = 0;
	int fd = -1, end = -1, i;
	uint8_t byte;

	ASSERT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->a, SC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, conf_drain(fd, NULL, CONF_MAX_STREAM, &total, &end));
	EXPECT_EQ(0, end) TH_LOG("STOP_COPY read ended with %s, not end of stream",
				 strerror(end));
	TH_LOG("%zu bytes of STOP_COPY stream", total);
	for (i = 0; i < 3; i++)
		EXPECT_EQ(0, read(fd, &byte, 1)) TH_LOG("read %d after the end: %s", i,
							 strerror(errno));
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	EXPECT_EQ(1, poll(&p, 1, 0));
	EXPECT_TRUE(p.revents & POLLIN) TH_LOG("poll at the end: revents 0x%x", p.revents);
	conf_close(&fd);
	EXPECT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	EXPECT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));
}

/*
 * "The STOP_COPY arc will terminate a data transfer session." "The PRE_COPY
 * arc will terminate a data transfer session." "The PRE_COPY_P2P arc will
 * terminate a data transfer session." "Leaving RESUMING terminates a data
 * transfer session." A terminated session's fd moves no more data: read()
 * gives end of stream or an error, write() takes nothing, and a new
 * session's data never shows on an old fd.
 */
TEST_F_TIMEOUT(vfio_mig, data_fd_moves_nothing_after_its_session_ends, 120)
{
	static const uint32_t ends[][2] = { { SC, STOP }, { PC, RUN }, { PCP2P, RP2P } };
	struct mt_buf s = { 0 };
	uint8_t byte = 0;
	size_t i;
	int fd = -1, fd2 = -1;

	for (i = 0; i < ARRAY_SIZE(ends); i++) {
		uint32_t in = ends[i][0], out = ends[i][1];

		if (!mt_fsm_supported(self->flags, in))
			continue;
		ASSERT_EQ(0, conf_enter(self->a, in, &fd));
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, mt_mig_set_state(self->a, out, NULL))
			TH_LOG("%s -> %s", mt_state_name(in), mt_state_name(out));
		EXPECT_GE(0, read(fd, &byte, 1)) TH_LOG("data after %s -> %s",
							 mt_state_name(in), mt_state_name(out));
		/* a new session does not feed the old fd */
		ASSERT_EQ(0, mt_mig_set_state(self->a, in, &fd2));
		EXPECT_LE(0, fd2);
		EXPECT_GE(0, read(fd, &byte, 1)) TH_LOG("old %s fd gave a new session's data",
							 mt_state_name(in));
		conf_close(&fd2);
		conf_close(&fd);
	}

	/* RESUMING -> STOP, with a complete stream of the device's own */
	ASSERT_EQ(0, mt_dev_reset(self->a));
	ASSERT_EQ(0, conf_save(self->a, &s));
	ASSERT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->a, RES, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, conf_write_stream(fd, s.p, s.len));
	EXPECT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	EXPECT_GE(0, write(fd, s.p, s.len ? 1 : 0)) TH_LOG("the RESUMING fd took data in STOP");
	conf_close(&fd);
	EXPECT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));
	mt_buf_free(&s);
}

/*
 * "The user is responsible to close this FD when it is finished." Nothing
 * says when: closing it mid-stream must leave a device that leaves the
 * session's state (the arcs are unconditional) and migrates again. A
 * RESUMING session closed half written is incomplete: its RESUMING -> STOP
 * may fail ("must fail the SET_STATE ioctl and optionally go to the ERROR
 * state"), and "To abort a RESUMING session the device must be reset".
 */
TEST_F_TIMEOUT(vfio_mig, closing_data_fd_mid_stream_keeps_device_usable, 120)
{
	struct mt_buf s = { 0 };
	uint8_t buf[16];
	uint32_t state;
	int fd = -1;

	/* STOP_COPY */
	ASSERT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->a, SC, &fd));
	ASSERT_LE(0, fd);
	EXPECT_LE(0, read(fd, buf, sizeof(buf)));
	conf_close(&fd);
	EXPECT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	EXPECT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));
	EXPECT_EQ(0, conf_save(self->a, &s)) TH_LOG("no save after a closed STOP_COPY fd");

	/* PRE_COPY, and the session after it */
	if (mt_fsm_supported(self->flags, PC)) {
		size_t total = 0;
		int end = -1;

		ASSERT_EQ(0, mt_mig_set_state(self->a, PC, &fd));
		ASSERT_LE(0, fd);
		if (read(fd, buf, sizeof(buf)) < 0)
			EXPECT_EQ(ENOMSG, errno);
		conf_close(&fd);
		EXPECT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));
		ASSERT_EQ(0, mt_mig_set_state(self->a, PC, &fd));
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, mt_mig_set_state(self->a, SC, NULL));
		EXPECT_EQ(0, conf_drain(fd, NULL, CONF_MAX_STREAM, &total, &end));
		EXPECT_EQ(0, end) TH_LOG("%s", strerror(end));
		conf_close(&fd);
		EXPECT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
		EXPECT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));
	}

	/* RESUMING, half written */
	ASSERT_LT(0, s.len);
	ASSERT_EQ(0, mt_mig_set_state(self->b, STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->b, RES, &fd));
	ASSERT_LE(0, fd);
	conf_write_stream(fd, s.p, s.len / 2); /* refusing it early is fine */
	conf_close(&fd);
	if (mt_mig_set_state(self->b, STOP, NULL)) {
		ASSERT_EQ(0, conf_state(self->b, &state));
		EXPECT_TRUE(state == RES || state == ERR) TH_LOG("in %s", mt_state_name(state));
	}
	ASSERT_EQ(0, mt_dev_reset(self->b));
	ASSERT_EQ(0, conf_state(self->b, &state));
	EXPECT_EQ(RUN, state);
	EXPECT_EQ(0, conf_resume(self->b, s.p, s.len)) TH_LOG("no resume after a closed fd");
	EXPECT_EQ(0, conf_save(self->b, NULL));
	mt_buf_free(&s);
}

/* ---- PRECOPY_INFO and the PRE_COPY stream ------------------------------------------------ */

#define INFO_REFUSED(fd, where) do { \
	struct vfio_precopy_info __i = { .argsz = sizeof(__i) }; \
	int __r = ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &__i); \
	int __e = errno; \
	EXPECT_EQ(-1, __r) TH_LOG("PRECOPY_INFO succeeded %s", where); \
	if (__r == -1 && __e != EINVAL) \
		DEVIATION("PRECOPY_INFO %s failed with %s, not EINVAL", where, strerror(__e)); \
} while (0)

/*
 * "This ioctl is valid only in PRE_COPY states and kernel driver should
 * return -EINVAL from any other migration state." "Support for this ioctl is
 * mandatory if a driver claims to support VFIO_MIGRATION_PRE_COPY."
 * Succeeding in PRE_COPY and PRE_COPY_P2P is a must, so is failing
 * elsewhere; EINVAL rather than another errno is a should.
 */
TEST_F(vfio_mig, precopy_info_only_in_precopy_states)
{
	uint64_t init, dirty;
	int fd = -1;

	NEED(F_PC);
	/* PRE_COPY, PRE_COPY_P2P, then STOP_COPY on the same session */
	ASSERT_EQ(0, mt_mig_set_state(self->a, PC, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, mt_precopy_info(fd, &init, &dirty)) TH_LOG("in PRE_COPY");
	if (self->flags & F_P2P) {
		ASSERT_EQ(0, mt_mig_set_state(self->a, PCP2P, NULL));
		EXPECT_EQ(0, mt_precopy_info(fd, &init, &dirty)) TH_LOG("in PRE_COPY_P2P");
	}
	ASSERT_EQ(0, mt_mig_set_state(self->a, SC, NULL));
	INFO_REFUSED(fd, "in STOP_COPY after PRE_COPY");
	conf_close(&fd);

	/* a STOP_COPY session without PRE_COPY */
	ASSERT_EQ(0, conf_enter(self->a, SC, &fd));
	ASSERT_LE(0, fd);
	INFO_REFUSED(fd, "in STOP_COPY");
	conf_close(&fd);

	/* the fd of a session an arc ended: the device is in RUNNING(_P2P) */
	ASSERT_EQ(0, conf_enter(self->a, PC, &fd));
	ASSERT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));
	INFO_REFUSED(fd, "in RUNNING after PRE_COPY -> RUNNING");
	conf_close(&fd);
	if (self->flags & F_P2P) {
		ASSERT_EQ(0, conf_enter(self->a, PCP2P, &fd));
		ASSERT_EQ(0, mt_mig_set_state(self->a, RP2P, NULL));
		INFO_REFUSED(fd, "in RUNNING_P2P after PRE_COPY_P2P -> RUNNING_P2P");
		conf_close(&fd);
	}
	ASSERT_EQ(0, mt_dev_reset(self->a));
}

/* ---- PRECOPY_INFOv2 and REINIT (Linux 7.1) ----------------------------------------- */

/*
 * VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, as the 7.1 core implements it
 * (vfio_ioctl_device_feature_migration_precopy_info_v2()): a SET with no
 * data opts in; it is refused unless the device advertises PRE_COPY; GET is
 * refused; PROBE answers without opting in. Before 7.1 the feature number
 * reaches the driver (or nothing): a PRE_COPY device refusing it is "not
 * offered", and only the v1 rules apply to it. mtty_mig, the reference,
 * offers it on every kernel.
 */
TEST_F(vfio_mig, precopy_info_v2_opt_in_follows_the_core)
{
	int ret = mt_precopy_v2(self->a, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET, 0);

	if (!(self->flags & F_PC)) {
		EXPECT_TRUE(ret == -EINVAL || ret == -ENOTTY)
		TH_LOG("PROBE without PRE_COPY: %d", ret);
		ret = mt_precopy_v2(self->a, VFIO_DEVICE_FEATURE_SET, 0);
		EXPECT_TRUE(ret == -EINVAL || ret == -ENOTTY)
		TH_LOG("the opt-in without PRE_COPY must be refused: %d", ret);
		return;
	}
	if (ret == -EINVAL || ret == -ENOTTY) {
		TH_LOG("PRECOPY_INFOv2 not offered (%s): the v1 rules apply", strerror(-ret));
		EXPECT_NE(CONF_MTTY_MIG, variant->target) TH_LOG("the reference must offer it");
		return;
	}
	EXPECT_EQ(0, ret);
	EXPECT_EQ(-EINVAL, mt_precopy_v2(self->a, VFIO_DEVICE_FEATURE_GET, 0));
	EXPECT_EQ(-EINVAL, mt_precopy_v2(self->a, 0, 0)) TH_LOG("neither GET nor SET");
	EXPECT_EQ(0, mt_precopy_v2(self->a, VFIO_DEVICE_FEATURE_SET, 0));
	/* twice is harmless */
	EXPECT_EQ(0, mt_precopy_v2(self->a, VFIO_DEVICE_FEATURE_SET, 0));
}

/*
 * "VFIO_PRECOPY_INFO_REINIT can be reported only after userspace opts in to
 * VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2. Without this opt-in, the flags
 * field of struct vfio_precopy_info is reserved": without it a zero flags
 * input stays zero. After it, flags is an output holding only REINIT, and
 * with REINIT "dirty_bytes is also reset to zero". On mtty_mig a new
 * metadata_size in PRE_COPY is such a reconfiguration: REINIT is reported
 * once, initial_bytes grows by the new data and dirty_bytes is 0.
 */
TEST_F(vfio_mig, precopy_info_flags_are_output_only_after_the_opt_in)
{
	uint64_t init = 0, dirty = 0, init0 = 0;
	uint32_t out = ~0u;
	int fd = -1, ret;

	NEED(F_PC);
	ASSERT_EQ(0, mt_mig_set_state(self->a, PC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, mt_precopy_info_flags(fd, 0, &init, &dirty, &out));
	EXPECT_EQ(0, out) TH_LOG("REINIT reported without the opt-in");
	ASSERT_EQ(0, mt_precopy_info_flags(fd, ~0u, &init, &dirty, &out));
	if (out)
		TH_LOG("flags echoed back without the opt-in (0x%x): reserved, allowed", out);
	conf_close(&fd);
	ASSERT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));

	ret = mt_precopy_v2(self->a, VFIO_DEVICE_FEATURE_SET, 0);
	if (ret) {
		TH_LOG("PRECOPY_INFOv2 not offered (%s): the v1 rules apply", strerror(-ret));
		EXPECT_NE(CONF_MTTY_MIG, variant->target) TH_LOG("the reference must offer it");
		return;
	}
	ASSERT_EQ(0, mt_mig_set_state(self->a, PC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, mt_precopy_info_flags(fd, ~0u, &init0, &dirty, &out));
	EXPECT_EQ(0, out & ~(uint32_t)VFIO_PRECOPY_INFO_REINIT) TH_LOG("flags 0x%x", out);
	if (out & VFIO_PRECOPY_INFO_REINIT)
		EXPECT_EQ(0, dirty)
		TH_LOG("REINIT with dirty_bytes %llu", (unsigned long long)dirty);

	if (variant->target == CONF_MTTY_MIG) {
		char path[PATH_MAX + 32];

		/* the reference's reconfiguration: a new METADATA size */
		snprintf(path, sizeof(path), "%s/" MTTY_MIG_ATTR_METADATA_SIZE, self->dev[0].sysfs);
		ASSERT_EQ(0, mt_sysfs_write(path, "12345"));
		ASSERT_EQ(0, mt_precopy_info_flags(fd, 0, &init, &dirty, &out));
		EXPECT_EQ(VFIO_PRECOPY_INFO_REINIT, out);
		EXPECT_EQ(0, dirty);
		EXPECT_LT(init0, init)
		TH_LOG("new initial data: %llu then %llu", (unsigned long long)init0,
		       (unsigned long long)init);
		ASSERT_EQ(0, mt_precopy_info_flags(fd, 0, NULL, NULL, &out));
		EXPECT_EQ(0, out) TH_LOG("REINIT reported twice for one event");
	}
	conf_close(&fd);
	ASSERT_EQ(0, mt_dev_reset(self->a));
}

/*
 * "The dirty_bytes field tracks device state changes relative to data
 * previously retrieved. This field starts at zero and may increase as the
 * internal device state is modified". Stated as a fact, so a must: on entry
 * to PRE_COPY (or PRE_COPY_P2P) of an idle device nothing has been retrieved
 * and nothing changed, in every new session.
 */
TEST_F(vfio_mig, precopy_dirty_bytes_start_at_zero)
{
	static const uint32_t entries[][2] = { { RUN, PC }, { RP2P, PCP2P } };
	size_t i;
	int round;

	NEED(F_PC);
	for (i = 0; i < ARRAY_SIZE(entries); i++) {
		uint32_t from = entries[i][0], to = entries[i][1];

		if (!mt_fsm_supported(self->flags, to))
			continue;
		ASSERT_EQ(0, mt_dev_reset(self->a));
		/* twice: a second session starts at zero again */
		for (round = 0; round < 2; round++) {
			uint64_t init = 0, dirty = ~0ULL;
			int fd = -1;

			ASSERT_EQ(0, mt_mig_set_state(self->a, from, NULL));
			ASSERT_EQ(0, mt_mig_set_state(self->a, to, &fd));
			ASSERT_LE(0, fd);
			ASSERT_EQ(0, mt_precopy_info(fd, &init, &dirty));
			EXPECT_EQ(0, dirty)
				TH_LOG("%s -> %s, session %d: dirty_bytes %llu, initial_bytes %llu",
				       mt_state_name(from), mt_state_name(to), round + 1,
				       (unsigned long long)dirty, (unsigned long long)init);
			conf_close(&fd);
		}
	}
	ASSERT_EQ(0, mt_dev_reset(self->a));
}

/*
 * "The initial_bytes field indicates the amount of initial precopy data
 * available from the device. This field should have a non-zero initial value
 * and decrease as migration data is read from the device. It is recommended
 * to leave PRE_COPY for STOP_COPY only after this field reaches zero." All
 * shoulds: non-zero at first, never growing, shrinking while it is read, and
 * zero by the temporary end of stream.
 */
TEST_F_TIMEOUT(vfio_mig, precopy_initial_bytes_decrease_as_read, 120)
{
	static uint8_t buf[4096];
	uint64_t init = 0, dirty = 0, prev;
	size_t total = 0;
	bool grew = false, stuck = false;
	int fd = -1;

	NEED(F_PC);
	ASSERT_EQ(0, mt_mig_set_state(self->a, PC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, mt_precopy_info(fd, &init, &dirty));
	TH_LOG("on entry: initial_bytes %llu, dirty_bytes %llu", (unsigned long long)init,
	       (unsigned long long)dirty);
	if (!init)
		DEVIATION("initial_bytes is 0 on entry to PRE_COPY");
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		total += n;
		prev = init;
		ASSERT_EQ(0, mt_precopy_info(fd, &init, &dirty));
		if (init > prev && !grew) {
			grew = true;
			DEVIATION("initial_bytes grew from %llu to %llu after %zu bytes read",
				  (unsigned long long)prev, (unsigned long long)init, total);
		}
		if (prev && init == prev && !stuck) {
			stuck = true;
			DEVIATION("initial_bytes stayed %llu over a %zd-byte read",
				  (unsigned long long)init, n);
		}
		ASSERT_GT(CONF_MAX_STREAM, total) TH_LOG("no temporary end of stream");
	}
	TH_LOG("%zu bytes to the temporary end: initial_bytes %llu, dirty_bytes %llu", total,
	       (unsigned long long)init, (unsigned long long)dirty);
	if (init)
		DEVIATION("initial_bytes %llu at the temporary end of stream",
			  (unsigned long long)init);
	conf_close(&fd);
	ASSERT_EQ(0, mt_dev_reset(self->a));
}

/*
 * "During pre-copy the migration data FD has a temporary "end of stream"
 * that is reached when both initial_bytes and dirty_byte are zero. ... When
 * read() is done on this temporary end of stream the kernel driver should
 * return ENOMSG from read()." A should: 0 there is a deviation; another
 * error breaks the stream. On an idle device the end must come (dirty_bytes
 * "may increase as the internal device state is modified", and nothing
 * modifies it). Then the session goes on: "Moving between these states alters
 * what is streamed in session, but does not terminate or otherwise affect the
 * associated fd", and STOP_COPY ends it for good.
 */
TEST_F_TIMEOUT(vfio_mig, precopy_temporary_end_is_enomsg, 120)
{
	uint64_t init = ~0ULL, dirty = ~0ULL;
	size_t total = 0, rest = 0;
	int fd = -1, fd2 = -1, end = -1;

	NEED(F_PC);
	ASSERT_EQ(0, mt_mig_set_state(self->a, PC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, conf_drain(fd, NULL, CONF_MAX_STREAM, &total, &end))
		TH_LOG("no temporary end of stream on an idle device");
	if (end == 0) {
		DEVIATION("read() at the PRE_COPY temporary end of stream returned 0, not ENOMSG");
	} else {
		EXPECT_EQ(ENOMSG, end) TH_LOG("read() in PRE_COPY failed: %s", strerror(end));
	}
	ASSERT_EQ(0, mt_precopy_info(fd, &init, &dirty));
	if (init || dirty)
		DEVIATION("PRECOPY_INFO says %llu initial, %llu dirty bytes at the temporary end",
			  (unsigned long long)init, (unsigned long long)dirty);

	ASSERT_EQ(0, mt_mig_set_state(self->a, SC, &fd2));
	EXPECT_EQ(-1, fd2) TH_LOG("PRE_COPY -> STOP_COPY opened a new session");
	conf_close(&fd2);
	EXPECT_EQ(0, conf_drain(fd, NULL, CONF_MAX_STREAM, &rest, &end));
	EXPECT_EQ(0, end) TH_LOG("STOP_COPY after PRE_COPY ended with %s", strerror(end));
	TH_LOG("%zu bytes in PRE_COPY, %zu in STOP_COPY", total, rest);
	conf_close(&fd);
	EXPECT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	EXPECT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));
}

/* ---- MIG_DATA_SIZE ---------------------------------------------------------------------- */

/* "Note: Can be called on each device state." */
TEST_F(vfio_mig, mig_data_size_readable_in_every_state)
{
	uint32_t s;

	for (s = 0; s < NSTATES; s++) {
		uint64_t len = 0;
		int fd = -1;

		if (!mt_fsm_supported(self->flags, s))
			continue;
		ASSERT_EQ(0, conf_enter(self->a, s, &fd));
		EXPECT_EQ(0, mt_mig_data_size(self->a, &len)) TH_LOG("in %s", mt_state_name(s));
		TH_LOG("%s: stop_copy_length %llu", mt_state_name(s), (unsigned long long)len);
		conf_close(&fd);
	}
	ASSERT_EQ(0, mt_dev_reset(self->a));
}

/*
 * "Upon VFIO_DEVICE_FEATURE_GET read back the estimated data length that will
 * be required to complete stop copy." An estimate, so not a must: it should
 * bound what STOP_COPY then gives (userspace sizes buffers and the downtime
 * with it) and not overstate it wildly (here: at most twice plus a page).
 * Measured in STOP, where the device state cannot change, and after a
 * PRE_COPY phase for the rest of the stream.
 */
TEST_F_TIMEOUT(vfio_mig, mig_data_size_bounds_the_stop_copy_stream, 120)
{
	uint64_t est = 0;
	size_t total = 0;
	int fd = -1, end = -1;

	ASSERT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	ASSERT_EQ(0, mt_mig_data_size(self->a, &est));
	ASSERT_EQ(0, mt_mig_set_state(self->a, SC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, conf_drain(fd, NULL, CONF_MAX_STREAM, &total, &end));
	EXPECT_EQ(0, end);
	conf_close(&fd);
	TH_LOG("STOP: estimated %llu, STOP_COPY gave %zu bytes", (unsigned long long)est, total);
	if (total > est)
		DEVIATION("STOP_COPY gave %zu bytes, MIG_DATA_SIZE estimated %llu", total,
			  (unsigned long long)est);
	else if (est > 2 * (uint64_t)total + 4096)
		DEVIATION("MIG_DATA_SIZE estimated %llu for a %zu-byte STOP_COPY stream",
			  (unsigned long long)est, total);

	if (mt_fsm_supported(self->flags, PC)) {
		ASSERT_EQ(0, conf_enter(self->a, PC, &fd));
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, conf_drain(fd, NULL, CONF_MAX_STREAM, NULL, &end));
		ASSERT_EQ(0, mt_mig_data_size(self->a, &est));
		ASSERT_EQ(0, mt_mig_set_state(self->a, SC, NULL));
		ASSERT_EQ(0, conf_drain(fd, NULL, CONF_MAX_STREAM, &total, &end));
		EXPECT_EQ(0, end);
		conf_close(&fd);
		TH_LOG("after PRE_COPY: estimated %llu, STOP_COPY gave %zu bytes",
		       (unsigned long long)est, total);
		if (total > est)
			DEVIATION("after PRE_COPY, STOP_COPY gave %zu bytes, estimated %llu",
				  total, (unsigned long long)est);
	}
	ASSERT_EQ(0, mt_dev_reset(self->a));
}

/* ---- round trips ------------------------------------------------------------------------- */

/* the mtty_mig digest of a device, or "" (other drivers have none) */
static void conf_digest(const struct conf_dev *d, char *buf, size_t len)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/" MTTY_MIG_ATTR_DIGEST, d->sysfs);
	if (mt_sysfs_read(path, buf, len))
		buf[0] = '\0';
}

#define NEED_TWO() do { \
	if (self->ndev < 2) \
		SKIP(return, "needs a second device of the same type: -d A -d B"); \
} while (0)

/*
 * "The data stream fed into the data_fd should be taken from the data
 * transfer output of a single FD during saving from a compatible device." and
 * "The user is not required to preserve buffer segmentation when writing the
 * data stream during the RESUMING operation." A stream saved from A and
 * written into B in other pieces completes RESUMING -> STOP; then both run
 * and both migrate again.
 */
TEST_F_TIMEOUT(vfio_mig, round_trip_stop_copy_between_two_devices, 120)
{
	char da[128] = "", db[128] = "";
	struct mt_buf s = { 0 };
	int fd = -1, end = -1;

	NEED_TWO();
	ASSERT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	conf_digest(&self->dev[0], da, sizeof(da));
	ASSERT_EQ(0, mt_mig_set_state(self->a, SC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, conf_drain(fd, &s, CONF_MAX_STREAM, NULL, &end));
	ASSERT_EQ(0, end);
	conf_close(&fd);
	ASSERT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));

	ASSERT_EQ(0, mt_mig_set_state(self->b, STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->b, RES, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, conf_write_stream(fd, s.p, s.len));
	EXPECT_EQ(0, mt_mig_set_state(self->b, STOP, NULL)) TH_LOG("B refused A's stream");
	conf_close(&fd);
	conf_digest(&self->dev[1], db, sizeof(db));
	EXPECT_STREQ(da, db) TH_LOG("the device state did not arrive");
	EXPECT_EQ(0, mt_mig_set_state(self->b, RUN, NULL));
	EXPECT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));

	EXPECT_EQ(0, conf_save(self->a, NULL));
	EXPECT_EQ(0, conf_save(self->b, NULL));
	mt_buf_free(&s);
}

/*
 * The same through PRE_COPY, written into B as it is read (a live migration):
 * "PRE_COPY, PRE_COPY_P2P and STOP_COPY form the "saving group" of states
 * which share a data transfer session", so the one fd's whole output, from
 * PRE_COPY to the end in STOP_COPY, is the stream.
 */
TEST_F_TIMEOUT(vfio_mig, round_trip_through_precopy, 120)
{
	static uint8_t buf[CONF_READ_CHUNK];
	int sfd = -1, dfd = -1, phase;
	size_t moved = 0;

	NEED(F_PC);
	NEED_TWO();
	ASSERT_EQ(0, mt_mig_set_state(self->a, PC, &sfd));
	ASSERT_LE(0, sfd);
	ASSERT_EQ(0, mt_mig_set_state(self->b, STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->b, RES, &dfd));
	ASSERT_LE(0, dfd);
	for (phase = 0; phase < 2; phase++) {
		if (phase)
			ASSERT_EQ(0, mt_mig_set_state(self->a, SC, NULL));
		for (;;) {
			ssize_t n = read(sfd, buf, sizeof(buf));

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && phase == 0 && errno == ENOMSG)
				break;
			ASSERT_LE(0, n) TH_LOG("read: %s", strerror(errno));
			if (n == 0)
				break;
			ASSERT_EQ(0, conf_write_stream(dfd, buf, n))
				TH_LOG("after %zu bytes", moved);
			moved += n;
			ASSERT_GT(CONF_MAX_STREAM, moved);
		}
	}
	conf_close(&sfd);
	TH_LOG("%zu bytes moved", moved);
	EXPECT_EQ(0, mt_mig_set_state(self->b, STOP, NULL)) TH_LOG("B refused A's stream");
	conf_close(&dfd);
	EXPECT_EQ(0, mt_mig_set_state(self->b, RUN, NULL));
	EXPECT_EQ(0, mt_mig_set_state(self->a, STOP, NULL));
	EXPECT_EQ(0, mt_mig_set_state(self->a, RUN, NULL));
	EXPECT_EQ(0, conf_save(self->a, NULL));
	EXPECT_EQ(0, conf_save(self->b, NULL));
}

/* ---- bad streams ------------------------------------------------------------------------- */

enum conf_bad { BAD_HALF, BAD_LAST_BYTE, BAD_GARBAGE, BAD_TWICE };

static const char *const conf_bad_name[] = {
	[BAD_HALF] = "truncated to half",
	[BAD_LAST_BYTE] = "truncated by its last byte",
	[BAD_GARBAGE] = "random",
	[BAD_TWICE] = "replayed (written twice)",
};

/*
 * "If the user provided data is found to be incomplete, inconsistent, or
 * otherwise invalid, the migration driver must fail the SET_STATE ioctl and
 * optionally go to the ERROR state". The driver "should ... perform final
 * validity and consistency checking", so a bad stream is refused by a failed
 * write() or, at the latest, by RESUMING -> STOP; accepting it is a
 * deviation (nothing obliges a driver to recognise every bad stream). What
 * is a must: the failed SET leaves RESUMING or ERROR, and "To recover from
 * ERROR VFIO_DEVICE_RESET must be used to return the device_state back to
 * RUNNING": after the reset the device runs, migrates and resumes again.
 */
static void conf_bad_stream(struct __test_metadata *_metadata, FIXTURE_DATA(vfio_mig) *self,
			    enum conf_bad kind)
{
	struct mt_buf s = { 0 }, bad = { 0 };
	int fd = -1, werr, serr;
	uint32_t state;

	ASSERT_EQ(0, conf_save(self->a, &s));
	ASSERT_LT(1, s.len);
	switch (kind) {
	case BAD_HALF:
		ASSERT_EQ(0, mt_buf_put(&bad, s.p, s.len / 2));
		break;
	case BAD_LAST_BYTE:
		ASSERT_EQ(0, mt_buf_put(&bad, s.p, s.len - 1));
		break;
	case BAD_GARBAGE:
		ASSERT_EQ(0, mt_buf_put(&bad, s.p, s.len));
		for (size_t off = 0; off < bad.len;) {
			ssize_t n = getrandom(bad.p + off, bad.len - off, 0);

			ASSERT_LT(0, n);
			off += n;
		}
		break;
	case BAD_TWICE:
		ASSERT_EQ(0, mt_buf_put(&bad, s.p, s.len));
		ASSERT_EQ(0, mt_buf_put(&bad, s.p, s.len));
		break;
	}

	ASSERT_EQ(0, mt_dev_reset(self->b));
	ASSERT_EQ(0, mt_mig_set_state(self->b, STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->b, RES, &fd));
	ASSERT_LE(0, fd);
	werr = conf_write_stream(fd, bad.p, bad.len);
	serr = mt_mig_set_state(self->b, STOP, NULL);
	ASSERT_EQ(0, conf_state(self->b, &state));
	conf_close(&fd);
	TH_LOG("%s stream of %zu bytes: write %s, RESUMING -> STOP %s, now %s",
	       conf_bad_name[kind], bad.len, werr ? strerror(-werr) : "ok",
	       serr ? strerror(-serr) : "ok", mt_state_name(state));
	if (!werr && !serr) {
		DEVIATION("a %s stream was accepted", conf_bad_name[kind]);
		EXPECT_EQ(STOP, state);
	} else if (serr) {
		EXPECT_TRUE(state == RES || state == ERR)
			TH_LOG("failed RESUMING -> STOP left %s", mt_state_name(state));
	}

	ASSERT_EQ(0, mt_dev_reset(self->b));
	ASSERT_EQ(0, conf_state(self->b, &state));
	EXPECT_EQ(RUN, state) TH_LOG("reset after a %s stream left %s", conf_bad_name[kind],
				     mt_state_name(state));
	EXPECT_EQ(0, conf_save(self->b, NULL)) TH_LOG("no migration after a bad stream");
	EXPECT_EQ(0, conf_resume(self->b, s.p, s.len)) TH_LOG("no good resume after a bad one");
	mt_buf_free(&bad);
	mt_buf_free(&s);
}

TEST_F_TIMEOUT(vfio_mig, truncated_stream_is_refused, 120)
{
	conf_bad_stream(_metadata, self, BAD_HALF);
	conf_bad_stream(_metadata, self, BAD_LAST_BYTE);
}

TEST_F_TIMEOUT(vfio_mig, garbage_stream_is_refused, 120)
{
	conf_bad_stream(_metadata, self, BAD_GARBAGE);
}

TEST_F_TIMEOUT(vfio_mig, replayed_stream_is_refused, 120)
{
	conf_bad_stream(_metadata, self, BAD_TWICE);
}

/* ---- command line -------------------------------------------------------------------------- */

static bool conf_is_uuid(const char *s)
{
	int i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	}
	return true;
}

static bool conf_is_bdf(const char *s)
{
	unsigned int dom, bus, dev, fn;
	char tail;

	return sscanf(s, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4 ||
	       sscanf(s, "%x:%x.%x%c", &bus, &dev, &fn, &tail) == 3;
}

/* a device spec to its sysfs directory; 0 or -errno with a message printed */
static int conf_resolve(const char *spec, char *out, size_t len)
{
	char path[PATH_MAX], link[PATH_MAX + 16], drv[PATH_MAX];
	ssize_t n;
	int i;

	if (conf_is_uuid(spec)) {
		snprintf(path, sizeof(path), MT_DEVICES "/%s", spec);
		for (i = strlen(MT_DEVICES) + 1; path[i]; i++)
			path[i] = (char)tolower((unsigned char)path[i]);
	} else if (spec[0] != '/' && conf_is_bdf(spec)) {
		unsigned int dom = 0, bus, dev, fn;

		if (sscanf(spec, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4) {
			dom = 0;
			if (sscanf(spec, "%x:%x.%x", &bus, &dev, &fn) != 3)
				return -EINVAL; /* conf_is_bdf() said it would */
		}
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%04x:%02x:%02x.%x", dom, bus,
			 dev, fn);
		snprintf(link, sizeof(link), "%s/driver", path);
		n = readlink(link, drv, sizeof(drv) - 1);
		if (n < 0) {
			fprintf(stderr, "%s: no driver bound: bind it to vfio-pci first\n", spec);
			return -ENODEV;
		}
		drv[n] = '\0';
		if (!strstr(basename(drv), "vfio")) {
			fprintf(stderr, "%s: bound to %s, not to vfio-pci\n", spec, basename(drv));
			return -ENODEV;
		}
	} else {
		snprintf(path, sizeof(path), "%s", spec);
	}
	if (!realpath(path, out) || strlen(out) >= len) {
		fprintf(stderr, "%s: no such device (%s)\n", spec, path);
		return -ENOENT;
	}
	snprintf(link, sizeof(link), "%s/iommu_group", out);
	if (access(link, F_OK)) {
		fprintf(stderr, "%s: %s has no IOMMU group: not a VFIO device\n", spec, out);
		return -ENODEV;
	}
	return 0;
}

static void conf_usage(const char *prog)
{
	fprintf(stderr,
		"Usage: %s [-d DEVICE [-d DEVICE2]] [harness options]\n"
		"  -d, --device DEVICE  a VFIO device that advertises migration: an mdev\n"
		"                       UUID, a sysfs device path, or a PCI address bound\n"
		"                       to vfio-pci. A second one (same type) is the\n"
		"                       destination of the round trips.\n"
		"  Environment: VFIO_MIG_CONFORMANCE_DEV, VFIO_MIG_CONFORMANCE_DEV2 (when no\n"
		"  -d is given); under run_kselftest.sh, KSELFTEST_VFIO_MIG_CONFORMANCE_ARGS.\n"
		"  With no device, it creates mtty_mig and mtty sample instances itself.\n"
		"  Trailing arguments are devices too.\n\n",
		prog);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *specs[3] = { NULL };
	char **hargv;
	int nspec = 0, hargc = 0, opt, i;

	/* the harness's options plus -V twice */
	hargv = calloc(argc + 5, sizeof(*hargv));
	if (!hargv)
		ksft_exit_fail_msg("out of memory\n");
	hargv[hargc++] = argv[0];
	hargv[hargc++] = "-V";
	hargv[hargc++] = NULL; /* filled below */
	hargv[hargc++] = "-V";
	hargv[hargc++] = NULL;
	while ((opt = getopt_long(argc, argv, "d:hlF:f:V:v:t:T:r:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			if (nspec == 2)
				ksft_exit_fail_msg("at most two devices\n");
			specs[nspec++] = optarg;
			break;
		case 'h':
			conf_usage(argv[0]);
			hargv[hargc++] = "-h";
			break;
		case 'l':
			hargv[hargc++] = "-l";
			break;
		case '?':
			conf_usage(argv[0]);
			return KSFT_FAIL;
		default: {
			char *o = malloc(3);

			if (!o)
				ksft_exit_fail_msg("out of memory\n");
			snprintf(o, 3, "-%c", opt);
			hargv[hargc++] = o;
			hargv[hargc++] = optarg;
			break;
		}
		}
	}
	for (i = optind; i < argc; i++) {
		if (nspec == 2)
			ksft_exit_fail_msg("at most two devices\n");
		specs[nspec++] = argv[i];
	}
	if (!nspec && getenv("VFIO_MIG_CONFORMANCE_DEV") && *getenv("VFIO_MIG_CONFORMANCE_DEV")) {
		specs[nspec++] = getenv("VFIO_MIG_CONFORMANCE_DEV");
		if (getenv("VFIO_MIG_CONFORMANCE_DEV2") && *getenv("VFIO_MIG_CONFORMANCE_DEV2"))
			specs[nspec++] = getenv("VFIO_MIG_CONFORMANCE_DEV2");
	}
	for (i = 0; i < nspec; i++)
		if (conf_resolve(specs[i], conf_named[i], sizeof(conf_named[i])))
			ksft_exit_fail_msg("cannot use device '%s'\n", specs[i]);
	conf_nnamed = nspec;
	if (nspec == 2 && !strcmp(conf_named[0], conf_named[1]))
		ksft_exit_fail_msg("the two devices are the same: %s\n", conf_named[0]);

	/* run the named devices, or the two built-in targets */
	if (nspec) {
		hargv[2] = "mtty_mig";
		hargv[4] = "mtty_sample";
	} else {
		hargv[2] = "named";
		hargv[4] = "named";
	}
	optind = 0; /* the harness parses its own options again */
	return test_harness_run(hargc, hargv);
}
