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
 *     REGISTERING --[200 naming another cluster uid]--> REGISTERING,
 *         refused, again after REFUSED_RETRY_MS          [on_registered]
 *     REGISTERED --[200 naming another cluster uid]--> REGISTERING,
 *         refused                                        [on_heartbeat]
 *
 * Binding (DESIGN.md section 17). Every answer to a registration or a
 * heartbeat names the managers' cluster uid; the broker's bind callback
 * keeps the first it sees (in its data directory) and refuses any other.
 * A bound broker names its uid in every request, so managers of another
 * cluster refuse it (409 naming theirs) before registering it:
 * a broker never registers with managers of another cluster, as after
 * every manager lost its data, so they never order its replicas deleted.
 * An answer without a uid (managers of an earlier release) binds nothing.
 *
 * One line is logged per change of state (registered, a manager
 * unreachable, heartbeats answered again), never one per heartbeat.
 */
#ifndef REGISTRAR_H
#define REGISTRAR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define REGISTRAR_MANAGERS_MAX 16

struct rq_tls;

/* Binds the broker to the cluster @uid: 0 when it is bound to it (now or
 * before), RQ_EXISTS with @why when bound to another, RQ_IO with @why
 * when the binding cannot be written. */
typedef int (*registrar_bind_cb)(void *data, uint64_t uid, char *why,
                                 size_t whyn);

struct registrar_config {
    uint64_t id;
    const char *raft_addr;
    const char *http_addr;
    const char *managers; /* "URL,URL,..."; "HOST:PORT" means http:// */
    /* The broker-to-manager key (RQ_KEY_HTTP_B2M), RQ_KEY_SIZE bytes,
     * borrowed: it must outlive the registrar. */
    const uint8_t *b2m_key;
    unsigned heartbeat_ms; /* 0: 1000. */
    /* TLS for every call (rq_httpc_set_tls), or NULL. Borrowed. */
    const struct rq_tls *tls;
    /* Called with the summary's data; NULL binds nothing. */
    registrar_bind_cb bind;
    /* The uid the broker is bound to already, 0 if none: every
     * registration and heartbeat names it, and managers of another
     * cluster answer 409 instead of registering the broker. */
    uint64_t cluster_uid;
};

/* A heartbeat's body: a new reference to a JSON object with its
 * "replicas" list (and anything else the broker reports). */
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

/* true while registered; otherwise false with why not (not registered
 * yet, or refused by a manager cluster of another uid). */
bool registrar_ready(const struct registrar *r, char *why, size_t whyn);

/* Stops, cancels the request under way, frees @r, then calls @cb. */
void registrar_close(struct registrar *r, void (*cb)(void *data), void *data);

#endif /* REGISTRAR_H */
