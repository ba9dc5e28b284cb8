/*
 * Signing and verifying internal HTTP requests (contract in rq_sig.h):
 * the canonical string, the strict header parser and the replay cache.
 *
 * The replay cache is an open-addressing table with linear probing, twice
 * as many slots as its capacity so that probes stay short. A slot holds a
 * 64-bit tag of (sender, nonce), the first eight bytes of
 * SHA-256(sender "\0" nonce), and the time it expires; expires 0 marks an
 * empty slot. Entries leave by backward-shift deletion (no tombstones):
 * expired ones met on a probe are deleted there, and when the table holds
 * its capacity a sweep deletes every expired one. Two different pairs
 * sharing a tag would make the second look replayed; with 2^17 live
 * entries that happens with odds around 2^-30 per cache lifetime, and only
 * to requests signed with a cluster key, whose nonces are random.
 */
#include "rq_sig.h"

#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"
#include "rq_keys.h"

#define CANON_PREFIX "raftq-http-v1\n"
#define TS_DIGITS_MAX 15

_Static_assert(RQ_KEY_SIZE == SHA256_DIGEST_SIZE, "HMAC-SHA256 keys");
_Static_assert(RQ_SIG_MAC_SIZE == SHA256_DIGEST_SIZE, "HMAC-SHA256 MACs");

static const char *const labels[] = {
#define RQ_SIG_LABEL(name, label, text) label,
    RQ_SIG_RESULTS(RQ_SIG_LABEL)
#undef RQ_SIG_LABEL
};

static const char *const texts[] = {
#define RQ_SIG_TEXT(name, label, text) text,
    RQ_SIG_RESULTS(RQ_SIG_TEXT)
#undef RQ_SIG_TEXT
};

const char *rq_sig_result_label(enum rq_sig_result r)
{
    return (unsigned)r < RQ_SIG_N_RESULTS ? labels[r] : "?";
}

const char *rq_sig_result_text(enum rq_sig_result r)
{
    return (unsigned)r < RQ_SIG_N_RESULTS ? texts[r] : "?";
}

/* ---- The canonical string ---- */

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void mac_text(struct hmac_sha256_ctx *ctx, const char *s)
{
    hmac_sha256_update(ctx, strlen(s), (const uint8_t *)s);
}

void rq_sig_mac(const uint8_t *key, const struct rq_sig_fields *f,
                const struct rq_sig_req *r, uint8_t mac[RQ_SIG_MAC_SIZE])
{
    struct hmac_sha256_ctx ctx;
    struct sha256_ctx body;
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[2 * SHA256_DIGEST_SIZE + 1];
    char ts[24];

    sha256_init(&body);
    sha256_update(&body, r->body_len, r->body_len > 0 ? r->body : "");
    sha256_digest(&body, sizeof digest, digest);
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)f->ts_ms);

    hmac_sha256_set_key(&ctx, RQ_KEY_SIZE, key);
    mac_text(&ctx, CANON_PREFIX);
    mac_text(&ctx, r->method);
    mac_text(&ctx, "\n");
    mac_text(&ctx, r->path);
    mac_text(&ctx, "\n");
    mac_text(&ctx, r->query != NULL ? r->query : "");
    mac_text(&ctx, "\n");
    hex_encode(digest, sizeof digest, hex);
    mac_text(&ctx, hex);
    mac_text(&ctx, "\n");
    mac_text(&ctx, f->sender);
    mac_text(&ctx, "\n");
    mac_text(&ctx, ts);
    mac_text(&ctx, "\n");
    hex_encode(f->nonce, RQ_SIG_NONCE_SIZE, hex);
    mac_text(&ctx, hex);
    hmac_sha256_digest(&ctx, RQ_SIG_MAC_SIZE, mac);
}

static bool sender_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool sender_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > RQ_SIG_SENDER_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!sender_char(s[i])) {
            return false;
        }
    }
    return true;
}

int rq_sig_sign(const uint8_t *key, const char *sender, uint64_t ts_ms,
                const uint8_t nonce[RQ_SIG_NONCE_SIZE],
                const struct rq_sig_req *r, char *out, size_t n)
{
    struct rq_sig_fields f;
    char nonce_hex[2 * RQ_SIG_NONCE_SIZE + 1];
    char mac_hex[2 * RQ_SIG_MAC_SIZE + 1];

    if (!sender_valid(sender) || ts_ms > 999999999999999ull) {
        return RQ_INVALID;
    }
    snprintf(f.sender, sizeof f.sender, "%s", sender);
    f.ts_ms = ts_ms;
    memcpy(f.nonce, nonce, RQ_SIG_NONCE_SIZE);
    rq_sig_mac(key, &f, r, f.mac);
    hex_encode(f.nonce, RQ_SIG_NONCE_SIZE, nonce_hex);
    hex_encode(f.mac, RQ_SIG_MAC_SIZE, mac_hex);
    int len = snprintf(out, n, "v1 sender=%s ts=%llu nonce=%s sig=%s", sender,
                       (unsigned long long)ts_ms, nonce_hex, mac_hex);
    return len > 0 && (size_t)len < n ? 0 : RQ_INVALID;
}

/* ---- Parsing ---- */

/* Consumes @word at *p; false if it is not there. */
static bool take(const char **p, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(*p, word, n) != 0) {
        return false;
    }
    *p += n;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1; /* Upper case is refused: one spelling per value. */
}

/* Decodes exactly 2 * @n lower-case hex digits at *p. */
static bool take_hex(const char **p, uint8_t *out, size_t n)
{
    const char *s = *p;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(s[2 * i]);
        int lo = hi < 0 ? -1 : hex_digit(s[2 * i + 1]);
        if (lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *p = s + 2 * n;
    return true;
}

static enum rq_sig_result malformed(char *why, size_t whyn, const char *what)
{
    snprintf(why, whyn, "malformed X-Raftq-Auth header: %s", what);
    return RQ_SIG_MALFORMED;
}

enum rq_sig_result rq_sig_parse(const char *value, struct rq_sig_fields *out,
                                char *why, size_t whyn)
{
    const char *p = value;
    size_t n;

    if (value == NULL) {
        snprintf(why, whyn, "%s", rq_sig_result_text(RQ_SIG_MISSING));
        return RQ_SIG_MISSING;
    }
    memset(out, 0, sizeof *out);
    if (strlen(value) >= RQ_SIG_VALUE_MAX) {
        return malformed(why, whyn, "too long");
    }
    n = strcspn(p, " ");
    if (n != 2 || strncmp(p, "v1", 2) != 0) {
        bool versioned = n >= 2 && p[0] == 'v';
        for (size_t i = 1; i < n && versioned; i++) {
            versioned = p[i] >= '0' && p[i] <= '9';
        }
        if (versioned) {
            snprintf(why, whyn,
                     "unknown X-Raftq-Auth version '%.*s' (this server "
                     "speaks v1)",
                     (int)n, p);
            return RQ_SIG_VERSION;
        }
        return malformed(why, whyn, "it must start with 'v1 '");
    }
    p += 2;
    if (!take(&p, " sender=")) {
        return malformed(why, whyn, "expected ' sender=' after the version");
    }
    n = 0;
    while (sender_char(p[n])) {
        n++;
    }
    if (n == 0 || n > RQ_SIG_SENDER_MAX) {
        return malformed(why, whyn,
                         "the sender must be 1 to 64 of [A-Za-z0-9._-]");
    }
    memcpy(out->sender, p, n);
    p += n;
    if (!take(&p, " ts=")) {
        return malformed(why, whyn, "expected ' ts=' after the sender");
    }
    n = 0;
    while (p[n] >= '0' && p[n] <= '9') {
        n++;
    }
    if (n == 0 || n > TS_DIGITS_MAX || (p[0] == '0' && n > 1)) {
        return malformed(why, whyn,
                         "the timestamp must be 1 to 15 decimal digits "
                         "without a leading zero");
    }
    for (size_t i = 0; i < n; i++) {
        out->ts_ms = out->ts_ms * 10 + (uint64_t)(p[i] - '0');
    }
    p += n;
    if (!take(&p, " nonce=") || !take_hex(&p, out->nonce, RQ_SIG_NONCE_SIZE)) {
        return malformed(why, whyn,
                         "expected ' nonce=' and 32 lower-case hex digits");
    }
    if (!take(&p, " sig=") || !take_hex(&p, out->mac, RQ_SIG_MAC_SIZE)) {
        return malformed(why, whyn,
                         "expected ' sig=' and 64 lower-case hex digits");
    }
    if (*p != '\0') {
        return malformed(why, whyn, "unexpected text after the signature");
    }
    return RQ_SIG_OK;
}

/* ---- The replay cache ---- */

struct slot {
    uint64_t tag;
    uint64_t expires_ms; /* 0: empty. */
};

struct rq_sig_cache {
    struct slot *slots;
    size_t mask;     /* Slots minus one; the slot count is a power of 2. */
    size_t capacity; /* Most entries held at once. */
    size_t used;     /* Entries held, expired or not. */
};

struct rq_sig_cache *rq_sig_cache_new(size_t capacity)
{
    struct rq_sig_cache *c;
    size_t slots = 2;

    if (capacity == 0) {
        capacity = RQ_SIG_CACHE_DEFAULT;
    }
    while (slots < 2 * capacity) {
        slots *= 2;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    c->slots = calloc(slots, sizeof *c->slots);
    if (c->slots == NULL) {
        free(c); /* UNTESTED: ENOMEM only. */
        return NULL;
    }
    c->mask = slots - 1;
    c->capacity = capacity;
    return c;
}

void rq_sig_cache_free(struct rq_sig_cache *c)
{
    if (c == NULL) {
        return;
    }
    free(c->slots);
    free(c);
}

size_t rq_sig_cache_count(const struct rq_sig_cache *c)
{
    return c->used;
}

static uint64_t tag_of(const char *sender,
                       const uint8_t nonce[RQ_SIG_NONCE_SIZE])
{
    struct sha256_ctx h;
    uint8_t d[SHA256_DIGEST_SIZE];
    uint64_t tag = 0;

    sha256_init(&h);
    sha256_update(&h, strlen(sender) + 1, (const uint8_t *)sender);
    sha256_update(&h, RQ_SIG_NONCE_SIZE, nonce);
    sha256_digest(&h, sizeof d, d);
    for (int i = 0; i < 8; i++) {
        tag = tag << 8 | d[i];
    }
    return tag;
}

/*
 * Empties slot @i and moves later entries of its run back, so that every
 * entry stays reachable from its home slot without tombstones (Knuth's
 * Algorithm R, TAOCP 6.4). An entry at j may fill the hole at i unless its
 * home lies cyclically in (i, j].
 */
static void slot_delete(struct rq_sig_cache *c, size_t i)
{
    size_t j = i;
    for (;;) {
        j = (j + 1) & c->mask;
        if (c->slots[j].expires_ms == 0) {
            break;
        }
        size_t home = c->slots[j].tag & c->mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            c->slots[i] = c->slots[j];
            i = j;
        }
    }
    c->slots[i].expires_ms = 0;
    c->used--;
}

/* Deletes every entry expired at @now_ms. */
static void sweep(struct rq_sig_cache *c, uint64_t now_ms)
{
    for (size_t i = 0; i <= c->mask; i++) {
        while (c->slots[i].expires_ms != 0 &&
               c->slots[i].expires_ms <= now_ms) {
            slot_delete(c, i);
        }
    }
}

enum rq_sig_result rq_sig_cache_add(struct rq_sig_cache *c, const char *sender,
                                    const uint8_t nonce[RQ_SIG_NONCE_SIZE],
                                    uint64_t expires_ms, uint64_t now_ms)
{
    uint64_t tag = tag_of(sender, nonce);
    size_t i = tag & c->mask;

    while (c->slots[i].expires_ms != 0) {
        if (c->slots[i].expires_ms <= now_ms) {
            slot_delete(c, i); /* A later entry may now sit at i. */
            continue;
        }
        if (c->slots[i].tag == tag) {
            return RQ_SIG_REPLAYED;
        }
        i = (i + 1) & c->mask;
    }
    if (c->used >= c->capacity) {
        sweep(c, now_ms);
        if (c->used >= c->capacity) {
            return RQ_SIG_BUSY;
        }
        i = tag & c->mask; /* The sweep moved entries. */
        while (c->slots[i].expires_ms != 0) {
            i = (i + 1) & c->mask;
        }
    }
    c->slots[i].tag = tag;
    c->slots[i].expires_ms = expires_ms > now_ms ? expires_ms : now_ms + 1;
    c->used++;
    return RQ_SIG_OK;
}

/* ---- Verifying ---- */

enum rq_sig_result rq_sig_verify(const struct rq_sig_verifier *v,
                                 const char *value,
                                 const uint8_t *const *keys, size_t n_keys,
                                 const struct rq_sig_req *r, uint64_t now_ms,
                                 struct rq_sig_fields *out, size_t *which,
                                 char *why, size_t whyn)
{
    uint8_t mac[RQ_SIG_MAC_SIZE];
    enum rq_sig_result rv = rq_sig_parse(value, out, why, whyn);
    size_t match = n_keys;

    if (rv != RQ_SIG_OK) {
        return rv;
    }
    /* Timestamps have at most 15 digits, so neither sum overflows. */
    if (out->ts_ms > now_ms + v->skew_ms || out->ts_ms + v->skew_ms < now_ms) {
        long long off = (long long)out->ts_ms - (long long)now_ms;
        snprintf(why, whyn,
                 "expired signature: its timestamp is %lld ms %s this "
                 "server's clock (the window is %llu ms either way)",
                 off < 0 ? -off : off, off < 0 ? "behind" : "ahead of",
                 (unsigned long long)v->skew_ms);
        return RQ_SIG_EXPIRED;
    }
    for (size_t k = 0; k < n_keys; k++) {
        rq_sig_mac(keys[k], out, r, mac);
        if (memeql_sec(mac, out->mac, sizeof mac) && match == n_keys) {
            match = k;
        }
    }
    if (match == n_keys) {
        snprintf(why, whyn, "%s", rq_sig_result_text(RQ_SIG_BAD));
        return RQ_SIG_BAD;
    }
    rv = rq_sig_cache_add(v->seen, out->sender, out->nonce,
                          out->ts_ms + v->skew_ms + 1, now_ms);
    if (rv != RQ_SIG_OK) {
        snprintf(why, whyn, "%s", rq_sig_result_text(rv));
        return rv;
    }
    *which = match;
    snprintf(why, whyn, "%s", rq_sig_result_text(RQ_SIG_OK));
    return RQ_SIG_OK;
}
