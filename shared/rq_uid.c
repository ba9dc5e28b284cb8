/*
 * The cluster uid's text and file (see rq_uid.h).
 */
#include "rq_uid.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rq_err.h"
#include "rq_fs.h"

void rq_uid_format(uint64_t uid, char out[RQ_UID_TEXT])
{
    snprintf(out, RQ_UID_TEXT, "%016" PRIx64, uid);
}

int rq_uid_parse(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    if (text == NULL || strlen(text) != RQ_UID_TEXT - 1) {
        return RQ_INVALID;
    }
    for (size_t i = 0; i < RQ_UID_TEXT - 1; i++) {
        char c = text[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            return RQ_INVALID;
        }
        v = v << 4 | d;
    }
    if (v == 0) {
        return RQ_INVALID;
    }
    *out = v;
    return 0;
}

int rq_uid_load(const char *path, uint64_t *out, char *why, size_t whyn)
{
    char buf[RQ_UID_TEXT + 2];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return RQ_NOTFOUND;
        }
        rq_why(why, whyn, "cannot open %s: %s", path, strerror(errno));
        return RQ_IO;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int err = errno;
    close(fd);
    if (n < 0) {
        rq_why(why, whyn, "cannot read %s: %s", path, strerror(err));
        return RQ_IO;
    }
    buf[n] = '\0';
    if (n == RQ_UID_TEXT && buf[RQ_UID_TEXT - 1] == '\n') {
        buf[RQ_UID_TEXT - 1] = '\0';
    }
    if (rq_uid_parse(buf, out) != 0) {
        rq_why(why, whyn,
               "%s does not hold a cluster uid (16 hexadecimal digits and a "
               "newline); it is damaged",
               path);
        return RQ_IO;
    }
    return 0;
}

int rq_uid_save(const char *path, uint64_t uid, char *why, size_t whyn)
{
    char tmp[4096];
    char dir[4096];
    char text[RQ_UID_TEXT + 1];

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        rq_why(why, whyn, "path too long: %s", path);
        return RQ_IO;
    }
    rq_uid_format(uid, text);
    text[RQ_UID_TEXT - 1] = '\n';
    text[RQ_UID_TEXT] = '\0';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rq_why(why, whyn, "cannot create %s: %s", tmp, strerror(errno));
        return RQ_IO;
    }
    ssize_t n = write(fd, text, RQ_UID_TEXT);
    int err = n < 0 ? errno : EIO; /* A short write: the disk is full. */
    if (n == RQ_UID_TEXT) {
        err = fsync(fd) == 0 ? 0 : errno;
    }
    if (err != 0) {
        close(fd);
        unlink(tmp);
        rq_why(why, whyn, "cannot write %s: %s", tmp, strerror(err));
        return RQ_IO;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        rq_why(why, whyn, "cannot rename %s: %s", tmp, strerror(err));
        return RQ_IO;
    }
    snprintf(dir, sizeof dir, "%s", path);
    if (rq_fsync_dir(dirname(dir)) != 0) {
        rq_why(why, whyn, "cannot sync the directory of %s", path);
        return RQ_IO;
    }
    return 0;
}
