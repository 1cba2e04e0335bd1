//! The core error type.
//!
//! Every variant maps to exactly one API outcome, so the HTTP layer translates errors
//! without inspecting messages: `Invalid` → 422, `NotFound` → 404, `Conflict` → 409,
//! `Gone` → 410, `Forbidden` → 403, `Unauthorized` → 401, `Unavailable` → 503.

use std::fmt;

/// Result with the core [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One field that failed validation and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Dotted path of the offending field, e.g. `snapshot.cluster_cpu_available`.
    pub field: String,
    /// Human-readable reason, e.g. `must not exceed cluster_cpu_capacity`.
    pub reason: String,
}

impl FieldError {
    /// A field error for `field` with `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is well-formed but semantically invalid (one entry per bad field).
    #[error("invalid input: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// The addressed entity does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Entity kind, e.g. `agent`.
        kind: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// The request conflicts with the entity's current state (e.g. already claimed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The entity existed but has expired.
    #[error("gone: {0}")]
    Gone(String),
    /// The caller is authenticated but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The caller could not be authenticated.
    #[error("unauthorized")]
    Unauthorized,
    /// A dependency (the store) is unreachable; the caller may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// A single-field [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, reason)])
    }

    /// An [`Error::NotFound`] for `kind` with `id`.
    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects field errors while validating a value, so a caller sees every problem at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field`.
    pub fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError::new(field, reason));
    }

    /// Records a violation when `bad` holds.
    pub fn check(&mut self, bad: bool, field: impl Into<String>, reason: impl Into<String>) {
        if bad {
            self.push(field, reason);
        }
    }

    /// Adds the violations of a nested value, prefixing their fields with `prefix.`.
    pub fn nest(&mut self, prefix: &str, result: Result<()>) {
        if let Err(Error::Invalid(errors)) = result {
            self.0.extend(
                errors
                    .into_iter()
                    .map(|e| FieldError::new(format!("{prefix}.{}", e.field), e.reason)),
            );
        }
    }

    /// `Ok(())` when nothing was recorded, else [`Error::Invalid`] with every violation.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.0))
        }
    }
}
