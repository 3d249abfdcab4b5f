// SPDX-License-Identifier: GPL-2.0-only
/*
 * mtty_mig's tracepoints: FSM steps and data_fd I/O show up in the trace
 * buffer with the values of the call that produced them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include <linux/mtty_mig.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"

#define TRACEFS "/sys/kernel/tracing"

/* read the whole trace buffer into a NUL-terminated string */
static char *trace_text(void)
{
	struct mt_buf b = { 0 };
	char chunk[4096];
	ssize_t n;
	int fd;

	fd = open(TRACEFS "/trace", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (mt_buf_put(&b, chunk, n))
			break;
	close(fd);
	if (n < 0 || mt_buf_put(&b, "", 1)) {
		mt_buf_free(&b);
		return NULL;
	}
	return (char *)b.p;
}

FIXTURE(trace)
{
	struct mt_inst d;
};

FIXTURE_SETUP(trace)
{
	mt_inst_init(&self->d);
	if (access(TRACEFS "/events", F_OK))
		ASSERT_EQ(0, mount("tracefs", TRACEFS, "tracefs", 0, NULL));
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-1", 1 << 20, NULL));
	ASSERT_EQ(0, mt_sysfs_write(TRACEFS "/tracing_on", "0"));
	ASSERT_EQ(0, mt_sysfs_write(TRACEFS "/events/mtty_mig/enable", "1"));
	ASSERT_EQ(0, mt_sysfs_write(TRACEFS "/tracing_on", "1"));
}

FIXTURE_TEARDOWN(trace)
{
	mt_sysfs_write(TRACEFS "/events/mtty_mig/enable", "0");
	EXPECT_EQ(0, mt_inst_down(&self->d));
}

TEST_F(trace, transitions_and_data_io_are_traced)
{
	char buf[100], want[160], *t;
	int fd = -1;

	uint64_t initial = 0;
	size_t got = 0;

	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	ASSERT_EQ(100, read(fd, buf, sizeof(buf)));
	/* the rest of the initial data: metadata, then the first image's PAGEs */
	ASSERT_EQ(0, mt_precopy_info(fd, &initial, NULL));
	while (got < initial) {
		static char chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));

		ASSERT_LT(0, n);
		got += n;
	}
	/* a refused step is traced with its error */
	ASSERT_EQ(0, mt_fault_write(self->d.uuid, MTTY_MIG_FAULT_FAIL_STATE, "running 5"));
	ASSERT_EQ(-EIO, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mt_sysfs_write(TRACEFS "/tracing_on", "0"));
	close(fd);

	t = trace_text();
	ASSERT_NE(NULL, t);
	snprintf(want, sizeof(want), "mtty_mig_transition: %s RUNNING -> PRE_COPY ret=0",
		 self->d.uuid);
	EXPECT_NE(NULL, strstr(t, want)) TH_LOG("no '%s' in:\n%s", want, t);
	snprintf(want, sizeof(want), "mtty_mig_transition: %s PRE_COPY -> RUNNING ret=-5",
		 self->d.uuid);
	EXPECT_NE(NULL, strstr(t, want)) TH_LOG("no '%s'", want);
	snprintf(want, sizeof(want), "mtty_mig_save_read: %s len=100 pos=100 ret=100",
		 self->d.uuid);
	EXPECT_NE(NULL, strstr(t, want)) TH_LOG("no '%s'", want);
	/* records 0 and 1 are HEADER and METADATA; record 2 is the first PAGE */
	snprintf(want, sizeof(want), "mtty_mig_record: %s save type=%u seq=2", self->d.uuid,
		 MTTY_MIG_REC_PAGE);
	EXPECT_NE(NULL, strstr(t, want)) TH_LOG("no '%s'", want);
	free(t);
}

TEST_HARNESS_MAIN
