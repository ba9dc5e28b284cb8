/*
 * Calls to brokers (see bclient.h). One struct bcall per call; it owns a
 * timer for the pause between attempts, so it is freed from the timer's
 * close callback. Whom to ask and what an answer means are decided by
 * bclient_policy.c (pure, unit-tested); this file sends the calls, keeps
 * the timers and the routing cache, and carries the decisions out.
 */
#include "bclient.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bclient_policy.h"
#include "mcore.h"
#include "policy.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_json.h"
#include "rq_log.h"
#include "rq_reads.h"
#include "rq_record.h"
#include "rq_wire.h"

#define LOG_TAG "bclient"

/* How long a produce keeps trying before 503: long enough to cover a
 * partition's election at the brokers' default timing (a 2.5 s timeout,
 * randomised up to 5 s, then the new leader's barrier), whether after its
 * leader died or right after a topic's replicas were created, with margin
 * for a loaded machine; a client is never told to retry what one more
 * election would have served. */
#define PRODUCE_DEADLINE_MS 10000
/* How long a read keeps asking while no replica is the confirmed leader
 * (an election, the new leader's barrier, a transfer) before 503, besides
 * its own wait: an election at the brokers' default timing, not more, so
 * that a consume goes on to the next partition. */
#define READ_DEADLINE_MS 5000
#define CALL_TIMEOUT_MS 5000
#define WHY_LEN BCLIENT_POLICY_WHY

struct bcall;

/* One of the reads a fanned-out read sends. */
struct fan {
    struct bcall *c;
    uint32_t broker;
};

struct bcall {
    struct mcore *core;
    bool produce;
    struct mstore_partition part;
    char *body; /* Produce: the request body (owned). */
    size_t body_len;
    char path[512];
    uint64_t deadline;                /* uv_now() value. */
    struct bclient_policy_cursor cur; /* Who to ask next. */
    uint32_t target;                  /* The broker being asked. */
    unsigned wait_ms;
    uint64_t offset; /* Reads: the first offset asked for. */
    bool binary;     /* Reads: ask for the binary answer (rq_reads.h). */
    char why[WHY_LEN];
    /* Reads with no known leader ask every replica at once and take the
     * first final answer (policy_read_final); a leader named meanwhile is
     * asked next if none comes. */
    bool fanout;
    struct fan fans[MCMD_RF];
    unsigned fan_pending;
    uint32_t fan_named; /* A leader a replica named. */
    bool delivered;     /* A final answer went to the caller. */
    unsigned pauses;    /* Taken so far (bclient_policy_pause_ms). */
    uv_timer_t timer;
    bclient_cb cb;
    void *data;
};

static void attempt(struct bcall *c);

/* ---- Brokers' addresses, kept while the store's layout holds ---- */

/* Brokers whose address is kept at most (more are read from the store). */
#define ADDRS_KEPT 64

/*
 * Every call needs its broker's HTTP address: a store query each time,
 * a twentieth of a manager's CPU under single-record produces. A broker's
 * address changes only with an entry that moves mstore_layout_generation(),
 * so what was read is kept until the number moves.
 */
static struct {
    const struct mstore *store;
    uint64_t gen;
    size_t n;
    struct {
        uint32_t id;
        char http_addr[MCMD_ADDR_MAX + 1];
    } b[ADDRS_KEPT];
} addrs;

/* Broker @id's HTTP address into @out (MCMD_ADDR_MAX + 1 bytes); non-zero
 * if the store knows no such broker. */
static int broker_addr(struct mcore *core, uint32_t id, char *out)
{
    const struct mstore *store = mcore_store(core);
    uint64_t gen = mstore_layout_generation(store);
    if (addrs.store != store || addrs.gen != gen) {
        addrs.store = store;
        addrs.gen = gen;
        addrs.n = 0;
    }
    for (size_t i = 0; i < addrs.n; i++) {
        if (addrs.b[i].id == id) {
            memcpy(out, addrs.b[i].http_addr, sizeof addrs.b[i].http_addr);
            return 0;
        }
    }
    struct mstore_broker b;
    int rv = mstore_broker(store, id, &b);
    if (rv != 0) {
        return rv;
    }
    memcpy(out, b.http_addr, sizeof b.http_addr);
    if (addrs.n < ADDRS_KEPT) {
        addrs.b[addrs.n].id = id;
        memcpy(addrs.b[addrs.n].http_addr, b.http_addr, sizeof b.http_addr);
        addrs.n++;
    }
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct bcall *c = h->data;
    free(c->body);
    free(c);
}

static void finish(struct bcall *c, int status, const json_t *answer,
                   const struct rq_reads_head *head,
                   const struct rq_httpc_resp *resp, const char *why,
                   const char *retry_after)
{
    bool body = answer != NULL || head != NULL;
    struct bclient_result r = {
        .status = status,
        .answer = answer,
        .head = head,
        .body = body ? resp->body : NULL,
        .body_len = body ? resp->body_len : 0,
        .resp = body ? resp : NULL,
        .why = why != NULL ? why : "",
        .retry_after = retry_after,
    };
    c->cb(c->data, &r);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void finish_unavailable(struct bcall *c)
{
    char why[WHY_LEN + 128];
    snprintf(why, sizeof why,
             "topic %s partition %u cannot be reached now (%s); retry",
             c->part.topic, c->part.partition_id,
             c->why[0] != '\0' ? c->why : "no replica answered");
    finish(c, 503, NULL, NULL, NULL, why, "1");
}

static void fan_out(struct bcall *c);

static void on_retry(uv_timer_t *t)
{
    struct bcall *c = t->data;
    if (c->fanout) {
        fan_out(c);
    } else {
        attempt(c);
    }
}

/* Tries again after a pause, or ends the call past its deadline. */
static void retry_later(struct bcall *c)
{
    uint64_t now = mcore_now(c->core);
    unsigned ms = bclient_policy_pause_ms(c->pauses);
    if (mcore_closing(c->core) || now + ms >= c->deadline) {
        finish_unavailable(c);
        return;
    }
    c->pauses++;
    mcore_stats(c->core)->broker_retries++;
    rq_log(RQ_DEBUG, "group %" PRIu64 ": broker call again in %u ms: %s",
           c->part.group_id, ms, c->why);
    uv_timer_start(&c->timer, on_retry, ms, 0);
}

/* The leader of the call's group as the routing cache has it; 0: none. */
static uint32_t cached_leader(const struct bcall *c)
{
    const struct route *r =
        routing_get(mcore_routing(c->core), c->part.group_id);
    return r != NULL ? r->leader : 0;
}

/* A 421's or a read answer's leader_id, if it is a valid broker id. */
static uint32_t named_leader(const json_t *o)
{
    return rq_json_id(o, "leader_id");
}

/* Notes what a read's final answer (@o, or the binary one's @head) from
 * @broker says of the leader and the high watermark in the routing
 * cache. */
static void read_learn(struct bcall *c, uint32_t broker, const json_t *o,
                       const struct rq_reads_head *head)
{
    uint64_t now = mcore_now(c->core);
    json_t *hw = json_object_get(o, "high_watermark");
    routing_set_leader(mcore_routes(c->core), c->part.group_id, broker, now);
    if (head != NULL) {
        routing_raise(mcore_routes(c->core), c->part.group_id,
                      head->high_watermark);
    } else if (json_is_integer(hw)) {
        routing_raise(mcore_routes(c->core), c->part.group_id,
                      (uint64_t)json_integer_value(hw));
    }
}

/*
 * Reads a broker's answer: the binary form when the call asked for it and
 * the broker gave it (a 200 of its type, checked whole: *head, true),
 * else JSON (*o, NULL if it is not JSON). A binary answer is not parsed
 * or copied: the manager relays it as it came.
 */
static bool answer_read(const struct bcall *c, const struct rq_httpc_resp *resp,
                        json_t **o, struct rq_reads_head *head)
{
    *o = NULL;
    if (c->binary && resp->status == 200 &&
        rq_record_body_is_binary(resp->content_type)) {
        char why[128];
        if (rq_reads_check((const uint8_t *)resp->body, resp->body_len, head,
                           why, sizeof why) == 0) {
            return true;
        }
        rq_log(RQ_WARN, "broker %u's binary read answer: %s", c->target, why);
        return false;
    }
    if (resp->body_len > 0) {
        *o = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    return false;
}

/* Starts a read's round (bclient_policy_read_order). */
static void read_order(struct bcall *c)
{
    bclient_policy_read_order(&c->cur, cached_leader(c), c->part.replicas);
}

/* Notes what a produce's 200 answer @o says of the high watermark. */
static void produce_learn(struct bcall *c, const json_t *o)
{
    json_t *base = json_object_get(o, "base_offset");
    json_t *count = json_object_get(o, "count");
    routing_set_leader(mcore_routes(c->core), c->part.group_id, c->target,
                       mcore_now(c->core));
    if (json_is_integer(base) && json_is_integer(count)) {
        routing_raise(mcore_routes(c->core), c->part.group_id,
                      (uint64_t)json_integer_value(base) +
                          (uint64_t)json_integer_value(count));
    }
}

/* Carries out what bclient_policy_answer decided for an answer. */
static void on_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct bcall *c = data;
    struct mcore *core = c->core;
    uint64_t gid = c->part.group_id;
    struct bclient_policy_next next;
    struct rq_reads_head head;
    json_t *o = NULL;
    bool bin = false;

    struct bclient_policy_answer a = {
        .canceled = resp->err == RQ_CANCELED || mcore_closing(core),
        .failed = resp->err != 0 ? resp->why : NULL,
        .status = resp->status,
    };
    if (!a.canceled && a.failed == NULL) {
        bin = answer_read(c, resp, &o, &head);
    }
    a.json = o != NULL || bin;
    a.message = json_string_value(json_object_get(o, "message"));
    a.named = named_leader(o);
    a.retention =
        resp->status == 404 && json_object_get(o, "first_offset") != NULL;
    a.final =
        !c->produce && (bin ? policy_read_final_binary(
                                  head.count, head.high_watermark, c->offset)
                            : policy_read_final(o, c->offset));
    bclient_policy_answer(&a, c->produce, c->target, c->cur.redirects, &next);

    if (next.why_set) {
        snprintf(c->why, sizeof c->why, "%s", next.why);
    }
    if (next.drop_target) {
        routing_drop_leader(mcore_routes(core), gid, c->target);
    }
    if (next.target_leads && c->produce) {
        produce_learn(c, o);
    } else if (next.target_leads) {
        read_learn(c, c->target, o, bin ? &head : NULL);
    }
    switch (next.step) {
        case BCLIENT_FOLLOW:
            routing_set_leader(mcore_routes(core), gid, next.follow,
                               mcore_now(core));
            c->cur.redirects++;
            c->cur.redirect_to = next.follow;
            attempt(c);
            break;
        case BCLIENT_NEXT:
            attempt(c);
            break;
        case BCLIENT_PAUSE:
            retry_later(c);
            break;
        case BCLIENT_UNAVAILABLE:
            finish_unavailable(c);
            break;
        case BCLIENT_FINISH:
            finish(c, (int)resp->status, o, bin ? &head : NULL, resp,
                   a.message != NULL ? a.message
                                     : "the broker refused the request",
                   resp->retry_after);
            break;
    }
    json_decref(o);
}

static void attempt(struct bcall *c)
{
    struct mcore *core = c->core;
    char addr[MCMD_ADDR_MAX + 1];
    char url[1024];

    if (mcore_closing(core)) {
        snprintf(c->why, sizeof c->why, "the manager is shutting down");
        finish_unavailable(c);
        return;
    }
    for (unsigned tries = 0;; tries++) {
        if (tries > MCMD_RF) {
            /* No broker we know the address of: wait for the store. */
            retry_later(c);
            return;
        }
        if (c->produce) {
            c->target = bclient_policy_produce_target(&c->cur, cached_leader(c),
                                                      c->part.replicas);
        } else if ((c->target = bclient_policy_read_target(&c->cur)) == 0) {
            /* Every replica asked, none the confirmed leader now (an
             * election, the new leader's barrier, a transfer): again after
             * a pause, the leader the cache names first, until the
             * deadline. */
            read_order(c);
            retry_later(c);
            return;
        }
        if (c->target != 0 && broker_addr(core, c->target, addr) == 0) {
            break;
        }
        snprintf(c->why, sizeof c->why, "broker %u is unknown", c->target);
    }
    snprintf(url, sizeof url, "http://%s%s", addr, c->path);
    struct rq_httpc_req r = {
        .method = c->produce ? "POST" : "GET",
        .url = url,
        .body = c->body,
        .body_len = c->body_len,
        .timeout_ms = CALL_TIMEOUT_MS + c->wait_ms,
    };
    int rv = mcore_call(core, MCORE_BROKER,
                        c->produce  ? MCORE_RECORDS
                        : c->binary ? MCORE_ACCEPT_RECORDS
                                    : MCORE_JSON,
                        &r, on_answer, c);
    if (rv != 0) {
        snprintf(c->why, sizeof c->why, "calling broker %u: %s", c->target,
                 rq_strerror(rv));
        finish_unavailable(c);
    }
}

/* Carries out what bclient_policy_fan_answer decided for one replica's
 * answer; the last one in decides how the call goes on. */
static void on_fan_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct fan *f = data;
    struct bcall *c = f->c;
    struct bclient_policy_next next;
    struct rq_reads_head head;
    json_t *o = NULL;
    bool bin = false;

    if (resp->err == 0) {
        bin = answer_read(c, resp, &o, &head);
    }
    struct bclient_policy_answer a = {
        .canceled = mcore_closing(c->core),
        .failed = resp->err != 0 ? resp->why : NULL,
        .status = resp->status,
        .json = o != NULL || bin,
        .message = json_string_value(json_object_get(o, "message")),
        .named = named_leader(o),
        .retention =
            resp->status == 404 && json_object_get(o, "first_offset") != NULL,
        .final = bin ? policy_read_final_binary(head.count, head.high_watermark,
                                                c->offset)
                     : policy_read_final(o, c->offset),
    };
    bclient_policy_fan_answer(&a, f->broker, c->delivered, &next);
    if (next.why_set) {
        snprintf(c->why, sizeof c->why, "%s", next.why);
    }
    if (next.follow != 0) {
        c->fan_named = next.follow;
    }
    if (next.step == BCLIENT_FINISH) {
        /* The call is freed once every answer is in. */
        bool body = o != NULL || bin;
        struct bclient_result r = {.status = (int)resp->status,
                                   .answer = o,
                                   .head = bin ? &head : NULL,
                                   .body = body ? resp->body : NULL,
                                   .body_len = body ? resp->body_len : 0,
                                   .resp = body ? resp : NULL,
                                   .why = ""};
        read_learn(c, f->broker, o, bin ? &head : NULL);
        c->delivered = true;
        c->cb(c->data, &r);
    }
    json_decref(o);
    if (--c->fan_pending > 0) {
        return;
    }
    if (c->delivered) {
        uv_close((uv_handle_t *)&c->timer, on_closed);
        return;
    }
    if (c->fan_named != 0 && !mcore_closing(c->core)) {
        /* Ask the leader a replica named, then the others in turn. */
        c->fanout = false;
        c->cur.redirect_to = c->fan_named;
        attempt(c);
        return;
    }
    retry_later(c); /* No leader yet: every replica again after a pause. */
}

static void fan_out(struct bcall *c)
{
    struct mcore *core = c->core;
    char addr[MCMD_ADDR_MAX + 1];
    char url[1024];

    c->fan_named = 0;
    for (unsigned k = 0; k < MCMD_RF; k++) {
        c->fans[k] = (struct fan){.c = c, .broker = c->part.replicas[k]};
        if (broker_addr(core, c->part.replicas[k], addr) != 0) {
            continue;
        }
        snprintf(url, sizeof url, "http://%s%s", addr, c->path);
        struct rq_httpc_req r = {
            .method = "GET",
            .url = url,
            .timeout_ms = CALL_TIMEOUT_MS + c->wait_ms,
        };
        if (mcore_call(core, MCORE_BROKER,
                       c->binary ? MCORE_ACCEPT_RECORDS : MCORE_JSON, &r,
                       on_fan_answer, &c->fans[k]) == 0) {
            c->fan_pending++;
        }
    }
    if (c->fan_pending == 0) {
        snprintf(c->why, sizeof c->why, "no replica could be asked");
        retry_later(c);
    }
}

static struct bcall *bcall_new(struct mcore *core,
                               const struct mstore_partition *p, bclient_cb cb,
                               void *data)
{
    struct bcall *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    c->core = core;
    c->part = *p;
    c->cb = cb;
    c->data = data;
    c->deadline = mcore_now(core) + PRODUCE_DEADLINE_MS;
    uv_timer_init(mcore_loop(core), &c->timer);
    c->timer.data = c;
    return c;
}

int bclient_produce_body(struct mcore *core, const struct mstore_partition *p,
                         uint8_t *body, size_t len, uint64_t producer_id,
                         uint64_t sequence, bclient_cb cb, void *data)
{
    if (mcore_closing(core)) {
        free(body);
        return RQ_SHUTDOWN;
    }
    if (producer_id == 0) {
        /* A pair of our own: unique to this process and this call. */
        producer_id = mcore_producer_id(core);
        producer_id = producer_id != 0 ? producer_id : 1;
        sequence = 0;
    }
    struct bcall *c = bcall_new(core, p, cb, data);
    if (c == NULL) {
        free(body); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    c->produce = true;
    c->body = (char *)body; /* Owned from here (freed with free()). */
    c->body_len = len;
    snprintf(c->path, sizeof c->path,
             "/v1/topics/%s/partitions/%u/records?producer_id=%" PRIu64
             "&sequence=%" PRIu64,
             p->topic, p->partition_id, producer_id, sequence);
    /* The first attempt runs on the next turn: the callback never runs
     * inside this call. */
    uv_timer_start(&c->timer, on_retry, 0, 0);
    return 0;
}

int bclient_produce(struct mcore *core, const struct mstore_partition *p,
                    const json_t *records, uint64_t producer_id,
                    uint64_t sequence, bclient_cb cb, void *data)
{
    /* The binary form (shared/rq_record.h), so brokers parse no JSON. */
    struct rq_buf b;
    rq_buf_init(&b);
    rq_record_body_put_json(&b, records);
    if (b.err != 0) {
        rq_buf_close(&b); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    return bclient_produce_body(core, p, b.base, b.len, producer_id, sequence,
                                cb, data);
}

static int read_start(struct mcore *core, const struct mstore_partition *p,
                      uint64_t offset, uint32_t max, uint32_t wait_ms,
                      bool binary, bclient_cb cb, void *data)
{
    if (mcore_closing(core)) {
        return RQ_SHUTDOWN;
    }
    struct bcall *c = bcall_new(core, p, cb, data);
    if (c == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    c->wait_ms = wait_ms;
    c->offset = offset;
    c->binary = binary;
    c->deadline = mcore_now(core) + READ_DEADLINE_MS + wait_ms;
    snprintf(c->path, sizeof c->path,
             "/v1/topics/%s/partitions/%u/records?offset=%" PRIu64
             "&max=%u&wait_ms=%u",
             p->topic, p->partition_id, offset, max, wait_ms);
    read_order(c);
    /* With no leader known, a read asks every replica at once; a long
     * poll waits on one replica at a time. */
    c->fanout = wait_ms == 0 && cached_leader(c) == 0;
    uv_timer_start(&c->timer, on_retry, 0, 0);
    return 0;
}

int bclient_read(struct mcore *core, const struct mstore_partition *p,
                 uint64_t offset, uint32_t max, uint32_t wait_ms, bclient_cb cb,
                 void *data)
{
    return read_start(core, p, offset, max, wait_ms, false, cb, data);
}

int bclient_read_binary(struct mcore *core, const struct mstore_partition *p,
                        uint64_t offset, uint32_t max, uint32_t wait_ms,
                        bclient_cb cb, void *data)
{
    return read_start(core, p, offset, max, wait_ms, true, cb, data);
}
