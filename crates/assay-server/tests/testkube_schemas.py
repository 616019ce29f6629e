"""Validate a live Assay server's REST answers against Testkube's published JSON schemas.

Usage: testkube_schemas.py SCHEMAS_JSON BASE_URL TOKEN < checks.json

checks.json is a list of {"schema": NAME, "method": "GET"|"POST", "path": PATH, "differs": [RE]}:
each answer is fetched from the server and validated against `components.schemas.NAME` of
SCHEMAS_JSON (extracted from kubeshop/testkube's api/v1/testkube.yaml, see its `$comment`);
`NAME[]` validates each item of an array. A violation whose JSON path (`a/0/b`) fully matches
one of `differs` is a documented difference: printed as `differs PATH` and not a failure. The
`differs` entry `boxed` stands for every value Testkube's REST model boxes (a `Boxed*` schema,
`{"value": ...}`) that the answer gives unboxed, as the YAML document has it.
Prints one line per answer and every violation with its JSON path; exits 1 when any answer does
not conform.
Driven by crates/assay-server/tests/testkube_schemas.rs.
"""

import json
import re
import sys
import urllib.request

import jsonschema


def fetch(base, token, method, path):
    data = b"{}" if method == "POST" else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def main():
    schemas_path, base, token = sys.argv[1:4]
    with open(schemas_path) as f:
        document = json.load(f)
    checks = json.load(sys.stdin)
    boxed = [
        v
        for k, v in document["components"]["schemas"].items()
        if k.startswith("Boxed") or k.startswith("TemplatableBoxed")
    ]
    failures = 0
    for check in checks:
        name, method, path = check["schema"], check["method"], check["path"]
        answer = fetch(base, token, method, path)
        allowed = check.get("differs", [])
        differs = [re.compile(d) for d in allowed if d != "boxed"]
        ref = {"$ref": "#/components/schemas/" + name.removesuffix("[]")}
        if name.endswith("[]"):
            ref = {"type": "array", "items": ref}
        # The whole document is the root, so `#/components/schemas/...` references resolve.
        schema = dict(document, **{"allOf": [ref]})
        validator = jsonschema.Draft7Validator(
            schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
        errors = sorted(validator.iter_errors(answer), key=lambda e: list(e.absolute_path))
        real = []
        for e in errors:
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            if any(d.fullmatch(where) for d in differs):
                print(f"differs {where}: {e.message[:200]}")
            elif "boxed" in allowed and e.schema in boxed and not isinstance(e.instance, dict):
                print(f"differs (boxed) {where}: {e.message[:200]}")
            else:
                real.append(f"  {where}: {e.message[:300]}")
        if real:
            failures += 1
            print(f"FAIL {name} {method} {path}")
            print("\n".join(real))
        else:
            print(f"ok {name} {method} {path}")
    if failures:
        print(f"{failures} of {len(checks)} answers do not conform")
        sys.exit(1)
    print(f"all {len(checks)} answers conform")


if __name__ == "__main__":
    main()
