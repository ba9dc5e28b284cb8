/*
 * Unit tests of the connection challenge and preamble: the round trip
 * through a challenge, that the MAC binds the preamble to the one challenge
 * it answers, and that every damaged, forged, replayed or random input is
 * refused with the right code.
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
#include "rq_keys.h"
#include "rq_preamble.h"
#include "rq_wire.h"

#include "unit_util.h"

#define SECRET "preamble-unit-secret-0123456789abcdef"

/* Offsets of the layout drawn in rq_preamble.h, written out again here so
 * that a change to the format shows up as a failing test. */
#define AT_KIND 6
#define AT_CLUSTER 8
#define AT_GROUP 16
#define AT_SENDER 24
#define AT_CHALLENGE 32
#define AT_ADDRESS 64
#define AT_MAC 128

struct fixture {
    struct rq_keys keys;
    const uint8_t *key; /* RQ_KEY_RAFT of SECRET. */
    uint8_t nonce[RQ_NONCE_SIZE];
    uint8_t good[RQ_PREAMBLE_SIZE]; /* The sample, answering nonce. */
};

static void fill(uint8_t *p, size_t n, uint8_t start)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(start + i * 7);
    }
}

static void sample(struct rq_preamble *p, const uint8_t nonce[RQ_NONCE_SIZE])
{
    memset(p, 0, sizeof *p);
    p->version = RQ_PREAMBLE_VERSION;
    p->kind = RQ_STREAM_RAFT;
    p->cluster_id = 0x1122334455667788ull;
    p->group_id = 42;
    p->sender_id = 3;
    memcpy(p->challenge, nonce, RQ_NONCE_SIZE);
    strcpy(p->address, "broker-3.example:7001");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct rq_preamble p;
    if (f == NULL) {
        return -1;
    }
    rq_keys_derive(&f->keys, SECRET, strlen(SECRET));
    f->key = rq_keys_get(&f->keys, RQ_KEY_RAFT);
    fill(f->nonce, sizeof f->nonce, 0x31);
    sample(&p, f->nonce);
    if (rq_preamble_encode(&p, f->key, f->good) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* Recomputes the MAC of @buf after a test edited its fields, so that the
 * decoder's field checks, not the MAC, are what reject it. The MAC is
 * computed here with nettle directly, as an independent check of what the
 * encoder covers. */
static void remac(uint8_t buf[RQ_PREAMBLE_SIZE], const uint8_t *key)
{
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, RQ_KEY_SIZE, key);
    hmac_sha256_update(&ctx, AT_MAC, buf);
    hmac_sha256_digest(&ctx, RQ_PREAMBLE_MAC, buf + AT_MAC);
}

static int decode(const struct fixture *f, const uint8_t *buf,
                  const uint8_t *nonce, char *why, size_t whyn)
{
    struct rq_preamble out;
    return rq_preamble_decode(buf, f->key, nonce, &out, why, whyn);
}

/* Re-MACs @buf, which a test edited, and asserts the decoder refuses it as
 * malformed with a reason that mentions @what. */
static void assert_edit_malformed(const struct fixture *f,
                                  uint8_t buf[RQ_PREAMBLE_SIZE],
                                  const char *what)
{
    char why[128] = "";
    remac(buf, f->key);
    assert_int_equal(decode(f, buf, f->nonce, why, sizeof why), RQ_MALFORMED);
    if (strstr(why, what) == NULL) {
        fail_msg("reason \"%s\" does not mention \"%s\"", why, what);
    }
}

/* ---- The challenge ---- */

static void test_challenge_roundtrip_and_layout(void **state)
{
    (void)state;
    uint8_t nonce[RQ_NONCE_SIZE];
    uint8_t got[RQ_NONCE_SIZE];
    uint8_t buf[RQ_CHALLENGE_SIZE];
    char why[128] = "";

    fill(nonce, sizeof nonce, 0xa0);
    rq_challenge_encode(nonce, buf);
    assert_memory_equal(buf, "RQCH", 4);
    assert_int_equal(rq_wire_u16_at(buf + 4), RQ_PREAMBLE_VERSION);
    assert_int_equal(rq_wire_u16_at(buf + 6), 0);
    assert_memory_equal(buf + 8, nonce, RQ_NONCE_SIZE);
    memset(got, 0, sizeof got);
    assert_int_equal(rq_challenge_decode(buf, got, why, sizeof why), 0);
    assert_memory_equal(got, nonce, RQ_NONCE_SIZE);
}

static void test_challenge_bad_header_is_malformed(void **state)
{
    (void)state;
    uint8_t nonce[RQ_NONCE_SIZE];
    uint8_t got[RQ_NONCE_SIZE];
    uint8_t good[RQ_CHALLENGE_SIZE];
    uint8_t buf[RQ_CHALLENGE_SIZE];
    char why[128];

    fill(nonce, sizeof nonce, 0x10);
    rq_challenge_encode(nonce, good);

    /* Every bit of the header matters; every bit of the nonce is data. */
    for (size_t bit = 0; bit < RQ_CHALLENGE_SIZE * 8; bit++) {
        memcpy(buf, good, sizeof buf);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rv = rq_challenge_decode(buf, got, why, sizeof why);
        if (bit < 8 * 8) {
            assert_int_equal(rv, RQ_MALFORMED);
        } else {
            assert_int_equal(rv, 0);
            assert_memory_not_equal(got, nonce, RQ_NONCE_SIZE);
        }
    }

    /* A preamble where a challenge belongs (two listeners dialing each
     * other), an old version, and a flag we do not know. */
    memcpy(buf, good, sizeof buf);
    rq_wire_put_u32_at(buf, RQ_PREAMBLE_MAGIC);
    assert_int_equal(rq_challenge_decode(buf, got, why, sizeof why),
                     RQ_MALFORMED);
    assert_non_null(strstr(why, "magic"));
    memcpy(buf, good, sizeof buf);
    rq_wire_put_u16_at(buf + 4, 1);
    assert_int_equal(rq_challenge_decode(buf, got, why, sizeof why),
                     RQ_MALFORMED);
    assert_non_null(strstr(why, "version"));
    memcpy(buf, good, sizeof buf);
    rq_wire_put_u16_at(buf + 6, 0x0100);
    assert_int_equal(rq_challenge_decode(buf, got, why, sizeof why),
                     RQ_MALFORMED);
    assert_non_null(strstr(why, "flags"));
}

/* ---- The preamble ---- */

static void test_preamble_roundtrip_through_a_challenge(void **state)
{
    struct fixture *f = *state;
    uint8_t listener_nonce[RQ_NONCE_SIZE];
    uint8_t challenge[RQ_CHALLENGE_SIZE];
    struct rq_preamble in, out;
    uint8_t buf[RQ_PREAMBLE_SIZE];
    uint8_t mac[RQ_PREAMBLE_MAC];
    char why[128] = "";

    /* The listener draws a nonce and sends its challenge; the connector
     * reads the nonce out of it and answers. */
    fill(listener_nonce, sizeof listener_nonce, 0x5a);
    rq_challenge_encode(listener_nonce, challenge);
    sample(&in, f->nonce); /* Overwritten by the decode below. */
    assert_int_equal(
        rq_challenge_decode(challenge, in.challenge, why, sizeof why), 0);
    assert_int_equal(rq_preamble_encode(&in, f->key, buf), 0);

    /* The layout: little-endian "RQMX" first, the fields where the drawing
     * puts them, and the MAC an HMAC-SHA256 of everything before it. */
    assert_memory_equal(buf, "RQMX", 4);
    assert_int_equal(rq_wire_u16_at(buf + 4), RQ_PREAMBLE_VERSION);
    assert_int_equal(rq_wire_u16_at(buf + AT_KIND), RQ_STREAM_RAFT);
    assert_true(rq_wire_u64_at(buf + AT_CLUSTER) == in.cluster_id);
    assert_true(rq_wire_u64_at(buf + AT_GROUP) == 42);
    assert_true(rq_wire_u64_at(buf + AT_SENDER) == 3);
    assert_memory_equal(buf + AT_CHALLENGE, listener_nonce, RQ_NONCE_SIZE);
    assert_string_equal((const char *)buf + AT_ADDRESS, in.address);
    memcpy(mac, buf + AT_MAC, sizeof mac);
    remac(buf, f->key);
    assert_memory_equal(mac, buf + AT_MAC, sizeof mac);

    memset(&out, 0xff, sizeof out);
    assert_int_equal(
        rq_preamble_decode(buf, f->key, listener_nonce, &out, why, sizeof why),
        0);
    assert_int_equal(out.version, RQ_PREAMBLE_VERSION);
    assert_int_equal(out.kind, RQ_STREAM_RAFT);
    assert_true(out.cluster_id == in.cluster_id);
    assert_true(out.group_id == 42);
    assert_true(out.sender_id == 3);
    assert_memory_equal(out.challenge, listener_nonce, RQ_NONCE_SIZE);
    assert_string_equal(out.address, in.address);

    /* The longest address that fits, and an empty one. */
    memset(in.address, 'a', RQ_PREAMBLE_ADDR - 1);
    in.address[RQ_PREAMBLE_ADDR - 1] = '\0';
    in.kind = RQ_STREAM_RPC;
    assert_int_equal(rq_preamble_encode(&in, f->key, buf), 0);
    assert_int_equal(
        rq_preamble_decode(buf, f->key, listener_nonce, &out, why, sizeof why),
        0);
    assert_int_equal(strlen(out.address), RQ_PREAMBLE_ADDR - 1);
    assert_int_equal(out.kind, RQ_STREAM_RPC);
    in.address[0] = '\0';
    assert_int_equal(rq_preamble_encode(&in, f->key, buf), 0);
    assert_int_equal(
        rq_preamble_decode(buf, f->key, listener_nonce, &out, why, sizeof why),
        0);
    assert_string_equal(out.address, "");
}

static void test_preamble_mac_depends_on_the_nonce(void **state)
{
    struct fixture *f = *state;
    struct rq_preamble p;
    uint8_t nonce[RQ_NONCE_SIZE];
    uint8_t buf[RQ_PREAMBLE_SIZE];

    /* The same fields answering nonces one bit apart: different MACs,
     * whichever bit it is. */
    for (size_t bit = 0; bit < RQ_NONCE_SIZE * 8; bit++) {
        memcpy(nonce, f->nonce, sizeof nonce);
        nonce[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        sample(&p, nonce);
        assert_int_equal(rq_preamble_encode(&p, f->key, buf), 0);
        assert_memory_not_equal(buf + AT_MAC, f->good + AT_MAC,
                                RQ_PREAMBLE_MAC);
        assert_memory_equal(buf, f->good, AT_CHALLENGE);
        assert_memory_equal(buf + AT_ADDRESS, f->good + AT_ADDRESS,
                            AT_MAC - AT_ADDRESS);
    }
}

static void test_preamble_for_one_challenge_fails_another(void **state)
{
    struct fixture *f = *state;
    uint8_t other[RQ_NONCE_SIZE];
    char why[128] = "";

    /* Made for f->nonce, replayed where the listener sent another: the MAC
     * is valid, for the wrong challenge, and the decoder says so. */
    assert_int_equal(decode(f, f->good, f->nonce, why, sizeof why), 0);
    fill(other, sizeof other, 0x77);
    assert_int_equal(decode(f, f->good, other, why, sizeof why), RQ_REPLAYED);
    assert_non_null(strstr(why, "replayed"));
    /* One bit apart is just as much another challenge. */
    memcpy(other, f->nonce, sizeof other);
    other[RQ_NONCE_SIZE - 1] ^= 0x80;
    assert_int_equal(decode(f, f->good, other, why, sizeof why), RQ_REPLAYED);

    /* Rewriting the challenge field to the new nonce breaks the MAC: only
     * a holder of the key can answer a fresh challenge. */
    uint8_t buf[RQ_PREAMBLE_SIZE];
    memcpy(buf, f->good, sizeof buf);
    memcpy(buf + AT_CHALLENGE, other, RQ_NONCE_SIZE);
    assert_int_equal(decode(f, buf, other, why, sizeof why), RQ_AUTH);
    assert_non_null(strstr(why, "MAC"));
}

static void test_preamble_wrong_key_is_auth_error(void **state)
{
    struct fixture *f = *state;
    struct rq_keys other;
    struct rq_preamble out;
    char why[128] = "";
    const char *secret = SECRET "!";

    rq_keys_derive(&other, secret, strlen(secret));
    assert_int_equal(
        rq_preamble_decode(f->good, rq_keys_get(&other, RQ_KEY_RAFT), f->nonce,
                           &out, why, sizeof why),
        RQ_AUTH);
    assert_non_null(strstr(why, "MAC"));
    /* Another use's key of the same secret is another key too. */
    assert_int_equal(
        rq_preamble_decode(f->good, rq_keys_get(&f->keys, RQ_KEY_HTTP_M2M),
                           f->nonce, &out, why, sizeof why),
        RQ_AUTH);
}

static void test_preamble_every_tampered_field_refused(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[RQ_PREAMBLE_SIZE];
    char why[128];
    /* Each field the MAC covers, as [offset, length). */
    const struct {
        const char *name;
        size_t at, len;
    } fields[] = {
        {"kind", AT_KIND, 2},
        {"cluster id", AT_CLUSTER, 8},
        {"group id", AT_GROUP, 8},
        {"sender id", AT_SENDER, 8},
        {"challenge", AT_CHALLENGE, RQ_NONCE_SIZE},
        {"address", AT_ADDRESS, RQ_PREAMBLE_ADDR},
        {"mac", AT_MAC, RQ_PREAMBLE_MAC},
    };

    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        for (size_t k = 0; k < fields[i].len; k++) {
            memcpy(buf, f->good, sizeof buf);
            buf[fields[i].at + k] ^= 0x01;
            int rv = decode(f, buf, f->nonce, why, sizeof why);
            if (rv != RQ_AUTH) {
                fail_msg("%s byte %zu changed: %s, not a MAC failure",
                         fields[i].name, k, rq_strerror(rv));
            }
        }
    }

    /* Every bit anywhere: refused, never accepted nor taken for a replay. */
    for (size_t bit = 0; bit < RQ_PREAMBLE_SIZE * 8; bit++) {
        memcpy(buf, f->good, sizeof buf);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rv = decode(f, buf, f->nonce, why, sizeof why);
        assert_true(rv == RQ_AUTH || rv == RQ_MALFORMED);
    }

    /* The decoder always sees 160 bytes (the mux waits for all of them), so
     * a preamble cut short reaches it completed by whatever follows: zeros,
     * 0xff, or the start of another copy of itself. */
    for (size_t n = 0; n < RQ_PREAMBLE_SIZE; n++) {
        for (int fillc = 0; fillc < (n == 0 ? 2 : 3); fillc++) {
            if (fillc == 2) {
                memcpy(buf + n, f->good, RQ_PREAMBLE_SIZE - n);
            } else {
                memset(buf, fillc == 0 ? 0x00 : 0xff, sizeof buf);
            }
            memcpy(buf, f->good, n);
            int rv = decode(f, buf, f->nonce, why, sizeof why);
            assert_true(rv == RQ_AUTH || rv == RQ_MALFORMED);
        }
    }
}

static void test_preamble_bad_fields_are_malformed(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[RQ_PREAMBLE_SIZE];

    memcpy(buf, f->good, sizeof buf);
    rq_wire_put_u32_at(buf, 0x48545450u); /* "PTTH": someone speaking HTTP. */
    assert_edit_malformed(f, buf, "magic");

    /* Version 1, the preamble without a challenge, and the next one. */
    const uint16_t versions[] = {1, RQ_PREAMBLE_VERSION + 1};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        memcpy(buf, f->good, sizeof buf);
        rq_wire_put_u16_at(buf + 4, versions[i]);
        assert_edit_malformed(f, buf, "version");
    }

    const uint16_t kinds[] = {0, 3, 0xffff};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        memcpy(buf, f->good, sizeof buf);
        rq_wire_put_u16_at(buf + AT_KIND, kinds[i]);
        assert_edit_malformed(f, buf, "kind");
    }
}

static void test_preamble_bad_address_is_malformed(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[RQ_PREAMBLE_SIZE];

    /* No NUL anywhere in the 64 bytes. */
    memcpy(buf, f->good, sizeof buf);
    memset(buf + AT_ADDRESS, 'x', RQ_PREAMBLE_ADDR);
    assert_edit_malformed(f, buf, "NUL-terminated");

    /* A control character, and a byte above 0x7e. */
    const uint8_t bad[] = {'\n', 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < sizeof bad; i++) {
        memcpy(buf, f->good, sizeof buf);
        buf[AT_ADDRESS + 2] = bad[i];
        assert_edit_malformed(f, buf, "printable");
    }

    /* Something hidden after the terminating NUL. */
    memcpy(buf, f->good, sizeof buf);
    buf[AT_ADDRESS + RQ_PREAMBLE_ADDR - 1] = 'z';
    assert_edit_malformed(f, buf, "padding");
}

static void test_preamble_encode_refuses_bad_address(void **state)
{
    struct fixture *f = *state;
    struct rq_preamble p;
    uint8_t buf[RQ_PREAMBLE_SIZE];

    sample(&p, f->nonce);
    /* 64 characters leave no room for the NUL. */
    memset(p.address, 'a', RQ_PREAMBLE_ADDR);
    assert_int_equal(rq_preamble_encode(&p, f->key, buf), RQ_INVALID);

    sample(&p, f->nonce);
    p.address[3] = '\t';
    assert_int_equal(rq_preamble_encode(&p, f->key, buf), RQ_INVALID);
}

static void test_preamble_random_bytes_never_accepted(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[RQ_PREAMBLE_SIZE];
    char why[128];
    uint64_t seed = 0x9e3779b97f4a7c15ull;

    for (int round = 0; round < 5000; round++) {
        for (size_t i = 0; i < sizeof buf; i++) {
            buf[i] = (uint8_t)xorshift64(&seed);
        }
        /* Half of the buffers get a valid magic and version so the random
         * bytes reach the MAC check too, and a quarter our nonce besides. */
        if (round % 2 == 0) {
            rq_wire_put_u32_at(buf, RQ_PREAMBLE_MAGIC);
            rq_wire_put_u16_at(buf + 4, RQ_PREAMBLE_VERSION);
        }
        if (round % 4 == 0) {
            memcpy(buf + AT_CHALLENGE, f->nonce, RQ_NONCE_SIZE);
        }
        int rv = decode(f, buf, f->nonce, why, sizeof why);
        assert_true(rv == RQ_AUTH || rv == RQ_MALFORMED);
        if (round % 2 == 0) {
            assert_int_equal(rv, RQ_AUTH);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenge_roundtrip_and_layout),
        cmocka_unit_test(test_challenge_bad_header_is_malformed),
        cmocka_unit_test_setup_teardown(
            test_preamble_roundtrip_through_a_challenge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preamble_mac_depends_on_the_nonce,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_preamble_for_one_challenge_fails_another, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preamble_wrong_key_is_auth_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_preamble_every_tampered_field_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preamble_bad_fields_are_malformed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_preamble_bad_address_is_malformed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_preamble_encode_refuses_bad_address, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_preamble_random_bytes_never_accepted, setup, teardown),
    };
    return cmocka_run_group_tests_name("preamble", tests, NULL, NULL);
}
