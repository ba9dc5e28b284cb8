/*
 * The broker's membership in the manager cluster (manager/README.md): it
 * registers (POST /internal/brokers/register) when it starts, then
 * heartbeats (POST /internal/brokers/{id}/heartbeat) every second with a
 * summary of its replicas. Any manager will do (a follower forwards to its
 * leader): requests go to one manager until it fails, then to the next in
 * the list. A heartbeat answered 404 (the managers do not know this
 * broker) makes it register again. Requests are signed with the
 * broker-to-manager key (rq_sig.h) as "broker-ID"; the secret itself is
 * never sent.
 *
 *     REGISTERING --[200 to register]--> REGISTERED      [on_registered]
 *     REGISTERING --[anything else]--> REGISTERING, next manager, backoff
 *     REGISTERED --[200 to heartbeat]--> REGISTERED      [on_heartbeat]
 *     REGISTERED --[404 to heartbeat]--> REGISTERING     [on_heartbeat]
 *     REGISTERED --[failure]--> REGISTERED, next manager [on_heartbeat]
 *
 * One line is logged per change of state (registered, a manager
 * unreachable, heartbeats answered again), never one per heartbeat.
 */
#ifndef REGISTRAR_H
#define REGISTRAR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define REGISTRAR_MANAGERS_MAX 16

struct rq_tls;

struct registrar_config {
    uint64_t id;
    const char *raft_addr;
    const char *http_addr;
    const char *managers;  /* "URL,URL,..."; "HOST:PORT" means http:// */
    /* The broker-to-manager key (RQ_KEY_HTTP_B2M), RQ_KEY_SIZE bytes,
     * borrowed: it must outlive the registrar. */
    const uint8_t *b2m_key;
    unsigned heartbeat_ms; /* 0: 1000. */
    /* TLS for every call (rq_httpc_set_tls), or NULL. Borrowed. */
    const struct rq_tls *tls;
};

/* The "replicas" list of a heartbeat (a new reference to a JSON array). */
typedef json_t *(*registrar_summary_cb)(void *data);

struct registrar;

/*
 * Parses the manager list and starts registering (on the next loop turn).
 * RQ_INVALID with @why for a bad or empty list, RQ_NOMEM/RQ_IO otherwise.
 * All strings are copied.
 */
int registrar_new(uv_loop_t *loop, const struct registrar_config *cfg,
                  registrar_summary_cb summary, void *data,
                  struct registrar **out, char *why, size_t whyn);

/* Stops, cancels the request under way, frees @r, then calls @cb. */
void registrar_close(struct registrar *r, void (*cb)(void *data), void *data);

#endif /* REGISTRAR_H */
