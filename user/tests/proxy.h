/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * proxy.h - a frame-aware man-in-the-middle for UNIX-socket tests, to play a
 * network that goes silent (partitioned) or is cut at a chosen frame.
 *
 *	struct proxy *px = proxy_new(&dest_addr, "/tmp/dir/px");
 *	proxy_silence_at(px, PROXY_TO_SERVER, VFMIG_F_COMMIT, 1, PROXY_BEFORE);
 *	... the source connects to unix:/tmp/dir/px instead of dest_addr ...
 *	proxy_free(px);
 *
 * Every connection accepted on the listening path gets a connection to the
 * target and two threads, one per direction, each forwarding whole frames:
 * it reads the 32-byte header (transport.c), then `length` payload bytes,
 * then writes both.  A stream that does not look like frames (bad magic or a
 * length above VFMIG_MAX_CHUNK) is forwarded as raw bytes from there on, so
 * malformed-stream tests work through the proxy too.  An end of stream is
 * passed on as a half-close (shutdown(SHUT_WR)), together with the bytes of a
 * partial frame before it; a socket error shuts the whole connection down.
 *
 * Silence: once a rule fires (or proxy_silence_now()), nothing more is
 * written on any connection in either direction, nothing more is read, and
 * no end of stream is passed on; every socket stays open until proxy_free(),
 * so both peers see a live connection on which nothing arrives.  Connections
 * accepted after that are held open without connecting to the target.  The
 * silence is exact: it is set under the proxy's lock when the triggering
 * frame's header is read, and every write checks it under the same lock, so
 * the triggering frame (whole, half or none of it) is the last data the
 * proxy forwards.
 *
 * Tampering: proxy_flip_byte() flips one bit of the byte at a chosen offset
 * of one connection's byte stream in one direction (a TLS stream, which is
 * never frame-shaped, is forwarded as raw bytes: the offset counts from its
 * first byte).
 *
 * Threads never block without also waiting on the proxy's eventfd: all
 * socket I/O is MSG_DONTWAIT plus poll(), so proxy_free() wakes and joins
 * every thread at once, whatever state they are in.
 *
 * Lock order: proxy.lock is a leaf.
 */
#ifndef VFMIG_TEST_PROXY_H
#define VFMIG_TEST_PROXY_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfmig_internal.h"

#define PROXY_TO_SERVER 0 /* client -> server: source -> destination */
#define PROXY_TO_CLIENT 1 /* server -> client: destination -> source */
#define PROXY_MAX_RULES 8
#define PROXY_CONNECT_MS 5000 /* retry a refused connection to the target this long */
#define PROXY_RAW_BUF (64u << 10)

enum proxy_cut {
	PROXY_BEFORE, /* drop the frame, then silence */
	PROXY_AFTER,  /* forward the frame, then silence */
	PROXY_HALF,   /* forward header + half the payload (16 bytes if none), then silence */
};

struct proxy_rule {
	int dir;
	uint16_t type;
	unsigned nth, seen;
	enum proxy_cut how;
	bool fired;
};

/*
 * A hook runs in the forwarding thread when its frame's header has been read,
 * before the frame is forwarded (and before any silence rule is matched):
 * in_fd is the socket the frame came from, out_fd the one it goes to.
 */
typedef void (*proxy_hook_fn)(void *arg, int in_fd, int out_fd);

struct proxy_hook {
	int dir;
	uint16_t type;
	unsigned nth, seen;
	proxy_hook_fn fn;
	void *arg;
};

struct proxy;

struct proxy_half {
	struct proxy_conn *c;
	int dir; /* reads fd[dir], writes fd[!dir] */
};

struct proxy_conn {
	struct proxy *p;
	unsigned idx; /* accept order, from 0 */
	int fd[2];    /* [0] accepted from the client, [1] to the target; -1 if none */
	pthread_t th[2];
	bool started[2];
	struct proxy_half half[2];
};

struct proxy {
	pthread_mutex_t lock; /* rules, conns, writes to the sockets, silent */
	struct vfmig_addr target;
	char path[sizeof(((struct vfmig_addr *)0)->path)];
	int lfd, wakefd;
	pthread_t accept_th;
	bool accept_started;
	atomic_bool silent;
	atomic_bool fired; /* a rule fired (not proxy_silence_now()) */
	struct proxy_rule rules[PROXY_MAX_RULES];
	unsigned nrules;
	struct proxy_hook hooks[PROXY_MAX_RULES];
	unsigned nhooks;
	struct proxy_conn **conns;
	unsigned nconns, cap;
	struct {
		bool armed;
		int dir;
		unsigned conn;
		uint64_t offset;
		atomic_bool done;
	} flip;
};

/* Results of the I/O helpers. */
enum { PX_OK, PX_EOF, PX_ERR, PX_STOP /* proxy_free() */, PX_SILENT };

static inline bool px_silent(struct proxy *p)
{
	return atomic_load(&p->silent);
}

/* Wait for @events on @fd or the wake eventfd: PX_OK, PX_STOP or PX_ERR. */
static inline int px_wait(struct proxy *p, int fd, short events)
{
	struct pollfd pf[2] = {
		{ .fd = p->wakefd, .events = POLLIN },
		{ .fd = fd, .events = events },
	};

	for (;;) {
		int r = poll(pf, fd >= 0 ? 2 : 1, -1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return PX_ERR;
		if (pf[0].revents)
			return PX_STOP;
		return PX_OK;
	}
}

/* Silent: touch nothing until proxy_free() (the sockets stay open). */
static inline void px_park(struct proxy *p)
{
	while (px_wait(p, -1, 0) == PX_OK)
		;
}

/*
 * Read exactly @len bytes (*got tells how many came on PX_EOF).  Unless
 * @priv (the thread finishing the frame that triggered the silence), stop
 * reading as soon as the proxy is silent.
 */
static inline int px_read(struct proxy *p, int fd, void *buf, size_t len, size_t *got, bool priv)
{
	*got = 0;
	while (*got < len) {
		ssize_t n;
		int r;

		if (!priv && px_silent(p))
			return PX_SILENT;
		n = recv(fd, (uint8_t *)buf + *got, len - *got, MSG_DONTWAIT);
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n == 0)
			return PX_EOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return PX_ERR;
		r = px_wait(p, fd, POLLIN);
		if (r != PX_OK)
			return r;
	}
	return PX_OK;
}

/* Like px_read() but returns after the first bytes (raw mode). */
static inline int px_read_some(struct proxy *p, int fd, void *buf, size_t len, size_t *got)
{
	for (;;) {
		ssize_t n;
		int r;

		if (px_silent(p))
			return PX_SILENT;
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n > 0) {
			*got = (size_t)n;
			return PX_OK;
		}
		if (n == 0)
			return PX_EOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return PX_ERR;
		r = px_wait(p, fd, POLLIN);
		if (r != PX_OK)
			return r;
	}
}

/* Write all of @buf; every send() checks the silence under the lock. */
static inline int px_write(struct proxy *p, int fd, const void *buf, size_t len, bool priv)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n;
		int e, r;

		pthread_mutex_lock(&p->lock);
		if (!priv && px_silent(p)) {
			pthread_mutex_unlock(&p->lock);
			return PX_SILENT;
		}
		n = send(fd, (const uint8_t *)buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		e = errno;
		pthread_mutex_unlock(&p->lock);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && e == EINTR)
			continue;
		if (n == 0 || (e != EAGAIN && e != EWOULDBLOCK))
			return PX_ERR;
		r = px_wait(p, fd, POLLOUT);
		if (r != PX_OK)
			return r;
	}
	return PX_OK;
}

/* Pass an end of stream (or a broken connection) on, unless silent. */
static inline void px_shut(struct proxy *p, int fd, int how)
{
	pthread_mutex_lock(&p->lock);
	if (!px_silent(p))
		shutdown(fd, how);
	pthread_mutex_unlock(&p->lock);
}

/*
 * A frame of @type came in direction @dir: count it for the rules.  Returns
 * PX_SILENT if the proxy is (already) silent, PX_OK otherwise; *fired and
 * *how tell whether this frame triggered a rule.
 */
static inline int px_match(struct proxy *p, int dir, uint16_t type, bool *fired,
			   enum proxy_cut *how)
{
	int ret = PX_OK;

	*fired = false;
	pthread_mutex_lock(&p->lock);
	if (px_silent(p)) {
		ret = PX_SILENT;
		goto out;
	}
	for (unsigned i = 0; i < p->nrules; i++) {
		struct proxy_rule *r = &p->rules[i];

		if (r->fired || r->dir != dir || r->type != type)
			continue;
		if (++r->seen < r->nth)
			continue;
		r->fired = true;
		if (!*fired) {
			*fired = true;
			*how = r->how;
		}
	}
	if (*fired) {
		atomic_store(&p->fired, true);
		atomic_store(&p->silent, true);
	}
out:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

/* Run the hooks due for this frame (outside the lock: a hook may block or cancel). */
static inline void px_hooks(struct proxy *p, int dir, uint16_t type, int in, int out)
{
	struct proxy_hook due[PROXY_MAX_RULES];
	unsigned n = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nhooks; i++) {
		struct proxy_hook *h = &p->hooks[i];

		if (h->dir == dir && h->type == type && (!h->nth || ++h->seen == h->nth))
			due[n++] = *h;
	}
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < n; i++)
		due[i].fn(due[i].arg, in, out);
}

/* Flip the armed byte if it lies in [*pos, *pos + n) of this stream; advance *pos. */
static inline void px_tamper(struct proxy *p, unsigned idx, int dir, uint8_t *buf, size_t n,
			     uint64_t *pos)
{
	if (p->flip.armed && p->flip.dir == dir && p->flip.conn == idx && p->flip.offset >= *pos &&
	    p->flip.offset < *pos + n) {
		buf[p->flip.offset - *pos] ^= 0x20;
		atomic_store(&p->flip.done, true);
	}
	*pos += n;
}

/* Forward one direction of a connection until end of stream, error, silence or proxy_free(). */
static inline void px_forward(struct proxy *p, int in, int out, int dir, unsigned idx)
{
	uint64_t pos = 0; /* raw bytes forwarded so far */
	uint8_t *buf = malloc(VFMIG_HDR_LEN + PROXY_RAW_BUF);
	size_t cap = VFMIG_HDR_LEN + PROXY_RAW_BUF;
	bool raw = false;
	int r;

	if (!buf) {
		px_shut(p, in, SHUT_RDWR);
		px_shut(p, out, SHUT_RDWR);
		return;
	}
	for (;;) {
		bool priv = false;
		enum proxy_cut how = PROXY_AFTER;
		uint32_t len;
		size_t got, n;

		if (raw) {
			r = px_read_some(p, in, buf, PROXY_RAW_BUF, &got);
			if (r == PX_OK) {
				px_tamper(p, idx, dir, buf, got, &pos);
				r = px_write(p, out, buf, got, false);
			}
			if (r == PX_OK)
				continue;
			goto end;
		}
		r = px_read(p, in, buf, VFMIG_HDR_LEN, &got, false);
		if (r == PX_EOF && got && px_write(p, out, buf, got, false) != PX_OK)
			r = PX_ERR; /* the partial header could not be passed on */
		if (r != PX_OK)
			goto end;
		len = get_le32(buf + 20);
		if (get_le32(buf) != VFMIG_MAGIC || len > VFMIG_MAX_CHUNK) {
			/* Not a frame we can trust: bytes from now on. */
			raw = true;
			px_tamper(p, idx, dir, buf, VFMIG_HDR_LEN, &pos);
			r = px_write(p, out, buf, VFMIG_HDR_LEN, false);
			if (r != PX_OK)
				goto end;
			continue;
		}
		px_hooks(p, dir, get_le16(buf + 6), in, out);
		r = px_match(p, dir, get_le16(buf + 6), &priv, &how);
		if (r != PX_OK)
			goto end;
		if (priv && how == PROXY_BEFORE) {
			r = PX_SILENT;
			goto end;
		}
		if (VFMIG_HDR_LEN + (size_t)len > cap) {
			uint8_t *nb = realloc(buf, VFMIG_HDR_LEN + (size_t)len);

			if (!nb) {
				r = PX_ERR;
				goto end;
			}
			buf = nb;
			cap = VFMIG_HDR_LEN + (size_t)len;
		}
		r = px_read(p, in, buf + VFMIG_HDR_LEN, len, &got, priv);
		if (r == PX_EOF && px_write(p, out, buf, VFMIG_HDR_LEN + got, priv) != PX_OK)
			r = PX_ERR;
		if (r != PX_OK)
			goto end;
		n = VFMIG_HDR_LEN + (size_t)len;
		if (priv && how == PROXY_HALF)
			n = len ? VFMIG_HDR_LEN + len / 2 : VFMIG_HDR_LEN / 2;
		r = px_write(p, out, buf, n, priv);
		if (r == PX_OK && priv)
			r = PX_SILENT;
		if (r != PX_OK)
			goto end;
	}
end:
	free(buf);
	switch (r) {
	case PX_EOF:
		px_shut(p, out, SHUT_WR);
		break;
	case PX_ERR:
		px_shut(p, in, SHUT_RDWR);
		px_shut(p, out, SHUT_RDWR);
		break;
	case PX_SILENT:
		px_park(p);
		break;
	}
}

static inline void *px_half_thread(void *arg)
{
	struct proxy_half *h = arg;
	struct proxy_conn *c = h->c;

	px_forward(c->p, c->fd[h->dir], c->fd[!h->dir], h->dir, c->idx);
	return NULL;
}

/* Connect to the target, retrying refused connections like vfmig_connect() does. */
static inline int px_connect(struct proxy *p)
{
	uint64_t deadline = vfmig_now_ns() + PROXY_CONNECT_MS * 1000000ull;
	struct pollfd pf = { .fd = p->wakefd, .events = POLLIN };

	for (;;) {
		/* Timeout 0: one attempt, no SO_SNDTIMEO (the proxy never blocks in send). */
		int fd = vfmig_connect(&p->target, 0, NULL);

		if (fd >= 0 || (fd != -ECONNREFUSED && fd != -ENOENT) || vfmig_now_ns() >= deadline)
			return fd;
		/* The retry interval of vfmig_connect(), cut short by proxy_free(). */
		if (poll(&pf, 1, 50) > 0)
			return -ECANCELED;
	}
}

/* Take over accepted socket @fd: connect it to the target and start forwarding. */
static inline void px_add_conn(struct proxy *p, int fd)
{
	struct proxy_conn *c = calloc(1, sizeof(*c));
	bool silent;
	int up;

	if (!c) {
		close(fd);
		return;
	}
	c->p = p;
	c->fd[0] = fd;
	c->fd[1] = -1;
	pthread_mutex_lock(&p->lock);
	if (p->nconns == p->cap) {
		unsigned cap = p->cap ? 2 * p->cap : 8;
		struct proxy_conn **cs = realloc(p->conns, cap * sizeof(*cs));

		if (!cs) {
			pthread_mutex_unlock(&p->lock);
			close(fd);
			free(c);
			return;
		}
		p->conns = cs;
		p->cap = cap;
	}
	c->idx = p->nconns;
	p->conns[p->nconns++] = c;
	silent = px_silent(p);
	pthread_mutex_unlock(&p->lock);
	if (silent)
		return; /* a silent network: the client's connection goes nowhere */

	up = px_connect(p);
	pthread_mutex_lock(&p->lock);
	if (up < 0) {
		/* Target unreachable: the client sees its connection closed. */
		if (!px_silent(p))
			shutdown(fd, SHUT_RDWR);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	c->fd[1] = up;
	for (int d = 0; d < 2; d++) {
		c->half[d].c = c;
		c->half[d].dir = d;
		c->started[d] = !pthread_create(&c->th[d], NULL, px_half_thread, &c->half[d]);
		if (!c->started[d]) {
			shutdown(c->fd[0], SHUT_RDWR);
			shutdown(c->fd[1], SHUT_RDWR);
		}
	}
	pthread_mutex_unlock(&p->lock);
}

static inline void *px_accept_thread(void *arg)
{
	struct proxy *p = arg;

	while (px_wait(p, p->lfd, POLLIN) == PX_OK) {
		int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0)
			px_add_conn(p, fd);
		else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			break;
	}
	return NULL;
}

/*
 * Listen on the UNIX socket @listen_path (replacing a stale socket there) and
 * forward every connection to @target.  NULL on failure.
 */
static inline struct proxy *proxy_new(const struct vfmig_addr *target, const char *listen_path)
{
	struct proxy *p = calloc(1, sizeof(*p));
	struct vfmig_addr la = { .family = AF_UNIX };

	if (!p)
		return NULL;
	p->lfd = p->wakefd = -1;
	p->target = *target;
	if (strlen(listen_path) >= sizeof(la.path) || pthread_mutex_init(&p->lock, NULL)) {
		free(p);
		return NULL;
	}
	snprintf(la.path, sizeof(la.path), "%s", listen_path);
	snprintf(p->path, sizeof(p->path), "%s", listen_path);
	p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->lfd = vfmig_listen(&la, NULL);
	if (p->wakefd < 0 || p->lfd < 0)
		goto fail;
	p->accept_started = !pthread_create(&p->accept_th, NULL, px_accept_thread, p);
	if (!p->accept_started)
		goto fail;
	return p;
fail:
	if (p->lfd >= 0) {
		close(p->lfd);
		unlink(p->path);
	}
	if (p->wakefd >= 0)
		close(p->wakefd);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

/* Wake and join every thread, close every socket, remove the listening path. */
static inline void proxy_free(struct proxy *p)
{
	uint64_t one = 1;

	if (!p)
		return;
	/* The eventfd stays readable (nobody reads it): every poll() returns. */
	while (write(p->wakefd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	if (p->accept_started)
		pthread_join(p->accept_th, NULL);
	for (unsigned i = 0; i < p->nconns; i++) {
		struct proxy_conn *c = p->conns[i];

		for (int d = 0; d < 2; d++)
			if (c->started[d])
				pthread_join(c->th[d], NULL);
		for (int d = 0; d < 2; d++)
			if (c->fd[d] >= 0)
				close(c->fd[d]);
		free(c);
	}
	free(p->conns);
	close(p->lfd);
	unlink(p->path);
	close(p->wakefd);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/*
 * Go silent at the @nth frame (counted from 1, across all connections, from
 * now on) of @type in direction @dir (PROXY_TO_SERVER or PROXY_TO_CLIENT).
 * Up to PROXY_MAX_RULES rules; the first to fire silences everything.
 */
static inline void proxy_silence_at(struct proxy *p, int dir, uint16_t type, unsigned nth,
				    enum proxy_cut how)
{
	pthread_mutex_lock(&p->lock);
	if (p->nrules < PROXY_MAX_RULES)
		p->rules[p->nrules++] = (struct proxy_rule){
			.dir = dir,
			.type = type,
			.nth = nth ? nth : 1,
			.how = how,
		};
	pthread_mutex_unlock(&p->lock);
}

/* Call fn(arg, in_fd, out_fd) when the nth frame of @type goes in direction @dir (0: every one). */
static inline void proxy_on_frame(struct proxy *p, int dir, uint16_t type, unsigned nth,
				  proxy_hook_fn fn, void *arg)
{
	pthread_mutex_lock(&p->lock);
	if (p->nhooks < PROXY_MAX_RULES)
		p->hooks[p->nhooks++] = (struct proxy_hook){
			.dir = dir,
			.type = type,
			.nth = nth,
			.fn = fn,
			.arg = arg,
		};
	pthread_mutex_unlock(&p->lock);
}

/* Go silent now: nothing more is forwarded on any connection. */
static inline void proxy_silence_now(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->silent, true);
	pthread_mutex_unlock(&p->lock);
}

/* Shut down both sockets of every connection so far (both peers see the end of stream). */
static inline void proxy_cut_now(struct proxy *p)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nconns; i++)
		for (int d = 0; d < 2; d++)
			if (p->conns[i]->fd[d] >= 0)
				shutdown(p->conns[i]->fd[d], SHUT_RDWR);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Flip a bit of byte @offset (from 0) of connection @conn's stream (accept
 * order, from 0) in direction @dir.  Set it before that connection starts.
 */
static inline void proxy_flip_byte(struct proxy *p, int dir, unsigned conn, uint64_t offset)
{
	pthread_mutex_lock(&p->lock);
	p->flip.dir = dir;
	p->flip.conn = conn;
	p->flip.offset = offset;
	p->flip.armed = true;
	pthread_mutex_unlock(&p->lock);
}

/* The armed byte went by, flipped. */
static inline bool proxy_flipped(struct proxy *p)
{
	return atomic_load(&p->flip.done);
}

/* A rule fired: the proxy went silent at its frame. */
static inline bool proxy_went_silent(struct proxy *p)
{
	return atomic_load(&p->fired);
}

/* The proxy is silent (a rule fired or proxy_silence_now()). */
static inline bool proxy_is_silent(struct proxy *p)
{
	return px_silent(p);
}

/* Connections accepted so far (including those held silent). */
static inline unsigned proxy_connections(struct proxy *p)
{
	unsigned n;

	pthread_mutex_lock(&p->lock);
	n = p->nconns;
	pthread_mutex_unlock(&p->lock);
	return n;
}

#endif
