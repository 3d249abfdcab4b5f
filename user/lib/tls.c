// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tls.c - TLS 1.3 sessions with GnuTLS on the engine's connections: a
 * handshake bounded like every other wait, peer verification, and
 * non-blocking record I/O for transport.c.  The credentials are loaded in
 * tls_creds.c.
 *
 * Peers are always verified: a server requires a client certificate signed
 * by the CA for TLS client authentication (extended key usage; and,
 * optionally, with a DN on the allow list); a client checks the server's
 * certificate, its name and its purpose (TLS server authentication).  With
 * PSK, both ends prove the key.
 *
 * Sockets are driven without blocking: the push and pull functions use
 * MSG_DONTWAIT, and the callers wait on the socket in 100 ms slices on the
 * abort flag (vfmig_wait_fd), exactly as for a plain socket.  No session
 * tickets, no renegotiation (TLS 1.3 only).
 *
 * Locks: none.  GnuTLS allows one sender and one receiver on a session at
 * once, which is how transport.c uses it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls.h"
#include "vfmig_internal.h"

struct vfmig_tls_sess {
	gnutls_session_t s;
	const struct vfmig_tls *t;
	int fd;
	int last_errno;	  /* of the push or pull that failed */
	uint8_t first[4]; /* the peer's first bytes: a plain vfio-mig peer? */
	size_t nfirst;
	char err[200];
	/* What the peer's certificate is verified for: GnuTLS keeps a pointer to it. */
	gnutls_typed_vdata_st vd[2];
	uint8_t rec[VFMIG_TLS_RECORD];
};

/* ---- the transport under a session ------------------------------------------------ */

static ssize_t push(gnutls_transport_ptr_t p, const void *buf, size_t len)
{
	struct vfmig_tls_sess *ts = p;
	ssize_t n = send(ts->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0) {
		ts->last_errno = errno;
		gnutls_transport_set_errno(ts->s, errno);
	}
	return n;
}

static ssize_t pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct vfmig_tls_sess *ts = p;
	ssize_t n = recv(ts->fd, buf, len, MSG_DONTWAIT);

	if (n < 0) {
		ts->last_errno = errno;
		gnutls_transport_set_errno(ts->s, errno);
	}
	for (ssize_t i = 0; i < n && ts->nfirst < sizeof(ts->first); i++)
		ts->first[ts->nfirst++] = ((uint8_t *)buf)[i];
	return n;
}

/* Never waits: the callers wait on the socket themselves, in slices. */
static int pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	struct vfmig_tls_sess *ts = p;
	struct pollfd pf = { .fd = ts->fd, .events = POLLIN };

	(void)ms;
	return poll(&pf, 1, 0);
}

/* ---- handshake -------------------------------------------------------------------- */

/* The client's certificate DN must be on the allow list (when there is one). */
static int check_dn(struct vfmig_tls_sess *ts, char *why, size_t whylen)
{
	const struct vfmig_tls *t = ts->t;
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { 0 };
	unsigned n = 0;
	int ret = -EACCES;

	if (t->psk || !t->server || !t->n_allow_dn)
		return 0;
	certs = gnutls_certificate_get_peers(ts->s, &n);
	if (!certs || !n) {
		snprintf(why, whylen, "the client sent no certificate");
		return -EACCES;
	}
	if (gnutls_x509_crt_init(&crt) < 0)
		return -ENOMEM;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0 ||
	    gnutls_x509_crt_get_dn3(crt, &dn, 0) < 0) {
		snprintf(why, whylen, "the client's certificate has no readable DN");
		goto out;
	}
	for (unsigned i = 0; i < t->n_allow_dn; i++) {
		if (!strcmp(t->allow_dn[i], (const char *)dn.data)) {
			ret = 0;
			goto out;
		}
	}
	snprintf(why, whylen, "client certificate DN '%.120s' is not allowed (--tls-allow-dn)",
		 (const char *)dn.data);
out:
	gnutls_free(dn.data);
	gnutls_x509_crt_deinit(crt);
	return ret;
}

/* A failed handshake, in words that name the cause; the errno class. */
static int describe(struct vfmig_tls_sess *ts, int r, bool *plain, char *why, size_t whylen)
{
	const char *peer = ts->t->server ? "the client" : "the destination";

	*plain = ts->nfirst >= 4 && get_le32(ts->first) == VFMIG_MAGIC;
	if (*plain) {
		snprintf(why, whylen, "%s does not use TLS (it speaks plain vfio-mig)", peer);
		return -EPROTO;
	}
	switch (r) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR: {
		unsigned st = gnutls_session_get_verify_cert_status(ts->s);
		gnutls_datum_t out = { 0 };

		if (gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &out, 0) < 0)
			out.data = NULL;
		snprintf(why, whylen, "%s's certificate was refused: %s%s%s", peer,
			 out.data ? (const char *)out.data : "verification failed",
			 st & GNUTLS_CERT_UNEXPECTED_OWNER ? " (--tls-hostname)" : "",
			 !(st & GNUTLS_CERT_PURPOSE_MISMATCH) ? "" :
			 ts->t->server ? " (its key purpose is not TLS client authentication)" :
					 " (its key purpose is not TLS server authentication)");
		gnutls_free(out.data);
		return -EACCES;
	}
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		snprintf(why, whylen, "%s refused the TLS handshake (alert: %s): %s", peer,
			 gnutls_alert_get_name(gnutls_alert_get(ts->s)),
			 ts->t->psk ? "wrong key or identity?" :
				      "is our certificate signed by the CA it trusts?");
		return -EACCES;
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_ERROR:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		snprintf(why, whylen, "%s sent no acceptable certificate: %s", peer,
			 gnutls_strerror(r));
		return -EACCES;
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_KEY_USAGE_VIOLATION:
	case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
	case GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER:
		snprintf(why, whylen, "%s could not be authenticated: %s%s", peer,
			 gnutls_strerror(r), ts->t->psk ? " (wrong key or identity?)" : "");
		return -EACCES;
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		snprintf(why, whylen, "%s closed the connection during the TLS handshake%s", peer,
			 ts->t->server ? "" :
					 " (does it listen with TLS, and with credentials that "
					 "match ours?)");
		return -ECONNRESET;
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
	case GNUTLS_E_UNEXPECTED_PACKET:
	case GNUTLS_E_RECORD_OVERFLOW:
		snprintf(why, whylen, "%s does not speak TLS 1.3: %s", peer, gnutls_strerror(r));
		return -EPROTO;
	default:
		snprintf(why, whylen, "TLS handshake with %s failed: %s", peer, gnutls_strerror(r));
		return -EACCES;
	}
}

static int sess_setup(struct vfmig_tls_sess *ts, const char *host, char *why, size_t whylen)
{
	const struct vfmig_tls *t = ts->t;
	unsigned fl = (t->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
		      GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS;
	const char *name = t->hostname ? t->hostname : host;
	int r = gnutls_init(&ts->s, fl);

	if (r < 0)
		goto fail;
	gnutls_session_set_ptr(ts->s, (void *)t); /* for the PSK lookup */
	r = gnutls_priority_set(ts->s, t->prio);
	if (r < 0)
		goto fail;
	if (t->psk)
		r = gnutls_credentials_set(ts->s, GNUTLS_CRD_PSK,
					   t->server ? (void *)t->psks : (void *)t->pskc);
	else
		r = gnutls_credentials_set(ts->s, GNUTLS_CRD_CERTIFICATE, t->x509);
	if (r < 0)
		goto fail;
	if (!t->psk && t->server) {
		/* A client certificate, for TLS client authentication (extended key usage). */
		ts->vd[0] = (gnutls_typed_vdata_st){ .type = GNUTLS_DT_KEY_PURPOSE_OID,
						     .data = (void *)GNUTLS_KP_TLS_WWW_CLIENT };
		gnutls_certificate_server_set_request(ts->s, GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert2(ts->s, ts->vd, 1, 0);
	} else if (!t->psk) {
		if (!name || !name[0]) {
			snprintf(why, whylen,
				 "X.509: no name to check the destination's certificate against "
				 "(give --tls-hostname)");
			return -EINVAL;
		}
		r = gnutls_server_name_set(ts->s, GNUTLS_NAME_DNS, name, strlen(name));
		if (r < 0)
			goto fail;
		/* The server's name, and a certificate for TLS server authentication. */
		ts->vd[0] = (gnutls_typed_vdata_st){ .type = GNUTLS_DT_DNS_HOSTNAME,
						     .data = (void *)name };
		ts->vd[1] = (gnutls_typed_vdata_st){ .type = GNUTLS_DT_KEY_PURPOSE_OID,
						     .data = (void *)GNUTLS_KP_TLS_WWW_SERVER };
		gnutls_session_set_verify_cert2(ts->s, ts->vd, 2, 0);
	}
	gnutls_handshake_set_timeout(ts->s, 0); /* ours: the caller's deadline */
	gnutls_transport_set_ptr(ts->s, ts);
	gnutls_transport_set_push_function(ts->s, push);
	gnutls_transport_set_pull_function(ts->s, pull);
	gnutls_transport_set_pull_timeout_function(ts->s, pull_timeout);
	return 0;
fail:
	snprintf(why, whylen, "TLS session setup: %s", gnutls_strerror(r));
	return r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EINVAL;
}

int vfmig_tls_start(const struct vfmig_tls *t, int fd, const char *host,
		    struct vfmig_tls_sess **out, char *why, size_t whylen)
{
	struct vfmig_tls_sess *ts = calloc(1, sizeof(*ts));
	int ret;

	*out = NULL;
	if (!ts) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	ts->t = t;
	ts->fd = fd;
	ret = sess_setup(ts, host, why, whylen);
	if (ret) {
		vfmig_tls_sess_free(ts);
		return ret;
	}
	*out = ts;
	return 0;
}

int vfmig_tls_step(struct vfmig_tls_sess *ts, short *events, bool *plain, char *why, size_t whylen)
{
	int r = gnutls_handshake(ts->s), ret;

	*plain = false;
	if (r == GNUTLS_E_SUCCESS) {
		ret = check_dn(ts, why, whylen);
		if (ret)
			gnutls_alert_send(ts->s, GNUTLS_AL_FATAL, GNUTLS_A_ACCESS_DENIED);
		return ret;
	}
	if (r == GNUTLS_E_AGAIN) {
		*events = gnutls_record_get_direction(ts->s) ? POLLOUT : POLLIN;
		return -EAGAIN;
	}
	if (r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal(r))
		return -EINTR; /* a warning alert: again, after the caller's checks */
	ret = describe(ts, r, plain, why, whylen);
	/* Tell the peer why, so that it can say so (best effort, no wait). */
	if (!*plain && r != GNUTLS_E_FATAL_ALERT_RECEIVED && ret != -ECONNRESET)
		gnutls_alert_send_appropriate(ts->s, r);
	return ret;
}

int vfmig_tls_handshake(const struct vfmig_tls *t, int fd, const char *host, unsigned timeout_ms,
			const atomic_bool *abort, struct vfmig_tls_sess **out, bool *plain,
			char *why, size_t whylen)
{
	uint64_t deadline = vfmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct vfmig_tls_sess *ts;
	int ret;

	*plain = false;
	ret = vfmig_tls_start(t, fd, host, &ts, why, whylen);
	if (ret)
		return ret;
	/* The deadline and the abort flag on every pass, whatever the peer sends. */
	for (;;) {
		uint64_t now = vfmig_now_ns();
		short ev = POLLIN;

		if (abort && atomic_load(abort)) {
			snprintf(why, whylen, "TLS handshake: cancelled");
			ret = -ECANCELED;
			break;
		}
		if (now >= deadline) {
			snprintf(why, whylen, "TLS handshake: not done within %u ms", timeout_ms);
			ret = -ETIMEDOUT;
			break;
		}
		ret = vfmig_tls_step(ts, &ev, plain, why, whylen);
		if (ret == -EINTR)
			continue;
		if (ret != -EAGAIN)
			break;
		ret = vfmig_wait_fd(fd, ev, (int)((deadline - now) / 1000000) + 1, abort);
		if (ret == -ETIMEDOUT)
			snprintf(why, whylen, "TLS handshake: nothing for %u ms", timeout_ms);
		else if (ret)
			snprintf(why, whylen, "TLS handshake: %s", strerror(-ret));
		if (ret)
			break;
	}
	if (ret) {
		vfmig_tls_sess_free(ts);
		return ret;
	}
	*out = ts;
	return 0;
}

void vfmig_tls_sess_free(struct vfmig_tls_sess *ts)
{
	if (!ts)
		return;
	if (ts->s)
		gnutls_deinit(ts->s);
	explicit_bzero(ts->rec, sizeof(ts->rec));
	free(ts);
}

/* ---- records ---------------------------------------------------------------------- */

static ssize_t io_error(struct vfmig_tls_sess *ts, ssize_t r)
{
	if (r == GNUTLS_E_AGAIN)
		return -EAGAIN;
	if (r == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal((int)r))
		return -EINTR;
	snprintf(ts->err, sizeof(ts->err), "TLS: %s", gnutls_strerror((int)r));
	switch (r) {
	case GNUTLS_E_DECRYPTION_FAILED:
		snprintf(ts->err, sizeof(ts->err),
			 "TLS: a record failed authentication (tampered or corrupted in transit)");
		return -EBADMSG;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		snprintf(ts->err, sizeof(ts->err), "TLS: %s",
			 strerror(ts->last_errno ? ts->last_errno : EIO));
		return ts->last_errno ? -ts->last_errno : -EIO;
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		/* A TLS 1.3 server checks a client's certificate after the client finished. */
		snprintf(ts->err, sizeof(ts->err), "TLS: the peer refused us (alert: %s)",
			 gnutls_alert_get_name(gnutls_alert_get(ts->s)));
		return -EACCES;
	default:
		return -EPROTO;
	}
}

ssize_t vfmig_tls_recv(struct vfmig_tls_sess *ts, void *buf, size_t len)
{
	ssize_t r = gnutls_record_recv(ts->s, buf, len);

	/* The peer's end without close_notify: at a frame boundary it is an end of stream. */
	if (r >= 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
		return r >= 0 ? r : 0;
	return io_error(ts, r);
}

ssize_t vfmig_tls_send(struct vfmig_tls_sess *ts, const void *buf, size_t len)
{
	ssize_t r = gnutls_record_send(ts->s, buf, MIN(len, (size_t)VFMIG_TLS_RECORD));

	return r >= 0 ? r : io_error(ts, r);
}

const char *vfmig_tls_cipher(struct vfmig_tls_sess *ts)
{
	const char *n = gnutls_cipher_get_name(gnutls_cipher_get(ts->s));

	return n ? n : "unknown";
}

bool vfmig_tls_pending(struct vfmig_tls_sess *ts)
{
	return gnutls_record_check_pending(ts->s) > 0;
}

const char *vfmig_tls_error(const struct vfmig_tls_sess *ts)
{
	return ts->err[0] ? ts->err : "TLS error";
}

void *vfmig_tls_record_buf(struct vfmig_tls_sess *ts)
{
	return ts->rec;
}

void vfmig_tls_bye(struct vfmig_tls_sess *ts)
{
	/* One attempt: an alert is small, and a peer that does not read is not waited for. */
	if (gnutls_bye(ts->s, GNUTLS_SHUT_WR) < 0) {
		/* nothing to do: the socket's shutdown follows */
	}
}
