/*
 * Fuzzes the ATM's command language (atm/atm_cmd.h): a typed line from a
 * user. A line parses or fails with RQ_INVALID / ATM_OVERFLOW and a reason.
 * What parses is checked against the contract: valid account names, an
 * amount above zero for the commands that take one; and an amount's
 * formatting must parse back to the same cents.
 */
#include <stdbool.h>

#include "atm/atm_cmd.h"
#include "fuzz.h"
#include "rq_err.h"

static void check_amount_round_trip(int64_t cents)
{
    char text[32];
    int64_t back = 0;
    atm_amount_format(cents, text, sizeof text);
    if (cents > 0) {
        FUZZ_CHECK(atm_amount_parse(text, &back) == 0 && back == cents);
    } else {
        FUZZ_CHECK(atm_amount_parse(text, &back) != 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fuzz_text(data, size);
    struct atm_cmd cmd;
    char why[256] = "";
    int64_t cents;

    int rv = atm_cmd_parse(line, &cmd, why, sizeof why);
    if (rv != 0) {
        FUZZ_CHECK(rv == RQ_INVALID || rv == ATM_OVERFLOW);
        FUZZ_CHECK(why[0] != '\0');
    } else {
        bool moves = cmd.op == ATM_DEPOSIT || cmd.op == ATM_WITHDRAW ||
                     cmd.op == ATM_TRANSFER;
        FUZZ_CHECK(moves || cmd.op == ATM_BALANCE || cmd.op == ATM_STATUS ||
                   cmd.op == ATM_HELP || cmd.op == ATM_QUIT ||
                   cmd.op == ATM_EMPTY);
        if (moves || cmd.op == ATM_BALANCE) {
            FUZZ_CHECK(atm_account_valid(cmd.account));
        }
        if (cmd.op == ATM_TRANSFER) {
            FUZZ_CHECK(atm_account_valid(cmd.to));
        }
        if (moves) {
            FUZZ_CHECK(cmd.amount > 0);
            check_amount_round_trip(cmd.amount);
        }
    }
    rv = atm_amount_parse(line, &cents);
    if (rv == 0) {
        FUZZ_CHECK(cents > 0);
        check_amount_round_trip(cents);
    } else {
        FUZZ_CHECK(rv == RQ_INVALID || rv == ATM_OVERFLOW);
    }
    if (size >= 8) {
        int64_t v;
        memcpy(&v, data, sizeof v);
        check_amount_round_trip(v);
    }
    free(line);
    return 0;
}
