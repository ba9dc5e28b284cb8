/*
 * Small file-system helpers every process needs: creating a directory with
 * its parents, and making a directory's entries durable. Blocking; used at
 * start-up and on rare paths (segment rolls, descriptor writes).
 */
#ifndef RQ_FS_H
#define RQ_FS_H

#include <stddef.h>

/*
 * Creates @dir and its missing parents, like mkdir -p. Returns 0, or
 * RQ_INVALID / RQ_IO with a reason in @why (which may be NULL).
 */
int rq_mkdir_p(const char *dir, char *why, size_t whyn);

/*
 * Creates @dir if needed and takes an exclusive lock on @dir/LOCK for the
 * life of the process (the descriptor in *fd), so two processes never
 * share a data directory. RQ_IO with @why ("... is in use by another
 * process") otherwise.
 */
int rq_lock_dir(const char *dir, int *fd, char *why, size_t whyn);

/* fsync of a directory, so entries created or renamed in it survive a
 * crash. 0 or RQ_IO. */
int rq_fsync_dir(const char *dir);

#endif /* RQ_FS_H */
