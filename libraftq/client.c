/*
 * The client (see client.h): configuration, the handle pool, the blocking
 * call with failover, and the topic calls of raftq.h.
 */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The longest answer read (a record read of 10000 records of 1 MiB is
 * refused by the managers long before). */
#define ANSWER_MAX (256u << 20)
/* A pause between rounds over every manager, and the longest Retry-After
 * honoured before asking the next manager. */
#define ROUND_PAUSE_MS 100
#define RETRY_AFTER_CAP_MS 1000
#define CONNECT_TIMEOUT_MS 2000

#ifndef RAFTQ_VERSION
#define RAFTQ_VERSION "unknown"
#endif

const char *raftq_version(void)
{
    return RAFTQ_VERSION;
}

const char *raftq_err_str(int err)
{
    switch (err) {
        case RAFTQ_OK:
            return "ok";
        case RAFTQ_ERR_INVALID:
            return "invalid request";
        case RAFTQ_ERR_NOT_FOUND:
            return "not found";
        case RAFTQ_ERR_CONFLICT:
            return "conflict";
        case RAFTQ_ERR_TOO_LARGE:
            return "too large";
        case RAFTQ_ERR_AUTH:
            return "not authorized";
        case RAFTQ_ERR_UNAVAILABLE:
            return "unavailable";
        case RAFTQ_ERR_CONNECT:
            return "cannot connect";
        case RAFTQ_ERR_TIMEOUT:
            return "timed out";
        case RAFTQ_ERR_SERVER:
            return "server error";
        case RAFTQ_ERR_NOMEM:
            return "out of memory";
        case RAFTQ_ERR_CLOSED:
            return "closed";
        case RAFTQ_ERR_PROTOCOL:
            return "unreadable answer";
        default:
            return "unknown error";
    }
}

uint64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int client_error(struct raftq_error *e, int err, const char *fmt, ...)
{
    if (e != NULL) {
        va_list ap;
        e->err = err;
        e->http_status = 0;
        e->code[0] = '\0';
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
    }
    return err;
}

int client_err_of_status(long status)
{
    switch (status) {
        case 400:
            return RAFTQ_ERR_INVALID;
        case 401:
        case 403:
            return RAFTQ_ERR_AUTH;
        case 404:
            return RAFTQ_ERR_NOT_FOUND;
        case 409:
            return RAFTQ_ERR_CONFLICT;
        case 413:
            return RAFTQ_ERR_TOO_LARGE;
        case 503:
            return RAFTQ_ERR_UNAVAILABLE;
        default:
            return status >= 200 && status < 300 ? RAFTQ_OK : RAFTQ_ERR_SERVER;
    }
}

int client_fail(const struct client_answer *a, struct raftq_error *e)
{
    int err = client_err_of_status(a->status);
    if (err == RAFTQ_OK) {
        err = RAFTQ_ERR_PROTOCOL; /* A 2xx that is not a JSON success. */
    }
    if (e == NULL) {
        return err;
    }
    const char *code = json_string_value(json_object_get(a->body, "code"));
    const char *msg = json_string_value(json_object_get(a->body, "message"));
    e->err = err;
    e->http_status = (int)a->status;
    snprintf(e->code, sizeof e->code, "%s", code != NULL ? code : "");
    if (msg != NULL) {
        snprintf(e->message, sizeof e->message, "%s", msg);
    } else {
        snprintf(e->message, sizeof e->message,
                 "the server answered %ld without a JSON failure", a->status);
    }
    return err;
}

bool client_escape(const char *s, char *out, size_t n)
{
    /* libcurl's escape (RFC 3986: all but unreserved characters); its
     * handle argument is unused since libcurl 7.82. */
    char *esc = curl_easy_escape(NULL, s, 0);
    bool ok = esc != NULL && strlen(esc) < n;
    if (ok) {
        memcpy(out, esc, strlen(esc) + 1);
    }
    curl_free(esc);
    return ok;
}

/* "http://h:p,https://h2:p2": each trimmed of blanks and of a final '/'. */
static int parse_managers(struct raftq_client *c, const char *list,
                          struct raftq_error *e)
{
    const char *p = list;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t n = strcspn(p, ", ");
        if (n == 0) {
            break;
        }
        if (c->n_bases == CLIENT_MAX_MANAGERS) {
            return client_error(e, RAFTQ_ERR_INVALID, "more than %d managers",
                                CLIENT_MAX_MANAGERS);
        }
        while (n > 0 && p[n - 1] == '/') {
            n--;
        }
        bool scheme = (n > 7 && strncmp(p, "http://", 7) == 0) ||
                      (n > 8 && strncmp(p, "https://", 8) == 0);
        if (!scheme || n >= CLIENT_URL_MAX) {
            return client_error(e, RAFTQ_ERR_INVALID,
                                "manager '%.*s' is not an http:// or "
                                "https:// URL",
                                (int)(n < 200 ? n : 200), p);
        }
        memcpy(c->bases[c->n_bases], p, n);
        c->bases[c->n_bases][n] = '\0';
        c->n_bases++;
        p += strcspn(p, ",");
    }
    if (c->n_bases == 0) {
        return client_error(e, RAFTQ_ERR_INVALID, "no managers given");
    }
    return RAFTQ_OK;
}

int raftq_client_new(const struct raftq_config *cfg, struct raftq_client **out,
                     struct raftq_error *e)
{
    if (cfg == NULL || cfg->managers == NULL || out == NULL) {
        return client_error(e, RAFTQ_ERR_INVALID, "no managers given");
    }
    struct raftq_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
    }
    int rv = parse_managers(c, cfg->managers, e);
    if (rv != RAFTQ_OK) {
        free(c);
        return rv;
    }
    c->timeout_ms = cfg->timeout_ms != 0 ? cfg->timeout_ms : 30000;
    c->connect_rounds = cfg->connect_rounds;
    c->stop = cfg->stop;
    if (cfg->token != NULL && cfg->token[0] != '\0') {
        size_t n = strlen(cfg->token) + 32;
        c->auth_header = malloc(n);
        if (c->auth_header != NULL) {
            snprintf(c->auth_header, n, "Authorization: Bearer %s", cfg->token);
        }
    }
    if (cfg->ca_file != NULL) {
        c->ca_file = strdup(cfg->ca_file);
    }
    if ((cfg->token != NULL && cfg->token[0] != '\0' &&
         c->auth_header == NULL) ||
        (cfg->ca_file != NULL && c->ca_file == NULL)) {
        raftq_client_free(c);
        return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return RAFTQ_OK;
}

void raftq_client_free(struct raftq_client *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_pool; i++) {
        curl_easy_cleanup(c->pool[i]);
    }
    free(c->pool);
    pthread_mutex_destroy(&c->lock);
    free(c->auth_header);
    free(c->ca_file);
    free(c);
}

CURL *client_get_handle(struct raftq_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->n_pool > 0) {
        h = c->pool[--c->n_pool];
    }
    pthread_mutex_unlock(&c->lock);
    if (h == NULL) {
        h = curl_easy_init();
    }
    return h;
}

void client_put_handle(struct raftq_client *c, CURL *h)
{
    if (h == NULL) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (c->n_pool == c->cap_pool) {
        size_t cap = c->cap_pool != 0 ? c->cap_pool * 2 : 8;
        CURL **pool = realloc(c->pool, cap * sizeof *pool);
        if (pool == NULL) {
            pthread_mutex_unlock(&c->lock);
            curl_easy_cleanup(h); /* UNTESTED: ENOMEM only. */
            return;
        }
        c->pool = pool;
        c->cap_pool = cap;
    }
    c->pool[c->n_pool++] = h;
    pthread_mutex_unlock(&c->lock);
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *data)
{
    struct client_sink *s = data;
    size_t n = size * nmemb;
    if (s->len + n > ANSWER_MAX) {
        s->overflow = true;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap != 0 ? s->cap : 1024;
        while (cap < s->len + n + 1) {
            cap *= 2;
        }
        char *d = realloc(s->data, cap);
        if (d == NULL) {
            return 0; /* UNTESTED: ENOMEM only. */
        }
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
    s->data[s->len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *data)
{
    struct client_sink *s = data;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        s->retry_after_ms = strtoull(p + 12, NULL, 10) * 1000;
    }
    return n;
}

/* Aborts a transfer once the client's stop flag is set. */
static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    const struct raftq_client *c = data;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return client_stopped(c) ? 1 : 0;
}

bool client_stopped(const struct raftq_client *c)
{
    return c->stop != NULL && *c->stop != 0;
}

int client_prepare(struct raftq_client *c, CURL *h, const char *base,
                   const struct client_req *r, struct client_sink *sink,
                   struct curl_slist **hdrs)
{
    char url[CLIENT_URL_MAX * 2];
    int n = snprintf(url, sizeof url, "%s%s", base, r->path);
    if (n < 0 || (size_t)n >= sizeof url) {
        return RAFTQ_ERR_INVALID;
    }
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(
        h, CURLOPT_TIMEOUT_MS,
        (long)((r->limit_ms != 0 ? r->limit_ms : c->timeout_ms) + r->extra_ms));
    if (c->stop != NULL) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    /* https:// managers speak TLS 1.3 only (API.md section 6). */
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, sink);
    if (c->ca_file != NULL) {
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    }
    struct curl_slist *l = NULL;
    /* No "Expect: 100-continue" round trip before a large body. */
    l = curl_slist_append(l, "Expect:");
    if (c->auth_header != NULL) {
        l = curl_slist_append(l, c->auth_header);
    }
    if (r->body != NULL) {
        char ct[128];
        snprintf(
            ct, sizeof ct, "Content-Type: %s",
            r->content_type != NULL ? r->content_type : "application/json");
        l = curl_slist_append(l, ct);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)r->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    }
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
    *hdrs = l;
    sink->len = 0;
    sink->retry_after_ms = 0;
    sink->overflow = false;
    return RAFTQ_OK;
}

void client_answer_of(CURL *h, struct client_sink *sink, size_t base,
                      struct client_answer *a)
{
    memset(a, 0, sizeof *a);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    a->retry_after_ms = sink->retry_after_ms;
    a->base = base;
    if (sink->len > 0) {
        json_t *body = json_loadb(sink->data, sink->len, 0, NULL);
        if (json_is_object(body)) {
            a->body = body;
        } else {
            json_decref(body);
        }
        /* The bytes too, taken from the sink. */
        a->text = sink->data;
        a->text_len = sink->len;
        sink->data = NULL;
        sink->cap = 0;
    }
    sink->len = 0;
}

void client_answer_clear(struct client_answer *a)
{
    json_decref(a->body);
    a->body = NULL;
    free(a->text);
    a->text = NULL;
    a->text_len = 0;
}

/* Sleeps @ms in steps of at most 50 ms; false if the client was stopped. */
static bool pause_ms(const struct raftq_client *c, uint64_t ms)
{
    uint64_t end = client_now_ms() + ms;
    while (!client_stopped(c)) {
        uint64_t now = client_now_ms();
        if (now >= end) {
            return true;
        }
        uint64_t step = end - now < 50 ? end - now : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

int client_send_at(struct raftq_client *c, const char *base,
                   const struct client_req *r, struct client_answer *a,
                   struct raftq_error *e)
{
    CURL *h = client_get_handle(c);
    if (h == NULL) {
        return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
    }
    struct client_sink sink = {0};
    struct curl_slist *hdrs = NULL;
    char detail[CURL_ERROR_SIZE] = "";
    int rv = client_prepare(c, h, base, r, &sink, &hdrs);
    if (rv != RAFTQ_OK) {
        rv = client_error(e, RAFTQ_ERR_INVALID, "the URL is too long");
    } else {
        /* libcurl's own sentence (a certificate's fault, say) where it
         * has one. */
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);
        CURLcode cc = curl_easy_perform(h);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
        if (cc == CURLE_ABORTED_BY_CALLBACK || client_stopped(c)) {
            rv = client_error(e, RAFTQ_ERR_CANCELED, "interrupted");
        } else if (cc == CURLE_WRITE_ERROR && sink.overflow) {
            rv = client_error(e, RAFTQ_ERR_PROTOCOL,
                              "the answer is larger than %u bytes", ANSWER_MAX);
        } else if (cc != CURLE_OK) {
            rv = client_error(
                e, RAFTQ_ERR_CONNECT, "%s: %s", base,
                detail[0] != '\0' ? detail : curl_easy_strerror(cc));
        } else {
            client_answer_of(h, &sink, SIZE_MAX, a);
        }
    }
    curl_slist_free_all(hdrs);
    free(sink.data);
    client_put_handle(c, h);
    return rv;
}

int client_send(struct raftq_client *c, const struct client_req *r,
                struct client_answer *a, struct raftq_error *e)
{
    uint64_t deadline = client_now_ms() + c->timeout_ms;
    pthread_mutex_lock(&c->lock);
    size_t base = c->preferred;
    pthread_mutex_unlock(&c->lock);
    int rv = RAFTQ_ERR_CONNECT;
    bool had_503 = false;
    bool round_connected = false; /* Some manager answered this round. */
    uint32_t refused_rounds = 0;  /* Rounds in which none did. */
    char last[300] = "no manager tried";
    for (size_t tries = 0;; tries++) {
        struct raftq_error err;
        uint64_t wait = 0;
        rv = client_send_at(c, c->bases[base], r, a, &err);
        if (rv == RAFTQ_OK) {
            a->base = base;
            if (a->status != 503) {
                pthread_mutex_lock(&c->lock);
                c->preferred = base;
                pthread_mutex_unlock(&c->lock);
                return RAFTQ_OK;
            }
            const char *msg =
                json_string_value(json_object_get(a->body, "message"));
            snprintf(last, sizeof last, "%s: %s", c->bases[base],
                     msg != NULL ? msg : "503");
            wait = a->retry_after_ms < RETRY_AFTER_CAP_MS ? a->retry_after_ms
                                                          : RETRY_AFTER_CAP_MS;
            client_answer_clear(a);
            had_503 = true;
            round_connected = true;
        } else if (rv == RAFTQ_ERR_CONNECT) {
            snprintf(last, sizeof last, "%s", err.message);
        } else {
            if (e != NULL) {
                *e = err;
            }
            return rv; /* Stopped, or an answer too large, or ENOMEM. */
        }
        base = (base + 1) % c->n_bases;
        if ((tries + 1) % c->n_bases == 0) {
            refused_rounds = round_connected ? 0 : refused_rounds + 1;
            round_connected = false;
            if (wait < ROUND_PAUSE_MS) {
                wait = ROUND_PAUSE_MS;
            }
        }
        rv = had_503 && refused_rounds == 0 ? RAFTQ_ERR_UNAVAILABLE
                                            : RAFTQ_ERR_CONNECT;
        if (c->connect_rounds != 0 && refused_rounds >= c->connect_rounds) {
            return client_error(e, RAFTQ_ERR_CONNECT, "%s", last);
        }
        uint64_t now = client_now_ms();
        if (now + wait >= deadline) {
            return client_error(e, rv, "no manager answered within %u ms (%s)",
                                c->timeout_ms, last);
        }
        if (!pause_ms(c, wait)) {
            return client_error(e, RAFTQ_ERR_CANCELED, "interrupted");
        }
    }
}

int client_json(struct raftq_client *c, const char *method, const char *path,
                json_t *body, uint32_t extra_ms, json_t **answer,
                struct raftq_error *e)
{
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL) {
            return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
        }
    }
    struct client_req r = {
        method, path, NULL, text, text != NULL ? strlen(text) : 0, extra_ms};
    struct client_answer a;
    int rv = client_send(c, &r, &a, e);
    free(text);
    if (rv != RAFTQ_OK) {
        return rv;
    }
    const char *status = json_string_value(json_object_get(a.body, "status"));
    if (a.status < 200 || a.status >= 300 || status == NULL ||
        strcmp(status, "success") != 0) {
        rv = client_fail(&a, e);
        client_answer_clear(&a);
        return rv;
    }
    if (answer != NULL) {
        *answer = a.body; /* Taken from the answer, which is cleared. */
        a.body = NULL;
    }
    client_answer_clear(&a);
    return RAFTQ_OK;
}

int raftq_call(struct raftq_client *c, const char *method, const char *path,
               const char *body_json, char **answer_json, struct raftq_error *e)
{
    if (c == NULL || method == NULL || path == NULL || path[0] != '/') {
        return client_error(e, RAFTQ_ERR_INVALID,
                            "a method and a path starting with '/' needed");
    }
    json_t *body = NULL;
    if (body_json != NULL) {
        json_error_t err;
        body = json_loads(body_json, 0, &err);
        if (body == NULL) {
            return client_error(e, RAFTQ_ERR_INVALID,
                                "the body is not JSON: %s", err.text);
        }
    }
    json_t *answer = NULL;
    int rv = client_json(c, method, path, body, 0,
                         answer_json != NULL ? &answer : NULL, e);
    json_decref(body);
    if (rv == RAFTQ_OK && answer_json != NULL) {
        *answer_json = json_dumps(answer, JSON_COMPACT);
        json_decref(answer);
        if (*answer_json == NULL) {
            return client_error(e, RAFTQ_ERR_NOMEM, "out of memory");
        }
    }
    return rv;
}

int raftq_topic_create(struct raftq_client *c, const char *topic,
                       uint32_t partitions, struct raftq_error *e)
{
    if (topic == NULL) {
        return client_error(e, RAFTQ_ERR_INVALID, "no topic given");
    }
    json_t *body = json_pack("{s:s}", "topic_name", topic);
    if (partitions != 0) {
        json_object_set_new(body, "number_of_partitions",
                            json_integer(partitions));
    }
    int rv = client_json(c, "POST", "/topics", body, 0, NULL, e);
    json_decref(body);
    return rv;
}

int raftq_topic_partitions(struct raftq_client *c, const char *topic,
                           uint32_t *out, struct raftq_error *e)
{
    char esc[400], path[512];
    if (topic == NULL || !client_escape(topic, esc, sizeof esc)) {
        return client_error(e, RAFTQ_ERR_INVALID, "no or too long a topic");
    }
    snprintf(path, sizeof path, "/topics/partitions?topic=%s", esc);
    json_t *answer;
    int rv = client_json(c, "GET", path, NULL, 0, &answer, e);
    if (rv != RAFTQ_OK) {
        return rv;
    }
    json_t *parts = json_object_get(answer, "partitions");
    if (!json_is_array(parts) || json_array_size(parts) == 0) {
        rv = client_error(e, RAFTQ_ERR_PROTOCOL,
                          "the answer lists no partitions");
    } else {
        *out = (uint32_t)json_array_size(parts);
    }
    json_decref(answer);
    return rv;
}

int raftq_topic_delete(struct raftq_client *c, const char *topic,
                       struct raftq_error *e)
{
    char esc[400], path[512];
    if (topic == NULL || !client_escape(topic, esc, sizeof esc)) {
        return client_error(e, RAFTQ_ERR_INVALID, "no or too long a topic");
    }
    snprintf(path, sizeof path, "/admin/topics/%s", esc);
    return client_json(c, "DELETE", path, NULL, 0, NULL, e);
}

/* The answer @a as a struct raftq_response (its text taken). */
static void response_of(struct raftq_client *c, struct client_answer *a,
                        const char *base, struct raftq_response *out)
{
    memset(out, 0, sizeof *out);
    out->status = (int)a->status;
    out->retry_after_ms = a->retry_after_ms;
    out->body = a->text != NULL ? a->text : strdup("");
    out->body_len = a->text_len;
    a->text = NULL;
    snprintf(out->manager, sizeof out->manager, "%s",
             base != NULL ? base : c->bases[a->base]);
    client_answer_clear(a);
}

int raftq_request(struct raftq_client *c, const char *method, const char *path,
                  const char *content_type, const void *body, size_t body_len,
                  uint32_t extra_ms, struct raftq_response *out,
                  struct raftq_error *e)
{
    if (c == NULL || method == NULL || path == NULL || path[0] != '/' ||
        out == NULL) {
        return client_error(e, RAFTQ_ERR_INVALID,
                            "a method and a path starting with '/' needed");
    }
    struct client_req r = {method,   path, content_type, body, body_len,
                           extra_ms, 0};
    struct client_answer a;
    int rv = client_send(c, &r, &a, e);
    if (rv == RAFTQ_OK) {
        response_of(c, &a, NULL, out);
    }
    return rv;
}

int raftq_request_at(struct raftq_client *c, const char *manager,
                     const char *method, const char *path,
                     const char *content_type, const void *body,
                     size_t body_len, uint32_t limit_ms,
                     struct raftq_response *out, struct raftq_error *e)
{
    if (c == NULL || manager == NULL || method == NULL || path == NULL ||
        path[0] != '/' || out == NULL) {
        return client_error(e, RAFTQ_ERR_INVALID,
                            "a manager, a method and a path starting with '/' "
                            "needed");
    }
    struct client_req r = {method,   path, content_type, body,
                           body_len, 0,    limit_ms};
    struct client_answer a;
    int rv = client_send_at(c, manager, &r, &a, e);
    if (rv == RAFTQ_OK) {
        response_of(c, &a, manager, out);
    }
    return rv;
}

void raftq_response_clear(struct raftq_response *r)
{
    if (r != NULL) {
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
    }
}
