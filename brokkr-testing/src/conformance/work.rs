//! Work orders, health upserts and diagnostics.

use std::sync::Arc;

use brokkr_core::Error;
use brokkr_core::diagnostics::{ClaimOutcome, DiagnosticPolicy, DiagnosticStatus};
use brokkr_core::health::Health;
use brokkr_core::ids::WorkOrderId;
use brokkr_core::model::{DiagnosticOutcome, WorkOrder, WorkOrderStatus};
use brokkr_core::store::{ResultOutcome, Store, UpsertOutcome};

use super::{agent, bundle, diagnostic, object, pak, record, secs, t0, world};

pub async fn work_orders_are_claimed_once(store: Arc<dyn Store>) {
    let (a, _, _) = world(store.as_ref()).await;
    let other = agent("other");
    store.insert_agent(&other, &pak(7)).await.unwrap();
    let order = WorkOrder {
        id: WorkOrderId::new(),
        agent_id: a.id,
        kind: "restart".into(),
        payload: serde_json::json!({"deployment": "web"}),
        status: WorkOrderStatus::Pending,
        created_at: t0(),
        claimed_at: None,
        completed_at: None,
    };
    store.insert_work_order(&order).await.unwrap();
    assert!(matches!(
        store.insert_work_order(&order).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.open_work_orders(a.id).await.unwrap(),
        vec![order.clone()]
    );
    assert!(matches!(
        store.claim_work_order(order.id, other.id, t0()).await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        store.finish_work_order(order.id, a.id, true, t0()).await,
        Err(Error::Conflict(_))
    ));
    let claimed = store
        .claim_work_order(order.id, a.id, t0() + secs(1))
        .await
        .unwrap();
    assert_eq!(claimed.status, WorkOrderStatus::Claimed);
    assert!(matches!(
        store.claim_work_order(order.id, a.id, t0()).await,
        Err(Error::Conflict(_))
    ));
    let done = store
        .finish_work_order(order.id, a.id, false, t0() + secs(2))
        .await
        .unwrap();
    assert_eq!(done.status, WorkOrderStatus::Failed);
    assert_eq!(done.completed_at, Some(t0() + secs(2)));
    assert!(store.open_work_orders(a.id).await.unwrap().is_empty());
    assert!(matches!(
        store.claim_work_order(WorkOrderId::new(), a.id, t0()).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn health_upserts_skip_unchanged_and_never_overwrite_newer(store: Arc<dyn Store>) {
    let (a, s, o) = world(store.as_ref()).await;
    let o2 = store.insert_deployment_object(&object(s.id)).await.unwrap();
    let first = record(a.id, o.id, Health::Failing, t0());
    let outcomes = store
        .upsert_health(
            &[first.clone(), record(a.id, o2.id, Health::Healthy, t0())],
            t0() - secs(150),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            UpsertOutcome::Accepted { previous: None },
            UpsertOutcome::Accepted { previous: None }
        ]
    );

    // Same verdict, recent stored row: unchanged and not rewritten.
    let same = record(a.id, o.id, Health::Failing, t0() + secs(60));
    let outcome = store.upsert_health(&[same], t0()).await.unwrap();
    assert_eq!(outcome, [UpsertOutcome::Unchanged]);
    assert_eq!(
        store.health_of_object(o.id).await.unwrap()[0].checked_at,
        t0()
    );

    // Same verdict but the stored row is old: refreshed.
    let refresh = record(a.id, o.id, Health::Failing, t0() + secs(200));
    let outcome = store
        .upsert_health(&[refresh], t0() + secs(1))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        [UpsertOutcome::Accepted {
            previous: Some(Health::Failing)
        }]
    );
    assert_eq!(
        store.health_of_object(o.id).await.unwrap()[0].checked_at,
        t0() + secs(200)
    );

    // Older than stored: ignored.
    let old = record(a.id, o.id, Health::Healthy, t0() + secs(100));
    assert_eq!(
        store.upsert_health(&[old], t0()).await.unwrap(),
        [UpsertOutcome::Ignored]
    );
    let changed = record(a.id, o.id, Health::Degraded, t0() + secs(201));
    assert_eq!(
        store.upsert_health(&[changed], t0()).await.unwrap(),
        [UpsertOutcome::Accepted {
            previous: Some(Health::Failing)
        }]
    );
    let by_agent = store.health_of_agent(a.id).await.unwrap();
    assert_eq!(by_agent.len(), 2);
    let both = store.health_of_objects(&[o.id, o2.id]).await.unwrap();
    assert_eq!(both.len(), 2);

    // The rollup followed every status change without a scan.
    let rollup = store.fleet_rollup(t0(), t0()).await.unwrap();
    assert_eq!(
        (
            rollup.healthy,
            rollup.unknown,
            rollup.degraded,
            rollup.failing
        ),
        (1, 0, 1, 0)
    );
}

pub async fn diagnostics_are_claimed_once_and_answered_once(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    let other = agent("other");
    store.insert_agent(&other, &pak(8)).await.unwrap();
    let request = diagnostic(o.id, a.id);
    store
        .insert_diagnostic_requests(std::slice::from_ref(&request))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_diagnostic_requests(std::slice::from_ref(&request))
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.pending_diagnostics(a.id, t0()).await.unwrap().len(),
        1
    );
    assert!(
        store
            .pending_diagnostics(other.id, t0())
            .await
            .unwrap()
            .is_empty()
    );

    assert!(matches!(
        store
            .claim_diagnostic(request.id, other.id, None, t0())
            .await,
        Err(Error::Forbidden(_))
    ));
    let (claimed, outcome) = store
        .claim_diagnostic(request.id, a.id, Some("tok"), t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Claimed);
    assert_eq!(claimed.status, DiagnosticStatus::Claimed);
    // Retry with the holder's token is fine; anything else conflicts.
    let (_, again) = store
        .claim_diagnostic(request.id, a.id, Some("tok"), t0() + secs(6))
        .await
        .unwrap();
    assert_eq!(again, ClaimOutcome::AlreadyHeld);
    assert!(matches!(
        store
            .claim_diagnostic(request.id, a.id, None, t0() + secs(6))
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(
        store
            .pending_diagnostics(a.id, t0())
            .await
            .unwrap()
            .is_empty()
    );

    assert!(matches!(
        store
            .store_diagnostic_result(request.id, other.id, &bundle(), t0())
            .await,
        Err(Error::Forbidden(_))
    ));
    let stored = store
        .store_diagnostic_result(request.id, a.id, &bundle(), t0() + secs(40))
        .await
        .unwrap();
    assert_eq!(stored, ResultOutcome::Stored);
    assert_eq!(
        store
            .store_diagnostic_result(request.id, a.id, &bundle(), t0() + secs(41))
            .await
            .unwrap(),
        ResultOutcome::AlreadyStored
    );
    let different = DiagnosticOutcome::Failed("no pods".into());
    assert!(matches!(
        store
            .store_diagnostic_result(request.id, a.id, &different, t0() + secs(42))
            .await,
        Err(Error::Conflict(_))
    ));
    let (done, result) = store.get_diagnostic(request.id).await.unwrap().unwrap();
    assert_eq!(done.status, DiagnosticStatus::Completed);
    assert_eq!(done.completed_at, Some(t0() + secs(40)));
    assert_eq!(result, Some(bundle()));
    assert_eq!(
        store
            .get_diagnostic(brokkr_core::ids::DiagnosticId::new())
            .await
            .unwrap(),
        None
    );
}

pub async fn diagnostics_expire_and_are_cleaned_up_once(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    let policy = DiagnosticPolicy::default();
    let unclaimed = diagnostic(o.id, a.id);
    let answered = diagnostic(o.id, a.id);
    store
        .insert_diagnostic_requests(&[unclaimed.clone(), answered.clone()])
        .await
        .unwrap();
    store
        .claim_diagnostic(answered.id, a.id, None, t0() + secs(1))
        .await
        .unwrap();
    let done_at = t0() + secs(120);
    store
        .store_diagnostic_result(answered.id, a.id, &bundle(), done_at)
        .await
        .unwrap();

    // Exactly at the claim deadline the unclaimed request is gone for claimers.
    let deadline = unclaimed.claim_deadline;
    assert!(
        store
            .pending_diagnostics(a.id, deadline)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .claim_diagnostic(unclaimed.id, a.id, None, deadline)
            .await,
        Err(Error::Gone(_))
    ));

    // Counted by what a reader sees: the unclaimed request is expired from its
    // deadline on, before cleanup records anything.
    let before = store.diagnostic_counts(deadline - secs(1)).await.unwrap();
    assert_eq!(
        (before.pending, before.completed, before.expired),
        (1, 1, 0)
    );
    let after = store.diagnostic_counts(deadline).await.unwrap();
    assert_eq!(
        (
            after.pending,
            after.claimed,
            after.completed,
            after.failed,
            after.expired
        ),
        (0, 0, 1, 0, 1)
    );

    // Before retention ends nothing is deleted; then each row once, however often
    // cleanup runs.
    assert_eq!(
        store
            .delete_expired_diagnostics(t0() + secs(60))
            .await
            .unwrap(),
        0
    );
    let later = done_at + policy.retention + secs(1);
    let (first, second) = tokio::join!(
        store.delete_expired_diagnostics(later),
        store.delete_expired_diagnostics(later)
    );
    assert_eq!(first.unwrap() + second.unwrap(), 2);
    assert_eq!(store.delete_expired_diagnostics(later).await.unwrap(), 0);
    assert_eq!(store.get_diagnostic(answered.id).await.unwrap(), None);
    assert_eq!(
        store.diagnostic_counts(later).await.unwrap(),
        brokkr_core::store::DiagnosticCounts::default()
    );
}
