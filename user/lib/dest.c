// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * dest.c - the destination side of a migration (vfmig_session_recv).
 *
 *   accept (accept.c: TLS, strangers refused), HELLO checked (wire.c),
 *   HELLO_ACK, multifd channels accepted (accept.c: the session's token)
 *   every device STOP -> RESUMING, READY
 *   PRECOPY_DATA written as it arrives, initial bytes acknowledged
 *     (SWITCHOVER_ACK)
 *   SWITCHOVER_START: per-device load threads (load.c) fed in order by the
 *     reorder buffer (reorder.c), which the channel readers (recv.c) fill
 *   every device loaded, every channel ended: every device RESUMING -> STOP
 *     (the driver validates the stream); LOADED.  Nothing runs yet.
 *   COMMIT: the device state is ours.  Every device STOP -> RUNNING_P2P, then
 *     every device -> RUNNING (devset.c); COMPLETE.
 *
 * Ownership (engine-design.rst): before COMMIT the source owns the state and
 * no device here ever enters a running state; any failure resets every
 * device, and only when every reset succeeded does the ERROR report carry
 * VFMIG_ERRF_RESET, the one word that lets a source that already sent COMMIT
 * resume.  After COMMIT nothing resets: a device that fails to start is left
 * where it is, reported with VFMIG_ERRF_COMMITTED and VFMIG_ERR_INCOMPLETE;
 * a cancel or a peer's abort that arrives then is ignored (the transitions
 * are local and bounded), because dropping the state now would lose it.
 *
 * Every wait is bounded: the main loop polls with --timeout (the source's
 * keepalive PINGs every channel that is idle), the channel readers and the
 * handshake receive with it, a DEVICE_STATE gap on the main channel
 * (--multifd off) is a protocol error at once.
 *
 * Threads: the caller's thread (main loop: control frames, precopy data,
 * DEVICE_STATE with multifd off), N channel readers, one load thread per
 * device, the keepalive thread.
 *
 * Locks: session.lock protects ro_up/ld_up for the wake; session.lock ->
 * reorder.lock and session.lock -> loader.lock only in vfmig_dst_wake().
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session.h"

struct vfmig_dst {
	struct vfmig_reorder ro;
	struct vfmig_loader ld;
	bool ro_up, ld_up;	      /* under session.lock: the wake may reach them */
	int wakefd;		      /* eventfd: load threads and failures wake the main loop */
	struct vfmig_precopy_load pl; /* applies PRECOPY_DATA, acks initial bytes */
	uint32_t main_idx[VFMIG_MAX_DEVICES]; /* next DEVICE_STATE idx on the main channel */
	struct vfmig_conn *chan_ptrs[VFMIG_MAX_CHANNELS];
	bool started, loaded;
	uint64_t t_switch;
	enum vfmig_owner owner; /* when the session ended */
};

int vfmig_dst_new(struct vfmig_session *s)
{
	s->dst = calloc(1, sizeof(*s->dst));
	if (!s->dst)
		return -ENOMEM;
	s->dst->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->dst->wakefd < 0) {
		free(s->dst);
		s->dst = NULL;
		return -errno;
	}
	return 0;
}

void vfmig_dst_free(struct vfmig_session *s)
{
	if (!s->dst)
		return;
	close(s->dst->wakefd);
	free(s->dst);
	s->dst = NULL;
}

enum vfmig_owner vfmig_dst_owner(const struct vfmig_session *s)
{
	return s->dst->owner;
}

void vfmig_dst_wake(struct vfmig_session *s)
{
	struct vfmig_dst *dst = s->dst;
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	if (dst->ro_up)
		vfmig_reorder_abort(&dst->ro);
	if (dst->ld_up) {
		pthread_mutex_lock(&dst->ld.lock);
		pthread_cond_broadcast(&dst->ld.cond);
		pthread_mutex_unlock(&dst->ld.lock);
	}
	pthread_mutex_unlock(&s->lock);
	if (write(dst->wakefd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow in practice; poll still sees it readable. */
	}
}

unsigned vfmig_test_reorder_blocked(struct vfmig_session *s)
{
	unsigned n = 0;

	pthread_mutex_lock(&s->lock);
	if (s->dst && s->dst->ro_up) {
		pthread_mutex_lock(&s->dst->ro.lock);
		n = s->dst->ro.blocked;
		pthread_mutex_unlock(&s->dst->ro.lock);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- handshake ------------------------------------------------------------------------- */

/* A refusal is sent after the failure is recorded (abort set): as a last word. */
static int send_hello_ack(struct vfmig_session *s, uint32_t status, uint32_t opts, const char *msg)
{
	uint8_t p[VFMIG_HELLO_ACK_FIXED + VFMIG_MSG_MAX];
	uint32_t n = vfmig_report_encode(p, status, opts, s->nch, msg);

	if (status != VFMIG_OK)
		return vfmig_send_frame_final(&s->main, VFMIG_F_HELLO_ACK, 0, 0, 0, p, n);
	return vfmig_send_frame(&s->main, VFMIG_F_HELLO_ACK, 0, 0, 0, p, n);
}

static int handshake(struct vfmig_session *s, int lfd)
{
	struct vfmig_local local = { .ndevices = s->ndev, .devs = s->devs, .o = &s->o };
	struct vfmig_hello h;
	enum vfmig_errclass cls;
	char why[256];
	uint32_t opts = 0;
	int ret;

	/* The first connection that authenticates and says a HELLO that decodes (accept.c). */
	if (vfmig_accept_main(s, lfd, s->dst->wakefd, &h))
		return -1;
	/*
	 * A HELLO that decodes but does not fit is the source's (under TLS it
	 * holds the credentials; without TLS any peer could as well send one
	 * that fits): the session fails, and both ends say why.
	 * Record first, then tell the source: its reaction must not win.
	 */
	s->nch = (h.options & VFMIG_OPT_MULTIFD) ? h.nchannels : 0;
	cls = vfmig_hello_check(&h, &local, &opts, why, sizeof(why));
	if (cls != VFMIG_OK) {
		s->nch = 0;
		vfmig_fail(&s->ctl, cls, EPROTO, -1, "handshake", "%s", why);
		send_hello_ack(s, cls, 0, why);
		return -1;
	}
	s->options = opts;
	s->chunk = h.chunk_size;
	s->session_id = h.session_id;
	s->lim.ndevices = s->ndev;
	s->lim.max_chunk = s->chunk;
	ret = send_hello_ack(s, VFMIG_OK, opts, "ok");
	if (ret) {
		vfmig_fail_send(&s->ctl, "main channel", "send", ret);
		return -1;
	}
	if (vfmig_accept_channels(s, lfd, s->dst->wakefd))
		return -1;
	for (unsigned i = 0; i < s->nch; i++)
		s->dst->chan_ptrs[i] = &s->chans[i];
	return 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

static int setup_loader(struct vfmig_session *s)
{
	struct vfmig_dst *dst = s->dst;
	/* Enough slots for the budget in full chunks plus in-flight skew; small reads
	 * only make producers wait for the window, they never grow it. */
	uint32_t window = (uint32_t)MIN(
		MAX(s->o.max_queued_bytes / s->chunk + 2ull * s->nch + 8, 16ull), 1ull << 16);
	int ret;

	ret = vfmig_reorder_init(&dst->ro, s->ndev, s->nch ? s->nch : 1, s->o.max_queued_bytes,
				 window);
	if (ret) {
		vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, -ret, -1, "destination",
			   "reorder buffer: %s", strerror(-ret));
		return -1;
	}
	dst->ld = (struct vfmig_loader){
		.ctl = &s->ctl,
		.log = &s->log,
		.devs = s->devs,
		.ndev = s->ndev,
		.ro = &dst->ro,
		.lim = s->lim,
		.config_after_iter = s->options & VFMIG_OPT_LOAD_CONFIG_AFTER_ITER,
		.wakefd = dst->wakefd,
		.chans = dst->chan_ptrs,
		.nch = s->nch,
		.precopy_mf = s->options & VFMIG_OPT_PRECOPY_MULTIFD,
		.pl = &dst->pl,
	};
	dst->pl = (struct vfmig_precopy_load){
		.ctl = &s->ctl,
		.log = &s->log,
		.main = &s->main,
		.devs = s->devs,
		.sack = s->options & VFMIG_OPT_SWITCHOVER_ACK,
		.reinit_ok = s->options & VFMIG_OPT_PRECOPY_REINIT,
		.st = &s->st,
	};
	atomic_init(&dst->pl.precopy_bytes, 0);
	atomic_init(&dst->pl.reinits, 0);
	ret = vfmig_loader_init(&dst->ld);
	pthread_mutex_lock(&s->lock);
	dst->ro_up = true;
	dst->ld_up = !ret;
	pthread_mutex_unlock(&s->lock);
	if (ret) {
		vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, -ret, -1, "destination", "loader");
		return -1;
	}
	/* A cancel that raced with the setup found nothing to wake. */
	if (vfmig_aborted(&s->ctl))
		vfmig_reorder_abort(&dst->ro);
	return 0;
}

static void teardown_loader(struct vfmig_session *s)
{
	struct vfmig_dst *dst = s->dst;
	bool ro, ld;

	pthread_mutex_lock(&s->lock);
	ro = dst->ro_up;
	ld = dst->ld_up;
	dst->ro_up = dst->ld_up = false;
	pthread_mutex_unlock(&s->lock);
	if (ro) {
		s->st.reorder_peak_bytes = vfmig_reorder_peak(&dst->ro);
		vfmig_reorder_destroy(&dst->ro);
	}
	if (ld)
		vfmig_loader_destroy(&dst->ld);
}

static void join_workers(struct vfmig_session *s)
{
	if (!s->dst->ld_up)
		return;
	vfmig_recv_join(&s->dst->ld);
	vfmig_load_join(&s->dst->ld);
}

/*
 * Admission of a DEVICE_STATE frame on the main channel (--multifd off): the
 * channel is one ordered stream, so each device's idx must follow the last
 * one exactly; a gap would otherwise wait forever for a chunk that is lost.
 */
static int main_admit(void *arg, const struct vfmig_frame_hdr *h, char *why, size_t whylen)
{
	struct vfmig_session *s = arg;
	struct vfmig_dst *dst = s->dst;
	int ret;

	if (h->type != VFMIG_F_DEVICE_STATE)
		return 0;
	if (h->flags & (VFMIG_FLAG_PRECOPY | VFMIG_FLAG_INIT_SENT)) {
		snprintf(why, whylen,
			 "precopy packet (flags 0x%x) as DEVICE_STATE on the main channel",
			 h->flags);
		return -EPROTO;
	}
	if (s->nch || !dst->started || dst->loaded) {
		snprintf(why, whylen, "device state on the main channel %s",
			 s->nch	     ? "while multifd is on" :
			 dst->loaded ? "after LOADED" :
				       "before SWITCHOVER_START");
		return -EPROTO;
	}
	if (h->idx != dst->main_idx[h->device]) {
		snprintf(why, whylen,
			 "device %u: chunk %u on the main channel, expected %u (lost?)", h->device,
			 h->idx, dst->main_idx[h->device]);
		return -EPROTO;
	}
	ret = vfmig_reorder_reserve(&dst->ro, h->device, h->idx, h->flags, h->length, why, whylen);
	if (!ret)
		dst->main_idx[h->device]++;
	return ret;
}

static void main_release(void *arg, const struct vfmig_frame_hdr *h)
{
	struct vfmig_session *s = arg;

	if (h->type == VFMIG_F_DEVICE_STATE)
		vfmig_reorder_unreserve(&s->dst->ro, h->device, h->idx);
}

/* Every device loaded: channels ended, devices RESUMING -> STOP, LOADED. */
static int loaded(struct vfmig_session *s)
{
	struct vfmig_dst *dst = s->dst;
	int ret;

	vfmig_load_join(&dst->ld);
	/* Every chunk is in, so CHANNEL_END follows on every channel (or the timeout). */
	vfmig_recv_join(&dst->ld);
	if (vfmig_aborted(&s->ctl))
		return -1;
	s->st.stopcopy_ns = vfmig_now_ns() - dst->t_switch;
	/* RESUMING -> STOP: the driver validates what it loaded.  Nothing runs before COMMIT. */
	for (unsigned i = 0; i < s->ndev; i++) {
		if (vfmig_session_set_state(s, i, VFMIG_STATE_STOP, VFMIG_STATE_ERROR))
			return -1;
	}
	ret = vfmig_send_frame(&s->main, VFMIG_F_LOADED, 0, 0, 0, NULL, 0);
	if (ret) {
		vfmig_fail_send(&s->ctl, "main channel", "send", ret);
		return -1;
	}
	dst->loaded = true;
	log_dbg(&s->log, "LOADED sent; waiting for COMMIT");
	return 0;
}

/* One frame of the main channel; 1 when COMMIT arrived, 0 go on, -1 failed. */
static int main_frame(struct vfmig_session *s, struct vfmig_frame *f)
{
	struct vfmig_dst *dst = s->dst;

	switch (f->h.type) {
	case VFMIG_F_PING:
		return 0;
	case VFMIG_F_PRECOPY_DATA:
	case VFMIG_F_INIT_DATA_SENT:
		if (dst->started || dst->ld.precopy_mf) {
			vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, (int)f->h.device,
				   "main channel", "%s on the main channel %s",
				   vfmig_ftype_name(f->h.type),
				   dst->started ? "after SWITCHOVER_START" :
						  "while precopy goes over multifd");
			return -1;
		}
		return vfmig_precopy_load(&dst->pl, f);
	case VFMIG_F_SWITCHOVER_START:
		if (dst->started) {
			vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
				   "second SWITCHOVER_START");
			return -1;
		}
		dst->started = true;
		dst->t_switch = vfmig_now_ns();
		if (!dst->ld.precopy_mf)
			return vfmig_load_start(&dst->ld);
		/* The load threads run already: they may all be done (look again). */
		if (vfmig_loads_done(&dst->ld) == s->ndev)
			return loaded(s);
		return 0;
	case VFMIG_F_DEVICE_STATE: /* admitted by main_admit() */
		vfmig_recv_queue(&dst->ld, &s->st.ch[0], f);
		return 0;
	case VFMIG_F_COMMIT:
		if (!dst->loaded) {
			vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
				   "COMMIT before LOADED");
			return -1;
		}
		return 1;
	case VFMIG_F_ERROR:
		vfmig_fail_remote(s, f);
		return -1;
	default:
		vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
			   "unexpected frame type %u from the source", f->h.type);
		return -1;
	}
}

/* Returns 1 once COMMIT arrived, -1 on failure. */
static int main_loop(struct vfmig_session *s)
{
	struct vfmig_dst *dst = s->dst;
	struct vfmig_admit admit = { .admit = main_admit, .release = main_release, .arg = s };

	while (!vfmig_aborted(&s->ctl)) {
		struct pollfd p[2] = {
			{ .fd = s->main.fd, .events = POLLIN },
			{ .fd = dst->wakefd, .events = POLLIN },
		};
		struct vfmig_frame f;
		enum vfmig_ferr fe;
		char why[256];
		int r, err_no;

		/* The source PINGs an idle main channel: silence for --timeout is a dead peer.
		 * Decrypted bytes waiting in TLS make the socket look quiet: read them first. */
		r = vfmig_conn_pending(&s->main) ? 1 : poll(p, 2, (int)s->o.timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, errno, -1, "destination",
				   "poll: %s", strerror(errno));
			return -1;
		}
		if (r == 0) {
			vfmig_fail(&s->ctl, VFMIG_ERR_TIMEOUT, ETIMEDOUT, -1, "main channel",
				   "nothing from the source for %u ms", s->o.timeout_ms);
			return -1;
		}
		if (p[1].revents) {
			uint64_t v;

			if (read(dst->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
				vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, errno, -1, "destination",
					   "eventfd");
				return -1;
			}
			if (dst->started && !dst->loaded && !vfmig_aborted(&s->ctl) &&
			    vfmig_loads_done(&dst->ld) == s->ndev && loaded(s))
				return -1;
			continue;
		}
		fe = vfmig_conn_recv(&s->main, &s->lim, &admit, &f, &err_no, why, sizeof(why));
		if (fe == VFMIG_FERR_REFUSED) {
			vfmig_recv_refused(&dst->ld, err_no, (int)f.h.device, "main channel", why);
			return -1;
		}
		if (fe) {
			vfmig_fail_frame(&s->ctl, "main channel", fe, err_no, why);
			return -1;
		}
		r = main_frame(s, &f);
		vfmig_frame_free(&f);
		if (r)
			return r;
	}
	return -1;
}

/* ---- the end ------------------------------------------------------------------------------ */

/* COMMIT arrived: the state is ours.  Start every device; never reset. */
static enum vfmig_errclass commit(struct vfmig_session *s)
{
	struct vfmig_dst *dst = s->dst;
	struct vfmig_complete c = { 0 };
	uint8_t p[VFMIG_COMPLETE_LEN];
	struct vfmig_error late;
	char note[512];
	int nfail, ret;

	log_dbg(&s->log, "COMMIT received: the device state is ours");
	dst->owner = VFMIG_OWNER_DESTINATION;
	late = vfmig_ctl_error(&s->ctl);
	nfail = vfmig_devset_start(s->devs, s->ndev, VFMIG_GO_COMMIT_RECEIVED, &s->log, note,
				   sizeof(note));
	s->st.dest_downtime_ns = vfmig_now_ns() - dst->t_switch;
	if (nfail) {
		vfmig_ctl_clear(&s->ctl); /* this failure is the one that counts */
		vfmig_fail(&s->ctl, VFMIG_ERR_INCOMPLETE, EIO, -1, "destination",
			   "%d device(s) did not start after COMMIT%s; every device is left as "
			   "it is (the state is here, not reset)",
			   nfail, note);
		vfmig_session_send_error(s, VFMIG_ERRF_COMMITTED);
		return VFMIG_ERR_INCOMPLETE;
	}
	if (late.cls != VFMIG_OK)
		log_warn(&s->log, "ignored after COMMIT: %s: %s (the destination owns the state)",
			 late.where, late.msg);
	s->st.reorder_peak_bytes = vfmig_reorder_peak(&dst->ro);
	c.dest_downtime_ns = s->st.dest_downtime_ns;
	c.reorder_peak = s->st.reorder_peak_bytes;
	c.stopcopy_bytes = atomic_load(&dst->ld.data_bytes);
	vfmig_complete_encode(p, &c);
	ret = vfmig_send_frame_final(&s->main, VFMIG_F_COMPLETE, 0, 0, 0, p, sizeof(p));
	if (ret)
		log_warn(&s->log, "devices are RUNNING but COMPLETE could not be sent: %s",
			 strerror(-ret));
	vfmig_ctl_clear(&s->ctl);
	return VFMIG_OK;
}

/* Before COMMIT: reset every touched device, then tell the source. */
static enum vfmig_errclass abort_uncommitted(struct vfmig_session *s, bool touched)
{
	bool all_reset = true;

	join_workers(s);
	for (unsigned i = 0; touched && i < s->ndev; i++) {
		int r = vfmig_device_reset(s->devs[i]);

		if (r) {
			all_reset = false;
			log_err(&s->log, "%s: VFIO_DEVICE_RESET failed: %s", s->devs[i]->name,
				strerror(-r));
		} else {
			log_info(&s->log, "%s: reset", s->devs[i]->name);
		}
	}
	if (!all_reset)
		vfmig_ctl_amend(&s->ctl, VFMIG_OK, "; a device reset FAILED (see the log)");
	s->dst->owner = all_reset ? VFMIG_OWNER_SOURCE : VFMIG_OWNER_UNKNOWN;
	/* Only now, and only if every reset worked: the source may resume. */
	vfmig_session_send_error(s, all_reset ? VFMIG_ERRF_RESET : 0);
	vfmig_session_linger(s);
	return s->ctl.e.cls ? s->ctl.e.cls : VFMIG_ERR_INTERNAL;
}

/*
 * Secure by default, in the library too: a listener on a network address
 * authenticates its peer (TLS) unless the caller said options.insecure.
 */
static int check_listener(struct vfmig_session *s, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (s->o.tls || s->o.insecure)
		return 0;
	if (getsockname(lfd, (struct sockaddr *)&ss, &sl)) {
		vfmig_fail(&s->ctl, VFMIG_ERR_USAGE, errno, -1, "listen", "listening socket: %s",
			   strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_UNIX || vfmig_sockaddr_is_loopback((struct sockaddr *)&ss))
		return 0;
	vfmig_fail(&s->ctl, VFMIG_ERR_USAGE, EACCES, -1, "listen",
		   "refusing to listen on a network address without TLS: whoever connects "
		   "first would feed the devices; give TLS credentials, or set insecure "
		   "(--insecure) on a trusted, isolated network");
	return -1;
}

enum vfmig_errclass vfmig_session_recv(struct vfmig_session *s, int lfd)
{
	enum vfmig_errclass rc;
	bool touched = false;
	int ret;

	s->t_start = vfmig_now_ns();
	if (check_listener(s, lfd) || handshake(s, lfd))
		goto fail;
	if (vfmig_keepalive_start(&s->ka, &s->ctl, s->o.timeout_ms) || setup_loader(s))
		goto fail;
	touched = true;
	for (unsigned i = 0; i < s->ndev; i++) {
		if (vfmig_session_set_state(s, i, VFMIG_STATE_RESUMING, VFMIG_STATE_ERROR))
			goto fail;
	}
	if (vfmig_recv_start(&s->dst->ld))
		goto fail;
	/* PRECOPY_MULTIFD: the precopy packets are loaded as they come, from now on. */
	if (s->dst->ld.precopy_mf && vfmig_load_start(&s->dst->ld))
		goto fail;
	ret = vfmig_send_frame(&s->main, VFMIG_F_READY, 0, 0, 0, NULL, 0);
	if (ret) {
		vfmig_fail_send(&s->ctl, "main channel", "send", ret);
		goto fail;
	}
	s->st.setup_ns = vfmig_now_ns() - s->t_start;
	if (main_loop(s) != 1)
		goto fail;
	rc = commit(s);
	vfmig_session_linger(s);
	goto out;
fail:
	rc = abort_uncommitted(s, touched);
out:
	vfmig_session_shutdown_all(s);
	join_workers(s);
	vfmig_session_close_all(s);
	s->st.precopy_bytes = atomic_load(&s->dst->pl.precopy_bytes);
	s->st.precopy_reinits = atomic_load(&s->dst->pl.reinits);
	vfmig_stats_finish(s, s->dst->ld_up ? atomic_load(&s->dst->ld.data_bytes) : 0,
			   s->dst->ld_up ? atomic_load(&s->dst->ld.config_bytes) : 0,
			   s->dst->ro_up ? vfmig_reorder_peak(&s->dst->ro) : 0);
	teardown_loader(s);
	return rc;
}
