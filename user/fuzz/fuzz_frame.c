// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_frame.c - the frame parser and header validation (transport.c).
 *
 * Input: byte 0 the receiver's limits (ndevices, bit 7: re-seal checksums),
 * byte 1 the chunk size and the admission policy, then the bytes of a
 * stream.  The stream is checked twice:
 *
 *   - header by header, walking the length fields: unpack and pack are
 *     inverse, and a header vfmig_hdr_validate() accepts has a known type,
 *     allowed flags, a device below ndevices where one is carried, and a
 *     length no larger than the type (or the chunk size) allows;
 *   - through a real socket with vfmig_conn_recv() and an admission hook
 *     that refuses some DEVICE_STATE frames: every frame it returns is
 *     byte for byte what vfmig_frame_encode() makes of it (so its checksum was
 *     verified and nothing was skipped), the error that ends the stream is
 *     the one the bytes at that offset call for (end of stream only at a
 *     frame boundary, header errors as vfmig_hdr_validate() says, a short
 *     payload, a checksum that does not match), and every admission is
 *     either consumed by a returned frame or released exactly once.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

const char fuzz_name[] = "frame";
const unsigned fuzz_smoke_execs = 20000;

static const uint32_t chunks[8] = { 0, 1, 4096, 65536, 1u << 20, VFMIG_MAX_CHUNK, 100, 4097 };

struct admit_state {
	unsigned every; /* refuse every n-th DEVICE_STATE (0: never) */
	unsigned seen;
	int outstanding; /* admitted, not yet released or returned */
	struct vfmig_frame_hdr last;
};

static int admit(void *arg, const struct vfmig_frame_hdr *h, char *why, size_t whylen)
{
	struct admit_state *a = arg;

	FUZZ_CHECK(h->type > 0 && h->type < VFMIG_F_NR, "admission of type %u", h->type);
	if (h->type != VFMIG_F_DEVICE_STATE)
		return 0;
	FUZZ_CHECK(a->outstanding == 0, "a second admission while one is outstanding");
	if (a->every && ++a->seen % a->every == 0) {
		snprintf(why, whylen, "refused by the harness");
		return -EPROTO;
	}
	a->outstanding++;
	a->last = *h;
	return 0;
}

static void release(void *arg, const struct vfmig_frame_hdr *h)
{
	struct admit_state *a = arg;

	if (h->type != VFMIG_F_DEVICE_STATE)
		return;
	FUZZ_CHECK(a->outstanding == 1, "release without admission (%d)", a->outstanding);
	FUZZ_CHECK(h->idx == a->last.idx && h->device == a->last.device &&
			   h->length == a->last.length,
		   "release of another frame than admitted");
	a->outstanding--;
}

/* The largest payload a valid header of this type may announce. */
static uint32_t max_len(const struct vfmig_frame_hdr *h, const struct vfmig_limits *lim)
{
	switch (h->type) {
	case VFMIG_F_HELLO:
		return VFMIG_HELLO_MAX;
	case VFMIG_F_HELLO_ACK:
	case VFMIG_F_ERROR:
		return VFMIG_ERROR_FIXED + VFMIG_MSG_MAX;
	case VFMIG_F_CHANNEL_HELLO:
		return VFMIG_CHANNEL_HELLO_LEN;
	case VFMIG_F_COMPLETE:
		return VFMIG_COMPLETE_LEN;
	case VFMIG_F_PRECOPY_DATA:
		return lim->max_chunk;
	case VFMIG_F_DEVICE_STATE:
		return (h->flags & VFMIG_FLAG_CONFIG) ? VFMIG_MAX_CONFIG : lim->max_chunk;
	default:
		return 0;
	}
}

static void check_header(const uint8_t *p, const struct vfmig_limits *lim)
{
	struct vfmig_frame_hdr h;
	uint8_t again[VFMIG_HDR_LEN];
	enum vfmig_ferr fe;
	char why[256];

	vfmig_hdr_unpack(p, &h);
	vfmig_hdr_pack(again, &h);
	FUZZ_CHECK(!memcmp(p, again, VFMIG_HDR_LEN), "pack(unpack(x)) != x");
	why[0] = '\0';
	fe = vfmig_hdr_validate(&h, lim, why, sizeof(why));
	FUZZ_CHECK(fe < VFMIG_FERR_NR, "validate returned %d", fe);
	FUZZ_CHECK(vfmig_ferr_name(fe)[0] != '?', "unnamed error %d", fe);
	if (fe) {
		FUZZ_CHECK(why[0], "refusal %s without a reason", vfmig_ferr_name(fe));
		FUZZ_CHECK(vfmig_ferr_class(fe) != VFMIG_OK, "refusal with class OK");
		return;
	}
	FUZZ_CHECK(h.magic == VFMIG_MAGIC && h.version == VFMIG_FRAME_VERSION, "bad magic passed");
	FUZZ_CHECK(h.type > 0 && h.type < VFMIG_F_NR, "type %u passed", h.type);
	FUZZ_CHECK(h.length <= max_len(&h, lim), "type %u length %u passed (max %u)", h.type,
		   h.length, max_len(&h, lim));
	FUZZ_CHECK(h.idx != VFMIG_IDX_INVALID, "idx 0xffffffff passed");
	if (h.type == VFMIG_F_PRECOPY_DATA || h.type == VFMIG_F_DEVICE_STATE ||
	    h.type == VFMIG_F_INIT_DATA_SENT || h.type == VFMIG_F_SWITCHOVER_ACK)
		FUZZ_CHECK(h.device < lim->ndevices, "device %u of %u passed", h.device,
			   lim->ndevices);
	else
		FUZZ_CHECK(h.device == 0 && h.idx == 0, "device/idx on type %u", h.type);
	FUZZ_CHECK(!(h.flags &
		     ~(h.type == VFMIG_F_DEVICE_STATE ?
			       VFMIG_FLAG_CONFIG | VFMIG_FLAG_PRECOPY | VFMIG_FLAG_INIT_SENT :
		       h.type == VFMIG_F_ERROR ? VFMIG_ERRF_RESET | VFMIG_ERRF_COMMITTED :
						 0)),
		   "flags 0x%x on type %u", h.flags, h.type);
	FUZZ_CHECK(h.type != VFMIG_F_PRECOPY_DATA || h.length, "empty PRECOPY_DATA");
	FUZZ_CHECK(h.type != VFMIG_F_DEVICE_STATE || h.length || (h.flags & VFMIG_FLAG_CONFIG),
		   "empty DEVICE_STATE data chunk");
	/* One packet kind; the INIT_SENT marker carries exactly its generation. */
	FUZZ_CHECK(h.type != VFMIG_F_DEVICE_STATE || !(h.flags & (h.flags - 1)),
		   "DEVICE_STATE flags 0x%x combine kinds", h.flags);
	FUZZ_CHECK(h.type != VFMIG_F_DEVICE_STATE || !(h.flags & VFMIG_FLAG_INIT_SENT) ||
			   h.length == VFMIG_INIT_SENT_LEN,
		   "INIT_SENT marker of %u bytes", h.length);
}

/* What the receiver must say about the bytes at @p (@left of them, > 0). */
static enum vfmig_ferr expected(const uint8_t *p, size_t left, const struct vfmig_limits *lim,
				bool *whole)
{
	struct vfmig_frame_hdr h;
	enum vfmig_ferr fe;
	char why[256];

	*whole = false;
	if (left < VFMIG_HDR_LEN)
		return VFMIG_FERR_TRUNC_HEADER;
	vfmig_hdr_unpack(p, &h);
	fe = vfmig_hdr_validate(&h, lim, why, sizeof(why));
	if (fe)
		return fe;
	if (h.length > left - VFMIG_HDR_LEN)
		return VFMIG_FERR_TRUNC_PAYLOAD;
	if (vfmig_frame_checksum(p, p + VFMIG_HDR_LEN, h.length) != h.checksum)
		return VFMIG_FERR_BAD_CHECKSUM;
	*whole = true;
	return VFMIG_FERR_NONE;
}

static void recv_all(const uint8_t *buf, size_t len, const struct vfmig_limits *lim,
		     unsigned refuse_every)
{
	static uint8_t enc[VFMIG_HDR_LEN + VFMIG_MAX_CHUNK];
	struct admit_state as = { .every = refuse_every };
	struct vfmig_admit ad = { .admit = admit, .release = release, .arg = &as };
	atomic_bool abort_flag = false;
	struct vfmig_conn c;
	int sv[2], sz = 1 << 20;
	size_t off = 0;

	FUZZ_CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair: %m");
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	FUZZ_CHECK(!len || send(sv[0], buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len,
		   "send %zu: %m", len);
	shutdown(sv[0], SHUT_WR);
	FUZZ_CHECK(!vfmig_conn_init(&c, sv[1], 1, NULL), "conn_init");
	/* Everything is already in the socket: the timeout is never reached. */
	vfmig_conn_bound(&c, &abort_flag, 10000);
	for (;;) {
		struct vfmig_frame f;
		enum vfmig_ferr fe, want;
		bool whole, admitted;
		char why[256];
		int err_no;

		why[0] = '\0';
		fe = vfmig_conn_recv(&c, lim, &ad, &f, &err_no, why, sizeof(why));
		if (off == len) {
			FUZZ_CHECK(fe == VFMIG_FERR_EOF, "at the end: %s", vfmig_ferr_name(fe));
			break;
		}
		want = expected(buf + off, len - off, lim, &whole);
		admitted = want == VFMIG_FERR_NONE || want == VFMIG_FERR_TRUNC_PAYLOAD ||
			   want == VFMIG_FERR_BAD_CHECKSUM;
		if (fe == VFMIG_FERR_REFUSED) {
			FUZZ_CHECK(admitted && f.h.length == 0 && !f.payload,
				   "refused where %s was due", vfmig_ferr_name(want));
			FUZZ_CHECK(err_no == EPROTO && why[0], "refusal without its reason");
			break;
		}
		FUZZ_CHECK(fe == want, "offset %zu of %zu: got %s (%s), expected %s", off, len,
			   vfmig_ferr_name(fe), why, vfmig_ferr_name(want));
		if (fe) {
			FUZZ_CHECK(!f.payload && f.h.length == 0, "error %s left a payload",
				   vfmig_ferr_name(fe));
			FUZZ_CHECK(why[0], "error %s without a reason", vfmig_ferr_name(fe));
			break;
		}
		FUZZ_CHECK(whole, "a frame that is not whole was returned");
		FUZZ_CHECK(!f.h.length == !f.payload, "payload %p for length %u", (void *)f.payload,
			   f.h.length);
		FUZZ_CHECK(vfmig_frame_encode(enc, f.h.type, f.h.flags, f.h.device, f.h.idx,
					      f.payload,
					      f.h.length) == VFMIG_HDR_LEN + (size_t)f.h.length &&
				   !memcmp(enc, buf + off, VFMIG_HDR_LEN + (size_t)f.h.length),
			   "frame at %zu is not what was sent", off);
		if (f.h.type == VFMIG_F_DEVICE_STATE)
			as.outstanding--; /* consumed by the caller */
		off += VFMIG_HDR_LEN + (size_t)f.h.length;
		vfmig_frame_free(&f);
		FUZZ_CHECK(!f.payload, "frame_free left the payload");
	}
	FUZZ_CHECK(as.outstanding == 0, "%d admission(s) never released", as.outstanding);
	close(sv[0]);
	vfmig_conn_destroy(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz z = { data, size };
	uint8_t b0 = fz_u8(&z), b1 = fz_u8(&z);
	struct vfmig_limits lim = { .ndevices = b0 & 0x3f, .max_chunk = chunks[b1 & 7] };
	size_t len = MIN(z.n, (size_t)FUZZ_MAX_INPUT);
	uint8_t *buf = malloc(len ? len : 1);

	memcpy(buf, z.p, len);
	if (b0 & 0x80)
		fuzz_reseal(buf, len);
	for (size_t off = 0; len - off >= VFMIG_HDR_LEN;) {
		check_header(buf + off, &lim);
		/* size_t first: 32 + a u32 length wraps in 32 bits */
		off += VFMIG_HDR_LEN + (size_t)get_le32(buf + off + 20);
		if (off > len)
			break;
	}
	recv_all(buf, len, &lim, (b1 >> 3) & 7);
	free(buf);
	return 0;
}
