/*
 * Topic, cluster, broker and partition commands (see commands.h).
 *
 * Each is one or two calls to the managers; what is printed comes from
 * render.h, or the server's JSON with --json.
 */
#include "commands.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "render.h"
#include "rq_err.h"
#include "url.h"

#define WHY_LEN 1024
#define PROBE_TIMEOUT_MS 2000

int commands_outcome(int rv, const struct mclient_resp *r, const char *why)
{
    switch (rv) {
        case 0:
            break;
        case RQ_CONNECT:
            fprintf(stderr,
                    "raftq: cannot reach any manager (%s); is the cluster "
                    "running? (--managers, RAFTQ_MANAGERS or a profile)\n",
                    why);
            return CLI_UNREACHABLE;
        case RQ_NOQUORUM:
            fprintf(stderr, "raftq: the cluster is unavailable (%s)\n", why);
            return CLI_UNREACHABLE;
        case RQ_CANCELED:
            return CLI_INTERRUPTED;
        default:
            fprintf(stderr, "raftq: %s\n", why); /* UNTESTED: ENOMEM. */
            return CLI_REFUSED;
    }
    if (r->status >= 200 && r->status < 300) {
        return CLI_OK; /* 202: accepted and under way (a broker being removed)
                        */
    }
    if (r->status == 401) {
        fprintf(stderr,
                "raftq: %s (give a token with --token, RAFTQ_TOKEN, "
                "RAFTQ_ADMIN_TOKEN or a profile)\n",
                r->message);
    } else {
        fprintf(stderr, "raftq: %s\n", r->message);
    }
    return CLI_REFUSED;
}

int commands_call(struct mclient *c, const char *method, const struct url *u,
                  const json_t *body, struct mclient_resp *r)
{
    char why[WHY_LEN];
    if (url_done(u) == NULL) {
        fprintf(stderr, "raftq: a name in the request is too long\n");
        return CLI_USAGE;
    }
    int rv = mclient_call(c, method, url_done(u), body, 0, r, why, sizeof why);
    int code = commands_outcome(rv, r, why);
    if (code != CLI_OK && rv == 0) {
        mclient_resp_clear(r);
    }
    return code;
}

void commands_print_json(const json_t *body)
{
    json_dumpf(body, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Prints a 2xx's body: JSON, else @render, else its message. */
static int print_answer(const struct cmdline *cl, const struct mclient_resp *r,
                        int (*render)(const json_t *, FILE *))
{
    if (cl->json) {
        commands_print_json(r->body);
        return CLI_OK;
    }
    if (render == NULL) {
        printf("%s\n", r->message);
        return CLI_OK;
    }
    if (render(r->body, stdout) != 0) {
        fprintf(stderr, "raftq: %s answered something unexpected\n", r->base);
        return CLI_REFUSED;
    }
    return CLI_OK;
}

/* One call, then print_answer(). @path is built with url.h. */
static int simple(const struct cmdline *cl, struct mclient *c,
                  const char *method, const struct url *path,
                  const json_t *body, int (*render)(const json_t *, FILE *))
{
    struct mclient_resp r;
    char why[WHY_LEN];
    const char *p = url_done(path);
    if (p == NULL) {
        fprintf(stderr, "raftq: the request URL is too long\n");
        return CLI_USAGE;
    }
    int rv = mclient_call(c, method, p, body, 0, &r, why, sizeof why);
    int code = commands_outcome(rv, &r, why);
    if (code == CLI_OK) {
        code = print_answer(cl, &r, render);
    }
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    return code;
}

static int topic_create(const struct cmdline *cl, struct mclient *c)
{
    struct url u;
    url_init(&u, "");
    url_path(&u, "/topics");
    json_t *body = json_pack("{s:s}", "topic_name", cl->topic);
    if (body == NULL) {
        fprintf(stderr, "raftq: the topic name is not UTF-8\n");
        return CLI_USAGE;
    }
    if (cl->has_partitions) {
        json_object_set_new(body, "number_of_partitions",
                            json_integer(cl->partitions));
    }
    int code = simple(cl, c, "POST", &u, body, NULL);
    json_decref(body);
    return code;
}

static int topic_path(struct url *u, const char *prefix, const char *topic)
{
    url_init(u, "");
    url_path(u, prefix);
    url_segment(u, topic);
    return 0;
}

/* `cluster status`: the roster from any manager, what each manager says
 * of itself, and the brokers. */
static int cluster_status(const struct cmdline *cl, struct mclient *c)
{
    struct mclient_resp list, brokers;
    struct mclient_resp self[URL_BASES_MAX];
    struct render_manager views[URL_BASES_MAX];
    char why[WHY_LEN];
    int code;

    int rv = mclient_call(c, "GET", "/admin/managers", NULL, 0, &list, why,
                          sizeof why);
    code = commands_outcome(rv, &list, why);
    if (code != CLI_OK) {
        if (rv == 0) {
            mclient_resp_clear(&list);
        }
        return code;
    }
    json_t *roster = json_object_get(list.body, "managers");
    size_t n = json_array_size(roster);
    if (n > URL_BASES_MAX) {
        n = URL_BASES_MAX; /* UNTESTED: clusters have 3 or 5 managers. */
    }
    json_t *reports = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *http = json_string_value(
            json_object_get(json_array_get(roster, i), "http_addr"));
        char base[URL_MAX], addr[URL_MAX];
        memset(&self[i], 0, sizeof self[i]);
        views[i] = (struct render_manager){NULL, false};
        /* A cluster speaks TLS on every port or on none: each manager's
         * address takes the scheme of the one we reached. */
        snprintf(
            addr, sizeof addr, "%s%s",
            strncmp(mclient_first(c), "https://", 8) == 0 ? "https://" : "",
            http != NULL ? http : "");
        if (http != NULL && url_base_parse(addr, base, why, sizeof why) == 0 &&
            mclient_call_at(c, base, "GET", "/admin/managers", NULL,
                            PROBE_TIMEOUT_MS, &self[i], why, sizeof why) == 0 &&
            self[i].status == 200) {
            struct mclient_resp ready;
            views[i].self = self[i].body;
            views[i].ready = mclient_call_at(c, base, "GET", "/readyz", NULL,
                                             PROBE_TIMEOUT_MS, &ready, why,
                                             sizeof why) == 0 &&
                             ready.status == 200;
            mclient_resp_clear(&ready);
        }
        json_array_append_new(
            reports, json_pack("{s:O?,s:b,s:O?}", "id",
                               json_object_get(json_array_get(roster, i), "id"),
                               "ready", views[i].ready, "self", views[i].self));
    }

    rv = mclient_call(c, "GET", "/admin/brokers", NULL, 0, &brokers, why,
                      sizeof why);
    if (cl->json) {
        json_t *out = json_pack(
            "{s:O,s:o,s:O?}", "managers", list.body, "reports", reports,
            "brokers", rv == 0 && brokers.status == 200 ? brokers.body : NULL);
        commands_print_json(out);
        json_decref(out);
        reports = NULL;
    } else if (render_managers(list.body, views, n, stdout) != 0) {
        fprintf(stderr, "raftq: %s answered something unexpected\n", list.base);
        code = CLI_REFUSED;
    }
    json_decref(reports);
    int bcode = commands_outcome(rv, &brokers, why);
    if (bcode == CLI_OK && !cl->json) {
        printf("\n");
        if (render_brokers(brokers.body, stdout) != 0) {
            fprintf(stderr, "raftq: %s answered something unexpected\n",
                    brokers.base);
            bcode = CLI_REFUSED;
        }
    }
    if (code == CLI_OK) {
        code = bcode;
    }
    if (rv == 0) {
        mclient_resp_clear(&brokers);
    }
    for (size_t i = 0; i < n; i++) {
        mclient_resp_clear(&self[i]);
    }
    mclient_resp_clear(&list);
    return code;
}

/* broker @id's entry in GET /admin/brokers' answer @r, or NULL. */
static const json_t *broker_entry(const struct mclient_resp *r, uint32_t id)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(r->body, "brokers"), i, b)
    {
        if (json_integer_value(json_object_get(b, "id")) == (json_int_t)id) {
            return b;
        }
    }
    return NULL;
}

/*
 * --wait: asks every second until the broker holds no replica, placed or
 * hosted (a drain), or is REMOVED (a removal), up to cl->wait_ms. A
 * manager that does not answer meanwhile is asked again.
 */
static int broker_wait(const struct cmdline *cl, struct mclient *c, bool drain)
{
    struct timespec t0;
    struct timespec now;
    long long placed = -1;
    long long hosted = -1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct mclient_resp r;
        char why[WHY_LEN];
        int rv = mclient_call(c, "GET", "/admin/brokers", NULL, 0, &r, why,
                              sizeof why);
        if (rv == RQ_CANCELED) {
            return CLI_INTERRUPTED;
        }
        if (rv == 0 && r.status == 200) {
            const json_t *b = broker_entry(&r, cl->broker_id);
            const char *state = json_string_value(json_object_get(b, "state"));
            placed = json_integer_value(json_object_get(b, "partitions"));
            hosted = json_integer_value(json_object_get(b, "hosted"));
            bool done = b != NULL && state != NULL &&
                        (drain ? strcmp(state, "draining") == 0 &&
                                     placed == 0 && hosted == 0
                               : strcmp(state, "removed") == 0);
            mclient_resp_clear(&r);
            if (done) {
                if (!cl->json) {
                    printf("broker %" PRIu32 " %s\n", cl->broker_id,
                           drain ? "holds no replica" : "is removed");
                }
                return CLI_OK;
            }
        } else if (rv == 0) {
            mclient_resp_clear(&r);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t ms = (uint64_t)(now.tv_sec - t0.tv_sec) * 1000 +
                      (uint64_t)(now.tv_nsec / 1000000) -
                      (uint64_t)(t0.tv_nsec / 1000000);
        if (ms >= cl->wait_ms) {
            fprintf(stderr,
                    "raftq: broker %" PRIu32
                    " still holds replicas after %" PRIu64
                    " s (%lld placed, %lld hosted); the %s goes on\n",
                    cl->broker_id, cl->wait_ms / 1000, placed, hosted,
                    drain ? "drain" : "removal");
            return CLI_REFUSED;
        }
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

static int broker_change(const struct cmdline *cl, struct mclient *c,
                         bool drain)
{
    struct url u;
    char id[16];
    snprintf(id, sizeof id, "%" PRIu32, cl->broker_id);
    url_init(&u, "");
    url_path(&u, "/admin/brokers/");
    url_segment(&u, id);
    if (drain) {
        url_path(&u, "/drain");
    }
    int code = simple(cl, c, drain ? "POST" : "DELETE", &u, NULL, NULL);
    return code == CLI_OK && cl->wait_ms > 0 ? broker_wait(cl, c, drain) : code;
}

static int delete_replica(const struct cmdline *cl, struct mclient *c)
{
    struct url u;
    char id[24];
    snprintf(id, sizeof id, "%" PRIu32, cl->broker_id);
    url_init(&u, "");
    url_path(&u, "/admin/brokers/");
    url_segment(&u, id);
    url_path(&u, "/replicas/");
    snprintf(id, sizeof id, "%" PRIu64, cl->group_id);
    url_segment(&u, id);
    return simple(cl, c, "DELETE", &u, NULL, NULL);
}

static int add_manager(const struct cmdline *cl, struct mclient *c)
{
    struct url u;
    url_init(&u, "");
    url_path(&u, "/admin/managers");
    json_t *body = json_pack("{s:I,s:s}", "id", (json_int_t)cl->manager_id,
                             "raft_addr", cl->raft_addr);
    int code = simple(cl, c, "POST", &u, body, NULL);
    json_decref(body);
    return code;
}

/* The leader's own removal first moves leadership (503): ask again, up to
 * the timeout. */
static int remove_manager(const struct cmdline *cl, struct mclient *c)
{
    struct url u;
    char id[16];
    snprintf(id, sizeof id, "%" PRIu32, cl->manager_id);
    url_init(&u, "");
    url_path(&u, "/admin/managers/");
    url_segment(&u, id);
    if (cl->force) {
        url_query(&u, "force", "true");
    }
    return simple(cl, c, "DELETE", &u, NULL, NULL);
}

static int move_leader(const struct cmdline *cl, struct mclient *c)
{
    struct url u;
    char p[16];
    snprintf(p, sizeof p, "%" PRIu32, cl->partition);
    url_init(&u, "");
    url_path(&u, "/admin/partitions/");
    url_segment(&u, cl->topic);
    url_path(&u, "/");
    url_segment(&u, p);
    url_path(&u, "/leader");
    json_t *body = json_pack("{s:I}", "broker_id", (json_int_t)cl->broker_id);
    int code = simple(cl, c, "POST", &u, body, NULL);
    json_decref(body);
    return code;
}

/* `token create`: the token alone on stdout (for scripts), the rest on
 * stderr; --json prints the whole answer, token included. */
static int token_create(const struct cmdline *cl, struct mclient *c)
{
    struct mclient_resp r;
    char why[WHY_LEN];
    json_t *grants = json_array();
    for (size_t i = 0; i < cl->n_grants; i++) {
        json_array_append_new(grants, json_string(cl->grants[i]));
    }
    json_t *body =
        json_pack("{s:s,s:o}", "name", cl->token_name, "grants", grants);
    if (body == NULL) {
        fprintf(stderr, "raftq: the name and grants must be UTF-8\n");
        return CLI_USAGE;
    }
    int rv =
        mclient_call(c, "POST", "/admin/tokens", body, 0, &r, why, sizeof why);
    json_decref(body);
    int code = commands_outcome(rv, &r, why);
    if (code == CLI_OK) {
        const char *token = json_string_value(json_object_get(r.body, "token"));
        if (cl->json) {
            commands_print_json(r.body);
        } else if (token == NULL) {
            fprintf(stderr, "raftq: %s answered something unexpected\n",
                    r.base);
            code = CLI_REFUSED;
        } else {
            printf("%s\n", token);
            fprintf(stderr,
                    "raftq: token %" JSON_INTEGER_FORMAT
                    " '%s' created; keep it now, it is not shown again\n",
                    json_integer_value(json_object_get(r.body, "id")),
                    cl->token_name);
        }
    }
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    return code;
}

int commands_run(const struct cmdline *cl, struct mclient *c)
{
    struct url u;
    switch (cl->cmd) {
        case CMD_TOPIC_CREATE:
            return topic_create(cl, c);
        case CMD_TOPIC_LIST:
            url_init(&u, "");
            url_path(&u, "/topics");
            return simple(cl, c, "GET", &u, NULL, render_topics);
        case CMD_TOPIC_DESCRIBE:
            topic_path(&u, "/admin/topics/", cl->topic);
            return simple(cl, c, "GET", &u, NULL, render_topic);
        case CMD_TOPIC_DELETE:
            topic_path(&u, "/admin/topics/", cl->topic);
            return simple(cl, c, "DELETE", &u, NULL, NULL);
        case CMD_CLUSTER_STATUS:
            return cluster_status(cl, c);
        case CMD_BROKER_LIST:
            url_init(&u, "");
            url_path(&u, "/admin/brokers");
            return simple(cl, c, "GET", &u, NULL, render_brokers);
        case CMD_BROKER_DRAIN:
            return broker_change(cl, c, true);
        case CMD_BROKER_REMOVE:
            return broker_change(cl, c, false);
        case CMD_BROKER_DELETE_REPLICA:
            return delete_replica(cl, c);
        case CMD_CLUSTER_ADD_MANAGER:
            return add_manager(cl, c);
        case CMD_CLUSTER_REMOVE_MANAGER:
            return remove_manager(cl, c);
        case CMD_PARTITION_MOVE_LEADER:
            return move_leader(cl, c);
        case CMD_PARTITION_MOVES:
            url_init(&u, "");
            url_path(&u, "/admin/moves");
            return simple(cl, c, "GET", &u, NULL, render_moves);
        case CMD_TOKEN_CREATE:
            return token_create(cl, c);
        case CMD_TOKEN_LIST:
            url_init(&u, "");
            url_path(&u, "/admin/tokens");
            return simple(cl, c, "GET", &u, NULL, render_tokens);
        case CMD_TOKEN_REVOKE: {
            char id[24];
            snprintf(id, sizeof id, "%" PRIu64, cl->token_id);
            url_init(&u, "");
            url_path(&u, "/admin/tokens/");
            url_segment(&u, id);
            return simple(cl, c, "DELETE", &u, NULL, NULL);
        }
        default:
            fprintf(stderr, "raftq: '%s' is not run here\n",
                    cmdline_name(cl->cmd)); /* UNTESTED: raftq.c routes. */
            return CLI_USAGE;
    }
}
