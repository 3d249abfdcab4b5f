// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * transport.c - sockets, framing, checksums and the handshake.
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
	[VFMIG_F_ERROR] = { "ERROR", false, false, 0, LEN_RANGE, VFMIG_ERROR_FIXED,
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
};

const char *vfmig_ferr_name(enum vfmig_ferr e)
{
	return (unsigned)e < VFMIG_FERR_NR ? ferr_names[e] : "?";
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

/* ---- connections ------------------------------------------------------------ */

int vfmig_conn_init(struct vfmig_conn *c, int fd, unsigned id, struct vfmig_channel_stats *st)
{
	int ret = pthread_mutex_init(&c->send_lock, NULL);

	if (ret)
		return -ret;
	c->fd = fd;
	c->id = id;
	c->stats = st;
	return 0;
}

void vfmig_conn_destroy(struct vfmig_conn *c)
{
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

static int send_locked(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
		       uint32_t idx, const void *payload, uint32_t len)
{
	uint8_t hdr[VFMIG_HDR_LEN];
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = VFMIG_HDR_LEN },
		{ .iov_base = (void *)payload, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	/* Only data packets are counted (and timed) in the channel statistics. */
	bool counted = c->stats && (type == VFMIG_F_DEVICE_STATE || type == VFMIG_F_PRECOPY_DATA);
	uint64_t t0 = counted ? vfmig_now_ns() : 0;
	size_t total = VFMIG_HDR_LEN + (size_t)len;

	hdr_seal(hdr, type, flags, device, idx, payload, len);
	while (total) {
		ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
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
	ret = send_locked(c, type, flags, device, idx, payload, len);
	pthread_mutex_unlock(&c->send_lock);
	return ret;
}

int vfmig_send_frame_try(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
			 uint32_t idx, const void *payload, uint32_t len)
{
	int ret;

	if (pthread_mutex_trylock(&c->send_lock))
		return -EBUSY;
	ret = send_locked(c, type, flags, device, idx, payload, len);
	pthread_mutex_unlock(&c->send_lock);
	return ret;
}

/*
 * 0: all read; 1: end of stream after *got bytes; <0: -errno / -ETIMEDOUT.
 * With a timeout, poll() only when nothing is queued: a frame that is already
 * (partly) there costs no extra system call.
 */
static int read_full(int fd, void *buf, size_t len, int timeout_ms, size_t *got)
{
	int flags = timeout_ms >= 0 ? MSG_DONTWAIT : 0;

	*got = 0;
	while (*got < len) {
		ssize_t n = recv(fd, (uint8_t *)buf + *got, len - *got, flags);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && flags && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int r = poll(&p, 1, timeout_ms);

			if (r < 0 && errno != EINTR)
				return -errno;
			if (r == 0)
				return -ETIMEDOUT;
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
	free(f->payload);
	f->payload = NULL;
}

enum vfmig_ferr vfmig_recv_frame(int fd, const struct vfmig_limits *lim, int timeout_ms,
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
	ret = read_full(fd, hdr, sizeof(hdr), timeout_ms, &got);
	if (ret == 1 && got == 0) {
		snprintf(why, whylen, "connection closed by peer");
		return VFMIG_FERR_EOF;
	}
	if (ret == 1) {
		snprintf(why, whylen, "stream ended inside a frame header (%zu of %d bytes)", got,
			 VFMIG_HDR_LEN);
		return VFMIG_FERR_TRUNC_HEADER;
	}
	if (ret == -ETIMEDOUT) {
		*err_no = ETIMEDOUT;
		snprintf(why, whylen, "no data for %d ms", timeout_ms);
		return VFMIG_FERR_TIMEOUT;
	}
	if (ret < 0) {
		*err_no = -ret;
		snprintf(why, whylen, "recv: %s", strerror(-ret));
		return VFMIG_FERR_IO;
	}
	/* Throughput counts transfer time, not the wait for a frame to start. */
	t0 = vfmig_now_ns();
	vfmig_hdr_unpack(hdr, &f->h);
	fe = vfmig_hdr_validate(&f->h, lim, why, whylen);
	if (fe)
		return fe;
	if (f->h.length) {
		/* Bounded by vfmig_hdr_validate(): at most max_chunk or the type's size. */
		f->payload = malloc(f->h.length);
		if (!f->payload) {
			*err_no = ENOMEM;
			snprintf(why, whylen, "cannot allocate %u bytes", f->h.length);
			return VFMIG_FERR_NOMEM;
		}
		ret = read_full(fd, f->payload, f->h.length, timeout_ms, &got);
		if (ret) {
			vfmig_frame_free(f);
			if (ret == 1) {
				snprintf(why, whylen,
					 "%s: stream ended inside the payload (%zu of %u bytes)",
					 type_name(f->h.type), got, f->h.length);
				return VFMIG_FERR_TRUNC_PAYLOAD;
			}
			*err_no = -ret;
			snprintf(why, whylen, "recv: %s", strerror(-ret));
			return ret == -ETIMEDOUT ? VFMIG_FERR_TIMEOUT : VFMIG_FERR_IO;
		}
	}
	f->rx_ns = vfmig_now_ns() - t0;
	if (vfmig_frame_checksum(hdr, f->payload, f->h.length) != f->h.checksum) {
		vfmig_frame_free(f);
		snprintf(why, whylen, "%s device %u idx %u: checksum mismatch",
			 type_name(f->h.type), f->h.device, f->h.idx);
		return VFMIG_FERR_BAD_CHECKSUM;
	}
	return VFMIG_FERR_NONE;
}

/* ---- handshake ---------------------------------------------------------------- */

size_t vfmig_hello_encode(uint8_t *buf, size_t len, const struct vfmig_hello *h)
{
	size_t need = VFMIG_HELLO_FIXED + (size_t)h->ndevices * VFMIG_HELLO_DEV_LEN;

	if (h->ndevices > VFMIG_MAX_DEVICES || len < need)
		return 0;
	memset(buf, 0, need);
	put_le32(buf, h->proto_version);
	put_le32(buf + 4, h->min_proto_version);
	put_le64(buf + 8, h->session_id);
	put_le32(buf + 16, h->options);
	put_le32(buf + 20, h->nchannels);
	put_le32(buf + 24, h->chunk_size);
	put_le32(buf + 28, h->ndevices);
	for (uint32_t i = 0; i < h->ndevices; i++) {
		uint8_t *d = buf + VFMIG_HELLO_FIXED + i * VFMIG_HELLO_DEV_LEN;

		put_le64(d, h->dev[i].mig_flags);
		put_le64(d + 8, h->dev[i].stop_copy_estimate);
		put_le32(d + 16, h->dev[i].config_size);
		strncpy((char *)d + 24, h->dev[i].compat, VFMIG_COMPAT_LEN - 1);
	}
	return need;
}

int vfmig_hello_decode(const uint8_t *buf, size_t len, struct vfmig_hello *h, char *why,
		       size_t whylen)
{
	if (len < VFMIG_HELLO_FIXED) {
		snprintf(why, whylen, "HELLO too short (%zu bytes)", len);
		return -EPROTO;
	}
	memset(h, 0, sizeof(*h));
	h->proto_version = get_le32(buf);
	h->min_proto_version = get_le32(buf + 4);
	h->session_id = get_le64(buf + 8);
	h->options = get_le32(buf + 16);
	h->nchannels = get_le32(buf + 20);
	h->chunk_size = get_le32(buf + 24);
	h->ndevices = get_le32(buf + 28);
	if (h->ndevices == 0 || h->ndevices > VFMIG_MAX_DEVICES) {
		snprintf(why, whylen, "HELLO: %u devices (1..%u)", h->ndevices, VFMIG_MAX_DEVICES);
		return -EPROTO;
	}
	if (len != VFMIG_HELLO_FIXED + (size_t)h->ndevices * VFMIG_HELLO_DEV_LEN) {
		snprintf(why, whylen, "HELLO: %zu bytes for %u devices", len, h->ndevices);
		return -EPROTO;
	}
	for (uint32_t i = 0; i < h->ndevices; i++) {
		const uint8_t *d = buf + VFMIG_HELLO_FIXED + i * VFMIG_HELLO_DEV_LEN;

		h->dev[i].mig_flags = get_le64(d);
		h->dev[i].stop_copy_estimate = get_le64(d + 8);
		h->dev[i].config_size = get_le32(d + 16);
		if (get_le32(d + 20)) {
			snprintf(why, whylen, "HELLO: device %u: reserved field not zero", i);
			return -EPROTO;
		}
		if (!memchr(d + 24, '\0', VFMIG_COMPAT_LEN)) {
			snprintf(why, whylen, "HELLO: device %u: compat string not terminated", i);
			return -EPROTO;
		}
		memcpy(h->dev[i].compat, d + 24, VFMIG_COMPAT_LEN);
	}
	return 0;
}

static bool onoff_conflict(enum vfmig_onoff local, bool remote)
{
	return (local == VFMIG_ON && !remote) || (local == VFMIG_OFF && remote);
}

enum vfmig_errclass vfmig_hello_check(const struct vfmig_hello *h, const struct vfmig_local *l,
				      uint32_t *agreed, char *why, size_t whylen)
{
	const struct vfmig_options *o = l->o;
	bool multifd = h->options & VFMIG_OPT_MULTIFD;
	bool sack = h->options & VFMIG_OPT_SWITCHOVER_ACK;
	uint32_t opts = h->options;

	if (h->min_proto_version > VFMIG_PROTO_VERSION ||
	    h->proto_version < VFMIG_PROTO_MIN_VERSION) {
		snprintf(
			why, whylen,
			"protocol version mismatch: source speaks %u (min %u), destination %u (min %u)",
			h->proto_version, h->min_proto_version, VFMIG_PROTO_VERSION,
			VFMIG_PROTO_MIN_VERSION);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (h->options & ~VFMIG_OPT_ALL) {
		snprintf(why, whylen, "unknown option bits 0x%x", h->options & ~VFMIG_OPT_ALL);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (h->ndevices != l->ndevices) {
		snprintf(why, whylen,
			 "device count mismatch: source migrates %u, destination has %u",
			 h->ndevices, l->ndevices);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (multifd ? (h->nchannels == 0 || h->nchannels > VFMIG_MAX_CHANNELS) : h->nchannels) {
		snprintf(why, whylen, "invalid channel count %u with multifd %s", h->nchannels,
			 multifd ? "on" : "off");
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (onoff_conflict(o->multifd, multifd)) {
		snprintf(why, whylen, "option mismatch: multifd is %s on the source, %s here",
			 multifd ? "on" : "off", o->multifd == VFMIG_ON ? "on" : "off");
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (multifd && o->channels && o->channels != h->nchannels) {
		snprintf(why, whylen,
			 "option mismatch: source uses %u multifd channels, destination %u",
			 h->nchannels, o->channels);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (onoff_conflict(o->switchover_ack, sack)) {
		snprintf(why, whylen,
			 "option mismatch: switchover-ack is %s on the source, %s here",
			 sack ? "on" : "off", o->switchover_ack == VFMIG_ON ? "on" : "off");
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (h->chunk_size < VFMIG_MIN_CHUNK || h->chunk_size > VFMIG_MAX_CHUNK) {
		snprintf(why, whylen, "chunk size %u outside %u..%u", h->chunk_size,
			 VFMIG_MIN_CHUNK, VFMIG_MAX_CHUNK);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (o->max_queued_bytes < 2ull * h->chunk_size) {
		snprintf(
			why, whylen,
			"--max-queued-bytes %llu cannot hold two %u-byte chunks: raise it or lower the "
			"source's --chunk-size",
			(unsigned long long)o->max_queued_bytes, h->chunk_size);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	for (uint32_t i = 0; i < h->ndevices; i++) {
		const struct vfmig_device *d = l->devs[i];

		if (strcmp(h->dev[i].compat, d->compat)) {
			snprintf(why, whylen, "device %u: source is '%s', destination '%s' is '%s'",
				 i, h->dev[i].compat, d->name, d->compat);
			return VFMIG_ERR_INCOMPATIBLE;
		}
		if (h->dev[i].config_size != d->config_size) {
			snprintf(why, whylen, "device %u: config size %u on the source, %u on '%s'",
				 i, h->dev[i].config_size, d->config_size, d->name);
			return VFMIG_ERR_INCOMPATIBLE;
		}
		if (!(d->flags & VFMIG_MIG_STOP_COPY)) {
			snprintf(why, whylen, "device %u ('%s') cannot resume (no STOP_COPY)", i,
				 d->name);
			return VFMIG_ERR_INCOMPATIBLE;
		}
		if (h->ndevices > 1 && !(d->flags & VFMIG_MIG_P2P)) {
			snprintf(
				why, whylen,
				"device %u ('%s') lacks P2P support: a migration of several devices needs "
				"P2P on every device",
				i, d->name);
			return VFMIG_ERR_INCOMPATIBLE;
		}
	}
	if (o->load_config_after_iter == VFMIG_ON)
		opts |= VFMIG_OPT_LOAD_CONFIG_AFTER_ITER;
	*agreed = opts;
	return VFMIG_OK;
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

	/* A peer that stops reading for timeout_ms fails the send (-ETIMEDOUT). */
	if (timeout_ms && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	if (!getsockname(fd, (struct sockaddr *)&ss, &sl) &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		return -errno;
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

static int try_connect(const struct vfmig_addr *a)
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
		if (connect(fd, (struct sockaddr *)&un, sizeof(un))) {
			ret = -errno;
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
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			freeaddrinfo(res);
			return fd;
		}
		ret = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	return ret;
}

int vfmig_connect(const struct vfmig_addr *a, unsigned timeout_ms, struct vfmig_error *err)
{
	uint64_t deadline = vfmig_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int fd;

	/* The destination may not listen yet: retry refused connections until the timeout. */
	for (;;) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };

		fd = try_connect(a);
		if (fd >= 0)
			break;
		if ((fd != -ECONNREFUSED && fd != -ENOENT) || vfmig_now_ns() >= deadline)
			break;
		nanosleep(&ts, NULL);
	}
	if (fd < 0) {
		char as[sizeof(a->host) + sizeof(a->port)];

		vfmig_error_set(err,
				fd == -ECONNREFUSED || fd == -ENOENT ? VFMIG_ERR_TIMEOUT :
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
