/*
 * The manager's configuration, parsed and checked once by manager.c
 * (check, run by rq_main) from flags and the environment, and the request
 * counters that GET /metrics shows (mmetrics.c). Every module reads the
 * configuration through the core (mcore_config); none parses flags.
 */
#ifndef MCONFIG_H
#define MCONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct manager_config {
    uint64_t id;
    const char *raft_addr; /* Where to listen; "" means the --peers entry. */
    const char *raft_bind; /* Where to listen if not raft_addr; "": it. */
    const char *http_addr;
    const char *http_bind; /* Where to listen; "" means http_addr. */
    const char *peers;
    const char *data;
    const char *secret;
    uint64_t cluster_id;
    const char *admin_token; /* "" only with --admin-open. */
    bool admin_open;         /* raftq dev: the admin API needs no token. */
    const char *auth;        /* "none" or "tokens" (public API). */
    bool auth_tokens;        /* --auth tokens */
    uint64_t election_ms;
    uint64_t heartbeat_ms;
    uint64_t broker_dead_ms;
    uint64_t manager_gone_ms; /* A joined manager silent this long leaves. */
    uint64_t broker_suspect_ms;
    uint64_t max_message_bytes;
    uint64_t snapshot_threshold;
    uint64_t default_partitions; /* Of a topic created without a count. */
    /* How long a consume forwarded to the leader may take to propose its
     * advance (mcore_consume_deadline). */
    uint64_t consume_deadline_ms;
    /* Between the leader's samples of topic traffic (mtraffic.h). */
    uint64_t traffic_sample_ms;
    uint64_t http_idle_timeout_s;
    uint64_t http_max_connections;
    uint64_t auth_clock_skew_ms;
    uint64_t http_max_buffered;
    uint64_t auth_replay_cache_entries;
    const char *log_level;
    const char *log_format;
    const char *tls_cert; /* All three or none (rq_tls_check_flags). */
    const char *tls_key;
    const char *tls_ca;
    /* Several commands of one loop turn as one Raft entry (mbatch.h). */
    bool propose_batches;
};

struct manager_stats {
    uint64_t proposals;
    uint64_t proposal_errors;
    uint64_t forwarded;
    uint64_t produced;
    uint64_t consumed;
    uint64_t read_barriers;
    uint64_t read_index;
    uint64_t forwarded_internal; /* Of forwarded: /internal routes. */
    uint64_t produce_calls;      /* Broker calls of merged produces. */
    uint64_t consume_advances;   /* Offset advances proposed by consumes. */
    uint64_t consume_reads;      /* Broker reads of consumes. */
    uint64_t proposal_batches;   /* Batch entries proposed. */
    uint64_t batched_proposals;  /* Commands proposed inside them. */
    uint64_t broker_retries;     /* Pauses before a broker call again. */
    uint64_t reconcile_rounds;   /* The leader's reconcile rounds run, */
    uint64_t repair_rounds;      /* and repair rounds, */
    uint64_t reconcile_us;       /* and the time they took. */
    uint64_t repair_us;
    uint64_t traffic_rounds; /* The leader's traffic samples taken, */
    uint64_t traffic_us;     /* and the time they took. */
};

#endif /* MCONFIG_H */
