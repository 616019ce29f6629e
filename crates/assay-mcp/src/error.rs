//! The tool layer's one error type.
//!
//! Two tiers, as everywhere in Assay: errors the agent can fix (a wrong name, invalid YAML, a
//! bad pattern), which transports turn into tool results flagged as errors so the agent reads
//! them, and internal errors (the store is gone), which are protocol errors. Every fixable error
//! says what to do next.

use assay_store::StoreError;

/// Why a tool call did not produce its answer.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments are wrong in a way the caller can fix (invalid YAML, bad pattern, bad
    /// combination of arguments).
    #[error("{message}")]
    Invalid {
        /// What is wrong, lowercase, complete enough to act on.
        message: String,
        /// What to do next.
        hint: Option<String>,
    },
    /// The workflow, execution, step or artifact named does not exist.
    #[error("{message}")]
    NotFound {
        /// What was not found.
        message: String,
        /// The names that exist, a did-you-mean, what to call instead.
        hint: Option<String>,
    },
    /// Something the caller cannot fix: the store failed, a task died.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToolError {
    /// An [`ToolError::Invalid`] without a hint.
    pub fn invalid(message: impl Into<String>) -> Self {
        ToolError::Invalid {
            message: message.into(),
            hint: None,
        }
    }

    /// A [`ToolError::NotFound`] without a hint.
    pub fn not_found(message: impl Into<String>) -> Self {
        ToolError::NotFound {
            message: message.into(),
            hint: None,
        }
    }

    /// The same error with `hint` (ignored for internal errors).
    pub fn with_hint(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            ToolError::Invalid { hint, .. } | ToolError::NotFound { hint, .. } => {
                *hint = Some(text.into());
            }
            ToolError::Internal(_) => {}
        }
        self
    }

    /// Whether the caller can fix it (answered as a tool result with `isError: true`).
    pub fn is_fixable(&self) -> bool {
        !matches!(self, ToolError::Internal(_))
    }

    /// The message and its hint, as the agent reads them.
    pub fn to_text(&self) -> String {
        match self {
            ToolError::Invalid {
                message,
                hint: Some(h),
            }
            | ToolError::NotFound {
                message,
                hint: Some(h),
            } => format!("error: {message}\nnext: {h}"),
            other => format!("error: {other}"),
        }
    }
}

impl From<StoreError> for ToolError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ToolError::not_found(format!("{what} not found")),
            StoreError::Invalid(message) => ToolError::invalid(message),
            other => ToolError::Internal(format!("failed to {other}")),
        }
    }
}

/// Result alias of the tool layer.
pub type ToolResult<T = String> = Result<T, ToolError>;
