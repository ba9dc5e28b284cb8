/*
 * The group consumer (raftq.h): a member of a consumer group (API.md
 * section 2b). raftq_consumer_new() joins; a thread of the consumer's own
 * sends a heartbeat every heartbeat_interval_ms the join answered and
 * keeps the assignment and generation it answers; raftq_consumer_poll()
 * fetches records of the member's partitions and remembers, per partition,
 * the offset after the last record handed out; raftq_consumer_commit()
 * commits those of the partitions still assigned, under the generation
 * they were fetched in.
 *
 * A member the group removed (a heartbeat, fetch or commit answered 409:
 * its session ran out, say while the process was paused) joins again as a
 * new member and forgets its positions: the group's committed offsets are
 * where its partitions resume, so what was fetched and not committed is
 * fetched again, by this member or another (at-least-once).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

#define NAME_MAX_LEN 128
#define MAX_PARTITIONS 65536

struct raftq_consumer {
    struct raftq_client *c;
    char group_path[NAME_MAX_LEN * 3 + 32]; /* "/v1/groups/NAME". */
    char topic[NAME_MAX_LEN + 1];
    uint32_t session_timeout_ms;
    pthread_t thread;

    pthread_mutex_t rejoin; /* Held while a member joins again. */
    pthread_mutex_t lock;   /* Guards everything below. */
    pthread_cond_t wake;
    bool closing;
    char member_id[128];
    uint64_t generation;
    uint32_t interval_ms;
    uint32_t *parts; /* The assignment, n_parts of them. */
    size_t n_parts;
    /* Per partition id: 1 + the offset after the last record handed out
     * in generation pos_generation, or 0 for none. */
    uint64_t *pos;
    size_t n_pos;
    uint64_t pos_generation;
};

/* Takes the assignment of a join or heartbeat answer. Under k->lock. */
static int take_assignment(struct raftq_consumer *k, json_t *answer)
{
    json_t *gen = json_object_get(answer, "generation");
    json_t *parts = json_object_get(answer, "partitions");
    if (!json_is_integer(gen) || !json_is_array(parts)) {
        return RAFTQ_ERR_PROTOCOL;
    }
    size_t n = json_array_size(parts);
    uint32_t *list = calloc(n + 1, sizeof *list);
    if (list == NULL) {
        return RAFTQ_ERR_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < n; i++) {
        json_int_t v = json_integer_value(json_array_get(parts, i));
        if (v < 0 || v >= MAX_PARTITIONS) {
            free(list);
            return RAFTQ_ERR_PROTOCOL;
        }
        list[i] = (uint32_t)v;
    }
    free(k->parts);
    k->parts = list;
    k->n_parts = n;
    k->generation = (uint64_t)json_integer_value(gen);
    return RAFTQ_OK;
}

/* Joins (again); without k->lock. */
static int join(struct raftq_consumer *k, struct raftq_error *e)
{
    char path[sizeof k->group_path + 16];
    snprintf(path, sizeof path, "%s/join", k->group_path);
    json_t *body = json_pack("{s:s}", "topic", k->topic);
    if (k->session_timeout_ms != 0) {
        json_object_set_new(body, "session_timeout_ms",
                            json_integer(k->session_timeout_ms));
    }
    json_t *answer;
    int rv = client_json(k->c, "POST", path, body, 0, &answer, e);
    json_decref(body);
    if (rv != RAFTQ_OK) {
        return rv;
    }
    const char *member =
        json_string_value(json_object_get(answer, "member_id"));
    json_t *interval = json_object_get(answer, "heartbeat_interval_ms");
    pthread_mutex_lock(&k->lock);
    rv = take_assignment(k, answer);
    if (rv == RAFTQ_OK &&
        (member == NULL || strlen(member) >= sizeof k->member_id ||
         !json_is_integer(interval))) {
        rv = RAFTQ_ERR_PROTOCOL;
    }
    if (rv == RAFTQ_OK) {
        snprintf(k->member_id, sizeof k->member_id, "%s", member);
        json_int_t ms = json_integer_value(interval);
        k->interval_ms = ms > 0 && ms < 60000 ? (uint32_t)ms : 1000;
        memset(k->pos, 0, k->n_pos * sizeof *k->pos);
    }
    pthread_mutex_unlock(&k->lock);
    json_decref(answer);
    if (rv != RAFTQ_OK) {
        return client_error(e, rv, "the join answer is not what API.md says");
    }
    return RAFTQ_OK;
}

/*
 * A call of member @member. Answered 409 member_unknown (the group removed
 * it), the consumer joins again, unless another thread did meanwhile (the
 * current member is no longer @member); any other 409 (a commit fenced
 * off by a newer generation) only comes back: joining again then would
 * leave the old member holding its partitions until its session ran out.
 */
static int member_call(struct raftq_consumer *k, const char *member,
                       const char *method, const char *what, json_t *body,
                       const char *query, uint32_t extra_ms, json_t **answer,
                       struct raftq_error *e)
{
    char path[sizeof k->group_path + 512];
    struct raftq_error err;
    snprintf(path, sizeof path, "%s/%s%s", k->group_path, what, query);
    int rv = client_json(k->c, method, path, body, extra_ms, answer, &err);
    if (rv == RAFTQ_ERR_CONFLICT && strcmp(err.code, "member_unknown") == 0) {
        pthread_mutex_lock(&k->rejoin);
        pthread_mutex_lock(&k->lock);
        bool still = strcmp(k->member_id, member) == 0;
        pthread_mutex_unlock(&k->lock);
        struct raftq_error again;
        if (still && join(k, &again) != RAFTQ_OK) {
            snprintf(err.message, sizeof err.message,
                     "removed from the group, and joining again failed: %s",
                     again.message);
        }
        pthread_mutex_unlock(&k->rejoin);
    }
    if (rv != RAFTQ_OK && e != NULL) {
        *e = err;
    }
    return rv;
}

static void *beat(void *arg)
{
    struct raftq_consumer *k = arg;
    pthread_mutex_lock(&k->lock);
    while (!k->closing) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += k->interval_ms / 1000;
        until.tv_nsec += (long)(k->interval_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!k->closing && pthread_cond_timedwait(&k->wake, &k->lock,
                                                     &until) != ETIMEDOUT) {
        }
        if (k->closing) {
            break;
        }
        char member[sizeof k->member_id];
        memcpy(member, k->member_id, sizeof member);
        json_t *body = json_pack("{s:s}", "member_id", member);
        pthread_mutex_unlock(&k->lock);
        json_t *answer = NULL;
        int rv = member_call(k, member, "POST", "heartbeat", body, "", 0,
                             &answer, NULL);
        json_decref(body);
        pthread_mutex_lock(&k->lock);
        if (rv == RAFTQ_OK) {
            take_assignment(k, answer);
            json_decref(answer);
        }
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

/* Frees @k and what it holds (its thread stopped or never started). */
static void destroy(struct raftq_consumer *k)
{
    pthread_cond_destroy(&k->wake);
    pthread_mutex_destroy(&k->lock);
    pthread_mutex_destroy(&k->rejoin);
    free(k->parts);
    free(k->pos);
    free(k);
}

int raftq_consumer_new(struct raftq_client *c,
                       const struct raftq_consumer_config *cc,
                       struct raftq_consumer **out, struct raftq_error *e)
{
    char esc[NAME_MAX_LEN * 3 + 1];
    if (c == NULL || cc == NULL || cc->group == NULL || cc->topic == NULL ||
        strlen(cc->topic) > NAME_MAX_LEN || strlen(cc->group) > NAME_MAX_LEN ||
        !client_escape(cc->group, esc, sizeof esc)) {
        return client_error(e, RAFTQ_ERR_INVALID,
                            "a group and a topic of at most %d characters",
                            NAME_MAX_LEN);
    }
    struct raftq_consumer *k = calloc(1, sizeof *k);
    uint64_t *pos = calloc(MAX_PARTITIONS, sizeof *pos);
    if (k == NULL || pos == NULL) {
        free(k);
        free(pos);
        return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
    }
    k->c = c;
    k->pos = pos;
    k->n_pos = MAX_PARTITIONS;
    snprintf(k->group_path, sizeof k->group_path, "/v1/groups/%s", esc);
    snprintf(k->topic, sizeof k->topic, "%s", cc->topic);
    k->session_timeout_ms = cc->session_timeout_ms;
    pthread_mutex_init(&k->rejoin, NULL);
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->wake, NULL);
    int rv = join(k, e);
    if (rv == RAFTQ_OK) {
        rv = pthread_create(&k->thread, NULL, beat, k);
        if (rv != 0) {
            rv = client_error(e, RAFTQ_ERR_NOMEM, "pthread_create: %s",
                              strerror(rv));
        }
    }
    if (rv != RAFTQ_OK) {
        destroy(k);
        return rv;
    }
    *out = k;
    return RAFTQ_OK;
}

void raftq_records_free(struct raftq_records *r)
{
    free(r); /* One block: the array and the strings after it. */
}

/* The records of a fetch answer as one block. */
static int records_of(json_t *list, struct raftq_records **out)
{
    size_t n = json_array_size(list);
    size_t bytes =
        sizeof(struct raftq_records) + n * sizeof(struct raftq_record);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(list, i);
        bytes += json_string_length(json_object_get(r, "value")) + 1 +
                 json_string_length(json_object_get(r, "key")) + 1;
    }
    struct raftq_records *rs = malloc(bytes);
    if (rs == NULL) {
        return RAFTQ_ERR_NOMEM;
    }
    rs->n = n;
    rs->records = (struct raftq_record *)(rs + 1);
    char *text = (char *)(rs->records + n);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(list, i);
        struct raftq_record *o = &rs->records[i];
        json_t *part = json_object_get(r, "partition_id");
        json_t *off = json_object_get(r, "offset");
        json_t *value = json_object_get(r, "value");
        json_t *key = json_object_get(r, "key");
        if (!json_is_integer(part) || json_integer_value(part) < 0 ||
            json_integer_value(part) >= MAX_PARTITIONS ||
            !json_is_integer(off) || json_integer_value(off) < 0 ||
            !json_is_string(value)) {
            free(rs);
            return RAFTQ_ERR_PROTOCOL;
        }
        o->partition = (uint32_t)json_integer_value(part);
        o->offset = (uint64_t)json_integer_value(off);
        o->timestamp_ms =
            json_integer_value(json_object_get(r, "timestamp_ms"));
        o->value_len = json_string_length(value);
        memcpy(text, json_string_value(value), o->value_len + 1);
        o->value = text;
        text += o->value_len + 1;
        if (json_is_string(key)) {
            o->key_len = json_string_length(key);
            memcpy(text, json_string_value(key), o->key_len + 1);
            o->key = text;
            text += o->key_len + 1;
        } else {
            o->key = NULL;
            o->key_len = 0;
        }
    }
    *out = rs;
    return RAFTQ_OK;
}

int raftq_consumer_poll(struct raftq_consumer *k, uint32_t max,
                        uint32_t wait_ms, struct raftq_records **out,
                        struct raftq_error *e)
{
    if (k == NULL || out == NULL || max == 0 || max > 10000) {
        return client_error(e, RAFTQ_ERR_INVALID, "max is 1 to 10000");
    }
    char query[300], esc[400], member[sizeof k->member_id];
    pthread_mutex_lock(&k->lock);
    memcpy(member, k->member_id, sizeof member);
    pthread_mutex_unlock(&k->lock);
    client_escape(member, esc, sizeof esc);
    snprintf(query, sizeof query, "?member_id=%s&max=%u&wait_ms=%u", esc, max,
             wait_ms);
    json_t *answer;
    int rv = member_call(k, member, "GET", "records", NULL, query, wait_ms,
                         &answer, e);
    if (rv != RAFTQ_OK) {
        return rv;
    }
    rv = records_of(json_object_get(answer, "records"), out);
    json_t *gen = json_object_get(answer, "generation");
    if (rv == RAFTQ_OK) {
        pthread_mutex_lock(&k->lock);
        uint64_t g = json_is_integer(gen) ? (uint64_t)json_integer_value(gen)
                                          : k->generation;
        if (g != k->pos_generation) {
            memset(k->pos, 0, k->n_pos * sizeof *k->pos);
            k->pos_generation = g;
        }
        for (size_t i = 0; i < (*out)->n; i++) {
            const struct raftq_record *r = &(*out)->records[i];
            k->pos[r->partition] = r->offset + 2; /* 1 + the next offset. */
        }
        pthread_mutex_unlock(&k->lock);
    } else {
        client_error(e, rv, "the records answer is not what API.md says");
    }
    json_decref(answer);
    return rv;
}

int raftq_consumer_commit(struct raftq_consumer *k, struct raftq_error *e)
{
    if (k == NULL) {
        return client_error(e, RAFTQ_ERR_INVALID, "no consumer");
    }
    pthread_mutex_lock(&k->lock);
    json_t *offsets = json_array();
    for (size_t i = 0; i < k->n_parts; i++) {
        uint64_t pos = k->pos[k->parts[i]];
        if (pos != 0) {
            json_array_append_new(
                offsets,
                json_pack("{s:I, s:I}", "partition_id", (json_int_t)k->parts[i],
                          "offset", (json_int_t)(pos - 1)));
        }
    }
    char member[sizeof k->member_id];
    memcpy(member, k->member_id, sizeof member);
    json_t *body =
        json_pack("{s:s, s:I, s:o}", "member_id", member, "generation",
                  (json_int_t)k->pos_generation, "offsets", offsets);
    pthread_mutex_unlock(&k->lock);
    if (json_array_size(offsets) == 0) {
        json_decref(body);
        return RAFTQ_OK;
    }
    int rv = member_call(k, member, "POST", "commit", body, "", 0, NULL, e);
    json_decref(body);
    return rv;
}

size_t raftq_consumer_assignment(struct raftq_consumer *k, uint32_t *parts,
                                 size_t cap, uint64_t *generation)
{
    pthread_mutex_lock(&k->lock);
    size_t n = k->n_parts;
    for (size_t i = 0; parts != NULL && i < n && i < cap; i++) {
        parts[i] = k->parts[i];
    }
    if (generation != NULL) {
        *generation = k->generation;
    }
    pthread_mutex_unlock(&k->lock);
    return n;
}

void raftq_consumer_free(struct raftq_consumer *k)
{
    if (k == NULL) {
        return;
    }
    pthread_mutex_lock(&k->lock);
    k->closing = true;
    pthread_cond_broadcast(&k->wake);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    char path[sizeof k->group_path + 16];
    snprintf(path, sizeof path, "%s/leave", k->group_path);
    json_t *body = json_pack("{s:s}", "member_id", k->member_id);
    client_json(k->c, "POST", path, body, 0, NULL, NULL);
    json_decref(body);
    destroy(k);
}
