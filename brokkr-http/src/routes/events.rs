//! `GET /api/v1/events`: fleet events as server-sent events (admin).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::events::Numbered;
use crate::extract::Caller;
use crate::problem::{ApiError, ErrorResponses};

fn sse(numbered: &Numbered) -> Event {
    let event = Event::default()
        .id(numbered.id.to_string())
        .event(numbered.event.name());
    event
        .json_data(&numbered.event)
        .unwrap_or_else(|_| Event::default().comment("unencodable event"))
}

fn gap(detail: &str) -> Event {
    Event::default()
        .event("gap")
        .data(json!({"detail": detail}).to_string())
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(("Last-Event-ID" = Option<u64>, Header, description = "resume after this event")),
    responses(
        (status = 200, description = "server-sent events: `health.failing`, `health.degraded`, `health.recovered`, `health.unknown`, `health.reported`, `agent.stale`, `agent.lost`, `agent.fresh` (data: the event as JSON), and `gap` when events were missed", content_type = "text/event-stream", body = String),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stream_events(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    who.require_admin()?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let subscription = state.telemetry.events.subscribe(last_seen);
    let after = subscription
        .backlog
        .last()
        .map_or(last_seen.unwrap_or(0), |e| e.id);
    let mut head = Vec::new();
    if subscription.gap {
        head.push(Ok(gap("events were missed; reload the current state")));
    }
    head.extend(subscription.backlog.iter().map(|e| Ok(sse(e))));
    let live = stream::unfold((subscription.live, after), |(mut live, after)| async move {
        loop {
            match live.recv().await {
                // Already sent from the backlog.
                Ok(e) if e.id <= after => {}
                Ok(e) => return Some((Ok(sse(&e)), (live, e.id))),
                Err(RecvError::Lagged(missed)) => {
                    let detail = format!("{missed} events were missed by a slow reader");
                    return Some((Ok(gap(&detail)), (live, after)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream::iter(head).chain(live)).keep_alive(KeepAlive::default()))
}
