"""Validates the Job and Secret `assay pod manifests` prints (run by tests/pod_manifests.rs)
against Kubernetes' published OpenAPI schemas for one named version (kubernetes-validate,
strict: unknown fields are errors). No API server exists where these tests run: this is the
check of the generated manifests, not a run in a cluster.

Usage: pod_manifests_check.py K8S_VERSION LIST.json...
"""

import json
import sys

try:
    import kubernetes_validate
except ImportError:
    sys.exit(
        "kubernetes-validate is not installed in this Python: run scripts/test.sh (its venv "
        "installs crates/assay-server/tests/requirements.txt) or pip install kubernetes-validate"
    )

version, paths = sys.argv[1], sys.argv[2:]
failures = []
count = 0
for path in paths:
    with open(path) as f:
        doc = json.load(f)
    for item in doc["items"]:
        count += 1
        label = f"{path}: {item.get('kind')}/{item.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            failures.append(f"{label}: refused by Kubernetes {version}'s schema: {e.message} at {list(e.path)}")
        except Exception as e:
            failures.append(f"{label}: not validated against Kubernetes {version}: {e}")

# A negative case, so the check is not "accept anything": a Job with a misspelt field.
bad = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
       "spec": {"backofLimit": 0, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
try:
    kubernetes_validate.validate(bad, version, strict=True)
    failures.append("a Job with a misspelt field was accepted: the check is not strict")
except kubernetes_validate.ValidationError:
    pass

for f in failures:
    print(f, file=sys.stderr)
if failures:
    sys.exit(1)
print(f"{count} generated documents valid against Kubernetes {version} (strict)")
