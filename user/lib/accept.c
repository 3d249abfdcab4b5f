// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * accept.c - the destination's front door: which connections become the
 * session's main channel and its multifd channels, and which are strangers.
 *
 * Accepted connections are probed together, never one after the other: a
 * poll set of up to MAX_PENDING connections, each with its own deadline
 * (options.accept_ms, a few seconds), whose TLS handshakes and first frames
 * are driven without blocking while the listener keeps accepting.  When
 * the set is full the oldest probe is dropped.  A probe passes with the TLS
 * handshake (when the session has credentials), then a whole, valid first
 * frame: a HELLO that decodes (main channel) or a CHANNEL_HELLO carrying
 * the session's token (multifd channel; the token is the session id the
 * source chose at random and sent in its HELLO, inside TLS).  A connection
 * that fails TLS, sends garbage, an undecodable HELLO or a wrong token, or
 * says nothing in time is a stranger: it is closed and logged, and the
 * destination goes on waiting for the real source.  A stranger never fails
 * the session, however many come; it costs the real source at most one
 * poll slice.  The wait is bounded by --timeout alone (restarted by each
 * channel that joins); refusals are counted for the log and the message.
 *
 * Two plain/TLS mix-ups get a plain-text answer, so that the peer can say
 * why: a plain vfio-mig source at a TLS destination, and a TLS source at a
 * plain destination, each receive a HELLO_ACK refusal (VFMIG_ERR_AUTH).
 *
 * While the channels connect, the main channel is watched: a source that
 * fails meanwhile says ERROR there, and the destination hears it at once.
 *
 * Locks: none of its own (the session's connections are not shared yet).
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session.h"
#include "tls.h"

#define MAX_PENDING 16 /* connections probed at once */
#define LOG_REFUSED 10 /* strangers logged one by one; then every 100th */
#define LINGER_MS 250  /* a refused TLS peer's time to read our alert */

/* A connection being probed. */
struct pend {
	int fd;
	uint64_t born, deadline;
	struct vfmig_tls_sess *tls; /* NULL: plain */
	bool hs;		    /* the TLS handshake is under way */
	bool linger;		    /* refused: read until it closes or the deadline */
	bool again;		    /* can progress without waiting for the socket */
	short events;		    /* what it waits for */
	bool in_payload;
	size_t got; /* bytes of the header, then of the payload */
	uint8_t hdr[VFMIG_HDR_LEN];
	struct vfmig_frame_hdr h;
	uint8_t *payload;
};

struct front {
	struct vfmig_session *s;
	int lfd, wakefd;
	uint64_t deadline; /* --timeout without the real source */
	unsigned probe_ms;
	uint16_t want;	  /* VFMIG_F_HELLO or VFMIG_F_CHANNEL_HELLO */
	const char *what; /* "the source", "a multifd channel" */
	unsigned refused;
	char last[200]; /* why the last stranger was refused */
	struct pend p[MAX_PENDING];
	unsigned np;
};

/* "10.0.0.5:40122" or "a local socket", for messages. */
static void peer_str(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char h[NI_MAXHOST], p[NI_MAXSERV];

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) || ss.ss_family == AF_UNIX ||
	    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
			NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(buf, len, "a local socket");
	else
		snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
}

static void pend_close(struct pend *p)
{
	vfmig_tls_sess_free(p->tls);
	vfmig_payload_free(p->payload, p->h.length);
	if (p->fd >= 0)
		close(p->fd);
	*p = (struct pend){ .fd = -1 };
}

/* Remove probe @i from the set (closed). */
static void pend_drop(struct front *fr, unsigned i)
{
	pend_close(&fr->p[i]);
	fr->p[i] = fr->p[--fr->np];
	fr->p[fr->np] = (struct pend){ .fd = -1 };
}

/* Read what the peer sent, without waiting; false at its end (or an error). */
static bool drain(int fd)
{
	uint8_t buf[4096];

	for (unsigned i = 0; i < 16; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return false;
		if (n < 0)
			break;
	}
	return true;
}

/* Log and count a stranger (@i still in the set). */
static void note(struct front *fr, unsigned i, const char *fmt, va_list ap)
{
	char from[80];

	peer_str(fr->p[i].fd, from, sizeof(from));
	vsnprintf(fr->last, sizeof(fr->last), fmt, ap);
	fr->refused++;
	if (fr->refused <= LOG_REFUSED || !(fr->refused % 100))
		log_warn(&fr->s->log, "refused a connection from %s (%u so far): %s", from,
			 fr->refused, fr->last);
}

/* A stranger: closed, logged, counted; never a failure of the session. */
static void refuse(struct front *fr, unsigned i, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	note(fr, i, fmt, ap);
	va_end(ap);
	pend_drop(fr, i);
}

/*
 * A stranger refused with a TLS alert: kept LINGER_MS more, reading what it
 * still sends, so that our close does not reset the connection and destroy
 * the alert before it reads it (it would see a hang-up, not a refusal).
 */
static void refuse_linger(struct front *fr, unsigned i, const char *fmt, ...)
{
	struct pend *p = &fr->p[i];
	va_list ap;

	va_start(ap, fmt);
	note(fr, i, fmt, ap);
	va_end(ap);
	vfmig_tls_sess_free(p->tls);
	p->tls = NULL;
	p->hs = false;
	p->again = false;
	p->linger = true;
	p->events = POLLIN;
	p->deadline = MIN(p->deadline, vfmig_now_ns() + LINGER_MS * 1000000ull);
	shutdown(p->fd, SHUT_WR);
}

static int wait_failed(struct front *fr, int err)
{
	struct vfmig_session *s = fr->s;

	if (err == -ECANCELED)
		return -1; /* the error is recorded */
	vfmig_fail(&s->ctl, err == -ETIMEDOUT ? VFMIG_ERR_TIMEOUT : VFMIG_ERR_TRANSPORT, -err, -1,
		   "listen", "%s did not connect within %u ms: %s%s%u%s%s%s", fr->what,
		   s->o.timeout_ms, strerror(-err), fr->refused ? " (refused " : "", fr->refused,
		   fr->refused ? " connections; the last: " : "", fr->refused ? fr->last : "",
		   fr->refused ? ")" : "");
	return -1;
}

/* A frame on the main channel while channels connect: only PINGs are expected. */
static int main_frame(struct vfmig_session *s)
{
	struct vfmig_frame f;
	enum vfmig_ferr fe;
	char why[256];
	int err_no;

	fe = vfmig_conn_recv(&s->main, &s->lim, NULL, &f, &err_no, why, sizeof(why));
	if (fe) {
		vfmig_fail_frame(&s->ctl, "main channel (handshake)", fe, err_no, why);
		return -1;
	}
	if (f.h.type == VFMIG_F_ERROR)
		vfmig_fail_remote(s, &f);
	else if (f.h.type != VFMIG_F_PING)
		vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
			   "unexpected frame type %u while the channels connect", f.h.type);
	vfmig_frame_free(&f);
	return vfmig_aborted(&s->ctl) ? -1 : 0;
}

/*
 * A HELLO_ACK refusal for a peer that can say why (a plain/TLS mix-up, a
 * HELLO that does not decode): one attempt, never a wait.
 */
static void tell(struct pend *p, uint32_t cls, const char *msg)
{
	uint8_t pl[VFMIG_HELLO_ACK_FIXED + VFMIG_MSG_MAX];
	uint8_t fb[VFMIG_HDR_LEN + sizeof(pl)];
	uint32_t n = vfmig_report_encode(pl, cls, 0, 0, msg);
	size_t len = vfmig_frame_encode_on(p->tls && !p->hs, fb, VFMIG_F_HELLO_ACK, 0, 0, 0, pl, n);

	if (p->tls && !p->hs) {
		if (vfmig_tls_send(p->tls, fb, len) < 0) {
			/* best effort: the connection is closed next */
		}
	} else if (send(p->fd, fb, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* best effort */
	}
}

/* One read without waiting: > 0 bytes, 0 end, -EAGAIN, -EINTR, -errno. */
static ssize_t pend_read(struct pend *p, void *buf, size_t len)
{
	ssize_t n;

	if (p->tls)
		return vfmig_tls_recv(p->tls, buf, len);
	n = recv(p->fd, buf, len, MSG_DONTWAIT);
	return n < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : n;
}

/* The whole header is in: validate it; 0, or -1 with why (a stranger). */
static int pend_header(struct front *fr, struct pend *p, char *why, size_t whylen)
{
	const struct vfmig_limits pre = { .ndevices = 0, .max_chunk = 0 };
	enum vfmig_ferr fe;
	char w[200];

	vfmig_hdr_unpack(p->hdr, &p->h);
	fe = vfmig_hdr_validate(&p->h, &pre, w, sizeof(w));
	if (fe == VFMIG_FERR_BAD_MAGIC && !fr->s->o.tls && (p->h.magic & 0xffff) == 0x0316) {
		tell(p, VFMIG_ERR_AUTH,
		     "this destination does not use TLS: start it with "
		     "--tls-psk or --tls-creds too, or the source without");
		snprintf(why, whylen, "a TLS client, and this destination listens without TLS");
	} else if (fe) {
		snprintf(why, whylen, "%s: %s", vfmig_ferr_name(fe), w);
	} else if (p->h.type != fr->want) {
		snprintf(why, whylen, "its first frame is %s, not %s", vfmig_ftype_name(p->h.type),
			 vfmig_ftype_name(fr->want));
		fe = VFMIG_FERR_BAD_TYPE;
	}
	if (fe) {
		p->h.length = 0;
		return -1;
	}
	p->in_payload = true;
	p->got = 0;
	/* Bounded by vfmig_hdr_validate(): a HELLO or a CHANNEL_HELLO at most. */
	if (p->h.length && !(p->payload = vfmig_payload_alloc(p->h.length))) {
		p->h.length = 0;
		snprintf(why, whylen, "out of memory for its first frame");
		return -1;
	}
	return 0;
}

/*
 * Drive probe @p as far as it goes without waiting: 1 with its first frame
 * in *f, 0 when it waits (p->events or p->again), -1 a stranger (why),
 * -2 a stranger refused with a TLS alert (why), -3 a lingering one closed.
 */
static int pend_step(struct front *fr, struct pend *p, struct vfmig_frame *f, char *why,
		     size_t whylen)
{
	p->again = false;
	if (p->linger)
		return drain(p->fd) ? 0 : -3;
	for (unsigned round = 0; round < 8; round++) {
		size_t want = p->in_payload ? p->h.length : VFMIG_HDR_LEN;
		uint8_t *buf = p->in_payload ? p->payload : p->hdr;
		ssize_t n;

		if (p->hs) {
			bool plain;
			int r = vfmig_tls_step(p->tls, &p->events, &plain, why, whylen);

			if (r == -EAGAIN)
				return 0;
			if (r == -EINTR)
				break;
			if (r && plain)
				tell(p, VFMIG_ERR_AUTH,
				     "this destination requires TLS: start the "
				     "source with --tls-psk or --tls-creds");
			if (r)
				return r == -EACCES ? -2 : -1; /* -2: an alert went out */
			p->hs = false;
			continue;
		}
		if (p->got < want) {
			n = pend_read(p, buf + p->got, want - p->got);
			if (n == -EAGAIN) {
				p->events = POLLIN;
				return 0;
			}
			if (n == -EINTR)
				break;
			if (n <= 0) {
				snprintf(why, whylen, "%s",
					 n == 0 ? "it closed the connection" :
					 p->tls ? vfmig_tls_error(p->tls) :
						  strerror((int)-n));
				return -1;
			}
			p->got += (size_t)n;
			if (p->got < want)
				continue;
		}
		if (!p->in_payload) {
			if (pend_header(fr, p, why, whylen))
				return -1;
			continue;
		}
		if (vfmig_frame_checksum_on(p->tls != NULL, p->hdr, p->payload, p->h.length) !=
		    p->h.checksum) {
			snprintf(why, whylen, "%s: checksum mismatch", vfmig_ftype_name(p->h.type));
			return -1;
		}
		f->h = p->h;
		f->payload = p->payload;
		f->rx_ns = 0;
		p->payload = NULL;
		p->h.length = 0;
		return 1;
	}
	p->again = true; /* more to do now: the next pass, after the others */
	return 0;
}

/* A new connection from the listener into the probe set (the oldest dropped when full). */
static void admit(struct front *fr, int fd)
{
	struct vfmig_session *s = fr->s;
	uint64_t now = vfmig_now_ns();
	struct pend *p;
	char why[256];

	if (fr->np == MAX_PENDING) {
		unsigned old = 0;

		for (unsigned i = 1; i < fr->np; i++)
			old = fr->p[i].born < fr->p[old].born ? i : old;
		refuse(fr, old, "dropped: %u connections were being probed at once", MAX_PENDING);
	}
	p = &fr->p[fr->np++];
	*p = (struct pend){ .fd = fd, .born = now, .events = POLLIN, .again = true };
	p->deadline = now + (uint64_t)fr->probe_ms * 1000000ull;
	if (vfmig_sock_setup(fd, s->o.timeout_ms)) {
		refuse(fr, fr->np - 1, "socket setup: %s", strerror(errno));
		return;
	}
	if (s->o.tls) {
		if (vfmig_tls_start(s->o.tls, fd, NULL, &p->tls, why, sizeof(why)))
			refuse(fr, fr->np - 1, "%s", why);
		else
			p->hs = true;
	}
}

/* Time to wait in poll(): to the nearest deadline, 100 ms at most, 0 when work waits. */
static int poll_ms(struct front *fr, bool busy, uint64_t now)
{
	uint64_t until = fr->deadline;

	if (busy)
		return 0;
	for (unsigned i = 0; i < fr->np; i++) {
		if (fr->p[i].again)
			return 0;
		until = MIN(until, fr->p[i].deadline);
	}
	return until <= now ? 0 : (int)MIN((until - now + 999999) / 1000000, 100ull);
}

/*
 * The next connection whose probe passes: 0 with its socket in *fd, its TLS
 * session in *tls and its first frame in *f; -1 on failure (recorded).
 * Probes still under way stay in @fr for the next call.
 */
static int next_conn(struct front *fr, bool watch_main, int *fd, struct vfmig_tls_sess **tls,
		     struct vfmig_frame *f)
{
	struct vfmig_session *s = fr->s;

	for (;;) {
		struct pollfd pf[3 + MAX_PENDING];
		bool busy = watch_main && vfmig_conn_pending(&s->main);
		uint64_t now = vfmig_now_ns();
		unsigned np = fr->np;
		char why[256];
		int r;

		if (vfmig_aborted(&s->ctl))
			return wait_failed(fr, -ECANCELED);
		if (now >= fr->deadline)
			return wait_failed(fr, -ETIMEDOUT);
		for (unsigned i = 0; i < fr->np;) {
			if (now < fr->p[i].deadline) {
				i++;
				continue;
			}
			if (fr->p[i].linger) {
				pend_drop(fr, i);
				continue;
			}
			refuse(fr, i, "%s within %u ms",
			       fr->p[i].hs ? "no TLS handshake" : "no whole first frame",
			       fr->probe_ms);
		}
		np = fr->np;
		pf[0] = (struct pollfd){ .fd = fr->lfd, .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = fr->wakefd, .events = POLLIN };
		pf[2] = (struct pollfd){ .fd = watch_main ? s->main.fd : -1, .events = POLLIN };
		for (unsigned i = 0; i < np; i++)
			pf[3 + i] = (struct pollfd){ .fd = fr->p[i].fd, .events = fr->p[i].events };
		r = poll(pf, 3 + np, poll_ms(fr, busy, now));
		if (r < 0 && errno != EINTR)
			return wait_failed(fr, -errno);
		if (r < 0)
			continue;
		if (fr->wakefd >= 0 && pf[1].revents)
			return wait_failed(fr, -ECANCELED);
		if (busy || (watch_main && pf[2].revents)) {
			if (main_frame(s))
				return -1;
		}
		/* Every probe that can move, from the last: a refusal moves the last into i. */
		for (unsigned i = np; i-- > 0;) {
			struct pend *p = &fr->p[i];

			if (!p->again && !pf[3 + i].revents)
				continue;
			r = pend_step(fr, p, f, why, sizeof(why));
			if (r == -3) {
				pend_drop(fr, i); /* a refused peer closed: counted already */
			} else if (r == -2) {
				refuse_linger(fr, i, "%s", why);
			} else if (r < 0) {
				refuse(fr, i, "%s", why);
			} else if (r > 0) {
				*fd = p->fd;
				*tls = p->tls;
				p->fd = -1;
				p->tls = NULL;
				pend_drop(fr, i);
				return 0;
			}
		}
		if (pf[0].revents) {
			int nfd = accept4(fr->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (nfd >= 0)
				admit(fr, nfd);
			else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
				log_warn(&s->log, "accept: %s", strerror(errno));
		}
	}
}

static void front_fini(struct front *fr)
{
	while (fr->np)
		pend_drop(fr, fr->np - 1);
}

static void front_init(struct front *fr, struct vfmig_session *s, int lfd, int wakefd,
		       uint16_t want, const char *what)
{
	*fr = (struct front){ .s = s, .lfd = lfd, .wakefd = wakefd, .want = want, .what = what };
	fr->probe_ms = MIN(s->o.accept_ms ? s->o.accept_ms : 5000, s->o.timeout_ms);
	fr->deadline = vfmig_now_ns() + (uint64_t)s->o.timeout_ms * 1000000ull;
	for (unsigned i = 0; i < MAX_PENDING; i++)
		fr->p[i].fd = -1;
}

/* Move an accepted socket and its TLS session into the session's @dst. */
static void adopt(struct vfmig_conn *dst, int fd, struct vfmig_tls_sess *tls)
{
	dst->fd = fd;
	dst->tls = tls;
}

int vfmig_accept_main(struct vfmig_session *s, int lfd, int wakefd, struct vfmig_hello *hello)
{
	struct vfmig_tls_sess *tls;
	struct front *fr = malloc(sizeof(*fr));
	int fd, ret = -1, r;

	if (!fr) {
		vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "destination", "out of memory");
		return -1;
	}
	front_init(fr, s, lfd, wakefd, VFMIG_F_HELLO, "the source");
	for (;;) {
		struct vfmig_frame f;
		char why[256];

		if (next_conn(fr, false, &fd, &tls, &f))
			goto out;
		/* A HELLO that does not decode is a stranger's too. */
		r = vfmig_hello_decode(f.payload, f.h.length, hello, why, sizeof(why));
		vfmig_frame_free(&f);
		if (!r)
			break;
		/* Back into the set for the refusal (it is the newest: never dropped for room). */
		fr->p[fr->np++] = (struct pend){ .fd = fd, .tls = tls };
		tell(&fr->p[fr->np - 1], VFMIG_ERR_PROTOCOL, why);
		refuse(fr, fr->np - 1, "a HELLO that does not decode: %s", why);
	}
	r = vfmig_session_add_conn(s, &s->main, -1, 0);
	if (r) {
		vfmig_tls_sess_free(tls);
		close(fd);
		vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, -r, -1, "main channel", "mutex");
		goto out;
	}
	adopt(&s->main, fd, tls);
	s->main_up = true;
	if (s->o.tls && tls) {
		snprintf(s->st.tls_cipher, sizeof(s->st.tls_cipher), "%s", vfmig_tls_cipher(tls));
		log_info(&s->log, "the source authenticated (TLS 1.3, %s, %s)",
			 vfmig_tls_kind(s->o.tls), s->st.tls_cipher);
	}
	ret = 0;
out:
	front_fini(fr);
	free(fr);
	return ret;
}

/* The token compared without an early exit. */
static bool token_equal(uint64_t a, uint64_t b)
{
	volatile uint64_t d = a ^ b;

	return d == 0;
}

static int channels(struct vfmig_session *s, struct front *fr)
{
	/* Every slot is a valid conn from here on (fd -1 until accepted). */
	for (unsigned i = 0; i < s->nch; i++) {
		if (vfmig_session_add_conn(s, &s->chans[i], -1, i + 1)) {
			vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "destination", "mutex");
			return -1;
		}
		s->chans_up++;
	}
	for (unsigned k = 0; k < s->nch;) {
		struct vfmig_channel_hello chh;
		struct vfmig_tls_sess *tls;
		struct vfmig_frame f;
		int fd;

		/* Each channel that joins gives the next one --timeout again. */
		fr->deadline = vfmig_now_ns() + (uint64_t)s->o.timeout_ms * 1000000ull;
		if (next_conn(fr, true, &fd, &tls, &f))
			return -1;
		vfmig_channel_hello_decode(f.payload, &chh);
		vfmig_frame_free(&f);
		if (!token_equal(chh.session_id, s->session_id)) {
			fr->p[fr->np++] = (struct pend){ .fd = fd, .tls = tls };
			refuse(fr, fr->np - 1, "a channel without this session's token");
			continue;
		}
		/* It knows the token: it is the source, and it must be right. */
		if (chh.channel >= s->nch || chh.nchannels != s->nch ||
		    s->chans[chh.channel].fd >= 0) {
			vfmig_tls_sess_free(tls);
			close(fd);
			vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "multifd channel",
				   "bad CHANNEL_HELLO (channel %u of %u)", chh.channel,
				   chh.nchannels);
			return -1;
		}
		adopt(&s->chans[chh.channel], fd, tls);
		k++;
	}
	return 0;
}

int vfmig_accept_channels(struct vfmig_session *s, int lfd, int wakefd)
{
	struct front *fr;
	int ret;

	if (!s->nch)
		return 0;
	s->chans = calloc(s->nch, sizeof(*s->chans));
	fr = malloc(sizeof(*fr));
	if (!s->chans || !fr) {
		free(fr);
		vfmig_fail(&s->ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "destination", "out of memory");
		return -1;
	}
	front_init(fr, s, lfd, wakefd, VFMIG_F_CHANNEL_HELLO, "a multifd channel");
	ret = channels(s, fr);
	front_fini(fr);
	free(fr);
	return ret;
}
