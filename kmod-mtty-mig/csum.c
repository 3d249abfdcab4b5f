// SPDX-License-Identifier: GPL-2.0
/*
 * XXH32 (Yann Collet's xxHash, 32-bit variant), streaming: the record
 * checksum of the device stream (uapi/linux/mtty_mig.h).  The kernel had a
 * streaming API for it until Linux 7.2 removed it; the one-shot xxh32()
 * remains, and mtty_mig_xxh32() must equal it (the stream tests check the
 * checksums with libxxhash's XXH32() in userspace on every kernel lane).
 */
#include <linux/bitops.h>
#include <linux/string.h>
#include <linux/unaligned.h>

#include "csum.h"

#define P1	2654435761U
#define P2	2246822519U
#define P3	3266489917U
#define P4	668265263U
#define P5	374761393U

static u32 xxh32_round(u32 acc, u32 input)
{
	acc += input * P2;
	acc = rol32(acc, 13);
	return acc * P1;
}

void mtty_mig_xxh32_reset(struct mtty_mig_xxh32 *st, u32 seed)
{
	memset(st, 0, sizeof(*st));
	st->v[0] = seed + P1 + P2;
	st->v[1] = seed + P2;
	st->v[2] = seed;
	st->v[3] = seed - P1;
}

static void xxh32_stripe(struct mtty_mig_xxh32 *st, const u8 *p)
{
	int i;

	for (i = 0; i < 4; i++)
		st->v[i] = xxh32_round(st->v[i], get_unaligned_le32(p + 4 * i));
}

void mtty_mig_xxh32_update(struct mtty_mig_xxh32 *st, const void *input,
			   size_t len)
{
	const u8 *p = input;
	const u8 *end = p + len;

	st->total_len += (u32)len;
	st->large_len |= len >= 16 || st->total_len >= 16;

	if (st->memsize + len < 16) {
		memcpy((u8 *)st->mem + st->memsize, p, len);
		st->memsize += len;
		return;
	}
	if (st->memsize) {
		size_t fill = 16 - st->memsize;

		memcpy((u8 *)st->mem + st->memsize, p, fill);
		xxh32_stripe(st, (const u8 *)st->mem);
		p += fill;
		st->memsize = 0;
	}
	while (end - p >= 16) {
		xxh32_stripe(st, p);
		p += 16;
	}
	if (p < end) {
		memcpy(st->mem, p, end - p);
		st->memsize = end - p;
	}
}

u32 mtty_mig_xxh32_digest(const struct mtty_mig_xxh32 *st)
{
	const u8 *p = (const u8 *)st->mem;
	const u8 *end = p + st->memsize;
	u32 h;

	if (st->large_len)
		h = rol32(st->v[0], 1) + rol32(st->v[1], 7) +
		    rol32(st->v[2], 12) + rol32(st->v[3], 18);
	else
		h = st->v[2] + P5;	/* v[2] is the seed */
	h += st->total_len;

	while (end - p >= 4) {
		h += get_unaligned_le32(p) * P3;
		h = rol32(h, 17) * P4;
		p += 4;
	}
	while (p < end) {
		h += *p * P5;
		h = rol32(h, 11) * P1;
		p++;
	}
	h ^= h >> 15;
	h *= P2;
	h ^= h >> 13;
	h *= P3;
	h ^= h >> 16;
	return h;
}

/* One-shot, through the same code: what the parser computes incrementally. */
u32 mtty_mig_xxh32(const void *input, size_t len, u32 seed)
{
	struct mtty_mig_xxh32 st;

	mtty_mig_xxh32_reset(&st, seed);
	mtty_mig_xxh32_update(&st, input, len);
	return mtty_mig_xxh32_digest(&st);
}
