//! The error type of the crate's API. Inner modules fail with their own enums
//! (`value::ValueError`, `paths::NotRelative`, `selector::SelectorError`),
//! which become an [`ExprError`] of kind [`ErrorKind::Eval`] with the same message.

use std::ops::Range;

/// What went wrong, so that callers can react without matching on messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The source text is not a valid expression or template.
    Syntax,
    /// Input nested deeper than the engine allows (parser or evaluator).
    TooDeep,
    /// Full evaluation met a variable that no machine knows.
    UnknownVariable(String),
    /// Full evaluation met a function that neither the standard library nor a
    /// machine provides.
    UnknownFunction(String),
    /// An operator or function failed on the values it was given.
    Eval,
    /// Evaluation went over its [`crate::Limits`] (steps or bytes of values).
    Budget,
}

/// An error from parsing or evaluating an expression.
///
/// The message is a lowercase fragment that reads after "failed to …:", e.g.
/// "unexpected `)` at column 7". Syntax errors carry the byte range of the
/// offending text in the source they were parsed from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// The category of the error.
    pub kind: ErrorKind,
    /// Human-readable description, including the position for syntax errors.
    pub message: String,
    /// Byte range into the parsed source, for syntax errors.
    pub span: Option<Range<usize>>,
}

impl ExprError {
    /// A syntax error at `span` of `src`; the message gets the position appended.
    pub(crate) fn syntax(src: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let message = format!("{} at {}", message.into(), position(src, span.start));
        ExprError {
            kind: ErrorKind::Syntax,
            message,
            span: Some(span),
        }
    }

    /// An evaluation error without a source position (resolved expressions are
    /// rebuilt trees, so positions would point at text that no longer exists);
    /// also what a [`crate::Machine::call`] returns when its function fails.
    pub fn eval(message: impl Into<String>) -> Self {
        ExprError {
            kind: ErrorKind::Eval,
            message: message.into(),
            span: None,
        }
    }

    pub(crate) fn too_deep(message: impl Into<String>) -> Self {
        ExprError {
            kind: ErrorKind::TooDeep,
            message: message.into(),
            span: None,
        }
    }

    pub(crate) fn budget(message: impl Into<String>) -> Self {
        ExprError {
            kind: ErrorKind::Budget,
            message: message.into(),
            span: None,
        }
    }

    /// Names the expression whose evaluation went over its budget, once, at
    /// the top: `expression `len(…)` takes more than 1000000 evaluation steps`.
    pub(crate) fn naming(mut self, expr: &crate::Expr) -> Self {
        const SHOWN: usize = 120;
        let text = expr.to_string();
        let shown = match text.char_indices().nth(SHOWN) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        };
        self.message = format!(
            "expression `{shown}` {} (the evaluation budget); simplify it, or use smaller lists",
            self.message
        );
        self
    }

    pub(crate) fn unknown_variable(name: &str) -> Self {
        ExprError {
            kind: ErrorKind::UnknownVariable(name.to_string()),
            message: format!("unknown variable `{name}`"),
            span: None,
        }
    }

    pub(crate) fn unknown_function(name: &str, suggestion: Option<&str>) -> Self {
        let message = match suggestion {
            Some(s) => format!("unknown function `{name}`; did you mean `{s}`?"),
            None => format!("unknown function `{name}`"),
        };
        ExprError {
            kind: ErrorKind::UnknownFunction(name.to_string()),
            message,
            span: None,
        }
    }

    /// Prefixes the message with context, keeping kind and span.
    /// Nesting errors stay short: their context would repeat once per level.
    pub(crate) fn context(mut self, what: impl std::fmt::Display) -> Self {
        if matches!(self.kind, ErrorKind::TooDeep | ErrorKind::Budget) {
            return self;
        }
        self.message = format!("{what}: {}", self.message);
        self
    }
}

/// "column 7", or "line 2, column 3" for multi-line sources (columns count
/// characters, starting at 1).
fn position(src: &str, offset: usize) -> String {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    if src.contains('\n') {
        format!("line {line}, column {column}")
    } else {
        format!("column {column}")
    }
}
