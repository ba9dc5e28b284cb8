/*
 * Text of the ATM's own error codes (atm_err.h); every other code is the
 * shared one's.
 */
#include "atm_err.h"

const char *atm_strerror(int code)
{
    switch (code) {
#define ATM_ERR_TEXT(code, number, text) \
    case code:                           \
        return text;
        ATM_ERRORS(ATM_ERR_TEXT)
#undef ATM_ERR_TEXT
        default:
            return rq_strerror(code);
    }
}
