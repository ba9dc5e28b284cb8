/*
 * The ATM's command language (API.md section 5): parsing a typed line and
 * formatting amounts. Pure: no I/O, no Raft.
 *
 * Amounts are integer cents. Input takes "12", "12.5" or "12.50"; zero,
 * negative, more than two decimals, signs, exponents, spaces inside, and
 * anything above ATM_AMOUNT_MAX are refused with a reason.
 */
#ifndef ATM_CMD_H
#define ATM_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "atm_err.h"

#define ATM_ACCOUNT_MAX 64 /* Name length 1..63, [A-Za-z0-9_-]. */
#define ATM_AMOUNT_MAX INT64_MAX

enum atm_op {
    ATM_DEPOSIT = 1,
    ATM_WITHDRAW = 2,
    ATM_TRANSFER = 3,
    ATM_BALANCE = 4, /* Reads: never in the log. */
    ATM_STATUS = 5,
    ATM_HELP = 6,
    ATM_QUIT = 7,
    ATM_EMPTY = 8, /* A blank line: answered with nothing. */
};

struct atm_cmd {
    enum atm_op op;
    char account[ATM_ACCOUNT_MAX]; /* deposit, withdraw, balance; transfer from
                                    */
    char to[ATM_ACCOUNT_MAX];      /* transfer */
    int64_t amount;                /* cents, > 0 */
};

/*
 * Parses one line (without or with its trailing newline; leading and
 * trailing blanks ignored; words separated by blanks). Returns 0, or
 * RQ_INVALID / ATM_OVERFLOW with a sentence in @why, for example
 * "amount '1.234' has more than two decimals".
 */
int atm_cmd_parse(const char *line, struct atm_cmd *out, char *why,
                  size_t whyn);

/* "12" -> 1200. RQ_INVALID (format, zero, negative) or ATM_OVERFLOW. */
int atm_amount_parse(const char *s, int64_t *cents);

/* 1250 -> "12.50"; negative values get a leading '-'. @n >= 24 suffices. */
void atm_amount_format(int64_t cents, char *buf, size_t n);

/* 1..63 characters of [A-Za-z0-9_-]. */
int atm_account_valid(const char *s);

/* The lines "help" prints before its "ok". */
extern const char *const atm_help_lines[];

#endif /* ATM_CMD_H */
