// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * returnpath.c - the source's return path: the thread that reads the main
 * channel from READY to COMPLETE (READY, SWITCHOVER_ACK, LOADED,
 * COMPLETE, ERROR, PING) and moves the session's flags, under
 * session.lock, for the source's thread (source.c) to act on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "source.h"

static void set_flag(struct vfmig_session *s, bool *flag)
{
	pthread_mutex_lock(&s->lock);
	*flag = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/*
 * A control frame is accepted only in its phase: *flag (under session.lock)
 * must be @want_clear ? clear : set.  Otherwise it is a protocol error: a
 * COMPLETE before COMMIT, say, must never end a migration.
 */
static bool expect(struct vfmig_session *s, const bool *flag, bool want_clear, const char *what)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	ok = *flag != want_clear;
	pthread_mutex_unlock(&s->lock);
	if (!ok)
		vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
			   "%s from the destination out of sequence", what);
	return ok;
}

void vfmig_src_return_path(void *arg, unsigned unused)
{
	struct vfmig_session *s = arg;
	struct vfmig_src *src = s->src;
	struct vfmig_frame f;
	char why[256];
	int err_no;

	(void)unused;
	for (;;) {
		enum vfmig_ferr fe =
			vfmig_conn_recv(&s->main, &s->lim, NULL, &f, &err_no, why, sizeof(why));

		if (fe) {
			vfmig_fail_frame(&s->ctl, "main channel", fe, err_no, why);
			return;
		}
		switch (f.h.type) {
		case VFMIG_F_PING:
			break;
		case VFMIG_F_READY:
			if (!expect(s, &src->ready, true, "READY"))
				goto bad;
			set_flag(s, &src->ready);
			break;
		case VFMIG_F_SWITCHOVER_ACK:
			if (!expect(s, &src->ready, false, "SWITCHOVER_ACK") ||
			    vfmig_precopy_ack(&src->pc, f.h.device, f.h.idx) < 0) {
				vfmig_fail(
					&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, (int)f.h.device,
					"main channel",
					"unexpected switchover-ack for device %u (generation %u)",
					f.h.device, f.h.idx);
				goto bad;
			}
			break;
		case VFMIG_F_LOADED:
			if (!expect(s, &src->switching, false, "LOADED") ||
			    !expect(s, &src->loaded, true, "LOADED"))
				goto bad;
			set_flag(s, &src->loaded);
			break;
		case VFMIG_F_COMPLETE: {
			struct vfmig_complete c;

			if (!expect(s, &src->committing, false, "COMPLETE"))
				goto bad;
			vfmig_complete_decode(f.payload, &c);
			pthread_mutex_lock(&s->lock);
			s->st.dest_downtime_ns = c.dest_downtime_ns;
			s->st.reorder_peak_bytes = c.reorder_peak;
			src->complete = true;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			vfmig_frame_free(&f);
			return;
		}
		case VFMIG_F_ERROR:
			pthread_mutex_lock(&s->lock);
			src->peer_error = true;
			src->peer_error_flags = f.h.flags;
			pthread_mutex_unlock(&s->lock);
			vfmig_fail_remote(s, &f);
			vfmig_frame_free(&f);
			return;
		default:
			vfmig_fail(&s->ctl, VFMIG_ERR_PROTOCOL, EPROTO, -1, "main channel",
				   "unexpected frame type %u from the destination", f.h.type);
			goto bad;
		}
		vfmig_frame_free(&f);
	}
bad:
	vfmig_frame_free(&f);
}
