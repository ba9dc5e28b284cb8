/*
 * The release every binary is built as (VERSION in the Makefile): shown by
 * raftq --version, in /healthz and in the raftq_build_info metric of every
 * process.
 */
#ifndef RQ_VERSION_H
#define RQ_VERSION_H

/* "0.17.0", say. */
const char *rq_version(void);

#endif /* RQ_VERSION_H */
