/*
 * File-system helpers (see rq_fs.h).
 */
#include "rq_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rq_err.h"

int rq_mkdir_p(const char *dir, char *why, size_t whyn)
{
    char path[4096];
    size_t len = strlen(dir);
    struct stat st;

    if (len == 0 || len >= sizeof path) {
        rq_why(why, whyn, "directory path is empty or too long");
        return RQ_INVALID;
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            rq_why(why, whyn, "cannot create directory %s: %s", path,
                   strerror(errno));
            return RQ_IO;
        }
        path[i] = c;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rq_why(why, whyn, "%s is not a directory", dir);
        return RQ_IO;
    }
    return 0;
}

int rq_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return RQ_IO;
    }
    int rv = fsync(fd) == 0 ? 0 : RQ_IO;
    close(fd);
    return rv;
}

int rq_lock_dir(const char *dir, int *fd, char *why, size_t whyn)
{
    char path[4096];
    int rv = rq_mkdir_p(dir, why, whyn);
    if (rv != 0) {
        return rv;
    }
    snprintf(path, sizeof path, "%s/LOCK", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) {
        rq_why(why, whyn, "cannot open %s: %s", path, strerror(errno));
        return RQ_IO;
    }
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        rq_why(why, whyn, "data directory %s is in use by another process",
               dir);
        close(*fd);
        *fd = -1;
        return RQ_IO;
    }
    return 0;
}
