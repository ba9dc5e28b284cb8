/*
 * The client inside libraftq (raftq.h's struct raftq_client): the managers'
 * base URLs, the credentials, a pool of libcurl easy handles (each keeps
 * its connections, so a call reuses one), and the blocking call with
 * failover that every other module of the library uses. Not part of the
 * public API.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "raftq.h"

#define CLIENT_MAX_MANAGERS 16
#define CLIENT_URL_MAX 512

struct raftq_client {
    char bases[CLIENT_MAX_MANAGERS][CLIENT_URL_MAX]; /* No trailing '/'. */
    size_t n_bases;
    char *auth_header; /* "Authorization: Bearer ...", or NULL. */
    char *ca_file;
    uint32_t timeout_ms;
    uint32_t connect_rounds;
    const volatile sig_atomic_t *stop;

    pthread_mutex_t lock; /* Guards what follows. */
    size_t preferred;     /* The manager that answered last. */
    CURL **pool;          /* Idle easy handles. */
    size_t n_pool, cap_pool;
};

/* One request's body and answer. */
struct client_req {
    const char *method;
    const char *path;         /* With its query string, escaped. */
    const char *content_type; /* Of @body; NULL: application/json. */
    const void *body;
    size_t body_len;
    uint32_t extra_ms; /* Added to the per-attempt limit (long polls). */
    uint32_t limit_ms; /* The per-attempt limit; 0: the client's timeout. */
};

struct client_answer {
    long status;
    json_t *body; /* The JSON object answered, or NULL. Owned. */
    uint64_t retry_after_ms;
    size_t base; /* The manager that answered (SIZE_MAX: one not listed). */
    char *text;  /* The answer's bytes, NUL-terminated, or NULL. Owned. */
    size_t text_len;
};

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t client_now_ms(void);

/* An easy handle from the pool (or a new one) set up with the client's
 * CA; NULL on ENOMEM. Give it back with client_put_handle(). */
CURL *client_get_handle(struct raftq_client *c);
void client_put_handle(struct raftq_client *c, CURL *h);

/* Whether the stop flag given at creation is set. */
bool client_stopped(const struct raftq_client *c);

/* Sets @h up for @r sent to the manager at URL @base; @sink receives the
 * answer's bytes and @hdrs the extra headers (both owned by the caller, who
 * frees
 * @hdrs with curl_slist_free_all after the transfer). */
struct client_sink {
    char *data;
    size_t len, cap;
    uint64_t retry_after_ms;
    bool overflow;
};
int client_prepare(struct raftq_client *c, CURL *h, const char *base,
                   const struct client_req *r, struct client_sink *sink,
                   struct curl_slist **hdrs);

/* The answer of a finished transfer on @h into @a (its body parsed from
 * @sink, which is emptied). */
void client_answer_of(CURL *h, struct client_sink *sink, size_t base,
                      struct client_answer *a);

/*
 * @r sent to the managers in turn, from the preferred one, until one
 * answers other than 503 or the client's timeout passes. RAFTQ_OK with
 * @a filled (any status but 503; the caller clears it with
 * client_answer_clear), RAFTQ_ERR_UNAVAILABLE or RAFTQ_ERR_CONNECT with @e.
 */
int client_send(struct raftq_client *c, const struct client_req *r,
                struct client_answer *a, struct raftq_error *e);

/* @r sent once to the manager at URL @base: RAFTQ_OK with @a (any
 * status), RAFTQ_ERR_CONNECT, RAFTQ_ERR_CANCELED or RAFTQ_ERR_PROTOCOL. */
int client_send_at(struct raftq_client *c, const char *base,
                   const struct client_req *r, struct client_answer *a,
                   struct raftq_error *e);
void client_answer_clear(struct client_answer *a);

/* The error of a failure answer (status, code, message) in @e; returns
 * its RAFTQ_ERR_*. */
int client_fail(const struct client_answer *a, struct raftq_error *e);

/* Sets @e (may be NULL) to @err with a message; returns @err. */
int client_error(struct raftq_error *e, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The RAFTQ_ERR_* of a failure status. */
int client_err_of_status(long status);

/* @s percent-escaped into @out (at most @n bytes); false if too long. */
bool client_escape(const char *s, char *out, size_t n);

/* One JSON call: @method @path with @body (borrowed, may be NULL);
 * RAFTQ_OK with the success body in @answer (if not NULL; the caller
 * decrefs), or the failure in @e. */
int client_json(struct raftq_client *c, const char *method, const char *path,
                json_t *body, uint32_t extra_ms, json_t **answer,
                struct raftq_error *e);

#endif /* CLIENT_H */
