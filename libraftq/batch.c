/*
 * The producer's pure parts (see batch.h).
 */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "rq_keyhash.h"
#include "rq_utf8.h"

struct batch_msg *batch_msg_new(const char *key, size_t key_len,
                                const char *value, size_t value_len,
                                raftq_delivery_cb cb, void *opaque)
{
    size_t kl = key != NULL ? key_len : 0;
    if (kl > INT32_MAX || value_len > UINT32_MAX) {
        return NULL;
    }
    struct batch_msg *m = malloc(sizeof *m + kl + 1 + value_len + 1);
    if (m == NULL) {
        return NULL;
    }
    m->next = NULL;
    m->cb = cb;
    m->opaque = opaque;
    m->key_len = key != NULL ? (int32_t)kl : -1;
    m->value_len = (uint32_t)value_len;
    if (kl > 0) {
        memcpy(m->data, key, kl);
    }
    m->data[kl] = '\0';
    if (value_len > 0) {
        memcpy(m->data + kl + 1, value, value_len);
    }
    m->data[kl + 1 + value_len] = '\0';
    return m;
}

const char *batch_msg_key(const struct batch_msg *m)
{
    return m->key_len < 0 ? NULL : m->data;
}

const char *batch_msg_value(const struct batch_msg *m)
{
    return m->data + (m->key_len < 0 ? 0 : m->key_len) + 1;
}

size_t batch_msg_size(const struct batch_msg *m)
{
    return (m->key_len < 0 ? 0 : (size_t)m->key_len) + m->value_len + 8;
}

bool batch_text_ok(const char *s, size_t len)
{
    return rq_utf8_valid(s, len) && (len == 0 || memchr(s, '\0', len) == NULL);
}

uint32_t batch_key_partition(const char *key, size_t len, uint32_t n)
{
    return rq_key_partition(key, len, n);
}

void batch_queue_push(struct batch_queue *q, struct batch_msg *m)
{
    m->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = m;
    } else {
        q->head = m;
    }
    q->tail = m;
    q->n++;
    q->bytes += batch_msg_size(m);
}

struct batch_msg *batch_queue_take(struct batch_queue *q, size_t max_count,
                                   size_t max_bytes, size_t *n, size_t *bytes)
{
    struct batch_msg *first = q->head, *last = NULL, *m = q->head;
    size_t k = 0, b = 0;
    while (m != NULL && k < max_count &&
           (k == 0 || b + batch_msg_size(m) <= max_bytes)) {
        b += batch_msg_size(m);
        k++;
        last = m;
        m = m->next;
    }
    if (last == NULL) {
        *n = 0;
        *bytes = 0;
        return NULL;
    }
    q->head = m;
    if (m == NULL) {
        q->tail = NULL;
    }
    last->next = NULL;
    q->n -= k;
    q->bytes -= b;
    *n = k;
    *bytes = b;
    return first;
}

static char *put_u32(char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        *p++ = (char)(v >> (8 * i));
    }
    return p;
}

bool batch_encode(const struct batch_msg *list, size_t n, char **out,
                  size_t *len)
{
    size_t total = 4;
    const struct batch_msg *m = list;
    for (size_t i = 0; i < n; i++, m = m->next) {
        total += batch_msg_size(m); /* Its 8 bytes of lengths included. */
    }
    char *buf = malloc(total);
    if (buf == NULL) {
        return false;
    }
    char *p = put_u32(buf, (uint32_t)n);
    m = list;
    for (size_t i = 0; i < n; i++, m = m->next) {
        p = put_u32(p, (uint32_t)m->key_len);
        p = put_u32(p, m->value_len);
        if (m->key_len > 0) {
            memcpy(p, m->data, (size_t)m->key_len);
            p += m->key_len;
        }
        memcpy(p, batch_msg_value(m), m->value_len);
        p += m->value_len;
    }
    *out = buf;
    *len = total;
    return true;
}

bool batch_offsets(const json_t *answer, size_t n, uint32_t partition,
                   uint64_t *base)
{
    json_t *offsets = json_object_get(answer, "offsets");
    if (!json_is_array(offsets) || json_array_size(offsets) != n || n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(offsets, i);
        json_t *p = json_object_get(o, "partition_id");
        json_t *off = json_object_get(o, "offset");
        if (!json_is_integer(p) || !json_is_integer(off) ||
            json_integer_value(p) != (json_int_t)partition ||
            json_integer_value(off) < 0) {
            return false;
        }
        uint64_t v = (uint64_t)json_integer_value(off);
        if (i == 0) {
            *base = v;
        } else if (v != *base + i) {
            return false;
        }
    }
    return true;
}
