/*
 * Unit tests of the log sink (shared/rq_log.c): its JSON lines parse,
 * whatever the message holds (quotes, control characters, bytes that are
 * not UTF-8), and a message cut for length is never cut inside a UTF-8
 * character. Standard error goes to a temporary file while they run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "rq_log.h"

/* Runs @emit with standard error on a file; returns what it wrote
 * (malloc'd). */
static char *captured(void (*emit)(void))
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
    emit();
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    off_t n = lseek(fileno(f), 0, SEEK_END);
    assert_true(n >= 0);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(pread(fileno(f), text, (size_t)n, 0), n);
    fclose(f);
    return text;
}

/* Each line of @text as JSON, in @out (at most @max); their number. */
static size_t json_lines(char *text, json_t **out, size_t max)
{
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line != NULL && n < max;
         line = strtok(NULL, "\n")) {
        json_error_t err;
        out[n] = json_loads(line, 0, &err);
        if (out[n] == NULL) {
            fail_msg("not JSON (%s): %s", err.text, line);
        }
        n++;
    }
    return n;
}

static void emit_odd(void)
{
    rq_log_init("test", RQ_DEBUG, RQ_LOG_JSON);
    rq_log_emit(RQ_INFO, "t", "quote \" backslash \\ tab\tbell\a end");
    rq_log_emit(RQ_WARN, "t", "not UTF-8: %s", "\xff\xfe caf\xc3");
    rq_log_emit(RQ_ERROR, "t", "caf\xc3\xa9 \xe2\x82\xac new\nline");
}

static void test_log_json_lines_parse(void **state)
{
    (void)state;
    char *text = captured(emit_odd);
    json_t *o[4];
    assert_int_equal(json_lines(text, o, 4), 3);
    assert_string_equal(json_string_value(json_object_get(o[0], "msg")),
                        "quote \" backslash \\ tab\tbell\a end");
    assert_string_equal(json_string_value(json_object_get(o[0], "level")),
                        "INFO");
    assert_string_equal(json_string_value(json_object_get(o[0], "proc")),
                        "test");
    assert_string_equal(json_string_value(json_object_get(o[1], "msg")),
                        "not UTF-8: ?? caf?");
    assert_string_equal(json_string_value(json_object_get(o[2], "msg")),
                        "caf\xc3\xa9 \xe2\x82\xac new line");
    for (size_t i = 0; i < 3; i++) {
        assert_non_null(json_string_value(json_object_get(o[i], "ts")));
        json_decref(o[i]);
    }
    free(text);
}

/* A message of euro signs (3 bytes each) past the 2048-byte line. */
static void emit_long(void)
{
    char big[3 * 1000 + 1];
    for (size_t i = 0; i < 1000; i++) {
        memcpy(big + 3 * i, "\xe2\x82\xac", 3);
    }
    big[sizeof big - 1] = '\0';
    rq_log_init("test", RQ_DEBUG, RQ_LOG_JSON);
    rq_log_emit(RQ_INFO, "t", "%s", big);
    rq_log_init("test", RQ_DEBUG, RQ_LOG_TEXT);
    rq_log_emit(RQ_INFO, "t", "%s", big);
}

static void test_log_cut_on_a_character(void **state)
{
    (void)state;
    char *text = captured(emit_long);
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    char *second = nl + 1;
    *nl = '\0';
    json_t *o = json_loads(text, 0, NULL);
    assert_non_null(o); /* Valid UTF-8, or jansson refuses it. */
    const char *msg = json_string_value(json_object_get(o, "msg"));
    size_t n = strlen(msg);
    assert_true(n > 2000 && n < 2048);
    assert_string_equal(msg + n - 3, "...");
    assert_int_equal((n - 3) % 3, 0); /* Whole euro signs only. */
    json_decref(o);
    /* The text line is cut the same way. */
    char *end = strstr(second, "...\n");
    assert_non_null(end);
    assert_int_equal((unsigned char)end[-1], 0xac);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_json_lines_parse),
        cmocka_unit_test(test_log_cut_on_a_character),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
