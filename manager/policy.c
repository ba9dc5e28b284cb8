/*
 * The manager's pure decisions (see policy.h).
 */
#include "policy.h"

#include "rq_keyhash.h"
#include "rq_utf8.h"

bool policy_utf8_valid(const char *str, size_t len)
{
    return rq_utf8_valid(str, len);
}

uint32_t policy_key_partition(const char *key, size_t len, uint32_t n)
{
    return rq_key_partition(key, len, n);
}

uint32_t policy_partition(uint32_t bound, uint32_t given, const char *key,
                          size_t key_len, uint64_t rr, uint32_t n)
{
    if (bound != POLICY_NO_PARTITION) {
        return bound;
    }
    if (given != POLICY_NO_PARTITION) {
        return given;
    }
    if (key != NULL) {
        return policy_key_partition(key, key_len, n);
    }
    return (uint32_t)(rr % n);
}

void policy_member_order(uint64_t group_id, const uint32_t replicas[3],
                         uint32_t out[3])
{
    for (unsigned k = 0; k < 3; k++) {
        out[(group_id + k) % 3] = replicas[k];
    }
}

bool policy_read_final(const json_t *answer, uint64_t offset)
{
    json_t *hw = json_object_get(answer, "high_watermark");
    if (!json_is_integer(hw) ||
        !json_is_true(json_object_get(answer, "leader"))) {
        return false;
    }
    return json_array_size(json_object_get(answer, "records")) > 0 ||
           (uint64_t)json_integer_value(hw) <= offset;
}

bool policy_read_final_binary(uint32_t count, uint64_t high_watermark,
                              uint64_t offset)
{
    return count > 0 || high_watermark <= offset;
}

bool policy_forward_fresh(const struct policy_forward *pf)
{
    return pf->doubt;
}

bool policy_forward_end(struct policy_forward *pf, bool fresh, bool answered,
                        bool refused)
{
    pf->doubt = !answered;
    return !answered && !(fresh && refused);
}
