/*
 * Human output of the client (see render.h).
 *
 * Every function validates the whole body before writing a byte, so a
 * malformed answer never leaves half a table on the screen. Fields the
 * API allows to be null (a leader not yet known, a broker never heard
 * from) print as "-".
 */
#include "render.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rq_err.h"
#include "table.h"

#define CELL 64

/* An integer or null field as text; false if it is neither. */
static bool int_cell(const json_t *o, const char *key, char *out, size_t n)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return true;
    }
    if (v == NULL || json_is_null(v)) {
        snprintf(out, n, "-");
        return true;
    }
    return false;
}

static const char *str_field(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

void render_age(uint64_t ms, char *out, size_t n)
{
    if (ms < 1000) {
        snprintf(out, n, "%" PRIu64 "ms", ms);
    } else if (ms < 100000) {
        snprintf(out, n, "%" PRIu64 ".%" PRIu64 "s", ms / 1000,
                 ms % 1000 / 100);
    } else {
        snprintf(out, n, "%" PRIu64 "s", ms / 1000);
    }
}

/*
 * Prints the list @key of @body, one item at a time with @print, once
 * every item has passed @valid: 0, or RQ_MALFORMED (and nothing printed)
 * for no such list or an item that fails.
 */
static int render_lines(const json_t *body, const char *key,
                        bool (*valid)(const json_t *item),
                        void (*print)(const json_t *item, FILE *f), FILE *f)
{
    const json_t *list = json_object_get(body, key);
    size_t i;
    const json_t *item;

    if (!json_is_array(list)) {
        return RQ_MALFORMED;
    }
    json_array_foreach(list, i, item)
    {
        if (!valid(item)) {
            return RQ_MALFORMED;
        }
    }
    json_array_foreach(list, i, item)
    {
        print(item, f);
    }
    return 0;
}

static bool topic_valid(const json_t *t)
{
    return json_is_string(t);
}

static void topic_print(const json_t *t, FILE *f)
{
    fprintf(f, "%s\n", json_string_value(t));
}

int render_topics(const json_t *body, FILE *f)
{
    return render_lines(body, "topics", topic_valid, topic_print, f);
}

/* "1,2,3" from a list of integers; false if it is not one. */
static bool id_list(const json_t *list, char *out, size_t n)
{
    size_t i, len = 0;
    const json_t *v;

    if (!json_is_array(list)) {
        return false;
    }
    out[0] = '\0';
    json_array_foreach(list, i, v)
    {
        if (!json_is_integer(v)) {
            return false;
        }
        int k = snprintf(out + len, n - len, "%s%" JSON_INTEGER_FORMAT,
                         i > 0 ? "," : "", json_integer_value(v));
        if (k < 0 || (size_t)k >= n - len) {
            return false;
        }
        len += (size_t)k;
    }
    return true;
}

/* The largest known lag of a partition's replicas and how many are known
 * to be caught up ("-" and 0 when no replica has reported). */
static bool replica_lag(const json_t *status, char *lag, size_t lagn,
                        char *sync, size_t syncn)
{
    size_t i, known = 0, caught_up = 0;
    json_int_t worst = 0;
    const json_t *r;

    if (!json_is_array(status)) {
        return false;
    }
    json_array_foreach(status, i, r)
    {
        const json_t *l = json_object_get(r, "lag");
        if (json_is_integer(l)) {
            known++;
            caught_up += json_integer_value(l) == 0;
            if (json_integer_value(l) > worst) {
                worst = json_integer_value(l);
            }
        } else if (!json_is_null(l) && l != NULL) {
            return false;
        }
    }
    if (known == 0) {
        snprintf(lag, lagn, "-");
    } else {
        snprintf(lag, lagn, "%" JSON_INTEGER_FORMAT, worst);
    }
    snprintf(sync, syncn, "%zu/%zu", caught_up, json_array_size(status));
    return true;
}

int render_topic(const json_t *body, FILE *f)
{
    static const char *const headers[] = {
        "PARTITION",      "LEADER", "REPLICAS", "IN-SYNC",
        "HIGH-WATERMARK", "COMMIT", "MAX-LAG"};
    const char *name = str_field(body, "topic");
    const json_t *parts = json_object_get(body, "partitions");
    size_t i;
    const json_t *p;
    int rv = RQ_MALFORMED;

    if (name == NULL || !json_is_array(parts)) {
        return RQ_MALFORMED;
    }
    struct table *t = table_new(7, headers);
    if (t == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (size_t c = 0; c < 7; c++) {
        if (c != 2 && c != 3) {
            table_align_right(t, c);
        }
    }
    json_array_foreach(parts, i, p)
    {
        char id[CELL], leader[CELL], reps[CELL * 4], sync[CELL], hw[CELL],
            commit[CELL], lag[CELL];
        if (!int_cell(p, "partition_id", id, sizeof id) ||
            !int_cell(p, "leader", leader, sizeof leader) ||
            !id_list(json_object_get(p, "replicas"), reps, sizeof reps) ||
            !int_cell(p, "high_watermark", hw, sizeof hw) ||
            !int_cell(p, "commit", commit, sizeof commit) ||
            !replica_lag(json_object_get(p, "replica_status"), lag, sizeof lag,
                         sync, sizeof sync)) {
            goto err_after_table;
        }
        const char *cells[] = {id, leader, reps, sync, hw, commit, lag};
        if (table_add(t, cells) != 0) {
            rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
            goto err_after_table;
        }
    }
    fprintf(f, "topic %s: %zu partition%s\n", name, table_rows(t),
            table_rows(t) == 1 ? "" : "s");
    table_write(t, f);
    rv = 0;
err_after_table:
    table_free(t);
    return rv;
}

/*
 * Writes the list @key of @body as a table of @ncols columns under
 * @headers, those whose bit is set in @right aligned right, one row per
 * item added by @row (0, RQ_MALFORMED or RQ_NOMEM): 0 once written, else
 * the first error, nothing written (RQ_MALFORMED: no such list).
 */
static int render_list(const json_t *body, const char *key, size_t ncols,
                       const char *const *headers, unsigned right,
                       int (*row)(const json_t *item, struct table *t), FILE *f)
{
    const json_t *list = json_object_get(body, key);
    size_t i;
    const json_t *item;
    int rv = 0;

    if (!json_is_array(list)) {
        return RQ_MALFORMED;
    }
    struct table *t = table_new(ncols, headers);
    if (t == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (size_t c = 0; c < ncols; c++) {
        if (right & (1u << c)) {
            table_align_right(t, c);
        }
    }
    json_array_foreach(list, i, item)
    {
        rv = row(item, t);
        if (rv != 0) {
            break;
        }
    }
    if (rv == 0) {
        table_write(t, f);
    }
    table_free(t);
    return rv;
}

static int broker_row(const json_t *b, struct table *t)
{
    char id[CELL], age[CELL], parts[CELL], leads[CELL];
    const char *state = str_field(b, "state");
    const char *http = str_field(b, "http_addr");
    const char *raft = str_field(b, "raft_addr");
    const json_t *hb = json_object_get(b, "heartbeat_age_ms");

    if (!int_cell(b, "id", id, sizeof id) || state == NULL || http == NULL ||
        raft == NULL || !int_cell(b, "partitions", parts, sizeof parts) ||
        !int_cell(b, "leader_of", leads, sizeof leads)) {
        return RQ_MALFORMED;
    }
    if (json_is_integer(hb) && json_integer_value(hb) >= 0) {
        render_age((uint64_t)json_integer_value(hb), age, sizeof age);
    } else if (hb == NULL || json_is_null(hb)) {
        snprintf(age, sizeof age, "-");
    } else {
        return RQ_MALFORMED;
    }
    /* Replicas the managers never placed (DESIGN.md section 17): their
     * group ids, "-" for none (or a manager that does not say). */
    char quarantined[CELL] = "-";
    const json_t *q = json_object_get(b, "quarantined");
    size_t k;
    const json_t *g;
    size_t len = 0;
    if (q != NULL && !json_is_array(q)) {
        return RQ_MALFORMED;
    }
    json_array_foreach(q, k, g)
    {
        if (!json_is_integer(g)) {
            return RQ_MALFORMED;
        }
        int w = snprintf(quarantined + len, sizeof quarantined - len,
                         "%s%" JSON_INTEGER_FORMAT, k > 0 ? "," : "",
                         json_integer_value(g));
        if (w < 0 || (size_t)w >= sizeof quarantined - len) {
            break; /* Cut at the cell's width. */
        }
        len += (size_t)w;
    }
    const char *cells[] = {id,  state, http,  raft,
                           age, parts, leads, quarantined};
    return table_add(t, cells);
}

int render_brokers(const json_t *body, FILE *f)
{
    static const char *const headers[] = {
        "ID",        "STATE",      "HTTP",      "RAFT",
        "HEARTBEAT", "PARTITIONS", "LEADER-OF", "QUARANTINED"};
    /* The numbers: ID, HEARTBEAT, PARTITIONS, LEADER-OF. */
    unsigned right = 1u << 0 | 1u << 4 | 1u << 5 | 1u << 6;
    return render_list(body, "brokers", 8, headers, right, broker_row, f);
}

static int move_row(const json_t *m, struct table *t)
{
    char group[CELL], part[CELL], from[CELL], to[CELL], age[CELL];
    const char *topic = str_field(m, "topic");
    const char *kind = str_field(m, "kind");
    const char *step = str_field(m, "step");
    const json_t *ms = json_object_get(m, "age_ms");
    if (!int_cell(m, "group_id", group, sizeof group) || topic == NULL ||
        !int_cell(m, "partition_id", part, sizeof part) ||
        !int_cell(m, "from", from, sizeof from) ||
        !int_cell(m, "to", to, sizeof to) || kind == NULL || step == NULL ||
        !json_is_integer(ms) || json_integer_value(ms) < 0) {
        return RQ_MALFORMED;
    }
    render_age((uint64_t)json_integer_value(ms), age, sizeof age);
    const char *cells[] = {group, topic, part, kind, from, to, step, age};
    return table_add(t, cells);
}

int render_moves(const json_t *body, FILE *f)
{
    static const char *const headers[] = {"GROUP", "TOPIC", "PARTITION", "KIND",
                                          "FROM",  "TO",    "STEP",      "AGE"};
    const json_t *list = json_object_get(body, "moves");
    if (json_is_array(list) && json_array_size(list) == 0) {
        fprintf(f, "no moves under way\n");
        return 0;
    }
    /* The numbers: GROUP, PARTITION, FROM, TO, AGE. */
    unsigned right = 1u << 0 | 1u << 2 | 1u << 4 | 1u << 5 | 1u << 7;
    return render_list(body, "moves", 8, headers, right, move_row, f);
}

static int token_row(const json_t *tk, struct table *t)
{
    char id[CELL], created[CELL];
    char grants[4096] = "";
    size_t len = 0;
    const char *name = str_field(tk, "name");
    const json_t *gs = json_object_get(tk, "grants");
    const json_t *ms = json_object_get(tk, "created_ms");
    size_t k;
    const json_t *g;

    if (!int_cell(tk, "id", id, sizeof id) || name == NULL ||
        !json_is_array(gs) || !json_is_integer(ms) ||
        json_integer_value(ms) < 0) {
        return RQ_MALFORMED;
    }
    json_array_foreach(gs, k, g)
    {
        if (!json_is_string(g)) {
            return RQ_MALFORMED;
        }
        int w = snprintf(grants + len, sizeof grants - len, "%s%s",
                         k > 0 ? "," : "", json_string_value(g));
        len += w > 0 && (size_t)w < sizeof grants - len
                   ? (size_t)w
                   : sizeof grants - len - 1;
    }
    time_t sec = (time_t)(json_integer_value(ms) / 1000);
    struct tm tm;
    if (gmtime_r(&sec, &tm) == NULL ||
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        return RQ_MALFORMED;
    }
    const char *cells[] = {id, name, grants, created};
    return table_add(t, cells);
}

int render_tokens(const json_t *body, FILE *f)
{
    static const char *const headers[] = {"ID", "NAME", "GRANTS", "CREATED"};
    return render_list(body, "tokens", 4, headers, 1u << 0, token_row, f);
}

static int group_row(const json_t *g, struct table *t)
{
    char gen[CELL], members[CELL];
    const char *name = str_field(g, "group");
    const char *topic = str_field(g, "topic");
    if (name == NULL || topic == NULL ||
        !int_cell(g, "generation", gen, sizeof gen) ||
        !int_cell(g, "members", members, sizeof members)) {
        return RQ_MALFORMED;
    }
    const char *cells[] = {name, topic, gen, members};
    return table_add(t, cells);
}

int render_groups(const json_t *body, FILE *f)
{
    static const char *const headers[] = {"GROUP", "TOPIC", "GENERATION",
                                          "MEMBERS"};
    return render_list(body, "groups", 4, headers, 1u << 2 | 1u << 3, group_row,
                       f);
}

static int member_row(const json_t *m, struct table *t)
{
    char parts[CELL * 4], age[CELL];
    const char *id = str_field(m, "member_id");
    const json_t *ago = json_object_get(m, "last_heartbeat_ms_ago");
    if (id == NULL ||
        !id_list(json_object_get(m, "partitions"), parts, sizeof parts) ||
        !json_is_integer(ago) || json_integer_value(ago) < 0) {
        return RQ_MALFORMED;
    }
    render_age((uint64_t)json_integer_value(ago), age, sizeof age);
    const char *cells[] = {id, parts[0] != '\0' ? parts : "-", age};
    return table_add(t, cells);
}

static int group_offset_row(const json_t *o, struct table *t)
{
    char p[CELL], committed[CELL], hw[CELL], lag[CELL];
    if (!int_cell(o, "partition_id", p, sizeof p) ||
        !int_cell(o, "committed", committed, sizeof committed) ||
        !int_cell(o, "high_watermark", hw, sizeof hw) ||
        !int_cell(o, "lag", lag, sizeof lag)) {
        return RQ_MALFORMED;
    }
    const char *cells[] = {p, committed, hw, lag};
    return table_add(t, cells);
}

int render_group(const json_t *body, FILE *f)
{
    static const char *const mheaders[] = {"MEMBER", "PARTITIONS",
                                           "LAST-HEARD"};
    static const char *const oheaders[] = {"PARTITION", "COMMITTED",
                                           "HIGH-WATERMARK", "LAG"};
    char gen[CELL];
    const char *name = str_field(body, "group");
    const char *topic = str_field(body, "topic");
    const json_t *members = json_object_get(body, "members");
    if (name == NULL || topic == NULL || !json_is_array(members) ||
        !int_cell(body, "generation", gen, sizeof gen)) {
        return RQ_MALFORMED;
    }
    fprintf(f, "group %s on topic %s: generation %s, %zu member%s\n", name,
            topic, gen, json_array_size(members),
            json_array_size(members) == 1 ? "" : "s");
    int rv =
        json_array_size(members) == 0
            ? 0
            : render_list(body, "members", 3, mheaders, 1u << 2, member_row, f);
    if (rv == 0) {
        fputc('\n', f);
        rv =
            render_list(body, "offsets", 4, oheaders, 0xf, group_offset_row, f);
    }
    return rv;
}

int render_managers(const json_t *list, const struct render_manager *views,
                    size_t n, FILE *f)
{
    static const char *const headers[] = {"ID",   "ROLE",   "HTTP",    "RAFT",
                                          "TERM", "COMMIT", "APPLIED", "READY"};
    const json_t *roster = json_object_get(list, "managers");
    const json_t *leader = json_object_get(list, "leader");
    const json_t *term = json_object_get(list, "term");
    size_t i;
    const json_t *m;
    int rv = RQ_MALFORMED;

    if (!json_is_array(roster) || json_array_size(roster) != n ||
        !json_is_integer(term) ||
        !(json_is_integer(leader) || json_is_null(leader))) {
        return RQ_MALFORMED;
    }
    struct table *t = table_new(8, headers);
    if (t == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    table_align_right(t, 0);
    table_align_right(t, 4);
    table_align_right(t, 5);
    table_align_right(t, 6);
    json_array_foreach(roster, i, m)
    {
        char id[CELL], mterm[CELL] = "-", commit[CELL] = "-",
                       applied[CELL] = "-";
        const char *http = str_field(m, "http_addr");
        const char *raft = str_field(m, "raft_addr");
        const char *role = "unreachable";
        if (!int_cell(m, "id", id, sizeof id) || raft == NULL) {
            goto err_after_table;
        }
        const json_t *self = views[i].self;
        if (self != NULL) {
            const json_t *sl = json_object_get(self, "leader");
            const json_t *ss = json_object_get(self, "self");
            if (!int_cell(self, "term", mterm, sizeof mterm) ||
                !int_cell(self, "commit", commit, sizeof commit) ||
                !int_cell(self, "applied", applied, sizeof applied) ||
                !json_is_integer(ss)) {
                goto err_after_table;
            }
            if (json_is_integer(sl) &&
                json_integer_value(sl) == json_integer_value(ss)) {
                role = "leader";
            } else if (json_is_integer(sl)) {
                role = "follower";
            } else {
                role = "no-leader";
            }
        }
        const char *cells[] = {
            id,      role,
            http,    raft,
            mterm,   commit,
            applied, self == NULL ? "-" : views[i].ready ? "yes" : "no"};
        if (table_add(t, cells) != 0) {
            rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
            goto err_after_table;
        }
    }
    if (json_is_integer(leader)) {
        fprintf(f,
                "leader: manager %" JSON_INTEGER_FORMAT
                " (term %" JSON_INTEGER_FORMAT ")\n",
                json_integer_value(leader), json_integer_value(term));
    } else {
        fprintf(f, "leader: none known (term %" JSON_INTEGER_FORMAT ")\n",
                json_integer_value(term));
    }
    table_write(t, f);
    rv = 0;
err_after_table:
    table_free(t);
    return rv;
}

static bool offset_valid(const json_t *o)
{
    return json_is_integer(json_object_get(o, "partition_id")) &&
           json_is_integer(json_object_get(o, "offset"));
}

static void offset_print(const json_t *o, FILE *f)
{
    fprintf(f,
            "partition %" JSON_INTEGER_FORMAT " offset %" JSON_INTEGER_FORMAT
            "\n",
            json_integer_value(json_object_get(o, "partition_id")),
            json_integer_value(json_object_get(o, "offset")));
}

int render_offsets(const json_t *body, FILE *f)
{
    return render_lines(body, "offsets", offset_valid, offset_print, f);
}

static bool record_valid(const json_t *r)
{
    return json_is_string(json_object_get(r, "value"));
}

int render_records(const json_t *body, FILE *f, uint64_t *n)
{
    return render_records_as(body, NULL, 0, f, n);
}

int render_format_check(const char *fmt, char *why, size_t whyn)
{
    if (strcmp(fmt, "json") == 0) {
        return 0;
    }
    for (const char *c = fmt; *c != '\0'; c++) {
        if (*c == '%' && strchr("vkopt%", c[1] == '\0' ? '?' : c[1]) == NULL) {
            rq_why(why, whyn,
                   "--format: '%%%c' is not one of %%v %%k %%o %%p %%t %%%%",
                   c[1] == '\0' ? ' ' : c[1]);
            return RQ_INVALID;
        }
        if (*c == '\\' && strchr("nt\\", c[1] == '\0' ? '?' : c[1]) == NULL) {
            rq_why(why, whyn, "--format: '\\%c' is not one of \\n \\t \\\\",
                   c[1] == '\0' ? ' ' : c[1]);
            return RQ_INVALID;
        }
        if (*c == '%' || *c == '\\') {
            c++;
        }
    }
    return 0;
}

/* A string or integer field of @rec as text (nothing when absent). */
static void put_field(const json_t *rec, const char *name, FILE *f)
{
    const json_t *v = json_object_get(rec, name);
    if (json_is_string(v)) {
        fwrite(json_string_value(v), 1, json_string_length(v), f);
    } else if (json_is_integer(v)) {
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    }
}

void render_record_as(const json_t *rec, const char *fmt, uint64_t partition,
                      FILE *f)
{
    if (fmt == NULL) {
        put_field(rec, "value", f);
        fputc('\n', f);
        return;
    }
    /* A group's records name their partitions. */
    const json_t *p = json_object_get(rec, "partition_id");
    if (json_is_integer(p) && json_integer_value(p) >= 0) {
        partition = (uint64_t)json_integer_value(p);
    }
    if (strcmp(fmt, "json") == 0) {
        const char *names[] = {"offset", "key", "timestamp_ms", "value"};
        json_t *o = json_pack("{s:I}", "partition_id", (json_int_t)partition);
        for (size_t i = 0; o != NULL && i < sizeof names / sizeof names[0];
             i++) {
            json_t *v = json_object_get(rec, names[i]);
            json_object_set_new(o, names[i],
                                v != NULL ? json_incref(v) : json_null());
        }
        char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        if (text != NULL) {
            fprintf(f, "%s\n", text);
        }
        free(text);
        json_decref(o);
        return;
    }
    for (const char *c = fmt; *c != '\0'; c++) {
        if (*c == '%' && c[1] != '\0') {
            c++;
            switch (*c) {
                case 'v':
                    put_field(rec, "value", f);
                    break;
                case 'k':
                    put_field(rec, "key", f);
                    break;
                case 'o':
                    put_field(rec, "offset", f);
                    break;
                case 't':
                    put_field(rec, "timestamp_ms", f);
                    break;
                case 'p':
                    fprintf(f, "%" PRIu64, partition);
                    break;
                default:
                    fputc(*c, f); /* "%%" */
            }
        } else if (*c == '\\' && c[1] != '\0') {
            c++;
            fputc(*c == 'n' ? '\n' : *c == 't' ? '\t' : *c, f);
        } else {
            fputc(*c, f);
        }
    }
}

int render_records_as(const json_t *body, const char *fmt, uint64_t partition,
                      FILE *f, uint64_t *n)
{
    const json_t *list = json_object_get(body, "records");
    size_t i;
    const json_t *r;
    *n = 0;
    if (!json_is_array(list)) {
        return RQ_MALFORMED;
    }
    json_array_foreach(list, i, r)
    {
        if (!record_valid(r)) {
            return RQ_MALFORMED;
        }
    }
    json_array_foreach(list, i, r)
    {
        render_record_as(r, fmt, partition, f);
    }
    *n = json_array_size(list);
    return 0;
}
