//! Liveness and readiness, outside the API prefix and without authentication.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::problem::ApiError;

/// The process is up and serving.
pub(crate) async fn livez() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long readiness waits for the store. A store that is down often does not refuse
/// at once (a pool retries connecting until its acquire timeout), and a probe that hangs
/// that long keeps a dead replica in the load balancer.
const READY_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// The store is reachable and migrated; 503 otherwise, within [`READY_BUDGET`].
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match tokio::time::timeout(READY_BUDGET, state.broker.store().ping()).await {
        Ok(answer) => answer?,
        Err(_) => {
            return Err(brokkr_core::Error::Unavailable(format!(
                "the store did not answer within {} ms",
                READY_BUDGET.as_millis()
            ))
            .into());
        }
    }
    Ok(Json(json!({"status": "ready"})))
}
