/*
 * Unit tests of the key derivation and the secret rules: the keys match an
 * independent HKDF-SHA256 computation (Python's hmac, values below), every
 * use gets its own key, and every kind of unusable secret is refused with a
 * message naming the flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rq_err.h"
#include "rq_keys.h"

#define SECRET "0123456789abcdef0123456789abcdef"

static void hex(const uint8_t *k, char out[2 * RQ_KEY_SIZE + 1])
{
    for (int i = 0; i < RQ_KEY_SIZE; i++) {
        snprintf(out + 2 * i, 3, "%02x", k[i]);
    }
}

/* The expected values were computed with Python's hmac module:
 * prk = HMAC(b"raftq-cluster-secret-v2", secret);
 * key = HMAC(prk, b"raftq/" + label + b"\x01"). */
static void test_keys_derive_matches_hkdf(void **state)
{
    (void)state;
    static const char *const want[RQ_KEY_COUNT] = {
        "59d8bec14c2aafd784f9e07d919d07a9d0475382b0236060a9680238af2717fe",
        "ae1d614487ecfeec9262b85d57c085721d190f3abf50cad33654d26191ca0ea3",
        "b569668f9350c13078e33edcdc1f6f3962d224a1b8effecd2bf862f33d21b84e",
        "8f08c9e5b394740e20f9d70d3a250310cc937600c92c8e95640a3546ce675ae7",
    };
    struct rq_keys k;
    char got[2 * RQ_KEY_SIZE + 1];
    rq_keys_derive(&k, SECRET, strlen(SECRET));
    for (int use = 0; use < RQ_KEY_COUNT; use++) {
        hex(rq_keys_get(&k, use), got);
        assert_string_equal(got, want[use]);
    }
    assert_string_equal(rq_keys_label(RQ_KEY_RAFT), "raft");
    assert_string_equal(rq_keys_label(RQ_KEY_COUNT), "?");
}

static void test_keys_differ_by_use_and_secret(void **state)
{
    (void)state;
    struct rq_keys a, b;
    rq_keys_derive(&a, SECRET, strlen(SECRET));
    rq_keys_derive(&b, SECRET "!", strlen(SECRET) + 1);
    for (int i = 0; i < RQ_KEY_COUNT; i++) {
        for (int j = i + 1; j < RQ_KEY_COUNT; j++) {
            assert_memory_not_equal(a.key[i], a.key[j], RQ_KEY_SIZE);
        }
        assert_memory_not_equal(a.key[i], b.key[i], RQ_KEY_SIZE);
    }
}

static void assert_refused(const char *secret, const char *what)
{
    char why[256] = "";
    assert_int_equal(
        rq_secret_check(secret, "--cluster-secret", why, sizeof why),
        RQ_INVALID);
    assert_non_null(strstr(why, "--cluster-secret"));
    if (strstr(why, what) == NULL) {
        fail_msg("secret %s: '%s' does not say '%s'",
                 secret ? secret : "(null)", why, what);
    }
}

static void test_secret_check_refuses_unusable(void **state)
{
    (void)state;
    char longer[RQ_SECRET_MAX + 2];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';

    assert_refused(NULL, "required");
    assert_refused("", "required");
    assert_refused("raftq-dev-secret", "placeholder");
    assert_refused("REPLACE-ME-cluster-secret", "placeholder");
    assert_refused("replace-me-with-64-random-characters-xxxxxxxxxxxxxxxxx",
                   "placeholder");
    assert_refused("0123456789abcdef0123456789abcde", "31 bytes");
    assert_refused(longer, "at most");
}

static void test_secret_check_accepts_random(void **state)
{
    (void)state;
    char why[256] = "";
    assert_int_equal(
        rq_secret_check(SECRET, "--cluster-secret", why, sizeof why), 0);
    assert_int_equal(
        rq_secret_check("q8T1n0cH2lW9s3Zx7Rk4Vb6Yp5Mj0Ea8Df2Gh4Jk6Lm8N=",
                        "--cluster-secret", why, sizeof why),
        0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_derive_matches_hkdf),
        cmocka_unit_test(test_keys_differ_by_use_and_secret),
        cmocka_unit_test(test_secret_check_refuses_unusable),
        cmocka_unit_test(test_secret_check_accepts_random),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
