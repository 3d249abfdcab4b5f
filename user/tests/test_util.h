/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * test_util.h - helpers shared by the host unit tests: a source and a
 * destination session migrating fake devices over a UNIX socket between
 * two threads of the test process, and raw-socket helpers to play a
 * misbehaving peer.  No sleeps: threads are joined, sockets block.
 */
#ifndef VFMIG_TEST_UTIL_H
#define VFMIG_TEST_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfmig_internal.h"

#define PAIR_MAX 4

struct pair {
	unsigned n;
	struct vfmig_device *src[PAIR_MAX], *dst[PAIR_MAX];
	struct vfmig_options so, dopt;
	char dir[64];
	struct vfmig_addr addr;
	int lfd;
	struct vfmig_session *ss, *ds;
	enum vfmig_errclass src_rc, dst_rc;
	uint64_t src_digest[PAIR_MAX];
};

/* A fake device of @size bytes with @flags, its memory seeded with @seed. */
static inline struct vfmig_fake_cfg fake_cfg(size_t size, uint64_t flags, uint32_t seed)
{
	struct vfmig_fake_cfg cfg;

	vfmig_fake_cfg_init(&cfg);
	cfg.mem_size = size;
	cfg.flags = flags;
	cfg.seed = seed;
	return cfg;
}

static inline struct vfmig_device *fake(const char *name, size_t size, uint64_t flags,
					uint32_t seed)
{
	struct vfmig_fake_cfg cfg = fake_cfg(size, flags, seed);

	return vfmig_fake_new(name, &cfg);
}

/* The error recorded by session @s mentions @needle. */
#define EXPECT_MSG(s, needle)                                        \
	EXPECT_NE(NULL, strstr(vfmig_session_error(s)->msg, needle)) \
	TH_LOG("message: %s", vfmig_session_error(s)->msg)

#define ALL_FLAGS (VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P | VFMIG_MIG_PRE_COPY)

/*
 * (kselftest harness) Both sides of pair @p succeeded, and every destination
 * device holds what its source stopped with, RUNNING, the source STOP.
 */
#define EXPECT_PAIR_MIGRATED(p)                                                         \
	do {                                                                            \
		ASSERT_EQ(VFMIG_OK, (p)->src_rc)                                        \
		TH_LOG("source: %s", vfmig_session_error((p)->ss)->msg);                \
		ASSERT_EQ(VFMIG_OK, (p)->dst_rc)                                        \
		TH_LOG("destination: %s", vfmig_session_error((p)->ds)->msg);           \
		for (unsigned i_ = 0; i_ < (p)->n; i_++) {                              \
			EXPECT_EQ(vfmig_fake_digest((p)->src[i_]),                      \
				  vfmig_fake_digest((p)->dst[i_]));                     \
			EXPECT_EQ(VFMIG_STATE_RUNNING, vfmig_fake_state((p)->dst[i_])); \
			EXPECT_EQ(VFMIG_STATE_STOP, vfmig_fake_state((p)->src[i_]));    \
		}                                                                       \
	} while (0)

/* n device pairs with all features, 1 MiB each; sources seeded 100+i, destinations 200+i. */
static inline int pair_init(struct pair *p, unsigned n)
{
	memset(p, 0, sizeof(*p));
	p->n = n;
	p->lfd = -1;
	vfmig_options_init(&p->so);
	vfmig_options_init(&p->dopt);
	p->so.timeout_ms = p->dopt.timeout_ms = 10000;
	p->dopt.channels = 0;
	p->so.chunk_size = p->dopt.chunk_size = 64 << 10;
	for (unsigned i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "src%u", i);
		p->src[i] = fake(name, 1 << 20, ALL_FLAGS, 100 + i);
		snprintf(name, sizeof(name), "dst%u", i);
		p->dst[i] = fake(name, 1 << 20, ALL_FLAGS, 200 + i);
		if (!p->src[i] || !p->dst[i])
			return -1;
	}
	return 0;
}

static inline void *pair_recv_thread(void *arg)
{
	struct pair *p = arg;

	p->dst_rc = vfmig_session_recv(p->ds, p->lfd);
	return NULL;
}

/* Listen on a UNIX socket in a new private directory (pair_fini() removes both). */
static inline int pair_listen(struct pair *p)
{
	struct vfmig_error e;
	char a[128];

	snprintf(p->dir, sizeof(p->dir), "/tmp/vfmig-test.XXXXXX");
	if (!mkdtemp(p->dir))
		return -1;
	snprintf(a, sizeof(a), "unix:%s/sock", p->dir);
	if (vfmig_addr_parse(a, &p->addr, &e))
		return -1;
	p->lfd = vfmig_listen(&p->addr, &e);
	return p->lfd < 0 ? -1 : 0;
}

/*
 * Listen (unless listening already), create both sessions (so hooks can
 * reach them), run the source against @to (NULL: the listener), join.
 */
static inline int pair_run_to(struct pair *p, const struct vfmig_addr *to)
{
	pthread_t t;

	if (p->lfd < 0 && pair_listen(p))
		return -1;
	p->ds = vfmig_session_new(false, p->dst, p->n, &p->dopt);
	p->ss = vfmig_session_new(true, p->src, p->n, &p->so);
	if (!p->ds || !p->ss)
		return -1;
	for (unsigned i = 0; i < p->n; i++)
		p->src_digest[i] = vfmig_fake_digest(p->src[i]);
	if (pthread_create(&t, NULL, pair_recv_thread, p))
		return -1;
	p->src_rc = vfmig_session_send(p->ss, to ? to : &p->addr);
	if (p->src_rc)
		vfmig_session_abort(p->ds, VFMIG_ERR_REMOTE, "source failed");
	pthread_join(t, NULL);
	return 0;
}

static inline int pair_run(struct pair *p)
{
	return pair_run_to(p, NULL);
}

static inline void pair_fini(struct pair *p)
{
	vfmig_session_free(p->ss);
	vfmig_session_free(p->ds);
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->addr.path[0])
		unlink(p->addr.path);
	if (p->dir[0])
		rmdir(p->dir);
	for (unsigned i = 0; i < p->n; i++) {
		vfmig_device_close(p->src[i]);
		vfmig_device_close(p->dst[i]);
	}
}

/* Write a raw frame on fd (for misbehaving peers). */
static inline int raw_send(int fd, uint16_t type, uint32_t flags, uint32_t dev, uint32_t idx,
			   const void *payload, uint32_t len)
{
	uint8_t *buf = malloc(VFMIG_HDR_LEN + len);
	size_t n = vfmig_frame_encode(buf, type, flags, dev, idx, payload, len);
	ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

	free(buf);
	return w == (ssize_t)n ? 0 : -1;
}

static inline int raw_send_bytes(int fd, const void *buf, size_t n)
{
	return send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* The next frame, PINGs included. */
static inline enum vfmig_ferr raw_recv_any(int fd, unsigned ndev, uint32_t chunk,
					   struct vfmig_frame *f)
{
	struct vfmig_limits lim = { .ndevices = ndev, .max_chunk = chunk };
	char why[256];
	int e;

	return vfmig_recv_frame(fd, &lim, 5000, f, &e, why, sizeof(why));
}

/* The next frame that is not a liveness PING. */
static inline enum vfmig_ferr raw_recv(int fd, unsigned ndev, uint32_t chunk, struct vfmig_frame *f)
{
	struct vfmig_limits lim = { .ndevices = ndev, .max_chunk = chunk };
	enum vfmig_ferr fe;
	char why[256];
	int e;

	for (;;) {
		fe = vfmig_recv_frame(fd, &lim, 5000, f, &e, why, sizeof(why));
		if (fe || f->h.type != VFMIG_F_PING)
			return fe;
		vfmig_frame_free(f);
	}
}

/*
 * Play a source by hand on @fd: HELLO for @ndev devices like @dst[], @nch
 * multifd channels of @chunk bytes, options @opts, session @sid.  0 when the
 * destination accepted, -2 when it refused, -1 on an I/O error.
 */
static inline int raw_hello(int fd, struct vfmig_device **dst, unsigned ndev, uint64_t sid,
			    unsigned nch, uint32_t chunk, uint32_t opts)
{
	uint8_t buf[VFMIG_HELLO_MAX];
	struct vfmig_hello h = { 0 };
	struct vfmig_frame f;
	size_t n;
	int ret;

	h.proto_version = h.min_proto_version = VFMIG_PROTO_VERSION;
	h.session_id = sid;
	h.options = (nch ? VFMIG_OPT_MULTIFD : 0) | opts;
	h.nchannels = nch;
	h.chunk_size = chunk;
	h.ndevices = ndev;
	for (unsigned i = 0; i < ndev; i++) {
		h.dev[i].mig_flags = ALL_FLAGS;
		h.dev[i].config_size = vfmig_device_config_size(dst[i]);
		snprintf(h.dev[i].compat, VFMIG_COMPAT_LEN, "%s", vfmig_device_compat(dst[i]));
	}
	n = vfmig_hello_encode(buf, sizeof(buf), &h);
	if (raw_send(fd, VFMIG_F_HELLO, 0, 0, 0, buf, (uint32_t)n))
		return -1;
	if (raw_recv(fd, ndev, chunk, &f) || f.h.type != VFMIG_F_HELLO_ACK)
		return -1;
	ret = get_le32(f.payload) ? -2 : 0;
	vfmig_frame_free(&f);
	return ret;
}

/* Connect multifd channel @ch of @nch to @a and say CHANNEL_HELLO; the fd or -1. */
static inline int raw_channel(const struct vfmig_addr *a, uint64_t sid, unsigned ch, unsigned nch)
{
	struct vfmig_channel_hello chh = { .session_id = sid, .channel = ch, .nchannels = nch };
	uint8_t p[VFMIG_CHANNEL_HELLO_LEN];
	int fd = vfmig_connect(a, 2000, NULL);

	vfmig_channel_hello_encode(p, &chh);
	if (fd >= 0 && raw_send(fd, VFMIG_F_CHANNEL_HELLO, 0, 0, 0, p, sizeof(p))) {
		close(fd);
		return -1;
	}
	return fd;
}

#endif
