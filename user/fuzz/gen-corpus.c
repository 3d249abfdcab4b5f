// SPDX-License-Identifier: GPL-2.0-only
/*
 * gen-corpus - write the seed corpus of every harness (seeds.c) to files:
 *
 *	gen-corpus DIR		DIR/<harness>/<n>-<tag> for frame, wire, reorder, session
 *
 * `make fuzz` runs it before the fuzzers, so the corpora are generated from
 * the current encoders and never committed.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

struct out {
	char dir[4096];
	unsigned n;
	int err;
};

static void write_seed(void *arg, const char *tag, const uint8_t *buf, size_t len)
{
	struct out *o = arg;
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%03u-%s", o->dir, o->n++, tag);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "gen-corpus: %s: %s\n", path, strerror(errno));
		o->err = -1;
	}
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "frame", "wire", "reorder", "session" };
	struct out o;

	if (argc != 2) {
		fprintf(stderr, "usage: gen-corpus DIR\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) && errno != EEXIST) {
		fprintf(stderr, "gen-corpus: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		memset(&o, 0, sizeof(o));
		snprintf(o.dir, sizeof(o.dir), "%s/%s", argv[1], names[i]);
		if (mkdir(o.dir, 0755) && errno != EEXIST) {
			fprintf(stderr, "gen-corpus: %s: %s\n", o.dir, strerror(errno));
			return 1;
		}
		if (fuzz_seeds(names[i], write_seed, &o) || o.err)
			return 1;
		printf("gen-corpus: %u seeds in %s\n", o.n, o.dir);
	}
	return 0;
}
