// SPDX-License-Identifier: GPL-2.0-only
/*
 * The soak: MTTY_SOAK_COUNT (default 10) migrations of four P2P-linked
 * mtty_mig devices back and forth between two sets of instances, A -> B,
 * B -> A, A -> B, ..., with the real vfio-mig tool as two processes in two
 * network namespaces joined by a veth pair: multifd on 4 channels,
 * switchover-ack on, the source devices' engines dirtying their memory and
 * writing into their peers the whole time. `make check` runs the default;
 * `make soak` runs 200.
 *
 * After every migration:
 * - both processes exited 0, and their JSON statistics say ok, multifd on
 *   4 channels with the chunk size asked for, switchover-ack on, at least
 *   one precopy iteration;
 * - each destination device's digest equals its source's at STOP_COPY,
 *   sampled while `vfio-mig send` still held the stopped source devices
 *   (when the poll caught that window, which it does almost always) and
 *   read again after it exited: a stopped, then closed, device keeps its
 *   state;
 * - no device counted a P2P violation, and the source engines really ran;
 * - both processes closed every device: the module's reference count is
 *   back where it started;
 * - the kernel's trace of the migration states (tracepoint
 *   mtty_mig_transition) shows every source device leave PRE_COPY_P2P for
 *   STOP_COPY only after all of them reached PRE_COPY_P2P, then go to STOP
 *   and stay there until it is closed; every destination device go
 *   RESUMING -> STOP -> RUNNING_P2P -> RUNNING, all of them RUNNING_P2P
 *   before any RUNNING; no step failed; and the destination's log says
 *   it reset nothing.
 *
 * At the start, the middle and the end it prints the kernel memory the
 * module's work can leak (/proc/meminfo, the vmalloc areas of mtty_mig in
 * /proc/vmallocinfo, /sys/module/mtty_mig/refcnt) and the peak RSS of
 * vfio-mig send and recv (wait4() rusage), and asserts that they are flat
 * from the middle to the end: see check_flat().
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/mtty_mig.h>

#include "kselftest_harness.h"
#include "lib/mtty_test.h"

#define VFIO_MIG	"/usr/bin/vfio-mig"
#define TRACEFS		"/sys/kernel/tracing"
#define EV_DIR		TRACEFS "/events/mtty_mig"

#define NDEV		4
#define LOAD_MS		"20"		/* initial_load_ms: what switchover-ack waits for */
#define CHANNELS	"4"
#define NCHANNELS	4
#define CHUNK		"256K"		/* --chunk-size */
#define CHUNK_KB	256
#define MAX_ITER	"10"		/* --max-iterations: a precopy that does not converge */
#define TOOL_TIMEOUT	"60"		/* vfio-mig --timeout */
#define COUNT_DEFAULT	10

/* the bound of the setup; a migration's is in struct load */
#define SETUP_BOUND_S	300
/* how much the middle -> end figures may grow: see check_flat() */
#define FLAT_PCT	10

#define SEND_OUT	"/tmp/mtty-soak-send.json"
#define SEND_LOG	"/tmp/mtty-soak-send.log"
#define RECV_OUT	"/tmp/mtty-soak-recv.json"
#define RECV_LOG	"/tmp/mtty-soak-recv.log"

/* ---- the run's size ------------------------------------------------------------ */

/*
 * The devices: memory size, and the engines' rates in pages/s (own memory,
 * peer); and the bound of one migration (both processes) in seconds.
 */
struct load {
	const char *mem_size, *dirty_rate, *p2p_rate;
	int mig_bound_s;
};

/*
 * Sized so that the default 10 migrations stay well within two minutes in
 * the TCG VM on Debian's kernel: 2.5 s a migration (median; 3.7 s mean)
 * measured on a 2-core host shared with other VMs (Documentation/testing.rst).
 * A kernel with lockdep (the debug lane: lockdep, KASAN, kmemleak) copies
 * data so much slower that the engines out-dirty the precopy and every pass
 * moves all the memory again: there, a quarter of the memory and rates that
 * leave the precopy room to converge, and a longer bound: the first
 * migration, which warms everything up, took 291 s there on a busy host.
 */
static const struct load load_debian = { "8388608", "500", "200", 300 };
static const struct load load_debug = { "2097152", "100", "50", 900 };

static const struct load *soak_load(void)
{
	return access("/proc/lockdep", F_OK) ? &load_debian : &load_debug;
}

/* MTTY_SOAK_COUNT, COUNT_DEFAULT if unset, 0 if it is not a count */
static unsigned int soak_count(void)
{
	const char *s = getenv("MTTY_SOAK_COUNT");
	char *end;
	long n;

	if (!s || !*s)
		return COUNT_DEFAULT;
	n = strtol(s, &end, 10);
	return *end || n < 1 || n > 100000 ? 0 : (unsigned int)n;
}

/* the harness's bound on the whole test: every migration may take its bound */
static int soak_timeout(void)
{
	return SETUP_BOUND_S + (int)soak_count() * soak_load()->mig_bound_s;
}

/* ---- processes ---------------------------------------------------------------- */

static int sh(const char *cmd)
{
	int st = system(cmd);

	return st == -1 ? -1 : WEXITSTATUS(st);
}

/* print @text into the test's output, each line prefixed for TAP */
static void print_lines(const char *text)
{
	const char *p;

	for (; text && *text; text = p ? p + 1 : NULL) {
		p = strchr(text, '\n');
		ksft_print_msg("  %.*s\n", p ? (int)(p - text) : (int)strlen(text), text);
	}
}

/* print a file into the test's output, each line prefixed for TAP */
static void show(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "re");

	if (!f)
		return;
	ksft_print_msg("---- %s\n", path);
	while (fgets(line, sizeof(line), f))
		ksft_print_msg("  %s", line);
	fclose(f);
}

/* run @argv in network namespace @netns, stdout to @out, stderr to @err */
static pid_t spawn(const char *netns, char *const argv[], const char *out, const char *err)
{
	char path[128];
	pid_t pid;
	int fd;

	pid = fork();
	if (pid)
		return pid;
	snprintf(path, sizeof(path), "/run/netns/%s", netns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET))
		_exit(126);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, 1) < 0)
		_exit(126);
	fd = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, 2) < 0)
		_exit(126);
	execv(argv[0], argv);
	_exit(127);
}

/* a child vfio-mig, reaped with its resource usage */
struct proc {
	pid_t pid;
	bool done;
	int status;
	struct rusage ru;
};

static void reap(struct proc *p, int flags)
{
	if (p->done || p->pid <= 0)
		return;
	if (wait4(p->pid, &p->status, flags, &p->ru) == p->pid)
		p->done = true;
}

/* its exit code, 128 + signal, or -1: still running at the deadline (then killed) */
static int exit_code(const struct proc *p, bool timed_out)
{
	if (timed_out)
		return -1;
	return WIFEXITED(p->status) ? WEXITSTATUS(p->status) : 128 + WTERMSIG(p->status);
}

/* ---- the two sets of devices ------------------------------------------------------ */

struct side {
	const char *name, *netns, *ip;
	char uuid[NDEV][MT_UUID_LEN];
	unsigned int n;
};

static int side_create(struct side *s)
{
	const char *const attrs[] = {
		MTTY_MIG_ATTR_MEM_SIZE, soak_load()->mem_size,
		MTTY_MIG_ATTR_INITIAL_LOAD_MS, LOAD_MS,
		NULL,
	};
	unsigned int i, k;
	int ret;

	for (i = 0; i < NDEV; i++) {
		ret = mt_mdev_create(MT_PARENT "-2", s->uuid[i]);
		if (ret)
			return ret;
		s->n++;
		for (k = 0; attrs[k]; k += 2) {
			ret = mt_dev_attr_write(s->uuid[i], attrs[k], attrs[k + 1]);
			if (ret)
				return ret;
		}
	}
	/* a ring of peers: every device writes into the next one */
	for (i = 0; i < NDEV; i++) {
		ret = mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_PEER, s->uuid[(i + 1) % NDEV]);
		if (ret)
			return ret;
	}
	return 0;
}

/* the engines of every device of @s: @dirty pages/s into itself, @p2p into its peer */
static int side_rates(const struct side *s, const char *dirty, const char *p2p)
{
	unsigned int i;
	int ret = 0;

	for (i = 0; i < s->n && !ret; i++) {
		ret = mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_DIRTY_RATE, dirty);
		if (!ret)
			ret = mt_dev_attr_write(s->uuid[i], MTTY_MIG_ATTR_P2P_RATE, p2p);
	}
	return ret;
}

static void side_destroy(struct side *s)
{
	unsigned int i;

	side_rates(s, "0", "0");
	for (i = 0; i < s->n; i++)
		mt_mdev_remove(s->uuid[i]);
	s->n = 0;
}

/* the sum of a counter attribute over the devices of @s */
static uint64_t side_sum(const struct side *s, const char *attr)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < s->n; i++)
		sum += mt_dev_attr_u64(s->uuid[i], attr);
	return sum;
}

/* every device of @s is stopped (STOP_COPY or STOP): read its digest into @d */
static bool sample_stopped(const struct side *s, char d[][32])
{
	char state[32];
	unsigned int i;

	for (i = 0; i < s->n; i++) {
		if (mt_dev_attr_read(s->uuid[i], MTTY_MIG_ATTR_STATE, state, sizeof(state)) ||
		    (strcmp(state, "STOP_COPY") && strcmp(state, "STOP")))
			return false;
	}
	/* stopped: no engine and no peer writes into them until they are closed */
	for (i = 0; i < s->n; i++)
		if (mt_digest(s->uuid[i], d[i], 32))
			return false;
	return true;
}

/* ---- the kernel's trace of the device states ----------------------------------------- */

static bool trace_setup(void)
{
	if (access(TRACEFS "/events", F_OK))
		mount("tracefs", TRACEFS, "tracefs", 0, NULL);
	if (access(EV_DIR "/mtty_mig_transition/enable", W_OK))
		return false;
	return !mt_sysfs_write(TRACEFS "/tracing_on", "0") &&
	       !mt_sysfs_write(EV_DIR "/mtty_mig_transition/enable", "1") &&
	       !mt_sysfs_write(EV_DIR "/mtty_mig_p2p_violation/enable", "1") &&
	       !mt_sysfs_write(TRACEFS "/tracing_on", "1");
}

static void trace_clear(void)
{
	int fd = open(TRACEFS "/trace", O_WRONLY | O_TRUNC | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
}

/* the whole trace buffer, NUL-terminated (free() it), or NULL */
static char *trace_text(void)
{
	struct mt_buf b = { 0 };
	char chunk[4096];
	ssize_t n;
	int fd;

	fd = open(TRACEFS "/trace", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (mt_buf_put(&b, chunk, n))
			break;
	close(fd);
	if (n < 0 || mt_buf_put(&b, "", 1)) {
		mt_buf_free(&b);
		return NULL;
	}
	return (char *)b.p;
}

/* what the trace says one device did in one migration */
struct dev_trace {
	int p2p_at, stop_copy_at;	/* source: lines of -> PRE_COPY_P2P, -> STOP_COPY */
	int resumed_at, started_at;	/* dest: line of RESUMING -> STOP, STOP -> RUNNING_P2P */
	int running_at;			/* dest: line of RUNNING_P2P -> RUNNING */
	char last[64];			/* the last step, "FROM -> TO ret=N" */
	char failed[64];		/* a step that failed, if any */
};

/* walk the "mtty_mig_transition: UUID FROM -> TO ret=N" lines of @t for the devices of @s */
static void trace_parse(const char *t, const struct side *s, struct dev_trace *dt)
{
	static const char tag[] = "mtty_mig_transition: ";
	const char *line = t, *p;
	unsigned int i;
	int no = 0;

	for (i = 0; i < s->n; i++)
		dt[i] = (struct dev_trace){ -1, -1, -1, -1, -1, "", "" };
	for (; line && *line; line = p ? p + 1 : NULL, no++) {
		const char *at = strstr(line, tag), *step;
		int len;

		p = strchr(line, '\n');
		if (!at || (p && at > p))
			continue;
		at += sizeof(tag) - 1;
		for (i = 0; i < s->n; i++)
			if (!strncmp(at, s->uuid[i], MT_UUID_LEN - 1) && at[MT_UUID_LEN - 1] == ' ')
				break;
		if (i == s->n)
			continue;
		step = at + MT_UUID_LEN;
		len = p ? (int)(p - step) : (int)strlen(step);
		snprintf(dt[i].last, sizeof(dt[i].last), "%.*s", len, step);
		if (!strstr(dt[i].last, " ret=0"))
			snprintf(dt[i].failed, sizeof(dt[i].failed), "%s", dt[i].last);
		if (strstr(dt[i].last, "-> PRE_COPY_P2P ret=0"))
			dt[i].p2p_at = no;
		if (!strcmp(dt[i].last, "PRE_COPY_P2P -> STOP_COPY ret=0"))
			dt[i].stop_copy_at = no;
		if (!strcmp(dt[i].last, "RESUMING -> STOP ret=0"))
			dt[i].resumed_at = no;
		if (!strcmp(dt[i].last, "STOP -> RUNNING_P2P ret=0"))
			dt[i].started_at = no;
		if (!strcmp(dt[i].last, "RUNNING_P2P -> RUNNING ret=0"))
			dt[i].running_at = no;
	}
}

/* ---- memory -------------------------------------------------------------------------- */

#define SLAB_CACHES	512

/* one slab cache of /proc/slabinfo: its active objects and their size */
struct slab_cache {
	char name[40];
	long objs, size;
};

struct mem {
	struct slab_cache cache[SLAB_CACHES];
	int ncache;
	long slab_kb, sunreclaim_kb, vmalloc_kb;	/* /proc/meminfo */
	long mod_bytes;		/* /proc/vmallocinfo: areas allocated by mtty_mig */
	int mod_areas;
	long refcnt;		/* /sys/module/mtty_mig/refcnt */
};

static void mem_read(struct mem *m)
{
	char line[512], key[64], buf[32];
	long v;
	FILE *f;

	memset(m, 0, sizeof(*m));
	/* what is only a cache is not what we look for */
	sh("sync; echo 3 > /proc/sys/vm/drop_caches");
	f = fopen("/proc/meminfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63[^:]: %ld", key, &v) != 2)
			continue;
		if (!strcmp(key, "Slab"))
			m->slab_kb = v;
		else if (!strcmp(key, "SUnreclaim"))
			m->sunreclaim_kb = v;
		else if (!strcmp(key, "VmallocUsed"))
			m->vmalloc_kb = v;
	}
	if (f)
		fclose(f);
	f = fopen("/proc/vmallocinfo", "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "[mtty_mig]") && sscanf(line, "%*s %ld", &v) == 1) {
			m->mod_bytes += v;
			m->mod_areas++;
		}
	}
	if (f)
		fclose(f);
	m->refcnt = mt_sysfs_read("/sys/module/mtty_mig/refcnt", buf, sizeof(buf)) ? -1 :
		    strtol(buf, NULL, 10);
	f = fopen("/proc/slabinfo", "re");
	while (f && fgets(line, sizeof(line), f) && m->ncache < SLAB_CACHES) {
		struct slab_cache *c = &m->cache[m->ncache];

		if (sscanf(line, "%39s %ld %*d %ld", c->name, &c->objs, &c->size) == 3)
			m->ncache++;
	}
	if (f)
		fclose(f);
}

/*
 * What grew from @a to @b, for the evidence when a figure is not flat: the
 * five slab caches whose active objects grew the most, in bytes.
 */
static void slab_growth(const struct mem *a, const struct mem *b)
{
	long grown[5] = { 0 };
	int top[5] = { -1, -1, -1, -1, -1 };
	int i, j, k;

	for (i = 0; i < b->ncache; i++) {
		long d = b->cache[i].objs * b->cache[i].size;

		for (j = 0; j < a->ncache; j++)
			if (!strcmp(a->cache[j].name, b->cache[i].name))
				d -= a->cache[j].objs * a->cache[j].size;
		for (k = 0; k < 5 && d <= grown[k]; k++)
			;
		if (k == 5)
			continue;
		memmove(&grown[k + 1], &grown[k], (4 - k) * sizeof(grown[0]));
		memmove(&top[k + 1], &top[k], (4 - k) * sizeof(top[0]));
		grown[k] = d;
		top[k] = i;
	}
	for (k = 0; k < 5 && top[k] >= 0; k++)
		ksft_print_msg("  slab cache %s: +%ld bytes (%ld objects of %ld)\n",
			       b->cache[top[k]].name, grown[k], b->cache[top[k]].objs,
			       b->cache[top[k]].size);
}

static void mem_print(const char *when, const struct mem *m)
{
	ksft_print_msg("memory %s: Slab %ld kB, SUnreclaim %ld kB, VmallocUsed %ld kB; mtty_mig: %d vmalloc areas, %ld bytes, refcnt %ld\n",
		       when, m->slab_kb, m->sunreclaim_kb, m->vmalloc_kb, m->mod_areas,
		       m->mod_bytes, m->refcnt);
}

/* the peak RSS (kB) of one side's vfio-mig over a run of migrations */
struct rss {
	long median, max;
};

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static struct rss rss_of(const long *v, unsigned int n)
{
	struct rss r = { 0, 0 };
	long *s;

	s = n ? malloc(n * sizeof(*s)) : NULL;
	if (!s)
		return r;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_long);
	r.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	r.max = s[n - 1];
	free(s);
	return r;
}

static void rss_print(const char *when, const long *src, const long *dst, unsigned int from,
		      unsigned int to)
{
	struct rss s = rss_of(src + from - 1, to - from + 1);
	struct rss d = rss_of(dst + from - 1, to - from + 1);

	ksft_print_msg("vfio-mig peak RSS %s (migrations %u..%u): send median %ld kB, max %ld kB; recv median %ld kB, max %ld kB\n",
		       when, from, to, s.median, s.max, d.median, d.max);
}

/* @end is at most FLAT_PCT % (and @slack) above @mid */
static bool within(long end, long mid, long slack)
{
	return end <= mid + mid * FLAT_PCT / 100 + slack;
}

/*
 * What one vfio-mig process may hold on top of its steady state, by chance:
 * a chunk buffer per device thread and per channel in flight at the moment
 * of its peak.
 */
#define RSS_SLACK_KB	((NDEV + NCHANNELS) * CHUNK_KB)

/*
 * Flat means: from the middle to the end, as many migrations ran as from
 * the start to the middle, with the same devices, sizes and options, so a
 * figure that grows by more than its noise is a leak that grows with the
 * number of migrations. The module's own vmalloc areas (every device's
 * memory, and whatever a migration allocates there and must free) and its
 * reference count (held by every open device) must be exactly equal; the
 * kernel-wide SUnreclaim and VmallocUsed, which other subsystems move as
 * well (sockets, namespaces), may grow by FLAT_PCT %: with 200 migrations,
 * a leak of a few tens of KiB per migration is caught. Every migration runs
 * two new vfio-mig processes, so nothing accumulates inside one: the
 * median peak RSS of the second half may exceed the first half's by
 * FLAT_PCT % and RSS_SLACK_KB (timing decides how many chunk buffers are
 * in flight at the peak), the destination's also by the largest reorder
 * buffer peak the tool reported (timing decides the channels' skew); a
 * process whose memory grew with the devices' history or with the host's
 * state would fail it. The start is not
 * compared: the devices' memory is allocated at their first open, during
 * the first migration.
 */
static void check_flat(struct __test_metadata *_metadata, const struct mem *mid,
		       const struct mem *end, const long *rss_src, const long *rss_dst,
		       unsigned int count, long reorder_kb)
{
	unsigned int half = count / 2;
	struct rss s1 = rss_of(rss_src, half), s2 = rss_of(rss_src + half, count - half);
	struct rss d1 = rss_of(rss_dst, half), d2 = rss_of(rss_dst + half, count - half);

	EXPECT_EQ(mid->mod_bytes, end->mod_bytes);
	EXPECT_EQ(mid->mod_areas, end->mod_areas);
	EXPECT_EQ(mid->refcnt, end->refcnt);
	EXPECT_TRUE(within(end->sunreclaim_kb, mid->sunreclaim_kb, 0))
		TH_LOG("SUnreclaim grew from %ld to %ld kB", mid->sunreclaim_kb,
		       end->sunreclaim_kb);
	EXPECT_TRUE(within(end->vmalloc_kb, mid->vmalloc_kb, 0))
		TH_LOG("VmallocUsed grew from %ld to %ld kB", mid->vmalloc_kb, end->vmalloc_kb);
	EXPECT_TRUE(within(s2.median, s1.median, RSS_SLACK_KB))
		TH_LOG("vfio-mig send median peak RSS grew from %ld to %ld kB", s1.median,
		       s2.median);
	EXPECT_TRUE(within(d2.median, d1.median, RSS_SLACK_KB + reorder_kb))
		TH_LOG("vfio-mig recv median peak RSS grew from %ld to %ld kB", d1.median,
		       d2.median);
}

/* ---- the tool's JSON statistics ---------------------------------------------------------- */

/* the text of the value of "@key" in the file @path (first occurrence), or "" */
static void json_get(const char *path, const char *key, char *val, size_t len)
{
	char line[512], pat[64], *p;
	FILE *f = fopen(path, "re");
	size_t n;

	*val = '\0';
	if (!f)
		return;
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	while (fgets(line, sizeof(line), f)) {
		p = strstr(line, pat);
		if (!p)
			continue;
		p += strlen(pat);
		p += strspn(p, " \t");
		n = strcspn(p, ",}\n");
		snprintf(val, len, "%.*s", (int)n, p);
		break;
	}
	fclose(f);
}

static uint64_t json_u64(const char *path, const char *key)
{
	char v[64];

	json_get(path, key, v, sizeof(v));
	return strtoull(v, NULL, 10);
}

/* ---- the soak ------------------------------------------------------------------------------ */

FIXTURE(soak)
{
	struct side side[2];
	struct proc send, recv;
	bool trace;
	long refcnt0;	/* the module's reference count with every device closed */
};

#define SOAK_PSK "/tmp/mtty-mig-soak.psk"

FIXTURE_SETUP(soak)
{
	self->side[0] = (struct side){ .name = "A", .netns = "mtsoakA", .ip = "198.51.100.1" };
	self->side[1] = (struct side){ .name = "B", .netns = "mtsoakB", .ip = "198.51.100.2" };
	ASSERT_EQ(0, mt_module_load());
	ASSERT_EQ(0, access(VFIO_MIG, X_OK));
	/* between two hosts the tool wants TLS: a pre-shared key made now */
	ASSERT_EQ(0, mt_write_psk_file(SOAK_PSK));
	ASSERT_EQ(0, side_create(&self->side[0]));
	ASSERT_EQ(0, side_create(&self->side[1]));
	/* two hosts: network namespaces joined by a veth pair */
	sh("/sbin/ip netns del mtsoakA 2>/dev/null; /sbin/ip netns del mtsoakB 2>/dev/null");
	ASSERT_EQ(0, sh("/sbin/ip netns add mtsoakA && /sbin/ip netns add mtsoakB && "
			"/sbin/ip link add msoak0 netns mtsoakA type veth peer name msoak1 netns mtsoakB && "
			"/sbin/ip -n mtsoakA link set lo up && /sbin/ip -n mtsoakB link set lo up && "
			"/sbin/ip -n mtsoakA addr add 198.51.100.1/24 dev msoak0 && "
			"/sbin/ip -n mtsoakB addr add 198.51.100.2/24 dev msoak1 && "
			"/sbin/ip -n mtsoakA link set msoak0 up && "
			"/sbin/ip -n mtsoakB link set msoak1 up"));
	self->trace = trace_setup();
	if (!self->trace)
		ksft_print_msg("no mtty_mig trace events on this kernel: the state sequences are not checked\n");
}

FIXTURE_TEARDOWN(soak)
{
	struct proc *p[] = { &self->send, &self->recv };
	unsigned int i;

	for (i = 0; i < 2; i++) {
		if (p[i]->pid > 0 && !p[i]->done) {
			kill(p[i]->pid, SIGKILL);
			reap(p[i], 0);
		}
	}
	if (self->trace) {
		mt_sysfs_write(EV_DIR "/mtty_mig_transition/enable", "0");
		mt_sysfs_write(EV_DIR "/mtty_mig_p2p_violation/enable", "0");
	}
	sh("/sbin/ip netns del mtsoakA 2>/dev/null; /sbin/ip netns del mtsoakB 2>/dev/null");
	side_destroy(&self->side[0]);
	side_destroy(&self->side[1]);
}

/* a device list for vfio-mig: "UUID@dN", labelled so that the order is checked */
struct devlist {
	char arg[NDEV][MT_UUID_LEN + 8];
};

static void devlist(const struct side *s, struct devlist *l, char **argv)
{
	unsigned int i;

	for (i = 0; i < NDEV; i++) {
		snprintf(l->arg[i], sizeof(l->arg[i]), "%s@d%u", s->uuid[i], i);
		argv[i] = l->arg[i];
	}
	argv[NDEV] = NULL;
}

/* what the trace of migration @no says about @src and @dst */
static void check_trace(struct __test_metadata *_metadata, const struct side *src,
			const struct side *dst, unsigned int no)
{
	struct dev_trace ts[NDEV], td[NDEV];
	int last_p2p = -1, first_stop_copy = -1, last_start = -1, first_running = -1;
	unsigned int i;
	char *t;

	ASSERT_EQ(0, mt_sysfs_write(TRACEFS "/tracing_on", "0"));
	t = trace_text();
	ASSERT_EQ(0, mt_sysfs_write(TRACEFS "/tracing_on", "1"));
	ASSERT_NE(NULL, t);
	EXPECT_EQ(NULL, strstr(t, "refused peer write")) TH_LOG("migration %u", no);
	trace_parse(t, src, ts);
	trace_parse(t, dst, td);
	for (i = 0; i < NDEV; i++) {
		EXPECT_STREQ("", ts[i].failed) TH_LOG("source %s", src->uuid[i]);
		EXPECT_STREQ("", td[i].failed) TH_LOG("destination %s", dst->uuid[i]);
		/* the source stops, stays stopped; the destination runs */
		EXPECT_STREQ("STOP_COPY -> STOP ret=0", ts[i].last)
			TH_LOG("source %s", src->uuid[i]);
		EXPECT_STREQ("RUNNING_P2P -> RUNNING ret=0", td[i].last)
			TH_LOG("destination %s", dst->uuid[i]);
		EXPECT_LE(0, ts[i].p2p_at);
		EXPECT_LT(ts[i].p2p_at, ts[i].stop_copy_at);
		EXPECT_LE(0, td[i].resumed_at);
		EXPECT_LT(td[i].resumed_at, td[i].started_at);
		EXPECT_LT(td[i].started_at, td[i].running_at);
		last_p2p = ts[i].p2p_at > last_p2p ? ts[i].p2p_at : last_p2p;
		if (first_stop_copy < 0 || ts[i].stop_copy_at < first_stop_copy)
			first_stop_copy = ts[i].stop_copy_at;
		last_start = td[i].started_at > last_start ? td[i].started_at : last_start;
		if (first_running < 0 || td[i].running_at < first_running)
			first_running = td[i].running_at;
	}
	/* the two phases: every device is quiet (P2P) before any stops or runs */
	EXPECT_LT(last_p2p, first_stop_copy)
		TH_LOG("migration %u: STOP_COPY before the P2P phase ended", no);
	EXPECT_LT(last_start, first_running)
		TH_LOG("migration %u: RUNNING before the P2P phase ended", no);
	if (_metadata->exit_code) {
		ksft_print_msg("trace of migration %u:\n", no);
		print_lines(t);
	}
	free(t);
}

/* some line of @path contains @what */
static bool file_has(const char *path, const char *what)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, what);
	fclose(f);
	return found;
}

struct mig {
	int src_rc, dst_rc;
	long src_rss_kb, dst_rss_kb, reorder_kb;
	double secs;
	bool sampled;
	char at_stop[NDEV][32];
};

/* one migration @src -> @dst, number @no (from 1), over TCP port @port */
static void migrate(struct __test_metadata *_metadata, FIXTURE_DATA(soak) *self,
		    const struct side *src, const struct side *dst, unsigned int no,
		    struct mig *m)
{
	char *send_argv[32] = { VFIO_MIG, "send", "--to", NULL, "--channels", CHANNELS,
				"--multifd", "on", "--switchover-ack", "on",
				"--timeout", TOOL_TIMEOUT, "--json", "-v",
				"--chunk-size", CHUNK, "--max-iterations", MAX_ITER,
				"--tls-psk", SOAK_PSK };
	char *recv_argv[32] = { VFIO_MIG, "recv", "--listen", NULL, "--channels", CHANNELS,
				"--multifd", "on", "--switchover-ack", "on",
				"--timeout", TOOL_TIMEOUT, "--json", "-v", "--tls-psk", SOAK_PSK };
	char addr[64], reset[MT_UUID_LEN + 8], after[NDEV][32], dd[NDEV][32], v[32];
	uint64_t writes0, p2p0;
	struct devlist sl, dl;
	bool timed_out = false;
	double t0, deadline;
	unsigned int i;

	memset(m, 0, sizeof(*m));
	snprintf(addr, sizeof(addr), "tcp:%s:%u", dst->ip, 5200 + no % 1000);
	send_argv[3] = addr;
	recv_argv[3] = addr;
	devlist(src, &sl, send_argv + 20);
	devlist(dst, &dl, recv_argv + 16);

	/* the source is busy, the destination quiet: it must run what it received */
	ASSERT_EQ(0, side_rates(src, soak_load()->dirty_rate, soak_load()->p2p_rate));
	ASSERT_EQ(0, side_rates(dst, "0", "0"));
	writes0 = side_sum(src, MTTY_MIG_ATTR_ENGINE_WRITES);
	p2p0 = side_sum(src, MTTY_MIG_ATTR_P2P_TX);
	if (self->trace)
		trace_clear();

	t0 = mt_now_s();
	deadline = t0 + soak_load()->mig_bound_s;
	self->recv = (struct proc){ .pid = spawn(dst->netns, recv_argv, RECV_OUT, RECV_LOG) };
	ASSERT_LT(0, self->recv.pid);
	/* the source retries its connection until the destination listens */
	self->send = (struct proc){ .pid = spawn(src->netns, send_argv, SEND_OUT, SEND_LOG) };
	ASSERT_LT(0, self->send.pid);
	while (!(self->send.done && self->recv.done)) {
		reap(&self->send, WNOHANG);
		reap(&self->recv, WNOHANG);
		/* the digests at STOP_COPY, while vfio-mig send holds the devices stopped */
		if (!m->sampled && !self->send.done)
			m->sampled = sample_stopped(src, m->at_stop);
		if (mt_now_s() > deadline) {
			timed_out = true;
			kill(self->send.pid, SIGKILL);
			kill(self->recv.pid, SIGKILL);
			reap(&self->send, 0);
			reap(&self->recv, 0);
			break;
		}
		usleep(5000);
	}
	m->secs = mt_now_s() - t0;
	m->src_rc = exit_code(&self->send, timed_out);
	m->dst_rc = exit_code(&self->recv, timed_out);
	m->src_rss_kb = self->send.ru.ru_maxrss;
	m->dst_rss_kb = self->recv.ru.ru_maxrss;

	ASSERT_EQ(0, m->src_rc) {
		TH_LOG("migration %u %s -> %s: vfio-mig send exit code %d", no, src->name,
		       dst->name, m->src_rc);
		show(SEND_LOG);
		show(RECV_LOG);
	}
	ASSERT_EQ(0, m->dst_rc) {
		TH_LOG("migration %u %s -> %s: vfio-mig recv exit code %d", no, src->name,
		       dst->name, m->dst_rc);
		show(SEND_LOG);
		show(RECV_LOG);
	}
	/* the tool's own report: what it did is what it was asked */
	json_get(SEND_OUT, "ok", v, sizeof(v));
	EXPECT_STREQ("true", v) show(SEND_OUT);
	json_get(RECV_OUT, "ok", v, sizeof(v));
	EXPECT_STREQ("true", v) show(RECV_OUT);
	json_get(SEND_OUT, "multifd", v, sizeof(v));
	EXPECT_STREQ("true", v);
	json_get(SEND_OUT, "switchover_ack", v, sizeof(v));
	EXPECT_STREQ("true", v);
	EXPECT_EQ(NCHANNELS, json_u64(SEND_OUT, "channels"));
	EXPECT_EQ(CHUNK_KB << 10, json_u64(SEND_OUT, "chunk_size"));
	EXPECT_LT(0, json_u64(SEND_OUT, "precopy_iterations"));

	/* the destination holds what the source had at STOP_COPY */
	for (i = 0; i < NDEV; i++) {
		ASSERT_EQ(0, mt_digest(src->uuid[i], after[i], sizeof(after[i])));
		ASSERT_EQ(0, mt_digest(dst->uuid[i], dd[i], sizeof(dd[i])));
		if (m->sampled) {
			EXPECT_STREQ(m->at_stop[i], after[i])
				TH_LOG("migration %u: source %s changed after it stopped", no,
				       src->uuid[i]);
		}
		EXPECT_STREQ(after[i], dd[i])
			TH_LOG("migration %u %s -> %s: device %u: destination %s differs from source %s",
			       no, src->name, dst->name, i, dst->uuid[i], src->uuid[i]);
		EXPECT_EQ(0, mt_dev_attr_u64(src->uuid[i], MTTY_MIG_ATTR_P2P_VIOLATIONS))
			TH_LOG("migration %u: source %s", no, src->uuid[i]);
		EXPECT_EQ(0, mt_dev_attr_u64(dst->uuid[i], MTTY_MIG_ATTR_P2P_VIOLATIONS))
			TH_LOG("migration %u: destination %s", no, dst->uuid[i]);
		/* after COMMIT the destination never resets */
		snprintf(reset, sizeof(reset), "%s: reset", dst->uuid[i]);
		EXPECT_FALSE(file_has(RECV_LOG, reset)) show(RECV_LOG);
	}
	/* both processes closed every device: nothing holds the module */
	ASSERT_EQ(0, mt_sysfs_read("/sys/module/mtty_mig/refcnt", v, sizeof(v)));
	EXPECT_EQ(self->refcnt0, strtol(v, NULL, 10)) TH_LOG("migration %u", no);
	/* the workload really ran during the migration */
	EXPECT_LT(writes0, side_sum(src, MTTY_MIG_ATTR_ENGINE_WRITES));
	EXPECT_LT(p2p0, side_sum(src, MTTY_MIG_ATTR_P2P_TX));
	if (self->trace)
		check_trace(_metadata, src, dst, no);
	m->reorder_kb = json_u64(RECV_OUT, "reorder_peak_bytes") >> 10;
	ksft_print_msg("migration %u/%u %s -> %s: %.1f s, downtime %.0f ms, %lu precopy iterations, reorder peak %ld KiB, peak RSS send %ld kB recv %ld kB%s\n",
		       no, soak_count(), src->name, dst->name, m->secs,
		       json_u64(SEND_OUT, "downtime_ns") / 1e6,
		       (unsigned long)json_u64(SEND_OUT, "precopy_iterations"),
		       m->reorder_kb,
		       m->src_rss_kb, m->dst_rss_kb,
		       m->sampled ? "" : " (stop-time digests not sampled)");
	if (_metadata->exit_code) {
		show(SEND_LOG);
		show(RECV_LOG);
	}
}

TEST_F_TIMEOUT(soak, ping_pong_migrations_digests_equal_memory_flat, soak_timeout())
{
	unsigned int count = soak_count(), no, sampled = 0;
	long *rss_src, *rss_dst, reorder_kb = 0;
	struct mem *start, *mid, *end;
	double t0 = mt_now_s();
	struct mig m;

	ASSERT_LT(0, count) TH_LOG("MTTY_SOAK_COUNT=%s: not a count of 1..100000",
				   getenv("MTTY_SOAK_COUNT"));
	rss_src = calloc(count, sizeof(long));
	rss_dst = calloc(count, sizeof(long));
	start = calloc(3, sizeof(*start));
	ASSERT_TRUE(rss_src && rss_dst && start);
	mid = start + 1;
	end = start + 2;
	ksft_print_msg("soak: %u migrations of %d P2P-linked devices of %s bytes, dirty_rate %s, p2p_rate %s, %s multifd channels, chunks of %s, switchover-ack on, --max-iterations %s\n",
		       count, NDEV, soak_load()->mem_size, soak_load()->dirty_rate,
		       soak_load()->p2p_rate, CHANNELS, CHUNK, MAX_ITER);
	mem_read(start);
	mem_print("at the start", start);
	self->refcnt0 = start->refcnt;
	*mid = *start;
	for (no = 1; no <= count; no++) {
		const struct side *src = &self->side[(no - 1) % 2], *dst = &self->side[no % 2];

		migrate(_metadata, self, src, dst, no, &m);
		if (_metadata->exit_code)
			break;
		rss_src[no - 1] = m.src_rss_kb;
		rss_dst[no - 1] = m.dst_rss_kb;
		sampled += m.sampled;
		reorder_kb = m.reorder_kb > reorder_kb ? m.reorder_kb : reorder_kb;
		if (no == 1)
			rss_print("at the start", rss_src, rss_dst, 1, 1);
		if (no == count / 2) {
			mem_read(mid);
			mem_print("in the middle", mid);
			rss_print("in the middle", rss_src, rss_dst, 1, no);
		}
	}
	if (!_metadata->exit_code) {
		unsigned int half = count / 2;
		double secs = mt_now_s() - t0;

		mem_read(end);
		mem_print("at the end", end);
		rss_print("at the end", rss_src, rss_dst, half + 1, count);
		ksft_print_msg("slab caches that grew the most from the middle to the end:\n");
		slab_growth(mid, end);
		ksft_print_msg("soak: %u migrations in %.0f s (%.1f s each), stop-time digests sampled in %u, largest reorder peak %ld KiB\n",
			       count, secs, secs / count, sampled, reorder_kb);
		if (count >= 2)
			check_flat(_metadata, mid, end, rss_src, rss_dst, count, reorder_kb);
		else
			ksft_print_msg("one migration: no middle to compare the end with\n");
	}
	free(start);
	free(rss_src);
	free(rss_dst);
}

TEST_HARNESS_MAIN
