//! MCP for Assay: the tools an AI coding agent uses to run, watch and debug test workflows,
//! and their stdio transport.
//!
//! Two layers:
//!
//! - [`Tools`] — one method per tool, arguments in ([`args`], whose JSON schemas agents read),
//!   plain text out. Answers are made for agents: compact, bounded, to the point; a failed
//!   run's answer names the innermost failing step, its exit code, the error-like lines of its
//!   output and what to call next, in under 4 KB. Runs go through `assay-runner`, so an
//!   execution started here is recorded exactly like one started by `assay run`.
//! - [`mcp`] — the binding to the rmcp SDK (the only module that names an rmcp type) and
//!   [`serve_stdio`], and [`http_router`]: the same server over streamable HTTP, with the
//!   caller's token role checked per tool call (mounted at `/mcp` by `assay server`).
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{sync::Arc, time::Duration};
//! let store = assay_store::Store::open(assay_store::StoreConfig::new("/tmp/assay")).await?;
//! let tools = Arc::new(assay_mcp::Tools::new(store, assay_mcp::ToolsConfig::default()));
//! assay_mcp::serve_stdio(tools, Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```

pub mod args;
mod error;
pub mod mcp;
mod runs;
mod summary;
mod text;
mod tools;

pub use error::{ToolError, ToolResult};
pub use mcp::{AssayMcp, ServeError, http_router, serve_stdio};
pub use tools::{RunQueue, Tools, ToolsConfig};
