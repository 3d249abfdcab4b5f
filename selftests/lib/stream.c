// SPDX-License-Identifier: GPL-2.0-only
/*
 * The device stream of mtty_mig, records and checksums (see stream.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

#define XXH_P32_1 0x9E3779B1U
#define XXH_P32_2 0x85EBCA77U
#define XXH_P32_3 0xC2B2AE3DU
#define XXH_P32_4 0x27D4EB2FU
#define XXH_P32_5 0x165667B1U

static uint32_t xxh_rotl32(uint32_t x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static uint32_t xxh_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint32_t xxh32_round(uint32_t acc, uint32_t in)
{
	acc += in * XXH_P32_2;
	acc = xxh_rotl32(acc, 13);
	return acc * XXH_P32_1;
}

uint32_t mt_xxh32(const void *input, size_t len, uint32_t seed)
{
	const uint8_t *p = input, *end = p + len;
	uint32_t h;

	if (len >= 16) {
		const uint8_t *limit = end - 16;
		uint32_t v1 = seed + XXH_P32_1 + XXH_P32_2, v2 = seed + XXH_P32_2;
		uint32_t v3 = seed, v4 = seed - XXH_P32_1;

		do {
			v1 = xxh32_round(v1, xxh_get32(p));
			v2 = xxh32_round(v2, xxh_get32(p + 4));
			v3 = xxh32_round(v3, xxh_get32(p + 8));
			v4 = xxh32_round(v4, xxh_get32(p + 12));
			p += 16;
		} while (p <= limit);
		h = xxh_rotl32(v1, 1) + xxh_rotl32(v2, 7) + xxh_rotl32(v3, 12) +
		    xxh_rotl32(v4, 18);
	} else {
		h = seed + XXH_P32_5;
	}
	h += (uint32_t)len;
	while (p + 4 <= end) {
		h += xxh_get32(p) * XXH_P32_3;
		h = xxh_rotl32(h, 17) * XXH_P32_4;
		p += 4;
	}
	while (p < end) {
		h += *p * XXH_P32_5;
		h = xxh_rotl32(h, 11) * XXH_P32_1;
		p++;
	}
	h ^= h >> 15;
	h *= XXH_P32_2;
	h ^= h >> 13;
	h *= XXH_P32_3;
	h ^= h >> 16;
	return h;
}

uint32_t mt_rec_csum(const uint8_t *rec, size_t size)
{
	uint8_t *tmp = malloc(size);
	uint32_t c;

	if (!tmp)
		abort();
	memcpy(tmp, rec, size);
	memset(tmp + offsetof(struct mtty_mig_rec_hdr, csum), 0,
	       sizeof(((struct mtty_mig_rec_hdr *)0)->csum));
	c = mt_xxh32(tmp, size, MTTY_MIG_CSUM_SEED);
	free(tmp);
	return c;
}

void mt_rec_seal(uint8_t *rec, size_t size)
{
	((struct mtty_mig_rec_hdr *)rec)->csum = mt_rec_csum(rec, size);
}

int mt_recs_parse(const uint8_t *p, size_t len, struct mt_recs *r, char *why, size_t wl)
{
	size_t off = 0, pages = 0;

	r->nr = 0;
	while (off < len) {
		const struct mtty_mig_rec_hdr *h = (const void *)(p + off);
		size_t size;

		if (len - off < MT_REC_HDR_SIZE) {
			snprintf(why, wl, "partial header at %zu", off);
			return -1;
		}
		size = MT_REC_HDR_SIZE + h->length;
		if (size > len - off) {
			snprintf(why, wl, "record %zu overruns the stream", r->nr);
			return -1;
		}
		if (r->nr == MT_MAX_RECS) {
			snprintf(why, wl, "more than %d records", MT_MAX_RECS);
			return -1;
		}
		if (h->seq != r->nr) {
			snprintf(why, wl, "record %zu has seq %u", r->nr, h->seq);
			return -1;
		}
		if (h->csum != mt_rec_csum(p + off, size)) {
			snprintf(why, wl, "record %zu: bad checksum", r->nr);
			return -1;
		}
		if (h->type == MTTY_MIG_REC_PAGE)
			pages++;
		r->off[r->nr] = off;
		r->size[r->nr] = size;
		r->type[r->nr] = h->type;
		r->nr++;
		off += size;
	}
	if (r->nr < 2 || r->type[0] != MTTY_MIG_REC_HEADER ||
	    r->type[1] != MTTY_MIG_REC_METADATA) {
		snprintf(why, wl, "no HEADER, METADATA at the start");
		return -1;
	}
	if (r->type[r->nr - 1] != MTTY_MIG_REC_END) {
		snprintf(why, wl, "last record is not END");
		return -1;
	} else {
		const struct mtty_mig_rec_end *e =
			(const void *)(p + r->off[r->nr - 1] + MT_REC_HDR_SIZE);

		if (e->nr_pages != pages || e->nr_records != r->nr - 1) {
			snprintf(why, wl, "END counts %llu pages %u records, stream has %zu %zu",
				 (unsigned long long)e->nr_pages, e->nr_records, pages,
				 r->nr - 1);
			return -1;
		}
	}
	return 0;
}

int mt_recs_find(const struct mt_recs *r, uint16_t type, int nth)
{
	size_t i;

	for (i = 0; i < r->nr; i++)
		if (r->type[i] == type && nth-- == 0)
			return (int)i;
	return -1;
}

void mt_stream_seal(uint8_t *p, const struct mt_recs *r, bool renumber)
{
	uint64_t pages = 0;
	size_t i;

	if (renumber) {
		for (i = 0; i < r->nr; i++) {
			((struct mtty_mig_rec_hdr *)(p + r->off[i]))->seq = (uint32_t)i;
			pages += r->type[i] == MTTY_MIG_REC_PAGE;
		}
		if (r->nr && r->type[r->nr - 1] == MTTY_MIG_REC_END &&
		    r->size[r->nr - 1] == MT_REC_HDR_SIZE + sizeof(struct mtty_mig_rec_end)) {
			struct mtty_mig_rec_end *e =
				(void *)(p + r->off[r->nr - 1] + MT_REC_HDR_SIZE);

			e->nr_pages = pages;
			e->nr_records = (uint32_t)(r->nr - 1);
		}
	}
	for (i = 0; i < r->nr; i++)
		mt_rec_seal(p + r->off[i], r->size[i]);
}
