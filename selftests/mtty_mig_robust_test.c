// SPDX-License-Identifier: GPL-2.0-only
/*
 * What a guest, an unprivileged user or bad timing can do to mtty_mig, each
 * case from a review that found the module wanting:
 * - a guest's register writes must never make it unmigratable: every state
 *   the serial model reaches is accepted by the destination's validator
 *   (FCR toggling, then randomized register traffic, round-tripped);
 * - the digest is root only and hashing it does not hold up a migration;
 * - VFIO_DEVICE_RESET is atomic with the FSM: a STOP_COPY snapshot is of a
 *   device the reset either did not touch yet or finished with;
 * - opening a device while its peer writes into it is not a P2P violation;
 * - simulated latency is not slept holding the FSM lock: state queries and
 *   MIG_DATA_SIZE answer while a transition is in its latency;
 * - the dirty and P2P rates accepted are the rates delivered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/mtty_mig.h>
#include <linux/serial_reg.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"

#define SMALL_MEM (64u << 10)
#define HDR sizeof(struct mtty_mig_rec_hdr)

static int reg_write(int device, unsigned int port, unsigned int reg, uint8_t val)
{
	ssize_t n = mt_region_write(device, VFIO_PCI_BAR0_REGION_INDEX,
				    port * MTTY_MIG_PORT_STRIDE + reg, &val, 1);

	return n == 1 ? 0 : (n < 0 ? (int)n : -EIO);
}

static int reg_read(int device, unsigned int port, unsigned int reg, uint8_t *val)
{
	ssize_t n = mt_region_read(device, VFIO_PCI_BAR0_REGION_INDEX,
				   port * MTTY_MIG_PORT_STRIDE + reg, val, 1);

	return n == 1 ? 0 : (n < 0 ? (int)n : -EIO);
}

/* The SERIAL record of @port in stream @s, or NULL. */
static const struct mtty_mig_rec_serial *find_serial(const struct mt_buf *s, unsigned int port)
{
	size_t off = 0;

	while (off + HDR <= s->len) {
		const struct mtty_mig_rec_hdr *h = (const void *)(s->p + off);

		if (h->type == MTTY_MIG_REC_SERIAL && off + HDR + h->length <= s->len) {
			const struct mtty_mig_rec_serial *r = (const void *)(s->p + off + HDR);

			if (r->port == port)
				return r;
		}
		off += HDR + h->length;
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Two instances, A migrated into B                                          */
/* ------------------------------------------------------------------------ */

FIXTURE(pair)
{
	struct mt_inst a, b;
	struct mt_buf s;
};

FIXTURE_SETUP(pair)
{
	static const char *const attrs[] = { MTTY_MIG_ATTR_METADATA_SIZE, "64", NULL };

	mt_inst_init(&self->a);
	mt_inst_init(&self->b);
	memset(&self->s, 0, sizeof(self->s));
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_up(&self->a, MT_PARENT "-4", SMALL_MEM, attrs));
	ASSERT_EQ(0, mt_inst_up(&self->b, MT_PARENT "-4", SMALL_MEM, attrs));
}

FIXTURE_TEARDOWN(pair)
{
	mt_buf_free(&self->s);
	EXPECT_EQ(0, mt_inst_down(&self->a));
	EXPECT_EQ(0, mt_inst_down(&self->b));
}

/*
 * Save A, load it into B, compare digests; both back to RUNNING.
 * Returns 0 or the first error (the step is in *step).
 */
static int round_trip(struct mt_inst *a, struct mt_inst *b, struct mt_buf *s, const char **step)
{
	char da[32], db[32];
	int ret;

	s->len = 0;
	*step = "save";
	ret = mt_save_stopped(a, s, da, sizeof(da));
	if (ret)
		return ret;
	*step = "RUNNING -> STOP on the destination";
	ret = mt_mig_set_state(b->v.device, VFIO_DEVICE_STATE_STOP, NULL);
	if (ret)
		return ret;
	*step = "resume (RESUMING -> STOP)";
	ret = mt_resume(b, s->p, s->len);
	if (ret)
		return ret;
	*step = "digest";
	ret = mt_digest(b->uuid, db, sizeof(db));
	if (ret)
		return ret;
	*step = "digests equal";
	if (strcmp(da, db))
		return -EILSEQ;
	*step = "back to RUNNING";
	ret = mt_mig_set_state(a->v.device, VFIO_DEVICE_STATE_RUNNING, NULL);
	if (!ret)
		ret = mt_mig_set_state(b->v.device, VFIO_DEVICE_STATE_RUNNING, NULL);
	return ret;
}

TEST_F(pair, fifo_disabled_after_bytes_queued_still_migrates)
{
	const char *step = "";
	uint8_t lsr = 0;
	int i;

	/* FIFO on, five bytes queued, then FCR0 cleared (no CLEAR bits) */
	ASSERT_EQ(0, reg_write(self->a.v.device, 0, UART_FCR, UART_FCR_ENABLE_FIFO));
	for (i = 0; i < 5; i++)
		ASSERT_EQ(0, reg_write(self->a.v.device, 0, UART_TX, 'a' + i));
	ASSERT_EQ(0, reg_write(self->a.v.device, 0, UART_FCR, 0));
	/* a 16550 clears both FIFOs when FCR0 changes */
	ASSERT_EQ(0, reg_read(self->a.v.device, 0, UART_LSR, &lsr));
	EXPECT_EQ(0, lsr & UART_LSR_DR);
	/* and the destination accepts the state */
	EXPECT_EQ(0, round_trip(&self->a, &self->b, &self->s, &step)) TH_LOG("failed at: %s", step);
}

TEST_F(pair, power_on_fifo_then_fcr_without_enable_still_migrates)
{
	const char *step = "";
	int i;

	/* the power-on FIFO holds 16 bytes; FCR=0 makes it a holding register */
	for (i = 0; i < 5; i++)
		ASSERT_EQ(0, reg_write(self->a.v.device, 1, UART_TX, 'a' + i));
	ASSERT_EQ(0, reg_write(self->a.v.device, 1, UART_FCR, 0));
	ASSERT_EQ(0, reg_write(self->a.v.device, 1, UART_TX, 'z'));
	EXPECT_EQ(0, round_trip(&self->a, &self->b, &self->s, &step)) TH_LOG("failed at: %s", step);
}

/*
 * Random register traffic from a guest, any port, any register, reads
 * included (they pop the FIFO): every state it reaches migrates, and the
 * migrated device keeps behaving the same (the round trip goes both ways).
 */
TEST_F_TIMEOUT(pair, random_register_traffic_always_migrates, 300)
{
	static const uint8_t fcrs[] = { 0x00, 0x01, 0x03, 0x07, 0x41, 0x81, 0xc1, 0xc7, 0x06 };
	unsigned int seed = (unsigned int)getpid() ^ (unsigned int)time(NULL);
	struct mt_inst *from = &self->a, *to = &self->b, *t;
	const char *step = "";
	int round, i;

	TH_LOG("seed %u", seed);
	srand(seed);
	for (round = 0; round < 150; round++) {
		for (i = 0; i < 40; i++) {
			unsigned int port = rand() % 4, reg = rand() % MTTY_MIG_PORT_STRIDE;
			uint8_t val = rand();

			if (reg == UART_FCR && rand() % 2)
				val = fcrs[rand() % sizeof(fcrs)];
			if (rand() % 3) {
				ASSERT_EQ(0, reg_write(from->v.device, port, reg, val));
			} else {
				ASSERT_EQ(0, reg_read(from->v.device, port, reg, &val));
			}
		}
		ASSERT_EQ(0, round_trip(from, to, &self->s, &step))
		TH_LOG("round %d (seed %u) failed at: %s", round, seed, step);
		t = from;
		from = to;
		to = t;
	}
}

/* ------------------------------------------------------------------------ */
/* The digest                                                                */
/* ------------------------------------------------------------------------ */

FIXTURE(one)
{
	struct mt_inst d;
	int fd;
};

FIXTURE_SETUP(one)
{
	mt_inst_init(&self->d);
	self->fd = -1;
	ASSERT_EQ(0, mt_module_load());
}

FIXTURE_TEARDOWN(one)
{
	if (self->fd >= 0)
		close(self->fd);
	EXPECT_EQ(0, mt_inst_down(&self->d));
}

TEST_F(one, digest_is_root_only)
{
	char path[256];
	struct stat st;
	pid_t pid;
	int status;

	ASSERT_EQ(0, mt_inst_create(&self->d, MT_PARENT "-1", SMALL_MEM, NULL));
	snprintf(path, sizeof(path), MT_DEVICES "/%s/" MTTY_MIG_ATTR_DIGEST, self->d.uuid);
	ASSERT_EQ(0, stat(path, &st));
	EXPECT_EQ(0400, st.st_mode & 07777);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int fd;

		if (setgid(65534) || setuid(65534))
			_exit(2);
		fd = open(path, O_RDONLY);
		_exit(fd < 0 && errno == EACCES ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("an unprivileged user could read the digest");
}

struct digest_loop {
	const char *uuid;
	atomic_int stop;
	atomic_int busy;	/* a digest read is in progress */
	atomic_long done;	/* digests completed */
	int err;
};

static void *digest_reader(void *arg)
{
	struct digest_loop *l = arg;
	char buf[32];

	while (!atomic_load(&l->stop)) {
		atomic_store(&l->busy, 1);
		l->err = mt_digest(l->uuid, buf, sizeof(buf));
		atomic_fetch_add(&l->done, 1);
		atomic_store(&l->busy, 0);
		if (l->err)
			break;
	}
	return NULL;
}

/*
 * While digests of a 64 MiB device are read back to back, STOP_COPY
 * drains in page-record reads.  Count the reads that began and ended
 * within one and the same digest computation: if the digest held the
 * memory lock for the whole hash, a read begun during it would end only
 * after it (about none per digest).  Hashed in chunks, many fit.
 */
TEST_F_TIMEOUT(one, digest_reads_do_not_stall_stop_copy, 240)
{
	struct digest_loop l = { 0 };
	static char buf[MTTY_MIG_PAGE_SIZE + 64];
	long inside = 0, best = 0, gen = -1, start;
	pthread_t t;
	ssize_t n;

	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-1", 64u << 20, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY, &self->fd));
	l.uuid = self->d.uuid;
	ASSERT_EQ(0, pthread_create(&t, NULL, digest_reader, &l));
	start = atomic_load(&l.done);
	while (atomic_load(&l.done) < start + 4 && !l.err) {
		long g0 = atomic_load(&l.done), g1;
		int b0 = atomic_load(&l.busy), b1;

		n = read(self->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		b1 = atomic_load(&l.busy);
		g1 = atomic_load(&l.done);
		if (!b0 || !b1 || g0 != g1)
			continue;
		if (g0 != gen) {
			gen = g0;
			inside = 0;
		}
		if (++inside > best)
			best = inside;
	}
	atomic_store(&l.stop, 1);
	pthread_join(t, NULL);
	ASSERT_EQ(0, l.err);
	TH_LOG("at most %ld records read within one digest computation", best);
	EXPECT_LE(50, best);
}

/* ------------------------------------------------------------------------ */
/* VFIO_DEVICE_RESET against SET_STATE(STOP_COPY)                            */
/* ------------------------------------------------------------------------ */

struct race {
	struct mt_inst *d;
	pthread_barrier_t go;
	int reset_ret, state_ret, fd;
	atomic_int stop_hammer;
};

static void *racer_reset(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(&r->go);
	r->reset_ret = ioctl(r->d->v.device, VFIO_DEVICE_RESET) ? -errno : 0;
	return NULL;
}

static void *racer_stop_copy(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(&r->go);
	r->state_ret = mt_mig_set_state(r->d->v.device, VFIO_DEVICE_STATE_STOP_COPY, &r->fd);
	return NULL;
}

/* Register traffic on another port: contends for the register lock. */
static void *racer_hammer(void *arg)
{
	struct race *r = arg;
	uint8_t v;

	while (!atomic_load(&r->stop_hammer))
		reg_read(r->d->v.device, 3, UART_LSR, &v);
	return NULL;
}

/*
 * Whoever wins, the STOP_COPY stream describes the device as it is: a
 * snapshot taken before the reset's serial reset, with the reset finishing
 * after it, would send five queued bytes the device no longer has.
 */
TEST_F_TIMEOUT(one, reset_is_atomic_with_stop_copy, 300)
{
	int i, raced = 0, j;

	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-4", SMALL_MEM, NULL));
	for (i = 0; i < 1500; i++) {
		const struct mtty_mig_rec_serial *rec;
		struct race r = { .d = &self->d, .fd = -1 };
		struct mt_buf s = { 0 };
		pthread_t t1, t2, t3;
		uint8_t lsr = 0;

		ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
		for (j = 0; j < 5; j++)
			ASSERT_EQ(0, reg_write(self->d.v.device, 0, UART_TX, 'a' + j));
		ASSERT_EQ(0, pthread_barrier_init(&r.go, NULL, 2));
		ASSERT_EQ(0, pthread_create(&t3, NULL, racer_hammer, &r));
		ASSERT_EQ(0, pthread_create(&t1, NULL, racer_reset, &r));
		ASSERT_EQ(0, pthread_create(&t2, NULL, racer_stop_copy, &r));
		pthread_join(t1, NULL);
		pthread_join(t2, NULL);
		atomic_store(&r.stop_hammer, 1);
		pthread_join(t3, NULL);
		pthread_barrier_destroy(&r.go);
		ASSERT_EQ(0, r.reset_ret);
		if (r.state_ret || r.fd < 0 || mt_inst_state(&self->d) != VFIO_DEVICE_STATE_STOP_COPY) {
			/* the reset came last and ended the session */
			if (r.fd >= 0)
				close(r.fd);
			continue;
		}
		raced++;
		ASSERT_EQ(0, mt_read_to_end(r.fd, 65536, &s, NULL));
		close(r.fd);
		rec = find_serial(&s, 0);
		ASSERT_NE(NULL, rec);
		ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_RUNNING, NULL));
		ASSERT_EQ(0, reg_read(self->d.v.device, 0, UART_LSR, &lsr));
		ASSERT_EQ(!!rec->count, !!(lsr & UART_LSR_DR))
		TH_LOG("iteration %d: the stream says %u bytes queued, the device %s", i,
		       rec->count, lsr & UART_LSR_DR ? "has some" : "none");
		mt_buf_free(&s);
		/* empty the FIFO for the next round */
		ASSERT_EQ(0, reg_write(self->d.v.device, 0, UART_FCR,
				       UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR));
	}
	TH_LOG("%d of %d rounds ended in STOP_COPY", raced, i);
}

/* ------------------------------------------------------------------------ */
/* Open while the peer writes                                                */
/* ------------------------------------------------------------------------ */

FIXTURE(peers)
{
	struct mt_inst a, b;
};

FIXTURE_SETUP(peers)
{
	mt_inst_init(&self->a);
	mt_inst_init(&self->b);
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, mt_inst_create(&self->b, MT_PARENT "-1", SMALL_MEM, NULL));
	ASSERT_EQ(0, mt_inst_up(&self->a, MT_PARENT "-1", SMALL_MEM, NULL));
}

FIXTURE_TEARDOWN(peers)
{
	EXPECT_EQ(0, mt_inst_down(&self->a));
	EXPECT_EQ(0, mt_inst_down(&self->b));
}

TEST_F_TIMEOUT(peers, opening_during_peer_writes_is_no_violation, 300)
{
	char rate[32];
	double t0;
	int i;

	ASSERT_EQ(0, mt_dev_attr_write(self->a.uuid, MTTY_MIG_ATTR_PEER, self->b.uuid));
	snprintf(rate, sizeof(rate), "%u", MTTY_MIG_RATE_MAX);
	ASSERT_EQ(0, mt_dev_attr_write(self->a.uuid, MTTY_MIG_ATTR_P2P_RATE, rate));
	/*
	 * 1500 cycles, then more until a write landed in an open window (the
	 * test is about writes racing the opening): on Linux 7.2 the window
	 * inside a cycle is narrow enough that 1500 cycles once saw none.
	 */
	t0 = mt_now_s();
	for (i = 0; i < 1500 || (mt_now_s() - t0 < 120 &&
				 (i % 100 || !mt_dev_attr_u64(self->b.uuid, MTTY_MIG_ATTR_P2P_RX)));
	     i++) {
		ASSERT_EQ(0, mt_vfio_open(&self->b.v, self->b.uuid));
		mt_vfio_close(&self->b.v);
	}
	ASSERT_EQ(0, mt_dev_attr_write(self->a.uuid, MTTY_MIG_ATTR_P2P_RATE, "0"));
	TH_LOG("%d open/close cycles in %.1f s", i, mt_now_s() - t0);
	TH_LOG("%llu writes applied, %llu dropped while closed",
	       (unsigned long long)mt_dev_attr_u64(self->b.uuid, MTTY_MIG_ATTR_P2P_RX),
	       (unsigned long long)mt_dev_attr_u64(self->b.uuid, MTTY_MIG_ATTR_P2P_DROPPED));
	EXPECT_EQ(0, mt_dev_attr_u64(self->b.uuid, MTTY_MIG_ATTR_P2P_VIOLATIONS));
	EXPECT_LT(0, mt_dev_attr_u64(self->b.uuid, MTTY_MIG_ATTR_P2P_RX));
}

/* ------------------------------------------------------------------------ */
/* Latency is not slept under the FSM lock                                   */
/* ------------------------------------------------------------------------ */

struct slow_step {
	int device;
	pid_t tid;
	atomic_int done;
	int ret;
	int fd;
};

static void *slow_stop_copy(void *arg)
{
	struct slow_step *s = arg;

	s->tid = (pid_t)syscall(SYS_gettid);
	s->ret = mt_mig_set_state(s->device, VFIO_DEVICE_STATE_STOP_COPY, &s->fd);
	atomic_store(&s->done, 1);
	return NULL;
}

/* mt_wait_until(): thread @arg is inside a syscall (an ioctl) */
static int in_ioctl(void *arg)
{
	struct slow_step *s = arg;
	char path[64], buf[64] = "";
	int fd, n;

	if (!s->tid)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", s->tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && atoi(buf) == SYS_ioctl;
}

TEST_F_TIMEOUT(one, latency_does_not_block_state_queries, 120)
{
	struct slow_step s = { .fd = -1 };
	char state[32];
	uint32_t st = 0;
	uint64_t size = 0;
	pthread_t t;

	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-1", SMALL_MEM, NULL));
	ASSERT_EQ(0, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_STOP_COPY_LATENCY_MS, "4000"));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	s.device = self->d.v.device;
	ASSERT_EQ(0, pthread_create(&t, NULL, slow_stop_copy, &s));
	ASSERT_EQ(0, mt_wait_until(in_ioctl, &s, 30));
	/* while STOP -> STOP_COPY takes its 4 s: every query answers */
	EXPECT_EQ(0, mt_mig_get_state(self->d.v.device, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP, st);
	EXPECT_EQ(0, mt_dev_attr_read(self->d.uuid, MTTY_MIG_ATTR_STATE, state, sizeof(state)));
	EXPECT_EQ(0, mt_mig_data_size(self->d.v.device, &size));
	EXPECT_EQ(0, atomic_load(&s.done)) TH_LOG("a query waited for the whole latency");
	pthread_join(t, NULL);
	ASSERT_EQ(0, s.ret);
	EXPECT_LE(0, s.fd);
	self->fd = s.fd;
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP_COPY, mt_inst_state(&self->d));
}

/* ------------------------------------------------------------------------ */
/* Rates                                                                     */
/* ------------------------------------------------------------------------ */

TEST_F(one, rates_above_the_maximum_are_refused)
{
	char val[32];

	ASSERT_EQ(0, mt_inst_create(&self->d, MT_PARENT "-1", SMALL_MEM, NULL));
	snprintf(val, sizeof(val), "%u", MTTY_MIG_RATE_MAX + 1);
	EXPECT_EQ(-EINVAL, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_DIRTY_RATE, val));
	EXPECT_EQ(-EINVAL, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_P2P_RATE, val));
	snprintf(val, sizeof(val), "%u", MTTY_MIG_RATE_MAX);
	EXPECT_EQ(0, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_DIRTY_RATE, val));
}

/* the engine's achieved rate over @secs at @rate pages/s */
static double achieved(const char *uuid, unsigned int rate, double secs)
{
	uint64_t w0, w1;
	char val[32];
	double t0, t1;

	snprintf(val, sizeof(val), "%u", rate);
	if (mt_dev_attr_write(uuid, MTTY_MIG_ATTR_DIRTY_RATE, val))
		return -1;
	/* let a tick pass, then measure over whole seconds */
	usleep(100000);
	t0 = mt_now_s();
	w0 = mt_dev_attr_u64(uuid, MTTY_MIG_ATTR_ENGINE_WRITES);
	usleep((useconds_t)(secs * 1e6));
	w1 = mt_dev_attr_u64(uuid, MTTY_MIG_ATTR_ENGINE_WRITES);
	t1 = mt_now_s();
	mt_dev_attr_write(uuid, MTTY_MIG_ATTR_DIRTY_RATE, "0");
	return (double)(w1 - w0) / (t1 - t0);
}

/*
 * The rate set is the rate delivered, up to the maximum accepted (the old
 * engine accepted 1000000 pages/s and did at most 1024 writes per 20 ms
 * tick, dropping what a late tick could not do).
 */
TEST_F_TIMEOUT(one, rates_are_delivered, 120)
{
	double lo, hi;

	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-1", 64u << 20, NULL));
	lo = achieved(self->d.uuid, 1000, 2.0);
	hi = achieved(self->d.uuid, MTTY_MIG_RATE_MAX, 2.0);
	TH_LOG("achieved %.0f of 1000 and %.0f of %u pages/s", lo, hi, MTTY_MIG_RATE_MAX);
	EXPECT_LE(0.9 * 1000, lo);
	EXPECT_GE(1.1 * 1000, lo);
	EXPECT_LE(0.9 * MTTY_MIG_RATE_MAX, hi);
	EXPECT_GE(1.1 * MTTY_MIG_RATE_MAX, hi);
}

/*
 * Rewriting a rate restarts nothing: a management loop writing dirty_rate
 * 100 times a second (faster than the 20 ms tick) still gets the rate (it
 * used to reset the credit and push the tick back every time: 0 writes).
 */
TEST_F_TIMEOUT(one, rewriting_the_rate_does_not_starve_the_engine, 120)
{
	uint64_t w0, w1;
	double t0, t1;
	int i;

	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-1", 1u << 20, NULL));
	ASSERT_EQ(0, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_DIRTY_RATE, "2000"));
	t0 = mt_now_s();
	w0 = mt_dev_attr_u64(self->d.uuid, MTTY_MIG_ATTR_ENGINE_WRITES);
	for (i = 0; i < 200; i++) {
		ASSERT_EQ(0, mt_dev_attr_write(self->d.uuid, MTTY_MIG_ATTR_DIRTY_RATE, "2000"));
		usleep(10000);
	}
	w1 = mt_dev_attr_u64(self->d.uuid, MTTY_MIG_ATTR_ENGINE_WRITES);
	t1 = mt_now_s();
	TH_LOG("%.0f pages/s of 2000 while the rate was rewritten every 10 ms",
	       (double)(w1 - w0) / (t1 - t0));
	EXPECT_LE(0.8 * 2000, (double)(w1 - w0) / (t1 - t0));
}

/* One data_fd read moves at most MTTY_MIG_IO_MAX (4 MiB): a bounded lock hold. */
TEST_F_TIMEOUT(one, a_huge_read_is_cut_short, 120)
{
	size_t len = 32u << 20;
	char *buf = malloc(len);
	ssize_t n;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, mt_inst_up(&self->d, MT_PARENT "-1", 64u << 20, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, mt_mig_set_state(self->d.v.device, VFIO_DEVICE_STATE_STOP_COPY, &self->fd));
	n = read(self->fd, buf, len);
	free(buf);
	EXPECT_LT(0, n);
	EXPECT_GE((ssize_t)(4u << 20), n);
}

/* the "memory.current" of cgroup @dir, or -1 */
static long long cg_current(const char *dir)
{
	char path[256], buf[32];

	snprintf(path, sizeof(path), "%s/memory.current", dir);
	if (mt_sysfs_read(path, buf, sizeof(buf)))
		return -1;
	return atoll(buf);
}

/*
 * Device memory is charged to the memory cgroup of the process that opens
 * the device (GFP_KERNEL_ACCOUNT), so a container that opens a 64 MiB
 * device pays for it (it used to be charged to nobody).
 */
TEST_F_TIMEOUT(one, device_memory_is_charged_to_the_opener_cgroup, 120)
{
	static const char root[] = "/sys/fs/cgroup", dir[] = "/sys/fs/cgroup/mtty-robust";
	long long before, after;
	char pid[32];

	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK))
		ASSERT_EQ(0, mount("cgroup2", root, "cgroup2", 0, NULL));
	ASSERT_EQ(0, mt_sysfs_write("/sys/fs/cgroup/cgroup.subtree_control", "+memory"));
	rmdir(dir);
	ASSERT_EQ(0, mkdir(dir, 0755));
	snprintf(pid, sizeof(pid), "%d", getpid());
	ASSERT_EQ(0, mt_sysfs_write("/sys/fs/cgroup/mtty-robust/cgroup.procs", pid));
	ASSERT_EQ(0, mt_inst_create(&self->d, MT_PARENT "-1", 64u << 20, NULL));
	before = cg_current(dir);
	ASSERT_LE(0, before);
	ASSERT_EQ(0, mt_vfio_open(&self->d.v, self->d.uuid));
	after = cg_current(dir);
	TH_LOG("memory.current %lld -> %lld bytes", before, after);
	EXPECT_LE(before + (64ll << 20), after);
	mt_vfio_close(&self->d.v);
	ASSERT_EQ(0, mt_sysfs_write("/sys/fs/cgroup/cgroup.procs", pid));
	EXPECT_EQ(0, rmdir(dir));
}

TEST_HARNESS_MAIN
