/*
 * Unit tests of the OpenAPI document (manager/openapi.[ch] and
 * manager/openapi.json): it renders, carries the release and every error
 * code, documents exactly the routes the manager serves to users and
 * operators (routes.h; /internal/ routes are node-to-node and undocumented),
 * and each operation has what the conformance test needs: an operationId, a
 * success answer, failure answers of the Failure shape and examples whose
 * codes exist.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "manager/openapi.h"
#include "manager/routes.h"
#include "rq_codes.h"
#include "rq_version.h"

static const struct rq_http_route served[] = {
    MANAGER_SERVICE_ROUTES,
    MANAGER_PARSING_ROUTES,
};
#define N_SERVED (sizeof served / sizeof served[0])

static json_t *rendered_doc(void)
{
    char why[256] = "";
    size_t len;
    const char *src = openapi_source(&len);
    char *out = openapi_render(src, len, rq_version(), why, sizeof why);
    if (out == NULL) {
        fail_msg("the document does not render: %s", why);
    }
    json_error_t err;
    json_t *doc = json_loads(out, 0, &err);
    free(out);
    assert_non_null(doc);
    return doc;
}

static void lower(const char *in, char *out, size_t n)
{
    size_t i = 0;
    for (; in[i] != '\0' && i + 1 < n; i++) {
        out[i] = (char)tolower((unsigned char)in[i]);
    }
    out[i] = '\0';
}

static bool is_method(const char *key)
{
    static const char *const methods[] = {"get",   "put",  "post",   "delete",
                                          "patch", "head", "options"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strcmp(key, methods[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void test_renders_with_version_and_codes(void **state)
{
    (void)state;
    json_t *doc = rendered_doc();
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")),
                        "3.1.0");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(doc, "info"), "version")),
                        rq_version());
    json_t *code = json_object_get(
        json_object_get(json_object_get(doc, "components"), "schemas"), "Code");
    json_t *names = json_object_get(code, "enum");
    json_t *about = json_object_get(code, "x-codes");
    assert_int_equal(json_array_size(names), rq_codes_n);
    for (size_t i = 0; i < rq_codes_n; i++) {
        assert_string_equal(json_string_value(json_array_get(names, i)),
                            rq_codes[i].name);
        json_t *one = json_object_get(about, rq_codes[i].name);
        assert_non_null(one);
        if (rq_codes[i].status != 0) {
            assert_int_equal(json_integer_value(json_object_get(one, "status")),
                             rq_codes[i].status);
        }
    }
    json_decref(doc);
}

static void test_refuses_what_is_not_a_document(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"openapi\": \"3.1.0\"",
        "[]",
        "{\"openapi\": \"3.0.3\", \"info\": {}, \"paths\": {}, "
        "\"components\": {\"schemas\": {}}}",
        "{\"openapi\": \"3.1.0\", \"paths\": {}, "
        "\"components\": {\"schemas\": {}}}",
        "{\"openapi\": \"3.1.0\", \"info\": {}, \"paths\": {}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[128] = "";
        assert_null(
            openapi_render(bad[i], strlen(bad[i]), "1", why, sizeof why));
        assert_true(why[0] != '\0');
    }
    const char *good =
        "{\"openapi\": \"3.1.1\", \"info\": {}, \"paths\": "
        "{}, \"components\": {\"schemas\": {}}}";
    char why[128];
    char *out = openapi_render(good, strlen(good), "9.8.7", why, sizeof why);
    assert_non_null(out);
    assert_non_null(strstr(out, "9.8.7"));
    free(out);
}

static int doc_setup(void **state)
{
    *state = rendered_doc();
    return 0;
}

static int doc_teardown(void **state)
{
    json_decref(*state);
    return 0;
}

/* Every route served to users and operators is documented. */
static void test_every_served_route_documented(void **state)
{
    json_t *paths = json_object_get(*state, "paths");
    for (size_t i = 0; i < N_SERVED; i++) {
        if (strncmp(served[i].pattern, "/internal/", 10) == 0) {
            continue;
        }
        char method[16];
        lower(served[i].method, method, sizeof method);
        json_t *op =
            json_object_get(json_object_get(paths, served[i].pattern), method);
        if (op == NULL) {
            fail_msg("%s %s is served but not documented", served[i].method,
                     served[i].pattern);
        }
    }
}

/* Every documented operation is served. */
static void test_every_documented_route_served(void **state)
{
    json_t *paths = json_object_get(*state, "paths");
    const char *path;
    json_t *item;
    size_t ops = 0;
    json_object_foreach(paths, path, item)
    {
        const char *key;
        json_t *op;
        json_object_foreach(item, key, op)
        {
            if (!is_method(key)) {
                continue;
            }
            ops++;
            bool found = false;
            for (size_t i = 0; i < N_SERVED && !found; i++) {
                char method[16];
                lower(served[i].method, method, sizeof method);
                found = strcmp(served[i].pattern, path) == 0 &&
                        strcmp(method, key) == 0;
            }
            if (!found) {
                fail_msg("%s %s is documented but not served", key, path);
            }
        }
    }
    assert_true(ops > 30);
}

/* The code named by @example, if any, exists and comes with its status. */
static void check_example_code(const char *where, json_t *example)
{
    json_t *status = json_object_get(example, "status");
    if (!json_is_integer(status)) {
        fail_msg("%s: an example without an integer status", where);
    }
    const char *code = json_string_value(json_object_get(example, "code"));
    if (code == NULL) {
        return;
    }
    const struct rq_code *c = rq_codes_find(code);
    if (c == NULL) {
        fail_msg("%s: example code %s is not a code", where, code);
    }
    assert_int_equal(c->status, json_integer_value(status));
}

/* What the conformance test relies on, operation by operation. */
static void check_operation(const char *where, json_t *op, json_t *ids)
{
    const char *id = json_string_value(json_object_get(op, "operationId"));
    if (id == NULL || json_object_get(ids, id) != NULL) {
        fail_msg("%s: no operationId, or one used twice", where);
    }
    json_object_set_new(ids, id, json_true());
    json_t *responses = json_object_get(op, "responses");
    const char *status;
    json_t *resp;
    bool success = false;
    json_object_foreach(responses, status, resp)
    {
        if (status[0] == '2') {
            success = true;
            continue;
        }
        const char *ref = json_string_value(json_object_get(resp, "$ref"));
        if (ref == NULL || strcmp(ref, "#/components/responses/Failure") != 0) {
            fail_msg("%s: answer %s is not the Failure response", where,
                     status);
        }
    }
    if (!success) {
        fail_msg("%s: no success answer", where);
    }
    json_t *examples = json_object_get(op, "x-examples");
    if (json_array_size(examples) == 0) {
        fail_msg("%s: no x-examples", where);
    }
    size_t i;
    json_t *example;
    json_array_foreach(examples, i, example)
    {
        check_example_code(where, example);
        char key[8];
        snprintf(key, sizeof key, "%d",
                 (int)json_integer_value(json_object_get(example, "status")));
        if (json_object_get(responses, key) == NULL) {
            fail_msg("%s: an example answers %s, which is not documented",
                     where, key);
        }
    }
    json_t *codes = json_object_get(op, "x-codes");
    json_t *code;
    json_array_foreach(codes, i, code)
    {
        if (rq_codes_find(json_string_value(code)) == NULL) {
            fail_msg("%s: x-codes names %s, which is not a code", where,
                     json_string_value(code));
        }
    }
}

static void test_operations_complete(void **state)
{
    json_t *paths = json_object_get(*state, "paths");
    json_t *ids = json_object();
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item)
    {
        const char *key;
        json_t *op;
        json_object_foreach(item, key, op)
        {
            if (is_method(key)) {
                char where[256];
                snprintf(where, sizeof where, "%s %s", key, path);
                check_operation(where, op, ids);
            }
        }
    }
    json_decref(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renders_with_version_and_codes),
        cmocka_unit_test(test_refuses_what_is_not_a_document),
        cmocka_unit_test_setup_teardown(test_every_served_route_documented,
                                        doc_setup, doc_teardown),
        cmocka_unit_test_setup_teardown(test_every_documented_route_served,
                                        doc_setup, doc_teardown),
        cmocka_unit_test_setup_teardown(test_operations_complete, doc_setup,
                                        doc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
