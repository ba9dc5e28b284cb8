/*
 * Unit tests of the ATM command language: line parsing, account names,
 * amount parsing at and around its limits, and amount formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "atm/atm_cmd.h"
#include "rq_err.h"

/* Parses @line expecting @want; returns the why text (static). */
static const char *parse_fails(const char *line, int want)
{
    static char why[256];
    struct atm_cmd c;
    memset(why, 'x', sizeof why);
    int rv = atm_cmd_parse(line, &c, why, sizeof why);
    if (rv != want) {
        fail_msg("'%s': got %d, want %d (%s)", line, rv, want, why);
    }
    assert_true(strlen(why) > 0);
    return why;
}

static void test_atm_cmd_parses_every_command(void **state)
{
    (void)state;
    struct atm_cmd c;
    char why[128];

    assert_int_equal(
        atm_cmd_parse("deposit alice 12.50\n", &c, why, sizeof why), 0);
    assert_int_equal(c.op, ATM_DEPOSIT);
    assert_string_equal(c.account, "alice");
    assert_int_equal(c.amount, 1250);

    assert_int_equal(
        atm_cmd_parse("  withdraw\tBob_2 3 \r\n", &c, why, sizeof why), 0);
    assert_int_equal(c.op, ATM_WITHDRAW);
    assert_string_equal(c.account, "Bob_2");
    assert_int_equal(c.amount, 300);

    assert_int_equal(atm_cmd_parse("balance x-y", &c, why, sizeof why), 0);
    assert_int_equal(c.op, ATM_BALANCE);
    assert_string_equal(c.account, "x-y");
    assert_int_equal(c.amount, 0);

    assert_int_equal(atm_cmd_parse("transfer a   b 0.5", &c, why, sizeof why),
                     0);
    assert_int_equal(c.op, ATM_TRANSFER);
    assert_string_equal(c.account, "a");
    assert_string_equal(c.to, "b");
    assert_int_equal(c.amount, 50);

    assert_int_equal(atm_cmd_parse("status", &c, why, sizeof why), 0);
    assert_int_equal(c.op, ATM_STATUS);
    assert_int_equal(atm_cmd_parse("help\n", &c, why, sizeof why), 0);
    assert_int_equal(c.op, ATM_HELP);
    assert_int_equal(atm_cmd_parse(" quit ", &c, why, sizeof why), 0);
    assert_int_equal(c.op, ATM_QUIT);
}

static void test_atm_cmd_blank_line_is_empty(void **state)
{
    (void)state;
    const char *blank[] = {"", "\n", "   ", "\t \r\n", "\r"};
    for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
        struct atm_cmd c;
        char why[64];
        assert_int_equal(atm_cmd_parse(blank[i], &c, why, sizeof why), 0);
        assert_int_equal(c.op, ATM_EMPTY);
    }
}

static void test_atm_cmd_unknown_and_uppercase_commands(void **state)
{
    (void)state;
    assert_string_equal(parse_fails("foo", RQ_INVALID),
                        "unknown command 'foo' (try help)");
    assert_string_equal(parse_fails("Deposit a 1", RQ_INVALID),
                        "unknown command 'Deposit' (try help)");
    assert_string_equal(parse_fails("BALANCE a", RQ_INVALID),
                        "unknown command 'BALANCE' (try help)");
    assert_string_equal(parse_fails("depositx a 1", RQ_INVALID),
                        "unknown command 'depositx' (try help)");
}

static void test_atm_cmd_wrong_arity_gives_usage(void **state)
{
    (void)state;
    const char *deposit = "usage: deposit ACCOUNT AMOUNT";
    assert_string_equal(parse_fails("deposit", RQ_INVALID), deposit);
    assert_string_equal(parse_fails("deposit a", RQ_INVALID), deposit);
    assert_string_equal(parse_fails("deposit a 1 2", RQ_INVALID), deposit);
    assert_string_equal(parse_fails("withdraw a", RQ_INVALID),
                        "usage: withdraw ACCOUNT AMOUNT");
    assert_string_equal(parse_fails("balance", RQ_INVALID),
                        "usage: balance ACCOUNT");
    assert_string_equal(parse_fails("balance a b", RQ_INVALID),
                        "usage: balance ACCOUNT");
    const char *transfer = "usage: transfer FROM TO AMOUNT";
    assert_string_equal(parse_fails("transfer a b", RQ_INVALID), transfer);
    assert_string_equal(parse_fails("transfer a 5", RQ_INVALID), transfer);
    assert_string_equal(parse_fails("transfer a b 5 6 7 8", RQ_INVALID),
                        transfer);
    assert_string_equal(parse_fails("status now", RQ_INVALID), "usage: status");
    assert_string_equal(parse_fails("help me", RQ_INVALID), "usage: help");
    assert_string_equal(parse_fails("quit 0", RQ_INVALID), "usage: quit");
}

static void test_atm_cmd_refuses_bad_accounts(void **state)
{
    (void)state;
    char line[200];
    char name[70];

    const char *why = parse_fails("deposit a!b 1", RQ_INVALID);
    assert_non_null(strstr(why, "'a!b'"));
    assert_non_null(strstr(why, "account"));
    parse_fails("balance caf\xc3\xa9", RQ_INVALID);
    parse_fails("withdraw a.b 1", RQ_INVALID);
    why = parse_fails("transfer ok bad/name 1", RQ_INVALID);
    assert_non_null(strstr(why, "destination"));
    why = parse_fails("transfer bad:name ok 1", RQ_INVALID);
    assert_non_null(strstr(why, "source"));

    memset(name, 'n', 63);
    name[63] = '\0';
    snprintf(line, sizeof line, "deposit %s 1", name);
    struct atm_cmd c;
    char w[128];
    assert_int_equal(atm_cmd_parse(line, &c, w, sizeof w), 0);
    assert_string_equal(c.account, name);
    name[63] = 'n';
    name[64] = '\0';
    snprintf(line, sizeof line, "deposit %s 1", name);
    parse_fails(line, RQ_INVALID);
}

static void test_atm_cmd_refuses_transfer_to_same_account(void **state)
{
    (void)state;
    const char *why = parse_fails("transfer acc acc 5", RQ_INVALID);
    assert_non_null(strstr(why, "itself"));
    /* Names are case-sensitive: these are two accounts. */
    struct atm_cmd c;
    char w[128];
    assert_int_equal(atm_cmd_parse("transfer acc ACC 5", &c, w, sizeof w), 0);
}

static void test_atm_cmd_amount_errors_name_the_amount(void **state)
{
    (void)state;
    const char *why = parse_fails("deposit a 1.234", RQ_INVALID);
    assert_string_equal(why, "amount '1.234' has more than two decimals");
    why = parse_fails("withdraw a -1", RQ_INVALID);
    assert_non_null(strstr(why, "negative"));
    why = parse_fails("deposit a 0.00", RQ_INVALID);
    assert_non_null(strstr(why, "zero"));
    why = parse_fails("transfer a b 12,50", RQ_INVALID);
    assert_non_null(strstr(why, "'12,50'"));
    why = parse_fails("deposit a 92233720368547758.08", ATM_OVERFLOW);
    assert_non_null(strstr(why, "too large"));
}

static void test_atm_cmd_why_quotes_safely(void **state)
{
    (void)state;
    /* Control bytes typed by mistake are not echoed back raw. */
    const char *why = parse_fails("de\x1b[2Jposit a 1", RQ_INVALID);
    assert_null(strchr(why, '\x1b'));
    assert_non_null(strstr(why, "de?[2Jposit"));
    /* A very long word is cut, and the sentence still fits. */
    char line[1200];
    memset(line, 'z', 1000);
    line[1000] = '\0';
    why = parse_fails(line, RQ_INVALID);
    assert_true(strlen(why) < 100);
    assert_non_null(strstr(why, "..."));
    /* A tiny why buffer is truncated, never overrun. */
    struct atm_cmd c;
    char small[8];
    assert_int_equal(atm_cmd_parse("nope", &c, small, sizeof small),
                     RQ_INVALID);
    assert_int_equal(strlen(small), sizeof small - 1);
}

static void test_atm_amount_accepts_valid_forms(void **state)
{
    (void)state;
    struct {
        const char *s;
        int64_t cents;
    } ok[] = {
        {"12", 1200},
        {"12.5", 1250},
        {"12.50", 1250},
        {"0.01", 1},
        {"0.1", 10},
        {"1", 100},
        {"007", 700},
        {"92233720368547758", 9223372036854775800},
        {"92233720368547758.07", INT64_MAX},
        {"00000000000000000000000000000001.00", 100},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        if (atm_amount_parse(ok[i].s, &v) != 0) {
            fail_msg("'%s' refused", ok[i].s);
        }
        assert_true(v == ok[i].cents);
    }
}

static void test_atm_amount_refuses_invalid_forms(void **state)
{
    (void)state;
    const char *bad[] = {
        "0",    "0.00", "0.0",  "00",    "-1",   "+1",           "1.234",
        "1.",   ".5",   "1e3",  " 1",    "1 ",   "\xef\xbc\x91", "12,50",
        "",     "-0",   "1..2", "1.2.3", "0x10", "inf",          "nan",
        "1.5a", "a1",   "1.-5", "-0.01", "1\n",  "\xd9\xa1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 77;
        int rv = atm_amount_parse(bad[i], &v);
        if (rv != RQ_INVALID) {
            fail_msg("'%s': got %d, want RQ_INVALID", bad[i], rv);
        }
        assert_int_equal(v, 77); /* Untouched on refusal. */
    }
    assert_int_equal(atm_amount_parse(NULL, &(int64_t){0}), RQ_INVALID);
}

static void test_atm_amount_overflow_at_the_boundary(void **state)
{
    (void)state;
    const char *big[] = {
        "92233720368547758.08", "92233720368547759",
        "92233720368547758.1",  "100000000000000000",
        "9223372036854775807",  "99999999999999999999999999999999",
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        int64_t v = 77;
        int rv = atm_amount_parse(big[i], &v);
        if (rv != ATM_OVERFLOW) {
            fail_msg("'%s': got %d, want ATM_OVERFLOW", big[i], rv);
        }
        assert_int_equal(v, 77);
    }
    /* Malformed beats large: the format is checked first. */
    assert_int_equal(
        atm_amount_parse("99999999999999999999.999", &(int64_t){0}),
        RQ_INVALID);
}

static void test_atm_amount_format(void **state)
{
    (void)state;
    char buf[32];
    atm_amount_format(0, buf, sizeof buf);
    assert_string_equal(buf, "0.00");
    atm_amount_format(5, buf, sizeof buf);
    assert_string_equal(buf, "0.05");
    atm_amount_format(50, buf, sizeof buf);
    assert_string_equal(buf, "0.50");
    atm_amount_format(1250, buf, sizeof buf);
    assert_string_equal(buf, "12.50");
    atm_amount_format(100, buf, sizeof buf);
    assert_string_equal(buf, "1.00");
    atm_amount_format(INT64_MAX, buf, sizeof buf);
    assert_string_equal(buf, "92233720368547758.07");
    atm_amount_format(-5, buf, sizeof buf);
    assert_string_equal(buf, "-0.05");
    atm_amount_format(INT64_MIN, buf, sizeof buf);
    assert_string_equal(buf, "-92233720368547758.08");
    /* The 24 bytes the header promises are enough for any value. */
    char exact[24];
    atm_amount_format(INT64_MIN, exact, sizeof exact);
    assert_string_equal(exact, "-92233720368547758.08");
    /* A short buffer is cut, never overrun. */
    char tiny[4];
    atm_amount_format(1250, tiny, sizeof tiny);
    assert_string_equal(tiny, "12.");

    /* Formatting then parsing gives the same cents back. */
    int64_t samples[] = {1, 9, 10, 99, 100, 101, 123456789, INT64_MAX};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        int64_t v;
        atm_amount_format(samples[i], buf, sizeof buf);
        assert_int_equal(atm_amount_parse(buf, &v), 0);
        assert_true(v == samples[i]);
    }
}

static void test_atm_account_valid(void **state)
{
    (void)state;
    char name[80];
    assert_true(atm_account_valid("a"));
    assert_true(atm_account_valid("Az09_-"));
    assert_false(atm_account_valid(""));
    assert_false(atm_account_valid(NULL));
    assert_false(atm_account_valid("a b"));
    assert_false(atm_account_valid("a.b"));
    assert_false(atm_account_valid("caf\xc3\xa9"));
    memset(name, 'q', sizeof name);
    name[63] = '\0';
    assert_true(atm_account_valid(name));
    name[63] = 'q';
    name[64] = '\0';
    assert_false(atm_account_valid(name));
    name[64] = 'q';
    name[79] = '\0';
    assert_false(atm_account_valid(name));
}

static void test_atm_help_lines_cover_every_command(void **state)
{
    (void)state;
    const char *names[] = {"deposit", "withdraw", "balance", "transfer",
                           "status",  "help",     "quit"};
    size_t n = 0;
    while (atm_help_lines[n] != NULL) {
        assert_true(strlen(atm_help_lines[n]) > 0);
        assert_null(strchr(atm_help_lines[n], '\n'));
        n++;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int found = 0;
        for (size_t j = 0; j < n; j++) {
            found |=
                strncmp(atm_help_lines[j], names[i], strlen(names[i])) == 0;
        }
        if (!found) {
            fail_msg("help does not describe '%s'", names[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atm_cmd_parses_every_command),
        cmocka_unit_test(test_atm_cmd_blank_line_is_empty),
        cmocka_unit_test(test_atm_cmd_unknown_and_uppercase_commands),
        cmocka_unit_test(test_atm_cmd_wrong_arity_gives_usage),
        cmocka_unit_test(test_atm_cmd_refuses_bad_accounts),
        cmocka_unit_test(test_atm_cmd_refuses_transfer_to_same_account),
        cmocka_unit_test(test_atm_cmd_amount_errors_name_the_amount),
        cmocka_unit_test(test_atm_cmd_why_quotes_safely),
        cmocka_unit_test(test_atm_amount_accepts_valid_forms),
        cmocka_unit_test(test_atm_amount_refuses_invalid_forms),
        cmocka_unit_test(test_atm_amount_overflow_at_the_boundary),
        cmocka_unit_test(test_atm_amount_format),
        cmocka_unit_test(test_atm_account_valid),
        cmocka_unit_test(test_atm_help_lines_cover_every_command),
    };
    return cmocka_run_group_tests_name("atm_cmd", tests, NULL, NULL);
}
