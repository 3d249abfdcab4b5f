// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * transport.c - sockets, framing and checksums (the payloads of the control
 * frames are in wire.c, the handshake policy too).
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
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/un.h>
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
#define FINAL_MS 1000

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

/*
 * Wait until fd is ready for @events: 0 ready, -ETIMEDOUT when nothing for
 * timeout_ms (< 0: forever), -ECANCELED when *abort is set (checked every
 * SLICE_MS), -errno.
 */
static int wait_fd(int fd, short events, int timeout_ms, const atomic_bool *abort)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX :
					     vfmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;

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
 * @final: ignore the abort flag and give up after FINAL_MS (a last word).
 * @optional: return -EAGAIN at once if not a byte can be sent now.
 */
static int send_locked(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
		       uint32_t idx, const void *payload, uint32_t len, bool final, bool optional)
{
	uint8_t hdr[VFMIG_HDR_LEN];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = VFMIG_HDR_LEN },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	/* Only data packets are counted (and timed) in the channel statistics. */
	bool counted = c->stats && (type == VFMIG_F_DEVICE_STATE || type == VFMIG_F_PRECOPY_DATA);
	bool bounded = final || optional || c->timeout_ms;
	int tmo = final ? FINAL_MS : (int)c->timeout_ms;
	const atomic_bool *abort = final ? NULL : c->abort;
	uint64_t t0 = counted ? vfmig_now_ns() : 0;
	size_t total = VFMIG_HDR_LEN + (size_t)len;

	if (c->fd < 0)
		return -EBADF;
	hdr_seal(hdr, type, flags, device, idx, payload, len);
	while (total) {
		ssize_t n;

		if (abort && atomic_load(abort))
			return -ECANCELED;
		n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | (bounded ? MSG_DONTWAIT : 0));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && optional && total == VFMIG_HDR_LEN + (size_t)len &&
		    (errno == EAGAIN || errno == EWOULDBLOCK))
			return -EAGAIN; /* nothing sent: the frame can be skipped */
		if (n < 0 && bounded && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(c->fd, POLLOUT, tmo > 0 ? tmo : FINAL_MS, abort);

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

int vfmig_send_frame(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
		     uint32_t idx, const void *payload, uint32_t len)
{
	int ret;

	pthread_mutex_lock(&c->send_lock);
	ret = send_locked(c, type, flags, device, idx, payload, len, false, false);
	pthread_mutex_unlock(&c->send_lock);
	return ret;
}

int vfmig_send_frame_final(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
			   uint32_t idx, const void *payload, uint32_t len)
{
	uint64_t deadline = vfmig_now_ns() + FINAL_MS * 1000000ull;
	int ret;

	/* Another sender may be stuck on a dead peer: wait for it at most FINAL_MS. */
	for (;;) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (!pthread_mutex_trylock(&c->send_lock))
			break;
		if (vfmig_now_ns() >= deadline)
			return -EBUSY;
		nanosleep(&ts, NULL); /* bounded retry, not synchronisation */
	}
	ret = send_locked(c, type, flags, device, idx, payload, len, true, false);
	pthread_mutex_unlock(&c->send_lock);
	return ret;
}

void vfmig_conn_ping(struct vfmig_conn *c)
{
	if (atomic_load(&c->ended) || pthread_mutex_trylock(&c->send_lock))
		return; /* a frame is being sent: the peer hears from us anyway */
	/* A peer that stopped reading is not waited for here: its timeout is the reader's. */
	if (!atomic_load(&c->ended))
		send_locked(c, VFMIG_F_PING, 0, 0, 0, NULL, 0, false, true);
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
			int r = wait_fd(fd, POLLIN, timeout_ms, abort);

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
	return recv_frame(c->fd, lim, c->timeout_ms ? (int)c->timeout_ms : -1, c->abort, admit, f,
			  err_no, why, whylen);
}

enum vfmig_ferr vfmig_recv_frame(int fd, const struct vfmig_limits *lim, int timeout_ms,
				 struct vfmig_frame *f, int *err_no, char *why, size_t whylen)
{
	return recv_frame(fd, lim, timeout_ms, NULL, NULL, f, err_no, why, whylen);
}

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
		ret = wait_fd(fd, POLLOUT, timeout_ms, abort);
		if (!ret && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			ret = -errno;
		else if (!ret)
			ret = -soerr;
	}
	if (!ret && fcntl(fd, F_SETFL, fl))
		ret = -errno;
	return ret;
}

static int try_connect(const struct vfmig_addr *a, int timeout_ms, const atomic_bool *abort)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd, ret = -ECONNREFUSED;

	if (a->family == AF_UNIX) {
		struct sockaddr_un un;

		ret = unix_sockaddr(a, &un);
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
	hints.ai_family = a->family;
	ret = getaddrinfo(a->host[0] ? a->host : NULL, a->port, &hints, &res);
	if (ret)
		return ret == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	ret = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		ret = connect_bounded(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms, abort);
		if (!ret) {
			freeaddrinfo(res);
			return fd;
		}
		close(fd);
		if (ret == -ECANCELED)
			break;
	}
	freeaddrinfo(res);
	return ret;
}

int vfmig_connect_abortable(const struct vfmig_addr *a, unsigned timeout_ms,
			    const atomic_bool *abort, struct vfmig_error *err)
{
	uint64_t deadline = vfmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	char as[sizeof(a->host) + sizeof(a->port)];
	int fd;

	/* The destination may not listen yet: retry refused connections until the timeout. */
	for (;;) {
		uint64_t now = vfmig_now_ns();
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		fd = try_connect(a, (int)((deadline > now ? deadline - now : 0) / 1000000), abort);
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

int vfmig_accept(int lfd, int timeout_ms, int wakefd)
{
	struct pollfd p[2] = {
		{ .fd = lfd, .events = POLLIN },
		{ .fd = wakefd, .events = POLLIN },
	};
	int fd, r;

	for (;;) {
		r = poll(p, wakefd >= 0 ? 2 : 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (wakefd >= 0 && p[1].revents)
			return -ECANCELED;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED))
			continue;
		return fd < 0 ? -errno : fd;
	}
}
