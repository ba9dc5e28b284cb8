/*
 * Text tables for people: a header row and rows of cells, written with
 * every column as wide as its widest cell (counted in characters, not
 * bytes, so UTF-8 names line up), two spaces between columns, numbers
 * right-aligned where asked, and no trailing blanks. A NULL cell prints
 * as "-". Pure: writes to the FILE it is given.
 */
#ifndef TABLE_H
#define TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLS 12

struct table;

/* A table with @ncols columns (at most TABLE_MAX_COLS) named by
 * @headers (copied). NULL on ENOMEM or a bad column count. */
struct table *table_new(size_t ncols, const char *const *headers);

/* No-op on NULL. */
void table_free(struct table *t);

/* Right-aligns column @col (numbers). */
void table_align_right(struct table *t, size_t col);

/* Appends a row of ncols cells (copied; NULL cells print "-").
 * 0 or RQ_NOMEM. */
int table_add(struct table *t, const char *const *cells);

/* Appends a row formatted from printf-style cells separated by '\t':
 * table_addf(t, "%u\t%s", id, state). 0 or RQ_NOMEM. */
int table_addf(struct table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

size_t table_rows(const struct table *t);

/* Writes the header and every row. */
void table_write(const struct table *t, FILE *f);

/* Characters (UTF-8 code points) in @s. */
size_t table_width(const char *s);

#endif /* TABLE_H */
