/*
 * A manager with an empty Raft directory finds out whether to bootstrap
 * or to join (see mjoin.h).
 */
#include "mjoin.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcmd.h"
#include "mcore.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_httpc.h"
#include "rq_log.h"
#include "rq_rpc.h"
#include "rq_uid.h"

#define LOG_TAG "mjoin"

#define ROUND_MS 500
#define ASK_TIMEOUT_MS 1000
#define JOIN_TIMEOUT_MS 10000
/* A round that waits is logged from the WAIT_LOG_FIRST-th on (managers
 * started together wait a round or two), then every WAIT_LOG_ROUNDS. */
#define WAIT_LOG_FIRST 4
#define WAIT_LOG_ROUNDS 20

enum state { PROBING, JOINING, DONE };

struct ask {
    struct mjoin *j;
    size_t slot;
};

struct mjoin {
    uv_loop_t *loop;
    struct rq_rpc *rpc;
    struct mcore *core;
    struct mjoin_config cfg;
    mjoin_done_cb cb;
    void *data;

    enum state state;
    bool rejoin; /* Asking for a running node (mjoin_rejoin). */
    bool stopped;
    uv_timer_t timer;
    unsigned pending; /* Calls under way (RPCs or the join). */
    unsigned rounds;  /* Rounds that decided to wait. */

    struct mjoin_answer *answers; /* One per other peer. */
    size_t n_answers;
    char target[MCMD_ADDR_MAX + 1]; /* Where to ask to join (HTTP). */
};

static void on_timer(uv_timer_t *t);

int mjoin_new(uv_loop_t *loop, struct rq_rpc *rpc, struct mcore *core,
              const struct mjoin_config *cfg, bool start, mjoin_done_cb cb,
              void *data, struct mjoin **out)
{
    struct mjoin *j = calloc(1, sizeof *j);
    if (j == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    j->answers = calloc(cfg->n_peers + 1, sizeof *j->answers);
    if (j->answers == NULL) {
        free(j); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    j->loop = loop;
    j->rpc = rpc;
    j->core = core;
    j->cfg = *cfg;
    j->cb = cb;
    j->data = data;
    uv_timer_init(loop, &j->timer);
    j->timer.data = j;
    j->state = start ? PROBING : DONE;
    if (start) {
        uv_timer_start(&j->timer, on_timer, 0, 0);
        rq_log(RQ_INFO,
               "the Raft directory is empty: asking the other managers "
               "whether a cluster exists before bootstrapping or joining");
    }
    *out = j;
    return 0;
}

void mjoin_rejoin(struct mjoin *j)
{
    if (j->stopped || j->state != DONE || j->pending > 0) {
        return;
    }
    j->rejoin = true;
    j->state = PROBING;
    uv_timer_start(&j->timer, on_timer, 0, 0);
}

void mjoin_stop(struct mjoin *j)
{
    if (j != NULL && !j->stopped) {
        j->stopped = true;
        uv_close((uv_handle_t *)&j->timer, NULL);
    }
}

void mjoin_free(struct mjoin *j)
{
    if (j != NULL) {
        free(j->answers);
        free(j);
    }
}

static void again(struct mjoin *j, unsigned ms)
{
    if (!j->stopped) {
        uv_timer_start(&j->timer, on_timer, ms, 0);
    }
}

static void done(struct mjoin *j, enum mjoin_decision how)
{
    j->state = DONE;
    if (!j->stopped) {
        j->cb(j->data, how);
    }
}

/* ---- Joining ---- */

static void on_joined(void *data, const struct rq_httpc_resp *resp)
{
    struct mjoin *j = data;
    j->pending--;
    if (j->stopped) {
        return;
    }
    if (resp->err == 0 && resp->status == 200) {
        rq_log(RQ_INFO, "manager %s added this manager to its cluster",
               j->target);
        done(j, MJOIN_JOIN);
        return;
    }
    if (resp->err == 0 && resp->status == 202) {
        rq_log(RQ_WARN,
               "this manager was a voter of that cluster and has lost its "
               "data: its old membership is removed; joining again");
        j->state = PROBING;
        again(j, 0);
        return;
    }
    rq_log(RQ_INFO, "asking %s to join: %s%ld %.*s", j->target,
           resp->err != 0 ? resp->why : "HTTP ",
           resp->err != 0 ? 0L : resp->status,
           (int)(resp->body_len > 200 ? 200 : resp->body_len),
           resp->body != NULL ? resp->body : "");
    j->state = j->rejoin ? DONE : PROBING;
    again(j, ROUND_MS);
}

static void join(struct mjoin *j)
{
    char url[MCMD_ADDR_MAX + 96];
    char body[2 * MCMD_ADDR_MAX + 64];
    j->state = JOINING;
    snprintf(url, sizeof url, "http://%s/internal/managers/%" PRIu64 "/join",
             j->target, j->cfg.self);
    json_t *o = json_pack("{s:s,s:s}", "raft_addr", j->cfg.raft_addr,
                          "http_addr", j->cfg.http_addr);
    size_t len = o != NULL ? json_dumpb(o, body, sizeof body, JSON_COMPACT) : 0;
    json_decref(o);
    struct rq_httpc_req r = {
        .method = "POST",
        .url = url,
        .body = body,
        .body_len = len,
        .timeout_ms = JOIN_TIMEOUT_MS,
    };
    if (len == 0 || len > sizeof body ||
        mcore_call(j->core, MCORE_MANAGER, MCORE_JSON, &r, on_joined, j) != 0) {
        j->state = PROBING; /* UNTESTED: ENOMEM or closing only. */
        again(j, ROUND_MS);
        return;
    }
    j->pending++;
}

/* ---- Asking ---- */

static void decide(struct mjoin *j)
{
    if (j->rejoin) {
        if (mjoin_plan_rejoin(j->answers, j->n_answers) == MJOIN_JOIN) {
            rq_log(RQ_WARN,
                   "no leader heard, and the managers' configuration leaves "
                   "this manager out (removed while away?): asking to join "
                   "again");
            join(j);
        } else {
            j->state = DONE;
        }
        return;
    }
    bool self_in = false;
    for (size_t i = 0; i < j->cfg.n_peers; i++) {
        self_in |= j->cfg.peers[i].id == j->cfg.self;
    }
    enum mjoin_decision d =
        mjoin_plan(self_in, j->cfg.n_peers, j->answers, j->n_answers);
    if (d == MJOIN_BOOTSTRAP) {
        rq_log(RQ_INFO,
               "no manager holds a cluster: bootstrapping the cluster of "
               "--peers");
        done(j, MJOIN_BOOTSTRAP);
        return;
    }
    if (d == MJOIN_JOIN) {
        join(j);
        return;
    }
    if (j->rounds++ % WAIT_LOG_ROUNDS == WAIT_LOG_FIRST) {
        char silent[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < j->n_answers; i++) {
            if (!j->answers[i].answered && used < sizeof silent) {
                used += (size_t)snprintf(silent + used, sizeof silent - used,
                                         " %" PRIu64, j->answers[i].id);
            }
        }
        rq_log(RQ_WARN, "%s; waiting (silent:%s)",
               self_in ? "fewer than a majority of --peers answered and none "
                         "holds a cluster"
                       : "this manager is not in --peers and no manager of a "
                         "live cluster answered",
               used > 0 ? silent : " none");
    }
    again(j, ROUND_MS);
}

/* A peer's answer: where to ask to join, and whether it is live. */
static void on_info(void *data, int status, const uint8_t *body, size_t len)
{
    struct ask *a = data;
    struct mjoin *j = a->j;
    struct mjoin_answer *ans = &j->answers[a->slot];
    free(a);
    j->pending--;
    if (status == 0 && !j->stopped) {
        json_t *o = json_loadb((const char *)body, len, 0, NULL);
        uint64_t uid = 0;
        const char *uid_text = json_string_value(json_object_get(o, "uid"));
        json_int_t commit = json_integer_value(json_object_get(o, "commit"));
        json_int_t applied = json_integer_value(json_object_get(o, "applied"));
        const char *lead = json_string_value(json_object_get(o, "leader_http"));
        const char *http = json_string_value(json_object_get(o, "http"));
        if (o != NULL) {
            if (uid_text != NULL) {
                (void)rq_uid_parse(uid_text, &uid);
            }
            uint64_t c = (uint64_t)(commit > applied ? commit : applied);
            ans->answered = true;
            ans->live = mjoin_plan_live(uid, c);
            const json_t *members = json_object_get(o, "members");
            size_t k;
            const json_t *id;
            json_array_foreach(members, k, id)
            {
                ans->lists_self |=
                    (uint64_t)json_integer_value(id) == j->cfg.self;
            }
            const char *to = lead != NULL ? lead : http;
            if (ans->live && to != NULL && strlen(to) <= MCMD_ADDR_MAX &&
                (j->target[0] == '\0' || lead != NULL)) {
                snprintf(j->target, sizeof j->target, "%s", to);
            }
        }
        json_decref(o);
    }
    if (j->pending == 0 && !j->stopped) {
        decide(j);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct mjoin *j = t->data;
    if (j->stopped || j->state != PROBING || j->pending > 0) {
        return;
    }
    j->n_answers = 0;
    j->target[0] = '\0';
    for (size_t i = 0; i < j->cfg.n_peers; i++) {
        const struct rq_peer *p = &j->cfg.peers[i];
        if (p->id == j->cfg.self) {
            continue;
        }
        size_t slot = j->n_answers++;
        j->answers[slot] = (struct mjoin_answer){.id = p->id};
        struct ask *a = calloc(1, sizeof *a);
        if (a == NULL) {
            continue; /* UNTESTED: ENOMEM only; counts as silent. */
        }
        a->j = j;
        a->slot = slot;
        if (rq_rpc_call(j->rpc, p->address, MJOIN_RPC_INFO, NULL, 0,
                        ASK_TIMEOUT_MS, on_info, a) != 0) {
            free(a);
            continue;
        }
        j->pending++;
    }
    if (j->pending == 0) {
        decide(j); /* Alone in --peers, or nobody could be asked. */
    }
}
