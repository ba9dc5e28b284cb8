/*
 * Certificates for `raftq dev --tls` (contract in devtls.h), made with
 * rq_certs.
 */
#include "devtls.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rq_certs.h"
#include "rq_err.h"
#include "rq_fs.h"

static void node_path(const char *dir, enum devplan_role r, unsigned id,
                      const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/%s-%u.%s", dir, devplan_role_name(r), id, ext);
}

static bool all_there(const struct devplan *p, const char *dir)
{
    char path[DEVPLAN_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    if (access(path, R_OK) != 0) {
        return false;
    }
    for (int r = DEVPLAN_MANAGER; r <= DEVPLAN_BROKER; r++) {
        unsigned n = r == DEVPLAN_MANAGER ? p->managers : p->brokers;
        for (unsigned id = 1; id <= n; id++) {
            node_path(dir, (enum devplan_role)r, id, "crt", path, sizeof path);
            if (access(path, R_OK) != 0) {
                return false;
            }
            node_path(dir, (enum devplan_role)r, id, "key", path, sizeof path);
            if (access(path, R_OK) != 0) {
                return false;
            }
        }
    }
    return true;
}

static int issue(const struct rq_ca *ca, const char *dir, enum devplan_role r,
                 unsigned id, char *why, size_t whyn)
{
    static const char *const sans[] = {DEVPLAN_HOST, "localhost"};
    char path[DEVPLAN_PATH_MAX + 64], cn[64];
    char *cert, *key;
    int rv;

    snprintf(cn, sizeof cn, "raftq dev %s %u", devplan_role_name(r), id);
    rv = rq_ca_issue(ca, cn, sans, 2, &cert, &key, why, whyn);
    if (rv != 0) {
        return rv;
    }
    node_path(dir, r, id, "crt", path, sizeof path);
    rv = rq_pem_write(path, cert, 0644, why, whyn);
    if (rv == 0) {
        node_path(dir, r, id, "key", path, sizeof path);
        rv = rq_pem_write(path, key, 0600, why, whyn);
    }
    free(cert);
    free(key);
    return rv;
}

int devtls_prepare(const struct devplan *p, const char *dir, char *why,
                   size_t whyn)
{
    char path[DEVPLAN_PATH_MAX + 64];
    struct rq_ca *ca;
    int rv;

    if (all_there(p, dir)) {
        return 0;
    }
    rv = rq_mkdir_p(dir, why, whyn);
    if (rv != 0) {
        return rv;
    }
    chmod(dir, 0700);
    rv = rq_ca_new("raftq dev CA", &ca, why, whyn);
    if (rv != 0) {
        return rv;
    }
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    rv = rq_pem_write(path, rq_ca_pem(ca), 0644, why, whyn);
    for (int r = DEVPLAN_MANAGER; rv == 0 && r <= DEVPLAN_BROKER; r++) {
        unsigned n = r == DEVPLAN_MANAGER ? p->managers : p->brokers;
        for (unsigned id = 1; rv == 0 && id <= n; id++) {
            rv = issue(ca, dir, (enum devplan_role)r, id, why, whyn);
        }
    }
    rq_ca_free(ca);
    return rv;
}
