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
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// One server-sent event as a client parses it off the stream.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: the stream is written by axum's `Sse`
pub(crate) struct ServerSentEvent {
    /// The event's id in the outbox (absent on `gap`).
    id: Option<String>,
    /// The event type, e.g. `health.failing`, or `gap`.
    event: Option<String>,
    /// The event as JSON text (`FleetEvent`), or `{"detail": ...}` for `gap`.
    data: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, description = "resume after this event id (an id that is not one of ours gets a `gap` and then what is kept)")),
    responses(
        (status = 200, description = "server-sent events: `health.failing`, `health.degraded`, `health.recovered`, `health.unknown`, `health.reported`, `agent.stale`, `agent.lost`, `agent.fresh` (data: the event as JSON), and `gap` when events were missed", content_type = "text/event-stream", body = ServerSentEvent),
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
    // One slot per stream, freed when the stream ends: past the bound, come back later.
    let key = headers
        .get(axum::http::header::AUTHORIZATION)
        .map_or(0, |v| {
            crate::ratelimit::key_id(v.to_str().unwrap_or_default())
        });
    let Some(slot) = state.streams.try_open(key) else {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many open event streams; try again later",
        )
        .retry_after(5));
    };
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let hub = state.telemetry.events.clone();
    hub.ensure_relay(state.broker.clone());
    let subscription = hub.subscribe(last_seen, &state.broker).await?;
    let mut head = Vec::new();
    if subscription.gap {
        head.push(Ok(gap("events were missed; reload the current state")));
    }
    head.extend(subscription.backlog.iter().map(|e| Ok(sse(e))));
    let closed = hub.closed();
    let live = stream::unfold(
        (subscription.live, subscription.after),
        |(mut live, after)| async move {
            loop {
                match live.recv().await {
                    // Sent from the backlog already, or older than what the subscriber
                    // asked for.
                    Ok(e) if e.id <= after => {}
                    Ok(e) => {
                        let event = sse(&e);
                        return Some((Ok(event), (live, e.id)));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        let detail = format!("{missed} events were missed by a slow reader");
                        return Some((Ok(gap(&detail)), (live, after)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    // Ends when the hub closes, so open streams never hold up a shutdown.
    let events = stream::iter(head)
        .chain(live)
        .take_until(closed)
        // The slot lives as long as the stream.
        .map(move |event| {
            let _held = &slot;
            event
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The live event stream.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(stream_events))
}
