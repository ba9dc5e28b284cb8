/*
 * The replicated ledger: two small open-addressing hash tables (accounts by
 * name, origins by id), the rules of the three writes, request-id
 * deduplication and the canonical snapshot. Pure and deterministic: no I/O,
 * no clock, no randomness; the only notion of time is the ledger's own
 * operation counter, so every replica that applies the same writes in the
 * same order evicts the same origins and encodes to the same bytes.
 *
 * Accounts live in an open-addressing table (linear probing over a
 * power-of-two number of slots, kept at most half full) and are never
 * removed (a zero balance stays an account). Origins live in the
 * deduplication table of shared/rq_dedupe.h, the one partitions use for
 * their producers: its clock is the ledger's operation counter.
 *
 * Invariants:
 *   1. Every balance is in 0..INT64_MAX.
 *   2. At most ATM_ORIGINS_MAX origins are remembered.
 *   3. Each remembered origin has a distinct last_used in 1..ops.
 *   4. A remembered result has status 0, ATM_INSUFFICIENT or ATM_OVERFLOW:
 *      stale and invalid writes are answered but never remembered.
 */
#include "atm_ledger.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rq_dedupe.h"
#include "atm_err.h"
#include "rq_err.h"

#define SNAPSHOT_VERSION 1
#define TABLE_MIN 16

/* The smallest encodings of one snapshot record, to bound counts read
 * from hostile bytes before allocating for them. */
#define ACCOUNT_REC_MIN (4 + 1 + 8)
#define ORIGIN_REC_MIN (8 + 8 + 8 + 4 + 8 + 8)

struct account {
    char name[ATM_ACCOUNT_MAX]; /* Empty string: free slot. */
    int64_t cents;
};

struct atm_ledger {
    struct account *accounts;
    size_t accounts_cap; /* Power of two. */
    size_t accounts_n;
    /* Values: the struct atm_result of each origin's last seq. Its clock
     * counts the writes remembered so far. */
    struct rq_dedupe origins;
};

/* ---- Hashing ---- */

/* FNV-1a: fixed, so placement (not that it shows) is the same everywhere. */
static uint64_t hash_name(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- Accounts table ---- */

static struct account *account_slot(struct account *t, size_t cap,
                                    const char *name)
{
    size_t mask = cap - 1;
    size_t i = (size_t)hash_name(name) & mask;
    while (t[i].name[0] != '\0' && strcmp(t[i].name, name) != 0) {
        i = (i + 1) & mask;
    }
    return &t[i];
}

static const struct account *account_find(const struct atm_ledger *l,
                                          const char *name)
{
    if (l->accounts_cap == 0) {
        return NULL;
    }
    const struct account *a = account_slot(l->accounts, l->accounts_cap, name);
    return a->name[0] != '\0' ? a : NULL;
}

/* Makes room for @extra more accounts without passing half full. */
static int accounts_reserve(struct atm_ledger *l, size_t extra)
{
    size_t cap = l->accounts_cap == 0 ? TABLE_MIN : l->accounts_cap;
    while ((l->accounts_n + extra) * 2 > cap) {
        cap *= 2;
    }
    if (cap == l->accounts_cap) {
        return 0;
    }
    struct account *t = calloc(cap, sizeof *t);
    if (t == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < l->accounts_cap; i++) {
        if (l->accounts[i].name[0] != '\0') {
            *account_slot(t, cap, l->accounts[i].name) = l->accounts[i];
        }
    }
    free(l->accounts);
    l->accounts = t;
    l->accounts_cap = cap;
    return 0;
}

/* The account named @name, created with balance 0 if absent. The caller
 * has reserved room. */
static struct account *account_get(struct atm_ledger *l, const char *name)
{
    assert(l->accounts_cap > 0 && (l->accounts_n + 1) * 2 <= l->accounts_cap);
    struct account *a = account_slot(l->accounts, l->accounts_cap, name);
    if (a->name[0] == '\0') {
        strcpy(a->name, name);
        a->cents = 0;
        l->accounts_n++;
    }
    return a;
}

/* ---- Writes and results: codecs ---- */

static bool write_valid(const struct atm_write *w)
{
    if (w->amount <= 0 || !atm_account_valid(w->account)) {
        return false;
    }
    switch (w->op) {
        case ATM_DEPOSIT:
        case ATM_WITHDRAW:
            return w->to[0] == '\0';
        case ATM_TRANSFER:
            return atm_account_valid(w->to) && strcmp(w->account, w->to) != 0;
        default:
            return false;
    }
}

/* origin:u64 | seq:u64 | op:u8 | amount:u64 | account:blob | to:blob */
int atm_write_encode(const struct atm_write *w, struct rq_buf *out)
{
    if (!write_valid(w)) {
        return RQ_INVALID;
    }
    rq_buf_put_u64(out, w->rid.origin);
    rq_buf_put_u64(out, w->rid.seq);
    rq_buf_put_u8(out, (uint8_t)w->op);
    rq_buf_put_u64(out, (uint64_t)w->amount);
    rq_buf_put_blob(out, w->account, strlen(w->account));
    rq_buf_put_blob(out, w->to, strlen(w->to));
    return out->err;
}

/* Reads a name blob into @out (ATM_ACCOUNT_MAX bytes, NUL-terminated). */
static int get_name(struct rq_cursor *c, char *out)
{
    const uint8_t *p;
    size_t n;
    if (rq_wire_get_blob(c, ATM_ACCOUNT_MAX - 1, &p, &n) != 0) {
        return RQ_MALFORMED;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    /* A NUL inside the blob would hide bytes from every later check. */
    return strlen(out) == n ? 0 : RQ_MALFORMED;
}

static int get_cents(struct rq_cursor *c, int64_t *out)
{
    uint64_t v;
    if (rq_wire_get_u64(c, &v) != 0 || v > (uint64_t)INT64_MAX) {
        return RQ_MALFORMED;
    }
    *out = (int64_t)v;
    return 0;
}

int atm_write_decode(const uint8_t *p, size_t len, struct atm_write *out)
{
    struct rq_cursor c;
    struct atm_write w;
    uint8_t op;

    memset(&w, 0, sizeof w);
    rq_cursor_init(&c, p, len);
    if (rq_wire_get_u64(&c, &w.rid.origin) != 0 ||
        rq_wire_get_u64(&c, &w.rid.seq) != 0 || rq_wire_get_u8(&c, &op) != 0 ||
        get_cents(&c, &w.amount) != 0 || get_name(&c, w.account) != 0 ||
        get_name(&c, w.to) != 0 || c.left != 0) {
        return RQ_MALFORMED;
    }
    w.op = (enum atm_op)op;
    if (!write_valid(&w)) {
        return RQ_MALFORMED;
    }
    *out = w;
    return 0;
}

static void put_result(struct rq_buf *b, const struct atm_result *r)
{
    rq_buf_put_u32(b, (uint32_t)r->status);
    rq_buf_put_u64(b, (uint64_t)r->balance);
    rq_buf_put_u64(b, (uint64_t)r->to_balance);
}

/* @stale_ok: whether RQ_INVALID is a status this result may carry. */
static int get_result(struct rq_cursor *c, bool stale_ok,
                      struct atm_result *out)
{
    uint32_t status;
    if (rq_wire_get_u32(c, &status) != 0 || get_cents(c, &out->balance) != 0 ||
        get_cents(c, &out->to_balance) != 0) {
        return RQ_MALFORMED;
    }
    switch (status) {
        case 0:
        case ATM_INSUFFICIENT:
        case ATM_OVERFLOW:
            break;
        case RQ_INVALID:
            if (stale_ok) {
                break;
            }
            return RQ_MALFORMED;
        default:
            return RQ_MALFORMED;
    }
    out->status = (int)status;
    return 0;
}

/* status:u32 | balance:u64 | to_balance:u64 */
int atm_result_encode(const struct atm_result *r, struct rq_buf *out)
{
    if (r->balance < 0 || r->to_balance < 0) {
        return RQ_INVALID;
    }
    put_result(out, r);
    return out->err;
}

int atm_result_decode(const uint8_t *p, size_t len, struct atm_result *out)
{
    struct rq_cursor c;
    struct atm_result r;
    rq_cursor_init(&c, p, len);
    if (get_result(&c, true, &r) != 0 || c.left != 0) {
        return RQ_MALFORMED;
    }
    *out = r;
    return 0;
}

/* ---- The ledger ---- */

int atm_ledger_new(struct atm_ledger **out)
{
    struct atm_ledger *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rq_dedupe_init(&l->origins, ATM_ORIGINS_MAX, sizeof(struct atm_result));
    *out = l;
    return 0;
}

void atm_ledger_free(struct atm_ledger *l)
{
    if (l == NULL) {
        return;
    }
    free(l->accounts);
    rq_dedupe_close(&l->origins);
    free(l);
}

int64_t atm_ledger_balance(const struct atm_ledger *l, const char *account)
{
    const struct account *a = account_find(l, account);
    return a != NULL ? a->cents : 0;
}

int64_t atm_ledger_total(const struct atm_ledger *l)
{
    int64_t total = 0;
    for (size_t i = 0; i < l->accounts_cap; i++) {
        int64_t c = l->accounts[i].cents;
        if (l->accounts[i].name[0] == '\0') {
            continue;
        }
        if (c > INT64_MAX - total) {
            return INT64_MAX;
        }
        total += c;
    }
    return total;
}

size_t atm_ledger_accounts(const struct atm_ledger *l)
{
    return l->accounts_n;
}

int atm_ledger_result(const struct atm_ledger *l, struct atm_rid rid,
                      struct atm_result *out)
{
    const struct rq_dedupe_entry *o = rq_dedupe_find(&l->origins, rid.origin);
    if (o == NULL || o->seq != rid.seq) {
        return RQ_NOTFOUND;
    }
    *out = *(const struct atm_result *)rq_dedupe_value(o);
    return 0;
}

/* The answer to a write: @status and the balances as they now stand. */
static void answer(const struct atm_ledger *l, const struct atm_write *w,
                   int status, struct atm_result *out)
{
    out->status = status;
    out->balance = atm_ledger_balance(l, w->account);
    out->to_balance = w->op == ATM_TRANSFER ? atm_ledger_balance(l, w->to) : 0;
}

/*
 * The rules. Room for the accounts has been reserved, so nothing here
 * fails half-way: either every balance moves or none does. A refusal
 * leaves a never-seen account uncreated.
 */
static void rules_apply(struct atm_ledger *l, const struct atm_write *w,
                        struct atm_result *out)
{
    int64_t from = atm_ledger_balance(l, w->account);
    int64_t to = w->op == ATM_TRANSFER ? atm_ledger_balance(l, w->to) : 0;

    switch (w->op) {
        case ATM_DEPOSIT:
            if (w->amount > INT64_MAX - from) {
                answer(l, w, ATM_OVERFLOW, out);
                return;
            }
            account_get(l, w->account)->cents = from + w->amount;
            break;
        case ATM_WITHDRAW:
            if (w->amount > from) {
                answer(l, w, ATM_INSUFFICIENT, out);
                return;
            }
            account_get(l, w->account)->cents = from - w->amount;
            break;
        case ATM_TRANSFER:
            if (w->amount > from) {
                answer(l, w, ATM_INSUFFICIENT, out);
                return;
            }
            if (w->amount > INT64_MAX - to) {
                answer(l, w, ATM_OVERFLOW, out);
                return;
            }
            account_get(l, w->account)->cents = from - w->amount;
            account_get(l, w->to)->cents = to + w->amount;
            break;
        default:
            assert(0); /* write_valid() let only the three through. */
    }
    answer(l, w, 0, out);
}

int atm_ledger_apply(struct atm_ledger *l, const struct atm_write *w,
                     struct atm_result *out)
{
    const struct rq_dedupe_entry *o;
    int rv;

    if (!write_valid(w)) {
        /* Not even its names can be trusted: answer without looking. */
        memset(out, 0, sizeof *out);
        out->status = RQ_INVALID;
        return 0;
    }
    o = rq_dedupe_find(&l->origins, w->rid.origin);
    if (o != NULL && w->rid.seq == o->seq) {
        /* A retry: answer again, apply nothing. */
        *out = *(const struct atm_result *)rq_dedupe_value(o);
        return 0;
    }
    if (o != NULL && w->rid.seq < o->seq) {
        answer(l, w, RQ_INVALID, out); /* Stale: superseded by a later seq. */
        return 0;
    }

    /* Reserve everything first so that an allocation failure changes
     * nothing and the same entry can be applied again later. When the
     * origins are full, eviction makes the room. */
    rv = accounts_reserve(l, 2);
    if (rv == 0 && o == NULL) {
        rv = rq_dedupe_reserve(&l->origins, rq_dedupe_count(&l->origins) + 1);
    }
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }

    rules_apply(l, w, out);
    struct atm_result *r =
        rq_dedupe_value(rq_dedupe_put(&l->origins, w->rid.origin, w->rid.seq));
    *r = *out;
    return 0;
}

/* ---- Snapshot ---- */

static int account_cmp(const void *a, const void *b)
{
    const struct account *x = *(const struct account *const *)a;
    const struct account *y = *(const struct account *const *)b;
    return strcmp(x->name, y->name);
}

/*
 * version:u32 | ops:u64 | n_accounts:u32 | n x (name:blob | cents:u64)
 * | n_origins:u32 | n x (origin:u64 | seq:u64 | last_used:u64 | result)
 *
 * Records go out sorted (accounts by name, origins by id), never in table
 * order, which depends on the history of growth.
 */
int atm_ledger_encode(const struct atm_ledger *l, struct rq_buf *out)
{
    const struct account **sorted =
        malloc((l->accounts_n > 0 ? l->accounts_n : 1) * sizeof *sorted);
    const struct rq_dedupe_entry **origins;
    size_t k;

    if (sorted == NULL || rq_dedupe_sorted(&l->origins, &origins) != 0) {
        free(sorted); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    rq_buf_put_u32(out, SNAPSHOT_VERSION);
    rq_buf_put_u64(out, rq_dedupe_ops(&l->origins));

    k = 0;
    for (size_t i = 0; i < l->accounts_cap; i++) {
        if (l->accounts[i].name[0] != '\0') {
            sorted[k++] = &l->accounts[i];
        }
    }
    assert(k == l->accounts_n);
    qsort(sorted, k, sizeof *sorted, account_cmp);
    rq_buf_put_u32(out, (uint32_t)k);
    for (size_t i = 0; i < k; i++) {
        rq_buf_put_blob(out, sorted[i]->name, strlen(sorted[i]->name));
        rq_buf_put_u64(out, (uint64_t)sorted[i]->cents);
    }

    k = rq_dedupe_count(&l->origins);
    rq_buf_put_u32(out, (uint32_t)k);
    for (size_t i = 0; i < k; i++) {
        const struct rq_dedupe_entry *o = origins[i];
        rq_buf_put_u64(out, o->id);
        rq_buf_put_u64(out, o->seq);
        rq_buf_put_u64(out, o->last_used);
        put_result(out, rq_dedupe_value(o));
    }
    free(origins);
    free(sorted);
    return out->err;
}

/*
 * Decodes into a fresh ledger @t and checks everything the encoder
 * guarantees: version, names, sort order (which also rules out
 * duplicates), balance and result ranges, the origin bound, the eviction
 * clock, and that no byte is left over.
 */
static int decode_into(struct atm_ledger *t, const uint8_t *p, size_t len)
{
    struct rq_cursor c;
    uint32_t version;
    uint64_t ops;
    uint32_t n;
    int rv;

    rq_cursor_init(&c, p, len);
    if (rq_wire_get_u32(&c, &version) != 0 || version != SNAPSHOT_VERSION ||
        rq_wire_get_u64(&c, &ops) != 0) {
        return RQ_MALFORMED;
    }

    if (rq_wire_get_u32(&c, &n) != 0 || n > c.left / ACCOUNT_REC_MIN) {
        return RQ_MALFORMED;
    }
    rv = accounts_reserve(t, n);
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    char prev[ATM_ACCOUNT_MAX] = "";
    for (uint32_t i = 0; i < n; i++) {
        char name[ATM_ACCOUNT_MAX];
        int64_t cents;
        if (get_name(&c, name) != 0 || !atm_account_valid(name) ||
            (i > 0 && strcmp(prev, name) >= 0) || get_cents(&c, &cents) != 0) {
            return RQ_MALFORMED;
        }
        account_get(t, name)->cents = cents;
        memcpy(prev, name, sizeof prev);
    }

    if (rq_wire_get_u32(&c, &n) != 0 || n > ATM_ORIGINS_MAX ||
        n > c.left / ORIGIN_REC_MIN) {
        return RQ_MALFORMED;
    }
    rv = rq_dedupe_load_begin(&t->origins, ops, n);
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id;
        uint64_t seq;
        uint64_t last_used;
        struct atm_result r;
        struct atm_result *v;
        if (rq_wire_get_u64(&c, &id) != 0 || rq_wire_get_u64(&c, &seq) != 0 ||
            rq_wire_get_u64(&c, &last_used) != 0 ||
            get_result(&c, false, &r) != 0 ||
            (v = rq_dedupe_load(&t->origins, id, seq, last_used)) == NULL) {
            return RQ_MALFORMED;
        }
        *v = r;
    }
    if (c.left != 0) {
        return RQ_MALFORMED;
    }
    /* Invariant 3: last_used distinct, in 1..ops. */
    return rq_dedupe_load_end(&t->origins);
}

int atm_ledger_decode(struct atm_ledger *l, const uint8_t *p, size_t len)
{
    struct atm_ledger t;
    int rv;

    memset(&t, 0, sizeof t);
    rq_dedupe_init(&t.origins, ATM_ORIGINS_MAX, sizeof(struct atm_result));
    rv = decode_into(&t, p, len);
    if (rv != 0) {
        free(t.accounts);
        rq_dedupe_close(&t.origins);
        return rv;
    }
    free(l->accounts);
    rq_dedupe_close(&l->origins);
    *l = t;
    return 0;
}
