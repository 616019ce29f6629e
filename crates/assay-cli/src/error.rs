//! The two tiers of errors at the binary edge: expected user errors carry an exit code; anything
//! else is an internal error (exit 3).

use std::fmt;

/// An error the user can act on, with the exit code it maps to.
#[derive(Debug)]
pub struct UserError {
    pub code: u8,
    pub message: String,
    pub hint: Option<String>,
}

impl UserError {
    /// Invalid input or usage (exit 2).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: crate::exit::INVALID,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// An error that already printed its own report and only needs to set the exit code.
#[derive(Debug)]
pub struct Reported(pub u8);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Reported {}
