//! Live fleet events: an [`EventHub`] the broker publishes to, served as server-sent
//! events at `GET /api/v1/events` (admin), resumable with `Last-Event-ID` from a
//! bounded in-memory ring.
//!
//! The hub is per broker process: with several replicas, a subscriber sees the health
//! changes written through its replica, and every replica's staleness watcher reports
//! staleness changes. A store-backed outbox shared by replicas is future work.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use brokkr_core::auth::Principal;
use brokkr_core::broker::Broker;
use brokkr_core::events::{EventSink, FleetEvent};
use brokkr_core::ids::AgentId;
use brokkr_core::staleness::Staleness;
use brokkr_core::store::{PageRequest, Store};
use tokio::sync::broadcast;

/// One published event and its sequence number (the SSE `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// Sequence number, from 1, increasing.
    pub id: u64,
    /// The event.
    pub event: FleetEvent,
}

/// What a new subscriber gets: the events it missed, and the live feed after them.
pub struct Subscription {
    /// Events after the one the subscriber last saw, oldest first.
    pub backlog: Vec<Numbered>,
    /// Events missed beyond the ring (the subscriber should reload its view).
    pub gap: bool,
    /// Everything published from now on.
    pub live: broadcast::Receiver<Numbered>,
}

struct Ring {
    next: u64,
    events: VecDeque<Numbered>,
}

/// The bounded ring of recent events plus a broadcast channel for live subscribers.
pub struct EventHub {
    capacity: usize,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Numbered>,
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
            capacity,
            ring: Mutex::new(Ring {
                next: 1,
                events: VecDeque::with_capacity(capacity),
            }),
            live,
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes after event `last_seen` (`None`: only new events).
    pub fn subscribe(&self, last_seen: Option<u64>) -> Subscription {
        // Under the ring lock, so nothing is published between the backlog and the
        // live feed.
        let ring = self.ring();
        let live = self.live.subscribe();
        let Some(last) = last_seen else {
            return Subscription {
                backlog: Vec::new(),
                gap: false,
                live,
            };
        };
        let oldest = ring.events.front().map_or(ring.next, |e| e.id);
        // An id this hub never handed out comes from before a restart: everything in
        // the ring is new to that subscriber, and some events are lost.
        let foreign = last >= ring.next;
        Subscription {
            backlog: ring
                .events
                .iter()
                .filter(|e| foreign || e.id > last)
                .cloned()
                .collect(),
            gap: foreign || last + 1 < oldest,
            live,
        }
    }

    /// The newest sequence number handed out (0 before the first event).
    pub fn last_id(&self) -> u64 {
        self.ring().next - 1
    }
}

impl EventSink for EventHub {
    fn publish(&self, event: FleetEvent) {
        let mut ring = self.ring();
        let numbered = Numbered {
            id: ring.next,
            event,
        };
        ring.next += 1;
        if ring.events.len() == self.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(numbered.clone());
        // No subscriber is fine; a slow one lags and is told so.
        let _ = self.live.send(numbered);
    }
}

/// Watches agents' staleness and publishes a change whenever one moves between fresh,
/// stale and lost. The first pass only learns the current states.
pub fn spawn_staleness_watch(
    broker: Broker<dyn Store>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut known: HashMap<AgentId, Staleness> = HashMap::new();
        let mut first = true;
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            match current_staleness(&broker).await {
                Ok(now) => {
                    let at = broker.now();
                    if !first {
                        for (agent, state) in &now {
                            match known.get(agent) {
                                Some(before) if before != state => {
                                    broker.publish(FleetEvent::AgentStalenessChanged {
                                        agent_id: *agent,
                                        from: *before,
                                        to: *state,
                                        at,
                                    });
                                }
                                _ => {}
                            }
                        }
                    }
                    known = now;
                    first = false;
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
    use brokkr_core::ids::AgentId;

    fn event(n: i64) -> FleetEvent {
        FleetEvent::AgentStalenessChanged {
            agent_id: AgentId::new(),
            from: Staleness::Fresh,
            to: Staleness::Stale,
            at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::Duration::seconds(n),
        }
    }

    #[test]
    fn resuming_returns_what_was_missed_and_says_when_the_ring_lost_some() {
        let hub = EventHub::new(3);
        for n in 0..5 {
            hub.publish(event(n));
        }
        assert_eq!(hub.last_id(), 5);
        let s = hub.subscribe(Some(3));
        assert_eq!(s.backlog.iter().map(|e| e.id).collect::<Vec<_>>(), [4, 5]);
        assert!(!s.gap);
        let s = hub.subscribe(Some(1));
        assert_eq!(
            s.backlog.iter().map(|e| e.id).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(s.gap, "event 2 fell out of the ring");
        let s = hub.subscribe(Some(5));
        assert!(s.backlog.is_empty() && !s.gap);
        let s = hub.subscribe(None);
        assert!(s.backlog.is_empty() && !s.gap);
        // An id from before a restart: the whole ring, and a gap.
        let s = hub.subscribe(Some(42));
        assert_eq!(s.backlog.len(), 3);
        assert!(s.gap);
    }

    #[tokio::test]
    async fn live_subscribers_get_new_events_in_order() {
        let hub = EventHub::new(8);
        let mut s = hub.subscribe(None);
        hub.publish(event(1));
        hub.publish(event(2));
        assert_eq!(s.live.recv().await.unwrap().id, 1);
        assert_eq!(s.live.recv().await.unwrap().id, 2);
    }
}
