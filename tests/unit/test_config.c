/*
 * Unit tests of the secret options of rq_config: a secret given as a value
 * or read from a file (flag or environment), the file's trailing newline
 * stripped, exactly one form accepted, unreadable and empty files refused
 * with a message naming the flag, and the copies freed by rq_config_free;
 * and the start-up every server binary shares (rq_config_load) and its
 * Raft timing rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rq_config.h"
#include "rq_err.h"
#include "rq_log.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define ENV "RQTEST_SECRET"
#define ENV_FILE "RQTEST_SECRET_FILE"

struct cfg {
    const char *secret;
    const char *token;
    uint64_t id;
};

static const struct rq_opt opts[] = {
    {"cluster-secret", ENV, RQ_OPT_SECRET, NULL, false,
     offsetof(struct cfg, secret), "the secret"},
    {"admin-token", NULL, RQ_OPT_SECRET, "", false, offsetof(struct cfg, token),
     "a token"},
    {"id", NULL, RQ_OPT_U64, "1", false, offsetof(struct cfg, id), "an id"},
};
#define N_OPTS (sizeof opts / sizeof opts[0])

struct fixture {
    char dir[64];
    char path[96];
    struct cfg cfg;
    char why[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/rq-test-config-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/secret", f->dir);
    unsetenv(ENV);
    unsetenv(ENV_FILE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rq_config_free(opts, N_OPTS, &f->cfg);
    unlink(f->path);
    rmdir(f->dir);
    unsetenv(ENV);
    unsetenv(ENV_FILE);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    fclose(fp);
}

/* Parses @argv (NULL-terminated, without argv[0]). */
static int parse(struct fixture *f, const char *const *args)
{
    char *argv[16] = {"test"};
    int argc = 1;
    bool help;
    for (; args[argc - 1] != NULL; argc++) {
        argv[argc] = (char *)args[argc - 1];
    }
    rq_config_free(opts, N_OPTS, &f->cfg);
    f->why[0] = '\0';
    return rq_config_parse(opts, N_OPTS, &f->cfg, argc, argv, &help, f->why,
                           sizeof f->why);
}

static void test_config_secret_from_flag_env_and_default(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret", SECRET, NULL}), 0);
    assert_string_equal(f->cfg.secret, SECRET);
    assert_string_equal(f->cfg.token, ""); /* The default, copied. */

    setenv(ENV, "from-the-environment", 1);
    assert_int_equal(parse(f, (const char *[]){NULL}), 0);
    assert_string_equal(f->cfg.secret, "from-the-environment");

    unsetenv(ENV);
    assert_int_equal(parse(f, (const char *[]){NULL}), 0);
    assert_null(f->cfg.secret); /* No default: left for the caller. */
}

static void test_config_secret_file_strips_newline(void **state)
{
    struct fixture *f = *state;
    write_file(f->path, SECRET "\n", strlen(SECRET) + 1);
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret-file", f->path, NULL}), 0);
    assert_string_equal(f->cfg.secret, SECRET);

    write_file(f->path, SECRET "\r\n\n", strlen(SECRET) + 3);
    char flag[128];
    snprintf(flag, sizeof flag, "--cluster-secret-file=%s", f->path);
    assert_int_equal(parse(f, (const char *[]){flag, NULL}), 0);
    assert_string_equal(f->cfg.secret, SECRET);

    /* Inner blanks are part of the secret. */
    write_file(f->path, " a b ", 5);
    setenv(ENV_FILE, f->path, 1);
    assert_int_equal(parse(f, (const char *[]){NULL}), 0);
    assert_string_equal(f->cfg.secret, " a b ");
}

static void test_config_secret_one_form_only(void **state)
{
    struct fixture *f = *state;
    write_file(f->path, SECRET, strlen(SECRET));
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret", SECRET,
                                  "--cluster-secret-file", f->path, NULL}),
        RQ_INVALID);
    assert_non_null(strstr(f->why,
                           "--cluster-secret or "
                           "--cluster-secret-file, not both"));

    setenv(ENV, SECRET, 1);
    setenv(ENV_FILE, f->path, 1);
    assert_int_equal(parse(f, (const char *[]){NULL}), RQ_INVALID);
    assert_non_null(strstr(f->why, ENV " or " ENV_FILE ", not both"));

    /* The command line, in either form, hides the environment. */
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret", "flag", NULL}), 0);
    assert_string_equal(f->cfg.secret, "flag");
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret-file", f->path, NULL}), 0);
    assert_string_equal(f->cfg.secret, SECRET);

    /* Only secrets have a file form. */
    assert_int_equal(parse(f, (const char *[]){"--id-file", "x", NULL}),
                     RQ_INVALID);
    assert_non_null(strstr(f->why, "unknown flag '--id-file'"));
}

static void test_config_secret_file_refused(void **state)
{
    struct fixture *f = *state;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none", f->dir);
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret-file", missing, NULL}),
        RQ_INVALID);
    assert_non_null(strstr(f->why, "--cluster-secret-file"));
    assert_non_null(strstr(f->why, "cannot open"));

    write_file(f->path, "\n", 1);
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret-file", f->path, NULL}),
        RQ_INVALID);
    assert_non_null(strstr(f->why, "is empty"));

    write_file(f->path, "abc\0def", 7);
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret-file", f->path, NULL}),
        RQ_INVALID);
    assert_non_null(strstr(f->why, "NUL"));

    static char big[RQ_CONFIG_SECRET_FILE_MAX + 1];
    memset(big, 'x', sizeof big);
    write_file(f->path, big, sizeof big);
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret-file", f->path, NULL}),
        RQ_INVALID);
    assert_non_null(strstr(f->why, "longer than"));

    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret-file", f->dir, NULL}),
        RQ_INVALID);
    assert_non_null(strstr(f->why, "cannot read"));

    if (geteuid() != 0) { /* root reads a file of mode 0000 anyway. */
        write_file(f->path, SECRET, strlen(SECRET));
        chmod(f->path, 0);
        assert_int_equal(
            parse(f, (const char *[]){"--cluster-secret-file", f->path, NULL}),
            RQ_INVALID);
        assert_non_null(strstr(f->why, "Permission denied"));
    }
}

static void test_config_free_clears(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        parse(f, (const char *[]){"--cluster-secret", SECRET, NULL}), 0);
    rq_config_free(opts, N_OPTS, &f->cfg);
    assert_null(f->cfg.secret);
    assert_null(f->cfg.token);
    rq_config_free(opts, N_OPTS, &f->cfg); /* Twice is harmless. */
}

static void test_config_check_secret_names_both_flags(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        rq_config_check_secret("cluster-secret", NULL, f->why, sizeof f->why),
        RQ_INVALID);
    assert_non_null(strstr(f->why,
                           "--cluster-secret (or "
                           "--cluster-secret-file) is required"));
    assert_int_equal(rq_config_check_secret("cluster-secret", "short", f->why,
                                            sizeof f->why),
                     RQ_INVALID);
    assert_int_equal(
        rq_config_check_secret("cluster-secret", "raftq-dev-secret", f->why,
                               sizeof f->why),
        RQ_INVALID);
    assert_int_equal(
        rq_config_check_secret("cluster-secret", SECRET, f->why, sizeof f->why),
        0);
}

/* ---- A server binary's start-up ---- */

struct server_cfg {
    uint64_t id;
    const char *secret;
    const char *log_level;
    const char *log_format;
};

static const struct rq_opt server_opts[] = {
    {"id", NULL, RQ_OPT_U64, NULL, true, offsetof(struct server_cfg, id),
     "an id"},
    {"cluster-secret", ENV, RQ_OPT_SECRET, NULL, false,
     offsetof(struct server_cfg, secret), "the secret"},
    {"log-level", NULL, RQ_OPT_STR, "info", false,
     offsetof(struct server_cfg, log_level), "level"},
    {"log-format", NULL, RQ_OPT_STR, "text", false,
     offsetof(struct server_cfg, log_format), "format"},
};

static const struct rq_config_spec server = {
    "testd", "testd --id N [options]", server_opts,
    sizeof server_opts / sizeof server_opts[0]};

static int load(char **argv, int argc, char *why, size_t whyn)
{
    struct server_cfg c = {0};
    int rv = rq_config_load(&server, &c, argc, argv, why, whyn);
    rq_config_free(server_opts, server.n, &c);
    return rv;
}

static void test_config_load_starts_logging_and_checks_secret(void **state)
{
    struct fixture *f = *state;
    char *ok[] = {"testd", "--id",        "7",    "--cluster-secret",
                  SECRET,  "--log-level", "debug"};
    assert_int_equal(load(ok, 7, f->why, sizeof f->why), 0);
    assert_true(rq_log_enabled(RQ_DEBUG));
    char *quiet[] = {"testd",
                     "--id",
                     "7",
                     "--cluster-secret",
                     SECRET,
                     "--log-level=error",
                     "--log-format",
                     "json"};
    assert_int_equal(load(quiet, 8, f->why, sizeof f->why), 0);
    assert_false(rq_log_enabled(RQ_WARN));

    char *bad_level[] = {"testd", "--id",        "7",   "--cluster-secret",
                         SECRET,  "--log-level", "loud"};
    assert_int_equal(load(bad_level, 7, f->why, sizeof f->why), RQ_INVALID);
    assert_non_null(strstr(f->why, "--log-level must be"));
    char *no_secret[] = {"testd", "--id", "7"};
    assert_int_equal(load(no_secret, 3, f->why, sizeof f->why), RQ_INVALID);
    assert_non_null(strstr(f->why, "--cluster-secret"));
    char *no_id[] = {"testd", "--cluster-secret", SECRET};
    assert_int_equal(load(no_id, 3, f->why, sizeof f->why), RQ_INVALID);
    assert_non_null(strstr(f->why, "--id"));
    rq_log_init("test", RQ_INFO, RQ_LOG_TEXT);
}

static void test_config_check_raft_timing(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rq_config_check_raft_timing(1000, 100, f->why, 256), 0);
    assert_int_equal(rq_config_check_raft_timing(50, 49, f->why, 256), 0);
    assert_int_equal(rq_config_check_raft_timing(60000, 1, f->why, 256), 0);
    assert_int_equal(rq_config_check_raft_timing(49, 10, f->why, 256),
                     RQ_INVALID);
    assert_non_null(strstr(f->why, "--election-timeout-ms"));
    assert_int_equal(rq_config_check_raft_timing(60001, 10, f->why, 256),
                     RQ_INVALID);
    assert_int_equal(rq_config_check_raft_timing(1000, 0, f->why, 256),
                     RQ_INVALID);
    assert_int_equal(rq_config_check_raft_timing(1000, 1000, f->why, 256),
                     RQ_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_config_secret_from_flag_env_and_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_secret_file_strips_newline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_secret_one_form_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_secret_file_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_free_clears, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_config_check_secret_names_both_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_config_load_starts_logging_and_checks_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_check_raft_timing, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
