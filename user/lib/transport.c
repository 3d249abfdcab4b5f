// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * transport.c - bounded sends and receives of frames on a connection (the
 * frame codec and rules are in frame.c, sockets are set up in socket.c, TLS
 * sessions in tls.c; the payloads of the control frames and the handshake
 * policy are in wire.c).
 *
 * A receiver validates each header (frame.c) before it allocates anything,
 * so no allocation is ever sized by an unchecked value from the socket:
 * payloads are capped by the negotiated chunk size (at most VFMIG_MAX_CHUNK)
 * or by the type's fixed size.
 *
 * Every wait is bounded.  A connection bound to a session
 * (vfmig_conn_bound) waits in slices of at most 100 ms: it gives up when the
 * session's abort flag is set, or when no byte moved for the session
 * timeout; TCP keepalive and TCP_USER_TIMEOUT bound what the kernel does.
 * A DEVICE_STATE payload is admitted (reorder budget reserved) from its
 * header before its buffer is allocated (struct vfmig_admit).
 *
 * Under TLS (vfmig_conn_tls) the same frames travel in TLS records, sent
 * and received without blocking and waited for in the same slices: a
 * frame's header goes out in one record with its first payload bytes.  A
 * TLS send that fails inside a frame marks the connection broken: GnuTLS
 * may hold a record of it, and nothing else may follow on that stream.
 *
 * Locks: conn.send_lock serialises writers of one socket and is a leaf (it
 * is never held while taking another lock).  Receivers are single-threaded
 * per socket by construction.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tls.h"
#include "vfmig_internal.h"

/* ---- connections ------------------------------------------------------------ */

#define SLICE_MS 100
#define FINAL_MS 250

int vfmig_conn_init(struct vfmig_conn *c, int fd, unsigned id, struct vfmig_channel_stats *st)
{
	int ret = pthread_mutex_init(&c->send_lock, NULL);

	if (ret)
		return -ret;
	c->fd = fd;
	c->id = id;
	c->stats = st;
	c->abort = NULL;
	c->timeout_ms = 0;
	atomic_init(&c->last_tx_ns, vfmig_now_ns());
	atomic_init(&c->last_rx_ns, 0);
	atomic_init(&c->ended, false);
	c->tls = NULL;
	c->tx_broken = false;
	c->deadline_ns = 0;
	return 0;
}

void vfmig_conn_bound(struct vfmig_conn *c, const atomic_bool *abort, unsigned timeout_ms)
{
	c->abort = abort;
	c->timeout_ms = timeout_ms;
}

void vfmig_conn_destroy(struct vfmig_conn *c)
{
	atomic_store(&c->ended, true);
	vfmig_tls_sess_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	pthread_mutex_destroy(&c->send_lock);
}

int vfmig_conn_tls(struct vfmig_conn *c, const struct vfmig_tls *t, const char *host,
		   unsigned timeout_ms, bool *plain, char *why, size_t whylen)
{
	return vfmig_tls_handshake(t, c->fd, host, timeout_ms, c->abort, &c->tls, plain, why,
				   whylen);
}

bool vfmig_conn_pending(struct vfmig_conn *c)
{
	return c->tls && vfmig_tls_pending(c->tls);
}

void vfmig_conn_close_write(struct vfmig_conn *c)
{
	if (c->fd < 0)
		return;
	if (c->tls && !c->tx_broken)
		vfmig_tls_bye(c->tls);
	shutdown(c->fd, SHUT_WR);
}

void vfmig_conn_shutdown(struct vfmig_conn *c)
{
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
}

int vfmig_wait_fd(int fd, short events, int timeout_ms, const atomic_bool *abort)
{
	uint64_t deadline =
		timeout_ms < 0 ? UINT64_MAX : vfmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		uint64_t now = vfmig_now_ns();
		int slice, r;

		if (abort && atomic_load(abort))
			return -ECANCELED;
		if (now >= deadline)
			return -ETIMEDOUT;
		slice = deadline == UINT64_MAX ? -1 : (int)((deadline - now + 999999) / 1000000);
		if (abort && (slice < 0 || slice > SLICE_MS))
			slice = SLICE_MS;
		r = poll(&p, 1, slice);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0)
			return 0;
	}
}

/* All of @buf in TLS records; -EAGAIN waits for the socket and repeats the same call. */
static int tls_write(struct vfmig_conn *c, const uint8_t *buf, size_t len, int tmo_ms,
		     const atomic_bool *abort)
{
	uint64_t progress = vfmig_now_ns();
	size_t off = 0;

	while (off < len) {
		ssize_t n;

		if (abort && atomic_load(abort))
			return -ECANCELED;
		n = vfmig_tls_send(c->tls, buf + off, len - off);
		/* Non-fatal GnuTLS errors: again, but never past the no-progress bound. */
		if (n == -EINTR && tmo_ms > 0 &&
		    vfmig_now_ns() - progress >= (uint64_t)tmo_ms * 1000000ull)
			return -ETIMEDOUT;
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			int r = vfmig_wait_fd(c->fd, POLLOUT, tmo_ms > 0 ? tmo_ms : -1, abort);

			if (r)
				return r;
			continue;
		}
		if (n < 0)
			return (int)n;
		off += (size_t)n;
		progress = vfmig_now_ns();
	}
	return 0;
}

/*
 * A frame under TLS: the header and the first payload bytes in one record,
 * the rest in full records.  Whole or error; after an error inside the frame
 * the connection is broken for every later send.
 */
static int send_tls(struct vfmig_conn *c, const uint8_t hdr[VFMIG_HDR_LEN], const void *payload,
		    uint32_t len, int tmo_ms, const atomic_bool *abort)
{
	uint8_t *rec = vfmig_tls_record_buf(c->tls);
	size_t first = MIN((size_t)len, (size_t)VFMIG_TLS_RECORD - VFMIG_HDR_LEN);
	int ret;

	if (c->tx_broken)
		return -EPIPE;
	memcpy(rec, hdr, VFMIG_HDR_LEN);
	if (first)
		memcpy(rec + VFMIG_HDR_LEN, payload, first);
	ret = tls_write(c, rec, VFMIG_HDR_LEN + first, tmo_ms, abort);
	if (!ret && len > first)
		ret = tls_write(c, (const uint8_t *)payload + first, len - first, tmo_ms, abort);
	if (ret)
		c->tx_broken = true;
	return ret;
}

/*
 * Send one frame with the send lock held.  @tmo_ms: give up when no byte
 * moved for that long (0: block, the connection is not bounded); @abort: give
 * up when set (NULL: never).  @optional: a frame that may be dropped (a
 * PING): -EAGAIN at once unless the socket has room for it now.
 */
static int send_locked(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
		       uint32_t idx, const void *payload, uint32_t len, int tmo_ms,
		       const atomic_bool *abort, bool optional)
{
	uint8_t hdr[VFMIG_HDR_LEN];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = VFMIG_HDR_LEN },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	/* Only data packets are counted (and timed) in the channel statistics. */
	bool counted = c->stats && (type == VFMIG_F_DEVICE_STATE || type == VFMIG_F_PRECOPY_DATA);
	bool bounded = tmo_ms > 0;
	uint64_t t0 = counted ? vfmig_now_ns() : 0;
	size_t total = VFMIG_HDR_LEN + (size_t)len;

	if (c->fd < 0)
		return -EBADF;
	if (optional) {
		/*
		 * Writable means room for far more than a PING (a third of the
		 * buffer for TCP, three quarters for UNIX sockets): never start a
		 * frame that cannot finish now.
		 */
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };

		if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))
			return -EAGAIN;
	}
	vfmig_hdr_seal(hdr, c->tls != NULL, type, flags, device, idx, payload, len);
	if (c->tls) {
		int ret = send_tls(c, hdr, payload, len, tmo_ms, abort);

		if (ret)
			return ret;
		total = 0;
	}
	while (total) {
		ssize_t n;

		if (abort && atomic_load(abort))
			return -ECANCELED;
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | (bounded ? MSG_DONTWAIT : 0));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && bounded && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = vfmig_wait_fd(c->fd, POLLOUT, tmo_ms, abort);

			if (r)
				return r;
			continue;
		}
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
		total -= (size_t)n;
		while (n > 0 && msg.msg_iovlen) {
			size_t c0 = MIN((size_t)n, msg.msg_iov[0].iov_len);

			msg.msg_iov[0].iov_base = (uint8_t *)msg.msg_iov[0].iov_base + c0;
			msg.msg_iov[0].iov_len -= c0;
			n -= (ssize_t)c0;
			if (!msg.msg_iov[0].iov_len) {
				msg.msg_iov++;
				msg.msg_iovlen--;
			}
		}
	}
	atomic_store(&c->last_tx_ns, vfmig_now_ns());
	if (counted) {
		c->stats->bytes += len;
		c->stats->packets++;
		c->stats->busy_ns += vfmig_now_ns() - t0;
	}
	return 0;
}

/* @last: the connection ends with this frame (set under the lock: no PING follows it). */
static int send_frame(struct vfmig_conn *c, bool last, uint16_t type, uint32_t flags,
		      uint32_t device, uint32_t idx, const void *payload, uint32_t len)
{
	int ret;

	pthread_mutex_lock(&c->send_lock);
	if (last)
		atomic_store(&c->ended, true);
	ret = send_locked(c, type, flags, device, idx, payload, len, (int)c->timeout_ms, c->abort,
			  false);
	pthread_mutex_unlock(&c->send_lock);
	return ret;
}

int vfmig_send_frame(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
		     uint32_t idx, const void *payload, uint32_t len)
{
	return send_frame(c, false, type, flags, device, idx, payload, len);
}

int vfmig_send_frame_last(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
			  uint32_t idx, const void *payload, uint32_t len)
{
	return send_frame(c, true, type, flags, device, idx, payload, len);
}

int vfmig_send_frame_final(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
			   uint32_t idx, const void *payload, uint32_t len)
{
	uint64_t deadline = vfmig_now_ns() + FINAL_MS * 1000000ull, now;
	int ret;

	/*
	 * Another sender may be stuck on a dead peer (it gives up within 100 ms
	 * of the abort): wait for it, then for the socket, FINAL_MS in all.
	 */
	for (;;) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };

		if (!pthread_mutex_trylock(&c->send_lock))
			break;
		if (vfmig_now_ns() >= deadline)
			return -EBUSY;
		nanosleep(&ts, NULL); /* bounded retry, not synchronisation */
	}
	now = vfmig_now_ns();
	ret = now >= deadline ? -ETIMEDOUT :
				send_locked(c, type, flags, device, idx, payload, len,
					    (int)((deadline - now) / 1000000) + 1, NULL, false);
	pthread_mutex_unlock(&c->send_lock);
	return ret;
}

void vfmig_conn_ping(struct vfmig_conn *c)
{
	int ret;

	if (atomic_load(&c->ended) || pthread_mutex_trylock(&c->send_lock))
		return; /* a frame is being sent: the peer hears from us anyway */
	/* A peer that stopped reading is not waited for here: its timeout is the reader's. */
	ret = atomic_load(&c->ended) ?
		      0 :
		      send_locked(c, VFMIG_F_PING, 0, 0, 0, NULL, 0, FINAL_MS, NULL, true);
	/* Half a PING on the wire would corrupt the next frame: end the stream instead. */
	if (ret && ret != -EAGAIN)
		shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&c->send_lock);
}

/*
 * 0: all read; 1: end of stream after *got bytes; <0: -errno, -ETIMEDOUT (no
 * byte for timeout_ms; < 0 waits forever), -ECANCELED.  poll() only when
 * nothing is queued: a frame that is already (partly) there costs no extra
 * system call.
 */
struct rx {
	int fd;
	struct vfmig_tls_sess *tls; /* NULL: plain */
	uint64_t deadline_ns;	    /* 0: none */
};

/* One read: >= 0 bytes, or -errno (-EAGAIN: nothing now). */
static ssize_t rx_some(const struct rx *io, void *buf, size_t len, bool dontwait)
{
	ssize_t n;

	if (io->tls)
		return vfmig_tls_recv(io->tls, buf, len);
	n = recv(io->fd, buf, len, dontwait ? MSG_DONTWAIT : 0);
	return n < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : n;
}

static int read_full(const struct rx *io, void *buf, size_t len, int timeout_ms,
		     const atomic_bool *abort, size_t *got)
{
	bool bounded = timeout_ms >= 0 || abort || io->tls || io->deadline_ns;
	uint64_t progress = vfmig_now_ns();

	*got = 0;
	while (*got < len) {
		ssize_t n = rx_some(io, (uint8_t *)buf + *got, len - *got, bounded);

		/* Non-fatal GnuTLS errors (a flood of them): again, within every bound. */
		if (n == -EINTR) {
			uint64_t now = vfmig_now_ns();

			if (abort && atomic_load(abort))
				return -ECANCELED;
			if ((io->deadline_ns && now >= io->deadline_ns) ||
			    (timeout_ms >= 0 &&
			     now - progress >= (uint64_t)timeout_ms * 1000000ull))
				return -ETIMEDOUT;
			continue;
		}
		if (n == -EAGAIN && bounded) {
			int tmo = timeout_ms, r;

			if (io->deadline_ns) {
				uint64_t now = vfmig_now_ns();
				int left = now < io->deadline_ns ?
						   (int)((io->deadline_ns - now) / 1000000) + 1 :
						   0;

				if (!left)
					return -ETIMEDOUT;
				tmo = tmo < 0 ? left : MIN(tmo, left);
			}
			r = vfmig_wait_fd(io->fd, POLLIN, tmo, abort);
			if (r)
				return r;
			continue;
		}
		if (n < 0)
			return n == -EAGAIN ? -ETIMEDOUT : (int)n;
		if (n == 0)
			return 1;
		*got += (size_t)n;
		progress = vfmig_now_ns();
	}
	return 0;
}

void vfmig_frame_free(struct vfmig_frame *f)
{
	vfmig_payload_free(f->payload, f->h.length);
	f->payload = NULL;
}

static enum vfmig_ferr io_error(const struct rx *io, int ret, int timeout_ms, int *err_no,
				char *why, size_t whylen)
{
	if (ret == -ECANCELED) {
		*err_no = ECANCELED;
		snprintf(why, whylen, "cancelled");
		return VFMIG_FERR_CANCELLED;
	}
	if (ret == -ETIMEDOUT) {
		*err_no = ETIMEDOUT;
		snprintf(why, whylen, "nothing received for %d ms", timeout_ms);
		return VFMIG_FERR_TIMEOUT;
	}
	*err_no = -ret;
	if (io->tls)
		snprintf(why, whylen, "%s", vfmig_tls_error(io->tls));
	else
		snprintf(why, whylen, "recv: %s", strerror(-ret));
	return VFMIG_FERR_IO;
}

static enum vfmig_ferr recv_frame(const struct rx *io, const struct vfmig_limits *lim,
				  int timeout_ms, const atomic_bool *abort,
				  const struct vfmig_admit *admit, struct vfmig_frame *f,
				  int *err_no, char *why, size_t whylen)
{
	uint8_t hdr[VFMIG_HDR_LEN];
	enum vfmig_ferr fe;
	uint64_t t0;
	size_t got;
	int ret;

	*err_no = 0;
	f->payload = NULL;
	f->rx_ns = 0;
	memset(&f->h, 0, sizeof(f->h));
	ret = read_full(io, hdr, sizeof(hdr), timeout_ms, abort, &got);
	if (ret == 1 && got == 0) {
		snprintf(why, whylen, "connection closed by peer");
		return VFMIG_FERR_EOF;
	}
	if (ret == 1) {
		snprintf(why, whylen, "stream ended inside a frame header (%zu of %d bytes)", got,
			 VFMIG_HDR_LEN);
		return VFMIG_FERR_TRUNC_HEADER;
	}
	if (ret < 0)
		return io_error(io, ret, timeout_ms, err_no, why, whylen);
	/* Throughput counts transfer time, not the wait for a frame to start. */
	t0 = vfmig_now_ns();
	vfmig_hdr_unpack(hdr, &f->h);
	fe = vfmig_hdr_validate(&f->h, lim, why, whylen);
	if (fe) {
		f->h.length = 0;
		return fe;
	}
	/* Reserve before allocating: the budget bounds what is held, not what is queued. */
	if (admit && admit->admit) {
		ret = admit->admit(admit->arg, &f->h, why, whylen);
		if (ret) {
			*err_no = -ret;
			f->h.length = 0;
			return ret == -ECANCELED ? VFMIG_FERR_CANCELLED : VFMIG_FERR_REFUSED;
		}
	}
	if (f->h.length) {
		/* Bounded by vfmig_hdr_validate(): at most max_chunk or the type's size. */
		f->payload = vfmig_payload_alloc(f->h.length);
		if (!f->payload) {
			*err_no = ENOMEM;
			snprintf(why, whylen, "cannot allocate %u bytes", f->h.length);
			fe = VFMIG_FERR_NOMEM;
			goto refuse;
		}
		ret = read_full(io, f->payload, f->h.length, timeout_ms, abort, &got);
		if (ret) {
			vfmig_frame_free(f);
			if (ret == 1) {
				snprintf(why, whylen,
					 "%s: stream ended inside the payload (%zu of %u bytes)",
					 vfmig_ftype_name(f->h.type), got, f->h.length);
				fe = VFMIG_FERR_TRUNC_PAYLOAD;
			} else {
				fe = io_error(io, ret, timeout_ms, err_no, why, whylen);
			}
			goto refuse;
		}
	}
	f->rx_ns = vfmig_now_ns() - t0;
	if (vfmig_frame_checksum_on(io->tls != NULL, hdr, f->payload, f->h.length) !=
	    f->h.checksum) {
		vfmig_frame_free(f);
		snprintf(why, whylen, "%s device %u idx %u: checksum mismatch",
			 vfmig_ftype_name(f->h.type), f->h.device, f->h.idx);
		fe = VFMIG_FERR_BAD_CHECKSUM;
		goto refuse;
	}
	return VFMIG_FERR_NONE;
refuse:
	if (admit && admit->release)
		admit->release(admit->arg, &f->h);
	f->h.length = 0;
	return fe;
}

enum vfmig_ferr vfmig_conn_recv(struct vfmig_conn *c, const struct vfmig_limits *lim,
				const struct vfmig_admit *admit, struct vfmig_frame *f, int *err_no,
				char *why, size_t whylen)
{
	struct rx io = { .fd = c->fd, .tls = c->tls, .deadline_ns = c->deadline_ns };
	enum vfmig_ferr fe = recv_frame(&io, lim, c->timeout_ms ? (int)c->timeout_ms : -1, c->abort,
					admit, f, err_no, why, whylen);

	if (fe == VFMIG_FERR_NONE)
		atomic_store(&c->last_rx_ns, vfmig_now_ns());
	return fe;
}

enum vfmig_ferr vfmig_conn_recv_final(struct vfmig_conn *c, const struct vfmig_limits *lim,
				      int timeout_ms, struct vfmig_frame *f, int *err_no, char *why,
				      size_t whylen)
{
	struct rx io = { .fd = c->fd, .tls = c->tls };

	return recv_frame(&io, lim, timeout_ms, NULL, NULL, f, err_no, why, whylen);
}

enum vfmig_ferr vfmig_recv_frame(int fd, const struct vfmig_limits *lim, int timeout_ms,
				 struct vfmig_frame *f, int *err_no, char *why, size_t whylen)
{
	struct rx io = { .fd = fd };

	return recv_frame(&io, lim, timeout_ms, NULL, NULL, f, err_no, why, whylen);
}
