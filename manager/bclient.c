/*
 * Calls to brokers (see bclient.h). One struct bcall per call; it owns a
 * timer for the pause between attempts, so it is freed from the timer's
 * close callback.
 */
#include "bclient.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcore.h"
#include "policy.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_json.h"
#include "rq_log.h"
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
#define RETRY_MS 100
#define MAX_REDIRECTS 3
#define WHY_LEN 384

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
    uint64_t deadline;           /* uv_now() value. */
    uint32_t redirect_to;        /* Next target named by a 421; 0: none. */
    uint32_t target;             /* The broker being asked. */
    uint32_t order[MCMD_RF + 1]; /* Reads: the brokers in the order to ask. */
    unsigned n_order;
    unsigned next; /* Reads: index into order; produce: rotation. */
    unsigned redirects;
    unsigned wait_ms;
    uint64_t offset; /* Reads: the first offset asked for. */
    char why[WHY_LEN];
    /* Reads with no known leader ask every replica at once and take the
     * first final answer (policy_read_final); a leader named meanwhile is
     * asked next if none comes. */
    bool fanout;
    struct fan fans[MCMD_RF];
    unsigned fan_pending;
    uint32_t fan_named; /* A leader a replica named. */
    bool delivered;     /* A final answer went to the caller. */
    uv_timer_t timer;
    bclient_cb cb;
    void *data;
};

static void attempt(struct bcall *c);

static void on_closed(uv_handle_t *h)
{
    struct bcall *c = h->data;
    free(c->body);
    free(c);
}

static void finish(struct bcall *c, int status, const json_t *answer,
                   const char *why, const char *retry_after)
{
    struct bclient_result r = {
        .status = status,
        .answer = answer,
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
    finish(c, 503, NULL, why, "1");
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
    if (mcore_closing(c->core) || now + RETRY_MS >= c->deadline) {
        finish_unavailable(c);
        return;
    }
    uv_timer_start(&c->timer, on_retry, RETRY_MS, 0);
}

static uint32_t produce_target(struct bcall *c)
{
    if (c->redirect_to != 0) {
        uint32_t t = c->redirect_to;
        c->redirect_to = 0;
        return t;
    }
    const struct route *r =
        routing_get(mcore_routing(c->core), c->part.group_id);
    if (r != NULL && r->leader != 0 && c->next == 0) {
        c->next++;
        return r->leader;
    }
    /* The preferred leader first, then the others in turn. */
    return c->part.replicas[c->next++ % MCMD_RF];
}

/* A 421's or a read answer's leader_id, if it is a valid broker id. */
static uint32_t named_leader(const json_t *o)
{
    return rq_json_id(o, "leader_id");
}

/* Notes what a read's final answer @o from @broker says of the leader and
 * the high watermark in the routing cache. */
static void read_learn(struct bcall *c, uint32_t broker, const json_t *o)
{
    uint64_t now = mcore_now(c->core);
    json_t *hw = json_object_get(o, "high_watermark");
    routing_set_leader(mcore_routes(c->core), c->part.group_id, broker, now);
    if (json_is_integer(hw)) {
        routing_raise(mcore_routes(c->core), c->part.group_id,
                      (uint64_t)json_integer_value(hw));
    }
}

/* A read's brokers in the order to ask them: the leader the routing
 * cache names, then the partition's replicas in their order. Starts a
 * new round, redirects included. */
static void read_order(struct bcall *c)
{
    const struct route *r =
        routing_get(mcore_routing(c->core), c->part.group_id);
    unsigned n = 0;
    if (r != NULL && r->leader != 0) {
        c->order[n++] = r->leader;
    }
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (n == 0 || c->part.replicas[k] != c->order[0]) {
            c->order[n++] = c->part.replicas[k];
        }
    }
    c->n_order = n;
    c->next = 0;
    c->redirects = 0;
}

static void on_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct bcall *c = data;
    struct mcore *core = c->core;
    uint64_t gid = c->part.group_id;
    json_t *o = NULL;

    if (resp->err == RQ_CANCELED || mcore_closing(core)) {
        snprintf(c->why, sizeof c->why, "the manager is shutting down");
        finish_unavailable(c);
        return;
    }
    if (resp->err != 0) {
        snprintf(c->why, sizeof c->why, "broker %u: %s", c->target, resp->why);
        routing_drop_leader(mcore_routes(core), gid, c->target);
        if (c->produce) {
            retry_later(c);
        } else {
            attempt(c);
        }
        return;
    }
    if (resp->body_len > 0) {
        o = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    const char *msg = json_string_value(json_object_get(o, "message"));
    if (resp->status == 421) {
        uint32_t leader = named_leader(o);
        snprintf(c->why, sizeof c->why, "broker %u is not the leader",
                 c->target);
        json_decref(o);
        routing_drop_leader(mcore_routes(core), gid, c->target);
        if (leader != 0 && leader != c->target &&
            c->redirects < MAX_REDIRECTS) {
            routing_set_leader(mcore_routes(core), gid, leader,
                               mcore_now(core));
            c->redirects++;
            c->redirect_to = leader;
            attempt(c);
        } else if (c->produce) {
            retry_later(c);
        } else {
            attempt(c);
        }
        return;
    }
    bool retention =
        resp->status == 404 && json_object_get(o, "first_offset") != NULL;
    if (resp->status == 503 || (resp->status == 404 && !retention) ||
        resp->status >= 500) {
        /* No leader yet, a transfer, or a replica not created yet. */
        snprintf(c->why, sizeof c->why, "broker %u: %ld %s", c->target,
                 resp->status, msg != NULL ? msg : "");
        json_decref(o);
        if (c->produce) {
            retry_later(c);
        } else {
            attempt(c);
        }
        return;
    }
    if (resp->status == 200 && c->produce) {
        json_t *base = json_object_get(o, "base_offset");
        json_t *count = json_object_get(o, "count");
        routing_set_leader(mcore_routes(core), gid, c->target, mcore_now(core));
        if (json_is_integer(base) && json_is_integer(count)) {
            routing_raise(mcore_routes(core), gid,
                          (uint64_t)json_integer_value(base) +
                              (uint64_t)json_integer_value(count));
        }
    } else if (resp->status == 200 && o != NULL &&
               !policy_read_final(o, c->offset)) {
        /* Not the confirmed leader's answer (an older broker's follower),
         * or no records below the high watermark: ask the leader it
         * names, else the next replica. */
        uint32_t named = named_leader(o);
        snprintf(c->why, sizeof c->why,
                 "broker %u answered without confirmed records", c->target);
        if (named != 0 && named != c->target && c->redirects < MAX_REDIRECTS) {
            routing_set_leader(mcore_routes(core), gid, named, mcore_now(core));
            c->redirects++;
            c->redirect_to = named;
        }
        json_decref(o);
        attempt(c);
        return;
    } else if (resp->status == 200 && o != NULL) {
        read_learn(c, c->target, o);
    }
    if (resp->status == 200 && o == NULL) {
        snprintf(c->why, sizeof c->why, "broker %u answered no JSON",
                 c->target);
        finish_unavailable(c);
        return;
    }
    finish(c, (int)resp->status, o,
           msg != NULL ? msg : "the broker refused the request",
           resp->retry_after);
    json_decref(o);
}

static void attempt(struct bcall *c)
{
    struct mcore *core = c->core;
    struct mstore_broker b;
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
            c->target = produce_target(c);
        } else if (c->redirect_to != 0) {
            c->target = c->redirect_to;
            c->redirect_to = 0;
        } else if (c->next < c->n_order) {
            c->target = c->order[c->next++];
        } else {
            /* Every replica asked, none the confirmed leader now (an
             * election, the new leader's barrier, a transfer): again after
             * a pause, the leader the cache names first, until the
             * deadline. */
            read_order(c);
            retry_later(c);
            return;
        }
        if (c->target != 0 &&
            mstore_broker(mcore_store(core), c->target, &b) == 0) {
            break;
        }
        snprintf(c->why, sizeof c->why, "broker %u is unknown", c->target);
    }
    snprintf(url, sizeof url, "http://%s%s", b.http_addr, c->path);
    struct rq_httpc_req r = {
        .method = c->produce ? "POST" : "GET",
        .url = url,
        .body = c->body,
        .body_len = c->body_len,
        .timeout_ms = CALL_TIMEOUT_MS + c->wait_ms,
    };
    int rv =
        mcore_call(core, MCORE_BROKER, c->produce ? MCORE_RECORDS : MCORE_JSON,
                   &r, on_answer, c);
    if (rv != 0) {
        snprintf(c->why, sizeof c->why, "calling broker %u: %s", c->target,
                 rq_strerror(rv));
        finish_unavailable(c);
    }
}

static void on_fan_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct fan *f = data;
    struct bcall *c = f->c;
    json_t *o = NULL;

    if (resp->err != 0) {
        snprintf(c->why, sizeof c->why, "broker %u: %s", f->broker, resp->why);
    } else {
        o = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    bool retention =
        resp->status == 404 && json_object_get(o, "first_offset") != NULL;
    bool final = resp->err == 0 && ((resp->status == 200 && o != NULL &&
                                     policy_read_final(o, c->offset)) ||
                                    retention);
    if (!c->delivered && final && !mcore_closing(c->core)) {
        /* The confirmed leader's answer needs no other, and a replica
         * that does not answer (a stopped process) does not hold it up.
         * The call is freed once every answer is in. */
        struct bclient_result r = {
            .status = (int)resp->status, .answer = o, .why = ""};
        read_learn(c, f->broker, o);
        c->delivered = true;
        c->cb(c->data, &r);
    } else if (resp->err == 0 && !final) {
        const char *msg = json_string_value(json_object_get(o, "message"));
        uint32_t named = named_leader(o);
        if (named != 0 && named != f->broker) {
            c->fan_named = named;
        }
        snprintf(c->why, sizeof c->why, "broker %u: %ld %s", f->broker,
                 resp->status, msg != NULL ? msg : "");
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
        c->redirect_to = c->fan_named;
        attempt(c);
        return;
    }
    retry_later(c); /* No leader yet: every replica again after a pause. */
}

static void fan_out(struct bcall *c)
{
    struct mcore *core = c->core;
    struct mstore_broker b;
    char url[1024];

    c->fan_named = 0;
    for (unsigned k = 0; k < MCMD_RF; k++) {
        c->fans[k] = (struct fan){.c = c, .broker = c->part.replicas[k]};
        if (mstore_broker(mcore_store(core), c->part.replicas[k], &b) != 0) {
            continue;
        }
        snprintf(url, sizeof url, "http://%s%s", b.http_addr, c->path);
        struct rq_httpc_req r = {
            .method = "GET",
            .url = url,
            .timeout_ms = CALL_TIMEOUT_MS + c->wait_ms,
        };
        if (mcore_call(core, MCORE_BROKER, MCORE_JSON, &r, on_fan_answer,
                       &c->fans[k]) == 0) {
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

int bclient_produce(struct mcore *core, const struct mstore_partition *p,
                    const json_t *records, uint64_t producer_id,
                    uint64_t sequence, bclient_cb cb, void *data)
{
    if (mcore_closing(core)) {
        return RQ_SHUTDOWN;
    }
    if (producer_id == 0) {
        /* A pair of our own: unique to this process and this call. */
        producer_id = mcore_producer_id(core);
        producer_id = producer_id != 0 ? producer_id : 1;
        sequence = 0;
    }
    /* The binary form (shared/rq_record.h), so brokers parse no JSON. */
    struct rq_buf b;
    rq_buf_init(&b);
    rq_record_body_put_json(&b, records);
    if (b.err != 0) {
        rq_buf_close(&b); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    struct bcall *c = bcall_new(core, p, cb, data);
    if (c == NULL) {
        rq_buf_close(&b); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    c->produce = true;
    c->body = (char *)b.base; /* Owned from here (freed with free()). */
    c->body_len = b.len;
    snprintf(c->path, sizeof c->path,
             "/v1/topics/%s/partitions/%u/records?producer_id=%" PRIu64
             "&sequence=%" PRIu64,
             p->topic, p->partition_id, producer_id, sequence);
    /* The first attempt runs on the next turn: the callback never runs
     * inside this call. */
    uv_timer_start(&c->timer, on_retry, 0, 0);
    return 0;
}

int bclient_read(struct mcore *core, const struct mstore_partition *p,
                 uint64_t offset, uint32_t max, uint32_t wait_ms, bclient_cb cb,
                 void *data)
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
    c->deadline = mcore_now(core) + READ_DEADLINE_MS + wait_ms;
    snprintf(c->path, sizeof c->path,
             "/v1/topics/%s/partitions/%u/records?offset=%" PRIu64
             "&max=%u&wait_ms=%u",
             p->topic, p->partition_id, offset, max, wait_ms);
    read_order(c);
    /* With no leader known, a read asks every replica at once; a long
     * poll waits on one replica at a time. */
    const struct route *r = routing_get(mcore_routing(core), p->group_id);
    c->fanout = wait_ms == 0 && (r == NULL || r->leader == 0);
    uv_timer_start(&c->timer, on_retry, 0, 0);
    return 0;
}
