/*
 * The log sink. It formats a whole line into a stack buffer and writes it at
 * once; a message longer than the buffer is cut and marked with "...".
 */
#include "rq_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

/* Appends @s to @out as the body of a JSON string, escaping as needed. */
static size_t json_escape(char *out, size_t n, const char *s)
{
    size_t o = 0;
    for (; *s != '\0' && o + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, n - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
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
        memcpy(msg + sizeof msg - 4, "...", 4);
    }
    /* A message never spans lines: newlines inside it become spaces. */
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    timestamp(ts, sizeof ts);
    if (format == RQ_LOG_JSON) {
        char esc[LOG_LINE_MAX + 64];
        json_escape(esc, sizeof esc, msg);
        len = snprintf(line, sizeof line,
                       "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":\"%s\","
                       "\"tag\":\"%s\",\"msg\":\"%s\"}\n",
                       ts, level_names[level], proc_name, tag, esc);
    } else {
        len = snprintf(line, sizeof line, "%s %s %s %s: %s\n", ts,
                       level_names[level], proc_name, tag, msg);
    }
    if (len > (int)sizeof line - 1) {
        len = (int)sizeof line - 1;
        line[len - 1] = '\n';
    }
    /* Best effort: a log line that cannot be written has nowhere to go. */
    ssize_t rv = write(STDERR_FILENO, line, (size_t)len);
    (void)rv;
}

