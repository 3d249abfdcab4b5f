// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * tls_creds.c - TLS credentials in QEMU's layouts, read once: a keys.psk
 * file ("identity:hexkey" lines) or an X.509 directory (ca-cert.pem,
 * optional ca-crl.pem, {server,client}-{cert,key}.pem).  After loading they
 * are only read, so the sessions of every channel share them (tls.c).
 *
 * Secret files are opened without blocking (a FIFO cannot hang the start),
 * then checked on the open descriptor (a regular file owned by the effective
 * user or root, that neither group nor others can access), read into memory
 * that is wiped after use, and never printed.  A pre-shared key has at least
 * VFMIG_PSK_MIN bytes.  Every copy of key material is wiped before it is
 * freed (no realloc() of secrets); an end keeps only the key it uses.
 *
 * Locks: none (read-only after vfmig_tls_new()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tls.h"
#include "vfmig_internal.h"

#define SECRET_MAX (64u << 10)
/*
 * 128 bits: a PSK handshake recorded on the wire lets anyone test guesses of
 * the key offline, as fast as they can compute, so a short key is a weak one.
 */
#define VFMIG_PSK_MIN 16
#define PRIO_X509 "NORMAL:-VERS-ALL:+VERS-TLS1.3"
/* TLS 1.3 PSK with (EC)DHE: forward secrecy even if the key leaks later. */
#define PRIO_PSK "NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK:+DHE-PSK"
/*
 * With AES-NI and PCLMULQDQ, AES-GCM first: GnuTLS 3.7's NORMAL let the
 * two ends settle on CHACHA20-POLY1305, which on such a CPU is nine times
 * slower (gnutls-cli --benchmark-ciphers: AES-128-GCM 4.58 GB/s,
 * CHACHA20-POLY1305 0.52 GB/s) and cut the stop-copy throughput over TLS to
 * 0.27 of plain TCP (Documentation/benchmarks.rst, E). Without them GnuTLS's
 * own order stands (ChaCha20 is the faster one there).
 */
#define PRIO_AES_FIRST ":-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"

static bool cpu_has_aes_gcm(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#else
	return false;
#endif
}

/* ---- credentials ------------------------------------------------------------------ */

static void wipe_free(void *p, size_t len)
{
	if (!p)
		return;
	explicit_bzero(p, len);
	free(p);
}

/* A secret file: regular, not accessible by group or others, at most SECRET_MAX bytes. */
static int read_secret(const char *path, char **out, size_t *outlen, struct vfmig_error *err)
{
	struct stat st;
	size_t len = 0;
	char *buf = NULL;
	int fd, e;

	/* O_NONBLOCK: a FIFO or a device must not hang the start before the checks. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		vfmig_error_set(err, VFMIG_ERR_USAGE, e, -1, "tls", "cannot open %s: %s", path,
				strerror(e));
		return -e;
	}
	if (fstat(fd, &st)) {
		e = errno;
		goto fail_errno;
	}
	if (!S_ISREG(st.st_mode)) {
		vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls", "%s is not a regular file",
				path);
		e = EINVAL;
		goto fail;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		vfmig_error_set(err, VFMIG_ERR_USAGE, EACCES, -1, "tls",
				"%s holds a secret but is owned by uid %u, not by this user (uid "
				"%u) or root: refusing it",
				path, (unsigned)st.st_uid, (unsigned)geteuid());
		e = EACCES;
		goto fail;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		vfmig_error_set(err, VFMIG_ERR_USAGE, EACCES, -1, "tls",
				"%s holds a secret but group or others can access it (mode %04o): "
				"refusing it; chmod 600 %s",
				path, (unsigned)(st.st_mode & 07777), path);
		e = EACCES;
		goto fail;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > SECRET_MAX) {
		vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls",
				"%s: size %lld outside 1..%u bytes", path, (long long)st.st_size,
				SECRET_MAX);
		e = EINVAL;
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		e = ENOMEM;
		goto fail_errno;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue; /* a regular file: EAGAIN is not expected, and passes */
		if (n < 0) {
			e = errno;
			goto fail_errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	*out = buf;
	*outlen = len;
	return 0;
fail_errno:
	vfmig_error_set(err, VFMIG_ERR_USAGE, e, -1, "tls", "cannot read %s: %s", path,
			strerror(e));
fail:
	wipe_free(buf, (size_t)st.st_size + 1);
	close(fd);
	return -e;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* QEMU's keys.psk: "identity:hexkey" per line; empty lines are skipped. */
static int load_psk_file(struct vfmig_tls *t, const char *path, struct vfmig_error *err)
{
	char *buf, *line, *save = NULL;
	unsigned lineno = 0;
	size_t len;
	unsigned nlines = 1;
	int ret = read_secret(path, &buf, &len, err);

	if (ret)
		return ret;
	/* The array is allocated once: a realloc() would leave copies of keys behind. */
	for (size_t i = 0; i < len; i++)
		nlines += buf[i] == '\n';
	t->keys = calloc(nlines, sizeof(*t->keys));
	t->nalloc = t->keys ? nlines : 0;
	if (!t->keys) {
		ret = -ENOMEM;
		goto out;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':'), *hex;
		size_t hl = 0;
		struct vfmig_psk_entry *e;

		lineno++;
		if (line[0] && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = '\0';
		if (!line[0])
			continue;
		if (colon)
			hl = strlen(colon + 1);
		if (!colon || colon == line || !hl || hl % 2 || hl / 2 > VFMIG_PSK_MAX) {
			vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls",
					"%s line %u: expected identity:hexkey (1..%u key bytes)",
					path, lineno, VFMIG_PSK_MAX);
			ret = -EINVAL;
			goto out;
		}
		if (hl / 2 < VFMIG_PSK_MIN) {
			vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls",
					"%s line %u: the key has %zu bytes; at least %u bytes (%u "
					"bits) are needed, since a recorded handshake lets anyone "
					"test guesses of a shorter key offline",
					path, lineno, hl / 2, VFMIG_PSK_MIN, VFMIG_PSK_MIN * 8);
			ret = -EINVAL;
			goto out;
		}
		e = &t->keys[t->nkeys];
		memset(e, 0, sizeof(*e));
		*colon = '\0';
		hex = colon + 1;
		for (size_t i = 0; i < hl / 2; i++) {
			int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				explicit_bzero(e->key, sizeof(e->key));
				vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls",
						"%s line %u: the key is not hexadecimal", path,
						lineno);
				ret = -EINVAL;
				goto out;
			}
			e->key[i] = (uint8_t)(hi << 4 | lo);
		}
		e->keylen = hl / 2;
		e->identity = strdup(line);
		if (!e->identity) {
			explicit_bzero(e->key, sizeof(e->key));
			ret = -ENOMEM;
			goto out;
		}
		t->nkeys++;
	}
	if (!t->nkeys) {
		vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls", "%s holds no key", path);
		ret = -EINVAL;
	}
out:
	if (ret == -ENOMEM)
		vfmig_error_set(err, VFMIG_ERR_INTERNAL, ENOMEM, -1, "tls", "out of memory");
	wipe_free(buf, len + 1);
	return ret;
}

static const struct vfmig_psk_entry *psk_find(const struct vfmig_tls *t, const char *identity)
{
	for (unsigned i = 0; i < t->nkeys; i++) {
		if (!strcmp(t->keys[i].identity, identity))
			return &t->keys[i];
	}
	return NULL;
}

/* Server: the key of the identity a client names (from the file, never logged). */
static int psk_lookup(gnutls_session_t s, const char *identity, gnutls_datum_t *key)
{
	const struct vfmig_tls *t = gnutls_session_get_ptr(s);
	const struct vfmig_psk_entry *e = psk_find(t, identity);

	if (!e)
		return -1;
	key->data = gnutls_malloc(e->keylen);
	if (!key->data)
		return -1;
	memcpy(key->data, e->key, e->keylen);
	key->size = (unsigned)e->keylen;
	return 0;
}

/* Keep entry @k alone, in slot 0; every other key and the old slot wiped. */
static void keep_only(struct vfmig_tls *t, unsigned k)
{
	for (unsigned i = 0; i < t->nkeys; i++) {
		if (i == k)
			continue;
		explicit_bzero(t->keys[i].key, sizeof(t->keys[i].key));
		free(t->keys[i].identity);
		t->keys[i].identity = NULL;
	}
	if (k) {
		memcpy(&t->keys[0], &t->keys[k], sizeof(t->keys[0]));
		explicit_bzero(&t->keys[k], sizeof(t->keys[k]));
	}
	t->nkeys = 1;
}

static int gnutls_fail(struct vfmig_error *err, const char *what, const char *path, int r)
{
	vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls", "%s%s%s: %s", what,
			path ? " " : "", path ? path : "", gnutls_strerror(r));
	return -EINVAL;
}

static int load_psk(struct vfmig_tls *t, const struct vfmig_tls_config *cfg,
		    struct vfmig_error *err)
{
	const char *id = cfg->psk_identity ? cfg->psk_identity : "qemu";
	int ret = load_psk_file(t, cfg->psk_file, err), r;

	if (ret)
		return ret;
	if (t->server) {
		r = gnutls_psk_allocate_server_credentials(&t->psks);
		if (r < 0)
			return gnutls_fail(err, "PSK credentials", NULL, r);
		gnutls_psk_set_server_credentials_function(t->psks, psk_lookup);
		if (!cfg->psk_identity)
			return 0;
	}
	/* A client uses one identity; a server given one accepts only that one. */
	const struct vfmig_psk_entry *e = psk_find(t, id);

	if (!e) {
		vfmig_error_set(err, VFMIG_ERR_USAGE, ENOENT, -1, "tls",
				"identity '%s' is not in %s (--tls-psk-identity)", id,
				cfg->psk_file);
		return -ENOENT;
	}
	keep_only(t, (unsigned)(e - t->keys));
	e = &t->keys[0];
	if (t->server)
		return 0;
	r = gnutls_psk_allocate_client_credentials(&t->pskc);
	if (r < 0)
		return gnutls_fail(err, "PSK credentials", NULL, r);
	r = gnutls_psk_set_client_credentials(
		t->pskc, id,
		&(gnutls_datum_t){ .data = (uint8_t *)e->key, .size = (unsigned)e->keylen },
		GNUTLS_PSK_KEY_RAW);
	return r < 0 ? gnutls_fail(err, "PSK credentials", NULL, r) : 0;
}

/*
 * Our own certificate (the first in @cd) must be for our end: TLS server
 * or client authentication in its extended key usage, when it has one.
 * (Checked for the server end; a client's is checked by the server, at the
 * handshake.)
 */
static int check_purpose(const gnutls_datum_t *cd, bool server, const char *path,
			 struct vfmig_error *err)
{
	const char *need = server ? GNUTLS_KP_TLS_WWW_SERVER : GNUTLS_KP_TLS_WWW_CLIENT;
	gnutls_x509_crt_t crt;
	int ret = -EINVAL, r;

	if (gnutls_x509_crt_init(&crt) < 0)
		return -ENOMEM;
	r = gnutls_x509_crt_import(crt, cd, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		ret = gnutls_fail(err, "certificate", path, r);
		goto out;
	}
	for (unsigned i = 0;; i++) {
		char oid[128];
		size_t len = sizeof(oid);

		r = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &len, NULL);
		if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE && i == 0)
			ret = 0; /* no extended key usage: any purpose */
		if (r < 0)
			break;
		if (!strcmp(oid, need) || !strcmp(oid, GNUTLS_KP_ANY)) {
			ret = 0;
			break;
		}
	}
	if (ret)
		vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls",
				"%s: its key purpose (extended key usage) is not TLS %s "
				"authentication: it is not a %s certificate",
				path, server ? "server" : "client", server ? "server" : "client");
out:
	gnutls_x509_crt_deinit(crt);
	return ret;
}

static char *dir_file(const char *dir, const char *name)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* QEMU's X.509 directory: ca-cert.pem [ca-crl.pem] {server,client}-{cert,key}.pem. */
static int load_x509(struct vfmig_tls *t, const struct vfmig_tls_config *cfg,
		     struct vfmig_error *err)
{
	const char *who = t->server ? "server" : "client";
	char name[32], *ca = dir_file(cfg->creds_dir, "ca-cert.pem");
	char *crl = dir_file(cfg->creds_dir, "ca-crl.pem"), *cert = NULL, *key = NULL;
	gnutls_datum_t cd = { 0 }, kd = { 0 };
	char *kbuf = NULL;
	size_t klen = 0;
	int ret = -ENOMEM, r;

	snprintf(name, sizeof(name), "%s-cert.pem", who);
	cert = dir_file(cfg->creds_dir, name);
	snprintf(name, sizeof(name), "%s-key.pem", who);
	key = dir_file(cfg->creds_dir, name);
	if (!ca || !crl || !cert || !key) {
		vfmig_error_set(err, VFMIG_ERR_INTERNAL, ENOMEM, -1, "tls", "out of memory");
		goto out;
	}
	r = gnutls_certificate_allocate_credentials(&t->x509);
	if (r < 0) {
		ret = gnutls_fail(err, "X.509 credentials", NULL, r);
		goto out;
	}
	r = gnutls_certificate_set_x509_trust_file(t->x509, ca, GNUTLS_X509_FMT_PEM);
	if (r <= 0) {
		ret = r ? gnutls_fail(err, "CA certificate", ca, r) : -EINVAL;
		if (!r)
			vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls",
					"CA certificate %s: no certificate in it", ca);
		goto out;
	}
	if (!access(crl, F_OK)) {
		r = gnutls_certificate_set_x509_crl_file(t->x509, crl, GNUTLS_X509_FMT_PEM);
		if (r < 0) {
			ret = gnutls_fail(err, "CRL", crl, r);
			goto out;
		}
	}
	r = gnutls_load_file(cert, &cd);
	if (r < 0) {
		ret = gnutls_fail(err, "certificate", cert, r);
		goto out;
	}
	/* recv's own certificate: a client's would be refused by every source. */
	ret = t->server ? check_purpose(&cd, true, cert, err) : 0;
	if (ret)
		goto out;
	ret = read_secret(key, &kbuf, &klen, err);
	if (ret)
		goto out;
	kd.data = (uint8_t *)kbuf;
	kd.size = (unsigned)klen;
	r = gnutls_certificate_set_x509_key_mem(t->x509, &cd, &kd, GNUTLS_X509_FMT_PEM);
	if (r < 0) {
		vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls", "%s with %s: %s", cert,
				key, gnutls_strerror(r));
		ret = -EINVAL;
		goto out;
	}
	ret = 0;
out:
	wipe_free(kbuf, klen + 1);
	gnutls_free(cd.data);
	free(ca);
	free(crl);
	free(cert);
	free(key);
	return ret;
}

struct vfmig_tls *vfmig_tls_new(const struct vfmig_tls_config *cfg, bool server,
				struct vfmig_error *err)
{
	struct vfmig_tls *t;
	int r;

	if (!cfg->psk_file == !cfg->creds_dir) {
		vfmig_error_set(err, VFMIG_ERR_USAGE, EINVAL, -1, "tls",
				"TLS needs either a PSK file or an X.509 directory, not %s",
				cfg->psk_file ? "both" : "neither");
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		vfmig_error_set(err, VFMIG_ERR_INTERNAL, ENOMEM, -1, "tls", "out of memory");
		return NULL;
	}
	t->server = server;
	t->psk = cfg->psk_file != NULL;
	if (cfg->hostname && !(t->hostname = strdup(cfg->hostname)))
		goto nomem;
	if (cfg->n_allow_dn) {
		t->allow_dn = calloc(cfg->n_allow_dn, sizeof(*t->allow_dn));
		if (!t->allow_dn)
			goto nomem;
		for (; t->n_allow_dn < cfg->n_allow_dn; t->n_allow_dn++) {
			t->allow_dn[t->n_allow_dn] = strdup(cfg->allow_dn[t->n_allow_dn]);
			if (!t->allow_dn[t->n_allow_dn])
				goto nomem;
		}
	}
	if (t->psk ? load_psk(t, cfg, err) : load_x509(t, cfg, err))
		goto fail;
	{
		char prio[sizeof(PRIO_PSK) + sizeof(PRIO_AES_FIRST)];

		snprintf(prio, sizeof(prio), "%s%s", t->psk ? PRIO_PSK : PRIO_X509,
			 cpu_has_aes_gcm() ? PRIO_AES_FIRST : "");
		r = gnutls_priority_init(&t->prio, prio, NULL);
	}
	if (r < 0) {
		gnutls_fail(err, "priority", NULL, r);
		goto fail;
	}
	return t;
nomem:
	vfmig_error_set(err, VFMIG_ERR_INTERNAL, ENOMEM, -1, "tls", "out of memory");
fail:
	vfmig_tls_free(t);
	return NULL;
}

void vfmig_tls_free(struct vfmig_tls *t)
{
	if (!t)
		return;
	if (t->prio)
		gnutls_priority_deinit(t->prio);
	if (t->x509)
		gnutls_certificate_free_credentials(t->x509);
	if (t->pskc)
		gnutls_psk_free_client_credentials(t->pskc);
	if (t->psks)
		gnutls_psk_free_server_credentials(t->psks);
	for (unsigned i = 0; i < t->nkeys; i++) {
		explicit_bzero(t->keys[i].key, sizeof(t->keys[i].key));
		free(t->keys[i].identity);
	}
	if (t->keys)
		explicit_bzero(t->keys, t->nalloc * sizeof(*t->keys));
	free(t->keys);
	for (unsigned i = 0; i < t->n_allow_dn; i++)
		free(t->allow_dn[i]);
	free(t->allow_dn);
	free(t->hostname);
	free(t);
}

const char *vfmig_tls_kind(const struct vfmig_tls *t)
{
	return t->psk ? "PSK" : "X.509";
}
