"""Conformance of the API to its OpenAPI document (GET /openapi.json).

Fetches the document from every manager of a live cluster (3 managers, 4
brokers) and walks its operations in document order, sending every example
an operation carries (x-examples: path and query parameters, a JSON body,
the status it must answer) and validating each answer against the
document: the status must be the example's and documented for the
operation, the Content-Type the documented one, and a JSON body must match
the documented schema (jsonschema, draft 2020-12, the dialect of OpenAPI
3.1). Identifiers the cluster assigns are written {producer_id},
{member_id}, ... in the examples and replaced by the value of the same
field in the latest answer that carried one. Every schema in the document
must itself be valid JSON Schema.

That the document names exactly the routes the manager serves is checked
at build level by tests/unit/test_openapi.c (against manager/routes.h);
here, every documented operation must be answered by its route (a 404 or
405 from the router, not the handler, fails). Needs no root, and
python3-jsonschema (installed by make deps). Run:
python3 tests/integration/test_openapi.py [--build DIR] [--ports LO-HI].
"""

import copy
import http.client
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import check, run_suite  # noqa: E402
from test_manager import ERROR_CODES, Cluster, call  # noqa: E402

try:
    import jsonschema
except ImportError:  # A failure below, not a skip: make deps installs it.
    jsonschema = None

SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "manager", "openapi.json")
METHODS = ("get", "put", "post", "delete", "patch")
PLACEHOLDER = re.compile(r"^\{([a-z_]+)\}$")
# Fields of an answer whose values later examples may name, and the
# placeholder each fills; a token's id is "id" in its answer.
LEARNED = {"producer_id": "producer_id", "consumer_id": "consumer_id",
           "member_id": "member_id", "generation": "generation"}


def resolve(node, doc, depth=0):
    """@node with every local $ref replaced by what it points at (the
    document has no recursive schemas; depth guards against one)."""
    check(depth < 32, "a $ref chain deeper than 32: recursive schema?")
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            check(ref.startswith("#/"), "a $ref outside the document: %r" % ref)
            target = doc
            for part in ref[2:].split("/"):
                check(isinstance(target, dict) and part in target, "a dangling $ref: %r" % ref)
                target = target[part]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            merged = resolve(target, doc, depth + 1)
            if rest:  # Siblings of $ref (3.1 allows them): both must hold.
                return {"allOf": [merged, resolve(rest, doc, depth + 1)]}
            return merged
        return {k: resolve(v, doc, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, doc, depth + 1) for v in node]
    return node


def operations(doc):
    """(path, method, operation) in document order."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def fill(value, learned, where):
    """@value with its placeholders replaced by learned identifiers."""
    if isinstance(value, str):
        m = PLACEHOLDER.match(value)
        if m is None:
            return value
        check(m.group(1) in learned, "%s: %s names {%s}, which no earlier answer gave"
              % (where, value, m.group(1)))
        return learned[m.group(1)]
    if isinstance(value, dict):
        return {fill(k, learned, where) if PLACEHOLDER.match(k) else k: fill(v, learned, where)
                for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, learned, where) for v in value]
    return value


def learn(body, learned, path, method):
    """Remembers the identifiers an answer gives."""
    if not isinstance(body, dict):
        return
    for field, name in LEARNED.items():
        if field in body:
            learned[name] = body[field]
    if path == "/admin/tokens" and method == "post" and "id" in body:
        learned["token_id"] = body["id"]
    if path == "/admin/brokers" and method == "get" and body.get("brokers"):
        learned["broker_id"] = max(b["id"] for b in body["brokers"])


def validate(schema, instance, where):
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(instance),
                    key=lambda e: list(e.absolute_path))
    check(not errors, "%s: the answer does not match the document: %s (at %s) in %s"
          % (where, errors[0].message if errors else "",
             "/".join(str(p) for p in errors[0].absolute_path) if errors else "",
             json.dumps(instance)[:600]))


def send(c, op_path, method, example, learned, headers):
    """Sends @example; returns (status, body text, headers, parsed JSON or None)."""
    where = "%s %s (%s)" % (method.upper(), op_path, example.get("summary", "example"))
    path = op_path
    for name, value in (example.get("path") or {}).items():
        value = fill(value, learned, where)
        path = path.replace("{%s}" % name, urllib.parse.quote(str(value), safe=""))
    check("{" not in path, "%s: path parameters left unfilled in %s" % (where, path))
    query = fill(example.get("query") or {}, learned, where)
    if query:
        path += "?" + urllib.parse.urlencode(query)
    body = fill(example.get("body"), learned, where)
    host, port = c.m_http[1].rsplit(":", 1)

    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        hdr = dict(headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdr["Content-Type"] = "application/json"
        conn.request(method.upper(), path, body=data, headers=hdr)
        r = conn.getresponse()
        text = r.read()
        rh = {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()
    parsed = None
    try:
        parsed = json.loads(text.decode("utf-8"))
    except ValueError:
        pass
    return where, r.status, text, rh, parsed


def conform(c, doc, op_path, method, op, example, learned, headers):
    where, status, text, rh, body = send(c, op_path, method, example, learned, headers)
    want = example["status"]
    check(status == want, "%s: answered %d, the example says %d: %s"
          % (where, status, want, text[:400]))
    responses = op["responses"]
    check(str(status) in responses, "%s: status %d is not documented" % (where, status))
    content = resolve(responses[str(status)], doc).get("content") or {}
    ctype = rh.get("content-type", "").split(";")[0].strip()
    check(ctype in content, "%s: Content-Type %r, documented %s" % (where, ctype, sorted(content)))
    if ctype == "application/json":
        check(body is not None, "%s: not JSON: %r" % (where, text[:200]))
        schema = resolve(content[ctype].get("schema", {}), doc)
        validate(schema, body, where)
        if status >= 400:
            check(ERROR_CODES.get(body.get("code")) in (status, 0),
                  "%s: code %r does not go with %d" % (where, body.get("code"), status))
            if "code" in example:
                check(body.get("code") == example["code"], "%s: code %r, the example says %r"
                      % (where, body.get("code"), example["code"]))
            if status == 503:
                check("retry-after" in rh, "%s: a 503 without Retry-After" % where)
        learn(body, learned, op_path, method)
    return status


def test_document_served(ctx):
    check(jsonschema is not None, "python3-jsonschema is missing (make deps installs it)")
    c = Cluster(ctx).start()
    docs = {}
    for i in sorted(c.m_http):
        st, doc, hdr = call(c.m_http[i], "GET", "/openapi.json")
        check(st == 200 and isinstance(doc, dict), "manager%d: GET /openapi.json: %d" % (i, st))
        check(hdr.get("Content-Type", "").startswith("application/json"),
              "manager%d: Content-Type %r" % (i, hdr.get("Content-Type")))
        docs[i] = doc
    check(docs[1] == docs[2] == docs[3], "the managers serve different documents")
    doc = docs[1]
    check(doc["openapi"].startswith("3.1"), "openapi %r" % doc["openapi"])
    st, health, _ = call(c.m_http[1], "GET", "/healthz")
    check(doc["info"]["version"] == health["version"],
          "info.version %r, /healthz says %r" % (doc["info"]["version"], health["version"]))
    codes = doc["components"]["schemas"]["Code"]
    check(sorted(codes["enum"]) == sorted(ERROR_CODES),
          "the Code enum differs from rq_codes: %r" % sorted(set(codes["enum"]) ^ set(ERROR_CODES)))
    # Served as written, less what the manager fills in.
    with open(SOURCE) as f:
        source = json.load(f)
    served = copy.deepcopy(doc)
    served["info"]["version"] = source["info"]["version"]
    served["components"]["schemas"]["Code"] = source["components"]["schemas"]["Code"]
    check(served == source, "GET /openapi.json differs from manager/openapi.json (stale build?)")
    # Every schema is valid JSON Schema.
    schemas = []
    for _, _, op in operations(doc):
        for p in op.get("parameters", []):
            schemas.append(resolve(p, doc).get("schema", {}))
        for media in resolve(op.get("requestBody", {}), doc).get("content", {}).values():
            schemas.append(media.get("schema", {}))
        for resp in op["responses"].values():
            for media in resolve(resp, doc).get("content", {}).values():
                schemas.append(media.get("schema", {}))
    for s in schemas:
        try:
            jsonschema.Draft202012Validator.check_schema(s)
        except jsonschema.SchemaError as e:
            check(False, "an invalid schema in the document: %s" % e.message)
    check(len(schemas) > 80, "only %d schemas" % len(schemas))


def test_examples_conform(ctx):
    check(jsonschema is not None, "python3-jsonschema is missing (make deps installs it)")
    c = Cluster(ctx).start()
    st, doc, _ = call(c.m_http[1], "GET", "/openapi.json")
    check(st == 200, "GET /openapi.json: %d" % st)
    learned = {}
    sent = 0
    seen_status = set()
    for op_path, method, op in operations(doc):
        examples = op.get("x-examples") or []
        check(examples, "%s %s: no x-examples" % (method.upper(), op_path))
        headers = {}
        if op.get("security") != []:
            headers = dict(c.admin)
        for ex in examples:
            seen_status.add(conform(c, doc, op_path, method, op, ex, learned, headers))
            sent += 1
        if op_path.startswith("/admin/") and op.get("security") != []:
            # Without the token, an admin route is refused as documented.
            ex = dict(examples[0], status=401, summary="no admin token")
            ex.pop("code", None)
            if "401" in op["responses"]:
                conform(c, doc, op_path, method, op, ex, learned, {})
    print("  sent %d examples; statuses answered: %s" % (sent, sorted(seen_status)))
    check(sent >= 60, "only %d examples" % sent)
    check({200, 400, 404, 409} <= seen_status, "the examples answered only %s" % sorted(seen_status))


def test_bad_bodies_documented(ctx):
    """A body that is not a JSON object, sent to every operation that takes
    one, answers 400 with a documented Failure."""
    check(jsonschema is not None, "python3-jsonschema is missing (make deps installs it)")
    c = Cluster(ctx).start()
    st, doc, _ = call(c.m_http[1], "GET", "/openapi.json")
    check(st == 200, "GET /openapi.json: %d" % st)
    learned = {"producer_id": 1, "consumer_id": 1, "member_id": "m", "generation": 1,
               "token_id": 1, "broker_id": 1}
    tried = 0
    for op_path, method, op in operations(doc):
        if "requestBody" not in op or not op["requestBody"].get("required"):
            continue
        ex = op["x-examples"][0]
        bad = {"summary": "a body that is not an object", "path": ex.get("path"),
               "status": 400}
        where, status, text, rh, body = send(c, op_path, method, dict(bad, body=[1, 2]),
                                             learned, dict(c.admin))
        check(status == 400, "%s: a list as body answered %d: %s" % (where, status, text[:300]))
        check("400" in op["responses"], "%s: 400 not documented" % where)
        validate(resolve(doc["components"]["schemas"]["Failure"], doc), body, where)
        tried += 1
    check(tried >= 10, "only %d operations take a body" % tried)


if __name__ == "__main__":
    run_suite("openapi", [test_document_served, test_examples_conform, test_bad_bodies_documented],
              binary="manager", ports=(20000, 20499))
