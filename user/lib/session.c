// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * session.c - orchestration of one migration, source or destination.
 *
 * Source:  handshake -> READY -> devices RUNNING->PRE_COPY -> precopy
 *          iterations (precopy.c) until converged and every switchover-ack
 *          arrived -> SWITCHOVER_START -> phase 1: every device to its P2P
 *          state (downtime starts) -> phase 2: every device to STOP_COPY in
 *          parallel, per-device save threads feed the multifd channels
 *          (multifd.c) -> CHANNEL_END -> wait LOADED -> COMMIT -> wait
 *          COMPLETE (downtime ends) -> devices STOP_COPY->STOP.
 * Destination: accept, check HELLO (transport.c), accept channels, devices
 *          ->RESUMING, READY, apply precopy data as it arrives, ack initial
 *          bytes, at SWITCHOVER_START start load threads (load.c) fed by the
 *          reorder buffer (reorder.c, filled by recv.c), when every device
 *          is loaded: phase 1 RESUMING->STOP->RUNNING_P2P, LOADED, wait
 *          COMMIT, phase 2 ->RUNNING, COMPLETE.
 *
 * Failure anywhere (a device errno, a socket, a malformed frame, a timeout,
 * a cancel): the first error is recorded once (vfmig_fail), the abort flag
 * is set and every waiter woken; the coordinating thread then reports the
 * error to the peer, shuts every socket down (which wakes threads blocked in
 * I/O), joins every thread, and puts the devices in a defined state: the
 * source back to RUNNING (two phases through RUNNING_P2P), the destination
 * reset.  After COMMIT the source never resumes on its own, unless the
 * destination reports that it failed (and so reset its devices): that is
 * what keeps the two sides from ever running at once.
 *
 * Threads: the caller's thread coordinates; source: return-path reader,
 * N channel senders, one save thread per device during STOP_COPY;
 * destination: N channel readers, one load thread per device.
 *
 * Lock order: session.lock -> multifd.lock, session.lock -> reorder.lock
 * (only in vfmig_session_wake()); errstate.lock is a leaf; conn.send_lock is
 * a leaf.  vfmig_fail() must be called with no lock held.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "vfmig_internal.h"

void vfmig_options_init(struct vfmig_options *o)
{
	memset(o, 0, sizeof(*o));
	o->multifd = VFMIG_AUTO;
	o->channels = 2;
	o->switchover_ack = VFMIG_AUTO;
	o->load_config_after_iter = VFMIG_AUTO;
	o->downtime_limit_ms = 300;
	o->max_iterations = 30;
	o->max_queued_bytes = 256ull << 20;
	o->chunk_size = 1u << 20;
	o->timeout_ms = 30000;
}

/* ---- errors and waking ------------------------------------------------------ */

void vfmig_session_wake(struct vfmig_session *s)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	if (s->mf_up)
		vfmig_multifd_wake(&s->mf);
	if (s->ro_up)
		vfmig_reorder_abort(&s->ro);
	pthread_mutex_unlock(&s->lock);
	if (s->wakefd >= 0 && write(s->wakefd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; poll still sees it readable. */
	}
}

static void fail_va(struct vfmig_session *s, bool weak, enum vfmig_errclass cls, int err,
		    int device, const char *where, const char *fmt, va_list ap)
{
	char msg[sizeof(s->es.e.msg)];
	bool first = false;

	vsnprintf(msg, sizeof(msg), fmt, ap);

	pthread_mutex_lock(&s->es.lock);
	/*
	 * First error wins; but a peer's own report explains the connection loss it
	 * caused, and replaces an outside abort (vfmig_session_abort) too.
	 */
	if (!s->es.set || (cls == VFMIG_ERR_REMOTE && !weak &&
			   (s->es.e.cls == VFMIG_ERR_TRANSPORT || s->es.weak))) {
		first = true;
		s->es.set = true;
		s->es.weak = weak;
		s->es.e.cls = cls;
		s->es.e.err = err;
		s->es.e.device = device;
		snprintf(s->es.e.where, sizeof(s->es.e.where), "%s", where);
		snprintf(s->es.e.msg, sizeof(s->es.e.msg), "%s", msg);
	}
	pthread_mutex_unlock(&s->es.lock);
	if (first)
		log_dbg(&s->log, "failure: %s: %s", where, msg);
	else
		log_dbg(&s->log, "also: %s: %s", where, msg);
	atomic_store(&s->es.abort, true);
	vfmig_session_wake(s);
}

void vfmig_fail(struct vfmig_session *s, enum vfmig_errclass cls, int err, int device,
		const char *where, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_va(s, false, cls, err, device, where, fmt, ap);
	va_end(ap);
}

static void fail_weak(struct vfmig_session *s, enum vfmig_errclass cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail_weak(struct vfmig_session *s, enum vfmig_errclass cls, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_va(s, true, cls, 0, -1, vfmig_side(s), fmt, ap);
	va_end(ap);
}

void vfmig_session_cancel(struct vfmig_session *s)
{
	vfmig_fail(s, VFMIG_ERR_CANCELLED, EINTR, -1, vfmig_side(s), "interrupted");
}

void vfmig_session_abort(struct vfmig_session *s, enum vfmig_errclass cls, const char *msg)
{
	fail_weak(s, cls, "%s", msg);
}

bool vfmig_session_wait(struct vfmig_session *s, uint64_t deadline_ns)
{
	struct timespec ts;
	uint64_t now = vfmig_now_ns();
	uint64_t rt;

	if (now >= deadline_ns)
		return false;
	/* The condvars use CLOCK_MONOTONIC (see vfmig_session_new). */
	rt = deadline_ns;
	ts.tv_sec = (time_t)(rt / 1000000000ull);
	ts.tv_nsec = (long)(rt % 1000000000ull);
	return pthread_cond_timedwait(&s->cond, &s->lock, &ts) != ETIMEDOUT ||
	       vfmig_now_ns() < deadline_ns;
}

void vfmig_progress(struct vfmig_session *s, enum vfmig_phase ph)
{
	struct vfmig_progress p = {
		.phase = ph,
		.iteration = s->st.precopy_iterations,
		.precopy_bytes = s->st.precopy_bytes,
		.stopcopy_bytes = atomic_load(&s->stopcopy_bytes),
		.est_stopcopy_bytes = s->st.est_stopcopy_bytes,
		.bandwidth_Bps = s->st.bandwidth_Bps,
	};

	if (!s->o.progress)
		return;
	pthread_mutex_lock(&s->lock);
	p.acks = s->acks;
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->ndev; i++)
		p.acks_needed += (s->options & VFMIG_OPT_SWITCHOVER_ACK) &&
				 (s->devs[i]->flags & VFMIG_MIG_PRE_COPY);
	s->o.progress(&p, s->o.progress_opaque);
}

/* ---- lifetime ------------------------------------------------------------------ */

struct vfmig_session *vfmig_session_new(bool source, struct vfmig_device **devs, unsigned ndevs,
					const struct vfmig_options *o)
{
	struct vfmig_session *s;
	pthread_condattr_t ca;

	if (!ndevs || ndevs > VFMIG_MAX_DEVICES || o->channels > VFMIG_MAX_CHANNELS)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->ds = calloc(ndevs, sizeof(*s->ds));
	s->devs = calloc(ndevs, sizeof(*s->devs));
	if (!s->ds || !s->devs)
		goto fail_mem;
	memcpy(s->devs, devs, ndevs * sizeof(*devs));
	s->source = source;
	s->o = *o;
	s->log.verbose = o->verbose;
	s->log.prefix = o->log_prefix ? o->log_prefix : (source ? "src" : "dst");
	s->ndev = ndevs;
	s->main.fd = -1;
	s->wakefd = -1;
	if (pthread_mutex_init(&s->es.lock, NULL))
		goto fail_mem;
	if (pthread_mutex_init(&s->lock, NULL))
		goto fail_es;
	if (pthread_condattr_init(&ca))
		goto fail_lock;
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) || pthread_cond_init(&s->cond, &ca)) {
		pthread_condattr_destroy(&ca);
		goto fail_lock;
	}
	pthread_condattr_destroy(&ca);
	if (!source) {
		s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (s->wakefd < 0)
			goto fail_cond;
	}
	s->es.e.device = -1;
	s->st.source = source;
	s->st.ndevices = ndevs;
	return s;
fail_cond:
	pthread_cond_destroy(&s->cond);
fail_lock:
	pthread_mutex_destroy(&s->lock);
fail_es:
	pthread_mutex_destroy(&s->es.lock);
fail_mem:
	free(s->ds);
	free(s->devs);
	free(s);
	return NULL;
}

void vfmig_session_free(struct vfmig_session *s)
{
	if (!s)
		return;
	if (s->wakefd >= 0)
		close(s->wakefd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->es.lock);
	free(s->ds);
	free(s->devs);
	free(s);
}

const struct vfmig_error *vfmig_session_error(const struct vfmig_session *s)
{
	return &s->es.e;
}

const struct vfmig_stats *vfmig_session_stats(const struct vfmig_session *s)
{
	return &s->st;
}

/* ---- shared helpers ------------------------------------------------------------------ */

static enum vfmig_errclass ferr_class(enum vfmig_ferr fe)
{
	switch (fe) {
	case VFMIG_FERR_EOF:
	case VFMIG_FERR_IO:
		return VFMIG_ERR_TRANSPORT;
	case VFMIG_FERR_TIMEOUT:
		return VFMIG_ERR_TIMEOUT;
	case VFMIG_FERR_NOMEM:
		return VFMIG_ERR_INTERNAL;
	default:
		return VFMIG_ERR_PROTOCOL;
	}
}

void vfmig_fail_frame(struct vfmig_session *s, const char *where, enum vfmig_ferr fe, int err_no,
		      const char *why)
{
	if (vfmig_aborted(s))
		return; /* our own shutdown() woke this reader */
	vfmig_fail(s, ferr_class(fe), err_no, -1, where, "%s: %s", vfmig_ferr_name(fe), why);
}

void vfmig_fail_send(struct vfmig_session *s, const char *where, const char *what, int ret)
{
	if (vfmig_aborted(s))
		return;
	vfmig_fail(s, ret == -ETIMEDOUT ? VFMIG_ERR_TIMEOUT : VFMIG_ERR_TRANSPORT, -ret, -1, where,
		   "%s: %s%s", what, strerror(-ret),
		   ret == -ETIMEDOUT ? " (peer stopped reading)" : "");
}

int vfmig_set_state(struct vfmig_session *s, unsigned i, enum vfmig_state st,
		    enum vfmig_state recover)
{
	struct vfmig_error e = { 0 };
	int ret = vfmig_device_set_state(s->devs[i], st, recover, &e);

	if (ret)
		vfmig_fail(s, VFMIG_ERR_DEVICE, -ret, (int)i, s->devs[i]->name, "%s", e.msg);
	else
		log_dbg(&s->log, "%s: -> %s", s->devs[i]->name, vfmig_state_name(st));
	return ret;
}

struct thread_arg {
	struct vfmig_session *s;
	unsigned i;
	void (*fn)(struct vfmig_session *s, unsigned i);
};

static void *thread_main(void *arg)
{
	struct thread_arg ta = *(struct thread_arg *)arg;

	free(arg);
	ta.fn(ta.s, ta.i);
	return NULL;
}

int vfmig_thread_start(struct vfmig_session *s, pthread_t *t,
		       void (*fn)(struct vfmig_session *s, unsigned i), unsigned i)
{
	struct thread_arg *ta = malloc(sizeof(*ta));

	if (!ta) {
		vfmig_fail(s, VFMIG_ERR_INTERNAL, ENOMEM, -1, vfmig_side(s), "out of memory");
		return -1;
	}
	*ta = (struct thread_arg){ .s = s, .i = i, .fn = fn };
	if (pthread_create(t, NULL, thread_main, ta)) {
		free(ta);
		vfmig_fail(s, VFMIG_ERR_INTERNAL, EAGAIN, -1, vfmig_side(s),
			   "cannot create a thread");
		return -1;
	}
	return 0;
}

/*
 * ERROR and HELLO_ACK payloads: four u32 (ERROR: class, errno, device;
 * HELLO_ACK: status, options, channels; then a reserved 0) and a message.
 */
_Static_assert(VFMIG_ERROR_FIXED == VFMIG_HELLO_ACK_FIXED, "one report layout");
static uint32_t put_report(uint8_t p[VFMIG_ERROR_FIXED + VFMIG_MSG_MAX], uint32_t a, uint32_t b,
			   uint32_t c, const char *msg)
{
	size_t n = strnlen(msg, VFMIG_MSG_MAX);

	put_le32(p, a);
	put_le32(p + 4, b);
	put_le32(p + 8, c);
	put_le32(p + 12, 0);
	memcpy(p + VFMIG_ERROR_FIXED, msg, n);
	return (uint32_t)(VFMIG_ERROR_FIXED + n);
}

/* The message of an ERROR or HELLO_ACK payload, control bytes from the wire replaced. */
static void get_report_msg(const struct vfmig_frame *f, char msg[VFMIG_MSG_MAX + 1])
{
	size_t n = f->h.length - VFMIG_ERROR_FIXED;

	memcpy(msg, f->payload + VFMIG_ERROR_FIXED, n);
	msg[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = '?'; /* never print control bytes from the wire */
	}
}

static void fail_remote(struct vfmig_session *s, const struct vfmig_frame *f)
{
	char msg[VFMIG_MSG_MAX + 1];
	uint32_t cls = get_le32(f->payload);
	uint32_t err = get_le32(f->payload + 4);
	uint32_t dev = get_le32(f->payload + 8);

	get_report_msg(f, msg);
	vfmig_fail(s, VFMIG_ERR_REMOTE, (int)err, dev == UINT32_MAX ? -1 : (int)dev,
		   s->source ? "destination" : "source", "%s (%s)", msg,
		   vfmig_errclass_name(cls < VFMIG_ERR_NR ? (enum vfmig_errclass)cls :
							    VFMIG_ERR_INTERNAL));
}

/* Append to the recorded error's message. */
static void append_error(struct vfmig_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void append_error(struct vfmig_session *s, const char *fmt, ...)
{
	size_t l;
	va_list ap;

	pthread_mutex_lock(&s->es.lock);
	l = strlen(s->es.e.msg);
	va_start(ap, fmt);
	vsnprintf(s->es.e.msg + l, sizeof(s->es.e.msg) - l, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->es.lock);
}

/* Tell the peer why we stop; best effort, never blocks on another sender. */
static void send_error(struct vfmig_session *s)
{
	uint8_t p[VFMIG_ERROR_FIXED + VFMIG_MSG_MAX];
	struct vfmig_error e;

	if (!s->main_up)
		return;
	pthread_mutex_lock(&s->es.lock);
	e = s->es.e;
	pthread_mutex_unlock(&s->es.lock);
	if (e.cls == VFMIG_ERR_REMOTE)
		return; /* the peer knows */
	vfmig_send_frame_try(&s->main, VFMIG_F_ERROR, 0, 0, 0, p,
			     put_report(p, e.cls, (uint32_t)e.err,
					e.device < 0 ? UINT32_MAX : (uint32_t)e.device, e.msg));
}

/*
 * A connection loss is usually the peer's reaction to its own failure, and
 * its ERROR frame may still sit in the main channel: read it (briefly) so the
 * report names the cause, not the symptom.
 */
static void drain_peer_error(struct vfmig_session *s)
{
	uint64_t deadline = vfmig_now_ns() + 1000000000ull;
	enum vfmig_errclass cls;

	bool weak;

	pthread_mutex_lock(&s->es.lock);
	cls = s->es.e.cls;
	weak = s->es.weak;
	pthread_mutex_unlock(&s->es.lock);
	if (!s->main_up || (cls != VFMIG_ERR_TRANSPORT && !weak))
		return;
	while (vfmig_now_ns() < deadline) {
		struct vfmig_frame f;
		char why[256];
		int e;

		if (vfmig_recv_frame(s->main.fd, &s->lim, 1000, &f, &e, why, sizeof(why)))
			return;
		if (f.h.type == VFMIG_F_ERROR) {
			fail_remote(s, &f);
			vfmig_frame_free(&f);
			return;
		}
		vfmig_frame_free(&f);
	}
}

static void shutdown_all(struct vfmig_session *s)
{
	if (s->main_up)
		vfmig_conn_shutdown(&s->main);
	for (unsigned i = 0; i < s->chans_up; i++)
		vfmig_conn_shutdown(&s->chans[i]);
}

static void close_all(struct vfmig_session *s)
{
	for (unsigned i = 0; i < s->chans_up; i++)
		vfmig_conn_destroy(&s->chans[i]);
	s->chans_up = 0;
	free(s->chans);
	s->chans = NULL;
	if (s->main_up)
		vfmig_conn_destroy(&s->main);
	s->main_up = false;
}

/* Wait (s->lock held) for *flag or abort; false on timeout or abort. */
static bool wait_flag(struct vfmig_session *s, bool *flag, const char *what)
{
	uint64_t deadline = vfmig_now_ns() + (uint64_t)s->o.timeout_ms * 1000000ull;
	bool timeout = false;

	pthread_mutex_lock(&s->lock);
	while (!*flag && !vfmig_aborted(s)) {
		if (!vfmig_session_wait(s, deadline)) {
			timeout = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (timeout)
		vfmig_fail(s, VFMIG_ERR_TIMEOUT, ETIMEDOUT, -1, vfmig_side(s),
			   "no %s from the peer within %u ms", what, s->o.timeout_ms);
	return !vfmig_aborted(s);
}

/* ---- source ------------------------------------------------------------------------- */

static void return_path(struct vfmig_session *s, unsigned unused)
{
	struct vfmig_frame f;
	char why[256];
	int err_no;

	(void)unused;
	for (;;) {
		enum vfmig_ferr fe =
			vfmig_recv_frame(s->main.fd, &s->lim, -1, &f, &err_no, why, sizeof(why));

		if (fe) {
			vfmig_fail_frame(s, "main channel", fe, err_no, why);
			return;
		}
		switch (f.h.type) {
		case VFMIG_F_READY:
			pthread_mutex_lock(&s->lock);
			s->ready = true;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			break;
		case VFMIG_F_SWITCHOVER_ACK: {
			struct vfmig_dev_state *ds = &s->ds[f.h.device];
			bool bad;

			pthread_mutex_lock(&s->lock);
			bad = ds->acked || !ds->init_sent;
			if (!bad) {
				ds->acked = true;
				s->acks++;
				pthread_cond_broadcast(&s->cond);
			}
			pthread_mutex_unlock(&s->lock);
			if (bad) {
				vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, (int)f.h.device,
					   "main channel",
					   "unexpected switchover-ack for device %u", f.h.device);
				return;
			}
			break;
		}
		case VFMIG_F_LOADED:
			pthread_mutex_lock(&s->lock);
			s->loaded = true;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			break;
		case VFMIG_F_COMPLETE:
			pthread_mutex_lock(&s->lock);
			s->st.dest_downtime_ns = get_le64(f.payload);
			s->st.reorder_peak_bytes = get_le64(f.payload + 8);
			s->complete = true;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			vfmig_frame_free(&f);
			return;
		case VFMIG_F_ERROR:
			fail_remote(s, &f);
			vfmig_frame_free(&f);
			return;
		default:
			vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
				   "unexpected frame type %u from the destination", f.h.type);
			vfmig_frame_free(&f);
			return;
		}
		vfmig_frame_free(&f);
	}
}

static int src_check_devices(struct vfmig_session *s)
{
	for (unsigned i = 0; i < s->ndev; i++) {
		struct vfmig_device *d = s->devs[i];

		if (!(d->flags & VFMIG_MIG_STOP_COPY)) {
			vfmig_fail(s, VFMIG_ERR_DEVICE, EOPNOTSUPP, (int)i, d->name,
				   "%s does not support STOP_COPY migration", d->name);
			return -1;
		}
		if (s->ndev > 1 && !(d->flags & VFMIG_MIG_P2P)) {
			vfmig_fail(
				s, VFMIG_ERR_INCOMPATIBLE, EOPNOTSUPP, (int)i, d->name,
				"%s lacks P2P support (migration flags 0x%llx): a migration of "
				"several devices needs P2P on every device so that none is stopped "
				"while a peer can still write to it; migrate it alone",
				d->name, (unsigned long long)d->flags);
			return -1;
		}
	}
	return 0;
}

static int src_handshake(struct vfmig_session *s, const struct vfmig_addr *peer)
{
	uint8_t buf[VFMIG_HELLO_MAX];
	struct vfmig_hello h = { 0 };
	struct vfmig_error e = { 0 };
	struct vfmig_frame f;
	bool any_pre = false;
	char why[256];
	uint32_t status, opts;
	size_t n;
	int fd, ret, err_no;
	enum vfmig_ferr fe;

	/* Resolve "auto" here; the destination only checks. */
	s->nch = s->o.multifd == VFMIG_OFF ? 0 : s->o.channels;
	if (s->o.multifd == VFMIG_ON && !s->nch) {
		vfmig_fail(s, VFMIG_ERR_USAGE, EINVAL, -1, "source",
			   "--multifd on needs --channels >= 1");
		return -1;
	}
	for (unsigned i = 0; i < s->ndev; i++)
		any_pre |= s->devs[i]->flags & VFMIG_MIG_PRE_COPY;
	s->options =
		(s->nch ? VFMIG_OPT_MULTIFD : 0) |
		(s->o.switchover_ack != VFMIG_OFF && any_pre ? VFMIG_OPT_SWITCHOVER_ACK : 0) |
		(s->o.load_config_after_iter == VFMIG_ON ? VFMIG_OPT_LOAD_CONFIG_AFTER_ITER : 0);
	s->chunk = s->o.chunk_size;
	if (s->chunk < VFMIG_MIN_CHUNK || s->chunk > VFMIG_MAX_CHUNK) {
		vfmig_fail(s, VFMIG_ERR_USAGE, EINVAL, -1, "source", "--chunk-size must be %u..%u",
			   VFMIG_MIN_CHUNK, VFMIG_MAX_CHUNK);
		return -1;
	}
	if (getrandom(&s->session_id, sizeof(s->session_id), 0) != sizeof(s->session_id))
		s->session_id = vfmig_now_ns() ^ ((uint64_t)getpid() << 32);

	fd = vfmig_connect(peer, s->o.timeout_ms, &e);
	if (fd < 0) {
		vfmig_fail(s, e.cls, e.err, -1, "main channel", "%s", e.msg);
		return -1;
	}
	ret = vfmig_conn_init(&s->main, fd, 0, &s->st.ch[0]);
	if (ret) {
		close(fd);
		vfmig_fail(s, VFMIG_ERR_INTERNAL, -ret, -1, "source", "mutex: %s", strerror(-ret));
		return -1;
	}
	s->main_up = true;

	h.proto_version = VFMIG_PROTO_VERSION;
	h.min_proto_version = VFMIG_PROTO_MIN_VERSION;
	h.session_id = s->session_id;
	h.options = s->options;
	h.nchannels = s->nch;
	h.chunk_size = s->chunk;
	h.ndevices = s->ndev;
	for (unsigned i = 0; i < s->ndev; i++) {
		struct vfmig_device *d = s->devs[i];
		uint64_t est = 0;

		h.dev[i].mig_flags = d->flags;
		if (vfmig_device_data_size(d, &est))
			est = 0;
		h.dev[i].stop_copy_estimate = est;
		h.dev[i].config_size = d->config_size;
		snprintf(h.dev[i].compat, sizeof(h.dev[i].compat), "%s", d->compat);
	}
	n = vfmig_hello_encode(buf, sizeof(buf), &h);
	ret = vfmig_send_frame(&s->main, VFMIG_F_HELLO, 0, 0, 0, buf, (uint32_t)n);
	if (ret) {
		vfmig_fail_send(s, "main channel", "send", ret);
		return -1;
	}
	s->lim.ndevices = s->ndev;
	s->lim.max_chunk = s->chunk;
	fe = vfmig_recv_frame(s->main.fd, &s->lim, (int)s->o.timeout_ms, &f, &err_no, why,
			      sizeof(why));
	if (fe) {
		vfmig_fail_frame(s, "main channel (handshake)", fe, err_no, why);
		return -1;
	}
	if (f.h.type == VFMIG_F_ERROR) {
		fail_remote(s, &f);
		vfmig_frame_free(&f);
		return -1;
	}
	if (f.h.type != VFMIG_F_HELLO_ACK) {
		vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
			   "expected HELLO_ACK, got frame type %u", f.h.type);
		vfmig_frame_free(&f);
		return -1;
	}
	status = get_le32(f.payload);
	opts = get_le32(f.payload + 4);
	if (status != VFMIG_OK) {
		char msg[VFMIG_MSG_MAX + 1];

		get_report_msg(&f, msg);
		vfmig_frame_free(&f);
		vfmig_fail(s,
			   status == VFMIG_ERR_INCOMPATIBLE ? VFMIG_ERR_INCOMPATIBLE :
							      VFMIG_ERR_REMOTE,
			   EPROTO, -1, "handshake", "destination refused: %s", msg);
		return -1;
	}
	vfmig_frame_free(&f);
	if ((opts & ~VFMIG_OPT_LOAD_CONFIG_AFTER_ITER) !=
		    (s->options & ~VFMIG_OPT_LOAD_CONFIG_AFTER_ITER) ||
	    (opts & ~VFMIG_OPT_ALL)) {
		vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "handshake",
			   "destination changed options 0x%x to 0x%x", s->options, opts);
		return -1;
	}
	s->options = opts;

	if (s->nch) {
		s->chans = calloc(s->nch, sizeof(*s->chans));
		if (!s->chans) {
			vfmig_fail(s, VFMIG_ERR_INTERNAL, ENOMEM, -1, "source", "out of memory");
			return -1;
		}
	}
	for (unsigned i = 0; i < s->nch; i++) {
		uint8_t ch[VFMIG_CHANNEL_HELLO_LEN] = { 0 };

		fd = vfmig_connect(peer, s->o.timeout_ms, &e);
		if (fd < 0) {
			vfmig_fail(s, e.cls, e.err, -1, "multifd channel", "%s", e.msg);
			return -1;
		}
		ret = vfmig_conn_init(&s->chans[i], fd, i + 1, &s->st.ch[i + 1]);
		if (ret) {
			close(fd);
			vfmig_fail(s, VFMIG_ERR_INTERNAL, -ret, -1, "source", "mutex");
			return -1;
		}
		s->chans_up++;
		put_le64(ch, s->session_id);
		put_le32(ch + 8, i);
		put_le32(ch + 12, s->nch);
		ret = vfmig_send_frame(&s->chans[i], VFMIG_F_CHANNEL_HELLO, 0, 0, 0, ch,
				       sizeof(ch));
		if (ret) {
			vfmig_fail_send(s, "multifd channel", "send", ret);
			return -1;
		}
	}
	return 0;
}

static void src_rollback(struct vfmig_session *s)
{
	bool failed = false;
	char note[320] = "";

	/* Phase 1: nobody starts before every stopped device is P2P-quiesced. */
	for (unsigned i = 0; i < s->ndev; i++) {
		struct vfmig_device *d = s->devs[i];
		enum vfmig_state st;

		if (vfmig_device_get_state(d, &st))
			st = VFMIG_STATE_ERROR;
		if (st == VFMIG_STATE_RUNNING || st == VFMIG_STATE_PRE_COPY ||
		    st == VFMIG_STATE_ERROR || !(d->flags & VFMIG_MIG_P2P))
			continue;
		if (vfmig_device_set_state(d, VFMIG_STATE_RUNNING_P2P, VFMIG_STATE_ERROR, NULL))
			failed = true;
	}
	/* Phase 2. */
	for (unsigned i = 0; i < s->ndev; i++) {
		struct vfmig_device *d = s->devs[i];
		struct vfmig_error e = { 0 };
		enum vfmig_state st;

		if (vfmig_device_get_state(d, &st))
			st = VFMIG_STATE_ERROR;
		if (st == VFMIG_STATE_ERROR) {
			vfmig_device_reset(d);
			snprintf(note, sizeof(note), "; %s was in ERROR and has been reset",
				 d->name);
			failed = true;
			continue;
		}
		if (vfmig_device_set_state(d, VFMIG_STATE_RUNNING, VFMIG_STATE_ERROR, &e)) {
			snprintf(note, sizeof(note), "; %s", e.msg);
			failed = true;
			continue;
		}
		log_info(&s->log, "%s: rolled back to RUNNING", d->name);
	}
	if (failed) {
		pthread_mutex_lock(&s->es.lock);
		s->es.e.cls = VFMIG_ERR_ROLLBACK;
		pthread_mutex_unlock(&s->es.lock);
		append_error(s, "; rollback to RUNNING failed%s", note);
	}
}

static void src_join_all(struct vfmig_session *s)
{
	if (s->mf_up) {
		vfmig_multifd_join_saves(&s->mf);
		vfmig_multifd_finish(&s->mf);
	}
	if (s->rp_started) {
		pthread_join(s->rp_thread, NULL);
		s->rp_started = false;
	}
}

static int src_switchover(struct vfmig_session *s)
{
	int ret;

	ret = vfmig_send_frame(&s->main, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0);
	if (ret) {
		vfmig_fail_send(s, "main channel", "send", ret);
		return -1;
	}
	/* Phase 1: every device P2P-quiesced before any device stops.  Downtime starts. */
	s->t_down = vfmig_now_ns();
	vfmig_progress(s, VFMIG_PHASE_STOPCOPY);
	for (unsigned k = s->ndev; k-- > 0;) {
		struct vfmig_device *d = s->devs[k];

		if (!(d->flags & VFMIG_MIG_P2P))
			continue;
		if (vfmig_set_state(s, k,
				    s->ds[k].precopy ? VFMIG_STATE_PRE_COPY_P2P :
						       VFMIG_STATE_RUNNING_P2P,
				    VFMIG_STATE_ERROR))
			return -1;
	}
	/* Phase 2: STOP_COPY and the data, every device in its own thread. */
	if (vfmig_multifd_save_devices(&s->mf))
		return -1;
	vfmig_multifd_join_saves(&s->mf);
	if (vfmig_aborted(s))
		return -1;
	vfmig_multifd_finish(&s->mf);
	if (vfmig_aborted(s))
		return -1;
	s->st.stopcopy_ns = vfmig_now_ns() - s->t_down;
	vfmig_progress(s, VFMIG_PHASE_LOADING);
	return 0;
}

enum vfmig_errclass vfmig_session_send(struct vfmig_session *s, const struct vfmig_addr *peer)
{
	bool committed = false;
	int ret;

	s->t_start = vfmig_now_ns();
	if (src_check_devices(s) || src_handshake(s, peer))
		goto fail;
	if (vfmig_thread_start(s, &s->rp_thread, return_path, 0))
		goto fail;
	s->rp_started = true;
	if (!wait_flag(s, &s->ready, "READY (destination devices RESUMING)"))
		goto fail;
	if (vfmig_multifd_start(&s->mf, s))
		goto fail;
	s->st.setup_ns = vfmig_now_ns() - s->t_start;
	log_info(&s->log, "connected: %u device(s), multifd %s (%u channel(s)), switchover-ack %s",
		 s->ndev, s->nch ? "on" : "off", s->nch,
		 s->options & VFMIG_OPT_SWITCHOVER_ACK ? "on" : "off");

	/* Precopy: no device has left RUNNING/PRE_COPY yet. */
	if (vfmig_precopy_start(s) || vfmig_precopy_run(s))
		goto fail;
	if (src_switchover(s))
		goto fail;
	if (!wait_flag(s, &s->loaded, "LOADED"))
		goto fail;

	/* The point of no return: after COMMIT the destination may run. */
	ret = vfmig_send_frame(&s->main, VFMIG_F_COMMIT, 0, 0, 0, NULL, 0);
	committed = true;
	if (ret) {
		vfmig_fail_send(s, "main channel", "send", ret);
		goto fail;
	}
	pthread_mutex_lock(&s->lock);
	s->committed = true;
	pthread_mutex_unlock(&s->lock);
	if (!wait_flag(s, &s->complete, "COMPLETE"))
		goto fail;
	s->st.downtime_ns = vfmig_now_ns() - s->t_down;

	/* STOP_COPY -> STOP after the downtime window, as QEMU's save_cleanup does. */
	for (unsigned i = 0; i < s->ndev; i++) {
		struct vfmig_error e = { 0 };

		if (vfmig_device_set_state(s->devs[i], VFMIG_STATE_STOP, VFMIG_STATE_ERROR, &e))
			log_warn(&s->log, "after migration: %s", e.msg);
	}
	src_join_all(s);
	close_all(s);
	vfmig_multifd_destroy(&s->mf);
	vfmig_stats_finish(s);
	vfmig_progress(s, VFMIG_PHASE_DONE);
	return VFMIG_OK;

fail:
	send_error(s);
	shutdown_all(s);
	src_join_all(s);
	close_all(s);
	vfmig_multifd_destroy(&s->mf);
	if (!committed || s->es.e.cls == VFMIG_ERR_REMOTE) {
		/* Before COMMIT the destination never runs; after it, only its own failure
		 * report (it reset its devices) makes resuming here safe. */
		src_rollback(s);
	} else {
		for (unsigned i = 0; i < s->ndev; i++)
			vfmig_device_set_state(s->devs[i], VFMIG_STATE_STOP, VFMIG_STATE_ERROR,
					       NULL);
		append_error(s, "; failure after COMMIT: the destination may be running, source "
				"devices left STOPPED");
	}
	vfmig_stats_finish(s);
	return s->es.e.cls ? s->es.e.cls : VFMIG_ERR_INTERNAL;
}

/* ---- destination ----------------------------------------------------------------------- */

static int dst_send_ack(struct vfmig_session *s, uint32_t status, uint32_t opts, const char *msg)
{
	uint8_t p[VFMIG_HELLO_ACK_FIXED + VFMIG_MSG_MAX];

	return vfmig_send_frame(&s->main, VFMIG_F_HELLO_ACK, 0, 0, 0, p,
				put_report(p, status, opts, s->nch, msg));
}

static int dst_handshake(struct vfmig_session *s, int lfd)
{
	struct vfmig_local local = { .ndevices = s->ndev, .devs = s->devs, .o = &s->o };
	struct vfmig_limits pre = { .ndevices = 0, .max_chunk = 0 };
	struct vfmig_hello h;
	struct vfmig_frame f;
	enum vfmig_errclass cls;
	enum vfmig_ferr fe;
	char why[256];
	uint32_t opts = 0;
	int fd, ret, err_no;

	fd = vfmig_accept(lfd, (int)s->o.timeout_ms, s->wakefd);
	if (fd == -ECANCELED)
		return -1; /* the error is recorded */
	if (fd < 0) {
		if (fd == -ETIMEDOUT)
			vfmig_fail(s, VFMIG_ERR_TIMEOUT, ETIMEDOUT, -1, "listen",
				   "no source connected within %u ms", s->o.timeout_ms);
		else
			vfmig_fail(s, VFMIG_ERR_TRANSPORT, -fd, -1, "listen", "accept: %s",
				   strerror(-fd));
		return -1;
	}
	if (vfmig_sock_setup(fd, s->o.timeout_ms) ||
	    vfmig_conn_init(&s->main, fd, 0, &s->st.ch[0])) {
		close(fd);
		vfmig_fail(s, VFMIG_ERR_TRANSPORT, errno, -1, "main channel",
			   "socket setup failed");
		return -1;
	}
	s->main_up = true;
	fe = vfmig_recv_frame(fd, &pre, (int)s->o.timeout_ms, &f, &err_no, why, sizeof(why));
	if (fe) {
		vfmig_fail_frame(s, "main channel (handshake)", fe, err_no, why);
		return -1;
	}
	if (f.h.type != VFMIG_F_HELLO) {
		vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "handshake",
			   "expected HELLO, got frame type %u", f.h.type);
		vfmig_frame_free(&f);
		return -1;
	}
	ret = vfmig_hello_decode(f.payload, f.h.length, &h, why, sizeof(why));
	vfmig_frame_free(&f);
	if (ret) {
		/* Record first, then tell the source: its reaction must not win. */
		vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "handshake", "%s", why);
		dst_send_ack(s, VFMIG_ERR_PROTOCOL, 0, why);
		return -1;
	}
	s->nch = (h.options & VFMIG_OPT_MULTIFD) ? h.nchannels : 0;
	cls = vfmig_hello_check(&h, &local, &opts, why, sizeof(why));
	if (cls != VFMIG_OK) {
		s->nch = 0;
		vfmig_fail(s, cls, EPROTO, -1, "handshake", "%s", why);
		dst_send_ack(s, cls, 0, why);
		return -1;
	}
	s->options = opts;
	s->chunk = h.chunk_size;
	s->session_id = h.session_id;
	s->lim.ndevices = s->ndev;
	s->lim.max_chunk = s->chunk;
	ret = dst_send_ack(s, VFMIG_OK, opts, "ok");
	if (ret) {
		vfmig_fail_send(s, "main channel", "send", ret);
		return -1;
	}

	if (s->nch) {
		s->chans = calloc(s->nch, sizeof(*s->chans));
		if (!s->chans) {
			vfmig_fail(s, VFMIG_ERR_INTERNAL, ENOMEM, -1, "destination",
				   "out of memory");
			return -1;
		}
		/* Every slot is a valid conn from here on (fd -1 until accepted). */
		for (unsigned i = 0; i < s->nch; i++) {
			if (vfmig_conn_init(&s->chans[i], -1, i + 1, &s->st.ch[i + 1])) {
				vfmig_fail(s, VFMIG_ERR_INTERNAL, ENOMEM, -1, "destination",
					   "mutex");
				return -1;
			}
			s->chans_up++;
		}
	}
	for (unsigned k = 0; k < s->nch; k++) {
		uint32_t id;

		fd = vfmig_accept(lfd, (int)s->o.timeout_ms, s->wakefd);
		if (fd == -ECANCELED)
			return -1;
		if (fd < 0) {
			vfmig_fail(s, fd == -ETIMEDOUT ? VFMIG_ERR_TIMEOUT : VFMIG_ERR_TRANSPORT,
				   -fd, -1, "listen",
				   "multifd channel %u of %u did not connect: %s", k + 1, s->nch,
				   strerror(-fd));
			return -1;
		}
		fe = vfmig_recv_frame(fd, &pre, (int)s->o.timeout_ms, &f, &err_no, why,
				      sizeof(why));
		if (fe) {
			close(fd);
			vfmig_fail_frame(s, "multifd channel (handshake)", fe, err_no, why);
			return -1;
		}
		if (f.h.type != VFMIG_F_CHANNEL_HELLO) {
			close(fd);
			vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "multifd channel",
				   "expected CHANNEL_HELLO, got frame type %u", f.h.type);
			vfmig_frame_free(&f);
			return -1;
		}
		id = get_le32(f.payload + 8);
		if (get_le64(f.payload) != s->session_id || id >= s->nch ||
		    get_le32(f.payload + 12) != s->nch || s->chans[id].fd >= 0) {
			close(fd);
			vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "multifd channel",
				   "bad CHANNEL_HELLO (session %llx channel %u of %u)",
				   (unsigned long long)get_le64(f.payload), id,
				   get_le32(f.payload + 12));
			vfmig_frame_free(&f);
			return -1;
		}
		vfmig_frame_free(&f);
		if (vfmig_sock_setup(fd, s->o.timeout_ms)) {
			close(fd);
			vfmig_fail(s, VFMIG_ERR_TRANSPORT, errno, -1, "multifd channel",
				   "setup failed");
			return -1;
		}
		s->chans[id].fd = fd;
	}
	return 0;
}

static int dst_phase1(struct vfmig_session *s)
{
	/* RESUMING -> STOP validates the stream; then P2P-quiesced RUNNING. */
	for (unsigned i = 0; i < s->ndev; i++) {
		if (vfmig_set_state(s, i, VFMIG_STATE_STOP, VFMIG_STATE_ERROR))
			return -1;
	}
	for (unsigned i = 0; i < s->ndev; i++) {
		if ((s->devs[i]->flags & VFMIG_MIG_P2P) &&
		    vfmig_set_state(s, i, VFMIG_STATE_RUNNING_P2P, VFMIG_STATE_ERROR))
			return -1;
	}
	return 0;
}

static int dst_complete(struct vfmig_session *s, uint64_t t_switch)
{
	uint8_t p[VFMIG_COMPLETE_LEN] = { 0 };
	int ret;

	for (unsigned i = 0; i < s->ndev; i++) {
		if (vfmig_set_state(s, i, VFMIG_STATE_RUNNING, VFMIG_STATE_ERROR))
			return -1;
	}
	s->st.dest_downtime_ns = vfmig_now_ns() - t_switch;
	s->st.reorder_peak_bytes = vfmig_reorder_peak(&s->ro);
	put_le64(p, s->st.dest_downtime_ns);
	put_le64(p + 8, s->st.reorder_peak_bytes);
	put_le64(p + 16, atomic_load(&s->stopcopy_bytes));
	ret = vfmig_send_frame(&s->main, VFMIG_F_COMPLETE, 0, 0, 0, p, sizeof(p));
	if (ret)
		log_warn(&s->log, "devices are RUNNING but COMPLETE could not be sent: %s",
			 strerror(-ret));
	return 0;
}

static int dst_main_loop(struct vfmig_session *s)
{
	bool started = false, loaded = false;
	uint64_t t_switch = 0;

	while (!vfmig_aborted(s)) {
		struct pollfd p[2] = {
			{ .fd = s->main.fd, .events = POLLIN },
			{ .fd = s->wakefd, .events = POLLIN },
		};
		/* Waiting on the source: bounded.  Loading: our own progress. */
		int tmo = (!started || loaded) ? (int)s->o.timeout_ms : -1;
		struct vfmig_frame f;
		enum vfmig_ferr fe;
		char why[256];
		int r, err_no, ret;

		r = poll(p, 2, tmo);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			vfmig_fail(s, VFMIG_ERR_INTERNAL, errno, -1, "destination", "poll: %s",
				   strerror(errno));
			return -1;
		}
		if (r == 0) {
			vfmig_fail(s, VFMIG_ERR_TIMEOUT, ETIMEDOUT, -1, "main channel",
				   "nothing from the source for %u ms", s->o.timeout_ms);
			return -1;
		}
		if (p[1].revents) {
			uint64_t v;
			bool all;

			if (read(s->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
				vfmig_fail(s, VFMIG_ERR_INTERNAL, errno, -1, "destination",
					   "eventfd");
				return -1;
			}
			pthread_mutex_lock(&s->lock);
			all = s->loads_done == s->ndev;
			pthread_mutex_unlock(&s->lock);
			if (started && !loaded && all && !vfmig_aborted(s)) {
				vfmig_load_join(s);
				s->st.stopcopy_ns = vfmig_now_ns() - t_switch;
				if (dst_phase1(s))
					return -1;
				ret = vfmig_send_frame(&s->main, VFMIG_F_LOADED, 0, 0, 0, NULL, 0);
				if (ret) {
					vfmig_fail_send(s, "main channel", "send", ret);
					return -1;
				}
				loaded = true;
			}
			continue;
		}
		fe = vfmig_recv_frame(s->main.fd, &s->lim, (int)s->o.timeout_ms, &f, &err_no, why,
				      sizeof(why));
		if (fe) {
			vfmig_fail_frame(s, "main channel", fe, err_no, why);
			return -1;
		}
		ret = 0;
		switch (f.h.type) {
		case VFMIG_F_PING:
			break;
		case VFMIG_F_PRECOPY_DATA:
		case VFMIG_F_INIT_DATA_SENT:
			if (started) {
				vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, (int)f.h.device,
					   "main channel", "precopy data after SWITCHOVER_START");
				ret = -1;
				break;
			}
			ret = vfmig_precopy_load(s, &f);
			break;
		case VFMIG_F_SWITCHOVER_START:
			if (started) {
				vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
					   "second SWITCHOVER_START");
				ret = -1;
				break;
			}
			started = true;
			t_switch = vfmig_now_ns();
			ret = vfmig_load_start(s);
			break;
		case VFMIG_F_DEVICE_STATE:
			if (s->nch || !started) {
				vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, (int)f.h.device,
					   "main channel", "device state on the main channel %s",
					   s->nch ? "while multifd is on" :
						    "before SWITCHOVER_START");
				ret = -1;
				break;
			}
			ret = vfmig_recv_queue(s, &s->st.ch[0], &f, "main channel");
			break;
		case VFMIG_F_COMMIT:
			if (!loaded) {
				vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
					   "COMMIT before LOADED");
				ret = -1;
				break;
			}
			vfmig_frame_free(&f);
			return dst_complete(s, t_switch);
		case VFMIG_F_ERROR:
			fail_remote(s, &f);
			ret = -1;
			break;
		default:
			vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
				   "unexpected frame type %u from the source", f.h.type);
			ret = -1;
			break;
		}
		vfmig_frame_free(&f);
		if (ret)
			return -1;
	}
	return -1;
}

static void dst_join_all(struct vfmig_session *s)
{
	vfmig_recv_join(s);
	vfmig_load_join(s);
}

enum vfmig_errclass vfmig_session_recv(struct vfmig_session *s, int lfd)
{
	bool touched = false;
	uint32_t window;
	int ret;

	s->t_start = vfmig_now_ns();
	if (dst_handshake(s, lfd))
		goto fail;
	/* Enough slots for the budget in full chunks plus in-flight skew; small reads
	 * only make producers wait for the window, they never grow it. */
	window = (uint32_t)MIN(MAX(s->o.max_queued_bytes / s->chunk + 2ull * s->nch + 8, 16ull),
			       1ull << 16);
	ret = vfmig_reorder_init(&s->ro, s->ndev, s->nch ? s->nch : 1, s->o.max_queued_bytes,
				 window);
	if (ret) {
		vfmig_fail(s, VFMIG_ERR_INTERNAL, -ret, -1, "destination", "reorder buffer: %s",
			   strerror(-ret));
		goto fail;
	}
	pthread_mutex_lock(&s->lock);
	s->ro_up = true;
	pthread_mutex_unlock(&s->lock);
	if (vfmig_aborted(s)) /* a cancel raced with the setup */
		goto fail;

	touched = true;
	for (unsigned i = 0; i < s->ndev; i++) {
		if (vfmig_set_state(s, i, VFMIG_STATE_RESUMING, VFMIG_STATE_ERROR))
			goto fail;
	}
	if (vfmig_recv_start(s))
		goto fail;
	ret = vfmig_send_frame(&s->main, VFMIG_F_READY, 0, 0, 0, NULL, 0);
	if (ret) {
		vfmig_fail_send(s, "main channel", "send", ret);
		goto fail;
	}
	s->st.setup_ns = vfmig_now_ns() - s->t_start;
	if (dst_main_loop(s))
		goto fail;
	dst_join_all(s);
	if (vfmig_aborted(s))
		goto fail;
	close_all(s);
	vfmig_stats_finish(s);
	pthread_mutex_lock(&s->lock);
	s->ro_up = false;
	pthread_mutex_unlock(&s->lock);
	vfmig_reorder_destroy(&s->ro);
	return VFMIG_OK;

fail:
	send_error(s);
	drain_peer_error(s);
	shutdown_all(s);
	if (s->ro_up)
		vfmig_reorder_abort(&s->ro);
	dst_join_all(s);
	close_all(s);
	if (touched) {
		/* Whatever was loaded is incomplete: a reset puts every device in a defined state. */
		for (unsigned i = 0; i < s->ndev; i++) {
			int r = vfmig_device_reset(s->devs[i]);

			if (r)
				log_err(&s->log, "%s: VFIO_DEVICE_RESET failed: %s",
					s->devs[i]->name, strerror(-r));
			else
				log_info(&s->log, "%s: reset", s->devs[i]->name);
		}
	}
	vfmig_stats_finish(s);
	pthread_mutex_lock(&s->lock);
	s->ro_up = false;
	pthread_mutex_unlock(&s->lock);
	vfmig_reorder_destroy(&s->ro);
	return s->es.e.cls ? s->es.e.cls : VFMIG_ERR_INTERNAL;
}
