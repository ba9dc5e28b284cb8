/*
 * The status page at /ui: one self-contained HTML file
 * (manager/ui/index.html, embedded at build time) whose script draws the
 * managers, brokers and partitions from the admin API and refreshes them
 * every 1.5 s. The page itself needs no token; the admin paths it reads
 * keep theirs. The handler ignores its data.
 */
#ifndef UI_H
#define UI_H

#include "rq_http.h"

/* GET /ui and /ui/: the page, text/html, never cached. */
void ui_page(struct rq_http_req *req, void *data);

#endif /* UI_H */
