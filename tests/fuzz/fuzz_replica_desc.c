/*
 * Fuzzes a replica's descriptor (broker/replica_desc.h), which arrives as
 * the JSON body of POST /internal/replicas and is read back from
 * replica.json at every start. The input is parsed as JSON the way the
 * broker parses a body; a descriptor that parses must turn into JSON that
 * parses to the same descriptor, and satisfy the contract (a valid topic,
 * 1 to REPLICA_MEMBERS_MAX members). The same object is also read as one
 * member.
 */
#include <jansson.h>

#include "broker/replica_desc.h"
#include "fuzz.h"
#include "rq_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t err;
    struct replica_desc d;
    struct replica_desc again;
    struct replica_member m;
    char why[256];

    json_t *o = json_loadb((const char *)data, size,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (o == NULL) {
        return 0;
    }
    int rv = replica_desc_parse(o, &d, why, sizeof why);
    if (rv == 0) {
        FUZZ_CHECK(rq_names_topic_valid(d.topic));
        FUZZ_CHECK(d.n_members >= 1 && d.n_members <= REPLICA_MEMBERS_MAX);
        uint64_t pref = replica_desc_preferred(&d);
        FUZZ_CHECK(d.preferred_leader != 0 ||
                   replica_desc_member(&d, pref) != NULL);
        for (int brief = 0; brief < 2; brief++) {
            json_t *j = replica_desc_json(&d, brief);
            FUZZ_CHECK(j != NULL);
            FUZZ_CHECK(replica_desc_parse(j, &again, why, sizeof why) == 0);
            FUZZ_CHECK(replica_desc_same(&d, &again));
            FUZZ_CHECK(again.preferred_leader == d.preferred_leader);
            if (!brief) {
                FUZZ_CHECK(again.bootstrap == d.bootstrap);
            }
            json_decref(j);
        }
    } else {
        FUZZ_CHECK(rv == RQ_INVALID && why[0] != '\0');
    }
    rv = replica_member_parse(o, &m, why, sizeof why);
    FUZZ_CHECK(rv == 0 || rv == RQ_INVALID);
    json_decref(o);
    return 0;
}
