/*
 * The binary codec of manager commands (see mcmd.h). Encoding and decoding
 * share one validity check, so whatever mcmd_encode accepts decodes, and a
 * decoded command is exactly as valid as one a leader could have encoded.
 * The codec checks form only (lengths, characters, ranges, counts); what
 * depends on the state (does the topic exist, is an epoch current, are
 * replicas distinct) is the store's to decide.
 *
 * Layout (little-endian; str = len:u32 | bytes, no NUL):
 *
 *   version:u8 | type:u8 | now_ms:u64 | fields of the type:
 *
 *   MANAGER_ADDR,
 *   BROKER_REGISTER     id:u32 | raft_addr:str | http_addr:str
 *   BROKER_STATE        id:u32 | state:u8
 *   TOPIC_CREATE        name:str | n_partitions:u32 | retention_bytes:u64 |
 *                       retention_ms:u64 | n_partitions x (r:u32 x MCMD_RF)
 *   TOPIC_DELETE        name:str
 *   PRODUCER_REGISTER,
 *   CONSUMER_REGISTER   topic:str | partition_id:u32
 *   OFFSET_COMMIT       consumer_id:u64 | cursor:u32 | n:u32 |
 *                       n x (partition_id:u32 | offset:u64 | expected:u64)
 *   PARTITION_REPLICAS  topic:str | partition_id:u32 | expected_epoch:u64 |
 *                       r:u32 x MCMD_RF
 *   TOKEN_CREATE        name:str | hash:32 bytes | grants:str
 *   TOKEN_REVOKE        id:u64
 *   GROUP_JOIN          group:str | topic:str | member:str | session_ms:u32
 *   GROUP_LEAVE         group:str | n:u32 | n x member:str
 *   GROUP_COMMIT        group:str | member:str | generation:u64 | n:u32 |
 *                       n x (partition_id:u32 | offset:u64)
 *   GROUP_OFFSETS       group:str | n:u32 | n x (partition_id:u32 |
 *                       offset:u64)
 *   GROUP_DELETE        group:str
 *   CLUSTER_UID         uid:u64
 *   GROUP_FOREIGN       group_id:u64 | broker:u32
 *   BROKER_REISSUE      id:u32 | raft_addr:str | http_addr:str
 *
 * A topic's replica list takes its count from n_partitions rather than
 * carrying a second one. Trailing bytes after the last field are refused.
 */
#include "mcmd.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grants.h"
#include "rq_err.h"

_Static_assert(GRANTS_TEXT_MAX == MCMD_GRANTS_TEXT_MAX,
               "the command holds every token's grants text");

#define OFFSET_BYTES (4 + 8 + 8)
#define GROUP_OFFSET_BYTES (4 + 8)

const char *mcmd_type_name(enum mcmd_type t)
{
    switch (t) {
        case MCMD_MANAGER_ADDR:
            return "manager_addr";
        case MCMD_BROKER_REGISTER:
            return "broker_register";
        case MCMD_BROKER_STATE:
            return "broker_state";
        case MCMD_TOPIC_CREATE:
            return "topic_create";
        case MCMD_TOPIC_DELETE:
            return "topic_delete";
        case MCMD_PRODUCER_REGISTER:
            return "producer_register";
        case MCMD_CONSUMER_REGISTER:
            return "consumer_register";
        case MCMD_OFFSET_COMMIT:
            return "offset_commit";
        case MCMD_PARTITION_REPLICAS:
            return "partition_replicas";
        case MCMD_TOKEN_CREATE:
            return "token_create";
        case MCMD_TOKEN_REVOKE:
            return "token_revoke";
        case MCMD_GROUP_JOIN:
            return "group_join";
        case MCMD_GROUP_LEAVE:
            return "group_leave";
        case MCMD_GROUP_COMMIT:
            return "group_commit";
        case MCMD_GROUP_OFFSETS:
            return "group_offsets";
        case MCMD_GROUP_DELETE:
            return "group_delete";
        case MCMD_CLUSTER_UID:
            return "cluster_uid";
        case MCMD_GROUP_FOREIGN:
            return "group_foreign";
        case MCMD_BROKER_REISSUE:
            return "broker_reissue";
    }
    return "unknown";
}

const char *mbroker_state_name(enum mbroker_state s)
{
    switch (s) {
        case MBROKER_ALIVE:
            return "alive";
        case MBROKER_SUSPECT:
            return "suspect";
        case MBROKER_DEAD:
            return "dead";
        case MBROKER_DRAINING:
            return "draining";
        case MBROKER_REMOVED:
            return "removed";
        case MBROKER_REMOVING:
            return "removing";
    }
    return "unknown";
}

void mcmd_clear(struct mcmd *c)
{
    if (c->type == MCMD_TOPIC_CREATE) {
        free(c->u.topic_create.replicas);
        c->u.topic_create.replicas = NULL;
    } else if (c->type == MCMD_OFFSET_COMMIT) {
        free(c->u.offset_commit.offsets);
        c->u.offset_commit.offsets = NULL;
    } else if (c->type == MCMD_GROUP_LEAVE) {
        free(c->u.group_leave.members);
        c->u.group_leave.members = NULL;
    } else if (c->type == MCMD_GROUP_COMMIT || c->type == MCMD_GROUP_OFFSETS) {
        free(c->u.group_offsets.offsets);
        c->u.group_offsets.offsets = NULL;
    }
}

/* ---- Validity, shared by both directions ---- */

static bool type_known(int t)
{
    return t >= MCMD_MANAGER_ADDR && t <= MCMD_BROKER_REISSUE &&
           t != MCMD_TYPE_BATCH;
}

static bool state_known(int s)
{
    return s >= MBROKER_ALIVE && s <= MBROKER_REMOVING;
}

/* A NUL-terminated address held in an array of MCMD_ADDR_MAX + 1. */
static int check_addr(const char *a, const char *what, char *why, size_t whyn)
{
    size_t n = strnlen(a, MCMD_ADDR_MAX + 1);
    if (n == 0 || n > MCMD_ADDR_MAX) {
        rq_why(why, whyn, "%s must be 1-%d bytes", what, MCMD_ADDR_MAX);
        return RQ_INVALID;
    }
    return 0;
}

static int check_topic(const char *name, const char *what, char *why,
                       size_t whyn)
{
    if (!rq_names_topic_valid(name)) {
        rq_why(why, whyn,
               "%s must be 1-%d characters of [A-Za-z0-9._-], not . or ..",
               what, MCMD_NAME_MAX);
        return RQ_INVALID;
    }
    return 0;
}

/*
 * A list of @n offsets: at most MCMD_MAX_OFFSETS, one a partition, and,
 * unless @compared, none with an expected offset (a group's are never
 * compared).
 */
static int check_offset_list(const struct mcmd_offset *o, uint32_t n,
                             bool compared, char *why, size_t whyn)
{
    if (n > MCMD_MAX_OFFSETS) {
        rq_why(why, whyn, "%" PRIu32 " offsets (at most %d)", n,
               MCMD_MAX_OFFSETS);
        return RQ_INVALID;
    }
    if (n > 0 && o == NULL) {
        rq_why(why, whyn, "%" PRIu32 " offsets but no list", n);
        return RQ_INVALID;
    }
    /* At most MCMD_MAX_OFFSETS squared over two comparisons: cheap enough,
     * and it needs no scratch memory. */
    for (uint32_t i = 0; i < n; i++) {
        if (!compared && o[i].expected != MCMD_ANY) {
            rq_why(why, whyn, "a group's offsets are not compared");
            return RQ_INVALID;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (o[i].partition_id == o[j].partition_id) {
                rq_why(why, whyn, "partition %" PRIu32 " appears twice",
                       o[i].partition_id);
                return RQ_INVALID;
            }
        }
    }
    return 0;
}

static int check_group(const char *name, char *why, size_t whyn)
{
    if (!rq_names_topic_valid(name)) {
        rq_why(why, whyn,
               "group name must be 1-%d characters of [A-Za-z0-9._-], not . "
               "or ..",
               MCMD_GROUP_MAX);
        return RQ_INVALID;
    }
    return 0;
}

static int check_member(const char *id, char *why, size_t whyn)
{
    if (!rq_names_member_valid(id)) {
        rq_why(why, whyn,
               "member id must be 1-%d characters of "
               "[A-Za-z0-9._-]",
               MCMD_MEMBER_MAX);
        return RQ_INVALID;
    }
    return 0;
}

static int check_group_leave(const struct mcmd *c, char *why, size_t whyn)
{
    uint32_t n = c->u.group_leave.n;
    int rv = check_group(c->u.group_leave.group, why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (n == 0 || n > MCMD_MAX_MEMBERS || c->u.group_leave.members == NULL) {
        rq_why(why, whyn, "%" PRIu32 " members (1 to %d)", n, MCMD_MAX_MEMBERS);
        return RQ_INVALID;
    }
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        rv = check_member(c->u.group_leave.members[i], why, whyn);
    }
    return rv;
}

/* A token's grants must parse and be in canonical form, so that every
 * store holds the same text for the same grants. */
static int check_grants(const char *text, char *why, size_t whyn)
{
    struct grants gs;
    char canonical[GRANTS_TEXT_MAX + 1];
    char reason[160];
    if (strnlen(text, MCMD_GRANTS_TEXT_MAX + 1) > MCMD_GRANTS_TEXT_MAX) {
        rq_why(why, whyn, "grants longer than %d bytes", MCMD_GRANTS_TEXT_MAX);
        return RQ_INVALID;
    }
    if (grants_parse(text, &gs, reason, sizeof reason) != 0) {
        rq_why(why, whyn, "grants: %s", reason);
        return RQ_INVALID;
    }
    grants_format(&gs, canonical, sizeof canonical);
    if (strcmp(canonical, text) != 0) {
        rq_why(why, whyn, "grants not in canonical form");
        return RQ_INVALID;
    }
    return 0;
}

/* Checks every field of @c; RQ_INVALID with @why for the first bad one. */
static int check(const struct mcmd *c, char *why, size_t whyn)
{
    int rv;
    switch (c->type) {
        case MCMD_MANAGER_ADDR:
        case MCMD_BROKER_REGISTER:
        case MCMD_BROKER_REISSUE: {
            /* The payloads have the same layout. */
            uint32_t id = c->type == MCMD_MANAGER_ADDR
                              ? c->u.manager.id
                              : c->u.broker_register.id;
            const char *raft = c->type == MCMD_MANAGER_ADDR
                                   ? c->u.manager.raft_addr
                                   : c->u.broker_register.raft_addr;
            const char *http = c->type == MCMD_MANAGER_ADDR
                                   ? c->u.manager.http_addr
                                   : c->u.broker_register.http_addr;
            if (id == 0) {
                rq_why(why, whyn, "id 0 is not a server id");
                return RQ_INVALID;
            }
            rv = check_addr(raft, "raft_addr", why, whyn);
            if (rv == 0) {
                rv = check_addr(http, "http_addr", why, whyn);
            }
            return rv;
        }
        case MCMD_BROKER_STATE:
            if (c->u.broker_state.id == 0) {
                rq_why(why, whyn, "id 0 is not a broker id");
                return RQ_INVALID;
            }
            if (!state_known((int)c->u.broker_state.state)) {
                rq_why(why, whyn, "unknown broker state %d",
                       (int)c->u.broker_state.state);
                return RQ_INVALID;
            }
            return 0;
        case MCMD_TOPIC_CREATE:
            rv = check_topic(c->u.topic_create.name, "topic name", why, whyn);
            if (rv != 0) {
                return rv;
            }
            if (c->u.topic_create.n_partitions == 0 ||
                c->u.topic_create.n_partitions > MCMD_MAX_PARTITIONS) {
                rq_why(why, whyn, "%" PRIu32 " partitions (1 to %d)",
                       c->u.topic_create.n_partitions, MCMD_MAX_PARTITIONS);
                return RQ_INVALID;
            }
            if (c->u.topic_create.replicas == NULL) {
                rq_why(why, whyn, "no replica list");
                return RQ_INVALID;
            }
            return 0;
        case MCMD_TOPIC_DELETE:
            return check_topic(c->u.topic_delete.name, "topic name", why, whyn);
        case MCMD_PRODUCER_REGISTER:
        case MCMD_CONSUMER_REGISTER:
            return check_topic(c->u.client_register.topic, "topic", why, whyn);
        case MCMD_OFFSET_COMMIT:
            return check_offset_list(c->u.offset_commit.offsets,
                                     c->u.offset_commit.n, true, why, whyn);
        case MCMD_PARTITION_REPLICAS:
            return check_topic(c->u.partition_replicas.topic, "topic", why,
                               whyn);
        case MCMD_TOKEN_CREATE:
            if (!rq_names_token_valid(c->u.token_create.name)) {
                rq_why(why, whyn,
                       "token name must be 1-%d characters of "
                       "[A-Za-z0-9._-]",
                       MCMD_TOKEN_NAME_MAX);
                return RQ_INVALID;
            }
            return check_grants(c->u.token_create.grants, why, whyn);
        case MCMD_TOKEN_REVOKE:
            if (c->u.token_revoke.id == 0) {
                rq_why(why, whyn, "id 0 is not a token id");
                return RQ_INVALID;
            }
            return 0;
        case MCMD_GROUP_JOIN:
            rv = check_group(c->u.group_join.group, why, whyn);
            if (rv == 0) {
                rv = check_topic(c->u.group_join.topic, "topic", why, whyn);
            }
            if (rv == 0) {
                rv = check_member(c->u.group_join.member, why, whyn);
            }
            if (rv == 0 && (c->u.group_join.session_ms < MCMD_SESSION_MIN_MS ||
                            c->u.group_join.session_ms > MCMD_SESSION_MAX_MS)) {
                rq_why(why, whyn, "session of %" PRIu32 " ms (%d to %d)",
                       c->u.group_join.session_ms, MCMD_SESSION_MIN_MS,
                       MCMD_SESSION_MAX_MS);
                rv = RQ_INVALID;
            }
            return rv;
        case MCMD_GROUP_LEAVE:
            return check_group_leave(c, why, whyn);
        case MCMD_GROUP_COMMIT:
            rv = check_group(c->u.group_offsets.group, why, whyn);
            if (rv == 0) {
                rv = check_member(c->u.group_offsets.member, why, whyn);
            }
            return rv == 0 ? check_offset_list(c->u.group_offsets.offsets,
                                               c->u.group_offsets.n, false, why,
                                               whyn)
                           : rv;
        case MCMD_GROUP_OFFSETS:
            if (c->u.group_offsets.member[0] != '\0' ||
                c->u.group_offsets.generation != 0) {
                rq_why(why, whyn, "an operator's offsets name no member");
                return RQ_INVALID;
            }
            rv = check_group(c->u.group_offsets.group, why, whyn);
            return rv == 0 ? check_offset_list(c->u.group_offsets.offsets,
                                               c->u.group_offsets.n, false, why,
                                               whyn)
                           : rv;
        case MCMD_GROUP_DELETE:
            return check_group(c->u.group_delete.group, why, whyn);
        case MCMD_CLUSTER_UID:
            if (c->u.cluster_uid.uid == 0) {
                rq_why(why, whyn, "a cluster uid is never 0");
                return RQ_INVALID;
            }
            return 0;
        case MCMD_GROUP_FOREIGN:
            if (c->u.group_foreign.group_id == 0 ||
                c->u.group_foreign.broker == 0) {
                rq_why(why, whyn, "group and broker ids are never 0");
                return RQ_INVALID;
            }
            return 0;
    }
    rq_why(why, whyn, "unknown command type %d", (int)c->type);
    return RQ_INVALID;
}

/* ---- Encoding ---- */

static void put_str(struct rq_buf *b, const char *s)
{
    rq_buf_put_blob(b, s, strlen(s));
}

static void put_replicas(struct rq_buf *b, const uint32_t *r)
{
    for (int i = 0; i < MCMD_RF; i++) {
        rq_buf_put_u32(b, r[i]);
    }
}

int mcmd_encode(const struct mcmd *c, struct rq_buf *out)
{
    char why[160];
    int rv = check(c, why, sizeof why);
    if (rv != 0) {
        return rv;
    }
    rq_buf_put_u8(out, MCMD_VERSION);
    rq_buf_put_u8(out, (uint8_t)c->type);
    rq_buf_put_u64(out, c->now_ms);
    switch (c->type) {
        case MCMD_MANAGER_ADDR:
            rq_buf_put_u32(out, c->u.manager.id);
            put_str(out, c->u.manager.raft_addr);
            put_str(out, c->u.manager.http_addr);
            break;
        case MCMD_BROKER_REGISTER:
        case MCMD_BROKER_REISSUE:
            rq_buf_put_u32(out, c->u.broker_register.id);
            put_str(out, c->u.broker_register.raft_addr);
            put_str(out, c->u.broker_register.http_addr);
            break;
        case MCMD_BROKER_STATE:
            rq_buf_put_u32(out, c->u.broker_state.id);
            rq_buf_put_u8(out, (uint8_t)c->u.broker_state.state);
            break;
        case MCMD_TOPIC_CREATE:
            put_str(out, c->u.topic_create.name);
            rq_buf_put_u32(out, c->u.topic_create.n_partitions);
            rq_buf_put_u64(out, c->u.topic_create.retention_bytes);
            rq_buf_put_u64(out, c->u.topic_create.retention_ms);
            for (uint32_t p = 0; p < c->u.topic_create.n_partitions; p++) {
                put_replicas(out, c->u.topic_create.replicas[p]);
            }
            break;
        case MCMD_TOPIC_DELETE:
            put_str(out, c->u.topic_delete.name);
            break;
        case MCMD_PRODUCER_REGISTER:
        case MCMD_CONSUMER_REGISTER:
            put_str(out, c->u.client_register.topic);
            rq_buf_put_u32(out, c->u.client_register.partition_id);
            break;
        case MCMD_OFFSET_COMMIT:
            rq_buf_put_u64(out, c->u.offset_commit.consumer_id);
            rq_buf_put_u32(out, c->u.offset_commit.cursor);
            rq_buf_put_u32(out, c->u.offset_commit.n);
            for (uint32_t i = 0; i < c->u.offset_commit.n; i++) {
                const struct mcmd_offset *o = &c->u.offset_commit.offsets[i];
                rq_buf_put_u32(out, o->partition_id);
                rq_buf_put_u64(out, o->offset);
                rq_buf_put_u64(out, o->expected);
            }
            break;
        case MCMD_PARTITION_REPLICAS:
            put_str(out, c->u.partition_replicas.topic);
            rq_buf_put_u32(out, c->u.partition_replicas.partition_id);
            rq_buf_put_u64(out, c->u.partition_replicas.expected_epoch);
            put_replicas(out, c->u.partition_replicas.replicas);
            break;
        case MCMD_TOKEN_CREATE:
            put_str(out, c->u.token_create.name);
            rq_buf_put_bytes(out, c->u.token_create.hash, MCMD_TOKEN_HASH);
            put_str(out, c->u.token_create.grants);
            break;
        case MCMD_TOKEN_REVOKE:
            rq_buf_put_u64(out, c->u.token_revoke.id);
            break;
        case MCMD_GROUP_JOIN:
            put_str(out, c->u.group_join.group);
            put_str(out, c->u.group_join.topic);
            put_str(out, c->u.group_join.member);
            rq_buf_put_u32(out, c->u.group_join.session_ms);
            break;
        case MCMD_GROUP_LEAVE:
            put_str(out, c->u.group_leave.group);
            rq_buf_put_u32(out, c->u.group_leave.n);
            for (uint32_t i = 0; i < c->u.group_leave.n; i++) {
                put_str(out, c->u.group_leave.members[i]);
            }
            break;
        case MCMD_GROUP_COMMIT:
        case MCMD_GROUP_OFFSETS:
            put_str(out, c->u.group_offsets.group);
            if (c->type == MCMD_GROUP_COMMIT) {
                put_str(out, c->u.group_offsets.member);
                rq_buf_put_u64(out, c->u.group_offsets.generation);
            }
            rq_buf_put_u32(out, c->u.group_offsets.n);
            for (uint32_t i = 0; i < c->u.group_offsets.n; i++) {
                const struct mcmd_offset *o = &c->u.group_offsets.offsets[i];
                rq_buf_put_u32(out, o->partition_id);
                rq_buf_put_u64(out, o->offset);
            }
            break;
        case MCMD_GROUP_DELETE:
            put_str(out, c->u.group_delete.group);
            break;
        case MCMD_CLUSTER_UID:
            rq_buf_put_u64(out, c->u.cluster_uid.uid);
            break;
        case MCMD_GROUP_FOREIGN:
            rq_buf_put_u64(out, c->u.group_foreign.group_id);
            rq_buf_put_u32(out, c->u.group_foreign.broker);
            break;
    }
    return out->err != 0 ? RQ_NOMEM : 0;
}

/* ---- Decoding ---- */

/*
 * Reads a string of at most @max bytes into @dst (room for @max + 1) and
 * NUL-terminates it. A NUL byte inside is refused: the C string would
 * silently be shorter than what was encoded.
 */
static int get_str(struct rq_cursor *cur, size_t max, char *dst,
                   const char *what, char *why, size_t whyn)
{
    const uint8_t *p;
    size_t n;
    uint32_t len;
    struct rq_cursor peek = *cur;
    if (rq_wire_get_u32(&peek, &len) != 0) {
        rq_why(why, whyn, "truncated before the length of %s", what);
        return RQ_MALFORMED;
    }
    if (len > max) {
        rq_why(why, whyn, "%s is %" PRIu32 " bytes (at most %zu)", what, len,
               max);
        return RQ_MALFORMED;
    }
    if (rq_wire_get_blob(cur, max, &p, &n) != 0) {
        rq_why(why, whyn, "%s truncated", what);
        return RQ_MALFORMED;
    }
    if (memchr(p, '\0', n) != NULL) {
        rq_why(why, whyn, "%s contains a NUL byte", what);
        return RQ_MALFORMED;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

/* RQ_MALFORMED naming @what if its read (@rv) ran off the end; else 0. */
static int read_of(int rv, const char *what, char *why, size_t whyn)
{
    if (rv != 0) {
        rq_why(why, whyn, "truncated in %s", what);
        return RQ_MALFORMED;
    }
    return 0;
}

static int get_u32(struct rq_cursor *cur, uint32_t *v, const char *what,
                   char *why, size_t whyn)
{
    return read_of(rq_wire_get_u32(cur, v), what, why, whyn);
}

static int get_u64(struct rq_cursor *cur, uint64_t *v, const char *what,
                   char *why, size_t whyn)
{
    return read_of(rq_wire_get_u64(cur, v), what, why, whyn);
}

static int get_replicas(struct rq_cursor *cur, uint32_t *r, char *why,
                        size_t whyn)
{
    for (int i = 0; i < MCMD_RF; i++) {
        if (get_u32(cur, &r[i], "replicas", why, whyn) != 0) {
            return RQ_MALFORMED;
        }
    }
    return 0;
}

static int decode_addrs(struct rq_cursor *cur, uint32_t *id, char *raft,
                        char *http, char *why, size_t whyn)
{
    int rv = get_u32(cur, id, "id", why, whyn);
    if (rv == 0) {
        rv = get_str(cur, MCMD_ADDR_MAX, raft, "raft_addr", why, whyn);
    }
    if (rv == 0) {
        rv = get_str(cur, MCMD_ADDR_MAX, http, "http_addr", why, whyn);
    }
    return rv;
}

static int decode_topic_create(struct rq_cursor *cur, struct mcmd *c, char *why,
                               size_t whyn)
{
    uint32_t n;
    int rv = get_str(cur, MCMD_NAME_MAX, c->u.topic_create.name, "topic name",
                     why, whyn);
    if (rv == 0) {
        rv = get_u32(cur, &n, "n_partitions", why, whyn);
    }
    if (rv == 0) {
        rv = get_u64(cur, &c->u.topic_create.retention_bytes, "retention_bytes",
                     why, whyn);
    }
    if (rv == 0) {
        rv = get_u64(cur, &c->u.topic_create.retention_ms, "retention_ms", why,
                     whyn);
    }
    if (rv != 0) {
        return rv;
    }
    if (n == 0 || n > MCMD_MAX_PARTITIONS) {
        rq_why(why, whyn, "%" PRIu32 " partitions (1 to %d)", n,
               MCMD_MAX_PARTITIONS);
        return RQ_MALFORMED;
    }
    /* Checked before allocating, so a hostile count costs nothing. */
    if (cur->left < (size_t)n * MCMD_RF * 4) {
        rq_why(why, whyn, "replica list truncated (%" PRIu32 " partitions)", n);
        return RQ_MALFORMED;
    }
    c->u.topic_create.replicas = calloc(n, sizeof *c->u.topic_create.replicas);
    if (c->u.topic_create.replicas == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    c->u.topic_create.n_partitions = n;
    for (uint32_t p = 0; p < n; p++) {
        rv = get_replicas(cur, c->u.topic_create.replicas[p], why, whyn);
        assert(rv == 0); /* The length was checked above. */
    }
    return 0;
}

static int decode_offset_commit(struct rq_cursor *cur, struct mcmd *c,
                                char *why, size_t whyn)
{
    uint32_t n;
    int rv =
        get_u64(cur, &c->u.offset_commit.consumer_id, "consumer_id", why, whyn);
    if (rv == 0) {
        rv = get_u32(cur, &c->u.offset_commit.cursor, "cursor", why, whyn);
    }
    if (rv == 0) {
        rv = get_u32(cur, &n, "offset count", why, whyn);
    }
    if (rv != 0) {
        return rv;
    }
    if (n > MCMD_MAX_OFFSETS) {
        rq_why(why, whyn, "%" PRIu32 " offsets (at most %d)", n,
               MCMD_MAX_OFFSETS);
        return RQ_MALFORMED;
    }
    if (cur->left < (size_t)n * OFFSET_BYTES) {
        rq_why(why, whyn, "offset list truncated (%" PRIu32 " offsets)", n);
        return RQ_MALFORMED;
    }
    if (n > 0) {
        c->u.offset_commit.offsets =
            calloc(n, sizeof *c->u.offset_commit.offsets);
        if (c->u.offset_commit.offsets == NULL) {
            rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
            return RQ_NOMEM;
        }
    }
    c->u.offset_commit.n = n;
    for (uint32_t i = 0; i < n; i++) {
        struct mcmd_offset *o = &c->u.offset_commit.offsets[i];
        rv = get_u32(cur, &o->partition_id, "offsets", why, whyn);
        if (rv == 0) {
            rv = get_u64(cur, &o->offset, "offsets", why, whyn);
        }
        if (rv == 0) {
            rv = get_u64(cur, &o->expected, "offsets", why, whyn);
        }
        assert(rv == 0); /* The length was checked above. */
    }
    return 0;
}

static int decode_group_leave(struct rq_cursor *cur, struct mcmd *c, char *why,
                              size_t whyn)
{
    uint32_t n;
    int rv = get_str(cur, MCMD_GROUP_MAX, c->u.group_leave.group, "group", why,
                     whyn);
    if (rv == 0) {
        rv = get_u32(cur, &n, "member count", why, whyn);
    }
    if (rv != 0) {
        return rv;
    }
    /* Each member takes at least its length and one byte. */
    if (n == 0 || n > MCMD_MAX_MEMBERS || cur->left < (size_t)n * 5) {
        rq_why(why, whyn, "%" PRIu32 " members (1 to %d) in %zu bytes", n,
               MCMD_MAX_MEMBERS, cur->left);
        return RQ_MALFORMED;
    }
    c->u.group_leave.members = calloc(n, sizeof *c->u.group_leave.members);
    if (c->u.group_leave.members == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    c->u.group_leave.n = n;
    for (uint32_t i = 0; i < n && rv == 0; i++) {
        rv = get_str(cur, MCMD_MEMBER_MAX, c->u.group_leave.members[i],
                     "member", why, whyn);
    }
    return rv;
}

static int decode_group_offsets(struct rq_cursor *cur, struct mcmd *c,
                                char *why, size_t whyn)
{
    uint32_t n;
    int rv = get_str(cur, MCMD_GROUP_MAX, c->u.group_offsets.group, "group",
                     why, whyn);
    if (rv == 0 && c->type == MCMD_GROUP_COMMIT) {
        rv = get_str(cur, MCMD_MEMBER_MAX, c->u.group_offsets.member, "member",
                     why, whyn);
        if (rv == 0) {
            rv = get_u64(cur, &c->u.group_offsets.generation, "generation", why,
                         whyn);
        }
    }
    if (rv == 0) {
        rv = get_u32(cur, &n, "offset count", why, whyn);
    }
    if (rv != 0) {
        return rv;
    }
    if (n > MCMD_MAX_OFFSETS || cur->left < (size_t)n * GROUP_OFFSET_BYTES) {
        rq_why(why, whyn, "%" PRIu32 " offsets (at most %d) in %zu bytes", n,
               MCMD_MAX_OFFSETS, cur->left);
        return RQ_MALFORMED;
    }
    if (n > 0) {
        c->u.group_offsets.offsets =
            calloc(n, sizeof *c->u.group_offsets.offsets);
        if (c->u.group_offsets.offsets == NULL) {
            rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
            return RQ_NOMEM;
        }
    }
    c->u.group_offsets.n = n;
    for (uint32_t i = 0; i < n; i++) {
        struct mcmd_offset *o = &c->u.group_offsets.offsets[i];
        rv = get_u32(cur, &o->partition_id, "offsets", why, whyn);
        if (rv == 0) {
            rv = get_u64(cur, &o->offset, "offsets", why, whyn);
        }
        assert(rv == 0); /* The length was checked above. */
        o->expected = MCMD_ANY;
    }
    return 0;
}

static int decode_fields(struct rq_cursor *cur, struct mcmd *c, char *why,
                         size_t whyn)
{
    const uint8_t *hash;
    uint8_t u8;
    int rv;
    switch (c->type) {
        case MCMD_MANAGER_ADDR:
            return decode_addrs(cur, &c->u.manager.id, c->u.manager.raft_addr,
                                c->u.manager.http_addr, why, whyn);
        case MCMD_BROKER_REGISTER:
        case MCMD_BROKER_REISSUE:
            return decode_addrs(cur, &c->u.broker_register.id,
                                c->u.broker_register.raft_addr,
                                c->u.broker_register.http_addr, why, whyn);
        case MCMD_BROKER_STATE:
            rv = get_u32(cur, &c->u.broker_state.id, "id", why, whyn);
            if (rv == 0 && rq_wire_get_u8(cur, &u8) != 0) {
                rq_why(why, whyn, "truncated in state");
                rv = RQ_MALFORMED;
            }
            if (rv == 0) {
                c->u.broker_state.state = (enum mbroker_state)u8;
            }
            return rv;
        case MCMD_TOPIC_CREATE:
            return decode_topic_create(cur, c, why, whyn);
        case MCMD_TOPIC_DELETE:
            return get_str(cur, MCMD_NAME_MAX, c->u.topic_delete.name,
                           "topic name", why, whyn);
        case MCMD_PRODUCER_REGISTER:
        case MCMD_CONSUMER_REGISTER:
            rv = get_str(cur, MCMD_NAME_MAX, c->u.client_register.topic,
                         "topic", why, whyn);
            if (rv == 0) {
                rv = get_u32(cur, &c->u.client_register.partition_id,
                             "partition_id", why, whyn);
            }
            return rv;
        case MCMD_OFFSET_COMMIT:
            return decode_offset_commit(cur, c, why, whyn);
        case MCMD_PARTITION_REPLICAS:
            rv = get_str(cur, MCMD_NAME_MAX, c->u.partition_replicas.topic,
                         "topic", why, whyn);
            if (rv == 0) {
                rv = get_u32(cur, &c->u.partition_replicas.partition_id,
                             "partition_id", why, whyn);
            }
            if (rv == 0) {
                rv = get_u64(cur, &c->u.partition_replicas.expected_epoch,
                             "expected_epoch", why, whyn);
            }
            if (rv == 0) {
                rv = get_replicas(cur, c->u.partition_replicas.replicas, why,
                                  whyn);
            }
            return rv;
        case MCMD_TOKEN_CREATE:
            rv = get_str(cur, MCMD_TOKEN_NAME_MAX, c->u.token_create.name,
                         "token name", why, whyn);
            if (rv == 0 &&
                rq_wire_get_bytes(cur, MCMD_TOKEN_HASH, &hash) != 0) {
                rq_why(why, whyn, "truncated in the token hash");
                rv = RQ_MALFORMED;
            }
            if (rv == 0) {
                memcpy(c->u.token_create.hash, hash, MCMD_TOKEN_HASH);
            }
            if (rv == 0) {
                rv = get_str(cur, MCMD_GRANTS_TEXT_MAX,
                             c->u.token_create.grants, "grants", why, whyn);
            }
            return rv;
        case MCMD_TOKEN_REVOKE:
            return get_u64(cur, &c->u.token_revoke.id, "id", why, whyn);
        case MCMD_GROUP_JOIN:
            rv = get_str(cur, MCMD_GROUP_MAX, c->u.group_join.group, "group",
                         why, whyn);
            if (rv == 0) {
                rv = get_str(cur, MCMD_NAME_MAX, c->u.group_join.topic, "topic",
                             why, whyn);
            }
            if (rv == 0) {
                rv = get_str(cur, MCMD_MEMBER_MAX, c->u.group_join.member,
                             "member", why, whyn);
            }
            if (rv == 0) {
                rv = get_u32(cur, &c->u.group_join.session_ms, "session_ms",
                             why, whyn);
            }
            return rv;
        case MCMD_GROUP_LEAVE:
            return decode_group_leave(cur, c, why, whyn);
        case MCMD_GROUP_COMMIT:
        case MCMD_GROUP_OFFSETS:
            return decode_group_offsets(cur, c, why, whyn);
        case MCMD_GROUP_DELETE:
            return get_str(cur, MCMD_GROUP_MAX, c->u.group_delete.group,
                           "group", why, whyn);
        case MCMD_CLUSTER_UID:
            return get_u64(cur, &c->u.cluster_uid.uid, "uid", why, whyn);
        case MCMD_GROUP_FOREIGN:
            rv = get_u64(cur, &c->u.group_foreign.group_id, "group_id", why,
                         whyn);
            if (rv == 0) {
                rv = get_u32(cur, &c->u.group_foreign.broker, "broker", why,
                             whyn);
            }
            return rv;
    }
    assert(0); /* The type was checked by the caller. */
    return RQ_MALFORMED;
}

int mcmd_decode(const uint8_t *buf, size_t len, struct mcmd *c, char *why,
                size_t whyn)
{
    struct rq_cursor cur;
    uint8_t version;
    uint8_t type;
    int rv;

    memset(c, 0, sizeof *c);
    rq_cursor_init(&cur, buf, len);
    if (rq_wire_get_u8(&cur, &version) != 0 ||
        rq_wire_get_u8(&cur, &type) != 0 ||
        rq_wire_get_u64(&cur, &c->now_ms) != 0) {
        rq_why(why, whyn, "%zu bytes: shorter than a command header", len);
        return RQ_MALFORMED;
    }
    if (version != MCMD_VERSION) {
        rq_why(why, whyn, "command version %u (this manager reads %d)", version,
               MCMD_VERSION);
        return RQ_MALFORMED;
    }
    if (!type_known(type)) {
        rq_why(why, whyn, "unknown command type %u", type);
        return RQ_MALFORMED;
    }
    c->type = (enum mcmd_type)type;
    rv = decode_fields(&cur, c, why, whyn);
    if (rv == 0 && cur.left != 0) {
        rq_why(why, whyn, "%zu bytes after the %s command", cur.left,
               mcmd_type_name(c->type));
        rv = RQ_MALFORMED;
    }
    if (rv == 0) {
        char reason[160];
        rv = check(c, reason, sizeof reason);
        if (rv != 0) {
            rq_why(why, whyn, "%s: %s", mcmd_type_name(c->type), reason);
            rv = RQ_MALFORMED;
        }
    }
    if (rv != 0) {
        mcmd_clear(c);
        memset(c, 0, sizeof *c);
    }
    return rv;
}
