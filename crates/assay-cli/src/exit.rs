//! Exit codes of `assay` (design.md §5). The one place they are defined; `--help` repeats them.

/// The execution passed / the command succeeded.
pub const SUCCESS: u8 = 0;
/// The execution failed or was aborted.
pub const FAILED: u8 = 1;
/// Invalid input or usage (bad YAML, unknown workflow, bad flag).
pub const INVALID: u8 = 2;
/// Could not reach the server, or an internal error.
pub const INTERNAL: u8 = 3;

/// stdout was closed before everything was written (`assay get executions | head -1`): the
/// shell's code for a process ended by SIGPIPE, which is what every other tool gives there.
pub const CLOSED_STDOUT: u8 = 141;

/// Text appended to `--help`.
pub const HELP: &str = "Exit codes:
  0    passed / success
  1    the execution failed or was aborted
  2    invalid input or usage
  3    could not reach the server, or an internal error
  141  stdout was closed before everything was written (e.g. by `| head`)

With a context in use (`assay context use NAME`, or --context NAME / ASSAY_CONTEXT for one
command), run, get, logs, artifacts, abort, rerun, apply and delete work through that server's
API. validate, plan, init, prune, server, token and mcp always work on this machine.";
