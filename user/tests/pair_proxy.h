/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pair_proxy.h - a frame-aware proxy (proxy.h) in front of a test pair's
 * destination (test_util.h): the source connects to the proxy.
 */
#ifndef VFMIG_TEST_PAIR_PROXY_H
#define VFMIG_TEST_PAIR_PROXY_H

#include "proxy.h"
#include "test_util.h"

/* ---- a proxy in front of a test pair's destination ------------------------------ */

struct pair_proxy {
	struct proxy *px;
	struct vfmig_addr addr; /* where the source connects: the proxy */
	char path[108]; /* a sockaddr_un path */
};

/* After pair_listen(@p): a proxy in @p's directory towards its destination; 0 or -1. */
static inline int pair_proxy_start(struct pair_proxy *q, const struct pair *p)
{
	snprintf(q->path, sizeof(q->path), "%s/px", p->dir);
	q->px = proxy_new(&p->addr, q->path);
	return q->px && !vfmig_addr_parse(q->path, &q->addr, NULL) ? 0 : -1;
}

/* Free the proxy (again harmless); @unlink: remove its socket file too. */
static inline void pair_proxy_stop(struct pair_proxy *q, bool unlink_path)
{
	if (q->px)
		proxy_free(q->px);
	q->px = NULL;
	if (unlink_path && q->path[0])
		unlink(q->path);
}

#endif
