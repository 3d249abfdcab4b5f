// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_session.c - a real destination session (vfmig_session_recv(): the
 * handshake, the main loop, the channel readers, the reorder buffer, the
 * load threads, LOADED, COMMIT, the reset before it) with fake devices, fed
 * by a rogue source that completes a valid handshake and then sends the
 * input's bytes on the main channel or any multifd channel.
 *
 * Input (fuzz.h, FZS_*): a configuration byte (multifd and 1..4 channels,
 * switchover-ack, one or two devices, load-config-after-iter, a budget of
 * two chunks, and whether to re-seal every frame's checksum so mutations
 * reach the checks behind XXH3), a second one (precopy over multifd), then
 * records: bytes for a channel, or
 * "wait for LOADED" (so a stream can carry a COMMIT that is not early).
 *
 * The destination gets a 300 ms timeout; the rogue closes its sending
 * sides after the last record, so a stream that stops short ends the
 * session at once (end of stream), and a silent wait is bounded by that
 * timeout.  No sleep anywhere.
 *
 * Checked, whatever the bytes (engine-design.rst, "Ownership and the commit
 * point"; ARCHITECTURE.md, "Invariants"):
 *   - the handshake is accepted and READY comes;
 *   - no destination device is asked to enter a running state (RUNNING,
 *     RUNNING_P2P, PRE_COPY, PRE_COPY_P2P) before the rogue has sent a
 *     whole, valid COMMIT frame on the main channel, and none is reset
 *     after one was started;
 *   - a session that returns OK has every device RUNNING and reports the
 *     destination as owner; a destination owner implies a COMMIT sent and
 *     the class OK or INCOMPLETE; any other outcome started no device;
 *   - the session ends (joined), and frees everything (LeakSanitizer).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz.h"

const char fuzz_name[] = "session";
const unsigned fuzz_smoke_execs = 1500;

#define DEST_TIMEOUT_MS 300
#define ROGUE_TIMEOUT_MS 5000
#define ALL_FLAGS (VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P | VFMIG_MIG_PRE_COPY)

/* ---- destination devices that watch what the session asks of them ----------------- */

struct watch {
	struct vfmig_device *inner;
	const atomic_bool *commit_sent;
	atomic_bool started;
};

static bool running_state(enum vfmig_state st)
{
	return st == VFMIG_STATE_RUNNING || st == VFMIG_STATE_RUNNING_P2P ||
	       st == VFMIG_STATE_PRE_COPY || st == VFMIG_STATE_PRE_COPY_P2P;
}

#define INNER(w) ((struct watch *)(w))->inner

static int w_get_state(void *w, enum vfmig_state *st)
{
	return INNER(w)->ops->get_state(INNER(w)->priv, st);
}

static int w_set_state(void *p, enum vfmig_state st)
{
	struct watch *w = p;

	if (running_state(st)) {
		FUZZ_CHECK(atomic_load(w->commit_sent),
			   "destination device asked to enter %s before COMMIT was sent",
			   vfmig_state_name(st));
		atomic_store(&w->started, true);
	}
	return w->inner->ops->set_state(w->inner->priv, st);
}

static ssize_t w_read(void *w, void *buf, size_t len)
{
	return INNER(w)->ops->read(INNER(w)->priv, buf, len);
}

static ssize_t w_write(void *w, const void *buf, size_t len)
{
	return INNER(w)->ops->write(INNER(w)->priv, buf, len);
}

static int w_precopy_info(void *w, uint64_t *i, uint64_t *d, uint32_t *fl)
{
	return INNER(w)->ops->precopy_info(INNER(w)->priv, i, d, fl);
}

static int w_precopy_v2(void *w)
{
	return INNER(w)->ops->precopy_v2(INNER(w)->priv);
}

static int w_data_size(void *w, uint64_t *b)
{
	return INNER(w)->ops->data_size(INNER(w)->priv, b);
}

static ssize_t w_config_read(void *w, void *buf, size_t len)
{
	return INNER(w)->ops->config_read(INNER(w)->priv, buf, len);
}

static int w_config_write(void *w, const void *buf, size_t len)
{
	return INNER(w)->ops->config_write(INNER(w)->priv, buf, len);
}

static int w_reset(void *p)
{
	struct watch *w = p;

	FUZZ_CHECK(!atomic_load(&w->started), "destination device reset after it was started");
	return w->inner->ops->reset(w->inner->priv);
}

static void w_close(void *p)
{
	struct watch *w = p;

	vfmig_device_close(w->inner);
	free(w);
}

static const struct vfmig_device_ops watch_ops = {
	.get_state = w_get_state,
	.set_state = w_set_state,
	.read = w_read,
	.write = w_write,
	.precopy_info = w_precopy_info,
	.precopy_v2 = w_precopy_v2,
	.data_size = w_data_size,
	.config_read = w_config_read,
	.config_write = w_config_write,
	.reset = w_reset,
	.close = w_close,
};

static struct vfmig_device *watch_new(unsigned i, const atomic_bool *commit_sent,
				      struct watch **out)
{
	struct vfmig_fake_cfg cfg;
	struct watch *w = calloc(1, sizeof(*w));
	struct vfmig_device *d;
	char name[16];

	FUZZ_CHECK(w, "calloc");
	vfmig_fake_cfg_init(&cfg);
	cfg.mem_size = FZS_DEV_SIZE;
	cfg.flags = ALL_FLAGS;
	cfg.seed = 200 + i;
	snprintf(name, sizeof(name), "dst%u", i);
	w->inner = vfmig_fake_new(name, &cfg);
	FUZZ_CHECK(w->inner, "fake device");
	w->commit_sent = commit_sent;
	d = vfmig_device_new(name, w->inner->compat, w->inner->flags, w->inner->config_size,
			     &watch_ops, w);
	FUZZ_CHECK(d, "device");
	*out = w;
	return d;
}

/* ---- the rogue source ------------------------------------------------------------- */

struct run {
	unsigned ndev, nch;
	uint8_t cfg, cfg2;
	struct vfmig_device *devs[2];
	struct watch *w[2];
	struct vfmig_session *ds;
	enum vfmig_errclass rc;
	int lfd;
	struct sockaddr_un addr;
	int fd[1 + 4]; /* main, then the channels */
	atomic_bool commit_sent;
};

static void *dest_thread(void *arg)
{
	struct run *R = arg;

	R->rc = vfmig_session_recv(R->ds, R->lfd);
	return NULL;
}

static int listen_new(struct run *R)
{
	static unsigned seq;
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	FUZZ_CHECK(fd >= 0, "socket: %m");
	memset(&R->addr, 0, sizeof(R->addr));
	R->addr.sun_family = AF_UNIX;
	/* Abstract and new for every input: nothing of an earlier run can connect to it. */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			  (size_t)snprintf(R->addr.sun_path + 1, sizeof(R->addr.sun_path) - 1,
					   "vfmig-fuzz-%d-%u", (int)getpid(), seq++));
	FUZZ_CHECK(!bind(fd, (struct sockaddr *)&R->addr, len) && !listen(fd, 8), "listen: %m");
	return fd;
}

static int rogue_connect(struct run *R)
{
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				    strlen(R->addr.sun_path + 1));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	FUZZ_CHECK(fd >= 0 && !connect(fd, (struct sockaddr *)&R->addr, len), "connect: %m");
	return fd;
}

/* Send all of @buf, bounded: false when the destination is gone or stopped reading. */
static bool rogue_send(int fd, const void *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (vfmig_wait_fd(fd, POLLOUT, ROGUE_TIMEOUT_MS, NULL))
				return false;
			continue;
		}
		if (n <= 0)
			return false;
		buf = (const uint8_t *)buf + n;
		len -= (size_t)n;
	}
	return true;
}

static bool rogue_frame(int fd, uint16_t type, uint32_t flags, const void *p, uint32_t len)
{
	uint8_t buf[VFMIG_HDR_LEN + VFMIG_HELLO_MAX];

	return rogue_send(fd, buf, vfmig_frame_encode(buf, type, flags, 0, 0, p, len));
}

/* The next frame on the main channel that is not a PING. */
static enum vfmig_ferr rogue_recv(struct run *R, struct vfmig_frame *f)
{
	struct vfmig_limits lim = { .ndevices = R->ndev, .max_chunk = FZS_CHUNK };
	enum vfmig_ferr fe;
	char why[256];
	int e;

	for (;;) {
		fe = vfmig_recv_frame(R->fd[0], &lim, ROGUE_TIMEOUT_MS, f, &e, why, sizeof(why));
		FUZZ_CHECK(fe != VFMIG_FERR_TIMEOUT, "the destination said nothing for %d ms",
			   ROGUE_TIMEOUT_MS);
		if (fe || f->h.type != VFMIG_F_PING)
			return fe;
		vfmig_frame_free(f);
	}
}

static void handshake(struct run *R)
{
	uint8_t buf[VFMIG_HELLO_MAX], ch[VFMIG_CHANNEL_HELLO_LEN];
	struct vfmig_hello h = { 0 };
	struct vfmig_frame f;
	size_t n;

	h.proto_version = h.min_proto_version = VFMIG_PROTO_VERSION;
	h.session_id = FZS_SESSION_ID;
	h.options =
		(R->nch ? VFMIG_OPT_MULTIFD : 0) |
		((R->cfg & FZS_SACK) ? VFMIG_OPT_SWITCHOVER_ACK | VFMIG_OPT_PRECOPY_REINIT : 0) |
		(R->nch && (R->cfg2 & FZS2_PRECOPY_MULTIFD) ? VFMIG_OPT_PRECOPY_MULTIFD : 0);
	h.nchannels = R->nch;
	h.chunk_size = FZS_CHUNK;
	h.ndevices = R->ndev;
	for (unsigned i = 0; i < R->ndev; i++) {
		h.dev[i].mig_flags = ALL_FLAGS;
		h.dev[i].config_size = vfmig_device_config_size(R->devs[i]);
		snprintf(h.dev[i].compat, VFMIG_COMPAT_LEN, "%s", vfmig_device_compat(R->devs[i]));
	}
	n = vfmig_hello_encode(buf, sizeof(buf), &h);
	R->fd[0] = rogue_connect(R);
	FUZZ_CHECK(rogue_frame(R->fd[0], VFMIG_F_HELLO, 0, buf, (uint32_t)n), "send HELLO");
	FUZZ_CHECK(!rogue_recv(R, &f) && f.h.type == VFMIG_F_HELLO_ACK, "no HELLO_ACK");
	{
		struct vfmig_report r;

		vfmig_report_decode(&f, &r);
		FUZZ_CHECK(r.a == VFMIG_OK, "a valid HELLO was refused: %s", r.msg);
	}
	vfmig_frame_free(&f);
	for (unsigned i = 0; i < R->nch; i++) {
		struct vfmig_channel_hello chh = { FZS_SESSION_ID, i, R->nch };

		vfmig_channel_hello_encode(ch, &chh);
		R->fd[1 + i] = rogue_connect(R);
		FUZZ_CHECK(rogue_frame(R->fd[1 + i], VFMIG_F_CHANNEL_HELLO, 0, ch, sizeof(ch)),
			   "send CHANNEL_HELLO");
	}
	FUZZ_CHECK(!rogue_recv(R, &f) && f.h.type == VFMIG_F_READY,
		   "no READY after a valid handshake");
	vfmig_frame_free(&f);
}

/* Read the main channel until LOADED, COMPLETE, ERROR or its end. */
static void wait_loaded(struct run *R)
{
	for (;;) {
		struct vfmig_frame f;
		uint16_t type;

		if (rogue_recv(R, &f))
			return;
		type = f.h.type;
		vfmig_frame_free(&f);
		if (type == VFMIG_F_LOADED || type == VFMIG_F_COMPLETE || type == VFMIG_F_ERROR)
			return;
	}
}

/*
 * The offset just past the first whole, valid COMMIT frame in the main
 * channel's bytes, walking frame boundaries as a receiver does; 0 if none.
 */
static size_t commit_end(const uint8_t *m, size_t len)
{
	static const struct vfmig_limits lim = { .ndevices = 2, .max_chunk = FZS_CHUNK };

	for (size_t off = 0; len - off >= VFMIG_HDR_LEN;) {
		struct vfmig_frame_hdr h;
		char why[128];

		vfmig_hdr_unpack(m + off, &h);
		if (h.type == VFMIG_F_COMMIT && !vfmig_hdr_validate(&h, &lim, why, sizeof(why)) &&
		    vfmig_frame_checksum(m + off, NULL, 0) == h.checksum)
			return off + VFMIG_HDR_LEN;
		if (h.length > len - off - VFMIG_HDR_LEN)
			break;
		off += VFMIG_HDR_LEN + h.length;
	}
	return 0;
}

/* One record of the input. */
struct rec {
	uint8_t kind; /* 0..nch: a channel, FZS_WAIT_LOADED */
	uint8_t *p;
	size_t len;
};

/* @z reads a private copy of the input: the records point into it. */
static size_t parse(struct run *R, struct fz *z, struct rec *recs, size_t max)
{
	size_t n = 0;

	while (z->n && n < max) {
		uint8_t tag = fz_u8(z);
		size_t len;

		if (tag == FZS_WAIT_LOADED) {
			recs[n++] = (struct rec){ .kind = FZS_WAIT_LOADED };
			continue;
		}
		len = fz_u16(z);
		len = MIN(len, z->n);
		recs[n].kind = (uint8_t)(tag % (R->nch + 1));
		recs[n].p = (uint8_t *)z->p;
		recs[n].len = len;
		z->p += len;
		z->n -= len;
		n++;
	}
	return n;
}

static void play(struct run *R, struct rec *recs, size_t nrec)
{
	uint8_t *main_bytes;
	size_t main_len = 0, cend, sent_main = 0;
	bool alive[5] = { true, true, true, true, true };

	for (size_t i = 0; i < nrec; i++) {
		if (recs[i].kind != FZS_WAIT_LOADED && (R->cfg & FZS_RESEAL))
			fuzz_reseal(recs[i].p, recs[i].len);
		if (recs[i].kind == 0)
			main_len += recs[i].len;
	}
	main_bytes = malloc(main_len ? main_len : 1);
	main_len = 0;
	for (size_t i = 0; i < nrec; i++) {
		if (recs[i].kind == 0) {
			memcpy(main_bytes + main_len, recs[i].p, recs[i].len);
			main_len += recs[i].len;
		}
	}
	cend = commit_end(main_bytes, main_len);
	free(main_bytes);

	for (size_t i = 0; i < nrec; i++) {
		struct rec *r = &recs[i];

		if (r->kind == FZS_WAIT_LOADED) {
			wait_loaded(R);
			continue;
		}
		if (r->kind == 0) {
			/* Before the bytes leave: the destination may act on them at once. */
			if (cend && sent_main + r->len >= cend)
				atomic_store(&R->commit_sent, true);
			sent_main += r->len;
		}
		if (alive[r->kind] && r->len)
			alive[r->kind] = rogue_send(R->fd[r->kind], r->p, r->len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rec recs[4096];
	struct fz z = { data, MIN(size, (size_t)FUZZ_MAX_INPUT) };
	struct vfmig_options o;
	struct run R = { 0 };
	enum vfmig_owner owner;
	pthread_t dt;
	uint8_t *copy;
	size_t nrec;

	R.cfg = fz_u8(&z);
	R.cfg2 = fz_u8(&z);
	R.ndev = (R.cfg & FZS_TWO_DEVICES) ? 2 : 1;
	R.nch = (R.cfg & FZS_MULTIFD) ? 1 + ((R.cfg >> FZS_NCH_SHIFT) & 3) : 0;
	for (unsigned i = 0; i < 5; i++)
		R.fd[i] = -1;
	atomic_init(&R.commit_sent, false);
	for (unsigned i = 0; i < R.ndev; i++)
		R.devs[i] = watch_new(i, &R.commit_sent, &R.w[i]);

	/* The records point into a private copy: re-sealing writes to it. */
	copy = malloc(z.n ? z.n : 1);
	memcpy(copy, z.p, z.n);
	z.p = copy;
	nrec = parse(&R, &z, recs, sizeof(recs) / sizeof(recs[0]));

	vfmig_options_init(&o);
	o.timeout_ms = DEST_TIMEOUT_MS;
	o.channels = 0; /* whatever the source asks, up to max_channels */
	o.max_channels = 4;
	o.max_chunk = FZS_CHUNK;
	o.max_queued_bytes = (R.cfg & FZS_SMALL_BUDGET) ? 2 * FZS_CHUNK : 1 << 20;
	o.load_config_after_iter = (R.cfg & FZS_CONFIG_AFTER_ITER) ? VFMIG_ON : VFMIG_AUTO;
	o.log_prefix = "fuzz-dst";
	R.lfd = listen_new(&R);
	R.ds = vfmig_session_new(false, R.devs, R.ndev, &o);
	FUZZ_CHECK(R.ds, "session");
	FUZZ_CHECK(!pthread_create(&dt, NULL, dest_thread, &R), "thread");

	handshake(&R);
	play(&R, recs, nrec);
	/* Nothing more comes: a stream that stopped short ends the session now. */
	for (unsigned i = 0; i <= R.nch; i++)
		shutdown(R.fd[i], SHUT_WR);
	for (struct vfmig_frame f; !rogue_recv(&R, &f);)
		vfmig_frame_free(&f);
	pthread_join(dt, NULL);

	owner = vfmig_session_owner(R.ds);
	if (getenv("FUZZ_SESSION_DEBUG"))
		fprintf(stderr, "fuzz_session: class %d, owner %d: %s\n", R.rc, owner,
			vfmig_session_error(R.ds)->msg);
	FUZZ_CHECK(R.rc < VFMIG_ERR_NR, "class %d", R.rc);
	if (R.rc == VFMIG_OK) {
		FUZZ_CHECK(owner == VFMIG_OWNER_DESTINATION, "OK but owner %d", owner);
		for (unsigned i = 0; i < R.ndev; i++)
			FUZZ_CHECK(vfmig_fake_state(R.w[i]->inner) == VFMIG_STATE_RUNNING,
				   "OK but device %u is %s", i,
				   vfmig_state_name(vfmig_fake_state(R.w[i]->inner)));
	}
	if (owner == VFMIG_OWNER_DESTINATION)
		FUZZ_CHECK(atomic_load(&R.commit_sent) &&
				   (R.rc == VFMIG_OK || R.rc == VFMIG_ERR_INCOMPLETE),
			   "owner destination with class %d", R.rc);
	else
		for (unsigned i = 0; i < R.ndev; i++)
			FUZZ_CHECK(!atomic_load(&R.w[i]->started),
				   "device %u started but the destination does not own it", i);

	vfmig_session_free(R.ds);
	for (unsigned i = 0; i <= R.nch; i++)
		close(R.fd[i]);
	close(R.lfd);
	for (unsigned i = 0; i < R.ndev; i++)
		vfmig_device_close(R.devs[i]);
	free(copy);
	return 0;
}
