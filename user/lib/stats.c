// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * stats.c - what a migration measured, for people (vfmig_stats_print) and
 * machines (vfmig_stats_json, a json-c object).
 *
 * Definitions: total = session start to end; downtime (source) = first
 * device leaving RUNNING/PRE_COPY (phase 1) to COMPLETE received, i.e. the
 * last destination device RUNNING plus one network hop; switchover-ack wait
 * = all initial bytes sent to the last ack; per-channel throughput = packet
 * bytes over time spent in that channel's sends (source) or reads
 * (destination).
 *
 * Locks: none; called by the coordinating thread after every thread joined.
 */
#include <inttypes.h>
#include <stdio.h>

#include <json.h>

#include "session.h"

void vfmig_stats_finish(struct vfmig_session *s, uint64_t data_bytes, uint64_t config_bytes,
			uint64_t reorder_peak)
{
	struct vfmig_stats *st = &s->st;

	st->total_ns = vfmig_now_ns() - s->t_start;
	st->multifd = s->nch != 0;
	st->nchannels = s->nch;
	st->switchover_ack = s->options & VFMIG_OPT_SWITCHOVER_ACK;
	st->load_config_after_iter = s->options & VFMIG_OPT_LOAD_CONFIG_AFTER_ITER;
	st->precopy_reinit = s->options & VFMIG_OPT_PRECOPY_REINIT;
	st->precopy_multifd = s->options & VFMIG_OPT_PRECOPY_MULTIFD;
	st->chunk_size = s->chunk;
	st->stopcopy_bytes = data_bytes;
	st->config_bytes = config_bytes;
	if (!s->source)
		st->reorder_peak_bytes = reorder_peak;
}

const char *vfmig_fmt_bytes(char *buf, size_t len, uint64_t b)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	if (u)
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	else
		snprintf(buf, len, "%" PRIu64 " B", b);
	return buf;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static double mibps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (1024.0 * 1024.0) / ((double)ns / 1e9) : 0;
}

static const char *converge_name(enum vfmig_converge c)
{
	switch (c) {
	case VFMIG_CONVERGE_DOWNTIME:
		return "downtime-limit";
	case VFMIG_CONVERGE_MAX_ITER:
		return "max-iterations";
	case VFMIG_CONVERGE_MAX_TIME:
		return "max-precopy-time";
	default:
		return "no-precopy";
	}
}

void vfmig_stats_print(FILE *f, const struct vfmig_stats *st)
{
	char b1[32], b2[32], b3[32];

	fprintf(f, "%s: %u device(s), multifd %s (%u channel(s), %s chunks), switchover-ack %s\n",
		st->source ? "source" : "destination", st->ndevices, st->multifd ? "on" : "off",
		st->nchannels, vfmig_fmt_bytes(b1, sizeof(b1), st->chunk_size),
		st->switchover_ack ? "on" : "off");
	fprintf(f, "  total time        %10.1f ms (setup %.1f ms)\n", ms(st->total_ns),
		ms(st->setup_ns));
	if (st->source) {
		fprintf(f, "  downtime          %10.1f ms (STOP_COPY transfer %.1f ms)\n",
			ms(st->downtime_ns), ms(st->stopcopy_ns));
		fprintf(f,
			"  precopy           %10u iterations, %s in %.1f ms (%s), switch over: %s\n",
			st->precopy_iterations, vfmig_fmt_bytes(b1, sizeof(b1), st->precopy_bytes),
			ms(st->precopy_ns),
			st->precopy_multifd ? "devices in parallel, multifd" :
					      "device after device, main channel",
			converge_name(st->converge));
		fprintf(f, "  estimate          %10s STOP_COPY at %s/s\n",
			vfmig_fmt_bytes(b1, sizeof(b1), st->est_stopcopy_bytes),
			vfmig_fmt_bytes(b2, sizeof(b2), (uint64_t)st->bandwidth_Bps));
		fprintf(f, "  switchover-ack    %10.1f ms waited\n",
			ms(st->switchover_ack_wait_ns));
		if (st->precopy_reinits)
			fprintf(f, "  precopy reinit    %10u REINIT(s), %u stale ack(s) ignored\n",
				st->precopy_reinits, st->switchover_acks_stale);
	} else {
		fprintf(f, "  downtime (local)  %10.1f ms (loading %.1f ms)\n",
			ms(st->dest_downtime_ns), ms(st->stopcopy_ns));
		fprintf(f, "  precopy           %10s loaded\n",
			vfmig_fmt_bytes(b1, sizeof(b1), st->precopy_bytes));
		if (st->precopy_reinits)
			fprintf(f, "  precopy reinit    %10u fresh switchover-ack(s)\n",
				st->precopy_reinits);
	}
	fprintf(f, "  stop-copy         %10s + %s config, reorder peak %s\n",
		vfmig_fmt_bytes(b1, sizeof(b1), st->stopcopy_bytes),
		vfmig_fmt_bytes(b2, sizeof(b2), st->config_bytes),
		vfmig_fmt_bytes(b3, sizeof(b3), st->reorder_peak_bytes));
	for (unsigned i = 0; i <= st->nchannels && i <= VFMIG_MAX_CHANNELS; i++) {
		const struct vfmig_channel_stats *c = &st->ch[i];

		fprintf(f, "  %-7s %-3u       %10s in %" PRIu64 " packets, %.1f MiB/s\n",
			i ? "channel" : "main", i, vfmig_fmt_bytes(b1, sizeof(b1), c->bytes),
			c->packets, mibps(c->bytes, c->busy_ns));
	}
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

void *vfmig_stats_json(const struct vfmig_stats *st, const struct vfmig_error *err)
{
	struct json_object *o = json_object_new_object();
	struct json_object *chs = json_object_new_array();

	if (!o || !chs) {
		json_object_put(o);
		json_object_put(chs);
		return NULL;
	}
	json_object_object_add(o, "role",
			       json_object_new_string(st->source ? "source" : "destination"));
	json_object_object_add(o, "ok", json_object_new_boolean(!err || err->cls == VFMIG_OK));
	if (err && err->cls != VFMIG_OK) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "class",
				       json_object_new_string(vfmig_errclass_name(err->cls)));
		json_object_object_add(e, "exit_code", json_object_new_int(err->cls));
		json_object_object_add(e, "errno", json_object_new_int(err->err));
		json_object_object_add(e, "device", json_object_new_int(err->device));
		json_object_object_add(e, "where", json_object_new_string(err->where));
		json_object_object_add(e, "message", json_object_new_string(err->msg));
		json_object_object_add(o, "error", e);
	}
	add_u64(o, "devices", st->ndevices);
	json_object_object_add(o, "multifd", json_object_new_boolean(st->multifd));
	add_u64(o, "channels", st->nchannels);
	add_u64(o, "chunk_size", st->chunk_size);
	json_object_object_add(o, "switchover_ack", json_object_new_boolean(st->switchover_ack));
	json_object_object_add(o, "load_config_after_iter",
			       json_object_new_boolean(st->load_config_after_iter));
	add_u64(o, "total_ns", st->total_ns);
	add_u64(o, "setup_ns", st->setup_ns);
	add_u64(o, "precopy_ns", st->precopy_ns);
	add_u64(o, "downtime_ns", st->downtime_ns);
	add_u64(o, "dest_downtime_ns", st->dest_downtime_ns);
	add_u64(o, "stopcopy_ns", st->stopcopy_ns);
	add_u64(o, "switchover_ack_wait_ns", st->switchover_ack_wait_ns);
	add_u64(o, "precopy_iterations", st->precopy_iterations);
	json_object_object_add(o, "precopy_reinit", json_object_new_boolean(st->precopy_reinit));
	json_object_object_add(o, "precopy_multifd", json_object_new_boolean(st->precopy_multifd));
	add_u64(o, "precopy_reinits", st->precopy_reinits);
	add_u64(o, "switchover_acks_stale", st->switchover_acks_stale);
	json_object_object_add(o, "tls_cipher", json_object_new_string(st->tls_cipher));
	add_u64(o, "precopy_bytes", st->precopy_bytes);
	add_u64(o, "stopcopy_bytes", st->stopcopy_bytes);
	add_u64(o, "config_bytes", st->config_bytes);
	add_u64(o, "est_stopcopy_bytes", st->est_stopcopy_bytes);
	json_object_object_add(o, "bandwidth_Bps", json_object_new_double(st->bandwidth_Bps));
	json_object_object_add(o, "converged_by",
			       json_object_new_string(converge_name(st->converge)));
	add_u64(o, "reorder_peak_bytes", st->reorder_peak_bytes);
	for (unsigned i = 0; i <= st->nchannels && i <= VFMIG_MAX_CHANNELS; i++) {
		struct json_object *c = json_object_new_object();

		add_u64(c, "id", i);
		add_u64(c, "bytes", st->ch[i].bytes);
		add_u64(c, "packets", st->ch[i].packets);
		add_u64(c, "busy_ns", st->ch[i].busy_ns);
		json_object_object_add(
			c, "MiBps",
			json_object_new_double(mibps(st->ch[i].bytes, st->ch[i].busy_ns)));
		json_object_array_add(chs, c);
	}
	json_object_object_add(o, "channels_stats", chs);
	return o;
}
