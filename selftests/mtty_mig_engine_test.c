// SPDX-License-Identifier: GPL-2.0-only
/*
 * The migration engine (libvfmig, vfio-mig) end to end on real VFIO devices:
 * mtty_mig instances with their internal engine and P2P peers running,
 * migrated through real sockets.
 *
 * - mig.<variant>.digests_equal_no_p2p_violation: 1 and 4 P2P-linked
 *   devices, multifd on/off, switchover-ack on/off, in-process source and
 *   destination sessions over a UNIX socket.
 * - fail.*: a multifd channel killed mid STOP_COPY (a proxy between the
 *   sides cuts it), a source device read error (debugfs fault injection), an
 *   incompatible destination refused at the handshake: the source is back
 *   in RUNNING with its digest unchanged, the destination devices are reset,
 *   no fd and no thread is left behind. Also REINIT (PRECOPY_INFOv2): one
 *   mid precopy re-arms the switchover-ack and migrates, one at the
 *   switchover decision fails cleanly.
 * - cli.*: the vfio-mig tool as two processes in two network namespaces
 *   joined by a veth pair (IPv4 and IPv6), the destination process killed
 *   mid migration, the network gone silent mid STOP_COPY (both processes
 *   give up within --timeout), SIGINT in the connect and handshake phases
 *   (exit within a second), an incompatible destination, and the kernel's
 *   own mtty sample (a driver the engine knows nothing about).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/mtty_mig.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"
#include "vfmig.h"
#include "tlsgen.h"

#define MAXDEV 4
#define MEM "8388608"
#define VFIO_MIG "/usr/bin/vfio-mig"

extern char **environ;

/* ---- a set of instances, and the library's handles on them ---------------- */

struct side {
	char uuid[MAXDEV][MT_UUID_LEN];
	unsigned n;
	struct vfmig_vfio_ctx *ctx;
	struct vfmig_device *dev[MAXDEV];
};

static int side_create(struct side *s, unsigned n, const char *type, const char *const *attrs)
{
	unsigned i, k;
	int ret;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < n; i++) {
		ret = mt_mdev_create(type, s->uuid[i]);
		if (ret)
			return ret;
		s->n++;
		ret = mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_MEM_SIZE, MEM);
		for (k = 0; !ret && attrs && attrs[k]; k += 2)
			ret = mt_dev_attr_write(s->uuid[i], attrs[k], attrs[k + 1]);
		if (ret)
			return ret;
	}
	/* a ring of peers: every device writes into the next one */
	for (i = 0; n > 1 && i < n; i++) {
		ret = mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_PEER, s->uuid[(i + 1) % n]);
		if (ret)
			return ret;
	}
	return 0;
}

static int side_open(struct side *s)
{
	unsigned i;
	int ret;

	s->ctx = vfmig_vfio_ctx_new();
	if (!s->ctx)
		return -ENOMEM;
	for (i = 0; i < s->n; i++) {
		ret = vfmig_vfio_open(s->ctx, s->uuid[i], &s->dev[i], NULL);
		if (ret)
			return ret;
	}
	return 0;
}

static void side_close(struct side *s)
{
	unsigned i;

	for (i = 0; i < s->n; i++) {
		if (s->dev[i])
			vfmig_device_close(s->dev[i]);
		s->dev[i] = NULL;
	}
	if (s->ctx)
		vfmig_vfio_ctx_free(s->ctx);
	s->ctx = NULL;
}

static void side_destroy(struct side *s)
{
	unsigned i;

	side_close(s);
	for (i = 0; i < s->n; i++) {
		mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_DIRTY_RATE, "0");
		mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_P2P_RATE, "0");
		mt_mdev_remove(s->uuid[i]);
	}
	s->n = 0;
}

static void side_rates(struct side *s, const char *dirty, const char *p2p)
{
	unsigned i;

	for (i = 0; i < s->n; i++) {
		mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_DIRTY_RATE, dirty);
		mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_P2P_RATE, p2p);
	}
}

/* ---- a proxy that can cut one connection ----------------------------------- */

/*
 * Sits between the source and the destination's listening socket. Connection
 * number @kill_conn (0 = main channel, 1 = first multifd channel) is shut down
 * in both directions once @kill_after bytes went from source to destination.
 * It sends with MSG_NOSIGNAL: a side that closes first must not kill the test
 * with SIGPIPE.
 */
struct proxy {
	char path[108], upstream[108];
	int lfd, stop[2];
	int kill_conn;
	size_t kill_after;
	bool killed;
	pthread_t thread;
};

#define PROXY_MAX 16

/* a stream socket listening on @a (sock_listen) or connected to it (sock_connect), or -errno */
static int sock_listen(const void *a, socklen_t len)
{
	int fd = socket(((const struct sockaddr *)a)->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) || bind(fd, a, len) ||
	    listen(fd, 64)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static int sock_connect(const void *a, socklen_t len)
{
	int fd = socket(((const struct sockaddr *)a)->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, a, len)) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static struct sockaddr_un unix_addr(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	return a;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un a = unix_addr(path);

	unlink(path);
	return sock_listen(&a, sizeof(a));
}

static int unix_connect(const char *path)
{
	struct sockaddr_un a = unix_addr(path);

	return sock_connect(&a, sizeof(a));
}

/* 127.0.0.1:@port */
static struct sockaddr_in loopback(unsigned port)
{
	return (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
}

static void *proxy_main(void *arg)
{
	struct proxy *p = arg;
	int src[PROXY_MAX], dst[PROXY_MAX], nconn = 0, i;
	size_t fwd[PROXY_MAX] = { 0 };
	char buf[65536];

	for (;;) {
		struct pollfd pf[2 + 2 * PROXY_MAX];
		int n = 0;

		pf[n++] = (struct pollfd){ .fd = p->stop[0], .events = POLLIN };
		pf[n++] = (struct pollfd){ .fd = p->lfd, .events = POLLIN };
		for (i = 0; i < nconn; i++) {
			pf[n++] = (struct pollfd){ .fd = src[i], .events = POLLIN };
			pf[n++] = (struct pollfd){ .fd = dst[i], .events = POLLIN };
		}
		if (poll(pf, n, 60000) <= 0 || pf[0].revents)
			break;
		if ((pf[1].revents & POLLIN) && nconn < PROXY_MAX) {
			int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
			int u = c >= 0 ? unix_connect(p->upstream) : -1;

			if (c >= 0 && u >= 0) {
				src[nconn] = c;
				dst[nconn] = u;
				nconn++;
			} else {
				if (c >= 0)
					close(c);
				if (u >= 0)
					close(u);
			}
		}
		for (i = 0; i < nconn; i++) {
			struct pollfd *ps = &pf[2 + 2 * i], *pd = ps + 1;
			ssize_t r;

			if (src[i] < 0)
				continue;
			if (ps->revents & (POLLIN | POLLHUP | POLLERR)) {
				size_t want = sizeof(buf);

				if (i == p->kill_conn && !p->killed)
					want = p->kill_after - fwd[i] < want ? p->kill_after - fwd[i] : want;
				r = want ? read(src[i], buf, want) : 0;
				if (r > 0 && send(dst[i], buf, r, MSG_NOSIGNAL) == r)
					fwd[i] += r;
				else if (r != 0 || want)
					goto cut;
				if (i == p->kill_conn && !p->killed && fwd[i] >= p->kill_after) {
					p->killed = true;
					goto cut;
				}
			}
			if (pd->revents & (POLLIN | POLLHUP | POLLERR)) {
				r = read(dst[i], buf, sizeof(buf));
				if (r <= 0 || send(src[i], buf, r, MSG_NOSIGNAL) != r)
					goto cut;
			}
			continue;
cut:
			shutdown(src[i], SHUT_RDWR);
			shutdown(dst[i], SHUT_RDWR);
			close(src[i]);
			close(dst[i]);
			src[i] = dst[i] = -1;
		}
		/* drop closed pairs */
		for (i = 0; i < nconn; i++) {
			if (src[i] >= 0)
				continue;
			if (i == p->kill_conn)
				p->kill_conn = -1; /* its number is gone: never cut another */
			memmove(&src[i], &src[i + 1], (nconn - i - 1) * sizeof(int));
			memmove(&dst[i], &dst[i + 1], (nconn - i - 1) * sizeof(int));
			memmove(&fwd[i], &fwd[i + 1], (nconn - i - 1) * sizeof(size_t));
			if (p->kill_conn > i)
				p->kill_conn--;
			nconn--;
			i--;
		}
	}
	for (i = 0; i < nconn; i++) {
		close(src[i]);
		close(dst[i]);
	}
	return NULL;
}

static int proxy_start(struct proxy *p, const char *path, const char *upstream, int kill_conn,
		       size_t kill_after)
{
	snprintf(p->path, sizeof(p->path), "%s", path);
	snprintf(p->upstream, sizeof(p->upstream), "%s", upstream);
	p->kill_conn = kill_conn;
	p->kill_after = kill_after;
	p->killed = false;
	if (pipe2(p->stop, O_CLOEXEC))
		return -errno;
	p->lfd = unix_listen(path);
	if (p->lfd < 0)
		return p->lfd;
	return -pthread_create(&p->thread, NULL, proxy_main, p);
}

static void proxy_stop(struct proxy *p)
{
	char c = 1;

	if (write(p->stop[1], &c, 1) != 1)
		perror("proxy stop");
	pthread_join(p->thread, NULL);
	close(p->lfd);
	close(p->stop[0]);
	close(p->stop[1]);
	unlink(p->path);
}

/* ---- one in-process migration ----------------------------------------------- */

struct recv_job {
	struct vfmig_session *s;
	int lfd;
	enum vfmig_errclass rc;
};

static void *recv_main(void *arg)
{
	struct recv_job *j = arg;

	j->rc = vfmig_session_recv(j->s, j->lfd);
	return NULL;
}

struct result {
	enum vfmig_errclass src, dst;
	char src_msg[320], dst_msg[320];
	struct vfmig_stats stats;
};

/*
 * Migrate @src to @dst. The destination listens on a UNIX socket; the source
 * connects to it, or to a proxy in front of it when @proxy is given.
 */
static int migrate(struct side *src, struct side *dst, const struct vfmig_options *o,
		   struct proxy *proxy, struct result *r)
{
	char lpath[108], ppath[108];
	struct vfmig_session *ss, *ds;
	struct vfmig_addr la, pa;
	struct recv_job job;
	pthread_t t;
	int ret;

	snprintf(lpath, sizeof(lpath), "/tmp/mtty-eng-%d.sock", getpid());
	snprintf(ppath, sizeof(ppath), "/tmp/mtty-eng-%d.proxy", getpid());
	unlink(lpath);
	if (vfmig_addr_parse(lpath, &la, NULL))
		return -EINVAL;
	job.lfd = vfmig_listen(&la, NULL);
	if (job.lfd < 0)
		return job.lfd;
	if (proxy) {
		ret = proxy_start(proxy, ppath, lpath, proxy->kill_conn, proxy->kill_after);
		if (ret)
			return ret;
		if (vfmig_addr_parse(ppath, &pa, NULL))
			return -EINVAL;
	}
	ss = vfmig_session_new(true, src->dev, src->n, o);
	ds = vfmig_session_new(false, dst->dev, dst->n, o);
	if (!ss || !ds)
		return -ENOMEM;
	job.s = ds;
	ret = -pthread_create(&t, NULL, recv_main, &job);
	if (ret)
		return ret;
	r->src = vfmig_session_send(ss, proxy ? &pa : &la);
	if (r->src != VFMIG_OK)
		vfmig_session_abort(ds, VFMIG_ERR_REMOTE, "source failed");
	pthread_join(t, NULL);
	r->dst = job.rc;
	snprintf(r->src_msg, sizeof(r->src_msg), "%s: %s", vfmig_session_error(ss)->where,
		 vfmig_session_error(ss)->msg);
	snprintf(r->dst_msg, sizeof(r->dst_msg), "%s: %s", vfmig_session_error(ds)->where,
		 vfmig_session_error(ds)->msg);
	r->stats = *vfmig_session_stats(ss);
	vfmig_session_free(ss);
	vfmig_session_free(ds);
	if (proxy)
		proxy_stop(proxy);
	close(job.lfd);
	unlink(lpath);
	return 0;
}

static void options(struct vfmig_options *o, bool multifd, bool ack)
{
	vfmig_options_init(o);
	o->multifd = multifd ? VFMIG_ON : VFMIG_OFF;
	o->channels = multifd ? 3 : 0;
	o->switchover_ack = ack ? VFMIG_ON : VFMIG_OFF;
	o->chunk_size = 256 << 10;
	o->timeout_ms = 60000;
	o->log_prefix = "test";
}

/* ---- successful migrations ----------------------------------------------------- */

FIXTURE(mig)
{
	struct side src, dst;
};

FIXTURE_VARIANT(mig)
{
	unsigned ndev;
	bool multifd, ack;
	bool pre_main; /* multifd for STOP_COPY only: precopy on the main channel */
};

FIXTURE_VARIANT_ADD(mig, dev1_multifd_ack) { .ndev = 1, .multifd = true, .ack = true };
FIXTURE_VARIANT_ADD(mig, dev1_multifd_noack) { .ndev = 1, .multifd = true, .ack = false };
FIXTURE_VARIANT_ADD(mig, dev1_main_only_ack) { .ndev = 1, .multifd = false, .ack = true };
FIXTURE_VARIANT_ADD(mig, dev1_main_only_noack) { .ndev = 1, .multifd = false, .ack = false };
FIXTURE_VARIANT_ADD(mig, dev4_p2p_multifd_ack) { .ndev = 4, .multifd = true, .ack = true };
FIXTURE_VARIANT_ADD(mig, dev4_p2p_multifd_precopy_on_main_ack)
{
	.ndev = 4, .multifd = true, .ack = true, .pre_main = true,
};
FIXTURE_VARIANT_ADD(mig, dev4_p2p_multifd_noack) { .ndev = 4, .multifd = true, .ack = false };
FIXTURE_VARIANT_ADD(mig, dev4_p2p_main_only_ack) { .ndev = 4, .multifd = false, .ack = true };
FIXTURE_VARIANT_ADD(mig, dev4_p2p_main_only_noack) { .ndev = 4, .multifd = false, .ack = false };

FIXTURE_SETUP(mig)
{
	static const char *const src_attrs[] = {
		MTTY_MIG_ATTR_METADATA_SIZE, "65536", NULL,
	};
	static const char *const dst_attrs[] = {
		MTTY_MIG_ATTR_INITIAL_LOAD_MS, "50", NULL,
	};

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, side_create(&self->src, variant->ndev, MT_PARENT "-2", src_attrs));
	ASSERT_EQ(0, side_create(&self->dst, variant->ndev, MT_PARENT "-2", dst_attrs));
}

FIXTURE_TEARDOWN(mig)
{
	side_destroy(&self->src);
	side_destroy(&self->dst);
}

TEST_F_TIMEOUT(mig, digests_equal_no_p2p_violation, 300)
{
	int fds0 = mt_dir_count("/proc/self/fd"), tasks0 = mt_dir_count("/proc/self/task");
	struct vfmig_options o;
	struct result r;
	unsigned i;

	ASSERT_EQ(0, side_open(&self->src));
	ASSERT_EQ(0, side_open(&self->dst));
	/* the source devices are busy: their engines and P2P writes run */
	side_rates(&self->src, "500", self->src.n > 1 ? "300" : "0");
	options(&o, variant->multifd, variant->ack);
	if (variant->pre_main)
		o.precopy_multifd = VFMIG_OFF;
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, NULL, &r));
	ASSERT_EQ(VFMIG_OK, r.src) TH_LOG("source: %s", r.src_msg);
	ASSERT_EQ(VFMIG_OK, r.dst) TH_LOG("destination: %s", r.dst_msg);
	EXPECT_EQ(variant->multifd, r.stats.multifd);
	/* With multifd, every device precopies in parallel over the channels by default. */
	EXPECT_EQ(variant->multifd && !variant->pre_main, r.stats.precopy_multifd);
	EXPECT_LT(0, r.stats.precopy_bytes);
	EXPECT_EQ(variant->ack, r.stats.switchover_ack);
	EXPECT_LT(0, r.stats.precopy_iterations);
	EXPECT_LT(0, r.stats.downtime_ns);

	for (i = 0; i < self->src.n; i++) {
		enum vfmig_state ss, ds;
		char d1[32], d2[32];

		ASSERT_EQ(0, vfmig_device_get_state(self->src.dev[i], &ss));
		ASSERT_EQ(0, vfmig_device_get_state(self->dst.dev[i], &ds));
		EXPECT_EQ(VFMIG_STATE_STOP, ss);
		EXPECT_EQ(VFMIG_STATE_RUNNING, ds);
		/* the destination has exactly the state the source stopped with */
		ASSERT_EQ(0, mt_digest(self->src.uuid[i], d1, sizeof(d1)));
		ASSERT_EQ(0, mt_digest(self->dst.uuid[i], d2, sizeof(d2)));
		EXPECT_STREQ(d1, d2) TH_LOG("device %u", i);
		EXPECT_EQ(0, mt_dev_attr_u64(self->src.uuid[i], MTTY_MIG_ATTR_P2P_VIOLATIONS));
		EXPECT_EQ(0, mt_dev_attr_u64(self->dst.uuid[i], MTTY_MIG_ATTR_P2P_VIOLATIONS));
		/* and the workload really ran during the migration */
		EXPECT_LT(0, mt_dev_attr_u64(self->src.uuid[i], MTTY_MIG_ATTR_ENGINE_WRITES));
		if (self->src.n > 1)
			EXPECT_LT(0, mt_dev_attr_u64(self->src.uuid[i], MTTY_MIG_ATTR_P2P_TX));
	}
	side_close(&self->src);
	side_close(&self->dst);
	EXPECT_EQ(fds0, mt_dir_count("/proc/self/fd"));
	EXPECT_EQ(tasks0, mt_dir_count("/proc/self/task"));
}

/* ---- failures: the source rolls back ------------------------------------------- */

FIXTURE(fail)
{
	struct side src, dst;
	char digest0[MAXDEV][32];
	int fds0, tasks0;
};

FIXTURE_SETUP(fail)
{
	unsigned i;

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, side_create(&self->src, 2, MT_PARENT "-2", NULL));
	ASSERT_EQ(0, side_create(&self->dst, 2, MT_PARENT "-2", NULL));
	/* some state worth keeping: a register and a memory page per device */
	for (i = 0; i < self->src.n; i++) {
		uint8_t scr = (uint8_t)(0x40 + i), page[MTTY_MIG_PAGE_SIZE];
		struct mt_vfio v;

		memset(page, 0xa0 + i, sizeof(page));
		ASSERT_EQ(0, mt_vfio_open(&v, self->src.uuid[i]));
		ASSERT_EQ(1, mt_region_write(v.device, VFIO_PCI_BAR0_REGION_INDEX, 7, &scr, 1));
		ASSERT_EQ(sizeof(page), mt_region_write(v.device, VFIO_PCI_BAR1_REGION_INDEX,
							5 * sizeof(page), page, sizeof(page)));
		mt_vfio_close(&v);
	}
	self->fds0 = mt_dir_count("/proc/self/fd");
	self->tasks0 = mt_dir_count("/proc/self/task");
	ASSERT_EQ(0, side_open(&self->src));
	ASSERT_EQ(0, side_open(&self->dst));
	/* engines off: the source's digest must come back unchanged */
	for (i = 0; i < self->src.n; i++)
		ASSERT_EQ(0, mt_digest(self->src.uuid[i], self->digest0[i],
				       sizeof(self->digest0[i])));
}

FIXTURE_TEARDOWN(fail)
{
	side_destroy(&self->src);
	side_destroy(&self->dst);
}

/* after a failed migration: source RUNNING and intact, destination reset, nothing leaked */
static void check_rolled_back(struct __test_metadata *_metadata, FIXTURE_DATA(fail) *self)
{
	unsigned i;

	for (i = 0; i < self->src.n; i++) {
		enum vfmig_state ss, ds;
		char d[32];

		ASSERT_EQ(0, vfmig_device_get_state(self->src.dev[i], &ss));
		EXPECT_EQ(VFMIG_STATE_RUNNING, ss) TH_LOG("source %u is %s", i, vfmig_state_name(ss));
		ASSERT_EQ(0, mt_digest(self->src.uuid[i], d, sizeof(d)));
		EXPECT_STREQ(self->digest0[i], d) TH_LOG("source %u changed", i);
		ASSERT_EQ(0, vfmig_device_get_state(self->dst.dev[i], &ds));
		EXPECT_EQ(VFMIG_STATE_RUNNING, ds) TH_LOG("destination %u is %s", i,
							 vfmig_state_name(ds));
	}
	side_close(&self->src);
	side_close(&self->dst);
	EXPECT_EQ(self->fds0, mt_dir_count("/proc/self/fd"));
	EXPECT_EQ(self->tasks0, mt_dir_count("/proc/self/task"));
}

TEST_F_TIMEOUT(fail, multifd_channel_killed_mid_stop_copy, 300)
{
	struct proxy p = { .kill_conn = 1 };
	struct vfmig_options o;
	struct result r;

	/* 48 bytes of CHANNEL_HELLO, then cut inside the first STOP_COPY packet */
	p.kill_after = 48 + 64;
	options(&o, true, true);
	o.channels = 2;
	o.precopy_multifd = VFMIG_OFF; /* precopy on the main channel: the first packet is STOP_COPY */
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, &p, &r));
	EXPECT_TRUE(p.killed) TH_LOG("the proxy never cut the channel");
	EXPECT_NE(VFMIG_OK, r.src);
	EXPECT_NE(VFMIG_OK, r.dst);
	TH_LOG("source: %s | destination: %s", r.src_msg, r.dst_msg);
	check_rolled_back(_metadata, self);
}

TEST_F_TIMEOUT(fail, multifd_channel_killed_during_parallel_precopy, 300)
{
	struct proxy p = { .kill_conn = 1 };
	struct vfmig_options o;
	struct result r;

	/* 48 bytes of CHANNEL_HELLO, then cut inside the first precopy packet */
	p.kill_after = 48 + 64;
	options(&o, true, true);
	o.channels = 2;
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, &p, &r));
	EXPECT_TRUE(p.killed) TH_LOG("the proxy never cut the channel");
	EXPECT_TRUE(r.stats.precopy_multifd);
	EXPECT_NE(VFMIG_OK, r.src);
	EXPECT_NE(VFMIG_OK, r.dst);
	TH_LOG("source: %s | destination: %s", r.src_msg, r.dst_msg);
	check_rolled_back(_metadata, self);
}

TEST_F_TIMEOUT(fail, main_channel_killed_during_precopy, 300)
{
	struct proxy p = { .kill_conn = 0 };
	struct vfmig_options o;
	struct result r;

	p.kill_after = 1 << 20; /* inside the precopy data of an 8 MiB device */
	options(&o, true, true);
	o.precopy_multifd = VFMIG_OFF; /* the precopy data on the main channel */
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, &p, &r));
	EXPECT_TRUE(p.killed);
	EXPECT_EQ(VFMIG_ERR_TRANSPORT, r.src) TH_LOG("source: %s", r.src_msg);
	EXPECT_NE(VFMIG_OK, r.dst);
	check_rolled_back(_metadata, self);
}

TEST_F_TIMEOUT(fail, source_read_error_rolls_back, 300)
{
	struct vfmig_options o;
	struct result r;

	/* the second source device's data_fd fails 100 KiB into its stream */
	ASSERT_EQ(0, mt_fault_write(self->src.uuid[1], MTTY_MIG_FAULT_FAIL_SAVE_AFTER, "102400"));
	options(&o, true, true);
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, NULL, &r));
	EXPECT_EQ(VFMIG_ERR_DEVICE, r.src) TH_LOG("source: %s", r.src_msg);
	EXPECT_NE(VFMIG_OK, r.dst);
	check_rolled_back(_metadata, self);
}

TEST_F_TIMEOUT(fail, source_read_error_in_stop_copy_rolls_back, 300)
{
	struct vfmig_options o;
	struct result r;
	char val[32];

	/*
	 * With the engine off, precopy moves the metadata and every page; the
	 * fault fires just after that, in the STOP_COPY part of the stream.
	 */
	snprintf(val, sizeof(val), "%lu",
		 (unsigned long)(2 * sizeof(struct mtty_mig_rec_hdr) +
				 sizeof(struct mtty_mig_rec_header) + MTTY_MIG_METADATA_DEFAULT +
				 (8u << 20) / MTTY_MIG_PAGE_SIZE *
					 (sizeof(struct mtty_mig_rec_hdr) + MTTY_MIG_REC_PAGE_PAYLOAD) +
				 8));
	ASSERT_EQ(0, mt_fault_write(self->src.uuid[0], MTTY_MIG_FAULT_FAIL_SAVE_AFTER, val));
	options(&o, true, true);
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, NULL, &r));
	EXPECT_EQ(VFMIG_ERR_DEVICE, r.src) TH_LOG("source: %s", r.src_msg);
	/* the message names the failing device */
	EXPECT_NE(NULL, strstr(r.src_msg, self->src.uuid[0])) TH_LOG("%s", r.src_msg);
	check_rolled_back(_metadata, self);
}

TEST_F_TIMEOUT(fail, destination_write_error_rolls_back, 300)
{
	struct vfmig_options o;
	struct result r;

	ASSERT_EQ(0, mt_fault_write(self->dst.uuid[0], MTTY_MIG_FAULT_FAIL_RESUME_AFTER, "200000"));
	options(&o, true, true);
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, NULL, &r));
	EXPECT_NE(VFMIG_OK, r.src);
	EXPECT_EQ(VFMIG_ERR_DEVICE, r.dst) TH_LOG("destination: %s", r.dst_msg);
	check_rolled_back(_metadata, self);
}

TEST_F_TIMEOUT(fail, incompatible_destination_refused_at_handshake, 120)
{
	struct side other;
	struct vfmig_options o;
	struct result r;
	char armed[64];
	unsigned i;

	/* a destination of another type (1 port instead of 2) */
	side_close(&self->dst);
	side_destroy(&self->dst);
	ASSERT_EQ(0, side_create(&other, 2, MT_PARENT "-1", NULL));
	self->dst = other;
	ASSERT_EQ(0, side_open(&self->dst));
	/*
	 * Tripwires: had any device been asked to change state, these armed
	 * one-shot faults would have fired (and disarmed themselves).
	 */
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, mt_fault_write(self->src.uuid[i], MTTY_MIG_FAULT_FAIL_STATE,
					    "pre_copy 5"));
		ASSERT_EQ(0, mt_fault_write(self->dst.uuid[i], MTTY_MIG_FAULT_FAIL_STATE,
					    "resuming 5"));
	}
	options(&o, true, true);
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, NULL, &r));
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, r.src) TH_LOG("source: %s", r.src_msg);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, r.dst) TH_LOG("destination: %s", r.dst_msg);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, mt_fault_read(self->src.uuid[i], MTTY_MIG_FAULT_FAIL_STATE, armed,
					   sizeof(armed)));
		EXPECT_EQ(0, strncasecmp(armed, "PRE_COPY", 8)) TH_LOG("source fault: %s", armed);
		ASSERT_EQ(0, mt_fault_read(self->dst.uuid[i], MTTY_MIG_FAULT_FAIL_STATE, armed,
					   sizeof(armed)));
		EXPECT_EQ(0, strncasecmp(armed, "RESUMING", 8)) TH_LOG("dest fault: %s", armed);
		mt_fault_write(self->src.uuid[i], MTTY_MIG_FAULT_FAIL_STATE, "none");
		mt_fault_write(self->dst.uuid[i], MTTY_MIG_FAULT_FAIL_STATE, "none");
	}
	check_rolled_back(_metadata, self);
}

/* ---- PRECOPY_INFOv2 and REINIT (Linux 7.1 uAPI) -------------------------------- */

/*
 * Reconfigures device @uuid (a new metadata_size: mtty_mig's REINIT event)
 * from the source's progress callback, once: in @phase, when exactly @acks
 * switchover-acks are in (the source reads them before the callback, so its
 * loop cannot decide to switch over in that iteration).
 */
struct reinit_trigger {
	const char *uuid;
	enum vfmig_phase phase;
	int acks; /* -1: any */
	atomic_int fired;
	int err;
};

static void reinit_progress(const struct vfmig_progress *p, void *opaque)
{
	struct reinit_trigger *t = opaque;

	if (p->phase != t->phase || !p->acks_needed ||
	    (t->acks >= 0 && p->acks != (unsigned)t->acks))
		return;
	if (atomic_exchange(&t->fired, 1))
		return;
	t->err = mt_dev_attr_write(t->uuid, MTTY_MIG_ATTR_METADATA_SIZE, "24576");
}

/*
 * REINIT mid precopy, after the first of two acks: the source re-arms that
 * device's ack and switches over only after the destination loaded the new
 * initial data (initial_load_ms again, 1500 ms: the downtime excludes it);
 * the digests are equal.
 */
TEST_F_TIMEOUT(fail, reinit_mid_precopy_rearms_the_switchover_ack, 300)
{
	struct reinit_trigger t = { .uuid = self->src.uuid[0],
				    .phase = VFMIG_PHASE_PRECOPY,
				    .acks = 1 };
	struct vfmig_options o;
	struct result r;
	unsigned i;

	for (i = 0; i < self->dst.n; i++)
		ASSERT_EQ(0, mt_dev_attr_write(self->dst.uuid[i], MTTY_MIG_ATTR_INITIAL_LOAD_MS,
					       "1500"));
	options(&o, true, true);
	/* no convergence by downtime: the switchover comes at the iteration limit */
	o.downtime_limit_ms = 0;
	o.max_iterations = 40;
	o.progress = reinit_progress;
	o.progress_opaque = &t;
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, NULL, &r));
	ASSERT_EQ(VFMIG_OK, r.src) TH_LOG("source: %s", r.src_msg);
	ASSERT_EQ(VFMIG_OK, r.dst) TH_LOG("destination: %s", r.dst_msg);
	ASSERT_EQ(1, atomic_load(&t.fired));
	ASSERT_EQ(0, t.err);
	EXPECT_TRUE(r.stats.precopy_reinit);
	EXPECT_EQ(1, r.stats.precopy_reinits);
	EXPECT_EQ(1, mt_dev_attr_u64(self->src.uuid[0], MTTY_MIG_ATTR_REINITS));
	EXPECT_EQ(0, mt_dev_attr_u64(self->src.uuid[1], MTTY_MIG_ATTR_REINITS));
	TH_LOG("downtime %llu ms, %u stale ack(s)",
	       (unsigned long long)r.stats.downtime_ns / 1000000, r.stats.switchover_acks_stale);
	EXPECT_LT(r.stats.downtime_ns, 1500ull * 1000 * 1000)
	TH_LOG("downtime %llu ms includes an initial load",
	       (unsigned long long)r.stats.downtime_ns / 1000000);
	for (i = 0; i < self->src.n; i++) {
		char d1[32], d2[32];

		ASSERT_EQ(0, mt_digest(self->src.uuid[i], d1, sizeof(d1)));
		ASSERT_EQ(0, mt_digest(self->dst.uuid[i], d2, sizeof(d2)));
		EXPECT_STREQ(d1, d2) TH_LOG("device %u", i);
		EXPECT_STREQ(self->digest0[i], d1) TH_LOG("device %u", i);
	}
}

/*
 * REINIT at the switchover decision, with switchover-ack: the new initial
 * bytes would need an ack the decision no longer waits for, so the
 * migration fails before any device stops: the source is back in RUNNING
 * with its digest, the destination is reset.
 */
TEST_F_TIMEOUT(fail, reinit_at_the_switchover_decision_fails_cleanly, 300)
{
	struct reinit_trigger t = { .uuid = self->src.uuid[1],
				    .phase = VFMIG_PHASE_SWITCHOVER,
				    .acks = -1 };
	struct vfmig_options o;
	struct result r;

	options(&o, true, true);
	o.progress = reinit_progress;
	o.progress_opaque = &t;
	ASSERT_EQ(0, migrate(&self->src, &self->dst, &o, NULL, &r));
	ASSERT_EQ(1, atomic_load(&t.fired));
	ASSERT_EQ(0, t.err);
	EXPECT_EQ(VFMIG_ERR_DEVICE, r.src) TH_LOG("source: %s", r.src_msg);
	EXPECT_NE(NULL, strstr(r.src_msg, "REINIT")) TH_LOG("source: %s", r.src_msg);
	EXPECT_NE(VFMIG_OK, r.dst) TH_LOG("destination: %s", r.dst_msg);
	EXPECT_EQ(1, mt_dev_attr_u64(self->src.uuid[1], MTTY_MIG_ATTR_REINITS));
	check_rolled_back(_metadata, self);
}

/* ---- the vfio-mig tool, as processes -------------------------------------------- */

static pid_t spawn(const char *netns, char *const argv[], const char *out)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	if (netns) {
		char path[128];
		int fd;

		snprintf(path, sizeof(path), "/run/netns/%s", netns);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET))
			_exit(126);
	}
	if (out) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
	}
	execv(argv[0], argv);
	_exit(127);
}

struct exit_wait {
	pid_t pid;
	int status;
};

/* mt_wait_until() condition: the child exited (its status in @w) */
static int exited(void *arg)
{
	struct exit_wait *w = arg;
	pid_t r = waitpid(w->pid, &w->status, WNOHANG);

	return r == w->pid ? 1 : r < 0 ? -errno : 0;
}

/*
 * Wait for @pid until @deadline (mt_now_s()); its exit code, or -1 if it was
 * still running then (it is killed). *@at (if not NULL): when it was reaped.
 */
static int wait_exit_by(pid_t pid, double deadline, double *at)
{
	struct exit_wait w = { .pid = pid };
	int ret = mt_wait_until(exited, &w, deadline - mt_now_s());

	if (at)
		*at = mt_now_s();
	if (ret == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		waitpid(pid, &w.status, 0);
	}
	if (ret)
		return -1;
	return WIFEXITED(w.status) ? WEXITSTATUS(w.status) : 128 + WTERMSIG(w.status);
}

/* wait for @pid; -1 if it is still running after @secs seconds */
static int wait_exit(pid_t pid, int secs)
{
	return wait_exit_by(pid, mt_now_s() + secs, NULL);
}

static int sh(const char *cmd)
{
	int st = system(cmd);

	return st == -1 ? -1 : WEXITSTATUS(st);
}

#define RECV_LOG "/tmp/mtty-recv.log"
#define SEND_LOG "/tmp/mtty-send.log"

/* print a log file into the test's output */
static void show(const char *log)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "cat %s", log);
	sh(cmd);
}

/* what a process is waited for: @pid, and a count it must reach */
struct proc_wait {
	pid_t pid;
	long n;
};

/* @pid runs vfio-mig: spawn() is done with it (namespace, output, exec) */
static bool runs_vfio_mig(pid_t pid)
{
	char path[64], exe[sizeof(VFIO_MIG) + 1];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	n = readlink(path, exe, sizeof(exe));
	return n == sizeof(VFIO_MIG) - 1 && !memcmp(exe, VFIO_MIG, n);
}

/*
 * mt_wait_until() condition: the network namespace of the process counted
 * n refused (or otherwise failed) TCP connection attempts, Tcp AttemptFails
 * in /proc/PID/net/snmp.
 */
static int connects_refused(void *arg)
{
	const struct proc_wait *w = arg;
	char path[64], line[2][1024], *hs, *vs, *h, *v;
	int rows = 0;
	FILE *f;

	if (!runs_vfio_mig(w->pid))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/net/snmp", w->pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	/* a "Tcp:" row of names, then a "Tcp:" row of values */
	while (rows < 2 && fgets(line[rows], sizeof(line[rows]), f))
		rows += !strncmp(line[rows], "Tcp:", 4);
	fclose(f);
	if (rows < 2)
		return 0;
	h = strtok_r(line[0], " \n", &hs);
	v = strtok_r(line[1], " \n", &vs);
	for (; h && v; h = strtok_r(NULL, " \n", &hs), v = strtok_r(NULL, " \n", &vs))
		if (!strcmp(h, "AttemptFails"))
			return strtol(v, NULL, 10) >= w->n;
	return -ENOENT;
}

/* mt_wait_until() condition: the process holds n sockets */
static int holds_sockets(void *arg)
{
	const struct proc_wait *w = arg;
	char dir[64], path[sizeof(dir) + 256], link[16];
	struct dirent *e;
	long n = 0;
	DIR *d;

	if (!runs_vfio_mig(w->pid))
		return 0;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", w->pid);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n += readlink(path, link, sizeof(link)) >= 7 && !strncmp(link, "socket:", 7);
	}
	closedir(d);
	return n >= w->n;
}

struct connect_wait {
	const struct sockaddr_in *a;
	int fd;
};

/* mt_wait_until() condition: a connection to a->a is made (in ->fd) */
static int connected(void *arg)
{
	struct connect_wait *w = arg;

	w->fd = sock_connect(w->a, sizeof(*w->a));
	return w->fd >= 0 ? 1 : w->fd == -ECONNREFUSED ? 0 : w->fd;
}

/* poll(): @fd is readable (or hung up) within @secs seconds */
static bool readable(int fd, int secs)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	return poll(&pf, 1, secs * 1000) == 1;
}

FIXTURE(cli)
{
	struct side src, dst;
};

#define PSK_FILE "/tmp/mtty-mig-test.psk"

FIXTURE_SETUP(cli)
{
	static const char *const busy[] = { MTTY_MIG_ATTR_DIRTY_RATE, "300", NULL };

	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, access(VFIO_MIG, X_OK));
	ASSERT_EQ(0, side_create(&self->src, 2, MT_PARENT "-2", busy));
	ASSERT_EQ(0, side_create(&self->dst, 2, MT_PARENT "-2", NULL));
	/* the pre-shared key both hosts hold, made now: never a committed secret */
	ASSERT_EQ(0, mt_write_psk_file(PSK_FILE));
	/* two hosts: network namespaces joined by a veth pair */
	sh("/sbin/ip netns del mtsrc 2>/dev/null; /sbin/ip netns del mtdst 2>/dev/null");
	ASSERT_EQ(0, sh("/sbin/ip netns add mtsrc && /sbin/ip netns add mtdst && "
			"/sbin/ip link add mtv0 netns mtsrc type veth peer name mtv1 netns mtdst && "
			"/sbin/ip -n mtsrc link set lo up && /sbin/ip -n mtdst link set lo up && "
			"/sbin/ip -n mtsrc addr add 192.0.2.1/24 dev mtv0 && "
			"/sbin/ip -n mtdst addr add 192.0.2.2/24 dev mtv1 && "
			"/sbin/ip -n mtsrc addr add 2001:db8::1/64 dev mtv0 nodad && "
			"/sbin/ip -n mtdst addr add 2001:db8::2/64 dev mtv1 nodad && "
			"/sbin/ip -n mtsrc link set mtv0 up && /sbin/ip -n mtdst link set mtv1 up"));
}

FIXTURE_TEARDOWN(cli)
{
	sh("/sbin/ip netns del mtsrc 2>/dev/null; /sbin/ip netns del mtdst 2>/dev/null");
	side_destroy(&self->src);
	side_destroy(&self->dst);
}

/* the source's engines write @dirty pages/s, its data_fds yield @save bytes/s ("0": no limit) */
static void src_tune(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self,
		     const char *dirty, const char *save)
{
	unsigned i;

	for (i = 0; i < self->src.n; i++) {
		ASSERT_EQ(0, mt_dev_attr_write(self->src.uuid[i], MTTY_MIG_ATTR_DIRTY_RATE, dirty));
		ASSERT_EQ(0, mt_dev_attr_write(self->src.uuid[i], MTTY_MIG_ATTR_SAVE_RATE, save));
	}
}

static void src_digests(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self,
			char d[][32])
{
	unsigned i;

	for (i = 0; i < self->src.n; i++)
		ASSERT_EQ(0, mt_digest(self->src.uuid[i], d[i], 32));
}

/* a source whose state does not change (engines off), saving at @save bytes/s; its digests */
static void quiet_source(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self,
			 const char *save, char d0[][32])
{
	src_tune(_metadata, self, "0", save);
	src_digests(_metadata, self, d0);
}

/* every device of @s reads @state within @secs seconds (0: reads it now) */
static void expect_state(struct __test_metadata *_metadata, const struct side *s,
			 const char *state, double secs)
{
	unsigned i;

	for (i = 0; i < s->n; i++)
		EXPECT_EQ(0, mt_wait_attr_is(s->uuid[i], MTTY_MIG_ATTR_STATE, state, secs))
			TH_LOG("%s is not %s", s->uuid[i], state);
}

/*
 * After a migration that failed before COMMIT: the source devices run with
 * the state whose digests are @d0, and no destination device is left
 * RESUMING. A device that its process closed reads RUNNING whatever state it
 * was left in: the digests are what proves the source came back intact.
 */
static void cli_rolled_back(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self,
			    char d0[][32])
{
	char d[MAXDEV][32];
	unsigned i;

	src_digests(_metadata, self, d);
	for (i = 0; i < self->src.n; i++)
		EXPECT_STREQ(d0[i], d[i]) TH_LOG("source %u changed", i);
	expect_state(_metadata, &self->src, "RUNNING", 5);
	expect_state(_metadata, &self->dst, "RUNNING", 5);
}

/*
 * SIGINT and SIGTERM end vfio-mig within 1 s in any phase. The test VM
 * runs under TCG: every instruction is emulated and two vCPUs carry the
 * test, vfio-mig and the device engines, so a process can wait for a CPU a
 * while. The bound asserted here is 3 s.
 */
#define SIGNAL_BOUND_MS 3000

/* SIGINT @pid: it exits VFMIG_ERR_CANCELLED within SIGNAL_BOUND_MS (else @log is shown) */
static void sigint_cancels(struct __test_metadata *_metadata, pid_t pid, const char *log)
{
	double t0 = mt_now_s(), at;
	int rc;

	ASSERT_EQ(0, kill(pid, SIGINT));
	rc = wait_exit_by(pid, t0 + 30, &at);
	TH_LOG("exit code %d, %.0f ms after SIGINT", rc, (at - t0) * 1000);
	EXPECT_EQ(VFMIG_ERR_CANCELLED, rc) show(log);
	EXPECT_GE(SIGNAL_BOUND_MS, (int)((at - t0) * 1000)) show(log);
}

/* both ends of the veth pair "up" or "down" */
static int veth(const char *updown)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd),
		 "/sbin/ip -n mtsrc link set mtv0 %s && /sbin/ip -n mtdst link set mtv1 %s", updown,
		 updown);
	return sh(cmd);
}

/*
 * A tripwire on every destination device: a one-shot fault on STOP ->
 * RUNNING_P2P, the first step of starting a device, which disarms itself
 * when it fires. Still armed afterwards: nothing tried to start the device.
 */
static void dst_arm_start_tripwire(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self)
{
	unsigned i;

	for (i = 0; i < self->dst.n; i++)
		ASSERT_EQ(0, mt_fault_write(self->dst.uuid[i], MTTY_MIG_FAULT_FAIL_STATE,
					    "running_p2p 5"));
}

static void dst_never_started(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self)
{
	char armed[64];
	unsigned i;

	for (i = 0; i < self->dst.n; i++) {
		ASSERT_EQ(0, mt_fault_read(self->dst.uuid[i], MTTY_MIG_FAULT_FAIL_STATE, armed,
					   sizeof(armed)));
		EXPECT_EQ(0, strncasecmp(armed, "RUNNING_P2P", 11))
			TH_LOG("destination %u was started (fault now reads %s)", i, armed);
		mt_fault_write(self->dst.uuid[i], MTTY_MIG_FAULT_FAIL_STATE, "none");
	}
}

/* some line of @log contains @what */
static bool log_has(const char *log, const char *what)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(log, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, what);
	fclose(f);
	return found;
}

/*
 * Between the two hosts: TLS with a pre-shared key, as the README shows it,
 * TLS with X.509 certificates in QEMU's layout (a CA, the destination's
 * server and the source's client certificate, made at run time with the
 * GnuTLS API; the source verifies the destination's name with
 * --tls-hostname and the destination allows only the source's DN), or
 * plain TCP with --insecure, which a non-loopback listener needs without
 * TLS.
 */
enum cli_sec { CLI_PSK, CLI_X509, CLI_INSECURE };

static void cli_two_hosts(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self,
			  const char *listen, const char *to, enum cli_sec sec)
{
	char creds[160] = "", *recv_argv[16], *send_argv[20];
	struct tlsgen g;
	int rrc, src, r = 0, n = 0;
	pid_t rp, sp;
	unsigned i;

	if (sec == CLI_X509) {
		ASSERT_EQ(0, tlsgen_init(&g));
		ASSERT_EQ(0, tlsgen_x509(&g, "pki", "mtty-mig test CA"));
		snprintf(creds, sizeof(creds), "%s/pki", g.dir);
	}
	recv_argv[r++] = VFIO_MIG;
	recv_argv[r++] = "recv";
	recv_argv[r++] = "--listen";
	recv_argv[r++] = (char *)listen;
	recv_argv[r++] = "--timeout";
	recv_argv[r++] = "60";
	recv_argv[r++] = "--quiet";
	send_argv[n++] = VFIO_MIG;
	send_argv[n++] = "send";
	send_argv[n++] = "--to";
	send_argv[n++] = (char *)to;
	send_argv[n++] = "--channels";
	send_argv[n++] = "3";
	send_argv[n++] = "--timeout";
	send_argv[n++] = "60";
	send_argv[n++] = "--json";
	if (sec == CLI_PSK) {
		recv_argv[r++] = "--tls-psk";
		recv_argv[r++] = PSK_FILE;
		send_argv[n++] = "--tls-psk";
		send_argv[n++] = PSK_FILE;
	} else if (sec == CLI_X509) {
		recv_argv[r++] = "--tls-creds";
		recv_argv[r++] = creds;
		recv_argv[r++] = "--tls-allow-dn";
		recv_argv[r++] = TLSGEN_CLIENT_DN;
		send_argv[n++] = "--tls-creds";
		send_argv[n++] = creds;
		send_argv[n++] = "--tls-hostname";
		send_argv[n++] = TLSGEN_SERVER_NAME;
	} else {
		recv_argv[r++] = "--insecure";
	}
	for (i = 0; i < 2; i++) {
		recv_argv[r++] = self->dst.uuid[i];
		send_argv[n++] = self->src.uuid[i];
	}
	recv_argv[r] = NULL;
	send_argv[n] = NULL;

	rp = spawn("mtdst", recv_argv, RECV_LOG);
	ASSERT_LT(0, rp);
	/* the source retries its connection until the destination listens */
	sp = spawn("mtsrc", send_argv, SEND_LOG);
	ASSERT_LT(0, sp);
	src = wait_exit(sp, 240);
	rrc = wait_exit(rp, 60);
	EXPECT_EQ(0, src) show(SEND_LOG);
	EXPECT_EQ(0, rrc) show(RECV_LOG);
	/* --json names the cipher the two ends agreed */
	if (sec != CLI_INSECURE) {
		EXPECT_TRUE(log_has(SEND_LOG, "\"tls_cipher\":\"") &&
			    !log_has(SEND_LOG, "\"tls_cipher\":\"\""))
		show(SEND_LOG);
	}
	for (i = 0; i < 2; i++) {
		char d1[32], d2[32];

		ASSERT_EQ(0, mt_digest(self->src.uuid[i], d1, sizeof(d1)));
		ASSERT_EQ(0, mt_digest(self->dst.uuid[i], d2, sizeof(d2)));
		EXPECT_STREQ(d1, d2);
		EXPECT_EQ(0, mt_dev_attr_u64(self->src.uuid[i], MTTY_MIG_ATTR_P2P_VIOLATIONS));
	}
	if (sec == CLI_X509)
		tlsgen_fini(&g);
}

TEST_F_TIMEOUT(cli, two_hosts_over_veth_ipv4_tls_psk, 300)
{
	cli_two_hosts(_metadata, self, "tcp:192.0.2.2:4444", "tcp:192.0.2.2:4444", CLI_PSK);
}

TEST_F_TIMEOUT(cli, two_hosts_over_veth_ipv4_tls_x509, 300)
{
	cli_two_hosts(_metadata, self, "tcp:192.0.2.2:4446", "tcp:192.0.2.2:4446", CLI_X509);
}

TEST_F_TIMEOUT(cli, two_hosts_over_veth_ipv6_insecure, 300)
{
	cli_two_hosts(_metadata, self, "[2001:db8::2]:4445", "[2001:db8::2]:4445", CLI_INSECURE);
}

/* secure by default: no TLS on a non-loopback address without --insecure */
TEST_F_TIMEOUT(cli, plain_listen_on_the_network_is_refused, 120)
{
	char *recv_argv[] = { VFIO_MIG, "recv", "--listen", "tcp:192.0.2.2:4450", "--timeout",
			      "10", self->dst.uuid[0], self->dst.uuid[1], NULL };
	pid_t rp;

	rp = spawn("mtdst", recv_argv, RECV_LOG);
	ASSERT_LT(0, rp);
	EXPECT_EQ(2, wait_exit(rp, 60)) show(RECV_LOG);
	EXPECT_TRUE(log_has(RECV_LOG, "--insecure")) show(RECV_LOG);
	expect_state(_metadata, &self->dst, "RUNNING", 0);
}

/*
 * Start vfio-mig recv and send in the two namespaces with a quiet source
 * that is slow to save, wait until both sides are mid migration, send @sig
 * to the destination (@to_recv) or the source, and check the exit codes and
 * that the source is back, unchanged.
 */
static void interrupt_mid_migration(struct __test_metadata *_metadata, FIXTURE_DATA(cli) *self,
				    const char *port, bool to_recv, int sig, int want_src,
				    int want_dst, int or_dst)
{
	char addr[64];
	char *recv_argv[] = { VFIO_MIG, "recv", "--listen", addr, "--quiet", "--timeout", "30",
			      "--tls-psk", PSK_FILE, self->dst.uuid[0], self->dst.uuid[1], NULL };
	char *send_argv[] = { VFIO_MIG, "send", "--to", addr, "--timeout", "30",
			      "--tls-psk", PSK_FILE, self->src.uuid[0], self->src.uuid[1], NULL };
	char d0[2][32];
	pid_t rp, sp;
	int src, dst;

	snprintf(addr, sizeof(addr), "tcp:192.0.2.2:%s", port);
	quiet_source(_metadata, self, "4194304", d0);
	rp = spawn("mtdst", recv_argv, RECV_LOG);
	sp = spawn("mtsrc", send_argv, SEND_LOG);
	ASSERT_EQ(0, mt_wait_attr_is(self->dst.uuid[1], MTTY_MIG_ATTR_STATE, "RESUMING", 60));
	ASSERT_EQ(0, mt_wait_attr_is(self->src.uuid[0], MTTY_MIG_ATTR_STATE, "PRE_COPY", 60));
	ASSERT_EQ(0, kill(to_recv ? rp : sp, sig));
	src = wait_exit(sp, 120);
	dst = wait_exit(rp, 120);
	EXPECT_EQ(want_src, src) show(SEND_LOG);
	if (dst != or_dst)
		EXPECT_EQ(want_dst, dst) show(RECV_LOG);
	cli_rolled_back(_metadata, self, d0);
}

TEST_F_TIMEOUT(cli, destination_killed_source_rolls_back, 300)
{
	/* a dead peer is a transport failure, and the source is intact */
	interrupt_mid_migration(_metadata, self, "4446", true, SIGKILL, VFMIG_ERR_TRANSPORT,
				128 + SIGKILL, -1);
}

TEST_F_TIMEOUT(cli, sigint_on_source_cancels_both_sides, 300)
{
	/*
	 * Ctrl-C on the source: it cancels, tells the destination, rolls back.
	 * A cancel that lands while a precopy frame is half sent on the main
	 * channel cannot follow it with ERROR (a frame is never cut into), so
	 * the destination then sees the connection end: a transport failure.
	 */
	interrupt_mid_migration(_metadata, self, "4447", false, SIGINT, VFMIG_ERR_CANCELLED,
				VFMIG_ERR_REMOTE, VFMIG_ERR_TRANSPORT);
}

TEST_F_TIMEOUT(cli, sigint_on_destination_cancels_both_sides, 300)
{
	interrupt_mid_migration(_metadata, self, "4448", true, SIGINT, VFMIG_ERR_REMOTE,
				VFMIG_ERR_CANCELLED, -1);
}

/* what vfio-mig's --timeout is in the silent network test, and the bound on its exits */
#define SILENT_TIMEOUT "5"
#define SILENT_BOUND_S 30 /* --timeout + 5 s, and slack for TCG */

/*
 * --timeout bounds every wait. Mid STOP_COPY the veth link goes down on both
 * sides: the connections stay open and nothing arrives any more. Both
 * processes give up within the bound; COMMIT was never sent, so the source
 * devices run again with the state they stopped with, and the destination
 * never started its devices and reset them.
 */
TEST_F_TIMEOUT(cli, silent_network_mid_stop_copy_both_exit_within_timeout, 300)
{
	char *recv_argv[] = { VFIO_MIG, "recv", "--listen", "tcp:192.0.2.2:4449", "--quiet", "-v",
			      "--timeout", SILENT_TIMEOUT, "--tls-psk", PSK_FILE,
			      self->dst.uuid[0], self->dst.uuid[1], NULL };
	char *send_argv[] = { VFIO_MIG, "send", "--to", "tcp:192.0.2.2:4449", "--quiet", "-v",
			      "--timeout", SILENT_TIMEOUT, "--max-iterations", "1", "--tls-psk",
			      PSK_FILE, self->src.uuid[0], self->src.uuid[1], NULL };
	char d0[2][32], reset[MT_UUID_LEN + 8];
	double t0, ts, td;
	pid_t rp, sp;
	int src, dst;
	unsigned i;

	/*
	 * STOP_COPY carries seconds of data: the engines dirty every page again
	 * while the one precopy pass reads the memory at 2 MiB/s, and STOP_COPY
	 * reads it all again at that rate.
	 */
	src_tune(_metadata, self, "1000", "2097152");
	rp = spawn("mtdst", recv_argv, RECV_LOG);
	ASSERT_LT(0, rp);
	sp = spawn("mtsrc", send_argv, SEND_LOG);
	ASSERT_LT(0, sp);
	for (i = 0; i < self->src.n; i++)
		ASSERT_EQ(0, mt_wait_attr_is(self->src.uuid[i], MTTY_MIG_ATTR_STATE, "STOP_COPY",
					     120)) show(SEND_LOG);
	/* now, not before: RUNNING -> RESUMING went through RUNNING_P2P */
	expect_state(_metadata, &self->dst, "RESUMING", 0);
	dst_arm_start_tripwire(_metadata, self);
	/* stopped: the state the source must get back, which nothing changes now */
	src_digests(_metadata, self, d0);
	src_tune(_metadata, self, "0", "2097152");

	t0 = mt_now_s();
	ASSERT_EQ(0, veth("down"));
	src = wait_exit_by(sp, t0 + SILENT_BOUND_S, &ts);
	dst = wait_exit_by(rp, t0 + SILENT_BOUND_S, &td);
	TH_LOG("source: exit code %d after %.1f s; destination: exit code %d after %.1f s", src,
	       ts - t0, dst, td - t0);
	EXPECT_EQ(0, veth("up"));
	/* -1: still running at the bound (then killed) */
	EXPECT_NE(-1, src) TH_LOG("source still running %d s after the network went silent",
				  SILENT_BOUND_S);
	EXPECT_NE(-1, dst) TH_LOG("destination still running %d s after the network went silent",
				  SILENT_BOUND_S);
	/* a failure before COMMIT: codes 1..10 say the source runs again */
	EXPECT_TRUE(src > 0 && src < VFMIG_ERR_ROLLBACK) show(SEND_LOG);
	EXPECT_TRUE(dst > 0 && dst < VFMIG_ERR_ROLLBACK) show(RECV_LOG);
	cli_rolled_back(_metadata, self, d0);
	dst_never_started(_metadata, self);
	/* closed devices read RUNNING anyway: the destination's word that it reset them */
	for (i = 0; i < self->dst.n; i++) {
		snprintf(reset, sizeof(reset), "%s: reset", self->dst.uuid[i]);
		EXPECT_TRUE(log_has(RECV_LOG, reset)) show(RECV_LOG);
	}
}

/* SIGINT while the source retries a refused connection: nobody listens */
TEST_F_TIMEOUT(cli, sigint_during_connect_exits_within_a_second, 120)
{
	char *argv[] = { VFIO_MIG, "send", "--to", "tcp:192.0.2.2:4460", "--timeout", "60",
			 self->src.uuid[0], self->src.uuid[1], NULL };
	/* a connection is refused every 50 ms: ten of them, half a second of retries */
	struct proc_wait w = { .n = 10 };
	char d0[2][32];

	quiet_source(_metadata, self, "0", d0);
	w.pid = spawn("mtsrc", argv, SEND_LOG);
	ASSERT_LT(0, w.pid);
	ASSERT_EQ(0, mt_wait_until(connects_refused, &w, 60)) show(SEND_LOG);
	/* no device moved before a connection */
	expect_state(_metadata, &self->src, "RUNNING", 0);
	sigint_cancels(_metadata, w.pid, SEND_LOG);
	cli_rolled_back(_metadata, self, d0);
}

/* SIGINT while the source waits for a HELLO_ACK that never comes */
TEST_F_TIMEOUT(cli, sigint_during_handshake_exits_within_a_second, 120)
{
	char *argv[] = { VFIO_MIG, "send", "--to", "tcp:127.0.0.1:4461", "--timeout", "60",
			 self->src.uuid[0], self->src.uuid[1], NULL };
	struct sockaddr_in a = loopback(4461);
	char d0[2][32];
	int lfd, c;
	pid_t sp;

	quiet_source(_metadata, self, "0", d0);
	/* a destination that accepts, lets the HELLO arrive and never answers */
	lfd = sock_listen(&a, sizeof(a));
	ASSERT_LE(0, lfd);
	sp = spawn(NULL, argv, SEND_LOG);
	ASSERT_LT(0, sp);
	ASSERT_TRUE(readable(lfd, 60)) show(SEND_LOG);
	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ASSERT_LE(0, c);
	/* the HELLO is here: the source now waits for its answer */
	ASSERT_TRUE(readable(c, 60)) show(SEND_LOG);
	expect_state(_metadata, &self->src, "RUNNING", 0);
	sigint_cancels(_metadata, sp, SEND_LOG);
	close(c);
	close(lfd);
	cli_rolled_back(_metadata, self, d0);
}

/* SIGINT while the destination waits for the HELLO of a source that connected */
TEST_F_TIMEOUT(cli, sigint_during_handshake_on_destination_exits_within_a_second, 120)
{
	char *argv[] = { VFIO_MIG, "recv", "--listen", "tcp:127.0.0.1:4462", "--timeout", "60",
			 self->dst.uuid[0], self->dst.uuid[1], NULL };
	struct sockaddr_in a = loopback(4462);
	struct connect_wait cw = { .a = &a };
	/* its listening socket and the accepted connection */
	struct proc_wait w = { .n = 2 };
	char d0[2][32];

	quiet_source(_metadata, self, "0", d0);
	w.pid = spawn(NULL, argv, RECV_LOG);
	ASSERT_LT(0, w.pid);
	/* a source that connects once the destination listens, and says nothing */
	ASSERT_EQ(0, mt_wait_until(connected, &cw, 60)) show(RECV_LOG);
	ASSERT_EQ(0, mt_wait_until(holds_sockets, &w, 60)) show(RECV_LOG);
	sigint_cancels(_metadata, w.pid, RECV_LOG);
	close(cw.fd);
	cli_rolled_back(_metadata, self, d0);
}

TEST_F_TIMEOUT(cli, incompatible_destination_exit_code, 120)
{
	char spec0[80], spec1[80], other[MT_UUID_LEN];
	char *argv[] = { VFIO_MIG, "migrate", "--quiet", spec0, spec1, NULL };

	ASSERT_EQ(0, mt_mdev_create(MT_PARENT "-4", other));
	snprintf(spec0, sizeof(spec0), "%s=%s", self->src.uuid[0], other);
	snprintf(spec1, sizeof(spec1), "%s=%s", self->src.uuid[1], self->dst.uuid[1]);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, wait_exit(spawn(NULL, argv, "/tmp/mtty-mig.log"), 120))
		sh("cat /tmp/mtty-mig.log");
	EXPECT_EQ(0, mt_mdev_remove(other));
}

/*
 * A destination device that fails to start after COMMIT: the destination
 * owns the state, so nothing is reset, the other device runs, and both sides
 * say so with exit 13; every destination device holds the source's state.
 */
TEST_F_TIMEOUT(cli, destination_device_fails_to_start_after_commit_exit_13, 300)
{
	char spec0[100], spec1[100], d0[MAXDEV][32], d[32];
	char *argv[] = { VFIO_MIG, "migrate", "-v", "--channels", "2", spec0, spec1, NULL };
	const char *log = "/tmp/mtty-mig-commit.log";
	unsigned i;

	quiet_source(_metadata, self, "0", d0);
	/* Before COMMIT a destination device never steps into RUNNING: this fires after it. */
	ASSERT_EQ(0, mt_fault_write(self->dst.uuid[1], MTTY_MIG_FAULT_FAIL_STATE, "running 5"));
	snprintf(spec0, sizeof(spec0), "%s=%s", self->src.uuid[0], self->dst.uuid[0]);
	snprintf(spec1, sizeof(spec1), "%s=%s", self->src.uuid[1], self->dst.uuid[1]);
	EXPECT_EQ(VFMIG_ERR_INCOMPLETE, wait_exit(spawn(NULL, argv, log), 240)) show(log);
	EXPECT_TRUE(log_has(log, "did not start after COMMIT")) show(log);
	EXPECT_FALSE(log_has(log, ": reset")) show(log);
	mt_fault_write(self->dst.uuid[1], MTTY_MIG_FAULT_FAIL_STATE, "none");
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, mt_digest(self->dst.uuid[i], d, sizeof(d)));
		EXPECT_STREQ(d0[i], d) TH_LOG("destination %u does not hold the state", i);
		ASSERT_EQ(0, mt_digest(self->src.uuid[i], d, sizeof(d)));
		EXPECT_STREQ(d0[i], d) TH_LOG("source %u changed", i);
	}
}

/* Device pairs given crosswise: the labels catch it before any device changes state. */
TEST_F_TIMEOUT(cli, crossed_device_labels_refused_at_the_handshake, 120)
{
	char spec0[100], spec1[100], d0[2][32], d[32];
	char *argv[] = { VFIO_MIG, "migrate", "--quiet", spec0, spec1, NULL };

	for (int i = 0; i < 2; i++)
		ASSERT_EQ(0, mt_digest(self->dst.uuid[i], d0[i], sizeof(d0[i])));
	snprintf(spec0, sizeof(spec0), "%s@nic0=%s@gpu0", self->src.uuid[0], self->dst.uuid[0]);
	snprintf(spec1, sizeof(spec1), "%s@gpu0=%s@nic0", self->src.uuid[1], self->dst.uuid[1]);
	EXPECT_EQ(VFMIG_ERR_INCOMPATIBLE, wait_exit(spawn(NULL, argv, "/tmp/mtty-mig.log"), 120))
		sh("cat /tmp/mtty-mig.log");
	EXPECT_EQ(0, sh("grep -q 'same order' /tmp/mtty-mig.log")) sh("cat /tmp/mtty-mig.log");
	/* The destination was never touched. */
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, mt_digest(self->dst.uuid[i], d, sizeof(d)));
		EXPECT_STREQ(d0[i], d);
	}
}

TEST_F_TIMEOUT(cli, bad_arguments_exit_code, 60)
{
	char *a1[] = { VFIO_MIG, "migrate", "--channels", "1000", "x=y", NULL };
	char *a2[] = { VFIO_MIG, "frobnicate", NULL };
	char *a3[] = { VFIO_MIG, "info", "00000000-0000-0000-0000-000000000000", NULL };
	char *a4[] = { VFIO_MIG, "--help", NULL };

	EXPECT_EQ(VFMIG_ERR_USAGE, wait_exit(spawn(NULL, a1, "/dev/null"), 30));
	EXPECT_EQ(VFMIG_ERR_USAGE, wait_exit(spawn(NULL, a2, "/dev/null"), 30));
	EXPECT_EQ(VFMIG_ERR_DEVICE, wait_exit(spawn(NULL, a3, "/dev/null"), 30));
	EXPECT_EQ(0, wait_exit(spawn(NULL, a4, "/dev/null"), 30));
}

/* ---- a device whose driver we did not write -------------------------------------- */

TEST_F_TIMEOUT(cli, migrates_the_kernel_mtty_sample, 300)
{
	static const char types[] = "/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create";
	char a[MT_UUID_LEN], b[MT_UUID_LEN], spec[80];
	char *argv[] = { VFIO_MIG, "migrate", "--quiet", "--channels", "2", spec, NULL };
	uint8_t regs[2][8], back[8];
	struct mt_vfio v;
	int port, k;

	ASSERT_EQ(0, sh("/sbin/insmod /opt/mtty-mig/mtty.ko 2>/dev/null || test -d /sys/module/mtty"));
	mt_uuid_random(a);
	mt_uuid_random(b);
	ASSERT_EQ(0, mt_sysfs_write(types, a));
	ASSERT_EQ(0, mt_sysfs_write(types, b));
	/* put state in both ports of the source: scratch, line control, IER */
	ASSERT_EQ(0, mt_vfio_open(&v, a));
	for (port = 0; port < 2; port++) {
		uint8_t scr = (uint8_t)(0x3c + port), lcr = 0x1b, ier = 0x05;

		ASSERT_EQ(1, mt_region_write(v.device, VFIO_PCI_BAR0_REGION_INDEX + port, 7, &scr, 1));
		ASSERT_EQ(1, mt_region_write(v.device, VFIO_PCI_BAR0_REGION_INDEX + port, 3, &lcr, 1));
		ASSERT_EQ(1, mt_region_write(v.device, VFIO_PCI_BAR0_REGION_INDEX + port, 1, &ier, 1));
		for (k = 1; k < 8; k++)
			ASSERT_EQ(1, mt_region_read(v.device, VFIO_PCI_BAR0_REGION_INDEX + port, k,
						    &regs[port][k], 1));
	}
	mt_vfio_close(&v);

	snprintf(spec, sizeof(spec), "%s=%s", a, b);
	EXPECT_EQ(0, wait_exit(spawn(NULL, argv, "/tmp/mtty-sample.log"), 240))
		sh("cat /tmp/mtty-sample.log");

	ASSERT_EQ(0, mt_vfio_open(&v, b));
	for (port = 0; port < 2; port++) {
		for (k = 1; k < 8; k++) {
			if (k == 2 || k == 5 || k == 6)
				continue; /* IIR, LSR, MSR: status, not state */
			ASSERT_EQ(1, mt_region_read(v.device, VFIO_PCI_BAR0_REGION_INDEX + port, k,
						    &back[k], 1));
			EXPECT_EQ(regs[port][k], back[k]) TH_LOG("port %d reg %d", port, k);
		}
	}
	mt_vfio_close(&v);
	snprintf(spec, sizeof(spec), "/sys/bus/mdev/devices/%s/remove", a);
	EXPECT_EQ(0, mt_sysfs_write(spec, "1"));
	snprintf(spec, sizeof(spec), "/sys/bus/mdev/devices/%s/remove", b);
	EXPECT_EQ(0, mt_sysfs_write(spec, "1"));
}

TEST_HARNESS_MAIN
