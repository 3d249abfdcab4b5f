// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio-mig - migrate VFIO devices (migration uAPI v2) between hosts.
 *
 *   vfio-mig send    [options] --to ADDR DEVICE...
 *   vfio-mig recv    [options] --listen ADDR DEVICE...
 *   vfio-mig migrate [options] [--listen ADDR] SRC=DST...
 *   vfio-mig info    [--json] DEVICE...
 *
 * See Documentation/vfio-mig.rst and vfio-mig(1).  The exit code is the
 * failure class (enum vfmig_errclass), 0 on success.
 *
 * Threads: the main thread runs the source (send, migrate) or the
 * destination (recv); `migrate` runs the destination in a second thread;
 * a signal thread turns SIGINT/SIGTERM into vfmig_session_cancel().  The
 * signals are blocked in every other thread.
 *
 * Locks: sigctl.lock protects the list of sessions the signal thread may
 * cancel; it is a leaf.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json.h>

#include "vfmig.h"
#include "vfio-mig.h"

struct sigctl {
	pthread_mutex_t lock;
	struct vfmig_session *s[2];
	int signo;
};

/* ---- signals ------------------------------------------------------------------- */

/* SIGINT and SIGTERM cancel the migration; SIGUSR1 ends the signal thread. */
static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGUSR1);
}

static void *signal_thread(void *arg)
{
	struct sigctl *sc = arg;
	sigset_t set;
	int sig;

	signal_set(&set);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGUSR1)
			return NULL; /* main is done */
		pthread_mutex_lock(&sc->lock);
		sc->signo = sig;
		for (int i = 0; i < 2; i++) {
			if (sc->s[i])
				vfmig_session_cancel(sc->s[i]);
		}
		pthread_mutex_unlock(&sc->lock);
		fprintf(stderr, "\nvfio-mig: %s, aborting the migration\n", strsignal(sig));
	}
}

static void sigctl_set(struct sigctl *sc, int slot, struct vfmig_session *s)
{
	pthread_mutex_lock(&sc->lock);
	sc->s[slot] = s;
	/* A signal that came before the session existed still cancels it. */
	if (s && sc->signo)
		vfmig_session_cancel(s);
	pthread_mutex_unlock(&sc->lock);
}

/* ---- output ---------------------------------------------------------------------- */

struct progress_ctx {
	bool tty;
	const char *who;
};

static void progress(const struct vfmig_progress *p, void *opaque)
{
	struct progress_ctx *pc = opaque;
	char b1[32], b2[32];

	if (!pc->tty)
		return;
	switch (p->phase) {
	case VFMIG_PHASE_PRECOPY:
		fprintf(stderr,
			"\r%s: precopy iteration %u, %s sent, %s left to stop-copy, acks %u/%u   ",
			pc->who, p->iteration, vfmig_fmt_bytes(b1, sizeof(b1), p->precopy_bytes),
			vfmig_fmt_bytes(b2, sizeof(b2), p->est_stopcopy_bytes), p->acks,
			p->acks_needed);
		break;
	case VFMIG_PHASE_SWITCHOVER:
		fprintf(stderr, "\r%s: switching over%60s", pc->who, "");
		break;
	case VFMIG_PHASE_STOPCOPY:
		fprintf(stderr, "\r%s: stop-copy (downtime started)%40s", pc->who, "");
		break;
	case VFMIG_PHASE_LOADING:
		fprintf(stderr, "\r%s: %s sent, waiting for the destination to load%20s", pc->who,
			vfmig_fmt_bytes(b1, sizeof(b1), p->stopcopy_bytes), "");
		break;
	case VFMIG_PHASE_DONE:
		fprintf(stderr, "\r%s: done%70s\n", pc->who, "");
		break;
	default:
		break;
	}
}

static void report_error(const char *who, const struct vfmig_error *e)
{
	fprintf(stderr, "vfio-mig: %s: %s: %s%s%s\n", who, vfmig_errclass_name(e->cls),
		e->where[0] ? e->where : "", e->where[0] ? ": " : "", e->msg);
}

static void print_stats(const struct args *a, struct json_object *root, const char *key,
			const struct vfmig_stats *st, const struct vfmig_error *e)
{
	if (a->json) {
		struct json_object *o = vfmig_stats_json(st, e);

		if (o)
			json_object_object_add(root, key, o);
	} else if (!a->quiet) {
		vfmig_stats_print(stderr, st);
	}
}

/* DEVICE[@LABEL]: open every device and label it. */
static int open_devices(struct vfmig_vfio_ctx *ctx, char **specs, int n, struct vfmig_device **devs)
{
	for (int i = 0; i < n; i++) {
		struct vfmig_error e = { 0 };
		char *at = strrchr(specs[i], '@');
		int rc = 0;

		if (at)
			*at = '\0';
		if (vfmig_vfio_open(ctx, specs[i], &devs[i], &e)) {
			report_error("open", &e);
			rc = e.cls ? e.cls : VFMIG_ERR_DEVICE;
		} else if (at && vfmig_device_set_label(devs[i], at + 1)) {
			fprintf(stderr,
				"vfio-mig: bad label '%s' for %s (1..%d printable characters, no "
				"spaces)\n",
				at + 1, specs[i], VFMIG_LABEL_LEN - 1);
			vfmig_device_close(devs[i]);
			rc = VFMIG_ERR_USAGE;
		}
		if (rc) {
			while (i-- > 0)
				vfmig_device_close(devs[i]);
			return rc;
		}
	}
	return 0;
}

static void close_devices(struct vfmig_device **devs, int n)
{
	for (int i = 0; i < n; i++)
		vfmig_device_close(devs[i]);
}

/* ---- commands --------------------------------------------------------------------- */

static int cmd_info(struct args *a)
{
	struct json_object *arr = a->json ? json_object_new_array() : NULL;
	struct vfmig_vfio_ctx *ctx = vfmig_vfio_ctx_new();
	int rc = 0;

	if (!ctx || (a->json && !arr)) {
		vfmig_vfio_ctx_free(ctx);
		json_object_put(arr);
		return VFMIG_ERR_INTERNAL;
	}
	for (int i = 0; i < a->ndevs; i++) {
		struct vfmig_device *d;
		struct vfmig_error e = { 0 };
		enum vfmig_state st = VFMIG_STATE_ERROR;
		uint64_t size = 0, fl;
		int sret, dret;

		char *at = strrchr(a->devs[i], '@');

		if (at)
			*at = '\0'; /* DEVICE@LABEL: the label only matters to a migration */
		if (vfmig_vfio_open(ctx, a->devs[i], &d, &e)) {
			report_error("info", &e);
			rc = e.cls;
			continue;
		}
		fl = vfmig_device_flags(d);
		sret = vfmig_device_get_state(d, &st);
		dret = vfmig_device_data_size(d, &size);
		if (a->json) {
			struct json_object *o = json_object_new_object();
			struct json_object *f = json_object_new_array();

			json_object_object_add(o, "device",
					       json_object_new_string(vfmig_device_name(d)));
			json_object_object_add(o, "compat",
					       json_object_new_string(vfmig_device_compat(d)));
			json_object_object_add(o, "migration_flags", json_object_new_uint64(fl));
			if (fl & VFMIG_MIG_STOP_COPY)
				json_object_array_add(f, json_object_new_string("STOP_COPY"));
			if (fl & VFMIG_MIG_P2P)
				json_object_array_add(f, json_object_new_string("P2P"));
			if (fl & VFMIG_MIG_PRE_COPY)
				json_object_array_add(f, json_object_new_string("PRE_COPY"));
			json_object_object_add(o, "features", f);
			json_object_object_add(o, "state",
					       sret ? NULL :
						      json_object_new_string(vfmig_state_name(st)));
			json_object_object_add(o, "stop_copy_bytes",
					       dret ? NULL : json_object_new_uint64(size));
			json_object_object_add(o, "config_size",
					       json_object_new_uint64(vfmig_device_config_size(d)));
			json_object_array_add(arr, o);
		} else {
			printf("%s\n", vfmig_device_name(d));
			printf("  compat:          %s\n", vfmig_device_compat(d));
			printf("  migration flags: 0x%" PRIx64 "%s%s%s\n", fl,
			       fl & VFMIG_MIG_STOP_COPY ? " STOP_COPY" : "",
			       fl & VFMIG_MIG_P2P ? " P2P" : "",
			       fl & VFMIG_MIG_PRE_COPY ? " PRE_COPY" : "");
			printf("  state:           %s\n",
			       sret ? strerror(-sret) : vfmig_state_name(st));
			if (dret)
				printf("  stop-copy size:  unknown (%s)\n", strerror(-dret));
			else
				printf("  stop-copy size:  %" PRIu64 " bytes\n", size);
			printf("  config state:    %u bytes\n", vfmig_device_config_size(d));
		}
		vfmig_device_close(d);
	}
	if (a->json) {
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
		json_object_put(arr);
	}
	vfmig_vfio_ctx_free(ctx);
	return rc;
}

/*
 * The TLS credentials of each end this command plays (send: client, recv:
 * server, migrate: both), and the rule that a listener on the network
 * authenticates its peer unless told --insecure.
 */
static int setup_tls(const struct args *a, const struct vfmig_addr *addr, struct vfmig_tls **ctls,
		     struct vfmig_tls **stls)
{
	bool tls = a->tls.psk_file || a->tls.creds_dir;
	struct vfmig_error e = { 0 };

	if (a->cmd != CMD_SEND && !tls && !a->insecure && !vfmig_addr_is_local(addr)) {
		fprintf(stderr,
			"vfio-mig: refusing to listen on %s without TLS: whoever connects first "
			"could feed device state into the driver and drive the device.\n"
			"Give --tls-psk FILE or --tls-creds DIR (on both hosts), or --insecure on a "
			"network you trust.  Loopback and UNIX sockets need neither.\n",
			a->listen);
		return VFMIG_ERR_USAGE;
	}
	if (!tls)
		return 0;
	if (a->cmd != CMD_RECV && !(*ctls = vfmig_tls_new(&a->tls, false, &e))) {
		report_error("tls", &e);
		return e.cls ? e.cls : VFMIG_ERR_USAGE;
	}
	if (a->cmd != CMD_SEND && !(*stls = vfmig_tls_new(&a->tls, true, &e))) {
		report_error("tls", &e);
		return e.cls ? e.cls : VFMIG_ERR_USAGE;
	}
	return 0;
}

struct recv_job {
	struct vfmig_session *s;
	int lfd;
	enum vfmig_errclass rc;
};

static void *recv_main(void *arg)
{
	struct recv_job *j = arg;

	j->rc = vfmig_session_recv(j->s, j->lfd);
	return NULL;
}

static int run(struct args *a, struct sigctl *sc)
{
	struct vfmig_device *src[VFMIG_MAX_DEVICES], *dst[VFMIG_MAX_DEVICES];
	struct vfmig_vfio_ctx *sctx = NULL, *dctx = NULL;
	struct vfmig_session *ss = NULL, *ds = NULL;
	struct progress_ctx pc = { .tty = isatty(2) && !a->quiet && !a->json };
	struct json_object *root = a->json ? json_object_new_object() : NULL;
	struct vfmig_options so = a->o, dopt = a->o;
	struct recv_job job = { 0 };
	char tmpdir[] = "/tmp/vfio-mig.XXXXXX", sockpath[64] = "";
	struct vfmig_error e = { 0 };
	struct vfmig_tls *ctls = NULL, *stls = NULL;
	struct vfmig_addr addr;
	pthread_t rt;
	bool rt_started = false, tmp_made = false;
	int n = a->ndevs, rc = 0, lfd = -1;

	so.log_prefix = "src";
	dopt.log_prefix = "dst";
	so.progress = progress;
	so.progress_opaque = &pc;
	pc.who = a->cmd == CMD_RECV ? "destination" : "source";
	if (a->json && !root)
		return VFMIG_ERR_INTERNAL;

	if (a->cmd == CMD_MIGRATE) {
		for (int i = 0; i < n; i++) {
			char *eq = strchr(a->devs[i], '=');

			if (!eq || eq == a->devs[i] || !eq[1]) {
				fprintf(stderr, "vfio-mig migrate: '%s' is not SRC=DST\n",
					a->devs[i]);
				rc = VFMIG_ERR_USAGE;
				goto out;
			}
		}
		if (!a->listen) {
			if (!mkdtemp(tmpdir)) {
				perror("vfio-mig: mkdtemp");
				rc = VFMIG_ERR_INTERNAL;
				goto out;
			}
			tmp_made = true;
			snprintf(sockpath, sizeof(sockpath), "unix:%s/sock", tmpdir);
		}
	}
	if (vfmig_addr_parse(a->cmd == CMD_SEND ? a->to :
			     a->listen		? a->listen :
						  sockpath,
			     &addr, &e)) {
		report_error("address", &e);
		rc = e.cls;
		goto out;
	}

	rc = setup_tls(a, &addr, &ctls, &stls);
	if (rc)
		goto out;
	so.tls = ctls;
	dopt.tls = stls;
	dopt.insecure = a->insecure; /* checked above with a message for the command line */

	sctx = vfmig_vfio_ctx_new();
	dctx = vfmig_vfio_ctx_new();
	if (!sctx || !dctx) {
		rc = VFMIG_ERR_INTERNAL;
		goto out;
	}
	if (a->cmd == CMD_MIGRATE) {
		char *specs[VFMIG_MAX_DEVICES], *dspecs[VFMIG_MAX_DEVICES];

		for (int i = 0; i < n; i++) {
			specs[i] = a->devs[i];
			dspecs[i] = strchr(a->devs[i], '=') + 1;
			*(dspecs[i] - 1) = '\0';
		}
		rc = open_devices(sctx, specs, n, src);
		if (rc)
			goto out;
		rc = open_devices(dctx, dspecs, n, dst);
		if (rc) {
			close_devices(src, n);
			goto out;
		}
	} else {
		rc = open_devices(a->cmd == CMD_SEND ? sctx : dctx, a->devs, n,
				  a->cmd == CMD_SEND ? src : dst);
		if (rc)
			goto out;
	}

	if (a->cmd != CMD_SEND) {
		lfd = vfmig_listen(&addr, &e);
		if (lfd < 0) {
			report_error("listen", &e);
			rc = e.cls;
			goto close;
		}
		ds = vfmig_session_new(false, dst, (unsigned)n, &dopt);
		if (!ds) {
			rc = VFMIG_ERR_INTERNAL;
			goto close;
		}
		sigctl_set(sc, 1, ds);
	}
	if (a->cmd != CMD_RECV) {
		ss = vfmig_session_new(true, src, (unsigned)n, &so);
		if (!ss) {
			rc = VFMIG_ERR_INTERNAL;
			goto close;
		}
		sigctl_set(sc, 0, ss);
	}

	if (a->cmd == CMD_RECV) {
		if (pc.tty)
			fprintf(stderr, "destination: waiting for the source on %s\n", a->listen);
		rc = vfmig_session_recv(ds, lfd);
		if (rc)
			report_error("destination", vfmig_session_error(ds));
		print_stats(a, root, "destination", vfmig_session_stats(ds),
			    vfmig_session_error(ds));
	} else if (a->cmd == CMD_SEND) {
		rc = vfmig_session_send(ss, &addr);
		if (rc)
			report_error("source", vfmig_session_error(ss));
		print_stats(a, root, "source", vfmig_session_stats(ss), vfmig_session_error(ss));
	} else {
		enum vfmig_errclass src_rc;

		job.s = ds;
		job.lfd = lfd;
		if (pthread_create(&rt, NULL, recv_main, &job)) {
			rc = VFMIG_ERR_INTERNAL;
			goto close;
		}
		rt_started = true;
		src_rc = vfmig_session_send(ss, &addr);
		/* A source that failed before connecting must not leave the destination
		 * waiting for its --timeout. */
		if (src_rc) {
			char why[300];

			snprintf(why, sizeof(why), "source failed: %s",
				 vfmig_session_error(ss)->msg);
			vfmig_session_abort(ds, VFMIG_ERR_REMOTE, why);
		}
		pthread_join(rt, NULL);
		rt_started = false;
		/*
		 * Both sides are here: a source that cannot know whether COMMIT
		 * arrived (its COMPLETE was lost) is told by the destination itself.
		 */
		if (src_rc == VFMIG_ERR_OUTCOME_UNKNOWN) {
			switch (vfmig_session_owner(ds)) {
			case VFMIG_OWNER_DESTINATION:
				fprintf(stderr,
					"vfio-mig: source: %s\nvfio-mig: the destination "
					"received COMMIT: it owns the device state\n",
					vfmig_session_error(ss)->msg);
				src_rc = job.rc; /* 0, or 13 if a device did not start */
				break;
			case VFMIG_OWNER_SOURCE:
				/* The destination failed before COMMIT and reset: nobody runs it. */
				if (!vfmig_session_resume(ss))
					src_rc = job.rc ? job.rc : VFMIG_ERR_INTERNAL;
				break;
			case VFMIG_OWNER_UNKNOWN:
				break;
			}
		}
		if (src_rc)
			report_error("source", vfmig_session_error(ss));
		if (job.rc)
			report_error("destination", vfmig_session_error(ds));
		/* Report the root cause: a peer-failed source points at the destination. */
		rc = src_rc;
		if (src_rc == VFMIG_ERR_REMOTE && job.rc && job.rc != VFMIG_ERR_REMOTE)
			rc = job.rc;
		if (!rc)
			rc = job.rc;
		print_stats(a, root, "source", vfmig_session_stats(ss), vfmig_session_error(ss));
		print_stats(a, root, "destination", vfmig_session_stats(ds),
			    vfmig_session_error(ds));
		if (!rc) {
			bool all_fake = true, same = true;

			for (int i = 0; i < n; i++) {
				all_fake &= vfmig_is_fake(src[i]) && vfmig_is_fake(dst[i]);
				if (all_fake)
					same &= vfmig_fake_digest(src[i]) ==
						vfmig_fake_digest(dst[i]);
			}
			if (all_fake && !same) {
				fprintf(stderr,
					"vfio-mig: fake device digests differ after migration\n");
				rc = VFMIG_ERR_INTERNAL;
			} else if (all_fake && !a->quiet && !a->json) {
				fprintf(stderr,
					"verify: every destination fake device equals its source\n");
			}
		}
	}
	if (a->json)
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));

close:
	if (rt_started)
		pthread_join(rt, NULL);
	sigctl_set(sc, 0, NULL);
	sigctl_set(sc, 1, NULL);
	vfmig_session_free(ss);
	vfmig_session_free(ds);
	if (lfd >= 0)
		close(lfd);
	if (a->cmd != CMD_RECV)
		close_devices(src, n);
	if (a->cmd != CMD_SEND)
		close_devices(dst, n);
	if (addr.family == AF_UNIX && a->cmd != CMD_SEND)
		unlink(addr.path);
out:
	if (tmp_made)
		rmdir(tmpdir);
	vfmig_vfio_ctx_free(sctx);
	vfmig_vfio_ctx_free(dctx);
	vfmig_tls_free(ctls);
	vfmig_tls_free(stls);
	json_object_put(root);
	return rc;
}

int main(int argc, char **argv)
{
	struct sigctl sc = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct args a = { 0 };
	pthread_t st;
	sigset_t set;
	int rc;

	if (argc < 2) {
		usage(stderr);
		return VFMIG_ERR_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("vfio-mig %s\n", VFMIG_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "send")) {
		a.cmd = CMD_SEND;
	} else if (!strcmp(argv[1], "recv")) {
		a.cmd = CMD_RECV;
	} else if (!strcmp(argv[1], "migrate")) {
		a.cmd = CMD_MIGRATE;
	} else if (!strcmp(argv[1], "info")) {
		a.cmd = CMD_INFO;
	} else {
		fprintf(stderr, "vfio-mig: unknown command '%s' (send, recv, migrate, info)\n",
			argv[1]);
		return VFMIG_ERR_USAGE;
	}
	if (parse_args(argc - 1, argv + 1, &a))
		return VFMIG_ERR_USAGE;
	if (a.cmd == CMD_INFO)
		return cmd_info(&a);

	/* Every thread inherits this mask; only the signal thread takes them. */
	signal_set(&set);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) ||
	    pthread_create(&st, NULL, signal_thread, &sc)) {
		fprintf(stderr, "vfio-mig: cannot set up signal handling\n");
		return VFMIG_ERR_INTERNAL;
	}
	signal(SIGPIPE, SIG_IGN);
	rc = run(&a, &sc);
	pthread_kill(st, SIGUSR1);
	pthread_join(st, NULL);
	return rc;
}
