/*
 * Bearer tokens on the public and admin APIs (see auth.h): the thin layer
 * between a request's Authorization header, the configuration (--auth,
 * --admin-token, --admin-open) and the tokens in the store.
 *
 * Comparisons never stop at the first differing byte: the admin token is
 * compared through the SHA-256 of both sides (so its length does not show
 * either), a stored token by the whole SHA-256 with memeql_sec in
 * mstore_token_find. Knowing the hashes in the Raft log or a snapshot does
 * not give a token: SHA-256 of 256 random bits cannot be inverted.
 */
#include "auth.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <nettle/memops.h>
#include <nettle/sha2.h>

#include "mcore.h"
#include "mstore.h"
#include "qapi_serve.h"
#include "rq_err.h"
#include "rq_http.h"
#include "rq_log.h"

#define LOG_TAG "auth"

/* The token of "Authorization: Bearer T", or NULL. The scheme is matched
 * as written, like every other name of the API: "bearer T" is refused
 * with a 401 that shows the expected form. */
static const char *bearer(struct rq_http_req *req)
{
    const char *a = rq_http_header(req, "Authorization");
    if (a == NULL || strncmp(a, "Bearer ", 7) != 0 || a[7] == '\0') {
        return NULL;
    }
    return a + 7;
}

void auth_token_hash(const char *token, uint8_t hash[MCMD_TOKEN_HASH])
{
    struct sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, strlen(token), (const uint8_t *)token);
    sha256_digest(&h, MCMD_TOKEN_HASH, hash);
}

static bool is_admin_token(const struct mcore *core, const char *token)
{
    uint8_t a[MCMD_TOKEN_HASH];
    uint8_t b[MCMD_TOKEN_HASH];
    if (mcore_config(core)->admin_token[0] == '\0') {
        return false;
    }
    auth_token_hash(token, a);
    auth_token_hash(mcore_config(core)->admin_token, b);
    return memeql_sec(a, b, sizeof a) != 0;
}

enum found { FOUND_NONE, FOUND_TOKEN, FOUND_ERROR };

/* Looks @token up in the store; a store failure answers 503 itself. */
static enum found stored_token(struct mcore *core, struct rq_http_req *req,
                               const char *token, struct auth *who)
{
    struct mstore_token t;
    uint8_t hash[MCMD_TOKEN_HASH];
    char why[256];

    if (strncmp(token, AUTH_TOKEN_PREFIX, strlen(AUTH_TOKEN_PREFIX)) != 0 ||
        strlen(token) != AUTH_TOKEN_LEN) {
        return FOUND_NONE;
    }
    auth_token_hash(token, hash);
    int rv = mstore_token_find(mcore_store(core), hash, &t);
    if (rv == RQ_NOTFOUND) {
        return FOUND_NONE;
    }
    if (rv == 0 && grants_parse(t.grants, &who->grants, why, sizeof why) != 0) {
        /* The codec admits canonical grants only: damage. */
        rq_log(RQ_ERROR, "token %llu: stored grants do not parse: %s",
               (unsigned long long)t.id, why);
        rv = RQ_IO;
    }
    if (rv != 0) {
        mcore_unavailable(req,
                          "the tokens cannot be read from the store "
                          "now; retry");
        return FOUND_ERROR;
    }
    who->token_id = t.id;
    who->admin = grants_admin(&who->grants);
    who->all = who->admin;
    return FOUND_TOKEN;
}

/* The request whose handler runs again after a consistent read, while it
 * runs (its token is then judged for good); one manager per process. */
static struct rq_http_req *auth_rechecked;

/* The route's handler again (qapi_serve_fn; @arg: the handler), now
 * that this follower has caught up: this time auth_public judges the
 * token with what the store holds now. */
static bool run_again(struct mcore *core, struct rq_http_req *req, void *arg,
                      bool last_try)
{
    rq_http_handler again = *(rq_http_handler *)arg;
    (void)last_try;
    auth_rechecked = req;
    again(req, core);
    auth_rechecked = NULL;
    return true;
}

/* Holds @req for a consistent read and a second run of @again; false if
 * it cannot (then the caller answers now). */
static bool recheck(struct mcore *core, struct rq_http_req *req,
                    rq_http_handler again)
{
    if (again == NULL || mcore_leading(core) || auth_rechecked == req) {
        return false;
    }
    qapi_serve_read(core, req, run_again, &again, sizeof again);
    return true;
}

static void unauthorized(struct rq_http_req *req, const char *msg)
{
    rq_http_set_header(req, "WWW-Authenticate", "Bearer");
    rq_http_reply_error(req, 401, "%s", msg);
}

bool auth_public(struct mcore *core, struct rq_http_req *req, struct auth *who,
                 rq_http_handler again)
{
    memset(who, 0, sizeof *who);
    if (!mcore_config(core)->auth_tokens) {
        who->all = true;
        return true;
    }
    const char *token = bearer(req);
    if (token == NULL) {
        unauthorized(req,
                     "this cluster needs a token: send 'Authorization: "
                     "Bearer <token>' (an admin creates tokens with raftq "
                     "token create)");
        return false;
    }
    if (is_admin_token(core, token)) {
        who->all = who->admin = true;
        return true;
    }
    switch (stored_token(core, req, token, who)) {
        case FOUND_TOKEN:
            return true;
        case FOUND_ERROR:
            return false;
        case FOUND_NONE:
            break;
    }
    if (strncmp(token, AUTH_TOKEN_PREFIX, strlen(AUTH_TOKEN_PREFIX)) == 0 &&
        strlen(token) == AUTH_TOKEN_LEN && recheck(core, req, again)) {
        return false;
    }
    unauthorized(req,
                 "the bearer token is not valid here: it is unknown to "
                 "this cluster or has been revoked");
    return false;
}

bool auth_admin(struct mcore *core, struct rq_http_req *req)
{
    struct auth who;
    if (mcore_config(core)->admin_open) {
        return true;
    }
    const char *token = bearer(req);
    if (token == NULL) {
        unauthorized(req,
                     "the admin API needs 'Authorization: Bearer <admin "
                     "token>'");
        return false;
    }
    if (is_admin_token(core, token)) {
        return true;
    }
    memset(&who, 0, sizeof who);
    switch (stored_token(core, req, token, &who)) {
        case FOUND_TOKEN:
            if (who.admin) {
                return true;
            }
            rq_http_reply_error(req, 403,
                                "this token may not use the admin API; it "
                                "needs the grant admin");
            return false;
        case FOUND_ERROR:
            return false;
        case FOUND_NONE:
            break;
    }
    unauthorized(req,
                 "the admin API needs 'Authorization: Bearer <admin token>': "
                 "the token given is not the admin token nor a valid token "
                 "with the admin grant");
    return false;
}

bool auth_sees(const struct auth *who, const char *topic)
{
    return who->all || grants_allow(&who->grants, GRANT_TO_SEE, topic);
}

bool auth_allow(struct rq_http_req *req, const struct auth *who,
                enum grant_action action, const char *topic)
{
    char msg[512];
    if (who->all || grants_allow(&who->grants, action, topic)) {
        return true;
    }
    grants_refusal(action, topic, msg, sizeof msg);
    rq_http_reply_error(req, 403, "%s", msg);
    return false;
}

int auth_token_new(char *out, uint8_t hash[MCMD_TOKEN_HASH])
{
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[AUTH_TOKEN_RANDOM];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rq_log(RQ_ERROR, "getrandom: %s", strerror(errno));
            return RQ_IO;
        }
        got += (size_t)n;
    }
    size_t len = strlen(AUTH_TOKEN_PREFIX);
    memcpy(out, AUTH_TOKEN_PREFIX, len);
    /* Unpadded base64url, 6 bits a character, most significant first. */
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof r; i++) {
        acc = (acc << 8) | r[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[len++] = b64url[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out[len++] = b64url[(acc << (6 - bits)) & 63];
    }
    out[len] = '\0';
    memset(r, 0, sizeof r);
    auth_token_hash(out, hash);
    return len == AUTH_TOKEN_LEN ? 0 : RQ_IO;
}
