// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * socket.c - addresses, listening, connecting and accepting, and the socket
 * options that bound what the kernel does with a dead peer.
 *
 * Every call is bounded: connect is non-blocking and gives up on the
 * timeout or within 100 ms of the abort flag (the destination may not
 * listen yet: refused connections are retried until the timeout); accept
 * polls the listening socket and an eventfd; vfmig_sock_setup() sets send
 * and receive timeouts, and on TCP keepalive probes from a quarter of the
 * timeout and TCP_USER_TIMEOUT.
 *
 * Locks: none.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vfmig_internal.h"

/* ---- sockets -------------------------------------------------------------------- */

int vfmig_addr_parse(const char *s, struct vfmig_addr *a, struct vfmig_error *err)
{
	const char *hp = s, *colon;
	char *end;
	unsigned long port;

	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "unix:", 5) || s[0] == '/' || !strncmp(s, "./", 2)) {
		const char *p = strncmp(s, "unix:", 5) ? s : s + 5;

		if (!*p || strlen(p) >= sizeof(a->path))
			goto bad;
		a->family = AF_UNIX;
		snprintf(a->path, sizeof(a->path), "%s", p);
		return 0;
	}
	if (!strncmp(s, "tcp:", 4))
		hp = s + 4;
	if (hp[0] == '[') {
		const char *rb = strchr(hp, ']');

		if (!rb || rb[1] != ':' || (size_t)(rb - hp - 1) >= sizeof(a->host))
			goto bad;
		memcpy(a->host, hp + 1, (size_t)(rb - hp - 1));
		a->family = AF_INET6;
		colon = rb + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || memchr(hp, ':', (size_t)(colon - hp)) ||
		    (size_t)(colon - hp) >= sizeof(a->host))
			goto bad; /* bare IPv6 needs brackets */
		memcpy(a->host, hp, (size_t)(colon - hp));
		a->family = AF_UNSPEC;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port == 0 || port > 65535 || end == colon + 1)
		goto bad;
	snprintf(a->port, sizeof(a->port), "%lu", port);
	return 0;
bad:
	vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "address",
			"bad address '%s' (unix:/path, /path, host:port, [v6addr]:port)", s);
	return -EINVAL;
}

int vfmig_sock_setup(int fd, unsigned timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int one = 1;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	/* A blocking send or receive that makes no progress for timeout_ms fails too. */
	if (timeout_ms && (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
			   setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))))
		return -errno;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		return 0;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		return -errno;
	if (timeout_ms) {
		/*
		 * A dead peer or path is found by the kernel too: keepalive probes
		 * start after a quarter of the timeout, and unacknowledged data
		 * fails the connection after the timeout (TCP_USER_TIMEOUT).
		 */
		int idle = (int)MAX(1u, timeout_ms / 4000), intvl = idle, cnt = 3;
		unsigned uto = timeout_ms;

		if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) ||
		    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) ||
		    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) ||
		    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) ||
		    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto)))
			return -errno;
	}
	return 0;
}

/* "path" or "host:port", for messages. */
static const char *addr_str(const struct vfmig_addr *a, char *buf, size_t len)
{
	if (a->family == AF_UNIX)
		snprintf(buf, len, "%s", a->path);
	else
		snprintf(buf, len, "%s:%s", a->host, a->port);
	return buf;
}

static int unix_sockaddr(const struct vfmig_addr *a, struct sockaddr_un *un)
{
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	if (strlen(a->path) >= sizeof(un->sun_path))
		return -ENAMETOOLONG;
	memcpy(un->sun_path, a->path, strlen(a->path));
	return 0;
}

/* connect() that gives up after timeout_ms or on *abort (checked every 100 ms). */
static int connect_bounded(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms,
			   const atomic_bool *abort)
{
	int fl = fcntl(fd, F_GETFL), ret, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
		return -errno;
	ret = connect(fd, sa, len) ? -errno : 0;
	if (ret == -EINPROGRESS) {
		ret = vfmig_wait_fd(fd, POLLOUT, timeout_ms, abort);
		if (!ret && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			ret = -errno;
		else if (!ret)
			ret = -soerr;
	}
	if (!ret && fcntl(fd, F_SETFL, fl))
		ret = -errno;
	return ret;
}

/*
 * Name resolution that a deadline and the abort flag can interrupt:
 * getaddrinfo_a() in glibc's resolver thread, waited for in 100 ms slices.
 * A request given up on is not cancelled under the resolver's feet: the
 * completion callback and the waiter each drop a reference, the last one
 * frees it.
 */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char host[sizeof(((struct vfmig_addr *)0)->host)];
	char port[sizeof(((struct vfmig_addr *)0)->port)];
	atomic_int refs;
};

static void lookup_put(struct lookup *l)
{
	if (atomic_fetch_sub(&l->refs, 1) != 1)
		return;
	if (l->cb.ar_result)
		freeaddrinfo(l->cb.ar_result);
	free(l);
}

static void lookup_done(union sigval sv)
{
	lookup_put(sv.sival_ptr);
}

/* 0 and *res (freeaddrinfo() it), or -ETIMEDOUT, -ECANCELED, -EHOSTUNREACH, -errno. */
static int resolve(const struct vfmig_addr *a, uint64_t deadline, const atomic_bool *abort,
		   struct addrinfo **res)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD,
				.sigev_notify_function = lookup_done };
	struct lookup *l = calloc(1, sizeof(*l));
	struct gaicb *list[1];
	int ret;

	if (!l)
		return -ENOMEM;
	snprintf(l->host, sizeof(l->host), "%s", a->host);
	snprintf(l->port, sizeof(l->port), "%s", a->port);
	l->hints.ai_family = a->family;
	l->hints.ai_socktype = SOCK_STREAM;
	l->cb.ar_name = l->host[0] ? l->host : NULL;
	l->cb.ar_service = l->port;
	l->cb.ar_request = &l->hints;
	atomic_init(&l->refs, 2);
	sev.sigev_value.sival_ptr = l;
	list[0] = &l->cb;
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, &sev)) {
		free(l);
		return -EAGAIN;
	}
	for (;;) {
		uint64_t now = vfmig_now_ns();
		uint64_t slice = MIN(deadline > now ? deadline - now : 0, 100000000ull);
		struct timespec ts = { 0, (long)slice };

		ret = gai_error(&l->cb);
		if (ret != EAI_INPROGRESS)
			break;
		if (abort && atomic_load(abort)) {
			ret = -ECANCELED;
			goto out;
		}
		if (!slice) {
			ret = -ETIMEDOUT;
			goto out;
		}
		gai_suspend((const struct gaicb *const *)list, 1, &ts);
	}
	if (ret == 0) {
		*res = l->cb.ar_result;
		l->cb.ar_result = NULL;
	} else {
		ret = ret == EAI_SYSTEM ? -errno : ret == EAI_AGAIN ? -ETIMEDOUT : -EHOSTUNREACH;
	}
out:
	lookup_put(l);
	return ret;
}

static int connect_unix(const struct vfmig_addr *a, int timeout_ms, const atomic_bool *abort)
{
	struct sockaddr_un un;
	int fd, ret = unix_sockaddr(a, &un);

	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect_bounded(fd, (struct sockaddr *)&un, sizeof(un), timeout_ms, abort);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

/* One attempt on every resolved address. */
static int connect_any(const struct addrinfo *res, int timeout_ms, const atomic_bool *abort)
{
	int fd, ret = -ECONNREFUSED;

	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		ret = connect_bounded(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms, abort);
		if (!ret)
			return fd;
		close(fd);
		if (ret == -ECANCELED)
			break;
	}
	return ret;
}

int vfmig_connect_abortable(const struct vfmig_addr *a, unsigned timeout_ms,
			    const atomic_bool *abort, struct vfmig_error *err)
{
	uint64_t deadline = vfmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	char as[sizeof(a->host) + sizeof(a->port)];
	struct addrinfo *res = NULL;
	int fd = 0;

	/* The name once, bounded like everything else; then retry refused connections. */
	if (a->family != AF_UNIX)
		fd = resolve(a, deadline, abort, &res);
	while (fd >= 0 || fd == -ECONNREFUSED || fd == -ENOENT) {
		uint64_t now = vfmig_now_ns();
		int left = (int)((deadline > now ? deadline - now : 0) / 1000000);
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		fd = a->family == AF_UNIX ? connect_unix(a, left, abort) :
					    connect_any(res, left, abort);
		if (fd >= 0)
			break;
		if ((fd != -ECONNREFUSED && fd != -ENOENT) || vfmig_now_ns() >= deadline)
			break;
		if (abort && atomic_load(abort)) {
			fd = -ECANCELED;
			break;
		}
		nanosleep(&ts, NULL); /* retry pacing, not synchronisation */
	}
	if (res)
		freeaddrinfo(res);
	if (fd == -ECANCELED) {
		vfmig_error_set(err, VFMIG_ERR_CANCELLED, ECANCELED, -1, "connect",
				"connect to %s: cancelled", addr_str(a, as, sizeof(as)));
		return fd;
	}
	if (fd < 0) {
		vfmig_error_set(err,
				fd == -ECONNREFUSED || fd == -ENOENT || fd == -ETIMEDOUT ?
					VFMIG_ERR_TIMEOUT :
					VFMIG_ERR_TRANSPORT,
				-fd, -1, "connect", "connect to %s: %s",
				addr_str(a, as, sizeof(as)), strerror(-fd));
		return fd;
	}
	if (vfmig_sock_setup(fd, timeout_ms)) {
		int e = errno;

		close(fd);
		vfmig_error_set(err, VFMIG_ERR_TRANSPORT, e, -1, "connect", "socket options: %s",
				strerror(e));
		return -e;
	}
	return fd;
}

int vfmig_connect(const struct vfmig_addr *a, unsigned timeout_ms, struct vfmig_error *err)
{
	return vfmig_connect_abortable(a, timeout_ms, NULL, err);
}

int vfmig_listen(const struct vfmig_addr *a, struct vfmig_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res, *ai;
	char as[sizeof(a->host) + sizeof(a->port)];
	int fd = -1, ret, one = 1;

	if (a->family == AF_UNIX) {
		struct sockaddr_un un;
		struct stat sb;

		ret = unix_sockaddr(a, &un);
		if (ret)
			goto fail;
		/* A stale socket from an earlier run; never remove anything else. */
		if (!stat(a->path, &sb) && S_ISSOCK(sb.st_mode))
			unlink(a->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&un, sizeof(un)) || listen(fd, 64)) {
			ret = -errno;
			goto fail;
		}
		return fd;
	}
	hints.ai_family = a->family;
	ret = getaddrinfo(a->host[0] && strcmp(a->host, "*") ? a->host : NULL, a->port, &hints,
			  &res);
	if (ret) {
		ret = ret == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
		goto fail;
	}
	ret = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		if (!setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) &&
		    !bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 64))
			break;
		ret = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
fail:
	if (fd >= 0)
		close(fd);
	vfmig_error_set(err, VFMIG_ERR_TRANSPORT, -ret, -1, "listen", "listen on %s: %s",
			addr_str(a, as, sizeof(as)), strerror(-ret));
	return ret;
}

int vfmig_accept_or(int lfd, int timeout_ms, int wakefd, int watchfd)
{
	struct pollfd p[3] = {
		{ .fd = lfd, .events = POLLIN },
		{ .fd = wakefd, .events = POLLIN },
		{ .fd = watchfd, .events = POLLIN },
	};
	int fd, r;

	for (;;) {
		r = poll(p, 3, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (wakefd >= 0 && p[1].revents)
			return -ECANCELED;
		if (watchfd >= 0 && p[2].revents)
			return -EINPROGRESS;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED))
			continue;
		return fd < 0 ? -errno : fd;
	}
}

int vfmig_accept(int lfd, int timeout_ms, int wakefd)
{
	return vfmig_accept_or(lfd, timeout_ms, wakefd, -1);
}

bool vfmig_sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a6) ||
		       (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	}
	return false;
}

bool vfmig_addr_is_local(const struct vfmig_addr *a)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	bool local = true;

	if (a->family == AF_UNIX)
		return true;
	/* No host, "*", "::" or "0.0.0.0": every interface, so not local. */
	if (!a->host[0] || !strcmp(a->host, "*"))
		return false;
	hints.ai_family = a->family;
	if (getaddrinfo(a->host, a->port, &hints, &res))
		return false;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
		local &= vfmig_sockaddr_is_loopback(ai->ai_addr);
	freeaddrinfo(res);
	return local;
}
