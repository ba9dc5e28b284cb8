/*
 * Unit tests of profiles (cli/profile.c): names, where the file is, its
 * JSON read and written back, malformed files refused with the member at
 * fault named, and where a profile's settings rank: below the options and
 * the environment, above the defaults. Also the command line of raftq
 * profile and --profile (cli/cmdline.c), which feeds them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cmdline.h"
#include "tests/unit/cmdline_words.h"
#include "cli/profile.h"
#include "rq_err.h"

static struct profiles *parse_text(const char *text)
{
    struct profiles *ps = NULL;
    char why[256] = "";
    int rv = profile_parse(text, strlen(text), &ps, why, sizeof why);
    if (rv != 0) {
        fail_msg("'%s': %d %s", text, rv, why);
    }
    return ps;
}

static const char two[] =
    "{\"version\": 1, \"current\": \"prod\", \"profiles\": {"
    "\"prod\": {\"managers\": \"https://m1:9500,https://m2:9500\", "
    "\"token\": \"0123456789abcdef0123\", \"cacert\": \"/etc/raftq/ca.pem\"},"
    "\"dev\": {\"managers\": \"http://127.0.0.1:9500\"}}}";

static void test_profile_name_check(void **state)
{
    (void)state;
    char why[256];
    char long_name[PROFILE_NAME_MAX + 2];

    assert_int_equal(profile_name_check("dev", why, sizeof why), 0);
    assert_int_equal(profile_name_check("a.B_c-9", why, sizeof why), 0);
    memset(long_name, 'x', PROFILE_NAME_MAX);
    long_name[PROFILE_NAME_MAX] = '\0';
    assert_int_equal(profile_name_check(long_name, why, sizeof why), 0);
    long_name[PROFILE_NAME_MAX] = 'x';
    long_name[PROFILE_NAME_MAX + 1] = '\0';
    assert_int_equal(profile_name_check(long_name, why, sizeof why),
                     RQ_INVALID);
    static const char *const bad[] = {
        "", "a b", "a/b", "../x", "caf\xc3\xa9", "x:y", "a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (profile_name_check(bad[i], why, sizeof why) != RQ_INVALID) {
            fail_msg("'%s' taken as a name", bad[i]);
        }
        assert_non_null(strstr(why, "[A-Za-z0-9._-]"));
    }
}

static void test_profile_path_order(void **state)
{
    (void)state;
    char path[PROFILE_PATH_MAX];
    char why[256];
    struct profile_env env = {
        .config = "/tmp/p.json", .xdg_config_home = "/x", .home = "/h"};

    assert_int_equal(profile_path(&env, path, sizeof path, why, sizeof why), 0);
    assert_string_equal(path, "/tmp/p.json");
    env.config = "";
    assert_int_equal(profile_path(&env, path, sizeof path, why, sizeof why), 0);
    assert_string_equal(path, "/x/raftq/profiles.json");
    /* A relative XDG_CONFIG_HOME is to be ignored. */
    env.xdg_config_home = "rel";
    assert_int_equal(profile_path(&env, path, sizeof path, why, sizeof why), 0);
    assert_string_equal(path, "/h/.config/raftq/profiles.json");
    env.xdg_config_home = NULL;
    assert_int_equal(profile_path(&env, path, sizeof path, why, sizeof why), 0);
    assert_string_equal(path, "/h/.config/raftq/profiles.json");
    env.home = NULL;
    assert_int_equal(profile_path(&env, path, sizeof path, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "HOME"));
    env.config = "/a/long/path";
    assert_int_equal(profile_path(&env, path, 5, why, sizeof why), RQ_INVALID);
}

static void test_profile_parse_and_dump(void **state)
{
    (void)state;
    struct profiles *ps = parse_text(two);

    /* Sorted by name, whatever the file's order. */
    assert_int_equal(ps->n, 2);
    assert_string_equal(ps->v[0].name, "dev");
    assert_string_equal(ps->v[1].name, "prod");
    assert_string_equal(ps->current, "prod");
    assert_string_equal(ps->v[0].managers, "http://127.0.0.1:9500");
    assert_null(ps->v[0].token);
    assert_null(ps->v[0].cacert);
    const struct profile *p = profile_find(ps, "prod");
    assert_non_null(p);
    assert_string_equal(p->token, "0123456789abcdef0123");
    assert_string_equal(p->cacert, "/etc/raftq/ca.pem");
    assert_null(profile_find(ps, "nope"));

    /* Written back, it reads the same, and writes the same again. */
    char *text = profile_dump(ps);
    assert_non_null(text);
    assert_int_equal(text[strlen(text) - 1], '\n');
    assert_non_null(strstr(text, "\"version\": 1"));
    struct profiles *again = parse_text(text);
    char *text2 = profile_dump(again);
    assert_string_equal(text, text2);
    assert_int_equal(again->n, 2);
    assert_string_equal(again->current, "prod");
    assert_string_equal(profile_find(again, "prod")->cacert,
                        "/etc/raftq/ca.pem");
    free(text2);
    free(text);
    profile_free(again);
    profile_free(ps);

    /* An empty file, or one of blanks, holds no profile; so does {}. */
    static const char *const empty[] = {"", " \n\t\r\n", "{}",
                                        "{\"profiles\": {}}"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        ps = parse_text(empty[i]);
        assert_int_equal(ps->n, 0);
        assert_string_equal(ps->current, "");
        profile_free(ps);
    }
    profile_free(NULL);
}

/* Each text is refused as malformed, with a reason naming the fault. */
static void test_profile_parse_refuses_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *says;
    } cases[] = {
        {"{", "not JSON"},
        {"{\"profiles\": {}} x", "not JSON"},
        {"[]", "not a JSON object"},
        {"{\"version\": 2}", "version must be 1"},
        {"{\"version\": \"1\"}", "version must be 1"},
        {"{\"colour\": 1}", "unknown member 'colour'"},
        {"{\"profiles\": []}", "profiles must be an object"},
        {"{\"profiles\": {\"a b\": {}}}", "'a b'"},
        {"{\"profiles\": {\"dev\": 7}}", "profile 'dev' is not an object"},
        {"{\"profiles\": {\"dev\": {\"manager\": \"x\"}}}",
         "unknown member 'manager'"},
        {"{\"profiles\": {\"dev\": {\"managers\": 9500}}}",
         "managers must be a non-empty string"},
        {"{\"profiles\": {\"dev\": {\"token\": \"\"}}}",
         "token must be a non-empty string"},
        {"{\"profiles\": {\"dev\": {\"token\": \"a\\u0000b\"}}}",
         "a string holds \\u0000"},
        {"{\"profiles\": {\"dev\": {\"token\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
         "]"
         "}}}",
         "nested deeper than 32 levels"},
        {"{\"profiles\": {\"dev\": {\"cacert\": \"ca.pem\"}}}",
         "cacert must be an absolute path"},
        {"{\"current\": \"prod\", \"profiles\": {\"dev\": {}}}",
         "current must name one of the profiles"},
        {"{\"current\": 1}", "current must name"},
        {"{\"profiles\": {\"dev\": {}, \"dev\": {}}}", "duplicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct profiles *ps = (struct profiles *)1;
        char why[256] = "";
        int rv = profile_parse(cases[i].text, strlen(cases[i].text), &ps, why,
                               sizeof why);
        if (rv != RQ_MALFORMED || ps != NULL ||
            strstr(why, cases[i].says) == NULL) {
            fail_msg("'%s': got %d '%s', want '%s'", cases[i].text, rv, why,
                     cases[i].says);
        }
    }
}

static void test_profile_put_use_delete(void **state)
{
    (void)state;
    struct profiles *ps = profile_new();
    struct profile p = {.name = "b", .managers = "m:1", .token = "t"};

    assert_int_equal(profile_put(ps, &p, false), 0);
    assert_int_equal(profile_put(ps, &p, false), RQ_EXISTS);
    strcpy(p.name, "a");
    assert_int_equal(profile_put(ps, &p, false), 0);
    strcpy(p.name, "c");
    assert_int_equal(profile_put(ps, &p, false), 0);
    assert_int_equal(ps->n, 3);
    assert_string_equal(ps->v[0].name, "a");
    assert_string_equal(ps->v[2].name, "c");
    strcpy(p.name, "no/slash");
    assert_int_equal(profile_put(ps, &p, false), RQ_INVALID);

    /* --force replaces the profile whole: what is not given is gone. */
    struct profile b2 = {.name = "b", .cacert = "/ca.pem"};
    assert_int_equal(profile_put(ps, &b2, true), 0);
    assert_int_equal(ps->n, 3);
    const struct profile *b = profile_find(ps, "b");
    assert_null(b->managers);
    assert_null(b->token);
    assert_string_equal(b->cacert, "/ca.pem");

    assert_int_equal(profile_use(ps, "nope"), RQ_NOTFOUND);
    assert_string_equal(ps->current, "");
    assert_int_equal(profile_use(ps, "b"), 0);
    assert_string_equal(ps->current, "b");
    assert_int_equal(profile_delete(ps, "a"), 0);
    assert_string_equal(ps->current, "b");
    assert_int_equal(profile_delete(ps, "b"), 0);
    assert_string_equal(ps->current, "");
    assert_int_equal(profile_delete(ps, "b"), RQ_NOTFOUND);
    assert_int_equal(ps->n, 1);
    assert_string_equal(ps->v[0].name, "c");
    profile_free(ps);
}

static void test_profile_choose(void **state)
{
    (void)state;
    struct profiles *ps = parse_text(two);
    const struct profile *p;
    char why[256];

    /* Named (--profile, RAFTQ_PROFILE) wins over the current one. */
    assert_int_equal(profile_choose(ps, "dev", &p, why, sizeof why), 0);
    assert_string_equal(p->name, "dev");
    assert_int_equal(profile_choose(ps, NULL, &p, why, sizeof why), 0);
    assert_string_equal(p->name, "prod");
    assert_int_equal(profile_choose(ps, "nope", &p, why, sizeof why),
                     RQ_NOTFOUND);
    assert_null(p);
    assert_non_null(strstr(why, "'nope'"));
    /* None current, none named: none. */
    ps->current[0] = '\0';
    assert_int_equal(profile_choose(ps, NULL, &p, why, sizeof why), 0);
    assert_null(p);
    profile_free(ps);
}

/* Each setting comes from its option, else its environment variable, else
 * the profile, else the default. */
static void test_profile_precedence(void **state)
{
    (void)state;
    struct profile prof = {.name = "p",
                           .managers = "prof:1",
                           .token = "proftok",
                           .cacert = "/prof/ca.pem"};
    struct cmdline cl;
    char why[256];

    /* The profile over the defaults. */
    assert_int_equal(parse("topic list", NULL, &cl, why, sizeof why), 0);
    assert_true(cl.managers_default);
    assert_non_null(strstr(cl.managers, "127.0.0.1:9500"));
    profile_apply(&cl, &prof);
    assert_string_equal(cl.managers, "prof:1");
    assert_false(cl.managers_default);
    assert_string_equal(cl.token, "proftok");
    assert_string_equal(cl.cacert, "/prof/ca.pem");

    /* The environment over the profile, each variable on its own. */
    struct cmdline_env env = {.managers = "env:1"};
    assert_int_equal(parse("topic list", &env, &cl, why, sizeof why), 0);
    assert_false(cl.managers_default);
    profile_apply(&cl, &prof);
    assert_string_equal(cl.managers, "env:1");
    assert_string_equal(cl.token, "proftok");
    assert_string_equal(cl.cacert, "/prof/ca.pem");
    struct cmdline_env env2 = {.token = "admintok", .cacert = "/env/ca.pem"};
    assert_int_equal(parse("topic list", &env2, &cl, why, sizeof why), 0);
    profile_apply(&cl, &prof);
    assert_string_equal(cl.managers, "prof:1");
    assert_string_equal(cl.token, "admintok");
    assert_string_equal(cl.cacert, "/env/ca.pem");
    struct cmdline_env env3 = {.client_token = "usertok"};
    assert_int_equal(parse("topic list", &env3, &cl, why, sizeof why), 0);
    profile_apply(&cl, &prof);
    assert_string_equal(cl.token, "usertok");

    /* The options over everything. */
    struct cmdline_env all = {.managers = "env:1",
                              .token = "admintok",
                              .client_token = "usertok",
                              .cacert = "/env/ca.pem"};
    assert_int_equal(parse("topic list --managers flag:1 --token flagtok "
                           "--cacert /flag/ca.pem",
                           &all, &cl, why, sizeof why),
                     0);
    profile_apply(&cl, &prof);
    assert_string_equal(cl.managers, "flag:1");
    assert_string_equal(cl.token, "flagtok");
    assert_string_equal(cl.cacert, "/flag/ca.pem");

    /* A profile that sets only some leaves the others to the defaults, and
     * no profile changes nothing. */
    struct profile some = {.name = "s", .token = "t"};
    assert_int_equal(parse("topic list", NULL, &cl, why, sizeof why), 0);
    profile_apply(&cl, &some);
    assert_true(cl.managers_default);
    assert_non_null(strstr(cl.managers, "127.0.0.1:9500"));
    assert_string_equal(cl.token, "t");
    assert_null(cl.cacert);
    profile_apply(&cl, NULL);
    assert_string_equal(cl.token, "t");
}

static void test_profile_command_line(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];
    struct cmdline_env env = {.managers = "env:1",
                              .token = "envtok",
                              .cacert = "/env/ca.pem",
                              .profile = "fromenv"};

    assert_int_equal(parse("profile create dev --managers m:1 --token t "
                           "--cacert ca.pem --force",
                           &env, &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_PROFILE_CREATE);
    assert_string_equal(cl.profile_name, "dev");
    assert_string_equal(cl.managers, "m:1");
    assert_string_equal(cl.token, "t");
    assert_string_equal(cl.cacert, "ca.pem");
    assert_true(cl.force);
    /* A profile keeps what its line says, never the environment. */
    assert_int_equal(
        parse("profile create dev --token t", &env, &cl, why, sizeof why), 0);
    assert_null(cl.managers);
    assert_null(cl.cacert);
    assert_null(cl.profile);

    assert_int_equal(parse("profile use dev", &env, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_PROFILE_USE);
    assert_string_equal(cl.profile_name, "dev");
    assert_int_equal(parse("profile delete dev", NULL, &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_PROFILE_DELETE);
    assert_int_equal(parse("profile list --names", NULL, &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_PROFILE_LIST);
    assert_true(cl.names);
    assert_int_equal(parse("profile list --json", NULL, &cl, why, sizeof why),
                     0);
    assert_true(cl.json);

    /* profile show: NAME, else --profile, else RAFTQ_PROFILE. */
    assert_int_equal(parse("profile show dev", &env, &cl, why, sizeof why), 0);
    assert_string_equal(cl.profile_name, "dev");
    assert_int_equal(parse("profile show", &env, &cl, why, sizeof why), 0);
    assert_null(cl.profile_name);
    assert_string_equal(cl.profile, "fromenv");
    assert_int_equal(
        parse("profile show --profile x", &env, &cl, why, sizeof why), 0);
    assert_string_equal(cl.profile, "x");

    /* --profile anywhere on a client's line; RAFTQ_PROFILE below it. */
    assert_int_equal(
        parse("--profile prod topic list", &env, &cl, why, sizeof why), 0);
    assert_string_equal(cl.profile, "prod");
    assert_int_equal(parse("topic list", &env, &cl, why, sizeof why), 0);
    assert_string_equal(cl.profile, "fromenv");
    struct cmdline_env unset = {.profile = ""};
    assert_int_equal(parse("topic list", &unset, &cl, why, sizeof why), 0);
    assert_null(cl.profile);
    /* raftq dev takes no profile. */
    assert_int_equal(parse("dev", &env, &cl, why, sizeof why), 0);
    assert_null(cl.profile);

    static const struct {
        const char *line;
        const char *says;
    } bad[] = {
        {"profile create", "one profile name"},
        {"profile create a b --token t", "one profile name"},
        {"profile create a/b --token t", "[A-Za-z0-9._-]"},
        {"profile create dev", "needs --managers, --token or --cacert"},
        {"profile use", "one profile name"},
        {"profile delete", "one profile name"},
        {"profile list x", "takes no arguments"},
        {"profile list --names --json", "exclude each other"},
        {"profile use dev --force", "does not apply"},
        {"profile use dev --profile x", "does not apply"},
        {"profile show a b", "one profile name"},
        {"topic list --profile a/b", "[A-Za-z0-9._-]"},
        {"topic list --names", "does not apply"},
        {"dev --profile x", "does not apply"},
        {"profile frob", "unknown profile command 'frob'"},
        {"profile", "needs a command"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        int rv = parse(bad[i].line, NULL, &cl, why, sizeof why);
        if (rv != RQ_INVALID || strstr(why, bad[i].says) == NULL) {
            fail_msg("'%s': got %d '%s', want '%s'", bad[i].line, rv, why,
                     bad[i].says);
        }
    }
    struct cmdline_env badenv = {.profile = "a b"};
    assert_int_equal(parse("topic list", &badenv, &cl, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "RAFTQ_PROFILE"));
    /* ... but only where a profile is used. */
    assert_int_equal(parse("profile list", &badenv, &cl, why, sizeof why), 0);
}

static void test_profile_help(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "profile --help",      "profile create --help", "profile use --help",
        "profile list --help", "profile show --help",   "profile delete --help",
        "help profile create",
    };
    struct cmdline cl;
    char why[256];
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        assert_int_equal(parse(lines[i], NULL, &cl, why, sizeof why), 0);
        assert_true(cl.help);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        cmdline_usage(cl.cmd, f);
        fclose(f);
        char want[64];
        snprintf(want, sizeof want, "usage: raftq %s", cmdline_name(cl.cmd));
        if (strncmp(text, want, strlen(want)) != 0) {
            fail_msg("help of '%s' starts '%.40s'", lines[i], text);
        }
        /* Commands that talk to no cluster do not list the global
         * options. */
        assert_null(strstr(text, "Global options"));
        free(text);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cmdline_usage(CMD_NONE, f);
    fclose(f);
    assert_non_null(strstr(text, "--profile NAME"));
    assert_non_null(strstr(text, "profile create NAME"));
    free(text);
}

static void test_profile_token_mask(void **state)
{
    (void)state;
    char out[64];
    profile_token_mask("0123456789abcdef0123", out, sizeof out);
    assert_string_equal(out, "0123... (20 characters)");
    profile_token_mask("short", out, sizeof out);
    assert_string_equal(out, "(5 characters)");
    assert_null(strstr(out, "short"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_name_check),
        cmocka_unit_test(test_profile_path_order),
        cmocka_unit_test(test_profile_parse_and_dump),
        cmocka_unit_test(test_profile_parse_refuses_malformed),
        cmocka_unit_test(test_profile_put_use_delete),
        cmocka_unit_test(test_profile_choose),
        cmocka_unit_test(test_profile_precedence),
        cmocka_unit_test(test_profile_command_line),
        cmocka_unit_test(test_profile_help),
        cmocka_unit_test(test_profile_token_mask),
    };
    return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
