/*
 * "Serve now, else read consistently and serve again": how a request waits
 * until this manager's store holds what the leader had committed when the
 * request arrived. The queue API uses it where a follower may not have
 * applied yet what a client has just created through the leader (a topic,
 * a producer), and for the reads that must reflect every command committed
 * before them; auth.c, for a token a follower does not know yet.
 *
 * It knows only the core (mcore_hold, mcore_read), so that auth.c and the
 * queue API's files can share it without importing each other.
 */
#ifndef QAPI_SERVE_H
#define QAPI_SERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "mcore.h"
#include "rq_http.h"

/*
 * Serves @req with @arg (borrowed: what it keeps past its return, it
 * copies). @last_try false: may return false, answering nothing, when
 * what it looks up is not in this manager's store (yet); true once it has
 * answered or started serving. @last_try true: must answer (or start
 * serving) and return true.
 */
typedef bool (*qapi_serve_fn)(struct mcore *core, struct rq_http_req *req,
                              void *arg, bool last_try);

/*
 * "Serve now, else read consistently and serve again". A follower may not
 * have applied yet what a client has just created through the leader (a
 * topic, a producer): @serve runs now, and when it returns false @req is
 * held, a consistent read (mcore_read) brings this manager's store up to
 * the leader's commit index, and @serve runs once more with last_try. A
 * read that fails answers 503; a client gone meanwhile gets no second run.
 * Out of memory, answers 500.
 *
 * @arg (@size bytes) is copied when @req must wait; the copy lives until
 * the second run returns. Pointers in it must stay valid while @req waits:
 * into the request itself (its arguments are borrowed until it is
 * answered), never onto the caller's stack.
 */
void qapi_serve(struct mcore *core, struct rq_http_req *req,
                qapi_serve_fn serve, void *arg, size_t size);

/* The same without the first try: for reads that must reflect every
 * command committed before the request arrived (GET /topics, ...). */
void qapi_serve_read(struct mcore *core, struct rq_http_req *req,
                     qapi_serve_fn serve, const void *arg, size_t size);

#endif /* QAPI_SERVE_H */
