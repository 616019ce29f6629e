//! The compiler's rules, workflow in → plan (or errors with JSON paths) out.

use assay_spec::load::load;
use assay_spec::model::Document;
use assay_spec::plan::{Plan, PlanStep};
use assay_spec::resolve::PathError;
use assay_spec::{CompileRequest, Compiled, Strictness, TemplateSet, compile};
use indexmap::IndexMap;
use serde_json::{Value, json};

/// Compile the first workflow of `yaml`, with the templates the same text defines.
fn compile_with(
    yaml: &str,
    config: &[(&str, &str)],
    strictness: Strictness,
) -> Result<Compiled, Vec<PathError>> {
    let loaded = load("test.yaml", yaml);
    assert!(
        !loaded.has_errors(),
        "test input must load: {:?}",
        loaded.diagnostics
    );
    let mut templates = TemplateSet::new();
    let mut workflow = None;
    for d in &loaded.documents {
        match &d.document {
            Document::TestWorkflowTemplate(t) => templates.insert(t.clone()),
            Document::TestWorkflow(w) => {
                workflow.get_or_insert_with(|| w.clone());
            }
        }
    }
    let workflow = workflow.expect("a workflow");
    let mut req = CompileRequest::new(&workflow, &templates);
    req.config = config
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect::<IndexMap<_, _>>();
    req.strictness = strictness;
    compile(&req)
}

fn plan(yaml: &str, config: &[(&str, &str)]) -> Plan {
    match compile_with(yaml, config, Strictness::Require) {
        Ok(c) => c.plan,
        Err(e) => panic!("compile failed: {e:#?}"),
    }
}

fn errors(yaml: &str, config: &[(&str, &str)]) -> Vec<PathError> {
    match compile_with(yaml, config, Strictness::Require) {
        Ok(c) => panic!("expected errors, got a plan: {:#?}", c.plan),
        Err(e) => e,
    }
}

fn shells(step: &PlanStep) -> Vec<String> {
    let mut out: Vec<String> = step
        .commands
        .iter()
        .filter_map(|c| c.shell.clone())
        .collect();
    for s in &step.steps {
        out.extend(shells(s));
    }
    out
}

const HEAD: &str =
    "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: wf\n";

#[test]
fn config_values_and_defaults_are_substituted_and_runtime_parts_stay() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  config:\n    name: {{type: string, default: world}}\n    n: {{type: integer}}\n  steps:\n  - shell: echo {{{{ config.name }}}} {{{{ config.n * 2 }}}} {{{{ env.HOME }}}} {{{{ workflow.name }}}}\n    condition: 'passed && config.n > 1'\n"
        ),
        &[("n", "3")],
    );
    assert_eq!(shells(&p.root), vec!["echo world 6 {{env.HOME}} wf"]);
    // `&&` returns an operand, so `passed && true` is not `passed`: only the known part folds.
    assert_eq!(p.root.steps[0].condition, "passed && true");
    assert_eq!(p.config["n"].value, Some(json!(3)));
    assert!(p.config["name"].defaulted);
}

#[test]
fn config_values_are_checked_against_the_schema() {
    let wf = format!(
        "{HEAD}spec:\n  config:\n    n: {{type: integer, minimum: 1, maximum: 4}}\n    mode: {{type: string, enum: [fast, slow], default: fast}}\n    tag: {{type: string, pattern: '^v[0-9]+$', default: v1}}\n    flag: {{type: boolean, default: 'false'}}\n  steps:\n  - shell: echo {{{{ config.n }}}}\n"
    );
    let e = errors(&wf, &[("n", "x")]);
    assert!(e[0].message.contains("must be an integer"), "{e:?}");
    let e = errors(&wf, &[("n", "9")]);
    assert!(e[0].message.contains("at most 4"), "{e:?}");
    let e = errors(&wf, &[("n", "2"), ("mode", "fats")]);
    assert!(e[0].message.contains("one of: fast, slow"), "{e:?}");
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `fast`?"));
    let e = errors(&wf, &[("n", "2"), ("tag", "latest")]);
    assert!(e[0].message.contains("pattern"), "{e:?}");
    let e = errors(&wf, &[("n", "2"), ("flag", "maybe")]);
    assert!(e[0].message.contains("boolean"), "{e:?}");
    let e = errors(&wf, &[("n", "2"), ("nn", "2")]);
    assert!(e[0].message.contains("no config parameter `nn`"), "{e:?}");
    // required: no default, not given
    let e = errors(&wf, &[]);
    assert!(e.iter().any(|e| e.message.contains("config `n`")), "{e:?}");
    // lenient mode (validate) leaves it for later
    assert!(compile_with(&wf, &[], Strictness::Lenient).is_ok());
}

#[test]
fn an_undeclared_config_reference_is_an_error_at_its_field() {
    let e = errors(
        &format!(
            "{HEAD}spec:\n  config:\n    name: {{default: x}}\n  steps:\n  - shell: echo {{{{ config.nmae }}}}\n"
        ),
        &[],
    );
    assert_eq!(e[0].path, "spec.steps[0].shell");
    assert!(e[0].message.contains("no config parameter `nmae`"));
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `config.name`?"));
}

#[test]
fn sensitive_values_never_reach_the_plan() {
    let c = compile_with(
        &format!("{HEAD}spec:\n  config:\n    token: {{type: string, sensitive: true}}\n  steps:\n  - shell: \"curl -H 'x: {{{{ config.token }}}}'\"\n"),
        &[("token", "s3cr3t")],
        Strictness::Require,
    )
    .unwrap();
    let text = serde_json::to_string(&c.plan).unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("{{config.token}}"), "{text}");
    assert_eq!(c.secrets["token"], "s3cr3t");
    assert!(c.plan.config["token"].sensitive);
    assert_eq!(c.plan.config["token"].value, None);
}

const TEMPLATE: &str = "---\napiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata:\n  name: tools--greet--v1\nspec:\n  config:\n    who: {type: string}\n    loud: {type: boolean, default: false}\n  container:\n    env:\n    - name: FROM_TEMPLATE\n      value: '1'\n  setup:\n  - name: Prepare\n    shell: echo prepare {{ config.who }}\n  steps:\n  - name: Greet\n    shell: \"echo hello {{ config.who }} {{ config.loud ? '!' : '.' }}\"\n  after:\n  - name: Cleanup\n    shell: echo cleanup\n";

#[test]
fn use_on_the_workflow_wraps_its_steps() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  use:\n  - name: tools/greet/v1\n    config:\n      who: '{{{{ config.user }}}}'\n  config:\n    user: {{default: ann}}\n  steps:\n  - name: Own\n    shell: echo own\n  after:\n  - shell: echo mine-after\n{TEMPLATE}"
        ),
        &[],
    );
    assert_eq!(
        shells(&p.root),
        vec![
            "echo prepare ann",
            "echo hello ann .",
            "echo own",
            "echo mine-after",
            "echo cleanup"
        ]
    );
    // after-steps are plain steps at the end, as in Testkube: no implicit `always`
    assert_eq!(p.root.steps[3].condition, "passed");
    assert_eq!(p.root.steps[4].condition, "passed");
    let env = &p.root.steps[2].commands[0].env;
    assert!(env.iter().any(|e| e.name == "FROM_TEMPLATE"), "{env:?}");
}

#[test]
fn template_on_a_step_becomes_its_first_children() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  steps:\n  - name: Suite\n    template:\n      name: tools--greet--v1\n      config: {{who: bob, loud: 'true'}}\n    steps:\n    - shell: echo last\n{TEMPLATE}"
        ),
        &[],
    );
    assert_eq!(
        shells(&p.root),
        vec![
            "echo prepare bob",
            "echo hello bob !",
            "echo cleanup",
            "echo last"
        ]
    );
}

#[test]
fn missing_templates_and_template_parameters_name_both() {
    let e = errors(
        &format!(
            "{HEAD}spec:\n  use:\n  - name: tools/greeet/v1\n  steps:\n  - shell: 'true'\n{TEMPLATE}"
        ),
        &[],
    );
    assert_eq!(e[0].path, "spec.use[0].name");
    assert!(
        e[0].message
            .contains("template `tools/greeet/v1` not found"),
        "{e:?}"
    );
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `tools/greet/v1`?"));

    let e = errors(
        &format!(
            "{HEAD}spec:\n  use:\n  - name: tools/greet/v1\n  steps:\n  - shell: 'true'\n{TEMPLATE}"
        ),
        &[],
    );
    assert_eq!(e[0].path, "spec.use[0]");
    assert!(e[0].message.contains("template `tools/greet/v1`"), "{e:?}");
    assert!(e[0].message.contains("config `who`"), "{e:?}");
}

#[test]
fn step_ids_are_derived_from_names_and_checked() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  steps:\n  - name: Run tests!\n    shell: 'true'\n  - name: Run tests\n    shell: 'true'\n  - shell: 'true'\n"
        ),
        &[],
    );
    let refs: Vec<&str> = p.root.steps.iter().map(|s| s.reference.as_str()).collect();
    assert_eq!(refs, vec!["run_tests", "run_tests_1", "_3"]);
    let e = errors(
        &format!(
            "{HEAD}spec:\n  steps:\n  - id: a\n    shell: 'true'\n  - id: a\n    shell: 'true'\n"
        ),
        &[],
    );
    assert!(e[0].message.contains("duplicate step id `a`"));
    assert_eq!(e[0].path, "spec.steps[1].id");
    let e = errors(
        &format!("{HEAD}spec:\n  steps:\n  - id: Bad-Id\n    shell: 'true'\n"),
        &[],
    );
    assert!(e[0].message.contains("lowercase"));
}

#[test]
fn durations_retry_and_deadline() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  job:\n    activeDeadlineSeconds: 60\n  steps:\n  - shell: 'true'\n    timeout: 1m30s\n    delay: 500ms\n    retry: {{count: 2}}\n"
        ),
        &[],
    );
    let s = &p.root.steps[0];
    assert_eq!(s.timeout_ms, Some(90_000));
    assert_eq!(s.delay_ms, Some(500));
    assert_eq!(s.retry.as_ref().unwrap().until, "passed");
    assert_eq!(p.deadline_ms, Some(60_000));
}

#[test]
fn parallel_strategies_expand_into_workers() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  config:\n    n: {{type: integer, default: 2}}\n  steps:\n  - parallel:\n      count: config.n\n      matrix:\n        os: [linux, mac]\n      shards:\n        files: [a, b, c]\n      description: '{{{{ matrix.os }}}}-{{{{ index }}}}'\n      shell: run {{{{ matrix.os }}}} {{{{ join(shard.files, \" \") }}}}\n"
        ),
        &[],
    );
    let par = p.root.steps[0].parallel.as_ref().unwrap();
    let workers = par.workers.as_ref().unwrap();
    assert_eq!(workers.len(), 4);
    let got: Vec<(String, Vec<String>)> = workers
        .iter()
        .map(|w| (w.description.clone(), shells(&w.root)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("linux-0".to_string(), vec!["run linux a b".to_string()]),
            ("linux-1".to_string(), vec!["run linux c".to_string()]),
            ("mac-2".to_string(), vec!["run mac a b".to_string()]),
            ("mac-3".to_string(), vec!["run mac c".to_string()]),
        ]
    );
}

#[test]
fn run_time_strategies_are_left_to_the_runtime() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  steps:\n  - parallel:\n      shards:\n        files: 'glob(\"tests/**\")'\n      shell: run {{{{ join(shard.files, \" \") }}}}\n"
        ),
        &[],
    );
    let par = p.root.steps[0].parallel.as_ref().unwrap();
    assert!(par.workers.is_none());
    let w = par.worker.as_ref().unwrap();
    assert_eq!(shells(&w.root), vec!["run {{join(shard.files, \" \")}}"]);
    let concrete = assay_spec::strategy::expand_worker(
        w,
        assay_spec::strategy::params(
            &serde_json::from_value(json!({"shards": {"files": ["x", "y"]}})).unwrap(),
            &[],
        )
        .unwrap()
        .unwrap()
        .instance(0),
    )
    .unwrap();
    assert_eq!(shells(&concrete.root), vec!["run x y"]);
}

#[test]
fn services_get_instances_probes_and_global_env() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  container:\n    env:\n    - name: G\n      value: g\n      global: true\n    - name: L\n      value: l\n  services:\n    db:\n      count: 2\n      shell: serve --port {{{{ 8000 + index }}}}\n      readinessProbe:\n        tcpSocket: {{port: 8000}}\n        periodSeconds: 1\n  steps:\n  - shell: 'true'\n"
        ),
        &[],
    );
    let db = &p.root.services[0];
    let inst = db.instances.as_ref().unwrap();
    assert_eq!(inst.len(), 2);
    assert_eq!(inst[1].process.shell.as_deref(), Some("serve --port 8001"));
    let probe = inst[0].readiness_probe.as_ref().unwrap();
    assert_eq!(
        (
            probe.period_seconds,
            probe.timeout_seconds,
            probe.failure_threshold
        ),
        (1, 1, 3)
    );
    let names: Vec<&str> = inst[0]
        .process
        .env
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, vec!["G"]);
}

#[test]
fn invalid_expressions_point_at_their_field() {
    let e = errors(
        &format!("{HEAD}spec:\n  steps:\n  - shell: echo {{{{ 1 + }}}}\n"),
        &[],
    );
    assert_eq!(e[0].path, "spec.steps[0].shell");
    assert!(e[0].message.contains("invalid expression"), "{e:?}");
}

#[test]
fn file_modes_are_read_as_kubernetes_does() {
    // YAML 1.1, as Kubernetes reads it: a leading 0 is octal.
    let p = plan(
        &format!(
            "{HEAD}spec:\n  content:\n    files:\n    - path: /data/run.sh\n      mode: 0755\n      content: echo\n  steps:\n  - shell: /data/run.sh\n"
        ),
        &[],
    );
    assert_eq!(p.root.content.unwrap().files[0].mode, Some(0o755));
}

#[test]
fn a_condition_that_resolves_now_stays_expression_text() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  config:\n    verbose: {{type: boolean, default: false}}\n  steps:\n  - shell: 'true'\n    condition: config.verbose\n  - shell: 'true'\n    condition: \"config.verbose || 'x'\"\n"
        ),
        &[("verbose", "true")],
    );
    assert_eq!(p.root.steps[0].condition, "true");
    assert_eq!(p.root.steps[1].condition, "true");
    let p = plan(
        &format!(
            "{HEAD}spec:\n  config:\n    verbose: {{type: boolean, default: false}}\n  steps:\n  - shell: 'true'\n    condition: config.verbose\n"
        ),
        &[],
    );
    assert_eq!(p.root.steps[0].condition, "false");
}

#[test]
fn a_missing_template_parameter_is_an_error_even_when_only_validating() {
    let wf = format!(
        "{HEAD}spec:\n  steps:\n  - name: Suite\n    template:\n      name: tools/greet/v1\n{TEMPLATE}"
    );
    let e = match compile_with(&wf, &[], Strictness::Lenient) {
        Ok(_) => panic!("a template parameter without value must be an error"),
        Err(e) => e,
    };
    assert_eq!(e.len(), 1, "one error, no follow-on ones: {e:#?}");
    assert_eq!(e[0].path, "spec.steps[0].template");
    assert!(e[0].message.contains("template `tools/greet/v1`"), "{e:?}");
    assert!(e[0].message.contains("config `who`"), "{e:?}");
}

#[test]
fn a_template_that_uses_itself_is_an_error_not_a_hang() {
    use assay_spec::model::{Step, TemplateRef, TestWorkflow, TestWorkflowTemplate};
    let mut tpl = TestWorkflowTemplate::default();
    tpl.metadata.name = "loop".into();
    tpl.spec.steps.push(Step {
        template: Some(TemplateRef {
            name: "loop".into(),
            ..TemplateRef::default()
        }),
        ..Step::default()
    });
    let mut templates = TemplateSet::new();
    templates.insert(tpl);
    let mut wf = TestWorkflow::default();
    wf.metadata.name = "wf".into();
    wf.spec.steps.push(Step {
        template: Some(TemplateRef {
            name: "loop".into(),
            ..TemplateRef::default()
        }),
        ..Step::default()
    });
    let e = compile(&CompileRequest::new(&wf, &templates)).unwrap_err();
    assert!(
        e.iter().any(|e| e.message.contains("nest too deeply")),
        "{e:#?}"
    );
}

#[test]
fn what_the_host_runtime_does_not_apply_is_said_in_the_plan() {
    let p = plan(
        &format!(
            "{HEAD}spec:\n  services:\n    db:\n      shell: sleep 100\n      logs: failed\n  steps:\n  - shell: 'true'\n    paused: true\n"
        ),
        &[],
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("`paused` steps start at once")),
        "{:?}",
        p.notes
    );
    assert!(
        p.notes.iter().any(|n| n.contains("logs are always kept")),
        "{:?}",
        p.notes
    );
}

/// Compile the first workflow of `yaml` with durations from earlier runs.
fn plan_with_durations(yaml: &str, durations: &[(&str, u64)]) -> Plan {
    let loaded = load("test.yaml", yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let Some(Document::TestWorkflow(workflow)) = loaded.documents.first().map(|d| &d.document)
    else {
        panic!("a workflow");
    };
    let templates = TemplateSet::new();
    let mut req = CompileRequest::new(workflow, &templates);
    req.durations.sources = durations.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    compile(&req).expect("compiles").plan
}

#[test]
fn balanced_shards_carry_their_predicted_load() {
    let yaml = format!(
        "{HEAD}spec:\n  steps:\n  - parallel:\n      count: 2\n      balance: durations\n      shards:\n        files: [a.py, b.py, c.py, d.py]\n      shell: pytest {{{{ join(shard.files, \" \") }}}}\n"
    );
    let durations = [
        ("a.py", 5000),
        ("b.py", 10),
        ("c.py", 20),
        ("d.py", 30),
        ("z.py", 1),
    ];
    let p = plan_with_durations(&yaml, &durations);
    let par = p.root.steps[0].parallel.as_ref().unwrap();
    assert!(par.strategy.balance);
    // Only the durations of the static items travel with the plan.
    assert_eq!(par.strategy.durations.sources.len(), 4);
    let workers = par.workers.as_ref().unwrap();
    assert_eq!(workers[0].predicted_ms, Some(5000));
    assert_eq!(workers[1].predicted_ms, Some(60));
    assert_eq!(shells(&workers[0].root), vec!["pytest a.py"]);
    assert_eq!(shells(&workers[1].root), vec!["pytest b.py c.py d.py"]);
    let json = serde_json::to_value(&workers[0]).unwrap();
    assert_eq!(json["predictedMs"], json!(5000));

    // Without `balance`, Testkube's split and no prediction, whatever the history.
    let plain = plan_with_durations(&yaml.replace("      balance: durations\n", ""), &durations);
    let par = plain.root.steps[0].parallel.as_ref().unwrap();
    assert!(!par.strategy.balance && par.strategy.durations.is_empty());
    let workers = par.workers.as_ref().unwrap();
    assert_eq!(workers[0].predicted_ms, None);
    assert_eq!(shells(&workers[0].root), vec!["pytest a.py b.py"]);

    // A list known only at run time takes every known duration along.
    let dynamic = plan_with_durations(
        &yaml.replace("[a.py, b.py, c.py, d.py]", "'glob(\"*.py\")'"),
        &durations,
    );
    let par = dynamic.root.steps[0].parallel.as_ref().unwrap();
    assert_eq!(par.strategy.durations.sources.len(), 5);
}

/// Issue 14, attack 3: 40 bytes that would build a hundred million values.
const BOMB: &str = r#"{{ len(map(range(10000), "range(10000)")) }}"#;

#[test]
fn security_expression_budget_config_values_given_with_a_run_are_data() {
    // As Testkube's `ApplyConfig` does, a value given with a run is escaped, not evaluated: it
    // reaches the step as the text it is, and the plan holds it escaped so that the runtime,
    // which renders the plan's templates, does not evaluate it either.
    let wf = format!(
        "{HEAD}spec:\n  config:\n    branch: {{type: string}}\n  steps:\n  - shell: echo {{{{ config.branch }}}}\n"
    );
    let p = plan(&wf, &[("branch", BOMB)]);
    let shell = &shells(&p.root)[0];
    assert_eq!(
        assay_expr::render_template(shell, &[]).unwrap(),
        format!("echo {BOMB}")
    );
    assert_eq!(p.config["branch"].value, Some(json!(BOMB)));
}

#[test]
fn defaults_and_template_parameters_are_still_templates() {
    // Written in the YAML by its author, so evaluated, as in Testkube.
    let wf = format!(
        "{HEAD}spec:\n  config:\n    a: {{type: string, default: '{{{{ workflow.name }}}}-x'}}\n  steps:\n  - shell: echo {{{{ config.a }}}}\n"
    );
    assert_eq!(shells(&plan(&wf, &[]).root), vec!["echo wf-x"]);
    let wf = format!(
        "{HEAD}spec:\n  steps:\n  - name: Suite\n    template:\n      name: tools/greet/v1\n      config:\n        who: '{{{{ 1 + 1 }}}}'\n{TEMPLATE}"
    );
    assert!(
        shells(&plan(&wf, &[]).root)
            .iter()
            .any(|s| s.contains("hello 2")),
        "{:?}",
        shells(&plan(&wf, &[]).root)
    );
}

#[test]
fn escaped_braces_are_evaluated_once() {
    // `{{"{{"}}` writes a literal `{{`: the plan keeps it escaped for the runtime's rendering.
    let p = plan(
        &format!("{HEAD}spec:\n  steps:\n  - shell: echo '{{{{\"{{{{\"}}}} 1 + 1 }}}}'\n"),
        &[],
    );
    let shell = &shells(&p.root)[0];
    assert_eq!(
        assay_expr::render_template(shell, &[]).unwrap(),
        "echo '{{ 1 + 1 }}'"
    );
}

#[test]
fn security_expression_budget_in_a_workflow_is_an_error_at_its_field() {
    let e = errors(
        &format!("{HEAD}spec:\n  steps:\n  - shell: echo {BOMB}\n"),
        &[],
    );
    assert_eq!(e[0].path, "spec.steps[0].shell");
    assert!(e[0].message.contains("evaluation budget"), "{e:?}");
    assert!(e[0].message.contains("len(map(range(10000)"), "{e:?}");
}
