//! The analysis as text: what `assay explain` prints and MCP's `why_failed` answers. Bounded: a
//! few KB whatever the execution.

use std::fmt::Write;

use assay_api::analysis::Analysis;

/// The analysis as a short text, most important first: verdict, rule, evidence, failing step
/// and lines, failing tests, the diff against the last pass. `limit` bounds it in bytes.
pub fn render_text(a: &Analysis, limit: usize) -> String {
    let mut out = String::new();
    let e = &a.execution;
    let _ = write!(out, "{} ({})", e.name, e.status);
    if let Some(c) = &e.commit {
        let _ = write!(out, " on commit {c}");
    }
    out.push('\n');
    let Some(v) = &a.verdict else {
        out.push_str("nothing to explain: the execution did not fail\n");
        return out;
    };
    let _ = writeln!(out, "class: {} (rule {})", v.class, v.rule);
    let _ = writeln!(out, "why: {}", v.summary);
    if !v.evidence.is_empty() {
        out.push_str("evidence:\n");
        for line in &v.evidence {
            let _ = writeln!(out, "  - {line}");
        }
    }
    if let Some(s) = &a.failing_step {
        let _ = write!(
            out,
            "failing step: {} [{}] {}",
            s.name.as_deref().unwrap_or(&s.step_ref),
            s.step_ref,
            s.status
        );
        if let Some(code) = s.exit_code {
            let _ = write!(out, ", exit code {code}");
        }
        if let Some(m) = &s.error_message {
            let _ = write!(out, ": {m}");
        }
        out.push('\n');
        for l in &s.lines {
            let _ = writeln!(out, "  {l}");
        }
    }
    if !a.failing_tests.is_empty() {
        out.push_str("failing tests:\n");
        for t in &a.failing_tests {
            let _ = write!(
                out,
                "  - {} [{}] failing {} run{}",
                t.key,
                t.class,
                t.failure_age,
                if t.failure_age == 1 { "" } else { "s" }
            );
            if let Some(x) = &t.first_bad_execution {
                let _ = write!(out, ", first bad {x}");
                if let Some(c) = &t.first_bad_commit {
                    let _ = write!(out, " (commit {c})");
                }
            }
            if let Some(p) = &t.last_pass_execution {
                let _ = write!(out, ", last pass {p}");
            }
            if t.similar_count > 0 {
                let _ = write!(out, ", {} similar earlier failures", t.similar_count);
            }
            out.push('\n');
            if let Some(m) = &t.message {
                let _ = writeln!(out, "    {m}");
            }
        }
        if a.more_failing_tests > 0 {
            let _ = writeln!(out, "  … and {} more", a.more_failing_tests);
        }
    }
    match &a.since_last_pass {
        Some(d) => {
            let _ = writeln!(
                out,
                "since the last pass ({}; {} failed execution{} since):",
                d.last_pass.name,
                a.failures_since_last_pass,
                if a.failures_since_last_pass == 1 {
                    ""
                } else {
                    "s"
                }
            );
            let mut any = false;
            for line in crate::diff::describe(d) {
                let _ = writeln!(out, "  - {line}");
                any = true;
            }
            for t in &d.newly_failing {
                let _ = writeln!(out, "  - newly failing: {t}");
                any = true;
            }
            for c in &d.tags {
                let _ = writeln!(
                    out,
                    "  - tag {}: {} -> {}",
                    c.name,
                    c.before.as_deref().unwrap_or("(unset)"),
                    c.after.as_deref().unwrap_or("(unset)")
                );
                any = true;
            }
            if !any {
                out.push_str("  - nothing changed\n");
            }
        }
        None => {
            let _ = writeln!(
                out,
                "no passing execution of `{}` before this one",
                e.workflow
            );
        }
    }
    crate::lines::clip_text(&out, limit)
}
