/*
 * Unit tests of the connection preamble: the round trip, and that every
 * damaged, forged or random preamble is refused with the right code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nettle/hmac.h>

#include "rq_err.h"
#include "rq_preamble.h"
#include "rq_wire.h"

#include "unit_util.h"

#define SECRET "correct horse battery staple"

static void sample(struct rq_preamble *p)
{
    memset(p, 0, sizeof *p);
    p->version = RQ_PREAMBLE_VERSION;
    p->kind = RQ_STREAM_RAFT;
    p->cluster_id = 0x1122334455667788ull;
    p->group_id = 42;
    p->sender_id = 3;
    p->nonce = 0xfeedfacecafebeefull;
    strcpy(p->address, "broker-3.example:7001");
}

/* Recomputes the MAC of @buf after a test edited its fields, so that the
 * decoder's field checks, not the MAC, are what reject it. */
static void remac(uint8_t buf[RQ_PREAMBLE_SIZE], const struct rq_cluster_key *k)
{
    struct hmac_sha256_ctx ctx;
    const size_t body = RQ_PREAMBLE_SIZE - RQ_PREAMBLE_MAC;
    hmac_sha256_set_key(&ctx, sizeof k->key, k->key);
    hmac_sha256_update(&ctx, body, buf);
    hmac_sha256_digest(&ctx, RQ_PREAMBLE_MAC, buf + body);
}

/* The key from SECRET, and the sample preamble encoded with it. */
static void encode_sample(struct rq_cluster_key *k,
                          uint8_t good[RQ_PREAMBLE_SIZE])
{
    struct rq_preamble p;
    rq_cluster_key_derive(k, SECRET);
    sample(&p);
    assert_int_equal(rq_preamble_encode(&p, k, good), 0);
}

/* Re-MACs @buf, which a test edited, and asserts the decoder refuses it as
 * malformed with a reason that mentions @what. */
static void assert_edit_malformed(uint8_t buf[RQ_PREAMBLE_SIZE],
                                  const struct rq_cluster_key *k,
                                  const char *what)
{
    struct rq_preamble out;
    char why[128] = "";
    remac(buf, k);
    assert_int_equal(rq_preamble_decode(buf, k, &out, why, sizeof why),
                     RQ_MALFORMED);
    if (strstr(why, what) == NULL) {
        fail_msg("reason \"%s\" does not mention \"%s\"", why, what);
    }
}

static void test_preamble_roundtrip(void **state)
{
    (void)state;
    struct rq_cluster_key k;
    struct rq_preamble in, out;
    uint8_t buf[RQ_PREAMBLE_SIZE];
    char why[128] = "";

    rq_cluster_key_derive(&k, SECRET);
    sample(&in);
    assert_int_equal(rq_preamble_encode(&in, &k, buf), 0);
    /* Little-endian "RQMX" at the front, the address at byte 40. */
    assert_memory_equal(buf, "RQMX", 4);
    assert_int_equal(buf[8], 0x88);
    assert_string_equal((const char *)buf + 40, in.address);

    memset(&out, 0xff, sizeof out);
    assert_int_equal(rq_preamble_decode(buf, &k, &out, why, sizeof why), 0);
    assert_int_equal(out.version, RQ_PREAMBLE_VERSION);
    assert_int_equal(out.kind, RQ_STREAM_RAFT);
    assert_true(out.cluster_id == in.cluster_id);
    assert_true(out.group_id == 42);
    assert_true(out.sender_id == 3);
    assert_true(out.nonce == in.nonce);
    assert_string_equal(out.address, in.address);

    /* The longest address that fits, and an empty one. */
    memset(in.address, 'a', RQ_PREAMBLE_ADDR - 1);
    in.address[RQ_PREAMBLE_ADDR - 1] = '\0';
    in.kind = RQ_STREAM_RPC;
    assert_int_equal(rq_preamble_encode(&in, &k, buf), 0);
    assert_int_equal(rq_preamble_decode(buf, &k, &out, why, sizeof why), 0);
    assert_int_equal(strlen(out.address), RQ_PREAMBLE_ADDR - 1);
    assert_int_equal(out.kind, RQ_STREAM_RPC);
    in.address[0] = '\0';
    assert_int_equal(rq_preamble_encode(&in, &k, buf), 0);
    assert_int_equal(rq_preamble_decode(buf, &k, &out, why, sizeof why), 0);
    assert_string_equal(out.address, "");
}

static void test_preamble_key_depends_on_secret(void **state)
{
    (void)state;
    struct rq_cluster_key a, b, c;
    rq_cluster_key_derive(&a, SECRET);
    rq_cluster_key_derive(&b, SECRET);
    rq_cluster_key_derive(&c, SECRET "!");
    assert_memory_equal(a.key, b.key, sizeof a.key);
    assert_memory_not_equal(a.key, c.key, sizeof a.key);
}

static void test_preamble_wrong_key_is_auth_error(void **state)
{
    (void)state;
    struct rq_cluster_key k, other;
    struct rq_preamble p, out;
    uint8_t buf[RQ_PREAMBLE_SIZE];
    char why[128] = "";

    rq_cluster_key_derive(&k, SECRET);
    rq_cluster_key_derive(&other, "another secret");
    sample(&p);
    assert_int_equal(rq_preamble_encode(&p, &k, buf), 0);
    assert_int_equal(rq_preamble_decode(buf, &other, &out, why, sizeof why),
                     RQ_AUTH);
    assert_non_null(strstr(why, "MAC"));
}

static void test_preamble_every_bit_flip_and_truncation_rejected(void **state)
{
    (void)state;
    struct rq_cluster_key k;
    struct rq_preamble out;
    uint8_t good[RQ_PREAMBLE_SIZE];
    uint8_t buf[RQ_PREAMBLE_SIZE];
    char why[128];

    encode_sample(&k, good);

    for (size_t bit = 0; bit < RQ_PREAMBLE_SIZE * 8; bit++) {
        memcpy(buf, good, sizeof buf);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rv = rq_preamble_decode(buf, &k, &out, why, sizeof why);
        assert_true(rv == RQ_AUTH || rv == RQ_MALFORMED);
    }

    /* The decoder always sees 136 bytes (the mux waits for all of them), so
     * a preamble cut short reaches it completed by whatever follows: zeros,
     * 0xff, or the start of another copy of itself. */
    for (size_t n = 0; n < RQ_PREAMBLE_SIZE; n++) {
        for (int fill = 0; fill < (n == 0 ? 2 : 3); fill++) {
            if (fill == 2) {
                memcpy(buf + n, good, RQ_PREAMBLE_SIZE - n);
            } else {
                memset(buf, fill == 0 ? 0x00 : 0xff, sizeof buf);
            }
            memcpy(buf, good, n);
            int rv = rq_preamble_decode(buf, &k, &out, why, sizeof why);
            assert_true(rv == RQ_AUTH || rv == RQ_MALFORMED);
        }
    }
}

static void test_preamble_bad_fields_are_malformed(void **state)
{
    (void)state;
    struct rq_cluster_key k;
    uint8_t good[RQ_PREAMBLE_SIZE];
    uint8_t buf[RQ_PREAMBLE_SIZE];

    encode_sample(&k, good);

    memcpy(buf, good, sizeof buf);
    rq_wire_put_u32_at(buf, 0x48545450u); /* "PTTH": someone speaking HTTP. */
    assert_edit_malformed(buf, &k, "magic");

    memcpy(buf, good, sizeof buf);
    rq_wire_put_u16_at(buf + 4, RQ_PREAMBLE_VERSION + 1);
    assert_edit_malformed(buf, &k, "version");

    const uint16_t kinds[] = {0, 3, 0xffff};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        memcpy(buf, good, sizeof buf);
        rq_wire_put_u16_at(buf + 6, kinds[i]);
        assert_edit_malformed(buf, &k, "kind");
    }
}

static void test_preamble_bad_address_is_malformed(void **state)
{
    (void)state;
    struct rq_cluster_key k;
    uint8_t good[RQ_PREAMBLE_SIZE];
    uint8_t buf[RQ_PREAMBLE_SIZE];

    encode_sample(&k, good);

    /* No NUL anywhere in the 64 bytes. */
    memcpy(buf, good, sizeof buf);
    memset(buf + 40, 'x', RQ_PREAMBLE_ADDR);
    assert_edit_malformed(buf, &k, "NUL-terminated");

    /* A control character, and a byte above 0x7e. */
    const uint8_t bad[] = {'\n', 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < sizeof bad; i++) {
        memcpy(buf, good, sizeof buf);
        buf[40 + 2] = bad[i];
        assert_edit_malformed(buf, &k, "printable");
    }

    /* Something hidden after the terminating NUL. */
    memcpy(buf, good, sizeof buf);
    buf[40 + RQ_PREAMBLE_ADDR - 1] = 'z';
    assert_edit_malformed(buf, &k, "padding");
}

static void test_preamble_encode_refuses_bad_address(void **state)
{
    (void)state;
    struct rq_cluster_key k;
    struct rq_preamble p;
    uint8_t buf[RQ_PREAMBLE_SIZE];

    rq_cluster_key_derive(&k, SECRET);
    sample(&p);
    /* 64 characters leave no room for the NUL. */
    memset(p.address, 'a', RQ_PREAMBLE_ADDR);
    assert_int_equal(rq_preamble_encode(&p, &k, buf), RQ_INVALID);

    sample(&p);
    p.address[3] = '\t';
    assert_int_equal(rq_preamble_encode(&p, &k, buf), RQ_INVALID);
}

static void test_preamble_random_bytes_never_accepted(void **state)
{
    (void)state;
    struct rq_cluster_key k;
    struct rq_preamble out;
    uint8_t buf[RQ_PREAMBLE_SIZE];
    char why[128];
    uint64_t seed = 0x9e3779b97f4a7c15ull;

    rq_cluster_key_derive(&k, SECRET);
    for (int round = 0; round < 5000; round++) {
        for (size_t i = 0; i < sizeof buf; i++) {
            buf[i] = (uint8_t)xorshift64(&seed);
        }
        /* Half of the buffers get a valid magic and version so the random
         * bytes reach the MAC check too. */
        if (round % 2 == 0) {
            rq_wire_put_u32_at(buf, RQ_PREAMBLE_MAGIC);
            rq_wire_put_u16_at(buf + 4, RQ_PREAMBLE_VERSION);
        }
        int rv = rq_preamble_decode(buf, &k, &out, why, sizeof why);
        assert_true(rv == RQ_AUTH || rv == RQ_MALFORMED);
        if (round % 2 == 0) {
            assert_int_equal(rv, RQ_AUTH);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preamble_roundtrip),
        cmocka_unit_test(test_preamble_key_depends_on_secret),
        cmocka_unit_test(test_preamble_wrong_key_is_auth_error),
        cmocka_unit_test(test_preamble_every_bit_flip_and_truncation_rejected),
        cmocka_unit_test(test_preamble_bad_fields_are_malformed),
        cmocka_unit_test(test_preamble_bad_address_is_malformed),
        cmocka_unit_test(test_preamble_encode_refuses_bad_address),
        cmocka_unit_test(test_preamble_random_bytes_never_accepted),
    };
    return cmocka_run_group_tests_name("preamble", tests, NULL, NULL);
}
