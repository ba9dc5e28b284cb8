/*
 * The ATM's own error codes: what a withdrawal or a transfer may be refused
 * for besides the shared codes (rq_err.h). Their numbers sit in the gap
 * rq_err.h keeps for them, because the ledger's snapshots hold the results
 * they remember (atm_ledger.c) and a number there must mean the same for
 * ever.
 */
#ifndef ATM_ERR_H
#define ATM_ERR_H

#include "rq_err.h"

#define ATM_ERRORS(X)                               \
    X(ATM_INSUFFICIENT, 1014, "insufficient funds") \
    X(ATM_OVERFLOW, 1015, "amount overflows")

enum atm_err {
#define ATM_ERR_ENUM(code, number, text) code = number,
    ATM_ERRORS(ATM_ERR_ENUM)
#undef ATM_ERR_ENUM
};

/* A static phrase for @code, an ATM code or a shared one (rq_strerror()). */
const char *atm_strerror(int code);

#endif /* ATM_ERR_H */
