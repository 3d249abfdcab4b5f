/* SPDX-License-Identifier: GPL-2.0 */
/*
 * XXH32, streaming (csum.c): the record checksum of the device stream.
 * Linux 7.2 dropped the kernel's streaming xxh32 API; this computes the
 * same function on every kernel (and equals libxxhash's XXH32()).
 */
#ifndef MTTY_MIG_CSUM_H
#define MTTY_MIG_CSUM_H

#include <linux/types.h>

struct mtty_mig_xxh32 {
	u32 total_len;
	bool large_len;
	u32 v[4];
	u32 mem[4];
	u32 memsize;
};

void mtty_mig_xxh32_reset(struct mtty_mig_xxh32 *st, u32 seed);
void mtty_mig_xxh32_update(struct mtty_mig_xxh32 *st, const void *input,
			   size_t len);
u32 mtty_mig_xxh32_digest(const struct mtty_mig_xxh32 *st);
u32 mtty_mig_xxh32(const void *input, size_t len, u32 seed);

#endif /* MTTY_MIG_CSUM_H */
