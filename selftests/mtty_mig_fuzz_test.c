// SPDX-License-Identifier: GPL-2.0-only
/*
 * Stream fuzz: MTTY_FUZZ_STREAMS (default 2000) mutated device streams,
 * each written into a RESUMING device, then RESUMING -> STOP and
 * VFIO_DEVICE_RESET.  The device must never hang or crash, must refuse with
 * -EINVAL (Documentation/stream-format.rst) and land in ERROR, must come
 * back to RUNNING on reset every time, and must stay migratable.
 *
 * The base streams are saved from real devices (1, 2 and 4 ports; 4, 16 and
 * 64 KiB of memory; stopped saves and a PRE_COPY save with pages sent twice)
 * with deterministic contents, so a seed replays.  Each mutated stream is
 * built from them by: structural changes (duplicated, dropped, reordered
 * records, splices of records from another stream), field changes (versions,
 * magic, sizes, lengths, types, seq, page indexes, SERIAL and DEVICE
 * contents, huge END counts), then a re-seal (none, checksums only, or
 * checksums + seq + END counts, computed as stream.c does), then bit flips
 * and a truncation (at every record boundary in turn, or inside a record).
 *
 * What the mutations did decides what must happen: a stream whose bytes
 * were changed and not re-sealed, or truncated, or carrying a field the
 * parser checks, must be refused; a fully re-sealed stream whose changes
 * are all legal (page contents, pages dropped, repeated or reordered, page
 * indexes in range) must be accepted; anything else may go either way.  An
 * accepted stream must leave a valid device: saved again, its stream
 * parses, resumes, and gives the same digest, and its registers work.
 *
 * Replay: MTTY_FUZZ_SEED=<seed> (printed), MTTY_FUZZ_FIRST=<index>,
 * MTTY_FUZZ_STREAMS=1.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"
#include "lib/stream.h"
#include <linux/mtty_mig.h>

#define FUZZ_STREAMS		2000
#define FUZZ_SEED		0x6d7474795f6d6967ULL
#define HANG_S			60	/* one stream may take this long, not more */
#define CHECK_EVERY		500	/* streams between two clean migrations */
#define HDR_SIZE		MT_REC_HDR_SIZE
#define MAX_RECS		128	/* records of a mutated stream */
#define READ_CHUNK		(64 * 1024)
#define SAVE_READS_MAX		4096

/* 16550 registers */
#define UART_RX 0
#define UART_FCR 2
#define UART_LCR 3
#define UART_SCR 7

/* ---- streams (framing, checksums, sealing: lib/stream.c) ------------- */

/*
 * Split @len bytes into records (mt_recs_parse()); 0 if the framing is right,
 * there are records between METADATA and END but no more than a mutated
 * stream holds, and (if @ports) the HEADER's ports and mem_size are right.
 */
static int recs_parse(const uint8_t *p, size_t len, struct mt_recs *r, uint32_t ports,
		      uint64_t mem, char *why, size_t wl)
{
	const struct mtty_mig_rec_header *hh = (const void *)(p + HDR_SIZE);

	if (mt_recs_parse(p, len, r, why, wl))
		return -1;
	if (r->nr < 4 || r->nr > MAX_RECS) {
		snprintf(why, wl, "%zu records, not HEADER METADATA ... END or too many", r->nr);
		return -1;
	}
	if (ports && (hh->nr_ports != ports || hh->mem_size != mem)) {
		snprintf(why, wl, "HEADER has %u ports, %llu bytes", hh->nr_ports,
			 (unsigned long long)hh->mem_size);
		return -1;
	}
	return 0;
}

/* kinds of device the base streams come from */
struct cfg {
	const char *type;
	uint32_t ports;
	uint64_t mem;
	const char *metadata;
	unsigned int weight;
};

static const struct cfg cfgs[] = {
	{ MTTY_MIG_TYPE_1, 1, 4096, "32", 50 },
	{ MTTY_MIG_TYPE_2, 2, 16384, "256", 35 },
	{ MTTY_MIG_TYPE_4, 4, 65536, "4096", 15 },
};

#define NR_CFG (sizeof(cfgs) / sizeof(cfgs[0]))
#define NR_BASE (2 * NR_CFG)

struct base {
	int cfg;
	struct mt_buf s;
	struct mt_recs r;
	char digest[64];
};

/* ---- mutated stream ---------------------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *g)
{
	uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned int below(struct rng *g, unsigned int n)
{
	return n ? (unsigned int)(rnd(g) % n) : 0;
}

/* what the mutations of one stream did, and so what must happen to it */
struct verdict {
	bool must_refuse;
	bool legal_only;	/* only legal changes so far */
	char what[256];
};

static void note(struct verdict *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void note(struct verdict *v, const char *fmt, ...)
{
	size_t n = strlen(v->what);
	va_list ap;

	if (n + 2 >= sizeof(v->what))
		return;
	if (n)
		v->what[n++] = ' ';
	va_start(ap, fmt);
	vsnprintf(v->what + n, sizeof(v->what) - n, fmt, ap);
	va_end(ap);
}

struct mut {
	/* the record list, pointing into the base streams */
	size_t nr;
	const uint8_t *rp[MAX_RECS];
	size_t rs[MAX_RECS];
	/* the serialised stream and where its records are */
	struct mt_buf out;
	struct mt_recs r;
};

static uint16_t rtype(const uint8_t *rec)
{
	return ((const struct mtty_mig_rec_hdr *)rec)->type;
}

static void ins(struct mut *m, size_t at, const uint8_t *p, size_t s)
{
	if (m->nr == MAX_RECS)
		return;
	memmove(&m->rp[at + 1], &m->rp[at], (m->nr - at) * sizeof(m->rp[0]));
	memmove(&m->rs[at + 1], &m->rs[at], (m->nr - at) * sizeof(m->rs[0]));
	m->rp[at] = p;
	m->rs[at] = s;
	m->nr++;
}

static void del(struct mut *m, size_t at)
{
	memmove(&m->rp[at], &m->rp[at + 1], (m->nr - at - 1) * sizeof(m->rp[0]));
	memmove(&m->rs[at], &m->rs[at + 1], (m->nr - at - 1) * sizeof(m->rs[0]));
	m->nr--;
}

static void swap(struct mut *m, size_t i, size_t j)
{
	const uint8_t *p = m->rp[i];
	size_t s = m->rs[i];

	m->rp[i] = m->rp[j];
	m->rs[i] = m->rs[j];
	m->rp[j] = p;
	m->rs[j] = s;
}

/* index of a random record of @type in the list, or -1 */
static int pick_type(struct mut *m, struct rng *g, uint16_t type)
{
	size_t i, n = 0, k;

	for (i = 0; i < m->nr; i++)
		n += rtype(m->rp[i]) == type;
	if (!n)
		return -1;
	k = below(g, n);
	for (i = 0; i < m->nr; i++)
		if (rtype(m->rp[i]) == type && !k--)
			return (int)i;
	return -1;
}

/* a random record (of @type if nonzero) of a random base stream */
static const uint8_t *pick_other(const struct base *b, struct rng *g, uint16_t type,
				 size_t *size, int *cfg)
{
	const struct base *o = &b[below(g, NR_BASE)];
	size_t i = below(g, o->r.nr), k;

	for (k = 0; type && k < o->r.nr; k++, i = (i + 1) % o->r.nr)
		if (o->r.type[i] == type)
			break;
	*size = o->r.size[i];
	*cfg = o->cfg;
	return o->s.p + o->r.off[i];
}

/* Structural changes of the record list. */
static void mutate_structure(struct mut *m, const struct base *bases, const struct cfg *c,
			     struct rng *g, struct verdict *v)
{
	int i = (int)below(g, m->nr), j = (int)below(g, m->nr), o;
	const uint8_t *p;
	size_t s;

	switch (below(g, 8)) {
	case 0: /* a PAGE again, later: legal ("the last copy wins") */
		i = pick_type(m, g, MTTY_MIG_REC_PAGE);
		if (i < 0)
			break;
		j = pick_type(m, g, MTTY_MIG_REC_PAGE);
		ins(m, (size_t)(j > i ? j : i) + 1, m->rp[i], m->rs[i]);
		note(v, "dup-page");
		break;
	case 1: /* a PAGE dropped: legal */
		i = pick_type(m, g, MTTY_MIG_REC_PAGE);
		if (i >= 0)
			del(m, (size_t)i);
		note(v, "drop-page");
		break;
	case 2: /* two PAGEs swapped: legal */
		i = pick_type(m, g, MTTY_MIG_REC_PAGE);
		j = pick_type(m, g, MTTY_MIG_REC_PAGE);
		if (i >= 0 && j >= 0)
			swap(m, (size_t)i, (size_t)j);
		note(v, "swap-pages");
		break;
	case 3: /* a PAGE of another stream: legal if its index is in range */
		p = pick_other(bases, g, MTTY_MIG_REC_PAGE, &s, &o);
		if (rtype(p) != MTTY_MIG_REC_PAGE) {
			v->legal_only = false;
		} else if (((const struct mtty_mig_rec_page *)(p + HDR_SIZE))->index >=
			   c->mem / MTTY_MIG_PAGE_SIZE) {
			v->legal_only = false;
		}
		i = pick_type(m, g, MTTY_MIG_REC_PAGE);
		if (i < 0)
			i = 2;
		ins(m, (size_t)i, p, s);
		note(v, "splice-page(cfg%d)", o);
		break;
	case 4: /* any record duplicated */
		ins(m, (size_t)j, m->rp[i], m->rs[i]);
		v->legal_only = false;
		note(v, "dup-rec%d@%d", i, j);
		break;
	case 5: /* any record dropped */
		del(m, (size_t)i);
		v->legal_only = false;
		note(v, "drop-rec%d", i);
		break;
	case 6: /* any two records swapped */
		swap(m, (size_t)i, (size_t)j);
		v->legal_only = v->legal_only && i == j;
		note(v, "swap-rec%d,%d", i, j);
		break;
	default: /* any record replaced by one of another stream */
		p = pick_other(bases, g, 0, &s, &o);
		m->rp[i] = p;
		m->rs[i] = s;
		v->legal_only = false;
		note(v, "splice-rec%d(cfg%d)", i, o);
		break;
	}
}

static int serialise(struct mut *m)
{
	size_t i;
	int ret;

	m->out.len = 0;
	m->r.nr = m->nr;
	for (i = 0; i < m->nr; i++) {
		m->r.off[i] = m->out.len;
		m->r.size[i] = m->rs[i];
		m->r.type[i] = rtype(m->rp[i]);
		ret = mt_buf_put(&m->out, m->rp[i], m->rs[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static struct mtty_mig_rec_hdr *hdr_at(struct mut *m, size_t i)
{
	return (void *)(m->out.p + m->r.off[i]);
}

static void *payload_at(struct mut *m, size_t i)
{
	return m->out.p + m->r.off[i] + HDR_SIZE;
}

static uint64_t interesting(struct rng *g, uint64_t orig)
{
	static const uint64_t vals[] = {
		0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x10000, 4096, 4104,
		0x7fffffff, 0x80000000ULL, 0xffffffffULL, 0x100000000ULL, 16U << 20,
		(16U << 20) + 1, 0x7fffffffffffffffULL, 0x8000000000000000ULL, ~0ULL,
	};

	switch (below(g, 4)) {
	case 0:
		return orig + 1;
	case 1:
		return orig - 1;
	case 2:
		return orig ^ (1ULL << below(g, 64));
	default:
		return vals[below(g, sizeof(vals) / sizeof(vals[0]))];
	}
}

#define SET_FIELD(v, ptr, field, g, refuse_if_changed)				\
	do {									\
		__typeof__((ptr)->field) __old = (ptr)->field;			\
		(ptr)->field = (__typeof__((ptr)->field))interesting(g, __old);	\
		if ((ptr)->field != __old) {					\
			(v)->legal_only = false;				\
			if (refuse_if_changed)					\
				(v)->must_refuse = true;			\
		}								\
		note(v, "%s", #field);						\
	} while (0)

/* the first record of @type in the serialised stream from a random one on, or -1 */
static int find_from_random(struct mut *m, struct rng *g, uint16_t type)
{
	size_t k = below(g, m->nr), n;

	for (n = 0; n < m->nr; n++, k = (k + 1) % m->nr)
		if (m->r.type[k] == type)
			return (int)k;
	return -1;
}

/* Field changes in the serialised stream, before any re-seal. */
static void mutate_fields(struct mut *m, const struct cfg *c, struct rng *g, struct verdict *v)
{
	int i;

	switch (below(g, 10)) {
	case 0: { /* HEADER: every field is checked */
		struct mtty_mig_rec_header *h;

		if (m->r.type[0] != MTTY_MIG_REC_HEADER)
			break;
		h = payload_at(m, 0);
		switch (below(g, 9)) {
		case 0: SET_FIELD(v, h, magic, g, true); break;
		case 1: SET_FIELD(v, h, version_major, g, true); break;
		case 2: /* a lower or equal minor is legal (1.0 streams say 0) */
			SET_FIELD(v, h, version_minor, g, false);
			if (h->version_minor > MTTY_MIG_STREAM_VERSION_MINOR)
				v->must_refuse = true;
			break;
		case 3: SET_FIELD(v, h, flags, g, true); break;
		case 4: SET_FIELD(v, h, nr_ports, g, true); break;
		case 5: SET_FIELD(v, h, page_size, g, true); break;
		case 6: SET_FIELD(v, h, mem_size, g, true); break;
		case 7: SET_FIELD(v, h, metadata_size, g, true); break;
		default: SET_FIELD(v, h, reserved, g, true); break;
		}
		break;
	}
	case 1: { /* METADATA layout is checked; the filler is not */
		struct mtty_mig_rec_layout *l;
		size_t len;

		if (m->nr < 2 || m->r.type[1] != MTTY_MIG_REC_METADATA)
			break;
		l = payload_at(m, 1);
		len = m->r.size[1] - HDR_SIZE;
		switch (below(g, 7)) {
		case 0: SET_FIELD(v, l, nr_ports, g, true); break;
		case 1: SET_FIELD(v, l, fifo_size, g, true); break;
		case 2: SET_FIELD(v, l, port_stride, g, true); break;
		case 3: SET_FIELD(v, l, config_size, g, true); break;
		case 4: SET_FIELD(v, l, nr_pages, g, true); break;
		case 5: SET_FIELD(v, l, reserved, g, true); break;
		default:
			if (len > sizeof(*l)) {
				((uint8_t *)l)[sizeof(*l) + below(g, len - sizeof(*l))] ^= 1 + below(g, 255);
				v->legal_only = false;
				note(v, "filler");
			}
			break;
		}
		break;
	}
	case 2: { /* PAGE index */
		struct mtty_mig_rec_page *pg;

		i = find_from_random(m, g, MTTY_MIG_REC_PAGE);
		if (i < 0)
			break;
		pg = payload_at(m, i);
		if (below(g, 2)) {
			pg->index = below(g, c->mem / MTTY_MIG_PAGE_SIZE); /* legal */
			note(v, "page-index-in-range");
		} else {
			bool was_legal = v->legal_only;

			SET_FIELD(v, pg, index, g, false);
			if (pg->index >= c->mem / MTTY_MIG_PAGE_SIZE)
				v->must_refuse = true;
			else
				v->legal_only = was_legal;
		}
		break;
	}
	case 3: { /* PAGE contents: legal */
		i = find_from_random(m, g, MTTY_MIG_REC_PAGE);
		if (i < 0)
			break;
		((uint8_t *)payload_at(m, i))[8 + below(g, MTTY_MIG_PAGE_SIZE)] ^= 1 + below(g, 255);
		note(v, "page-data");
		break;
	}
	case 4: case 5: { /* SERIAL: any field, or a consistent random state */
		struct mtty_mig_rec_serial *sr;

		i = find_from_random(m, g, MTTY_MIG_REC_SERIAL);
		if (i < 0 || m->r.size[i] != HDR_SIZE + sizeof(*sr))
			break;
		sr = payload_at(m, i);
		v->legal_only = false;
		switch (below(g, 12)) {
		case 0: SET_FIELD(v, sr, port, g, false); break;
		case 1: SET_FIELD(v, sr, flags, g, false); break;
		case 2: SET_FIELD(v, sr, fcr, g, false); break;
		case 3: SET_FIELD(v, sr, max_fifo_size, g, false); break;
		case 4: SET_FIELD(v, sr, trigger_level, g, false); break;
		case 5: SET_FIELD(v, sr, count, g, false); break;
		case 6: SET_FIELD(v, sr, head, g, false); break;
		case 7: SET_FIELD(v, sr, tail, g, false); break;
		case 8: SET_FIELD(v, sr, divisor, g, false); break;
		case 9:
			sr->regs[below(g, 8)] = (uint8_t)rnd(g);
			sr->fifo[below(g, MTTY_MIG_FIFO_SIZE)] = (uint8_t)rnd(g);
			note(v, "regs/fifo");
			break;
		default: {
			/* what a real 16550 can be in, with random contents */
			static const uint8_t trig[] = { 1, 4, 8, 14 };
			uint8_t fcr = (uint8_t)rnd(g);

			sr->fcr = fcr;
			sr->trigger_level = fcr & 1 ? trig[fcr >> 6] : 1;
			sr->max_fifo_size = fcr & 1 ? MTTY_MIG_FIFO_SIZE : 1;
			sr->count = below(g, sr->max_fifo_size + 1);
			sr->tail = below(g, MTTY_MIG_FIFO_SIZE);
			sr->head = (sr->tail + sr->count) % MTTY_MIG_FIFO_SIZE;
			sr->flags = below(g, 4);
			for (int k = 0; k < 8; k++)
				sr->regs[k] = (uint8_t)rnd(g);
			sr->divisor = (uint16_t)rnd(g);
			note(v, "serial-state");
			break;
		}
		}
		break;
	}
	case 6: { /* DEVICE: the engine's sequence numbers, huge */
		struct mtty_mig_rec_device *d;

		i = (int)m->nr - 2;
		if (i < 0 || m->r.type[i] != MTTY_MIG_REC_DEVICE)
			break;
		d = payload_at(m, i);
		v->legal_only = false;
		if (below(g, 2))
			SET_FIELD(v, d, engine_seq, g, false);
		else
			SET_FIELD(v, d, p2p_seq, g, false);
		break;
	}
	case 7: /* record length */
		i = (int)below(g, m->nr);
		SET_FIELD(v, hdr_at(m, i), length, g, true);
		break;
	case 8: /* record type */
		i = (int)below(g, m->nr);
		SET_FIELD(v, hdr_at(m, i), type, g, true);
		break;
	default: /* record flags */
		i = (int)below(g, m->nr);
		SET_FIELD(v, hdr_at(m, i), flags, g, true);
		break;
	}
}

enum seal { SEAL_NONE, SEAL_CSUM, SEAL_FULL };

/* Re-seal: renumber and recount (SEAL_FULL), then checksum every record. */
static void reseal(struct mut *m, enum seal how)
{
	if (how != SEAL_NONE)
		mt_stream_seal(m->out.p, &m->r, how == SEAL_FULL);
}

/*
 * Re-seal the stream @how; false if it then differs from its full re-seal
 * (seq, checksums, END counts): the fully re-sealed stream is the one
 * consistent version of these records, and any other must be refused.
 */
static bool consistent(struct mut *m, enum seal how)
{
	struct mt_buf full = { 0 };
	bool same;

	reseal(m, how);
	if (mt_buf_put(&full, m->out.p, m->out.len))
		abort();
	reseal(m, SEAL_FULL);
	same = !memcmp(full.p, m->out.p, m->out.len);
	memcpy(m->out.p, full.p, m->out.len);
	mt_buf_free(&full);
	return same;
}

/*
 * Build mutated stream number @n.  Returns the destination config; the
 * stream is in m->out, what must happen to it in @v.
 */
static int build(struct mut *m, const struct base *bases, uint64_t seed, uint64_t n,
		 struct verdict *v, size_t *cut_out)
{
	struct rng g = { .s = seed ^ (n * 0xd1b54a32d192ed03ULL) };
	const struct base *b;
	const struct cfg *c;
	unsigned int w = below(&g, 100), nstruct, nfield, k;
	bool seal_refuse;
	enum seal seal;
	size_t i, len;
	int ci;

	for (ci = 0; ci < (int)NR_CFG - 1 && w >= cfgs[ci].weight; ci++)
		w -= cfgs[ci].weight;
	b = &bases[2 * ci + below(&g, 2)];
	c = &cfgs[ci];
	memset(v, 0, sizeof(*v));
	v->legal_only = true;
	m->nr = b->r.nr;
	for (i = 0; i < b->r.nr; i++) {
		m->rp[i] = b->s.p + b->r.off[i];
		m->rs[i] = b->r.size[i];
	}

	nstruct = below(&g, 3) ? 0 : 1 + below(&g, 2);
	for (k = 0; k < nstruct && m->nr > 1; k++)
		mutate_structure(m, bases, c, &g, v);
	if (serialise(m))
		abort();
	/* one at most: a second one could undo the first */
	nfield = below(&g, 4) ? 1 : 0;
	for (k = 0; k < nfield && m->nr; k++)
		mutate_fields(m, c, &g, v);

	/* re-seal so the changes reach the validators */
	seal = (enum seal)below(&g, 5) % 3; /* none, csum, full, none, csum */
	if (seal == SEAL_NONE && (nstruct || nfield))
		seal = below(&g, 3) ? SEAL_FULL : SEAL_NONE;
	/*
	 * The fully re-sealed stream is the one consistent version of these
	 * records: a stream whose seq, checksums or END counts differ from
	 * it must be refused.
	 */
	seal_refuse = !consistent(m, seal);
	note(v, "seal%d", seal);
	/* huge or wrong END counts, after the re-seal that would fix them */
	if (!below(&g, 12) && m->r.nr && m->r.type[m->r.nr - 1] == MTTY_MIG_REC_END &&
	    m->r.size[m->r.nr - 1] == HDR_SIZE + sizeof(struct mtty_mig_rec_end)) {
		struct mtty_mig_rec_end *e = payload_at(m, m->r.nr - 1);

		if (below(&g, 2))
			SET_FIELD(v, e, nr_pages, &g, true);
		else
			SET_FIELD(v, e, nr_records, &g, true);
		if (seal != SEAL_NONE)
			mt_rec_seal(m->out.p + m->r.off[m->r.nr - 1], m->r.size[m->r.nr - 1]);
	}

	/* bit flips; sometimes re-sealed so they get past the checksum */
	if (!below(&g, 4) && m->out.len) {
		struct mt_buf before = { 0 };
		bool resealed = below(&g, 2);

		if (mt_buf_put(&before, m->out.p, m->out.len))
			abort();
		for (k = 1 + below(&g, 4); k; k--) {
			/* half of them in record headers */
			size_t at = below(&g, 2) ? m->r.off[below(&g, m->r.nr)] + below(&g, HDR_SIZE) :
						   below(&g, m->out.len);

			if (at < m->out.len)
				m->out.p[at] ^= 1 << below(&g, 8);
		}
		if (memcmp(before.p, m->out.p, m->out.len)) {
			v->legal_only = false;
			if (resealed)
				seal_refuse = !consistent(m, SEAL_CSUM);
			else
				v->must_refuse = true;
		}
		note(v, "flips%s", resealed ? "+csum" : "");
		mt_buf_free(&before);
	}

	if (seal_refuse) {
		v->must_refuse = true;
		v->legal_only = false;
	}

	/* truncation: at each record boundary in turn, or inside a record */
	len = m->out.len;
	if (!below(&g, 5) && m->r.nr) {
		if (below(&g, 2)) {
			i = n % (m->r.nr + 1);
			len = i < m->r.nr ? m->r.off[i] : m->out.len;
		} else {
			i = below(&g, m->r.nr);
			len = m->r.off[i] + 1 + below(&g, (unsigned int)m->r.size[i] - 1);
		}
		if (len < m->out.len) {
			v->must_refuse = true;
			v->legal_only = false;
		}
		note(v, "cut@%zu/%zu", len, m->out.len);
	}
	*cut_out = len;
	return ci;
}

/* ---- device side ------------------------------------------------------- */

static int reg_rw(struct mt_inst *d, int port, int reg, uint8_t *v, bool wr)
{
	ssize_t n = wr ? mt_region_write(d->v.device, MTTY_MIG_SERIAL_REGION,
					 port * MTTY_MIG_PORT_STRIDE + reg, v, 1) :
			 mt_region_read(d->v.device, MTTY_MIG_SERIAL_REGION,
					port * MTTY_MIG_PORT_STRIDE + reg, v, 1);

	return n == 1 ? 0 : n < 0 ? (int)n : -EIO;
}

/* STOP -> STOP_COPY, the whole stream, -> STOP; bounded */
static int save(struct mt_inst *d, struct mt_buf *out)
{
	static uint8_t buf[READ_CHUNK];
	int fd = -1, ret, i;

	out->len = 0;
	ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP_COPY, &fd);
	if (ret)
		return ret;
	if (fd < 0)
		return -EBADF;
	for (i = 0; i < SAVE_READS_MAX; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		ret = mt_buf_put(out, buf, (size_t)n);
		if (ret)
			break;
	}
	if (i == SAVE_READS_MAX)
		ret = -E2BIG;
	close(fd);
	return ret ? ret : mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP, NULL);
}

struct watchdog {
	atomic_ulong beat;	/* bumped after every stream */
	_Atomic(const char *) op;
	atomic_ulong current;
	atomic_bool stop;
	uint64_t seed;
	pthread_t tid;
};

/* A stream that takes more than HANG_S: say which, and end the test. */
static void *watchdog_thread(void *arg)
{
	struct watchdog *w = arg;
	unsigned long last = ~0UL;
	double since = mt_now_s();
	const struct timespec tick = { .tv_nsec = 200 * 1000 * 1000 };

	while (!atomic_load(&w->stop)) {
		unsigned long b = atomic_load(&w->beat);

		if (b != last) {
			last = b;
			since = mt_now_s();
		} else if (mt_now_s() - since > HANG_S) {
			fprintf(stderr, "# HANG: stream %lu stuck in %s for %d s (replay: MTTY_FUZZ_SEED=0x%llx MTTY_FUZZ_FIRST=%lu MTTY_FUZZ_STREAMS=1)\n",
				atomic_load(&w->current), atomic_load(&w->op), HANG_S,
				(unsigned long long)w->seed, atomic_load(&w->current));
			abort();
		}
		nanosleep(&tick, NULL);
	}
	return NULL;
}

FIXTURE(fuzz)
{
	struct base base[NR_BASE];
	struct mt_inst dst[NR_CFG];
	struct mut *m;
	struct watchdog wd;
	bool wd_started;
};

static int fill_source(struct mt_inst *s, const struct cfg *c, int variant)
{
	uint8_t page[MTTY_MIG_PAGE_SIZE];
	uint64_t pg, pages = c->mem / MTTY_MIG_PAGE_SIZE;
	uint32_t port;
	size_t i;
	int ret = 0;

	for (pg = 0; pg < pages && !ret; pg++) {
		for (i = 0; i < sizeof(page); i++)
			page[i] = (uint8_t)(pg * 31 + i * 7 + variant);
		if (mt_region_write(s->v.device, MTTY_MIG_MEM_REGION, pg * sizeof(page), page,
				    sizeof(page)) != (ssize_t)sizeof(page))
			ret = -EIO;
	}
	for (port = 0; port < c->ports && !ret; port++) {
		uint8_t v;

		v = 0xa0 + port;
		ret = reg_rw(s, port, UART_SCR, &v, true);
		v = port & 1 ? 0xc1 : (variant ? 0x41 : 0); /* FIFO on, trigger 14 or 4 */
		if (!ret)
			ret = reg_rw(s, port, UART_FCR, &v, true);
		for (i = 0; i < port + 2 && !ret; i++) {
			v = (uint8_t)('a' + i);
			ret = reg_rw(s, port, UART_RX, &v, true);
		}
	}
	return ret;
}

FIXTURE_SETUP(fuzz)
{
	char why[128] = "";
	size_t k;

	self->m = calloc(1, sizeof(*self->m));
	ASSERT_NE(NULL, self->m);
	for (k = 0; k < NR_CFG; k++)
		mt_inst_init(&self->dst[k]);
	ASSERT_EQ(0, mt_module_load());
	for (k = 0; k < NR_BASE; k++) {
		const struct cfg *c = &cfgs[k / 2];
		struct base *b = &self->base[k];
		struct mt_inst src;
		const char *const attrs[] = { MTTY_MIG_ATTR_METADATA_SIZE, c->metadata, NULL };

		b->cfg = (int)(k / 2);
		ASSERT_EQ(0, mt_inst_up(&src, c->type, c->mem, attrs));
		ASSERT_EQ(0, fill_source(&src, c, (int)(k % 2)));
		if (k % 2 == 0) {
			ASSERT_EQ(0, mt_save_stopped(&src, &b->s, b->digest, sizeof(b->digest)));
		} else {
			/* PRE_COPY, two pages written again, then STOP_COPY */
			uint8_t page[MTTY_MIG_PAGE_SIZE];
			int fd = -1;

			ASSERT_EQ(0, mt_mig_set_state(src.v.device, VFIO_DEVICE_STATE_PRE_COPY, &fd));
			ASSERT_LE(0, fd);
			ASSERT_EQ(0, mt_read_precopy(fd, READ_CHUNK, &b->s, NULL));
			memset(page, 0x5a, sizeof(page));
			ASSERT_EQ((ssize_t)sizeof(page), mt_region_write(src.v.device,
				MTTY_MIG_MEM_REGION, 0, page, sizeof(page)));
			ASSERT_EQ((ssize_t)sizeof(page), mt_region_write(src.v.device,
				MTTY_MIG_MEM_REGION, c->mem - sizeof(page), page, sizeof(page)));
			ASSERT_EQ(0, mt_read_precopy(fd, READ_CHUNK, &b->s, NULL));
			ASSERT_EQ(0, mt_mig_set_state(src.v.device, VFIO_DEVICE_STATE_PRE_COPY_P2P,
						      NULL));
			ASSERT_EQ(0, mt_mig_set_state(src.v.device, VFIO_DEVICE_STATE_STOP_COPY,
						      NULL));
			ASSERT_EQ(0, mt_digest(src.uuid, b->digest, sizeof(b->digest)));
			ASSERT_EQ(0, mt_read_to_end(fd, READ_CHUNK, &b->s, NULL));
			close(fd);
		}
		ASSERT_EQ(0, mt_inst_down(&src));
		ASSERT_EQ(0, recs_parse(b->s.p, b->s.len, &b->r, c->ports, c->mem, why,
					sizeof(why))) TH_LOG("base stream %zu: %s", k, why);
	}
	for (k = 0; k < NR_CFG; k++)
		ASSERT_EQ(0, mt_inst_up(&self->dst[k], cfgs[k].type, cfgs[k].mem, NULL));
}

FIXTURE_TEARDOWN(fuzz)
{
	size_t k;

	if (self->wd_started) {
		atomic_store(&self->wd.stop, true);
		pthread_join(self->wd.tid, NULL);
	}
	for (k = 0; k < NR_CFG; k++)
		EXPECT_EQ(0, mt_inst_down(&self->dst[k]));
	for (k = 0; k < NR_BASE; k++)
		mt_buf_free(&self->base[k].s);
	if (self->m)
		mt_buf_free(&self->m->out);
	free(self->m);
}

/* Each destination still takes a good stream and gives its source's digest. */
static int still_migratable(FIXTURE_DATA(fuzz) *self, char *why, size_t wl)
{
	char d[64];
	size_t k;
	int ret;

	for (k = 0; k < NR_BASE; k++) {
		struct base *b = &self->base[k];
		struct mt_inst *dst = &self->dst[b->cfg];

		ret = mt_resume(dst, b->s.p, b->s.len);
		if (!ret)
			ret = mt_digest(dst->uuid, d, sizeof(d));
		if (!ret && strcmp(d, b->digest)) {
			snprintf(why, wl, "base %zu resumed with digest %s, source had %s", k, d,
				 b->digest);
			return -EBADMSG;
		}
		if (!ret)
			ret = mt_mig_set_state(dst->v.device, VFIO_DEVICE_STATE_RUNNING, NULL);
		if (ret) {
			snprintf(why, wl, "base %zu does not resume any more: %s", k,
				 strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/*
 * The device accepted a stream: it must be a valid device.  Saved again,
 * its stream parses; resumed again, the digest is the same; its registers
 * answer.
 */
static int check_accepted(struct mt_inst *d, const struct cfg *c, struct mt_buf *tmp,
			  char *why, size_t wl)
{
	struct mt_recs *r = calloc(1, sizeof(*r));
	char d1[64], d2[64];
	uint32_t port;
	int ret, reg;

	if (!r)
		return -ENOMEM;
	ret = mt_digest(d->uuid, d1, sizeof(d1));
	if (!ret)
		ret = save(d, tmp);
	if (ret) {
		snprintf(why, wl, "accepted state cannot be saved: %s", strerror(-ret));
		goto out;
	}
	if (recs_parse(tmp->p, tmp->len, r, c->ports, c->mem, why, wl)) {
		ret = -EBADMSG;
		goto out;
	}
	ret = ioctl(d->v.device, VFIO_DEVICE_RESET) ? -errno : 0;
	if (!ret)
		ret = mt_resume(d, tmp->p, tmp->len);
	if (ret) {
		snprintf(why, wl, "the saved accepted state is refused: %s", strerror(-ret));
		goto out;
	}
	ret = mt_digest(d->uuid, d2, sizeof(d2));
	if (!ret && strcmp(d1, d2)) {
		snprintf(why, wl, "accepted state %s comes back as %s", d1, d2);
		ret = -EBADMSG;
	}
	if (!ret)
		ret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_RUNNING, NULL);
	/* every register of every port, with the fuzzed state in it */
	for (port = 0; !ret && port < c->ports; port++) {
		for (reg = 0; !ret && reg < 8; reg++) {
			uint8_t v;

			ret = reg_rw(d, port, reg, &v, false);
			if (!ret && reg != UART_FCR && reg != UART_LCR)
				ret = reg_rw(d, port, reg, &v, true);
		}
		for (reg = 0; !ret && reg < 20; reg++) {
			uint8_t v = (uint8_t)reg;

			ret = reg_rw(d, port, UART_RX, &v, reg % 2);
		}
	}
	if (ret && !*why)
		snprintf(why, wl, "accepted device misbehaves: %s", strerror(-ret));
out:
	free(r);
	return ret;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *e = getenv(name);

	return e && *e ? strtoull(e, NULL, 0) : def;
}

TEST_F_TIMEOUT(fuzz, mutated_streams_are_refused_or_leave_a_valid_device, 86400)
{
	uint64_t seed = env_u64("MTTY_FUZZ_SEED", FUZZ_SEED);
	uint64_t first = env_u64("MTTY_FUZZ_FIRST", 0);
	uint64_t count = env_u64("MTTY_FUZZ_STREAMS", FUZZ_STREAMS);
	unsigned long accepted = 0, refused_write = 0, refused_stop = 0, legal = 0, forced = 0;
	struct mt_buf tmp = { 0 };
	char why[256];
	double t0;
	uint64_t n;

	TH_LOG("seed 0x%llx, streams %llu..%llu (replay one: MTTY_FUZZ_SEED=0x%llx MTTY_FUZZ_FIRST=<n> MTTY_FUZZ_STREAMS=1)",
	       (unsigned long long)seed, (unsigned long long)first,
	       (unsigned long long)(first + count - 1), (unsigned long long)seed);
	self->wd.seed = seed;
	ASSERT_EQ(0, pthread_create(&self->wd.tid, NULL, watchdog_thread, &self->wd));
	self->wd_started = true;

	t0 = mt_now_s();
	for (n = first; n < first + count; n++) {
		struct verdict v;
		struct mt_inst *d;
		size_t len, seg;
		const struct cfg *c;
		int ci, fd = -1, wret, sret;
		uint32_t st = MT_NO_STATE;

		atomic_store(&self->wd.current, n);
		ci = build(self->m, self->base, seed, n, &v, &len);
		c = &cfgs[ci];
		d = &self->dst[ci];
		/* segmentation: whole, pages, or small random pieces */
		switch (n % 8) {
		case 0:
			seg = 1 + (size_t)(n % 997);
			break;
		case 1: case 2:
			seg = MTTY_MIG_PAGE_SIZE;
			break;
		default:
			seg = len ? len : 1;
			break;
		}
		why[0] = '\0';

		self->wd.op = "RUNNING -> RESUMING";
		ASSERT_EQ(0, mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_RESUMING, &fd))
			TH_LOG("stream %llu", (unsigned long long)n);
		ASSERT_LE(0, fd);
		self->wd.op = "data_fd write";
		wret = mt_write_all(fd, self->m->out.p, len, seg);
		/* a refusal is -EINVAL, latched */
		ASSERT_TRUE(wret == 0 || wret == -EINVAL)
			TH_LOG("stream %llu (%s): write: %s", (unsigned long long)n, v.what,
			       strerror(-wret));
		if (wret) {
			uint8_t b = 0;

			ASSERT_EQ(-1, write(fd, &b, 1));
			ASSERT_EQ(EINVAL, errno) TH_LOG("stream %llu: refusal not latched",
							(unsigned long long)n);
			refused_write++;
		}
		self->wd.op = "RESUMING -> STOP";
		sret = mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_STOP, NULL);
		ASSERT_TRUE(sret == 0 || sret == -EINVAL)
			TH_LOG("stream %llu (%s): RESUMING -> STOP: %s", (unsigned long long)n,
			       v.what, strerror(-sret));
		if (wret)
			ASSERT_EQ(-EINVAL, sret) TH_LOG("stream %llu (%s): write refused, STOP took it",
							(unsigned long long)n, v.what);
		ASSERT_EQ(0, mt_mig_get_state(d->v.device, &st));
		if (sret) {
			uint8_t b = 0;

			if (!wret)
				refused_stop++;
			ASSERT_EQ(VFIO_DEVICE_STATE_ERROR, st) TH_LOG("stream %llu: %s after a refusal",
					(unsigned long long)n, mt_state_name(st));
			ASSERT_EQ(-1, write(fd, &b, 1));
			ASSERT_EQ(ENODEV, errno);
			ASSERT_EQ(-EINVAL, mt_mig_set_state(d->v.device, VFIO_DEVICE_STATE_RUNNING,
							    NULL));
			/* the only reason a stream of legal changes is refused: a kernel bug */
			ASSERT_FALSE(v.legal_only && !v.must_refuse)
				TH_LOG("stream %llu (%s): a valid stream was refused (replay: MTTY_FUZZ_SEED=0x%llx MTTY_FUZZ_FIRST=%llu MTTY_FUZZ_STREAMS=1)",
				       (unsigned long long)n, v.what, (unsigned long long)seed,
				       (unsigned long long)n);
		} else {
			accepted++;
			ASSERT_EQ(VFIO_DEVICE_STATE_STOP, st);
			ASSERT_FALSE(v.must_refuse)
				TH_LOG("stream %llu (%s): accepted a stream that must be refused (replay: MTTY_FUZZ_SEED=0x%llx MTTY_FUZZ_FIRST=%llu MTTY_FUZZ_STREAMS=1)",
				       (unsigned long long)n, v.what, (unsigned long long)seed,
				       (unsigned long long)n);
			self->wd.op = "checking an accepted state";
			ASSERT_EQ(0, check_accepted(d, c, &tmp, why, sizeof(why)))
				TH_LOG("stream %llu (%s): %s (replay: MTTY_FUZZ_SEED=0x%llx MTTY_FUZZ_FIRST=%llu MTTY_FUZZ_STREAMS=1)",
				       (unsigned long long)n, v.what, why, (unsigned long long)seed,
				       (unsigned long long)n);
		}
		legal += v.legal_only && !v.must_refuse;
		forced += v.must_refuse;
		close(fd);
		self->wd.op = "VFIO_DEVICE_RESET";
		ASSERT_EQ(0, ioctl(d->v.device, VFIO_DEVICE_RESET))
			TH_LOG("stream %llu: reset: %s", (unsigned long long)n, strerror(errno));
		ASSERT_EQ(VFIO_DEVICE_STATE_RUNNING, mt_inst_state(d));
		if ((n - first + 1) % CHECK_EVERY == 0) {
			self->wd.op = "clean migrations";
			ASSERT_EQ(0, still_migratable(self, why, sizeof(why)))
				TH_LOG("after stream %llu: %s", (unsigned long long)n, why);
		}
		atomic_fetch_add(&self->wd.beat, 1);
	}
	{
		double dt = mt_now_s() - t0;

		TH_LOG("%llu streams in %.1f s: %.1f execs/s; accepted %lu, refused at write %lu, at RESUMING -> STOP %lu; %lu must-accept, %lu must-refuse",
		       (unsigned long long)count, dt, dt > 0 ? count / dt : 0.0, accepted,
		       refused_write, refused_stop, legal, forced);
	}
	self->wd.op = "final clean migrations";
	ASSERT_EQ(0, still_migratable(self, why, sizeof(why))) TH_LOG("%s", why);
	mt_buf_free(&tmp);
}

TEST_HARNESS_MAIN
