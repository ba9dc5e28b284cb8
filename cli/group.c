/*
 * Consumer groups from the command line (see group.h).
 */
#include "group.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "render.h"
#include "rq_err.h"
#include "url.h"

#define WHY_LEN 1024
#define FETCH_MAX 1000
#define FOLLOW_WAIT_MS 1000
#define MEMBER_MAX 64

/* ---- group list|describe|reset-offsets|delete ---- */

static void group_url(struct url *u, const char *group, const char *tail)
{
    url_init(u, "");
    url_path(u, "/v1/groups/");
    url_segment(u, group);
    if (tail != NULL) {
        url_path(u, tail);
    }
}

/* --to as the API takes it: "earliest", "latest", or {"P": N, ...} from
 * P=N,...; NULL after saying why. */
static json_t *reset_target(const char *to)
{
    if (strcmp(to, "earliest") == 0 || strcmp(to, "latest") == 0) {
        return json_string(to);
    }
    json_t *map = json_object();
    const char *p = to;
    while (*p != '\0') {
        char part[16];
        uint64_t partition, offset;
        const char *eq = strchr(p, '=');
        const char *comma = strchr(p, ',');
        const char *end = comma != NULL ? comma : p + strlen(p);
        char num[24];
        if (eq == NULL || eq > end || (size_t)(eq - p) >= sizeof part ||
            (size_t)(end - eq - 1) >= sizeof num) {
            goto bad;
        }
        memcpy(part, p, (size_t)(eq - p));
        part[eq - p] = '\0';
        memcpy(num, eq + 1, (size_t)(end - eq - 1));
        num[end - eq - 1] = '\0';
        if (cmdline_u64(part, 0, UINT32_MAX, &partition) != 0 ||
            cmdline_u64(num, 0, (uint64_t)1 << 53, &offset) != 0) {
            goto bad;
        }
        json_object_set_new(map, part, json_integer((json_int_t)offset));
        p = comma != NULL ? comma + 1 : end;
    }
    if (json_object_size(map) > 0) {
        return map;
    }
bad:
    json_decref(map);
    fprintf(stderr,
            "raftq: --to is earliest, latest or PARTITION=OFFSET,... (such "
            "as 0=120,3=7), not '%s'\n",
            to);
    return NULL;
}

/* One call; its answer printed as JSON, with @render, or as its message. */
static int group_call(const struct cmdline *cl, struct mclient *c,
                      const char *method, const struct url *u,
                      const json_t *body, int (*render)(const json_t *, FILE *),
                      const char *done)
{
    struct mclient_resp r;
    char why[WHY_LEN];
    if (url_done(u) == NULL) {
        fprintf(stderr, "raftq: the group name is too long\n");
        return CLI_USAGE;
    }
    int rv = mclient_call(c, method, url_done(u), body, 0, &r, why, sizeof why);
    int code = commands_outcome(rv, &r, why);
    if (code == CLI_OK && cl->json) {
        commands_print_json(r.body);
    } else if (code == CLI_OK && render != NULL) {
        if (render(r.body, stdout) != 0) {
            fprintf(stderr, "raftq: %s answered something unexpected\n",
                    r.base);
            code = CLI_REFUSED;
        }
    } else if (code == CLI_OK) {
        printf("%s %s\n", done, cl->group);
    }
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    return code;
}

int group_run(const struct cmdline *cl, struct mclient *c)
{
    struct url u;
    switch (cl->cmd) {
        case CMD_GROUP_LIST:
            url_init(&u, "");
            url_path(&u, "/v1/groups");
            return group_call(cl, c, "GET", &u, NULL, render_groups, NULL);
        case CMD_GROUP_DESCRIBE:
            group_url(&u, cl->group, NULL);
            return group_call(cl, c, "GET", &u, NULL, render_group, NULL);
        case CMD_GROUP_DELETE:
            group_url(&u, cl->group, NULL);
            return group_call(cl, c, "DELETE", &u, NULL, NULL, "deleted group");
        case CMD_GROUP_RESET: {
            json_t *to = reset_target(cl->reset_to);
            if (to == NULL) {
                return CLI_USAGE;
            }
            json_t *body = json_pack("{s:o}", "to", to);
            group_url(&u, cl->group, "/offsets");
            int code = group_call(cl, c, "POST", &u, body, NULL,
                                  "set the offsets of group");
            json_decref(body);
            return code;
        }
        default:
            fprintf(stderr, "raftq: '%s' is not run here\n",
                    cmdline_name(cl->cmd)); /* UNTESTED: raftq.c routes. */
            return CLI_USAGE;
    }
}

/* ---- consume --group ---- */

/* What the consuming thread and the heartbeat thread share. */
struct member {
    const struct cmdline *cl;
    pthread_mutex_t lock;
    char id[MEMBER_MAX + 1]; /* "" while not a member. */
    uint64_t generation;
    uint64_t interval_ms;
    bool lost; /* A heartbeat was refused: join again. */
    /* Set by the consuming thread to end the heartbeats; also their
     * client's stop flag, so a heartbeat under way ends too. */
    volatile sig_atomic_t quit;
    struct mclient *hb; /* The heartbeat thread's client. */
};

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The heartbeat thread: a heartbeat every interval on a client of its
 * own, until quit; a 409 marks the membership lost. */
static void *heartbeats(void *arg)
{
    struct member *m = arg;
    struct url u;
    char why[WHY_LEN];
    uint64_t slept = 0;
    group_url(&u, m->cl->group, "/heartbeat");
    while (!m->quit) {
        sleep_ms(100);
        pthread_mutex_lock(&m->lock);
        char id[MEMBER_MAX + 1];
        snprintf(id, sizeof id, "%s", m->id);
        uint64_t interval = m->interval_ms;
        pthread_mutex_unlock(&m->lock);
        slept += 100;
        if (slept < interval || id[0] == '\0' || url_done(&u) == NULL) {
            continue;
        }
        slept = 0;
        struct mclient_resp r;
        json_t *body = json_pack("{s:s}", "member_id", id);
        int rv = mclient_call(m->hb, "POST", url_done(&u), body, 0, &r, why,
                              sizeof why);
        json_decref(body);
        if (rv == 0 && r.status == 409) {
            pthread_mutex_lock(&m->lock);
            m->lost = strcmp(m->id, id) == 0;
            pthread_mutex_unlock(&m->lock);
        }
        if (rv == 0) {
            mclient_resp_clear(&r);
        }
    }
    return NULL;
}

/* Joins the group: fills @m's id, generation and interval. */
static int member_join(struct member *m, struct mclient *c)
{
    const struct cmdline *cl = m->cl;
    struct mclient_resp r;
    struct url u;
    char why[WHY_LEN];
    group_url(&u, cl->group, "/join");
    if (url_done(&u) == NULL) {
        fprintf(stderr, "raftq: the group name is too long\n");
        return CLI_USAGE;
    }
    json_t *body = json_pack("{s:s}", "topic", cl->topic);
    int rv =
        mclient_call(c, "POST", url_done(&u), body, 0, &r, why, sizeof why);
    json_decref(body);
    int code = commands_outcome(rv, &r, why);
    if (code == CLI_OK) {
        json_t *id = json_object_get(r.body, "member_id");
        json_t *gen = json_object_get(r.body, "generation");
        json_t *hb = json_object_get(r.body, "heartbeat_interval_ms");
        if (!json_is_string(id) || json_string_length(id) > MEMBER_MAX ||
            !json_is_integer(gen) || !json_is_integer(hb) ||
            json_integer_value(hb) <= 0) {
            fprintf(stderr, "raftq: %s answered no membership\n", r.base);
            code = CLI_REFUSED;
        } else {
            char parts[256] = "";
            size_t len = 0, i;
            json_t *p;
            json_array_foreach(json_object_get(r.body, "partitions"), i, p)
            {
                int w = snprintf(parts + len, sizeof parts - len,
                                 "%s%" JSON_INTEGER_FORMAT, i > 0 ? "," : "",
                                 json_integer_value(p));
                len += w > 0 && (size_t)w < sizeof parts - len ? (size_t)w : 0;
            }
            pthread_mutex_lock(&m->lock);
            snprintf(m->id, sizeof m->id, "%s", json_string_value(id));
            m->generation = (uint64_t)json_integer_value(gen);
            m->interval_ms = (uint64_t)json_integer_value(hb);
            m->lost = false;
            pthread_mutex_unlock(&m->lock);
            fprintf(stderr,
                    "member %s of group %s (generation %" PRIu64
                    ", partitions %s)\n",
                    m->id, cl->group, m->generation,
                    parts[0] != '\0' ? parts : "none yet");
        }
    }
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    return code;
}

json_t *group_commit_offsets(const json_t *records)
{
    uint64_t upto[CMDLINE_MAX_PARTITIONS];
    bool seen[CMDLINE_MAX_PARTITIONS] = {false};
    const json_t *r;
    size_t i;
    if (!json_is_array(records)) {
        return NULL;
    }
    json_array_foreach(records, i, r)
    {
        json_t *p = json_object_get(r, "partition_id");
        json_t *o = json_object_get(r, "offset");
        if (!json_is_integer(p) || json_integer_value(p) < 0 ||
            json_integer_value(p) >= CMDLINE_MAX_PARTITIONS ||
            !json_is_integer(o) || json_integer_value(o) < 0 ||
            !json_is_string(json_object_get(r, "value"))) {
            return NULL;
        }
        size_t k = (size_t)json_integer_value(p);
        upto[k] = (uint64_t)json_integer_value(o) + 1;
        seen[k] = true;
    }
    json_t *offsets = json_array();
    for (size_t k = 0; k < CMDLINE_MAX_PARTITIONS; k++) {
        if (seen[k]) {
            json_array_append_new(
                offsets, json_pack("{s:I,s:I}", "partition_id", (json_int_t)k,
                                   "offset", (json_int_t)upto[k]));
        }
    }
    return offsets;
}

enum step { STEP_ON, STEP_REJOIN, STEP_DONE };

/* One fetch, print and commit. *@code is set when it ends the loop. */
static enum step member_step(struct member *m, struct mclient *c,
                             uint64_t *count, int *code)
{
    const struct cmdline *cl = m->cl;
    struct mclient_resp r;
    struct url u;
    char why[WHY_LEN];
    char id[MEMBER_MAX + 1];
    uint64_t want = FETCH_MAX;
    if (cl->has_max && cl->max - *count < want) {
        want = cl->max - *count;
    }
    pthread_mutex_lock(&m->lock);
    bool lost = m->lost;
    snprintf(id, sizeof id, "%s", m->id);
    pthread_mutex_unlock(&m->lock);
    if (lost) {
        fprintf(stderr,
                "raftq: member %s is no longer in group %s; joining "
                "again\n",
                id, cl->group);
        return STEP_REJOIN;
    }
    group_url(&u, cl->group, "/records");
    url_query(&u, "member_id", id);
    url_query_u64(&u, "max", want);
    url_query_u64(&u, "wait_ms", cl->follow ? FOLLOW_WAIT_MS : 0);
    int rv = mclient_call(c, "GET", url_done(&u), NULL,
                          cl->follow ? FOLLOW_WAIT_MS : 0, &r, why, sizeof why);
    if (rv == 0 && r.status == 409) {
        fprintf(stderr, "raftq: %s; joining again\n", r.message);
        mclient_resp_clear(&r);
        return STEP_REJOIN;
    }
    *code = commands_outcome(rv, &r, why);
    if (*code != CLI_OK) {
        if (rv == 0) {
            mclient_resp_clear(&r);
        }
        return STEP_DONE;
    }
    json_t *gen = json_object_get(r.body, "generation");
    json_t *offsets = group_commit_offsets(json_object_get(r.body, "records"));
    uint64_t n = 0;
    if (!json_is_integer(gen) || offsets == NULL) {
        fprintf(stderr, "raftq: %s answered something unexpected\n", r.base);
        json_decref(offsets);
        mclient_resp_clear(&r);
        *code = CLI_REFUSED;
        return STEP_DONE;
    }
    if (cl->json) {
        commands_print_json(r.body);
        n = json_array_size(json_object_get(r.body, "records"));
    } else {
        /* Checked above. */
        render_records_as(r.body, cl->format, 0, stdout, &n);
    }
    fflush(stdout);
    *count += n;
    json_t *body = json_pack("{s:s,s:O,s:o}", "member_id", id, "generation",
                             gen, "offsets", offsets);
    mclient_resp_clear(&r);
    enum step next = STEP_ON;
    if (n > 0) {
        /* Printed, so committed: a record printed and not committed is
         * printed again by the partition's next owner. */
        group_url(&u, cl->group, "/commit");
        rv =
            mclient_call(c, "POST", url_done(&u), body, 0, &r, why, sizeof why);
        if (rv == 0 && r.status == 409) {
            fprintf(stderr, "raftq: %s; joining again\n", r.message);
            next = STEP_REJOIN;
        } else {
            *code = commands_outcome(rv, &r, why);
            next = *code == CLI_OK ? STEP_ON : STEP_DONE;
        }
        if (rv == 0) {
            mclient_resp_clear(&r);
        }
    }
    json_decref(body);
    if (next == STEP_ON &&
        ((cl->has_max && *count >= cl->max) || (n == 0 && !cl->follow))) {
        *code = CLI_OK;
        next = STEP_DONE;
    }
    return next;
}

/* Leaves the group on a client that Ctrl-C does not stop. */
static void member_leave(struct member *m, struct mclient *c)
{
    struct mclient *quiet;
    struct mclient_resp r;
    struct url u;
    char why[WHY_LEN];
    if (m->id[0] == '\0' || mclient_clone(c, NULL, &quiet) != 0) {
        return;
    }
    group_url(&u, m->cl->group, "/leave");
    json_t *body = json_pack("{s:s}", "member_id", m->id);
    if (mclient_call(quiet, "POST", url_done(&u), body, 0, &r, why,
                     sizeof why) == 0) {
        if (r.status == 200) {
            fprintf(stderr, "member %s left group %s\n", m->id, m->cl->group);
        }
        mclient_resp_clear(&r);
    }
    json_decref(body);
    mclient_free(quiet);
}

int group_consume(const struct cmdline *cl, struct mclient *c,
                  const volatile sig_atomic_t *stop)
{
    struct member m = {.cl = cl};
    pthread_t thread;
    uint64_t count = 0;
    int code = CLI_OK;

    if (mclient_clone(c, &m.quit, &m.hb) != 0) {
        fprintf(stderr, "raftq: out of memory\n"); /* UNTESTED */
        return CLI_REFUSED;
    }
    pthread_mutex_init(&m.lock, NULL);
    if (pthread_create(&thread, NULL, heartbeats, &m) != 0) {
        fprintf(stderr, "raftq: cannot start the heartbeat thread\n");
        pthread_mutex_destroy(&m.lock); /* UNTESTED: no threads left. */
        mclient_free(m.hb);
        return CLI_REFUSED;
    }
    enum step step = STEP_REJOIN;
    while (step != STEP_DONE) {
        if (step == STEP_REJOIN) {
            pthread_mutex_lock(&m.lock);
            m.id[0] = '\0';
            pthread_mutex_unlock(&m.lock);
            code = member_join(&m, c);
            if (code != CLI_OK) {
                break;
            }
        }
        step = member_step(&m, c, &count, &code);
        if (*stop) {
            code = cl->follow ? CLI_OK : CLI_INTERRUPTED;
            step = STEP_DONE;
        }
    }
    if (code == CLI_INTERRUPTED && cl->follow) {
        code = CLI_OK;
    }
    m.quit = 1;
    pthread_join(thread, NULL);
    member_leave(&m, c);
    pthread_mutex_destroy(&m.lock);
    mclient_free(m.hb);
    return code;
}
