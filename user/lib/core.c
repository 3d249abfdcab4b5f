// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * core.c - what the source and the destination share: the error object
 * (first error wins, abort flag, wake hook), threads, waits, the session's
 * lifetime, its connections and the ERROR report.
 *
 * The two roles are in source.c and dest.c; each side's part of the session
 * (struct vfmig_src, struct vfmig_dst) is private to its file.  Lower layers
 * (transport, precopy, multifd, recv, load, reorder, devset) never see the
 * session: they get a connection, devices and the struct vfmig_ctl.
 *
 * Locks: ctl.lock is a leaf.  vfmig_session_wake() takes session.lock and,
 * inside it, whatever the role wakes (multifd.lock, reorder.lock,
 * loader.lock).  vfmig_fail() must be called with no lock held.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session.h"
#include "tls.h"

void vfmig_options_init(struct vfmig_options *o)
{
	memset(o, 0, sizeof(*o));
	o->multifd = VFMIG_AUTO;
	o->channels = 2;
	o->switchover_ack = VFMIG_AUTO;
	o->load_config_after_iter = VFMIG_AUTO;
	o->precopy_reinit = VFMIG_AUTO;
	o->precopy_multifd = VFMIG_AUTO;
	o->downtime_limit_ms = 300;
	o->max_iterations = 30;
	o->max_queued_bytes = 256ull << 20;
	o->chunk_size = 1u << 20;
	o->timeout_ms = 30000;
	o->max_precopy_ms = 600000;
	o->max_channels = 16;
	o->max_chunk = 4u << 20;
	o->accept_ms = 5000;
}

/* ---- the error object ---------------------------------------------------------- */

int vfmig_ctl_init(struct vfmig_ctl *c, const char *side, struct vfmig_log *log)
{
	memset(c, 0, sizeof(*c));
	if (pthread_mutex_init(&c->lock, NULL))
		return -ENOMEM;
	atomic_init(&c->abort, false);
	c->e.device = -1;
	c->side = side;
	c->log = log;
	return 0;
}

void vfmig_ctl_destroy(struct vfmig_ctl *c)
{
	pthread_mutex_destroy(&c->lock);
}

static void fail_va(struct vfmig_ctl *c, bool weak, enum vfmig_errclass cls, int err, int device,
		    const char *where, const char *fmt, va_list ap)
{
	char msg[sizeof(c->e.msg)];
	bool first = false;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	pthread_mutex_lock(&c->lock);
	/*
	 * First error wins; but a peer's own report explains the connection loss it
	 * caused, and replaces an outside abort (vfmig_session_abort) too.
	 */
	if (!c->set ||
	    (cls == VFMIG_ERR_REMOTE && !weak &&
	     (c->e.cls == VFMIG_ERR_TRANSPORT || c->e.cls == VFMIG_ERR_TIMEOUT || c->weak))) {
		first = true;
		c->set = true;
		c->weak = weak;
		c->e.cls = cls;
		c->e.err = err;
		c->e.device = device;
		snprintf(c->e.where, sizeof(c->e.where), "%s", where);
		snprintf(c->e.msg, sizeof(c->e.msg), "%s", msg);
	}
	pthread_mutex_unlock(&c->lock);
	if (c->log)
		log_dbg(c->log, "%s: %s: %s", first ? "failure" : "also", where, msg);
	atomic_store(&c->abort, true);
	if (c->wake)
		c->wake(c->wake_arg);
}

void vfmig_fail(struct vfmig_ctl *c, enum vfmig_errclass cls, int err, int device,
		const char *where, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_va(c, false, cls, err, device, where, fmt, ap);
	va_end(ap);
}

void vfmig_fail_weak(struct vfmig_ctl *c, enum vfmig_errclass cls, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_va(c, true, cls, 0, -1, c->side, fmt, ap);
	va_end(ap);
}

struct vfmig_error vfmig_ctl_error(struct vfmig_ctl *c)
{
	struct vfmig_error e;

	pthread_mutex_lock(&c->lock);
	e = c->e;
	pthread_mutex_unlock(&c->lock);
	return e;
}

void vfmig_ctl_amend(struct vfmig_ctl *c, enum vfmig_errclass cls, const char *fmt, ...)
{
	va_list ap;
	size_t l;

	pthread_mutex_lock(&c->lock);
	if (!c->set) {
		c->set = true;
		snprintf(c->e.where, sizeof(c->e.where), "%s", c->side);
	}
	if (cls != VFMIG_OK)
		c->e.cls = cls;
	l = strlen(c->e.msg);
	va_start(ap, fmt);
	vsnprintf(c->e.msg + l, sizeof(c->e.msg) - l, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&c->lock);
}

void vfmig_ctl_clear(struct vfmig_ctl *c)
{
	pthread_mutex_lock(&c->lock);
	c->set = false;
	c->weak = false;
	memset(&c->e, 0, sizeof(c->e));
	c->e.device = -1;
	pthread_mutex_unlock(&c->lock);
}

bool vfmig_ctl_weak(struct vfmig_ctl *c)
{
	bool w;

	pthread_mutex_lock(&c->lock);
	w = c->weak;
	pthread_mutex_unlock(&c->lock);
	return w;
}

void vfmig_fail_frame(struct vfmig_ctl *c, const char *where, enum vfmig_ferr fe, int err_no,
		      const char *why)
{
	if (vfmig_aborted(c))
		return; /* our own abort woke this reader */
	vfmig_fail(c, vfmig_ferr_class(fe), err_no, -1, where, "%s: %s", vfmig_ferr_name(fe), why);
}

void vfmig_fail_send(struct vfmig_ctl *c, const char *where, const char *what, int ret)
{
	if (vfmig_aborted(c))
		return;
	vfmig_fail(c, ret == -ETIMEDOUT ? VFMIG_ERR_TIMEOUT : VFMIG_ERR_TRANSPORT, -ret, -1, where,
		   "%s: %s%s", what, strerror(-ret),
		   ret == -ETIMEDOUT ? " (peer stopped reading)" : "");
}

/* ---- threads and waits ------------------------------------------------------------ */

struct thread_arg {
	void (*fn)(void *arg, unsigned i);
	void *arg;
	unsigned i;
};

static void *thread_main(void *p)
{
	struct thread_arg ta = *(struct thread_arg *)p;

	free(p);
	ta.fn(ta.arg, ta.i);
	return NULL;
}

int vfmig_thread_start(struct vfmig_ctl *c, pthread_t *t, void (*fn)(void *arg, unsigned i),
		       void *arg, unsigned i)
{
	struct thread_arg *ta = malloc(sizeof(*ta));

	if (!ta) {
		vfmig_fail(c, VFMIG_ERR_INTERNAL, ENOMEM, -1, c->side, "out of memory");
		return -1;
	}
	*ta = (struct thread_arg){ .fn = fn, .arg = arg, .i = i };
	if (pthread_create(t, NULL, thread_main, ta)) {
		free(ta);
		vfmig_fail(c, VFMIG_ERR_INTERNAL, EAGAIN, -1, c->side, "cannot create a thread");
		return -1;
	}
	return 0;
}

int vfmig_cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int ret;

	if (pthread_condattr_init(&ca))
		return -ENOMEM;
	ret = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!ret)
		ret = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return -ret;
}

bool vfmig_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t deadline_ns)
{
	struct timespec ts;

	if (vfmig_now_ns() >= deadline_ns)
		return false;
	ts.tv_sec = (time_t)(deadline_ns / 1000000000ull);
	ts.tv_nsec = (long)(deadline_ns % 1000000000ull);
	return pthread_cond_timedwait(cv, m, &ts) != ETIMEDOUT || vfmig_now_ns() < deadline_ns;
}

/*
 * The peer is alive while frames arrive on the main channel (its keepalive
 * PINGs it when there is nothing else to say): the deadline moves with the
 * last frame received, so a destination that is busy loading is waited for,
 * and one that went silent is given up after --timeout.
 */
bool vfmig_session_wait_flag(struct vfmig_session *s, const bool *flag, const char *what)
{
	uint64_t tmo = (uint64_t)s->o.timeout_ms * 1000000ull, start = vfmig_now_ns();
	bool timeout = false, got;

	pthread_mutex_lock(&s->lock);
	while (!*flag && !vfmig_aborted(&s->ctl)) {
		uint64_t heard = MAX(start, (uint64_t)atomic_load(&s->main.last_rx_ns));

		/* Wake up at least every second to see whether the peer spoke. */
		if (!vfmig_cond_wait_until(&s->cond, &s->lock,
					   MIN(heard + tmo, vfmig_now_ns() + 1000000000ull)) &&
		    vfmig_now_ns() >=
			    MAX(start, (uint64_t)atomic_load(&s->main.last_rx_ns)) + tmo) {
			timeout = true;
			break;
		}
	}
	got = *flag;
	pthread_mutex_unlock(&s->lock);
	if (timeout && !got)
		vfmig_fail(&s->ctl, VFMIG_ERR_TIMEOUT, ETIMEDOUT, -1, s->ctl.side,
			   "no %s, and nothing at all from the peer for %u ms", what,
			   s->o.timeout_ms);
	return got;
}

/* ---- lifetime ------------------------------------------------------------------------ */

void vfmig_session_wake(struct vfmig_session *s)
{
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->src)
		vfmig_src_wake(s);
	if (s->dst)
		vfmig_dst_wake(s);
}

static void wake_hook(void *arg)
{
	vfmig_session_wake(arg);
}

struct vfmig_session *vfmig_session_new(bool source, struct vfmig_device **devs, unsigned ndevs,
					const struct vfmig_options *o)
{
	struct vfmig_session *s;

	if (!ndevs || ndevs > VFMIG_MAX_DEVICES || o->channels > VFMIG_MAX_CHANNELS)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->devs = calloc(ndevs, sizeof(*s->devs));
	if (!s->devs)
		goto fail_mem;
	memcpy(s->devs, devs, ndevs * sizeof(*devs));
	s->source = source;
	s->o = *o;
	if (!s->o.max_channels)
		s->o.max_channels = VFMIG_MAX_CHANNELS;
	if (!s->o.max_chunk)
		s->o.max_chunk = VFMIG_MAX_CHUNK;
	s->log.verbose = o->verbose;
	s->log.prefix = o->log_prefix ? o->log_prefix : (source ? "src" : "dst");
	s->ndev = ndevs;
	s->main.fd = -1;
	if (vfmig_ctl_init(&s->ctl, source ? "source" : "destination", &s->log))
		goto fail_mem;
	if (pthread_mutex_init(&s->lock, NULL))
		goto fail_ctl;
	if (vfmig_cond_init_mono(&s->cond))
		goto fail_lock;
	if (pthread_mutex_init(&s->ka.lock, NULL))
		goto fail_cond;
	if (vfmig_cond_init_mono(&s->ka.cond))
		goto fail_ka;
	s->st.source = source;
	s->st.ndevices = ndevs;
	if (source ? vfmig_src_new(s) : vfmig_dst_new(s))
		goto fail_kacond;
	s->ctl.wake = wake_hook;
	s->ctl.wake_arg = s;
	return s;
fail_kacond:
	pthread_cond_destroy(&s->ka.cond);
fail_ka:
	pthread_mutex_destroy(&s->ka.lock);
fail_cond:
	pthread_cond_destroy(&s->cond);
fail_lock:
	pthread_mutex_destroy(&s->lock);
fail_ctl:
	vfmig_ctl_destroy(&s->ctl);
fail_mem:
	free(s->devs);
	free(s);
	return NULL;
}

void vfmig_session_free(struct vfmig_session *s)
{
	if (!s)
		return;
	if (s->source)
		vfmig_src_free(s);
	else
		vfmig_dst_free(s);
	pthread_cond_destroy(&s->ka.cond);
	pthread_mutex_destroy(&s->ka.lock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	vfmig_ctl_destroy(&s->ctl);
	free(s->devs);
	free(s);
}

void vfmig_session_cancel(struct vfmig_session *s)
{
	vfmig_fail(&s->ctl, VFMIG_ERR_CANCELLED, EINTR, -1, s->ctl.side, "interrupted");
}

void vfmig_session_abort(struct vfmig_session *s, enum vfmig_errclass cls, const char *msg)
{
	vfmig_fail_weak(&s->ctl, cls, "%s", msg);
}

const struct vfmig_error *vfmig_session_error(const struct vfmig_session *s)
{
	return &s->ctl.e;
}

const struct vfmig_stats *vfmig_session_stats(const struct vfmig_session *s)
{
	return &s->st;
}

/* ---- devices and connections ------------------------------------------------------------ */

int vfmig_session_set_state(struct vfmig_session *s, unsigned i, enum vfmig_state st,
			    enum vfmig_state recover)
{
	struct vfmig_error e = { 0 };
	int ret = vfmig_device_set_state(s->devs[i], st, recover, &e);

	if (ret)
		vfmig_fail(&s->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, s->devs[i]->name, "%s", e.msg);
	else
		log_dbg(&s->log, "%s: -> %s", s->devs[i]->name, vfmig_state_name(st));
	return ret;
}

int vfmig_session_add_conn(struct vfmig_session *s, struct vfmig_conn *c, int fd, unsigned id)
{
	int ret = vfmig_conn_init(c, fd, id, &s->st.ch[id]);

	if (ret)
		return ret;
	vfmig_conn_bound(c, &s->ctl.abort, s->o.timeout_ms);
	/*
	 * Liveness PINGs go where the peer reads: the main channel both ways, the
	 * multifd channels only from the source (nobody reads the other way, and
	 * PINGs there would fill the socket until the keepalive thread blocks).
	 */
	if (s->source || id == 0)
		vfmig_keepalive_add(&s->ka, c);
	return 0;
}

/*
 * TLS on a new connection, before any frame: a refusal here (key,
 * certificate, name, a destination without TLS) is VFMIG_ERR_AUTH; a peer
 * that hangs up (ECONNRESET, EPIPE, end of stream) or a socket error is
 * VFMIG_ERR_TRANSPORT.  In either case no
 * device has changed state.  The connection is torn down by the caller's
 * cleanup, as for any failure.
 */
static int tls_conn(struct vfmig_session *s, const struct vfmig_addr *peer, struct vfmig_conn *c,
		    const char *where)
{
	char why[256];
	bool plain;
	int ret = vfmig_conn_tls(c, s->o.tls, peer->family == AF_UNIX ? NULL : peer->host,
				 s->o.timeout_ms, &plain, why, sizeof(why));

	if (!ret) {
		if (!c->id) {
			snprintf(s->st.tls_cipher, sizeof(s->st.tls_cipher), "%s",
				 vfmig_tls_cipher(c->tls));
			log_info(&s->log, "the destination authenticated (TLS 1.3, %s, %s)",
				 vfmig_tls_kind(s->o.tls), s->st.tls_cipher);
		}
		return 0;
	}
	if (ret == -ECANCELED)
		return -1; /* the abort's cause is recorded */
	if (plain)
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 ": start recv with --tls-psk or --tls-creds too");
	/* A refusal is authentication; a hang-up or a socket error is the transport's. */
	vfmig_fail(&s->ctl,
		   ret == -ETIMEDOUT			     ? VFMIG_ERR_TIMEOUT :
		   ret == -ENOMEM			     ? VFMIG_ERR_INTERNAL :
		   ret == -EINVAL			     ? VFMIG_ERR_USAGE :
		   ret == -EACCES || ret == -EPROTO || plain ? VFMIG_ERR_AUTH :
							       VFMIG_ERR_TRANSPORT,
		   -ret, -1, where, "%s", why);
	return -1;
}

int vfmig_session_connect(struct vfmig_session *s, const struct vfmig_addr *peer,
			  struct vfmig_conn *c, unsigned id, const char *where)
{
	struct vfmig_error e = { 0 };
	int fd, ret;

	fd = vfmig_connect_abortable(peer, s->o.timeout_ms, &s->ctl.abort, &e);
	if (fd < 0) {
		vfmig_fail(&s->ctl, e.cls, e.err, -1, where, "%s", e.msg);
		return -1;
	}
	ret = vfmig_session_add_conn(s, c, fd, id);
	if (ret) {
		close(fd);
		vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, -ret, -1, "source", "mutex: %s",
			   strerror(-ret));
		return -1;
	}
	return s->o.tls ? tls_conn(s, peer, c, where) : 0;
}

void vfmig_session_shutdown_all(struct vfmig_session *s)
{
	if (s->main_up)
		vfmig_conn_shutdown(&s->main);
	for (unsigned i = 0; i < s->chans_up; i++)
		vfmig_conn_shutdown(&s->chans[i]);
}

void vfmig_session_close_all(struct vfmig_session *s)
{
	vfmig_keepalive_stop(&s->ka);
	for (unsigned i = 0; i < s->chans_up; i++)
		vfmig_conn_destroy(&s->chans[i]);
	s->chans_up = 0;
	free(s->chans);
	s->chans = NULL;
	if (s->main_up)
		vfmig_conn_destroy(&s->main);
	s->main_up = false;
}

void vfmig_fail_remote(struct vfmig_session *s, const struct vfmig_frame *f)
{
	struct vfmig_report r;

	vfmig_report_decode(f, &r);
	vfmig_fail(&s->ctl, VFMIG_ERR_REMOTE, (int)r.b, r.c == UINT32_MAX ? -1 : (int)r.c,
		   s->source ? "destination" : "source", "%s (%s)", r.msg,
		   vfmig_errclass_name(r.a < VFMIG_ERR_NR ? (enum vfmig_errclass)r.a :
							    VFMIG_ERR_INTERNAL));
}

void vfmig_session_send_error(struct vfmig_session *s, uint32_t flags)
{
	uint8_t p[VFMIG_ERROR_FIXED + VFMIG_MSG_MAX];
	struct vfmig_error e;
	int ret;

	if (!s->main_up)
		return;
	e = vfmig_ctl_error(&s->ctl);
	if (e.cls == VFMIG_ERR_REMOTE && !flags)
		return; /* the peer knows */
	ret = vfmig_send_frame_final(
		&s->main, VFMIG_F_ERROR, flags, 0, 0, p,
		vfmig_report_encode(p, e.cls, (uint32_t)e.err,
				    e.device < 0 ? UINT32_MAX : (uint32_t)e.device, e.msg));
	if (ret)
		log_dbg(&s->log, "could not tell the peer (ERROR 0x%x): %s", flags, strerror(-ret));
	else
		log_dbg(&s->log, "told the peer: ERROR 0x%x", flags);
}

struct vfmig_conn *vfmig_test_conn(struct vfmig_session *s, unsigned id)
{
	if (!id)
		return s->main_up ? &s->main : NULL;
	return id <= s->chans_up ? &s->chans[id - 1] : NULL;
}

/*
 * The last word is said (COMPLETE or ERROR): close our sending side and read
 * what the source still sends, until it closes too.
 * Closing a socket with unread data in it (a COMMIT that crossed our ERROR,
 * a PING) makes TCP send a reset, which can destroy our last frame before
 * the source reads it.  A connection loss is also usually the source's
 * reaction to its own failure: its ERROR, found here, names the cause.
 * 300 ms at most, so that a cancel still ends the process within a second.
 */
void vfmig_session_linger(struct vfmig_session *s)
{
	uint64_t deadline = vfmig_now_ns() + 300000000ull;
	struct vfmig_error e = vfmig_ctl_error(&s->ctl);
	bool want_cause = e.cls == VFMIG_ERR_TRANSPORT || vfmig_ctl_weak(&s->ctl);

	if (!s->main_up)
		return;
	vfmig_keepalive_stop(&s->ka);
	vfmig_conn_close_write(&s->main);
	for (uint64_t now; (now = vfmig_now_ns()) < deadline;) {
		struct vfmig_frame f;
		char why[256];
		int err_no;

		if (vfmig_conn_recv_final(&s->main, &s->lim, (int)((deadline - now) / 1000000) + 1,
					  &f, &err_no, why, sizeof(why)))
			return;
		if (f.h.type == VFMIG_F_ERROR && want_cause) {
			vfmig_fail_remote(s, &f);
			want_cause = false;
		}
		vfmig_frame_free(&f);
	}
}
