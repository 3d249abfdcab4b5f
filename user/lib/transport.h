/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * transport.h - the engine's wire below the payloads: frames and their
 * validation (frame.c), bounded connections (transport.c), their TLS
 * (tls.c), sockets (socket.c) and liveness (keepalive.c).  It knows nothing of sessions:
 * callers pass a connection, limits, an admission hook and the abort flag.
 *
 * Locks: conn.send_lock and keepalive.lock are leaves.
 */
#ifndef VFMIG_TRANSPORT_H
#define VFMIG_TRANSPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfmig.h"

struct sockaddr;
struct vfmig_ctl;
struct vfmig_tls_sess;

#define VFMIG_MAGIC 0x474d4656u /* "VFMG" in little-endian byte order */
#define VFMIG_FRAME_VERSION 1
#define VFMIG_PROTO_VERSION 2
#define VFMIG_PROTO_MIN_VERSION 2
#define VFMIG_HDR_LEN 32
#define VFMIG_IDX_INVALID UINT32_MAX

enum vfmig_ftype {
	VFMIG_F_HELLO = 1,	      /* src->dst main: session parameters, devices */
	VFMIG_F_HELLO_ACK = 2,	      /* dst->src main: verdict and agreed options */
	VFMIG_F_CHANNEL_HELLO = 3,    /* src->dst multifd: session id, channel id */
	VFMIG_F_READY = 4,	      /* dst->src main: channels up, devices RESUMING */
	VFMIG_F_PRECOPY_DATA = 5,     /* src->dst main: device, idx, PRE_COPY bytes */
	VFMIG_F_INIT_DATA_SENT = 6,   /* src->dst main: device's initial bytes all sent (idx:
				       * their generation, 0 unless PRECOPY_REINIT) */
	VFMIG_F_SWITCHOVER_ACK = 7,   /* dst->src main: device's initial bytes loaded (idx:
				       * the generation it acknowledges) */
	VFMIG_F_SWITCHOVER_START = 8, /* src->dst main: precopy over, start loading */
	VFMIG_F_DEVICE_STATE = 9,     /* src->dst multifd (or main): STOP_COPY chunk */
	VFMIG_F_CHANNEL_END = 10,     /* src->dst multifd: no more packets here */
	VFMIG_F_LOADED = 11,	      /* dst->src main: every device loaded and STOP */
	VFMIG_F_COMMIT = 12,	      /* src->dst main: ownership passes to the destination */
	VFMIG_F_COMPLETE = 13,	      /* dst->src main: all devices RUNNING + stats */
	VFMIG_F_ERROR = 14,	      /* either way, main: class, errno, message, outcome flags */
	VFMIG_F_PING = 15,	      /* either way, any channel: liveness */
	VFMIG_F_NR,
};

#define VFMIG_FLAG_CONFIG (1u << 0) /* DEVICE_STATE: last packet, config state */
/*
 * DEVICE_STATE on a multifd channel with PRECOPY_MULTIFD: PRE_COPY bytes, and
 * the INIT_DATA_SENT marker (a 4-byte payload, the generation), both in the
 * device's one sequence of idx before its STOP_COPY chunks.
 */
#define VFMIG_FLAG_PRECOPY (1u << 1)
#define VFMIG_FLAG_INIT_SENT (1u << 2)
#define VFMIG_INIT_SENT_LEN 4
/* ERROR flags: what the sender's devices are doing (see engine-design.rst). */
#define VFMIG_ERRF_RESET (1u << 0)     /* destination: not committed, every device reset */
#define VFMIG_ERRF_COMMITTED (1u << 1) /* destination: COMMIT received, it owns the state */

/* Option bits of HELLO / HELLO_ACK. */
#define VFMIG_OPT_MULTIFD (1u << 0)
#define VFMIG_OPT_SWITCHOVER_ACK (1u << 1)
#define VFMIG_OPT_LOAD_CONFIG_AFTER_ITER (1u << 2)
/*
 * PRECOPY_INFOv2 REINIT: a device's initial data may start over, so
 * INIT_DATA_SENT may come again with a higher generation in its idx, each
 * answered by a SWITCHOVER_ACK echoing it.  The source offers it; the
 * destination may drop it from the agreed options (it then accepts only
 * generation 0, and the source fails a migration whose device asks for a
 * fresh ack).
 */
#define VFMIG_OPT_PRECOPY_REINIT (1u << 3)
/*
 * Precopy over the multifd channels (only with MULTIFD): each device's
 * PRE_COPY bytes and INIT_DATA_SENT travel as DEVICE_STATE packets flagged
 * PRECOPY / INIT_SENT, in the same per-device sequence as its STOP_COPY
 * chunks, and the destination's load threads apply them from READY on.
 * The main channel then carries control only.
 */
#define VFMIG_OPT_PRECOPY_MULTIFD (1u << 4)
#define VFMIG_OPT_ALL                                                                      \
	(VFMIG_OPT_MULTIFD | VFMIG_OPT_SWITCHOVER_ACK | VFMIG_OPT_LOAD_CONFIG_AFTER_ITER | \
	 VFMIG_OPT_PRECOPY_REINIT | VFMIG_OPT_PRECOPY_MULTIFD)

#define VFMIG_HELLO_FIXED 32
#define VFMIG_HELLO_DEV_LEN 120
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
	VFMIG_FERR_CANCELLED, /* the abort flag was set while waiting */
	VFMIG_FERR_REFUSED,   /* the payload's admission (reorder budget) refused it */
	VFMIG_FERR_NR,
};
const char *vfmig_ferr_name(enum vfmig_ferr e);
/* The error class of a frame error. */
enum vfmig_errclass vfmig_ferr_class(enum vfmig_ferr fe);
/* A frame could not be received: recorded (core.c) unless already aborted. */
void vfmig_fail_frame(struct vfmig_ctl *c, const char *where, enum vfmig_ferr fe, int err_no,
		      const char *why);

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
/*
 * The checksum of a frame on a connection: over the header and the payload,
 * or on a TLS connection (@tls) over the header only, TLS 1.3's AEAD tag
 * authenticating every payload byte already (the hash cost 8.7 % of the CPU
 * of a TLS migration).
 */
uint64_t vfmig_frame_checksum_on(bool tls, const uint8_t hdr[VFMIG_HDR_LEN], const void *payload,
				 size_t len);
/* The header of a frame, its checksum (vfmig_frame_checksum_on()) included. */
void vfmig_hdr_seal(uint8_t hdr[VFMIG_HDR_LEN], bool tls, uint16_t type, uint32_t flags,
		    uint32_t device, uint32_t idx, const void *payload, uint32_t len);
/* "HELLO", "DEVICE_STATE", ... ("?" when unknown). */
const char *vfmig_ftype_name(uint16_t t);
/* Encode a whole frame (header + payload) into buf (tests, crafting). */
size_t vfmig_frame_encode(uint8_t *buf, uint16_t type, uint32_t flags, uint32_t device,
			  uint32_t idx, const void *payload, uint32_t len);
/* The same for a connection that is TLS (@tls) or not. */
size_t vfmig_frame_encode_on(bool tls, uint8_t *buf, uint16_t type, uint32_t flags, uint32_t device,
			     uint32_t idx, const void *payload, uint32_t len);

/*
 * Payload buffers: large ones are mmap()ed so that freeing them returns the
 * memory, and kept in a pool for reuse within the room registered with
 * vfmig_payload_pool_grow() (mappings in use + pooled <= max(room, in use));
 * vfmig_payload_pool_shrink() gives room back and unmaps what no longer fits.
 */
void *vfmig_payload_alloc(size_t len);
void vfmig_payload_free(void *p, size_t len);
void vfmig_payload_pool_grow(uint64_t bytes);
void vfmig_payload_pool_shrink(uint64_t bytes);
struct vfmig_payload_pool_stats {
	uint64_t cap;	 /* room registered (the live reorder budgets) */
	uint64_t mapped; /* bytes of payload mappings, in use and pooled */
	uint64_t pooled; /* of which free, in the pool */
	uint64_t hits;	 /* allocations served from the pool */
	uint64_t misses; /* new mappings */
	uint64_t evicted, unmap_errors;
};
void vfmig_payload_pool_stats(struct vfmig_payload_pool_stats *st);

struct vfmig_conn {
	int fd;
	unsigned id; /* 0 main, 1..n multifd */
	pthread_mutex_t send_lock;
	struct vfmig_channel_stats *stats; /* may be NULL */
	/* Set by vfmig_conn_bound(): sends and receives wait in slices, give up on
	 * the abort flag or after timeout_ms without progress. */
	const atomic_bool *abort;
	unsigned timeout_ms;
	atomic_uint_fast64_t last_tx_ns; /* for liveness PINGs */
	atomic_uint_fast64_t last_rx_ns; /* last whole frame received (vfmig_conn_recv) */
	atomic_bool ended;		 /* no more frames will be sent (CHANNEL_END, close) */
	/* TLS (tls.c) once vfmig_conn_tls() attached it: every byte goes through it. */
	struct vfmig_tls_sess *tls;
	bool tx_broken;	      /* under send_lock: a TLS send failed inside a frame */
	uint64_t deadline_ns; /* receives give up at this instant too (0: none) */
};

int vfmig_conn_init(struct vfmig_conn *c, int fd, unsigned id, struct vfmig_channel_stats *st);
void vfmig_conn_bound(struct vfmig_conn *c, const atomic_bool *abort, unsigned timeout_ms);
void vfmig_conn_destroy(struct vfmig_conn *c);
/*
 * TLS handshake on the connection (vfmig_tls_handshake(): @host, the
 * return codes, *plain); from then on every frame is inside TLS.  Bounded
 * by @timeout_ms in all and the connection's abort flag.
 */
int vfmig_conn_tls(struct vfmig_conn *c, const struct vfmig_tls *t, const char *host,
		   unsigned timeout_ms, bool *plain, char *why, size_t whylen);
/* Bytes already received and decrypted wait in the connection: do not poll the socket. */
bool vfmig_conn_pending(struct vfmig_conn *c);
/* The end of our sending side (close_notify under TLS, then shutdown(SHUT_WR)). */
void vfmig_conn_close_write(struct vfmig_conn *c);
/* Wake anything blocked on this socket (idempotent). */
void vfmig_conn_shutdown(struct vfmig_conn *c);

/*
 * Send one frame; whole or error.  Returns 0, -ETIMEDOUT (no progress for the
 * timeout: the peer stopped reading), -ECANCELED (abort flag; the frame may be
 * partly sent, never whole) or -errno.  A frame is delivered to the peer only
 * if this returned 0.
 */
int vfmig_send_frame(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
		     uint32_t idx, const void *payload, uint32_t len);
/* The last frame of a channel (CHANNEL_END): no PING follows it. */
int vfmig_send_frame_last(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
			  uint32_t idx, const void *payload, uint32_t len);
/* A last word after an abort (ERROR, COMPLETE, a refusal): ignores the abort
 * flag, gives up after 250 ms in all (the send lock included). */
int vfmig_send_frame_final(struct vfmig_conn *c, uint16_t type, uint32_t flags, uint32_t device,
			   uint32_t idx, const void *payload, uint32_t len);
/* A PING unless another frame is being sent, the channel ended or its socket is full. */
void vfmig_conn_ping(struct vfmig_conn *c);

struct vfmig_frame {
	struct vfmig_frame_hdr h;
	uint8_t *payload; /* vfmig_payload_alloc()ed, NULL when length == 0 */
	uint64_t rx_ns;	  /* from the header's arrival to the payload's end */
};

/*
 * Admission of a payload before it is allocated: called with the validated
 * header; returns 0 to go on, or a negative errno with why filled (the frame
 * is then refused with VFMIG_FERR_REFUSED).  release() undoes an admission
 * whose payload could not be read.
 */
struct vfmig_admit {
	int (*admit)(void *arg, const struct vfmig_frame_hdr *h, char *why, size_t whylen);
	void (*release)(void *arg, const struct vfmig_frame_hdr *h);
	void *arg;
};

/*
 * Receive and validate one frame on a bound connection (waits at most the
 * connection's timeout between bytes, returns VFMIG_FERR_CANCELLED on abort).
 * @admit may be NULL.  Returns VFMIG_FERR_NONE and fills *f, or an error code
 * with a message in why (errno of an I/O error or refusal in *err_no).
 */
enum vfmig_ferr vfmig_conn_recv(struct vfmig_conn *c, const struct vfmig_limits *lim,
				const struct vfmig_admit *admit, struct vfmig_frame *f, int *err_no,
				char *why, size_t whylen);
/* A last read (after the last word): ignores the abort flag, at most timeout_ms. */
enum vfmig_ferr vfmig_conn_recv_final(struct vfmig_conn *c, const struct vfmig_limits *lim,
				      int timeout_ms, struct vfmig_frame *f, int *err_no, char *why,
				      size_t whylen);
/* The same on a bare fd: timeout_ms < 0 waits forever (tests, raw peers). */
enum vfmig_ferr vfmig_recv_frame(int fd, const struct vfmig_limits *lim, int timeout_ms,
				 struct vfmig_frame *f, int *err_no, char *why, size_t whylen);
void vfmig_frame_free(struct vfmig_frame *f);

/*
 * Wait until fd is ready for @events: 0 ready, -ETIMEDOUT when nothing for
 * timeout_ms (< 0: forever), -ECANCELED when *abort (may be NULL) is set,
 * checked every 100 ms, -errno.
 */
int vfmig_wait_fd(int fd, short events, int timeout_ms, const atomic_bool *abort);

/* Sockets (socket.c).  @abort may be NULL; connect gives up within 100 ms of it. */
int vfmig_connect(const struct vfmig_addr *a, unsigned timeout_ms, struct vfmig_error *err);
int vfmig_connect_abortable(const struct vfmig_addr *a, unsigned timeout_ms,
			    const atomic_bool *abort, struct vfmig_error *err);
/* Accept with a timeout; returns fd, -ETIMEDOUT, -ECANCELED (wakefd readable) or -errno. */
int vfmig_accept(int lfd, int timeout_ms, int wakefd);
/* The same, and -EINPROGRESS as soon as @watchfd is readable (may be -1). */
int vfmig_accept_or(int lfd, int timeout_ms, int wakefd, int watchfd);
/* Send timeout, TCP_NODELAY, keepalive and TCP_USER_TIMEOUT from timeout_ms. */
int vfmig_sock_setup(int fd, unsigned timeout_ms);
/* A loopback IPv4/IPv6 address (127/8, ::1, ::ffff:127/104). */
bool vfmig_sockaddr_is_loopback(const struct sockaddr *sa);

/* Liveness: a thread that PINGs every idle connection of a set (keepalive.c). */
struct vfmig_keepalive {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, started;
	pthread_t thread;
	uint64_t interval_ns;
	struct vfmig_conn *conns[VFMIG_MAX_CHANNELS + 1];
	unsigned nconns;
};
int vfmig_keepalive_start(struct vfmig_keepalive *k, struct vfmig_ctl *ctl, unsigned timeout_ms);
/* Add a connection (before or after start). */
void vfmig_keepalive_add(struct vfmig_keepalive *k, struct vfmig_conn *c);
/* Stop and join (idempotent; safe if never started). */
void vfmig_keepalive_stop(struct vfmig_keepalive *k);

#endif /* VFMIG_TRANSPORT_H */
