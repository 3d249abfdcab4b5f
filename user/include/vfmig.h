/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vfmig.h - public API of libvfmig, the userspace VFIO migration engine.
 *
 * The library migrates any device that speaks VFIO migration uAPI v2
 * (STOP_COPY, optionally P2P and PRE_COPY) from one host to another: it
 * treats the device data as opaque bytes, sends PRE_COPY data on a main
 * channel, STOP_COPY data over N parallel "multifd" channels, reassembles it
 * in order on the destination with a bounded buffer and rolls the source back
 * to RUNNING when anything fails.
 *
 * Devices are reached through struct vfmig_device_ops, so the engine can run
 * on real VFIO devices (vfmig_vfio_open()) or on in-memory fake devices
 * (vfmig_fake_new()) used by the unit tests and the CLI's "fake:" devices.
 *
 * Conventions: functions returning int return 0 on success and a negative
 * errno on failure unless documented otherwise; details go to a
 * struct vfmig_error when the caller passes one.
 */
#ifndef VFMIG_H
#define VFMIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VFMIG_VERSION "1.0.0"

/* Same numbering as enum vfio_device_mig_state in linux/vfio.h. */
enum vfmig_state {
	VFMIG_STATE_ERROR = 0,
	VFMIG_STATE_STOP = 1,
	VFMIG_STATE_RUNNING = 2,
	VFMIG_STATE_STOP_COPY = 3,
	VFMIG_STATE_RESUMING = 4,
	VFMIG_STATE_RUNNING_P2P = 5,
	VFMIG_STATE_PRE_COPY = 6,
	VFMIG_STATE_PRE_COPY_P2P = 7,
	VFMIG_STATE_NR,
};

/* Same values as VFIO_MIGRATION_* in linux/vfio.h. */
#define VFMIG_MIG_STOP_COPY (1u << 0)
#define VFMIG_MIG_P2P (1u << 1)
#define VFMIG_MIG_PRE_COPY (1u << 2)

/*
 * Same value as VFIO_PRECOPY_INFO_REINIT (Linux 7.1): an output flag of
 * PRECOPY_INFO after the PRECOPY_INFOv2 opt-in.  The driver restarted its
 * initial data: initial_bytes is the new (larger) amount, dirty_bytes 0, and
 * the data stream carries the new initial data next.
 */
#define VFMIG_PRECOPY_REINIT (1u << 0)

/* Hard limits; the wire format rejects anything larger. */
#define VFMIG_MAX_DEVICES 32
#define VFMIG_MAX_CHANNELS 64
#define VFMIG_MIN_CHUNK (4u << 10)
#define VFMIG_MAX_CHUNK (16u << 20)
#define VFMIG_MAX_CONFIG 4096u
#define VFMIG_COMPAT_LEN 64
#define VFMIG_LABEL_LEN 32

/* ---- errors ------------------------------------------------------------- */

/* The class of a failure; it is also the exit code of vfio-mig. */
enum vfmig_errclass {
	VFMIG_OK = 0,
	VFMIG_ERR_INTERNAL = 1,	    /* out of memory, thread creation, bug */
	VFMIG_ERR_USAGE = 2,	    /* bad option or argument */
	VFMIG_ERR_DEVICE = 3,	    /* a device ioctl, read or write failed */
	VFMIG_ERR_TRANSPORT = 4,    /* connect, accept, socket I/O, peer vanished */
	VFMIG_ERR_PROTOCOL = 5,	    /* malformed frame, checksum, sequence */
	VFMIG_ERR_INCOMPATIBLE = 6, /* handshake: version, options, devices */
	VFMIG_ERR_TIMEOUT = 7,	    /* the peer or a device made no progress */
	VFMIG_ERR_CANCELLED = 8,    /* SIGINT/SIGTERM or vfmig_session_cancel() */
	VFMIG_ERR_BUDGET = 9,	    /* destination reorder budget cannot hold the skew */
	VFMIG_ERR_REMOTE = 10,	    /* the peer reported a failure */
	VFMIG_ERR_ROLLBACK = 11,    /* a device could not be put back (see message) */
	/*
	 * Source: COMMIT left, and the destination neither confirmed (COMPLETE)
	 * nor reported its devices reset.  The source devices stay stopped with
	 * their state: whether the destination runs must be decided outside.
	 */
	VFMIG_ERR_OUTCOME_UNKNOWN = 12,
	/*
	 * COMMIT reached the destination (it owns the device state) but a device
	 * failed to start: destination devices are left as they are, never
	 * reset; the source devices stay stopped.
	 */
	VFMIG_ERR_INCOMPLETE = 13,
	/*
	 * TLS refused the peer before anything else happened: wrong key,
	 * untrusted or misnamed certificate, a client DN not allowed, a peer
	 * without TLS talking to one with it (or the reverse).  No device
	 * changed state.
	 */
	VFMIG_ERR_AUTH = 14,
	VFMIG_ERR_NR,
};

struct vfmig_error {
	enum vfmig_errclass cls;
	int err;	/* errno of the failing call, 0 if none */
	int device;	/* device index, -1 if not device specific */
	char where[48]; /* "source", "destination", "multifd channel 2", ... */
	char msg[256];
};

const char *vfmig_errclass_name(enum vfmig_errclass cls);
/* Fill *e (when e is not NULL); returns cls for convenience. */
enum vfmig_errclass vfmig_error_set(struct vfmig_error *e, enum vfmig_errclass cls, int err,
				    int device, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* ---- FSM helpers (fsm.c) ------------------------------------------------- */

const char *vfmig_state_name(enum vfmig_state st);
/* Parses "running", "RUNNING", "pre_copy_p2p", ...; returns -EINVAL if unknown. */
int vfmig_state_parse(const char *s, enum vfmig_state *st);
/* True if the device supports @st given its migration flags. */
bool vfmig_state_supported(enum vfmig_state st, uint64_t mig_flags);
/* True if from -> to is a single arc the uAPI defines for these flags. */
bool vfmig_fsm_arc_valid(enum vfmig_state from, enum vfmig_state to, uint64_t mig_flags);
/*
 * Next hop from @cur toward @target (vfio_mig_get_next_state() semantics):
 * shortest path, saving states never interior.  Returns 0 and sets *next,
 * or -EINVAL when @target cannot be reached.
 */
int vfmig_fsm_next(enum vfmig_state cur, enum vfmig_state target, uint64_t mig_flags,
		   enum vfmig_state *next);

/* ---- devices (device.c, vfio.c, fakedev.c) ------------------------------ */

/*
 * What the engine needs from a device.  A backend owns its data_fd: set_state
 * opens/closes the migration data session as the uAPI describes, and read /
 * write / precopy_info act on the current session.  All return negative errno.
 */
struct vfmig_device_ops {
	int (*get_state)(void *priv, enum vfmig_state *st);
	/* May be a combination transition; on failure the caller GETs the state. */
	int (*set_state)(void *priv, enum vfmig_state st);
	/* >0 bytes, 0 end of stream, -ENOMSG nothing now (PRE_COPY), <0 error. */
	ssize_t (*read)(void *priv, void *buf, size_t len);
	/* Bytes consumed (may be short), <0 error. */
	ssize_t (*write)(void *priv, const void *buf, size_t len);
	/*
	 * VFIO_MIG_GET_PRECOPY_INFO.  *flags gets the driver's output flags
	 * (VFMIG_PRECOPY_REINIT); the engine trusts them only on a device that
	 * accepted precopy_v2, and ignores them otherwise (reserved in v1).
	 */
	int (*precopy_info)(void *priv, uint64_t *initial_bytes, uint64_t *dirty_bytes,
			    uint32_t *flags);
	/*
	 * Opt in to VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 (Linux 7.1): from then
	 * on, until the device is closed, precopy_info may report
	 * VFMIG_PRECOPY_REINIT.  0 when the device is opted in, <0 when it
	 * refused (an older kernel or driver: -ENOTTY, -EINVAL); may be NULL
	 * (never opted in).  Idempotent.
	 */
	int (*precopy_v2)(void *priv);
	int (*data_size)(void *priv, uint64_t *stop_copy_bytes);
	/* Bytes of device config state (0 if none); <0 error. */
	ssize_t (*config_read)(void *priv, void *buf, size_t len);
	int (*config_write)(void *priv, const void *buf, size_t len);
	int (*reset)(void *priv);
	void (*close)(void *priv);
};

struct vfmig_device;

/*
 * Wrap a backend.  @compat is a string both sides must agree on (device type),
 * @config_size the size of the config state (<= VFMIG_MAX_CONFIG).
 */
struct vfmig_device *vfmig_device_new(const char *name, const char *compat, uint64_t mig_flags,
				      uint32_t config_size, const struct vfmig_device_ops *ops,
				      void *priv);
void vfmig_device_close(struct vfmig_device *dev);

const char *vfmig_device_name(const struct vfmig_device *dev);
/*
 * A label naming the device pair ("nic0"), sent in HELLO: when both sides
 * label device i, the labels must match, so a list given in a different
 * order on the two hosts is refused at the handshake.  -EINVAL if longer
 * than VFMIG_LABEL_LEN - 1 or not printable.
 */
int vfmig_device_set_label(struct vfmig_device *dev, const char *label);
const char *vfmig_device_label(const struct vfmig_device *dev);
const char *vfmig_device_compat(const struct vfmig_device *dev);
uint64_t vfmig_device_flags(const struct vfmig_device *dev);
uint32_t vfmig_device_config_size(const struct vfmig_device *dev);
void *vfmig_device_priv(const struct vfmig_device *dev);

int vfmig_device_get_state(struct vfmig_device *dev, enum vfmig_state *st);
/*
 * SET the state.  On failure GET the state (uAPI rule); if @recover is not
 * VFMIG_STATE_ERROR try to reach it; if the device is in ERROR or recovery
 * fails, VFIO_DEVICE_RESET it.  *err describes what happened.
 */
int vfmig_device_set_state(struct vfmig_device *dev, enum vfmig_state target,
			   enum vfmig_state recover, struct vfmig_error *err);
int vfmig_device_data_size(struct vfmig_device *dev, uint64_t *bytes);
int vfmig_device_reset(struct vfmig_device *dev);

/* Real VFIO devices through the container/group API (vfio.c). */
struct vfmig_vfio_ctx;
struct vfmig_vfio_ctx *vfmig_vfio_ctx_new(void);
/* Close every device opened through @ctx before freeing it. */
void vfmig_vfio_ctx_free(struct vfmig_vfio_ctx *ctx);
/*
 * Open by mdev UUID ("/sys/bus/mdev/devices/<uuid>") or by sysfs device path
 * (mdev or PCI).  Specs starting with "fake:" create fake devices instead.
 */
int vfmig_vfio_open(struct vfmig_vfio_ctx *ctx, const char *spec, struct vfmig_device **out,
		    struct vfmig_error *err);

/* In-memory fake device (fakedev.c): a test and demo backend. */
struct vfmig_fake_cfg {
	size_t mem_size;		 /* device memory, multiple of 4 KiB */
	uint64_t flags;			 /* VFMIG_MIG_* */
	uint32_t seed;			 /* initial memory content */
	bool zero_for_enomsg;		 /* read() returns 0 instead of -ENOMSG (like mtty) */
	unsigned dirty_pages_per_info;	 /* pages dirtied on each precopy_info call ... */
	unsigned dirty_info_calls;	 /* ... for this many calls */
	unsigned fail_stopcopy_read_at;	 /* N>0: the N-th STOP_COPY read fails with -EIO */
	unsigned fail_resume_write_at;	 /* N>0: the N-th RESUMING write fails with -EFAULT */
	unsigned fail_precopy_read_at;	 /* N>0: the N-th PRE_COPY read fails with -EIO */
	enum vfmig_state fail_set_state; /* != ERROR: entering this state fails with -EIO */
	/* Called before the N-th STOP_COPY read (N counted from 1). */
	void (*stopcopy_read_hook)(void *opaque, unsigned n);
	void *hook_opaque;
	/* PRECOPY_INFOv2: refuse the opt-in with -ENOTTY (a pre-7.1 kernel or driver). */
	bool refuse_precopy_v2;
	/* Flags precopy_info reports while not opted in (v1: reserved, to be ignored). */
	uint32_t v1_flags_out;
	/* N>0: the N-th precopy_info call (from 1) finds a device event: REINIT. */
	unsigned reinit_at_info;
	/* Called before the N-th precopy_info call (N from 1), without the device's lock. */
	void (*precopy_info_hook)(void *opaque, unsigned n);
};
void vfmig_fake_cfg_init(struct vfmig_fake_cfg *cfg);
/* The largest fake device memory (vfmig_fake_new(), the "fake:" spec). */
#define VFMIG_FAKE_MAX_MEM (1ull << 30)
struct vfmig_device *vfmig_fake_new(const char *name, const struct vfmig_fake_cfg *cfg);
/* Parses "fake:SIZE[:stop_copy+p2p+pre_copy][:seedN]" (default: all three flags, seed 1). */
int vfmig_fake_new_from_spec(const char *spec, struct vfmig_device **out, struct vfmig_error *err);
bool vfmig_is_fake(const struct vfmig_device *dev);
/* The vfmig_fake_* accessors return 0 / -EINVAL / VFMIG_STATE_ERROR for other devices. */
uint64_t vfmig_fake_digest(struct vfmig_device *dev);
/* Device-side write into its memory: marks pages dirty during PRE_COPY. */
int vfmig_fake_poke(struct vfmig_device *dev, size_t off, const void *buf, size_t len);
/* How often the fake device was reset (VFIO_DEVICE_RESET). */
unsigned vfmig_fake_resets(struct vfmig_device *dev);
/* Current state without going through the ops (for tests). */
enum vfmig_state vfmig_fake_state(struct vfmig_device *dev);
/*
 * A device event: once opted in to PRECOPY_INFOv2, the next precopy_info
 * in PRE_COPY reports VFMIG_PRECOPY_REINIT and every page is initial data
 * again (the memory does not change).  Pending until then; -EINVAL if not fake.
 */
int vfmig_fake_reinit(struct vfmig_device *dev);
/* REINITs the fake device has reported; whether it is opted in to PRECOPY_INFOv2. */
unsigned vfmig_fake_reinits(struct vfmig_device *dev);
bool vfmig_fake_precopy_v2(struct vfmig_device *dev);

/* ---- transport addresses (transport.c) ---------------------------------- */

struct vfmig_addr {
	int family; /* AF_UNIX, AF_INET, AF_INET6 (AF_UNSPEC: resolve host) */
	char host[256];
	char port[16];
	char path[108];
};

/* "unix:/path", "/path", "tcp:host:port", "host:port", "[v6addr]:port". */
int vfmig_addr_parse(const char *s, struct vfmig_addr *a, struct vfmig_error *err);
/* Listening socket for the destination; returns fd or -errno. */
int vfmig_listen(const struct vfmig_addr *a, struct vfmig_error *err);

/* ---- TLS credentials (tls.c) --------------------------------------------- */

/*
 * TLS 1.3 (GnuTLS) on the main channel and on every multifd channel; the
 * source is the TLS client, the destination the server.  Either a
 * pre-shared key or X.509 certificates, in QEMU's layouts:
 *   psk_file:  "identity:hexkey" lines (QEMU's keys.psk); the client uses
 *              psk_identity (default "qemu"), the server accepts every
 *              identity in the file, or only psk_identity when it is set;
 *   creds_dir: ca-cert.pem (and optional ca-crl.pem), server-cert.pem and
 *              server-key.pem (server), client-cert.pem and client-key.pem
 *              (client).  Peers are always verified: the server requires a
 *              client certificate signed by the CA, the client checks the
 *              server's against the CA and the name @hostname (default: the
 *              host of the address it connects to).
 * Secret files (keys.psk, *-key.pem) are refused when group or others can
 * access them; no secret is ever logged.
 */
struct vfmig_tls_config {
	const char *psk_file;
	const char *psk_identity;
	const char *creds_dir;
	const char *hostname;	     /* client, X.509: the name to verify */
	const char *const *allow_dn; /* server, X.509: allowed client DNs (RFC 4514) */
	unsigned n_allow_dn;	     /* 0: every client the CA signed */
};

struct vfmig_tls;
/* Load the credentials of one end (@server: the destination); NULL with *err set. */
struct vfmig_tls *vfmig_tls_new(const struct vfmig_tls_config *cfg, bool server,
				struct vfmig_error *err);
void vfmig_tls_free(struct vfmig_tls *t);
/* "PSK" or "X.509". */
const char *vfmig_tls_kind(const struct vfmig_tls *t);

/* True if every address @a (TCP) resolves to is a loopback address, or it is a UNIX socket. */
bool vfmig_addr_is_local(const struct vfmig_addr *a);

/* ---- sessions (core.c, source.c, dest.c) ----------------------------------------------- */

enum vfmig_onoff { VFMIG_AUTO = 0, VFMIG_ON, VFMIG_OFF };

enum vfmig_phase {
	VFMIG_PHASE_SETUP,
	VFMIG_PHASE_PRECOPY,
	VFMIG_PHASE_STOPCOPY,
	VFMIG_PHASE_LOADING,
	VFMIG_PHASE_COMPLETING,
	VFMIG_PHASE_DONE,
	/*
	 * Source: the switchover is decided; reported before the devices'
	 * last VFIO_MIG_GET_PRECOPY_INFO (a REINIT from here on fails the
	 * migration with switchover-ack) and before any device stops.
	 */
	VFMIG_PHASE_SWITCHOVER,
};

struct vfmig_progress {
	enum vfmig_phase phase;
	unsigned iteration;
	uint64_t precopy_bytes;
	uint64_t stopcopy_bytes;
	uint64_t est_stopcopy_bytes;
	double bandwidth_Bps;
	unsigned acks, acks_needed;
};

struct vfmig_options {
	enum vfmig_onoff multifd;	 /* auto: on when channels > 0 */
	unsigned channels;		 /* multifd channels (default 2) */
	enum vfmig_onoff switchover_ack; /* source: auto = on; destination: auto = accept */
	enum vfmig_onoff load_config_after_iter;
	/*
	 * PRECOPY_INFOv2 REINIT handling (HELLO option PRECOPY_REINIT).  Source:
	 * auto/on offer it and opt precopying devices in; off neither.
	 * Destination: auto/on accept it, off decline it (as an older peer).
	 */
	enum vfmig_onoff precopy_reinit;
	/*
	 * Precopy over the multifd channels (HELLO option PRECOPY_MULTIFD), with
	 * multifd only.  Source: auto/on read every precopying device in its own
	 * thread and send over the channels; off read them one after another and
	 * send on the main channel.  Destination: auto/on accept it, off decline
	 * it (the source then uses the main channel).
	 */
	enum vfmig_onoff precopy_multifd;
	unsigned downtime_limit_ms; /* default 300 */
	unsigned max_iterations;    /* default 30 */
	uint64_t max_queued_bytes;  /* destination reorder budget (default 256 MiB) */
	uint32_t chunk_size;	    /* STOP_COPY/PRE_COPY read size (default 1 MiB) */
	unsigned timeout_ms;	    /* no-progress timeout, every wait (default 30000) */
	unsigned max_precopy_ms;    /* source: precopy time limit, 0 none (default 600000) */
	unsigned max_channels;	    /* destination: most channels accepted (default 16) */
	uint32_t max_chunk;	    /* destination: largest chunk accepted (default 4 MiB) */
	/* TLS credentials of this end (vfmig_tls_new(), kept by the caller), NULL: plain. */
	const struct vfmig_tls *tls;
	/* destination: a connection must finish TLS and say HELLO or CHANNEL_HELLO
	 * within this, or it is refused as a stranger (default 5000) */
	unsigned accept_ms;
	/* destination: listen on a non-loopback TCP address without TLS (default false:
	 * vfmig_session_recv() refuses, VFMIG_ERR_USAGE) */
	bool insecure;
	int verbose;		/* 0 errors+warnings, 1 info, 2 debug */
	const char *log_prefix; /* "src", "dst" */
	void (*progress)(const struct vfmig_progress *p, void *opaque);
	void *progress_opaque;
};
void vfmig_options_init(struct vfmig_options *o);

struct vfmig_channel_stats {
	uint64_t bytes;
	uint64_t packets;
	uint64_t busy_ns; /* sending packets, or receiving them from the header on */
};

enum vfmig_converge {
	VFMIG_CONVERGE_NONE,	 /* no precopy-capable device */
	VFMIG_CONVERGE_DOWNTIME, /* estimate under --downtime-limit */
	VFMIG_CONVERGE_MAX_ITER, /* --max-iterations reached */
	VFMIG_CONVERGE_MAX_TIME, /* --max-precopy-time reached */
};

struct vfmig_stats {
	bool source;
	bool multifd, switchover_ack, load_config_after_iter;
	unsigned ndevices, nchannels;
	uint32_t chunk_size;
	uint64_t total_ns;
	uint64_t setup_ns;
	uint64_t precopy_ns;
	uint64_t downtime_ns; /* source: first device leaves RUNNING/PRE_COPY .. COMPLETE */
	uint64_t stopcopy_ns; /* source: STOP_COPY data transfer; dest: load time */
	uint64_t switchover_ack_wait_ns;
	unsigned precopy_iterations;
	bool precopy_reinit;  /* the PRECOPY_REINIT option was agreed */
	bool precopy_multifd; /* the PRECOPY_MULTIFD option was agreed */
	/* source: REINITs reported by devices; destination: fresh acks (generations > 0) */
	unsigned precopy_reinits;
	unsigned switchover_acks_stale; /* source: acks of an older initial-data generation */
	char tls_cipher[32];		/* the main channel's TLS cipher, "" without TLS */
	uint64_t precopy_bytes;
	uint64_t stopcopy_bytes;
	uint64_t config_bytes;
	uint64_t est_stopcopy_bytes; /* estimate at the switchover decision */
	double bandwidth_Bps;	     /* measured during precopy */
	enum vfmig_converge converge;
	uint64_t reorder_peak_bytes; /* destination */
	uint64_t dest_downtime_ns;   /* destination: SWITCHOVER_START .. all RUNNING */
	/* [0] is the main channel, [1..nchannels] the multifd channels. */
	struct vfmig_channel_stats ch[VFMIG_MAX_CHANNELS + 1];
};

struct vfmig_session;

/*
 * A session migrates @devs (in order: device i of the source goes to device i
 * of the destination).  The devices stay owned by the caller.
 */
struct vfmig_session *vfmig_session_new(bool source, struct vfmig_device **devs, unsigned ndevs,
					const struct vfmig_options *o);
void vfmig_session_free(struct vfmig_session *s);
/* Source: connect to @peer and migrate.  Returns VFMIG_OK or an error class. */
enum vfmig_errclass vfmig_session_send(struct vfmig_session *s, const struct vfmig_addr *peer);
/* Destination: accept on @listen_fd (not closed) and resume. */
enum vfmig_errclass vfmig_session_recv(struct vfmig_session *s, int listen_fd);
/* Thread-safe (not async-signal-safe: call it from a signal thread): abort
 * with VFMIG_ERR_CANCELLED. */
void vfmig_session_cancel(struct vfmig_session *s);
/* Thread-safe: abort with @cls and @msg unless an error is already recorded. */
void vfmig_session_abort(struct vfmig_session *s, enum vfmig_errclass cls, const char *msg);
const struct vfmig_error *vfmig_session_error(const struct vfmig_session *s);

/* Who holds the device state once a session returned. */
enum vfmig_owner {
	VFMIG_OWNER_SOURCE,	 /* never passed, or given back: the source runs it */
	VFMIG_OWNER_DESTINATION, /* the destination received COMMIT */
	VFMIG_OWNER_UNKNOWN,	 /* source: COMMIT left, no answer (exit 12); destination: a
				  * device reset failed before COMMIT */
};
enum vfmig_owner vfmig_session_owner(const struct vfmig_session *s);
/*
 * A source session that ended with VFMIG_ERR_OUTCOME_UNKNOWN: put its devices
 * back as they were before the migration.  Only for a caller that knows the
 * destination does not run the state (its session reports
 * VFMIG_OWNER_SOURCE: vfio-mig migrate runs both).  -EPERM otherwise.
 */
int vfmig_session_resume(struct vfmig_session *s);
const struct vfmig_stats *vfmig_session_stats(const struct vfmig_session *s);

/* ---- stats output (stats.c) --------------------------------------------- */

void vfmig_stats_print(FILE *f, const struct vfmig_stats *st);
/* A json-c object (struct json_object *) as an opaque pointer; put it with json_object_put(). */
void *vfmig_stats_json(const struct vfmig_stats *st, const struct vfmig_error *err);
/* Human-readable "1.5 MiB" into buf. */
const char *vfmig_fmt_bytes(char *buf, size_t len, uint64_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* VFMIG_H */
