//! Races between replicas: reports, outbox readers and claims.

use std::collections::HashSet;
use std::sync::Arc;

use brokkr_core::Error;
use brokkr_core::diagnostics::{ClaimOutcome, DiagnosticRequest};
use brokkr_core::health::Health;
use brokkr_core::model::HealthRecord;
use brokkr_core::store::Store;

use super::rollup::assert_rollup_is_recomputed;
use super::{agent, diagnostic, object, pak, record, secs, stack, t0, world};

/// Writers racing on the same rows through two handles, mixing status changes with
/// same-status updates and out-of-order checks: every row ends with its newest check,
/// the maintained counts equal a recount, and each row's status events form an unbroken
/// chain (each `from` is the previous `to`) ending in its stored status.
pub async fn racing_reports_keep_the_newest_and_exact_counts(
    first: Arc<dyn Store>,
    second: Arc<dyn Store>,
) {
    let s = stack("race");
    first.insert_stack(&s).await.unwrap();
    let mut objects = Vec::new();
    for _ in 0..3 {
        objects.push(
            first
                .insert_deployment_object(&object(s.id))
                .await
                .unwrap()
                .id,
        );
    }
    let mut agents = Vec::new();
    for n in 0..2u8 {
        let a = agent(&format!("racer-{n}"));
        first.insert_agent(&a, &pak(100 + n)).await.unwrap();
        agents.push(a.id);
    }
    let statuses = [
        Health::Healthy,
        Health::Healthy,
        Health::Degraded,
        Health::Failing,
    ];
    // Every report is distinct (its own summary and check time), so each one that is
    // not older than the stored row is written.
    let mut sent: Vec<HealthRecord> = Vec::new();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..6u32 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let mut batches = Vec::new();
        for round in 0..12u32 {
            let n = w * 100 + round;
            let agent_id = agents[(n % 2) as usize];
            let batch: Vec<HealthRecord> = objects
                .iter()
                .enumerate()
                .map(|(k, o)| {
                    // Out of order on purpose: later rounds are not always newer.
                    let at = i64::from((n * 7 + k as u32 * 13) % 97);
                    let mut r = record(
                        agent_id,
                        *o,
                        statuses[((n + k as u32) % 4) as usize],
                        t0() + secs(at),
                    );
                    r.summary.pods_ready = n;
                    r
                })
                .collect();
            sent.extend(batch.iter().cloned());
            batches.push(batch);
        }
        writers.spawn(async move {
            for batch in batches {
                store.upsert_health(&batch, t0()).await.unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    for a in &agents {
        let rows = first.health_of_agent(*a).await.unwrap();
        assert_eq!(rows.len(), objects.len());
        for row in rows {
            let newest = sent
                .iter()
                .filter(|r| {
                    r.agent_id == row.agent_id && r.deployment_object_id == row.deployment_object_id
                })
                .map(|r| r.checked_at)
                .max()
                .unwrap();
            assert_eq!(row.checked_at, newest, "a newer check was overwritten");
            let mut last = None;
            for event in first.events_after(0, 10_000).await.unwrap() {
                if let brokkr_core::events::FleetEvent::HealthChanged {
                    deployment_object_id,
                    agent_id,
                    from,
                    to,
                    ..
                } = event.event
                    && (agent_id, deployment_object_id) == (row.agent_id, row.deployment_object_id)
                {
                    assert_eq!(from, last, "event {} breaks the chain", event.seq);
                    last = Some(to);
                }
            }
            assert_eq!(
                last,
                Some(row.status),
                "the last event is the stored status"
            );
        }
    }
    assert_rollup_is_recomputed(&*first, &agents, "after the race").await;
}

/// Writers on two handles add events concurrently while a reader polls after its cursor:
/// the reader never finds an event below a cursor it has passed (sequence numbers become
/// visible in order), and in the end has seen every event once.
pub async fn outbox_readers_never_skip_an_event(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let s = stack("shop");
    first.insert_stack(&s).await.unwrap();
    let mut writers = Vec::new();
    for n in 0..8u8 {
        let a = agent(&format!("edge-{n}"));
        first.insert_agent(&a, &pak(n)).await.unwrap();
        let o = first.insert_deployment_object(&object(s.id)).await.unwrap();
        let store = if n % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&second)
        };
        writers.push(tokio::spawn(async move {
            for round in 0..25i64 {
                // Every write flips the status: every write is an event.
                let status = if round % 2 == 0 {
                    Health::Failing
                } else {
                    Health::Healthy
                };
                let at = t0() + secs(round);
                store
                    .upsert_health(&[record(a.id, o.id, status, at)], at)
                    .await
                    .unwrap();
            }
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let store = Arc::clone(&second);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = 0;
            loop {
                // Checked before reading: a page read after the writers finished is final.
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let page = store.events_after(cursor, 7).await.unwrap();
                if page.is_empty() {
                    if finished {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    continue;
                }
                for event in page {
                    assert!(
                        event.seq > cursor,
                        "out of order after {cursor}: {}",
                        event.seq
                    );
                    cursor = event.seq;
                    seen.push(event.seq);
                }
            }
            seen
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = reader.await.unwrap();
    let all: Vec<u64> = first
        .events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all.len(), 200, "8 writers × 25 transitions");
    assert_eq!(seen, all, "the polling reader skipped events");
}

/// 50 claimers through two handles of one store race for 100 requests: every request is
/// claimed exactly once.
pub async fn concurrent_claims_have_one_winner(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let (a, _, o) = world(first.as_ref()).await;
    let requests: Vec<DiagnosticRequest> = (0..100).map(|_| diagnostic(o.id, a.id)).collect();
    first.insert_diagnostic_requests(&requests).await.unwrap();
    let ids: Arc<Vec<_>> = Arc::new(requests.iter().map(|r| r.id).collect());
    let mut tasks = Vec::new();
    for claimer in 0..50usize {
        let store = if claimer % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&second)
        };
        let ids = Arc::clone(&ids);
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            // Each claimer walks the requests from its own offset.
            for k in 0..ids.len() {
                let id = ids[(k + claimer * 7) % ids.len()];
                match store.claim_diagnostic(id, a.id, None, t0() + secs(1)).await {
                    Ok((_, ClaimOutcome::Claimed)) => won.push(id),
                    Ok((_, ClaimOutcome::AlreadyHeld)) => panic!("no token, no AlreadyHeld"),
                    Err(Error::Conflict(_)) => {}
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            won
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.unwrap());
    }
    let distinct: HashSet<_> = winners.iter().copied().collect();
    assert_eq!(winners.len(), 100, "every request claimed exactly once");
    assert_eq!(distinct.len(), 100);
}
