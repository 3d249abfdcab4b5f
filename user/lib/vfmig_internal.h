/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vfmig_internal.h - what the library's files share and the unit tests see.
 *
 * Layers, bottom up: frames and sockets (transport.h: transport.c, socket.c,
 * keepalive.c), payload codecs and the handshake policy (wire.c), the error
 * object (core.c), devices (device.c) and the two-phase device-set walks
 * (devset.c), the reorder buffer (reorder.c), the source's precopy (precopy.c) and multifd
 * senders (multifd.c), the destination's readers (recv.c) and loaders
 * (load.c).  Lower layers take narrow handles (a connection, a device, the
 * error object) and return errors; only source.c and dest.c hold the
 * session and orchestrate (core.c has what both share).
 *
 * Lock order of the whole library (each file repeats its part):
 *   session.lock -> multifd.lock, session.lock -> reorder.lock,
 *     session.lock -> loader.lock (only when vfmig_session_wake() wakes them);
 *   ctl.lock, conn.send_lock, keepalive.lock, loader.lock, fake.lock,
 *   the payload pool's lock (frame.c): leaves.
 * vfmig_fail() takes ctl.lock, drops it, then calls the owner's wake hook
 * (which takes session.lock and the locks above inside it): call it with no
 * lock held.
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
	char label[VFMIG_LABEL_LEN]; /* "" when not labelled */
	uint64_t flags;
	uint32_t config_size;
	const struct vfmig_device_ops *ops;
	void *priv;
};

ssize_t vfmig_device_read(struct vfmig_device *dev, void *buf, size_t len);
/* Writes all of buf (loops over short writes); -errno on failure. */
int vfmig_device_write_all(struct vfmig_device *dev, const void *buf, size_t len);
/* SET without recovery: a failing device is left where it is (never reset). */
int vfmig_device_set_state_keep(struct vfmig_device *dev, enum vfmig_state target,
				struct vfmig_error *err);

/* ---- core.c: the first-error-wins error object --------------------------- */

/*
 * What every lower layer gets instead of the session: record an error (the
 * first one wins), test the abort flag.  vfmig_fail() sets the flag and calls
 * wake(wake_arg) so the owner can wake its waiters; call it with no lock held.
 */
struct vfmig_ctl {
	pthread_mutex_t lock; /* leaf: protects set, weak, e */
	bool set;
	bool weak; /* recorded by vfmig_session_abort(): a peer's report may replace it */
	struct vfmig_error e;
	atomic_bool abort;
	const char *side; /* "source" or "destination" */
	struct vfmig_log *log;
	void (*wake)(void *arg);
	void *wake_arg;
};

int vfmig_ctl_init(struct vfmig_ctl *c, const char *side, struct vfmig_log *log);
void vfmig_ctl_destroy(struct vfmig_ctl *c);
void vfmig_fail(struct vfmig_ctl *c, enum vfmig_errclass cls, int err, int device,
		const char *where, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Like vfmig_fail but a later peer report (VFMIG_ERR_REMOTE) replaces it. */
void vfmig_fail_weak(struct vfmig_ctl *c, enum vfmig_errclass cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline bool vfmig_aborted(const struct vfmig_ctl *c)
{
	return atomic_load(&c->abort);
}
/* A frame could not be received / a send failed: recorded unless already aborted. */
void vfmig_fail_send(struct vfmig_ctl *c, const char *where, const char *what, int ret);
/* Forget the recorded error (a failure that no longer counts); the abort flag stays. */
void vfmig_ctl_clear(struct vfmig_ctl *c);
bool vfmig_ctl_weak(struct vfmig_ctl *c);
/* A copy of the recorded error. */
struct vfmig_error vfmig_ctl_error(struct vfmig_ctl *c);
/* Change the recorded class and append to the message (outcome notes). */
void vfmig_ctl_amend(struct vfmig_ctl *c, enum vfmig_errclass cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Run fn(arg, i) in a new thread; on failure records the error and returns -1. */
int vfmig_thread_start(struct vfmig_ctl *c, pthread_t *t, void (*fn)(void *arg, unsigned i),
		       void *arg, unsigned i);
/* pthread_cond_timedwait on a CLOCK_MONOTONIC condvar until deadline; false on timeout. */
bool vfmig_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *m, uint64_t deadline_ns);
int vfmig_cond_init_mono(pthread_cond_t *cv);

/* ---- transport.h: frames, connections, sockets, keepalive ------------------------ */

#include "transport.h"

/* ---- wire.c: payload codecs and the handshake policy ------------------------------ */

struct vfmig_hello_dev {
	uint64_t mig_flags;
	uint64_t stop_copy_estimate;
	uint32_t config_size;
	char compat[VFMIG_COMPAT_LEN];
	char label[VFMIG_LABEL_LEN];
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

/*
 * ERROR and HELLO_ACK payloads: four u32 (ERROR: class, errno, device, 0;
 * HELLO_ACK: status, options, channels, 0) and a message.
 */
struct vfmig_report {
	uint32_t a, b, c;
	char msg[VFMIG_MSG_MAX + 1]; /* control bytes from the wire replaced by '?' */
};
uint32_t vfmig_report_encode(uint8_t p[VFMIG_ERROR_FIXED + VFMIG_MSG_MAX], uint32_t a, uint32_t b,
			     uint32_t c, const char *msg);
void vfmig_report_decode(const struct vfmig_frame *f, struct vfmig_report *r);

struct vfmig_channel_hello {
	uint64_t session_id;
	uint32_t channel;
	uint32_t nchannels;
};
void vfmig_channel_hello_encode(uint8_t p[VFMIG_CHANNEL_HELLO_LEN],
				const struct vfmig_channel_hello *ch);
void vfmig_channel_hello_decode(const uint8_t p[VFMIG_CHANNEL_HELLO_LEN],
				struct vfmig_channel_hello *ch);

struct vfmig_complete {
	uint64_t dest_downtime_ns;
	uint64_t reorder_peak;
	uint64_t stopcopy_bytes;
};
void vfmig_complete_encode(uint8_t p[VFMIG_COMPLETE_LEN], const struct vfmig_complete *c);
void vfmig_complete_decode(const uint8_t p[VFMIG_COMPLETE_LEN], struct vfmig_complete *c);

/* ---- devset.c: the two-phase walks over a set of devices ------------------------- */

/*
 * Why a set of devices may be started.  The only place that lets a device
 * enter RUNNING_P2P or RUNNING during or after a migration: it refuses
 * without a reason that proves the peer does not run the same state.
 */
enum vfmig_go {
	VFMIG_GO_NONE = 0,	  /* no proof: refused */
	VFMIG_GO_NOT_COMMITTED,	  /* source: COMMIT was never (wholly) sent */
	VFMIG_GO_PEER_RESET,	  /* source: the destination reported its devices reset */
	VFMIG_GO_COMMIT_RECEIVED, /* destination: the source passed ownership */
};
const char *vfmig_go_name(enum vfmig_go why);

/*
 * Phase 1 of a stop: every P2P device from RUNNING/PRE_COPY to its P2P
 * state, so no device initiates a peer write before any device stops.
 * Returns 0 or -1 with the error recorded in @ctl.
 */
int vfmig_devset_quiesce(struct vfmig_device **devs, unsigned n, struct vfmig_ctl *ctl);
/*
 * Start every device, in two phases: every stopped P2P device to
 * RUNNING_P2P, then every device to RUNNING.  Source rollback (@why
 * NOT_COMMITTED or PEER_RESET): a device in ERROR is reset.  Destination
 * (COMMIT_RECEIVED): a failing device is left where it is, never reset, the
 * others still start.  Returns the number of devices that failed (their
 * errors described in *note, when given), or -EPERM without a proof.
 */
int vfmig_devset_start(struct vfmig_device **devs, unsigned n, enum vfmig_go why,
		       struct vfmig_log *log, char *note, size_t notelen);

/*
 * Put every device back in the state it had before the migration (@orig,
 * RUNNING or STOP): those that ran start again (vfmig_devset_start() with
 * @why), those that were stopped stop (a device in ERROR is reset, which
 * loses its state).  0, or < 0 with what failed in @note.
 */
int vfmig_devset_restore(struct vfmig_device **devs, unsigned n, const enum vfmig_state *orig,
			 enum vfmig_go why, struct vfmig_log *log, char *note, size_t len);

/* ---- reorder.c: destination reorder buffer ---------------------------------------- */

struct vfmig_slot {
	bool present;
	bool reserved; /* admitted from its header, payload being read */
	uint32_t flags;
	uint32_t len;
	uint8_t *data;
};

struct vfmig_reorder_dev {
	struct vfmig_slot *ring; /* window slots, ring[idx % window] */
	uint32_t next_idx;	 /* next idx the load thread needs */
	uint32_t max_seen;	 /* highest idx admitted + 1 */
	uint32_t last_idx;	 /* idx of the CONFIG packet, VFMIG_IDX_INVALID if unknown */
	bool writing;		 /* the load thread holds a popped chunk */
	bool complete;		 /* config packet popped */
	/* Its load thread's: next chunk present, failure/abort, every producer gone. */
	pthread_cond_t cond;
	uint64_t waits; /* times its load thread waited (tests) */
};

struct vfmig_reorder {
	pthread_mutex_t lock;
	pthread_cond_t room; /* producers: room may have appeared (epoch), failure/abort */
	unsigned ndev;
	uint32_t window;
	uint64_t budget;
	uint64_t queued; /* bytes admitted: slots, reservations, chunks being written */
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
 * Admit a packet from its header, before its payload is allocated: checks
 * device, idx, duplicates and the config rules, then waits while the budget
 * or window is full (backpressure) unless the packet is the one its device
 * needs next, and counts @len against the budget.  Errors: -ENODEV unknown
 * device, -ERANGE idx invalid / beyond the config packet / config before
 * data, -EEXIST duplicate, -EPROTO second config packet, -ENOBUFS stuck
 * (budget cannot hold the skew), -ECANCELED aborted.  why explains.
 */
int vfmig_reorder_reserve(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint32_t flags,
			  uint32_t len, char *why, size_t whylen);
/* The payload of a reserved packet arrived: it belongs to the buffer now. */
void vfmig_reorder_fill(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint8_t *data);
/* The payload of a reserved packet will never come. */
void vfmig_reorder_unreserve(struct vfmig_reorder *r, uint32_t dev, uint32_t idx);
/* reserve + fill (data must come from vfmig_payload_alloc()). */
int vfmig_reorder_push(struct vfmig_reorder *r, uint32_t dev, uint32_t idx, uint32_t flags,
		       uint8_t *data, uint32_t len, char *why, size_t whylen);
/*
 * Next in-order chunk of @dev: returns 0 and the chunk (caller owns data and
 * must free it with vfmig_payload_free() and call vfmig_reorder_release()),
 * or a negative error (-ECANCELED, -ENOBUFS, -EPIPE: every producer left
 * before the device was complete).
 */
int vfmig_reorder_pop(struct vfmig_reorder *r, uint32_t dev, struct vfmig_slot *out, uint32_t *idx);
void vfmig_reorder_release(struct vfmig_reorder *r, uint32_t dev, uint32_t len);
/* A producer finished (its channel ended or failed). */
void vfmig_reorder_producer_exit(struct vfmig_reorder *r);
void vfmig_reorder_abort(struct vfmig_reorder *r);
uint64_t vfmig_reorder_peak(struct vfmig_reorder *r);
const char *vfmig_reorder_why(struct vfmig_reorder *r, char *buf, size_t len);
/* struct vfmig_admit callbacks (arg: the reorder buffer) reserving DEVICE_STATE payloads. */
int vfmig_reorder_admit(void *arg, const struct vfmig_frame_hdr *h, char *why, size_t whylen);
void vfmig_reorder_admit_release(void *arg, const struct vfmig_frame_hdr *h);

/* ---- multifd.c (source): channel senders and per-device save threads ---------------- */

struct vfmig_buf {
	uint32_t dev, idx, flags, len;
	uint32_t cap;
	uint8_t *data;
};

struct vfmig_mf_channel {
	struct vfmig_multifd *mf;
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
	struct vfmig_ctl *ctl;
	struct vfmig_log *log;
	struct vfmig_device **devs;
	uint32_t chunk;
	atomic_uint_fast64_t *data_bytes, *config_bytes; /* counters the source reports */
	pthread_mutex_t lock; /* protects quit, next, the channels, the queue and the pool */
	pthread_cond_t ready; /* a queued buffer went to a channel */
	bool quit;
	bool up;       /* lock, conds and buffers exist */
	unsigned next; /* round-robin cursor over idle channels */
	unsigned nch, ndev;
	struct vfmig_mf_channel *ch;
	struct vfmig_buf **queue; /* [ndev] ring, oldest first */
	unsigned q_head, q_len;
	bool *queued;		 /* [ndev]: device has a buffer in queue */
	struct vfmig_buf **pool; /* [nch + ndev] empty buffers */
	unsigned pool_len;
	pthread_t *save_threads; /* [ndev] */
	bool *save_started;
	uint32_t first_idx[VFMIG_MAX_DEVICES]; /* STOP_COPY idx after the precopy packets */
};

/* Channels are @conns[0..nconn-1] (the main connection when multifd is off). */
int vfmig_multifd_start(struct vfmig_multifd *mf, struct vfmig_ctl *ctl, struct vfmig_log *log,
			struct vfmig_conn **conns, unsigned nconn, bool send_end,
			struct vfmig_device **devs, unsigned ndev, uint32_t chunk,
			atomic_uint_fast64_t *data_bytes, atomic_uint_fast64_t *config_bytes);
int vfmig_multifd_send(struct vfmig_multifd *mf, struct vfmig_buf **bufp);
/*
 * Every device to STOP_COPY and its data out: one thread per device, or with
 * @serial one device after another in the caller's thread (--multifd off,
 * QEMU's path without multifd device state transfer).
 */
int vfmig_multifd_save_devices(struct vfmig_multifd *mf, bool serial);
void vfmig_multifd_join_saves(struct vfmig_multifd *mf);
/* Tell channels to flush (CHANNEL_END) and join them. */
void vfmig_multifd_finish(struct vfmig_multifd *mf);
void vfmig_multifd_wake(struct vfmig_multifd *mf);
/* Free what vfmig_multifd_start() allocated; safe if it never ran. */
void vfmig_multifd_destroy(struct vfmig_multifd *mf);
struct vfmig_buf *vfmig_buf_new(uint32_t cap);
void vfmig_buf_free(struct vfmig_buf *b);

/* ---- precopy.c (source): PRE_COPY iterations and switchover-ack -------------------- */

struct vfmig_precopy {
	struct vfmig_ctl *ctl;
	struct vfmig_log *log;
	struct vfmig_conn *main;
	struct vfmig_device **devs;
	unsigned ndev;
	uint32_t chunk;
	bool sack;	  /* switchover-ack agreed */
	bool reinit_ok;	  /* PRECOPY_REINIT agreed: the destination acks a new generation */
	bool opt_in;	  /* opt precopying devices in to PRECOPY_INFOv2 */
	uint64_t stop_ns; /* 0, or when reading must pause for a limit to be judged */
	const struct vfmig_options *o;
	/* Shared with the return-path thread, under *lock; *cond wakes the loop. */
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	bool precopy[VFMIG_MAX_DEVICES]; /* device is in a PRE_COPY state */
	bool v2[VFMIG_MAX_DEVICES];	 /* device opted in to PRECOPY_INFOv2: REINIT is trusted */
	bool init_sent[VFMIG_MAX_DEVICES];
	bool acked[VFMIG_MAX_DEVICES];
	/*
	 * Generation of each device's initial bytes: the idx of its INIT_DATA_SENT,
	 * bumped by a REINIT that follows one; ack_next is the generation the next
	 * SWITCHOVER_ACK must carry (the destination answers each INIT_DATA_SENT
	 * once, in order): one below gen is stale, never counted.
	 */
	uint32_t gen[VFMIG_MAX_DEVICES];
	uint32_t ack_next[VFMIG_MAX_DEVICES];
	unsigned acks;
	bool decided;	  /* under *lock: switching over; any REINIT now fails (sack) */
	bool reinit_seen; /* a REINIT in this pass: the acks are due again */
	uint32_t pre_idx[VFMIG_MAX_DEVICES];
	struct vfmig_stats *st;
	void (*progress)(void *arg, enum vfmig_phase ph);
	void *progress_arg;
	/*
	 * PRECOPY_MULTIFD: mf's channels carry the precopy data, pre_idx is each
	 * device's DEVICE_STATE sequence (its STOP_COPY chunks follow it), and
	 * every precopying device has a worker thread that does its share of a
	 * pass.  Under *lock: w_round (bumped to start a pass, *wcond wakes the
	 * workers), w_busy (workers still in the pass; the last broadcasts
	 * *cond), w_moved, w_quit.
	 */
	struct vfmig_multifd *mf;
	pthread_cond_t *wcond;
	unsigned w_round, w_busy;
	uint64_t w_moved;
	bool w_quit;
	pthread_t w_thread[VFMIG_MAX_DEVICES];
	bool w_started[VFMIG_MAX_DEVICES];
};

int vfmig_precopy_start(struct vfmig_precopy *pc);
/* Precopy until the switchover decision, then the REINIT check (engine-design.rst). */
int vfmig_precopy_run(struct vfmig_precopy *pc);
/*
 * A SWITCHOVER_ACK for @dev, generation @gen, arrived (return-path thread):
 * 0 counted, 1 stale (an older generation, ignored), -EPROTO if unexpected.
 */
int vfmig_precopy_ack(struct vfmig_precopy *pc, unsigned dev, uint32_t gen);
unsigned vfmig_precopy_acks_needed(const struct vfmig_precopy *pc);

/* The destination's side of precopy: applies PRECOPY_DATA in stream order and
 * answers INIT_DATA_SENT with SWITCHOVER_ACK (its main loop calls it). */
struct vfmig_precopy_load {
	struct vfmig_ctl *ctl;
	struct vfmig_log *log;
	struct vfmig_conn *main;
	struct vfmig_device **devs;
	bool sack;
	bool reinit_ok; /* PRECOPY_REINIT agreed: generations after 0 are acked too */
	struct vfmig_stats *st;
	/* Device i's is only touched by whoever applies its precopy data. */
	uint32_t next_gen[VFMIG_MAX_DEVICES]; /* the INIT_DATA_SENT generation due next */
	uint32_t pre_idx[VFMIG_MAX_DEVICES];
	/* Counted by the main loop or (PRECOPY_MULTIFD) the load threads. */
	atomic_uint_fast64_t precopy_bytes;
	atomic_uint reinits;
};
int vfmig_precopy_load(struct vfmig_precopy_load *pl, const struct vfmig_frame *f);
/*
 * Device @i's initial bytes (generation @gen) are all written to it: check
 * the generation and send SWITCHOVER_ACK (main loop, or a load thread with
 * PRECOPY_MULTIFD).  0, or -1 with the error recorded.
 */
int vfmig_precopy_init_loaded(struct vfmig_precopy_load *pl, unsigned i, uint32_t gen,
			      const char *where);

/* ---- recv.c and load.c (destination) -------------------------------------------------- */

struct vfmig_loader {
	struct vfmig_ctl *ctl;
	struct vfmig_log *log;
	struct vfmig_device **devs;
	unsigned ndev;
	struct vfmig_reorder *ro;
	struct vfmig_limits lim;
	bool config_after_iter;
	/* PRECOPY_MULTIFD: each device's sequence starts with its precopy data (pl applies
	 * the INIT_SENT markers), and the load threads run from READY on. */
	bool precopy_mf;
	struct vfmig_precopy_load *pl;
	int wakefd; /* written when a load thread ends */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* config barrier */
	unsigned data_done;  /* devices whose data is written */
	unsigned loads_done; /* devices loaded completely */
	atomic_uint_fast64_t data_bytes, config_bytes;
	pthread_t load_threads[VFMIG_MAX_DEVICES];
	bool load_started[VFMIG_MAX_DEVICES];
	struct vfmig_conn **chans;
	unsigned nch;
	pthread_t *recv_threads;
	unsigned recv_started;
};

int vfmig_loader_init(struct vfmig_loader *ld);
void vfmig_loader_destroy(struct vfmig_loader *ld);
/* recv.c: one reader per multifd channel. */
int vfmig_recv_start(struct vfmig_loader *ld);
void vfmig_recv_join(struct vfmig_loader *ld);
/*
 * A DEVICE_STATE frame whose payload was admitted (reserved) in the reorder
 * buffer: hand it over and count it.  On success the payload belongs to the
 * reorder buffer (f->payload is NULL).
 */
void vfmig_recv_queue(struct vfmig_loader *ld, struct vfmig_channel_stats *st,
		      struct vfmig_frame *f);
/* Record the error of a refused admission. */
void vfmig_recv_refused(struct vfmig_loader *ld, int err, int device, const char *where,
			const char *why);
/* load.c: one load thread per device. */
int vfmig_load_start(struct vfmig_loader *ld);
void vfmig_load_join(struct vfmig_loader *ld);
unsigned vfmig_loads_done(struct vfmig_loader *ld);

/* ---- test access (core.c): what unit tests may reach of a session ------------------ */

struct vfmig_session;
/* Connection @id of a session (0 the main channel, 1..n multifd), NULL if none. */
struct vfmig_conn *vfmig_test_conn(struct vfmig_session *s, unsigned id);
/* Source (source.c): the switchover is decided; device @dev's initial-data generation. */
bool vfmig_test_switchover_decided(struct vfmig_session *s);
uint32_t vfmig_test_init_gen(struct vfmig_session *s, unsigned dev);
/* Destination (dest.c): channel readers waiting for room in the reorder buffer now. */
unsigned vfmig_test_reorder_blocked(struct vfmig_session *s);

#endif /* VFMIG_INTERNAL_H */
