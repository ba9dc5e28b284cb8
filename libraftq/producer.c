/*
 * The asynchronous producer (raftq.h). raftq_produce() puts a copy of the
 * message on its partition's queue and returns; the producer's thread
 * runs a libcurl multi handle and, for each partition with no batch in
 * flight, turns the front of its queue into a batch once it holds
 * batch_bytes, has waited linger_us, or a flush asks. A batch goes to
 * POST /v1/topics/{t}/records?partition_id=P&producer_id=I&sequence=S in
 * the binary body (batch.h) and is answered once committed.
 *
 * A partition's batch lives until it is answered:
 *
 *     QUEUED -> IN FLIGHT      [start_batch: a slot of max_in_flight free]
 *     IN FLIGHT -> delivered   [finish: 200, each message's offset]
 *     IN FLIGHT -> failed      [finish: a 4xx, or retries or time used up]
 *     IN FLIGHT -> WAITING     [finish: no answer, 503 or another 5xx]
 *     WAITING -> IN FLIGHT     [start_batch at its retry time, next manager]
 *
 * Resent, a batch keeps its bytes, producer id and sequence, so a
 * partition that appended it already answers the first offsets again
 * instead of appending twice (broker/partition.h). Only one batch per
 * partition is ever in flight or waiting, which keeps the order of the
 * calls within a partition and the sequences of one producer increasing
 * in every partition, as the brokers require. Sequences are per topic
 * (one producer id each: API.md registers producers per topic).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "client.h"

#define MAX_BATCH_RECORDS 10000
#define TOPIC_MAX 128
#define RETRY_PAUSE_MS 50
#define RETRY_PAUSE_MAX_MS 1000
/* How long the thread sleeps at most when nothing is due. */
#define IDLE_POLL_MS 200

struct flight {
    struct topic *topic;
    uint32_t partition;
    struct batch_msg *msgs; /* The batch's messages, in order. */
    size_t n, bytes;
    uint64_t sequence;
    char *body;
    size_t body_len;
    CURL *h;                 /* While in flight. */
    struct curl_slist *hdrs; /* While in flight. */
    struct client_sink sink;
    size_t base;             /* The manager asked. */
    unsigned attempts;       /* Sends so far. */
    uint64_t first_ms;       /* When first sent. */
    uint64_t retry_at_ms;    /* While waiting. */
    struct raftq_error last; /* Why the last send failed. */
};

struct part {
    struct batch_queue q;
    uint64_t first_us;     /* When the queue's front was queued. */
    struct flight *flight; /* In flight or waiting, or NULL. */
};

struct topic {
    struct topic *next;
    char name[TOPIC_MAX + 1];
    char path[TOPIC_MAX * 3 + 64]; /* "/v1/topics/NAME/records". */
    uint64_t producer_id;
    uint64_t sequence; /* The last one given. */
    uint32_t n_parts;
    uint32_t sticky; /* Where messages without key or partition go. */
    struct part *parts;
};

struct raftq_producer {
    struct raftq_client *c;
    struct raftq_producer_config cfg;
    pthread_t thread;
    CURLM *multi;

    pthread_mutex_t setup; /* Serialises topic registrations. */
    pthread_mutex_t lock;  /* Guards everything below. */
    pthread_cond_t room;   /* Signalled as messages leave the buffer. */
    pthread_cond_t idle;   /* Signalled when nothing is left. */
    struct topic *topics;
    size_t buffered;    /* Bytes of messages not yet delivered. */
    size_t undelivered; /* Messages not yet delivered. */
    unsigned flushing;  /* Callers in raftq_producer_flush(). */
    bool closing;
    uint64_t close_deadline_ms;
    unsigned active; /* Flights in flight (not waiting). */
    struct raftq_producer_stats stats;
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void raftq_producer_config_init(struct raftq_producer_config *pc)
{
    memset(pc, 0, sizeof *pc);
    pc->linger_us = 1000;
    pc->batch_bytes = 256 * 1024;
    pc->batch_records = MAX_BATCH_RECORDS;
    pc->max_in_flight = 16;
    pc->retries = 10;
    pc->buffer_bytes = 64u << 20;
}

static void *run(void *arg);

int raftq_producer_new(struct raftq_client *c,
                       const struct raftq_producer_config *pc,
                       struct raftq_producer **out, struct raftq_error *e)
{
    if (c == NULL || out == NULL) {
        return client_error(e, RAFTQ_ERR_INVALID, "no client given");
    }
    struct raftq_producer *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
    }
    p->c = c;
    if (pc != NULL) {
        p->cfg = *pc;
    } else {
        raftq_producer_config_init(&p->cfg);
    }
    if (p->cfg.batch_records == 0 || p->cfg.batch_records > MAX_BATCH_RECORDS) {
        p->cfg.batch_records = MAX_BATCH_RECORDS;
    }
    if (p->cfg.batch_bytes == 0 || p->cfg.max_in_flight == 0 ||
        p->cfg.buffer_bytes < p->cfg.batch_bytes) {
        free(p);
        return client_error(e, RAFTQ_ERR_INVALID,
                            "batch_bytes and max_in_flight must be positive "
                            "and buffer_bytes at least batch_bytes");
    }
    p->multi = curl_multi_init();
    if (p->multi == NULL) {
        free(p);
        return client_error(e, RAFTQ_ERR_NOMEM, "curl_multi_init failed");
    }
    pthread_mutex_init(&p->setup, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->room, NULL);
    pthread_cond_init(&p->idle, NULL);
    int rv = pthread_create(&p->thread, NULL, run, p);
    if (rv != 0) {
        curl_multi_cleanup(p->multi);
        pthread_cond_destroy(&p->idle);
        pthread_cond_destroy(&p->room);
        pthread_mutex_destroy(&p->lock);
        pthread_mutex_destroy(&p->setup);
        free(p);
        return client_error(e, RAFTQ_ERR_NOMEM, "pthread_create: %s",
                            strerror(rv));
    }
    *out = p;
    return RAFTQ_OK;
}

static struct topic *find_topic(struct raftq_producer *p, const char *name)
{
    for (struct topic *t = p->topics; t != NULL; t = t->next) {
        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

/* Registers the producer for @name and learns its partitions (blocking,
 * under p->setup, without p->lock). */
static int add_topic(struct raftq_producer *p, const char *name,
                     struct topic **out, struct raftq_error *e)
{
    char esc[TOPIC_MAX * 3 + 1];
    size_t len = strlen(name);
    if (len == 0 || len > TOPIC_MAX || !client_escape(name, esc, sizeof esc)) {
        return client_error(e, RAFTQ_ERR_INVALID,
                            "a topic name has 1 to %d characters", TOPIC_MAX);
    }
    json_t *body = json_pack("{s:s}", "topic", name);
    json_t *answer = NULL;
    int rv =
        client_json(p->c, "POST", "/producer/register", body, 0, &answer, e);
    json_decref(body);
    if (rv != RAFTQ_OK) {
        return rv;
    }
    json_t *id = json_object_get(answer, "producer_id");
    if (!json_is_integer(id) || json_integer_value(id) <= 0) {
        json_decref(answer);
        return client_error(e, RAFTQ_ERR_PROTOCOL,
                            "the registration answered no producer_id");
    }
    uint64_t producer_id = (uint64_t)json_integer_value(id);
    json_decref(answer);
    uint32_t n_parts;
    rv = raftq_topic_partitions(p->c, name, &n_parts, e);
    if (rv != RAFTQ_OK) {
        return rv;
    }
    struct topic *t = calloc(1, sizeof *t);
    struct part *parts = calloc(n_parts, sizeof *parts);
    if (t == NULL || parts == NULL) {
        free(t);
        free(parts);
        return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
    }
    memcpy(t->name, name, len + 1);
    snprintf(t->path, sizeof t->path, "/v1/topics/%s/records", esc);
    t->producer_id = producer_id;
    t->n_parts = n_parts;
    t->parts = parts;
    t->sticky = (uint32_t)(producer_id % n_parts);
    *out = t;
    return RAFTQ_OK;
}

int raftq_produce(struct raftq_producer *p, const struct raftq_message *m,
                  raftq_delivery_cb cb, void *opaque, struct raftq_error *e)
{
    if (p == NULL || m == NULL || m->topic == NULL ||
        (m->value == NULL && m->value_len > 0)) {
        return client_error(e, RAFTQ_ERR_INVALID,
                            "a message needs a topic and a value");
    }
    if (!batch_text_ok(m->value, m->value_len) ||
        (m->key != NULL && !batch_text_ok(m->key, m->key_len))) {
        return client_error(e, RAFTQ_ERR_INVALID,
                            "keys and values are UTF-8 text without NUL");
    }
    if (m->value_len + m->key_len + 8 > p->cfg.buffer_bytes) {
        return client_error(e, RAFTQ_ERR_TOO_LARGE,
                            "the message is larger than buffer_bytes");
    }
    pthread_mutex_lock(&p->lock);
    struct topic *t = find_topic(p, m->topic);
    bool closing = p->closing;
    pthread_mutex_unlock(&p->lock);
    if (closing) {
        return client_error(e, RAFTQ_ERR_CLOSED, "the producer is closing");
    }
    if (t == NULL) {
        pthread_mutex_lock(&p->setup);
        pthread_mutex_lock(&p->lock);
        t = find_topic(p, m->topic);
        pthread_mutex_unlock(&p->lock);
        int rv = RAFTQ_OK;
        if (t == NULL) {
            rv = add_topic(p, m->topic, &t, e);
            if (rv == RAFTQ_OK) {
                pthread_mutex_lock(&p->lock);
                t->next = p->topics;
                p->topics = t;
                pthread_mutex_unlock(&p->lock);
            }
        }
        pthread_mutex_unlock(&p->setup);
        if (rv != RAFTQ_OK) {
            return rv;
        }
    }
    if (m->partition != RAFTQ_PARTITION_ANY && m->partition >= t->n_parts) {
        return client_error(e, RAFTQ_ERR_NOT_FOUND,
                            "topic '%s' has no partition %u (it has %u)",
                            t->name, m->partition, t->n_parts);
    }
    struct batch_msg *msg =
        batch_msg_new(m->key, m->key_len, m->value, m->value_len, cb, opaque);
    if (msg == NULL) {
        return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
    }
    size_t size = batch_msg_size(msg);
    pthread_mutex_lock(&p->lock);
    while (!p->closing && p->buffered > 0 &&
           p->buffered + size > p->cfg.buffer_bytes) {
        pthread_cond_wait(&p->room, &p->lock);
    }
    if (p->closing) {
        pthread_mutex_unlock(&p->lock);
        free(msg);
        return client_error(e, RAFTQ_ERR_CLOSED, "the producer is closing");
    }
    uint32_t part = m->partition;
    if (part == RAFTQ_PARTITION_ANY) {
        if (m->key != NULL) {
            part = batch_key_partition(m->key, m->key_len, t->n_parts);
        } else {
            part = t->sticky;
            if (p->cfg.partitioner == RAFTQ_PARTITIONER_ROUND_ROBIN) {
                t->sticky = (t->sticky + 1) % t->n_parts;
            }
        }
    }
    bool sticky = p->cfg.partitioner == RAFTQ_PARTITIONER_STICKY;
    struct part *pt = &t->parts[part];
    bool was_empty = pt->q.n == 0;
    if (was_empty) {
        pt->first_us = now_us();
    }
    batch_queue_push(&pt->q, msg);
    p->buffered += size;
    p->undelivered++;
    bool full =
        pt->q.bytes >= p->cfg.batch_bytes || pt->q.n >= p->cfg.batch_records;
    if (sticky && full && part == t->sticky && m->key == NULL) {
        t->sticky = (t->sticky + 1) % t->n_parts;
    }
    pthread_mutex_unlock(&p->lock);
    /* The thread sleeps until the next linger expires; wake it for what is
     * due sooner. */
    if (full || (was_empty && p->cfg.linger_us == 0)) {
        curl_multi_wakeup(p->multi);
    }
    return RAFTQ_OK;
}

int raftq_producer_flush(struct raftq_producer *p, uint32_t timeout_ms)
{
    if (p == NULL) {
        return RAFTQ_ERR_INVALID;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&p->lock);
    p->flushing++;
    curl_multi_wakeup(p->multi);
    int rv = RAFTQ_OK;
    while (p->undelivered > 0) {
        if (pthread_cond_timedwait(&p->idle, &p->lock, &until) == ETIMEDOUT) {
            rv = p->undelivered > 0 ? RAFTQ_ERR_TIMEOUT : RAFTQ_OK;
            break;
        }
    }
    p->flushing--;
    pthread_mutex_unlock(&p->lock);
    return rv;
}

void raftq_producer_stats(struct raftq_producer *p,
                          struct raftq_producer_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    pthread_mutex_unlock(&p->lock);
}

/* ---- The thread (all below runs on it) ---- */

/* Sends @f (made or waiting) to its manager. Under p->lock. */
static void send_flight(struct raftq_producer *p, struct flight *f)
{
    char path[sizeof f->topic->path + 96];
    snprintf(
        path, sizeof path, "%s?partition_id=%u&producer_id=%llu&sequence=%llu",
        f->topic->path, f->partition, (unsigned long long)f->topic->producer_id,
        (unsigned long long)f->sequence);
    struct client_req r = {
        "POST", path, "application/vnd.raftq.records", f->body, f->body_len, 0};
    f->h = client_get_handle(p->c);
    if (f->h == NULL || client_prepare(p->c, f->h, p->c->bases[f->base], &r,
                                       &f->sink, &f->hdrs) != 0) {
        /* UNTESTED: ENOMEM only; the batch waits and is tried again. */
        client_put_handle(p->c, f->h);
        f->h = NULL;
        f->retry_at_ms = client_now_ms() + RETRY_PAUSE_MS;
        return;
    }
    curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
    curl_multi_add_handle(p->multi, f->h);
    f->attempts++;
    p->active++;
    p->stats.requests++;
    if (f->attempts > 1) {
        p->stats.retries++;
    }
}

/* Makes the batch of partition @i of @t from its queue. Under p->lock. */
static void start_batch(struct raftq_producer *p, struct topic *t, uint32_t i)
{
    struct part *pt = &t->parts[i];
    struct flight *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return; /* UNTESTED: ENOMEM only; tried again on the next round. */
    }
    f->topic = t;
    f->partition = i;
    f->msgs = batch_queue_take(&pt->q, p->cfg.batch_records, p->cfg.batch_bytes,
                               &f->n, &f->bytes);
    if (!batch_encode(f->msgs, f->n, &f->body, &f->body_len)) {
        /* UNTESTED: ENOMEM only. The messages go back to the front. */
        struct batch_msg *last = f->msgs;
        while (last->next != NULL) {
            last = last->next;
        }
        last->next = pt->q.head;
        pt->q.head = f->msgs;
        if (pt->q.tail == NULL) {
            pt->q.tail = last;
        }
        pt->q.n += f->n;
        pt->q.bytes += f->bytes;
        free(f);
        return;
    }
    if (pt->q.n > 0) {
        pt->first_us = now_us();
    }
    if (p->cfg.partitioner == RAFTQ_PARTITIONER_STICKY && i == t->sticky) {
        t->sticky = (t->sticky + 1) % t->n_parts;
    }
    f->sequence = ++t->sequence;
    pthread_mutex_lock(&p->c->lock);
    f->base = p->c->preferred;
    pthread_mutex_unlock(&p->c->lock);
    f->first_ms = client_now_ms();
    pt->flight = f;
    send_flight(p, f);
}

/* Starts what is due and returns how long until something else is, in
 * ms. Under p->lock. */
static uint64_t start_due(struct raftq_producer *p)
{
    uint64_t now = now_us();
    uint64_t now_ms = now / 1000;
    uint64_t next = IDLE_POLL_MS;
    bool hurry = p->flushing > 0 || p->closing;
    for (struct topic *t = p->topics; t != NULL; t = t->next) {
        for (uint32_t i = 0; i < t->n_parts; i++) {
            struct part *pt = &t->parts[i];
            struct flight *f = pt->flight;
            if (f != NULL) {
                if (f->h != NULL) {
                    continue;
                }
                if (f->retry_at_ms > now_ms) {
                    uint64_t d = f->retry_at_ms - now_ms;
                    next = d < next ? d : next;
                } else if (p->active < p->cfg.max_in_flight) {
                    send_flight(p, f);
                } else {
                    next = 1; /* No free slot: retried once one frees. */
                }
                continue;
            }
            if (pt->q.n == 0) {
                continue;
            }
            uint64_t due = pt->first_us + p->cfg.linger_us;
            if (hurry || pt->q.bytes >= p->cfg.batch_bytes ||
                pt->q.n >= p->cfg.batch_records || due <= now) {
                if (p->active < p->cfg.max_in_flight) {
                    start_batch(p, t, i);
                }
            } else {
                uint64_t d = (due - now + 999) / 1000;
                next = d < next ? d : next;
            }
        }
    }
    return next;
}

/* Delivers or fails every message of @f, without p->lock held, then frees
 * it. */
static void deliver(struct raftq_producer *p, struct flight *f, uint64_t base,
                    const struct raftq_error *err)
{
    struct raftq_delivery d = {f->topic->name, f->partition, 0,
                               err != NULL ? err->err : RAFTQ_OK, err};
    struct batch_msg *m = f->msgs;
    for (size_t i = 0; m != NULL; i++) {
        struct batch_msg *next = m->next;
        d.offset = err == NULL ? base + i : 0;
        if (m->cb != NULL) {
            m->cb(&d, m->opaque);
        }
        free(m);
        m = next;
    }
    pthread_mutex_lock(&p->lock);
    p->buffered -= f->bytes;
    p->undelivered -= f->n;
    if (err == NULL) {
        p->stats.messages += f->n;
    } else {
        p->stats.failed += f->n;
    }
    f->topic->parts[f->partition].flight = NULL;
    if (p->undelivered == 0) {
        pthread_cond_broadcast(&p->idle);
    }
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->lock);
    free(f->body);
    free(f->sink.data);
    free(f);
}

/* What became of a send of @f; @cc is libcurl's result. */
static void finish(struct raftq_producer *p, struct flight *f, CURLcode cc)
{
    struct client_answer a = {0};
    bool again;
    if (cc == CURLE_OK) {
        client_answer_of(f->h, &f->sink, f->base, &a);
    }
    curl_multi_remove_handle(p->multi, f->h);
    curl_slist_free_all(f->hdrs);
    f->hdrs = NULL;
    if (cc == CURLE_OK) {
        pthread_mutex_lock(&p->c->lock);
        p->c->preferred = f->base;
        pthread_mutex_unlock(&p->c->lock);
    }
    client_put_handle(p->c, f->h);
    f->h = NULL;
    pthread_mutex_lock(&p->lock);
    p->active--;
    pthread_mutex_unlock(&p->lock);

    uint64_t retry_after = 0;
    if (cc != CURLE_OK) {
        client_error(&f->last, RAFTQ_ERR_CONNECT, "%s: %s",
                     p->c->bases[f->base], curl_easy_strerror(cc));
        again = true;
    } else if (a.status == 200) {
        uint64_t base;
        if (batch_offsets(a.body, f->n, f->partition, &base)) {
            client_answer_clear(&a);
            deliver(p, f, base, NULL);
            return;
        }
        client_error(&f->last, RAFTQ_ERR_PROTOCOL,
                     "the produce answer does not give %zu offsets of "
                     "partition %u",
                     f->n, f->partition);
        again = false;
    } else {
        client_fail(&a, &f->last);
        /* Only a lost or failed answer leaves the outcome unknown; a 4xx
         * says the batch was refused whole. */
        again = a.status >= 500 || a.status == 421 || a.status == 429;
        retry_after = a.retry_after_ms;
    }
    client_answer_clear(&a);
    uint64_t now = client_now_ms();
    bool late = now - f->first_ms >= p->c->timeout_ms;
    if (!again || f->attempts > p->cfg.retries || late) {
        if (again && late) {
            f->last.err = RAFTQ_ERR_TIMEOUT;
        }
        deliver(p, f, 0, &f->last);
        return;
    }
    uint64_t pause = (uint64_t)RETRY_PAUSE_MS << (f->attempts - 1);
    if (pause > RETRY_PAUSE_MAX_MS || f->attempts > 8) {
        pause = RETRY_PAUSE_MAX_MS;
    }
    if (retry_after > 0 && retry_after < RETRY_PAUSE_MAX_MS) {
        pause = retry_after;
    }
    f->base = (f->base + 1) % p->c->n_bases;
    pthread_mutex_lock(&p->lock);
    f->retry_at_ms = now + pause;
    pthread_mutex_unlock(&p->lock);
}

/* Fails every message still queued or waiting (closing past its time). */
static void fail_rest(struct raftq_producer *p)
{
    struct raftq_error e;
    client_error(&e, RAFTQ_ERR_CLOSED,
                 "the producer closed before the message was delivered");
    pthread_mutex_lock(&p->lock);
    for (struct topic *t = p->topics; t != NULL; t = t->next) {
        for (uint32_t i = 0; i < t->n_parts; i++) {
            struct part *pt = &t->parts[i];
            while (pt->flight == NULL && pt->q.n > 0) {
                struct flight *f = calloc(1, sizeof *f);
                if (f == NULL) {
                    break; /* UNTESTED: ENOMEM only. */
                }
                f->topic = t;
                f->partition = i;
                f->msgs = batch_queue_take(&pt->q, SIZE_MAX, SIZE_MAX, &f->n,
                                           &f->bytes);
                pt->flight = f;
                pthread_mutex_unlock(&p->lock);
                deliver(p, f, 0, &e);
                pthread_mutex_lock(&p->lock);
            }
            if (pt->flight != NULL && pt->flight->h == NULL) {
                struct flight *f = pt->flight;
                pthread_mutex_unlock(&p->lock);
                deliver(p, f, 0, &e);
                pthread_mutex_lock(&p->lock);
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
}

static void *run(void *arg)
{
    struct raftq_producer *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool done = p->closing && p->undelivered == 0;
        bool overdue = p->closing && p->active == 0 &&
                       client_now_ms() >= p->close_deadline_ms;
        uint64_t wait = done || overdue ? 0 : start_due(p);
        pthread_mutex_unlock(&p->lock);
        if (done) {
            break;
        }
        if (overdue) {
            fail_rest(p);
            continue;
        }
        int running;
        curl_multi_perform(p->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
            if (msg->msg == CURLMSG_DONE) {
                struct flight *f;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &f);
                finish(p, f, msg->data.result);
            }
        }
        curl_multi_poll(p->multi, NULL, 0, (int)wait, NULL);
    }
    return NULL;
}

void raftq_producer_free(struct raftq_producer *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    p->close_deadline_ms = client_now_ms() + p->c->timeout_ms;
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->lock);
    curl_multi_wakeup(p->multi);
    pthread_join(p->thread, NULL);
    curl_multi_cleanup(p->multi);
    for (struct topic *t = p->topics; t != NULL;) {
        struct topic *next = t->next;
        free(t->parts);
        free(t);
        t = next;
    }
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->room);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->setup);
    free(p);
}
