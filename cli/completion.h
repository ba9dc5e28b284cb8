/*
 * Shell completion for raftq: `raftq completion bash|zsh` prints a script
 * made from the command line's own tables (cmdline_command_at(),
 * cmdline_option_at()), so that a command or an option added to the
 * parser is completed without anyone touching this module. What the
 * tables cannot say, what kind of value an option or an argument takes
 * (a profile name, a file, a directory), comes from a short table here;
 * profile names are read when completing, from
 * `raftq profile list --names`.
 *
 * Pure: writes to the FILE it is given.
 */
#ifndef COMPLETION_H
#define COMPLETION_H

#include <stdbool.h>
#include <stdio.h>

/* The shells, as the usage error names them. */
#define COMPLETION_SHELLS "bash or zsh"

/* Whether `raftq completion @shell` has a script. */
bool completion_shell_known(const char *shell);

/* Writes the completion script for @shell to @f. 0, or RQ_INVALID for a
 * shell completion_shell_known() refuses. */
int completion_write(const char *shell, FILE *f);

#endif /* COMPLETION_H */
