/*
 * Who may use a manager's public and admin APIs: the bearer token of a
 * request, checked against the admin token and the public API tokens the
 * metadata holds (by hash, mstore_token_find), and the answer when it is
 * missing (401) or lacks a grant (403).
 *
 * Every public and admin handler checks in one order, so that the answer
 * does not depend on which manager a client reached:
 *
 *   1. authenticate   auth_public / auth_admin, before the request is
 *                     read at all: 401 on any manager, never forwarded;
 *   2. validate       the handler's own parsing: 400 on any manager;
 *   3. authorize      auth_allow on the request's topic (403), where the
 *                     topic is in the request; a consumer id's topic is
 *                     known only from the store, so those routes check on
 *                     the leader, once the consumer is found;
 *   4. route          mcore_forward to the leader, or 503.
 *
 * A follower authenticates with its own store, the leader again with its
 * own when the request is forwarded (Authorization goes along), so a token
 * revoked on the leader is refused there even before a follower has
 * applied the revocation.
 *
 * Tokens are AUTH_TOKEN_PREFIX and 43 characters of base64url (32 random
 * bytes from getrandom); only their SHA-256 leaves the manager that made
 * one, in the MCMD_TOKEN_CREATE it proposes.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grants.h"
#include "mcmd.h"
#include "rq_http.h"

struct mcore;

#define AUTH_TOKEN_PREFIX "rqt_"
#define AUTH_TOKEN_RANDOM 32 /* bytes */
/* The prefix and the random bytes in unpadded base64url. */
#define AUTH_TOKEN_LEN (4 + (AUTH_TOKEN_RANDOM * 4 + 2) / 3)

/* What a request's sender may do on the public API. */
struct auth {
    bool all;          /* --auth none, or an admin: every grant */
    bool admin;        /* the admin token, or a token with the admin grant */
    uint64_t token_id; /* the stored token presented; 0 for none */
    struct grants grants;
};

/*
 * Step 1 of a public route. With --auth none everyone may do everything;
 * with --auth tokens the request needs "Authorization: Bearer T" naming
 * the admin token or a stored token. Fills @who and returns true, or
 * answers 401 (with WWW-Authenticate: Bearer) and returns false.
 *
 * A follower that does not know a token of the right form may not have
 * applied its creation yet (the leader answers a creation once it has
 * applied it, followers a moment later). With @again, the route's own
 * handler, such a request is held instead: once this manager has applied
 * the leader's commit index as of now (mcore_read), @again runs anew
 * on the request and the token is judged for good. false then too: the
 * request is taken care of.
 */
bool auth_public(struct mcore *core, struct rq_http_req *req, struct auth *who,
                 rq_http_handler again);

/*
 * Step 1 of an admin route: true for the admin token or a stored token
 * with the admin grant, or for anyone with --admin-open; otherwise answers
 * 401 (no token, an unknown or revoked one) or 403 (a token without the
 * admin grant) and returns false.
 */
bool auth_admin(struct mcore *core, struct rq_http_req *req);

/*
 * Step 3: may @who do @action on @topic? true, or answers 403 with the
 * grant it needs (grants_refusal) and returns false.
 */
bool auth_allow(struct rq_http_req *req, const struct auth *who,
                enum grant_action action, const char *topic);

/* May @who see @topic at all (GET /topics lists only those)? */
bool auth_sees(const struct auth *who, const char *topic);

/*
 * A new token: AUTH_TOKEN_LEN characters into @out (AUTH_TOKEN_LEN + 1
 * bytes) and its SHA-256 into @hash. 0, or RQ_IO when getrandom fails.
 */
int auth_token_new(char *out, uint8_t hash[MCMD_TOKEN_HASH]);

/* The SHA-256 of a presented token's text. */
void auth_token_hash(const char *token, uint8_t hash[MCMD_TOKEN_HASH]);

#endif /* AUTH_H */
