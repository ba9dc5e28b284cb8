/*
 * HKDF-SHA256 key derivation from the cluster secret, and the checks a
 * secret must pass before a process starts with it (rq_keys.h). nettle
 * provides HKDF and HMAC; this file only fixes the labels.
 */
#include "rq_keys.h"

#include <nettle/hkdf.h>
#include <nettle/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rq_err.h"

static const char salt[] = "raftq-cluster-secret-v2";

static const char *const labels[] = {
#define RQ_KEY_LABEL(name, label) label,
    RQ_KEY_USES(RQ_KEY_LABEL)
#undef RQ_KEY_LABEL
};

_Static_assert(sizeof labels / sizeof labels[0] == RQ_KEY_COUNT,
               "one label per key use");
_Static_assert(SHA256_DIGEST_SIZE == RQ_KEY_SIZE, "keys are SHA-256 sized");

void rq_keys_derive(struct rq_keys *out, const void *secret, size_t n)
{
    struct hmac_sha256_ctx ctx;
    uint8_t prk[SHA256_DIGEST_SIZE];

    hmac_sha256_set_key(&ctx, sizeof salt - 1, (const uint8_t *)salt);
    hkdf_extract(&ctx, (nettle_hash_update_func *)hmac_sha256_update,
                 (nettle_hash_digest_func *)hmac_sha256_digest,
                 SHA256_DIGEST_SIZE, n, (const uint8_t *)secret, prk);

    hmac_sha256_set_key(&ctx, sizeof prk, prk);
    for (int use = 0; use < RQ_KEY_COUNT; use++) {
        char info[64];
        size_t len = (size_t)snprintf(info, sizeof info, "raftq/%s",
                                      labels[use]);
        hkdf_expand(&ctx, (nettle_hash_update_func *)hmac_sha256_update,
                    (nettle_hash_digest_func *)hmac_sha256_digest,
                    SHA256_DIGEST_SIZE, len, (const uint8_t *)info,
                    RQ_KEY_SIZE, out->key[use]);
    }
    rq_keys_wipe(prk, sizeof prk);
    rq_keys_wipe(&ctx, sizeof ctx);
}

const uint8_t *rq_keys_get(const struct rq_keys *k, enum rq_key_use use)
{
    return k->key[use];
}

const char *rq_keys_label(enum rq_key_use use)
{
    if ((int)use < 0 || use >= RQ_KEY_COUNT) {
        return "?";
    }
    return labels[use];
}

/* The default of every process before secrets were required; a cluster
 * still configured with it is refused like any placeholder. */
static const char *const known[] = {"raftq-dev-secret", "changeme",
                                    "change-me", "secret", "password"};

static bool is_placeholder(const char *s)
{
    if (strncasecmp(s, "REPLACE-ME", 10) == 0 ||
        strncasecmp(s, "REPLACE_ME", 10) == 0) {
        return true;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcasecmp(s, known[i]) == 0) {
            return true;
        }
    }
    return false;
}

int rq_secret_check(const char *secret, const char *flag, char *why,
                    size_t whyn)
{
    if (secret == NULL || secret[0] == '\0') {
        rq_why(why, whyn,
               "%s is required: give every process of the cluster the same "
               "random secret of at least %d bytes (for example from "
               "'head -c 32 /dev/urandom | base64')",
               flag, RQ_SECRET_MIN);
        return RQ_INVALID;
    }
    if (is_placeholder(secret)) {
        rq_why(why, whyn,
               "%s is a placeholder or a well-known value: replace it with "
               "a random secret of at least %d bytes",
               flag, RQ_SECRET_MIN);
        return RQ_INVALID;
    }
    size_t n = strlen(secret);
    if (n < RQ_SECRET_MIN) {
        rq_why(why, whyn,
               "%s is %zu bytes long; it must be at least %d bytes of "
               "random data",
               flag, n, RQ_SECRET_MIN);
        return RQ_INVALID;
    }
    if (n > RQ_SECRET_MAX) {
        rq_why(why, whyn, "%s is %zu bytes long; at most %d are accepted",
               flag, n, RQ_SECRET_MAX);
        return RQ_INVALID;
    }
    return 0;
}

void rq_keys_hex(const void *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void rq_keys_wipe(void *p, size_t n)
{
    volatile uint8_t *v = p;
    while (n-- > 0) {
        *v++ = 0;
    }
}
