/*
 * The ATM terminal: one member of an ATM network replicated with Raft
 * (API.md section 5).
 *
 * The process reads one command per line from standard input and answers
 * each with one line. Commands run one at a time, in order:
 *
 * - Writes (deposit, withdraw, transfer) get a request id (origin, seq),
 *   where origin is drawn at random when the process starts. If this ATM is
 *   the ready leader it proposes the write itself; otherwise it forwards the
 *   write over RPC to the leader it knows. Any failure (no leader yet, the
 *   leader changed, a lost reply) is retried with the same request id, and
 *   the ledger applies a request id at most once, so a retry never applies
 *   twice. After ANSWER_MS without a definite outcome the answer is
 *   "error: no quorum ...".
 * - balance is linearizable: the leader runs a barrier (an entry of its
 *   current term, committed by a majority) and reads its ledger after it has
 *   applied; a follower forwards the read to the leader.
 * - status answers from local Raft state at once.
 *
 * The Raft port also carries the forwarding RPCs (rq_mux, rq_rpc), so each
 * ATM listens on exactly the address its peers know it by.
 *
 * At the end of standard input the ATM keeps serving its peers; SIGTERM,
 * SIGINT, SIGHUP or "quit" shut it down cleanly.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "atm_cmd.h"
#include "atm_err.h"
#include "atm_fsm.h"
#include "atm_ledger.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_log.h"
#include "rq_main.h"
#include "rq_mux.h"
#include "rq_node.h"
#include "rq_rpc.h"
#include "rq_tls.h"
#include "rq_wire.h"

#define LOG_TAG "atm"

#define ATM_GROUP 1         /* The single Raft group of an ATM network. */
#define ANSWER_MS 4500      /* "no quorum" comes within 5 s (API.md). */
#define RETRY_MS 100        /* Pause before trying again. */
#define RPC_TIMEOUT_MS 1500 /* One forwarding attempt. */
#define LINE_MAX_LEN 1024
#define QUEUE_MAX 256 /* Lines read ahead before reading pauses. */

/* Forwarding RPC methods. Bodies: WRITE an atm_write, reply an atm_result;
 * BALANCE the account name, reply balance:u64 (two's complement). */
enum { RPC_WRITE = 1, RPC_BALANCE = 2 };

struct atm_config {
    uint64_t id;
    const char *peers;
    const char *data;
    const char *secret;
    uint64_t cluster_id;
    uint64_t election_ms;
    uint64_t heartbeat_ms;
    uint64_t snapshot_threshold;
    uint64_t snapshot_trailing;
    uint64_t segment_size;
    const char *log_level;
    const char *log_format;
    const char *tls_cert; /* All three or none: TLS on the Raft port. */
    const char *tls_key;
    const char *tls_ca;
};

static const struct rq_opt options[] = {
    {"id", "RAFTQ_ID", RQ_OPT_U64, NULL, true, offsetof(struct atm_config, id),
     "this ATM's id, one of the ids in --peers"},
    {"peers", "RAFTQ_PEERS", RQ_OPT_STR, NULL, true,
     offsetof(struct atm_config, peers),
     "every ATM of the network as ID=HOST:PORT,... (this one included)"},
    {"data", "RAFTQ_DATA", RQ_OPT_STR, NULL, true,
     offsetof(struct atm_config, data), "data directory (Raft log, snapshots)"},
    {"cluster-secret", "RAFTQ_CLUSTER_SECRET", RQ_OPT_SECRET, NULL, false,
     offsetof(struct atm_config, secret),
     "the network's shared secret, 32 bytes or more of random data, the same "
     "on every ATM (required)"},
    {"cluster-id", "RAFTQ_CLUSTER_ID", RQ_OPT_U64, "1", false,
     offsetof(struct atm_config, cluster_id), "network id; peers must match"},
    {"election-timeout-ms", "RAFTQ_ELECTION_TIMEOUT_MS", RQ_OPT_U64, "1000",
     false, offsetof(struct atm_config, election_ms), "Raft election timeout"},
    {"heartbeat-ms", "RAFTQ_HEARTBEAT_MS", RQ_OPT_U64, "100", false,
     offsetof(struct atm_config, heartbeat_ms), "Raft heartbeat interval"},
    {"snapshot-threshold", "RAFTQ_SNAPSHOT_THRESHOLD", RQ_OPT_U64, "1024",
     false, offsetof(struct atm_config, snapshot_threshold),
     "entries between automatic snapshots"},
    {"snapshot-trailing", "RAFTQ_SNAPSHOT_TRAILING", RQ_OPT_U64, "128", false,
     offsetof(struct atm_config, snapshot_trailing),
     "entries kept in the log after a snapshot"},
    {"segment-size", "RAFTQ_SEGMENT_SIZE", RQ_OPT_U64, "1048576", false,
     offsetof(struct atm_config, segment_size), "Raft log segment bytes"},
    RQ_LOG_OPTIONS(struct atm_config),
    RQ_TLS_OPTIONS(struct atm_config),
};

/* What a line of input turned out to be: text to parse, or one that is
 * answered with an error without being parsed. */
enum line_kind {
    LINE_TEXT,
    LINE_TOO_LONG, /* Over LINE_MAX_LEN; its text is dropped. */
    LINE_NUL,      /* Holds a NUL byte, which would cut its text short. */
};

struct line {
    struct line *next;
    enum line_kind kind;
    char text[];
};

struct atm;

/*
 * One command being answered. It lives until it is answered and every
 * callback it started (apply, barrier, RPC) has come back, whichever is
 * later: a late callback after a "no quorum" answer only drops its ref.
 */
struct op {
    struct atm *atm;
    struct atm_cmd cmd;
    struct atm_write write; /* Writes only. */
    uint64_t deadline;      /* uv_now() value. */
    unsigned refs;          /* Outstanding callbacks, +1 until answered. */
    bool answered;
    bool sent; /* A write may have reached a leader. */
};

struct atm {
    struct atm_config cfg;
    struct rq_peer peers[RQ_PEERS_MAX];
    size_t n_peers;
    const char *self_address;
    uv_loop_t *loop;
    struct rq_mux *mux;
    struct rq_tls *tls; /* NULL without --tls-*. */
    struct rq_rpc *rpc;
    struct raft_uv_transport transport;
    struct rq_node *node;
    struct atm_ledger *ledger;
    uint64_t origin;
    uint64_t seq;

    /* Standard input: a tty, a pipe, or a regular file read with uv_fs. */
    uv_handle_type in_type;
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
    } in;
    bool in_open;
    bool in_reading;
    bool in_eof;
    uv_fs_t in_fs;
    char in_fs_buf[4096];
    char partial[LINE_MAX_LEN + 1];
    size_t partial_len;
    bool discarding; /* Inside an over-long line. */
    bool nul;        /* The line so far holds a NUL byte. */
    struct line *queue_head;
    struct line *queue_tail;
    unsigned queued;
    bool prompt;

    struct op *current;
    uv_timer_t retry_timer;
    uv_timer_t deadline_timer;
    bool closing;
};

static void process_next(struct atm *a);
static void attempt(struct op *op);
static void shutdown_begin(struct atm *a);

/* ---- Answers ---- */

static void out_line(const char *s)
{
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void show_prompt(struct atm *a)
{
    if (a->prompt && !a->closing && !a->in_eof) {
        printf("atm-%" PRIu64 "> ", a->cfg.id);
        fflush(stdout);
    }
}

static void op_unref(struct op *op)
{
    assert(op->refs > 0);
    if (--op->refs == 0) {
        free(op);
    }
}

/* Prints the answer and moves on to the next line. */
static void op_answer(struct op *op, const char *text)
{
    struct atm *a = op->atm;
    assert(!op->answered);
    op->answered = true;
    out_line(text);
    uv_timer_stop(&a->retry_timer);
    uv_timer_stop(&a->deadline_timer);
    a->current = NULL;
    op_unref(op);
    show_prompt(a);
    process_next(a);
}

static void answer_result(struct op *op, const struct atm_result *r)
{
    char line[256];
    char b1[32];
    char b2[32];
    const struct atm_cmd *c = &op->cmd;

    atm_amount_format(r->balance, b1, sizeof b1);
    atm_amount_format(r->to_balance, b2, sizeof b2);
    switch (r->status) {
        case 0:
            if (c->op == ATM_TRANSFER) {
                snprintf(line, sizeof line, "ok %s %s %s %s", c->account, b1,
                         c->to, b2);
            } else {
                snprintf(line, sizeof line, "ok %s %s", c->account, b1);
            }
            break;
        case ATM_INSUFFICIENT:
            snprintf(line, sizeof line,
                     "error: insufficient funds: %s has %s, nothing changed",
                     c->account, b1);
            break;
        case ATM_OVERFLOW:
            snprintf(line, sizeof line,
                     "error: the balance of %s would overflow, nothing changed",
                     c->op == ATM_TRANSFER ? c->to : c->account);
            break;
        default:
            snprintf(line, sizeof line, "error: request refused: %s",
                     atm_strerror(r->status));
            break;
    }
    op_answer(op, line);
}

static void answer_balance(struct op *op, int64_t cents)
{
    char line[160];
    char b[32];
    atm_amount_format(cents, b, sizeof b);
    snprintf(line, sizeof line, "ok %s %s", op->cmd.account, b);
    op_answer(op, line);
}

/* ---- Retries and the deadline ---- */

static void on_retry(uv_timer_t *t)
{
    struct atm *a = t->data;
    if (a->current != NULL) {
        attempt(a->current);
    }
}

static void retry_later(struct op *op)
{
    if (!op->answered && !op->atm->closing) {
        uv_timer_start(&op->atm->retry_timer, on_retry, RETRY_MS, 0);
    }
}

static void on_deadline(uv_timer_t *t)
{
    struct atm *a = t->data;
    struct op *op = a->current;
    if (op == NULL) {
        return;
    }
    if (op->sent) {
        op_answer(op,
                  "error: no quorum: not confirmed by a majority within 5 s; "
                  "it may still take effect");
    } else {
        op_answer(op,
                  "error: no quorum: no leader with a majority is reachable");
    }
}

/* ---- Local execution (this ATM is the ready leader) ---- */

static void on_local_write(void *data, int status, uint64_t result)
{
    (void)result;
    struct op *op = data;
    struct atm *a = op->atm;
    if (!op->answered) {
        struct atm_result r;
        if (status == 0 &&
            atm_ledger_result(a->ledger, op->write.rid, &r) == 0) {
            answer_result(op, &r);
        } else if (status == RQ_SHUTDOWN) {
            op_answer(op, "error: shutting down");
        } else {
            retry_later(op);
        }
    }
    op_unref(op);
}

static void on_local_barrier(void *data, int status, uint64_t result)
{
    (void)result;
    struct op *op = data;
    struct atm *a = op->atm;
    if (!op->answered) {
        if (status == 0) {
            answer_balance(op, atm_ledger_balance(a->ledger, op->cmd.account));
        } else if (status == RQ_SHUTDOWN) {
            op_answer(op, "error: shutting down");
        } else {
            retry_later(op);
        }
    }
    op_unref(op);
}

/* ---- Forwarding (a follower sends the command to its leader) ---- */

static void on_forwarded(void *data, int status, const uint8_t *body,
                         size_t len)
{
    struct op *op = data;
    if (!op->answered) {
        struct atm_result r;
        struct rq_cursor cur;
        uint64_t cents;
        if (status == RQ_SHUTDOWN && op->atm->closing) {
            op_answer(op, "error: shutting down");
        } else if (status != 0) {
            rq_log(RQ_DEBUG, "forwarding failed: %s, retrying",
                   rq_strerror(status));
            retry_later(op);
        } else if (op->cmd.op == ATM_BALANCE) {
            rq_cursor_init(&cur, body, len);
            if (rq_wire_get_u64(&cur, &cents) == 0) {
                answer_balance(op, (int64_t)cents);
            } else {
                retry_later(op);
            }
        } else if (atm_result_decode(body, len, &r) == 0) {
            answer_result(op, &r);
        } else {
            retry_later(op);
        }
    }
    op_unref(op);
}

static void attempt(struct op *op)
{
    struct atm *a = op->atm;
    struct rq_node_info info;
    struct rq_buf body;
    int rv;

    if (op->answered || a->closing) {
        return;
    }
    rq_buf_init(&body);
    if (op->cmd.op == ATM_BALANCE) {
        rq_buf_put_bytes(&body, op->cmd.account, strlen(op->cmd.account));
    } else {
        atm_write_encode(&op->write, &body);
    }
    if (body.err != 0) {
        rq_buf_close(&body); /* UNTESTED: ENOMEM only. */
        retry_later(op);
        return;
    }

    rq_node_info(a->node, &info);
    if (rq_node_ready(a->node)) {
        op->refs++;
        if (op->cmd.op == ATM_BALANCE) {
            rv = rq_node_barrier(a->node, on_local_barrier, op);
        } else {
            rv =
                rq_node_apply(a->node, body.base, body.len, on_local_write, op);
            if (rv == 0) {
                op->sent = true;
            }
        }
        if (rv != 0) {
            op->refs--;
            retry_later(op);
        }
    } else if (info.leader_id != 0 && info.leader_id != a->cfg.id) {
        uint64_t now = uv_now(a->loop);
        uint64_t left = op->deadline > now ? op->deadline - now : 1;
        unsigned timeout =
            left < RPC_TIMEOUT_MS ? (unsigned)left : RPC_TIMEOUT_MS;
        op->refs++;
        rv = rq_rpc_call(a->rpc, info.leader_address,
                         op->cmd.op == ATM_BALANCE ? RPC_BALANCE : RPC_WRITE,
                         body.base, body.len, timeout, on_forwarded, op);
        if (rv != 0) {
            op->refs--;
            retry_later(op);
        } else if (op->cmd.op != ATM_BALANCE) {
            op->sent = true;
        }
    } else {
        retry_later(op); /* No leader known yet: an election is under way. */
    }
    rq_buf_close(&body);
}

/* ---- Serving forwarded commands (this ATM is the leader) ---- */

struct forwarded {
    struct atm *atm;
    struct rq_rpc_call *call;
    struct atm_rid rid;
    char account[ATM_ACCOUNT_MAX];
};

static void reply_result(struct rq_rpc_call *call, const struct atm_result *r)
{
    struct rq_buf b;
    rq_buf_init(&b);
    atm_result_encode(r, &b);
    rq_rpc_reply(call, b.err, b.base, b.len);
    rq_buf_close(&b);
}

static void on_forwarded_write_applied(void *data, int status, uint64_t result)
{
    (void)result;
    struct forwarded *f = data;
    struct atm_result r;
    if (status == 0 && atm_ledger_result(f->atm->ledger, f->rid, &r) == 0) {
        reply_result(f->call, &r);
    } else {
        rq_rpc_reply(f->call, status != 0 ? status : RQ_NOTLEADER, NULL, 0);
    }
    free(f);
}

static void on_forwarded_barrier(void *data, int status, uint64_t result)
{
    (void)result;
    struct forwarded *f = data;
    if (status == 0) {
        uint8_t b[8];
        rq_wire_put_u64_at(
            b, (uint64_t)atm_ledger_balance(f->atm->ledger, f->account));
        rq_rpc_reply(f->call, 0, b, sizeof b);
    } else {
        rq_rpc_reply(f->call, status, NULL, 0);
    }
    free(f);
}

static void on_rpc(void *data, struct rq_rpc_call *call, uint32_t method,
                   const uint8_t *body, size_t len)
{
    struct atm *a = data;
    struct forwarded *f;
    struct atm_write w;
    struct atm_result r;
    int rv;

    if (a->closing || !rq_node_ready(a->node)) {
        rq_rpc_reply(call, RQ_NOTLEADER, NULL, 0);
        return;
    }
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        rq_rpc_reply(call, RQ_NOMEM, NULL, 0); /* UNTESTED: ENOMEM only. */
        return;
    }
    f->atm = a;
    f->call = call;
    switch (method) {
        case RPC_WRITE:
            if (atm_write_decode(body, len, &w) != 0) {
                rv = RQ_MALFORMED;
                break;
            }
            f->rid = w.rid;
            /* A retry of a request already applied gets its result again. */
            if (atm_ledger_result(a->ledger, w.rid, &r) == 0) {
                reply_result(call, &r);
                free(f);
                return;
            }
            rv = rq_node_apply(a->node, body, len, on_forwarded_write_applied,
                               f);
            break;
        case RPC_BALANCE:
            if (len == 0 || len >= ATM_ACCOUNT_MAX) {
                rv = RQ_MALFORMED;
                break;
            }
            memcpy(f->account, body, len);
            f->account[len] = '\0';
            if (!atm_account_valid(f->account)) {
                rv = RQ_MALFORMED;
                break;
            }
            rv = rq_node_barrier(a->node, on_forwarded_barrier, f);
            break;
        default:
            rv = RQ_INVALID;
            break;
    }
    if (rv != 0) {
        rq_log(RQ_DEBUG, "forwarded call %u from %" PRIu64 " refused: %s",
               method, rq_rpc_call_sender(call), rq_strerror(rv));
        rq_rpc_reply(call, rv, NULL, 0);
        free(f);
    }
}

/* ---- Commands ---- */

static void answer_status(struct op *op)
{
    struct rq_node_info info;
    char line[256];
    rq_node_info(op->atm->node, &info);
    const char *role =
        info.role == RQ_ROLE_UNAVAILABLE ? "follower" : rq_role_name(info.role);
    snprintf(line, sizeof line,
             "ok id=%" PRIu64 " role=%s leader=%" PRIu64 " term=%" PRIu64
             " commit=%" PRIu64 " applied=%" PRIu64,
             info.id, role, info.leader_id, info.term, info.commit,
             info.applied);
    op_answer(op, line);
}

static void run_line(struct atm *a, enum line_kind kind, const char *text)
{
    char why[256];
    char line[320];
    struct op *op = calloc(1, sizeof *op);

    if (op == NULL) {
        out_line("error: out of memory"); /* UNTESTED: ENOMEM only. */
        return;
    }
    op->atm = a;
    op->refs = 1;
    a->current = op;
    if (kind == LINE_TOO_LONG) {
        snprintf(line, sizeof line,
                 "error: line too long (at most %d characters)", LINE_MAX_LEN);
        op_answer(op, line);
        return;
    }
    if (kind == LINE_NUL) {
        op_answer(op, "error: the line holds a NUL byte");
        return;
    }
    int rv = atm_cmd_parse(text, &op->cmd, why, sizeof why);
    if (rv != 0) {
        snprintf(line, sizeof line, "error: %s", why);
        op_answer(op, line);
        return;
    }
    switch (op->cmd.op) {
        case ATM_EMPTY:
            a->current = NULL;
            op_unref(op);
            show_prompt(a);
            return;
        case ATM_HELP:
            for (size_t i = 0; atm_help_lines[i] != NULL; i++) {
                out_line(atm_help_lines[i]);
            }
            op_answer(op, "ok");
            return;
        case ATM_QUIT:
            /* Shut down first so no queued line runs after the answer. */
            a->current = NULL;
            op_unref(op);
            out_line("ok");
            shutdown_begin(a);
            return;
        case ATM_STATUS:
            answer_status(op);
            return;
        case ATM_DEPOSIT:
        case ATM_WITHDRAW:
        case ATM_TRANSFER:
            op->write.rid.origin = a->origin;
            op->write.rid.seq = ++a->seq;
            op->write.op = op->cmd.op;
            memcpy(op->write.account, op->cmd.account, ATM_ACCOUNT_MAX);
            memcpy(op->write.to, op->cmd.to, ATM_ACCOUNT_MAX);
            op->write.amount = op->cmd.amount;
            break;
        case ATM_BALANCE:
            break;
    }
    op->deadline = uv_now(a->loop) + ANSWER_MS;
    uv_timer_start(&a->deadline_timer, on_deadline, ANSWER_MS, 0);
    attempt(op);
}

/* ---- Standard input ---- */

static void input_resume(struct atm *a);

static void process_next(struct atm *a)
{
    while (a->current == NULL && a->queue_head != NULL && !a->closing) {
        struct line *l = a->queue_head;
        a->queue_head = l->next;
        if (a->queue_head == NULL) {
            a->queue_tail = NULL;
        }
        a->queued--;
        run_line(a, l->kind, l->text);
        free(l);
    }
    if (a->queued < QUEUE_MAX / 2) {
        input_resume(a);
    }
}

static void enqueue(struct atm *a, enum line_kind kind, const char *text,
                    size_t len)
{
    struct line *l = malloc(sizeof *l + len + 1);
    if (l == NULL) {
        out_line("error: out of memory"); /* UNTESTED: ENOMEM only. */
        return;
    }
    l->next = NULL;
    l->kind = kind;
    memcpy(l->text, text, len);
    l->text[len] = '\0';
    if (a->queue_tail != NULL) {
        a->queue_tail->next = l;
    } else {
        a->queue_head = l;
    }
    a->queue_tail = l;
    a->queued++;
}

/* Queues the line gathered so far and starts the next one. */
static void line_end(struct atm *a)
{
    if (a->discarding) {
        enqueue(a, LINE_TOO_LONG, "", 0);
    } else if (a->nul) {
        enqueue(a, LINE_NUL, "", 0);
    } else {
        enqueue(a, LINE_TEXT, a->partial, a->partial_len);
    }
    a->discarding = false;
    a->nul = false;
    a->partial_len = 0;
}

/* Splits input into lines; an over-long line, or one holding a NUL byte, is
 * answered with an error. */
static void consume(struct atm *a, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\n') {
            line_end(a);
        } else if (!a->discarding) {
            a->nul = a->nul || c == '\0';
            if (a->partial_len == LINE_MAX_LEN) {
                a->discarding = true;
            } else {
                a->partial[a->partial_len++] = c;
            }
        }
    }
}

static void input_eof(struct atm *a)
{
    if (a->partial_len > 0 || a->discarding || a->nul) {
        line_end(a);
    }
    a->in_eof = true;
    rq_log(RQ_INFO,
           "end of standard input; serving the network until "
           "SIGTERM");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct atm *a = h->data;
    (void)suggested;
    buf->base = a->in_fs_buf;
    buf->len = sizeof a->in_fs_buf;
}

static void input_pause(struct atm *a)
{
    if (a->in_reading && a->in_type != UV_FILE) {
        uv_read_stop((uv_stream_t *)&a->in);
    }
    a->in_reading = false;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct atm *a = s->data;
    if (n > 0) {
        consume(a, buf->base, (size_t)n);
    } else if (n < 0) {
        if (n != UV_EOF) {
            rq_log(RQ_WARN, "reading standard input: %s", uv_strerror((int)n));
        }
        input_pause(a);
        input_eof(a);
    }
    if (a->queued >= QUEUE_MAX) {
        input_pause(a);
    }
    process_next(a);
}

static void on_fs_read(uv_fs_t *req)
{
    struct atm *a = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    a->in_reading = false;
    if (a->closing) {
        return;
    }
    if (n > 0) {
        consume(a, a->in_fs_buf, (size_t)n);
    } else {
        if (n < 0) {
            rq_log(RQ_WARN, "reading standard input: %s", uv_strerror((int)n));
        }
        input_eof(a);
    }
    process_next(a);
}

static void input_resume(struct atm *a)
{
    if (a->in_reading || a->in_eof || a->closing) {
        return;
    }
    if (a->in_type == UV_FILE) {
        uv_buf_t b = uv_buf_init(a->in_fs_buf, sizeof a->in_fs_buf);
        a->in_fs.data = a;
        if (uv_fs_read(a->loop, &a->in_fs, STDIN_FILENO, &b, 1, -1,
                       on_fs_read) == 0) {
            a->in_reading = true;
        }
        return;
    }
    if (a->in_open &&
        uv_read_start((uv_stream_t *)&a->in, on_alloc, on_read) == 0) {
        a->in_reading = true;
    }
}

static int input_open(struct atm *a)
{
    int rv;
    a->in_type = uv_guess_handle(STDIN_FILENO);
    switch (a->in_type) {
        case UV_TTY:
            rv = uv_tty_init(a->loop, &a->in.tty, STDIN_FILENO, 1);
            a->prompt = true;
            break;
        case UV_NAMED_PIPE:
            rv = uv_pipe_init(a->loop, &a->in.pipe, 0);
            if (rv == 0) {
                a->in_open = true;
                a->in.pipe.data = a;
                rv = uv_pipe_open(&a->in.pipe, STDIN_FILENO);
            }
            break;
        case UV_FILE:
            return 0;
        default:
            /* Closed or unusable standard input: just serve the network. */
            a->in_eof = true;
            return 0;
    }
    a->in_open = true;
    a->in.tty.data = a;
    return rv;
}

/* ---- Start and shutdown ---- */

static void on_mux_closed(void *data)
{
    (void)data;
}

static void on_rpc_closed(void *data)
{
    struct atm *a = data;
    rq_mux_close(a->mux, on_mux_closed, a);
}

static void on_node_closed(void *data)
{
    struct atm *a = data;
    a->node = NULL;
    rq_mux_transport_close(&a->transport);
    rq_rpc_close(a->rpc, on_rpc_closed, a);
}

static void shutdown_begin(struct atm *a)
{
    if (a->closing) {
        return;
    }
    a->closing = true;
    rq_log(RQ_INFO, "shutting down");
    if (a->current != NULL) {
        op_answer(a->current, "error: shutting down");
    }
    if (a->in_type == UV_FILE && a->in_reading) {
        uv_cancel((uv_req_t *)&a->in_fs);
    }
    input_pause(a);
    if (a->in_open) {
        uv_close((uv_handle_t *)&a->in, NULL);
        a->in_open = false;
    }
    uv_close((uv_handle_t *)&a->retry_timer, NULL);
    uv_close((uv_handle_t *)&a->deadline_timer, NULL);
    rq_node_close(a->node, on_node_closed, a);
}

/* rq_main's: a signal asks for an orderly shutdown. */
static void stop(void *self)
{
    shutdown_begin(self);
}

static void on_change(void *data, const struct rq_node_info *info)
{
    struct atm *a = data;
    rq_node_exit_if_stopped(info, "atm");
    /* A command waiting for a leader need not wait for its retry timer. */
    if (a->current != NULL && (info->ready || info->leader_id != 0) &&
        uv_is_active((uv_handle_t *)&a->retry_timer)) {
        uv_timer_stop(&a->retry_timer);
        attempt(a->current);
    }
}

static const struct rq_config_spec config_spec = {
    "atm",
    "atm --id N --peers 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT --data DIR "
    "[options]",
    options, sizeof options / sizeof options[0]};

/* The rules of the options that their table cannot say; also finds this
 * ATM's own address in --peers. */
static int check(void *self, char *why, size_t whyn)
{
    struct atm *a = self;
    int rv = rq_peers_parse(a->cfg.peers, a->peers, RQ_PEERS_MAX, &a->n_peers,
                            why, whyn);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < a->n_peers; i++) {
        if (a->peers[i].id == a->cfg.id) {
            a->self_address = a->peers[i].address;
        }
    }
    if (a->self_address == NULL) {
        snprintf(why, whyn, "--id %" PRIu64 " is not in --peers", a->cfg.id);
        return RQ_INVALID;
    }
    rv = rq_config_check_raft_timing(a->cfg.election_ms, a->cfg.heartbeat_ms,
                                     why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (a->cfg.snapshot_threshold < 4 ||
        a->cfg.snapshot_threshold > UINT32_MAX ||
        a->cfg.snapshot_trailing > UINT32_MAX || a->cfg.segment_size < 8192 ||
        a->cfg.segment_size > (1u << 30)) {
        snprintf(why, whyn,
                 "need --snapshot-threshold >= 4 and "
                 "8192 <= --segment-size <= 1 GiB");
        return RQ_INVALID;
    }
    bool tls;
    return rq_tls_check_flags(a->cfg.tls_cert, a->cfg.tls_key, a->cfg.tls_ca,
                              &tls, why, whyn);
}

static int start(void *self, uv_loop_t *loop, char *why, size_t whyn)
{
    struct atm *a = self;
    char dir[4096];
    int rv;

    a->loop = loop;
    if (getrandom(&a->origin, sizeof a->origin, 0) != sizeof a->origin) {
        snprintf(why, whyn, "getrandom: %s", strerror(errno));
        return RQ_IO;
    }
    rv = rq_tls_open(a->cfg.tls_cert, a->cfg.tls_key, a->cfg.tls_ca, &a->tls,
                     why, whyn);
    if (rv != 0) {
        return rv;
    }
    rv = atm_ledger_new(&a->ledger);
    if (rv != 0) {
        snprintf(why, whyn, "%s", rq_strerror(rv));
        return rv;
    }
    struct rq_mux_config mc = {
        .cluster_id = a->cfg.cluster_id,
        .self_id = a->cfg.id,
        .bind_address = a->self_address,
        .advertise = a->self_address,
        .secret = a->cfg.secret,
        .tls = a->tls,
    };
    rv = rq_mux_new(a->loop, &mc, &a->mux, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rv = rq_rpc_new(a->loop, a->mux, &a->rpc);
    if (rv != 0) {
        snprintf(why, whyn, "rpc: %s", rq_strerror(rv));
        return rv;
    }
    rq_rpc_set_handler(a->rpc, on_rpc, a);
    rv = rq_mux_transport_init(a->mux, ATM_GROUP, &a->transport);
    if (rv != 0) {
        snprintf(why, whyn, "transport: %s", rq_strerror(rv));
        return rv;
    }
    snprintf(dir, sizeof dir, "%s/raft", a->cfg.data);
    struct rq_node_config nc = {
        .id = a->cfg.id,
        .address = a->self_address,
        .dir = dir,
        .election_timeout_ms = (unsigned)a->cfg.election_ms,
        .heartbeat_timeout_ms = (unsigned)a->cfg.heartbeat_ms,
        .snapshot_threshold = (unsigned)a->cfg.snapshot_threshold,
        .snapshot_trailing = (unsigned)a->cfg.snapshot_trailing,
        .segment_size = (size_t)a->cfg.segment_size,
        .pre_vote = true,
    };
    rv = rq_node_new(a->loop, &a->transport, &nc, &atm_fsm_ops, a->ledger,
                     &a->node, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rq_node_on_change(a->node, on_change, a);
    rv = rq_node_bootstrap(a->node, a->peers, a->n_peers, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rv = rq_node_start(a->node, why, whyn);
    if (rv != 0) {
        return rv;
    }
    uv_timer_init(a->loop, &a->retry_timer);
    uv_timer_init(a->loop, &a->deadline_timer);
    a->retry_timer.data = a;
    a->deadline_timer.data = a;
    rv = input_open(a);
    if (rv != 0) {
        snprintf(why, whyn, "standard input: %s", uv_strerror(rv));
        return RQ_IO;
    }
    rq_log(RQ_INFO, "listening on %s, %zu peers, data in %s", a->self_address,
           a->n_peers, a->cfg.data);
    show_prompt(a);
    input_resume(a);
    return 0;
}

/* The loop has stopped: frees the lines still queued and the ledger. */
static int finish(void *self)
{
    struct atm *a = self;
    while (a->queue_head != NULL) {
        struct line *l = a->queue_head;
        a->queue_head = l->next;
        free(l);
    }
    atm_ledger_free(a->ledger);
    rq_tls_free(a->tls);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct rq_main_spec spec = {&config_spec, check, start, stop,
                                             finish};
    static struct atm a;
    return rq_main(&spec, &a, &a.cfg, argc, argv);
}
