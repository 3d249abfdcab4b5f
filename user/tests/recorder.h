/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * recorder.h - a device wrapper for the host unit tests that records every
 * state change of every source and destination device against one clock (a
 * global sequence number), and a checker that replays the record.
 *
 * Wrap each device before handing it to a session:
 *
 *	struct rec_log *l = rec_log_new();
 *	src[i] = rec_wrap(l, fake(...), REC_SOURCE, i);
 *	dst[i] = rec_wrap(l, fake(...), REC_DEST, i);
 *	... migrate ...
 *	ASSERT_EQ(0, rec_check_never_both(l, n, why, sizeof(why))) TH_LOG("%s", why);
 *
 * The wrapper forwards every op to the wrapped ("inner") device; rec_inner()
 * gives it back for vfmig_fake_digest() and friends.  Closing the wrapper
 * closes the inner device.
 *
 * What is recorded, per device (side, pair):
 *   - at rec_wrap(): the device's current state; a source holds its state
 *     from the start, a destination is blank;
 *   - set_state(target) to a running state (RUNNING, RUNNING_P2P, PRE_COPY,
 *     PRE_COPY_P2P): "may be running from now", BEFORE the inner op;
 *   - after every set_state: the state the device is actually in (inner
 *     get_state; ERROR if that fails); entering RESUMING makes the device hold
 *     (possibly partial) migrated state;
 *   - reset(): after the inner reset, RUNNING with its state discarded (blank),
 *     as VFIO_DEVICE_RESET does.  A reset made to fail by rec_fail_reset()
 *     does not reach the inner device and records the unchanged state.
 *
 * The checker says a device is "live" while it holds state (not blank) and is
 * in a running state or may be running (between the "may be running" event
 * and the next state event).  A source and a destination of the same pair
 * must never be live at the same time: that would be two running copies of
 * one device.  The events bracket each op conservatively (a device is taken
 * as running from before the op that may start it until after the op that
 * stops it), so a real overlap is always caught.
 *
 * Thread-safe: one mutex per log; events are appended with their sequence
 * number under it.  Header-only (static inline), like test_util.h.
 */
#ifndef VFMIG_TEST_RECORDER_H
#define VFMIG_TEST_RECORDER_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

#define REC_SOURCE 0
#define REC_DEST 1
#define REC_MAX_EVENTS (1u << 16)

enum rec_kind {
	REC_EV_INITIAL, /* state at rec_wrap() */
	REC_EV_MAYRUN,	/* set_state(target) to a running state is about to start */
	REC_EV_STATE,	/* a set_state returned; st is the state the device is in */
	REC_EV_RESET,	/* reset() returned (ret 0: RUNNING, blank) */
};

struct rec_event {
	uint64_t seq;
	uint64_t ns; /* vfmig_now_ns(), for dumps */
	enum rec_kind kind;
	int side; /* REC_SOURCE or REC_DEST */
	unsigned pair;
	enum vfmig_state target; /* MAYRUN, STATE: the requested state */
	enum vfmig_state st;	 /* INITIAL, STATE, RESET: the state after the op */
	int ret;		 /* STATE, RESET: the op's return value */
};

struct rec_log {
	pthread_mutex_t lock;
	uint64_t seq;
	bool overflow;
	unsigned n, cap;
	struct rec_event *ev;
};

struct rec_dev {
	struct rec_log *l;
	struct vfmig_device *inner;
	int side;
	unsigned pair;
	int fail_reset; /* errno to fail reset() with, 0: forward */
	int fail_state; /* SET with this target fails with -fail_err (VFMIG_STATE_ERROR: none) */
	int fail_err;
	void (*hook)(void *arg, enum vfmig_state target); /* before every SET */
	uint64_t initial_floor; /* PRECOPY_INFO reports at least this many initial bytes */
	int error_on;		/* a SET to this state leaves the device in ERROR (0: none) */
	bool in_error;		/* ... until reset() */
	unsigned read_delay_ms, write_delay_ms; /* a slow driver (reads: while PRE_COPY*) */
	void *hook_arg;
};

static inline struct rec_log *rec_log_new(void)
{
	struct rec_log *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	if (pthread_mutex_init(&l->lock, NULL)) {
		free(l);
		return NULL;
	}
	return l;
}

static inline void rec_log_free(struct rec_log *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->ev);
	free(l);
}

/* Append one event; a full (or unallocatable) log sets overflow and the check fails. */
static inline void rec_add(struct rec_log *l, enum rec_kind kind, int side, unsigned pair,
			   enum vfmig_state target, enum vfmig_state st, int ret)
{
	struct rec_event *e;

	if (!l)
		return; /* a wrapper used for its faults only */
	pthread_mutex_lock(&l->lock);
	if (l->n == l->cap) {
		unsigned cap = l->cap ? 2 * l->cap : 256;
		struct rec_event *ev = NULL;

		if (cap > REC_MAX_EVENTS)
			cap = REC_MAX_EVENTS;
		if (cap > l->cap)
			ev = realloc(l->ev, cap * sizeof(*ev));
		if (!ev) {
			l->overflow = true;
			pthread_mutex_unlock(&l->lock);
			return;
		}
		l->ev = ev;
		l->cap = cap;
	}
	e = &l->ev[l->n++];
	e->seq = ++l->seq;
	e->ns = vfmig_now_ns();
	e->kind = kind;
	e->side = side;
	e->pair = pair;
	e->target = target;
	e->st = st;
	e->ret = ret;
	pthread_mutex_unlock(&l->lock);
}

static inline bool rec_running(enum vfmig_state st)
{
	return st == VFMIG_STATE_RUNNING || st == VFMIG_STATE_RUNNING_P2P ||
	       st == VFMIG_STATE_PRE_COPY || st == VFMIG_STATE_PRE_COPY_P2P;
}

static inline enum vfmig_state rec_inner_state(struct rec_dev *d)
{
	enum vfmig_state st;

	if (d->inner->ops->get_state(d->inner->priv, &st))
		return VFMIG_STATE_ERROR;
	return st;
}

/* ---- the wrapper's ops: forward to the inner device ------------------------ */

static inline void rec_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static inline int rec_op_get_state(void *priv, enum vfmig_state *st)
{
	struct rec_dev *d = priv;

	if (__atomic_load_n(&d->in_error, __ATOMIC_SEQ_CST)) {
		*st = VFMIG_STATE_ERROR;
		return 0;
	}
	return d->inner->ops->get_state(d->inner->priv, st);
}

static inline int rec_op_set_state(void *priv, enum vfmig_state st)
{
	struct rec_dev *d = priv;
	int ret;

	if (d->hook)
		d->hook(d->hook_arg, st);
	if (rec_running(st))
		rec_add(d->l, REC_EV_MAYRUN, d->side, d->pair, st, VFMIG_STATE_ERROR, 0);
	if (__atomic_load_n(&d->in_error, __ATOMIC_SEQ_CST) ||
	    (d->error_on && (enum vfmig_state)d->error_on == st)) {
		/* A driver whose arc failed badly: only a reset leaves ERROR. */
		__atomic_store_n(&d->in_error, true, __ATOMIC_SEQ_CST);
		ret = -EIO;
	} else if (d->fail_state != VFMIG_STATE_ERROR &&
		   (enum vfmig_state)__atomic_load_n(&d->fail_state, __ATOMIC_SEQ_CST) == st)
		ret = -d->fail_err;
	else
		ret = d->inner->ops->set_state(d->inner->priv, st);
	rec_add(d->l, REC_EV_STATE, d->side, d->pair, st, rec_inner_state(d), ret);
	return ret;
}

static inline ssize_t rec_op_read(void *priv, void *buf, size_t len)
{
	struct rec_dev *d = priv;
	enum vfmig_state st = VFMIG_STATE_ERROR;

	if (d->read_delay_ms && !d->inner->ops->get_state(d->inner->priv, &st) &&
	    (st == VFMIG_STATE_PRE_COPY || st == VFMIG_STATE_PRE_COPY_P2P))
		rec_sleep_ms(d->read_delay_ms); /* device model: a slow precopy read */
	return d->inner->ops->read(d->inner->priv, buf, len);
}

static inline ssize_t rec_op_write(void *priv, const void *buf, size_t len)
{
	struct rec_dev *d = priv;

	if (d->write_delay_ms)
		rec_sleep_ms(d->write_delay_ms); /* device model: a slow driver */
	return d->inner->ops->write(d->inner->priv, buf, len);
}

static inline int rec_op_precopy_info(void *priv, uint64_t *initial_bytes, uint64_t *dirty_bytes,
				      uint32_t *flags)
{
	struct rec_dev *d = priv;
	int ret = d->inner->ops->precopy_info(d->inner->priv, initial_bytes, dirty_bytes, flags);

	if (!ret && *initial_bytes < d->initial_floor)
		*initial_bytes = d->initial_floor; /* a driver whose initial bytes never reach 0 */
	return ret;
}

static inline int rec_op_precopy_v2(void *priv)
{
	struct rec_dev *d = priv;

	return d->inner->ops->precopy_v2 ? d->inner->ops->precopy_v2(d->inner->priv) : -ENOTTY;
}

static inline int rec_op_data_size(void *priv, uint64_t *stop_copy_bytes)
{
	struct rec_dev *d = priv;

	return d->inner->ops->data_size(d->inner->priv, stop_copy_bytes);
}

static inline ssize_t rec_op_config_read(void *priv, void *buf, size_t len)
{
	struct rec_dev *d = priv;

	return d->inner->ops->config_read(d->inner->priv, buf, len);
}

static inline int rec_op_config_write(void *priv, const void *buf, size_t len)
{
	struct rec_dev *d = priv;

	return d->inner->ops->config_write(d->inner->priv, buf, len);
}

static inline int rec_op_reset(void *priv)
{
	struct rec_dev *d = priv;
	int err = __atomic_load_n(&d->fail_reset, __ATOMIC_SEQ_CST);
	int ret;

	if (!err)
		__atomic_store_n(&d->in_error, false, __ATOMIC_SEQ_CST);
	if (err) {
		/* The inner device is untouched: it keeps its state, blank or not. */
		rec_add(d->l, REC_EV_RESET, d->side, d->pair, VFMIG_STATE_RUNNING,
			rec_inner_state(d), -err);
		return -err;
	}
	ret = d->inner->ops->reset(d->inner->priv);
	rec_add(d->l, REC_EV_RESET, d->side, d->pair, VFMIG_STATE_RUNNING,
		ret ? rec_inner_state(d) : VFMIG_STATE_RUNNING, ret);
	return ret;
}

static inline void rec_op_close(void *priv)
{
	struct rec_dev *d = priv;

	vfmig_device_close(d->inner);
	free(d);
}

static const struct vfmig_device_ops rec_ops = {
	.get_state = rec_op_get_state,
	.set_state = rec_op_set_state,
	.read = rec_op_read,
	.write = rec_op_write,
	.precopy_info = rec_op_precopy_info,
	.precopy_v2 = rec_op_precopy_v2,
	.data_size = rec_op_data_size,
	.config_read = rec_op_config_read,
	.config_write = rec_op_config_write,
	.reset = rec_op_reset,
	.close = rec_op_close,
};

/*
 * Wrap @inner (which the wrapper then owns: closing the wrapper closes it) as
 * device @pair of @side (REC_SOURCE or REC_DEST).  NULL (and @inner closed)
 * on failure or when @inner is NULL.
 */
static inline struct vfmig_device *rec_wrap(struct rec_log *l, struct vfmig_device *inner, int side,
					    unsigned pair)
{
	struct vfmig_device *dev;
	struct rec_dev *d;

	if (!inner)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d) {
		vfmig_device_close(inner);
		return NULL;
	}
	d->l = l;
	d->inner = inner;
	d->side = side;
	d->pair = pair;
	dev = vfmig_device_new(vfmig_device_name(inner), vfmig_device_compat(inner),
			       vfmig_device_flags(inner), vfmig_device_config_size(inner), &rec_ops,
			       d);
	if (!dev) {
		vfmig_device_close(inner);
		free(d);
		return NULL;
	}
	rec_add(l, REC_EV_INITIAL, side, pair, VFMIG_STATE_ERROR, rec_inner_state(d), 0);
	return dev;
}

static inline struct rec_dev *rec_dev_of(struct vfmig_device *wrapped)
{
	return wrapped && wrapped->ops == &rec_ops ? wrapped->priv : NULL;
}

/* The wrapped device (for vfmig_fake_digest(), vfmig_fake_state(), ...). */
static inline struct vfmig_device *rec_inner(struct vfmig_device *wrapped)
{
	struct rec_dev *d = rec_dev_of(wrapped);

	return d ? d->inner : NULL;
}

/* From now on reset() returns -err without resetting the inner device (0: forward again). */
static inline void rec_fail_reset(struct vfmig_device *wrapped, int err)
{
	struct rec_dev *d = rec_dev_of(wrapped);

	if (d)
		__atomic_store_n(&d->fail_reset, err, __ATOMIC_SEQ_CST);
}

/* A SET whose target is @st returns -err without reaching the inner device. */
static inline void rec_fail_state(struct vfmig_device *wrapped, enum vfmig_state st, int err)
{
	struct rec_dev *d = rec_dev_of(wrapped);

	if (!d)
		return;
	d->fail_err = err;
	__atomic_store_n(&d->fail_state, (int)st, __ATOMIC_SEQ_CST);
}

/* A SET to @st leaves the device in ERROR (get_state says so) until a reset. */
static inline void rec_error_on(struct vfmig_device *wrapped, enum vfmig_state st)
{
	struct rec_dev *d = rec_dev_of(wrapped);

	if (d)
		d->error_on = (int)st;
}

/* A slow driver: each PRE_COPY read sleeps @read_ms, each write @write_ms (set before the run). */
static inline void rec_io_delay(struct vfmig_device *wrapped, unsigned read_ms, unsigned write_ms)
{
	struct rec_dev *d = rec_dev_of(wrapped);

	if (d) {
		d->read_delay_ms = read_ms;
		d->write_delay_ms = write_ms;
	}
}

/* PRECOPY_INFO never reports fewer than @bytes initial bytes. */
static inline void rec_initial_floor(struct vfmig_device *wrapped, uint64_t bytes)
{
	struct rec_dev *d = rec_dev_of(wrapped);

	if (d)
		d->initial_floor = bytes;
}

/* Call hook(arg, target) before every SET of the device (set before the run). */
static inline void rec_set_hook(struct vfmig_device *wrapped,
				void (*hook)(void *arg, enum vfmig_state target), void *arg)
{
	struct rec_dev *d = rec_dev_of(wrapped);

	if (d) {
		d->hook_arg = arg;
		d->hook = hook;
	}
}

/* ---- replay ------------------------------------------------------------------ */

struct rec_devstate {
	bool seen;
	enum vfmig_state st;
	bool held;   /* holds device state: not blank */
	bool mayrun; /* a set_state to a running state is in flight */
};

static inline bool rec_live(const struct rec_devstate *s)
{
	return s->held && (s->mayrun || rec_running(s->st));
}

/* Apply one event to the state of its device. */
static inline void rec_apply(struct rec_devstate *s, const struct rec_event *e)
{
	switch (e->kind) {
	case REC_EV_INITIAL:
		s->seen = true;
		s->st = e->st;
		s->held = e->side == REC_SOURCE;
		s->mayrun = false;
		break;
	case REC_EV_MAYRUN:
		s->mayrun = true;
		break;
	case REC_EV_STATE:
		s->st = e->st;
		s->mayrun = false;
		if (e->st == VFMIG_STATE_RESUMING)
			s->held = true;
		break;
	case REC_EV_RESET:
		s->st = e->st;
		s->mayrun = false;
		if (!e->ret)
			s->held = false;
		break;
	}
}

static inline const char *rec_side_name(int side)
{
	return side == REC_SOURCE ? "source" : "destination";
}

static inline int rec_describe(char *buf, size_t len, const struct rec_devstate *s)
{
	return snprintf(buf, len, "%s%s, %s", vfmig_state_name(s->st),
			s->mayrun ? " (may be running: SET in flight)" : "",
			s->held ? "holds state" : "blank");
}

/* Copy the events in sequence order (they are appended in order); NULL on failure. */
static inline struct rec_event *rec_snapshot(struct rec_log *l, unsigned *n, bool *overflow)
{
	struct rec_event *ev;

	pthread_mutex_lock(&l->lock);
	*n = l->n;
	*overflow = l->overflow;
	ev = malloc((l->n ? l->n : 1) * sizeof(*ev));
	if (ev && l->n)
		memcpy(ev, l->ev, l->n * sizeof(*ev));
	pthread_mutex_unlock(&l->lock);
	return ev;
}

/*
 * Replay the log: -1 (and why) if, for some pair below @npairs, the source
 * and the destination were both live at one point, if an event names a pair
 * out of range, or if the log overflowed; 0 otherwise.
 */
static inline int rec_check_never_both(struct rec_log *l, unsigned npairs, char *why, size_t len)
{
	struct rec_devstate(*ds)[2];
	struct rec_event *ev;
	bool overflow;
	int ret = 0;
	unsigned n;

	if (len)
		why[0] = '\0';
	ev = rec_snapshot(l, &n, &overflow);
	ds = calloc(npairs ? npairs : 1, sizeof(*ds));
	if (!ev || !ds) {
		snprintf(why, len, "recorder: out of memory");
		ret = -1;
		goto out;
	}
	if (overflow) {
		snprintf(why, len, "recorder: log overflowed (more than %u events): check is void",
			 REC_MAX_EVENTS);
		ret = -1;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct rec_event *e = &ev[i];
		char a[96], b[96];

		if (e->pair >= npairs || (e->side != REC_SOURCE && e->side != REC_DEST)) {
			snprintf(why, len,
				 "recorder: event #%llu: %s pair %u out of range (%u pairs)",
				 (unsigned long long)e->seq, rec_side_name(e->side), e->pair,
				 npairs);
			ret = -1;
			goto out;
		}
		rec_apply(&ds[e->pair][e->side], e);
		if (!rec_live(&ds[e->pair][REC_SOURCE]) || !rec_live(&ds[e->pair][REC_DEST]))
			continue;
		rec_describe(a, sizeof(a), &ds[e->pair][REC_SOURCE]);
		rec_describe(b, sizeof(b), &ds[e->pair][REC_DEST]);
		snprintf(why, len,
			 "event #%llu (%s pair %u): source and destination both live: "
			 "source %s; destination %s",
			 (unsigned long long)e->seq, rec_side_name(e->side), e->pair, a, b);
		ret = -1;
		goto out;
	}
out:
	free(ds);
	free(ev);
	return ret;
}

/* How many times device (side, pair) entered @st (its initial state is not counted). */
static inline unsigned rec_count(struct rec_log *l, int side, unsigned pair, enum vfmig_state st)
{
	enum vfmig_state cur = VFMIG_STATE_NR;
	unsigned count = 0;

	pthread_mutex_lock(&l->lock);
	for (unsigned i = 0; i < l->n; i++) {
		const struct rec_event *e = &l->ev[i];

		if (e->side != side || e->pair != pair || e->kind == REC_EV_MAYRUN)
			continue;
		if (e->kind != REC_EV_INITIAL && e->st == st && cur != st)
			count++;
		cur = e->st;
	}
	pthread_mutex_unlock(&l->lock);
	return count;
}

/* The last state recorded for device (side, pair); ERROR if none. */
static inline enum vfmig_state rec_last(struct rec_log *l, int side, unsigned pair)
{
	enum vfmig_state st = VFMIG_STATE_ERROR;

	pthread_mutex_lock(&l->lock);
	for (unsigned i = l->n; i-- > 0;) {
		const struct rec_event *e = &l->ev[i];

		if (e->side == side && e->pair == pair && e->kind != REC_EV_MAYRUN) {
			st = e->st;
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return st;
}

/* Print every event (for a failing test's log). */
static inline void rec_dump(struct rec_log *l, FILE *f)
{
	static const char *const kinds[] = {
		[REC_EV_INITIAL] = "initial",
		[REC_EV_MAYRUN] = "may-run",
		[REC_EV_STATE] = "state",
		[REC_EV_RESET] = "reset",
	};
	uint64_t t0;

	pthread_mutex_lock(&l->lock);
	t0 = l->n ? l->ev[0].ns : 0;
	for (unsigned i = 0; i < l->n; i++) {
		const struct rec_event *e = &l->ev[i];

		fprintf(f, "# %5llu %10.3f ms %-11s %u %-7s", (unsigned long long)e->seq,
			(double)(e->ns - t0) / 1e6, rec_side_name(e->side), e->pair,
			kinds[e->kind]);
		if (e->kind == REC_EV_MAYRUN || e->kind == REC_EV_STATE)
			fprintf(f, " target %s", vfmig_state_name(e->target));
		if (e->kind != REC_EV_MAYRUN)
			fprintf(f, " -> %s", vfmig_state_name(e->st));
		if (e->ret)
			fprintf(f, " (%s)", strerror(-e->ret));
		fputc('\n', f);
	}
	if (l->overflow)
		fprintf(f, "# log overflowed\n");
	pthread_mutex_unlock(&l->lock);
}

#endif
