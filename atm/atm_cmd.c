/*
 * The ATM command language: splitting a typed line into words, recognising
 * the command and checking its account names and amounts. Every refusal
 * comes with a sentence a person at the terminal can act on. This module
 * knows nothing of the ledger or of Raft; it only turns text into a struct
 * atm_cmd and cents back into text.
 */
#include "atm_cmd.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "atm_err.h"
#include "rq_err.h"

/* A line has at most four words; a fifth is only counted, for the error. */
#define WORDS_MAX 5

/* The longest part of a user's word quoted back in an error sentence. */
#define QUOTE_MAX 40

struct word {
    const char *p; /* Borrowed from the line; not NUL-terminated. */
    size_t n;
};

const char *const atm_help_lines[] = {
    "deposit ACCOUNT AMOUNT    add money to an account (created by its first "
    "deposit)",
    "withdraw ACCOUNT AMOUNT   take money out; refused beyond the balance",
    "balance ACCOUNT           show the balance (0.00 for an unknown account)",
    "transfer FROM TO AMOUNT   move money from one account to another",
    "status                    show this ATM's role, leader, term, commit and "
    "applied index",
    "help                      show these lines",
    "quit                      leave the terminal",
    "ACCOUNT is 1-63 characters of A-Z a-z 0-9 _ -; AMOUNT is like 12, 12.5 "
    "or 12.50",
    NULL,
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_account_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           c == '_' || c == '-';
}

/*
 * Copies the word into @out for quoting in an error sentence: printable
 * ASCII only (anything else becomes '?', so a terminal never receives
 * control bytes it did not type as such), cut at QUOTE_MAX with "...".
 */
static void quote(const char *p, size_t n, char *out, size_t outn)
{
    size_t k = 0;
    size_t shown = n < QUOTE_MAX ? n : QUOTE_MAX;
    if (outn == 0) {
        return;
    }
    for (size_t i = 0; i < shown && k + 1 < outn; i++) {
        unsigned char c = (unsigned char)p[i];
        out[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (shown < n) {
        for (int i = 0; i < 3 && k + 1 < outn; i++) {
            out[k++] = '.';
        }
    }
    out[k] = '\0';
}

static bool account_valid_n(const char *p, size_t n)
{
    if (n == 0 || n >= ATM_ACCOUNT_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_account_char(p[i])) {
            return false;
        }
    }
    return true;
}

int atm_account_valid(const char *s)
{
    return s != NULL && account_valid_n(s, strnlen(s, ATM_ACCOUNT_MAX));
}

/*
 * The grammar is digits, optionally followed by '.' and one or two digits.
 * The whole word is checked before any arithmetic, so a word that is both
 * malformed and huge is reported as malformed. The value is accumulated in
 * whole units with an overflow check at every digit, then turned into cents
 * with a second check, so "92233720368547758.07" (INT64_MAX cents) passes and
 * one cent more is ATM_OVERFLOW.
 */
static int amount_parse_n(const char *p, size_t n, int64_t *cents, char *why,
                          size_t whyn)
{
    char q[QUOTE_MAX + 4];
    size_t i = 0;
    size_t dot = n;

    quote(p, n, q, sizeof q);
    if (n == 0) {
        snprintf(why, whyn, "amount is empty");
        return RQ_INVALID;
    }
    if (p[0] == '-') {
        snprintf(why, whyn, "amount '%s' is negative; amounts must be above 0",
                 q);
        return RQ_INVALID;
    }
    while (i < n && is_digit(p[i])) {
        i++;
    }
    if (i == 0) {
        goto bad_format;
    }
    if (i < n) {
        if (p[i] != '.') {
            goto bad_format;
        }
        dot = i++;
        while (i < n && is_digit(p[i])) {
            i++;
        }
        if (i < n) {
            goto bad_format;
        }
        if (n - dot - 1 == 0) {
            goto bad_format;
        }
        if (n - dot - 1 > 2) {
            snprintf(why, whyn, "amount '%s' has more than two decimals", q);
            return RQ_INVALID;
        }
    }

    int64_t units = 0;
    for (i = 0; i < dot; i++) {
        int d = p[i] - '0';
        if (units > (INT64_MAX - d) / 10) {
            goto too_large;
        }
        units = units * 10 + d;
    }
    int64_t frac = 0;
    if (dot < n) {
        frac = (p[dot + 1] - '0') * 10;
        if (dot + 2 < n) {
            frac += p[dot + 2] - '0';
        }
    }
    if (units > (INT64_MAX - frac) / 100) {
        goto too_large;
    }
    int64_t v = units * 100 + frac;
    if (v == 0) {
        snprintf(why, whyn, "amount '%s' is zero; amounts must be above 0", q);
        return RQ_INVALID;
    }
    *cents = v;
    return 0;

bad_format:
    snprintf(why, whyn,
             "amount '%s' is not a number like 12, 12.5 or 12.50 (digits, "
             "optionally '.' and one or two decimals)",
             q);
    return RQ_INVALID;
too_large:
    snprintf(why, whyn,
             "amount '%s' is too large (at most 92233720368547758.07)", q);
    return ATM_OVERFLOW;
}

int atm_amount_parse(const char *s, int64_t *cents)
{
    char why[8];
    if (s == NULL) {
        return RQ_INVALID;
    }
    return amount_parse_n(s, strlen(s), cents, why, sizeof why);
}

void atm_amount_format(int64_t cents, char *buf, size_t n)
{
    /* The magnitude as unsigned, so INT64_MIN has one too. */
    uint64_t mag = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    snprintf(buf, n, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "",
             mag / 100, mag % 100);
}

static bool word_is(const struct word *w, const char *s)
{
    return w->n == strlen(s) && memcmp(w->p, s, w->n) == 0;
}

static int account_word(const struct word *w, const char *role, char *out,
                        char *why, size_t whyn)
{
    char q[QUOTE_MAX + 4];
    if (!account_valid_n(w->p, w->n)) {
        quote(w->p, w->n, q, sizeof q);
        snprintf(why, whyn,
                 "%s '%s' is not a valid account name (1-63 characters of "
                 "A-Z a-z 0-9 _ -)",
                 role, q);
        return RQ_INVALID;
    }
    memcpy(out, w->p, w->n);
    out[w->n] = '\0';
    return 0;
}

struct command {
    const char *name;
    enum atm_op op;
    size_t args; /* Words after the command. */
    const char *usage;
};

static const struct command commands[] = {
    {"deposit", ATM_DEPOSIT, 2, "usage: deposit ACCOUNT AMOUNT"},
    {"withdraw", ATM_WITHDRAW, 2, "usage: withdraw ACCOUNT AMOUNT"},
    {"balance", ATM_BALANCE, 1, "usage: balance ACCOUNT"},
    {"transfer", ATM_TRANSFER, 3, "usage: transfer FROM TO AMOUNT"},
    {"status", ATM_STATUS, 0, "usage: status"},
    {"help", ATM_HELP, 0, "usage: help"},
    {"quit", ATM_QUIT, 0, "usage: quit"},
};

int atm_cmd_parse(const char *line, struct atm_cmd *out, char *why, size_t whyn)
{
    struct word words[WORDS_MAX];
    size_t n = 0;
    const char *p = line;
    char q[QUOTE_MAX + 4];
    int rv;

    memset(out, 0, sizeof *out);
    if (whyn > 0) {
        why[0] = '\0';
    }
    while (*p != '\0' && n < WORDS_MAX) {
        while (is_blank(*p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        words[n].p = p;
        while (*p != '\0' && !is_blank(*p)) {
            p++;
        }
        words[n].n = (size_t)(p - words[n].p);
        n++;
    }
    if (n == 0) {
        out->op = ATM_EMPTY;
        return 0;
    }

    const struct command *c = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (word_is(&words[0], commands[i].name)) {
            c = &commands[i];
            break;
        }
    }
    if (c == NULL) {
        quote(words[0].p, words[0].n, q, sizeof q);
        snprintf(why, whyn, "unknown command '%s' (try help)", q);
        return RQ_INVALID;
    }
    if (n - 1 != c->args) {
        snprintf(why, whyn, "%s", c->usage);
        return RQ_INVALID;
    }

    out->op = c->op;
    switch (c->op) {
        case ATM_DEPOSIT:
        case ATM_WITHDRAW:
            rv = account_word(&words[1], "account", out->account, why, whyn);
            if (rv == 0) {
                rv = amount_parse_n(words[2].p, words[2].n, &out->amount, why,
                                    whyn);
            }
            break;
        case ATM_BALANCE:
            rv = account_word(&words[1], "account", out->account, why, whyn);
            break;
        case ATM_TRANSFER:
            rv = account_word(&words[1], "source account", out->account, why,
                              whyn);
            if (rv == 0) {
                rv = account_word(&words[2], "destination account", out->to,
                                  why, whyn);
            }
            if (rv == 0 && strcmp(out->account, out->to) == 0) {
                snprintf(why, whyn,
                         "cannot transfer from account '%s' to itself",
                         out->account);
                rv = RQ_INVALID;
            }
            if (rv == 0) {
                rv = amount_parse_n(words[3].p, words[3].n, &out->amount, why,
                                    whyn);
            }
            break;
        default:
            rv = 0;
            break;
    }
    if (rv != 0) {
        enum atm_op op = out->op;
        memset(out, 0, sizeof *out);
        out->op = op;
    }
    return rv;
}
