// SPDX-License-Identifier: GPL-2.0-only
/*
 * seeds.c - valid inputs for every harness, built with the library's own
 * encoders and a fake source device, so the corpora never need committed
 * blobs: gen-corpus writes them to files for `make fuzz`, the smoke tests
 * (smoke.c) start from them in `make check`.
 */
#include <string.h>

#include "fuzz.h"

#define ALL_FLAGS (VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P | VFMIG_MIG_PRE_COPY)

/* ---- a growable byte buffer ---------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2 + 256;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
}

static void put8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}

static void put_frame(struct buf *b, uint16_t type, uint32_t flags, uint32_t dev, uint32_t idx,
		      const void *payload, uint32_t len)
{
	uint8_t *f = malloc(VFMIG_HDR_LEN + len);

	if (!f)
		abort();
	put(b, f, vfmig_frame_encode(f, type, flags, dev, idx, payload, len));
	free(f);
}

static void emit(fuzz_seed_fn fn, void *arg, const char *tag, struct buf *b)
{
	fn(arg, tag, b->p, b->len);
	b->len = 0;
}

static size_t hello(uint8_t *out, unsigned ndev, unsigned nch, uint32_t opts, uint32_t chunk)
{
	struct vfmig_hello h = { 0 };

	h.proto_version = h.min_proto_version = VFMIG_PROTO_VERSION;
	h.session_id = FZS_SESSION_ID;
	h.options = (nch ? VFMIG_OPT_MULTIFD : 0) | opts;
	h.nchannels = nch;
	h.chunk_size = chunk;
	h.ndevices = ndev;
	for (unsigned i = 0; i < ndev; i++) {
		h.dev[i].mig_flags = ALL_FLAGS;
		h.dev[i].config_size = 256;
		snprintf(h.dev[i].compat, VFMIG_COMPAT_LEN, "fake:%u", FZS_DEV_SIZE);
		if (i == 1)
			snprintf(h.dev[i].label, VFMIG_LABEL_LEN, "nic0");
	}
	return vfmig_hello_encode(out, VFMIG_HELLO_MAX, &h);
}

/* ---- frame ------------------------------------------------------------------------- */

static void seeds_frame(fuzz_seed_fn fn, void *arg)
{
	uint8_t p[VFMIG_HELLO_MAX], data[300];
	struct buf b = { 0 };
	size_t n;

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	for (unsigned reseal = 0; reseal < 2; reseal++) {
		/* limits: 2 devices, 4 KiB chunks; admission refuses every 4th DEVICE_STATE */
		put8(&b, (uint8_t)(2 | (reseal << 7)));
		put8(&b, 2 | (4 << 3));
		n = hello(p, 2, 2, VFMIG_OPT_SWITCHOVER_ACK, 4096);
		put_frame(&b, VFMIG_F_HELLO, 0, 0, 0, p, (uint32_t)n);
		n = vfmig_report_encode(p, 0, VFMIG_OPT_MULTIFD, 2, "ok");
		put_frame(&b, VFMIG_F_HELLO_ACK, 0, 0, 0, p, (uint32_t)n);
		{
			struct vfmig_channel_hello ch = { FZS_SESSION_ID, 1, 2 };

			vfmig_channel_hello_encode(p, &ch);
			put_frame(&b, VFMIG_F_CHANNEL_HELLO, 0, 0, 0, p, VFMIG_CHANNEL_HELLO_LEN);
		}
		put_frame(&b, VFMIG_F_READY, 0, 0, 0, NULL, 0);
		put_frame(&b, VFMIG_F_PRECOPY_DATA, 0, 1, 0, data, 200);
		put_frame(&b, VFMIG_F_INIT_DATA_SENT, 0, 1, 0, NULL, 0);
		put_frame(&b, VFMIG_F_SWITCHOVER_ACK, 0, 1, 0, NULL, 0);
		put_frame(&b, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0);
		for (unsigned i = 0; i < 5; i++)
			put_frame(&b, VFMIG_F_DEVICE_STATE, 0, i & 1, i / 2, data, 64 + i);
		put_frame(&b, VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, 0, 3, data, 256);
		put_frame(&b, VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, 1, 2, NULL, 0);
		put_frame(&b, VFMIG_F_CHANNEL_END, 0, 0, 0, NULL, 0);
		put_frame(&b, VFMIG_F_LOADED, 0, 0, 0, NULL, 0);
		put_frame(&b, VFMIG_F_COMMIT, 0, 0, 0, NULL, 0);
		{
			struct vfmig_complete c = { 1000, 4096, 8192 };

			vfmig_complete_encode(p, &c);
			put_frame(&b, VFMIG_F_COMPLETE, 0, 0, 0, p, VFMIG_COMPLETE_LEN);
		}
		n = vfmig_report_encode(p, VFMIG_ERR_PROTOCOL, 71, 1, "bad idx");
		put_frame(&b, VFMIG_F_ERROR, VFMIG_ERRF_RESET, 0, 0, p, (uint32_t)n);
		put_frame(&b, VFMIG_F_PING, 0, 0, 0, NULL, 0);
		emit(fn, arg, reseal ? "all-types-reseal" : "all-types", &b);

		/* Before the handshake: no device index is valid. */
		put8(&b, (uint8_t)(reseal << 7));
		put8(&b, 0);
		n = hello(p, 1, 0, 0, 1u << 20);
		put_frame(&b, VFMIG_F_HELLO, 0, 0, 0, p, (uint32_t)n);
		put_frame(&b, VFMIG_F_PRECOPY_DATA, 0, 0, 0, data, 10);
		emit(fn, arg, reseal ? "pre-handshake-reseal" : "pre-handshake", &b);
	}
	free(b.p);
}

/* ---- wire -------------------------------------------------------------------------- */

static void seeds_wire(fuzz_seed_fn fn, void *arg)
{
	uint8_t p[VFMIG_HELLO_MAX];
	struct buf b = { 0 };
	size_t n;

	for (unsigned ndev = 1; ndev <= 2; ndev++) {
		for (unsigned nch = 0; nch <= 2; nch += 2) {
			uint8_t local[48] = { 0 };

			/* destination: ndev devices "fake:8192" with 256 bytes of config, all
			 * flags; options auto; max 16 channels of 4 MiB; 256 MiB budget */
			local[0] = (uint8_t)(ndev - 1);
			local[3] = 16;
			put_le32(local + 4, 4u << 20);
			put_le32(local + 8, 1u << 20);
			local[12] = 8;
			for (unsigned i = 0; i < ndev; i++)
				local[13 + i] = 0xf0 | (i == 1 ? 1 << 2 : 0);
			put8(&b, 0);
			put(&b, local, sizeof(local));
			n = hello(p, ndev, nch, VFMIG_OPT_SWITCHOVER_ACK, 1u << 20);
			put(&b, p, n);
			emit(fn, arg, "hello", &b);
		}
	}
	put8(&b, 1);
	n = vfmig_report_encode(p, VFMIG_ERR_INCOMPATIBLE, 0, 0xffffffff,
				"device count mismatch: source migrates 2, destination has 1");
	put(&b, p, n);
	emit(fn, arg, "report", &b);
	put8(&b, 1);
	n = vfmig_report_encode(p, VFMIG_OK, VFMIG_OPT_MULTIFD, 4, "");
	put(&b, p, n);
	emit(fn, arg, "report-empty", &b);
	{
		struct vfmig_channel_hello ch = { FZS_SESSION_ID, 3, 4 };

		put8(&b, 2);
		vfmig_channel_hello_encode(p, &ch);
		put(&b, p, VFMIG_CHANNEL_HELLO_LEN);
		emit(fn, arg, "channel-hello", &b);
	}
	{
		struct vfmig_complete c = { 123456789, 1 << 20, 8 << 20 };

		put8(&b, 3);
		vfmig_complete_encode(p, &c);
		put(&b, p, VFMIG_COMPLETE_LEN);
		emit(fn, arg, "complete", &b);
	}
	free(b.p);
}

/* ---- reorder ----------------------------------------------------------------------- */

/* op, a, then for reserves: idx offset, length (fuzz_reorder.c). */
static void rsv(struct buf *b, bool config, uint8_t dev, int8_t delta, uint8_t len)
{
	put8(b, config ? 0x80 : 0);
	put8(b, dev);
	put8(b, (uint8_t)delta);
	put8(b, len);
}

static void op2(struct buf *b, uint8_t op, uint8_t a)
{
	put8(b, op);
	put8(b, a);
}

static void seeds_reorder(fuzz_seed_fn fn, void *arg)
{
	struct buf b = { 0 };

	/* 2 devices, 2 producers, window 8, chunks up to 64, budget 129: in order */
	put8(&b, 1 | (1 << 2));
	put8(&b, 7);
	put8(&b, 63);
	put8(&b, 32);
	for (unsigned i = 0; i < 6; i++) {
		rsv(&b, i == 5, i & 1, 0, 40);
		op2(&b, 5, 0);	    /* fill */
		op2(&b, 9, i & 1);  /* pop */
		op2(&b, 12, i & 1); /* release */
	}
	op2(&b, 14, 0);
	op2(&b, 14, 0);
	emit(fn, arg, "in-order", &b);

	/* 1 device, 1 producer, window 4, budget 65: out of order, backpressure, stuck */
	put8(&b, 0);
	put8(&b, 3);
	put8(&b, 63);
	put8(&b, 16);
	rsv(&b, false, 0, 2, 30);
	op2(&b, 5, 0);
	rsv(&b, false, 0, 1, 30);
	op2(&b, 5, 0);
	rsv(&b, false, 0, 3, 30); /* over the budget: waits */
	rsv(&b, false, 0, 0, 60); /* the next one: over the budget, admitted */
	op2(&b, 5, 0);
	op2(&b, 9, 0);
	op2(&b, 12, 0);
	op2(&b, 9, 0);
	op2(&b, 12, 0);
	rsv(&b, false, 0, 8, 10); /* outside the window */
	rsv(&b, true, 0, 2, 0);
	op2(&b, 8, 0);		   /* unreserve */
	rsv(&b, false, 0, -1, 10); /* duplicate */
	emit(fn, arg, "backpressure", &b);

	/* 3 devices, 3 producers, window 16: config rules and producers leaving */
	put8(&b, 2 | (2 << 2));
	put8(&b, 15);
	put8(&b, 255);
	put8(&b, 255);
	rsv(&b, false, 2, 0, 100);
	rsv(&b, false, 2, 1, 100);
	rsv(&b, true, 2, 3, 10);
	rsv(&b, true, 2, 4, 10);  /* second config */
	rsv(&b, false, 2, 5, 10); /* after the config */
	rsv(&b, false, 3, 0, 10); /* unknown device */
	op2(&b, 5, 0);
	op2(&b, 5, 0);
	op2(&b, 5, 0);
	op2(&b, 9, 2);
	op2(&b, 12, 2);
	op2(&b, 9, 2);
	op2(&b, 14, 0);
	op2(&b, 14, 0);
	op2(&b, 14, 0);
	op2(&b, 12, 2);
	op2(&b, 9, 2); /* idx 2 never came: every producer left */
	op2(&b, 15, 0xab);
	emit(fn, arg, "config-rules", &b);
	free(b.p);
}

/* ---- session ----------------------------------------------------------------------- */

struct stream {
	uint8_t *data;
	size_t len;
	uint8_t config[256];
	uint8_t pre[FZS_DEV_SIZE * 2];
	size_t pre_len;
};

/* What a fake source device of the destination's kind yields: precopy, STOP_COPY, config. */
static int source_stream(unsigned i, bool precopy, struct stream *s)
{
	struct vfmig_fake_cfg cfg;
	struct vfmig_device *d;
	uint8_t tmp[FZS_CHUNK];
	ssize_t n;

	memset(s, 0, sizeof(*s));
	vfmig_fake_cfg_init(&cfg);
	cfg.mem_size = FZS_DEV_SIZE;
	cfg.flags = ALL_FLAGS;
	cfg.seed = 100 + i;
	d = vfmig_fake_new("src", &cfg);
	if (!d)
		return -1;
	if (precopy) {
		if (vfmig_device_set_state(d, VFMIG_STATE_PRE_COPY, VFMIG_STATE_ERROR, NULL))
			goto fail;
		/* The initial bytes, up to the temporary end of stream. */
		while ((n = vfmig_device_read(d, tmp, sizeof(tmp))) > 0 &&
		       s->pre_len + (size_t)n <= sizeof(s->pre)) {
			memcpy(s->pre + s->pre_len, tmp, (size_t)n);
			s->pre_len += (size_t)n;
		}
	}
	if (vfmig_device_set_state(d, VFMIG_STATE_STOP_COPY, VFMIG_STATE_ERROR, NULL))
		goto fail;
	while ((n = vfmig_device_read(d, tmp, sizeof(tmp))) > 0) {
		s->data = realloc(s->data, s->len + (size_t)n);
		if (!s->data)
			goto fail;
		memcpy(s->data + s->len, tmp, (size_t)n);
		s->len += (size_t)n;
	}
	if (n < 0 || d->ops->config_read(d->priv, s->config, sizeof(s->config)) != 256)
		goto fail;
	vfmig_device_close(d);
	return 0;
fail:
	vfmig_device_close(d);
	free(s->data);
	return -1;
}

static void rec(struct buf *b, unsigned ch, uint16_t type, uint32_t flags, uint32_t dev,
		uint32_t idx, const void *p, uint32_t len)
{
	struct buf f = { 0 };
	uint8_t l[2];

	put_frame(&f, type, flags, dev, idx, p, len);
	put8(b, (uint8_t)ch);
	put_le16(l, (uint16_t)f.len);
	put(b, l, 2);
	put(b, f.p, f.len);
	free(f.p);
}

/*
 * A whole migration as a rogue source would send it after READY: precopy
 * (optional), SWITCHOVER_START, every device's STOP_COPY data and config
 * spread over the channels, CHANNEL_END, then (optionally) a wait for
 * LOADED and COMMIT.
 */
static int session(struct buf *b, uint8_t cfg, uint8_t cfg2, bool precopy, bool commit)
{
	unsigned ndev = (cfg & FZS_TWO_DEVICES) ? 2 : 1;
	unsigned nch = (cfg & FZS_MULTIFD) ? 1 + ((cfg >> FZS_NCH_SHIFT) & 3) : 0;
	bool pmf = nch && (cfg2 & FZS2_PRECOPY_MULTIFD);
	uint32_t first[2] = { 0, 0 };
	unsigned next = 0;

	struct stream s[2];

	put8(b, cfg);
	put8(b, cfg2);
	for (unsigned i = 0; i < ndev; i++) {
		if (source_stream(i, precopy, &s[i]))
			return -1;
	}
	/*
	 * Precopy of every device, then the switchover, then STOP_COPY.  Over
	 * multifd, the precopy packets start each device's sequence.
	 */
	for (unsigned i = 0; i < ndev && pmf; i++) {
		uint32_t idx = 0;
		uint8_t gen[4] = { 0 };

		for (size_t off = 0; off < s[i].pre_len; off += FZS_CHUNK, idx++)
			rec(b, 1 + next++ % nch, VFMIG_F_DEVICE_STATE, VFMIG_FLAG_PRECOPY, i, idx,
			    s[i].pre + off, (uint32_t)MIN((size_t)FZS_CHUNK, s[i].pre_len - off));
		if (precopy && (cfg & FZS_SACK))
			rec(b, 1 + next++ % nch, VFMIG_F_DEVICE_STATE, VFMIG_FLAG_INIT_SENT, i,
			    idx++, gen, sizeof(gen));
		first[i] = idx;
	}
	for (unsigned i = 0; i < ndev && !pmf; i++) {
		uint32_t idx = 0;

		for (size_t off = 0; off < s[i].pre_len; off += FZS_CHUNK, idx++)
			rec(b, 0, VFMIG_F_PRECOPY_DATA, 0, i, idx, s[i].pre + off,
			    (uint32_t)MIN((size_t)FZS_CHUNK, s[i].pre_len - off));
		if (precopy && (cfg & FZS_SACK))
			rec(b, 0, VFMIG_F_INIT_DATA_SENT, 0, i, 0, NULL, 0);
	}
	rec(b, 0, VFMIG_F_SWITCHOVER_START, 0, 0, 0, NULL, 0);
	for (unsigned i = 0; i < ndev; i++) {
		uint32_t idx = first[i];

		for (size_t off = 0; off < s[i].len; off += FZS_CHUNK, idx++) {
			rec(b, nch ? 1 + next % nch : 0, VFMIG_F_DEVICE_STATE, 0, i, idx,
			    s[i].data + off, (uint32_t)MIN((size_t)FZS_CHUNK, s[i].len - off));
			next++;
		}
		rec(b, nch ? 1 + next++ % nch : 0, VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, i, idx,
		    s[i].config, sizeof(s[i].config));
		free(s[i].data);
	}
	for (unsigned c = 0; c < nch; c++)
		rec(b, 1 + c, VFMIG_F_CHANNEL_END, 0, 0, 0, NULL, 0);
	if (commit) {
		put8(b, FZS_WAIT_LOADED);
		rec(b, 0, VFMIG_F_COMMIT, 0, 0, 0, NULL, 0);
	}
	return 0;
}

static void seeds_session(fuzz_seed_fn fn, void *arg)
{
	static const struct {
		const char *tag;
		uint8_t cfg;
		bool precopy, commit;
		uint8_t cfg2;
	} v[] = {
		{ "main-only", 0, false, true, 0 },
		{ "multifd-2", FZS_MULTIFD | (1 << FZS_NCH_SHIFT), false, true, 0 },
		{ "precopy-sack", FZS_MULTIFD | FZS_SACK, true, true, 0 },
		{ "two-devices-3ch",
		  FZS_MULTIFD | (2 << FZS_NCH_SHIFT) | FZS_TWO_DEVICES | FZS_CONFIG_AFTER_ITER,
		  true, true, 0 },
		{ "small-budget-4ch",
		  FZS_MULTIFD | (3 << FZS_NCH_SHIFT) | FZS_TWO_DEVICES | FZS_SMALL_BUDGET, false,
		  true, 0 },
		{ "no-commit", FZS_MULTIFD, false, false, 0 },
		{ "precopy-multifd-sack", FZS_MULTIFD | (1 << FZS_NCH_SHIFT) | FZS_SACK, true, true,
		  FZS2_PRECOPY_MULTIFD },
		{ "precopy-multifd-two-devices-3ch",
		  FZS_MULTIFD | (2 << FZS_NCH_SHIFT) | FZS_TWO_DEVICES | FZS_SACK, true, true,
		  FZS2_PRECOPY_MULTIFD },
	};
	struct buf b = { 0 };
	char tag[64];

	for (unsigned reseal = 0; reseal < 2; reseal++) {
		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			if (session(&b, (uint8_t)(v[i].cfg | (reseal ? FZS_RESEAL : 0)), v[i].cfg2,
				    v[i].precopy, v[i].commit))
				abort();
			snprintf(tag, sizeof(tag), "%s%s", v[i].tag, reseal ? "-reseal" : "");
			emit(fn, arg, tag, &b);
		}
	}
	free(b.p);
}

int fuzz_seeds(const char *name, fuzz_seed_fn fn, void *arg)
{
	if (!strcmp(name, "frame"))
		seeds_frame(fn, arg);
	else if (!strcmp(name, "wire"))
		seeds_wire(fn, arg);
	else if (!strcmp(name, "reorder"))
		seeds_reorder(fn, arg);
	else if (!strcmp(name, "session"))
		seeds_session(fn, arg);
	else
		return -1;
	return 0;
}
