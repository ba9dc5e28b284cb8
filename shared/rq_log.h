/*
 * One line per event, on standard error.
 *
 * Each .c file defines LOG_TAG before using rq_log():
 *
 *     #define LOG_TAG "raft_mux"
 *     rq_log(RQ_WARN, "group %llu: unknown sender %llu", gid, id);
 *
 * Text lines read "2026-11-24T13:56:39.123Z WARN atm-1 raft_mux: ...";
 * with the JSON format each line is one object with ts, level, proc, tag and
 * msg. A line is written with a single write(2), so lines from concurrent
 * processes sharing a terminal do not interleave.
 */
#ifndef RQ_LOG_H
#define RQ_LOG_H

#include <stdbool.h>

enum rq_log_level { RQ_DEBUG, RQ_INFO, RQ_WARN, RQ_ERROR };
enum rq_log_format { RQ_LOG_TEXT, RQ_LOG_JSON };

/* Names the process in every line (copied) and sets the threshold. */
void rq_log_init(const char *proc, enum rq_log_level min, enum rq_log_format f);

/* Parses "debug|info|warn|error" and "text|json"; RQ_INVALID otherwise. */
int rq_log_level_parse(const char *s, enum rq_log_level *out);
int rq_log_format_parse(const char *s, enum rq_log_format *out);

bool rq_log_enabled(enum rq_log_level level);

void rq_log_emit(enum rq_log_level level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define rq_log(level, ...)                            \
    do {                                              \
        if (rq_log_enabled(level)) {                  \
            rq_log_emit(level, LOG_TAG, __VA_ARGS__); \
        }                                             \
    } while (0)

/*
 * The rq_opt entries of --log-level and --log-format, for the option table
 * of every process (rq_config.h); @type has const char * fields log_level
 * and log_format.
 */
/* clang-format off */
#define RQ_LOG_OPTIONS(type)                                                 \
    {"log-level", "RAFTQ_LOG_LEVEL", RQ_OPT_STR, "info", false,              \
     offsetof(type, log_level), "debug, info, warn or error"},               \
    {"log-format", "RAFTQ_LOG_FORMAT", RQ_OPT_STR, "text", false,            \
     offsetof(type, log_format), "text or json"}
/* clang-format on */

#endif /* RQ_LOG_H */
