//! Checking a stored `TestTrigger` or `Webhook` as Testkube does: every problem located at its
//! field, with a hint.

use crate::diagnostic::Diagnostic;

use super::{
    MAX_PROBE_TIMEOUT, PR_ACTIONS, Resource, TEST_TRIGGER_EVENTS, TEST_TRIGGER_RESOURCES,
    TestTriggerSpec, WEBHOOK_EVENTS,
};

/// All semantic problems of one loaded `TestTrigger` or `Webhook`: a valid name, known event
/// types and resources, and the fields Assay does not support named with their location.
pub fn validate_resource(file: &str, doc: &crate::load::LoadedResource) -> Vec<Diagnostic> {
    let mut problems: Vec<(String, String, Option<String>)> = Vec::new();
    let mut error = |path: &str, message: String, hint: Option<String>| {
        problems.push((path.to_string(), message, hint));
    };
    if doc.name.is_empty() {
        error(
            "metadata",
            "missing `metadata.name`".to_string(),
            Some("add `metadata:` with `name: ...`".to_string()),
        );
    } else if let Some(problem) = crate::validate::kubernetes_name_problem(&doc.name) {
        error(
            "metadata.name",
            format!("`{}` is not a valid Kubernetes name: {problem}", doc.name),
            None,
        );
    }
    match &doc.resource {
        Resource::Webhook(w) => {
            let s = &w.spec;
            for (i, e) in s.events.iter().enumerate() {
                one_of(
                    &mut error,
                    &format!("spec.events[{i}]"),
                    e,
                    WEBHOOK_EVENTS,
                    "webhook event",
                );
            }
            if s.uri.trim().is_empty() {
                error(
                    "spec",
                    "a webhook needs `spec.uri`".to_string(),
                    Some("add `uri: https://...`".to_string()),
                );
            }
            if s.events.is_empty() {
                error(
                    "spec",
                    "a webhook needs `spec.events`".to_string(),
                    Some("add `events: [end-testworkflow-failed]`, for example".to_string()),
                );
            }
            let unsupported = "Assay has no WebhookTemplate documents yet; write the template into \
                               the webhook (`payloadTemplate`, `headers`)";
            if !s.payload_template_reference.is_empty() {
                error(
                    "spec.payloadTemplateReference",
                    "`payloadTemplateReference` is not supported".to_string(),
                    Some(unsupported.to_string()),
                );
            }
            if s.webhook_template_ref.is_some() {
                error(
                    "spec.webhookTemplateRef",
                    "`webhookTemplateRef` is not supported".to_string(),
                    Some(unsupported.to_string()),
                );
            }
            for (key, value) in &s.config {
                if value.value.is_some() == value.secret.is_some() {
                    error(
                        &format!("spec.config.{key}"),
                        format!("config `{key}` needs exactly one of `value` and `secret`"),
                        None,
                    );
                }
            }
        }
        Resource::TestTrigger(t) => {
            let s = &t.spec;
            one_of(
                &mut error,
                "spec.event",
                &s.event,
                TEST_TRIGGER_EVENTS,
                "trigger event",
            );
            if !s.resource.is_empty() {
                one_of(
                    &mut error,
                    "spec.resource",
                    &s.resource,
                    TEST_TRIGGER_RESOURCES,
                    "trigger resource",
                );
            }
            one_of(
                &mut error,
                "spec.action",
                &s.action,
                &["run"],
                "trigger action",
            );
            if s.execution != "testworkflow" {
                error(
                    "spec.execution",
                    format!("Assay runs test workflows only, not `{}`", s.execution),
                    Some("use `execution: testworkflow`".to_string()),
                );
            }
            content_problems(s, &mut error);
            if !s.concurrency_policy.is_empty() {
                one_of(
                    &mut error,
                    "spec.concurrencyPolicy",
                    &s.concurrency_policy,
                    &["allow", "forbid", "replace"],
                    "concurrency policy",
                );
            }
            if let Some(p) = &s.probe_spec {
                if !(0..=MAX_PROBE_TIMEOUT).contains(&p.timeout) {
                    error(
                        "spec.probeSpec.timeout",
                        format!("`{}` is not a probe timeout", p.timeout),
                        Some(format!(
                            "seconds, from 0 (the default, 60) to {MAX_PROBE_TIMEOUT}"
                        )),
                    );
                }
                if !(0..=MAX_PROBE_TIMEOUT).contains(&p.delay) {
                    error(
                        "spec.probeSpec.delay",
                        format!("`{}` is not a probe delay", p.delay),
                        Some(format!(
                            "seconds, from 0 (the default, 1) to {MAX_PROBE_TIMEOUT}"
                        )),
                    );
                }
                for (i, probe) in p.probes.iter().enumerate() {
                    if !probe.scheme.is_empty() {
                        one_of(
                            &mut error,
                            &format!("spec.probeSpec.probes[{i}].scheme"),
                            &probe.scheme,
                            &["http", "https"],
                            "probe scheme",
                        );
                    }
                    if !(0..=65535).contains(&probe.port) {
                        error(
                            &format!("spec.probeSpec.probes[{i}].port"),
                            format!("`{}` is not a port", probe.port),
                            Some("from 1 to 65535, or leave it out".to_string()),
                        );
                    }
                    if !probe.path.is_empty() && !probe.path.starts_with('/') {
                        error(
                            &format!("spec.probeSpec.probes[{i}].path"),
                            format!("`{}` is not a path", probe.path),
                            Some("start it with `/`".to_string()),
                        );
                    }
                    if probe.host.contains(['/', '@', '?', '#', ' ']) {
                        error(
                            &format!("spec.probeSpec.probes[{i}].host"),
                            format!("`{}` is not a host name", probe.host),
                            Some("a name or an IP address only: scheme, port and path are fields of their own".to_string()),
                        );
                    }
                }
            }
            // Testkube's newer fields: refused by name rather than ignored.
            for (field, set, hint) in [
                (
                    "match",
                    s.matches.is_some(),
                    "Assay matches on `resource`, `resourceSelector` and `event`: express the condition with those, or `conditionSpec`",
                ),
                (
                    "resourceRef",
                    s.resource_ref.is_some(),
                    "Assay watches the kinds `resource` names: use `resource: deployment` and the like",
                ),
                (
                    "listener",
                    s.listener.is_some(),
                    "every `assay server --kubernetes` that stores the trigger watches for it: leave `listener` out",
                ),
            ] {
                if set {
                    error(
                        &format!("spec.{field}"),
                        format!("`{field}` is not supported"),
                        Some(hint.to_string()),
                    );
                }
            }
            if let Some(params) = &s.action_parameters {
                if let Some(target) = &params.target
                    && let Some((message, hint)) = target_problem(target)
                {
                    error("spec.actionParameters.target", message, Some(hint));
                }
                // `jsonpath=` and `{{ }}` values are resolved from the event when it fires:
                // their syntax is checked now.
                for (field, values) in [("config", &params.config), ("tags", &params.tags)] {
                    for (key, value) in values {
                        if let Err(e) = crate::trigger_values::check(value) {
                            error(
                                &format!("spec.actionParameters.{field}.{key}"),
                                e.to_string(),
                                Some(e.hint().to_string()),
                            );
                        }
                    }
                }
            }
            if let Some(delay) = &s.delay
                && crate::duration::parse_duration(delay).is_err()
            {
                error(
                    "spec.delay",
                    format!("`{delay}` is not a duration"),
                    Some("write it like `10s` or `1m30s`".to_string()),
                );
            }
        }
    }
    let mut out: Vec<Diagnostic> = problems
        .into_iter()
        .map(|(path, message, hint)| {
            let (line, column) = doc.locations.locate(&path).unwrap_or((doc.line, 1));
            Diagnostic::error(file, line, column, message)
                .with_hint_opt(hint)
                .in_document(doc.index)
                .at_path(path)
        })
        .collect();
    crate::diagnostic::sort(&mut out);
    out
}

/// The checks of Testkube's `validation.go` for git `content` triggers, and Assay's own: what
/// it cannot watch (pull requests, GitHub App tokens) and what would put a secret in the clear.
fn content_problems(s: &TestTriggerSpec, error: &mut impl FnMut(&str, String, Option<String>)) {
    let content = s.resource == "content";
    let git_event = s.event.starts_with("git-");
    if git_event && !content {
        error(
            "spec.event",
            format!("`{}` is an event of git content triggers", s.event),
            Some("add `resource: content` and `contentSelector.git`".to_string()),
        );
    }
    if !content {
        if s.content_selector.is_some() {
            error(
                "spec.contentSelector",
                "`contentSelector` is for `resource: content` triggers".to_string(),
                Some("set `resource: content`, or leave `contentSelector` out".to_string()),
            );
        }
        return;
    }
    if !git_event && !s.event.is_empty() {
        error(
            "spec.event",
            format!("resource `content` needs a git event, not `{}`", s.event),
            Some("one of: git-push, git-tag-push, git-pull-request".to_string()),
        );
    }
    if s.condition_spec
        .as_ref()
        .and_then(|c| c.get("conditions"))
        .and_then(|c| c.as_array())
        .is_some_and(|c| !c.is_empty())
    {
        error(
            "spec.conditionSpec.conditions",
            "resource `content` has no conditions to check".to_string(),
            Some("leave `conditionSpec` out".to_string()),
        );
    }
    if s.probe_spec.as_ref().is_some_and(|p| !p.probes.is_empty()) {
        error(
            "spec.probeSpec.probes",
            "resource `content` has no object to probe".to_string(),
            Some("leave `probeSpec` out".to_string()),
        );
    }
    let Some(git) = s.content_selector.as_ref().and_then(|c| c.git.as_ref()) else {
        error(
            "spec",
            "resource `content` needs `contentSelector.git.uri`".to_string(),
            Some("add `contentSelector: {git: {uri: https://...}}`".to_string()),
        );
        return;
    };
    let base = "spec.contentSelector.git";
    if git.uri.trim().is_empty() {
        error(
            base,
            "resource `content` needs `contentSelector.git.uri`".to_string(),
            Some("add `uri: https://...`".to_string()),
        );
    } else if let Some((message, hint)) = crate::gitmatch::uri_problem(&git.uri) {
        error(&format!("{base}.uri"), message, Some(hint));
    }
    for (field, list) in [
        ("branches", &git.branches),
        ("branchesIgnore", &git.branches_ignore),
        ("paths", &git.paths),
        ("pathsIgnore", &git.paths_ignore),
        ("tags", &git.tags),
        ("tagsIgnore", &git.tags_ignore),
    ] {
        for (i, p) in list.iter().enumerate() {
            if let Some(problem) = crate::gitmatch::pattern_problem(p) {
                error(
                    &format!("{base}.{field}[{i}]"),
                    format!("`{p}` is not a glob pattern: {problem}"),
                    Some("`*` within a path part, `**` across parts, `?`, `[a-z]`".to_string()),
                );
            }
        }
    }
    for (field, set, name) in [
        ("token", !git.token.is_empty(), "tokenFrom"),
        ("sshKey", !git.ssh_key.is_empty(), "sshKeyFrom"),
    ] {
        if set {
            error(
                &format!("{base}.{field}"),
                format!(
                    "`{field}` is refused: it would be stored, and shown to every viewer, in the clear"
                ),
                Some(format!(
                    "put it in a Kubernetes Secret and name it with `{name}: {{secretKeyRef: {{name: NAME, key: KEY}}}}` (read by `assay server --kubernetes`)"
                )),
            );
        }
    }
    for (field, from) in [
        ("usernameFrom", &git.username_from),
        ("tokenFrom", &git.token_from),
        ("sshKeyFrom", &git.ssh_key_from),
    ] {
        if let Some(from) = from
            && let Some(problem) = secret_key_ref_problem(from)
        {
            error(
                &format!("{base}.{field}"),
                problem,
                Some(format!(
                    "write `{field}: {{secretKeyRef: {{name: NAME, key: KEY}}}}`"
                )),
            );
        }
    }
    match git.auth_type.as_str() {
        "" | "basic" | "header" => {}
        "github" => error(
            &format!("{base}.authType"),
            "`authType: github` is not supported: its tokens come from Testkube's control plane"
                .to_string(),
            Some("use `authType: basic` or `header` with a `tokenFrom` Secret".to_string()),
        ),
        other => one_of(
            error,
            &format!("{base}.authType"),
            other,
            &["basic", "header"],
            "git auth type",
        ),
    }
    match &git.pull_request {
        Some(_) if s.event != "git-pull-request" => error(
            &format!("{base}.pullRequest"),
            format!(
                "`pullRequest` is for `git-pull-request` triggers, not `{}`",
                s.event
            ),
            Some("set `event: git-pull-request`, or leave `pullRequest` out".to_string()),
        ),
        Some(pr) => {
            for (i, t) in pr.types.iter().enumerate() {
                if !PR_ACTIONS.contains(&t.trim().to_ascii_lowercase().as_str()) {
                    one_of(
                        error,
                        &format!("{base}.pullRequest.types[{i}]"),
                        t,
                        PR_ACTIONS,
                        "pull request action",
                    );
                }
            }
            for (field, list) in [
                ("branches", &pr.branches),
                ("branchesIgnore", &pr.branches_ignore),
            ] {
                for (i, p) in list.iter().enumerate() {
                    if let Some(problem) = crate::gitmatch::pattern_problem(p) {
                        error(
                            &format!("{base}.pullRequest.{field}[{i}]"),
                            format!("`{p}` is not a glob pattern: {problem}"),
                            Some(
                                "`*` within a path part, `**` across parts, `?`, `[a-z]`"
                                    .to_string(),
                            ),
                        );
                    }
                }
            }
        }
        None => {}
    }
    if s.event == "git-pull-request"
        && !git.uri.trim().is_empty()
        && crate::gitmatch::uri_problem(&git.uri).is_none()
        && crate::gitmatch::github_repo(&git.uri).is_none()
    {
        error(
            &format!("{base}.uri"),
            format!(
                "`{}` is not a GitHub repository: `git-pull-request` reads pull requests from GitHub's API, as Testkube does",
                crate::gitmatch::redact(&git.uri)
            ),
            Some(
                "write `https://github.com/OWNER/REPO.git` (or a GitHub Enterprise host named `github.*`); for another forge, point its webhook at a hook (`POST /v1/hooks/NAME`)"
                    .to_string(),
            ),
        );
    }
}

/// What is wrong with a credential's `*From` (Kubernetes' `EnvVarSource`): Assay reads a
/// Secret's key (`secretKeyRef`) and nothing else.
fn secret_key_ref_problem(from: &serde_json::Value) -> Option<String> {
    let Some(fields) = from.as_object() else {
        return Some("is not a mapping".into());
    };
    if let Some(other) = fields.keys().find(|k| k.as_str() != "secretKeyRef") {
        return Some(format!(
            "`{other}` is not supported: Assay reads Secrets only"
        ));
    }
    let Some(r) = fields.get("secretKeyRef").and_then(|r| r.as_object()) else {
        return Some("needs `secretKeyRef`".into());
    };
    for key in r.keys() {
        if !["name", "key", "optional"].contains(&key.as_str()) {
            return Some(format!("unknown field `secretKeyRef.{key}`"));
        }
    }
    let text = |k: &str| r.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    if text("name").is_none() || text("key").is_none() {
        return Some("`secretKeyRef` needs `name` and `key`".into());
    }
    None
}

/// What is wrong with an `actionParameters.target` (Testkube's execution target: `match`,
/// `not`, `replicate`, `schedulerPolicy`), if anything; its `jsonpath=` and `{{ }}` values
/// (resolved from the event when it fires) must parse.
fn target_problem(target: &serde_json::Value) -> Option<(String, String)> {
    let shape = "write `target: {match: {LABEL: [VALUE, ...]}, not: {...}, replicate: [LABEL]}`";
    let Some(fields) = target.as_object() else {
        return Some(("is not a mapping".into(), shape.into()));
    };
    let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut values = Vec::new();
    for (key, v) in fields {
        match key.as_str() {
            "schedulerPolicy" if v.is_string() => {}
            "replicate" => match strings(v) {
                Some(keys) => values.extend(keys),
                None => {
                    return Some((
                        "`replicate` is not a list of label keys".into(),
                        shape.into(),
                    ));
                }
            },
            "match" | "not" => {
                let Some(map) = v.as_object() else {
                    return Some((format!("`{key}` is not a mapping"), shape.into()));
                };
                for (label, list) in map {
                    match strings(list) {
                        Some(list) => values.extend(list),
                        None => {
                            return Some((
                                format!("`{key}.{label}` is not a list of values"),
                                shape.into(),
                            ));
                        }
                    }
                }
            }
            other => return Some((format!("unknown target field `{other}`"), shape.into())),
        }
    }
    values.iter().find_map(|v| {
        crate::trigger_values::check(v)
            .err()
            .map(|e| (e.to_string(), e.hint().to_string()))
    })
}

/// Report `value` unless it is one of `allowed`, with the closest as a hint.
fn one_of(
    error: &mut impl FnMut(&str, String, Option<String>),
    path: &str,
    value: &str,
    allowed: &[&str],
    what: &str,
) {
    if !allowed.contains(&value) {
        let hint = crate::suggest::closest(value, allowed.iter().copied())
            .map(|c| format!("did you mean `{c}`?"))
            .or_else(|| Some(format!("one of: {}", allowed.join(", "))));
        error(path, format!("unknown {what} `{value}`"), hint);
    }
}

#[cfg(test)]
mod tests {
    use crate::load::ResourceKind;
    use crate::validate::check;

    /// Shapes from kubeshop/testkube's `test/env/dev` folder (MIT).
    const PULL_REQUEST: &str = r#"apiVersion: tests.testkube.io/v1
kind: TestTrigger
metadata:
  name: git-trigger-pr-content-trigger
spec:
  resource: content
  event: git-pull-request
  contentSelector:
    git:
      uri: https://github.com/kubeshop/testkube
      authType: github
      paths:
        - "src/**"
      pullRequest:
        types: ["opened", "synchronize", "reopened"]
  action: run
  execution: testworkflow
  testSelector:
    name: git-triggered-workflow-pr-content-trigger
    namespace: testkube-agent
"#;

    const REAL: &str = r#"apiVersion: tests.testkube.io/v1
kind: TestTrigger
metadata:
  name: git-push-content-trigger
spec:
  resource: content
  event: git-push
  contentSelector:
    git:
      uri: https://github.com/kubeshop/testkube
      branches: [main, "release/*"]
      paths: ["src/**"]
      pathsIgnore: ["**/*.md"]
      tokenFrom:
        secretKeyRef: {name: git-credentials, key: token}
  action: run
  execution: testworkflow
  testSelector:
    name: git-triggered-workflow
---
apiVersion: tests.testkube.io/v1
kind: TestTrigger
metadata:
  name: trigger-small-suite-on-cloud-deployment
spec:
  selector:
    matchLabels:
      testkube.io/resource-kind: Deployment
  event: deployment-image-update
  action: run
  execution: testworkflow
  testSelector:
    name: tw-suite-small-smoke
    namespace: testkube-agent
---
apiVersion: executor.testkube.io/v1
kind: Webhook
metadata:
  name: dev-e2e-heartbeat-webhook
spec:
  events:
  - end-testworkflow-success
  uri: 'https://example.com/hook'
  selector: heartbeat-type=dev-e2e-webhook
  headers:
    Content-Type: application/json
    X-Heartbeat-Token: '{{ config.key }}'
  config:
    key:
      secret: {name: heartbeat, key: token}
  payloadTemplate: |-
    {"info": "workflow={{ workflowName }} status={{ type }}"}
"#;

    /// The diagnostics of checking `text` as file `file`, as shown.
    fn diagnostics_of(file: &str, text: &str) -> Vec<String> {
        check(file, text)
            .diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    /// A valid TestTrigger on deployments, to which a test adds lines of its `spec`.
    const TRIGGER: &str = "apiVersion: tests.testkube.io/v1\nkind: TestTrigger\nmetadata: {name: t}\nspec:\n  resource: deployment\n  event: created\n  action: run\n  execution: testworkflow\n  testSelector: {name: w}\n";

    #[test]
    fn real_documents_load_as_resources() {
        let loaded = check("real.yaml", REAL);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.checked, 3);
        assert!(loaded.documents.is_empty());
        let kinds: Vec<ResourceKind> = loaded.resources.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                ResourceKind::TestTrigger,
                ResourceKind::TestTrigger,
                ResourceKind::Webhook
            ]
        );
        let crate::triggers::Resource::Webhook(w) = &loaded.resources[2].resource else {
            panic!("a webhook");
        };
        assert_eq!(
            w.spec.config["key"].secret.as_ref().unwrap().env_var(),
            "HEARTBEAT_TOKEN"
        );
    }

    #[test]
    fn git_content_triggers_are_checked_as_testkube_does() {
        // Testkube's own pull request trigger: all of it passes but its GitHub App token.
        let shown = diagnostics_of("pr.yaml", PULL_REQUEST);
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].contains("`authType: github` is not supported"),
            "{shown:?}"
        );
        let own = PULL_REQUEST.replace("      authType: github\n", "");
        assert!(diagnostics_of("pr.yaml", &own).is_empty());
        for (from, to, expected) in [
            (
                "https://github.com/kubeshop/testkube",
                "https://gitlab.com/kubeshop/testkube",
                "`https://gitlab.com/kubeshop/testkube` is not a GitHub repository",
            ),
            (
                "https://github.com/kubeshop/testkube",
                "https://github.com/kubeshop",
                "is not a GitHub repository",
            ),
            (
                "\"reopened\"]",
                "\"merged\"]",
                "unknown pull request action `merged`",
            ),
            (
                "event: git-pull-request",
                "event: git-push",
                "`pullRequest` is for `git-pull-request` triggers, not `git-push`",
            ),
        ] {
            let shown = diagnostics_of("pr.yaml", &own.replace(from, to));
            assert!(
                shown.len() == 1 && shown[0].contains(expected),
                "{expected}: {shown:?}"
            );
        }
        for fine in [
            "git@github.com:kubeshop/testkube.git",
            "https://github.example.com/kubeshop/testkube.git",
        ] {
            let doc = own.replace("https://github.com/kubeshop/testkube", fine);
            assert!(diagnostics_of("pr.yaml", &doc).is_empty(), "{fine}");
        }
        let git = "apiVersion: tests.testkube.io/v1\nkind: TestTrigger\nmetadata: {name: g}\nspec:\n  resource: content\n  event: git-push\n  action: run\n  execution: testworkflow\n  testSelector: {name: w}\n";
        let with = |extra: &str| diagnostics_of("g.yaml", &format!("{git}{extra}"));
        assert!(
            with("")
                .iter()
                .any(|d| d.contains("needs `contentSelector.git.uri`")),
            "{:?}",
            with("")
        );
        let uri = "  contentSelector: {git: {uri: 'https://example.com/r.git'}}\n";
        assert!(with(uri).is_empty(), "{:?}", with(uri));
        for (extra, expected) in [
            (
                "  probeSpec: {probes: [{host: x}]}\n",
                "resource `content` has no object to probe",
            ),
            (
                "  conditionSpec: {conditions: [{type: Ready, status: 'True'}]}\n",
                "resource `content` has no conditions to check",
            ),
            ("  match: [{path: .a}]\n", "`match` is not supported"),
        ] {
            let shown = with(&format!("{uri}{extra}"));
            assert!(
                shown.iter().any(|d| d.contains(expected)),
                "{expected}: {shown:?}"
            );
        }
        let modified = format!("{git}{uri}").replace("git-push", "modified");
        let shown = diagnostics_of("g.yaml", &modified);
        assert!(
            shown
                .iter()
                .any(|d| d.contains("resource `content` needs a git event, not `modified`")),
            "{shown:?}"
        );
        let on_pods = format!("{git}{uri}").replace("resource: content", "resource: pod");
        let shown = diagnostics_of("g.yaml", &on_pods);
        assert!(
            shown
                .iter()
                .any(|d| d.contains("`git-push` is an event of git content triggers")),
            "{shown:?}"
        );
        for (field, expected) in [
            ("uri: 'ext::sh -c id'", "transport helper"),
            (
                "uri: 'https://me:hunter2@example.com/r'",
                "holds a password",
            ),
            ("token: hunter2", "`token` is refused"),
            ("sshKey: KEY", "`sshKey` is refused"),
            (
                "tokenFrom: {configMapKeyRef: {name: a, key: b}}",
                "Assay reads Secrets only",
            ),
            (
                "tokenFrom: {secretKeyRef: {name: a}}",
                "needs `name` and `key`",
            ),
            ("paths: ['src/[']", "is not a glob pattern"),
            ("authType: bearer", "unknown git auth type `bearer`"),
        ] {
            let text = format!("{git}{uri}").replace(
                "uri: 'https://example.com/r.git'",
                &format!("uri: 'https://example.com/r.git', {field}"),
            );
            let text = if field.starts_with("uri:") {
                format!("{git}  contentSelector: {{git: {{{field}}}}}\n")
            } else {
                text
            };
            let shown = diagnostics_of("g.yaml", &text);
            assert!(
                shown.iter().any(|d| d.contains(expected)),
                "{field}: {shown:?}"
            );
            assert!(!shown.iter().any(|d| d.contains("hunter2")), "{shown:?}");
        }
    }

    #[test]
    fn problems_are_located() {
        let text = "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata:\n  name: w\nspec:\n  uri: http://x\n  events: [end-testworkflow-fail]\n  payloadTemplateReference: t\n  colour: red\n";
        let loaded = check("w.yaml", text);
        let shown: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("w.yaml:9:3: unknown field `colour`")),
            "{shown:?}"
        );
        // The unknown field stops the typed model, so the semantic checks run on a fixed file.
        let fixed = text.replace("  colour: red\n", "");
        let shown = diagnostics_of("w.yaml", &fixed);
        assert!(
            shown.iter().any(|d| d.starts_with(
                "w.yaml:7:12: unknown webhook event `end-testworkflow-fail`\n  hint: did you mean `end-testworkflow-failed`?"
            )),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d.contains("`payloadTemplateReference` is not supported")),
            "{shown:?}"
        );
        let wrong = "apiVersion: testworkflows.testkube.io/v1\nkind: TestTrigger\nmetadata: {name: t}\nspec: {event: created, action: run, execution: test}\n";
        let shown = diagnostics_of("t.yaml", wrong);
        assert!(
            shown
                .iter()
                .any(|d| d.contains("unsupported apiVersion") && d.contains("tests.testkube.io/v1")),
            "{shown:?}"
        );
    }

    #[test]
    fn probe_specs_are_typed_and_checked() {
        let good = TRIGGER.to_string()
            + "  probeSpec:\n    timeout: 30\n    delay: 2\n    probes:\n      - {scheme: https, host: web.example, port: 8443, path: /ready, headers: {X-Check: 'yes'}}\n";
        let loaded = check("t.yaml", &good);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let crate::triggers::Resource::TestTrigger(t) = &loaded.resources[0].resource else {
            panic!("a trigger");
        };
        let p = t.spec.probe_spec.as_ref().unwrap();
        assert_eq!((p.timeout, p.delay, p.probes[0].port), (30, 2, 8443));
        assert_eq!(p.probes[0].headers["X-Check"], "yes");

        let bad = good
            .replace("scheme: https", "scheme: ftp")
            .replace("8443", "70000")
            .replace("path: /ready", "path: ready")
            .replace("host: web.example", "host: 'user@web.example'")
            .replace("timeout: 30", "timeout: 99999");
        let shown = diagnostics_of("t.yaml", &bad);
        for expected in [
            "unknown probe scheme `ftp`",
            "`70000` is not a port",
            "`ready` is not a path",
            "`user@web.example` is not a host name",
            "`99999` is not a probe timeout",
        ] {
            assert!(
                shown.iter().any(|d| d.contains(expected)),
                "{expected}: {shown:?}"
            );
        }
        let unknown = good.replace("delay: 2", "delay: 2\n    retries: 3");
        assert!(check("t.yaml", &unknown).has_errors());
    }

    #[test]
    fn action_targets_are_execution_targets() {
        let shown = |target: &str| {
            diagnostics_of(
                "t.yaml",
                &format!("{TRIGGER}  actionParameters:\n    target: {target}\n"),
            )
        };
        assert!(
            shown("{match: {zone: [b]}, not: {name: [a1]}, replicate: [name], schedulerPolicy: OnlyWhenMatches}")
                .is_empty()
        );
        assert!(
            shown(
                "{match: {zone: ['jsonpath={.object.metadata.labels.zone}', '{{ .namespace }}']}}"
            )
            .is_empty()
        );
        for (target, expected) in [
            ("[a]", "is not a mapping"),
            ("{match: {zone: b}}", "`match.zone` is not a list of values"),
            ("{near: {zone: [b]}}", "unknown target field `near`"),
            (
                "{match: {zone: ['jsonpath={.object.metadata.labels.zone']}}",
                "has a `{` without its `}`",
            ),
            (
                "{match: {zone: ['{{ .object.metadata.name ']}}",
                "does not parse",
            ),
        ] {
            let shown = shown(target);
            assert!(
                shown.iter().any(|d| d.contains(expected)),
                "{target}: {shown:?}"
            );
        }
    }

    #[test]
    fn config_and_tag_values_must_parse() {
        let good = format!(
            "{TRIGGER}  actionParameters:\n    config:\n      IMAGE: 'jsonpath={{.spec.template.spec.containers[0].image}}'\n      WHO: '{{{{ .metadata.name }}}}'\n    tags:\n      plain: value\n"
        );
        assert!(diagnostics_of("t.yaml", &good).is_empty(), "{good}");
        let bad = good
            .replace("containers[0]", "containers[0")
            .replace("plain: value", "by: '{{ .metadata.name '");
        let shown = diagnostics_of("t.yaml", &bad);
        let line = |text: &str| {
            bad.lines()
                .position(|l| l.trim_start().starts_with(text))
                .map(|i| i + 1)
        };
        for (key, text, expected) in [
            ("IMAGE", "IMAGE:", "has a `[` without its `]`"),
            ("by", "by:", "the template does not parse"),
        ] {
            let at = format!("t.yaml:{}:", line(text).unwrap_or(0));
            assert!(
                shown
                    .iter()
                    .any(|d| d.starts_with(&at) && d.contains(expected)),
                "{key} at {at}: {shown:?}"
            );
        }
    }

    #[test]
    fn newer_trigger_fields_are_refused_by_name() {
        let text = TRIGGER.to_string() + "  listener: {match: {name: [a]}}\n";
        let shown = diagnostics_of("t.yaml", &text);
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("t.yaml:10:") && d.contains("`listener` is not supported")),
            "{shown:?}"
        );
    }
}
