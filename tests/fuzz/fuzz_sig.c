/*
 * Fuzzes signatures of internal HTTP requests (shared/rq_sig.h) three
 * ways. The first text of the input is an X-Raftq-Auth value as it comes
 * off the network: parsed (whatever parses must print back to the same
 * text: the grammar has one spelling per value) and verified against a
 * request made of the next texts, at the header's own time and far from
 * it (a seed may be a valid signature, so that the replay path runs on
 * the network's bytes too). Then a header is signed from fields taken from the input: it must
 * verify once, be refused as replayed the second time, and be refused
 * with another body or another key. The replay cache is small, so that
 * inputs reach its full and expiry paths.
 */
#include <inttypes.h>

#include "fuzz.h"
#include "rq_err.h"
#include "rq_keys.h"
#include "rq_sig.h"

#define CACHE 4

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", p[i]);
    }
}

/* A parsed value prints back to exactly its text. */
static void check_canonical(const char *value, const struct rq_sig_fields *f)
{
    char nonce[2 * RQ_SIG_NONCE_SIZE + 1];
    char mac[2 * RQ_SIG_MAC_SIZE + 1];
    char again[RQ_SIG_VALUE_MAX + 64];

    hex(f->nonce, RQ_SIG_NONCE_SIZE, nonce);
    hex(f->mac, RQ_SIG_MAC_SIZE, mac);
    snprintf(again, sizeof again, "v1 sender=%s ts=%" PRIu64 " nonce=%s sig=%s",
             f->sender, f->ts_ms, nonce, mac);
    FUZZ_CHECK(strcmp(again, value) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rq_keys keys;
    static int ready;
    struct fuzz_in in = {data, size};
    struct rq_sig_fields f;
    char why[256];
    size_t which;

    if (!ready) {
        static const char secret[] = "fuzz-secret-0123456789abcdef-01234567";
        rq_keys_derive(&keys, secret, sizeof secret - 1);
        ready = 1;
    }
    const uint8_t *m2b = rq_keys_get(&keys, RQ_KEY_HTTP_M2B);
    const uint8_t *b2m = rq_keys_get(&keys, RQ_KEY_HTTP_B2M);
    struct rq_sig_cache *cache = rq_sig_cache_new(CACHE, 0);
    FUZZ_CHECK(cache != NULL);
    struct rq_sig_verifier v = {.skew_ms = RQ_SIG_SKEW_DEFAULT_MS,
                                .seen = cache};

    char *value = fuzz_str(&in);
    char *method = fuzz_str(&in);
    char *path = fuzz_str(&in);
    char *query = fuzz_str(&in);
    uint64_t ts = fuzz_u64(&in) % 1000000000000000ull;
    uint8_t nonce[RQ_SIG_NONCE_SIZE];
    for (size_t i = 0; i < sizeof nonce; i++) {
        nonce[i] = fuzz_u8(&in);
    }
    struct rq_sig_req r = {
        .method = method,
        .path = path,
        .query = query,
        .body = in.p,
        .body_len = in.left,
    };

    /* As received. */
    enum rq_sig_result rv = rq_sig_parse(value, &f, why, sizeof why);
    FUZZ_CHECK(rv == RQ_SIG_OK || rv == RQ_SIG_MALFORMED ||
               rv == RQ_SIG_VERSION);
    FUZZ_CHECK(strlen(why) < sizeof why);
    if (rv == RQ_SIG_OK) {
        check_canonical(value, &f);
        const uint8_t *both[] = {b2m, m2b};
        uint64_t nows[] = {f.ts_ms, f.ts_ms + RQ_SIG_SKEW_DEFAULT_MS + 1, 0};
        for (size_t k = 0; k < sizeof nows / sizeof nows[0]; k++) {
            rv = rq_sig_verify(&v, value, both, 2, &r, nows[k], &f, &which,
                               why, sizeof why);
            /* Past the parser: a window, MAC or replay verdict (a seed
             * may carry a valid signature of its own request). */
            FUZZ_CHECK(rv == RQ_SIG_OK || rv == RQ_SIG_EXPIRED ||
                       rv == RQ_SIG_BAD || rv == RQ_SIG_REPLAYED);
        }
    }

    /* Signed from the input's fields: verifies once, then never again. */
    char signed_value[RQ_SIG_VALUE_MAX];
    char *sender = value;
    if (rq_sig_sign(m2b, sender, ts, nonce, &r, signed_value,
                    sizeof signed_value) == 0) {
        const uint8_t *mine[] = {m2b};
        const uint8_t *theirs[] = {b2m};
        FUZZ_CHECK(strlen(signed_value) < RQ_SIG_VALUE_MAX);
        rv = rq_sig_verify(&v, signed_value, theirs, 1, &r, ts, &f, &which,
                           why, sizeof why);
        FUZZ_CHECK(rv == RQ_SIG_BAD);
        struct rq_sig_req other = r;
        other.body = r.body_len > 0 ? r.body : "x";
        other.body_len = r.body_len > 0 ? r.body_len - 1 : 1;
        rv = rq_sig_verify(&v, signed_value, mine, 1, &other, ts, &f, &which,
                           why, sizeof why);
        FUZZ_CHECK(rv == RQ_SIG_BAD);
        rv = rq_sig_verify(&v, signed_value, mine, 1, &r, ts, &f, &which,
                           why, sizeof why);
        FUZZ_CHECK(rv == RQ_SIG_OK && which == 0);
        FUZZ_CHECK(strcmp(f.sender, sender) == 0 && f.ts_ms == ts);
        rv = rq_sig_verify(&v, signed_value, mine, 1, &r, ts + 1, &f, &which,
                           why, sizeof why);
        FUZZ_CHECK(rv == RQ_SIG_REPLAYED);
    }
    FUZZ_CHECK(rq_sig_cache_count(cache) <= CACHE);

    rq_sig_cache_free(cache);
    free(value);
    free(method);
    free(path);
    free(query);
    return 0;
}
