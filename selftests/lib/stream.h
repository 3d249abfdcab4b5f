/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The device stream of mtty_mig as uapi/linux/mtty_mig.h frames it, for the
 * tests that take streams apart and build broken ones: xxh32 as the kernel's
 * lib/xxhash.c (and so stream.c) computes it, record checksums, splitting a
 * stream into records with its framing checked, and sealing records again
 * (checksums, seq, END counts) after a test edited them.
 */
#ifndef MT_STREAM_H
#define MT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/mtty_mig.h>

#define MT_REC_HDR_SIZE sizeof(struct mtty_mig_rec_hdr)
#define MT_MAX_RECS 4096

/* where each record of a stream starts (its header), its size and type */
struct mt_recs {
	size_t nr;
	size_t off[MT_MAX_RECS];
	size_t size[MT_MAX_RECS]; /* header + payload */
	uint16_t type[MT_MAX_RECS];
};

/* xxh32 of @len bytes at @p, as the kernel's lib/xxhash.c */
uint32_t mt_xxh32(const void *p, size_t len, uint32_t seed);

/* the checksum of the @size-byte record at @rec: xxh32 with its csum as 0 */
uint32_t mt_rec_csum(const uint8_t *rec, size_t size);
/* write that checksum into the record, after an edit */
void mt_rec_seal(uint8_t *rec, size_t size);

/*
 * Split @len bytes at @p into records; 0 if the stream is framed as
 * uapi/linux/mtty_mig.h says (seq without gaps, checksums right, HEADER and
 * METADATA first, END last and counting), else -1 with the first problem in
 * @why.
 */
int mt_recs_parse(const uint8_t *p, size_t len, struct mt_recs *r, char *why, size_t wl);
/* index of the @nth (from 0) record of @type, or -1 */
int mt_recs_find(const struct mt_recs *r, uint16_t type, int nth);

/*
 * Seal the records @r of the stream at @p again: with @renumber, each seq
 * is its index and a well-sized last END record counts the PAGE records and
 * those before it; then every checksum is recomputed.
 */
void mt_stream_seal(uint8_t *p, const struct mt_recs *r, bool renumber);

#endif
