//! The one error of the use cases; each adapter renders it its own way (an HTTP status and an
//! `ErrorBody`, an MCP tool error, a CLI message with a hint).

use assay_runner::RunError;
use assay_runner::stored::StoredError;
use assay_store::StoreError;

/// One problem of a rejected document or request, with its place when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the submitted text; 0 when unknown.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
    /// JSON path of the field (`spec.steps[0].shell`), when known.
    pub path: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A document or request that does not check, with each problem.
    #[error("{detail}")]
    Invalid {
        detail: String,
        problems: Vec<Problem>,
    },
    /// A request that cannot be done as asked (the message says why and what to do).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already.
    #[error("{0}")]
    Conflict(String),
    /// A rerun of an execution whose sensitive values (never recorded) would be needed again.
    #[error(
        "{execution} used sensitive values, which are not recorded: {}",
        keys.join(", ")
    )]
    SensitiveNotRecorded {
        execution: String,
        keys: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// A run request that does not compile: every compile error with its JSON path.
    pub fn from_compile(errors: &[assay_spec::resolve::PathError]) -> ServiceError {
        ServiceError::Invalid {
            detail: format!(
                "the workflow does not compile with this request ({} problem(s))",
                errors.len()
            ),
            problems: errors
                .iter()
                .map(|e| Problem {
                    line: 0,
                    column: 0,
                    message: e.message.clone(),
                    hint: e.hint.clone(),
                    path: Some(e.path.clone()),
                })
                .collect(),
        }
    }
}

impl From<RunError> for ServiceError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Invalid(errors) => ServiceError::from_compile(&errors),
            RunError::Store(e) => ServiceError::Store(e),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<StoredError> for ServiceError {
    fn from(e: StoredError) -> Self {
        match e {
            StoredError::Store(e) => ServiceError::Store(e),
            e @ StoredError::DoesNotLoad { .. } => ServiceError::Internal(e.to_string()),
        }
    }
}
