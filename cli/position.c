/*
 * Reading positions (see position.h).
 */
#include "position.h"

#include <inttypes.h>
#include <stdio.h>

#include "commands.h"
#include "url.h"

void position_records_url(struct url *u, const char *topic, uint32_t partition,
                          uint64_t offset, uint64_t max)
{
    char part[16];
    snprintf(part, sizeof part, "%" PRIu32, partition);
    url_init(u, "");
    url_path(u, "/v1/topics/");
    url_segment(u, topic);
    url_path(u, "/partitions/");
    url_segment(u, part);
    url_path(u, "/records");
    url_query_u64(u, "offset", offset);
    url_query_u64(u, "max", max);
}

/* The first record at or after @offset of partition @p: *found false when
 * there is none (past the end); *hw the high watermark. */
static int read_one(struct mclient *c, const char *topic, uint32_t p,
                    uint64_t offset, bool *found, uint64_t *at, int64_t *ts,
                    uint64_t *hw)
{
    struct url u;
    struct mclient_resp r;

    position_records_url(&u, topic, p, offset, 1);
    int code = commands_call(c, "GET", &u, NULL, &r);
    if (code != CLI_OK) {
        return code;
    }
    json_t *rec = json_array_get(json_object_get(r.body, "records"), 0);
    json_t *h = json_object_get(r.body, "high_watermark");
    json_t *o = json_object_get(rec, "offset");
    json_t *t = json_object_get(rec, "timestamp_ms");
    *found = rec != NULL;
    if (!json_is_integer(h) ||
        (rec != NULL && (!json_is_integer(o) || !json_is_integer(t)))) {
        fprintf(stderr, "raftq: %s answered a record read unexpectedly\n",
                r.base);
        mclient_resp_clear(&r);
        return CLI_REFUSED;
    }
    *hw = (uint64_t)json_integer_value(h);
    if (rec != NULL) {
        *at = (uint64_t)json_integer_value(o);
        *ts = (int64_t)json_integer_value(t);
    }
    mclient_resp_clear(&r);
    return CLI_OK;
}

int position_resolve(struct mclient *c, const char *topic, uint32_t p,
                     const struct cmdline_pos *pos, uint64_t *out)
{
    bool found;
    uint64_t at = 0, hw = 0;
    int64_t ts = 0;
    switch (pos->kind) {
        case CMDLINE_POS_NONE:
        case CMDLINE_POS_EARLIEST:
            *out = 0;
            return CLI_OK;
        case CMDLINE_POS_OFFSET:
            *out = pos->offset;
            return CLI_OK;
        case CMDLINE_POS_LATEST: {
            int code = read_one(c, topic, p, 0, &found, &at, &ts, &hw);
            *out = hw;
            return code;
        }
        case CMDLINE_POS_TIME:
            break;
    }
    /* The first offset in [lo, hi) whose record is stamped at or after the
     * time; hi (the high watermark) when none is. */
    int code = read_one(c, topic, p, 0, &found, &at, &ts, &hw);
    uint64_t lo = 0, hi = hw;
    while (code == CLI_OK && lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        code = read_one(c, topic, p, mid, &found, &at, &ts, &hw);
        if (code != CLI_OK) {
            break;
        }
        if (!found || ts >= pos->time_ms) {
            hi = mid; /* Offsets in [mid, at) hold no record (retention). */
        } else {
            lo = at + 1;
        }
    }
    *out = lo;
    return code;
}
