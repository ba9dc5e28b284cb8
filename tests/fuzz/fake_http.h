/*
 * A fake of the request side of shared/rq_http.h, for harnesses that
 * drive HTTP handlers without a socket (fuzz_manager_http.c). A request is
 * built from a route and the fuzz input:
 *
 *     query NUL param1 NUL param2 NUL content-type NUL ... (the harness's
 *     own fields) | body
 *
 * Its body is parsed by the server's own rules (rq_json_parse_object);
 * query arguments are percent-decoded as libmicrohttpd does; {params} are
 * refused as the router refuses them (empty, '/', %00). Replies are
 * checked: exactly once, a JSON object, never 500 (a handler answers bad
 * input with a 4xx and a refusal with a 4xx or 503). Set FUZZ_VERBOSE to
 * print each answer.
 *
 * Each harness is its own program, so the definitions live here.
 */
#ifndef FAKE_HTTP_H
#define FAKE_HTTP_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <strings.h>

#include "fuzz.h"
#include "rq_http.h"
#include "rq_json.h"

#define MAX_ARGS 32
#define MAX_PARAMS 2
#define FAKE_HEADERS 4

struct rq_http_req {
    const struct rq_http_route *route;
    char path[512];
    char *query;        /* Raw, owned. */
    char *content_type; /* Owned. */
    char *keys[MAX_ARGS];
    char *values[MAX_ARGS]; /* NULL: "?key" without '='. */
    size_t n_args;
    char *params[MAX_PARAMS];               /* Decoded, owned. */
    const char *header_names[FAKE_HEADERS]; /* Set by the harness. */
    const char *header_values[FAKE_HEADERS];
    const uint8_t *body;
    size_t body_len;
    json_t *json;
    int json_state;
    char json_why[256];
    char *argtext[MAX_ARGS]; /* Integers rq_http_arg() turned to text. */
    size_t n_argtext;
    bool replied;
    int status;
    void (*abort_cb)(struct rq_http_req *req, void *data);
    void *abort_data;
};

static int hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes in place as libmicrohttpd does for query arguments
 * ('+' is a space). false on a bad escape or %00. */
static bool decode(char *s, bool plus)
{
    char *out = s;
    for (const char *in = s; *in != '\0'; in++) {
        if (plus && *in == '+') {
            *out++ = ' ';
            continue;
        }
        if (*in != '%') {
            *out++ = *in;
            continue;
        }
        int hi = hex(in[1]);
        int lo = hi < 0 ? -1 : hex(in[2]);
        if (lo < 0 || (hi == 0 && lo == 0)) {
            return false;
        }
        int v = hi * 16 + lo;
        *out++ = (char)v;
        in += 2;
    }
    *out = '\0';
    return true;
}

static void split_query(struct rq_http_req *req)
{
    char *p = req->query;
    while (p != NULL && *p != '\0' && req->n_args < MAX_ARGS) {
        char *amp = strchr(p, '&');
        if (amp != NULL) {
            *amp = '\0';
        }
        char *eq = strchr(p, '=');
        if (eq != NULL) {
            *eq = '\0';
        }
        if (*p != '\0' && decode(p, true) &&
            (eq == NULL || decode(eq + 1, true))) {
            req->keys[req->n_args] = p;
            req->values[req->n_args] = eq != NULL ? eq + 1 : NULL;
            req->n_args++;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
}

const char *rq_http_method(const struct rq_http_req *req)
{
    return req->route->method;
}

const char *rq_http_path(const struct rq_http_req *req)
{
    return req->path;
}

rq_http_handler rq_http_route_handler(const struct rq_http_req *req)
{
    return req->route->handler;
}

const char *rq_http_query_string(const struct rq_http_req *req)
{
    (void)req;
    return "";
}

const char *rq_http_param(const struct rq_http_req *req, const char *name)
{
    const char *p = req->route->pattern;
    size_t n = strlen(name);
    unsigned i = 0;
    while ((p = strchr(p, '{')) != NULL) {
        if (strncmp(p + 1, name, n) == 0 && p[1 + n] == '}') {
            return i < MAX_PARAMS ? req->params[i] : NULL;
        }
        p++;
        i++;
    }
    return NULL;
}

const char *rq_http_query(const struct rq_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_args; i++) {
        if (strcmp(req->keys[i], name) == 0) {
            return req->values[i] != NULL ? req->values[i] : "";
        }
    }
    return NULL;
}

const char *rq_http_header(const struct rq_http_req *req, const char *name)
{
    for (size_t i = 0; i < FAKE_HEADERS; i++) {
        if (req->header_names[i] != NULL &&
            strcasecmp(req->header_names[i], name) == 0) {
            return req->header_values[i];
        }
    }
    return NULL;
}

const uint8_t *rq_http_body(const struct rq_http_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body;
}

json_t *rq_http_json(struct rq_http_req *req, char *why, size_t whyn)
{
    if (req->json_state == 0) {
        req->json = rq_json_parse_object(req->body, req->body_len,
                                         req->json_why, sizeof req->json_why);
        req->json_state = req->json != NULL ? 1 : -1;
    }
    if (req->json == NULL && why != NULL) {
        snprintf(why, whyn, "%s", req->json_why);
    }
    return req->json;
}

const char *rq_http_arg(struct rq_http_req *req, const char *name)
{
    const char *q = rq_http_query(req, name);
    if (q != NULL) {
        return q;
    }
    json_t *body = rq_http_json(req, NULL, 0);
    json_t *v = body != NULL ? json_object_get(body, name) : NULL;
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (!json_is_integer(v) || req->n_argtext == MAX_ARGS) {
        return NULL;
    }
    char *t = malloc(24);
    FUZZ_CHECK(t != NULL);
    snprintf(t, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    req->argtext[req->n_argtext++] = t;
    return t;
}

void rq_http_set_header(struct rq_http_req *req, const char *name,
                        const char *value)
{
    FUZZ_CHECK(!req->replied);
    FUZZ_CHECK(name != NULL && value != NULL);
}

void rq_http_reply(struct rq_http_req *req, int status, json_t *body)
{
    FUZZ_CHECK(!req->replied); /* Exactly once. */
    FUZZ_CHECK(status >= 100 && status <= 599);
    if (status == 500) {
        char *text = body != NULL ? json_dumps(body, 0) : NULL;
        fprintf(stderr, "500 from %s %s: %s\n", req->route->method,
                req->route->pattern, text != NULL ? text : "");
        free(text);
        FUZZ_CHECK(status != 500);
    }
    FUZZ_CHECK(body == NULL || json_is_object(body));
    if (body != NULL) {
        char *text = json_dumps(body, JSON_COMPACT);
        FUZZ_CHECK(text != NULL);
        if (getenv("FUZZ_VERBOSE") != NULL) {
            fprintf(stderr, "%d %.200s\n", status, text);
        }
        free(text);
    }
    json_decref(body);
    req->replied = true;
    req->status = status;
}

void rq_http_reply_error(struct rq_http_req *req, int status, const char *fmt,
                         ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The real server makes the message readable when it is not UTF-8. */
    json_t *text = json_string(msg);
    if (text == NULL) {
        text = json_string("(not UTF-8)");
    }
    json_t *body = json_object();
    json_object_set_new(body, "message", text);
    rq_http_reply(req, status, body);
}

void rq_http_reply_fail(struct rq_http_req *req, int status, const char *code,
                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    FUZZ_CHECK(code != NULL && code[0] != '\0');
    json_t *text = json_string(msg);
    json_t *body = json_object();
    json_object_set_new(body, "message",
                        text != NULL ? text : json_string("(not UTF-8)"));
    json_object_set_new(body, "code", json_string(code));
    rq_http_reply(req, status, body);
}

void rq_http_unwatched(struct rq_http_req *req)
{
    (void)req;
}

void *rq_http_calloc(struct rq_http_req *req, size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        rq_http_reply_error(req, 500, "out of memory");
    }
    return p;
}

void rq_http_reply_text(struct rq_http_req *req, int status,
                        const char *content_type, const char *body, size_t len)
{
    (void)content_type;
    (void)body;
    (void)len;
    FUZZ_CHECK(!req->replied);
    req->replied = true;
    req->status = status;
}

void rq_http_reply_owned(struct rq_http_req *req, int status,
                         const char *content_type, void *body, size_t len)
{
    (void)content_type;
    (void)len;
    free(body);
    FUZZ_CHECK(!req->replied);
    req->replied = true;
    req->status = status;
}

void rq_http_reply_parts(struct rq_http_req *req, int status,
                         const char *content_type, const void *head,
                         size_t head_len, void *tail, size_t tail_len)
{
    (void)head;
    (void)head_len;
    (void)tail_len;
    rq_http_reply_owned(req, status, content_type, tail, 0);
}

void rq_http_on_abort(struct rq_http_req *req,
                      void (*cb)(struct rq_http_req *req, void *data),
                      void *data)
{
    req->abort_cb = cb;
    req->abort_data = data;
}

bool rq_http_client_gone(struct rq_http_req *req)
{
    (void)req;
    return false;
}

/* Fills the path from the route's pattern and @raw {param} values; false
 * when the router would not have matched them. */
static bool route_params(struct rq_http_req *req, char **raw)
{
    const char *p = req->route->pattern;
    size_t n = 0;
    char *out = req->path;
    size_t left = sizeof req->path;
    for (; *p != '\0';) {
        if (*p == '{') {
            if (n == MAX_PARAMS) {
                return false;
            }
            /* The router's rules: one non-empty segment, no %00, no '/'
             * once decoded. */
            int w = snprintf(out, left, "%s", raw[n]);
            if (w < 0 || (size_t)w >= left) {
                return false;
            }
            out += w;
            left -= (size_t)w;
            req->params[n] = strdup(raw[n]);
            FUZZ_CHECK(req->params[n] != NULL);
            if (raw[n][0] == '\0' || strchr(raw[n], '/') != NULL ||
                !decode(req->params[n], false) ||
                strchr(req->params[n], '/') != NULL) {
                return false;
            }
            n++;
            p = strchr(p, '}') + 1;
            continue;
        }
        if (left > 1) {
            *out++ = *p;
            left--;
        }
        p++;
    }
    *out = '\0';
    return true;
}

static void fake_req_free(struct rq_http_req *req)
{
    for (size_t i = 0; i < MAX_PARAMS; i++) {
        free(req->params[i]);
    }
    for (size_t i = 0; i < req->n_argtext; i++) {
        free(req->argtext[i]);
    }
    json_decref(req->json);
    free(req->query);
    free(req->content_type);
}

/* Reads the request's parts off @in (see above) for @route, leaving the
 * harness's own fields and the body in @in. false (nothing to free but
 * with fake_req_free) when the router would not route it. */
static bool fake_req_read(struct rq_http_req *req,
                          const struct rq_http_route *route, struct fuzz_in *in)
{
    char *raw[MAX_PARAMS];
    memset(req, 0, sizeof *req);
    req->route = route;
    req->query = fuzz_str(in);
    raw[0] = fuzz_str(in);
    raw[1] = fuzz_str(in);
    req->content_type = fuzz_str(in);
    req->header_names[0] = "Content-Type";
    req->header_values[0] =
        req->content_type[0] != '\0' ? req->content_type : NULL;
    split_query(req);
    bool routed = route_params(req, raw);
    free(raw[0]);
    free(raw[1]);
    return routed;
}

#endif /* FAKE_HTTP_H */
