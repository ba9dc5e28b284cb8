/*
 * The log sink. It formats a whole line and writes it at once; a message
 * longer than LOG_LINE_MAX is cut, on a character boundary, and marked
 * with "...". JSON lines are written by jansson, which escapes the message
 * and refuses one that is not UTF-8 (its bytes past ASCII then become '?').
 */
#include "rq_log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "rq_err.h"

#define LOG_LINE_MAX 2048

static char proc_name[64] = "raftq";
static enum rq_log_level threshold = RQ_INFO;
static enum rq_log_format format = RQ_LOG_TEXT;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void rq_log_init(const char *proc, enum rq_log_level min, enum rq_log_format f)
{
    snprintf(proc_name, sizeof proc_name, "%s", proc);
    threshold = min;
    format = f;
}

int rq_log_level_parse(const char *s, enum rq_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum rq_log_level)i;
            return 0;
        }
    }
    return RQ_INVALID;
}

int rq_log_format_parse(const char *s, enum rq_log_format *out)
{
    if (strcmp(s, "text") == 0) {
        *out = RQ_LOG_TEXT;
        return 0;
    }
    if (strcmp(s, "json") == 0) {
        *out = RQ_LOG_JSON;
        return 0;
    }
    return RQ_INVALID;
}

bool rq_log_enabled(enum rq_log_level level)
{
    return level >= threshold;
}

static size_t timestamp(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    len +=
        (size_t)snprintf(buf + len, n - len, ".%03ldZ", ts.tv_nsec / 1000000);
    return len;
}

/* The JSON line of a message, malloc'd, or NULL (ENOMEM). */
static char *json_line(const char *ts, enum rq_log_level level, const char *tag,
                       char *msg)
{
    json_t *text = json_string(msg);
    if (text == NULL) {
        /* Not UTF-8 (a raw path, say): keep the message readable. */
        for (char *p = msg; *p != '\0'; p++) {
            if ((unsigned char)*p >= 0x80) {
                *p = '?';
            }
        }
        text = json_string(msg);
    }
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:o}", "ts", ts, "level",
                          level_names[level], "proc", proc_name, "tag", tag,
                          "msg", text);
    char *line = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return line;
}

void rq_log_emit(enum rq_log_level level, const char *tag, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX];
    char line[LOG_LINE_MAX * 2];
    char ts[40];
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (len >= (int)sizeof msg) {
        /* Cut before a whole character: never inside a UTF-8 sequence. */
        size_t cut = sizeof msg - 4;
        while (cut > 0 && ((unsigned char)msg[cut] & 0xC0) == 0x80) {
            cut--;
        }
        memcpy(msg + cut, "...", 4);
    }
    /* A message never spans lines: newlines inside it become spaces. */
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    timestamp(ts, sizeof ts);
    char *json = format == RQ_LOG_JSON ? json_line(ts, level, tag, msg) : NULL;
    if (json != NULL) {
        /* Whole, however long its escapes made it: one write. */
        struct iovec v[2] = {{json, strlen(json)}, {(char *)"\n", 1}};
        ssize_t rv = writev(STDERR_FILENO, v, 2);
        (void)rv;
        free(json);
        return;
    }
    len = snprintf(line, sizeof line, "%s %s %s %s: %s\n", ts,
                   level_names[level], proc_name, tag, msg);
    if (len > (int)sizeof line - 1) {
        len = (int)sizeof line - 1;
        line[len - 1] = '\n';
    }
    /* Best effort: a log line that cannot be written has nowhere to go. */
    ssize_t rv = write(STDERR_FILENO, line, (size_t)len);
    (void)rv;
}
