/*
 * Each topic's traffic over the last minutes (see traffic.h).
 *
 * Samples are numbered from 0, the baseline, in the series since the last
 * reset; sample k holds what happened between samples k-1 and k, and its
 * slot in every ring is k % TRAFFIC_SAMPLES. A topic's samples count from
 * its `since`: 1 for a topic of the baseline, else the sample that first
 * listed it (its partitions were all created after the sample before, so
 * their high watermarks are all new).
 */
#include "traffic.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"

/* One sample of one topic. */
struct slot {
    uint64_t records;
    uint64_t bytes;
};

struct ttopic {
    char name[MCMD_NAME_MAX + 1];
    uint64_t since;     /* Its first sample with a rate. */
    uint64_t records;   /* Appended, in the sample under way. */
    uint64_t bytes;     /* Produced, in the sample under way. */
    uint64_t last_busy; /* Its last sample with any traffic. */
    struct slot *ring;  /* TRAFFIC_SAMPLES; NULL: none in the window. */
    size_t uncounted;   /* Partitions without a mark, in the sample under
                         * way, and in the last (last_uncounted). */
    size_t last_uncounted;
};

/* When each sample was taken. */
struct stamp {
    uint64_t now_ms;
    uint64_t wall_ms;
    uint64_t interval_ms; /* Since the sample before. */
    unsigned bytes_from;
    unsigned managers;
};

/* What a partition's high watermark was counted up to. */
struct mark {
    uint64_t group_id;
    uint64_t hw;
    bool reported;
};

struct traffic {
    uint64_t seq; /* The number of the next sample. */
    struct stamp stamps[TRAFFIC_SAMPLES];
    struct ttopic *topics; /* In name order. */
    size_t nt;
    /* The last sample's marks, in group id order, and the next sample's
     * as it walks the partitions. */
    struct mark *marks, *next;
    size_t n_marks, n_next, cap_marks, cap_next;
    size_t cursor; /* Into marks, while the sample walks. */
    uint64_t last_group;
    bool open; /* Between traffic_begin and traffic_end. */
    uint64_t now_ms, wall_ms;
};

int traffic_new(struct traffic **out)
{
    struct traffic *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    *out = t;
    return 0;
}

static void drop_topics(struct traffic *t)
{
    for (size_t i = 0; i < t->nt; i++) {
        free(t->topics[i].ring);
    }
    free(t->topics);
    t->topics = NULL;
    t->nt = 0;
}

void traffic_free(struct traffic *t)
{
    if (t == NULL) {
        return;
    }
    drop_topics(t);
    free(t->marks);
    free(t->next);
    free(t);
}

void traffic_reset(struct traffic *t)
{
    drop_topics(t);
    t->seq = 0;
    t->n_marks = 0;
    t->n_next = 0;
    t->open = false;
    memset(t->stamps, 0, sizeof t->stamps);
}

/* Room for @n marks in *@m (capacity *@cap). */
static int reserve(struct mark **m, size_t *cap, size_t n)
{
    if (n <= *cap) {
        return 0;
    }
    struct mark *grown = realloc(*m, n * sizeof *grown);
    if (grown == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    *m = grown;
    *cap = n;
    return 0;
}

int traffic_begin(struct traffic *t, uint64_t now_ms, uint64_t wall_ms,
                  const struct mstore_topic *topics, size_t nt, size_t np)
{
    assert(!t->open);
    struct ttopic *list = calloc(nt + 1, sizeof *list);
    if (list == NULL || reserve(&t->next, &t->cap_next, np + 1) != 0) {
        free(list); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    /* Both lists are in name order: keep the series of every topic still
     * listed, start the new ones, drop the rest. */
    size_t k = 0;
    for (size_t i = 0; i < nt; i++) {
        while (k < t->nt && strcmp(t->topics[k].name, topics[i].name) < 0) {
            free(t->topics[k++].ring); /* Deleted. */
        }
        if (k < t->nt && strcmp(t->topics[k].name, topics[i].name) == 0) {
            list[i] = t->topics[k++];
            list[i].records = 0;
            list[i].bytes = 0;
            list[i].uncounted = 0;
            continue;
        }
        memcpy(list[i].name, topics[i].name, sizeof list[i].name);
        list[i].since = t->seq > 0 ? t->seq : 1;
    }
    while (k < t->nt) {
        free(t->topics[k++].ring);
    }
    free(t->topics);
    t->topics = list;
    t->nt = nt;
    t->n_next = 0;
    t->cursor = 0;
    t->last_group = 0;
    t->now_ms = now_ms;
    t->wall_ms = wall_ms;
    t->open = true;
    return 0;
}

void traffic_partition(struct traffic *t, size_t topic, uint64_t group_id,
                       bool reported, uint64_t hw)
{
    assert(t->open && topic < t->nt && t->n_next < t->cap_next);
    assert(t->n_next == 0 || group_id > t->last_group);
    t->last_group = group_id;
    while (t->cursor < t->n_marks && t->marks[t->cursor].group_id < group_id) {
        t->cursor++; /* A partition deleted since. */
    }
    const struct mark *old =
        t->cursor < t->n_marks && t->marks[t->cursor].group_id == group_id
            ? &t->marks[t->cursor]
            : NULL;
    struct mark *m = &t->next[t->n_next++];
    uint64_t appended = 0;
    if (old == NULL && t->seq > 0) {
        /* Created since the last sample: from offset 0, reported or not. */
        *m = (struct mark){group_id, reported ? hw : 0, true};
        appended = m->hw;
    } else if (old == NULL || !old->reported) {
        /* The baseline, or a first report: what came before is unknown. */
        *m = (struct mark){group_id, reported ? hw : 0, reported};
    } else if (!reported) {
        *m = *old; /* Its route is gone for now: keep the mark. */
    } else {
        /* Only past the highest counted: a new leader broker may report
         * less for a while. */
        *m = *old;
        if (hw > old->hw) {
            appended = hw - old->hw;
            m->hw = hw;
        }
    }
    t->topics[topic].records += appended;
    t->topics[topic].uncounted += !m->reported;
}

static struct ttopic *topic_named(const struct traffic *t, const char *name)
{
    size_t lo = 0;
    size_t hi = t->nt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->topics[mid].name, name);
        if (c == 0) {
            return &t->topics[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

bool traffic_counted(struct traffic *t, const json_t *before,
                     const json_t *after)
{
    assert(t->open);
    const json_t *now = json_object_get(after, "topics");
    const char *origin = json_string_value(json_object_get(after, "origin"));
    if (before == NULL || !json_is_object(now) || origin == NULL) {
        return false;
    }
    /* Another process of the manager counts from 0. */
    const char *was = json_string_value(json_object_get(before, "origin"));
    const json_t *then = was != NULL && strcmp(was, origin) == 0
                             ? json_object_get(before, "topics")
                             : NULL;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)now, name, v)
    {
        json_int_t b = json_integer_value(v);
        json_int_t a = json_integer_value(json_object_get(then, name));
        struct ttopic *tt = topic_named(t, name);
        if (tt == NULL || b <= 0) {
            continue; /* Deleted, or nothing counted. */
        }
        /* Less than before: the topic was deleted and made again there. */
        tt->bytes += (uint64_t)(b >= a ? b - a : b);
    }
    return true;
}

void traffic_end(struct traffic *t, unsigned bytes_from, unsigned managers)
{
    assert(t->open);
    uint64_t k = t->seq;
    struct stamp *s = &t->stamps[k % TRAFFIC_SAMPLES];
    uint64_t before = k > 0 ? t->stamps[(k - 1) % TRAFFIC_SAMPLES].now_ms : 0;
    *s = (struct stamp){
        .now_ms = t->now_ms,
        .wall_ms = t->wall_ms,
        .interval_ms = k > 0 && t->now_ms > before ? t->now_ms - before : 0,
        .bytes_from = bytes_from,
        .managers = managers,
    };
    for (size_t i = 0; i < t->nt; i++) {
        struct ttopic *tt = &t->topics[i];
        tt->last_uncounted = tt->uncounted;
        if (k == 0) {
            continue; /* The baseline. */
        }
        if (tt->records > 0 || tt->bytes > 0) {
            tt->last_busy = k;
            if (tt->ring == NULL) {
                tt->ring = calloc(TRAFFIC_SAMPLES, sizeof *tt->ring);
                /* UNTESTED: ENOMEM only, the topic's traffic then shows as
                 * none. */
            }
        }
        if (tt->ring != NULL && k - tt->last_busy >= TRAFFIC_SAMPLES) {
            free(tt->ring); /* Idle for the whole window. */
            tt->ring = NULL;
        }
        if (tt->ring != NULL) {
            tt->ring[k % TRAFFIC_SAMPLES] =
                (struct slot){tt->records, tt->bytes};
        }
    }
    struct mark *m = t->marks;
    size_t cap = t->cap_marks;
    t->marks = t->next;
    t->cap_marks = t->cap_next;
    t->n_marks = t->n_next;
    t->next = m;
    t->cap_next = cap;
    t->n_next = 0;
    t->seq++;
    t->open = false;
}

uint64_t traffic_samples(const struct traffic *t)
{
    return t->seq;
}

uint64_t traffic_started_ms(const struct traffic *t)
{
    return t->seq > 0 ? t->stamps[0].wall_ms : 0;
}

size_t traffic_uncounted(const struct traffic *t, const char *topic)
{
    const struct ttopic *tt = topic_named(t, topic);
    return tt != NULL ? tt->last_uncounted : 0;
}

/* @n per @ms milliseconds as a rate per second, to two decimals. */
static double per_second(uint64_t n, uint64_t ms)
{
    return round((double)n * 1000.0 / (double)(ms > 0 ? ms : 1) * 100.0) /
           100.0;
}

json_t *traffic_series(const struct traffic *t, const char *topic,
                       uint64_t since_ms)
{
    json_t *list = json_array();
    const struct ttopic *tt = topic_named(t, topic);
    if (list == NULL || tt == NULL || t->seq == 0) {
        return list;
    }
    uint64_t first = tt->since;
    if (t->seq > TRAFFIC_SAMPLES && first < t->seq - TRAFFIC_SAMPLES) {
        first = t->seq - TRAFFIC_SAMPLES;
    }
    for (uint64_t k = first; k < t->seq; k++) {
        const struct stamp *s = &t->stamps[k % TRAFFIC_SAMPLES];
        if (s->wall_ms <= since_ms) {
            continue;
        }
        struct slot v = tt->ring != NULL ? tt->ring[k % TRAFFIC_SAMPLES]
                                         : (struct slot){0, 0};
        json_t *o = json_pack(
            "{s:I,s:I,s:I,s:I,s:f,s:f,s:i,s:i}", "time_ms",
            (json_int_t)s->wall_ms, "interval_ms", (json_int_t)s->interval_ms,
            "records", (json_int_t)v.records, "bytes", (json_int_t)v.bytes,
            "messages_per_s", per_second(v.records, s->interval_ms),
            "bytes_per_s", per_second(v.bytes, s->interval_ms), "bytes_from",
            (int)s->bytes_from, "managers", (int)s->managers);
        if (o == NULL || json_array_append_new(list, o) != 0) {
            json_decref(list); /* UNTESTED: ENOMEM only. */
            return NULL;
        }
    }
    return list;
}
