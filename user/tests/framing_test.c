// SPDX-License-Identifier: GPL-2.0-only
/*
 * framing_test - the frame layout on the wire (little-endian, 32-byte
 * header, checksum over header and payload) and its round trip through a
 * socket.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "kselftest_harness.h"
#include "test_util.h"

TEST(framing_header_layout_is_little_endian)
{
	uint8_t buf[VFMIG_HDR_LEN + 4];
	const uint8_t payload[4] = { 1, 2, 3, 4 };
	size_t n = vfmig_frame_encode(buf, VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, 0x01020304,
				      0x0a0b0c0d, payload, 4);

	ASSERT_EQ(VFMIG_HDR_LEN + 4, n);
	/* "VFMG" */
	EXPECT_EQ('V', buf[0]);
	EXPECT_EQ('F', buf[1]);
	EXPECT_EQ('M', buf[2]);
	EXPECT_EQ('G', buf[3]);
	EXPECT_EQ(1, buf[4]);
	EXPECT_EQ(0, buf[5]);
	EXPECT_EQ(VFMIG_F_DEVICE_STATE, buf[6]);
	EXPECT_EQ(1, buf[8]);
	EXPECT_EQ(0x04, buf[12]);
	EXPECT_EQ(0x01, buf[15]);
	EXPECT_EQ(0x0d, buf[16]);
	EXPECT_EQ(0x0a, buf[19]);
	EXPECT_EQ(4, buf[20]);
	EXPECT_EQ(0, memcmp(buf + VFMIG_HDR_LEN, payload, 4));
}

TEST(framing_pack_unpack_round_trip)
{
	struct vfmig_frame_hdr h = {
		.magic = VFMIG_MAGIC, .version = 1, .type = 9, .flags = 1,
		.device = 7, .idx = 0xfffffffe, .length = 12345, .checksum = 0x1122334455667788ull,
	}, g;
	uint8_t b[VFMIG_HDR_LEN];

	vfmig_hdr_pack(b, &h);
	vfmig_hdr_unpack(b, &g);
	EXPECT_EQ(0, memcmp(&h, &g, sizeof(h)));
}

TEST(framing_checksum_covers_header_and_payload)
{
	uint8_t a[VFMIG_HDR_LEN + 8], b[VFMIG_HDR_LEN + 8];
	const char p[8] = "abcdefg";

	vfmig_frame_encode(a, VFMIG_F_PRECOPY_DATA, 0, 0, 5, p, 8);
	vfmig_frame_encode(b, VFMIG_F_PRECOPY_DATA, 0, 0, 6, p, 8);
	EXPECT_NE(get_le64(a + 24), get_le64(b + 24)); /* idx differs */
	vfmig_frame_encode(b, VFMIG_F_PRECOPY_DATA, 0, 0, 5, "abcdefh", 8);
	EXPECT_NE(get_le64(a + 24), get_le64(b + 24)); /* payload differs */
	vfmig_frame_encode(b, VFMIG_F_PRECOPY_DATA, 0, 0, 5, p, 8);
	EXPECT_EQ(get_le64(a + 24), get_le64(b + 24));
}

struct wr {
	struct vfmig_conn *c;
	uint8_t *big;
	int ret;
};

static void *writer(void *arg)
{
	struct wr *x = arg;

	x->ret = vfmig_send_frame(x->c, VFMIG_F_DEVICE_STATE, 0, 1, 3, x->big, 300000);
	if (!x->ret)
		x->ret = vfmig_send_frame(x->c, VFMIG_F_PING, 0, 0, 0, NULL, 0);
	if (!x->ret)
		x->ret = vfmig_send_frame(x->c, VFMIG_F_DEVICE_STATE, VFMIG_FLAG_CONFIG, 0, 9, NULL,
					  0);
	return NULL;
}

TEST(framing_frames_round_trip_over_a_socket)
{
	struct vfmig_channel_stats st = { 0 };
	struct vfmig_conn c;
	struct vfmig_frame f;
	uint8_t *big = malloc(300000);
	int sv[2];
	pthread_t t;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, vfmig_conn_init(&c, sv[0], 1, &st));
	for (int i = 0; i < 300000; i++)
		big[i] = (uint8_t)(i * 31);
	/* A writer thread: the payload is larger than the socket buffer. */
	struct wr w = { &c, big, -1 };

	ASSERT_EQ(0, pthread_create(&t, NULL, writer, &w));
	ASSERT_EQ(VFMIG_FERR_NONE, raw_recv(sv[1], 2, 1 << 20, &f));
	EXPECT_EQ(VFMIG_F_DEVICE_STATE, f.h.type);
	EXPECT_EQ(1, f.h.device);
	EXPECT_EQ(3, f.h.idx);
	ASSERT_EQ(300000, f.h.length);
	EXPECT_EQ(0, memcmp(f.payload, big, 300000));
	vfmig_frame_free(&f);
	ASSERT_EQ(VFMIG_FERR_NONE, raw_recv_any(sv[1], 2, 1 << 20, &f));
	EXPECT_EQ(VFMIG_F_PING, f.h.type);
	EXPECT_EQ(NULL, f.payload);
	ASSERT_EQ(VFMIG_FERR_NONE, raw_recv(sv[1], 2, 1 << 20, &f));
	EXPECT_EQ(VFMIG_FLAG_CONFIG, f.h.flags);
	EXPECT_EQ(0, f.h.length);
	pthread_join(t, NULL);
	EXPECT_EQ(0, w.ret);
	EXPECT_EQ(300000, st.bytes);
	EXPECT_EQ(2, st.packets);
	vfmig_conn_shutdown(&c);
	/* Clean end of stream at a frame boundary is not an error class of its own. */
	EXPECT_EQ(VFMIG_FERR_EOF, raw_recv(sv[1], 2, 1 << 20, &f));
	vfmig_conn_destroy(&c);
	close(sv[1]);
	free(big);
}

TEST(framing_send_to_closed_peer_fails_without_sigpipe)
{
	struct vfmig_conn c;
	int sv[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, vfmig_conn_init(&c, sv[0], 0, NULL));
	close(sv[1]);
	EXPECT_EQ(-EPIPE, vfmig_send_frame(&c, VFMIG_F_PING, 0, 0, 0, NULL, 0));
	vfmig_conn_destroy(&c);
}

TEST(framing_recv_timeout_is_reported)
{
	struct vfmig_limits lim = { 1, 4096 };
	struct vfmig_frame f;
	char why[128];
	int sv[2], e;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	EXPECT_EQ(VFMIG_FERR_TIMEOUT, vfmig_recv_frame(sv[1], &lim, 10, &f, &e, why, sizeof(why)));
	EXPECT_EQ(ETIMEDOUT, e);
	close(sv[0]);
	close(sv[1]);
}

TEST(framing_address_parsing)
{
	struct vfmig_addr a;

	ASSERT_EQ(0, vfmig_addr_parse("unix:/tmp/x.sock", &a, NULL));
	EXPECT_EQ(AF_UNIX, a.family);
	EXPECT_STREQ("/tmp/x.sock", a.path);
	ASSERT_EQ(0, vfmig_addr_parse("/run/y", &a, NULL));
	EXPECT_EQ(AF_UNIX, a.family);
	ASSERT_EQ(0, vfmig_addr_parse("host.example:4444", &a, NULL));
	EXPECT_STREQ("host.example", a.host);
	EXPECT_STREQ("4444", a.port);
	ASSERT_EQ(0, vfmig_addr_parse("tcp:[::1]:9", &a, NULL));
	EXPECT_EQ(AF_INET6, a.family);
	EXPECT_STREQ("::1", a.host);
	ASSERT_EQ(0, vfmig_addr_parse(":7000", &a, NULL));
	EXPECT_STREQ("", a.host);
	EXPECT_EQ(-EINVAL, vfmig_addr_parse("::1:80", &a, NULL));
	EXPECT_EQ(-EINVAL, vfmig_addr_parse("host:0", &a, NULL));
	EXPECT_EQ(-EINVAL, vfmig_addr_parse("host:65536", &a, NULL));
	EXPECT_EQ(-EINVAL, vfmig_addr_parse("host", &a, NULL));
	EXPECT_EQ(-EINVAL, vfmig_addr_parse("unix:", &a, NULL));
}

TEST(framing_tcp_loopback_connects)
{
	struct vfmig_addr a;
	struct vfmig_error e;
	int l, c, s;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[16];

	/* Port 0 is refused by the parser; bind an ephemeral port by hand. */
	EXPECT_EQ(-EINVAL, vfmig_addr_parse("127.0.0.1:0", &a, NULL));
	ASSERT_EQ(0, vfmig_addr_parse("127.0.0.1:1", &a, NULL));
	snprintf(a.port, sizeof(a.port), "0");
	l = vfmig_listen(&a, &e);
	ASSERT_LE(0, l);
	ASSERT_EQ(0, getsockname(l, (struct sockaddr *)&ss, &sl));
	snprintf(port, sizeof(port), "%u", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	snprintf(a.port, sizeof(a.port), "%s", port);
	c = vfmig_connect(&a, 1000, &e);
	ASSERT_LE(0, c);
	s = vfmig_accept(l, 1000, -1);
	ASSERT_LE(0, s);
	close(c);
	close(s);
	close(l);
}

/*
 * A COMMIT whose send failed part way, followed by the sender's last word
 * (ERROR): the receiver must never see a COMMIT in those bytes (that is why
 * a source whose COMMIT send failed may roll back).
 */
TEST(framing_commit_prefix_then_error_is_never_a_commit)
{
	struct vfmig_limits lim = { .ndevices = 1, .max_chunk = 4096 };
	uint8_t commit[VFMIG_HDR_LEN], err[VFMIG_HDR_LEN + 64], msg[32] = "cancelled";

	vfmig_frame_encode(commit, VFMIG_F_COMMIT, 0, 0, 0, NULL, 0);
	vfmig_frame_encode(err, VFMIG_F_ERROR, 0, 0, 0, msg, sizeof(msg));
	for (size_t cut = 1; cut < VFMIG_HDR_LEN; cut++) {
		struct vfmig_frame f;
		enum vfmig_ferr fe;
		char why[256];
		int sv[2], e;

		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
		ASSERT_EQ(0, raw_send_bytes(sv[0], commit, cut));
		ASSERT_EQ(0, raw_send_bytes(sv[0], err, VFMIG_HDR_LEN + sizeof(msg)));
		close(sv[0]);
		fe = vfmig_recv_frame(sv[1], &lim, 1000, &f, &e, why, sizeof(why));
		EXPECT_NE(VFMIG_FERR_NONE, fe)
		TH_LOG("cut %zu read a frame of type %u", cut, f.h.type);
		if (!fe)
			vfmig_frame_free(&f);
		close(sv[1]);
	}
}

/* What a connection asks of the kernel: timeouts, keepalive, TCP_USER_TIMEOUT. */
TEST(framing_tcp_socket_options_bound_a_dead_peer)
{
	struct vfmig_addr a;
	struct timeval tv;
	int lfd, fd, v;
	socklen_t l;

	memset(&a, 0, sizeof(a));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, lfd);
	{
		struct sockaddr_in sin = { .sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		l = sizeof(sin);
		ASSERT_EQ(0, bind(lfd, (struct sockaddr *)&sin, sizeof(sin)));
		ASSERT_EQ(0, listen(lfd, 1));
		ASSERT_EQ(0, getsockname(lfd, (struct sockaddr *)&sin, &l));
		snprintf(a.host, sizeof(a.host), "127.0.0.1");
		snprintf(a.port, sizeof(a.port), "%u", ntohs(sin.sin_port));
		a.family = AF_INET;
	}
	fd = vfmig_connect(&a, 8000, NULL);
	ASSERT_LE(0, fd);
	l = sizeof(v);
	ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &l));
	EXPECT_EQ(1, v);
	ASSERT_EQ(0, getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &l));
	EXPECT_EQ(8000, v);
	ASSERT_EQ(0, getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &l));
	EXPECT_EQ(2, v);
	ASSERT_EQ(0, getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l));
	EXPECT_EQ(1, v);
	l = sizeof(tv);
	ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &l));
	EXPECT_EQ(8, tv.tv_sec);
	ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &l));
	EXPECT_EQ(8, tv.tv_sec);
	close(fd);
	close(lfd);
}

TEST_HARNESS_MAIN
