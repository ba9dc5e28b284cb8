/*
 * Text tables (see table.h). Cells are copied into one allocation per
 * row; widths are computed when the table is written.
 */
#include "table.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"

struct row {
    char *cells[TABLE_MAX_COLS]; /* NULL: "-". */
};

struct table {
    size_t ncols;
    char *headers[TABLE_MAX_COLS];
    bool right[TABLE_MAX_COLS];
    struct row *rows;
    size_t n, cap;
};

struct table *table_new(size_t ncols, const char *const *headers)
{
    if (ncols == 0 || ncols > TABLE_MAX_COLS) {
        return NULL;
    }
    struct table *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        t->headers[i] = strdup(headers[i] != NULL ? headers[i] : "");
        if (t->headers[i] == NULL) {
            table_free(t); /* UNTESTED: ENOMEM only. */
            return NULL;
        }
    }
    return t;
}

void table_free(struct table *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        free(t->headers[i]);
    }
    for (size_t r = 0; r < t->n; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            free(t->rows[r].cells[i]);
        }
    }
    free(t->rows);
    free(t);
}

void table_align_right(struct table *t, size_t col)
{
    if (col < t->ncols) {
        t->right[col] = true;
    }
}

size_t table_rows(const struct table *t)
{
    return t->n;
}

int table_add(struct table *t, const char *const *cells)
{
    if (t->n == t->cap) {
        size_t cap = t->cap == 0 ? 8 : t->cap * 2;
        struct row *rows = realloc(t->rows, cap * sizeof *rows);
        if (rows == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        t->rows = rows;
        t->cap = cap;
    }
    struct row *r = &t->rows[t->n];
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < t->ncols; i++) {
        if (cells[i] == NULL) {
            continue;
        }
        r->cells[i] = strdup(cells[i]);
        if (r->cells[i] == NULL) {
            for (size_t k = 0; k < i; k++) { /* UNTESTED: ENOMEM only. */
                free(r->cells[k]);
            }
            return RQ_NOMEM;
        }
    }
    t->n++;
    return 0;
}

int table_addf(struct table *t, const char *fmt, ...)
{
    va_list ap;
    char *line = NULL;
    const char *cells[TABLE_MAX_COLS] = {0};

    va_start(ap, fmt);
    int len = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (len < 0) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    /* Split on tabs; missing trailing cells are "-". */
    char *p = line;
    for (size_t i = 0; i < t->ncols && p != NULL; i++) {
        cells[i] = p;
        p = strchr(p, '\t');
        if (p != NULL) {
            *p++ = '\0';
        }
    }
    int rv = table_add(t, cells);
    free(line);
    return rv;
}

size_t table_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if ((*c & 0xC0) != 0x80) { /* Not a continuation byte. */
            n++;
        }
    }
    return n;
}

static void pad(FILE *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fputc(' ', f);
    }
}

static void write_row(const struct table *t, char *const *cells,
                      const size_t *width, FILE *f)
{
    /* The last column is not padded on the right: no trailing blanks. */
    size_t pending = 0;
    for (size_t i = 0; i < t->ncols; i++) {
        const char *c = cells[i] != NULL ? cells[i] : "-";
        size_t w = table_width(c);
        if (i > 0) {
            pending += 2;
        }
        if (t->right[i]) {
            pad(f, pending + width[i] - w);
            pending = 0;
            fputs(c, f);
        } else if (w == 0) {
            pending += width[i]; /* Blanks only before a later cell. */
        } else {
            pad(f, pending);
            fputs(c, f);
            pending = width[i] - w;
        }
    }
    fputc('\n', f);
}

void table_write(const struct table *t, FILE *f)
{
    size_t width[TABLE_MAX_COLS];
    for (size_t i = 0; i < t->ncols; i++) {
        width[i] = table_width(t->headers[i]);
        for (size_t r = 0; r < t->n; r++) {
            const char *c = t->rows[r].cells[i];
            size_t w = table_width(c != NULL ? c : "-");
            if (w > width[i]) {
                width[i] = w;
            }
        }
    }
    write_row(t, t->headers, width, f);
    for (size_t r = 0; r < t->n; r++) {
        write_row(t, t->rows[r].cells, width, f);
    }
}
