"""Checks deploy/kubernetes as rendered by `kubectl kustomize` (run by tests/deploy.rs).

No Kubernetes API server exists on the machines these tests run on, so nothing here is checked
against a real cluster. What is checked:

1. every rendered document against Kubernetes' published OpenAPI schemas for one named version
   (kubernetes-validate, strict: unknown fields are errors);
2. the CRDs' openAPIV3Schema is structural (every node typed, or keeping unknown fields);
3. every TestWorkflow and TestWorkflowTemplate document of the Testkube conformance corpus
   against the CRDs' openAPIV3Schema (jsonschema), as the API server would take it: an object
   whose schema lists properties and does not keep unknown fields refuses other ones (the API
   server would silently prune them), and metadata.name must be a DNS-1123 subdomain;
4. refused documents (negative cases), so the schemas are not "accept anything";
5. every flag the Deployments pass to `assay` exists in that subcommand's --help, and every
   ASSAY_* variable they set is one the subcommand reads.

Usage: deploy_check.py RENDERED.yaml CORPUS_DIR ASSAY_BINARY K8S_VERSION
"""

import copy
import os
import re
import subprocess
import sys

import yaml

try:
    import kubernetes_validate
except ImportError:
    sys.exit(
        "kubernetes-validate is not installed in this Python: run scripts/test.sh (its venv "
        "installs crates/assay-server/tests/requirements.txt) or pip install kubernetes-validate"
    )
import jsonschema

CRD_KINDS = {
    "TestWorkflow": "testworkflows.testworkflows.testkube.io",
    "TestWorkflowTemplate": "testworkflowtemplates.testworkflows.testkube.io",
    "TestTrigger": "testtriggers.tests.testkube.io",
}
# The two Helm templates of the corpus are Go templates, not YAML (tests/conformance.rs in
# assay-spec expects one clean error from each); they are not documents to validate.
HELM_PREFIX = "k8s/helm/"
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

failures = []


def fail(msg):
    failures.append(msg)


def check_structural(node, path):
    """The rules of a structural schema that matter here: every node says its type (or keeps
    unknown fields), no $ref, and properties/additionalProperties are not both set."""
    if not isinstance(node, dict):
        fail(f"{path}: schema node is not a mapping")
        return
    if "$ref" in node:
        fail(f"{path}: $ref is not allowed in a CRD schema")
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        fail(f"{path}: no type (a structural schema types every node)")
    if "properties" in node and "additionalProperties" in node:
        fail(f"{path}: both properties and additionalProperties")
    for key, sub in (node.get("properties") or {}).items():
        check_structural(sub, f"{path}.{key}")
    if isinstance(node.get("additionalProperties"), dict):
        check_structural(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        check_structural(node["items"], f"{path}[]")


def as_api_server(schema):
    """The schema as jsonschema should apply it to behave like the API server's pruning: a
    typed object without x-kubernetes-preserve-unknown-fields keeps only its properties."""
    schema = copy.deepcopy(schema)

    def walk(node, top):
        if not isinstance(node, dict):
            return
        if (
            node.get("type") == "object"
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node
            and not top_level_metadata(node)
        ):
            node["additionalProperties"] = False
        for sub in (node.get("properties") or {}).values():
            walk(sub, False)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], False)
        if isinstance(node.get("items"), dict):
            walk(node["items"], False)

    def top_level_metadata(node):
        # `metadata: {type: object}` is ObjectMeta: the API server checks it, not this schema.
        return node is schema["properties"].get("metadata")

    walk(schema, True)
    return schema


def errors_against(schema, doc):
    """What the API server would refuse in `doc`, given its CRD's schema."""
    out = []
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    if not isinstance(name, str) or not name:
        out.append("metadata.name: required")
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        out.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    for e in jsonschema.Draft7Validator(schema).iter_errors(doc):
        where = ".".join(str(p) for p in e.absolute_path) or "(document)"
        out.append(f"{where}: {e.message}")
    return out


def main():
    rendered_path, corpus_dir, assay, version = sys.argv[1:5]
    with open(rendered_path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]

    # 1. Kubernetes' published schemas.
    kinds = {}
    for d in docs:
        label = f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}"
        kinds[label] = d
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            fail(f"{label}: refused by Kubernetes {version}'s schema: {e.message} at {list(e.path)}")
        except Exception as e:  # an unknown kind or version is a failure too
            fail(f"{label}: not validated against Kubernetes {version}: {e}")
    print(f"{len(docs)} rendered documents valid against Kubernetes {version} (strict)")

    # 2. The CRDs.
    schemas = {}
    for kind, crd_name in CRD_KINDS.items():
        crd = kinds.get(f"CustomResourceDefinition/{crd_name}")
        if crd is None:
            fail(f"CustomResourceDefinition/{crd_name} is not rendered")
            continue
        (version_entry,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        raw = version_entry["schema"]["openAPIV3Schema"]
        check_structural(raw, f"{crd_name}.openAPIV3Schema")
        schemas[kind] = as_api_server(raw)

    # 3. The real workflows.
    counts = {"TestWorkflow": 0, "TestWorkflowTemplate": 0}
    for root, _, files in os.walk(corpus_dir):
        for fn in sorted(files):
            if not fn.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(root, fn)
            rel = os.path.relpath(path, corpus_dir)
            if rel.startswith(HELM_PREFIX):
                continue
            with open(path) as f:
                for i, d in enumerate(yaml.safe_load_all(f)):
                    if not d or d.get("kind") not in counts:
                        continue
                    counts[d["kind"]] += 1
                    for err in errors_against(schemas[d["kind"]], d):
                        fail(f"{rel} (document {i + 1}, {d['kind']}): {err}")
    total = sum(counts.values())
    print(
        f"{total} Testkube documents ({counts['TestWorkflow']} TestWorkflow, "
        f"{counts['TestWorkflowTemplate']} TestWorkflowTemplate) valid against the CRDs"
    )
    if total < 239:
        fail(f"only {total} corpus documents were checked (expected 239): is the corpus complete?")

    # 4. Documents the CRDs must refuse, and documented ones they must take.
    wf = {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": {"name": "ok"},
        "spec": {"steps": [{"name": "hello", "shell": "echo hello", "negative": False}]},
    }
    trigger = {
        "apiVersion": "tests.testkube.io/v1",
        "kind": "TestTrigger",
        "metadata": {"name": "on-image-update"},
        "spec": {
            "resource": "deployment",
            "resourceSelector": {"name": "checkout", "namespace": "shop"},
            "event": "deployment-image-update",
            "action": "run",
            "execution": "testworkflow",
            "testSelector": {"name": "smoke"},
            "concurrencyPolicy": "forbid",
        },
    }
    git_trigger = {
        "apiVersion": "tests.testkube.io/v1",
        "kind": "TestTrigger",
        "metadata": {"name": "app-push"},
        "spec": {
            "resource": "content",
            "event": "git-push",
            "contentSelector": {"git": {
                "uri": "https://git.example.com/acme/app.git",
                "branches": ["main"], "paths": ["src/**"], "pathsIgnore": ["**/*.md"],
                "tokenFrom": {"secretKeyRef": {"name": "git", "key": "token"}},
            }},
            "action": "run",
            "execution": "testworkflow",
            "testSelector": {"name": "app-tests"},
        },
    }
    accepted = [
        ("a minimal TestWorkflow", "TestWorkflow", wf),
        ("a TestTrigger", "TestTrigger", trigger),
        ("a git TestTrigger", "TestTrigger", git_trigger),
    ]
    for what, kind, doc in accepted:
        errs = errors_against(schemas[kind], doc)
        if errs:
            fail(f"{what} is refused: {errs}")

    def changed(base, edit):
        d = copy.deepcopy(base)
        edit(d)
        return d

    refused = [
        ("spec.steps as a string", "TestWorkflow", changed(wf, lambda d: d["spec"].update(steps="echo hi"))),
        ("no metadata.name", "TestWorkflow", changed(wf, lambda d: d["metadata"].pop("name"))),
        ("metadata.name not DNS-1123", "TestWorkflow", changed(wf, lambda d: d["metadata"].update(name="Bad_Name"))),
        ("a misspelt spec field", "TestWorkflow", changed(wf, lambda d: d["spec"].update(stepz=[]))),
        ("a misspelt step field", "TestWorkflow", changed(wf, lambda d: d["spec"]["steps"][0].update(shel="x"))),
        ("negative as a string", "TestWorkflow", changed(wf, lambda d: d["spec"]["steps"][0].update(negative="yes"))),
        ("use without a name", "TestWorkflow", changed(wf, lambda d: d["spec"].update(use=[{"config": {}}]))),
        ("use in a template", "TestWorkflowTemplate", changed(wf, lambda d: d.update(kind="TestWorkflowTemplate") or d["spec"].update(use=[{"name": "x"}]))),
        ("an unknown trigger resource", "TestTrigger", changed(trigger, lambda d: d["spec"].update(resource="pods"))),
        ("a trigger without event", "TestTrigger", changed(trigger, lambda d: d["spec"].pop("event"))),
        ("an unknown concurrency policy", "TestTrigger", changed(trigger, lambda d: d["spec"].update(concurrencyPolicy="queue"))),
    ]
    for what, kind, doc in refused:
        if not errors_against(schemas[kind], doc):
            fail(f"{what} is accepted by the {kind} CRD (it must be refused)")
    print(f"{len(accepted)} documented examples accepted, {len(refused)} bad documents refused")

    # 5. The flags and variables the Deployments give `assay`.
    helps = {}
    flags_checked = 0
    for label, d in kinds.items():
        if d.get("kind") != "Deployment":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            args = c.get("args") or []
            if not args:
                fail(f"{label}: container {c['name']} gives assay no subcommand")
                continue
            sub = args[0]
            if sub not in helps:
                p = subprocess.run([assay, sub, "--help"], capture_output=True, text=True)
                if p.returncode != 0:
                    fail(f"{label}: `assay {sub} --help` failed: {p.stderr.strip()}")
                    continue
                helps[sub] = p.stdout
            for a in args[1:]:
                if a.startswith("--"):
                    flag = a.split("=", 1)[0]
                    flags_checked += 1
                    if not re.search(rf"(^|[\s,]){re.escape(flag)}([\s=<]|$)", helps[sub], re.M):
                        fail(f"{label}: `assay {sub}` has no flag {flag}")
            for e in c.get("env") or []:
                if e["name"].startswith("ASSAY_") and f"env: {e['name']}=" not in helps[sub]:
                    fail(f"{label}: `assay {sub}` does not read {e['name']}")
    print(f"{flags_checked} flags the Deployments pass exist in `assay {{{','.join(sorted(helps))}}} --help`")

    if failures:
        print(f"{len(failures)} problems:", file=sys.stderr)
        for f_ in failures:
            print(f"  {f_}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
