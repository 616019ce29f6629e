//! Problems found while loading and validating documents, each with a file, a 1-based line and
//! column, a message written as a lowercase fragment and an optional hint.
//!
//! `Display` gives the user-facing form, one problem per line plus an indented hint line:
//!
//! ```text
//! flows/api.yaml:12:7: unknown field `shel`
//!   hint: did you mean `shell`?
//! flows/api.yaml:30:5: warning: duplicate key `container`; the last one wins (as Kubernetes does)
//! ```

use std::fmt;

/// Whether a problem makes its document invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The document is accepted; the user should still hear about it.
    Warning,
    /// The document is invalid.
    Error,
}

/// One problem with a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (printed as given).
    pub file: String,
    /// 1-based line; 0 only when nothing better is known.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// Lowercase fragment, no trailing period.
    pub message: String,
    /// What to do about it, when something helps.
    pub hint: Option<String>,
    pub severity: Severity,
    /// Index of the YAML document in its file (0-based), when the problem belongs to one.
    pub document: Option<usize>,
    /// JSON path of the field the problem is about (`spec.steps[0].shell`), when known.
    pub path: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
            hint: None,
            severity: Severity::Error,
            document: None,
            path: None,
        }
    }

    pub fn warning(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, line, column, message)
        }
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    #[must_use]
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    #[must_use]
    pub fn in_document(mut self, index: usize) -> Self {
        self.document = Some(index);
        self
    }

    #[must_use]
    pub fn at_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.file,
            self.line.max(1),
            self.column.max(1)
        )?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Whether `d`, found by a later phase, adds nothing to the `earlier` problems: the same message
/// on the same line, another problem of a field already reported, or a problem of a node that
/// holds a field reported before (the node was checked with that field left out, so "the step
/// does nothing" after an unknown `shel` is a consequence, not news).
pub fn is_follow_on(earlier: &[Diagnostic], d: &Diagnostic) -> bool {
    earlier.iter().any(|e| {
        if e.line == d.line && e.message == d.message {
            return true;
        }
        let (Some(ep), Some(dp)) = (&e.path, &d.path) else {
            return false;
        };
        e.is_error()
            && e.document == d.document
            && (ep == dp
                || ep.len() > dp.len()
                    && ep.starts_with(dp.as_str())
                    && matches!(ep.as_bytes()[dp.len()], b'.' | b'['))
    })
}

/// Sort diagnostics into file order (line, then column), keeping the order of equal positions.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.line, d.column));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_with_hint_prints_two_lines() {
        let d = Diagnostic::error("a.yaml", 3, 7, "unknown field `shel`")
            .with_hint("did you mean `shell`?");
        assert_eq!(
            d.to_string(),
            "a.yaml:3:7: unknown field `shel`\n  hint: did you mean `shell`?"
        );
    }

    #[test]
    fn warning_is_marked() {
        let d = Diagnostic::warning("a.yaml", 1, 1, "duplicate key `x`");
        assert_eq!(d.to_string(), "a.yaml:1:1: warning: duplicate key `x`");
        assert!(!d.is_error());
    }

    #[test]
    fn sort_is_by_position_and_stable() {
        let mut v = vec![
            Diagnostic::error("f", 5, 1, "b"),
            Diagnostic::error("f", 2, 9, "a"),
            Diagnostic::error("f", 5, 1, "c"),
        ];
        sort(&mut v);
        let m: Vec<_> = v.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(m, ["a", "b", "c"]);
    }
}
