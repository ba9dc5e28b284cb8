/*
 * Consumer groups from the command line (API.md section 2b):
 * `raftq group list|describe|reset-offsets|delete` and
 * `raftq consume TOPIC --group G`, which joins the group, fetches from the
 * partitions the group gives it, prints each record's value and commits
 * what it printed; a thread of its own sends the heartbeats, so a slow
 * reader of the output does not lose the membership. A 409 (the group
 * moved on without it: its session expired, or it was fenced off) makes it
 * join again; what it printed and could not commit is printed again by
 * whoever owns the partition next. Ctrl-C leaves the group.
 */
#ifndef GROUP_H
#define GROUP_H

#include "cmdline.h"
#include "mclient.h"

/* group list|describe|reset-offsets|delete: the exit code. */
int group_run(const struct cmdline *cl, struct mclient *c);

/* The offsets to commit after @records (a fetch's answer's list): for
 * each partition, the offset after its last record; NULL if a record is
 * not what a fetch answers. The caller owns the list. */
json_t *group_commit_offsets(const json_t *records);

/* consume TOPIC --group G: the exit code. @stop is the process's stop
 * flag (Ctrl-C). */
int group_consume(const struct cmdline *cl, struct mclient *c,
                  const volatile sig_atomic_t *stop);

#endif /* GROUP_H */
