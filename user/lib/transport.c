// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * transport.c - framing, checksums and bounded sends and receives on a
 * connection (sockets are set up in socket.c; the payloads of the control
 * frames and the handshake policy are in wire.c).
 *
 * Every frame on every channel is a 32-byte little-endian header followed by
 * `length` payload bytes (Documentation/transport-format.rst):
 *
 *   0 u32 magic "VFMG"   4 u16 version   6 u16 type   8 u32 flags
 *  12 u32 device        16 u32 idx      20 u32 length
 *  24 u64 checksum = XXH3_64(payload, seed = XXH3_64(header bytes 0..23))
 *
 * A receiver validates the header against a per-type rule table before it
 * allocates anything, so no allocation is ever sized by an unchecked value
 * from the socket: payloads are capped by the negotiated chunk size (at most
 * VFMIG_MAX_CHUNK) or by the type's fixed size.
 *
 * Every wait is bounded.  A connection bound to a session
 * (vfmig_conn_bound) waits in slices of at most 100 ms: it gives up when the
 * session's abort flag is set, or when no byte moved for the session
 * timeout; TCP keepalive and TCP_USER_TIMEOUT bound what the kernel does.
 * A DEVICE_STATE payload is admitted (reorder budget reserved) from its
 * header before its buffer is allocated (struct vfmig_admit).
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
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <xxhash.h>

#include "vfmig_internal.h"

/* ---- frame rules ----------------------------------------------------------- */

enum len_kind { LEN_FIXED, LEN_RANGE, LEN_CHUNK };

/* clang-format off */
static const struct ftype_rule {
	const char *name;
	bool device;     /* device field is a device index */
	bool idx;        /* idx field is meaningful */
	uint32_t flags;  /* allowed flag bits */
	enum len_kind kind;
	uint32_t min, max;
} rules[VFMIG_F_NR] = {
	[VFMIG_F_HELLO] = { "HELLO", false, false, 0, LEN_RANGE,
			    VFMIG_HELLO_FIXED + VFMIG_HELLO_DEV_LEN, VFMIG_HELLO_MAX },
	[VFMIG_F_HELLO_ACK] = { "HELLO_ACK", false, false, 0, LEN_RANGE, VFMIG_HELLO_ACK_FIXED,
				VFMIG_HELLO_ACK_FIXED + VFMIG_MSG_MAX },
	[VFMIG_F_CHANNEL_HELLO] = { "CHANNEL_HELLO", false, false, 0, LEN_FIXED,
				    VFMIG_CHANNEL_HELLO_LEN, VFMIG_CHANNEL_HELLO_LEN },
	[VFMIG_F_READY] = { "READY", false, false, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_PRECOPY_DATA] = { "PRECOPY_DATA", true, true, 0, LEN_CHUNK, 1, 0 },
	[VFMIG_F_INIT_DATA_SENT] = { "INIT_DATA_SENT", true, false, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_SWITCHOVER_ACK] = { "SWITCHOVER_ACK", true, false, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_SWITCHOVER_START] = { "SWITCHOVER_START", false, false, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_DEVICE_STATE] = { "DEVICE_STATE", true, true, VFMIG_FLAG_CONFIG, LEN_CHUNK, 0,
				   0 },
	[VFMIG_F_CHANNEL_END] = { "CHANNEL_END", false, false, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_LOADED] = { "LOADED", false, false, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_COMMIT] = { "COMMIT", false, false, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_COMPLETE] = { "COMPLETE", false, false, 0, LEN_FIXED, VFMIG_COMPLETE_LEN,
			       VFMIG_COMPLETE_LEN },
	[VFMIG_F_ERROR] = { "ERROR", false, false, VFMIG_ERRF_RESET | VFMIG_ERRF_COMMITTED,
			    LEN_RANGE, VFMIG_ERROR_FIXED,
			    VFMIG_ERROR_FIXED + VFMIG_MSG_MAX },
	[VFMIG_F_PING] = { "PING", false, false, 0, LEN_FIXED, 0, 0 },
};
/* clang-format on */

static const char *const ferr_names[VFMIG_FERR_NR] = {
	[VFMIG_FERR_NONE] = "ok",
	[VFMIG_FERR_EOF] = "end of stream",
	[VFMIG_FERR_IO] = "socket error",
	[VFMIG_FERR_TIMEOUT] = "timeout",
	[VFMIG_FERR_TRUNC_HEADER] = "truncated header",
	[VFMIG_FERR_TRUNC_PAYLOAD] = "truncated payload",
	[VFMIG_FERR_BAD_MAGIC] = "bad magic",
	[VFMIG_FERR_BAD_VERSION] = "bad version",
	[VFMIG_FERR_BAD_TYPE] = "unknown frame type",
	[VFMIG_FERR_BAD_FLAGS] = "unknown flags",
	[VFMIG_FERR_BAD_LENGTH] = "bad length",
	[VFMIG_FERR_BAD_DEVICE] = "unknown device",
	[VFMIG_FERR_BAD_IDX] = "bad idx",
	[VFMIG_FERR_BAD_CHECKSUM] = "checksum mismatch",
	[VFMIG_FERR_NOMEM] = "out of memory",
	[VFMIG_FERR_CANCELLED] = "cancelled",
	[VFMIG_FERR_REFUSED] = "refused",
};

const char *vfmig_ferr_name(enum vfmig_ferr e)
{
	return (unsigned)e < VFMIG_FERR_NR ? ferr_names[e] : "?";
}

enum vfmig_errclass vfmig_ferr_class(enum vfmig_ferr fe)
{
	switch (fe) {
	case VFMIG_FERR_EOF:
	case VFMIG_FERR_IO:
		return VFMIG_ERR_TRANSPORT;
	case VFMIG_FERR_TIMEOUT:
		return VFMIG_ERR_TIMEOUT;
	case VFMIG_FERR_NOMEM:
		return VFMIG_ERR_INTERNAL;
	case VFMIG_FERR_CANCELLED:
		return VFMIG_ERR_CANCELLED;
	default:
		return VFMIG_ERR_PROTOCOL;
	}
}

static const char *type_name(uint16_t t)
{
	return t && t < VFMIG_F_NR ? rules[t].name : "?";
}

void vfmig_hdr_pack(uint8_t out[VFMIG_HDR_LEN], const struct vfmig_frame_hdr *h)
{
	put_le32(out, h->magic);
	put_le16(out + 4, h->version);
	put_le16(out + 6, h->type);
	put_le32(out + 8, h->flags);
	put_le32(out + 12, h->device);
	put_le32(out + 16, h->idx);
	put_le32(out + 20, h->length);
	put_le64(out + 24, h->checksum);
}

void vfmig_hdr_unpack(const uint8_t in[VFMIG_HDR_LEN], struct vfmig_frame_hdr *h)
{
	h->magic = get_le32(in);
	h->version = get_le16(in + 4);
	h->type = get_le16(in + 6);
	h->flags = get_le32(in + 8);
	h->device = get_le32(in + 12);
	h->idx = get_le32(in + 16);
	h->length = get_le32(in + 20);
	h->checksum = get_le64(in + 24);
}

uint64_t vfmig_frame_checksum(const uint8_t hdr[VFMIG_HDR_LEN], const void *payload, size_t len)
{
	uint64_t seed = XXH3_64bits(hdr, 24);

	return XXH3_64bits_withSeed(len ? payload : "", len, seed);
}

enum vfmig_ferr vfmig_hdr_validate(const struct vfmig_frame_hdr *h, const struct vfmig_limits *lim,
				   char *why, size_t whylen)
{
	const struct ftype_rule *r;
	uint32_t max;

	if (h->magic != VFMIG_MAGIC) {
		snprintf(why, whylen, "bad magic 0x%08x (not a vfio-mig stream?)", h->magic);
		return VFMIG_FERR_BAD_MAGIC;
	}
	if (h->version != VFMIG_FRAME_VERSION) {
		snprintf(why, whylen, "frame version %u, this side speaks %u", h->version,
			 VFMIG_FRAME_VERSION);
		return VFMIG_FERR_BAD_VERSION;
	}
	if (h->type == 0 || h->type >= VFMIG_F_NR) {
		snprintf(why, whylen, "unknown frame type %u", h->type);
		return VFMIG_FERR_BAD_TYPE;
	}
	r = &rules[h->type];
	if (h->flags & ~r->flags) {
		snprintf(why, whylen, "%s: unknown flags 0x%x", r->name, h->flags & ~r->flags);
		return VFMIG_FERR_BAD_FLAGS;
	}
	if (r->device ? h->device >= lim->ndevices : h->device != 0) {
		snprintf(why, whylen, "%s: unknown device %u (%u devices)", r->name, h->device,
			 lim->ndevices);
		return VFMIG_FERR_BAD_DEVICE;
	}
	if (r->idx ? h->idx == VFMIG_IDX_INVALID : h->idx != 0) {
		snprintf(why, whylen, "%s: invalid idx %u", r->name, h->idx);
		return VFMIG_FERR_BAD_IDX;
	}
	switch (r->kind) {
	case LEN_CHUNK:
		max = (h->flags & VFMIG_FLAG_CONFIG) ? VFMIG_MAX_CONFIG : lim->max_chunk;
		if (h->length > max || (h->length < r->min) ||
		    (!(h->flags & VFMIG_FLAG_CONFIG) && h->length == 0)) {
			snprintf(why, whylen, "%s: length %u outside 1..%u", r->name, h->length,
				 max);
			return VFMIG_FERR_BAD_LENGTH;
		}
		break;
	case LEN_FIXED:
	case LEN_RANGE:
		if (h->length < r->min || h->length > r->max) {
			snprintf(why, whylen, "%s: length %u outside %u..%u", r->name, h->length,
				 r->min, r->max);
			return VFMIG_FERR_BAD_LENGTH;
		}
		break;
	}
	return VFMIG_FERR_NONE;
}

/* The header of a frame, checksum over the header and @payload included. */
static void hdr_seal(uint8_t hdr[VFMIG_HDR_LEN], uint16_t type, uint32_t flags, uint32_t device,
		     uint32_t idx, const void *payload, uint32_t len)
{
	struct vfmig_frame_hdr h = {
		.magic = VFMIG_MAGIC,
		.version = VFMIG_FRAME_VERSION,
		.type = type,
		.flags = flags,
		.device = device,
		.idx = idx,
		.length = len,
	};

	vfmig_hdr_pack(hdr, &h);
	put_le64(hdr + 24, vfmig_frame_checksum(hdr, payload, len));
}

size_t vfmig_frame_encode(uint8_t *buf, uint16_t type, uint32_t flags, uint32_t device,
			  uint32_t idx, const void *payload, uint32_t len)
{
	hdr_seal(buf, type, flags, device, idx, payload, len);
	if (len)
		memcpy(buf + VFMIG_HDR_LEN, payload, len);
	return VFMIG_HDR_LEN + len;
}

/* ---- payload buffers ------------------------------------------------------------ */

/*
 * glibc keeps freed heap memory and raises its mmap threshold after a large
 * free, so the RSS a destination reaches would stay; payloads of 128 KiB
 * and more are therefore mapped and unmapped directly: the memory bound
 * (Documentation/engine-design.rst) is what the process really holds.
 */
#define PAYLOAD_MMAP_MIN (128u << 10)

void *vfmig_payload_alloc(size_t len)
{
	void *p;

	if (len < PAYLOAD_MMAP_MIN)
		return malloc(len ? len : 1);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void vfmig_payload_free(void *p, size_t len)
{
	if (!p)
		return;
	if (len < PAYLOAD_MMAP_MIN)
		free(p);
	else
		munmap(p, len);
}

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
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	pthread_mutex_destroy(&c->send_lock);
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
	hdr_seal(hdr, type, flags, device, idx, payload, len);
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
static int read_full(int fd, void *buf, size_t len, int timeout_ms, const atomic_bool *abort,
		     size_t *got)
{
	bool bounded = timeout_ms >= 0 || abort;

	*got = 0;
	while (*got < len) {
		ssize_t n = recv(fd, (uint8_t *)buf + *got, len - *got, bounded ? MSG_DONTWAIT : 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && bounded && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = vfmig_wait_fd(fd, POLLIN, timeout_ms, abort);

			if (r)
				return r;
			continue;
		}
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
		if (n == 0)
			return 1;
		*got += (size_t)n;
	}
	return 0;
}

void vfmig_frame_free(struct vfmig_frame *f)
{
	vfmig_payload_free(f->payload, f->h.length);
	f->payload = NULL;
}

static enum vfmig_ferr io_error(int ret, int timeout_ms, int *err_no, char *why, size_t whylen)
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
	snprintf(why, whylen, "recv: %s", strerror(-ret));
	return VFMIG_FERR_IO;
}

static enum vfmig_ferr recv_frame(int fd, const struct vfmig_limits *lim, int timeout_ms,
				  const atomic_bool *abort, const struct vfmig_admit *admit,
				  struct vfmig_frame *f, int *err_no, char *why, size_t whylen)
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
	ret = read_full(fd, hdr, sizeof(hdr), timeout_ms, abort, &got);
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
		return io_error(ret, timeout_ms, err_no, why, whylen);
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
		ret = read_full(fd, f->payload, f->h.length, timeout_ms, abort, &got);
		if (ret) {
			vfmig_frame_free(f);
			if (ret == 1) {
				snprintf(why, whylen,
					 "%s: stream ended inside the payload (%zu of %u bytes)",
					 type_name(f->h.type), got, f->h.length);
				fe = VFMIG_FERR_TRUNC_PAYLOAD;
			} else {
				fe = io_error(ret, timeout_ms, err_no, why, whylen);
			}
			goto refuse;
		}
	}
	f->rx_ns = vfmig_now_ns() - t0;
	if (vfmig_frame_checksum(hdr, f->payload, f->h.length) != f->h.checksum) {
		vfmig_frame_free(f);
		snprintf(why, whylen, "%s device %u idx %u: checksum mismatch",
			 type_name(f->h.type), f->h.device, f->h.idx);
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
	enum vfmig_ferr fe = recv_frame(c->fd, lim, c->timeout_ms ? (int)c->timeout_ms : -1,
					c->abort, admit, f, err_no, why, whylen);

	if (fe == VFMIG_FERR_NONE)
		atomic_store(&c->last_rx_ns, vfmig_now_ns());
	return fe;
}

enum vfmig_ferr vfmig_recv_frame(int fd, const struct vfmig_limits *lim, int timeout_ms,
				 struct vfmig_frame *f, int *err_no, char *why, size_t whylen)
{
	return recv_frame(fd, lim, timeout_ms, NULL, NULL, f, err_no, why, whylen);
}
