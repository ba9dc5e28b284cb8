/*
 * Unit tests of the text tables: column widths from the widest cell in
 * characters (UTF-8 counted once per character), right alignment, "-" for
 * missing cells, and no trailing blanks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/table.h"

/* The table as text; the caller frees it. */
static char *render(const struct table *t)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    table_write(t, f);
    fclose(f);
    return text;
}

static void test_table_aligns_columns(void **state)
{
    (void)state;
    static const char *const h[] = {"ID", "STATE", "PARTITIONS"};
    struct table *t = table_new(3, h);
    assert_non_null(t);
    table_align_right(t, 0);
    table_align_right(t, 2);
    assert_int_equal(table_addf(t, "%d\t%s\t%d", 1, "alive", 3), 0);
    assert_int_equal(table_addf(t, "%d\t%s\t%d", 12, "draining", 120), 0);
    assert_int_equal(table_rows(t), 2);
    char *s = render(t);
    assert_string_equal(s,
                        "ID  STATE     PARTITIONS\n"
                        " 1  alive              3\n"
                        "12  draining         120\n");
    free(s);
    table_free(t);
}

static void test_table_missing_cells_and_no_trailing_blanks(void **state)
{
    (void)state;
    static const char *const h[] = {"NAME", "LEADER", "NOTE"};
    struct table *t = table_new(3, h);
    const char *row1[] = {"orders", NULL, "a long note"};
    const char *row2[] = {"x", "2", ""};
    assert_int_equal(table_add(t, row1), 0);
    assert_int_equal(table_add(t, row2), 0);
    /* Fewer tab-separated cells than columns: the rest are "-". */
    assert_int_equal(table_addf(t, "%s", "only"), 0);
    char *s = render(t);
    assert_string_equal(s,
                        "NAME    LEADER  NOTE\n"
                        "orders  -       a long note\n"
                        "x       2\n"
                        "only    -       -\n");
    for (char *line = s; *line != '\0';) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(nl == line || nl[-1] != ' ');
        line = nl + 1;
    }
    free(s);
    table_free(t);
}

static void test_table_counts_utf8_characters(void **state)
{
    (void)state;
    assert_int_equal(table_width(""), 0);
    assert_int_equal(table_width("abc"), 3);
    assert_int_equal(table_width("caf\xc3\xa9"), 4);              /* café */
    assert_int_equal(table_width("\xe6\x97\xa5\xe6\x9c\xac"), 2); /* 日本 */

    static const char *const h[] = {"TOPIC", "N"};
    struct table *t = table_new(2, h);
    const char *r1[] = {"caf\xc3\xa9", "1"};
    const char *r2[] = {"tea", "2"};
    table_add(t, r1);
    table_add(t, r2);
    char *s = render(t);
    assert_string_equal(s,
                        "TOPIC  N\n"
                        "caf\xc3\xa9   1\n"
                        "tea    2\n");
    free(s);
    table_free(t);
}

static void test_table_rejects_bad_column_counts(void **state)
{
    (void)state;
    static const char *const h[TABLE_MAX_COLS + 1] = {0};
    assert_null(table_new(0, h));
    assert_null(table_new(TABLE_MAX_COLS + 1, h));
    struct table *t = table_new(TABLE_MAX_COLS, h);
    assert_non_null(t);
    table_free(t);
    table_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_aligns_columns),
        cmocka_unit_test(test_table_missing_cells_and_no_trailing_blanks),
        cmocka_unit_test(test_table_counts_utf8_characters),
        cmocka_unit_test(test_table_rejects_bad_column_counts),
    };
    return cmocka_run_group_tests_name("table", tests, NULL, NULL);
}
