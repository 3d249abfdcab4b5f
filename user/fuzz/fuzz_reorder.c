// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_reorder.c - the destination's reorder buffer (reorder.c): admission
 * from the header, backpressure, the stuck detector, in-order delivery.
 *
 * The input is a buffer geometry (devices, window, budget, largest chunk,
 * producers) and a list of operations, each what a channel reader or a load
 * thread does: reserve a chunk from its header, fill or drop (unreserve)
 * a reservation, pop the next chunk of a device, release it after writing,
 * a producer leaving, an abort.  A model written from the documented rules
 * (Documentation/engine-design.rst, "Reorder buffer" and "Memory bound")
 * predicts every outcome, and after every operation the harness checks:
 *
 *   - the bytes admitted never exceed the budget plus one chunk per device
 *     (max_queued_bytes + ndevices x chunk), and equal the model's count;
 *   - chunks come out of pop() in idx order per device, with the bytes,
 *     length and flags they went in with, the CONFIG chunk last;
 *   - every refusal is the documented one (unknown device, duplicate, idx
 *     beyond the window's range or after the CONFIG chunk, second CONFIG,
 *     CONFIG below data already seen), errors are sticky, and a buffer that
 *     can no longer progress fails with -ENOBUFS instead of hanging;
 *   - nothing leaks (LeakSanitizer): every buffer is freed by the harness
 *     after pop() or by vfmig_reorder_destroy().
 *
 * A reserve the model says must wait (backpressure) runs in a helper thread
 * (one at a time); after every operation the harness waits, deterministically,
 * until that thread is either done or provably asleep again in the buffer,
 * and compares with the model.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "fuzz.h"

const char fuzz_name[] = "reorder";
const unsigned fuzz_smoke_execs = 20000;

#define WMAX 16

enum outcome { ADMIT, WAIT };

struct mslot {
	bool present, reserved;
	uint32_t flags, len;
};

struct mdev {
	uint32_t next, max_seen, last;
	bool writing, complete;
	uint32_t wlen; /* length of the chunk being written */
	struct mslot ring[WMAX];
};

struct waiter {
	bool active;
	pthread_t t;
	struct vfmig_reorder *r;
	uint32_t dev, idx, flags, len;
	int ret;
	atomic_bool done;
	char why[160];
};

struct h {
	struct vfmig_reorder r;
	unsigned ndev, producers;
	uint32_t window, maxlen;
	uint64_t budget, queued, peak;
	int failed;
	struct mdev d[4];
	struct waiter w;
};

static uint8_t pattern(uint32_t dev, uint32_t idx, uint32_t i)
{
	return (uint8_t)(dev * 31 + idx * 7 + i);
}

/* Can device @i's load thread or a producer still make progress?  (stuck_locked) */
static bool model_stuck(struct h *H, unsigned stalled)
{
	if (!stalled || stalled < H->producers)
		return false;
	for (unsigned i = 0; i < H->ndev; i++) {
		struct mdev *d = &H->d[i];
		struct mslot *s = &d->ring[d->next % H->window];

		if (d->writing)
			return false;
		if (!d->complete && (s->present || s->reserved))
			return false;
	}
	return true;
}

static void model_fail(struct h *H, int err)
{
	if (!H->failed)
		H->failed = err;
}

/* The checks done once, before the wait loop: 0 to go on, or the error. */
static int model_precheck(struct h *H, uint32_t dev, uint32_t idx, uint32_t flags)
{
	struct mdev *d;

	if (H->failed)
		return H->failed;
	if (dev >= H->ndev)
		return -ENODEV;
	d = &H->d[dev];
	if (idx == VFMIG_IDX_INVALID)
		return -ERANGE;
	if (idx < d->next)
		return -EEXIST;
	if (d->last != VFMIG_IDX_INVALID && idx > d->last)
		return -ERANGE;
	if (flags & VFMIG_FLAG_CONFIG) {
		if (d->last != VFMIG_IDX_INVALID)
			return -EPROTO;
		if (idx < d->max_seen)
			return -ERANGE;
	}
	return 0;
}

/* One pass of the wait loop: <0 error, ADMIT, or WAIT. */
static int model_loop(struct h *H, uint32_t dev, uint32_t idx, uint32_t len)
{
	struct mdev *d = &H->d[dev];
	bool in_window = idx - d->next < H->window;
	struct mslot *s = &d->ring[idx % H->window];

	if (H->failed)
		return H->failed;
	if (in_window && (s->present || s->reserved))
		return -EEXIST;
	if (in_window && ((idx == d->next && !d->writing) || H->queued + len <= H->budget))
		return ADMIT;
	return WAIT;
}

static void model_admit(struct h *H, uint32_t dev, uint32_t idx, uint32_t flags, uint32_t len)
{
	struct mdev *d = &H->d[dev];
	struct mslot *s = &d->ring[idx % H->window];

	/* The documented bound: beyond the budget only the chunk a device needs next. */
	FUZZ_CHECK(H->queued + len <= H->budget || (idx == d->next && !d->writing),
		   "device %u idx %u (%u bytes) admitted over the budget", dev, idx, len);
	s->reserved = true;
	s->present = false;
	s->flags = flags;
	s->len = len;
	H->queued += len;
	H->peak = MAX(H->peak, H->queued);
	if (flags & VFMIG_FLAG_CONFIG)
		d->last = idx;
	if (idx + 1 > d->max_seen)
		d->max_seen = idx + 1;
}

static void check_state(struct h *H)
{
	struct vfmig_reorder *r = &H->r;

	pthread_mutex_lock(&r->lock);
	FUZZ_CHECK(r->queued == H->queued, "queued %llu, model %llu", (unsigned long long)r->queued,
		   (unsigned long long)H->queued);
	FUZZ_CHECK(r->queued <= H->budget + (uint64_t)H->ndev * H->maxlen,
		   "queued %llu over budget %llu + %u x %u", (unsigned long long)r->queued,
		   (unsigned long long)H->budget, H->ndev, H->maxlen);
	FUZZ_CHECK(r->peak == H->peak && r->peak >= r->queued, "peak %llu, model %llu",
		   (unsigned long long)r->peak, (unsigned long long)H->peak);
	FUZZ_CHECK(r->failed == H->failed, "failed %d, model %d", r->failed, H->failed);
	FUZZ_CHECK(r->producers == H->producers, "producers %u, model %u", r->producers,
		   H->producers);
	for (unsigned i = 0; i < H->ndev; i++) {
		struct vfmig_reorder_dev *rd = &r->dev[i];
		struct mdev *d = &H->d[i];

		FUZZ_CHECK(rd->next_idx == d->next && rd->max_seen == d->max_seen &&
				   rd->last_idx == d->last && rd->writing == d->writing &&
				   rd->complete == d->complete,
			   "device %u: next %u/%u max_seen %u/%u last %u/%u", i, rd->next_idx,
			   d->next, rd->max_seen, d->max_seen, rd->last_idx, d->last);
		for (uint32_t k = 0; k < H->window; k++) {
			struct vfmig_slot *s = &rd->ring[k];
			struct mslot *m = &d->ring[k];

			FUZZ_CHECK(s->present == m->present && s->reserved == m->reserved,
				   "device %u slot %u: present %d/%d reserved %d/%d", i, k,
				   s->present, m->present, s->reserved, m->reserved);
			if (m->present || m->reserved)
				FUZZ_CHECK(s->len == m->len && s->flags == m->flags,
					   "device %u slot %u: len %u/%u", i, k, s->len, m->len);
		}
	}
	pthread_mutex_unlock(&r->lock);
}

static void *waiter_fn(void *arg)
{
	struct waiter *w = arg;

	w->ret = vfmig_reorder_reserve(w->r, w->dev, w->idx, w->flags, w->len, w->why,
				       sizeof(w->why));
	atomic_store(&w->done, true);
	return NULL;
}

/*
 * After an operation that may have woken the waiter: the model's verdict
 * on its reserve, then wait until the thread agrees (done, or asleep in
 * the buffer again having looked at the new state).
 */
static void settle(struct h *H, bool woken)
{
	struct waiter *w = &H->w;
	int want = WAIT;

	if (!w->active)
		return;
	if (woken || H->failed) {
		want = model_loop(H, w->dev, w->idx, w->len);
		if (want == WAIT && model_stuck(H, 1)) {
			model_fail(H, -ENOBUFS);
			want = -ENOBUFS;
		}
	}
	for (;;) {
		bool asleep;

		if (atomic_load(&w->done))
			break;
		pthread_mutex_lock(&H->r.lock);
		asleep = H->r.blocked == 1 && H->r.stalled >= 1 && !H->r.failed;
		pthread_mutex_unlock(&H->r.lock);
		if (asleep) {
			FUZZ_CHECK(want == WAIT,
				   "reserve of device %u idx %u still waits, model %d", w->dev,
				   w->idx, want);
			return;
		}
		sched_yield();
	}
	pthread_join(w->t, NULL);
	w->active = false;
	FUZZ_CHECK(want != WAIT, "reserve of device %u idx %u returned %d, model waits (%s)",
		   w->dev, w->idx, w->ret, w->why);
	if (want == ADMIT) {
		FUZZ_CHECK(w->ret == 0, "waiting reserve returned %d (%s), model admits", w->ret,
			   w->why);
		model_admit(H, w->dev, w->idx, w->flags, w->len);
	} else {
		FUZZ_CHECK(w->ret == want, "waiting reserve returned %d, model %d", w->ret, want);
	}
}

static void op_reserve(struct h *H, uint32_t dev, uint32_t idx, uint32_t flags, uint32_t len)
{
	char why[160];
	int want, ret;

	want = model_precheck(H, dev, idx, flags);
	if (!want) {
		want = model_loop(H, dev, idx, len);
		if (want == WAIT) {
			if (model_stuck(H, (H->w.active ? 1 : 0) + 1)) {
				model_fail(H, -ENOBUFS);
				want = -ENOBUFS;
			} else if (H->w.active) {
				return; /* a second waiter: not modelled */
			} else {
				struct waiter *w = &H->w;

				w->r = &H->r;
				w->dev = dev;
				w->idx = idx;
				w->flags = flags;
				w->len = len;
				w->ret = 1;
				atomic_store(&w->done, false);
				w->active = true;
				FUZZ_CHECK(!pthread_create(&w->t, NULL, waiter_fn, w), "thread");
				settle(H, false);
				return;
			}
		}
	}
	why[0] = '\0';
	ret = vfmig_reorder_reserve(&H->r, dev, idx, flags, len, why, sizeof(why));
	if (want == ADMIT) {
		FUZZ_CHECK(ret == 0, "reserve dev %u idx %u len %u: %d (%s), model admits", dev,
			   idx, len, ret, why);
		model_admit(H, dev, idx, flags, len);
	} else {
		FUZZ_CHECK(ret == want, "reserve dev %u idx %u: %d (%s), model %d", dev, idx, ret,
			   why, want);
		FUZZ_CHECK(why[0], "refusal %d without a reason", ret);
	}
	/* A stuck failure broadcasts: the waiter returns it too. */
	settle(H, ret == -ENOBUFS);
}

/* The k-th reserved slot, or false. */
static bool nth_reserved(struct h *H, unsigned k, uint32_t *dev, uint32_t *idx)
{
	unsigned n = 0, total = 0;

	for (unsigned i = 0; i < H->ndev; i++)
		for (uint32_t j = 0; j < H->window; j++)
			total += H->d[i].ring[j].reserved;
	if (!total)
		return false;
	k %= total;
	for (unsigned i = 0; i < H->ndev; i++) {
		for (uint32_t j = 0; j < H->window; j++) {
			struct mdev *d = &H->d[i];

			if (!d->ring[j].reserved || n++ != k)
				continue;
			/* The idx of ring slot j: the one in [next, next + window). */
			*dev = i;
			*idx = d->next + ((j + H->window - d->next % H->window) % H->window);
			return true;
		}
	}
	return false;
}

static void op_fill(struct h *H, unsigned k)
{
	uint32_t dev, idx;
	struct mslot *s;
	uint8_t *data;

	if (!nth_reserved(H, k, &dev, &idx))
		return;
	s = &H->d[dev].ring[idx % H->window];
	data = vfmig_payload_alloc(s->len);
	FUZZ_CHECK(data, "alloc");
	for (uint32_t i = 0; i < s->len; i++)
		data[i] = pattern(dev, idx, i);
	vfmig_reorder_fill(&H->r, dev, idx, data);
	s->reserved = false;
	s->present = true;
	settle(H, true);
}

static void op_unreserve(struct h *H, unsigned k)
{
	uint32_t dev, idx;
	struct mslot *s;

	if (!nth_reserved(H, k, &dev, &idx))
		return;
	s = &H->d[dev].ring[idx % H->window];
	vfmig_reorder_unreserve(&H->r, dev, idx);
	H->queued -= s->len;
	memset(s, 0, sizeof(*s));
	settle(H, true);
}

/* A load thread takes the next chunk of @dev, only where pop() does not wait. */
static void op_pop(struct h *H, uint32_t dev)
{
	struct mdev *d = &H->d[dev];
	struct mslot *s = &d->ring[d->next % H->window];
	struct vfmig_slot out;
	uint32_t idx = 0xabcd;
	int want, ret;

	if (d->writing)
		return; /* a load thread pops again only after its release */
	if (H->failed)
		want = H->failed;
	else if (d->complete)
		want = -EINVAL;
	else if (s->present)
		want = 0;
	else if (!H->producers)
		want = -EPIPE;
	else if (model_stuck(H, H->w.active ? 1 : 0))
		want = -ENOBUFS;
	else
		return; /* it would wait for a producer */
	ret = vfmig_reorder_pop(&H->r, dev, &out, &idx);
	FUZZ_CHECK(ret == want, "pop device %u: %d, model %d", dev, ret, want);
	if (want == -EPIPE || want == -ENOBUFS)
		model_fail(H, want);
	if (ret) {
		settle(H, want == -EPIPE || want == -ENOBUFS);
		return;
	}
	FUZZ_CHECK(idx == d->next, "device %u: popped idx %u, expected %u", dev, idx, d->next);
	FUZZ_CHECK(out.len == s->len && out.flags == s->flags && (out.data || !out.len),
		   "device %u idx %u: len %u/%u flags %u/%u", dev, idx, out.len, s->len, out.flags,
		   s->flags);
	for (uint32_t i = 0; i < out.len; i++)
		FUZZ_CHECK(out.data[i] == pattern(dev, idx, i), "device %u idx %u byte %u", dev,
			   idx, i);
	vfmig_payload_free(out.data, out.len);
	d->writing = true;
	d->wlen = s->len;
	if (s->flags & VFMIG_FLAG_CONFIG)
		d->complete = true;
	memset(s, 0, sizeof(*s));
	d->next++;
	settle(H, true);
}

static void op_release(struct h *H, uint32_t dev)
{
	struct mdev *d = &H->d[dev];

	if (!d->writing)
		return;
	vfmig_reorder_release(&H->r, dev, d->wlen);
	H->queued -= d->wlen;
	d->writing = false;
	settle(H, true);
}

static void op_producer_exit(struct h *H)
{
	/* The waiting thread is a producer that has not left. */
	if (H->producers <= (H->w.active ? 1u : 0u))
		return;
	vfmig_reorder_producer_exit(&H->r);
	H->producers--;
	settle(H, true);
}

static void op_abort(struct h *H)
{
	vfmig_reorder_abort(&H->r);
	model_fail(H, -ECANCELED);
	settle(H, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct h H;
	struct fz z = { data, MIN(size, (size_t)FUZZ_MAX_INPUT) };
	uint8_t g0 = fz_u8(&z), g1 = fz_u8(&z), g2 = fz_u8(&z), g3 = fz_u8(&z);

	memset(&H, 0, sizeof(H));
	H.ndev = 1 + (g0 & 3);
	H.producers = 1 + ((g0 >> 2) % 3);
	H.window = 1 + (g1 % WMAX);
	H.maxlen = 1 + g2;
	H.budget = 1 + (uint64_t)g3 * 4;
	for (unsigned i = 0; i < H.ndev; i++)
		H.d[i].last = VFMIG_IDX_INVALID;
	FUZZ_CHECK(!vfmig_reorder_init(&H.r, H.ndev, H.producers, H.budget, H.window), "init");
	while (z.n) {
		uint8_t op = fz_u8(&z), a = fz_u8(&z);
		uint32_t dev = a % (H.ndev + 1), idx;
		int8_t delta;

		switch (op % 16) {
		case 0 ... 4: /* reserve (a: device, then idx offset, length, flags) */
			delta = (int8_t)fz_u8(&z);
			if (dev >= H.ndev)
				idx = (uint8_t)delta;
			else if (delta == INT8_MIN)
				idx = VFMIG_IDX_INVALID;
			else
				idx = delta < 0 && (uint32_t)-delta > H.d[dev].next ?
					      0 :
					      H.d[dev].next + delta;
			{
				uint8_t l = fz_u8(&z);
				uint32_t flags = (op & 0x80) ? VFMIG_FLAG_CONFIG : 0;
				uint32_t len = flags ? l % (H.maxlen + 1) : 1 + l % H.maxlen;

				op_reserve(&H, dev, idx, flags, len);
			}
			break;
		case 5 ... 7:
			op_fill(&H, a);
			break;
		case 8:
			op_unreserve(&H, a);
			break;
		case 9 ... 11:
			op_pop(&H, a % H.ndev);
			break;
		case 12 ... 13:
			op_release(&H, a % H.ndev);
			break;
		case 14:
			op_producer_exit(&H);
			break;
		case 15:
			if (a == 0xab)
				op_abort(&H);
			break;
		}
		check_state(&H);
	}
	if (H.w.active)
		op_abort(&H);
	FUZZ_CHECK(!H.w.active, "the waiting reserve did not end on abort");
	/* Chunks being written belong to the harness (freed at pop); the rest to the buffer. */
	vfmig_reorder_destroy(&H.r);
	return 0;
}
