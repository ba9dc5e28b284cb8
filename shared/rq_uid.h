/*
 * The cluster uid (DESIGN.md section 17): a random non-zero 64-bit number
 * the first leader of a manager cluster commits once. Brokers keep the
 * uid of the cluster they first registered with in their data directory
 * and refuse managers of another; every manager-to-broker call names it
 * in RQ_CLUSTER_UID_HEADER. Its text is exactly 16 hexadecimal digits.
 *
 * The file holds that text and a newline. It is written once, through a
 * temporary file renamed over it, both made durable, so a crash leaves the
 * old file or the new one, never a part.
 */
#ifndef RQ_UID_H
#define RQ_UID_H

#include <stddef.h>
#include <stdint.h>

#define RQ_CLUSTER_UID_HEADER "X-Raftq-Cluster"
#define RQ_UID_TEXT 17 /* 16 digits and the NUL */

/* @uid as 16 lowercase hexadecimal digits. */
void rq_uid_format(uint64_t uid, char out[RQ_UID_TEXT]);

/* Parses exactly 16 hexadecimal digits (either case) naming a non-zero
 * uid: 0, or RQ_INVALID. */
int rq_uid_parse(const char *text, uint64_t *out);

/*
 * Reads the uid file at @path: 0, RQ_NOTFOUND if there is none, RQ_IO
 * with @why if it cannot be read or does not hold a uid (a damaged file
 * is never taken for a missing one).
 */
int rq_uid_load(const char *path, uint64_t *out, char *why, size_t whyn);

/* Writes @uid to @path durably (see the top): 0, or RQ_IO with @why. */
int rq_uid_save(const char *path, uint64_t uid, char *why, size_t whyn);

#endif /* RQ_UID_H */
