//! Webhooks and the events outbox, on one store and across replicas.

use std::sync::Arc;

use brokkr_core::Error;
use brokkr_core::health::Health;
use brokkr_core::ids::AgentId;
use brokkr_core::store::Store;

use super::{agent, pak, record, secs, t0, world};

pub async fn webhooks_are_stored_listed_and_deleted(store: Arc<dyn Store>) {
    let new = |url: &str| brokkr_core::events::NewWebhook {
        url: url.to_owned(),
        secret: "0123456789abcdef-secret".to_owned(),
        events: vec!["health.failing".to_owned(), "agent.lost".to_owned()],
    };
    let first = new("https://a.example/hook").into_webhook(t0());
    let second = new("https://b.example/hook").into_webhook(t0() + secs(1));
    store.insert_webhook(&first).await.unwrap();
    store.insert_webhook(&second).await.unwrap();
    assert!(matches!(
        store.insert_webhook(&first).await,
        Err(Error::Conflict(_))
    ));
    let listed = store.list_webhooks().await.unwrap();
    assert_eq!(listed, [first.clone(), second.clone()]);
    assert_eq!(
        listed[0].secret, "0123456789abcdef-secret",
        "kept for signing"
    );
    assert!(store.delete_webhook(first.id).await.unwrap());
    assert!(!store.delete_webhook(first.id).await.unwrap());
    assert_eq!(store.list_webhooks().await.unwrap(), [second]);
}

pub async fn health_transitions_reach_the_outbox_in_order(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    assert_eq!(store.last_event_seq().await.unwrap(), 0);
    let write = |status, at| {
        let store = Arc::clone(&store);
        let r = record(a.id, o.id, status, at);
        async move { store.upsert_health(&[r], t0() - secs(150)).await.unwrap() }
    };
    write(Health::Failing, t0()).await; // first verdict: an event
    write(Health::Failing, t0() + secs(10)).await; // unchanged: none
    let refreshed = store
        .upsert_health(
            &[record(a.id, o.id, Health::Failing, t0() + secs(20))],
            t0() + secs(30),
        )
        .await
        .unwrap();
    assert!(
        refreshed[0].is_written(),
        "rewritten, same status: no event"
    );
    write(Health::Healthy, t0() + secs(40)).await; // a change: an event
    write(Health::Degraded, t0() + secs(5)).await; // older: ignored, none
    let events = store.events_after(0, 100).await.unwrap();
    let shapes: Vec<_> = events
        .iter()
        .map(|e| match &e.event {
            brokkr_core::events::FleetEvent::HealthChanged {
                deployment_object_id,
                agent_id,
                from,
                to,
                top_finding,
                ..
            } => {
                assert_eq!((*deployment_object_id, *agent_id), (o.id, a.id));
                assert_eq!(top_finding.as_deref(), Some("CrashLoopBackOff"));
                (*from, *to)
            }
            other @ brokkr_core::events::FleetEvent::AgentStalenessChanged { .. } => {
                panic!("unexpected {other:?}")
            }
        })
        .collect();
    assert_eq!(
        shapes,
        [
            (None, Health::Failing),
            (Some(Health::Failing), Health::Healthy)
        ]
    );
    assert!(events[0].seq > 0 && events[1].seq > events[0].seq);
    assert_eq!(store.last_event_seq().await.unwrap(), events[1].seq);
    assert_eq!(
        store.events_after(events[0].seq, 100).await.unwrap(),
        events[1..]
    );
    assert_eq!(store.events_after(0, 1).await.unwrap(), events[..1]);
    // Retention: events before a time are deleted, the rest stay.
    assert_eq!(store.delete_events_before(t0() + secs(1)).await.unwrap(), 1);
    assert_eq!(store.events_after(0, 100).await.unwrap(), events[1..]);
}

/// Several replicas announce the same staleness change and claim the same deliveries
/// at once: one event per change, one claim per delivery.
pub async fn outbox_decisions_hold_across_replicas(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    use brokkr_core::staleness::Staleness;
    let a = agent("edge-1");
    first.insert_agent(&a, &pak(1)).await.unwrap();
    // The first announcement only records the state; so does its repeat on the other
    // replica, and an unknown agent's.
    for (store, agent, state) in [
        (&first, a.id, Staleness::Fresh),
        (&second, a.id, Staleness::Fresh),
        (&first, AgentId::new(), Staleness::Lost),
    ] {
        let announced = store.announce_staleness(agent, state, t0()).await.unwrap();
        assert_eq!(announced, None, "{agent} {state:?}");
    }
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = if n % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&second)
        };
        let agent = a.id;
        tasks.push(tokio::spawn(async move {
            store
                .announce_staleness(agent, Staleness::Stale, t0() + secs(100))
                .await
                .unwrap()
        }));
    }
    let mut announced = Vec::new();
    for task in tasks {
        announced.extend(task.await.unwrap());
    }
    assert_eq!(
        announced.len(),
        1,
        "one event for one change: {announced:?}"
    );
    assert_eq!(
        announced[0].event,
        brokkr_core::events::FleetEvent::AgentStalenessChanged {
            agent_id: a.id,
            from: Staleness::Fresh,
            to: Staleness::Stale,
            at: t0() + secs(100),
        }
    );
    assert_eq!(first.events_after(0, 10).await.unwrap(), announced);
    // A slow replica's older observation does not undo the newer one.
    assert_eq!(
        first
            .announce_staleness(a.id, Staleness::Fresh, t0() + secs(50))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        second
            .announce_staleness(a.id, Staleness::Stale, t0() + secs(150))
            .await
            .unwrap(),
        None,
        "still stale: no change"
    );
    let back = second
        .announce_staleness(a.id, Staleness::Fresh, t0() + secs(200))
        .await
        .unwrap()
        .expect("a change back is a change");
    assert!(back.seq > announced[0].seq);

    let hook = brokkr_core::events::NewWebhook {
        url: "https://a.example/hook".to_owned(),
        secret: "0123456789abcdef-secret".to_owned(),
        events: vec!["agent.stale".to_owned()],
    }
    .into_webhook(t0());
    first.insert_webhook(&hook).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = if n % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&second)
        };
        let (id, seq) = (hook.id, announced[0].seq);
        tasks.push(tokio::spawn(async move {
            store.claim_event_delivery(id, seq, t0()).await.unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1, "one replica delivers");
    assert!(
        first
            .claim_event_delivery(hook.id, back.seq, t0())
            .await
            .unwrap()
    );
    assert!(
        !first
            .claim_event_delivery(brokkr_core::ids::WebhookId::new(), back.seq, t0())
            .await
            .unwrap(),
        "no such webhook: nothing to deliver"
    );
    assert!(
        !first
            .claim_event_delivery(hook.id, back.seq + 1000, t0())
            .await
            .unwrap(),
        "no such event: nothing to deliver"
    );
    // Retention takes the events and their claims.
    assert_eq!(
        first.delete_events_before(t0() + secs(1000)).await.unwrap(),
        2
    );
    assert!(
        !second
            .claim_event_delivery(hook.id, back.seq, t0())
            .await
            .unwrap()
    );
}
