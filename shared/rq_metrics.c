/*
 * The metrics registry and its text rendering (contract in rq_metrics.h).
 *
 * A child is one allocation: the struct, then a histogram's bucket counts,
 * then its label values back to back. A family finds its children by the
 * hash of their label values (chained buckets, doubled when they average
 * more than one child) and keeps them in a list in creation order, which
 * is the order they are rendered in. Nothing here does I/O; the caller
 * serves the rendered bytes.
 */
#include "rq_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"
#include "rq_list.h"

#define TABLE_MIN 16

struct rq_metric {
    struct rq_metric_family *f;
    struct rq_list link;     /* In f->children, creation order. */
    struct rq_metric *hnext; /* In its hash bucket. */
    uint64_t hash;
    unsigned refs;
    double value; /* A counter's or gauge's value; a histogram's sum. */
    uint64_t count;
    const char *values[RQ_METRIC_LABELS_MAX]; /* Into the allocation. */
    uint64_t buckets[];                       /* Histograms: n_buckets + 1. */
};

struct rq_metric_family {
    struct rq_list link; /* In the registry, registration order. */
    enum rq_metric_type type;
    char *name;
    char *help;
    char *labels[RQ_METRIC_LABELS_MAX];
    size_t n_labels;
    double bounds[RQ_METRIC_BUCKETS_MAX];
    size_t n_bounds;
    struct rq_list children;
    size_t n_children;
    struct rq_metric **table;
    size_t table_size;      /* A power of two. */
    struct rq_metric *only; /* The child of a family without labels. */
};

struct hook {
    void (*cb)(void *data);
    void *data;
};

struct rq_metrics {
    struct rq_list families;
    struct hook hooks[RQ_METRIC_HOOKS_MAX];
    size_t n_hooks;
};

/* ---- Names ---- */

static bool name_valid(const char *s, bool colon)
{
    if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9')) {
        return false;
    }
    for (; *s != '\0'; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || (colon && c == ':');
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool def_valid(const struct rq_metric_def *d, size_t *n_labels)
{
    size_t n = 0;

    if (!name_valid(d->name, true) || d->type > RQ_METRIC_HISTOGRAM) {
        return false;
    }
    while (n < RQ_METRIC_LABELS_MAX && d->labels[n] != NULL) {
        n++;
    }
    for (size_t i = n; i < RQ_METRIC_LABELS_MAX; i++) {
        if (d->labels[i] != NULL) {
            return false; /* A gap in the label names. */
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *l = d->labels[i];
        if (!name_valid(l, false) || strncmp(l, "__", 2) == 0 ||
            (d->type == RQ_METRIC_HISTOGRAM && strcmp(l, "le") == 0)) {
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d->labels[j], l) == 0) {
                return false;
            }
        }
    }
    if (d->type != RQ_METRIC_HISTOGRAM) {
        *n_labels = n;
        return d->n_buckets == 0;
    }
    if (d->n_buckets == 0 || d->n_buckets > RQ_METRIC_BUCKETS_MAX ||
        d->buckets == NULL) {
        return false;
    }
    for (size_t i = 0; i < d->n_buckets; i++) {
        if (!isfinite(d->buckets[i]) ||
            (i > 0 && d->buckets[i] <= d->buckets[i - 1])) {
            return false;
        }
    }
    *n_labels = n;
    return true;
}

/* Whether family @f was registered from a definition equal to @d. */
static bool same_def(const struct rq_metric_family *f,
                     const struct rq_metric_def *d, size_t n_labels)
{
    if (f->type != d->type || f->n_labels != n_labels ||
        f->n_bounds != d->n_buckets) {
        return false;
    }
    for (size_t i = 0; i < n_labels; i++) {
        if (strcmp(f->labels[i], d->labels[i]) != 0) {
            return false;
        }
    }
    for (size_t i = 0; i < f->n_bounds; i++) {
        if (f->bounds[i] != d->buckets[i]) {
            return false;
        }
    }
    return true;
}

/* ---- Children ---- */

/* FNV-1a over the values, each followed by a byte no UTF-8 text holds. */
static uint64_t values_hash(const char *const *values, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        const char *s = values != NULL && values[i] != NULL ? values[i] : "";
        for (; *s != '\0'; s++) {
            h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
        }
        h = (h ^ 0xff) * 0x100000001b3ull;
    }
    return h;
}

static bool values_equal(const struct rq_metric *c, const char *const *values,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = values != NULL && values[i] != NULL ? values[i] : "";
        if (strcmp(c->values[i], s) != 0) {
            return false;
        }
    }
    return true;
}

static void table_unlink(struct rq_metric_family *f, struct rq_metric *c)
{
    struct rq_metric **p = &f->table[c->hash & (f->table_size - 1)];
    while (*p != c) {
        p = &(*p)->hnext;
    }
    *p = c->hnext;
}

/* Doubles the table; keeps the old one if memory is short (lookups stay
 * correct, only slower). */
static void table_grow(struct rq_metric_family *f)
{
    size_t size = f->table_size * 2;
    struct rq_metric **t = calloc(size, sizeof *t);
    if (t == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < f->table_size; i++) {
        struct rq_metric *c = f->table[i];
        while (c != NULL) {
            struct rq_metric *next = c->hnext;
            c->hnext = t[c->hash & (size - 1)];
            t[c->hash & (size - 1)] = c;
            c = next;
        }
    }
    free(f->table);
    f->table = t;
    f->table_size = size;
}

static void child_free(struct rq_metric *c)
{
    struct rq_metric_family *f = c->f;
    if (f->only == c) {
        f->only = NULL;
    }
    table_unlink(f, c);
    rq_list_remove(&c->link);
    f->n_children--;
    free(c);
}

static struct rq_metric *child_new(struct rq_metric_family *f,
                                   const char *const *values, uint64_t hash)
{
    size_t nb = f->type == RQ_METRIC_HISTOGRAM ? f->n_bounds + 1 : 0;
    size_t text = 0;
    for (size_t i = 0; i < f->n_labels; i++) {
        text += strlen(values[i] != NULL ? values[i] : "") + 1;
    }
    struct rq_metric *c =
        calloc(1, sizeof *c + nb * sizeof c->buckets[0] + text);
    if (c == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    char *p = (char *)&c->buckets[nb];
    for (size_t i = 0; i < f->n_labels; i++) {
        const char *s = values[i] != NULL ? values[i] : "";
        size_t len = strlen(s) + 1;
        memcpy(p, s, len);
        c->values[i] = p;
        p += len;
    }
    c->f = f;
    c->hash = hash;
    size_t slot = hash & (f->table_size - 1);
    c->hnext = f->table[slot];
    f->table[slot] = c;
    rq_list_push(&f->children, &c->link);
    f->n_children++;
    if (f->n_children > f->table_size) {
        table_grow(f);
    }
    return c;
}

struct rq_metric *rq_metric_get(struct rq_metric_family *f,
                                const char *const *values)
{
    if (f == NULL) {
        return NULL;
    }
    uint64_t h = values_hash(values, f->n_labels);
    struct rq_metric *c = f->table[h & (f->table_size - 1)];
    while (c != NULL &&
           (c->hash != h || !values_equal(c, values, f->n_labels))) {
        c = c->hnext;
    }
    if (c == NULL) {
        c = child_new(f, values, h);
        if (c == NULL) {
            return NULL;
        }
        if (f->n_labels == 0) {
            f->only = c; /* Back after a clear. */
        }
    }
    c->refs++;
    return c;
}

void rq_metric_put(struct rq_metric *c)
{
    if (c == NULL) {
        return;
    }
    if (c->refs > 0 && --c->refs == 0) {
        child_free(c);
    }
}

struct rq_metric *rq_metric_family_child(struct rq_metric_family *f)
{
    return f != NULL ? f->only : NULL;
}

void rq_metric_family_clear(struct rq_metric_family *f)
{
    if (f == NULL) {
        return;
    }
    while (!rq_list_empty(&f->children)) {
        child_free(RQ_LIST_ENTRY(f->children.next, struct rq_metric, link));
    }
}

size_t rq_metric_family_size(const struct rq_metric_family *f)
{
    return f != NULL ? f->n_children : 0;
}

/* ---- Updates ---- */

void rq_metric_add(struct rq_metric *c, double v)
{
    if (c != NULL) {
        c->value += v;
    }
}

void rq_metric_inc(struct rq_metric *c)
{
    if (c != NULL) {
        c->value += 1;
    }
}

void rq_metric_set(struct rq_metric *c, double v)
{
    if (c != NULL) {
        c->value = v;
    }
}

void rq_metric_observe(struct rq_metric *c, double v)
{
    if (c == NULL || isnan(v) || c->f->type != RQ_METRIC_HISTOGRAM) {
        return;
    }
    const double *b = c->f->bounds;
    size_t n = c->f->n_bounds;
    size_t i = 0;
    while (i < n && v > b[i]) {
        i++;
    }
    c->buckets[i]++;
    c->count++;
    c->value += v;
}

double rq_metric_value(const struct rq_metric *c)
{
    return c != NULL ? c->value : 0;
}

uint64_t rq_metric_count(const struct rq_metric *c)
{
    return c != NULL && c->f->type == RQ_METRIC_HISTOGRAM ? c->count : 0;
}

/* ---- Registry ---- */

int rq_metrics_new(struct rq_metrics **out)
{
    struct rq_metrics *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rq_list_init(&m->families);
    *out = m;
    return 0;
}

static void family_free(struct rq_metric_family *f)
{
    while (!rq_list_empty(&f->children)) {
        child_free(RQ_LIST_ENTRY(f->children.next, struct rq_metric, link));
    }
    rq_list_remove(&f->link);
    for (size_t i = 0; i < f->n_labels; i++) {
        free(f->labels[i]);
    }
    free(f->table);
    free(f->name);
    free(f->help);
    free(f);
}

void rq_metrics_free(struct rq_metrics *m)
{
    if (m == NULL) {
        return;
    }
    while (!rq_list_empty(&m->families)) {
        family_free(
            RQ_LIST_ENTRY(m->families.next, struct rq_metric_family, link));
    }
    free(m);
}

static struct rq_metric_family *family_find(struct rq_metrics *m,
                                            const char *name)
{
    for (struct rq_list *e = m->families.next; e != &m->families; e = e->next) {
        struct rq_metric_family *f =
            RQ_LIST_ENTRY(e, struct rq_metric_family, link);
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

struct rq_metric_family *rq_metrics_add(struct rq_metrics *m,
                                        const struct rq_metric_def *def)
{
    size_t n_labels;
    struct rq_metric_family *f;

    if (m == NULL || !def_valid(def, &n_labels)) {
        return NULL;
    }
    f = family_find(m, def->name);
    if (f != NULL) {
        return same_def(f, def, n_labels) ? f : NULL;
    }
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    rq_list_init(&f->children);
    rq_list_push(&m->families, &f->link);
    f->type = def->type;
    f->name = strdup(def->name);
    f->help = strdup(def->help != NULL ? def->help : "");
    f->table_size = TABLE_MIN;
    f->table = calloc(f->table_size, sizeof *f->table);
    bool ok = f->name != NULL && f->help != NULL && f->table != NULL;
    for (size_t i = 0; i < n_labels; i++) {
        f->labels[i] = strdup(def->labels[i]);
        ok = ok && f->labels[i] != NULL;
        f->n_labels = i + 1; /* Freed by family_free from here on. */
    }
    if (def->type == RQ_METRIC_HISTOGRAM) {
        memcpy(f->bounds, def->buckets, def->n_buckets * sizeof f->bounds[0]);
        f->n_bounds = def->n_buckets;
    }
    if (ok && n_labels == 0) {
        f->only = rq_metric_get(f, NULL);
        ok = f->only != NULL;
    }
    if (!ok) {
        family_free(f); /* UNTESTED: ENOMEM only. */
        return NULL;
    }
    return f;
}

int rq_metrics_on_collect(struct rq_metrics *m, void (*cb)(void *data),
                          void *data)
{
    if (m->n_hooks == RQ_METRIC_HOOKS_MAX) {
        return RQ_NOMEM;
    }
    m->hooks[m->n_hooks++] = (struct hook){.cb = cb, .data = data};
    return 0;
}

void rq_metrics_off_collect(struct rq_metrics *m, void (*cb)(void *data),
                            void *data)
{
    for (size_t i = 0; i < m->n_hooks; i++) {
        if (m->hooks[i].cb == cb && m->hooks[i].data == data) {
            memmove(&m->hooks[i], &m->hooks[i + 1],
                    (m->n_hooks - i - 1) * sizeof m->hooks[0]);
            m->n_hooks--;
            return;
        }
    }
}

/* ---- Rendering ---- */

void rq_metrics_format_value(double v, char *buf, size_t n)
{
    if (isnan(v)) {
        snprintf(buf, n, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(buf, n, "0"); /* Also -0. */
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, n, "%.0f", v);
    } else {
        /* The fewest digits that read back as the same double. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, n, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) {
                break;
            }
        }
    }
}

static void put_str(struct rq_buf *out, const char *s)
{
    rq_buf_put_bytes(out, s, strlen(s));
}

void rq_metrics_escape_label(struct rq_buf *out, const char *s)
{
    const char *run = s;
    for (; *s != '\0'; s++) {
        const char *esc = *s == '\\'   ? "\\\\"
                          : *s == '"'  ? "\\\""
                          : *s == '\n' ? "\\n"
                                       : NULL;
        if (esc != NULL) {
            rq_buf_put_bytes(out, run, (size_t)(s - run));
            put_str(out, esc);
            run = s + 1;
        }
    }
    rq_buf_put_bytes(out, run, (size_t)(s - run));
}

static void put_help(struct rq_buf *out, const char *s)
{
    const char *run = s;
    for (; *s != '\0'; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : NULL;
        if (esc != NULL) {
            rq_buf_put_bytes(out, run, (size_t)(s - run));
            put_str(out, esc);
            run = s + 1;
        }
    }
    rq_buf_put_bytes(out, run, (size_t)(s - run));
}

static void put_value(struct rq_buf *out, double v)
{
    char text[40];
    rq_metrics_format_value(v, text, sizeof text);
    put_str(out, text);
}

/* name{labels[,le="..."]} value\n; @suffix follows the family's name. */
static void put_sample(struct rq_buf *out, const struct rq_metric *c,
                       const char *suffix, const char *le, double v)
{
    const struct rq_metric_family *f = c->f;
    put_str(out, f->name);
    put_str(out, suffix);
    if (f->n_labels > 0 || le != NULL) {
        rq_buf_put_u8(out, '{');
        for (size_t i = 0; i < f->n_labels; i++) {
            if (i > 0) {
                rq_buf_put_u8(out, ',');
            }
            put_str(out, f->labels[i]);
            put_str(out, "=\"");
            rq_metrics_escape_label(out, c->values[i]);
            rq_buf_put_u8(out, '"');
        }
        if (le != NULL) {
            put_str(out, f->n_labels > 0 ? ",le=\"" : "le=\"");
            put_str(out, le);
            rq_buf_put_u8(out, '"');
        }
        rq_buf_put_u8(out, '}');
    }
    rq_buf_put_u8(out, ' ');
    put_value(out, v);
    rq_buf_put_u8(out, '\n');
}

static void render_family(const struct rq_metric_family *f, struct rq_buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};

    if (f->n_children == 0) {
        return;
    }
    put_str(out, "# HELP ");
    put_str(out, f->name);
    rq_buf_put_u8(out, ' ');
    put_help(out, f->help);
    put_str(out, "\n# TYPE ");
    put_str(out, f->name);
    rq_buf_put_u8(out, ' ');
    put_str(out, type_names[f->type]);
    rq_buf_put_u8(out, '\n');
    for (const struct rq_list *e = f->children.next; e != &f->children;
         e = e->next) {
        const struct rq_metric *c =
            RQ_LIST_ENTRY(e, const struct rq_metric, link);
        if (f->type != RQ_METRIC_HISTOGRAM) {
            put_sample(out, c, "", NULL, c->value);
            continue;
        }
        uint64_t cumulative = 0;
        char le[40];
        for (size_t i = 0; i <= f->n_bounds; i++) {
            cumulative += c->buckets[i];
            if (i < f->n_bounds) {
                rq_metrics_format_value(f->bounds[i], le, sizeof le);
            } else {
                snprintf(le, sizeof le, "+Inf");
            }
            put_sample(out, c, "_bucket", le, (double)cumulative);
        }
        put_sample(out, c, "_sum", NULL, c->value);
        put_sample(out, c, "_count", NULL, (double)c->count);
    }
}

int rq_metrics_render(struct rq_metrics *m, struct rq_buf *out)
{
    for (size_t i = 0; i < m->n_hooks; i++) {
        m->hooks[i].cb(m->hooks[i].data);
    }
    for (const struct rq_list *e = m->families.next; e != &m->families;
         e = e->next) {
        render_family(RQ_LIST_ENTRY(e, const struct rq_metric_family, link),
                      out);
    }
    return out->err;
}
