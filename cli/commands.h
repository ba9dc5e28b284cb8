/*
 * The client's commands against a running cluster: topics, cluster status,
 * brokers and partition leadership here; produce.h and consume.h for the
 * data. Each returns the process's exit code (cmdline.h), having printed
 * the result on standard output (a table, or the server's JSON with
 * --json, one object a line) or what went wrong on standard error.
 */
#ifndef COMMANDS_H
#define COMMANDS_H

#include <jansson.h>

#include "cmdline.h"
#include "mclient.h"
#include "url.h"

/* Exit code after a signal stopped a command (128 + SIGINT). */
#define CLI_INTERRUPTED 130

/* Runs every command but dev, produce and consume. */
int commands_run(const struct cmdline *cl, struct mclient *c);

/*
 * The exit code of an mclient_call() that returned @rv with @r and @why:
 * CLI_OK for a 200 (nothing printed); otherwise prints on stderr why the
 * command failed and returns CLI_REFUSED (the server refused: its message),
 * CLI_UNREACHABLE (no manager, no quorum) or CLI_INTERRUPTED.
 */
int commands_outcome(int rv, const struct mclient_resp *r, const char *why);

/*
 * mclient_call() of @method on @u (built on an empty base) with @body
 * (borrowed, may be NULL), judged by commands_outcome(): CLI_OK with the
 * answer in @r for the caller to clear, or another code with @r cleared
 * and the reason printed (CLI_USAGE when @u overflowed).
 */
int commands_call(struct mclient *c, const char *method, const struct url *u,
                  const json_t *body, struct mclient_resp *r);

/* Prints @body as one line of compact JSON on stdout. */
void commands_print_json(const json_t *body);

#endif /* COMMANDS_H */
