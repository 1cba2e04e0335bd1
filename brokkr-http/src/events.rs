//! Live fleet events, served as server-sent events at `GET /api/v1/events` (admin) and
//! fed to webhook deliveries.
//!
//! Events live in the store's outbox ([`EventStore`](brokkr_core::store::EventStore)),
//! numbered by the store in commit order, so every replica serves the same events under
//! the same ids. Each process runs one relay that polls the outbox and fans new events
//! out to its subscribers through an [`EventHub`]; the hub keeps the most recent ones in
//! a ring so a client reconnecting after a blip is served without a store read. A
//! `Last-Event-ID` older than the ring is resumed from the outbox itself (up to
//! [`RESUME_LIMIT`] events; a gap notice beyond that or past retention).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use brokkr_core::auth::Principal;
use brokkr_core::broker::Broker;
use brokkr_core::events::{FleetEvent, StoredEvent};
use brokkr_core::ids::AgentId;
use brokkr_core::staleness::Staleness;
use brokkr_core::store::{PageRequest, Store};
use tokio::sync::broadcast;

/// One event and its sequence number (the SSE `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// Sequence number in the outbox, increasing.
    pub id: u64,
    /// The event.
    pub event: FleetEvent,
}

impl From<StoredEvent> for Numbered {
    fn from(stored: StoredEvent) -> Self {
        Self {
            id: stored.seq,
            event: stored.event,
        }
    }
}

/// Most events a resuming subscriber is sent from the outbox; beyond, a gap notice.
pub const RESUME_LIMIT: usize = 10_000;

/// How often the relay asks the outbox for new events when there were none.
pub const RELAY_POLL: Duration = Duration::from_millis(200);

/// What a new subscriber gets: the events it missed, and the live feed after them.
pub struct Subscription {
    /// Events after the one the subscriber last saw, oldest first.
    pub backlog: Vec<Numbered>,
    /// Events were missed that can no longer be sent (the subscriber should reload).
    pub gap: bool,
    /// Everything relayed from now on.
    pub live: broadcast::Receiver<Numbered>,
    /// Live events up to this id are skipped: already in `backlog`, or older than what
    /// the subscriber asked for.
    pub after: u64,
}

struct Ring {
    /// The newest id relayed (0 before the first).
    last: u64,
    events: VecDeque<Numbered>,
}

/// The recent events ring plus a broadcast channel for live subscribers, fed by the
/// relay ([`EventHub::ensure_relay`]).
pub struct EventHub {
    capacity: usize,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Numbered>,
    closed: tokio::sync::watch::Sender<bool>,
    relay_started: AtomicBool,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl EventHub {
    /// A hub remembering the last `capacity` events.
    pub fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        let (live, _) = broadcast::channel(capacity);
        Arc::new(Self {
            closed: tokio::sync::watch::Sender::new(false),
            capacity,
            ring: Mutex::new(Ring {
                last: 0,
                events: VecDeque::with_capacity(capacity),
            }),
            live,
            relay_started: AtomicBool::new(false),
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands an event from the outbox to the ring and the live subscribers (the relay's
    /// job; ids must increase).
    pub fn relay(&self, event: Numbered) {
        let mut ring = self.ring();
        if event.id <= ring.last {
            return;
        }
        ring.last = event.id;
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(event.clone());
        // No subscriber is fine; a slow one lags and is told so.
        let _ = self.live.send(event);
    }

    /// Only what is relayed from now on.
    pub fn subscribe_live(&self) -> broadcast::Receiver<Numbered> {
        self.live.subscribe()
    }

    /// Subscribes after the event whose id is `last_seen` (`None`: only new events).
    /// What the ring no longer holds is read from the outbox; an id that is not a
    /// number gets the ring and a gap.
    pub async fn subscribe(
        &self,
        last_seen: Option<&str>,
        broker: &Broker<dyn Store>,
    ) -> brokkr_core::Result<Subscription> {
        // Subscribed before anything is read: whatever is relayed from here on comes
        // through `live`, everything before is in the ring or the outbox.
        let live = self.live.subscribe();
        let (ring_last, oldest, ring_events) = {
            let ring = self.ring();
            let oldest = ring.events.front().map(|e| e.id);
            (ring.last, oldest, ring.events.clone())
        };
        let Some(last_seen) = last_seen else {
            return Ok(Subscription {
                backlog: Vec::new(),
                gap: false,
                live,
                after: ring_last,
            });
        };
        let Ok(last) = last_seen.parse::<u64>() else {
            return Ok(Subscription {
                backlog: ring_events.into_iter().collect(),
                gap: true,
                live,
                after: ring_last,
            });
        };
        if last <= ring_last && oldest.is_some_and(|oldest| last.saturating_add(1) >= oldest) {
            // The ring holds everything after `last`.
            return Ok(Subscription {
                backlog: ring_events.into_iter().filter(|e| e.id > last).collect(),
                gap: false,
                live,
                after: ring_last.max(last),
            });
        }
        // Older than the ring (or the ring is still empty after a restart): the outbox.
        let head = broker.last_event_seq(&Principal::Admin).await?;
        if last > head {
            // Not an id of this outbox (a restarted in-memory broker, a restored
            // database): everything from now on, after a reload.
            return Ok(Subscription {
                backlog: Vec::new(),
                gap: true,
                live,
                after: ring_last,
            });
        }
        if head - last > RESUME_LIMIT as u64 {
            // Too far behind to catch up event by event: reload, then follow live.
            return Ok(Subscription {
                backlog: Vec::new(),
                gap: true,
                live,
                after: head.max(ring_last),
            });
        }
        let mut backlog: Vec<Numbered> = Vec::new();
        let mut cursor = last;
        let mut gap = false;
        loop {
            let page = broker.events_after(&Principal::Admin, cursor, 1000).await?;
            if cursor == last
                && let Some(first) = page.first()
                && first.seq > last.saturating_add(1)
            {
                // Deleted by retention. (A number skipped by a transaction that failed
                // after drawing it looks the same: a needless reload, nothing lost.)
                gap = true;
            }
            let full = page.len() == 1000;
            for event in page {
                cursor = event.seq;
                backlog.push(event.into());
            }
            if !full {
                break;
            }
            if backlog.len() >= RESUME_LIMIT {
                break;
            }
        }
        Ok(Subscription {
            after: cursor.max(ring_last),
            backlog,
            gap,
            live,
        })
    }

    /// Ends every event stream and the relay (on shutdown: open streams would hold it
    /// up).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once [`Self::close`] was called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut closed = self.closed.subscribe();
        async move {
            let _ = closed.wait_for(|c| *c).await;
        }
    }

    /// The newest id relayed (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.ring().last
    }

    /// Starts this process's relay from the broker's outbox unless it runs already
    /// (needs a Tokio runtime). It starts `capacity` events back, so the ring serves
    /// resumes right after a restart, and ends when the hub closes.
    pub fn ensure_relay(self: &Arc<Self>, broker: Broker<dyn Store>) {
        if self.relay_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let hub = self.clone();
        let closed = self.closed();
        tokio::spawn(async move {
            tokio::select! {
                () = hub.run_relay(broker) => {}
                () = closed => {}
            }
        });
    }

    async fn run_relay(&self, broker: Broker<dyn Store>) {
        let mut cursor = loop {
            match broker.last_event_seq(&Principal::Admin).await {
                Ok(last) => break last.saturating_sub(self.capacity as u64),
                Err(error) => {
                    tracing::warn!(%error, "event relay cannot read the outbox yet");
                    tokio::time::sleep(RELAY_POLL * 10).await;
                }
            }
        };
        loop {
            match broker.events_after(&Principal::Admin, cursor, 500).await {
                Ok(page) => {
                    let full = page.len() == 500;
                    for event in page {
                        cursor = event.seq;
                        self.relay(event.into());
                    }
                    if !full {
                        tokio::time::sleep(RELAY_POLL).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "event relay cannot read the outbox");
                    tokio::time::sleep(RELAY_POLL * 10).await;
                }
            }
        }
    }
}

/// Every this many passes the staleness watcher announces every agent again.
const REANNOUNCE_EVERY: u64 = 20;

/// Watches agents' staleness and announces every agent whose state differs from what
/// this watcher last saw (all of them on the first pass) to the store, which writes an
/// event only for a real change: several replicas may watch, each change is one event,
/// and a change that happened while no watcher ran is still reported.
pub fn spawn_staleness_watch(
    broker: Broker<dyn Store>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut known: HashMap<AgentId, Staleness> = HashMap::new();
        let mut ticker = tokio::time::interval(every);
        let mut pass = 0u64;
        loop {
            ticker.tick().await;
            // Now and then every agent is announced again: another replica may have
            // recorded a state this one never saw change (and then gone away).
            if pass.is_multiple_of(REANNOUNCE_EVERY) {
                known.clear();
            }
            pass += 1;
            // As of before the listing: the states are at least this recent.
            let observed_at = broker.now();
            match current_staleness(&broker).await {
                Ok(now) => {
                    for (agent, state) in &now {
                        if known.get(agent) == Some(state) {
                            continue;
                        }
                        match broker
                            .announce_staleness(&Principal::Admin, *agent, *state, observed_at)
                            .await
                        {
                            Ok(_) => {
                                known.insert(*agent, *state);
                            }
                            Err(error) => {
                                tracing::warn!(%error, "staleness change not recorded; retried next pass");
                            }
                        }
                    }
                    known.retain(|agent, _| now.contains_key(agent));
                }
                Err(error) => tracing::warn!(%error, "staleness watch could not list agents"),
            }
        }
    })
}

async fn current_staleness(
    broker: &Broker<dyn Store>,
) -> brokkr_core::Result<HashMap<AgentId, Staleness>> {
    let mut out = HashMap::new();
    let mut after = None;
    loop {
        let page = broker
            .list_agents(&Principal::Admin, PageRequest { limit: 500, after }, None)
            .await?;
        let last = page.items.last().map(|v| v.agent.id.as_uuid());
        let full = page.items.len() == 500;
        for view in page.items {
            out.insert(view.agent.id, view.staleness);
        }
        match (full, last) {
            (true, Some(last)) => after = Some(last),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Numbered {
        Numbered {
            id: n,
            event: FleetEvent::AgentStalenessChanged {
                agent_id: AgentId::new(),
                from: Staleness::Fresh,
                to: Staleness::Stale,
                at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            },
        }
    }

    #[tokio::test]
    async fn live_subscribers_get_new_events_in_order_once() {
        let hub = EventHub::new(8);
        let mut live = hub.subscribe_live();
        hub.relay(event(1));
        hub.relay(event(2));
        hub.relay(event(2));
        hub.relay(event(1));
        assert_eq!(live.recv().await.unwrap().id, 1);
        assert_eq!(live.recv().await.unwrap().id, 2);
        assert!(
            live.try_recv().is_err(),
            "an id relayed twice went out twice"
        );
        assert_eq!(hub.last_id(), 2);
    }
}
