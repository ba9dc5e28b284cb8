/*
 * Replica descriptors from and to JSON (see replica_desc.h). Every check a
 * manager's request needs is here, with a sentence saying what is wrong.
 */
#include "replica_desc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rq_err.h"
#include "rq_names.h"

/* A non-negative JSON integer field; RQ_INVALID with @why otherwise. */
static int get_uint(const json_t *obj, const char *name, bool positive,
                    uint64_t *out, char *why, size_t whyn)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL) {
        snprintf(why, whyn, "'%s' is missing", name);
        return RQ_INVALID;
    }
    if (!json_is_integer(v) || json_integer_value(v) < (positive ? 1 : 0)) {
        snprintf(why, whyn, "'%s' must be a %s integer", name,
                 positive ? "positive" : "non-negative");
        return RQ_INVALID;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_addr(const json_t *obj, const char *name, char *out, size_t outn,
                    char *why, size_t whyn)
{
    json_t *v = json_object_get(obj, name);
    char host[RQ_ADDR_MAX];
    char reason[128];
    uint16_t port;
    if (!json_is_string(v)) {
        snprintf(why, whyn, "member '%s' must be a \"HOST:PORT\" string", name);
        return RQ_INVALID;
    }
    const char *s = json_string_value(v);
    if (strlen(s) >= outn || rq_addr_split(s, host, sizeof host, &port, reason,
                                           sizeof reason) != 0) {
        snprintf(why, whyn, "member '%s' %s is not a HOST:PORT address", name,
                 s);
        return RQ_INVALID;
    }
    snprintf(out, outn, "%s", s);
    return 0;
}

int replica_member_parse(const json_t *in, struct replica_member *out,
                         char *why, size_t whyn)
{
    int rv;

    memset(out, 0, sizeof *out);
    if (!json_is_object(in)) {
        snprintf(why, whyn, "each member must be an object");
        return RQ_INVALID;
    }
    rv = get_uint(in, "id", true, &out->id, why, whyn);
    if (rv == 0) {
        rv = get_addr(in, "raft_addr", out->raft_addr, sizeof out->raft_addr,
                      why, whyn);
    }
    if (rv == 0) {
        rv = get_addr(in, "http_addr", out->http_addr, sizeof out->http_addr,
                      why, whyn);
    }
    return rv;
}

int replica_desc_parse(const json_t *in, struct replica_desc *out, char *why,
                       size_t whyn)
{
    json_t *v;
    int rv;

    memset(out, 0, sizeof *out);
    if (!json_is_object(in)) {
        snprintf(why, whyn, "a replica must be a JSON object");
        return RQ_INVALID;
    }
    v = json_object_get(in, "topic");
    if (!json_is_string(v) || !rq_names_topic_valid(json_string_value(v))) {
        snprintf(why, whyn,
                 "'topic' must be 1-%d characters of [A-Za-z0-9._-], not . "
                 "or ..",
                 REPLICA_TOPIC_MAX);
        return RQ_INVALID;
    }
    snprintf(out->topic, sizeof out->topic, "%s", json_string_value(v));
    rv = get_uint(in, "partition_id", false, &out->partition_id, why, whyn);
    if (rv == 0) {
        rv = get_uint(in, "group_id", true, &out->group_id, why, whyn);
    }
    if (rv != 0) {
        return rv;
    }
    if (out->partition_id > INT32_MAX) {
        snprintf(why, whyn, "'partition_id' is too large");
        return RQ_INVALID;
    }
    v = json_object_get(in, "members");
    if (!json_is_array(v) || json_array_size(v) == 0 ||
        json_array_size(v) > REPLICA_MEMBERS_MAX) {
        snprintf(why, whyn,
                 "'members' must be a list of 1 to %d {id, raft_addr, "
                 "http_addr}",
                 REPLICA_MEMBERS_MAX);
        return RQ_INVALID;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        struct replica_member *dst = &out->members[i];
        rv = replica_member_parse(json_array_get(v, i), dst, why, whyn);
        if (rv != 0) {
            return rv;
        }
        for (size_t j = 0; j < i; j++) {
            if (out->members[j].id == dst->id) {
                snprintf(why, whyn, "member id %" PRIu64 " appears twice",
                         dst->id);
                return RQ_INVALID;
            }
        }
        out->n_members = i + 1;
    }
    v = json_object_get(in, "bootstrap");
    if (v != NULL && !json_is_boolean(v)) {
        snprintf(why, whyn, "'bootstrap' must be true or false");
        return RQ_INVALID;
    }
    out->bootstrap = json_is_true(v);
    if (json_object_get(in, "preferred_leader") != NULL) {
        rv = get_uint(in, "preferred_leader", true, &out->preferred_leader, why,
                      whyn);
    }
    return rv;
}

json_t *replica_desc_json(const struct replica_desc *d, bool brief)
{
    json_t *members = json_array();
    for (size_t i = 0; i < d->n_members; i++) {
        const struct replica_member *m = &d->members[i];
        json_array_append_new(
            members,
            json_pack("{s:I,s:s,s:s}", "id", (json_int_t)m->id, "raft_addr",
                      m->raft_addr, "http_addr", m->http_addr));
    }
    json_t *o =
        json_pack("{s:s,s:I,s:I,s:o}", "topic", d->topic, "partition_id",
                  (json_int_t)d->partition_id, "group_id",
                  (json_int_t)d->group_id, "members", members);
    if (o != NULL && !brief) {
        json_object_set_new(o, "bootstrap", json_boolean(d->bootstrap));
    }
    if (o != NULL && d->preferred_leader != 0) {
        json_object_set_new(o, "preferred_leader",
                            json_integer((json_int_t)d->preferred_leader));
    }
    return o;
}

bool replica_desc_same(const struct replica_desc *a,
                       const struct replica_desc *b)
{
    if (strcmp(a->topic, b->topic) != 0 || a->partition_id != b->partition_id ||
        a->group_id != b->group_id || a->n_members != b->n_members) {
        return false;
    }
    for (size_t i = 0; i < a->n_members; i++) {
        const struct replica_member *x = &a->members[i];
        const struct replica_member *y = &b->members[i];
        if (x->id != y->id || strcmp(x->raft_addr, y->raft_addr) != 0 ||
            strcmp(x->http_addr, y->http_addr) != 0) {
            return false;
        }
    }
    return true;
}

const struct replica_member *replica_desc_member(const struct replica_desc *d,
                                                 uint64_t id)
{
    for (size_t i = 0; i < d->n_members; i++) {
        if (d->members[i].id == id) {
            return &d->members[i];
        }
    }
    return NULL;
}

uint64_t replica_desc_preferred(const struct replica_desc *d)
{
    if (d->preferred_leader != 0) {
        return d->preferred_leader;
    }
    return d->members[d->group_id % d->n_members].id;
}
