// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * wire.c - the payloads of the control frames (HELLO, HELLO_ACK and ERROR
 * reports, CHANNEL_HELLO, COMPLETE) and the destination's handshake policy
 * (vfmig_hello_check).  Everything here is pure: bytes in, structs out, no
 * socket and no session, so every decoder can be fuzzed and unit-tested
 * alone.  Layouts: Documentation/transport-format.rst.
 *
 * Locks: none.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vfmig_internal.h"

/* ---- HELLO ------------------------------------------------------------------------ */

size_t vfmig_hello_encode(uint8_t *buf, size_t len, const struct vfmig_hello *h)
{
	size_t need = VFMIG_HELLO_FIXED + (size_t)h->ndevices * VFMIG_HELLO_DEV_LEN;

	if (h->ndevices > VFMIG_MAX_DEVICES || len < need)
		return 0;
	memset(buf, 0, need);
	put_le32(buf, h->proto_version);
	put_le32(buf + 4, h->min_proto_version);
	put_le64(buf + 8, h->session_id);
	put_le32(buf + 16, h->options);
	put_le32(buf + 20, h->nchannels);
	put_le32(buf + 24, h->chunk_size);
	put_le32(buf + 28, h->ndevices);
	for (uint32_t i = 0; i < h->ndevices; i++) {
		uint8_t *d = buf + VFMIG_HELLO_FIXED + i * VFMIG_HELLO_DEV_LEN;

		put_le64(d, h->dev[i].mig_flags);
		put_le64(d + 8, h->dev[i].stop_copy_estimate);
		put_le32(d + 16, h->dev[i].config_size);
		strncpy((char *)d + 24, h->dev[i].compat, VFMIG_COMPAT_LEN - 1);
		strncpy((char *)d + 88, h->dev[i].label, VFMIG_LABEL_LEN - 1);
	}
	return need;
}

int vfmig_hello_decode(const uint8_t *buf, size_t len, struct vfmig_hello *h, char *why,
		       size_t whylen)
{
	if (len < VFMIG_HELLO_FIXED) {
		snprintf(why, whylen, "HELLO too short (%zu bytes)", len);
		return -EPROTO;
	}
	memset(h, 0, sizeof(*h));
	h->proto_version = get_le32(buf);
	h->min_proto_version = get_le32(buf + 4);
	h->session_id = get_le64(buf + 8);
	h->options = get_le32(buf + 16);
	h->nchannels = get_le32(buf + 20);
	h->chunk_size = get_le32(buf + 24);
	h->ndevices = get_le32(buf + 28);
	if (h->ndevices == 0 || h->ndevices > VFMIG_MAX_DEVICES) {
		snprintf(why, whylen, "HELLO: %u devices (1..%u)", h->ndevices, VFMIG_MAX_DEVICES);
		return -EPROTO;
	}
	if (len != VFMIG_HELLO_FIXED + (size_t)h->ndevices * VFMIG_HELLO_DEV_LEN) {
		snprintf(why, whylen, "HELLO: %zu bytes for %u devices", len, h->ndevices);
		return -EPROTO;
	}
	for (uint32_t i = 0; i < h->ndevices; i++) {
		const uint8_t *d = buf + VFMIG_HELLO_FIXED + i * VFMIG_HELLO_DEV_LEN;

		h->dev[i].mig_flags = get_le64(d);
		h->dev[i].stop_copy_estimate = get_le64(d + 8);
		h->dev[i].config_size = get_le32(d + 16);
		if (get_le32(d + 20)) {
			snprintf(why, whylen, "HELLO: device %u: reserved field not zero", i);
			return -EPROTO;
		}
		if (!memchr(d + 24, '\0', VFMIG_COMPAT_LEN)) {
			snprintf(why, whylen, "HELLO: device %u: compat string not terminated", i);
			return -EPROTO;
		}
		memcpy(h->dev[i].compat, d + 24, VFMIG_COMPAT_LEN);
		if (!memchr(d + 88, '\0', VFMIG_LABEL_LEN)) {
			snprintf(why, whylen, "HELLO: device %u: label not terminated", i);
			return -EPROTO;
		}
		memcpy(h->dev[i].label, d + 88, VFMIG_LABEL_LEN);
		for (size_t k = 0; h->dev[i].label[k]; k++) {
			if ((unsigned char)h->dev[i].label[k] <= 0x20 ||
			    (unsigned char)h->dev[i].label[k] >= 0x7f) {
				snprintf(why, whylen, "HELLO: device %u: label not printable", i);
				return -EPROTO;
			}
		}
	}
	return 0;
}

static bool onoff_conflict(enum vfmig_onoff local, bool remote)
{
	return (local == VFMIG_ON && !remote) || (local == VFMIG_OFF && remote);
}

enum vfmig_errclass vfmig_hello_check(const struct vfmig_hello *h, const struct vfmig_local *l,
				      uint32_t *agreed, char *why, size_t whylen)
{
	const struct vfmig_options *o = l->o;
	bool multifd = h->options & VFMIG_OPT_MULTIFD;
	bool sack = h->options & VFMIG_OPT_SWITCHOVER_ACK;
	uint32_t opts = h->options;

	if (h->min_proto_version > VFMIG_PROTO_VERSION ||
	    h->proto_version < VFMIG_PROTO_MIN_VERSION) {
		snprintf(
			why, whylen,
			"protocol version mismatch: source speaks %u (min %u), destination %u (min %u)",
			h->proto_version, h->min_proto_version, VFMIG_PROTO_VERSION,
			VFMIG_PROTO_MIN_VERSION);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (h->options & ~VFMIG_OPT_ALL) {
		snprintf(why, whylen, "unknown option bits 0x%x", h->options & ~VFMIG_OPT_ALL);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (h->ndevices != l->ndevices) {
		snprintf(why, whylen,
			 "device count mismatch: source migrates %u, destination has %u",
			 h->ndevices, l->ndevices);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (multifd ? (h->nchannels == 0 || h->nchannels > VFMIG_MAX_CHANNELS) : h->nchannels) {
		snprintf(why, whylen, "invalid channel count %u with multifd %s", h->nchannels,
			 multifd ? "on" : "off");
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (onoff_conflict(o->multifd, multifd)) {
		snprintf(why, whylen, "option mismatch: multifd is %s on the source, %s here",
			 multifd ? "on" : "off", o->multifd == VFMIG_ON ? "on" : "off");
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (multifd && h->nchannels > o->max_channels) {
		snprintf(
			why, whylen,
			"the source asks for %u multifd channels, this destination accepts at most "
			"%u (--max-channels)",
			h->nchannels, o->max_channels);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (multifd && o->channels && o->channels != h->nchannels) {
		snprintf(why, whylen,
			 "option mismatch: source uses %u multifd channels, destination %u",
			 h->nchannels, o->channels);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (onoff_conflict(o->switchover_ack, sack)) {
		snprintf(why, whylen,
			 "option mismatch: switchover-ack is %s on the source, %s here",
			 sack ? "on" : "off", o->switchover_ack == VFMIG_ON ? "on" : "off");
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (h->chunk_size < VFMIG_MIN_CHUNK || h->chunk_size > VFMIG_MAX_CHUNK) {
		snprintf(why, whylen, "chunk size %u outside %u..%u", h->chunk_size,
			 VFMIG_MIN_CHUNK, VFMIG_MAX_CHUNK);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (h->chunk_size > o->max_chunk) {
		snprintf(why, whylen,
			 "the source's chunk size %u is larger than this destination accepts (%u, "
			 "--max-chunk-size)",
			 h->chunk_size, o->max_chunk);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (o->max_queued_bytes < 2ull * h->chunk_size) {
		snprintf(
			why, whylen,
			"--max-queued-bytes %llu cannot hold two %u-byte chunks: raise it or lower the "
			"source's --chunk-size",
			(unsigned long long)o->max_queued_bytes, h->chunk_size);
		return VFMIG_ERR_INCOMPATIBLE;
	}
	for (uint32_t i = 0; i < h->ndevices; i++) {
		const struct vfmig_device *d = l->devs[i];

		if (strcmp(h->dev[i].compat, d->compat)) {
			snprintf(why, whylen, "device %u: source is '%s', destination '%s' is '%s'",
				 i, h->dev[i].compat, d->name, d->compat);
			return VFMIG_ERR_INCOMPATIBLE;
		}
		if (h->dev[i].label[0] && d->label[0] && strcmp(h->dev[i].label, d->label)) {
			snprintf(
				why, whylen,
				"device %u: the source's is labelled '%s', the destination's ('%s') "
				"'%s': are the devices listed in the same order on both sides?",
				i, h->dev[i].label, d->name, d->label);
			return VFMIG_ERR_INCOMPATIBLE;
		}
		if (h->dev[i].config_size != d->config_size) {
			snprintf(why, whylen, "device %u: config size %u on the source, %u on '%s'",
				 i, h->dev[i].config_size, d->config_size, d->name);
			return VFMIG_ERR_INCOMPATIBLE;
		}
		if (!(d->flags & VFMIG_MIG_STOP_COPY)) {
			snprintf(why, whylen, "device %u ('%s') cannot resume (no STOP_COPY)", i,
				 d->name);
			return VFMIG_ERR_INCOMPATIBLE;
		}
		if (h->ndevices > 1 && !(d->flags & VFMIG_MIG_P2P)) {
			snprintf(
				why, whylen,
				"device %u ('%s') lacks P2P support: a migration of several devices needs "
				"P2P on every device",
				i, d->name);
			return VFMIG_ERR_INCOMPATIBLE;
		}
	}
	if ((h->options & VFMIG_OPT_PRECOPY_MULTIFD) && !multifd) {
		snprintf(why, whylen, "precopy over multifd asked for with multifd off");
		return VFMIG_ERR_INCOMPATIBLE;
	}
	if (o->load_config_after_iter == VFMIG_ON)
		opts |= VFMIG_OPT_LOAD_CONFIG_AFTER_ITER;
	/* Declined: the source sends precopy data on the main channel. */
	if (o->precopy_multifd == VFMIG_OFF)
		opts &= ~VFMIG_OPT_PRECOPY_MULTIFD;
	/* Declined as an older destination would (the source copes, see precopy.c). */
	if (o->precopy_reinit == VFMIG_OFF)
		opts &= ~VFMIG_OPT_PRECOPY_REINIT;
	*agreed = opts;
	return VFMIG_OK;
}

/* ---- reports (ERROR, HELLO_ACK) ------------------------------------------------------ */

_Static_assert(VFMIG_ERROR_FIXED == VFMIG_HELLO_ACK_FIXED, "one report layout");

uint32_t vfmig_report_encode(uint8_t p[VFMIG_ERROR_FIXED + VFMIG_MSG_MAX], uint32_t a, uint32_t b,
			     uint32_t c, const char *msg)
{
	size_t n = strnlen(msg, VFMIG_MSG_MAX);

	put_le32(p, a);
	put_le32(p + 4, b);
	put_le32(p + 8, c);
	put_le32(p + 12, 0);
	memcpy(p + VFMIG_ERROR_FIXED, msg, n);
	return (uint32_t)(VFMIG_ERROR_FIXED + n);
}

/* The frame's length was checked against the type (VFMIG_ERROR_FIXED..+MSG_MAX). */
void vfmig_report_decode(const struct vfmig_frame *f, struct vfmig_report *r)
{
	size_t n = f->h.length - VFMIG_ERROR_FIXED;

	r->a = get_le32(f->payload);
	r->b = get_le32(f->payload + 4);
	r->c = get_le32(f->payload + 8);
	memcpy(r->msg, f->payload + VFMIG_ERROR_FIXED, n);
	r->msg[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)r->msg[i] < 0x20 || r->msg[i] == 0x7f)
			r->msg[i] = '?'; /* never print control bytes from the wire */
	}
}

/* ---- CHANNEL_HELLO, COMPLETE ----------------------------------------------------------- */

void vfmig_channel_hello_encode(uint8_t p[VFMIG_CHANNEL_HELLO_LEN],
				const struct vfmig_channel_hello *ch)
{
	put_le64(p, ch->session_id);
	put_le32(p + 8, ch->channel);
	put_le32(p + 12, ch->nchannels);
}

void vfmig_channel_hello_decode(const uint8_t p[VFMIG_CHANNEL_HELLO_LEN],
				struct vfmig_channel_hello *ch)
{
	ch->session_id = get_le64(p);
	ch->channel = get_le32(p + 8);
	ch->nchannels = get_le32(p + 12);
}

void vfmig_complete_encode(uint8_t p[VFMIG_COMPLETE_LEN], const struct vfmig_complete *c)
{
	memset(p, 0, VFMIG_COMPLETE_LEN);
	put_le64(p, c->dest_downtime_ns);
	put_le64(p + 8, c->reorder_peak);
	put_le64(p + 16, c->stopcopy_bytes);
}

void vfmig_complete_decode(const uint8_t p[VFMIG_COMPLETE_LEN], struct vfmig_complete *c)
{
	c->dest_downtime_ns = get_le64(p);
	c->reorder_peak = get_le64(p + 8);
	c->stopcopy_bytes = get_le64(p + 16);
}
