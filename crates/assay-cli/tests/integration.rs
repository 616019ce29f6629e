//! The integration tests of this crate, in one binary (one link instead of one per file).
//! Add a test file here as a module.

#[macro_use]
mod run_support;
mod agents;
mod builtin_templates;
mod client_cli;
mod confirmations;
mod containers;
mod crd_mode;
mod dashboard;
mod deploy;
mod explain;
mod gate_cli;
mod git_credentials;
mod git_pull_requests;
mod git_triggers;
mod history_cli;
mod init_cli;
mod insights;
mod isolation;
mod junit_and_rerun;
mod kube_runtime;
mod lifecycle;
mod llm;
mod mcp;
mod output_snapshots;
mod pod_manifests;
mod pod_run;
mod pod_static;
mod policy_cli;
mod quarantine_cli;
mod real_suite;
mod rerun_failed;
mod scan_cli;
mod secrets_cli;
mod security_artifacts;
mod server_cli;
mod triggers_cli;
mod validate_cli;
mod workflows;
