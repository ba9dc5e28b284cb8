/*
 * Throwaway CA and certificates (contract in rq_certs.h), with GnuTLS's
 * x509 API. Nothing here runs in a server: it is for `raftq dev --tls` and
 * tests, which need certificates made on the spot.
 */
#include "rq_certs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rq_err.h"

#define CA_DAYS 3650
#define CERT_DAYS 365
#define DAY_S (24 * 60 * 60)

struct rq_ca {
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t key;
    char *pem;
};

static int new_key(gnutls_x509_privkey_t *out)
{
    int rv = gnutls_x509_privkey_init(out);
    if (rv < 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    rv = gnutls_x509_privkey_generate(
        *out, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
        0);
    if (rv < 0) {
        gnutls_x509_privkey_deinit(*out); /* UNTESTED: RNG failure only. */
    }
    return rv;
}

/* A random positive 16-byte serial, as RFC 5280 asks (at most 20 bytes). */
static int set_serial(gnutls_x509_crt_t crt)
{
    unsigned char serial[16];
    int rv = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial);
    if (rv < 0) {
        return rv; /* UNTESTED: RNG failure only. */
    }
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    return gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
}

/* Common fields: version, serial, names, validity (from an hour ago, so
 * clocks a little behind still accept it), key. */
static int fill(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
                const char *cn, unsigned days)
{
    time_t now = time(NULL);
    int rv;

    if ((rv = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
        (rv = set_serial(crt)) < 0 ||
        (rv = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                            cn, (unsigned)strlen(cn))) < 0 ||
        (rv = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
        (rv = gnutls_x509_crt_set_expiration_time(
             crt, now + (time_t)days * DAY_S)) < 0 ||
        (rv = gnutls_x509_crt_set_key(crt, key)) < 0) {
        return rv;
    }
    return 0;
}

static char *export_pem(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
    gnutls_datum_t d = {NULL, 0};
    char *out;
    int rv = crt != NULL
                 ? gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d)
                 : gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d);
    if (rv < 0) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    out = malloc(d.size + 1);
    if (out != NULL) {
        memcpy(out, d.data, d.size);
        out[d.size] = '\0';
    }
    gnutls_free(d.data);
    return out;
}

int rq_ca_new(const char *cn, struct rq_ca **out, char *why, size_t whyn)
{
    struct rq_ca *ca = calloc(1, sizeof *ca);
    int rv;

    if (ca == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    rv = new_key(&ca->key);
    if (rv < 0) {
        free(ca); /* UNTESTED: RNG failure only. */
        goto err;
    }
    rv = gnutls_x509_crt_init(&ca->crt);
    if (rv < 0) {
        gnutls_x509_privkey_deinit(ca->key); /* UNTESTED: ENOMEM only. */
        free(ca);
        goto err;
    }
    if ((rv = fill(ca->crt, ca->key, cn, CA_DAYS)) < 0 ||
        (rv = gnutls_x509_crt_set_basic_constraints(ca->crt, 1, 0)) < 0 ||
        (rv = gnutls_x509_crt_set_key_usage(
             ca->crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN)) < 0 ||
        (rv = gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key,
                                    GNUTLS_DIG_SHA256, 0)) < 0 ||
        (ca->pem = export_pem(ca->crt, NULL)) == NULL) {
        rq_ca_free(ca); /* UNTESTED: library failures only. */
        goto err;
    }
    *out = ca;
    return 0;

err:
    rq_why(why, whyn, "cannot make a CA: %s",
           rv < 0 ? gnutls_strerror(rv) : "out of memory");
    return RQ_IO;
}

void rq_ca_free(struct rq_ca *ca)
{
    if (ca == NULL) {
        return;
    }
    gnutls_x509_crt_deinit(ca->crt);
    gnutls_x509_privkey_deinit(ca->key);
    free(ca->pem);
    free(ca);
}

const char *rq_ca_pem(const struct rq_ca *ca)
{
    return ca->pem;
}

static int add_san(gnutls_x509_crt_t crt, const char *san)
{
    unsigned char ip[16];
    if (inet_pton(AF_INET, san, ip) == 1) {
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS,
                                                    ip, 4, GNUTLS_FSAN_APPEND);
    }
    if (inet_pton(AF_INET6, san, ip) == 1) {
        return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS,
                                                    ip, 16, GNUTLS_FSAN_APPEND);
    }
    return gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, san,
                                                (unsigned)strlen(san),
                                                GNUTLS_FSAN_APPEND);
}

int rq_ca_issue(const struct rq_ca *ca, const char *cn, const char *const *sans,
                size_t n, char **cert_pem, char **key_pem, char *why,
                size_t whyn)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    char *c = NULL;
    char *k = NULL;
    int rv;

    rv = new_key(&key);
    if (rv < 0) {
        goto err; /* UNTESTED: RNG failure only. */
    }
    rv = gnutls_x509_crt_init(&crt);
    if (rv < 0) {
        goto err_after_key; /* UNTESTED: ENOMEM only. */
    }
    if ((rv = fill(crt, key, cn, CERT_DAYS)) < 0 ||
        (rv = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
        (rv = gnutls_x509_crt_set_key_usage(
             crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
        (rv = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER,
                                                  0)) < 0 ||
        (rv = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT,
                                                  0)) < 0) {
        goto err_after_crt; /* UNTESTED: library failures only. */
    }
    for (size_t i = 0; i < n; i++) {
        rv = add_san(crt, sans[i]);
        if (rv < 0) {
            rq_why(why, whyn, "subject alternative name '%s': %s", sans[i],
                   gnutls_strerror(rv));
            gnutls_x509_crt_deinit(crt);
            gnutls_x509_privkey_deinit(key);
            return RQ_INVALID;
        }
    }
    rv = gnutls_x509_crt_sign2(crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0);
    if (rv < 0) {
        goto err_after_crt; /* UNTESTED: library failures only. */
    }
    c = export_pem(crt, NULL);
    k = export_pem(NULL, key);
    if (c == NULL || k == NULL) {
        free(c); /* UNTESTED: ENOMEM only. */
        free(k);
        rv = 0;
        goto err_after_crt;
    }
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    *cert_pem = c;
    *key_pem = k;
    return 0;

err_after_crt:
    gnutls_x509_crt_deinit(crt);
err_after_key:
    gnutls_x509_privkey_deinit(key);
err:
    rq_why(why, whyn, "cannot issue a certificate for %s: %s", cn,
           rv < 0 ? gnutls_strerror(rv) : "out of memory");
    return RQ_IO;
}

int rq_pem_write(const char *path, const char *pem, unsigned mode, char *why,
                 size_t whyn)
{
    size_t len = strlen(pem);
    size_t off = 0;
    int fd;

    /* Unlinked first so that an existing file's wider mode cannot stay. */
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        rq_why(why, whyn, "cannot create %s: %s", path, strerror(errno));
        return RQ_IO;
    }
    while (off < len) {
        ssize_t w = write(fd, pem + off, len - off);
        if (w < 0) {
            rq_why(why, whyn, "cannot write %s: %s", path, strerror(errno));
            close(fd); /* UNTESTED: a full disk only. */
            return RQ_IO;
        }
        off += (size_t)w;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || close(fd) != 0) {
        rq_why(why, whyn, "cannot finish %s: %s", path, strerror(errno));
        return RQ_IO; /* UNTESTED: I/O errors only. */
    }
    return 0;
}
