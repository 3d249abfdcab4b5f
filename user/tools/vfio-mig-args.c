// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-mig-args.c - the command line of vfio-mig: --help and the options,
 * each checked against its range with an error that names it.
 *
 * Locks: none (runs before any thread).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vfmig.h"
#include "vfio-mig.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void usage(FILE *f)
{
	fprintf(f,
		"Usage: vfio-mig send    [options] --to ADDR DEVICE...\n"
		"       vfio-mig recv    [options] --listen ADDR DEVICE...\n"
		"       vfio-mig migrate [options] [--listen ADDR] SRC=DST...\n"
		"       vfio-mig info    [--json] DEVICE...\n"
		"\n"
		"Migrate VFIO devices that implement the migration uAPI v2.\n"
		"DEVICE is an mdev UUID, a sysfs device path, a PCI address, or fake:SIZE (testing),\n"
		"optionally followed by @LABEL: when both sides label a device, the labels must\n"
		"match (a device list in a different order on the two hosts is refused).\n"
		"ADDR is unix:/path, /path, host:port or [v6addr]:port.\n"
		"\n"
		"Options:\n"
		"  -T, --to ADDR                destination address (send)\n"
		"  -l, --listen ADDR            listening address (recv; migrate: default a private\n"
		"                               UNIX socket)\n"
		"  -m, --multifd on|off|auto    device data over multifd channels (default auto:\n"
		"                               on when --channels > 0; recv: accept the source's)\n"
		"      --precopy-multifd on|off precopy data over the multifd channels too, every\n"
		"                               device read in parallel (default on with multifd;\n"
		"                               off: device after device on the main channel)\n"
		"  -c, --channels N             multifd channels, 0..64 (default 2; send: 0 turns\n"
		"                               multifd off; recv: 0 accepts the source's number)\n"
		"  -a, --switchover-ack on|off  wait until the destination loaded every device's\n"
		"                               initial bytes (default on; recv: accept the source's)\n"
		"  -d, --downtime-limit MS      switch over when the estimated STOP_COPY time is\n"
		"                               under MS milliseconds (default 300)\n"
		"  -i, --max-iterations N       switch over after N precopy iterations (default 30)\n"
		"  -P, --max-precopy-time SEC   switch over after SEC seconds of precopy, 0 for no\n"
		"                               limit (default 600); missing switchover-acks then\n"
		"                               have --timeout to arrive\n"
		"  -Q, --max-queued-bytes SIZE  destination reorder buffer budget (default 256M)\n"
		"  -k, --chunk-size SIZE        device read size, 4K..16M (default 1M)\n"
		"  -C, --max-channels N         recv: refuse a source asking for more multifd\n"
		"                               channels (default 16)\n"
		"  -K, --max-chunk-size SIZE    recv: refuse a source asking for larger chunks\n"
		"                               (default 4M); the destination holds at most\n"
		"                               --max-queued-bytes + one chunk per device\n"
		"  -L, --load-config-after-iter[=on|off]\n"
		"                               load every config only after all device data\n"
		"TLS (TLS 1.3 on every channel; the source is the client, recv the server):\n"
		"      --tls-psk FILE           pre-shared keys, QEMU's keys.psk format\n"
		"                               (identity:hexkey lines; mode 0600)\n"
		"      --tls-psk-identity NAME  send: the identity to use (default qemu); recv:\n"
		"                               accept only this one\n"
		"      --tls-creds DIR          X.509 in QEMU's layout: ca-cert.pem, server-cert.pem,\n"
		"                               server-key.pem, client-cert.pem, client-key.pem;\n"
		"                               both ends are always verified\n"
		"      --tls-hostname NAME      send: the name the destination's certificate must\n"
		"                               carry (default: the host of --to)\n"
		"      --tls-allow-dn DN        recv: accept only client certificates with this\n"
		"                               subject DN (RFC 4514; repeat for more)\n"
		"      --insecure               recv: listen on a non-loopback TCP address without\n"
		"                               TLS: anyone who can connect first can feed the\n"
		"                               device and drive it; only on a network you trust\n"
		"  -t, --timeout SEC            fail when the peer (or the network) is silent for SEC\n"
		"                               seconds, in every phase (default 30); device calls\n"
		"                               themselves cannot be interrupted\n"
		"  -j, --json                   print statistics as JSON on stdout\n"
		"  -q, --quiet                  no progress line, no statistics\n"
		"  -v, --verbose                more messages (repeat for debug)\n"
		"  -h, --help                   this help\n"
		"  -V, --version                print the version\n"
		"\n"
		"Exit codes: 0 ok, 1 internal, 2 usage, 3 device, 4 transport, 5 protocol,\n"
		"6 incompatible peer, 7 timeout, 8 cancelled, 9 reorder budget, 10 peer failed,\n"
		"14 authentication failed (TLS: key, certificate, name, TLS on one side only),\n"
		"11 rollback failed; on 1-10 the source devices run again and the destination\n"
		"devices are reset, on 11 a device could not be put back.  12 outcome unknown: COMMIT was sent and the destination did\n"
		"not confirm; the source devices stay stopped with their state.  13 committed,\n"
		"destination incomplete: the destination owns the state but a device did not\n"
		"start; nothing was reset, the source devices stay stopped.\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (!strcmp(end, "iB") || !strcmp(end, "B"))
		end += strlen(end);
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_onoff(const char *s, bool allow_auto, enum vfmig_onoff *out)
{
	if (!strcasecmp(s, "on") || !strcasecmp(s, "yes") || !strcmp(s, "1"))
		*out = VFMIG_ON;
	else if (!strcasecmp(s, "off") || !strcasecmp(s, "no") || !strcmp(s, "0"))
		*out = VFMIG_OFF;
	else if (allow_auto && !strcasecmp(s, "auto"))
		*out = VFMIG_AUTO;
	else
		return -1;
	return 0;
}

static int bad(const char *opt, const char *val)
{
	fprintf(stderr, "vfio-mig: invalid value '%s' for %s (see --help)\n", val, opt);
	return -1;
}

int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option lo[] = {
		{ "to", required_argument, NULL, 'T' },
		{ "listen", required_argument, NULL, 'l' },
		{ "multifd", required_argument, NULL, 'm' },
		{ "channels", required_argument, NULL, 'c' },
		{ "switchover-ack", required_argument, NULL, 'a' },
		{ "downtime-limit", required_argument, NULL, 'd' },
		{ "max-iterations", required_argument, NULL, 'i' },
		{ "max-queued-bytes", required_argument, NULL, 'Q' },
		{ "chunk-size", required_argument, NULL, 'k' },
		{ "max-channels", required_argument, NULL, 'C' },
		{ "max-chunk-size", required_argument, NULL, 'K' },
		{ "max-precopy-time", required_argument, NULL, 'P' },
		{ "load-config-after-iter", optional_argument, NULL, 'L' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "tls-psk", required_argument, NULL, 1 },
		{ "tls-psk-identity", required_argument, NULL, 2 },
		{ "tls-creds", required_argument, NULL, 3 },
		{ "tls-hostname", required_argument, NULL, 4 },
		{ "tls-allow-dn", required_argument, NULL, 5 },
		{ "insecure", no_argument, NULL, 6 },
		{ "precopy-multifd", required_argument, NULL, 7 },
		{ NULL, 0, NULL, 0 },
	};
	bool channels_set = false;
	uint64_t v;
	unsigned u;
	int c;

	vfmig_options_init(&a->o);
	while ((c = getopt_long(argc, argv, "T:l:m:c:a:d:i:Q:k:C:K:P:L::t:jqvhV", lo, NULL)) !=
	       -1) {
		switch (c) {
		case 'T':
			a->to = optarg;
			break;
		case 'l':
			a->listen = optarg;
			break;
		case 'm':
			if (parse_onoff(optarg, true, &a->o.multifd))
				return bad("--multifd", optarg);
			break;
		case 'c':
			if (parse_uint(optarg, 0, VFMIG_MAX_CHANNELS, &a->o.channels))
				return bad("--channels", optarg);
			channels_set = true;
			break;
		case 'a':
			if (parse_onoff(optarg, true, &a->o.switchover_ack))
				return bad("--switchover-ack", optarg);
			break;
		case 'd':
			if (parse_uint(optarg, 0, 3600000, &a->o.downtime_limit_ms))
				return bad("--downtime-limit", optarg);
			break;
		case 'i':
			if (parse_uint(optarg, 1, 1000000, &a->o.max_iterations))
				return bad("--max-iterations", optarg);
			break;
		case 'Q':
			if (parse_size(optarg, &v) || v < 2 * VFMIG_MIN_CHUNK)
				return bad("--max-queued-bytes", optarg);
			a->o.max_queued_bytes = v;
			break;
		case 'k':
			if (parse_size(optarg, &v) || v < VFMIG_MIN_CHUNK || v > VFMIG_MAX_CHUNK)
				return bad("--chunk-size", optarg);
			a->o.chunk_size = (uint32_t)v;
			break;
		case 'C':
			if (parse_uint(optarg, 1, VFMIG_MAX_CHANNELS, &a->o.max_channels))
				return bad("--max-channels", optarg);
			break;
		case 'K':
			if (parse_size(optarg, &v) || v < VFMIG_MIN_CHUNK || v > VFMIG_MAX_CHUNK)
				return bad("--max-chunk-size", optarg);
			a->o.max_chunk = (uint32_t)v;
			break;
		case 'P':
			if (parse_uint(optarg, 0, 86400, &u))
				return bad("--max-precopy-time", optarg);
			a->o.max_precopy_ms = u * 1000;
			break;
		case 'L':
			a->o.load_config_after_iter = VFMIG_ON;
			if (optarg && parse_onoff(optarg, false, &a->o.load_config_after_iter))
				return bad("--load-config-after-iter", optarg);
			break;
		case 't':
			if (parse_uint(optarg, 1, 86400, &u))
				return bad("--timeout", optarg);
			a->o.timeout_ms = u * 1000;
			break;
		case 'j':
			a->json = true;
			break;
		case 'q':
			a->quiet = true;
			break;
		case 'v':
			a->o.verbose++;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("vfio-mig %s\n", VFMIG_VERSION);
			exit(0);
		case 1:
			a->tls.psk_file = optarg;
			break;
		case 2:
			a->tls.psk_identity = optarg;
			break;
		case 3:
			a->tls.creds_dir = optarg;
			break;
		case 4:
			a->tls.hostname = optarg;
			break;
		case 5:
			if (a->tls.n_allow_dn == ARRAY_LEN(a->allow_dn))
				return bad("--tls-allow-dn (at most 16)", optarg);
			a->allow_dn[a->tls.n_allow_dn++] = optarg;
			a->tls.allow_dn = a->allow_dn;
			break;
		case 6:
			a->insecure = true;
			break;
		case 7:
			if (parse_onoff(optarg, false, &a->o.precopy_multifd))
				return bad("--precopy-multifd", optarg);
			break;
		default:
			usage(stderr);
			return -1;
		}
	}
	a->devs = argv + optind;
	a->ndevs = argc - optind;
	if (a->cmd == CMD_RECV && !channels_set)
		a->o.channels = 0; /* accept the source's number */
	if (a->ndevs < 1 || a->ndevs > VFMIG_MAX_DEVICES) {
		fprintf(stderr, "vfio-mig: give 1..%d devices (see --help)\n", VFMIG_MAX_DEVICES);
		return -1;
	}
	if (a->cmd == CMD_SEND && !a->to) {
		fprintf(stderr, "vfio-mig send: --to ADDR is required\n");
		return -1;
	}
	if (a->cmd == CMD_RECV && !a->listen) {
		fprintf(stderr, "vfio-mig recv: --listen ADDR is required\n");
		return -1;
	}
	if (a->tls.psk_file && a->tls.creds_dir) {
		fprintf(stderr, "vfio-mig: give --tls-psk or --tls-creds, not both\n");
		return -1;
	}
	if (!a->tls.psk_file && !a->tls.creds_dir &&
	    (a->tls.psk_identity || a->tls.hostname || a->tls.n_allow_dn)) {
		fprintf(stderr, "vfio-mig: --tls-psk-identity, --tls-hostname and --tls-allow-dn "
				"need --tls-psk or --tls-creds\n");
		return -1;
	}
	if (a->cmd == CMD_SEND && a->o.multifd == VFMIG_ON && !a->o.channels) {
		fprintf(stderr, "vfio-mig: --multifd on needs --channels >= 1\n");
		return -1;
	}
	return 0;
}
