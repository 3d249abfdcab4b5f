// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * recv.c - destination multifd readers: one thread per channel reads
 * DEVICE_STATE packets, validates them (transport.c checks the header and
 * checksum, the reorder buffer checks device, idx and duplicates) and queues
 * them in the reorder buffer, which may make the thread wait (backpressure).
 * CHANNEL_END ends a channel cleanly; when every channel has ended the
 * reorder buffer knows that a missing chunk will never come.  With multifd
 * off the destination's main loop queues DEVICE_STATE packets through the
 * same vfmig_recv_queue().
 *
 * Locks: none of its own; reorder.lock inside vfmig_reorder_push().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

int vfmig_recv_queue(struct vfmig_session *s, struct vfmig_channel_stats *st, struct vfmig_frame *f,
		     const char *where)
{
	char why[256];
	int ret;

	st->bytes += f->h.length;
	st->packets++;
	st->busy_ns += f->rx_ns;
	ret = vfmig_reorder_push(&s->ro, f->h.device, f->h.idx, f->h.flags, f->payload, f->h.length,
				 why, sizeof(why));
	if (ret) {
		if (ret != -ECANCELED)
			vfmig_fail(s, ret == -ENOBUFS ? VFMIG_ERR_BUDGET : VFMIG_ERR_PROTOCOL, -ret,
				   (int)f->h.device, where, "%s", why);
		return -1;
	}
	f->payload = NULL; /* owned by the reorder buffer */
	return 0;
}

static void recv_channel(struct vfmig_session *s, unsigned ch)
{
	struct vfmig_conn *c = &s->chans[ch];
	char where[32], why[256];

	snprintf(where, sizeof(where), "multifd channel %u", c->id);
	for (;;) {
		struct vfmig_frame f;
		enum vfmig_ferr fe;
		int err_no;

		fe = vfmig_recv_frame(c->fd, &s->lim, -1, &f, &err_no, why, sizeof(why));
		if (fe) {
			vfmig_fail_frame(s, where, fe, err_no, why);
			break;
		}
		if (f.h.type == VFMIG_F_CHANNEL_END) {
			vfmig_frame_free(&f);
			break;
		}
		if (f.h.type != VFMIG_F_DEVICE_STATE) {
			vfmig_fail(s, VFMIG_ERR_PROTOCOL, EPROTO, -1, where,
				   "unexpected frame type %u on a multifd channel", f.h.type);
			vfmig_frame_free(&f);
			break;
		}
		if (vfmig_recv_queue(s, c->stats, &f, where)) {
			vfmig_frame_free(&f);
			break;
		}
	}
	vfmig_reorder_producer_exit(&s->ro);
}

int vfmig_recv_start(struct vfmig_session *s)
{
	if (!s->nch)
		return 0;
	s->recv_threads = calloc(s->nch, sizeof(*s->recv_threads));
	if (!s->recv_threads) {
		vfmig_fail(s, VFMIG_ERR_INTERNAL, ENOMEM, -1, "destination", "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < s->nch; i++) {
		if (vfmig_thread_start(s, &s->recv_threads[i], recv_channel, i))
			return -1;
		s->recv_started++;
	}
	return 0;
}

void vfmig_recv_join(struct vfmig_session *s)
{
	for (unsigned i = 0; i < s->recv_started; i++)
		pthread_join(s->recv_threads[i], NULL);
	s->recv_started = 0;
	free(s->recv_threads);
	s->recv_threads = NULL;
}
