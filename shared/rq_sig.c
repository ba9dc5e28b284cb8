/*
 * Signing and verifying internal HTTP requests (contract in rq_sig.h):
 * the canonical string, the strict header parser and the replay cache.
 *
 * The replay cache is an open-addressing table with linear probing whose
 * slots (12 bytes) hold a 64-bit tag of (sender, nonce), the first eight
 * bytes of SHA-256(sender "\0" nonce), and when it expires. It starts at
 * 4,096 slots and doubles, rehashing, when its live entries need it, up to
 * the size whose 3/4 holds the cap; at that size the cap is the limit.
 * Expired entries leave by backward-shift deletion (no tombstones), in
 * small steps so that the loop never stops for long:
 *
 *   - a probe deletes those it meets;
 *   - an add that finds 3/4 of the slots used walks up to 4 x 32 slots
 *     (once 32 at the cap) on from where the last walk stopped, deleting
 *     the expired ones, and below the largest size sweeps the whole table
 *     only if that made no room (mostly because the live entries need a
 *     larger table; after a sweep it is at most half full, so a quarter
 *     of it is added before the next);
 *   - once per entry life of the clock a round begins: each add walks 8
 *     slots on until the walk has gone round the table, which then counts
 *     as swept, and shrinks if a quarter of it would hold what is left (a
 *     round still under way a life later, adds being rare, ends at once
 *     with a sweep);
 *   - when every entry has expired (the clock passed the latest expiry
 *     added) the next add empties the table without looking at it.
 *
 * So an add costs amortised O(1) slot visits, and under steady load the
 * loop stops only for a doubling. The price of walking is that at the cap
 * entries expired since the walk last passed them still count against it.
 *
 * Two different pairs sharing a tag would make the second look replayed:
 * with n live entries each add has odds n / 2^64 of it, about 2^-42 at
 * the default cap, and only requests signed with a cluster key, whose
 * nonces are random, get in.
 */
#include "rq_sig.h"

#include <assert.h>
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

/*
 * A slot: the 64-bit tag of (sender, nonce) in two halves, so that the
 * slot is 12 bytes without padding, and the low 32 bits of its expiry in
 * milliseconds. Tag 0 marks an empty slot (a pair whose tag is 0 is held
 * as 1). The expiry is compared with the clock modulo 2^32, which is exact
 * while every held expiry lies within 2^31 ms of the clock: entries are
 * kept at most c->life_ms past the time they are added, and every entry
 * is looked at (by a sweep or a round of the walk) about once per
 * c->life_ms of clock that add calls see, so a held expiry is never more
 * than a few lives from the clock (see keep_up(); a life is at most 2^27).
 */
struct slot {
    uint32_t tag_lo;
    uint32_t tag_hi;
    uint32_t expires;
};

_Static_assert(sizeof(struct slot) == 12, "slots are 12 bytes");

/* The smallest table: 4,096 slots, 48 KiB. */
#define MIN_SLOTS 4096u
/* A sweep or a resize runs when the entries held would pass 3/4 of the
 * slots, and leaves at most half of them used, growing or shrinking to get
 * there (see slots_for()); at the largest size the cap takes the place of
 * the 3/4. */
#define FULL_NUM 3
#define FULL_DEN 4
#define AIM_DEN 2
/* An add that finds the table full walks this many slots on from the
 * last, deleting expired entries, before it thinks of sweeping it. */
#define CAP_STEP 32
/* ...up to this many times, until there is room, below the largest size
 * (where a sweep would follow); once at the cap (where a refusal does). */
#define CAP_WALKS 4
/* Each add during a round walks this many: a round of a table sized for
 * n live entries (2n to 4n slots) takes n / 2 adds at most, which come in
 * a quarter of a life when clocks agree. */
#define ROUND_STEP 8
/* A clock that went back this far makes the cache forget everything. */
#define CLOCK_BACK_MAX (1ull << 30)

struct rq_sig_cache {
    struct slot *slots;
    size_t mask;        /* Slots minus one; the slot count is a power of 2. */
    size_t min_slots;   /* The table never shrinks below this... */
    size_t max_slots;   /* ...nor grows past this. */
    size_t max_entries; /* The cap: at most 3/4 of max_slots. */
    size_t used;        /* Entries held, expired or not. */
    uint64_t life_ms;   /* The longest an entry is kept. */
    uint64_t swept_ms;  /* When the last sweep or round began. */
    uint64_t latest_ms; /* No held entry expires later. */
    uint64_t round_ms;  /* When the round under way began... */
    size_t round_left;  /* ...and the slots it has yet to walk (0: none). */
    size_t cursor;      /* Where the next walk goes on from. */
};

static uint64_t slot_tag(const struct slot *s)
{
    return (uint64_t)s->tag_hi << 32 | s->tag_lo;
}

static bool slot_empty(const struct slot *s)
{
    return (s->tag_lo | s->tag_hi) == 0;
}

/* Whether an expiry held modulo 2^32 is at or before @now_ms. */
static bool slot_expired(const struct slot *s, uint64_t now_ms)
{
    return (uint32_t)((uint32_t)now_ms - s->expires) < (1u << 31);
}

static size_t limit_of(const struct rq_sig_cache *c)
{
    size_t slots = c->mask + 1;
    return slots == c->max_slots ? c->max_entries : slots / FULL_DEN * FULL_NUM;
}

/* The table size for @n live entries: the smallest that keeps them to
 * half of the slots, within the bounds. */
static size_t slots_for(const struct rq_sig_cache *c, size_t n)
{
    size_t slots = c->min_slots;
    while (slots < c->max_slots && n > slots / AIM_DEN) {
        slots *= 2;
    }
    return slots;
}

struct rq_sig_cache *rq_sig_cache_new(size_t max_entries, uint64_t life_ms)
{
    struct rq_sig_cache *c;

    if (max_entries == 0) {
        max_entries = RQ_SIG_CACHE_DEFAULT;
    }
    if (max_entries > RQ_SIG_CACHE_MAX) {
        max_entries = RQ_SIG_CACHE_MAX;
    }
    if (life_ms == 0) {
        life_ms = 2 * (uint64_t)RQ_SIG_SKEW_DEFAULT_MS + 1;
    }
    if (life_ms > RQ_SIG_LIFE_MAX) {
        life_ms = RQ_SIG_LIFE_MAX;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    c->max_entries = max_entries;
    c->life_ms = life_ms;
    c->max_slots = 4;
    while (c->max_slots / FULL_DEN * FULL_NUM < max_entries) {
        c->max_slots *= 2;
    }
    c->min_slots = c->max_slots < MIN_SLOTS ? c->max_slots : MIN_SLOTS;
    c->slots = calloc(c->min_slots, sizeof *c->slots);
    if (c->slots == NULL) {
        free(c); /* UNTESTED: ENOMEM only. */
        return NULL;
    }
    c->mask = c->min_slots - 1;
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

size_t rq_sig_cache_capacity(const struct rq_sig_cache *c)
{
    return limit_of(c);
}

size_t rq_sig_cache_max(const struct rq_sig_cache *c)
{
    return c->max_entries;
}

size_t rq_sig_cache_bytes(const struct rq_sig_cache *c)
{
    return (c->mask + 1) * sizeof *c->slots;
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
    return tag != 0 ? tag : 1;
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
        if (slot_empty(&c->slots[j])) {
            break;
        }
        size_t home = c->slots[j].tag_lo & c->mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            c->slots[i] = c->slots[j];
            i = j;
        }
    }
    c->slots[i] = (struct slot){0};
    c->used--;
}

/* The first empty slot of @tag's run in @slots (@mask + 1 of them). */
static size_t free_slot(const struct slot *slots, size_t mask, uint64_t tag)
{
    size_t i = (size_t)tag & mask;
    while (!slot_empty(&slots[i])) {
        i = (i + 1) & mask;
    }
    return i;
}

/*
 * Deletes every entry expired at @now_ms, in one pass that costs O(slots)
 * however many go (deleting them one by one would shift each cluster's
 * tail once per deletion). The walk starts after an empty slot, so no
 * cluster runs into it from behind, and takes every entry out and puts
 * the live ones back from their home slot: the slots before it in its
 * cluster are final by then, so it lands at or before where it was, with
 * no empty slot between its home and it.
 */
static void sweep(struct rq_sig_cache *c, uint64_t now_ms)
{
    size_t start = 0;

    assert(c->used <= c->mask); /* So there is an empty slot. */
    while (!slot_empty(&c->slots[start])) {
        start++;
    }
    for (size_t k = 1; k <= c->mask; k++) {
        size_t i = (start + k) & c->mask;
        struct slot s = c->slots[i];
        if (slot_empty(&s)) {
            continue;
        }
        c->slots[i] = (struct slot){0};
        if (slot_expired(&s, now_ms)) {
            c->used--;
        } else {
            c->slots[free_slot(c->slots, c->mask, slot_tag(&s))] = s;
        }
    }
}

/* Moves every entry to a table of @slots slots. Without memory the old
 * table stays, which is still right, only fuller. */
static void resize(struct rq_sig_cache *c, size_t slots)
{
    struct slot *to = calloc(slots, sizeof *to);
    if (to == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    /* In slot order, so that both tables are walked nearly in sequence. */
    for (size_t i = 0; i <= c->mask; i++) {
        const struct slot *s = &c->slots[i];
        if (!slot_empty(s)) {
            to[free_slot(to, slots - 1, slot_tag(s))] = *s;
        }
    }
    free(c->slots);
    c->slots = to;
    c->mask = slots - 1;
    c->cursor = 0;
    c->round_left = 0; /* A round does not go on in another table. */
}

/* Sizes the table for the entries held: up when they fill more than half
 * of it, down when they would fill no more than half of a quarter of it
 * (so that a table does not shrink and grow again with every sweep). */
static void fit(struct rq_sig_cache *c)
{
    size_t slots = c->mask + 1;
    size_t want = slots_for(c, c->used);
    if (want > slots || (want < slots && c->used <= slots / 4 / AIM_DEN)) {
        resize(c, want);
    }
}

/* Deletes every expired entry at once and fits the table to the rest. */
static void maintain(struct rq_sig_cache *c, uint64_t now_ms)
{
    sweep(c, now_ms);
    if (now_ms > c->swept_ms) {
        c->swept_ms = now_ms;
    }
    c->round_left = 0;
    fit(c);
}

/*
 * Walks @steps slots on from the cursor, deleting the expired entries
 * there. A deletion moves entries only back to the cursor or to holes
 * after it, so a round of mask + 1 steps looks at every entry that was
 * held when it began (probes delete nothing during a round, so nothing
 * else moves an entry back past the cursor). The end of a round counts as
 * a sweep made when it began, and fits the table.
 */
static void walk(struct rq_sig_cache *c, uint64_t now_ms, size_t steps)
{
    for (size_t k = 0; k < steps; k++) {
        size_t i = c->cursor;
        while (!slot_empty(&c->slots[i]) &&
               slot_expired(&c->slots[i], now_ms)) {
            slot_delete(c, i); /* A later entry may now sit at i. */
        }
        c->cursor = (i + 1) & c->mask;
        if (c->round_left > 0 && --c->round_left == 0) {
            if (c->round_ms > c->swept_ms) {
                c->swept_ms = c->round_ms;
            }
            fit(c);
            return;
        }
    }
}

/*
 * Keeps every held expiry within 2^31 ms of @now_ms, deletes expired
 * entries a few at a time, and starts, walks or ends the round made once
 * per life of the clock:
 *
 *   - Everything expired (the clock reached the latest expiry added), or
 *     the clock went back CLOCK_BACK_MAX or more (every held timestamp is
 *     then that far ahead, outside the window): the table is emptied
 *     without looking at it, and fitted.
 *   - A round under way for a life already (adds are rare): it ends now,
 *     with a sweep.
 *   - No round under way, and a life since the last sweep: a round begins.
 *   - A round under way: it walks ROUND_STEP slots.
 *
 * Why 2^31 holds: an entry held was looked at live, or added, since the
 * last round began (at c->swept_ms), at a clock no more than
 * CLOCK_BACK_MAX behind the c->swept_ms of that moment, which was at most
 * two lives behind today's; and the clock is less than three lives past
 * c->swept_ms: the next round begins at the first add a life after it
 * (without an add for two lives everything has expired, the first case),
 * and ends within a life. An expiry is at most a life ahead of the clock
 * of its add. So expiries are within five lives (at most 5 * 2^27) and
 * CLOCK_BACK_MAX (2^30) of the clock, less than 2^31.
 */
static void keep_up(struct rq_sig_cache *c, uint64_t now_ms)
{
    if (now_ms >= c->latest_ms || now_ms + CLOCK_BACK_MAX <= c->swept_ms) {
        if (c->used > 0 || c->mask + 1 > c->min_slots) {
            memset(c->slots, 0, (c->mask + 1) * sizeof *c->slots);
            c->used = 0;
            fit(c);
        }
        c->swept_ms = now_ms;
        c->latest_ms = 0; /* Nothing is held. */
        c->round_left = 0;
    } else if (c->round_left > 0 && now_ms >= c->round_ms + c->life_ms) {
        maintain(c, now_ms);
    } else if (c->round_left == 0 && now_ms >= c->swept_ms + c->life_ms) {
        c->round_ms = now_ms;
        c->round_left = c->mask + 1;
    }
    if (c->round_left > 0) {
        walk(c, now_ms, ROUND_STEP);
    }
}

enum rq_sig_result rq_sig_cache_add(struct rq_sig_cache *c, const char *sender,
                                    const uint8_t nonce[RQ_SIG_NONCE_SIZE],
                                    uint64_t expires_ms, uint64_t now_ms)
{
    uint64_t tag = tag_of(sender, nonce);
    size_t i;

    keep_up(c, now_ms);
    if (expires_ms <= now_ms) {
        expires_ms = now_ms + 1;
    } else if (expires_ms - now_ms > c->life_ms) {
        expires_ms = now_ms + c->life_ms;
    }
    i = (size_t)tag & c->mask;
    while (!slot_empty(&c->slots[i])) {
        if (!slot_expired(&c->slots[i], now_ms)) {
            if (slot_tag(&c->slots[i]) == tag) {
                return RQ_SIG_REPLAYED;
            }
        } else if (c->round_left == 0) {
            slot_delete(c, i); /* A later entry may now sit at i. */
            continue;
        }
        i = (i + 1) & c->mask;
    }
    if (c->used >= limit_of(c)) {
        /* A walk frees room in O(1) when expired entries fill a good part
         * of the table; a sweep, below the largest size, finds out whether
         * the live ones need a larger one. */
        int walks = c->mask + 1 == c->max_slots ? 1 : CAP_WALKS;
        for (int n = 0; n < walks && c->used >= limit_of(c); n++) {
            walk(c, now_ms, CAP_STEP);
        }
        if (c->used >= limit_of(c) && c->mask + 1 < c->max_slots) {
            maintain(c, now_ms);
        }
        if (c->used >= limit_of(c)) {
            return RQ_SIG_BUSY;
        }
        i = free_slot(c->slots, c->mask, tag); /* The table changed. */
    }
    c->slots[i] = (struct slot){
        .tag_lo = (uint32_t)tag,
        .tag_hi = (uint32_t)(tag >> 32),
        .expires = (uint32_t)expires_ms,
    };
    c->used++;
    if (expires_ms > c->latest_ms) {
        c->latest_ms = expires_ms;
    }
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
