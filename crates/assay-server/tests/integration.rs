//! The integration tests of this crate, in one binary (one link instead of one per file).
//! Add a test file here as a module.

#[macro_use]
mod support;
mod api;
mod execute;
mod gates;
mod hooks;
mod keep_alive;
mod notify;
mod quarantines;
mod schedule;
mod security_http;
mod security_roles;
mod service;
mod testkube_schemas;
mod webhooks;
