/*
 * Topic traffic for the status page (see mtraffic.h): this manager's
 * counts of bytes produced, and on the leader the rounds of questions and
 * the samples that feed traffic.c.
 *
 * A round: every --traffic-sample-ms the leader asks each other member of
 * the configuration for its counts (GET /internal/produced), and samples
 * once every answer has come, or at the latest half an interval (at most
 * a second) later. A manager that has not answered by then (down, slow,
 * or of an earlier release that answers 404) has its bytes counted in the
 * sample after its next answer, or never: each sample says how many
 * managers' counts it holds (bytes_from).
 */
#include "mtraffic.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <raft.h>

#include "auth.h"
#include "liveness.h"
#include "mcore.h"
#include "mstore.h"
#include "qapi.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_httpc.h"
#include "rq_log.h"
#include "rq_node.h"
#include "traffic.h"

#define LOG_TAG "mtraffic"

#define MEMBERS_MAX 32
#define ASK_TIMEOUT_MS 3000
/* The longest a sample waits for the managers' answers. */
#define WAIT_MAX_MS 1000

/* Another manager, as the leader heard it in this series. */
struct member {
    uint64_t id;
    json_t *last; /* Its counts last applied; NULL: none yet. */
    json_t *next; /* Its latest answer, for the coming sample; or NULL. */
    bool asking;
};

struct mtraffic {
    struct mcore *core;
    struct traffic *t;
    char origin[17];  /* This process's, in hexadecimal. */
    json_t *own;      /* Topic -> bytes produced through this manager. */
    uint64_t own_gen; /* The layout generation it was last pruned at. */
    /* The topics, read again when the layout generation moves. */
    struct mstore_topic *topics;
    size_t nt;
    uint64_t topics_gen;
    bool topics_read;
    /* The leader's series. */
    bool leading;
    uint64_t series;  /* Bumped at every start and stop: answers of an
                       * earlier series are dropped. */
    uint64_t round;   /* Bumped at every round of questions. */
    unsigned pending; /* Answers of this round not come yet. */
    bool waiting;     /* A round asked, its sample not taken yet. */
    uint64_t due_ms;  /* The next round. */
    uint64_t wait_until_ms;
    unsigned managers; /* In the configuration at the last round. */
    json_t *self_last; /* This manager's counts last applied. */
    struct member members[MEMBERS_MAX];
    size_t n_members;
};

int mtraffic_new(struct mcore *core, struct mtraffic **out)
{
    uint64_t origin;
    if (getrandom(&origin, sizeof origin, 0) != sizeof origin) {
        return RQ_IO; /* UNTESTED: getrandom fails only without entropy. */
    }
    struct mtraffic *mt = calloc(1, sizeof *mt);
    if (mt == NULL || traffic_new(&mt->t) != 0 ||
        (mt->own = json_object()) == NULL) {
        if (mt != NULL) {
            traffic_free(mt->t); /* UNTESTED: ENOMEM only. */
        }
        free(mt);
        return RQ_NOMEM;
    }
    mt->core = core;
    snprintf(mt->origin, sizeof mt->origin, "%016" PRIx64, origin);
    *out = mt;
    return 0;
}

/* Forgets the series and what the members said. */
static void forget(struct mtraffic *mt)
{
    for (size_t i = 0; i < mt->n_members; i++) {
        json_decref(mt->members[i].last);
        json_decref(mt->members[i].next);
    }
    mt->n_members = 0;
    json_decref(mt->self_last);
    mt->self_last = NULL;
    traffic_reset(mt->t);
    mt->series++;
    mt->waiting = false;
    mt->pending = 0;
}

void mtraffic_free(struct mtraffic *mt)
{
    if (mt == NULL) {
        return;
    }
    forget(mt);
    traffic_free(mt->t);
    json_decref(mt->own);
    free(mt->topics);
    free(mt);
}

void mtraffic_lead(struct mtraffic *mt, uint64_t now)
{
    forget(mt);
    mt->leading = true;
    mt->due_ms = now;
}

void mtraffic_stop(struct mtraffic *mt)
{
    forget(mt);
    mt->leading = false;
}

/* ---- This manager's counts ---- */

void mtraffic_produced(struct mtraffic *mt, const char *topic, uint64_t bytes)
{
    if (mt == NULL || bytes == 0) {
        return;
    }
    json_t *v = json_object_get(mt->own, topic);
    if (v != NULL) {
        json_integer_set(v, json_integer_value(v) + (json_int_t)bytes);
    } else if (json_object_set_new(mt->own, topic,
                                   json_integer((json_int_t)bytes)) != 0) {
        /* UNTESTED: ENOMEM only; these bytes go uncounted. */
    }
}

/* The topics as the store has them now: 0 or the store's error. */
static int read_topics(struct mtraffic *mt)
{
    const struct mstore *s = mcore_store(mt->core);
    uint64_t gen = mstore_layout_generation(s);
    if (mt->topics_read && gen == mt->topics_gen) {
        return 0;
    }
    struct mstore_topic *list;
    size_t n;
    int rv = mstore_topics(s, &list, &n);
    if (rv != 0) {
        return rv;
    }
    free(mt->topics);
    mt->topics = list;
    mt->nt = n;
    mt->topics_gen = gen;
    mt->topics_read = true;
    return 0;
}

/* Drops the counts of deleted topics, once per layout change (after
 * read_topics): a topic made again under the name counts from 0, which
 * the leader takes for a new start. */
static void prune_own(struct mtraffic *mt)
{
    if (mt->own_gen == mt->topics_gen) {
        return;
    }
    const char *name;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(mt->own, tmp, name, v)
    {
        if (mstore_topic_in(mt->topics, mt->nt, name) == NULL) {
            json_object_del(mt->own, name);
        }
    }
    mt->own_gen = mt->topics_gen;
}

/* {"origin", "topics"}: a copy of this manager's counts now; NULL on
 * ENOMEM. */
static json_t *own_counts(struct mtraffic *mt)
{
    if (read_topics(mt) == 0) {
        prune_own(mt);
    }
    return json_pack("{s:s,s:o}", "origin", mt->origin, "topics",
                     json_deep_copy(mt->own));
}

void mtraffic_counts(struct rq_http_req *req, void *data)
{
    struct mtraffic *mt = mcore_modules(data)->traffic;
    json_t *o = mt != NULL ? own_counts(mt) : NULL;
    if (o == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    rq_http_reply(req, 200, o);
}

/* ---- The leader's samples ---- */

static struct member *member_of(struct mtraffic *mt, uint64_t id, bool add)
{
    for (size_t i = 0; i < mt->n_members; i++) {
        if (mt->members[i].id == id) {
            return &mt->members[i];
        }
    }
    if (!add || mt->n_members == MEMBERS_MAX) {
        return NULL;
    }
    struct member *m = &mt->members[mt->n_members++];
    *m = (struct member){.id = id};
    return m;
}

/*
 * The sample of the round: the managers' counts, then every partition of
 * the view beside the routing cache (both in group id order, walked
 * together). A route's high watermark counts once this leader holds a
 * report of the group from the broker the route names as its leader: a
 * new leader's cache holds what it copied as a follower, up to a second
 * old, and taking that for a baseline would count the records of that
 * second again when the brokers' reports raise it.
 */
static void sample(struct mtraffic *mt)
{
    struct mcore *core = mt->core;
    const struct mstore_partition *parts;
    size_t np;

    mt->waiting = false;
    if (!mt->leading || mcore_closing(core)) {
        return;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rv = read_topics(mt);
    if (rv == 0) {
        rv = mstore_partitions_view(mcore_store(core), &parts, &np);
    }
    json_t *self = rv == 0 ? own_counts(mt) : NULL;
    if (rv == 0 && self == NULL) {
        rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    if (rv == 0) {
        rv = traffic_begin(mt->t, mcore_now(core), mcore_wall_ms(), mt->topics,
                           mt->nt, np);
    }
    if (rv != 0) {
        json_decref(self);
        rq_log(RQ_WARN, "no traffic sample: %s", rq_strerror(rv));
        return;
    }
    unsigned from = traffic_counted(mt->t, mt->self_last, self);
    json_decref(mt->self_last);
    mt->self_last = self;
    for (size_t i = 0; i < mt->n_members; i++) {
        struct member *m = &mt->members[i];
        if (m->next != NULL) {
            from += traffic_counted(mt->t, m->last, m->next);
            json_decref(m->last);
            m->last = m->next;
            m->next = NULL;
        }
    }
    const struct routing *rt = mcore_routing(core);
    const struct liveness *lv = mcore_liveness(core);
    size_t nr = routing_count(rt);
    size_t r = 0;
    const struct mstore_topic *topic = NULL;
    for (size_t i = 0; i < np; i++) {
        if (topic == NULL || strcmp(topic->name, parts[i].topic) != 0) {
            topic = mstore_topic_in(mt->topics, mt->nt, parts[i].topic);
            if (topic == NULL) {
                continue; /* UNTESTED: the view and the list agree. */
            }
        }
        while (r < nr && routing_at(rt, r)->group_id < parts[i].group_id) {
            r++;
        }
        const struct route *route =
            r < nr && routing_at(rt, r)->group_id == parts[i].group_id
                ? routing_at(rt, r)
                : NULL;
        bool vouched =
            route != NULL && route->leader != 0 &&
            liveness_replica(lv, route->leader, parts[i].group_id) != NULL;
        traffic_partition(mt->t, (size_t)(topic - mt->topics),
                          parts[i].group_id, vouched,
                          vouched ? route->high_watermark : 0);
    }
    traffic_end(mt->t, from, mt->managers);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct manager_stats *st = mcore_stats(core);
    st->traffic_rounds++;
    st->traffic_us += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                                 (t1.tv_nsec - t0.tv_nsec) / 1000);
}

struct ask {
    struct mtraffic *mt;
    uint64_t id;
    uint64_t series;
    uint64_t round;
};

static void on_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct ask *a = data;
    struct mtraffic *mt = a->mt;
    struct member *m =
        a->series == mt->series ? member_of(mt, a->id, false) : NULL;
    if (m != NULL) {
        m->asking = false;
        json_t *o = resp->err == 0 && resp->status == 200
                        ? json_loadb(resp->body, resp->body_len, 0, NULL)
                        : NULL;
        if (json_is_string(json_object_get(o, "origin")) &&
            json_is_object(json_object_get(o, "topics"))) {
            json_decref(m->next);
            m->next = o;
        } else {
            /* A manager of an earlier release (404), or no answer. */
            json_decref(o);
        }
    }
    bool last = a->series == mt->series && a->round == mt->round &&
                mt->waiting && mt->pending > 0 && --mt->pending == 0;
    free(a);
    if (last) {
        sample(mt);
    }
}

/* Asks every other member of the configuration for its counts. */
static void ask_members(struct mtraffic *mt)
{
    char url[MCMD_ADDR_MAX + 64];
    uint64_t index;
    bool conf_pending;
    const struct raft_configuration *c =
        rq_node_configuration(mcore_node(mt->core), &index, &conf_pending);
    uint64_t self = mcore_config(mt->core)->id;

    /* Those no longer members are forgotten. */
    size_t kept = 0;
    for (size_t k = 0; k < mt->n_members; k++) {
        bool in = false;
        for (unsigned i = 0; i < c->n && !in; i++) {
            in = c->servers[i].id == mt->members[k].id;
        }
        if (in) {
            mt->members[kept++] = mt->members[k];
        } else {
            json_decref(mt->members[k].last);
            json_decref(mt->members[k].next);
        }
    }
    mt->n_members = kept;
    mt->round++;
    mt->pending = 0;
    mt->managers = c->n > 0 ? c->n : 1;
    for (unsigned i = 0; i < c->n; i++) {
        struct mstore_manager sm;
        struct member *m = c->servers[i].id != self
                               ? member_of(mt, c->servers[i].id, true)
                               : NULL;
        if (m == NULL || m->asking ||
            mstore_manager(mcore_store(mt->core), (uint32_t)m->id, &sm) != 0 ||
            sm.http_addr[0] == '\0') {
            continue; /* Ourselves, or not reachable yet. */
        }
        struct ask *a = malloc(sizeof *a);
        if (a == NULL) {
            continue; /* UNTESTED: ENOMEM only. */
        }
        *a = (struct ask){mt, m->id, mt->series, mt->round};
        snprintf(url, sizeof url, "http://%s/internal/produced", sm.http_addr);
        struct rq_httpc_req r = {
            .method = "GET",
            .url = url,
            .timeout_ms = ASK_TIMEOUT_MS,
        };
        if (mcore_call(mt->core, MCORE_MANAGER, MCORE_JSON, &r, on_answer, a) !=
            0) {
            free(a);
            continue;
        }
        m->asking = true;
        mt->pending++;
    }
}

void mtraffic_tick(struct mtraffic *mt, uint64_t now)
{
    if (!mt->leading) {
        return;
    }
    if (mt->waiting) {
        if (now >= mt->wait_until_ms) {
            sample(mt);
        }
        return;
    }
    if (now < mt->due_ms) {
        return;
    }
    uint64_t every = mcore_config(mt->core)->traffic_sample_ms;
    /* The same cadence whatever the tick's delays. */
    mt->due_ms = mt->due_ms + every > now ? mt->due_ms + every : now + every;
    mt->waiting = true;
    mt->wait_until_ms =
        now + (every / 2 < WAIT_MAX_MS ? every / 2 : WAIT_MAX_MS);
    ask_members(mt);
    if (mt->pending == 0 && mt->waiting) {
        sample(mt);
    }
}

/* ---- GET /admin/topics/{topic}/traffic ---- */

void mtraffic_topic(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_topic info;
    uint64_t since = 0;
    bool present;

    if (!auth_admin(core, req)) {
        return;
    }
    const char *topic = qapi_topic_param(req);
    if (topic == NULL) {
        return;
    }
    if (qapi_arg_u64(req, "since", &present, &since) != 0) {
        rq_http_reply_error(req, 400,
                            "'since' must be a time in Unix milliseconds, an "
                            "integer from 0 to 2^53");
        return;
    }
    if (mcore_forward(core, req)) {
        return;
    }
    int rv = mstore_topic(mcore_store(core), topic, &info);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return;
    }
    struct mtraffic *mt = mcore_modules(core)->traffic;
    if (mt == NULL || !mt->leading) {
        mcore_unavailable(req, "this manager keeps no traffic series yet");
        return;
    }
    json_t *samples = traffic_series(mt->t, topic, since);
    if (samples == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    uint64_t every = mcore_config(core)->traffic_sample_ms;
    uint64_t started = traffic_started_ms(mt->t);
    rq_http_reply(
        req, 200,
        json_pack(
            "{s:s,s:I,s:I,s:I,s:o,s:I,s:o}", "topic", topic, "sample_ms",
            (json_int_t)every, "window_ms",
            (json_int_t)(every * TRAFFIC_SAMPLES), "manager",
            (json_int_t)mcore_config(core)->id, "series_start_ms",
            started != 0 ? json_integer((json_int_t)started) : json_null(),
            "partitions_uncounted", (json_int_t)traffic_uncounted(mt->t, topic),
            "samples", samples));
}
