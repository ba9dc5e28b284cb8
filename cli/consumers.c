/*
 * The consumer commands (see consumers.h).
 */
#include "consumers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "position.h"
#include "table.h"
#include "url.h"

static void offsets_url(struct url *u, uint64_t id)
{
    char cid[24];
    snprintf(cid, sizeof cid, "%" PRIu64, id);
    url_init(u, "");
    url_path(u, "/v1/consumers/");
    url_segment(u, cid);
    url_path(u, "/offsets");
}

/* A lag cell: the number, or "?" while unknown. */
static const char *lag_cell(const json_t *lag, char *buf, size_t n)
{
    if (!json_is_integer(lag)) {
        return "?";
    }
    snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(lag));
    return buf;
}

static int render_list(const json_t *body, FILE *f)
{
    static const char *const head[] = {"CONSUMER", "TOPIC", "PARTITION", "LAG"};
    json_t *list = json_object_get(body, "consumers");
    if (!json_is_array(list)) {
        return -1;
    }
    struct table *t = table_new(4, head);
    table_align_right(t, 0);
    table_align_right(t, 3);
    size_t i;
    json_t *row;
    json_array_foreach(list, i, row)
    {
        char lag[24];
        json_t *p = json_object_get(row, "partition_id");
        char part[16] = "all";
        if (json_is_integer(p)) {
            snprintf(part, sizeof part, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(p));
        }
        table_addf(t, "%" JSON_INTEGER_FORMAT "\t%s\t%s\t%s",
                   json_integer_value(json_object_get(row, "consumer_id")),
                   json_string_value(json_object_get(row, "topic")), part,
                   lag_cell(json_object_get(row, "lag"), lag, sizeof lag));
    }
    table_write(t, f);
    table_free(t);
    json_int_t omitted =
        json_integer_value(json_object_get(body, "omitted_positions"));
    if (omitted > 0) {
        fprintf(f,
                "(%" JSON_INTEGER_FORMAT
                " positions past the first "
                "100000 not shown)\n",
                omitted);
    }
    return 0;
}

static int render_offsets_table(const json_t *body, FILE *f)
{
    static const char *const head[] = {"PARTITION", "OFFSET", "LAG"};
    json_t *list = json_object_get(body, "offsets");
    if (!json_is_array(list)) {
        return -1;
    }
    struct table *t = table_new(3, head);
    for (size_t k = 0; k < 3; k++) {
        table_align_right(t, k);
    }
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        table_addf(t,
                   "%" JSON_INTEGER_FORMAT "\t%" JSON_INTEGER_FORMAT
                   "\t%" JSON_INTEGER_FORMAT,
                   json_integer_value(json_object_get(o, "partition_id")),
                   json_integer_value(json_object_get(o, "offset")),
                   json_integer_value(json_object_get(o, "lag")));
    }
    table_write(t, f);
    table_free(t);
    return 0;
}

static int list(const struct cmdline *cl, struct mclient *c)
{
    struct url u;
    struct mclient_resp r;
    url_init(&u, "");
    url_path(&u, "/admin/consumers");
    if (cl->topic != NULL) {
        url_query(&u, "topic", cl->topic);
    }
    int code = commands_call(c, "GET", &u, NULL, &r);
    if (code != CLI_OK) {
        return code;
    }
    if (cl->json) {
        commands_print_json(r.body);
    } else if (render_list(r.body, stdout) != 0) {
        fprintf(stderr, "raftq: %s answered something unexpected\n", r.base);
        code = CLI_REFUSED;
    }
    mclient_resp_clear(&r);
    return code;
}

/* The consumer's row of GET /admin/consumers (a new reference), or NULL
 * after saying why. */
static json_t *listed(struct mclient *c, uint64_t id, const char *topic,
                      int *code)
{
    struct url u;
    struct mclient_resp r;
    url_init(&u, "");
    url_path(&u, "/admin/consumers");
    url_query(&u, "topic", topic);
    *code = commands_call(c, "GET", &u, NULL, &r);
    if (*code != CLI_OK) {
        return NULL;
    }
    json_t *found = NULL;
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(r.body, "consumers"), i, row)
    {
        if (json_integer_value(json_object_get(row, "consumer_id")) ==
            (json_int_t)id) {
            found = json_incref(row); /* Outlives the answer. */
        }
    }
    mclient_resp_clear(&r);
    if (found == NULL) {
        fprintf(stderr, "raftq: consumer %" PRIu64 " is not listed\n", id);
        *code = CLI_REFUSED;
    }
    return found;
}

static int describe(const struct cmdline *cl, struct mclient *c, bool header)
{
    struct url u;
    struct mclient_resp r;
    offsets_url(&u, cl->consumer);
    int code = commands_call(c, "GET", &u, NULL, &r);
    if (code != CLI_OK) {
        return code;
    }
    const char *topic = json_string_value(json_object_get(r.body, "topic"));
    json_t *row = NULL;
    if (header && topic != NULL) {
        row = listed(c, cl->consumer, topic, &code);
    }
    if (code == CLI_OK && cl->json) {
        if (row != NULL) {
            json_object_set(r.body, "partition_id",
                            json_object_get(row, "partition_id"));
        }
        commands_print_json(r.body);
    } else if (code == CLI_OK) {
        if (row != NULL) {
            char lag[24];
            json_t *p = json_object_get(row, "partition_id");
            if (json_is_integer(p)) {
                printf("consumer %" PRIu64
                       ": topic %s, partition %" JSON_INTEGER_FORMAT
                       ", lag %s\n",
                       cl->consumer, topic, json_integer_value(p),
                       lag_cell(json_object_get(row, "lag"), lag, sizeof lag));
            } else {
                printf("consumer %" PRIu64
                       ": topic %s, every partition, lag %s\n",
                       cl->consumer, topic,
                       lag_cell(json_object_get(row, "lag"), lag, sizeof lag));
            }
        }
        if (render_offsets_table(r.body, stdout) != 0) {
            fprintf(stderr, "raftq: %s answered something unexpected\n",
                    r.base);
            code = CLI_REFUSED;
        }
    }
    json_decref(row);
    mclient_resp_clear(&r);
    return code;
}

int consumers_move(struct mclient *c, uint64_t id, const struct cmdline_pos *to,
                   bool has_partition, uint32_t partition, json_t **moved)
{
    struct url u;
    struct mclient_resp r;
    offsets_url(&u, id);
    int code = commands_call(c, "GET", &u, NULL, &r);
    if (code != CLI_OK) {
        return code;
    }
    const char *topic = json_string_value(json_object_get(r.body, "topic"));
    json_t *moves = json_array();
    json_t *list = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(r.body, "offsets"), i, o)
    {
        json_int_t p = json_integer_value(json_object_get(o, "partition_id"));
        json_int_t off = json_integer_value(json_object_get(o, "offset"));
        json_int_t lag = json_integer_value(json_object_get(o, "lag"));
        if (has_partition && p != (json_int_t)partition) {
            continue;
        }
        uint64_t at = 0;
        if (to->kind == CMDLINE_POS_LATEST) {
            at = (uint64_t)(off + lag); /* The high watermark it was read at. */
        } else if (topic != NULL) {
            code = position_resolve(c, topic, (uint32_t)p, to, &at);
            if (code != CLI_OK) {
                break;
            }
        }
        json_array_append_new(moves, json_pack("{s:I,s:I}", "partition_id", p,
                                               "offset", (json_int_t)at));
        json_array_append_new(
            list, json_pack("{s:I,s:I,s:I}", "partition_id", p, "offset",
                            (json_int_t)at, "was", off));
    }
    mclient_resp_clear(&r);
    if (code == CLI_OK && json_array_size(moves) == 0) {
        fprintf(stderr,
                "raftq: consumer %" PRIu64 " reads no partition %" PRIu32 "\n",
                id, partition);
        code = CLI_REFUSED;
    }
    if (code == CLI_OK) {
        json_t *body = json_pack("{s:O}", "offsets", moves);
        code = commands_call(c, "POST", &u, body, &r);
        json_decref(body);
        if (code == CLI_OK) {
            mclient_resp_clear(&r);
        }
    }
    json_decref(moves);
    if (code == CLI_OK && moved != NULL) {
        *moved = list;
    } else {
        json_decref(list);
    }
    return code;
}

static int reset(const struct cmdline *cl, struct mclient *c)
{
    json_t *moved;
    int code = consumers_move(c, cl->consumer, &cl->from, cl->has_partition,
                              cl->partition, &moved);
    if (code != CLI_OK) {
        return code;
    }
    if (cl->json) {
        json_t *answer =
            json_pack("{s:s,s:O}", "status", "success", "offsets", moved);
        commands_print_json(answer);
        json_decref(answer);
    } else {
        size_t i;
        json_t *o;
        json_array_foreach(moved, i, o)
        {
            printf("consumer %" PRIu64 " partition %" JSON_INTEGER_FORMAT
                   ": offset %" JSON_INTEGER_FORMAT " -> %" JSON_INTEGER_FORMAT
                   "\n",
                   cl->consumer,
                   json_integer_value(json_object_get(o, "partition_id")),
                   json_integer_value(json_object_get(o, "was")),
                   json_integer_value(json_object_get(o, "offset")));
        }
    }
    json_decref(moved);
    return CLI_OK;
}

int consumers_run(const struct cmdline *cl, struct mclient *c)
{
    switch (cl->cmd) {
        case CMD_CONSUMER_LIST:
            return list(cl, c);
        case CMD_CONSUMER_DESCRIBE:
            return describe(cl, c, true);
        case CMD_CONSUMER_OFFSETS:
            return describe(cl, c, false);
        case CMD_CONSUMER_RESET:
            return reset(cl, c);
        default:
            return CLI_USAGE;
    }
}
