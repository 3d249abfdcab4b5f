// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * recv.c - destination multifd readers: one thread per channel reads
 * DEVICE_STATE packets.  transport.c checks the header and, before it
 * allocates the payload, has the reorder buffer admit the packet
 * (vfmig_reorder_admit: device, idx, duplicates, budget; it may wait:
 * backpressure); then it reads the payload and checks the checksum, and the
 * packet is handed to the reorder buffer.  CHANNEL_END ends a channel
 * cleanly; when every channel has ended the reorder buffer knows that a
 * missing chunk will never come.  PINGs keep a quiet channel alive; a
 * channel silent for --timeout fails the migration.  With multifd off the
 * destination's main loop receives DEVICE_STATE packets with the same
 * admission and hands them over with vfmig_recv_queue().
 *
 * It sees no session: struct vfmig_loader holds the channels, the reorder
 * buffer and the error object.
 *
 * Locks: none of its own; reorder.lock inside the reorder calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

void vfmig_recv_queue(struct vfmig_loader *ld, struct vfmig_channel_stats *st,
		      struct vfmig_frame *f)
{
	st->bytes += f->h.length;
	st->packets++;
	st->busy_ns += f->rx_ns;
	vfmig_reorder_fill(ld->ro, f->h.device, f->h.idx, f->payload);
	f->payload = NULL; /* owned by the reorder buffer */
}

void vfmig_recv_refused(struct vfmig_loader *ld, int err, int device, const char *where,
			const char *why)
{
	if (err == ECANCELED || vfmig_aborted(ld->ctl))
		return;
	vfmig_fail(ld->ctl, err == ENOBUFS ? VFMIG_ERR_BUDGET : VFMIG_ERR_PROTOCOL, err, device,
		   where, "%s", why);
}

/*
 * What a multifd channel may carry, decided from the header before anything
 * is allocated: DEVICE_STATE (admitted in the reorder budget), PING and
 * CHANNEL_END.  Anything else is refused unread, so no payload beyond the
 * budget is ever held, whatever a peer sends.
 */
static int channel_admit(void *arg, const struct vfmig_frame_hdr *h, char *why, size_t whylen)
{
	struct vfmig_loader *ld = arg;

	switch (h->type) {
	case VFMIG_F_DEVICE_STATE:
		if ((h->flags & (VFMIG_FLAG_PRECOPY | VFMIG_FLAG_INIT_SENT)) && !ld->precopy_mf) {
			snprintf(why, whylen,
				 "device %u: precopy packet (flags 0x%x) without PRECOPY_MULTIFD",
				 h->device, h->flags);
			return -EPROTO;
		}
		return vfmig_reorder_admit(ld->ro, h, why, whylen);
	case VFMIG_F_PING:
	case VFMIG_F_CHANNEL_END:
		return 0;
	default:
		snprintf(why, whylen, "unexpected frame type %u on a multifd channel", h->type);
		return -EPROTO;
	}
}

static void channel_release(void *arg, const struct vfmig_frame_hdr *h)
{
	struct vfmig_loader *ld = arg;

	vfmig_reorder_admit_release(ld->ro, h);
}

static void recv_channel(void *arg, unsigned ch)
{
	struct vfmig_loader *ld = arg;
	struct vfmig_conn *c = ld->chans[ch];
	struct vfmig_admit admit = {
		.admit = channel_admit,
		.release = channel_release,
		.arg = ld,
	};
	char where[32], why[256];

	snprintf(where, sizeof(where), "multifd channel %u", c->id);
	for (;;) {
		struct vfmig_frame f;
		enum vfmig_ferr fe;
		int err_no;

		fe = vfmig_conn_recv(c, &ld->lim, &admit, &f, &err_no, why, sizeof(why));
		if (fe == VFMIG_FERR_REFUSED) {
			vfmig_recv_refused(ld, err_no, (int)f.h.device, where, why);
			break;
		}
		if (fe) {
			vfmig_fail_frame(ld->ctl, where, fe, err_no, why);
			break;
		}
		if (f.h.type == VFMIG_F_PING) {
			vfmig_frame_free(&f);
			continue;
		}
		if (f.h.type == VFMIG_F_CHANNEL_END) {
			vfmig_frame_free(&f);
			break;
		}
		vfmig_recv_queue(ld, c->stats,
				 &f); /* DEVICE_STATE: channel_admit() let no other in */
	}
	vfmig_reorder_producer_exit(ld->ro);
}

int vfmig_recv_start(struct vfmig_loader *ld)
{
	if (!ld->nch)
		return 0;
	ld->recv_threads = calloc(ld->nch, sizeof(*ld->recv_threads));
	if (!ld->recv_threads) {
		vfmig_fail(ld->ctl, VFMIG_ERR_INTERNAL, ENOMEM, -1, "destination", "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < ld->nch; i++) {
		if (vfmig_thread_start(ld->ctl, &ld->recv_threads[i], recv_channel, ld, i))
			return -1;
		ld->recv_started++;
	}
	return 0;
}

void vfmig_recv_join(struct vfmig_loader *ld)
{
	for (unsigned i = 0; i < ld->recv_started; i++)
		pthread_join(ld->recv_threads[i], NULL);
	ld->recv_started = 0;
	free(ld->recv_threads);
	ld->recv_threads = NULL;
}
