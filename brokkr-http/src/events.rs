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
    /// Live events up to this sequence number were already in the ring when
    /// subscribing (delivered through `backlog`, or older than what was asked for).
    pub after: u64,
}

struct Ring {
    next: u64,
    events: VecDeque<Numbered>,
}

/// The bounded ring of recent events plus a broadcast channel for live subscribers.
pub struct EventHub {
    /// Random per process: event ids are `<instance>-<sequence>`, so an id from another
    /// replica or from before a restart is recognised as foreign.
    instance: String,
    capacity: usize,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Numbered>,
    closed: tokio::sync::watch::Sender<bool>,
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
        // Unique across processes is what matters, not secrecy.
        let instance = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        Arc::new(Self {
            instance,
            closed: tokio::sync::watch::Sender::new(false),
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

    /// The id of event `sequence` as subscribers see it: `<instance>-<sequence>`.
    pub fn event_id(&self, sequence: u64) -> String {
        format!("{}-{sequence}", self.instance)
    }

    /// Subscribes after the event whose id is `last_seen` (`None`: only new events).
    /// An id this hub did not hand out (another replica's, or from before a restart)
    /// gets the whole ring and a gap.
    pub fn subscribe(&self, last_seen: Option<&str>) -> Subscription {
        // Under the ring lock, so nothing is published between the backlog and the
        // live feed.
        let ring = self.ring();
        let live = self.live.subscribe();
        let after = ring.next - 1;
        let Some(last_seen) = last_seen else {
            return Subscription {
                backlog: Vec::new(),
                gap: false,
                live,
                after,
            };
        };
        let ours = last_seen
            .rsplit_once('-')
            .filter(|(instance, _)| *instance == self.instance)
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .filter(|n| *n < ring.next);
        let oldest = ring.events.front().map_or(ring.next, |e| e.id);
        let (from, gap) = match ours {
            Some(last) => (last, last + 1 < oldest),
            None => (0, true),
        };
        Subscription {
            backlog: ring
                .events
                .iter()
                .filter(|e| e.id > from)
                .cloned()
                .collect(),
            gap,
            live,
            after,
        }
    }

    /// Ends every event stream (on shutdown: open streams would hold it up).
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
        let ids = |s: &Subscription| s.backlog.iter().map(|e| e.id).collect::<Vec<_>>();
        let s = hub.subscribe(Some(&hub.event_id(3)));
        assert_eq!(ids(&s), [4, 5]);
        assert!(!s.gap);
        assert_eq!(s.after, 5);
        let s = hub.subscribe(Some(&hub.event_id(1)));
        assert_eq!(ids(&s), [3, 4, 5]);
        assert!(s.gap, "event 2 fell out of the ring");
        let s = hub.subscribe(Some(&hub.event_id(5)));
        assert!(s.backlog.is_empty() && !s.gap);
        let s = hub.subscribe(None);
        assert!(s.backlog.is_empty() && !s.gap);
        // Another replica's id, one from before a restart, or garbage: the whole ring
        // and a gap.
        for foreign in ["0badcafe-3", &hub.event_id(42), "3", "nonsense"] {
            let s = hub.subscribe(Some(foreign));
            assert_eq!(ids(&s), [3, 4, 5], "{foreign}");
            assert!(s.gap, "{foreign}");
        }
    }

    #[test]
    fn after_a_restart_an_old_id_still_gets_every_new_event() {
        // A fresh process: empty ring, and the client remembers an id of the old one.
        let hub = EventHub::new(8);
        let s = hub.subscribe(Some("deadbeef-42"));
        assert!(s.gap);
        assert_eq!(s.after, 0, "live events from 1 on are delivered");
        hub.publish(event(1));
        let mut live = s.live;
        assert_eq!(live.try_recv().unwrap().id, 1);
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
