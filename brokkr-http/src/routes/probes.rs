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

/// The store is reachable and migrated; 503 otherwise.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.broker.store().ping().await?;
    Ok(Json(json!({"status": "ready"})))
}
