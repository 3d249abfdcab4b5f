// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fakespec.c - the "fake:SIZE[:flags][:seedN]" device spec of the vfio-mig
 * tool and the tests, turned into a fake device (fakedev.c) through its
 * public constructor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfmig_internal.h"

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

int vfmig_fake_new_from_spec(const char *spec, struct vfmig_device **out, struct vfmig_error *err)
{
	struct vfmig_fake_cfg cfg;
	char buf[256], *save = NULL, *tok;
	uint64_t size;
	static const char fake_prefix[] = "fake:";

	vfmig_fake_cfg_init(&cfg);
	if (strncmp(spec, fake_prefix, 5) || strlen(spec) >= sizeof(buf))
		goto bad;
	snprintf(buf, sizeof(buf), "%s", spec + 5);
	tok = strtok_r(buf, ":", &save);
	if (!tok || parse_size(tok, &size) || size > VFMIG_FAKE_MAX_MEM)
		goto bad;
	cfg.mem_size = (size_t)size;
	while ((tok = strtok_r(NULL, ":", &save))) {
		if (!strncmp(tok, "seed", 4)) {
			char *end;

			cfg.seed = (uint32_t)strtoul(tok + 4, &end, 0);
			if (end == tok + 4 || *end)
				goto bad;
		} else {
			char *s2 = NULL, *f;

			cfg.flags = 0;
			for (f = strtok_r(tok, "+", &s2); f; f = strtok_r(NULL, "+", &s2)) {
				if (!strcasecmp(f, "stop_copy"))
					cfg.flags |= VFMIG_MIG_STOP_COPY;
				else if (!strcasecmp(f, "p2p"))
					cfg.flags |= VFMIG_MIG_P2P;
				else if (!strcasecmp(f, "pre_copy"))
					cfg.flags |= VFMIG_MIG_PRE_COPY;
				else
					goto bad;
			}
		}
	}
	*out = vfmig_fake_new(spec, &cfg);
	if (!*out)
		goto bad;
	return 0;
bad:
	vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, spec,
			"bad fake device '%s' (fake:SIZE[:stop_copy+p2p+pre_copy][:seedN], "
			"SIZE a multiple of 4K up to 1G)",
			spec);
	return -EINVAL;
}
