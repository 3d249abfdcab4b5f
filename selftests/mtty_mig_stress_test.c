// SPDX-License-Identifier: GPL-2.0-only
/*
 * Concurrency stress for the debug-kernel lane (lockdep, KASAN, kmemleak):
 * two mtty_mig instances, P2P peers of each other both ways, with the
 * internal engine at the maximum dirty_rate and p2p_rate, while threads do
 * at the same time, for MTTY_STRESS_SECONDS (default 20):
 *
 * - state: walk the whole FSM (RUNNING, RUNNING_P2P, PRE_COPY with
 *   PRECOPY_INFO and data_fd reads, PRE_COPY_P2P, STOP_COPY read to the end,
 *   STOP, RESUMING with a valid stream saved at setup, back to RUNNING),
 *   mixed with random targets, ERROR included (always refused);
 * - peer: rewrite "peer" (link, unlink, relink) and read it back;
 * - sysfs: read digest, state and the counters;
 * - reset: VFIO_DEVICE_RESET, MIG_DATA_SIZE and the state of both devices;
 * - life: close and reopen a device, or remove its instance and create it
 *   again with the same UUID (and its settings and links).
 *
 * Each syscall's result is checked against the list of results the uAPI
 * allows at that point (ALLOW() below); every wait is bounded (locks with a
 * deadline, data_fd loops with a read budget, joins with a deadline).  At
 * the end both devices must still migrate one into the other cleanly: the
 * two-phase P2P stop and start counts no violation and the digests match.
 * The process must not leak a file descriptor.  Lockdep, KASAN and
 * kmemleak in the kernel catch what a syscall result cannot show.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"
#include <linux/mtty_mig.h>

#define STRESS_TYPE		MTTY_MIG_TYPE_2
#define STRESS_MEM		(256 * 1024ULL)
#define STRESS_SECONDS		20
#define STRESS_SECONDS_MAX	480	/* the test's harness timeout is 600 s */
#define NR_INST			2
#define STATE_THREADS_PER_INST	2
#define LOCK_WAIT_S		30	/* a device op holding a lock longer hangs */
#define JOIN_GRACE_S		60	/* after the deadline, every thread ends */
#define READ_CHUNK		(64 * 1024)
#define PRECOPY_READS_MAX	32	/* the engine dirties pages forever */
#define STOP_COPY_READS_MAX	4096	/* a stopped 256 KiB device ends far sooner */
#define WAIT_S			30.0

struct inst {
	char uuid[MT_UUID_LEN];
	/*
	 * Readers: every use of v.device.  Writers: close/reopen and
	 * remove/recreate, so a device fd is never closed (and its number
	 * reused) under a thread still using it.  Data fds are owned by the
	 * thread that got them and are never protected: using them across a
	 * close, reset or removal is the point.
	 */
	pthread_rwlock_t lock;
	struct mt_vfio v;
	bool exists;
	struct mt_buf stream;	/* a valid stream of this kind of device */
};

struct stress;

struct thr {
	struct stress *s;
	pthread_t tid;
	bool started;
	const char *name;
	int inst;
	uint64_t rng;
	_Atomic(const char *) op;	/* what it is doing, for a hang report */
	atomic_ulong ops;
	int save_fd, resume_fd;
	bool fresh_fd;	/* the last state_set() opened a data_fd */
};

#define NR_THREADS (NR_INST * STATE_THREADS_PER_INST + 4)
#define NR_ERRNO 140

struct stress {
	struct inst in[NR_INST];
	atomic_bool stop;
	atomic_int failures;
	pthread_mutex_t why_lock;
	char why[1024];
	atomic_ulong errs[NR_ERRNO];	/* allowed errors seen, by errno */
	atomic_ulong removals, reopens, resets, resumed, stop_copies;
	struct thr t[NR_THREADS];
};

/*
 * Record a failure and go on: the run is bounded anyway, and every distinct
 * problem of one run (up to the first few) is worth its report.
 */
static void fail(struct thr *t, const char *fmt, ...)
{
	struct stress *s = t->s;
	va_list ap;

	char msg[256];
	int n;

	n = snprintf(msg, sizeof(msg), "%s: ", t->name);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	va_end(ap);
	atomic_fetch_add(&s->failures, 1);
	/* the first few distinct ones */
	pthread_mutex_lock(&s->why_lock);
	if (!strstr(s->why, msg) && strlen(s->why) + strlen(msg) + 3 < sizeof(s->why)) {
		if (*s->why)
			strcat(s->why, "; ");
		strcat(s->why, msg);
	}
	pthread_mutex_unlock(&s->why_lock);
}

/*
 * @ret (0, a count or a negative errno) must be one of the @nr allowed
 * results in @ok; a positive @ret is allowed when @ok lists 1.  Returns
 * whether it was allowed; a disallowed one fails the test.
 */
static bool allowed(struct thr *t, const char *what, long ret, const int *ok, size_t nr)
{
	size_t i;

	for (i = 0; i < nr; i++) {
		if (ret == ok[i] || (ret > 0 && ok[i] == 1)) {
			if (ret < 0 && -ret < NR_ERRNO)
				atomic_fetch_add(&t->s->errs[-ret], 1);
			return true;
		}
	}
	fail(t, "%s returned %ld (%s), not allowed", what, ret,
	     ret < 0 ? strerror((int)-ret) : "count");
	return false;
}

#define ALLOW(t, what, ret, ...)						\
	allowed(t, what, ret, (const int[]){ __VA_ARGS__ },			\
		sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))

static uint64_t rnd(struct thr *t)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return t->rng;
}

static struct timespec deadline_in(int secs)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += secs;
	return ts;
}

static bool inst_rdlock(struct thr *t, struct inst *in)
{
	struct timespec ts = deadline_in(LOCK_WAIT_S);
	int ret = pthread_rwlock_clockrdlock(&in->lock, CLOCK_MONOTONIC, &ts);

	if (ret)
		fail(t, "read lock of %s: %s (its holder hangs)", in->uuid, strerror(ret));
	return !ret;
}

static bool inst_wrlock(struct thr *t, struct inst *in)
{
	struct timespec ts = deadline_in(LOCK_WAIT_S);
	int ret = pthread_rwlock_clockwrlock(&in->lock, CLOCK_MONOTONIC, &ts);

	if (ret)
		fail(t, "write lock of %s: %s (a holder hangs)", in->uuid, strerror(ret));
	return !ret;
}

static void inst_unlock(struct inst *in)
{
	pthread_rwlock_unlock(&in->lock);
}

static void set_fd(int *slot, int fd)
{
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
}

/* Instance settings and links, as after setup: used again after a re-creation. */
static int inst_configure(struct stress *s, int i)
{
	char rate[16];
	int ret;

	snprintf(rate, sizeof(rate), "%u", MTTY_MIG_RATE_MAX);
	ret = mt_dev_attr_write(s->in[i].uuid, MTTY_MIG_ATTR_DIRTY_RATE, rate);
	if (!ret)
		ret = mt_dev_attr_write(s->in[i].uuid, MTTY_MIG_ATTR_P2P_RATE, rate);
	if (!ret)
		ret = mt_dev_attr_write(s->in[i].uuid, MTTY_MIG_ATTR_PEER, s->in[!i].uuid);
	if (!ret)
		ret = mt_dev_attr_write(s->in[!i].uuid, MTTY_MIG_ATTR_PEER, s->in[i].uuid);
	return ret;
}

/* ---- state thread ------------------------------------------------------ */

static const uint32_t cycle[] = {
	VFIO_DEVICE_STATE_RUNNING,
	VFIO_DEVICE_STATE_RUNNING_P2P,
	VFIO_DEVICE_STATE_RUNNING,
	VFIO_DEVICE_STATE_PRE_COPY,
	VFIO_DEVICE_STATE_PRE_COPY_P2P,
	VFIO_DEVICE_STATE_STOP_COPY,
	VFIO_DEVICE_STATE_STOP,
	VFIO_DEVICE_STATE_RESUMING,
	VFIO_DEVICE_STATE_STOP,
	VFIO_DEVICE_STATE_RUNNING_P2P,
};

/* Set @state on the thread's instance; data fds go to the thread. */
static int state_set(struct thr *t, uint32_t state)
{
	struct inst *in = &t->s->in[t->inst];
	int fd = -1, ret;

	t->fresh_fd = false;
	if (!inst_rdlock(t, in))
		return -EDEADLK;
	if (in->v.device < 0) {
		inst_unlock(in);
		return -ENODEV; /* closed right now: not a syscall */
	}
	t->op = "MIG_DEVICE_STATE set";
	ret = mt_mig_set_state(in->v.device, state, &fd);
	inst_unlock(in);
	/*
	 * 0, or -EINVAL: the device is in ERROR (a RESUMING session another
	 * thread cut short) or this is the refused RESUMING -> STOP of such a
	 * session; ERROR itself is never a valid target.
	 */
	if (state == VFIO_DEVICE_STATE_ERROR) {
		/*
		 * -EINVAL, or 0 when the device already is in ERROR: the
		 * driver, like mlx5's, has no step to take then.
		 */
		ALLOW(t, "set ERROR", ret, -EINVAL, 0);
		return ret;
	}
	if (!ALLOW(t, mt_state_name(state), ret, 0, -EINVAL))
		return ret;
	t->fresh_fd = !ret && fd >= 0;
	if (!ret && fd >= 0) {
		if (state == VFIO_DEVICE_STATE_RESUMING)
			set_fd(&t->resume_fd, fd);
		else if (state == VFIO_DEVICE_STATE_PRE_COPY ||
			 state == VFIO_DEVICE_STATE_PRE_COPY_P2P ||
			 state == VFIO_DEVICE_STATE_STOP_COPY)
			set_fd(&t->save_fd, fd);
		else
			fail(t, "a data_fd from a step to %s", mt_state_name(state));
	}
	return ret;
}

static void state_read_precopy(struct thr *t)
{
	static __thread uint8_t buf[READ_CHUNK];
	uint64_t initial, dirty;
	int i, ret;

	if (t->save_fd < 0)
		return;
	t->op = "PRECOPY_INFO";
	/* -EINVAL once the session went on to STOP_COPY, -ENODEV once it ended */
	ret = mt_precopy_info(t->save_fd, &initial, &dirty);
	ALLOW(t, "PRECOPY_INFO", ret, 0, -EINVAL, -ENODEV);
	t->op = "PRE_COPY data_fd read";
	for (i = 0; i < PRECOPY_READS_MAX; i++) {
		ssize_t n = read(t->save_fd, buf, sizeof(buf));

		ret = n < 0 ? -errno : (int)(n > 0);
		/* 0: another thread took the session on to STOP_COPY, and it ended */
		if (!ALLOW(t, "PRE_COPY read", ret, 1, 0, -ENOMSG, -ENODEV) || ret <= 0)
			return;
	}
}

static void state_read_stop_copy(struct thr *t)
{
	static __thread uint8_t buf[READ_CHUNK];
	int i, ret;

	if (t->save_fd < 0)
		return;
	t->op = "STOP_COPY data_fd read";
	for (i = 0; i < STOP_COPY_READS_MAX; i++) {
		ssize_t n = read(t->save_fd, buf, sizeof(buf));

		ret = n < 0 ? -errno : (int)(n > 0);
		/* -ENOMSG: the session is back in PRE_COPY (another thread) */
		if (!ALLOW(t, "STOP_COPY read", ret, 1, 0, -ENOMSG, -ENODEV))
			return;
		if (ret == 0)
			atomic_fetch_add(&t->s->stop_copies, 1);
		if (ret <= 0)
			return;
	}
	fail(t, "a STOP_COPY stream of a %llu-byte device did not end in %d reads",
	     STRESS_MEM, STOP_COPY_READS_MAX);
}

static void state_resume(struct thr *t)
{
	const struct mt_buf *st = &t->s->in[t->inst].stream;
	size_t off = 0;
	int ret;

	/*
	 * Only into a session this step opened: RESUMING -> RESUMING opens
	 * none, and the old session may already have its whole stream.
	 */
	if (t->resume_fd < 0 || !t->fresh_fd)
		return;
	t->op = "RESUMING data_fd write";
	while (off < st->len) {
		size_t n = st->len - off < READ_CHUNK ? st->len - off : READ_CHUNK;
		ssize_t w = write(t->resume_fd, st->p + off, n);

		ret = w < 0 ? -errno : (int)(w > 0);
		/*
		 * A valid stream of a device of this kind: never refused.
		 * -ENODEV once a reset, close or another thread's step ended
		 * the session.
		 */
		if (!ALLOW(t, "RESUMING write of a valid stream", ret, 1, -ENODEV) || ret <= 0)
			return;
		off += (size_t)w;
	}
	atomic_fetch_add(&t->s->resumed, 1);
}

static void *state_thread(void *arg)
{
	struct thr *t = arg;
	size_t step = 0;

	while (!atomic_load(&t->s->stop)) {
		uint32_t target;

		if (rnd(t) % 4 == 0) {
			target = rnd(t) % 8; /* any state, ERROR included */
		} else {
			target = cycle[step];
			step = (step + 1) % (sizeof(cycle) / sizeof(cycle[0]));
		}
		if (state_set(t, target) == -EDEADLK)
			break;
		switch (target) {
		case VFIO_DEVICE_STATE_PRE_COPY:
		case VFIO_DEVICE_STATE_PRE_COPY_P2P:
			state_read_precopy(t);
			break;
		case VFIO_DEVICE_STATE_STOP_COPY:
			state_read_stop_copy(t);
			break;
		case VFIO_DEVICE_STATE_RESUMING:
			state_resume(t);
			break;
		default:
			break;
		}
		atomic_fetch_add(&t->ops, 1);
	}
	set_fd(&t->save_fd, -1);
	set_fd(&t->resume_fd, -1);
	t->op = "done";
	return NULL;
}

/* ---- peer, sysfs, reset, life ------------------------------------------ */

static void *peer_thread(void *arg)
{
	struct thr *t = arg;
	struct stress *s = t->s;

	while (!atomic_load(&s->stop)) {
		int i = rnd(t) % NR_INST, ret;
		char buf[64];

		switch (rnd(t) % 4) {
		case 0:
			t->op = "peer unlink";
			ret = mt_dev_attr_write(s->in[i].uuid, MTTY_MIG_ATTR_PEER,
						MTTY_MIG_PEER_NONE);
			/* -ENOENT: the instance is being re-created */
			ALLOW(t, "peer unlink", ret, 0, -ENOENT, -ENODEV);
			break;
		case 1:
			t->op = "peer relink";
			ret = mt_dev_attr_write(s->in[i].uuid, MTTY_MIG_ATTR_PEER, "");
			ALLOW(t, "peer unlink (empty)", ret, 0, -ENOENT, -ENODEV);
			/* fall through */
		case 2:
			t->op = "peer link";
			ret = mt_dev_attr_write(s->in[i].uuid, MTTY_MIG_ATTR_PEER, s->in[!i].uuid);
			/* -ENODEV: one of the two is being removed */
			ALLOW(t, "peer link", ret, 0, -ENOENT, -ENODEV);
			break;
		default:
			t->op = "peer read";
			ret = mt_dev_attr_read(s->in[i].uuid, MTTY_MIG_ATTR_PEER, buf, sizeof(buf));
			if (ALLOW(t, "peer read", ret, 0, -ENOENT, -ENODEV) && !ret &&
			    strcmp(buf, MTTY_MIG_PEER_NONE) && strcmp(buf, s->in[!i].uuid))
				fail(t, "peer of %s reads '%s'", s->in[i].uuid, buf);
			break;
		}
		atomic_fetch_add(&t->ops, 1);
	}
	t->op = "done";
	return NULL;
}

static void *sysfs_thread(void *arg)
{
	static const char *const counters[] = {
		MTTY_MIG_ATTR_DIRTY_PAGES, MTTY_MIG_ATTR_ENGINE_WRITES, MTTY_MIG_ATTR_P2P_TX,
		MTTY_MIG_ATTR_P2P_RX, MTTY_MIG_ATTR_P2P_VIOLATIONS, MTTY_MIG_ATTR_P2P_DROPPED,
	};
	struct thr *t = arg;
	struct stress *s = t->s;

	while (!atomic_load(&s->stop)) {
		int i = rnd(t) % NR_INST, ret;
		unsigned long long d;
		uint64_t v;
		char buf[64];

		t->op = "digest read";
		ret = mt_digest(s->in[i].uuid, buf, sizeof(buf));
		/* -EAGAIN: the memory was resized (re-created instance) while hashed */
		if (ALLOW(t, "digest read", ret, 0, -ENOENT, -ENODEV, -EAGAIN) && !ret &&
		    (strlen(buf) != 18 || sscanf(buf, "0x%llx", &d) != 1))
			fail(t, "digest reads '%s'", buf);
		t->op = "state read";
		ret = mt_dev_attr_read(s->in[i].uuid, MTTY_MIG_ATTR_STATE, buf, sizeof(buf));
		if (ALLOW(t, "state read", ret, 0, -ENOENT, -ENODEV) && !ret) {
			uint32_t st;

			for (st = 0; st < 8 && strcmp(buf, mt_state_name(st)); st++)
				;
			if (st == 8)
				fail(t, "state reads '%s'", buf);
		}
		t->op = "counter read";
		ret = mt_dev_attr_read_u64(s->in[i].uuid, counters[rnd(t) % 6], &v);
		ALLOW(t, "counter read", ret, 0, -ENOENT, -ENODEV);
		atomic_fetch_add(&t->ops, 1);
	}
	t->op = "done";
	return NULL;
}

static void *reset_thread(void *arg)
{
	struct thr *t = arg;
	struct stress *s = t->s;

	while (!atomic_load(&s->stop)) {
		struct inst *in = &s->in[rnd(t) % NR_INST];
		uint64_t len;
		uint32_t st;
		int ret;

		if (!inst_rdlock(t, in))
			break;
		if (in->v.device >= 0) {
			t->op = "VFIO_DEVICE_RESET";
			ret = ioctl(in->v.device, VFIO_DEVICE_RESET) ? -errno : 0;
			ALLOW(t, "VFIO_DEVICE_RESET", ret, 0);
			atomic_fetch_add(&s->resets, 1);
			t->op = "MIG_DATA_SIZE";
			ALLOW(t, "MIG_DATA_SIZE", mt_mig_data_size(in->v.device, &len), 0);
			t->op = "MIG_DEVICE_STATE get";
			ret = mt_mig_get_state(in->v.device, &st);
			if (ALLOW(t, "MIG_DEVICE_STATE get", ret, 0) && st > 7)
				fail(t, "state %u", st);
		}
		inst_unlock(in);
		atomic_fetch_add(&t->ops, 1);
	}
	t->op = "done";
	return NULL;
}

/*
 * Close and reopen, or remove and re-create.  Paced (not synchronised) by
 * a short sleep so the other threads get the devices most of the time.
 */
static void *life_thread(void *arg)
{
	const struct timespec pace = { .tv_nsec = 30 * 1000 * 1000 };
	struct thr *t = arg;
	struct stress *s = t->s;
	char mem[32];

	snprintf(mem, sizeof(mem), "%llu", STRESS_MEM);
	while (!atomic_load(&s->stop)) {
		int i = rnd(t) % NR_INST, ret;
		struct inst *in = &s->in[i];
		bool remove = rnd(t) % 3 == 0;

		if (!inst_wrlock(t, in))
			break;
		t->op = "close";
		mt_vfio_close(&in->v);
		if (remove) {
			t->op = "mdev remove";
			ret = mt_mdev_remove(in->uuid);
			if (!ALLOW(t, "mdev remove", ret, 0))
				goto unlock;
			in->exists = false;
			atomic_fetch_add(&s->removals, 1);
			t->op = "mdev create";
			ret = mt_mdev_create_uuid(STRESS_TYPE, in->uuid);
			if (!ALLOW(t, "mdev create (same uuid)", ret, 0))
				goto unlock;
			in->exists = true;
			t->op = "configure";
			ret = mt_dev_attr_write(in->uuid, MTTY_MIG_ATTR_MEM_SIZE, mem);
			if (!ALLOW(t, "mem_size write", ret, 0))
				goto unlock;
			/* the other may be re-linked or unlinked by the peer thread meanwhile */
			ret = inst_configure(s, i);
			if (!ALLOW(t, "settings and links of a re-created instance", ret, 0))
				goto unlock;
		}
		t->op = "open";
		ret = mt_vfio_open(&in->v, in->uuid);
		ALLOW(t, "open", ret, 0);
		atomic_fetch_add(&s->reopens, 1);
unlock:
		inst_unlock(in);
		atomic_fetch_add(&t->ops, 1);
		t->op = "pace";
		nanosleep(&pace, NULL);
	}
	t->op = "done";
	return NULL;
}

/* ---- fixture ----------------------------------------------------------- */

FIXTURE(stress)
{
	struct stress *s;
};

FIXTURE_SETUP(stress)
{
	char mem[32];
	int i;

	self->s = calloc(1, sizeof(*self->s));
	ASSERT_NE(NULL, self->s);
	pthread_mutex_init(&self->s->why_lock, NULL);
	for (i = 0; i < NR_INST; i++) {
		pthread_rwlockattr_t a;

		mt_vfio_init(&self->s->in[i].v);
		ASSERT_EQ(0, pthread_rwlockattr_init(&a));
		ASSERT_EQ(0, pthread_rwlockattr_setkind_np(&a,
				PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP));
		ASSERT_EQ(0, pthread_rwlock_init(&self->s->in[i].lock, &a));
		pthread_rwlockattr_destroy(&a);
	}
	ASSERT_EQ(0, mt_module_load());
	snprintf(mem, sizeof(mem), "%llu", STRESS_MEM);
	for (i = 0; i < NR_INST; i++) {
		struct inst *in = &self->s->in[i];

		ASSERT_EQ(0, mt_mdev_create(STRESS_TYPE, in->uuid));
		in->exists = true;
		ASSERT_EQ(0, mt_dev_attr_write(in->uuid, MTTY_MIG_ATTR_MEM_SIZE, mem));
		ASSERT_EQ(0, mt_vfio_open(&in->v, in->uuid));
	}
	/* valid streams, saved while the engines are still off */
	for (i = 0; i < NR_INST; i++) {
		struct inst *in = &self->s->in[i];
		uint8_t page[MTTY_MIG_PAGE_SIZE];
		struct mt_inst m = { .v = in->v };

		memcpy(m.uuid, in->uuid, sizeof(m.uuid));
		memset(page, 0x30 + i, sizeof(page));
		ASSERT_EQ((ssize_t)sizeof(page), mt_region_write(in->v.device, MTTY_MIG_MEM_REGION, 0,
							page, sizeof(page)));
		ASSERT_EQ(0, mt_save_stopped(&m, &in->stream, NULL, 0));
		ASSERT_LT(0, in->stream.len);
		ASSERT_EQ(0, mt_mig_set_state(in->v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	}
	for (i = 0; i < NR_INST; i++)
		ASSERT_EQ(0, inst_configure(self->s, i));
	/* both write into each other before the threads start */
	for (i = 0; i < NR_INST; i++)
		ASSERT_EQ(0, mt_wait_attr_above(self->s->in[i].uuid, MTTY_MIG_ATTR_P2P_RX, 0,
						WAIT_S));
}

FIXTURE_TEARDOWN(stress)
{
	int i;

	for (i = 0; i < NR_INST; i++) {
		struct inst *in = &self->s->in[i];

		mt_vfio_close(&in->v);
		if (in->exists) {
			mt_dev_attr_write(in->uuid, MTTY_MIG_ATTR_P2P_RATE, "0");
			mt_dev_attr_write(in->uuid, MTTY_MIG_ATTR_DIRTY_RATE, "0");
			EXPECT_EQ(0, mt_mdev_remove(in->uuid));
		}
		mt_buf_free(&in->stream);
	}
	free(self->s);
}

static void start(struct __test_metadata *_metadata, struct stress *s, int k,
		  const char *name, int inst, void *(*fn)(void *))
{
	struct thr *t = &s->t[k];

	t->s = s;
	t->name = name;
	t->inst = inst;
	t->rng = 0x9e3779b97f4a7c15ULL * (k + 1);
	t->save_fd = t->resume_fd = -1;
	t->op = "start";
	ASSERT_EQ(0, pthread_create(&t->tid, NULL, fn, t));
	t->started = true;
}

/*
 * PRE_COPY data until -ENOMSG or PRECOPY_READS_MAX reads: at full
 * dirty_rate the engine may dirty pages as fast as they are read.
 */
static int read_precopy_bounded(int fd, struct mt_buf *out)
{
	static uint8_t buf[READ_CHUNK];
	int i, ret;

	for (i = 0; i < PRECOPY_READS_MAX; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0)
			return errno == ENOMSG ? 0 : -errno;
		if (n == 0)
			return -EPIPE;
		ret = mt_buf_put(out, buf, (size_t)n);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * The final check: a clean migration of A into B, both linked both ways
 * with the engines at full rate, using the P2P states as the uAPI says
 * (every device quiesced before any stops, every device P2P-running before
 * any initiates again): no violation counted, digests equal.
 */
static void clean_migration(struct __test_metadata *_metadata, struct stress *s)
{
	struct inst *a = &s->in[0], *b = &s->in[1];
	uint64_t va, vb, rx;
	char da[64], db[64];
	struct mt_buf data = { 0 };
	int fa = -1, fb = -1;

	for (int i = 0; i < NR_INST; i++) {
		ASSERT_EQ(0, ioctl(s->in[i].v.device, VFIO_DEVICE_RESET));
		ASSERT_EQ(0, inst_configure(s, i));
	}
	rx = mt_dev_attr_u64(b->uuid, MTTY_MIG_ATTR_P2P_RX);
	ASSERT_EQ(0, mt_wait_attr_above(b->uuid, MTTY_MIG_ATTR_P2P_RX, rx, WAIT_S));
	rx = mt_dev_attr_u64(a->uuid, MTTY_MIG_ATTR_P2P_RX);
	ASSERT_EQ(0, mt_wait_attr_above(a->uuid, MTTY_MIG_ATTR_P2P_RX, rx, WAIT_S));
	va = mt_dev_attr_u64(a->uuid, MTTY_MIG_ATTR_P2P_VIOLATIONS);
	vb = mt_dev_attr_u64(b->uuid, MTTY_MIG_ATTR_P2P_VIOLATIONS);
	ASSERT_NE(MT_NO_VALUE, va);
	ASSERT_NE(MT_NO_VALUE, vb);

	/* precopy on A while both run */
	ASSERT_EQ(0, mt_mig_set_state(a->v.device, VFIO_DEVICE_STATE_PRE_COPY, &fa));
	ASSERT_LE(0, fa);
	ASSERT_EQ(0, read_precopy_bounded(fa, &data));
	/* phase 1: nobody initiates; phase 2: both stop */
	ASSERT_EQ(0, mt_mig_set_state(a->v.device, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(b->v.device, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(a->v.device, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, mt_mig_set_state(b->v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_digest(a->uuid, da, sizeof(da)));
	ASSERT_EQ(0, mt_read_to_end(fa, READ_CHUNK, &data, NULL));
	ASSERT_EQ(0, mt_mig_set_state(b->v.device, VFIO_DEVICE_STATE_RESUMING, &fb));
	ASSERT_LE(0, fb);
	ASSERT_EQ((ssize_t)data.len, write(fb, data.p, data.len));
	ASSERT_EQ(0, mt_mig_set_state(b->v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_digest(b->uuid, db, sizeof(db)));
	EXPECT_STREQ(da, db);
	/* two-phase start: both P2P-running before either initiates */
	ASSERT_EQ(0, mt_mig_set_state(b->v.device, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(a->v.device, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, mt_mig_set_state(b->v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, mt_mig_set_state(a->v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
	rx = mt_dev_attr_u64(a->uuid, MTTY_MIG_ATTR_P2P_RX);
	ASSERT_EQ(0, mt_wait_attr_above(a->uuid, MTTY_MIG_ATTR_P2P_RX, rx, WAIT_S));
	EXPECT_EQ(va, mt_dev_attr_u64(a->uuid, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	EXPECT_EQ(vb, mt_dev_attr_u64(b->uuid, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	close(fa);
	close(fb);
	mt_buf_free(&data);
}

TEST_F_TIMEOUT(stress, concurrent_fsm_peer_reset_reopen_remove, 600)
{
	static const char *const state_names[] = { "state0", "state1", "state2", "state3" };
	struct stress *s = self->s;
	const char *env = getenv("MTTY_STRESS_SECONDS");
	int secs = env && *env ? atoi(env) : STRESS_SECONDS;
	int fds0, k, n = 0, i;
	unsigned long total = 0;

	if (secs < 1)
		secs = 1;
	if (secs > STRESS_SECONDS_MAX) {
		TH_LOG("MTTY_STRESS_SECONDS=%d capped to %d", secs, STRESS_SECONDS_MAX);
		secs = STRESS_SECONDS_MAX;
	}
	fds0 = mt_dir_count("/proc/self/fd");
	ASSERT_LT(0, fds0);

	for (k = 0; k < NR_INST * STATE_THREADS_PER_INST; k++)
		start(_metadata, s, n++, state_names[k], k % NR_INST, state_thread);
	start(_metadata, s, n++, "peer", 0, peer_thread);
	start(_metadata, s, n++, "sysfs", 0, sysfs_thread);
	start(_metadata, s, n++, "reset", 0, reset_thread);
	start(_metadata, s, n++, "life", 0, life_thread);

	/* the run: a bounded wait on the stop flag (set early by a failure) */
	{
		double end = mt_now_s() + secs;
		const struct timespec tick = { .tv_nsec = 50 * 1000 * 1000 };

		while (mt_now_s() < end && !atomic_load(&s->stop))
			nanosleep(&tick, NULL);
	}
	atomic_store(&s->stop, true);
	{
		struct timespec dl = deadline_in(JOIN_GRACE_S);

		for (k = 0; k < n; k++) {
			int ret = pthread_clockjoin_np(s->t[k].tid, NULL, CLOCK_MONOTONIC, &dl);

			/* a thread stuck in the kernel: say where, and give up */
			ASSERT_EQ(0, ret) TH_LOG("thread %s hangs in %s", s->t[k].name,
						 atomic_load(&s->t[k].op));
			s->t[k].started = false;
			total += atomic_load(&s->t[k].ops);
			TH_LOG("%-7s %lu ops", s->t[k].name, atomic_load(&s->t[k].ops));
		}
	}
	TH_LOG("%d s: %lu ops, %lu resets, %lu reopens, %lu removals, %lu resumed streams, %lu STOP_COPY streams read",
	       secs, total, atomic_load(&s->resets), atomic_load(&s->reopens),
	       atomic_load(&s->removals), atomic_load(&s->resumed), atomic_load(&s->stop_copies));
	for (i = 1; i < NR_ERRNO; i++)
		if (atomic_load(&s->errs[i]))
			TH_LOG("allowed -%s: %lu", strerrorname_np(i) ?: "?",
			       atomic_load(&s->errs[i]));
	ASSERT_EQ(0, atomic_load(&s->failures)) TH_LOG("%s", s->why);

	/* whatever the life thread left: both exist and are open */
	for (i = 0; i < NR_INST; i++)
		ASSERT_LE(0, s->in[i].v.device);
	clean_migration(_metadata, s);
	EXPECT_EQ(fds0, mt_dir_count("/proc/self/fd")) TH_LOG("file descriptors leaked");
}

TEST_HARNESS_MAIN
