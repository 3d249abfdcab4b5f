// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * source.c - the source side of a migration (vfmig_session_send).
 *
 *   connect, HELLO / HELLO_ACK, multifd channels (CHANNEL_HELLO)
 *   READY: destination devices RESUMING
 *   devices RUNNING -> PRE_COPY, precopy iterations (precopy.c) until
 *     converged and every switchover-ack arrived
 *   SWITCHOVER_START; phase 1: every device to its P2P state (downtime
 *     starts, devset.c); phase 2: every device to STOP_COPY in its own save
 *     thread, chunks over the multifd channels (multifd.c); CHANNEL_END
 *   LOADED: every destination device loaded and STOP (validated), not running
 *   COMMIT: the point of no return; the destination owns the state from the
 *     moment it has received it
 *   COMPLETE: destination devices RUNNING (downtime ends); devices
 *     STOP_COPY -> STOP
 *
 * Who owns the device state decides every failure (engine-design.rst):
 *   - COMMIT not sent, or not wholly sent (a failed send never delivers a
 *     whole frame, and the destination starts only on a whole COMMIT): the
 *     source owns it and rolls back to RUNNING (vfmig_devset_start,
 *     VFMIG_GO_NOT_COMMITTED);
 *   - COMMIT sent, then ERROR with VFMIG_ERRF_RESET: the destination had not
 *     received COMMIT and reset every device: roll back (VFMIG_GO_PEER_RESET);
 *   - COMMIT sent, then ERROR with VFMIG_ERRF_COMMITTED: the destination owns
 *     the state but did not start every device: the source stays stopped,
 *     VFMIG_ERR_INCOMPLETE;
 *   - COMMIT sent and anything else (silence, a cut, a cancel here): nobody
 *     here can know whether the destination runs: the source stays stopped
 *     with its state, VFMIG_ERR_OUTCOME_UNKNOWN.
 *
 * Threads: the caller's thread coordinates; the return-path thread reads the
 * main channel; the keepalive thread PINGs idle channels; N channel senders
 * and one save thread per device during STOP_COPY (multifd.c).
 *
 * Locks: session.lock protects struct vfmig_src's return-path flags and the
 * precopy ack state; session.lock -> multifd.lock when a failure wakes the
 * senders (src.mf_up is cleared under session.lock before the multifd state
 * is destroyed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "source.h"

int vfmig_src_new(struct vfmig_session *s)
{
	s->src = calloc(1, sizeof(*s->src));
	if (!s->src)
		return -ENOMEM;
	if (pthread_cond_init(&s->src->pc_wcond, NULL)) {
		free(s->src);
		s->src = NULL;
		return -ENOMEM;
	}
	atomic_init(&s->src->data_bytes, 0);
	atomic_init(&s->src->config_bytes, 0);
	return 0;
}

void vfmig_src_free(struct vfmig_session *s)
{
	if (s->src)
		pthread_cond_destroy(&s->src->pc_wcond);
	free(s->src);
	s->src = NULL;
}

void vfmig_src_wake(struct vfmig_session *s)
{
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->src->pc_wcond);
	if (s->src->mf_up)
		vfmig_multifd_wake(&s->src->mf);
	pthread_mutex_unlock(&s->lock);
}

static void src_progress(void *arg, enum vfmig_phase ph)
{
	struct vfmig_session *s = arg;
	struct vfmig_progress p = {
		.phase = ph,
		.iteration = s->st.precopy_iterations,
		.precopy_bytes = s->st.precopy_bytes,
		.stopcopy_bytes = atomic_load(&s->src->data_bytes),
		.est_stopcopy_bytes = s->st.est_stopcopy_bytes,
		.bandwidth_Bps = s->st.bandwidth_Bps,
	};

	if (!s->o.progress)
		return;
	pthread_mutex_lock(&s->lock);
	p.acks = s->src->pc.acks;
	pthread_mutex_unlock(&s->lock);
	p.acks_needed = vfmig_precopy_acks_needed(&s->src->pc);
	s->o.progress(&p, s->o.progress_opaque);
}

/* ---- setup ------------------------------------------------------------------------------- */

/*
 * Every device can be migrated, and is RUNNING or STOP (a paused guest's):
 * a failed migration puts each back in the state it had, and a stopped one
 * is never run by the migration (no PRE_COPY for it).
 */
static int check_devices(struct vfmig_session *s)
{
	for (unsigned i = 0; i < s->ndev; i++) {
		struct vfmig_device *d = s->devs[i];
		int ret = vfmig_device_get_state(d, &s->src->orig[i]);

		if (ret) {
			vfmig_fail(&s->ctl, VFMIG_ERR_DEVICE, -ret, (int)i, d->name,
				   "%s: get state: %s", d->name, strerror(-ret));
			return -1;
		}
		if (s->src->orig[i] != VFMIG_STATE_RUNNING && s->src->orig[i] != VFMIG_STATE_STOP) {
			vfmig_fail(&s->ctl, VFMIG_ERR_DEVICE, EBUSY, (int)i, d->name,
				   "%s is in %s: a migration starts from RUNNING or STOP", d->name,
				   vfmig_state_name(s->src->orig[i]));
			return -1;
		}

		if (!(d->flags & VFMIG_MIG_STOP_COPY)) {
			vfmig_fail(&s->ctl, VFMIG_ERR_DEVICE, EOPNOTSUPP, (int)i, d->name,
				   "%s does not support STOP_COPY migration", d->name);
			return -1;
		}
		if (s->ndev > 1 && !(d->flags & VFMIG_MIG_P2P)) {
			vfmig_fail(
				&s->ctl, VFMIG_ERR_INCOMPATIBLE, EOPNOTSUPP, (int)i, d->name,
				"%s lacks P2P support (migration flags 0x%llx): a migration of "
				"several devices needs P2P on every device so that none is stopped "
				"while a peer can still write to it; migrate it alone",
				d->name, (unsigned long long)d->flags);
			return -1;
		}
	}
	return 0;
}

/*
 * A TLS 1.3 server checks our certificate after our side of the handshake
 * finished, and says no with an alert: a HELLO that could not be sent may
 * be the first sign.  Look for the alert (briefly) so that the failure
 * names its cause.
 */
static void tls_refusal(struct vfmig_session *s)
{
	struct vfmig_frame f;
	enum vfmig_ferr fe;
	char why[256];
	int err_no;

	if (!s->o.tls || vfmig_aborted(&s->ctl))
		return;
	fe = vfmig_conn_recv_final(&s->main, &s->lim, 500, &f, &err_no, why, sizeof(why));
	if (fe == VFMIG_FERR_IO && err_no == EACCES)
		vfmig_fail(&s->ctl, VFMIG_ERR_AUTH, EACCES, -1, "main channel (handshake)",
			   "%s: the destination does not accept our certificate", why);
	vfmig_frame_free(&f); /* nothing, or a frame we do not need */
}

/* The HELLO_ACK (PINGs skipped). */
static int recv_hello_ack(struct vfmig_session *s, uint32_t *opts)
{
	struct vfmig_report r;
	struct vfmig_frame f;
	enum vfmig_ferr fe;
	char why[256];
	int err_no;

	do {
		fe = vfmig_conn_recv(&s->main, &s->lim, NULL, &f, &err_no, why, sizeof(why));
		if (fe == VFMIG_FERR_IO && err_no == EACCES) {
			vfmig_fail(&s->ctl, VFMIG_ERR_AUTH, EACCES, -1, "main channel (handshake)",
				   "%s: the destination does not accept our certificate", why);
			return -1;
		}
		if (fe) {
			vfmig_fail_frame(&s->ctl, "main channel (handshake)", fe, err_no, why);
			return -1;
		}
		if (f.h.type == VFMIG_F_PING)
			vfmig_frame_free(&f);
	} while (f.h.type == VFMIG_F_PING);
	if (f.h.type == VFMIG_F_ERROR) {
		vfmig_fail_remote(s, &f);
		vfmig_frame_free(&f);
		return -1;
	}
	if (f.h.type != VFMIG_F_HELLO_ACK) {
		vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
			   "expected HELLO_ACK, got frame type %u", f.h.type);
		vfmig_frame_free(&f);
		return -1;
	}
	vfmig_report_decode(&f, &r);
	vfmig_frame_free(&f);
	if (r.a != VFMIG_OK) {
		vfmig_fail(&s->ctl,
			   r.a == VFMIG_ERR_INCOMPATIBLE || r.a == VFMIG_ERR_AUTH ?
				   (enum vfmig_errclass)r.a :
				   VFMIG_ERR_REMOTE,
			   EPROTO, -1, "handshake", "destination refused: %s", r.msg);
		return -1;
	}
	*opts = r.b;
	return 0;
}

/* The precopy state (before the return path starts: it updates the acks), then the thread. */
static int start_return_path(struct vfmig_session *s)
{
	struct vfmig_src *src = s->src;

	src->pc = (struct vfmig_precopy){
		.ctl = &s->ctl,
		.log = &s->log,
		.main = &s->main,
		.devs = s->devs,
		.ndev = s->ndev,
		.chunk = s->chunk,
		.sack = s->options & VFMIG_OPT_SWITCHOVER_ACK,
		.reinit_ok = s->options & VFMIG_OPT_PRECOPY_REINIT,
		/* Whatever the destination answered: a REINIT it cannot ack fails cleanly. */
		.opt_in = s->o.precopy_reinit != VFMIG_OFF,
		.o = &s->o,
		.lock = &s->lock,
		.cond = &s->cond,
		.wcond = &src->pc_wcond,
		.st = &s->st,
		.progress = src_progress,
		.progress_arg = s,
	};
	if (vfmig_thread_start(&s->ctl, &src->rp_thread, vfmig_src_return_path, s, 0))
		return -1;
	src->rp_started = true;
	return 0;
}

#define DROPPABLE (VFMIG_OPT_PRECOPY_REINIT | VFMIG_OPT_PRECOPY_MULTIFD)

static int handshake(struct vfmig_session *s, const struct vfmig_addr *peer)
{
	uint8_t buf[VFMIG_HELLO_MAX];
	struct vfmig_hello h = { 0 };
	bool any_pre = false;
	uint32_t opts;
	size_t n;
	int ret;

	/* Resolve "auto" here; the destination only checks. */
	s->nch = s->o.multifd == VFMIG_OFF ? 0 : s->o.channels;
	if (s->o.precopy_multifd == VFMIG_ON && !s->nch) {
		vfmig_fail(&s->ctl, VFMIG_ERR_USAGE, EINVAL, -1, "source",
			   "--precopy-multifd on needs multifd (--channels >= 1)");
		return -1;
	}
	if (s->o.multifd == VFMIG_ON && !s->nch) {
		vfmig_fail(&s->ctl, VFMIG_ERR_USAGE, EINVAL, -1, "source",
			   "--multifd on needs --channels >= 1");
		return -1;
	}
	for (unsigned i = 0; i < s->ndev; i++)
		any_pre |= s->devs[i]->flags & VFMIG_MIG_PRE_COPY;
	s->options =
		(s->nch ? VFMIG_OPT_MULTIFD : 0) |
		(s->o.switchover_ack != VFMIG_OFF && any_pre ? VFMIG_OPT_SWITCHOVER_ACK : 0) |
		(s->o.load_config_after_iter == VFMIG_ON ? VFMIG_OPT_LOAD_CONFIG_AFTER_ITER : 0) |
		(s->o.precopy_reinit != VFMIG_OFF && any_pre ? VFMIG_OPT_PRECOPY_REINIT : 0) |
		(s->nch && s->o.precopy_multifd != VFMIG_OFF && any_pre ?
			 VFMIG_OPT_PRECOPY_MULTIFD :
			 0);
	s->chunk = s->o.chunk_size;
	if (s->chunk < VFMIG_MIN_CHUNK || s->chunk > VFMIG_MAX_CHUNK) {
		vfmig_fail(&s->ctl, VFMIG_ERR_USAGE, EINVAL, -1, "source",
			   "--chunk-size must be %u..%u", VFMIG_MIN_CHUNK, VFMIG_MAX_CHUNK);
		return -1;
	}
	/* The session id is the token that admits the multifd channels: random, never guessed. */
	if (getrandom(&s->session_id, sizeof(s->session_id), 0) != sizeof(s->session_id)) {
		vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, errno, -1, "source",
			   "getrandom: %s (the session token must be random)", strerror(errno));
		return -1;
	}
	if (vfmig_session_connect(s, peer, &s->main, 0, "main channel"))
		return -1;
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
		snprintf(h.dev[i].label, sizeof(h.dev[i].label), "%s", d->label);
	}
	n = vfmig_hello_encode(buf, sizeof(buf), &h);
	ret = vfmig_send_frame(&s->main, VFMIG_F_HELLO, 0, 0, 0, buf, (uint32_t)n);
	if (ret) {
		tls_refusal(s);
		vfmig_fail_send(&s->ctl, "main channel", "send", ret);
		return -1;
	}
	s->lim.ndevices = s->ndev;
	s->lim.max_chunk = s->chunk;
	if (recv_hello_ack(s, &opts))
		return -1;
	/*
	 * The destination may add LOAD_CONFIG_AFTER_ITER, and drop PRECOPY_REINIT
	 * and PRECOPY_MULTIFD.
	 */
	if ((opts & ~(VFMIG_OPT_LOAD_CONFIG_AFTER_ITER | DROPPABLE)) !=
		    (s->options & ~(VFMIG_OPT_LOAD_CONFIG_AFTER_ITER | DROPPABLE)) ||
	    (opts & DROPPABLE & ~s->options) || (opts & ~VFMIG_OPT_ALL)) {
		vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "handshake",
			   "destination changed options 0x%x to 0x%x", s->options, opts);
		return -1;
	}
	s->options = opts;
	if (s->o.precopy_multifd == VFMIG_ON && !(opts & VFMIG_OPT_PRECOPY_MULTIFD) && any_pre) {
		vfmig_fail(
			&s->ctl, VFMIG_ERR_INCOMPATIBLE, EPROTO, -1, "handshake",
			"the destination declined precopy over multifd (precopy-multifd on here)");
		return -1;
	}
	/*
	 * The return path from here on: a destination that fails while the
	 * channels connect is heard at once (its ERROR sets the abort flag,
	 * which the connect loop watches).
	 */
	if (start_return_path(s))
		return -1;

	if (s->nch) {
		s->chans = calloc(s->nch, sizeof(*s->chans));
		if (!s->chans) {
			vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "source",
				   "out of memory");
			return -1;
		}
	}
	for (unsigned i = 0; i < s->nch; i++) {
		struct vfmig_channel_hello chh = {
			.session_id = s->session_id,
			.channel = i,
			.nchannels = s->nch,
		};
		uint8_t ch[VFMIG_CHANNEL_HELLO_LEN];

		if (vfmig_session_connect(s, peer, &s->chans[i], i + 1, "multifd channel"))
			return -1;
		s->chans_up++;
		vfmig_channel_hello_encode(ch, &chh);
		ret = vfmig_send_frame(&s->chans[i], VFMIG_F_CHANNEL_HELLO, 0, 0, 0, ch,
				       sizeof(ch));
		if (ret) {
			vfmig_fail_send(&s->ctl, "multifd channel", "send", ret);
			return -1;
		}
	}
	return 0;
}

static int start_multifd(struct vfmig_session *s)
{
	struct vfmig_src *src = s->src;
	struct vfmig_conn *conns[VFMIG_MAX_CHANNELS];
	unsigned n = s->nch ? s->nch : 1;
	int ret;

	for (unsigned i = 0; i < n; i++)
		conns[i] = s->nch ? &s->chans[i] : &s->main;
	ret = vfmig_multifd_start(&src->mf, &s->ctl, &s->log, conns, n, s->nch != 0, s->devs,
				  s->ndev, s->chunk, &src->data_bytes, &src->config_bytes);
	pthread_mutex_lock(&s->lock);
	src->mf_up = src->mf.up;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void stop_multifd(struct vfmig_session *s)
{
	struct vfmig_src *src = s->src;

	pthread_mutex_lock(&s->lock);
	src->mf_up = false;
	pthread_mutex_unlock(&s->lock);
	vfmig_multifd_destroy(&src->mf);
}

/* ---- the migration ------------------------------------------------------------------------ */

static int switchover(struct vfmig_session *s)
{
	struct vfmig_src *src = s->src;
	int ret;

	pthread_mutex_lock(&s->lock);
	src->switching = true;
	pthread_mutex_unlock(&s->lock);
	ret = vfmig_send_frame(&s->main, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0);
	if (ret) {
		vfmig_fail_send(&s->ctl, "main channel", "send", ret);
		return -1;
	}
	/* Phase 1: every device P2P-quiesced before any device stops.  Downtime starts. */
	src->t_down = vfmig_now_ns();
	src_progress(s, VFMIG_PHASE_STOPCOPY);
	if (vfmig_devset_quiesce(s->devs, s->ndev, &s->ctl))
		return -1;
	/* Phase 2: STOP_COPY and the data, every device in its own thread. */
	if (vfmig_multifd_save_devices(&src->mf, !s->nch))
		return -1;
	vfmig_multifd_join_saves(&src->mf);
	if (vfmig_aborted(&s->ctl))
		return -1;
	vfmig_multifd_finish(&src->mf);
	if (vfmig_aborted(&s->ctl))
		return -1;
	s->st.stopcopy_ns = vfmig_now_ns() - src->t_down;
	src_progress(s, VFMIG_PHASE_LOADING);
	return 0;
}

static void join_all(struct vfmig_session *s)
{
	stop_multifd(s);
	if (s->src->rp_started) {
		pthread_join(s->src->rp_thread, NULL);
		s->src->rp_started = false;
	}
	vfmig_keepalive_stop(&s->ka);
}

static void finish_stats(struct vfmig_session *s)
{
	vfmig_stats_finish(s, atomic_load(&s->src->data_bytes), atomic_load(&s->src->config_bytes),
			   s->st.reorder_peak_bytes);
}

/* Source devices after the state left (or may have left): STOP, never RUNNING. */
static void stop_devices(struct vfmig_session *s)
{
	for (unsigned i = 0; i < s->ndev; i++) {
		struct vfmig_error e = { 0 };
		enum vfmig_state st;

		if (!vfmig_device_get_state(s->devs[i], &st) && st == VFMIG_STATE_STOP)
			continue;
		if (vfmig_device_set_state_keep(s->devs[i], VFMIG_STATE_STOP, &e))
			log_warn(&s->log, "after migration: %s", e.msg);
	}
}

/* Every device back in the state it had before the migration (devset.c). */
static int restore(struct vfmig_session *s, enum vfmig_go why, char *note, size_t len)
{
	return vfmig_devset_restore(s->devs, s->ndev, s->src->orig, why, &s->log, note, len);
}

bool vfmig_test_switchover_decided(struct vfmig_session *s)
{
	bool d;

	pthread_mutex_lock(&s->lock);
	d = s->source && s->src->pc.decided;
	pthread_mutex_unlock(&s->lock);
	return d;
}

uint32_t vfmig_test_init_gen(struct vfmig_session *s, unsigned dev)
{
	uint32_t g;

	pthread_mutex_lock(&s->lock);
	g = s->source && dev < VFMIG_MAX_DEVICES ? s->src->pc.gen[dev] : 0;
	pthread_mutex_unlock(&s->lock);
	return g;
}

enum vfmig_owner vfmig_session_owner(const struct vfmig_session *s)
{
	return s->source ? s->src->owner : vfmig_dst_owner(s);
}

int vfmig_session_resume(struct vfmig_session *s)
{
	char note[512];

	if (!s->source || s->src->owner != VFMIG_OWNER_UNKNOWN)
		return -EPERM;
	if (restore(s, VFMIG_GO_PEER_RESET, note, sizeof(note))) {
		log_err(&s->log, "resume: %s", note + 2);
		return -EIO;
	}
	s->src->owner = VFMIG_OWNER_SOURCE;
	log_info(&s->log, "source devices resumed: the destination does not run the state");
	return 0;
}

enum vfmig_errclass vfmig_session_send(struct vfmig_session *s, const struct vfmig_addr *peer)
{
	struct vfmig_src *src = s->src;
	bool committed = false, peer_reset, peer_committed;
	char note[512];
	int ret;

	s->t_start = vfmig_now_ns();
	if (check_devices(s) || handshake(s, peer))
		goto fail;
	if (vfmig_keepalive_start(&s->ka, &s->ctl, s->o.timeout_ms))
		goto fail;
	if (!vfmig_session_wait_flag(s, &src->ready, "READY (destination devices RESUMING)"))
		goto fail;
	if (start_multifd(s))
		goto fail;
	s->st.setup_ns = vfmig_now_ns() - s->t_start;
	log_info(&s->log,
		 "connected: %u device(s), multifd %s (%u channel(s)), switchover-ack %s, "
		 "precopy-reinit %s, precopy over %s",
		 s->ndev, s->nch ? "on" : "off", s->nch,
		 s->options & VFMIG_OPT_SWITCHOVER_ACK ? "on" : "off",
		 s->options & VFMIG_OPT_PRECOPY_REINIT ? "on" : "off",
		 s->options & VFMIG_OPT_PRECOPY_MULTIFD ? "multifd, devices in parallel" :
							  "the main channel");
	if (s->options & VFMIG_OPT_PRECOPY_MULTIFD)
		src->pc.mf = &src->mf;

	/* Precopy: no device has left RUNNING/PRE_COPY yet. */
	if (vfmig_precopy_start(&src->pc) || vfmig_precopy_run(&src->pc))
		goto fail;
	/* Each device's STOP_COPY chunks continue the sequence of its precopy packets. */
	for (unsigned i = 0; src->pc.mf && i < s->ndev; i++)
		src->mf.first_idx[i] = src->pc.pre_idx[i];
	if (switchover(s))
		goto fail;
	if (!vfmig_session_wait_flag(s, &src->loaded, "LOADED"))
		goto fail;

	/*
	 * The commit point.  A send that failed never delivered the whole frame,
	 * and the destination acts only on a whole one: the state is still ours.
	 */
	pthread_mutex_lock(&s->lock);
	src->committing = true;
	pthread_mutex_unlock(&s->lock);
	ret = vfmig_send_frame(&s->main, VFMIG_F_COMMIT, 0, 0, 0, NULL, 0);
	if (ret) {
		vfmig_fail_send(&s->ctl, "main channel", "send COMMIT", ret);
		goto fail;
	}
	committed = true;
	log_dbg(&s->log, "COMMIT sent: the destination owns the device state");
	if (!vfmig_session_wait_flag(s, &src->complete, "COMPLETE"))
		goto fail;
	s->st.downtime_ns = vfmig_now_ns() - src->t_down;

	/* STOP_COPY -> STOP after the downtime window, as QEMU's save_cleanup does. */
	stop_devices(s);
	join_all(s);
	vfmig_session_close_all(s);
	src->owner = VFMIG_OWNER_DESTINATION;
	finish_stats(s);
	src_progress(s, VFMIG_PHASE_DONE);
	return VFMIG_OK;

fail:
	vfmig_session_send_error(s, 0);
	vfmig_session_shutdown_all(s);
	join_all(s);
	vfmig_session_close_all(s);
	pthread_mutex_lock(&s->lock);
	peer_reset = src->peer_error && (src->peer_error_flags & VFMIG_ERRF_RESET);
	peer_committed = src->peer_error && (src->peer_error_flags & VFMIG_ERRF_COMMITTED);
	if (committed && src->complete) {
		/* COMPLETE raced with a local abort: the destination runs, we are done. */
		pthread_mutex_unlock(&s->lock);
		stop_devices(s);
		log_warn(&s->log, "COMPLETE arrived with a failure: %s; the migration succeeded",
			 vfmig_session_error(s)->msg);
		vfmig_ctl_clear(&s->ctl);
		src->owner = VFMIG_OWNER_DESTINATION;
		finish_stats(s);
		return VFMIG_OK;
	}
	pthread_mutex_unlock(&s->lock);
	if (!committed || peer_reset) {
		src->owner = VFMIG_OWNER_SOURCE;
		if (restore(s, committed ? VFMIG_GO_PEER_RESET : VFMIG_GO_NOT_COMMITTED, note,
			    sizeof(note)))
			vfmig_ctl_amend(&s->ctl, VFMIG_ERR_ROLLBACK,
					"; rollback to the states before the migration failed%s",
					note);
	} else {
		stop_devices(s);
		src->owner = peer_committed ? VFMIG_OWNER_DESTINATION : VFMIG_OWNER_UNKNOWN;
		if (peer_committed)
			vfmig_ctl_amend(&s->ctl, VFMIG_ERR_INCOMPLETE,
					"; the destination received COMMIT and owns the device "
					"state, but not every device started; source devices "
					"left stopped");
		else
			vfmig_ctl_amend(&s->ctl, VFMIG_ERR_OUTCOME_UNKNOWN,
					"; COMMIT was sent and the destination did not confirm: "
					"it may be running; source devices left stopped with "
					"their state (do not resume them unless the destination "
					"is known not to run)");
	}
	finish_stats(s);
	return s->ctl.e.cls ? s->ctl.e.cls : VFMIG_ERR_INTERNAL;
}
