//! How Kubernetes API failures reach the agent: as [`ProbeError`]s for reads and as
//! categorized [`ApplyError`]s for writes.

use brokkr_core::model::FailureReason;
use brokkr_core::probe::{ApplyError, ProbeError};

/// Errors of this crate's own setup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No kubeconfig and not in a cluster, or the config is unusable.
    #[error("cannot configure the Kubernetes client: {0}")]
    Config(#[source] kube::Error),
}

/// `Result` of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The HTTP status of an API error, if the API server answered.
pub(crate) fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A read failure, saying what was being read.
pub(crate) fn probe_error(what: &str, error: &kube::Error) -> ProbeError {
    let detail = format!("{what}: {error}");
    match status_code(error) {
        Some(403) => ProbeError::Forbidden(detail),
        Some(404) => ProbeError::NotFound(detail),
        Some(408 | 504) => ProbeError::Timeout(detail),
        // 401: the agent's own token was refused (expired or rotated); the cluster
        // cannot be read right now, which is no verdict on the object.
        Some(401 | 429 | 500..=599) => ProbeError::Unavailable(detail),
        Some(_) => ProbeError::Invalid(detail),
        None => match error {
            kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => ProbeError::Invalid(detail),
            _ => ProbeError::Unavailable(detail),
        },
    }
}

/// A write failure in the categories a delivery reports.
pub(crate) fn apply_error(what: &str, error: &kube::Error) -> ApplyError {
    let reason = match status_code(error) {
        Some(400 | 404 | 405 | 415 | 422) => FailureReason::InvalidManifest,
        Some(401 | 403) => FailureReason::Forbidden,
        Some(409) => FailureReason::Conflict,
        Some(408 | 504) => FailureReason::Timeout,
        Some(429 | 500..=599) => FailureReason::ApiUnavailable,
        Some(_) => FailureReason::Other,
        None => match error {
            kube::Error::SerdeError(_) => FailureReason::Other,
            _ => FailureReason::ApiUnavailable,
        },
    };
    ApplyError::new(reason, format!("{what}: {error}"))
}
