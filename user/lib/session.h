/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * session.h - the session object, private to the files that orchestrate a
 * migration: core.c (what both roles share), source.c, dest.c, accept.c,
 * stats.c.
 * Lower layers never include it: they get a connection, devices and the
 * struct vfmig_ctl (vfmig_internal.h).
 *
 * Locks: session.lock protects the role's shared flags (struct vfmig_src,
 * struct vfmig_dst); see vfmig_internal.h for the library's lock order.
 */
#ifndef VFMIG_SESSION_H
#define VFMIG_SESSION_H

#include "vfmig_internal.h"

/* ---- the session: a common core and a source or destination part ----------------------- */

struct vfmig_src; /* source.c */
struct vfmig_dst; /* dest.c */

struct vfmig_session {
	bool source;
	struct vfmig_options o;
	struct vfmig_log log;
	unsigned ndev;
	struct vfmig_device **devs;
	struct vfmig_ctl ctl;

	pthread_mutex_t lock; /* the role's shared flags (src/dst), leaf except for wake */
	pthread_cond_t cond;

	/* agreed at the handshake */
	uint32_t options; /* VFMIG_OPT_* */
	unsigned nch;	  /* multifd channels, 0 when off */
	uint32_t chunk;
	uint64_t session_id;
	struct vfmig_limits lim;

	struct vfmig_conn main;
	bool main_up;
	struct vfmig_conn *chans; /* [nch] */
	unsigned chans_up;
	struct vfmig_keepalive ka;

	struct vfmig_stats st;
	uint64_t t_start;

	struct vfmig_src *src;
	struct vfmig_dst *dst;
};

/* core.c */
void vfmig_session_wake(struct vfmig_session *s);
/* Shut every socket down / close them all. */
void vfmig_session_shutdown_all(struct vfmig_session *s);
void vfmig_session_close_all(struct vfmig_session *s);
/* SET device i's state (failure recorded, the device reset only in ERROR). */
int vfmig_session_set_state(struct vfmig_session *s, unsigned i, enum vfmig_state st,
			    enum vfmig_state recover);
/* The peer's ERROR frame: recorded as VFMIG_ERR_REMOTE. */
void vfmig_fail_remote(struct vfmig_session *s, const struct vfmig_frame *f);
/* After the last word: shut the sending side, read until the peer closes (300 ms at most). */
void vfmig_session_linger(struct vfmig_session *s);
/* Tell the peer why we stop (ERROR with @flags); best effort. */
void vfmig_session_send_error(struct vfmig_session *s, uint32_t flags);
/* Wait on s->cond until *flag, abort or the session timeout (recorded). */
bool vfmig_session_wait_flag(struct vfmig_session *s, const bool *flag, const char *what);
/* Connections: bound to the abort flag and timeout; the keepalive pings those the peer reads. */
int vfmig_session_add_conn(struct vfmig_session *s, struct vfmig_conn *c, int fd, unsigned id);
/* Source: connect @c (channel @id) to @peer, TLS when configured (failure recorded). */
int vfmig_session_connect(struct vfmig_session *s, const struct vfmig_addr *peer,
			  struct vfmig_conn *c, unsigned id, const char *where);

/*
 * accept.c: the main channel (0 and its HELLO, decoded: a HELLO that does
 * not decode is a stranger's), then every multifd channel.
 */
int vfmig_accept_main(struct vfmig_session *s, int lfd, int wakefd, struct vfmig_hello *hello);
int vfmig_accept_channels(struct vfmig_session *s, int lfd, int wakefd);

/* source.c / dest.c */
int vfmig_src_new(struct vfmig_session *s);
void vfmig_src_free(struct vfmig_session *s);
void vfmig_src_wake(struct vfmig_session *s);
/* returnpath.c: the source's reader of the main channel (a vfmig_thread_start() body) */
void vfmig_src_return_path(void *arg, unsigned unused);
int vfmig_dst_new(struct vfmig_session *s);
void vfmig_dst_free(struct vfmig_session *s);
void vfmig_dst_wake(struct vfmig_session *s);
enum vfmig_owner vfmig_dst_owner(const struct vfmig_session *s);

/* stats.c */
void vfmig_stats_finish(struct vfmig_session *s, uint64_t data_bytes, uint64_t config_bytes,
			uint64_t reorder_peak);

#endif /* VFMIG_SESSION_H */
