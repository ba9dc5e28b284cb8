/*
 * Throwaway certificates: a CA and the certificates it issues, made with
 * GnuTLS's x509 API. `raftq dev --tls` and the tests use them so that TLS
 * can be tried without any tool beyond the build; a real deployment brings
 * its own CA (cert-manager, an internal PKI). Keys are ECDSA P-256, the CA
 * is valid for ten years and the certificates it issues for one; every
 * certificate is usable as both TLS server and TLS client, since nodes are
 * both to each other.
 */
#ifndef RQ_CERTS_H
#define RQ_CERTS_H

#include <stddef.h>

struct rq_ca;

/*
 * A new self-signed CA named @cn. 0, or RQ_IO/RQ_NOMEM with @why. Free
 * with rq_ca_free().
 */
int rq_ca_new(const char *cn, struct rq_ca **out, char *why, size_t whyn);
void rq_ca_free(struct rq_ca *ca);

/* The CA certificate as PEM (borrowed; lives as long as @ca). */
const char *rq_ca_pem(const struct rq_ca *ca);

/*
 * Issues a certificate for @cn with the subject alternative names @sans
 * (@n entries; each a DNS name, or an IPv4/IPv6 address, which becomes an
 * IP SAN). *@cert_pem and *@key_pem are heap strings the caller frees with
 * free(). 0, or RQ_INVALID/RQ_IO/RQ_NOMEM with @why.
 */
int rq_ca_issue(const struct rq_ca *ca, const char *cn, const char *const *sans,
                size_t n, char **cert_pem, char **key_pem, char *why,
                size_t whyn);

/*
 * Writes @pem to @path (replacing it) with permission @mode, for keys 0600.
 * 0, or RQ_IO with @why.
 */
int rq_pem_write(const char *path, const char *pem, unsigned mode, char *why,
                 size_t whyn);

#endif /* RQ_CERTS_H */
