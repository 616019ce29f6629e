//! `assay run … --repeat-new N`: after the run, the tests new on this commit run N more times
//! (as Datadog's early flake detection does), each time as an execution of its own with the
//! same tags (so the flaky rule of `assay get flaky` sees every result), selected through
//! `execution.selectedTests`. A new test that fails in some runs and passes in others is
//! reported flaky, with the runs as evidence, and the command exits 1.

use assay_reports::CaseStatus;
use assay_service::selection;
use assay_spec::TemplateSet;
use assay_store::{ExecutionRef, Store};
use indexmap::IndexMap;
use serde_json::{Value, json};

use super::run::{RunInputs, Target, execute};
use crate::error::UserError;
use crate::exit;

/// Refuse (exit 2) a workflow whose plan does not change with `execution.selectedTests`: it
/// would run every test, not the selected ones. `flag` names the option for the message.
pub fn require_selection(
    target: &Target,
    templates: &TemplateSet,
    config: &[(String, String)],
    tests: &[Value],
    flag: &str,
) -> anyhow::Result<()> {
    let config: IndexMap<String, Value> = config
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    match selection::uses_selected_tests(&target.workflow, templates, &config, tests) {
        selection::Selection::Used => return Ok(()),
        selection::Selection::Fails(errors) => {
            return Err(UserError::invalid(format!(
                "workflow `{}` does not compile with the selected tests: {}",
                target.workflow.metadata.name,
                errors.join("; ")
            ))
            .with_hint(
                "`testSelector` refuses a test it cannot select exactly rather than run more; \
                 see the README's \"Rerun only what failed\" for what each tool needs",
            )
            .into());
        }
        selection::Selection::Unused => {}
    }
    Err(UserError::invalid(format!(
        "workflow `{}` does not use `execution.selectedTests`, so `{flag}` would run every test \
         instead of the selected ones",
        target.workflow.metadata.name
    ))
    .with_hint(
        "give the tests to the tool in the step that runs it, e.g. `shell: pytest \
         {{ testSelector(\"pytest\", execution.selectedTests) }}` (tools: pytest, go, jest, \
         vitest, playwright, nextest; see the README's \"Rerun only what failed\")",
    )
    .into())
}

/// A stand-in test for checking, before anything runs, that the workflow uses the selection.
fn probe() -> Vec<Value> {
    vec![json!({
        "name": "test_probe",
        "class": "tests.test_probe",
        "suite": "probe",
        "file": "tests/test_probe.py",
    })]
}

pub async fn run(
    inputs: RunInputs,
    store: &Store,
    templates: &TemplateSet,
    target: Target,
    times: u32,
) -> anyhow::Result<u8> {
    require_selection(&target, templates, &inputs.config, &probe(), "--repeat-new")?;
    let again = |t: &Target| Target {
        workflow: t.workflow.clone(),
        display: t.display.clone(),
        doc: t.doc.clone(),
    };
    let main = execute(&inputs, store, templates, again(&target)).await?;
    let new = match selection::new_cases(store, &main.id).await? {
        None => {
            eprintln!(
                "\nrepeat-new: this workflow has no test history on another commit, so no test is \
                 new yet (this run is the baseline)"
            );
            return Ok(main.code);
        }
        Some(new) if new.is_empty() => {
            eprintln!("\nrepeat-new: no test is new on this commit");
            return Ok(main.code);
        }
        Some(new) => new,
    };
    eprintln!(
        "\nrepeat-new: {} new test{} on this commit, running {} more time{}: {}",
        new.len(),
        plural(new.len()),
        times,
        plural(times as usize),
        new.iter()
            .map(|c| c.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut runs = vec![(main.name.clone(), main.id.clone())];
    let mut worst = main.code;
    for i in 1..=times {
        let mut tags = inputs.tags.clone();
        tags.retain(|(k, _)| k != "repeat-of" && k != "repeat");
        tags.push(("repeat-of".into(), main.name.clone()));
        tags.push(("repeat".into(), format!("{i}/{times}")));
        let repeat = RunInputs {
            config: inputs.config.clone(),
            tags,
            // The same change: the same provenance.
            inferred: inputs.inferred.clone(),
            secrets: inputs.secrets.clone(),
            output: None,
            quiet: inputs.quiet,
            junit: None,
            selected_tests: new.iter().map(selection::selected).collect(),
        };
        let done = execute(&repeat, store, templates, again(&target)).await?;
        worst = worst.max(done.code);
        runs.push((done.name, done.id));
    }

    // Each new test's result in every run, in order.
    let mut results: Vec<Vec<Option<CaseStatus>>> = vec![Vec::new(); new.len()];
    for (_, id) in &runs {
        let cases = store.test_cases(&ExecutionRef::Id(id.clone()), &[]).await?;
        for (i, test) in new.iter().enumerate() {
            // The last result counts (a step retry runs a test again).
            let status = cases
                .iter()
                .rev()
                .find(|c| c.key == test.key)
                .map(|c| c.case.status);
            results[i].push(status);
        }
    }
    let mut flaky = 0;
    eprintln!(
        "\nnew tests, {} runs each ({}):",
        runs.len(),
        runs.iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (test, statuses) in new.iter().zip(&results) {
        let failed = statuses
            .iter()
            .filter(|s| matches!(s, Some(CaseStatus::Failed | CaseStatus::Error)))
            .count();
        let passed = statuses
            .iter()
            .filter(|s| matches!(s, Some(CaseStatus::Passed)))
            .count();
        let missing = statuses.iter().filter(|s| s.is_none()).count();
        let verdict = if failed > 0 && passed > 0 {
            flaky += 1;
            "flaky"
        } else if failed > 0 {
            "failing"
        } else if missing > 0 {
            "not run"
        } else {
            "stable"
        };
        let evidence = runs
            .iter()
            .zip(statuses)
            .map(|((name, _), s)| match s {
                Some(s) => format!("{name} {}", s.as_str()),
                None => format!("{name} did not run it"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        eprintln!(
            "  {verdict:<8} {}  failed {failed} of {}: {evidence}",
            test.key,
            statuses.len()
        );
    }
    if flaky > 0 {
        eprintln!(
            "\nerror: {flaky} new test{} {} flaky: {} failed in some runs and passed in others",
            plural(flaky),
            if flaky == 1 { "is" } else { "are" },
            if flaky == 1 { "it" } else { "each" },
        );
        return Ok(exit::FAILED);
    }
    Ok(worst)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
