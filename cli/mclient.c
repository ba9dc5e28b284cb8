/*
 * The client's calls to the managers (see mclient.h), on libraftq's client
 * (libraftq/raftq.h): the library asks the managers in turn, keeps the
 * connections, honours Retry-After and the stop flag, and speaks TLS 1.3
 * to https:// managers. What is left here is the CLI's reading of an
 * answer: its JSON body and a message to print for any status.
 */
#include "mclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libraftq/raftq.h"
#include "rq_err.h"

/* Rounds over the managers, none connected to, before "cannot reach". */
#define CONNECT_ROUNDS 2

struct mclient {
    struct raftq_client *rc;
    char (*bases)[URL_MAX];
    size_t n_bases;
    char *token;
    const char *cacert; /* Borrowed. */
    uint64_t timeout_ms;
    const volatile sig_atomic_t *stop;
};

int mclient_new(const struct mclient_config *cfg, struct mclient **out)
{
    if (cfg->n_bases == 0) {
        return RQ_INVALID;
    }
    struct mclient *c = calloc(1, sizeof *c);
    char *list = calloc(cfg->n_bases, URL_MAX + 1);
    if (c == NULL || list == NULL) {
        free(c); /* UNTESTED: ENOMEM only. */
        free(list);
        return RQ_NOMEM;
    }
    c->bases = calloc(cfg->n_bases, sizeof *c->bases);
    c->token = cfg->token != NULL ? strdup(cfg->token) : NULL;
    if (c->bases == NULL || (cfg->token != NULL && c->token == NULL)) {
        free(list); /* UNTESTED: ENOMEM only. */
        mclient_free(c);
        return RQ_NOMEM;
    }
    memcpy(c->bases, cfg->bases, cfg->n_bases * sizeof *c->bases);
    c->n_bases = cfg->n_bases;
    c->cacert = cfg->cacert;
    c->timeout_ms = cfg->timeout_ms;
    c->stop = cfg->stop;
    size_t len = 0;
    for (size_t i = 0; i < cfg->n_bases; i++) {
        len += (size_t)snprintf(list + len, cfg->n_bases * (URL_MAX + 1) - len,
                                "%s%s", i > 0 ? "," : "", cfg->bases[i]);
    }
    struct raftq_config rcfg = {
        .managers = list,
        .token = cfg->token,
        .ca_file = cfg->cacert,
        .timeout_ms = (uint32_t)cfg->timeout_ms,
        .connect_rounds = CONNECT_ROUNDS,
        .stop = cfg->stop,
    };
    struct raftq_error e;
    int rv = raftq_client_new(&rcfg, &c->rc, &e);
    free(list);
    if (rv != RAFTQ_OK) {
        mclient_free(c);
        return rv == RAFTQ_ERR_NOMEM ? RQ_NOMEM : RQ_INVALID;
    }
    *out = c;
    return 0;
}

int mclient_clone(const struct mclient *c, const volatile sig_atomic_t *stop,
                  struct mclient **out)
{
    struct mclient_config cfg = {
        .bases = (const char(*)[URL_MAX])c->bases,
        .n_bases = c->n_bases,
        .token = c->token,
        .cacert = c->cacert,
        .timeout_ms = c->timeout_ms,
        .stop = stop,
    };
    return mclient_new(&cfg, out);
}

void mclient_free(struct mclient *c)
{
    if (c == NULL) {
        return;
    }
    raftq_client_free(c->rc);
    free(c->bases);
    free(c->token);
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

/* The library's error as the CLI's code. */
static int code_of(int err)
{
    switch (err) {
        case RAFTQ_ERR_CONNECT:
            return RQ_CONNECT;
        case RAFTQ_ERR_UNAVAILABLE:
            return RQ_NOQUORUM;
        case RAFTQ_ERR_CANCELED:
            return RQ_CANCELED;
        case RAFTQ_ERR_NOMEM:
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        default:
            return RQ_INVALID;
    }
}

/* @resp as @out: the JSON body, and a message for any status. */
static void resp_of(struct raftq_response *resp, struct mclient_resp *out)
{
    memset(out, 0, sizeof *out);
    out->message = out->text;
    out->status = resp->status;
    out->retry_after_ms = resp->retry_after_ms;
    snprintf(out->base, sizeof out->base, "%s", resp->manager);
    if (resp->body_len > 0) {
        json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (json_is_object(o)) {
            out->body = o;
        } else {
            json_decref(o);
        }
    }
    const char *msg = json_string_value(json_object_get(out->body, "message"));
    if (msg != NULL) {
        out->message = msg;
    } else if (out->body == NULL && resp->body_len > 0) {
        snprintf(out->text, sizeof out->text, "HTTP %ld from %s: %.*s",
                 out->status, out->base,
                 (int)(resp->body_len < 120 ? resp->body_len : 120),
                 resp->body);
        /* Keep the message on one line. */
        for (char *p = out->text; *p != '\0'; p++) {
            if (*p == '\n' || *p == '\r') {
                *p = ' ';
            }
        }
    } else {
        snprintf(out->text, sizeof out->text, "HTTP %ld from %s", out->status,
                 out->base);
    }
    raftq_response_clear(resp);
}

/* @body as JSON text for the library, or NULL; *@fail on ENOMEM. */
static char *body_text(const json_t *body, bool *fail)
{
    *fail = false;
    if (body == NULL) {
        return NULL;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    *fail = text == NULL; /* UNTESTED: ENOMEM only. */
    return text;
}

/* One call: to @base once (@ms its time limit), or with @base NULL to the
 * managers in turn (@ms a long poll's wait). */
static int call(struct mclient *c, const char *base, const char *method,
                const char *path, const json_t *body, uint64_t ms,
                struct mclient_resp *out, char *why, size_t whyn)
{
    bool fail;
    char *text = body_text(body, &fail);
    if (fail) {
        rq_why(why, whyn, "the request body cannot be encoded");
        return RQ_NOMEM;
    }
    struct raftq_response resp;
    struct raftq_error e;
    size_t len = text != NULL ? strlen(text) : 0;
    int rv = base != NULL ? raftq_request_at(c->rc, base, method, path, NULL,
                                             text, len, (uint32_t)ms, &resp, &e)
                          : raftq_request(c->rc, method, path, NULL, text, len,
                                          (uint32_t)ms, &resp, &e);
    free(text);
    if (rv != RAFTQ_OK) {
        memset(out, 0, sizeof *out);
        out->message = out->text;
        rq_why(why, whyn, "%s", e.message);
        return code_of(rv);
    }
    resp_of(&resp, out);
    return 0;
}

int mclient_call_at(struct mclient *c, const char *base, const char *method,
                    const char *path, const json_t *body, uint64_t timeout_ms,
                    struct mclient_resp *out, char *why, size_t whyn)
{
    return call(c, base, method, path, body, timeout_ms, out, why, whyn);
}

int mclient_call(struct mclient *c, const char *method, const char *path,
                 const json_t *body, uint64_t wait_ms, struct mclient_resp *out,
                 char *why, size_t whyn)
{
    return call(c, NULL, method, path, body, wait_ms, out, why, whyn);
}
