//! Kyverno suites written for these tests, run from files: foreach with element patterns,
//! deny conditions over context variables and a values file, CEL rules, ValidatingPolicy,
//! pod-controller rules, and what is reported as not evaluated.

use assay_policy::kyverno::Status;
use assay_policy::kyverno::suite::run_suite;
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const POLICIES: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: containers
spec:
  rules:
    - name: limits
      match:
        any:
          - resources: {kinds: [Pod]}
      validate:
        foreach:
          - list: request.object.spec.containers
            pattern:
              resources:
                limits:
                  memory: "<= 1Gi"
    - name: allowed-registry
      match:
        any:
          - resources: {kinds: [Pod]}
      context:
        - name: registries
          variable:
            value: ["ghcr.io", "registry.example.com"]
      validate:
        message: "{{ element.image }} comes from a registry not allowed"
        foreach:
          - list: request.object.spec.containers
            deny:
              conditions:
                all:
                  - key: "{{ images.containers.\"{{ element.name }}\".registry }}"
                    operator: AnyNotIn
                    value: "{{ registries }}"
    - name: env-tier
      match:
        any:
          - resources: {kinds: [Pod]}
      context:
        - name: tier
          configMap: {name: tiers, namespace: default}
      validate:
        deny:
          conditions:
            any:
              - key: "{{ tier.data.level }}"
                operator: Equals
                value: forbidden
    - name: big-only
      match:
        any:
          - resources: {kinds: [Pod]}
      preconditions:
        all:
          - key: "{{ request.object.metadata.name }}"
            operator: Equals
            value: big
      validate:
        pattern:
          spec:
            containers:
              - image: "ghcr.io/*"
    - name: cel-replicas
      match:
        any:
          - resources: {kinds: [Deployment]}
      validate:
        cel:
          expressions:
            - expression: "object.spec.replicas <= 5"
              message: at most 5 replicas
    - name: mutate-something
      match:
        any:
          - resources: {kinds: [Pod]}
      mutate:
        patchStrategicMerge:
          metadata:
            labels: {x: y}
---
apiVersion: policies.kyverno.io/v1alpha1
kind: ValidatingPolicy
metadata:
  name: no-latest
spec:
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [pods]
  validations:
    - expression: "object.spec.containers.all(c, !c.image.endsWith(':latest'))"
      message: no latest
"#;

const RESOURCES: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: small}
spec:
  containers:
    - {name: a, image: "ghcr.io/x/a:1", resources: {limits: {memory: 512Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: big}
spec:
  containers:
    - {name: a, image: "ghcr.io/x/a:1", resources: {limits: {memory: 512Mi}}}
    - {name: b, image: "docker.io/b:latest", resources: {limits: {memory: 2Gi}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: wide}
spec:
  replicas: 10
  template:
    spec:
      containers:
        - {name: a, image: "ghcr.io/x/a:1", resources: {limits: {memory: 2Gi}}}
"#;

const TEST: &str = r#"
apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: mixed}
policies: [policies.yaml]
resources: [resources.yaml]
variables: values.yaml
results:
  - {policy: containers, rule: limits, kind: Pod, resources: [small], result: pass}
  - {policy: containers, rule: limits, kind: Pod, resources: [big], result: fail}
  - {policy: containers, rule: limits, kind: Deployment, resources: [wide], result: fail}
  - {policy: containers, rule: allowed-registry, kind: Pod, resources: [small], result: pass}
  - {policy: containers, rule: allowed-registry, kind: Pod, resources: [big], result: fail}
  - {policy: containers, rule: env-tier, kind: Pod, resources: [small], result: pass}
  - {policy: containers, rule: big-only, kind: Pod, resources: [small], result: skip}
  - {policy: containers, rule: big-only, kind: Pod, resources: [big], result: fail}
  - {policy: containers, rule: cel-replicas, kind: Deployment, resources: [wide], result: fail}
  - {policy: containers, rule: mutate-something, kind: Pod, resources: [small], result: pass}
  - {policy: no-latest, kind: Pod, resources: [small], result: pass, isValidatingPolicy: true}
  - {policy: no-latest, kind: Pod, resources: [big], result: fail, isValidatingPolicy: true}
"#;

const VALUES: &str = r#"
apiVersion: cli.kyverno.io/v1alpha1
kind: Values
policies:
  - name: containers
    rules:
      - name: env-tier
        values:
          tier.data.level: allowed
"#;

#[test]
fn a_suite_of_every_rule_kind_is_reproduced() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policies.yaml", POLICIES);
    write(dir.path(), "resources.yaml", RESOURCES);
    write(dir.path(), "kyverno-test.yaml", TEST);
    write(dir.path(), "values.yaml", VALUES);
    let report = run_suite(&dir.path().join("kyverno-test.yaml")).unwrap();
    let find = |rule: &str, res: &str| {
        report
            .checks
            .iter()
            .find(|c| c.rule == rule && c.resource == res)
            .unwrap_or_else(|| panic!("{rule} {res}: {:#?}", report.checks))
    };
    for c in &report.checks {
        if c.rule != "mutate-something" {
            assert!(c.ok, "{c:#?}");
        }
    }
    assert_eq!(
        find("autogen-limits", "Deployment/wide").actual,
        Some(Status::Fail)
    );
    let reg = find("allowed-registry", "Pod/big");
    assert_eq!(
        reg.message,
        "validation failure: docker.io/b:latest comes from a registry not allowed"
    );
    assert_eq!(
        find("cel-replicas", "Deployment/wide").message,
        "at most 5 replicas"
    );
    // Preconditions that do not hold skip the rule, and say which.
    let skipped = find("big-only", "Pod/small");
    assert_eq!(skipped.actual, Some(Status::Skip));
    assert!(
        skipped.message.starts_with("preconditions not met"),
        "{skipped:#?}"
    );
    assert_eq!(find("big-only", "Pod/big").actual, Some(Status::Fail));
    let m = find("mutate-something", "Pod/small");
    assert!(!m.ok);
    assert_eq!(m.unsupported.as_deref(), Some("mutate rules"));
    assert_eq!(
        report
            .checks
            .iter()
            .filter(|c| c.policy == "no-latest")
            .count(),
        2
    );
}

#[test]
fn a_context_entry_that_needs_a_cluster_is_reported_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policies.yaml", POLICIES);
    write(dir.path(), "resources.yaml", RESOURCES);
    write(
        dir.path(),
        "kyverno-test.yaml",
        &TEST.replace("variables: values.yaml\n", ""),
    );
    let report = run_suite(&dir.path().join("kyverno-test.yaml")).unwrap();
    let c = report.checks.iter().find(|c| c.rule == "env-tier").unwrap();
    assert!(!c.ok);
    assert_eq!(c.actual, Some(Status::Error));
    assert!(
        c.unsupported
            .as_deref()
            .unwrap()
            .starts_with("context.configMap"),
        "{c:#?}"
    );
}
