/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stream encoder and parser interface (stream.c), used by migfile.c.
 * The wire format itself is in uapi/linux/mtty_mig.h.
 */
#ifndef MTTY_MIG_STREAM_H
#define MTTY_MIG_STREAM_H

#include <linux/types.h>
#include <linux/mtty_mig.h>

#include "csum.h"

/* Where the parser is in the grammar. */
enum mtty_mig_expect {
	MTTY_MIG_EXPECT_HEADER,
	MTTY_MIG_EXPECT_METADATA,
	MTTY_MIG_EXPECT_BODY,		/* PAGE* or the first SERIAL */
	MTTY_MIG_EXPECT_SERIAL,
	MTTY_MIG_EXPECT_DEVICE,
	MTTY_MIG_EXPECT_END,
	MTTY_MIG_EXPECT_DONE,
};

/* A validated record handed to the caller; payload valid until next call. */
struct mtty_mig_record {
	u16 type;			/* 0: no record completed */
	u32 seq;
	u32 length;
	const void *payload;		/* staged bytes (METADATA: layout only) */
};

struct mtty_mig_parser {
	/* The destination the stream must match. */
	unsigned int nr_ports;
	u64 mem_size;

	/* Framing of the record in progress. */
	u8 hdr[sizeof(struct mtty_mig_rec_hdr)];
	size_t hdr_fill;
	bool in_payload;
	u16 type;
	u32 length;
	u32 csum;
	u32 payload_done;
	struct mtty_mig_xxh32 xs;
	u8 *stage;			/* MTTY_MIG_REC_PAGE_PAYLOAD bytes */
	size_t stage_len;
	size_t stage_fill;

	/* Grammar. */
	enum mtty_mig_expect expect;
	u32 next_seq;
	u32 metadata_size;
	bool reinit_ok;			/* the HEADER announced 1.1 */
	unsigned int next_port;
	u64 nr_page_recs;

	int error;			/* first error, latched */
	const char *why;

	/* State applied at RESUMING -> STOP. */
	struct mtty_mig_rec_serial serial[MTTY_MIG_MAX_PORTS];
	struct mtty_mig_rec_device device;
};

size_t mtty_mig_rec_seal(void *rec, u16 type, u32 seq, u32 length);
size_t mtty_mig_stream_initial_size(u32 metadata_size);
size_t mtty_mig_stream_final_size(unsigned int nr_ports);
void *mtty_mig_stream_build_initial(unsigned int nr_ports, u64 mem_size,
				    u32 metadata_size, u16 minor, size_t *len);
void *mtty_mig_stream_build_reinit(unsigned int nr_ports, u64 mem_size,
				   u32 metadata_size, u32 seq, size_t *len);

int mtty_mig_parser_init(struct mtty_mig_parser *p, unsigned int nr_ports,
			 u64 mem_size);
void mtty_mig_parser_destroy(struct mtty_mig_parser *p);
ssize_t mtty_mig_parse(struct mtty_mig_parser *p, const u8 *buf, size_t len,
		       struct mtty_mig_record *rec);
int mtty_mig_parser_finish(struct mtty_mig_parser *p);
void mtty_mig_parser_abort(struct mtty_mig_parser *p, int err, const char *why);

#endif /* MTTY_MIG_STREAM_H */
