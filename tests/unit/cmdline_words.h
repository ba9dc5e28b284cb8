/*
 * For the unit tests of raftq's command line (test_cmdline, test_profile,
 * test_completion): cmdline_parse() of a line of blank-separated words (no
 * quoting) after "raftq". The words live in static buffers until the next
 * call.
 */
#ifndef TESTS_UNIT_CMDLINE_WORDS_H
#define TESTS_UNIT_CMDLINE_WORDS_H

#include <stdio.h>
#include <string.h>

#include "cli/cmdline.h"

#define CMDLINE_WORDS_MAX 32

static inline int parse(const char *line, const struct cmdline_env *env,
                        struct cmdline *out, char *why, size_t whyn)
{
    static char buf[1024];
    static char *argv[CMDLINE_WORDS_MAX + 2];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    argv[argc++] = "raftq";
    for (char *w = strtok(buf, " "); w != NULL && argc <= CMDLINE_WORDS_MAX;
         w = strtok(NULL, " ")) {
        argv[argc++] = w;
    }
    argv[argc] = NULL;
    return cmdline_parse(argc, argv, env, out, why, whyn);
}

#endif /* TESTS_UNIT_CMDLINE_WORDS_H */
