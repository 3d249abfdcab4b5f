// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_wire.c - every control payload decoder of wire.c and the
 * destination's handshake policy.
 *
 * Input: byte 0 selects the decoder, the rest is its payload:
 *
 *   0  48 bytes describing a destination (devices, options, limits), then a
 *      HELLO (vfmig_hello_decode) and vfmig_hello_check() of it against that
 *      destination; decode(encode(decode(x))) == decode(x);
 *      a HELLO the check accepts keeps every promise of transport-format.rst
 *   1  ERROR / HELLO_ACK reports (vfmig_report_decode): the message is as
 *      long as the payload says, terminated, free of control bytes, and
 *      encodes back to the same payload length
 *   2  CHANNEL_HELLO, 3 COMPLETE: encode(decode(x)) == x (reserved bytes
 *      zero)
 *
 * Payloads are copied to buffers of their exact length, so a decoder that
 * reads one byte too far is an ASan report.
 */
#include <string.h>

#include "fuzz.h"

const char fuzz_name[] = "wire";
const unsigned fuzz_smoke_execs = 50000;

static const char *const compats[4] = { "fake:8192", "fake:4096", "pci:10de:2236", "" };
static const char *const labels[4] = { "", "nic0", "gpu1", "nic0" };

/* A destination built from @z: its devices, options and limits. */
struct local {
	struct vfmig_device dev[VFMIG_MAX_DEVICES];
	struct vfmig_device *devs[VFMIG_MAX_DEVICES];
	struct vfmig_options o;
	struct vfmig_local l;
};

static void local_from(struct fz *z, struct local *L)
{
	uint8_t b = fz_u8(z), c = fz_u8(z);

	memset(L, 0, sizeof(*L));
	vfmig_options_init(&L->o);
	L->l.ndevices = (b & 0x1f) + 1;
	L->l.devs = L->devs;
	L->l.o = &L->o;
	L->o.multifd = (enum vfmig_onoff)((b >> 5) % 3);
	L->o.switchover_ack = (enum vfmig_onoff)(c % 3);
	L->o.load_config_after_iter = (enum vfmig_onoff)((c >> 2) % 3);
	L->o.precopy_reinit = (enum vfmig_onoff)((c >> 4) % 3);
	L->o.channels = fz_u8(z) % 70;
	L->o.max_channels = fz_u8(z) % 70;
	L->o.max_chunk = fz_u32(z);
	L->o.max_queued_bytes = (uint64_t)fz_u32(z) << (fz_u8(z) & 15);
	for (unsigned i = 0; i < L->l.ndevices; i++) {
		uint8_t d = fz_u8(z);

		L->devs[i] = &L->dev[i];
		snprintf(L->dev[i].name, sizeof(L->dev[i].name), "dev%u", i);
		snprintf(L->dev[i].compat, sizeof(L->dev[i].compat), "%s", compats[d & 3]);
		snprintf(L->dev[i].label, sizeof(L->dev[i].label), "%s", labels[(d >> 2) & 3]);
		L->dev[i].flags = (d >> 4) & 7;
		L->dev[i].config_size = (d & 0x80) ? 256 : 0;
	}
}

static void check_hello_equal(const struct vfmig_hello *a, const struct vfmig_hello *b)
{
	FUZZ_CHECK(a->proto_version == b->proto_version &&
			   a->min_proto_version == b->min_proto_version &&
			   a->session_id == b->session_id && a->options == b->options &&
			   a->nchannels == b->nchannels && a->chunk_size == b->chunk_size &&
			   a->ndevices == b->ndevices,
		   "HELLO fields differ after a round trip");
	for (unsigned i = 0; i < a->ndevices; i++) {
		FUZZ_CHECK(a->dev[i].mig_flags == b->dev[i].mig_flags &&
				   a->dev[i].stop_copy_estimate == b->dev[i].stop_copy_estimate &&
				   a->dev[i].config_size == b->dev[i].config_size &&
				   !strcmp(a->dev[i].compat, b->dev[i].compat) &&
				   !strcmp(a->dev[i].label, b->dev[i].label),
			   "HELLO device %u differs after a round trip", i);
	}
}

#define LOCAL_LEN 48

static void fuzz_hello(const uint8_t *in, size_t inlen)
{
	static struct vfmig_hello h, h2;
	static struct local L;
	static uint8_t enc[VFMIG_HELLO_MAX];
	struct fz lz = { in, LOCAL_LEN };
	enum vfmig_errclass cls;
	uint32_t agreed = 0xdeadbeef;
	const uint8_t *p;
	char why[256];
	size_t n, len;

	if (inlen < LOCAL_LEN)
		return;
	p = in + LOCAL_LEN;
	len = inlen - LOCAL_LEN;
	why[0] = '\0';
	if (vfmig_hello_decode(p, len, &h, why, sizeof(why))) {
		FUZZ_CHECK(why[0], "HELLO refused without a reason");
		return;
	}
	FUZZ_CHECK(h.ndevices >= 1 && h.ndevices <= VFMIG_MAX_DEVICES, "%u devices", h.ndevices);
	FUZZ_CHECK(len == VFMIG_HELLO_FIXED + (size_t)h.ndevices * VFMIG_HELLO_DEV_LEN,
		   "HELLO of %zu bytes for %u devices", len, h.ndevices);
	for (unsigned i = 0; i < h.ndevices; i++) {
		FUZZ_CHECK(memchr(h.dev[i].compat, 0, VFMIG_COMPAT_LEN) &&
				   memchr(h.dev[i].label, 0, VFMIG_LABEL_LEN),
			   "device %u: unterminated string", i);
		for (const char *c = h.dev[i].label; *c; c++)
			FUZZ_CHECK(*c > 0x20 && *c < 0x7f, "device %u: label byte 0x%02x", i,
				   (unsigned char)*c);
	}
	n = vfmig_hello_encode(enc, sizeof(enc), &h);
	FUZZ_CHECK(n == len, "HELLO encodes to %zu bytes, decoded from %zu", n, len);
	FUZZ_CHECK(!vfmig_hello_decode(enc, n, &h2, why, sizeof(why)), "re-decode: %s", why);
	check_hello_equal(&h, &h2);

	/* The destination's verdict on it. */
	local_from(&lz, &L);
	why[0] = '\0';
	cls = vfmig_hello_check(&h, &L.l, &agreed, why, sizeof(why));
	if (cls != VFMIG_OK) {
		FUZZ_CHECK(cls == VFMIG_ERR_INCOMPATIBLE, "class %d", cls);
		FUZZ_CHECK(why[0], "refusal without a reason");
		FUZZ_CHECK(agreed == 0xdeadbeef, "agreed options written on a refusal");
		return;
	}
	FUZZ_CHECK(h.min_proto_version <= VFMIG_PROTO_VERSION &&
			   h.proto_version >= VFMIG_PROTO_MIN_VERSION,
		   "protocol %u..%u accepted", h.min_proto_version, h.proto_version);
	FUZZ_CHECK(!(h.options & ~VFMIG_OPT_ALL) && !(agreed & ~VFMIG_OPT_ALL) &&
			   (agreed & h.options &
			    ~(VFMIG_OPT_PRECOPY_REINIT | VFMIG_OPT_PRECOPY_MULTIFD)) ==
				   (h.options &
				    ~(VFMIG_OPT_PRECOPY_REINIT | VFMIG_OPT_PRECOPY_MULTIFD)),
		   "options 0x%x agreed as 0x%x", h.options, agreed);
	/* PRECOPY_REINIT: kept unless the destination declines it (precopy_reinit off). */
	FUZZ_CHECK(!(agreed & VFMIG_OPT_PRECOPY_REINIT) ==
			   (!(h.options & VFMIG_OPT_PRECOPY_REINIT) ||
			    L.o.precopy_reinit == VFMIG_OFF),
		   "PRECOPY_REINIT 0x%x agreed as 0x%x (precopy_reinit %d)", h.options, agreed,
		   L.o.precopy_reinit);
	/* PRECOPY_MULTIFD: only with MULTIFD, kept unless declined (precopy_multifd off). */
	FUZZ_CHECK(!(h.options & VFMIG_OPT_PRECOPY_MULTIFD) || (h.options & VFMIG_OPT_MULTIFD),
		   "PRECOPY_MULTIFD without MULTIFD accepted (0x%x)", h.options);
	FUZZ_CHECK(!(agreed & VFMIG_OPT_PRECOPY_MULTIFD) ==
			   (!(h.options & VFMIG_OPT_PRECOPY_MULTIFD) ||
			    L.o.precopy_multifd == VFMIG_OFF),
		   "PRECOPY_MULTIFD 0x%x agreed as 0x%x", h.options, agreed);
	FUZZ_CHECK((agreed & ~h.options) == 0 ||
			   (agreed & ~h.options) == VFMIG_OPT_LOAD_CONFIG_AFTER_ITER,
		   "the destination added options 0x%x", agreed & ~h.options);
	FUZZ_CHECK(h.ndevices == L.l.ndevices, "device count %u vs %u", h.ndevices, L.l.ndevices);
	if (h.options & VFMIG_OPT_MULTIFD)
		FUZZ_CHECK(h.nchannels >= 1 && h.nchannels <= VFMIG_MAX_CHANNELS &&
				   h.nchannels <= L.o.max_channels &&
				   (!L.o.channels || L.o.channels == h.nchannels) &&
				   L.o.multifd != VFMIG_OFF,
			   "%u channels accepted", h.nchannels);
	else
		FUZZ_CHECK(h.nchannels == 0 && L.o.multifd != VFMIG_ON,
			   "%u channels without multifd", h.nchannels);
	FUZZ_CHECK(h.chunk_size >= VFMIG_MIN_CHUNK && h.chunk_size <= VFMIG_MAX_CHUNK &&
			   h.chunk_size <= L.o.max_chunk &&
			   L.o.max_queued_bytes >= 2ull * h.chunk_size,
		   "chunk size %u accepted", h.chunk_size);
	for (unsigned i = 0; i < h.ndevices; i++) {
		const struct vfmig_device *d = L.devs[i];

		FUZZ_CHECK(!strcmp(h.dev[i].compat, d->compat) &&
				   h.dev[i].config_size == d->config_size &&
				   (d->flags & VFMIG_MIG_STOP_COPY) &&
				   (h.ndevices == 1 || (d->flags & VFMIG_MIG_P2P)) &&
				   (!h.dev[i].label[0] || !d->label[0] ||
				    !strcmp(h.dev[i].label, d->label)),
			   "device %u accepted against '%s'", i, d->compat);
	}
}

static void fuzz_report(const uint8_t *p, size_t len)
{
	static uint8_t enc[VFMIG_ERROR_FIXED + VFMIG_MSG_MAX];
	struct vfmig_report r;
	struct vfmig_frame f = { 0 };
	size_t n;

	/* The frame's type rule guarantees 16..272 bytes; anything else never reaches it. */
	if (len < VFMIG_ERROR_FIXED || len > VFMIG_ERROR_FIXED + VFMIG_MSG_MAX)
		return;
	f.h.type = VFMIG_F_ERROR;
	f.h.length = (uint32_t)len;
	f.payload = malloc(len);
	memcpy(f.payload, p, len);
	memset(&r, 0x55, sizeof(r));
	vfmig_report_decode(&f, &r);
	FUZZ_CHECK(r.a == get_le32(p) && r.b == get_le32(p + 4) && r.c == get_le32(p + 8),
		   "report fields");
	n = len - VFMIG_ERROR_FIXED;
	FUZZ_CHECK(r.msg[n] == '\0' && strlen(r.msg) == n, "message of %zu bytes is %zu long", n,
		   strlen(r.msg));
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)r.msg[i] >= 0x20 && r.msg[i] != 0x7f,
			   "control byte 0x%02x in a message", (unsigned char)r.msg[i]);
	FUZZ_CHECK(vfmig_report_encode(enc, r.a, r.b, r.c, r.msg) == len, "report re-encodes");
	FUZZ_CHECK(!memcmp(enc, p, 12) && get_le32(enc + 12) == 0, "report header re-encodes");
	FUZZ_CHECK(vfmig_errclass_name(r.a < VFMIG_ERR_NR ? (enum vfmig_errclass)r.a :
							    VFMIG_ERR_INTERNAL) != NULL,
		   "class name");
	free(f.payload);
}

static void fuzz_channel_hello(const uint8_t *p, size_t len)
{
	uint8_t *in, out[VFMIG_CHANNEL_HELLO_LEN];
	struct vfmig_channel_hello ch;

	if (len != VFMIG_CHANNEL_HELLO_LEN)
		return;
	in = malloc(len);
	memcpy(in, p, len);
	vfmig_channel_hello_decode(in, &ch);
	vfmig_channel_hello_encode(out, &ch);
	FUZZ_CHECK(!memcmp(in, out, len), "CHANNEL_HELLO round trip");
	free(in);
}

static void fuzz_complete(const uint8_t *p, size_t len)
{
	uint8_t *in, out[VFMIG_COMPLETE_LEN];
	struct vfmig_complete c;

	if (len != VFMIG_COMPLETE_LEN)
		return;
	in = malloc(len);
	memcpy(in, p, len);
	vfmig_complete_decode(in, &c);
	vfmig_complete_encode(out, &c);
	FUZZ_CHECK(!memcmp(in, out, 24) && get_le64(out + 24) == 0, "COMPLETE round trip");
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;
	size_t len;

	if (!size || size > FUZZ_MAX_INPUT)
		return 0;
	len = size - 1;
	/* An exact-size copy: ASan catches a read past the payload. */
	p = malloc(len ? len : 1);
	memcpy(p, data + 1, len);
	switch (data[0] & 3) {
	case 0:
		fuzz_hello(p, len);
		break;
	case 1:
		fuzz_report(p, len);
		break;
	case 2:
		fuzz_channel_hello(p, len);
		break;
	case 3:
		fuzz_complete(p, len);
		break;
	}
	free(p);
	return 0;
}
