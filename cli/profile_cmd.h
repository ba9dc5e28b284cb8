/*
 * The profiles file on disk and the commands that work on it:
 * `raftq profile create|use|list|show|delete`, and the choice of a profile
 * for a command that talks to a cluster. The format, the names and the
 * precedence are profile.h's; this module reads and writes the file and
 * prints. The file is read whole and written whole: through a temporary
 * file of mode 0600 in the same directory, then renamed over the old one,
 * so a reader sees the old file or the new, never a part, and the tokens
 * in it are never readable by others, not even for a moment. A directory
 * made for it gets mode 0700.
 */
#ifndef PROFILE_CMD_H
#define PROFILE_CMD_H

#include "cmdline.h"
#include "profile.h"

/* Runs profile create, use, list, show or delete (@cl->cmd) on the file
 * @env says. Returns an exit code (cmdline.h): 1 for a profile that does
 * not exist or exists already, or a file that cannot be written; 2 for a
 * malformed file or a bad setting. */
int profile_cmd_run(const struct cmdline *cl, const struct profile_env *env);

/*
 * Before a command that talks to a cluster: reads the profiles file (there
 * may be none), chooses the profile @cl->profile names or else the current
 * one, and fills from it what @cl's options and the environment left open
 * (profile_apply()). Returns CLI_OK with *@held the profiles @cl now
 * borrows from (the caller frees them with profile_free() once @cl is done
 * with), or CLI_USAGE having printed why: a malformed or unreadable file
 * (named), or a profile name the file does not hold.
 */
int profile_cmd_apply(struct cmdline *cl, const struct profile_env *env,
                      struct profiles **held);

#endif /* PROFILE_CMD_H */
