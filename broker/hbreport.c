/*
 * Heartbeat reports as deltas (see hbreport.h).
 */
#include "hbreport.h"

#include <inttypes.h>
#include <stdio.h>

#include "rq_err.h"

void hbreport_init(struct hbreport *h)
{
    *h = (struct hbreport){.next_seq = 1};
}

void hbreport_clear(struct hbreport *h)
{
    json_decref(h->acked);
    json_decref(h->sent);
    json_decref(h->since);
    h->acked = NULL;
    h->sent = NULL;
    h->since = NULL;
}

void hbreport_reset(struct hbreport *h)
{
    uint64_t next = h->next_seq;
    hbreport_clear(h);
    *h = (struct hbreport){.next_seq = next};
}

/* @list's entries by group id; NULL on ENOMEM or an entry without one. */
static json_t *by_group(const json_t *list)
{
    json_t *map = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        char key[24];
        json_t *gid = json_object_get(e, "group_id");
        if (map == NULL || !json_is_integer(gid)) {
            json_decref(map);
            return NULL;
        }
        snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(gid));
        if (json_object_set(map, key, e) != 0) {
            json_decref(map); /* UNTESTED: ENOMEM only. */
            return NULL;
        }
    }
    return map;
}

int hbreport_prepare(struct hbreport *h, json_t *body)
{
    json_decref(h->sent);
    h->sent = by_group(json_object_get(body, "replicas"));
    if (h->sent == NULL) {
        return RQ_NOMEM;
    }
    h->sent_seq = h->next_seq++;
    uint64_t base = h->acked != NULL ? h->acked_seq : 0;
    json_t *report = json_pack("{s:I,s:I}", "seq", (json_int_t)h->sent_seq,
                               "base", (json_int_t)base);
    if (report == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    if (base != 0) {
        json_t *changed = json_array();
        json_t *gone = json_array();
        const char *key;
        json_t *e;
        if (h->since == NULL) {
            h->since = json_object();
        }
        /* What changed since the base, and whatever a report after it
         * named (the manager may hold that one): either way, applying
         * this one leaves it with the replicas as they are now. */
        json_object_foreach(h->sent, key, e)
        {
            if (!json_equal(e, json_object_get(h->acked, key)) ||
                json_object_get(h->since, key) != NULL) {
                json_array_append(changed, e);
            }
        }
        json_object_foreach(h->acked, key, e)
        {
            if (json_object_get(h->sent, key) == NULL) {
                json_array_append(gone, json_object_get(e, "group_id"));
            }
        }
        json_object_foreach(h->since, key, e)
        {
            if (json_object_get(h->sent, key) == NULL &&
                json_object_get(h->acked, key) == NULL) {
                json_array_append(gone, e);
            }
        }
        /* Named by this report: covered by the next ones until one is
         * acknowledged. */
        size_t i;
        json_array_foreach(changed, i, e)
        {
            json_t *gid = json_object_get(e, "group_id");
            char k[24];
            snprintf(k, sizeof k, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(gid));
            json_object_set(h->since, k, gid);
        }
        json_array_foreach(gone, i, e)
        {
            char k[24];
            snprintf(k, sizeof k, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(e));
            json_object_set(h->since, k, e);
        }
        json_object_set_new(body, "replicas", changed);
        json_object_set_new(body, "gone", gone);
    }
    json_object_set_new(body, "report", report);
    return 0;
}

void hbreport_answered(struct hbreport *h, bool ok, bool full)
{
    if (ok && !full && h->sent != NULL) {
        json_decref(h->acked);
        json_decref(h->since);
        h->acked = h->sent;
        h->acked_seq = h->sent_seq;
        h->sent = NULL;
        h->since = NULL;
        return;
    }
    json_decref(h->sent);
    h->sent = NULL;
    if (ok && full) {
        json_decref(h->acked);
        json_decref(h->since);
        h->acked = NULL;
        h->since = NULL;
        h->acked_seq = 0;
    }
}
