/*
 * The client's HTTP calls to the managers (see mclient.h).
 *
 * One easy handle serves every call: curl_easy_reset() between calls
 * clears the options but keeps the connection cache, so a command that
 * makes many calls (produce, consume) reuses one connection.
 */
#include "mclient.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rq_err.h"

#define CONNECT_TIMEOUT_MS 2000
#define REQUEST_TIMEOUT_MS 20000
#define PAUSE_503_MS 250
#define PAUSE_CONNECT_MS 200
#define CONNECT_ROUNDS 2
#define RETRY_AFTER_MAX_MS 5000

struct mclient {
    char (*bases)[URL_MAX];
    size_t n_bases;
    size_t sticky; /* The manager asked first. */
    char *auth;    /* "Authorization: Bearer T", or NULL. */
    uint64_t timeout_ms;
    const volatile sig_atomic_t *stop;
    const char *cacert; /* Borrowed; NULL: the system's CAs. */
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
    /* The answer being received. */
    char *buf;
    size_t len, cap;
    uint64_t retry_after_ms;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool stopped(const struct mclient *c)
{
    return c->stop != NULL && *c->stop;
}

int mclient_new(const struct mclient_config *cfg, struct mclient **out)
{
    if (cfg->n_bases == 0) {
        return RQ_INVALID;
    }
    struct mclient *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    c->bases = calloc(cfg->n_bases, sizeof *c->bases);
    c->easy = curl_easy_init();
    if (c->bases == NULL || c->easy == NULL) {
        mclient_free(c); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    memcpy(c->bases, cfg->bases, cfg->n_bases * sizeof *c->bases);
    c->n_bases = cfg->n_bases;
    if (cfg->token != NULL && cfg->token[0] != '\0' &&
        asprintf(&c->auth, "Authorization: Bearer %s", cfg->token) < 0) {
        c->auth = NULL; /* UNTESTED: ENOMEM only. */
        mclient_free(c);
        return RQ_NOMEM;
    }
    c->timeout_ms = cfg->timeout_ms;
    c->stop = cfg->stop;
    c->cacert = cfg->cacert;
    *out = c;
    return 0;
}

int mclient_clone(const struct mclient *c, const volatile sig_atomic_t *stop,
                  struct mclient **out)
{
    struct mclient_config cfg = {
        .bases = (const char(*)[URL_MAX])c->bases,
        .n_bases = c->n_bases,
        .cacert = c->cacert,
        .timeout_ms = c->timeout_ms,
        .stop = stop,
    };
    int rv = mclient_new(&cfg, out);
    if (rv == 0 && c->auth != NULL) {
        (*out)->auth = strdup(c->auth);
        if ((*out)->auth == NULL) {
            mclient_free(*out); /* UNTESTED: ENOMEM only. */
            rv = RQ_NOMEM;
        }
    }
    return rv;
}

void mclient_free(struct mclient *c)
{
    if (c == NULL) {
        return;
    }
    if (c->easy != NULL) {
        curl_easy_cleanup(c->easy);
    }
    free(c->bases);
    free(c->auth);
    free(c->buf);
    free(c);
}

void mclient_resp_clear(struct mclient_resp *r)
{
    json_decref(r->body);
    r->body = NULL;
    r->message = "";
}

const char *mclient_first(const struct mclient *c)
{
    return c->bases[0];
}

/* ---- One request ---- */

static size_t on_data(char *p, size_t size, size_t nmemb, void *data)
{
    struct mclient *c = data;
    size_t n = size * nmemb;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap == 0 ? 4096 : c->cap;
        while (cap < c->len + n + 1) {
            cap *= 2;
        }
        char *b = realloc(c->buf, cap);
        if (b == NULL) {
            return 0; /* UNTESTED: ENOMEM only; curl fails the transfer. */
        }
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    c->buf[c->len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *data)
{
    struct mclient *c = data;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        uint64_t secs = 0;
        size_t i = sizeof name - 1;
        while (i < n && p[i] == ' ') {
            i++;
        }
        for (; i < n && p[i] >= '0' && p[i] <= '9' && secs < 3600; i++) {
            secs = secs * 10 + (uint64_t)(p[i] - '0');
        }
        c->retry_after_ms = secs * 1000;
    }
    return n;
}

static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return stopped(data) ? 1 : 0;
}

int mclient_call_at(struct mclient *c, const char *base, const char *method,
                    const char *path, const json_t *body, uint64_t timeout_ms,
                    struct mclient_resp *out, char *why, size_t whyn)
{
    struct curl_slist *headers = NULL;
    char *text = NULL;
    char url[URL_MAX * 2];
    int rv = 0;

    memset(out, 0, sizeof *out);
    out->message = out->text;
    snprintf(out->base, sizeof out->base, "%s", base);
    snprintf(url, sizeof url, "%s%s", base, path);
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL) {
            rq_why(why, whyn, "the request body cannot be encoded");
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
    }

    CURL *e = c->easy;
    curl_easy_reset(e);
    c->len = 0;
    c->retry_after_ms = 0;
    c->errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    /* https:// managers speak TLS 1.3 only; the server is verified (and
     * must carry the URL's host name) against --cacert if given. */
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
    if (c->cacert != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, c->cacert);
    }
    /* No "Expect: 100-continue" round trip before large bodies. */
    headers = curl_slist_append(headers, "Expect:");
    if (c->auth != NULL) {
        headers = curl_slist_append(headers, c->auth);
    }
    if (strcmp(method, "POST") == 0) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, text != NULL ? text : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                         (long)(text != NULL ? strlen(text) : 0));
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);

    CURLcode cc = curl_easy_perform(e);
    if (cc == CURLE_ABORTED_BY_CALLBACK || stopped(c)) {
        rq_why(why, whyn, "interrupted");
        rv = RQ_CANCELED;
        goto out_after_headers;
    }
    if (cc != CURLE_OK) {
        rq_why(why, whyn, "%s: %s", base,
               c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(cc));
        rv = RQ_CONNECT;
        goto out_after_headers;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    out->retry_after_ms = c->retry_after_ms;
    if (c->len > 0) {
        json_t *o = json_loadb(c->buf, c->len, 0, NULL);
        if (json_is_object(o)) {
            out->body = o;
        } else {
            json_decref(o);
        }
    }
    const char *msg = json_string_value(json_object_get(out->body, "message"));
    if (msg != NULL) {
        out->message = msg;
    } else if (out->body == NULL && c->len > 0) {
        snprintf(out->text, sizeof out->text, "HTTP %ld from %s: %.*s",
                 out->status, base, (int)(c->len < 120 ? c->len : 120), c->buf);
        /* Keep the message on one line. */
        for (char *p = out->text; *p != '\0'; p++) {
            if (*p == '\n' || *p == '\r') {
                *p = ' ';
            }
        }
    } else {
        snprintf(out->text, sizeof out->text, "HTTP %ld from %s", out->status,
                 base);
    }
out_after_headers:
    curl_slist_free_all(headers);
    free(text);
    return rv;
}

/* Sleeps @ms in short steps, so a stop is noticed; false if stopped. */
static bool pause_ms(const struct mclient *c, uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    while (!stopped(c)) {
        uint64_t now = now_ms();
        if (now >= end) {
            return true;
        }
        uint64_t step = end - now < 50 ? end - now : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

int mclient_call(struct mclient *c, const char *method, const char *path,
                 const json_t *body, uint64_t wait_ms, struct mclient_resp *out,
                 char *why, size_t whyn)
{
    uint64_t deadline = now_ms() + c->timeout_ms;
    unsigned connect_rounds = 0;
    bool had_503 = false;
    char last[512] = "";

    for (;;) {
        bool all_connect = true;
        uint64_t pause = PAUSE_CONNECT_MS;
        for (size_t k = 0; k < c->n_bases; k++) {
            size_t i = (c->sticky + k) % c->n_bases;
            int rv = mclient_call_at(c, c->bases[i], method, path, body,
                                     REQUEST_TIMEOUT_MS + wait_ms, out, last,
                                     sizeof last);
            if (rv == RQ_CANCELED) {
                rq_why(why, whyn, "interrupted");
                return rv;
            }
            if (rv == RQ_CONNECT) {
                continue;
            }
            if (rv != 0) {
                rq_why(why, whyn, "%s", last); /* UNTESTED: ENOMEM only. */
                return rv;
            }
            if (out->status != 503) {
                c->sticky = i;
                return 0;
            }
            had_503 = true;
            all_connect = false;
            snprintf(last, sizeof last, "%s: %s", c->bases[i], out->message);
            uint64_t ra = out->retry_after_ms > RETRY_AFTER_MAX_MS
                              ? RETRY_AFTER_MAX_MS
                              : out->retry_after_ms;
            pause = ra > PAUSE_503_MS ? ra : PAUSE_503_MS;
            mclient_resp_clear(out);
        }
        connect_rounds = all_connect ? connect_rounds + 1 : 0;
        uint64_t now = now_ms();
        if ((all_connect && connect_rounds >= CONNECT_ROUNDS) ||
            now >= deadline) {
            rq_why(why, whyn, "%s", last);
            return had_503 && !all_connect ? RQ_NOQUORUM : RQ_CONNECT;
        }
        if (pause > deadline - now) {
            pause = deadline - now;
        }
        if (!pause_ms(c, pause)) {
            rq_why(why, whyn, "interrupted");
            return RQ_CANCELED;
        }
    }
}
