// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fakedev.c - an in-memory device that speaks the migration uAPI v2 the way
 * a vendor driver does, so the engine can be tested end to end without VFIO:
 *
 *   - the FSM walks combination transitions with vfmig_fsm_next() like the
 *     kernel core and refuses unsupported states;
 *   - PRE_COPY: initial bytes are every page, dirty bytes are pages written
 *     since they were read; read() returns -ENOMSG at the temporary end of
 *     stream (or 0, like mtty, with zero_for_enomsg);
 *   - STOP_COPY: remaining pages, then an END record carrying a digest of
 *     the memory, then a permanent end of stream (read() returns 0);
 *   - RESUMING accepts any write segmentation and validates every record;
 *     RESUMING -> STOP fails unless the stream was complete and the digest
 *     matches (so lost or reordered data is caught);
 *   - spec "fake:SIZE[:stop_copy+p2p+pre_copy][:seedN]" (vfmig_fake_new_from_spec);
 *   - fault injection: a failing STOP_COPY read, RESUMING write or arc, and
 *     a hook called before a given STOP_COPY read;
 *   - PRECOPY_INFOv2 (Linux 7.1): the opt-in (precopy_v2, or refused like a
 *     pre-7.1 kernel), and device events (vfmig_fake_reinit(), the N-th
 *     precopy_info call): once opted in, the next precopy_info in PRE_COPY
 *     (not PRE_COPY_P2P, like mtty_mig) reports REINIT, and every page is
 *     initial data again: the stream carries a full new image, so what the
 *     destination loads still ends equal to the source.
 *
 * Stream record (little-endian): u32 magic "FFAK", u32 page (0xffffffff =
 * END), u64 value (END: digest), then 4096 bytes for page records.
 *
 * Locks: fake.lock protects the whole device (the engine's threads and a
 * test's vfmig_fake_poke() may race).  It is a leaf; the STOP_COPY hook is
 * called without it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "vfmig_internal.h"

#define FAKE_PAGE 4096u
#define FAKE_REC_HDR 16u
#define FAKE_REC (FAKE_REC_HDR + FAKE_PAGE)
#define FAKE_MAGIC 0x4b414646u
#define FAKE_END 0xffffffffu
#define FAKE_CONFIG 256u

struct fake {
	pthread_mutex_t lock;
	struct vfmig_fake_cfg cfg;
	enum vfmig_state state;
	uint8_t *mem;
	uint32_t npages;
	uint8_t config[FAKE_CONFIG];
	/* save session */
	bool saving;
	uint8_t *initial; /* per page: still part of the initial bytes */
	uint8_t *dirty;	  /* per page: written since last read */
	uint32_t n_initial, n_dirty;
	uint32_t cursor; /* where the next page scan starts */
	uint8_t rec[FAKE_REC];
	uint32_t rec_len, rec_off;
	bool rec_initial;
	bool end_sent;
	unsigned sc_reads, pc_reads, info_calls, dirty_seq;
	/* PRECOPY_INFOv2: opted in (until closed), a device event pending, REINITs reported */
	bool v2, reinit_pending;
	unsigned reinits;
	/* resume session */
	bool resuming;
	uint8_t rbuf[FAKE_REC];
	uint32_t rlen;
	bool got_end;
	uint64_t end_digest;
	unsigned writes;
	unsigned resets;
};

static const struct vfmig_device_ops fake_ops;

static uint64_t digest_locked(struct fake *f)
{
	uint64_t h = XXH3_64bits(f->mem, (size_t)f->npages * FAKE_PAGE);

	return XXH3_64bits_withSeed(f->config, sizeof(f->config), h);
}

static void fill_pattern(struct fake *f, uint32_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < (size_t)f->npages * FAKE_PAGE; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(f->mem + i, &x, 8);
	}
	for (size_t i = 0; i < FAKE_CONFIG; i++)
		f->config[i] = (uint8_t)(seed + i * 7);
}

static void session_end(struct fake *f)
{
	f->saving = false;
	f->resuming = false;
	f->rec_len = f->rec_off = 0;
}

static void save_begin(struct fake *f, bool precopy)
{
	f->saving = true;
	f->end_sent = false;
	f->rec_len = f->rec_off = 0;
	f->cursor = 0;
	memset(f->initial, precopy, f->npages);
	memset(f->dirty, !precopy, f->npages);
	f->n_initial = precopy ? f->npages : 0;
	f->n_dirty = precopy ? 0 : f->npages;
}

static int step(struct fake *f, enum vfmig_state to)
{
	enum vfmig_state from = f->state;

	if (f->cfg.fail_set_state != VFMIG_STATE_ERROR && to == f->cfg.fail_set_state)
		return -EIO;
	/* RUNNING -> PRE_COPY, RUNNING_P2P -> PRE_COPY_P2P, STOP -> STOP_COPY */
	if ((from == VFMIG_STATE_RUNNING && to == VFMIG_STATE_PRE_COPY) ||
	    (from == VFMIG_STATE_RUNNING_P2P && to == VFMIG_STATE_PRE_COPY_P2P)) {
		save_begin(f, true);
	} else if (to == VFMIG_STATE_STOP_COPY && from == VFMIG_STATE_STOP) {
		save_begin(f, false);
	} else if (to == VFMIG_STATE_STOP_COPY) {
		/* PRE_COPY(_P2P) -> STOP_COPY: the session continues, untracked. */
	} else if (to == VFMIG_STATE_RESUMING) {
		f->resuming = true;
		f->rlen = 0;
		f->got_end = false;
		f->writes = 0;
	} else if (from == VFMIG_STATE_RESUMING && to == VFMIG_STATE_STOP) {
		/* Final validation: incomplete or corrupted streams fail the SET. */
		if (f->rlen || !f->got_end ||
		    f->end_digest != XXH3_64bits(f->mem, (size_t)f->npages * FAKE_PAGE)) {
			f->state = VFMIG_STATE_ERROR;
			session_end(f);
			return -EINVAL;
		}
		session_end(f);
	} else if (to == VFMIG_STATE_PRE_COPY || to == VFMIG_STATE_PRE_COPY_P2P) {
		/* PRE_COPY <-> PRE_COPY_P2P toggles P2P; the session continues. */
	} else {
		session_end(f);
	}
	f->state = to;
	return 0;
}

static int fake_set_state(void *priv, enum vfmig_state st)
{
	struct fake *f = priv;
	enum vfmig_state next;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	if (f->state == VFMIG_STATE_ERROR) {
		ret = -EINVAL;
		goto out;
	}
	while (f->state != st) {
		ret = vfmig_fsm_next(f->state, st, f->cfg.flags, &next);
		if (ret)
			break;
		ret = step(f, next);
		if (ret)
			break;
	}
out:
	pthread_mutex_unlock(&f->lock);
	return ret;
}

static int fake_get_state(void *priv, enum vfmig_state *st)
{
	struct fake *f = priv;

	pthread_mutex_lock(&f->lock);
	*st = f->state;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* Builds the next record; false when nothing is pending. */
static bool next_record(struct fake *f)
{
	for (uint32_t k = 0; k < f->npages; k++) {
		uint32_t p = (f->cursor + k) % f->npages;

		if (!f->initial[p] && !f->dirty[p])
			continue;
		f->rec_initial = f->initial[p];
		if (f->initial[p]) {
			f->initial[p] = 0;
			f->n_initial--;
		}
		if (f->dirty[p]) {
			f->dirty[p] = 0;
			f->n_dirty--;
		}
		put_le32(f->rec, FAKE_MAGIC);
		put_le32(f->rec + 4, p);
		put_le64(f->rec + 8, 0);
		memcpy(f->rec + FAKE_REC_HDR, f->mem + (size_t)p * FAKE_PAGE, FAKE_PAGE);
		f->rec_len = FAKE_REC;
		f->rec_off = 0;
		f->cursor = p + 1;
		return true;
	}
	return false;
}

static ssize_t fake_read(void *priv, void *buf, size_t len)
{
	struct fake *f = priv;
	void (*hook)(void *, unsigned) = NULL;
	size_t out = 0;
	bool stopcopy;
	ssize_t ret;
	unsigned n = 0;

	pthread_mutex_lock(&f->lock);
	stopcopy = f->state == VFMIG_STATE_STOP_COPY;
	if (!f->saving) {
		pthread_mutex_unlock(&f->lock);
		return -EINVAL;
	}
	if (stopcopy) {
		n = ++f->sc_reads;
		hook = f->cfg.stopcopy_read_hook;
	} else if (f->cfg.fail_precopy_read_at && ++f->pc_reads == f->cfg.fail_precopy_read_at) {
		pthread_mutex_unlock(&f->lock);
		return -EIO;
	}
	pthread_mutex_unlock(&f->lock);
	if (hook)
		hook(f->cfg.hook_opaque, n);

	pthread_mutex_lock(&f->lock);
	if (stopcopy && f->cfg.fail_stopcopy_read_at && n == f->cfg.fail_stopcopy_read_at) {
		ret = -EIO;
		goto out;
	}
	while (out < len) {
		if (f->rec_off < f->rec_len) {
			size_t c = MIN(len - out, (size_t)(f->rec_len - f->rec_off));

			memcpy((uint8_t *)buf + out, f->rec + f->rec_off, c);
			f->rec_off += (uint32_t)c;
			out += c;
			continue;
		}
		if (next_record(f))
			continue;
		if (f->state == VFMIG_STATE_STOP_COPY && !f->end_sent) {
			put_le32(f->rec, FAKE_MAGIC);
			put_le32(f->rec + 4, FAKE_END);
			put_le64(f->rec + 8, XXH3_64bits(f->mem, (size_t)f->npages * FAKE_PAGE));
			f->rec_len = FAKE_REC_HDR;
			f->rec_off = 0;
			f->rec_initial = false;
			f->end_sent = true;
			continue;
		}
		break;
	}
	if (out)
		ret = (ssize_t)out;
	else if (f->state == VFMIG_STATE_STOP_COPY || f->cfg.zero_for_enomsg)
		ret = 0;
	else
		ret = -ENOMSG;
out:
	pthread_mutex_unlock(&f->lock);
	return ret;
}

static int apply_record(struct fake *f)
{
	uint32_t page = get_le32(f->rbuf + 4);

	if (page == FAKE_END) {
		f->got_end = true;
		f->end_digest = get_le64(f->rbuf + 8);
		return 0;
	}
	memcpy(f->mem + (size_t)page * FAKE_PAGE, f->rbuf + FAKE_REC_HDR, FAKE_PAGE);
	return 0;
}

static ssize_t fake_write(void *priv, const void *buf, size_t len)
{
	struct fake *f = priv;
	const uint8_t *p = buf;
	size_t done = 0;
	ssize_t ret;

	pthread_mutex_lock(&f->lock);
	if (!f->resuming) {
		ret = -EINVAL;
		goto out;
	}
	if (f->cfg.fail_resume_write_at && ++f->writes == f->cfg.fail_resume_write_at) {
		ret = -EFAULT;
		goto out;
	}
	while (done < len) {
		uint32_t need = FAKE_REC_HDR;
		size_t c;

		if (f->got_end) {
			ret = -EINVAL; /* data after the END record */
			goto out;
		}
		if (f->rlen >= FAKE_REC_HDR) {
			if (get_le32(f->rbuf) != FAKE_MAGIC) {
				ret = -EINVAL;
				goto out;
			}
			need = get_le32(f->rbuf + 4) == FAKE_END ? FAKE_REC_HDR : FAKE_REC;
			if (need == FAKE_REC && get_le32(f->rbuf + 4) >= f->npages) {
				ret = -EINVAL;
				goto out;
			}
		}
		c = MIN(len - done, (size_t)(need - f->rlen));
		memcpy(f->rbuf + f->rlen, p + done, c);
		f->rlen += (uint32_t)c;
		done += c;
		if (f->rlen == need && need == FAKE_REC_HDR && get_le32(f->rbuf) != FAKE_MAGIC) {
			ret = -EINVAL;
			goto out;
		}
		if (f->rlen == need && (need == FAKE_REC || get_le32(f->rbuf + 4) == FAKE_END)) {
			apply_record(f);
			f->rlen = 0;
		}
	}
	ret = (ssize_t)done;
out:
	pthread_mutex_unlock(&f->lock);
	return ret;
}

static void dirty_page_locked(struct fake *f, uint32_t p)
{
	if (f->saving && f->state != VFMIG_STATE_STOP_COPY && !f->initial[p] && !f->dirty[p]) {
		f->dirty[p] = 1;
		f->n_dirty++;
	}
}

/* A device event after the opt-in: the initial data starts over (a full new image). */
static void reinit_locked(struct fake *f)
{
	memset(f->initial, 1, f->npages);
	memset(f->dirty, 0, f->npages);
	f->n_initial = f->npages;
	f->n_dirty = 0;
	/* The rest of a record being read is the first of the new initial bytes. */
	f->rec_initial = true;
	f->reinit_pending = false;
	f->reinits++;
}

static int fake_precopy_info(void *priv, uint64_t *initial, uint64_t *dirty, uint32_t *flags)
{
	struct fake *f = priv;
	void (*hook)(void *, unsigned) = NULL;
	uint64_t partial;
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->info_calls + 1;
	hook = f->cfg.precopy_info_hook;
	pthread_mutex_unlock(&f->lock);
	if (hook)
		hook(f->cfg.hook_opaque, n);

	pthread_mutex_lock(&f->lock);
	if (!f->saving ||
	    (f->state != VFMIG_STATE_PRE_COPY && f->state != VFMIG_STATE_PRE_COPY_P2P)) {
		pthread_mutex_unlock(&f->lock);
		return -EINVAL;
	}
	/* The device keeps running: emulate its writes. */
	if (f->info_calls++ < f->cfg.dirty_info_calls) {
		for (unsigned j = 0; j < f->cfg.dirty_pages_per_info; j++) {
			uint32_t p = f->dirty_seq++ % f->npages;

			f->mem[(size_t)p * FAKE_PAGE] ^= 0x5a;
			dirty_page_locked(f, p);
		}
	}
	if (f->cfg.reinit_at_info && f->info_calls == f->cfg.reinit_at_info)
		f->reinit_pending = true;
	*flags = f->v2 ? 0 : f->cfg.v1_flags_out;
	/* Without the opt-in a driver never starts its initial data over. */
	if (f->v2 && f->reinit_pending && f->state == VFMIG_STATE_PRE_COPY) {
		reinit_locked(f);
		*flags = VFMIG_PRECOPY_REINIT;
	}
	partial = f->rec_len - f->rec_off;
	*initial = (uint64_t)f->n_initial * FAKE_REC + (f->rec_initial ? partial : 0);
	*dirty = (uint64_t)f->n_dirty * FAKE_REC + (f->rec_initial ? 0 : partial);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fake_precopy_v2(void *priv)
{
	struct fake *f = priv;
	int ret = 0;

	pthread_mutex_lock(&f->lock);
	if (f->cfg.refuse_precopy_v2)
		ret = -ENOTTY;
	else if (!(f->cfg.flags & VFMIG_MIG_PRE_COPY))
		ret = -EINVAL; /* the core refuses it without PRE_COPY */
	else
		f->v2 = true;
	pthread_mutex_unlock(&f->lock);
	return ret;
}

static int fake_data_size(void *priv, uint64_t *bytes)
{
	struct fake *f = priv;

	pthread_mutex_lock(&f->lock);
	if (f->saving)
		*bytes = (uint64_t)(f->n_initial + f->n_dirty) * FAKE_REC +
			 (f->rec_len - f->rec_off) + (f->end_sent ? 0 : FAKE_REC_HDR);
	else
		*bytes = (uint64_t)f->npages * FAKE_REC + FAKE_REC_HDR;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static ssize_t fake_config_read(void *priv, void *buf, size_t len)
{
	struct fake *f = priv;

	len = MIN(len, sizeof(f->config));
	pthread_mutex_lock(&f->lock);
	memcpy(buf, f->config, len);
	pthread_mutex_unlock(&f->lock);
	return (ssize_t)len;
}

static int fake_config_write(void *priv, const void *buf, size_t len)
{
	struct fake *f = priv;

	if (len != sizeof(f->config))
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	memcpy(f->config, buf, len);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fake_reset(void *priv)
{
	struct fake *f = priv;

	pthread_mutex_lock(&f->lock);
	session_end(f);
	f->state = VFMIG_STATE_RUNNING;
	memset(f->mem, 0, (size_t)f->npages * FAKE_PAGE);
	memset(f->config, 0, sizeof(f->config));
	f->resets++;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fake_close(void *priv)
{
	struct fake *f = priv;

	pthread_mutex_destroy(&f->lock);
	free(f->mem);
	free(f->initial);
	free(f->dirty);
	free(f);
}

static const struct vfmig_device_ops fake_ops = {
	.get_state = fake_get_state,
	.set_state = fake_set_state,
	.read = fake_read,
	.write = fake_write,
	.precopy_info = fake_precopy_info,
	.precopy_v2 = fake_precopy_v2,
	.data_size = fake_data_size,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.reset = fake_reset,
	.close = fake_close,
};

void vfmig_fake_cfg_init(struct vfmig_fake_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = 256 * FAKE_PAGE;
	cfg->flags = VFMIG_MIG_STOP_COPY | VFMIG_MIG_P2P | VFMIG_MIG_PRE_COPY;
	cfg->seed = 1;
	cfg->fail_set_state = VFMIG_STATE_ERROR;
}

struct vfmig_device *vfmig_fake_new(const char *name, const struct vfmig_fake_cfg *cfg)
{
	struct vfmig_device *dev;
	struct fake *f;
	char compat[VFMIG_COMPAT_LEN];

	if (!cfg->mem_size || cfg->mem_size % FAKE_PAGE || cfg->mem_size > VFMIG_FAKE_MAX_MEM ||
	    !(cfg->flags & VFMIG_MIG_STOP_COPY))
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->cfg = *cfg;
	f->npages = (uint32_t)(cfg->mem_size / FAKE_PAGE);
	f->mem = malloc(cfg->mem_size);
	f->initial = calloc(f->npages, 1);
	f->dirty = calloc(f->npages, 1);
	if (!f->mem || !f->initial || !f->dirty || pthread_mutex_init(&f->lock, NULL))
		goto fail;
	f->state = VFMIG_STATE_RUNNING;
	fill_pattern(f, cfg->seed);
	snprintf(compat, sizeof(compat), "fake:%zu", cfg->mem_size);
	dev = vfmig_device_new(name, compat, cfg->flags, FAKE_CONFIG, &fake_ops, f);
	if (!dev) {
		pthread_mutex_destroy(&f->lock);
		goto fail;
	}
	return dev;
fail:
	free(f->mem);
	free(f->initial);
	free(f->dirty);
	free(f);
	return NULL;
}

bool vfmig_is_fake(const struct vfmig_device *dev)
{
	return dev && dev->ops == &fake_ops;
}

uint64_t vfmig_fake_digest(struct vfmig_device *dev)
{
	struct fake *f = dev->priv;
	uint64_t h;

	if (!vfmig_is_fake(dev))
		return 0;
	pthread_mutex_lock(&f->lock);
	h = digest_locked(f);
	pthread_mutex_unlock(&f->lock);
	return h;
}

int vfmig_fake_poke(struct vfmig_device *dev, size_t off, const void *buf, size_t len)
{
	struct fake *f = dev->priv;
	int ret = 0;

	if (!vfmig_is_fake(dev))
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	if (off > (size_t)f->npages * FAKE_PAGE || len > (size_t)f->npages * FAKE_PAGE - off) {
		ret = -EINVAL;
	} else if (f->state != VFMIG_STATE_RUNNING && f->state != VFMIG_STATE_PRE_COPY) {
		ret = -EBUSY; /* a stopped device does not change */
	} else {
		memcpy(f->mem + off, buf, len);
		for (size_t p = off / FAKE_PAGE; len && p <= (off + len - 1) / FAKE_PAGE; p++)
			dirty_page_locked(f, (uint32_t)p);
	}
	pthread_mutex_unlock(&f->lock);
	return ret;
}

unsigned vfmig_fake_resets(struct vfmig_device *dev)
{
	struct fake *f = dev->priv;
	unsigned n;

	if (!vfmig_is_fake(dev))
		return 0;
	pthread_mutex_lock(&f->lock);
	n = f->resets;
	pthread_mutex_unlock(&f->lock);
	return n;
}

enum vfmig_state vfmig_fake_state(struct vfmig_device *dev)
{
	enum vfmig_state st;

	if (!vfmig_is_fake(dev))
		return VFMIG_STATE_ERROR;
	fake_get_state(dev->priv, &st);
	return st;
}

int vfmig_fake_reinit(struct vfmig_device *dev)
{
	struct fake *f;

	if (!vfmig_is_fake(dev))
		return -EINVAL;
	f = dev->priv;
	pthread_mutex_lock(&f->lock);
	f->reinit_pending = true;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

unsigned vfmig_fake_reinits(struct vfmig_device *dev)
{
	struct fake *f;
	unsigned n;

	if (!vfmig_is_fake(dev))
		return 0;
	f = dev->priv;
	pthread_mutex_lock(&f->lock);
	n = f->reinits;
	pthread_mutex_unlock(&f->lock);
	return n;
}

bool vfmig_fake_precopy_v2(struct vfmig_device *dev)
{
	struct fake *f;
	bool v2;

	if (!vfmig_is_fake(dev))
		return false;
	f = dev->priv;
	pthread_mutex_lock(&f->lock);
	v2 = f->v2;
	pthread_mutex_unlock(&f->lock);
	return v2;
}
