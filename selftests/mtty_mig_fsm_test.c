// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration state machine of mtty_mig against the uAPI's own tables.
 *
 * The expected behaviour is data: the next-hop table of
 * vfio_mig_get_next_state() (include/uapi/linux/vfio.h documents it, every
 * driver relies on it; lib/fsm.c) and the list of single arcs a driver with
 * STOP_COPY | P2P | PRE_COPY must implement. Two walks use it:
 *
 * - fsm.<from>.all_arcs: from each reachable state, request every one of the
 *   eight states; the request succeeds or fails exactly as the table says,
 *   the state reported afterwards is the target (or the unchanged source on
 *   failure), and a data_fd comes back exactly when the path opens a new
 *   migration session.
 * - fsm_bfs_walk_single_arcs: a breadth-first walk from RUNNING over the
 *   single arcs only, each state reached by its shortest arc path, every step
 *   checked.
 *
 * ERROR cannot be entered through the uAPI without a failing device, so it
 * is only ever a target here (and must be refused).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"
#include "lib/fsm.h"

#define NSTATES MT_FSM_NSTATES

/* the single arcs a STOP_COPY | P2P | PRE_COPY driver implements */
static const uint32_t arcs[][2] = {
	{ RES, STOP },	 { STOP, RES },	    { STOP, SC },    { SC, STOP },
	{ RUN, RP2P },	 { RP2P, RUN },	    { RP2P, STOP },  { STOP, RP2P },
	{ RUN, PC },	 { PC, RUN },	    { PC, PCP2P },   { PCP2P, PC },
	{ PCP2P, RP2P }, { PCP2P, SC },	    { RP2P, PCP2P },
};

/* arcs that open a new migration session and hand back a data_fd */
static bool opens_session(uint32_t from, uint32_t to)
{
	return (from == RUN && to == PC) || (from == RP2P && to == PCP2P) ||
	       (from == STOP && to == SC) || (from == STOP && to == RES);
}

/*
 * Expected outcome of requesting @to in @from: 0 and whether a data_fd comes
 * back, -EINVAL for a refused request, or 1 when the path leaves RESUMING
 * (needs a complete stream: with nothing written the driver must refuse and
 * go to ERROR).
 */
static int expect(uint32_t from, uint32_t to, bool *fd)
{
	uint32_t path[NSTATES];
	int n = mt_fsm_path(MT_FSM_ALL_FLAGS, from, to, path);

	*fd = false;
	if (n < 0)
		return -EINVAL;
	/* RESUMING is only ever the first state of a path, or its target */
	if (n && from == RES)
		return 1;
	*fd = n && opens_session(n > 1 ? path[n - 2] : from, to);
	return 0;
}

FIXTURE(fsm)
{
	struct mt_inst d;
};

FIXTURE_VARIANT(fsm)
{
	uint32_t from;
};

FIXTURE_VARIANT_ADD(fsm, from_stop) { .from = STOP };
FIXTURE_VARIANT_ADD(fsm, from_running) { .from = RUN };
FIXTURE_VARIANT_ADD(fsm, from_stop_copy) { .from = SC };
FIXTURE_VARIANT_ADD(fsm, from_resuming) { .from = RES };
FIXTURE_VARIANT_ADD(fsm, from_running_p2p) { .from = RP2P };
FIXTURE_VARIANT_ADD(fsm, from_pre_copy) { .from = PC };
FIXTURE_VARIANT_ADD(fsm, from_pre_copy_p2p) { .from = PCP2P };

FIXTURE_SETUP(fsm)
{
	mt_inst_init(&self->d);
	ASSERT_EQ(0, mt_module_load());
	/* small memory: the walk is about states, not data */
	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-1", 1048576, NULL));
}

FIXTURE_TEARDOWN(fsm)
{
	EXPECT_EQ(0, mt_inst_down(&self->d));
}

TEST_F(fsm, all_arcs)
{
	int dev = self->d.v.device;
	uint32_t to;

	for (to = 0; to < NSTATES; to++) {
		uint32_t from = variant->from, state = 0xff;
		int src_fd = -1, fd = -1, ret, want;
		bool want_fd;

		ASSERT_EQ(0, mt_dev_reset(dev));
		ASSERT_EQ(0, mt_mig_get_state(dev, &state));
		ASSERT_EQ(RUN, state) TH_LOG("reset must return to RUNNING");
		ASSERT_EQ(0, mt_mig_set_state(dev, from, &src_fd));
		ASSERT_EQ(0, mt_mig_get_state(dev, &state));
		ASSERT_EQ(from, state);

		want = expect(from, to, &want_fd);
		ret = mt_mig_set_state(dev, to, &fd);
		ASSERT_EQ(0, mt_mig_get_state(dev, &state));
		if (want == 0) {
			EXPECT_EQ(0, ret) TH_LOG("%s -> %s", mt_state_name(from), mt_state_name(to));
			EXPECT_EQ(to, state) TH_LOG("%s -> %s", mt_state_name(from),
						    mt_state_name(to));
			if (want_fd) {
				EXPECT_LE(0, fd) TH_LOG("%s -> %s: no data_fd", mt_state_name(from),
							mt_state_name(to));
			} else {
				EXPECT_EQ(-1, fd) TH_LOG("%s -> %s: unexpected data_fd",
							 mt_state_name(from), mt_state_name(to));
			}
		} else if (want == -EINVAL) {
			EXPECT_EQ(-EINVAL, ret) TH_LOG("%s -> %s must be refused",
						       mt_state_name(from), mt_state_name(to));
			EXPECT_EQ(from, state) TH_LOG("%s -> %s: refused but state is %s",
						      mt_state_name(from), mt_state_name(to),
						      mt_state_name(state));
		} else {
			/*
			 * Leaving RESUMING with an empty stream: refused, and
			 * the device is in ERROR (its memory cannot be
			 * trusted); only VFIO_DEVICE_RESET leaves ERROR, as
			 * the next iteration's reset proves.
			 */
			EXPECT_GT(0, ret) TH_LOG("RESUMING -> %s with no data must fail",
						 mt_state_name(to));
			EXPECT_EQ(ERR, state) TH_LOG("after a refused RESUMING -> %s: %s",
						     mt_state_name(to), mt_state_name(state));
			EXPECT_EQ(-EINVAL, mt_mig_set_state(dev, RUN, NULL));
		}
		if (fd >= 0)
			close(fd);
		if (src_fd >= 0)
			close(src_fd);
	}
}

FIXTURE(walk)
{
	struct mt_inst d;
};

FIXTURE_SETUP(walk)
{
	mt_inst_init(&self->d);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-2", 1048576, NULL));
}

FIXTURE_TEARDOWN(walk)
{
	EXPECT_EQ(0, mt_inst_down(&self->d));
}

TEST_F(walk, bfs_single_arcs_reach_every_state)
{
	int dev = self->d.v.device, head = 0, tail = 0, i, reached = 0;
	uint32_t queue[NSTATES], prev[NSTATES];
	bool seen[NSTATES] = { false };

	/* breadth-first over the single arcs, from RUNNING */
	queue[tail++] = RUN;
	seen[RUN] = true;
	prev[RUN] = RUN;
	while (head < tail) {
		uint32_t s = queue[head++];
		size_t a;

		for (a = 0; a < sizeof(arcs) / sizeof(arcs[0]); a++) {
			if (arcs[a][0] != s || seen[arcs[a][1]])
				continue;
			seen[arcs[a][1]] = true;
			prev[arcs[a][1]] = s;
			queue[tail++] = arcs[a][1];
		}
	}
	/* every state but ERROR is reachable by single arcs */
	for (i = 0; i < NSTATES; i++)
		EXPECT_EQ(i != ERR, seen[i]) TH_LOG("state %s", mt_state_name(i));

	/* replay each state's shortest arc path on the device, step by step */
	for (i = 0; i < tail; i++) {
		uint32_t path[NSTATES], s = queue[i], state;
		int n = 0, k, fds[NSTATES];

		while (s != RUN) {
			path[n++] = s;
			s = prev[s];
		}
		ASSERT_EQ(0, mt_dev_reset(dev));
		for (k = n - 1; k >= 0; k--) {
			uint32_t from = k == n - 1 ? RUN : path[k + 1];
			int fd = -1;

			/* RESUMING -> STOP is not on any shortest path from RUNNING */
			ASSERT_EQ(0, mt_mig_set_state(dev, path[k], &fd))
				TH_LOG("arc %s -> %s", mt_state_name(from), mt_state_name(path[k]));
			ASSERT_EQ(0, mt_mig_get_state(dev, &state));
			ASSERT_EQ(path[k], state);
			EXPECT_EQ(opens_session(from, path[k]), fd >= 0)
				TH_LOG("arc %s -> %s data_fd %d", mt_state_name(from),
				       mt_state_name(path[k]), fd);
			fds[k] = fd;
		}
		for (k = 0; k < n; k++)
			if (fds[k] >= 0)
				close(fds[k]);
		reached++;
	}
	EXPECT_EQ(NSTATES - 1, reached);
}

TEST_F(walk, every_single_arc_succeeds)
{
	int dev = self->d.v.device;
	size_t a;

	for (a = 0; a < sizeof(arcs) / sizeof(arcs[0]); a++) {
		uint32_t from = arcs[a][0], to = arcs[a][1], state;
		int fd = -1, fd2 = -1;

		if (from == RES)
			continue; /* needs a complete stream: mtty_mig_stream_test */
		ASSERT_EQ(0, mt_dev_reset(dev));
		ASSERT_EQ(0, mt_mig_set_state(dev, from, &fd));
		ASSERT_EQ(0, mt_mig_set_state(dev, to, &fd2))
			TH_LOG("arc %s -> %s", mt_state_name(from), mt_state_name(to));
		ASSERT_EQ(0, mt_mig_get_state(dev, &state));
		EXPECT_EQ(to, state);
		if (fd >= 0)
			close(fd);
		if (fd2 >= 0)
			close(fd2);
	}
}

TEST_F(walk, saving_session_fd_dies_when_session_ends)
{
	int dev = self->d.v.device, fd = -1;
	char buf[64];

	/* RUNNING -> PRE_COPY opens a session; PRE_COPY -> RUNNING ends it */
	ASSERT_EQ(0, mt_mig_set_state(dev, PC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_LT(0, read(fd, buf, sizeof(buf)));
	ASSERT_EQ(0, mt_mig_set_state(dev, RUN, NULL));
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
	close(fd);

	/* STOP_COPY -> STOP ends it too */
	ASSERT_EQ(0, mt_mig_set_state(dev, SC, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, mt_mig_set_state(dev, STOP, NULL));
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
	close(fd);
}

TEST_F(walk, data_fd_is_a_stream)
{
	int dev = self->d.v.device, fd = -1;
	char buf[16];

	ASSERT_EQ(0, mt_mig_set_state(dev, PC, &fd));
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, pread(fd, buf, sizeof(buf), 0));
	EXPECT_EQ(ESPIPE, errno);
	EXPECT_EQ(-1, lseek(fd, 0, SEEK_SET));
	EXPECT_EQ(ESPIPE, errno);
	/* a saving fd is read-only */
	EXPECT_EQ(-1, write(fd, buf, sizeof(buf)));
	EXPECT_EQ(EBADF, errno);
	EXPECT_NE(0, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
}

TEST_F(walk, error_state_cannot_be_requested)
{
	uint32_t state;

	EXPECT_EQ(-EINVAL, mt_mig_set_state(self->d.v.device, ERR, NULL));
	ASSERT_EQ(0, mt_mig_get_state(self->d.v.device, &state));
	EXPECT_EQ(RUN, state);
	/* out of range states too */
	EXPECT_EQ(-EINVAL, mt_mig_set_state(self->d.v.device, 8, NULL));
	EXPECT_EQ(-EINVAL, mt_mig_set_state(self->d.v.device, 0xffffffffu, NULL));
	ASSERT_EQ(0, mt_mig_get_state(self->d.v.device, &state));
	EXPECT_EQ(RUN, state);
}

TEST_HARNESS_MAIN
