//! `/metrics` and `/metrics.json`: the broker watched from outside, without
//! authentication (serve them on an internal address or restrict them at the proxy).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use brokkr_core::auth::Principal;
use serde_json::{Value, json};

use crate::AppState;
use crate::problem::ApiError;

/// Each part of a scrape or snapshot gets at most this long.
const BUDGET: Duration = Duration::from_secs(2);

/// Prometheus text format 0.0.4, or OpenMetrics when the `Accept` header asks for it.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let telemetry = &state.telemetry;
    telemetry.refresh(&state.broker, BUDGET).await;
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            telemetry.openmetrics(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            telemetry.text(),
        )
            .into_response()
    }
}

/// One section: its value, or `{"error": ...}` when it failed or took too long.
async fn section<T: serde::Serialize>(work: impl Future<Output = brokkr_core::Result<T>>) -> Value {
    match tokio::time::timeout(BUDGET, work).await {
        Ok(Ok(value)) => {
            serde_json::to_value(value).unwrap_or_else(|e| json!({"error": e.to_string()}))
        }
        Ok(Err(error)) => json!({"error": error.to_string()}),
        Err(_) => json!({"error": format!("not computed within {} ms", BUDGET.as_millis())}),
    }
}

/// The versioned JSON snapshot: every section computed on its own, so one failing part
/// never fails the answer. Read-only. 404 when switched off (`BROKKR_METRICS_JSON=off`).
pub(crate) async fn snapshot(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.metrics_json {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such route"));
    }
    let broker = &state.broker;
    state.telemetry.fleet_snapshot.reading(broker);
    let admin = Principal::Admin;
    // One summary for three sections (computed once, consistent with each other).
    let (fleet, diagnostics) = tokio::join!(
        section(broker.fleet_summary(&admin)),
        section(broker.diagnostic_counts(&admin)),
    );
    let part = |name: &str| match fleet.get(name) {
        Some(value) => value.clone(),
        None => fleet.clone(),
    };
    let (agents, health, queue) = (part("agents"), part("health"), part("queue"));
    Ok(Json(json!({
        "schema_version": 1,
        "generated_at": broker.now(),
        "sections": {
            "agents": agents,
            "health": health,
            "diagnostics": diagnostics,
            "queue": queue,
            "build": {"version": env!("CARGO_PKG_VERSION"), "name": "brokkr"},
        }
    })))
}
