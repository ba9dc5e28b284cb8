/*
 * Unit tests of the completion scripts (cli/completion.c): every command,
 * subcommand and option of the command line's tables is in both scripts,
 * each command offers exactly the options that apply to it, and the kinds
 * of values name options and commands that exist. What the scripts do in
 * a shell is tested by tests/integration/test_cli_profiles.py.
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
#include "cli/completion.h"
#include "rq_err.h"

static const char *const shells[] = {"bash", "zsh"};

static char *script(const char *shell)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(completion_write(shell, f), 0);
    fclose(f);
    return text;
}

/*
 * The words of the case arm @key) of shell function @func in @text (what
 * it sets _raftq_r to), in @out (@n bytes), blank-padded on both sides so
 * that a word can be looked up as " word ". False when there is no such
 * arm.
 */
static bool arm(const char *text, const char *func, const char *key, char *out,
                size_t n)
{
    char head[64], pat[128];
    snprintf(head, sizeof head, "\n%s() {\n", func);
    const char *body = strstr(text, head);
    if (body == NULL) {
        return false;
    }
    const char *end = strstr(body + 1, "\n}\n");
    snprintf(pat, sizeof pat, "\n        %s) _raftq_r=", key);
    const char *at = strstr(body, pat);
    if (at == NULL || at > end) {
        return false;
    }
    at += strlen(pat);
    bool quoted = *at == '\'';
    at += quoted;
    size_t len = strcspn(at, quoted ? "'\n" : " ;\n");
    snprintf(out, n, " %.*s ", (int)len, at);
    return true;
}

/* The case label of a command: 'topic create', or produce. */
static void key_of(const struct cmdline_command *c, char *out, size_t n)
{
    if (c->sub != NULL) {
        snprintf(out, n, "'%s %s'", c->group, c->sub);
    } else {
        snprintf(out, n, "%s", c->group);
    }
}

static bool has_word(const char *list, const char *word)
{
    char w[128];
    snprintf(w, sizeof w, " %s ", word);
    return strstr(list, w) != NULL;
}

static void test_completion_every_command_and_subcommand(void **state)
{
    (void)state;
    struct cmdline_command c;
    char list[4096], words[4096];

    for (size_t s = 0; s < sizeof shells / sizeof shells[0]; s++) {
        char *text = script(shells[s]);
        const char *w = strstr(text, "\n_raftq_words='");
        assert_non_null(w);
        snprintf(words, sizeof words, " %.*s ", (int)strcspn(w + 15, "'"),
                 w + 15);
        size_t n = 0;
        for (size_t i = 0; cmdline_command_at(i, &c); i++, n++) {
            if (!has_word(words, c.group)) {
                fail_msg("%s: '%s' not among the first words", shells[s],
                         c.group);
            }
            if (c.sub != NULL) {
                if (!arm(text, "_raftq_subs", c.group, list, sizeof list) ||
                    !has_word(list, c.sub)) {
                    fail_msg("%s: '%s %s' not among the subcommands", shells[s],
                             c.group, c.sub);
                }
            }
        }
        assert_true(n >= 30);
        assert_true(has_word(words, "help"));
        assert_true(has_word(words, "profile"));
        assert_true(has_word(words, "completion"));
        free(text);
    }
}

static void test_completion_options_of_each_command(void **state)
{
    (void)state;
    struct cmdline_command c;
    struct cmdline_option o;
    char key[128], list[4096], valued[4096], name[128];

    for (size_t s = 0; s < sizeof shells / sizeof shells[0]; s++) {
        char *text = script(shells[s]);
        const char *v = strstr(text, "\n_raftq_valued='");
        assert_non_null(v);
        snprintf(valued, sizeof valued, " %.*s ", (int)strcspn(v + 16, "'"),
                 v + 16);
        for (size_t i = 0; cmdline_command_at(i, &c); i++) {
            key_of(&c, key, sizeof key);
            if (!arm(text, "_raftq_opts", key, list, sizeof list)) {
                fail_msg("%s: no options for %s", shells[s], key);
            }
            /* Exactly the options that apply: no more, no fewer. */
            for (size_t j = 0; cmdline_option_at(j, &o); j++) {
                snprintf(name, sizeof name, "--%s", o.name);
                if (has_word(list, name) !=
                    cmdline_option_applies(o.name, c.cmd)) {
                    fail_msg("%s: %s offers%s %s", shells[s], key,
                             has_word(list, name) ? "" : " not", name);
                }
            }
        }
        /* Before any command: the global options, --help, --version. */
        assert_true(arm(text, "_raftq_opts", "''", list, sizeof list));
        for (size_t j = 0; cmdline_option_at(j, &o); j++) {
            snprintf(name, sizeof name, "--%s", o.name);
            bool want = o.global || cmdline_option_applies(o.name, CMD_NONE);
            if (has_word(list, name) != want) {
                fail_msg("%s: the first options%s include %s", shells[s],
                         want ? " do not" : "", name);
            }
            if (has_word(valued, name) != o.has_value) {
                fail_msg("%s: %s %s a value in the script", shells[s], name,
                         o.has_value ? "does not take" : "takes");
            }
        }
        assert_true(has_word(list, "--profile"));
        assert_true(has_word(list, "--managers"));
        assert_false(has_word(list, "--partitions"));
        free(text);
    }
}

/* The kinds of values name options that take one, and commands that
 * exist; profile names come from raftq profile list --names. */
static void test_completion_kinds_of_values(void **state)
{
    (void)state;
    struct cmdline_option o;
    char list[4096];

    for (size_t s = 0; s < sizeof shells / sizeof shells[0]; s++) {
        char *text = script(shells[s]);
        assert_true(arm(text, "_raftq_value", "--profile", list, sizeof list));
        assert_string_equal(list, " profiles ");
        assert_true(arm(text, "_raftq_value", "--cacert", list, sizeof list));
        assert_string_equal(list, " files ");
        for (const char *at = strstr(text, "\n_raftq_value() {");
             (at = strstr(at + 1, "\n        --")) != NULL;) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(at + 11, ")"),
                     at + 11);
            bool found = false;
            for (size_t j = 0; cmdline_option_at(j, &o); j++) {
                found = found || (strcmp(o.name, name) == 0 && o.has_value);
            }
            if (!found) {
                fail_msg("%s: a kind of value for --%s, which takes none",
                         shells[s], name);
            }
        }
        static const char *const profile_args[] = {
            "'profile use'", "'profile show'", "'profile delete'"};
        for (size_t i = 0; i < 3; i++) {
            assert_true(
                arm(text, "_raftq_arg", profile_args[i], list, sizeof list));
            assert_string_equal(list, " profiles ");
        }
        assert_true(arm(text, "_raftq_arg", "completion", list, sizeof list));
        assert_string_equal(list, " words:bash zsh ");
        assert_non_null(strstr(text, "profile list --names"));
        free(text);
    }
}

static void test_completion_shells(void **state)
{
    (void)state;
    assert_true(completion_shell_known("bash"));
    assert_true(completion_shell_known("zsh"));
    assert_false(completion_shell_known("fish"));
    assert_false(completion_shell_known(""));
    assert_int_equal(completion_write("fish", stderr), RQ_INVALID);

    char *text = script("bash");
    assert_non_null(strstr(text, "complete -F _raftq raftq"));
    free(text);
    text = script("zsh");
    assert_memory_equal(text, "#compdef raftq\n", 15);
    assert_non_null(strstr(text, "compdef _raftq raftq"));
    free(text);
}

static void test_completion_command_line(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];

    assert_int_equal(parse("completion zsh", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_COMPLETION);
    assert_string_equal(cl.shell, "zsh");
    assert_int_equal(parse("completion bash", NULL, &cl, why, sizeof why), 0);
    assert_string_equal(cl.shell, "bash");
    static const char *const bad[] = {"completion", "completion fish",
                                      "completion bash zsh"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (parse(bad[i], NULL, &cl, why, sizeof why) != RQ_INVALID ||
            strstr(why, "bash or zsh") == NULL) {
            fail_msg("'%s': '%s'", bad[i], why);
        }
    }
    assert_int_equal(
        parse("completion bash --json", NULL, &cl, why, sizeof why),
        RQ_INVALID);
    assert_non_null(strstr(why, "does not apply"));

    /* Its help, without the global options it does not take. */
    assert_int_equal(parse("completion --help", NULL, &cl, why, sizeof why), 0);
    assert_true(cl.help);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cmdline_usage(cl.cmd, f);
    fclose(f);
    assert_memory_equal(text, "usage: raftq completion bash|zsh\n", 33);
    assert_null(strstr(text, "Global options"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completion_every_command_and_subcommand),
        cmocka_unit_test(test_completion_options_of_each_command),
        cmocka_unit_test(test_completion_kinds_of_values),
        cmocka_unit_test(test_completion_shells),
        cmocka_unit_test(test_completion_command_line),
    };
    return cmocka_run_group_tests_name("completion", tests, NULL, NULL);
}
