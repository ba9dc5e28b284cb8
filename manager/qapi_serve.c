/*
 * A request waiting for a consistent read (see qapi_serve.h): held
 * (mcore_hold) in a small struct with a copy of the serve function's
 * argument, so that a client gone meanwhile leaves nothing to serve.
 */
#include "qapi_serve.h"

#include <stdlib.h>
#include <string.h>

/* A request waiting for its consistent read. */
struct waiting {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *core;
    qapi_serve_fn serve;
    max_align_t arg[]; /* The serve function's argument, copied. */
};

static void on_read(void *data, int status, const char *why)
{
    struct waiting *w = data;
    if (w->req != NULL) {
        rq_http_on_abort(w->req, NULL, NULL);
        if (status != 0) {
            mcore_unavailable(w->req, "%s", why);
        } else {
            w->serve(w->core, w->req, w->arg, true);
        }
    }
    free(w);
}

void qapi_serve_read(struct mcore *core, struct rq_http_req *req,
                     qapi_serve_fn serve, const void *arg, size_t size)
{
    struct waiting *w = rq_http_calloc(req, 1, sizeof *w + size);
    if (w == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    w->core = core;
    w->serve = serve;
    if (size > 0) {
        memcpy(w->arg, arg, size);
    }
    mcore_hold(req, &w->req);
    mcore_read(core, on_read, w);
}

void qapi_serve(struct mcore *core, struct rq_http_req *req,
                qapi_serve_fn serve, void *arg, size_t size)
{
    if (!serve(core, req, arg, false)) {
        qapi_serve_read(core, req, serve, arg, size);
    }
}
