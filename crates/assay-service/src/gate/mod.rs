//! Quality gates: rules over one execution or every execution of a commit (the `commit` tag),
//! each with its verdict and evidence. [`Gate::parse`] reads a gate file (errors with line and
//! column), [`evaluate`] judges [`Facts`] without I/O, and [`Service::evaluate_gate`] reads the
//! facts from the store.
//!
//! What is what, from the test cases the executions recorded: a case of the suite
//! [`POLICY_SUITE`] (`assay policy check --junit`) is a policy result, one of [`SECRET_SUITE`]
//! (`assay scan secrets --junit`, the `assay/scan-secrets/v1` template) a secret-scan result,
//! every other case a test (Kyverno test suites run by `assay policy test` included: a failed
//! expectation there is a failing test).
//!
//! The parts: `file.rs` reads a gate file, `rules.rs` judges facts by its rules, `facts.rs`
//! reads the facts from the store; this module renders a verdict as text.

mod facts;
mod file;
mod rules;

pub use facts::*;
pub use file::*;
pub use rules::*;

use assay_api::gate::GateVerdict;

/// The suite of `assay policy check`'s test cases (`assay_policy::check::test_cases`).
pub const POLICY_SUITE: &str = "policy check";
/// The suite of `assay scan secrets`' test cases (`assay_scan::SUITE`).
pub const SECRET_SUITE: &str = "secret scan";
/// Executions of one commit judged, at most.
pub const MAX_EXECUTIONS: u32 = 200;
/// A test's earlier runs read to judge whether it was flaky before.
const FLAKY_HISTORY: u32 = 50;
/// Largest gate file accepted.
pub const MAX_GATE_BYTES: usize = 64 * 1024;

/// The verdict as text (`assay gate`, MCP `evaluate_gate`): what was judged, a line per rule
/// (`PASS`/`FAIL`, the rule, what it found) with its evidence indented below, the notes, and the
/// gate's verdict last.
pub fn render_text(v: &GateVerdict) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let executions: Vec<String> = v
        .executions
        .iter()
        .map(|e| format!("{} {}", e.name, e.status))
        .collect();
    let _ = writeln!(
        out,
        "gate {}on {}: {}",
        v.gate
            .as_deref()
            .map(|g| format!("{g} "))
            .unwrap_or_default(),
        v.target,
        executions.join(", ")
    );
    for r in &v.rules {
        let mark = if r.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "{mark}  {}: {}", r.rule, r.summary);
        for e in &r.evidence {
            let _ = write!(out, "        {}", e.item);
            if let Some(x) = &e.execution {
                let _ = write!(out, " ({x})");
            }
            if let Some(d) = &e.detail {
                let _ = write!(out, ": {d}");
            }
            out.push('\n');
        }
    }
    for n in &v.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let failed = v.rules.iter().filter(|r| !r.passed).count();
    if failed == 0 {
        let _ = writeln!(out, "gate passed: {} rules passed", v.rules.len());
    } else {
        let _ = writeln!(
            out,
            "gate failed: {failed} of {} rules failed",
            v.rules.len()
        );
    }
    out
}

#[cfg(test)]
mod tests;
