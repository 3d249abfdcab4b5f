/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * tlsgen.h - TLS credentials made at test time with the GnuTLS API (nothing
 * secret is committed): a CA and its server and client certificates in
 * QEMU's directory layout, and keys.psk files.
 *
 *	struct tlsgen g;
 *	tlsgen_init(&g);                        a private directory under /tmp
 *	tlsgen_x509(&g, "good", "CA one");      good/{ca-cert,server-*,client-*}.pem
 *	tlsgen_psk(&g, "keys.psk", "qemu", 1);  qemu:<32 random-looking bytes of seed 1>
 *	... g.dir ...
 *	tlsgen_fini(&g);                        removes everything
 *
 * The server certificate names "dest.example" and "localhost"; the client's
 * DN is TLSGEN_CLIENT_DN.  Keys are ECDSA P-256 (fast to make); key files
 * are mode 0600.
 */
#ifndef VFMIG_TEST_TLSGEN_H
#define VFMIG_TEST_TLSGEN_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define TLSGEN_CLIENT_DN "CN=vfio-mig source,O=mtty-mig tests"
#define TLSGEN_SERVER_NAME "dest.example"

struct tlsgen {
	char dir[64];
};

static inline int tlsgen_write(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int ret = 0;

	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) || write(fd, buf, len) != (ssize_t)len)
		ret = -1;
	return close(fd) || ret ? -1 : 0;
}

static inline int tlsgen_init(struct tlsgen *g)
{
	snprintf(g->dir, sizeof(g->dir), "/tmp/vfmig-tls.XXXXXX");
	return mkdtemp(g->dir) ? 0 : -1;
}

/* Remove every file and directory under g->dir (one level of subdirectories). */
static inline void tlsgen_fini(struct tlsgen *g)
{
	char cmd[128];

	if (!g->dir[0] || strncmp(g->dir, "/tmp/vfmig-tls.", 15))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g->dir);
	if (system(cmd)) {
		/* best effort */
	}
}

static inline int tlsgen_key(gnutls_x509_privkey_t *k)
{
	return gnutls_x509_privkey_init(k) < 0 ||
			       gnutls_x509_privkey_generate(
				       *k, GNUTLS_PK_ECDSA,
				       GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ?
		       -1 :
		       0;
}

/* A certificate for @key with @dn, signed by (ca, cakey), or self-signed when ca is NULL. */
static inline int tlsgen_cert(gnutls_x509_crt_t *crt, gnutls_x509_privkey_t key, const char *dn,
			      int serial, gnutls_x509_crt_t ca, gnutls_x509_privkey_t cakey,
			      bool server)
{
	time_t now = time(NULL);
	unsigned char ser = (unsigned char)serial, id[64];
	size_t idlen = sizeof(id);

	if (gnutls_x509_crt_init(crt) < 0 || gnutls_x509_crt_set_version(*crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(*crt, &ser, 1) < 0 ||
	    gnutls_x509_crt_set_activation_time(*crt, now - 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(*crt, now + 86400) < 0 ||
	    gnutls_x509_crt_set_dn(*crt, dn, NULL) < 0 || gnutls_x509_crt_set_key(*crt, key) < 0 ||
	    gnutls_x509_crt_get_key_id(*crt, 0, id, &idlen) < 0 ||
	    gnutls_x509_crt_set_subject_key_id(*crt, id, idlen) < 0)
		return -1;
	if (!ca) {
		if (gnutls_x509_crt_set_basic_constraints(*crt, 1, -1) < 0 ||
		    gnutls_x509_crt_set_key_usage(*crt, GNUTLS_KEY_KEY_CERT_SIGN |
								GNUTLS_KEY_CRL_SIGN) < 0)
			return -1;
		return gnutls_x509_crt_sign2(*crt, *crt, key, GNUTLS_DIG_SHA256, 0) < 0 ? -1 : 0;
	}
	idlen = sizeof(id);
	if (gnutls_x509_crt_set_basic_constraints(*crt, 0, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(*crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
	    gnutls_x509_crt_set_key_purpose_oid(
		    *crt, server ? GNUTLS_KP_TLS_WWW_SERVER : GNUTLS_KP_TLS_WWW_CLIENT, 0) < 0 ||
	    gnutls_x509_crt_get_subject_key_id(ca, id, &idlen, NULL) < 0 ||
	    gnutls_x509_crt_set_authority_key_id(*crt, id, idlen) < 0)
		return -1;
	if (server && (gnutls_x509_crt_set_subject_alt_name(
			       *crt, GNUTLS_SAN_DNSNAME, TLSGEN_SERVER_NAME,
			       strlen(TLSGEN_SERVER_NAME), GNUTLS_FSAN_SET) < 0 ||
		       gnutls_x509_crt_set_subject_alt_name(*crt, GNUTLS_SAN_DNSNAME, "localhost",
							    9, GNUTLS_FSAN_APPEND) < 0))
		return -1;
	return gnutls_x509_crt_sign2(*crt, ca, cakey, GNUTLS_DIG_SHA256, 0) < 0 ? -1 : 0;
}

static inline int tlsgen_save_crt(const char *dir, const char *name, gnutls_x509_crt_t crt)
{
	gnutls_datum_t d = { 0 };
	char path[256];
	int ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) < 0)
		return -1;
	ret = tlsgen_write(path, d.data, d.size, 0644);
	gnutls_free(d.data);
	return ret;
}

static inline int tlsgen_save_key(const char *dir, const char *name, gnutls_x509_privkey_t k)
{
	gnutls_datum_t d = { 0 };
	char path[256];
	int ret;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (gnutls_x509_privkey_export2(k, GNUTLS_X509_FMT_PEM, &d) < 0)
		return -1;
	ret = tlsgen_write(path, d.data, d.size, 0600);
	gnutls_free(d.data);
	return ret;
}

/* g->dir/@sub: a CA named @ca_cn and its server and client certificates. */
static inline int tlsgen_x509(struct tlsgen *g, const char *sub, const char *ca_cn)
{
	gnutls_x509_privkey_t cak = NULL, sk = NULL, ck = NULL;
	gnutls_x509_crt_t ca = NULL, sc = NULL, cc = NULL;
	char dir[128], dn[128];
	int ret = -1;

	snprintf(dir, sizeof(dir), "%s/%s", g->dir, sub);
	snprintf(dn, sizeof(dn), "CN=%s,O=mtty-mig tests", ca_cn);
	if (mkdir(dir, 0700) || tlsgen_key(&cak) || tlsgen_key(&sk) || tlsgen_key(&ck) ||
	    tlsgen_cert(&ca, cak, dn, 1, NULL, NULL, false) ||
	    tlsgen_cert(&sc, sk, "CN=" TLSGEN_SERVER_NAME ",O=mtty-mig tests", 2, ca, cak, true) ||
	    tlsgen_cert(&cc, ck, TLSGEN_CLIENT_DN, 3, ca, cak, false) ||
	    tlsgen_save_crt(dir, "ca-cert.pem", ca) ||
	    tlsgen_save_crt(dir, "server-cert.pem", sc) ||
	    tlsgen_save_key(dir, "server-key.pem", sk) ||
	    tlsgen_save_crt(dir, "client-cert.pem", cc) ||
	    tlsgen_save_key(dir, "client-key.pem", ck))
		goto out;
	ret = 0;
out:
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crt_deinit(sc);
	gnutls_x509_crt_deinit(cc);
	gnutls_x509_privkey_deinit(cak);
	gnutls_x509_privkey_deinit(sk);
	gnutls_x509_privkey_deinit(ck);
	return ret;
}

/* g->dir/@name (mode @mode): "identity:hexkey" with a 32-byte key derived from @seed. */
static inline int tlsgen_psk_mode(struct tlsgen *g, const char *name, const char *identity,
				  unsigned seed, mode_t mode)
{
	char path[128], line[256];
	int n = snprintf(line, sizeof(line), "%s:", identity);

	for (int i = 0; i < 32; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x",
			      (unsigned)((seed * 2654435761u + (unsigned)i * 40503u) >> 8) & 0xff);
	line[n++] = '\n';
	snprintf(path, sizeof(path), "%s/%s", g->dir, name);
	return tlsgen_write(path, line, (size_t)n, mode);
}

static inline int tlsgen_psk(struct tlsgen *g, const char *name, const char *identity,
			     unsigned seed)
{
	return tlsgen_psk_mode(g, name, identity, seed, 0600);
}

#endif
