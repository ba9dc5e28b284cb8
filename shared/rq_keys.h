/*
 * The keys every internal credential is made with, and the rules a cluster
 * secret must meet.
 *
 * One cluster secret is configured per cluster (--cluster-secret); it never
 * crosses the network. Each use gets its own key, derived with HKDF-SHA256
 * (RFC 5869) from the secret, so that a key recovered from one use gives
 * nothing of the others:
 *
 *     prk      = HKDF-Extract(salt "raftq-cluster-secret-v2", secret)
 *     key[use] = HKDF-Expand(prk, info "raftq/" NAME, 32)
 *
 * NAME is the use's label below ("raft", "http/manager-manager", ...). The
 * module is pure: no I/O, no clock.
 */
#ifndef RQ_KEYS_H
#define RQ_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define RQ_KEY_SIZE 32

/* The shortest secret a process accepts, in bytes. */
#define RQ_SECRET_MIN 32

/* The longest: it must fit an environment variable and a Kubernetes Secret
 * comfortably, and longer adds nothing. */
#define RQ_SECRET_MAX 1024

/*
 * The uses, each with its HKDF label. RAFT keys the challenge-response of
 * every Raft and RPC connection; the HTTP keys sign internal HTTP requests,
 * one per direction, so that a broker (which holds only what it needs to
 * talk to the managers and to be called by them) and a manager cannot pass
 * for each other's peers.
 */
#define RQ_KEY_USES(X)                                  \
    X(RQ_KEY_RAFT, "raft")                              \
    X(RQ_KEY_HTTP_M2M, "http/manager-manager")          \
    X(RQ_KEY_HTTP_M2B, "http/manager-broker")           \
    X(RQ_KEY_HTTP_B2M, "http/broker-manager")

enum rq_key_use {
#define RQ_KEY_ENUM(name, label) name,
    RQ_KEY_USES(RQ_KEY_ENUM)
#undef RQ_KEY_ENUM
    RQ_KEY_COUNT
};

struct rq_keys {
    uint8_t key[RQ_KEY_COUNT][RQ_KEY_SIZE];
};

/* Derives every key from @secret (@n bytes, borrowed). */
void rq_keys_derive(struct rq_keys *out, const void *secret, size_t n);

/* The key for @use (borrowed from @k). */
const uint8_t *rq_keys_get(const struct rq_keys *k, enum rq_key_use use);

/* The HKDF label of @use, for logs and tests. */
const char *rq_keys_label(enum rq_key_use use);

/*
 * Checks a configured secret: present, RQ_SECRET_MIN to RQ_SECRET_MAX bytes,
 * not the built-in value earlier releases defaulted to, and not a
 * placeholder left from a template (anything starting "REPLACE-ME", in any
 * case, or "changeme"). Returns 0 or RQ_INVALID with a sentence naming
 * @flag (for example "--cluster-secret") and what to do in @why.
 */
int rq_secret_check(const char *secret, const char *flag, char *why,
                    size_t whyn);

/* Lowercase hex of @n bytes at @p into @out (2 * n + 1 bytes): how
 * generated secrets and digests are written. */
void rq_keys_hex(const void *p, size_t n, char *out);

/* Wipes @n bytes at @p in a way the compiler does not remove. */
void rq_keys_wipe(void *p, size_t n);

#endif /* RQ_KEYS_H */
