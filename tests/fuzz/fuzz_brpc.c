/*
 * Fuzzes the broker-to-broker RPC bodies (broker/brpc.h) as a broker
 * receives them from a peer. The first byte picks: a FETCH or MEMBERS
 * request (whatever decodes must re-encode to the same bytes, pad
 * aside), or a MEMBERS reply (JSON), whose members must all be valid and
 * whose "lists self" answer must match the servers' ids. The FETCH reply
 * is a run of batches, fuzzed through plog_append_batches in fuzz_plog.
 */
#include <jansson.h>
#include <stdbool.h>

#include "broker/brpc.h"
#include "fuzz.h"
#include "rq_err.h"
#include "rq_wire.h"

#define SELF 7

static void on_member(void *data, const struct replica_member *m)
{
    size_t *n = data;
    FUZZ_CHECK(m->id != 0);
    FUZZ_CHECK(strlen(m->raft_addr) < sizeof m->raft_addr);
    FUZZ_CHECK(strlen(m->http_addr) < sizeof m->http_addr);
    (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const uint8_t *p = data + 1;
    size_t len = size - 1;

    switch (data[0] % 3) {
        case 0: {
            struct brpc_fetch f;
            uint8_t again[BRPC_FETCH_REQUEST];
            int rv = brpc_fetch_decode(p, len, &f);
            FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
            FUZZ_CHECK((rv == 0) == (len == BRPC_FETCH_REQUEST));
            if (rv == 0) {
                brpc_fetch_encode(&f, again);
                FUZZ_CHECK(memcmp(again, p, 20) == 0);
            }
            break;
        }
        case 1: {
            uint64_t gid;
            uint8_t again[BRPC_MEMBERS_REQUEST];
            int rv = brpc_members_decode(p, len, &gid);
            FUZZ_CHECK((rv == 0) == (len == BRPC_MEMBERS_REQUEST));
            if (rv == 0) {
                brpc_members_encode(gid, again);
                FUZZ_CHECK(memcmp(again, p, sizeof again) == 0);
            }
            break;
        }
        default: {
            struct brpc_members reply;
            size_t n = 0;
            int rv = brpc_members_parse(p, len, SELF, &reply, on_member, &n);
            FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
            if (rv != 0) {
                FUZZ_CHECK(n == 0);
                break;
            }
            /* Cross-check "lists self" and the count against jansson. */
            json_error_t err;
            json_t *o = json_loadb((const char *)p, len, 0, &err);
            json_t *servers = json_object_get(o, "servers");
            bool self = false;
            FUZZ_CHECK(n <= json_array_size(servers));
            for (size_t i = 0; i < json_array_size(servers); i++) {
                json_t *id = json_object_get(json_array_get(servers, i), "id");
                self = self ||
                       (json_is_integer(id) && json_integer_value(id) == SELF);
            }
            FUZZ_CHECK(self == reply.lists_self);
            json_decref(o);
            break;
        }
    }
    return 0;
}
