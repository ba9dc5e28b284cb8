/*
 * Unit tests of the manager command codec: every type round-trips, every
 * truncation and every hostile buffer is refused without reading out of
 * bounds (each buffer is copied to a heap block of its exact size, so the
 * sanitizer sees an overread), and invalid fields (consumer groups' among
 * them) are refused in both directions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager/mcmd.h"
#include "rq_err.h"
#include "unit_util.h"

#define LAST_TYPE MCMD_BROKER_REISSUE

/* Every command type (MCMD_TYPE_BATCH, a batch entry's, is none). */
static const enum mcmd_type all_types[] = {
    MCMD_MANAGER_ADDR,      MCMD_BROKER_REGISTER, MCMD_BROKER_STATE,
    MCMD_TOPIC_CREATE,      MCMD_TOPIC_DELETE,    MCMD_PRODUCER_REGISTER,
    MCMD_CONSUMER_REGISTER, MCMD_OFFSET_COMMIT,   MCMD_PARTITION_REPLICAS,
    MCMD_TOKEN_CREATE,      MCMD_TOKEN_REVOKE,    MCMD_GROUP_JOIN,
    MCMD_GROUP_LEAVE,       MCMD_GROUP_COMMIT,    MCMD_GROUP_OFFSETS,
    MCMD_GROUP_DELETE,      MCMD_CLUSTER_UID,     MCMD_GROUP_FOREIGN,
    MCMD_BROKER_REISSUE,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])
#define HEADER 10 /* version:u8 | type:u8 | now_ms:u64 */

static uint32_t sample_replicas[3][MCMD_RF] = {{1, 2, 3}, {2, 3, 1}, {3, 1, 2}};
static struct mcmd_offset sample_offsets[3] = {
    {0, 10, MCMD_ANY},
    {2, 7, 5},
    {1, UINT64_MAX - 1, 0},
};
static struct mcmd_offset sample_group_offsets[2] = {
    {11, 1ull << 40, MCMD_ANY},
    {0, 0, MCMD_ANY},
};
static char sample_members[3][MCMD_MEMBER_MAX + 1] = {"0f3a9c2e4b5d6e7f",
                                                      "worker-2", "x"};

/* A command of type @t with every field set to something recognisable;
 * lists point at static arrays (never mcmd_clear'd). */
static void sample(enum mcmd_type t, struct mcmd *c)
{
    memset(c, 0, sizeof *c);
    c->type = t;
    c->now_ms = 0x0102030405060708ull + (uint64_t)t;
    switch (t) {
        case MCMD_MANAGER_ADDR:
            c->u.manager.id = 3;
            strcpy(c->u.manager.raft_addr, "10.0.0.3:7001");
            strcpy(c->u.manager.http_addr, "10.0.0.3:8001");
            break;
        case MCMD_BROKER_REGISTER:
        case MCMD_BROKER_REISSUE:
            c->u.broker_register.id = 0xfffffffe;
            strcpy(c->u.broker_register.raft_addr, "broker-9.example:9100");
            strcpy(c->u.broker_register.http_addr, "[::1]:9200");
            break;
        case MCMD_BROKER_STATE:
            c->u.broker_state.id = 7;
            c->u.broker_state.state = MBROKER_DRAINING;
            break;
        case MCMD_TOPIC_CREATE:
            strcpy(c->u.topic_create.name, "orders.v2_eu-west");
            c->u.topic_create.n_partitions = 3;
            c->u.topic_create.retention_bytes = 1ull << 40;
            c->u.topic_create.retention_ms = 86400000;
            c->u.topic_create.replicas = sample_replicas;
            break;
        case MCMD_TOPIC_DELETE:
            strcpy(c->u.topic_delete.name, "...");
            break;
        case MCMD_PRODUCER_REGISTER:
            strcpy(c->u.client_register.topic, "t");
            c->u.client_register.partition_id = MCMD_NO_PARTITION;
            break;
        case MCMD_CONSUMER_REGISTER:
            strcpy(c->u.client_register.topic, "T-1");
            c->u.client_register.partition_id = 5;
            break;
        case MCMD_OFFSET_COMMIT:
            c->u.offset_commit.consumer_id = 1ull << 50;
            c->u.offset_commit.cursor = 2;
            c->u.offset_commit.n = 3;
            c->u.offset_commit.offsets = sample_offsets;
            break;
        case MCMD_PARTITION_REPLICAS:
            strcpy(c->u.partition_replicas.topic, "x");
            c->u.partition_replicas.partition_id = 1023;
            c->u.partition_replicas.expected_epoch = 41;
            c->u.partition_replicas.replicas[0] = 4;
            c->u.partition_replicas.replicas[1] = 5;
            c->u.partition_replicas.replicas[2] = 6;
            break;
        case MCMD_TOKEN_CREATE:
            strcpy(c->u.token_create.name, "billing-svc.v2");
            for (int i = 0; i < MCMD_TOKEN_HASH; i++) {
                c->u.token_create.hash[i] = (uint8_t)(0xa0 + i);
            }
            strcpy(c->u.token_create.grants, "produce:orders.* consume:audit");
            break;
        case MCMD_TOKEN_REVOKE:
            c->u.token_revoke.id = 1ull << 52;
            break;
        case MCMD_GROUP_JOIN:
            strcpy(c->u.group_join.group, "billing.workers");
            strcpy(c->u.group_join.topic, "orders");
            strcpy(c->u.group_join.member, "a1b2c3d4e5f60718");
            c->u.group_join.session_ms = MCMD_SESSION_MAX_MS;
            break;
        case MCMD_GROUP_LEAVE:
            strcpy(c->u.group_leave.group, "g");
            c->u.group_leave.n = 3;
            c->u.group_leave.members = sample_members;
            break;
        case MCMD_GROUP_COMMIT:
            strcpy(c->u.group_offsets.group, "g-1");
            strcpy(c->u.group_offsets.member, "worker-2");
            c->u.group_offsets.generation = (1ull << 53) + 3;
            c->u.group_offsets.n = 2;
            c->u.group_offsets.offsets = sample_group_offsets;
            break;
        case MCMD_GROUP_OFFSETS:
            strcpy(c->u.group_offsets.group, "g_2");
            c->u.group_offsets.n = 1;
            c->u.group_offsets.offsets = sample_group_offsets;
            break;
        case MCMD_GROUP_DELETE:
            strcpy(c->u.group_delete.group, "old.group");
            break;
        case MCMD_CLUSTER_UID:
            c->u.cluster_uid.uid = 0x8000000000000001ull;
            break;
        case MCMD_GROUP_FOREIGN:
            c->u.group_foreign.group_id = (1ull << 40) + 5;
            c->u.group_foreign.broker = 7;
            break;
    }
}

static void assert_mcmd_equal(const struct mcmd *a, const struct mcmd *b)
{
    assert_int_equal(a->type, b->type);
    assert_true(a->now_ms == b->now_ms);
    switch (a->type) {
        case MCMD_MANAGER_ADDR:
        case MCMD_BROKER_REGISTER:
        case MCMD_BROKER_REISSUE:
            /* The payloads share a layout; compare through manager. */
            assert_int_equal(a->u.manager.id, b->u.manager.id);
            assert_string_equal(a->u.manager.raft_addr, b->u.manager.raft_addr);
            assert_string_equal(a->u.manager.http_addr, b->u.manager.http_addr);
            break;
        case MCMD_BROKER_STATE:
            assert_int_equal(a->u.broker_state.id, b->u.broker_state.id);
            assert_int_equal(a->u.broker_state.state, b->u.broker_state.state);
            break;
        case MCMD_TOPIC_CREATE:
            assert_string_equal(a->u.topic_create.name, b->u.topic_create.name);
            assert_int_equal(a->u.topic_create.n_partitions,
                             b->u.topic_create.n_partitions);
            assert_true(a->u.topic_create.retention_bytes ==
                        b->u.topic_create.retention_bytes);
            assert_true(a->u.topic_create.retention_ms ==
                        b->u.topic_create.retention_ms);
            assert_memory_equal(a->u.topic_create.replicas,
                                b->u.topic_create.replicas,
                                a->u.topic_create.n_partitions *
                                    sizeof a->u.topic_create.replicas[0]);
            break;
        case MCMD_TOPIC_DELETE:
            assert_string_equal(a->u.topic_delete.name, b->u.topic_delete.name);
            break;
        case MCMD_PRODUCER_REGISTER:
        case MCMD_CONSUMER_REGISTER:
            assert_string_equal(a->u.client_register.topic,
                                b->u.client_register.topic);
            assert_int_equal(a->u.client_register.partition_id,
                             b->u.client_register.partition_id);
            break;
        case MCMD_OFFSET_COMMIT:
            assert_true(a->u.offset_commit.consumer_id ==
                        b->u.offset_commit.consumer_id);
            assert_int_equal(a->u.offset_commit.cursor,
                             b->u.offset_commit.cursor);
            assert_int_equal(a->u.offset_commit.n, b->u.offset_commit.n);
            for (uint32_t i = 0; i < a->u.offset_commit.n; i++) {
                const struct mcmd_offset *x = &a->u.offset_commit.offsets[i];
                const struct mcmd_offset *y = &b->u.offset_commit.offsets[i];
                assert_int_equal(x->partition_id, y->partition_id);
                assert_true(x->offset == y->offset);
                assert_true(x->expected == y->expected);
            }
            break;
        case MCMD_PARTITION_REPLICAS:
            assert_string_equal(a->u.partition_replicas.topic,
                                b->u.partition_replicas.topic);
            assert_int_equal(a->u.partition_replicas.partition_id,
                             b->u.partition_replicas.partition_id);
            assert_true(a->u.partition_replicas.expected_epoch ==
                        b->u.partition_replicas.expected_epoch);
            assert_memory_equal(a->u.partition_replicas.replicas,
                                b->u.partition_replicas.replicas,
                                sizeof a->u.partition_replicas.replicas);
            break;
        case MCMD_TOKEN_CREATE:
            assert_string_equal(a->u.token_create.name, b->u.token_create.name);
            assert_memory_equal(a->u.token_create.hash, b->u.token_create.hash,
                                MCMD_TOKEN_HASH);
            assert_string_equal(a->u.token_create.grants,
                                b->u.token_create.grants);
            break;
        case MCMD_TOKEN_REVOKE:
            assert_true(a->u.token_revoke.id == b->u.token_revoke.id);
            break;
        case MCMD_GROUP_JOIN:
            assert_string_equal(a->u.group_join.group, b->u.group_join.group);
            assert_string_equal(a->u.group_join.topic, b->u.group_join.topic);
            assert_string_equal(a->u.group_join.member, b->u.group_join.member);
            assert_int_equal(a->u.group_join.session_ms,
                             b->u.group_join.session_ms);
            break;
        case MCMD_GROUP_LEAVE:
            assert_string_equal(a->u.group_leave.group, b->u.group_leave.group);
            assert_int_equal(a->u.group_leave.n, b->u.group_leave.n);
            for (uint32_t i = 0; i < a->u.group_leave.n; i++) {
                assert_string_equal(a->u.group_leave.members[i],
                                    b->u.group_leave.members[i]);
            }
            break;
        case MCMD_GROUP_COMMIT:
        case MCMD_GROUP_OFFSETS:
            assert_string_equal(a->u.group_offsets.group,
                                b->u.group_offsets.group);
            assert_string_equal(a->u.group_offsets.member,
                                b->u.group_offsets.member);
            assert_true(a->u.group_offsets.generation ==
                        b->u.group_offsets.generation);
            assert_int_equal(a->u.group_offsets.n, b->u.group_offsets.n);
            for (uint32_t i = 0; i < a->u.group_offsets.n; i++) {
                const struct mcmd_offset *x = &a->u.group_offsets.offsets[i];
                const struct mcmd_offset *y = &b->u.group_offsets.offsets[i];
                assert_int_equal(x->partition_id, y->partition_id);
                assert_true(x->offset == y->offset);
                assert_true(y->expected == MCMD_ANY);
            }
            break;
        case MCMD_GROUP_DELETE:
            assert_string_equal(a->u.group_delete.group,
                                b->u.group_delete.group);
            break;
        case MCMD_CLUSTER_UID:
            assert_true(a->u.cluster_uid.uid == b->u.cluster_uid.uid);
            break;
        case MCMD_GROUP_FOREIGN:
            assert_true(a->u.group_foreign.group_id ==
                        b->u.group_foreign.group_id);
            assert_int_equal(a->u.group_foreign.broker,
                             b->u.group_foreign.broker);
            break;
    }
}

static void encode_ok(const struct mcmd *c, struct rq_buf *b)
{
    rq_buf_init(b);
    assert_int_equal(mcmd_encode(c, b), 0);
    assert_int_equal(b->err, 0);
}

/* Decodes a heap copy of exactly @len bytes, so any overread is caught. */
static int decode_copy(const uint8_t *p, size_t len, struct mcmd *c, char *why,
                       size_t whyn)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, p, len);
    }
    int rv = mcmd_decode(copy, len, c, why, whyn);
    free(copy);
    return rv;
}

/* Decodes @len bytes expecting RQ_MALFORMED with a reason. */
static void assert_malformed(const uint8_t *p, size_t len)
{
    struct mcmd c;
    char why[256] = "";
    int rv = decode_copy(p, len, &c, why, sizeof why);
    if (rv != RQ_MALFORMED) {
        fail_msg("decoded %zu bytes: got %d, want RQ_MALFORMED", len, rv);
    }
    assert_true(strlen(why) > 0);
    assert_int_equal(c.type, 0);
}

/* Encodes @c expecting RQ_INVALID. */
static void assert_encode_invalid(const struct mcmd *c)
{
    struct rq_buf b;
    rq_buf_init(&b);
    assert_int_equal(mcmd_encode(c, &b), RQ_INVALID);
    rq_buf_close(&b);
}

/* ---- Round trips ---- */

static void test_mcmd_roundtrip_every_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_TYPES; i++) {
        enum mcmd_type t = all_types[i];
        struct mcmd in;
        struct mcmd out;
        struct rq_buf b;
        char why[128];
        sample((enum mcmd_type)t, &in);
        encode_ok(&in, &b);
        assert_int_equal(b.base[0], MCMD_VERSION);
        assert_int_equal(b.base[1], t);
        assert_int_equal(decode_copy(b.base, b.len, &out, why, sizeof why), 0);
        assert_mcmd_equal(&in, &out);

        /* Re-encoding the decoded command gives the same bytes. */
        struct rq_buf again;
        encode_ok(&out, &again);
        assert_int_equal(again.len, b.len);
        assert_memory_equal(again.base, b.base, b.len);
        rq_buf_close(&again);
        mcmd_clear(&out);
        rq_buf_close(&b);
    }
}

static void test_mcmd_roundtrip_at_the_limits(void **state)
{
    (void)state;
    struct mcmd in;
    struct mcmd out;
    struct rq_buf b;
    char why[128];

    /* The largest topic: 1024 partitions and a 128-character name. */
    uint32_t(*reps)[MCMD_RF] = calloc(MCMD_MAX_PARTITIONS, sizeof *reps);
    assert_non_null(reps);
    for (uint32_t p = 0; p < MCMD_MAX_PARTITIONS; p++) {
        for (int r = 0; r < MCMD_RF; r++) {
            reps[p][r] = p * 3 + (uint32_t)r + 1;
        }
    }
    sample(MCMD_TOPIC_CREATE, &in);
    memset(in.u.topic_create.name, 'n', MCMD_NAME_MAX);
    in.u.topic_create.name[MCMD_NAME_MAX] = '\0';
    in.u.topic_create.n_partitions = MCMD_MAX_PARTITIONS;
    in.u.topic_create.replicas = reps;
    encode_ok(&in, &b);
    assert_int_equal(decode_copy(b.base, b.len, &out, why, sizeof why), 0);
    assert_mcmd_equal(&in, &out);
    mcmd_clear(&out);
    assert_null(out.u.topic_create.replicas);
    rq_buf_close(&b);
    free(reps);

    /* The largest offset commit, and the empty one (a cursor step only). */
    struct mcmd_offset *offs = calloc(MCMD_MAX_OFFSETS, sizeof *offs);
    assert_non_null(offs);
    for (uint32_t i = 0; i < MCMD_MAX_OFFSETS; i++) {
        offs[i].partition_id = MCMD_MAX_OFFSETS - i;
        offs[i].offset = i * 1000ull;
        offs[i].expected = i % 2 ? MCMD_ANY : i;
    }
    sample(MCMD_OFFSET_COMMIT, &in);
    in.u.offset_commit.n = MCMD_MAX_OFFSETS;
    in.u.offset_commit.offsets = offs;
    encode_ok(&in, &b);
    assert_int_equal(decode_copy(b.base, b.len, &out, why, sizeof why), 0);
    assert_mcmd_equal(&in, &out);
    mcmd_clear(&out);
    rq_buf_close(&b);
    free(offs);

    in.u.offset_commit.n = 0;
    in.u.offset_commit.offsets = NULL;
    encode_ok(&in, &b);
    assert_int_equal(decode_copy(b.base, b.len, &out, why, sizeof why), 0);
    assert_mcmd_equal(&in, &out);
    assert_null(out.u.offset_commit.offsets);
    mcmd_clear(&out);
    rq_buf_close(&b);

    /* Addresses of the longest length. */
    sample(MCMD_BROKER_REGISTER, &in);
    memset(in.u.broker_register.http_addr, 'h', MCMD_ADDR_MAX);
    in.u.broker_register.http_addr[MCMD_ADDR_MAX] = '\0';
    encode_ok(&in, &b);
    assert_int_equal(decode_copy(b.base, b.len, &out, why, sizeof why), 0);
    assert_mcmd_equal(&in, &out);
    rq_buf_close(&b);
}

/* ---- Truncation and hostile bytes ---- */

static void test_mcmd_truncation_at_every_byte_is_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_TYPES; i++) {
        enum mcmd_type t = all_types[i];
        struct mcmd in;
        struct rq_buf b;
        sample((enum mcmd_type)t, &in);
        encode_ok(&in, &b);
        for (size_t n = 0; n < b.len; n++) {
            assert_malformed(b.base, n);
        }
        /* One byte too many is refused too. */
        rq_buf_put_u8(&b, 0);
        assert_malformed(b.base, b.len);
        rq_buf_close(&b);
    }
}

static void test_mcmd_random_and_mutated_buffers_never_crash(void **state)
{
    (void)state;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    struct rq_buf valid[N_TYPES];
    size_t decoded = 0;
    for (size_t t = 0; t < N_TYPES; t++) {
        struct mcmd in;
        sample(all_types[t], &in);
        encode_ok(&in, &valid[t]);
    }
    for (int iter = 0; iter < 5000; iter++) {
        uint8_t buf[512];
        size_t len;
        uint64_t r = xorshift64star(&rng);
        if (r % 4 == 0) {
            /* Random bytes, usually behind a plausible header so the
             * field decoders are reached. */
            len = xorshift64star(&rng) % sizeof buf;
            for (size_t i = 0; i < len; i++) {
                buf[i] = (uint8_t)xorshift64star(&rng);
            }
            if (len >= 2 && r % 8 == 0) {
                buf[0] = MCMD_VERSION;
                buf[1] = (uint8_t)(1 + xorshift64star(&rng) % LAST_TYPE);
            }
        } else {
            /* A valid command with a few bytes changed, cut or extended. */
            const struct rq_buf *v = &valid[xorshift64star(&rng) % N_TYPES];
            len = v->len;
            memcpy(buf, v->base, len);
            int flips = 1 + (int)(xorshift64star(&rng) % 4);
            for (int k = 0; k < flips; k++) {
                size_t at = xorshift64star(&rng) % len;
                switch (xorshift64star(&rng) % 4) {
                    case 0:
                        buf[at] ^= (uint8_t)(1u << (xorshift64star(&rng) % 8));
                        break;
                    case 1:
                        buf[at] = 0xff;
                        break;
                    case 2:
                        buf[at] = 0;
                        break;
                    default:
                        buf[at] = (uint8_t)xorshift64star(&rng);
                        break;
                }
            }
            if (r % 5 == 1) {
                len = xorshift64star(&rng) % (len + 1);
            } else if (r % 5 == 2 && len < sizeof buf) {
                buf[len++] = (uint8_t)xorshift64star(&rng);
            }
        }
        struct mcmd c;
        char why[256] = "";
        int rv = decode_copy(buf, len, &c, why, sizeof why);
        if (rv == RQ_MALFORMED) {
            assert_true(strlen(why) > 0);
            continue;
        }
        assert_int_equal(rv, 0);
        /* Whatever decodes is a valid command: it re-encodes to exactly
         * the bytes it came from. */
        struct rq_buf again;
        encode_ok(&c, &again);
        assert_int_equal(again.len, len);
        assert_memory_equal(again.base, buf, len);
        rq_buf_close(&again);
        mcmd_clear(&c);
        decoded++;
    }
    /* Some mutations (in now_ms, ids, offsets) still decode; make sure the
     * accepting path ran, not only refusals. */
    assert_true(decoded > 100);
    for (size_t t = 0; t < N_TYPES; t++) {
        rq_buf_close(&valid[t]);
    }
}

/* ---- Invalid fields ---- */

/* The rule itself is tested in test_names.c; here, that the codec keeps it. */
static void test_mcmd_topic_names(void **state)
{
    (void)state;
    const char *bad[] = {"", ".", "..", "a/b", "a b", "é", "a\n", "a:b", "*"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mcmd c;
        sample(MCMD_TOPIC_DELETE, &c);
        strcpy(c.u.topic_delete.name, bad[i]);
        assert_encode_invalid(&c);
    }
}

/* Encodes a valid command, then overwrites the bytes at @at. */
static void patch_and_refuse(enum mcmd_type t, size_t at, const void *bytes,
                             size_t n)
{
    struct mcmd c;
    struct rq_buf b;
    sample(t, &c);
    encode_ok(&c, &b);
    assert_true(at + n <= b.len);
    memcpy(b.base + at, bytes, n);
    assert_malformed(b.base, b.len);
    rq_buf_close(&b);
}

/* A TOPIC_DELETE naming the @n bytes at @name must be refused. */
static void delete_refused(const char *name, size_t n)
{
    struct rq_buf b;
    rq_buf_init(&b);
    rq_buf_put_u8(&b, MCMD_VERSION);
    rq_buf_put_u8(&b, MCMD_TOPIC_DELETE);
    rq_buf_put_u64(&b, 0);
    rq_buf_put_blob(&b, name, n);
    assert_malformed(b.base, b.len);
    rq_buf_close(&b);
}

static void test_mcmd_decode_refuses_invalid_fields(void **state)
{
    (void)state;
    uint8_t zero4[4] = {0, 0, 0, 0};

    /* Header: version and type. */
    patch_and_refuse(MCMD_TOPIC_DELETE, 0, "\x02", 1);
    patch_and_refuse(MCMD_TOPIC_DELETE, 0, "\x00", 1);
    patch_and_refuse(MCMD_TOPIC_DELETE, 1, "\x00", 1);
    patch_and_refuse(MCMD_TOPIC_DELETE, 1, "\x0c", 1);
    patch_and_refuse(MCMD_TOPIC_DELETE, 1, "\xff", 1);

    /* Names: bad characters, "." and "..", a NUL inside, too long. The
     * sample names are "..." (delete) and "t" (producer). */
    patch_and_refuse(MCMD_TOPIC_DELETE, HEADER + 4, "a/b", 3);
    patch_and_refuse(MCMD_TOPIC_DELETE, HEADER + 4, "a\0b", 3);
    patch_and_refuse(MCMD_PRODUCER_REGISTER, HEADER + 4, " ", 1);
    char name[MCMD_NAME_MAX + 1];
    memset(name, 'a', sizeof name);
    delete_refused("", 0);
    delete_refused(".", 1);
    delete_refused("..", 2);
    delete_refused("a\0", 2);
    delete_refused(name, sizeof name);

    /* Server ids 0, an unknown broker state, empty and NUL-bearing
     * addresses, an address one byte too long. */
    patch_and_refuse(MCMD_MANAGER_ADDR, HEADER, zero4, 4);
    patch_and_refuse(MCMD_BROKER_REGISTER, HEADER, zero4, 4);
    patch_and_refuse(MCMD_BROKER_STATE, HEADER, zero4, 4);
    patch_and_refuse(MCMD_BROKER_STATE, HEADER + 4, "\x00", 1);
    patch_and_refuse(MCMD_BROKER_STATE, HEADER + 4, "\x07", 1);
    patch_and_refuse(MCMD_MANAGER_ADDR, HEADER + 4 + 4 + 2, "\0", 1);
    {
        struct rq_buf b;
        char addr[MCMD_ADDR_MAX + 1];
        memset(addr, 'h', sizeof addr);
        for (int k = 0; k < 2; k++) {
            rq_buf_init(&b);
            rq_buf_put_u8(&b, MCMD_VERSION);
            rq_buf_put_u8(&b, MCMD_MANAGER_ADDR);
            rq_buf_put_u64(&b, 0);
            rq_buf_put_u32(&b, 1);
            rq_buf_put_blob(&b, addr, k == 0 ? sizeof addr : 0);
            rq_buf_put_blob(&b, "h:1", 3);
            assert_malformed(b.base, b.len);
            rq_buf_close(&b);
        }
    }

    /* Partition counts 0 and 1025, and a count the bytes cannot hold. */
    size_t count_at = HEADER + 4 + strlen("orders.v2_eu-west");
    patch_and_refuse(MCMD_TOPIC_CREATE, count_at, zero4, 4);
    patch_and_refuse(MCMD_TOPIC_CREATE, count_at, "\x01\x04\x00\x00", 4);
    patch_and_refuse(MCMD_TOPIC_CREATE, count_at, "\x04\x00\x00\x00", 4);
    patch_and_refuse(MCMD_TOPIC_CREATE, count_at, "\xff\xff\xff\xff", 4);

    /* Offset counts over the limit or beyond the bytes, and a partition
     * named twice (the sample's second offset made to repeat the first). */
    size_t n_at = HEADER + 8 + 4;
    patch_and_refuse(MCMD_OFFSET_COMMIT, n_at, "\x01\x04\x00\x00", 4);
    patch_and_refuse(MCMD_OFFSET_COMMIT, n_at, "\x04\x00\x00\x00", 4);
    patch_and_refuse(MCMD_OFFSET_COMMIT, n_at + 4 + 20, zero4, 4);
}

static void test_mcmd_encode_refuses_invalid_fields(void **state)
{
    (void)state;
    struct mcmd c;

    sample(MCMD_TOPIC_CREATE, &c);
    strcpy(c.u.topic_create.name, "..");
    assert_encode_invalid(&c);
    sample(MCMD_TOPIC_CREATE, &c);
    c.u.topic_create.n_partitions = 0;
    assert_encode_invalid(&c);
    c.u.topic_create.n_partitions = MCMD_MAX_PARTITIONS + 1;
    assert_encode_invalid(&c);
    sample(MCMD_TOPIC_CREATE, &c);
    c.u.topic_create.replicas = NULL;
    assert_encode_invalid(&c);

    sample(MCMD_OFFSET_COMMIT, &c);
    c.u.offset_commit.n = MCMD_MAX_OFFSETS + 1;
    assert_encode_invalid(&c);
    sample(MCMD_OFFSET_COMMIT, &c);
    c.u.offset_commit.offsets = NULL;
    assert_encode_invalid(&c);
    struct mcmd_offset dup[2] = {{4, 1, MCMD_ANY}, {4, 2, MCMD_ANY}};
    c.u.offset_commit.n = 2;
    c.u.offset_commit.offsets = dup;
    assert_encode_invalid(&c);

    sample(MCMD_BROKER_REGISTER, &c);
    c.u.broker_register.id = 0;
    assert_encode_invalid(&c);
    sample(MCMD_BROKER_REGISTER, &c);
    c.u.broker_register.raft_addr[0] = '\0';
    assert_encode_invalid(&c);
    sample(MCMD_MANAGER_ADDR, &c);
    memset(c.u.manager.http_addr, 'h', sizeof c.u.manager.http_addr);
    assert_encode_invalid(&c); /* Not NUL-terminated within its array. */

    sample(MCMD_BROKER_STATE, &c);
    c.u.broker_state.state = (enum mbroker_state)0;
    assert_encode_invalid(&c);
    c.u.broker_state.state = (enum mbroker_state)(MBROKER_REMOVING + 1);
    assert_encode_invalid(&c);

    sample(MCMD_PARTITION_REPLICAS, &c);
    strcpy(c.u.partition_replicas.topic, "a b");
    assert_encode_invalid(&c);

    memset(&c, 0, sizeof c);
    c.type = (enum mcmd_type)(LAST_TYPE + 1);
    assert_encode_invalid(&c);
}

/* Token commands: names, grants (valid and canonical, since every store
 * must hold the same text), ids; the hash is any 32 bytes. */
static void test_mcmd_token_fields(void **state)
{
    (void)state;
    struct mcmd c;
    struct mcmd out;
    struct rq_buf b;
    char why[256];
    const char *bad_names[] = {"", "a b", "a/b", "é", "a:b"};
    const char *bad_grants[] = {
        "",                 /* no grant */
        "write:x",          /* unknown */
        "produce:x*",       /* star inside */
        "produce:a  admin", /* two spaces: not canonical */
        " admin",           /* leading space */
        "admin admin",      /* duplicate */
        "produce:a.b.*x",   /* not a name */
    };

    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        sample(MCMD_TOKEN_CREATE, &c);
        strcpy(c.u.token_create.name, bad_names[i]);
        assert_encode_invalid(&c);
    }
    sample(MCMD_TOKEN_CREATE, &c);
    memset(c.u.token_create.name, 'n', MCMD_TOKEN_NAME_MAX);
    c.u.token_create.name[MCMD_TOKEN_NAME_MAX] = '\0';
    encode_ok(&c, &b);
    rq_buf_close(&b);
    memset(c.u.token_create.name, 'n', sizeof c.u.token_create.name);
    assert_encode_invalid(&c);
    for (size_t i = 0; i < sizeof bad_grants / sizeof bad_grants[0]; i++) {
        sample(MCMD_TOKEN_CREATE, &c);
        strcpy(c.u.token_create.grants, bad_grants[i]);
        assert_encode_invalid(&c);
    }
    sample(MCMD_TOKEN_REVOKE, &c);
    c.u.token_revoke.id = 0;
    assert_encode_invalid(&c);

    /* The longest grants text round-trips. */
    sample(MCMD_TOKEN_CREATE, &c);
    size_t len = 0;
    for (int i = 0; i < 16; i++) {
        len += (size_t)snprintf(
            c.u.token_create.grants + len, sizeof c.u.token_create.grants - len,
            "%sconsume:%c%0127d.*", i > 0 ? " " : "", 'a' + i, 0);
    }
    assert_int_equal(len, MCMD_GRANTS_TEXT_MAX - 1);
    encode_ok(&c, &b);
    assert_int_equal(decode_copy(b.base, b.len, &out, why, sizeof why), 0);
    assert_mcmd_equal(&c, &out);
    rq_buf_close(&b);

    /* Decoding checks the same: a grant's text patched in the log, and a
     * grants text one byte over the limit. */
    sample(MCMD_TOKEN_CREATE, &c);
    size_t grants_at =
        HEADER + 4 + strlen(c.u.token_create.name) + MCMD_TOKEN_HASH + 4;
    patch_and_refuse(MCMD_TOKEN_CREATE, grants_at, "xroduce", 7);
    patch_and_refuse(MCMD_TOKEN_CREATE, HEADER + 4, " ", 1);
    rq_buf_init(&b);
    rq_buf_put_u8(&b, MCMD_VERSION);
    rq_buf_put_u8(&b, MCMD_TOKEN_CREATE);
    rq_buf_put_u64(&b, 0);
    rq_buf_put_blob(&b, "n", 1);
    rq_buf_put_bytes(&b, c.u.token_create.hash, MCMD_TOKEN_HASH);
    char big[MCMD_GRANTS_TEXT_MAX + 1];
    memset(big, 'a', sizeof big);
    rq_buf_put_blob(&b, big, sizeof big);
    assert_malformed(b.base, b.len);
    rq_buf_close(&b);
    patch_and_refuse(MCMD_TOKEN_REVOKE, HEADER, "\0\0\0\0\0\0\0\0", 8);
}

/* The consumer groups' fields: names, member ids, session bounds, lists,
 * in both directions. */
static void test_mcmd_group_fields(void **state)
{
    (void)state;
    struct mcmd c;
    struct mcmd_offset twice[2] = {{3, 1, MCMD_ANY}, {3, 2, MCMD_ANY}};
    struct mcmd_offset compared[1] = {{0, 1, 0}};
    char bad_members[2][MCMD_MEMBER_MAX + 1] = {"ok", "no/slash"};

    sample(MCMD_GROUP_JOIN, &c);
    c.u.group_join.session_ms = MCMD_SESSION_MIN_MS - 1;
    assert_encode_invalid(&c);
    c.u.group_join.session_ms = MCMD_SESSION_MAX_MS + 1;
    assert_encode_invalid(&c);
    sample(MCMD_GROUP_JOIN, &c);
    strcpy(c.u.group_join.group, "..");
    assert_encode_invalid(&c);
    sample(MCMD_GROUP_JOIN, &c);
    strcpy(c.u.group_join.member, "a b");
    assert_encode_invalid(&c);
    sample(MCMD_GROUP_JOIN, &c);
    c.u.group_join.member[0] = '\0';
    assert_encode_invalid(&c);

    sample(MCMD_GROUP_LEAVE, &c);
    c.u.group_leave.n = 0;
    assert_encode_invalid(&c);
    c.u.group_leave.n = 2;
    c.u.group_leave.members = bad_members;
    assert_encode_invalid(&c);

    sample(MCMD_GROUP_COMMIT, &c);
    c.u.group_offsets.offsets = twice;
    assert_encode_invalid(&c);
    c.u.group_offsets.n = 1;
    c.u.group_offsets.offsets = compared;
    assert_encode_invalid(&c);
    sample(MCMD_GROUP_COMMIT, &c);
    c.u.group_offsets.member[0] = '\0';
    assert_encode_invalid(&c);
    c.u.group_offsets.n = MCMD_MAX_OFFSETS + 1;
    assert_encode_invalid(&c);

    /* An operator's offsets name no member and no generation. */
    sample(MCMD_GROUP_OFFSETS, &c);
    strcpy(c.u.group_offsets.member, "m");
    assert_encode_invalid(&c);
    sample(MCMD_GROUP_OFFSETS, &c);
    c.u.group_offsets.generation = 1;
    assert_encode_invalid(&c);
    sample(MCMD_GROUP_OFFSETS, &c);
    c.u.group_offsets.n = 0;
    struct rq_buf b;
    encode_ok(&c, &b);
    rq_buf_close(&b);

    /* A cluster uid is never 0. */
    sample(MCMD_CLUSTER_UID, &c);
    c.u.cluster_uid.uid = 0;
    assert_encode_invalid(&c);
    sample(MCMD_GROUP_FOREIGN, &c);
    c.u.group_foreign.broker = 0;
    assert_encode_invalid(&c);

    /* A batch entry's type byte is no command's. */
    patch_and_refuse(MCMD_GROUP_DELETE, 1, "\x0c", 1);

    /* Decoding: a member count of 0, a hostile count, a session out of
     * range, a member id with a slash. */
    sample(MCMD_GROUP_LEAVE, &c);
    encode_ok(&c, &b);
    size_t count_at = HEADER + 4 + strlen(c.u.group_leave.group);
    rq_buf_close(&b);
    patch_and_refuse(MCMD_GROUP_LEAVE, count_at, "\0\0\0\0", 4);
    patch_and_refuse(MCMD_GROUP_LEAVE, count_at, "\xff\xff\xff\x7f", 4);
    sample(MCMD_GROUP_JOIN, &c);
    encode_ok(&c, &b);
    patch_and_refuse(MCMD_GROUP_JOIN, b.len - 4, "\x01\0\0\0", 4);
    rq_buf_close(&b);
    patch_and_refuse(MCMD_GROUP_LEAVE, count_at + 4 + 4 + 3, "/", 1);
    sample(MCMD_GROUP_OFFSETS, &c);
    encode_ok(&c, &b);
    patch_and_refuse(MCMD_GROUP_OFFSETS, b.len - 12 - 4, "\xff\xff\0\0", 4);
    rq_buf_close(&b);
}

static void test_mcmd_names_of_types_and_states(void **state)
{
    (void)state;
    assert_string_equal(mcmd_type_name(MCMD_TOPIC_CREATE), "topic_create");
    assert_string_equal(mcmd_type_name(MCMD_PARTITION_REPLICAS),
                        "partition_replicas");
    assert_string_equal(mcmd_type_name(MCMD_TOKEN_REVOKE), "token_revoke");
    assert_string_equal(mcmd_type_name(MCMD_GROUP_COMMIT), "group_commit");
    assert_string_equal(mcmd_type_name(MCMD_GROUP_DELETE), "group_delete");
    assert_string_equal(mcmd_type_name(MCMD_CLUSTER_UID), "cluster_uid");
    assert_string_equal(mcmd_type_name(MCMD_GROUP_FOREIGN), "group_foreign");
    assert_string_equal(mcmd_type_name(MCMD_BROKER_REISSUE), "broker_reissue");
    assert_string_equal(mcmd_type_name((enum mcmd_type)0), "unknown");
    assert_string_equal(mbroker_state_name(MBROKER_ALIVE), "alive");
    assert_string_equal(mbroker_state_name(MBROKER_REMOVED), "removed");
    assert_string_equal(mbroker_state_name(MBROKER_REMOVING), "removing");
    assert_string_equal(mbroker_state_name((enum mbroker_state)9), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mcmd_roundtrip_every_type),
        cmocka_unit_test(test_mcmd_roundtrip_at_the_limits),
        cmocka_unit_test(test_mcmd_truncation_at_every_byte_is_malformed),
        cmocka_unit_test(test_mcmd_random_and_mutated_buffers_never_crash),
        cmocka_unit_test(test_mcmd_topic_names),
        cmocka_unit_test(test_mcmd_decode_refuses_invalid_fields),
        cmocka_unit_test(test_mcmd_encode_refuses_invalid_fields),
        cmocka_unit_test(test_mcmd_names_of_types_and_states),
        cmocka_unit_test(test_mcmd_token_fields),
        cmocka_unit_test(test_mcmd_group_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
