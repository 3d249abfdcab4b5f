/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tls.h - TLS credentials (tls_creds.c) and one TLS 1.3 session on a
 * connected socket (tls.c), below the
 * frames of transport.c: a bounded handshake, then record I/O that never
 * blocks (the caller waits on the socket in slices, as for a plain one).
 *
 * Locks: none.  A session may be used by one sending thread (under the
 * connection's send_lock) and one receiving thread at once, which GnuTLS
 * allows; the handshake runs before either exists.
 */
#ifndef VFMIG_TLS_H
#define VFMIG_TLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>

#include "vfmig.h"

#define VFMIG_PSK_MAX 64 /* bytes of a pre-shared key */

/* Credentials of one end (tls_creds.c); read-only once loaded. */
struct vfmig_psk_entry {
	char *identity;
	uint8_t key[VFMIG_PSK_MAX];
	size_t keylen;
};

struct vfmig_tls {
	bool server, psk;
	gnutls_priority_t prio;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_client_credentials_t pskc;
	gnutls_psk_server_credentials_t psks;
	struct vfmig_psk_entry *keys; /* PSK: the one in use, or the server's all */
	unsigned nkeys, nalloc;
	char *hostname;	 /* client, X.509 */
	char **allow_dn; /* server, X.509 */
	unsigned n_allow_dn;
};

/* The largest TLS record payload: a frame header goes out in one with its first bytes. */
#define VFMIG_TLS_RECORD 16384

struct vfmig_tls_sess;

/*
 * Handshake on connected socket @fd as @t's end, within @timeout_ms in all
 * (no byte-by-byte extension) and within 100 ms of *abort (may be NULL).
 * @host: the name a client verifies the server's certificate against when
 * the credentials name none (NULL for a UNIX socket).  Returns 0 and *out,
 * or a negative errno with why filled:
 *   -EACCES      the peer or its credentials were refused (key, certificate,
 *                name, DN), or it refused ours
 *   -EPROTO      the peer does not speak TLS (*plain: it speaks plain
 *                vfio-mig frames)
 *   -ECONNRESET  the peer closed the connection during the handshake (or a
 *                socket error): the transport's, not authentication
 *   -ETIMEDOUT, -ECANCELED, -ENOMEM, -errno
 */
int vfmig_tls_handshake(const struct vfmig_tls *t, int fd, const char *host, unsigned timeout_ms,
			const atomic_bool *abort, struct vfmig_tls_sess **out, bool *plain,
			char *why, size_t whylen);
/*
 * The same handshake in steps, for a caller that drives many at once
 * (accept.c).  vfmig_tls_start(): a session on @fd (0, or -ENOMEM/-EINVAL
 * with why).  vfmig_tls_step(): as much progress as possible without
 * waiting: 0 done (peer verified), -EAGAIN (wait for *events on the
 * socket), -EINTR (call again, after checking deadline and abort), or the
 * errors of vfmig_tls_handshake().  The caller frees the session on error.
 */
int vfmig_tls_start(const struct vfmig_tls *t, int fd, const char *host,
		    struct vfmig_tls_sess **out, char *why, size_t whylen);
int vfmig_tls_step(struct vfmig_tls_sess *ts, short *events, bool *plain, char *why, size_t whylen);
void vfmig_tls_sess_free(struct vfmig_tls_sess *ts);

/*
 * Record I/O, never blocking.  recv: >0 bytes, 0 end of stream, -EAGAIN
 * (wait for POLLIN), -EINTR (call again now), -EBADMSG (a record failed
 * authentication: tampered or corrupted), -errno.  send: >0 bytes taken (at
 * most one record), -EAGAIN (wait for POLLOUT, then call again with the same
 * arguments), -EINTR, -errno.
 */
ssize_t vfmig_tls_recv(struct vfmig_tls_sess *ts, void *buf, size_t len);
ssize_t vfmig_tls_send(struct vfmig_tls_sess *ts, const void *buf, size_t len);
/* Decrypted bytes wait inside the session: the socket may not be readable. */
bool vfmig_tls_pending(struct vfmig_tls_sess *ts);
/* The negotiated cipher, e.g. "AES-128-GCM" (GnuTLS's name). */
const char *vfmig_tls_cipher(struct vfmig_tls_sess *ts);
/* The last error of the session, for messages. */
const char *vfmig_tls_error(const struct vfmig_tls_sess *ts);
/* A staging buffer of VFMIG_TLS_RECORD bytes (the sender's, under its lock). */
void *vfmig_tls_record_buf(struct vfmig_tls_sess *ts);
/* close_notify, best effort and without waiting. */
void vfmig_tls_bye(struct vfmig_tls_sess *ts);

#endif /* VFMIG_TLS_H */
