/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * rogue.h - a source played by hand against a real destination session, to
 * send what a real source never would (a chunk that never comes, payloads
 * on every channel at once, frames of the wrong type), and the process's
 * RSS, to measure what the destination holds meanwhile.
 *
 *	struct rogue_src r = { .main_fd = -1 };
 *	pair_init(&r.p, 1); ... set r.p.dopt ...; pair_listen(&r.p);
 *	r.p.ds = vfmig_session_new(false, r.p.dst, 1, &r.p.dopt);
 *	rogue_src_start(&r, 1, nch, chunk, 0);   destination now RESUMING, READY read
 *	... raw_send(r.main_fd, ...), flood_thread on r.ch_fd[i] ...
 *	rogue_src_wait(&r);                      the destination session ended
 *	rogue_src_fini(&r);
 */
#ifndef VFMIG_TEST_ROGUE_H
#define VFMIG_TEST_ROGUE_H

#include "test_util.h"

#define MiB (1ull << 20)

/* Field @key of /proc/self/status, in bytes. */
static inline uint64_t status_bytes(const char *key)
{
	char line[256];
	uint64_t v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key))) {
			v = strtoull(line + strlen(key), NULL, 10) * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0). */
static inline int reset_peak_rss(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	int ret;

	if (!f)
		return -1;
	ret = fputs("5", f) < 0 ? -1 : 0;
	return fclose(f) || ret ? -1 : 0;
}

struct rogue_src {
	struct pair p;
	pthread_t dt; /* the destination session */
	bool dt_started;
	int main_fd;
	int ch_fd[VFMIG_MAX_CHANNELS];
	unsigned nch; /* channels connected */
};

/*
 * A destination session for one device with a @budget reorder buffer that
 * accepts up to @nch channels of @chunk bytes and waits 2 s for a silent
 * peer (not started yet); 0 or -1.
 */
static inline int rogue_src_bounded(struct rogue_src *r, uint64_t budget, uint32_t chunk,
				    unsigned nch)
{
	if (pair_init(&r->p, 1))
		return -1;
	r->p.dopt.max_queued_bytes = budget;
	r->p.dopt.max_chunk = chunk;
	r->p.dopt.max_channels = nch;
	r->p.dopt.timeout_ms = 2000;
	if (pair_listen(&r->p))
		return -1;
	r->p.ds = vfmig_session_new(false, r->p.dst, 1, &r->p.dopt);
	return r->p.ds ? 0 : -1;
}

/*
 * Start the destination session in a thread and handshake with it by hand:
 * HELLO for @ndev devices like r->p.dst, @nch channels of @chunk bytes,
 * options @opts, up to READY.  0, -2 when the destination refused, -1.
 */
static inline int rogue_src_start(struct rogue_src *r, unsigned ndev, unsigned nch, uint32_t chunk,
				  uint32_t opts)
{
	struct vfmig_frame f;
	int ret;

	r->nch = 0;
	if (pthread_create(&r->dt, NULL, pair_recv_thread, &r->p))
		return -1;
	r->dt_started = true;
	r->main_fd = vfmig_connect(&r->p.addr, 2000, NULL);
	if (r->main_fd < 0)
		return -1;
	ret = raw_hello(r->main_fd, r->p.dst, ndev, 9, nch, chunk, opts);
	if (ret)
		return ret;
	for (unsigned i = 0; i < nch; i++) {
		r->ch_fd[i] = raw_channel(&r->p.addr, 9, i, nch);
		if (r->ch_fd[i] < 0)
			return -1;
		r->nch++;
	}
	if (raw_recv(r->main_fd, ndev, chunk, &f) || f.h.type != VFMIG_F_READY)
		return -1;
	vfmig_frame_free(&f);
	return 0;
}

/* Wait for the destination session to end (before looking at its devices). */
static inline void rogue_src_wait(struct rogue_src *r)
{
	if (r->dt_started)
		pthread_join(r->dt, NULL);
	r->dt_started = false;
}

static inline void rogue_src_fini(struct rogue_src *r)
{
	if (r->main_fd >= 0)
		shutdown(r->main_fd, SHUT_RDWR);
	for (unsigned i = 0; i < r->nch; i++)
		shutdown(r->ch_fd[i], SHUT_RDWR);
	rogue_src_wait(r);
	if (r->main_fd >= 0)
		close(r->main_fd);
	for (unsigned i = 0; i < r->nch; i++)
		close(r->ch_fd[i]);
	pair_fini(&r->p);
}

/* One frame header of device 0, then all but @short_by bytes of its payload. */
struct flood {
	int fd;
	uint16_t type;
	uint32_t idx, len, short_by;
};

static inline void *flood_thread(void *arg)
{
	static uint8_t chunk[1 << 20];
	struct flood *fl = arg;
	struct vfmig_frame_hdr h = {
		.magic = VFMIG_MAGIC,
		.version = VFMIG_FRAME_VERSION,
		.type = fl->type,
		.idx = fl->idx,
		.length = fl->len,
	};
	uint8_t hdr[VFMIG_HDR_LEN];
	uint32_t left = fl->len - fl->short_by;

	/* The checksum is never reached: the destination gives up before. */
	vfmig_hdr_pack(hdr, &h);
	if (raw_send_bytes(fl->fd, hdr, sizeof(hdr)))
		return NULL;
	while (left) {
		uint32_t n = MIN(left, (uint32_t)sizeof(chunk));

		if (raw_send_bytes(fl->fd, chunk, n))
			break; /* the destination closed: it gave up */
		left -= n;
	}
	return NULL;
}

#endif
