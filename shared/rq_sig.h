/*
 * Signatures of internal HTTP requests: how a manager or a broker proves,
 * without sending the cluster secret, that it made a request, and how the
 * receiver refuses forgeries, stale requests and replays.
 *
 * A signed request carries one header:
 *
 *     X-Raftq-Auth: v1 sender=SENDER ts=TS nonce=NONCE sig=SIG
 *
 * SENDER is the signer's id ("manager-2", "broker-7"; 1 to 64 of
 * [A-Za-z0-9._-]), TS its wall clock in Unix milliseconds (decimal, no
 * leading zero, at most 15 digits), NONCE 16 random bytes and SIG
 * HMAC-SHA256(key, canonical) in lower-case hex, where the canonical string
 * is, with "\n" a single line feed and nothing after the nonce:
 *
 *     "raftq-http-v1\n" METHOD "\n" PATH "\n" QUERY "\n"
 *     hex(SHA-256(body)) "\n" SENDER "\n" TS "\n" NONCE
 *
 * PATH and QUERY are exactly as sent on the wire (still percent-encoded;
 * QUERY without its '?', empty when there is none). The key is chosen by
 * direction (rq_keys.h: RQ_KEY_HTTP_M2B, _B2M, _M2M), so a signature made
 * for one direction is worth nothing in another.
 *
 * The receiver refuses, in this order: no header (MISSING), a header that
 * does not follow the grammar above exactly (MALFORMED; a first word "v"
 * and digits other than "v1" is VERSION), a timestamp more than the clock
 * window away from its own clock, either way (EXPIRED), a MAC made with
 * none of the keys the route accepts (BAD), and a (sender, nonce) it
 * accepted before within the window (REPLAYED). Accepted (sender, nonce)
 * pairs are kept in a cache until their timestamp leaves the window; the
 * cache grows with demand up to a cap, and when it holds the cap in live
 * entries the request is refused (BUSY, answered 503) rather than
 * accepted unremembered. Only requests with a valid MAC enter the cache,
 * so only key holders can fill it.
 *
 * The module is pure: no I/O, no clock, no randomness (the caller passes
 * the time and the nonce).
 */
#ifndef RQ_SIG_H
#define RQ_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RQ_SIG_HEADER "X-Raftq-Auth"
#define RQ_SIG_NONCE_SIZE 16
#define RQ_SIG_MAC_SIZE 32
#define RQ_SIG_SENDER_MAX 64
/* The longest header value the grammar allows, plus its NUL. */
#define RQ_SIG_VALUE_MAX                                               \
    (sizeof "v1 sender= ts= nonce= sig=" + RQ_SIG_SENDER_MAX + 15 + \
     2 * RQ_SIG_NONCE_SIZE + 2 * RQ_SIG_MAC_SIZE)
/* The default clock window, either way. */
#define RQ_SIG_SKEW_DEFAULT_MS 30000
/* The default cap of the replay cache, in entries (accepted requests
 * within the window): 3/4 of 2^22 slots of 12 bytes, 48 MiB at most. */
#define RQ_SIG_CACHE_DEFAULT 3145728 /* 3 << 20 */
/* The largest cap a cache takes (3/4 of 2^28 slots, 3 GiB). */
#define RQ_SIG_CACHE_MAX (3u << 26)
/* The longest an entry may be kept, in milliseconds (about 37 hours; a
 * window of 600 s needs 1,200,001). */
#define RQ_SIG_LIFE_MAX (1u << 27)

/* Outcomes of a verification, with the label /metrics counts them under
 * and what the 401 (503 for BUSY) says. */
#define RQ_SIG_RESULTS(X)                                                    \
    X(RQ_SIG_OK, "ok", "signature valid")                                    \
    X(RQ_SIG_MISSING, "missing",                                             \
      "missing signature: internal requests need an X-Raftq-Auth header")    \
    X(RQ_SIG_MALFORMED, "malformed", "malformed X-Raftq-Auth header")        \
    X(RQ_SIG_VERSION, "version", "unknown X-Raftq-Auth version")             \
    X(RQ_SIG_EXPIRED, "expired",                                             \
      "expired signature: its timestamp is outside the clock window")        \
    X(RQ_SIG_BAD, "bad_signature",                                           \
      "bad signature: not made with this route's key over this request")     \
    X(RQ_SIG_REPLAYED, "replayed",                                           \
      "replayed signature: this sender's nonce was seen already")            \
    X(RQ_SIG_BUSY, "cache_full",                                             \
      "too many signed requests to remember; retry")

enum rq_sig_result {
#define RQ_SIG_ENUM(name, label, text) name,
    RQ_SIG_RESULTS(RQ_SIG_ENUM)
#undef RQ_SIG_ENUM
        RQ_SIG_N_RESULTS
};

/* The metric label of @r ("missing", ...), and its sentence. */
const char *rq_sig_result_label(enum rq_sig_result r);
const char *rq_sig_result_text(enum rq_sig_result r);

/* What a signature covers; all borrowed. @query may be NULL for none. */
struct rq_sig_req {
    const char *method;
    const char *path;
    const char *query;
    const void *body;
    size_t body_len;
};

/* The fields of a parsed header. */
struct rq_sig_fields {
    char sender[RQ_SIG_SENDER_MAX + 1];
    uint64_t ts_ms;
    uint8_t nonce[RQ_SIG_NONCE_SIZE];
    uint8_t mac[RQ_SIG_MAC_SIZE];
};

/*
 * Writes the header value signing @r with @key (RQ_KEY_SIZE bytes) into
 * @out (RQ_SIG_VALUE_MAX bytes suffice). RQ_INVALID if @sender does not
 * follow the grammar, @ts_ms has more than 15 digits or @n is too small.
 */
int rq_sig_sign(const uint8_t *key, const char *sender, uint64_t ts_ms,
                const uint8_t nonce[RQ_SIG_NONCE_SIZE],
                const struct rq_sig_req *r, char *out, size_t n);

/* The MAC of @r for the fields' sender, ts and nonce under @key. */
void rq_sig_mac(const uint8_t *key, const struct rq_sig_fields *f,
                const struct rq_sig_req *r, uint8_t mac[RQ_SIG_MAC_SIZE]);

/*
 * Parses a header value (attacker input). RQ_SIG_OK, or RQ_SIG_MISSING
 * (@value NULL), RQ_SIG_MALFORMED or RQ_SIG_VERSION with the first thing
 * wrong in @why.
 */
enum rq_sig_result rq_sig_parse(const char *value, struct rq_sig_fields *out,
                                char *why, size_t whyn);

/* ---- The replay cache ---- */

struct rq_sig_cache;

/*
 * A cache remembering up to @max_entries live entries (0: the default;
 * more than RQ_SIG_CACHE_MAX is taken as RQ_SIG_CACHE_MAX), each kept at
 * most @life_ms (0: twice the default window and 1; clamped to 1 to
 * RQ_SIG_LIFE_MAX). It starts small (a few thousand entries, 48 KiB),
 * grows as live entries demand and shrinks when they leave. NULL without
 * memory. Caller frees with rq_sig_cache_free().
 */
struct rq_sig_cache *rq_sig_cache_new(size_t max_entries, uint64_t life_ms);
void rq_sig_cache_free(struct rq_sig_cache *c);

/* Entries held, live or expired but not yet reclaimed. */
size_t rq_sig_cache_count(const struct rq_sig_cache *c);
/* Entries the cache holds at its present size before it must free room or
 * grow; at its largest size, the cap. */
size_t rq_sig_cache_capacity(const struct rq_sig_cache *c);
/* The cap given to rq_sig_cache_new() (after the default and clamping). */
size_t rq_sig_cache_max(const struct rq_sig_cache *c);
/* Bytes of the table (the entries' memory, not the struct's). */
size_t rq_sig_cache_bytes(const struct rq_sig_cache *c);

/*
 * Remembers (@sender, @nonce) until @expires_ms (taken as at least
 * @now_ms + 1 and at most @now_ms plus the cache's life). RQ_SIG_REPLAYED
 * if the pair is held and not expired at @now_ms, RQ_SIG_BUSY if the cache
 * holds its cap in entries that are live (or expired too recently to be
 * reclaimed yet, see rq_sig.c), or without memory to grow, else RQ_SIG_OK.
 * A clock that jumps back by 2^30 ms (12 days) or more makes the cache
 * forget every entry: their timestamps are then far outside the window.
 */
enum rq_sig_result rq_sig_cache_add(struct rq_sig_cache *c, const char *sender,
                                    const uint8_t nonce[RQ_SIG_NONCE_SIZE],
                                    uint64_t expires_ms, uint64_t now_ms);

/* ---- Verifying ---- */

struct rq_sig_verifier {
    uint64_t skew_ms;         /* The clock window, either way. */
    struct rq_sig_cache *seen; /* Borrowed. */
};

/*
 * Verifies the header @value (NULL if absent) of @r at @now_ms against
 * each of the @n_keys keys (borrowed), and on success remembers its
 * (sender, nonce). RQ_SIG_OK with the index of the key that matched in
 * *which and the fields in *out, or the refusal with a sentence in @why.
 */
enum rq_sig_result rq_sig_verify(const struct rq_sig_verifier *v,
                                 const char *value,
                                 const uint8_t *const *keys, size_t n_keys,
                                 const struct rq_sig_req *r, uint64_t now_ms,
                                 struct rq_sig_fields *out, size_t *which,
                                 char *why, size_t whyn);

#endif /* RQ_SIG_H */
