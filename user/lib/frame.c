// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * frame.c - the frames of the engine's transport: the 32-byte header, its
 * codec and checksum, the per-type rule table every received header is
 * validated against before anything is allocated, and payload buffers
 * (with their pool).  Pure: no socket (transport.c moves the frames).
 *
 *   0 u32 magic "VFMG"   4 u16 version   6 u16 type   8 u32 flags
 *  12 u32 device        16 u32 idx      20 u32 length
 *  24 u64 checksum = XXH3_64(payload, seed = XXH3_64(header bytes 0..23));
 *                   on a TLS connection over the header only (payload empty):
 *                   TLS 1.3's AEAD already authenticates every payload byte
 *
 * Locks: the payload pool's lock, a leaf (see below).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
	/* idx: the generation of the device's initial bytes (PRECOPY_REINIT) */
	[VFMIG_F_INIT_DATA_SENT] = { "INIT_DATA_SENT", true, true, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_SWITCHOVER_ACK] = { "SWITCHOVER_ACK", true, true, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_SWITCHOVER_START] = { "SWITCHOVER_START", false, false, 0, LEN_FIXED, 0, 0 },
	[VFMIG_F_DEVICE_STATE] = { "DEVICE_STATE", true, true,
				   VFMIG_FLAG_CONFIG | VFMIG_FLAG_PRECOPY | VFMIG_FLAG_INIT_SENT,
				   LEN_CHUNK, 0, 0 },
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

const char *vfmig_ftype_name(uint16_t t)
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
	/* A DEVICE_STATE packet is one of: data, PRE_COPY data, the INIT_SENT marker, config. */
	if (h->type == VFMIG_F_DEVICE_STATE && (h->flags & (h->flags - 1))) {
		snprintf(why, whylen, "%s: flags 0x%x combine packet kinds", r->name, h->flags);
		return VFMIG_FERR_BAD_FLAGS;
	}
	if (h->type == VFMIG_F_DEVICE_STATE && (h->flags & VFMIG_FLAG_INIT_SENT) &&
	    h->length != VFMIG_INIT_SENT_LEN) {
		snprintf(why, whylen, "%s: INIT_SENT marker of %u bytes, not %u", r->name,
			 h->length, VFMIG_INIT_SENT_LEN);
		return VFMIG_FERR_BAD_LENGTH;
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

uint64_t vfmig_frame_checksum_on(bool tls, const uint8_t hdr[VFMIG_HDR_LEN], const void *payload,
				 size_t len)
{
	return tls ? vfmig_frame_checksum(hdr, NULL, 0) : vfmig_frame_checksum(hdr, payload, len);
}

/* The header of a frame, checksum over the header and (not under TLS) @payload included. */
void vfmig_hdr_seal(uint8_t hdr[VFMIG_HDR_LEN], bool tls, uint16_t type, uint32_t flags,
		    uint32_t device, uint32_t idx, const void *payload, uint32_t len)
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
	put_le64(hdr + 24, vfmig_frame_checksum_on(tls, hdr, payload, len));
}

size_t vfmig_frame_encode_on(bool tls, uint8_t *buf, uint16_t type, uint32_t flags, uint32_t device,
			     uint32_t idx, const void *payload, uint32_t len)
{
	vfmig_hdr_seal(buf, tls, type, flags, device, idx, payload, len);
	if (len)
		memcpy(buf + VFMIG_HDR_LEN, payload, len);
	return VFMIG_HDR_LEN + len;
}

size_t vfmig_frame_encode(uint8_t *buf, uint16_t type, uint32_t flags, uint32_t device,
			  uint32_t idx, const void *payload, uint32_t len)
{
	return vfmig_frame_encode_on(false, buf, type, flags, device, idx, payload, len);
}

/* ---- payload buffers ------------------------------------------------------------ */

/*
 * glibc keeps freed heap memory and raises its mmap threshold after a large
 * free, so the RSS a destination reaches would stay; payloads of 128 KiB
 * and more are therefore mapped directly: the memory bound
 * (Documentation/engine-design.rst) is what the process really holds.
 *
 * Mapping and unmapping every chunk costs an munmap() (a TLB shootdown) and a
 * page fault per page, so freed mappings are kept in a pool and handed out
 * again for a payload of the same length.  The pool keeps memory only while
 * someone registered room for it (vfmig_payload_pool_grow(): the
 * destination's reorder buffer, with its budget), and only within it:
 *
 *   mapped = in use + pooled;  pooled > 0 only while mapped <= cap
 *
 * so the payload mappings never exceed max(cap, in use): what the pool keeps
 * lies inside the bound the budget already sets, it never adds to it.  A new
 * mapping first evicts pooled ones until it fits under cap; a freed one is
 * unmapped when mapped is over cap or no bin takes its length.  When a
 * room is dropped (session end) the pool empties and the RSS falls back.
 * A session's chunks share one length; a few bins take the others (a
 * device's last chunk, precopy frames).
 *
 * Locks: pool.lock, a leaf; munmap() runs with it dropped.
 */
#define PAYLOAD_MMAP_MIN (128u << 10)
#define POOL_BINS 4

struct pool_buf {
	struct pool_buf *next; /* kept in the free buffer itself */
};

static struct {
	pthread_mutex_t lock;
	struct vfmig_payload_pool_stats st;
	struct {
		size_t len;
		struct pool_buf *head;
	} bin[POOL_BINS];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

static size_t map_len(size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t p = pg > 0 ? (size_t)pg : 4096;

	return (len + p - 1) & ~(p - 1);
}

/* Take a pooled buffer out to unmap, one not of length @keep if there is one. */
static void *evict_locked(size_t keep, size_t *len)
{
	struct pool_buf *b;
	int pick = -1;

	for (int i = 0; i < POOL_BINS; i++)
		if (pool.bin[i].head && (pick < 0 || pool.bin[pick].len == keep))
			pick = i;
	if (pick < 0)
		return NULL;
	b = pool.bin[pick].head;
	pool.bin[pick].head = b->next;
	*len = map_len(pool.bin[pick].len);
	pool.st.pooled -= *len;
	pool.st.evicted++;
	return b;
}

/*
 * Unmap a buffer still counted in pool.st.mapped, then uncount it: the count
 * never falls below what is really mapped, even while munmap() runs without
 * the lock (another thread's new mapping is checked against it meanwhile).
 */
static void unmap(void *p, size_t len)
{
	int ret = munmap(p, len);

	pthread_mutex_lock(&pool.lock);
	pool.st.mapped -= len;
	/* Only a bug (not one of our mappings) fails: count it. */
	if (ret)
		pool.st.unmap_errors++;
	pthread_mutex_unlock(&pool.lock);
}

void *vfmig_payload_alloc(size_t len)
{
	size_t ml, vlen;
	void *p;

	if (len < PAYLOAD_MMAP_MIN)
		return malloc(len ? len : 1);
	ml = map_len(len);
	for (;;) {
		pthread_mutex_lock(&pool.lock);
		for (int i = 0; i < POOL_BINS; i++) {
			struct pool_buf *b = pool.bin[i].head;

			if (b && pool.bin[i].len == len) {
				pool.bin[i].head = b->next;
				pool.st.pooled -= ml;
				pool.st.hits++;
				pthread_mutex_unlock(&pool.lock);
				return b;
			}
		}
		/* A new mapping: evict until it fits under cap (or nothing is pooled). */
		p = NULL;
		if (pool.st.pooled && pool.st.mapped + ml > pool.st.cap)
			p = evict_locked(len, &vlen);
		if (!p) {
			pool.st.mapped += ml; /* counted before mmap(): the invariant holds */
			pool.st.misses++;
		}
		pthread_mutex_unlock(&pool.lock);
		if (!p)
			break;
		unmap(p, vlen);
	}
	p = mmap(NULL, ml, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		return p;
	pthread_mutex_lock(&pool.lock);
	pool.st.mapped -= ml;
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

void vfmig_payload_free(void *p, size_t len)
{
	size_t ml;

	if (!p)
		return;
	if (len < PAYLOAD_MMAP_MIN) {
		free(p);
		return;
	}
	ml = map_len(len);
	pthread_mutex_lock(&pool.lock);
	if (pool.st.mapped <= pool.st.cap) {
		int pick = -1;

		for (int i = 0; i < POOL_BINS; i++) {
			if (pool.bin[i].len == len) {
				pick = i;
				break;
			}
			if (!pool.bin[i].head && pick < 0)
				pick = i;
		}
		if (pick >= 0) {
			struct pool_buf *b = p;

			pool.bin[pick].len = len;
			b->next = pool.bin[pick].head;
			pool.bin[pick].head = b;
			pool.st.pooled += ml;
			pthread_mutex_unlock(&pool.lock);
			return;
		}
	}
	pthread_mutex_unlock(&pool.lock);
	unmap(p, ml);
}

void vfmig_payload_pool_grow(uint64_t bytes)
{
	pthread_mutex_lock(&pool.lock);
	pool.st.cap += bytes;
	pthread_mutex_unlock(&pool.lock);
}

/*
 * The pool cannot tell whose buffers it holds: a session that ends unmaps
 * everything pooled when it ends (its own buffers with the others'), so its
 * RSS falls back even while another session's room lives.  The buffers are
 * taken out and the cap lowered in one hold of the lock, so nobody ever sees
 * a pool holding buffers over its cap; they are unmapped after it.
 */
void vfmig_payload_pool_shrink(uint64_t bytes)
{
	struct pool_buf *out[POOL_BINS];
	size_t len[POOL_BINS];

	pthread_mutex_lock(&pool.lock);
	pool.st.cap -= MIN(bytes, pool.st.cap);
	for (int i = 0; i < POOL_BINS; i++) {
		out[i] = pool.bin[i].head;
		len[i] = map_len(pool.bin[i].len);
		pool.bin[i].head = NULL;
		for (struct pool_buf *b = out[i]; b; b = b->next)
			pool.st.evicted++;
	}
	pool.st.pooled = 0;
	pthread_mutex_unlock(&pool.lock);
	for (int i = 0; i < POOL_BINS; i++) {
		while (out[i]) {
			struct pool_buf *b = out[i];

			out[i] = b->next;
			unmap(b, len[i]);
		}
	}
}

void vfmig_payload_pool_stats(struct vfmig_payload_pool_stats *st)
{
	pthread_mutex_lock(&pool.lock);
	*st = pool.st;
	pthread_mutex_unlock(&pool.lock);
}
