// SPDX-License-Identifier: GPL-2.0
/*
 * The device stream (Documentation/stream-format.rst): sealing records on
 * the saving side and the incremental, validating parser on the resuming
 * side.
 *
 * The parser accepts input cut at any byte.  It stages a record header and
 * at most MTTY_MIG_REC_PAGE_PAYLOAD payload bytes (the METADATA filler is
 * hashed, not staged), so its memory is bounded whatever the stream says.
 * A record is handed to the caller only once its checksum and its contents
 * have been checked and it is legal at this point of the grammar:
 *
 *   HEADER METADATA (PAGE | REINIT METADATA)* SERIAL{nr_ports} DEVICE END
 *
 * (REINIT only if the HEADER announced version 1.1).
 * Every refusal is -EINVAL (the uAPI's errno for bad migration data); the
 * reason is kept in p->why for the log.  The first error is latched; every
 * later call returns it.
 */
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/overflow.h>

#include "mtty_mig.h"
#include "stream.h"

#define MTTY_MIG_STAGE_SIZE	MTTY_MIG_REC_PAGE_PAYLOAD

static_assert(sizeof(struct mtty_mig_rec_hdr) == 16);
static_assert(sizeof(struct mtty_mig_rec_header) == 40);
static_assert(sizeof(struct mtty_mig_rec_layout) == 32);
static_assert(sizeof(struct mtty_mig_rec_serial) == 40);
static_assert(sizeof(struct mtty_mig_rec_device) == 16);
static_assert(sizeof(struct mtty_mig_rec_end) == 16);
static_assert(sizeof(struct mtty_mig_rec_device) == sizeof(struct mtty_mig_rec_end));

/**
 * mtty_mig_rec_seal() - fill in the header of a record built in place
 * @rec: buffer holding MTTY_MIG_REC_HDR_SIZE + @length bytes, payload last
 * @type: enum mtty_mig_rec_type
 * @seq: record number
 * @length: payload length
 *
 * Return: total record size.
 */
size_t mtty_mig_rec_seal(void *rec, u16 type, u32 seq, u32 length)
{
	struct mtty_mig_rec_hdr *hdr = rec;

	hdr->type = cpu_to_le16(type);
	hdr->flags = 0;
	hdr->length = cpu_to_le32(length);
	hdr->seq = cpu_to_le32(seq);
	hdr->csum = 0;
	hdr->csum = cpu_to_le32(mtty_mig_xxh32(rec, MTTY_MIG_REC_HDR_SIZE + length,
					       MTTY_MIG_CSUM_SEED));
	return MTTY_MIG_REC_HDR_SIZE + length;
}

/**
 * mtty_mig_stream_initial_size() - bytes of the initial data
 * @metadata_size: METADATA payload size
 *
 * Return: size of the HEADER and METADATA records together.
 */
size_t mtty_mig_stream_initial_size(u32 metadata_size)
{
	return 2 * MTTY_MIG_REC_HDR_SIZE + sizeof(struct mtty_mig_rec_header) +
	       metadata_size;
}

/**
 * mtty_mig_stream_final_size() - bytes of the records written after STOP
 * @nr_ports: number of serial ports
 *
 * Return: size of SERIAL{nr_ports}, DEVICE and END.
 */
size_t mtty_mig_stream_final_size(unsigned int nr_ports)
{
	return nr_ports * (MTTY_MIG_REC_HDR_SIZE +
			   sizeof(struct mtty_mig_rec_serial)) +
	       MTTY_MIG_REC_HDR_SIZE + sizeof(struct mtty_mig_rec_device) +
	       MTTY_MIG_REC_HDR_SIZE + sizeof(struct mtty_mig_rec_end);
}

/* The METADATA record (@seq) of @metadata_size payload bytes at @rec. */
static size_t mtty_mig_seal_metadata(u8 *rec, unsigned int nr_ports,
				     u64 mem_size, u32 metadata_size, u32 seq)
{
	u8 *meta = rec + MTTY_MIG_REC_HDR_SIZE;
	struct mtty_mig_rec_layout *l = (void *)meta;
	size_t i;

	l->nr_ports = cpu_to_le32(nr_ports);
	l->fifo_size = cpu_to_le32(MTTY_MIG_FIFO_SIZE);
	l->port_stride = cpu_to_le32(MTTY_MIG_PORT_STRIDE);
	l->config_size = cpu_to_le32(MTTY_MIG_CONFIG_SIZE);
	l->nr_pages = cpu_to_le64(mem_size >> MTTY_MIG_PAGE_SHIFT);
	for (i = sizeof(*l); i < metadata_size; i++)
		meta[i] = i * 7 + 1;
	return mtty_mig_rec_seal(rec, MTTY_MIG_REC_METADATA, seq,
				 metadata_size);
}

/**
 * mtty_mig_stream_build_initial() - build the HEADER and METADATA records
 * @nr_ports: ports of the source device
 * @mem_size: memory size of the source device
 * @metadata_size: METADATA payload size (already bounded by sysfs)
 * @minor: version_minor to announce (1 only if REINIT may follow)
 * @len: size of the returned buffer
 *
 * Return: kvmalloc'd records (seq 0 and 1), or NULL.
 */
void *mtty_mig_stream_build_initial(unsigned int nr_ports, u64 mem_size,
				    u32 metadata_size, u16 minor, size_t *len)
{
	struct mtty_mig_rec_header *h;
	size_t off;
	u8 *buf;

	*len = mtty_mig_stream_initial_size(metadata_size);
	buf = kvzalloc(*len, GFP_KERNEL_ACCOUNT);
	if (!buf)
		return NULL;

	h = (void *)(buf + MTTY_MIG_REC_HDR_SIZE);
	h->magic = cpu_to_le64(MTTY_MIG_STREAM_MAGIC);
	h->version_major = cpu_to_le16(MTTY_MIG_STREAM_VERSION_MAJOR);
	h->version_minor = cpu_to_le16(minor);
	h->nr_ports = cpu_to_le32(nr_ports);
	h->page_size = cpu_to_le32(MTTY_MIG_PAGE_SIZE);
	h->mem_size = cpu_to_le64(mem_size);
	h->metadata_size = cpu_to_le32(metadata_size);
	off = mtty_mig_rec_seal(buf, MTTY_MIG_REC_HEADER, 0, sizeof(*h));
	mtty_mig_seal_metadata(buf + off, nr_ports, mem_size, metadata_size, 1);
	return buf;
}

/**
 * mtty_mig_stream_build_reinit() - build the REINIT and METADATA records
 * @nr_ports: ports of the source device
 * @mem_size: memory size of the source device
 * @metadata_size: the new METADATA payload size
 * @seq: record number of REINIT (METADATA is @seq + 1)
 * @len: size of the returned buffer
 *
 * Return: kvmalloc'd records, or NULL.
 */
void *mtty_mig_stream_build_reinit(unsigned int nr_ports, u64 mem_size,
				   u32 metadata_size, u32 seq, size_t *len)
{
	struct mtty_mig_rec_reinit *r;
	size_t off;
	u8 *buf;

	*len = 2 * MTTY_MIG_REC_HDR_SIZE + sizeof(*r) + metadata_size;
	buf = kvzalloc(*len, GFP_KERNEL_ACCOUNT);
	if (!buf)
		return NULL;
	r = (void *)(buf + MTTY_MIG_REC_HDR_SIZE);
	r->metadata_size = cpu_to_le32(metadata_size);
	off = mtty_mig_rec_seal(buf, MTTY_MIG_REC_REINIT, seq, sizeof(*r));
	mtty_mig_seal_metadata(buf + off, nr_ports, mem_size, metadata_size,
			       seq + 1);
	return buf;
}

/* ---- parser ------------------------------------------------------------ */

/**
 * mtty_mig_parser_init() - prepare a parser for a destination device
 * @p: parser
 * @nr_ports: the destination's ports
 * @mem_size: the destination's memory size
 *
 * Return: 0 or -ENOMEM.
 */
int mtty_mig_parser_init(struct mtty_mig_parser *p, unsigned int nr_ports,
			 u64 mem_size)
{
	memset(p, 0, sizeof(*p));
	p->stage = kmalloc(MTTY_MIG_STAGE_SIZE, GFP_KERNEL_ACCOUNT);
	if (!p->stage)
		return -ENOMEM;
	p->nr_ports = nr_ports;
	p->mem_size = mem_size;
	p->expect = MTTY_MIG_EXPECT_HEADER;
	return 0;
}

/**
 * mtty_mig_parser_destroy() - free a parser's staging buffer
 * @p: parser
 */
void mtty_mig_parser_destroy(struct mtty_mig_parser *p)
{
	kfree(p->stage);
	p->stage = NULL;
}

static int mtty_mig_parser_fail(struct mtty_mig_parser *p, int err,
				const char *why)
{
	p->error = err;
	p->why = why;
	return err;
}

/**
 * mtty_mig_parser_abort() - latch an error found outside the parser
 * @p: parser
 * @err: negative errno
 * @why: reason, for the log
 */
void mtty_mig_parser_abort(struct mtty_mig_parser *p, int err, const char *why)
{
	if (!p->error)
		mtty_mig_parser_fail(p, err, why);
}

/* Is a record of this type and length legal here?  Sets the staged size. */
static int mtty_mig_parse_header(struct mtty_mig_parser *p)
{
	const struct mtty_mig_rec_hdr *hdr = (const void *)p->hdr;
	struct mtty_mig_rec_hdr zeroed = *hdr;
	u32 want;

	p->type = le16_to_cpu(hdr->type);
	p->length = le32_to_cpu(hdr->length);
	p->csum = le32_to_cpu(hdr->csum);

	if (hdr->flags)
		return mtty_mig_parser_fail(p, -EINVAL, "record flags set");
	if (le32_to_cpu(hdr->seq) != p->next_seq)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "record out of sequence (missing, duplicated or reordered)");

	switch (p->expect) {
	case MTTY_MIG_EXPECT_HEADER:
		if (p->type != MTTY_MIG_REC_HEADER)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "stream does not start with a HEADER record");
		break;
	case MTTY_MIG_EXPECT_METADATA:
		if (p->type != MTTY_MIG_REC_METADATA)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "METADATA record expected");
		break;
	case MTTY_MIG_EXPECT_BODY:
		if (p->type == MTTY_MIG_REC_REINIT && !p->reinit_ok)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "REINIT record in a version 1.0 stream");
		if (p->type != MTTY_MIG_REC_PAGE &&
		    p->type != MTTY_MIG_REC_SERIAL &&
		    p->type != MTTY_MIG_REC_REINIT)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "PAGE, REINIT or SERIAL record expected");
		break;
	case MTTY_MIG_EXPECT_SERIAL:
		if (p->type != MTTY_MIG_REC_SERIAL)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "SERIAL record expected");
		break;
	case MTTY_MIG_EXPECT_DEVICE:
		if (p->type != MTTY_MIG_REC_DEVICE)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "DEVICE record expected");
		break;
	case MTTY_MIG_EXPECT_END:
		if (p->type != MTTY_MIG_REC_END)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "END record expected");
		break;
	case MTTY_MIG_EXPECT_DONE:
	default:
		return mtty_mig_parser_fail(p, -EINVAL, "data after END record");
	}

	switch (p->type) {
	case MTTY_MIG_REC_HEADER:
		want = sizeof(struct mtty_mig_rec_header);
		break;
	case MTTY_MIG_REC_METADATA:
		want = p->metadata_size;
		break;
	case MTTY_MIG_REC_PAGE:
		want = MTTY_MIG_REC_PAGE_PAYLOAD;
		break;
	case MTTY_MIG_REC_SERIAL:
		want = sizeof(struct mtty_mig_rec_serial);
		break;
	case MTTY_MIG_REC_REINIT:
		want = sizeof(struct mtty_mig_rec_reinit);
		break;
	case MTTY_MIG_REC_DEVICE:
		want = sizeof(struct mtty_mig_rec_device);
		break;
	default:
		want = sizeof(struct mtty_mig_rec_end);
		break;
	}
	if (p->length != want)
		return mtty_mig_parser_fail(p, -EINVAL, "bad record length");

	/* Only the layout of METADATA is kept; the filler is just hashed. */
	p->stage_len = p->type == MTTY_MIG_REC_METADATA ?
		       sizeof(struct mtty_mig_rec_layout) : p->length;

	zeroed.csum = 0;
	mtty_mig_xxh32_reset(&p->xs, MTTY_MIG_CSUM_SEED);
	mtty_mig_xxh32_update(&p->xs, &zeroed, sizeof(zeroed));
	return 0;
}

static int mtty_mig_check_header(struct mtty_mig_parser *p)
{
	const struct mtty_mig_rec_header *h = (const void *)p->stage;
	u32 meta = le32_to_cpu(h->metadata_size);

	if (le64_to_cpu(h->magic) != MTTY_MIG_STREAM_MAGIC)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "not an mtty_mig stream (bad magic)");
	if (le16_to_cpu(h->version_major) != MTTY_MIG_STREAM_VERSION_MAJOR)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "unsupported stream major version");
	/* A newer minor version may carry what this parser cannot read. */
	if (le16_to_cpu(h->version_minor) > MTTY_MIG_STREAM_VERSION_MINOR)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "unsupported stream minor version");
	if (h->flags || h->reserved)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "unknown stream feature flags");
	if (le32_to_cpu(h->nr_ports) != p->nr_ports)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "incompatible device: port count differs");
	if (le32_to_cpu(h->page_size) != MTTY_MIG_PAGE_SIZE)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "incompatible device: page size differs");
	if (le64_to_cpu(h->mem_size) != p->mem_size)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "incompatible device: mem_size differs");
	if (meta < MTTY_MIG_METADATA_MIN || meta > MTTY_MIG_METADATA_MAX)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "metadata size out of bounds");
	p->metadata_size = meta;
	p->reinit_ok = le16_to_cpu(h->version_minor) >= 1;
	return 0;
}

static int mtty_mig_check_reinit(struct mtty_mig_parser *p)
{
	const struct mtty_mig_rec_reinit *r = (const void *)p->stage;
	u32 meta = le32_to_cpu(r->metadata_size);

	if (r->reserved)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "REINIT reserved field set");
	if (meta < MTTY_MIG_METADATA_MIN || meta > MTTY_MIG_METADATA_MAX)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "metadata size out of bounds");
	p->metadata_size = meta;
	return 0;
}

static int mtty_mig_check_layout(struct mtty_mig_parser *p)
{
	const struct mtty_mig_rec_layout *l = (const void *)p->stage;

	if (le32_to_cpu(l->nr_ports) != p->nr_ports ||
	    le32_to_cpu(l->fifo_size) != MTTY_MIG_FIFO_SIZE ||
	    le32_to_cpu(l->port_stride) != MTTY_MIG_PORT_STRIDE ||
	    le32_to_cpu(l->config_size) != MTTY_MIG_CONFIG_SIZE ||
	    le64_to_cpu(l->nr_pages) != p->mem_size >> MTTY_MIG_PAGE_SHIFT)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "incompatible device layout in METADATA");
	if (l->reserved)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "METADATA reserved field set");
	return 0;
}

/* A whole record arrived: check it and move the grammar on. */
static int mtty_mig_parse_record(struct mtty_mig_parser *p,
				 struct mtty_mig_record *rec)
{
	const struct mtty_mig_rec_page *page = (const void *)p->stage;
	const struct mtty_mig_rec_end *end = (const void *)p->stage;
	int ret;

	if (mtty_mig_xxh32_digest(&p->xs) != p->csum)
		return mtty_mig_parser_fail(p, -EINVAL, "record checksum mismatch");

	switch (p->type) {
	case MTTY_MIG_REC_HEADER:
		ret = mtty_mig_check_header(p);
		if (ret)
			return ret;
		p->expect = MTTY_MIG_EXPECT_METADATA;
		break;
	case MTTY_MIG_REC_METADATA:
		ret = mtty_mig_check_layout(p);
		if (ret)
			return ret;
		p->expect = MTTY_MIG_EXPECT_BODY;
		break;
	case MTTY_MIG_REC_PAGE:
		if (le64_to_cpu(page->index) >=
		    p->mem_size >> MTTY_MIG_PAGE_SHIFT)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "page index beyond device memory");
		p->nr_page_recs++;
		break;
	case MTTY_MIG_REC_REINIT:
		ret = mtty_mig_check_reinit(p);
		if (ret)
			return ret;
		p->expect = MTTY_MIG_EXPECT_METADATA;
		break;
	case MTTY_MIG_REC_SERIAL:
		if (mtty_mig_serial_check((const void *)p->stage, p->next_port))
			return mtty_mig_parser_fail(p, -EINVAL,
						    "invalid or misordered SERIAL record");
		memcpy(&p->serial[p->next_port], p->stage,
		       sizeof(p->serial[0]));
		p->next_port++;
		p->expect = p->next_port < p->nr_ports ?
			    MTTY_MIG_EXPECT_SERIAL : MTTY_MIG_EXPECT_DEVICE;
		break;
	case MTTY_MIG_REC_DEVICE:
		memcpy(&p->device, p->stage, sizeof(p->device));
		p->expect = MTTY_MIG_EXPECT_END;
		break;
	case MTTY_MIG_REC_END:
		if (le32_to_cpu(end->nr_records) != p->next_seq ||
		    le64_to_cpu(end->nr_pages) != p->nr_page_recs ||
		    end->reserved)
			return mtty_mig_parser_fail(p, -EINVAL,
						    "END record does not match the stream");
		p->expect = MTTY_MIG_EXPECT_DONE;
		break;
	}

	rec->type = p->type;
	rec->seq = p->next_seq;
	rec->payload = p->stage;
	rec->length = p->length;
	p->next_seq++;
	return 0;
}

/**
 * mtty_mig_parse() - feed stream bytes to the parser
 * @p: parser
 * @buf: bytes (kernel memory)
 * @len: number of bytes
 * @rec: set to the record completed by these bytes; rec->type is 0 if none
 *
 * Stops right after a completed record so the caller can apply it before
 * feeding the rest.
 *
 * Return: bytes consumed, or a negative errno (latched, see p->why).
 */
ssize_t mtty_mig_parse(struct mtty_mig_parser *p, const u8 *buf, size_t len,
		       struct mtty_mig_record *rec)
{
	size_t used = 0, n, m;
	int ret;

	rec->type = 0;
	if (p->error)
		return p->error;

	while (used < len) {
		if (!p->in_payload) {
			/* Not even part of a header may follow END. */
			if (p->expect == MTTY_MIG_EXPECT_DONE)
				return mtty_mig_parser_fail(p, -EINVAL,
							    "data after END record");
			n = min(len - used, MTTY_MIG_REC_HDR_SIZE - p->hdr_fill);
			memcpy(p->hdr + p->hdr_fill, buf + used, n);
			p->hdr_fill += n;
			used += n;
			if (p->hdr_fill < MTTY_MIG_REC_HDR_SIZE)
				break;
			ret = mtty_mig_parse_header(p);
			if (ret)
				return ret;
			p->in_payload = true;
		}

		n = min_t(size_t, len - used, p->length - p->payload_done);
		if (p->stage_fill < p->stage_len) {
			m = min(n, p->stage_len - p->stage_fill);
			memcpy(p->stage + p->stage_fill, buf + used, m);
			p->stage_fill += m;
		}
		mtty_mig_xxh32_update(&p->xs, buf + used, n);
		used += n;
		p->payload_done += n;
		if (p->payload_done < p->length)
			break;

		ret = mtty_mig_parse_record(p, rec);
		if (ret)
			return ret;
		p->in_payload = false;
		p->hdr_fill = 0;
		p->stage_fill = 0;
		p->payload_done = 0;
		break;
	}
	return used;
}

/**
 * mtty_mig_parser_finish() - is the stream complete?
 * @p: parser
 *
 * Return: 0 if END was received, the latched error, or -EINVAL if the
 * stream stopped early (truncated).
 */
int mtty_mig_parser_finish(struct mtty_mig_parser *p)
{
	if (p->error)
		return p->error;
	if (p->expect != MTTY_MIG_EXPECT_DONE || p->hdr_fill || p->in_payload)
		return mtty_mig_parser_fail(p, -EINVAL,
					    "stream truncated before END record");
	return 0;
}
