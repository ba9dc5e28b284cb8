/*
 * The throwaway certificates of `raftq dev --tls`: a CA and one
 * certificate per process (SANs 127.0.0.1 and localhost), under
 * DIR/dev/tls. Kept across runs; made again, CA included, when any file is
 * missing (a broker added, a file removed), since every process restarts
 * with the cluster anyway. Keys are written mode 0600.
 */
#ifndef DEVTLS_H
#define DEVTLS_H

#include <stddef.h>

#include "devplan.h"

/*
 * Makes sure @dir holds ca.crt and NAME.crt/NAME.key for every manager and
 * broker of @p (NAME as "manager-1", "broker-2"). 0, or RQ_IO with @why.
 */
int devtls_prepare(const struct devplan *p, const char *dir, char *why,
                   size_t whyn);

#endif /* DEVTLS_H */
