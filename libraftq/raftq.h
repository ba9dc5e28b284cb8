/*
 * libraftq: the C client of raftq (API.md), on libcurl and jansson.
 *
 * A client holds the managers' addresses and credentials. Every call goes
 * to one manager and moves on to the next on a refused connection or a
 * 503 (no quorum, no leader yet), until the client's timeout; any manager
 * serves any request, so which one answers does not matter.
 *
 * - The producer makes one-message-at-a-time code fast: raftq_produce()
 *   queues the message and returns; a thread of the producer's own gathers
 *   the messages of each partition into batches (sent when the batch is
 *   full or has waited its linger) and sends them with several requests in
 *   flight, one per partition at a time, so each partition keeps the order
 *   of the calls. Each batch carries the producer's id and a sequence
 *   number, and a batch whose answer was lost is sent again with the same
 *   pair: the partition appends it once. Each message's outcome, its
 *   offset or why it failed, comes to a delivery callback.
 * - The group consumer joins a consumer group (API.md section 2b), sends
 *   its heartbeats from a thread of its own, polls records of the
 *   partitions assigned to it and commits what it has processed.
 * - Admin and topic calls are blocking.
 *
 * Threads: a client, producer or consumer may be used from any thread;
 * the functions of one object are safe to call concurrently except the
 * _free()s. Callbacks run on the producer's thread: they must not block
 * long and must not call raftq_producer_flush() or raftq_producer_free().
 *
 * Errors: functions return RAFTQ_OK (0) or a negative RAFTQ_ERR_*; those
 * taking a struct raftq_error fill it with the server's code and message
 * when the server answered a failure (API.md: "code"), or with a sentence
 * of the library's.
 *
 * Build against it with `pkg-config --cflags --libs raftq`.
 */
#ifndef RAFTQ_H
#define RAFTQ_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RAFTQ_API __attribute__((visibility("default")))

/* The library's release ("0.17.0"). */
RAFTQ_API const char *raftq_version(void);

/* ---- Errors ---- */

enum raftq_err {
    RAFTQ_OK = 0,
    RAFTQ_ERR_INVALID = -1,     /* A bad argument, or the server said 400. */
    RAFTQ_ERR_NOT_FOUND = -2,   /* 404: no such topic, group, partition... */
    RAFTQ_ERR_CONFLICT = -3,    /* 409: exists, or a group member fenced. */
    RAFTQ_ERR_TOO_LARGE = -4,   /* 413: a message or batch too large. */
    RAFTQ_ERR_AUTH = -5,        /* 401 or 403. */
    RAFTQ_ERR_UNAVAILABLE = -6, /* 503s until the timeout: no quorum. */
    RAFTQ_ERR_CONNECT = -7,     /* No manager could be reached. */
    RAFTQ_ERR_TIMEOUT = -8,     /* A flush or a delivery ran out of time. */
    RAFTQ_ERR_SERVER = -9,      /* Another failure status (5xx, ...). */
    RAFTQ_ERR_NOMEM = -10,
    RAFTQ_ERR_CLOSED = -11,   /* The producer or consumer is shutting down. */
    RAFTQ_ERR_PROTOCOL = -12, /* An answer the library cannot read. */
    RAFTQ_ERR_CANCELED = -13, /* The client's stop flag was set. */
};

/* What went wrong, for a person and for a program. */
struct raftq_error {
    int err;         /* A RAFTQ_ERR_*. */
    int http_status; /* The server's answer, or 0 when none came. */
    char code[48];   /* The server's "code" (topic_not_found, ...) or "". */
    char message[256];
};

/* A short phrase for @err ("not found"). */
RAFTQ_API const char *raftq_err_str(int err);

/* ---- Client ---- */

struct raftq_client;

struct raftq_config {
    /* The managers' base URLs, comma-separated
     * ("http://127.0.0.1:8080,http://127.0.0.1:8081"). Required. */
    const char *managers;
    const char *token;   /* Bearer token, or NULL. */
    const char *ca_file; /* PEM CA for https:// managers, or NULL. */
    /* How long a blocking call keeps trying unavailable managers, and the
     * producer a batch; 0 means 30000. */
    uint32_t timeout_ms;
    /* A blocking call gives up after this many rounds over the managers
     * in which none could be connected to (0: only at timeout_ms), for a
     * program that would rather say "not running" at once. */
    uint32_t connect_rounds;
    /* A flag (set by a signal handler, say) that ends the blocking calls
     * in progress within about 50 ms with RAFTQ_ERR_CANCELED; or NULL.
     * Borrowed: it outlives the client. */
    const volatile sig_atomic_t *stop;
};

/* Strings are copied. RAFTQ_OK, RAFTQ_ERR_INVALID (no or bad managers,
 * with @e saying which) or RAFTQ_ERR_NOMEM. */
RAFTQ_API int raftq_client_new(const struct raftq_config *cfg,
                               struct raftq_client **out,
                               struct raftq_error *e);
/* After every producer and consumer made from it is freed. NULL: no-op. */
RAFTQ_API void raftq_client_free(struct raftq_client *c);

/*
 * Any route of the API: @method on @path (with its query string) with
 * @body_json (NULL for none). On RAFTQ_OK the server answered success and
 * @answer_json (if not NULL) receives the answer's JSON, which the caller
 * frees with free(); otherwise @e says why.
 */
RAFTQ_API int raftq_call(struct raftq_client *c, const char *method,
                         const char *path, const char *body_json,
                         char **answer_json, struct raftq_error *e);

/* Any request's whole answer, whatever its status. */
struct raftq_response {
    int status;
    char *body; /* NUL-terminated; freed by raftq_response_clear(). */
    size_t body_len;
    uint64_t retry_after_ms; /* From Retry-After, 0 if absent. */
    char manager[512];       /* The base URL that answered. */
};

/*
 * @method on @path (with its query string) with @body (@body_len bytes of
 * @content_type, NULL for application/json; NULL body for none), sent to
 * the managers in turn as every call is; @extra_ms is added to each
 * attempt's time limit (a long poll's wait). RAFTQ_OK once a manager
 * answered anything but 503, in @out (clear it with
 * raftq_response_clear()); RAFTQ_ERR_UNAVAILABLE, RAFTQ_ERR_CONNECT or
 * RAFTQ_ERR_CANCELED otherwise, with @e.
 */
RAFTQ_API int raftq_request(struct raftq_client *c, const char *method,
                            const char *path, const char *content_type,
                            const void *body, size_t body_len,
                            uint32_t extra_ms, struct raftq_response *out,
                            struct raftq_error *e);

/* The same, once, to the manager at base URL @manager (which need not be
 * one of the client's), within @limit_ms (0: the client's timeout); a 503
 * is an answer here. */
RAFTQ_API int raftq_request_at(struct raftq_client *c, const char *manager,
                               const char *method, const char *path,
                               const char *content_type, const void *body,
                               size_t body_len, uint32_t limit_ms,
                               struct raftq_response *out,
                               struct raftq_error *e);

/* Frees what @r holds. NULL: no-op. */
RAFTQ_API void raftq_response_clear(struct raftq_response *r);

/* ---- Topics and admin ---- */

/* Creates @topic with @partitions partitions (0: the cluster's default).
 * RAFTQ_ERR_CONFLICT (code topic_exists) if it exists. */
RAFTQ_API int raftq_topic_create(struct raftq_client *c, const char *topic,
                                 uint32_t partitions, struct raftq_error *e);
/* The number of partitions of @topic in @out. */
RAFTQ_API int raftq_topic_partitions(struct raftq_client *c, const char *topic,
                                     uint32_t *out, struct raftq_error *e);
/* Deletes @topic and its records (admin). */
RAFTQ_API int raftq_topic_delete(struct raftq_client *c, const char *topic,
                                 struct raftq_error *e);

/* ---- Producer ---- */

struct raftq_producer;

struct raftq_producer_config {
    /* How long a message may wait for more to share its batch, in
     * microseconds (default 1000). 0 sends at once what is there. */
    uint64_t linger_us;
    /* A batch is sent once its messages reach this many bytes of keys and
     * values (default 262144)... */
    size_t batch_bytes;
    /* ...or this many messages (default and most 10000). */
    uint32_t batch_records;
    /* Requests in flight at once, over every partition (default 16). */
    uint32_t max_in_flight;
    /* How many times a batch is sent again after a lost answer, a refused
     * connection or a 5xx before its messages fail (default 10), within
     * the client's timeout. */
    uint32_t retries;
    /* Bytes of messages queued and not yet delivered beyond which
     * raftq_produce() waits for room (default 64 MiB). */
    size_t buffer_bytes;
    /* Where a message without key or partition goes. */
    enum raftq_partitioner {
        /* To one partition until its batch is sent, then the next (the
         * default: the fewest, fullest batches). */
        RAFTQ_PARTITIONER_STICKY = 0,
        /* Each message to the next partition, as the managers place a
         * batch without partitions. */
        RAFTQ_PARTITIONER_ROUND_ROBIN = 1,
    } partitioner;
};

/* The defaults above. */
RAFTQ_API void raftq_producer_config_init(struct raftq_producer_config *pc);

/* Each message's outcome: its partition and offset, or why it failed
 * (@err non-zero, @e set). Borrowed for the call. */
struct raftq_delivery {
    const char *topic;
    uint32_t partition;
    uint64_t offset;
    int err;
    const struct raftq_error *e;
};
typedef void (*raftq_delivery_cb)(const struct raftq_delivery *d, void *opaque);

/* Starts the producer's thread. @pc NULL: the defaults. */
RAFTQ_API int raftq_producer_new(struct raftq_client *c,
                                 const struct raftq_producer_config *pc,
                                 struct raftq_producer **out,
                                 struct raftq_error *e);

#define RAFTQ_PARTITION_ANY UINT32_MAX

/* One message. @key NULL: none. Keys and values are UTF-8 text without
 * NUL bytes (API.md). */
struct raftq_message {
    const char *topic;
    /* RAFTQ_PARTITION_ANY: the key's partition (the same hash as the
     * managers'), else the partitioner's choice. */
    uint32_t partition;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
};

/*
 * Queues a copy of @m and returns; @cb (may be NULL) later gets its
 * outcome with @opaque. The first message to a topic registers the
 * producer for it and learns its partitions first (blocking; the topic is
 * created with the default partition count if absent). RAFTQ_OK, or an
 * error for @m alone (a bad topic or message, RAFTQ_ERR_CLOSED), in which
 * case @cb is never called.
 */
RAFTQ_API int raftq_produce(struct raftq_producer *p,
                            const struct raftq_message *m, raftq_delivery_cb cb,
                            void *opaque, struct raftq_error *e);

/* Sends what is queued without waiting for linger and returns once no
 * message is left undelivered (every one queued before the call, and any
 * queued by other threads meanwhile, has had its callback), or after
 * @timeout_ms (RAFTQ_ERR_TIMEOUT). */
RAFTQ_API int raftq_producer_flush(struct raftq_producer *p,
                                   uint32_t timeout_ms);

/* Counters since the start. */
struct raftq_producer_stats {
    uint64_t messages; /* Delivered. */
    uint64_t failed;   /* Failed messages. */
    uint64_t requests; /* Batches sent, retries included. */
    uint64_t retries;  /* Batches sent again. */
};
RAFTQ_API void raftq_producer_stats(struct raftq_producer *p,
                                    struct raftq_producer_stats *out);

/* Flushes for up to the client's timeout, fails what is left
 * (RAFTQ_ERR_CLOSED), stops the thread and frees. NULL: no-op. */
RAFTQ_API void raftq_producer_free(struct raftq_producer *p);

/* ---- Group consumer ---- */

struct raftq_consumer;

struct raftq_consumer_config {
    const char *group; /* Required. */
    const char *topic; /* Required; must exist. */
    /* The session timeout (API.md 2b); 0: the server's default. */
    uint32_t session_timeout_ms;
};

/* A record polled. Borrowed from its struct raftq_records. */
struct raftq_record {
    uint32_t partition;
    uint64_t offset;
    int64_t timestamp_ms;
    const char *key; /* NULL: none. NUL-terminated. */
    size_t key_len;
    const char *value; /* NUL-terminated. */
    size_t value_len;
};

struct raftq_records {
    size_t n;
    struct raftq_record *records;
};

/* Frees what raftq_consumer_poll() returned. NULL: no-op. */
RAFTQ_API void raftq_records_free(struct raftq_records *r);

/* Joins the group and starts the heartbeat thread. */
RAFTQ_API int raftq_consumer_new(struct raftq_client *c,
                                 const struct raftq_consumer_config *cc,
                                 struct raftq_consumer **out,
                                 struct raftq_error *e);

/*
 * Up to @max records (1 to 10000) of the member's partitions, waiting up
 * to @wait_ms for some; @out gets a possibly empty set to free with
 * raftq_records_free(). A member the group removed (a missed session, a
 * paused process) joins again on its own, and the records of partitions
 * it lost are fetched again by their new owner (at-least-once).
 */
RAFTQ_API int raftq_consumer_poll(struct raftq_consumer *k, uint32_t max,
                                  uint32_t wait_ms, struct raftq_records **out,
                                  struct raftq_error *e);

/* Commits every record polled so far of the partitions the member still
 * owns: the group resumes after them. RAFTQ_ERR_CONFLICT when the group's
 * generation moved on (the records will be fetched again). */
RAFTQ_API int raftq_consumer_commit(struct raftq_consumer *k,
                                    struct raftq_error *e);

/* The partitions assigned now and the generation. @parts may be NULL. */
RAFTQ_API size_t raftq_consumer_assignment(struct raftq_consumer *k,
                                           uint32_t *parts, size_t cap,
                                           uint64_t *generation);

/* Leaves the group (its partitions go to the others at once), stops the
 * thread and frees. NULL: no-op. */
RAFTQ_API void raftq_consumer_free(struct raftq_consumer *k);

#ifdef __cplusplus
}
#endif

#endif /* RAFTQ_H */
