/*
 * Codecs of the broker-to-broker RPC bodies (contract in brpc.h). The
 * MEMBERS reply is JSON because it carries addresses of any length; it
 * is parsed leniently per server (a server that is not a valid member is
 * skipped, not fatal) since a newer peer may add fields or servers this
 * broker cannot use.
 */
#include "brpc.h"

#include <jansson.h>

#include "rq_err.h"
#include "rq_wire.h"

void brpc_fetch_encode(const struct brpc_fetch *f,
                       uint8_t out[BRPC_FETCH_REQUEST])
{
    rq_wire_put_u64_at(out, f->group_id);
    rq_wire_put_u64_at(out + 8, f->offset);
    rq_wire_put_u32_at(out + 16, f->max_bytes);
    rq_wire_put_u32_at(out + 20, 0);
}

int brpc_fetch_decode(const uint8_t *p, size_t len, struct brpc_fetch *out)
{
    if (len != BRPC_FETCH_REQUEST) {
        return RQ_MALFORMED;
    }
    out->group_id = rq_wire_u64_at(p);
    out->offset = rq_wire_u64_at(p + 8);
    out->max_bytes = rq_wire_u32_at(p + 16);
    return 0;
}

void brpc_members_encode(uint64_t group_id, uint8_t out[BRPC_MEMBERS_REQUEST])
{
    rq_wire_put_u64_at(out, group_id);
}

int brpc_members_decode(const uint8_t *p, size_t len, uint64_t *group_id)
{
    if (len != BRPC_MEMBERS_REQUEST) {
        return RQ_MALFORMED;
    }
    *group_id = rq_wire_u64_at(p);
    return 0;
}

int brpc_members_parse(
    const uint8_t *body, size_t len, uint64_t self_id, struct brpc_members *out,
    void (*member)(void *data, const struct replica_member *m), void *data)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)body, len, 0, &jerr);
    json_t *servers = json_object_get(o, "servers");
    json_t *ci = json_object_get(o, "conf_index");

    if (!json_is_array(servers) || !json_is_integer(ci)) {
        json_decref(o);
        return RQ_MALFORMED;
    }
    out->conf_index = (uint64_t)json_integer_value(ci);
    out->lists_self = false;
    for (size_t i = 0; i < json_array_size(servers); i++) {
        struct replica_member m;
        char why[128];
        json_t *s = json_array_get(servers, i);
        json_t *id = json_object_get(s, "id");
        if (json_is_integer(id) &&
            (uint64_t)json_integer_value(id) == self_id) {
            out->lists_self = true;
        }
        if (replica_member_parse(s, &m, why, sizeof why) == 0) {
            member(data, &m);
        }
    }
    json_decref(o);
    return 0;
}

size_t brpc_commits_request_size(uint32_t n)
{
    return 4 + 8 * (size_t)n;
}

size_t brpc_commits_reply_size(uint32_t n)
{
    return 4 + 16 * (size_t)n;
}

void brpc_commits_request_encode(const uint64_t *gids, uint32_t n, uint8_t *out)
{
    rq_wire_put_u32_at(out, n);
    for (uint32_t i = 0; i < n; i++) {
        rq_wire_put_u64_at(out + 4 + 8 * (size_t)i, gids[i]);
    }
}

/* The count at @p, if @len holds exactly that many items of @item bytes
 * and it is within BRPC_COMMITS_MAX. */
static int commits_count(const uint8_t *p, size_t len, size_t item, uint32_t *n)
{
    if (len < 4) {
        return RQ_MALFORMED;
    }
    uint32_t k = rq_wire_u32_at(p);
    if (k > BRPC_COMMITS_MAX || len != 4 + item * (size_t)k) {
        return RQ_MALFORMED;
    }
    *n = k;
    return 0;
}

int brpc_commits_request_decode(const uint8_t *p, size_t len, uint64_t *out,
                                uint32_t *n)
{
    int rv = commits_count(p, len, 8, n);
    for (uint32_t i = 0; rv == 0 && i < *n; i++) {
        out[i] = rq_wire_u64_at(p + 4 + 8 * (size_t)i);
    }
    return rv;
}

void brpc_commits_reply_encode(const struct brpc_commit *c, uint32_t n,
                               uint8_t *out)
{
    rq_wire_put_u32_at(out, n);
    for (uint32_t i = 0; i < n; i++) {
        rq_wire_put_u64_at(out + 4 + 16 * (size_t)i, c[i].group_id);
        rq_wire_put_u64_at(out + 12 + 16 * (size_t)i, c[i].commit);
    }
}

int brpc_commits_reply_decode(const uint8_t *p, size_t len,
                              struct brpc_commit *out, uint32_t *n)
{
    int rv = commits_count(p, len, 16, n);
    for (uint32_t i = 0; rv == 0 && i < *n; i++) {
        out[i].group_id = rq_wire_u64_at(p + 4 + 16 * (size_t)i);
        out[i].commit = rq_wire_u64_at(p + 12 + 16 * (size_t)i);
    }
    return rv;
}
