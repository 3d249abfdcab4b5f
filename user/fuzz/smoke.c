// SPDX-License-Identifier: GPL-2.0-only
/*
 * smoke.c - the `make check` side of a harness: a small, deterministic
 * fuzzer that runs LLVMFuzzerTestOneInput() on every seed of the harness
 * (seeds.c) and then on a fixed number of mutations of them (fuzz_smoke_execs,
 * set by each harness), with a fixed random seed, so every run executes the
 * same inputs.  It builds with the project's compiler (no clang needed);
 * the user-asan build runs it under ASan and UBSan.
 *
 *	fuzz_<name>_test		the smoke run: TAP, exit 0 or a crash
 *	fuzz_<name>_test FILE...	run these inputs once each (a libFuzzer
 *					crash file, or one this driver dumped)
 *
 * The library logs every refused input on stderr, so stderr is silenced
 * during the run; invariant failures and sanitizer reports still reach the
 * original stderr.  When an input crashes, it is written to
 * $TMPDIR/fuzz-<name>-crash-<iteration> first, and the file name printed.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

/* Sanitizer hooks, present only in a sanitized build. */
void __sanitizer_set_report_fd(void *fd) __attribute__((weak));
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

struct seed {
	uint8_t *p;
	size_t len;
};

static struct seed *seeds;
static size_t nseeds;

/* The input being run, for the crash dump. */
static const uint8_t *cur;
static size_t cur_len;
static long cur_iter = -1;

static void collect(void *arg, const char *tag, const uint8_t *buf, size_t len)
{
	(void)arg;
	(void)tag;
	seeds = realloc(seeds, (nseeds + 1) * sizeof(*seeds));
	if (!seeds)
		abort();
	seeds[nseeds].p = malloc(len ? len : 1);
	if (!seeds[nseeds].p)
		abort();
	memcpy(seeds[nseeds].p, buf, len);
	seeds[nseeds++].len = len;
}

static void dump_crash(void)
{
	static volatile sig_atomic_t dumped;
	const char *tmp = getenv("TMPDIR");
	char path[512];
	int fd;

	if (dumped || !cur)
		return;
	dumped = 1;
	snprintf(path, sizeof(path), "%s/fuzz-%s-crash-%ld", tmp && *tmp ? tmp : "/tmp", fuzz_name,
		 cur_iter);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, cur, cur_len) != (ssize_t)cur_len)
			path[0] = '\0';
		close(fd);
	}
	dprintf(fuzz_report_fd, "# fuzz_%s: input %ld crashed; replay: fuzz_%s_test %s\n",
		fuzz_name, cur_iter, fuzz_name, path);
}

static void on_signal(int sig)
{
	dump_crash();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* xorshift64*: the same mutations on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static const uint32_t interesting[] = { 0,	    1,		0x7f,		0x80,
					0xff,	    0x100,	0x1000,		0x1001,
					0xffff,	    0x7fffffff, 0x80000000,	0xfffffffe,
					0xffffffff, 16u << 20,	(16u << 20) + 1 };

/* One to four mutations of a seed (libFuzzer's kinds: bits, bytes, words, ranges, splices). */
static size_t mutate(uint8_t *buf, size_t cap, const struct seed *s)
{
	size_t len = MIN(s->len, cap), n = 1 + below(4);

	memcpy(buf, s->p, len);
	while (n--) {
		size_t pos = below(len), k;
		const struct seed *o;

		switch (below(8)) {
		case 0: /* flip a bit */
			if (len)
				buf[pos] ^= (uint8_t)(1u << below(8));
			break;
		case 1: /* a random byte */
			if (len)
				buf[pos] = (uint8_t)rnd();
			break;
		case 2: /* an interesting 8, 16 or 32-bit little-endian value */
			k = (size_t)1 << below(3);
			if (len >= k) {
				pos = below(len - k + 1);
				for (size_t i = 0; i < k; i++)
					buf[pos + i] = (uint8_t)(interesting[below(ARRAY_SIZE(
									 interesting))] >>
								 (8 * i));
			}
			break;
		case 3: /* insert random bytes */
			k = 1 + below(8);
			if (len + k <= cap) {
				memmove(buf + pos + k, buf + pos, len - pos);
				for (size_t i = 0; i < k; i++)
					buf[pos + i] = (uint8_t)rnd();
				len += k;
			}
			break;
		case 4: /* delete a range (MIN() evaluates twice: draw first) */
			k = 1 + below(32);
			k = MIN(k, len - pos);
			memmove(buf + pos, buf + pos + k, len - pos - k);
			len -= k;
			break;
		case 5: /* copy a range over another place */
			if (len) {
				size_t from = below(len);

				k = 1 + below(64);
				k = MIN(k, MIN(len - from, len - pos));
				memmove(buf + pos, buf + from, k);
			}
			break;
		case 6: /* truncate */
			len = pos;
			break;
		case 7: /* splice: the tail of another seed */
			o = &seeds[below(nseeds)];
			if (o->len) {
				size_t from = below(o->len);

				k = MIN(o->len - from, cap - pos);
				memcpy(buf + pos, o->p + from, k);
				len = pos + k;
			}
			break;
		}
	}
	return len;
}

static void run(const uint8_t *p, size_t len, long iter)
{
	cur = p;
	cur_len = len;
	cur_iter = iter;
	LLVMFuzzerTestOneInput(p, len);
	cur = NULL;
}

static int replay(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf = malloc(FUZZ_MAX_INPUT + 1);
		size_t len;

		if (!f || !buf) {
			perror(argv[i]);
			return 1;
		}
		len = fread(buf, 1, FUZZ_MAX_INPUT + 1, f);
		fclose(f);
		printf("# fuzz_%s: running %s (%zu bytes)\n", fuzz_name, argv[i], len);
		run(buf, len, i);
		free(buf);
	}
	printf("# fuzz_%s: %d input(s) ran without a finding\n", fuzz_name, argc - 1);
	return 0;
}

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL };
	uint8_t *buf = malloc(FUZZ_MAX_INPUT);
	int null;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		signal(sigs[i], on_signal);
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(dump_crash);
	if (argc > 1)
		return replay(argc, argv);

	printf("TAP version 13\n1..1\n");
	if (!buf || fuzz_seeds(fuzz_name, collect, NULL) || !nseeds) {
		printf("not ok 1 fuzz_%s # no seeds\n", fuzz_name);
		return 1;
	}
	/* Keep the real stderr for reports; the library's log goes nowhere. */
	fuzz_report_fd = dup(2);
	null = open("/dev/null", O_WRONLY);
	if (fuzz_report_fd < 0 || null < 0 || dup2(null, 2) < 0) {
		printf("not ok 1 fuzz_%s # cannot redirect stderr\n", fuzz_name);
		return 1;
	}
	close(null);
	if (__sanitizer_set_report_fd)
		__sanitizer_set_report_fd((void *)(intptr_t)fuzz_report_fd);

	for (size_t i = 0; i < nseeds; i++)
		run(seeds[i].p, seeds[i].len, -(long)i - 1);
	for (unsigned i = 0; i < fuzz_smoke_execs; i++) {
		size_t len = mutate(buf, FUZZ_MAX_INPUT, &seeds[below(nseeds)]);

		run(buf, len, i);
	}
	printf("ok 1 fuzz_%s: %zu seeds and %u mutated inputs, no finding\n", fuzz_name, nseeds,
	       fuzz_smoke_execs);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i].p);
	free(seeds);
	free(buf);
	return 0;
}
