//! The quarantine tools: `list_quarantined_tests`, `quarantine_test`, `unquarantine_test`,
//! over the service's quarantine use cases.

use std::fmt::Write;

use assay_api::quarantine::QuarantineRequest;

use super::Tools;
use super::verdicts::service_err;
use crate::args::{ListQuarantinedTestsArgs, QuarantineTestArgs, UnquarantineTestArgs};
use crate::error::ToolResult;
use crate::text::clip_line;

/// Entries listed at most.
const MAX_LISTED: usize = 100;

impl Tools {
    /// `list_quarantined_tests`: one line per entry.
    pub async fn list_quarantined_tests(&self, args: ListQuarantinedTestsArgs) -> ToolResult {
        let entries = self
            .service()
            .quarantines(args.all.unwrap_or(false))
            .await
            .map_err(service_err)?;
        if entries.is_empty() {
            return Ok("no quarantined tests\n".into());
        }
        let mut out = format!("{} quarantined test(s):\n", entries.len());
        for e in entries.iter().take(MAX_LISTED) {
            let workflow = e.workflow.as_deref().unwrap_or("every workflow");
            let until = match (&e.until, e.active) {
                (Some(u), true) => format!(" until {u}"),
                (Some(u), false) => format!(" expired {u}"),
                (None, _) => String::new(),
            };
            let rule = e
                .rule
                .as_deref()
                .map(|r| format!(" [{r}]"))
                .unwrap_or_default();
            let line = format!("- {} ({workflow}){until}: {}{rule}", e.test, e.reason);
            let _ = writeln!(out, "{}", clip_line(&line, 400));
        }
        if entries.len() > MAX_LISTED {
            let _ = writeln!(out, "… and {} more", entries.len() - MAX_LISTED);
        }
        Ok(out)
    }

    /// `quarantine_test`.
    pub async fn quarantine_test(&self, args: QuarantineTestArgs) -> ToolResult {
        let entry = self
            .service()
            .quarantine(
                &QuarantineRequest {
                    test: args.test,
                    workflow: args.workflow,
                    reason: args.reason,
                    until: args.until,
                },
                Some("mcp"),
            )
            .await
            .map_err(service_err)?;
        Ok(format!(
            "quarantined `{}` in {}{}: it still runs and reports, but a step failing only through quarantined tests passes (its quarantinedFailures name them).\n",
            entry.test,
            entry
                .workflow
                .as_deref()
                .map(|w| format!("workflow `{w}`"))
                .unwrap_or_else(|| "every workflow".into()),
            entry
                .until
                .map(|u| format!(" until {u}"))
                .unwrap_or_default()
        ))
    }

    /// `unquarantine_test`.
    pub async fn unquarantine_test(&self, args: UnquarantineTestArgs) -> ToolResult {
        self.service()
            .unquarantine(&args.test, args.workflow.as_deref())
            .await
            .map_err(service_err)?;
        Ok(format!(
            "lifted the quarantine of `{}`: its failures fail runs again.\n",
            args.test
        ))
    }
}
