/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * fuzz.h - what the libFuzzer harnesses (fuzz_*.c), the seed generator
 * (seeds.c, gen-corpus.c) and the smoke driver (smoke.c) share: an input
 * reader, the invariant check that turns a broken promise into a crash, and
 * the checksum re-sealer that lets mutated frames past XXH3.
 *
 * Every harness is one LLVMFuzzerTestOneInput() in its own file, is
 * deterministic for a given input and bounded (no sleeps; the destination
 * session harness gives the library short timeouts).  Documentation/fuzzing.rst
 * says what each one feeds and checks.
 */
#ifndef VFMIG_FUZZ_H
#define VFMIG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "vfmig_internal.h"

/*
 * Where a broken invariant is reported: stderr, unless the smoke driver
 * silenced stderr (the library logs every refused input there) and kept a
 * copy of it.
 */
__attribute__((weak)) int fuzz_report_fd = 2;

/* A promise of the library broke: report and crash, so libFuzzer keeps the input. */
#define FUZZ_CHECK(cond, ...)                                                                     \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			dprintf(fuzz_report_fd, "FUZZ INVARIANT %s:%d: %s: ", __FILE__, __LINE__, \
				#cond);                                                           \
			dprintf(fuzz_report_fd, __VA_ARGS__);                                     \
			dprintf(fuzz_report_fd, "\n");                                            \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs longer than this are cut (every harness; libFuzzer runs with -max_len). */
#define FUZZ_MAX_INPUT (64u << 10)

/* ---- reading an input: past its end every read yields zeros --------------------- */

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fz_u8(struct fz *z)
{
	uint8_t v = 0;

	if (z->n) {
		v = *z->p++;
		z->n--;
	}
	return v;
}

static inline uint16_t fz_u16(struct fz *z)
{
	return (uint16_t)(fz_u8(z) | fz_u8(z) << 8);
}

static inline uint32_t fz_u32(struct fz *z)
{
	return (uint32_t)fz_u16(z) | (uint32_t)fz_u16(z) << 16;
}

/* ---- checksums --------------------------------------------------------------------- */

/*
 * Walk @buf as a sequence of frames (each header's length field gives the
 * next boundary) and recompute every whole frame's checksum, so a mutation
 * of any field or payload byte reaches the checks behind the checksum.
 * Stops at the first frame that does not fit in @len.
 */
static inline void fuzz_reseal(uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (len - off >= VFMIG_HDR_LEN) {
		uint32_t plen = get_le32(buf + off + 20);

		if (plen > len - off - VFMIG_HDR_LEN)
			return;
		put_le64(buf + off + 24,
			 vfmig_frame_checksum(buf + off, buf + off + VFMIG_HDR_LEN, plen));
		off += VFMIG_HDR_LEN + plen;
	}
}

/* ---- seeds (seeds.c): valid inputs for each harness ---------------------------------- */

typedef void (*fuzz_seed_fn)(void *arg, const char *tag, const uint8_t *buf, size_t len);
/* Call @fn for every seed of harness @name ("frame", "wire", "reorder", "session"); 0 or -1. */
int fuzz_seeds(const char *name, fuzz_seed_fn fn, void *arg);

/* What each harness file says about itself (for the smoke driver). */
extern const char fuzz_name[];
extern const unsigned fuzz_smoke_execs;

/* ---- the destination session harness's input, shared with its seeds ------------------ */

/*
 * byte 0: configuration (FZS_*), byte 1: reserved, then records:
 *   0xff                 WAIT_LOADED: read the main channel until LOADED, ERROR or
 *                        its end, then go on
 *   tag, u16 len, bytes  send @bytes on channel tag % (nch + 1): 0 the main channel,
 *                        1..nch the multifd channels
 */
#define FZS_MULTIFD 0x01u
#define FZS_NCH_SHIFT 1 /* 2 bits: channels - 1 */
#define FZS_SACK 0x08u
#define FZS_RESEAL 0x10u
#define FZS_TWO_DEVICES 0x20u
#define FZS_CONFIG_AFTER_ITER 0x40u
#define FZS_SMALL_BUDGET 0x80u
/* The second byte: with multifd, the HELLO also offers PRECOPY_MULTIFD. */
#define FZS2_PRECOPY_MULTIFD 0x01u
#define FZS_WAIT_LOADED 0xffu
#define FZS_CHUNK 4096u	   /* the rogue source's chunk size */
#define FZS_DEV_SIZE 8192u /* every fake device: two pages */
#define FZS_SESSION_ID 0x5eed

#endif /* VFMIG_FUZZ_H */
