//! Quarantined tests on the wire: `GET /v1/quarantines`, `POST /v1/quarantines`,
//! `DELETE /v1/quarantines/{test}`, the CLI's `-o json` and the MCP tools.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A quarantine entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineEntry {
    /// A test key (`class::name`) or bare name, as `assay get tests` shows it.
    pub test: String,
    /// The workflow it applies to; absent: every workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    pub reason: String,
    /// When it stops applying (RFC 3339); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Whether it applies now (not expired).
    pub active: bool,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// For automatic entries: the flaky rule that fired, with its evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The body of `POST /v1/quarantines`: quarantine a test (replacing its entry for the same
/// workflow).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuarantineRequest {
    /// The test: `class::name` as `assay get tests` shows it, or its bare name.
    #[schema(min_length = 1)]
    pub test: String,
    /// Absent: every workflow.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Required, not empty: why the test is quarantined.
    #[schema(min_length = 1)]
    pub reason: String,
    /// RFC 3339 or `YYYY-MM-DD` (00:00 UTC that day); absent: no expiry.
    #[serde(default)]
    pub until: Option<String>,
}
