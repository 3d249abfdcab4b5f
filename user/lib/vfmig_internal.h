/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vfmig_internal.h - what the library's files share and the unit tests see:
 * the wire format (transport.c), the reorder buffer (reorder.c), the error
 * state and the session object (session.c) with its helpers.
 *
 * Lock order of the whole library (each file repeats its part):
 *   session.lock  ->  multifd.lock, session.lock  ->  reorder.lock
 *     (only in vfmig_session_wake());
 *   errstate.lock, conn.send_lock, fake.lock: leaves.
 * vfmig_fail() takes errstate.lock, drops it, then wakes the waiters under
 * session.lock (taking multifd.lock and reorder.lock inside it): call it with
 * no lock held.
 */
#ifndef VFMIG_INTERNAL_H
#define VFMIG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <time.h>

#include "vfmig.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* ---- small helpers -------------------------------------------------------- */

static inline uint64_t vfmig_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* ---- log.c ---------------------------------------------------------------- */

enum { VFMIG_LOG_ERR, VFMIG_LOG_WARN, VFMIG_LOG_INFO, VFMIG_LOG_DEBUG };

struct vfmig_log {
	int verbose;
	const char *prefix;
};

void vfmig_log(const struct vfmig_log *lg, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define log_err(lg, ...) vfmig_log(lg, VFMIG_LOG_ERR, __VA_ARGS__)
#define log_warn(lg, ...) vfmig_log(lg, VFMIG_LOG_WARN, __VA_ARGS__)
#define log_info(lg, ...) vfmig_log(lg, VFMIG_LOG_INFO, __VA_ARGS__)
#define log_dbg(lg, ...) vfmig_log(lg, VFMIG_LOG_DEBUG, __VA_ARGS__)

/* ---- device.c --------------------------------------------------------------- */

struct vfmig_device {
	char name[128];
	char compat[VFMIG_COMPAT_LEN];
	uint64_t flags;
	uint32_t config_size;
	const struct vfmig_device_ops *ops;
	void *priv;
};

ssize_t vfmig_device_read(struct vfmig_device *dev, void *buf, size_t len);
/* Writes all of buf (loops over short writes); -errno on failure. */
int vfmig_device_write_all(struct vfmig_device *dev, const void *buf, size_t len);

/* ---- transport.c: the wire format ------------------------------------------ */

#define VFMIG_MAGIC 0x474d4656u /* "VFMG" in little-endian byte order */
#define VFMIG_FRAME_VERSION 1
#define VFMIG_PROTO_VERSION 1
#define VFMIG_PROTO_MIN_VERSION 1
#define VFMIG_HDR_LEN 32
#define VFMIG_IDX_INVALID UINT32_MAX

enum vfmig_ftype {
	VFMIG_F_HELLO = 1,	      /* src->dst main: session parameters, devices */
	VFMIG_F_HELLO_ACK = 2,	      /* dst->src main: verdict and agreed options */
	VFMIG_F_CHANNEL_HELLO = 3,    /* src->dst multifd: session id, channel id */
	VFMIG_F_READY = 4,	      /* dst->src main: channels up, devices RESUMING */
	VFMIG_F_PRECOPY_DATA = 5,     /* src->dst main: device, idx, PRE_COPY bytes */
	VFMIG_F_INIT_DATA_SENT = 6,   /* src->dst main: device's initial bytes all sent */
	VFMIG_F_SWITCHOVER_ACK = 7,   /* dst->src main: device's initial bytes loaded */
	VFMIG_F_SWITCHOVER_START = 8, /* src->dst main: precopy over, start loading */
	VFMIG_F_DEVICE_STATE = 9,     /* src->dst multifd (or main): STOP_COPY chunk */
	VFMIG_F_CHANNEL_END = 10,     /* src->dst multifd: no more packets here */
	VFMIG_F_LOADED = 11,	      /* dst->src main: all devices in phase-1 state */
	VFMIG_F_COMMIT = 12,	      /* src->dst main: go; source will not resume */
	VFMIG_F_COMPLETE = 13,	      /* dst->src main: all devices RUNNING + stats */
	VFMIG_F_ERROR = 14,	      /* either way, main: class, errno, message */
	VFMIG_F_PING = 15,	      /* src->dst main: keepalive during idle precopy */
	VFMIG_F_NR,
};

#define VFMIG_FLAG_CONFIG (1u << 0) /* DEVICE_STATE: last packet, config state */

/* Option bits of HELLO / HELLO_ACK. */
#define VFMIG_OPT_MULTIFD (1u << 0)
#define VFMIG_OPT_SWITCHOVER_ACK (1u << 1)
#define VFMIG_OPT_LOAD_CONFIG_AFTER_ITER (1u << 2)
#define VFMIG_OPT_ALL \
	(VFMIG_OPT_MULTIFD | VFMIG_OPT_SWITCHOVER_ACK | VFMIG_OPT_LOAD_CONFIG_AFTER_ITER)

#define VFMIG_HELLO_FIXED 32
#define VFMIG_HELLO_DEV_LEN 88
#define VFMIG_HELLO_MAX (VFMIG_HELLO_FIXED + VFMIG_MAX_DEVICES * VFMIG_HELLO_DEV_LEN)
#define VFMIG_HELLO_ACK_FIXED 16
#define VFMIG_MSG_MAX 256
#define VFMIG_CHANNEL_HELLO_LEN 16
#define VFMIG_COMPLETE_LEN 32
#define VFMIG_ERROR_FIXED 16

struct vfmig_frame_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t flags;
	uint32_t device;
	uint32_t idx;
	uint32_t length;
	uint64_t checksum;
};

/* Why a frame was refused. */
enum vfmig_ferr {
	VFMIG_FERR_NONE = 0,
	VFMIG_FERR_EOF, /* clean end of stream at a frame boundary */
	VFMIG_FERR_IO,	/* socket error (errno in the error) */
	VFMIG_FERR_TIMEOUT,
	VFMIG_FERR_TRUNC_HEADER, /* stream ended inside a header */
	VFMIG_FERR_TRUNC_PAYLOAD,
	VFMIG_FERR_BAD_MAGIC,
	VFMIG_FERR_BAD_VERSION,
	VFMIG_FERR_BAD_TYPE,
	VFMIG_FERR_BAD_FLAGS,
	VFMIG_FERR_BAD_LENGTH, /* oversized or wrong for the type */
	VFMIG_FERR_BAD_DEVICE, /* unknown device index */
	VFMIG_FERR_BAD_IDX,    /* idx overflow, or nonzero where it must be 0 */
	VFMIG_FERR_BAD_CHECKSUM,
	VFMIG_FERR_NOMEM,
	VFMIG_FERR_NR,
};
const char *vfmig_ferr_name(enum vfmig_ferr e);

/* What a receiver accepts; ndevices == 0 means "before the handshake". */
struct vfmig_limits {
	unsigned ndevices;
	uint32_t max_chunk;
};

void vfmig_hdr_pack(uint8_t out[VFMIG_HDR_LEN], const struct vfmig_frame_hdr *h);
void vfmig_hdr_unpack(const uint8_t in[VFMIG_HDR_LEN], struct vfmig_frame_hdr *h);
uint64_t vfmig_frame_checksum(const uint8_t hdr[VFMIG_HDR_LEN], const void *payload, size_t len);
/* Checks everything knowable from the header alone (not the checksum). */
enum vfmig_ferr vfmig_hdr_validate(const struct vfmig_frame_hdr *h, const struct vfmig_limits *lim,
				   char *why, size_t whylen);
/* Encode a whole frame (header + payload) into buf (tests, crafting). */
size_t vfmig_frame_encode(uint8_t *buf, uint16_t type, uint32_t flags, uint32_t device,
			  uint32_t idx, const void *payload, uint32_t len);

struct vfmig_conn {
	int fd;
	unsigned id; /* 0 main, 1..n multifd */
	pthread_mutex_t send_lock;
	struct vfmig_channel_stats *stats; /* may be NULL */
};

int vfmig_conn_init(struct vfmig_conn *c, int fd, unsigned id, struct vfmig_channel_stats *st);
void vfmig_conn_destroy(struct vfmig_conn *c);
/* Wake anything blocked on this socket (idempotent, async-signal-safe). */
void vfmig_conn_shutdown(struct vfmig_conn *c);

/* Send one frame; whole or error.  Returns 0 or -errno (-ETIMEDOUT on SO_SNDTIMEO). */
int vfmig_send_frame(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
		     uint32_t idx, const void *payload, uint32_t len);
/* Like vfmig_send_frame but never blocks on send_lock (error reports). */
int vfmig_send_frame_try(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
			 uint32_t idx, const void *payload, uint32_t len);

struct vfmig_frame {
	struct vfmig_frame_hdr h;
	uint8_t *payload; /* malloc'ed, NULL when length == 0 */
	uint64_t rx_ns;	  /* from the header's arrival to the payload's end */
};

/*
 * Receive and validate one frame.  timeout_ms < 0 waits forever (a shutdown()
 * wakes it).  Returns VFMIG_FERR_NONE and fills *f, or an error code with a
 * message in why (errno of an I/O error in *err_no).
 */
enum vfmig_ferr vfmig_recv_frame(int fd, const struct vfmig_limits *lim, int timeout_ms,
				 struct vfmig_frame *f, int *err_no, char *why, size_t whylen);
void vfmig_frame_free(struct vfmig_frame *f);

/* Handshake payloads. */
struct vfmig_hello_dev {
	uint64_t mig_flags;
	uint64_t stop_copy_estimate;
	uint32_t config_size;
	char compat[VFMIG_COMPAT_LEN];
};

struct vfmig_hello {
	uint32_t proto_version;
	uint32_t min_proto_version;
	uint64_t session_id;
	uint32_t options;
	uint32_t nchannels;
	uint32_t chunk_size;
	uint32_t ndevices;
	struct vfmig_hello_dev dev[VFMIG_MAX_DEVICES];
};

size_t vfmig_hello_encode(uint8_t *buf, size_t len, const struct vfmig_hello *h);
int vfmig_hello_decode(const uint8_t *buf, size_t len, struct vfmig_hello *h, char *why,
		       size_t whylen);

/* The destination's view, to check a HELLO against. */
struct vfmig_local {
	unsigned ndevices;
	struct vfmig_device **devs;
	const struct vfmig_options *o;
};

/*
 * Decide whether the destination accepts @h.  Returns VFMIG_OK and the agreed
 * option bits in *agreed, or VFMIG_ERR_INCOMPATIBLE with the reason in why.
 */
enum vfmig_errclass vfmig_hello_check(const struct vfmig_hello *h, const struct vfmig_local *l,
				      uint32_t *agreed, char *why, size_t whylen);

/* Sockets. */
int vfmig_connect(const struct vfmig_addr *a, unsigned timeout_ms, struct vfmig_error *err);
/* Accept with a timeout; returns fd, -ETIMEDOUT, -ECANCELED (wakefd readable) or -errno. */
int vfmig_accept(int lfd, int timeout_ms, int wakefd);
int vfmig_sock_setup(int fd, unsigned timeout_ms);

/* ---- errstate (session.c) ----------------------------------------------------- */

struct vfmig_errstate {
	pthread_mutex_t lock;
	bool set;
	bool weak; /* recorded by vfmig_session_abort(): a peer's report may replace it */
	struct vfmig_error e;
	atomic_bool abort;
};

/* ---- reorder.c: destination reorder buffer ---------------------------------------- */

struct vfmig_slot {
	bool present;
	uint32_t flags;
	uint32_t len;
	uint8_t *data;
};

struct vfmig_reorder_dev {
	struct vfmig_slot *ring; /* window slots, ring[idx % window] */
	uint32_t next_idx;	 /* next idx the load thread needs */
	uint32_t max_seen;	 /* highest idx pushed + 1 */
	uint32_t last_idx;	 /* idx of the CONFIG packet, VFMIG_IDX_INVALID if unknown */
	bool writing;		 /* the load thread holds a popped chunk */
	bool complete;		 /* config packet popped */
};

struct vfmig_reorder {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* packet added, budget freed, producer left, abort */
	unsigned ndev;
	uint32_t window;
	uint64_t budget;
	uint64_t queued; /* bytes held in slots + chunks being written */
	uint64_t peak;
	unsigned producers; /* producers still running */
	unsigned blocked;   /* producers waiting for room (for tests and stats) */
	uint64_t epoch;	    /* bumped by every change that may let a producer in */
	unsigned stalled;   /* producers that found no room since the last epoch */
	int failed;	    /* sticky: -ENOBUFS, -ECANCELED, -EPIPE */
	char why[160];
	struct vfmig_reorder_dev *dev;
};

int vfmig_reorder_init(struct vfmig_reorder *r, unsigned ndev, unsigned producers, uint64_t budget,
		       uint32_t window);
void vfmig_reorder_destroy(struct vfmig_reorder *r);
/*
 * Queue a packet; on success the buffer belongs to the reorder buffer.
 * Blocks while the budget or window is full (backpressure) unless the packet
 * is the one its device needs next.  Errors: -ENODEV unknown device, -ERANGE
 * idx invalid / beyond the config packet / config before data, -EEXIST
 * duplicate, -EPROTO second config packet, -ENOBUFS stuck (budget cannot hold
 * the skew), -ECANCELED aborted.  why explains.
 */
int vfmig_reorder_push(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint32_t flags,
		       uint8_t *data, uint32_t len, char *why, size_t whylen);
/*
 * Next in-order chunk of @dev: returns 0 and the chunk (caller owns data and
 * must call vfmig_reorder_release()), or a negative error (-ECANCELED, -ENOBUFS,
 * -EPIPE: every producer left before the device was complete).
 */
int vfmig_reorder_pop(struct vfmig_reorder *r, uint32_t dev, struct vfmig_slot *out, uint32_t *idx);
void vfmig_reorder_release(struct vfmig_reorder *r, uint32_t dev, uint32_t len);
/* A producer finished (its channel ended or failed). */
void vfmig_reorder_producer_exit(struct vfmig_reorder *r);
void vfmig_reorder_abort(struct vfmig_reorder *r);
uint64_t vfmig_reorder_peak(struct vfmig_reorder *r);
const char *vfmig_reorder_why(struct vfmig_reorder *r, char *buf, size_t len);

/* ---- multifd.c (source) ------------------------------------------------------------------- */

struct vfmig_buf {
	uint32_t dev, idx, flags, len;
	uint32_t cap;
	uint8_t *data;
};

struct vfmig_session;

struct vfmig_mf_channel {
	struct vfmig_conn *conn;
	pthread_t thread;
	bool started;
	bool pending;	       /* job holds a packet to send */
	struct vfmig_buf *job; /* NULL while idle */
	pthread_cond_t cond;
	bool send_end; /* send CHANNEL_END when told to quit */
};

/*
 * Full buffers wait in a FIFO (at most one per device) until a channel is
 * idle; empty ones wait in a pool.  2 x devices + channels buffers in all:
 * one per device being filled, one per device queued, one per channel.
 */
struct vfmig_multifd {
	struct vfmig_session *s;
	pthread_mutex_t lock; /* protects quit, next, the channels, the queue and the pool */
	pthread_cond_t ready; /* a queued buffer went to a channel */
	bool quit;
	unsigned next; /* round-robin cursor over idle channels */
	unsigned nch, ndev;
	struct vfmig_mf_channel *ch;
	struct vfmig_buf **queue; /* [ndev] ring, oldest first */
	unsigned q_head, q_len;
	bool *queued;		 /* [ndev]: device has a buffer in queue */
	struct vfmig_buf **pool; /* [nch + ndev] empty buffers */
	unsigned pool_len;
};

int vfmig_multifd_start(struct vfmig_multifd *mf, struct vfmig_session *s);
int vfmig_multifd_send(struct vfmig_multifd *mf, struct vfmig_buf **bufp);
int vfmig_multifd_save_devices(struct vfmig_multifd *mf);
void vfmig_multifd_join_saves(struct vfmig_multifd *mf);
/* Tell channels to flush (CHANNEL_END) and join them. */
void vfmig_multifd_finish(struct vfmig_multifd *mf);
void vfmig_multifd_wake(struct vfmig_multifd *mf);
/* Free what vfmig_multifd_start() allocated; safe if it never ran. */
void vfmig_multifd_destroy(struct vfmig_multifd *mf);
struct vfmig_buf *vfmig_buf_new(uint32_t cap);
void vfmig_buf_free(struct vfmig_buf *b);

/* ---- session ------------------------------------------------------------------ */

struct vfmig_dev_state {
	/* precopy */
	bool precopy; /* device is in a PRE_COPY state */
	bool init_sent;
	bool acked;
	uint32_t pre_idx; /* next precopy idx (both sides check it) */
	/* source STOP_COPY */
	pthread_t save_thread;
	bool save_started;
	/* destination load */
	pthread_t load_thread;
	bool load_started;
};

struct vfmig_session {
	bool source;
	struct vfmig_options o;
	struct vfmig_log log;
	unsigned ndev;
	struct vfmig_device **devs;
	struct vfmig_dev_state *ds;

	struct vfmig_errstate es;

	pthread_mutex_t lock; /* everything below that threads share */
	pthread_cond_t cond;
	bool ready, loaded, complete, committed;
	unsigned acks;
	unsigned data_done; /* destination: devices whose data is written */
	unsigned loads_done;

	uint32_t options; /* agreed VFMIG_OPT_* */
	unsigned nch;	  /* multifd channels, 0 when off */
	uint32_t chunk;
	uint64_t session_id;
	struct vfmig_limits lim;

	struct vfmig_conn main;
	bool main_up;
	struct vfmig_conn *chans; /* [nch] */
	unsigned chans_up;
	int wakefd; /* eventfd: destination main loop */

	struct vfmig_multifd mf; /* source */
	bool mf_up;
	pthread_t rp_thread; /* source: return path reader */
	bool rp_started;
	pthread_t *recv_threads; /* destination: multifd readers */
	unsigned recv_started;
	struct vfmig_reorder ro; /* destination */
	bool ro_up;

	struct vfmig_stats st;
	atomic_uint_fast64_t stopcopy_bytes;
	atomic_uint_fast64_t config_bytes;
	uint64_t t_start, t_down;
	uint64_t remote_down_ns;
};

/* Record the first error (a peer's report replaces a transport error it
 * caused), set the abort flag and wake every waiter.  No lock may be held. */
void vfmig_fail(struct vfmig_session *s, enum vfmig_errclass cls, int err, int device,
		const char *where, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static inline bool vfmig_aborted(struct vfmig_session *s)
{
	return atomic_load(&s->es.abort);
}
/* "source" or "destination": where a failure of the session itself is reported. */
static inline const char *vfmig_side(const struct vfmig_session *s)
{
	return s->source ? "source" : "destination";
}
/* A frame could not be received; nothing when already aborted (our own
 * shutdown() woke the reader). */
void vfmig_fail_frame(struct vfmig_session *s, const char *where, enum vfmig_ferr fe, int err_no,
		      const char *why);
/* A send failed ("<what>: <strerror>"; -ETIMEDOUT: the peer stopped reading);
 * nothing when already aborted. */
void vfmig_fail_send(struct vfmig_session *s, const char *where, const char *what, int ret);
/* SET device i's state (vfmig_device_set_state()); a failure is recorded. */
int vfmig_set_state(struct vfmig_session *s, unsigned i, enum vfmig_state st,
		    enum vfmig_state recover);
/* Run fn(s, i) in a new thread; on failure records the error and returns -1. */
int vfmig_thread_start(struct vfmig_session *s, pthread_t *t,
		       void (*fn)(struct vfmig_session *s, unsigned i), unsigned i);
/* Wait on s->cond (s->lock held) until deadline; false on timeout. */
bool vfmig_session_wait(struct vfmig_session *s, uint64_t deadline_ns);
void vfmig_session_wake(struct vfmig_session *s);
void vfmig_progress(struct vfmig_session *s, enum vfmig_phase ph);

/* precopy.c */
int vfmig_precopy_start(struct vfmig_session *s);
int vfmig_precopy_run(struct vfmig_session *s);
/* Destination side of a PRECOPY_DATA / INIT_DATA_SENT frame. */
int vfmig_precopy_load(struct vfmig_session *s, const struct vfmig_frame *f);

/* recv.c (destination multifd readers) */
int vfmig_recv_start(struct vfmig_session *s);
void vfmig_recv_join(struct vfmig_session *s);
/*
 * Queue a received DEVICE_STATE frame in the reorder buffer (may wait:
 * backpressure) and count it in @st.  On success the payload belongs to the
 * reorder buffer (f->payload is NULL); on failure the error is recorded, the
 * frame is still the caller's and -1 is returned.
 */
int vfmig_recv_queue(struct vfmig_session *s, struct vfmig_channel_stats *st, struct vfmig_frame *f,
		     const char *where);

/* load.c (destination load threads) */
int vfmig_load_start(struct vfmig_session *s);
void vfmig_load_join(struct vfmig_session *s);

/* stats.c */
void vfmig_stats_finish(struct vfmig_session *s);

#endif /* VFMIG_INTERNAL_H */
