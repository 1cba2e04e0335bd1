//! Deployment objects, targets and deliveries.

use std::collections::HashSet;
use std::sync::Arc;

use brokkr_core::Error;
use brokkr_core::ids::{AgentId, DeploymentObjectId, StackId};
use brokkr_core::model::{DeliveryState, FailureReason, ReconcileOutcome, Target};
use brokkr_core::store::{ObjectReach, Store};

use super::{agent, event, object, pak, secs, stack, t0, world};

pub async fn deployment_objects_get_increasing_sequence_ids(store: Arc<dyn Store>) {
    let s = stack("shop");
    store.insert_stack(&s).await.unwrap();
    assert!(matches!(
        store.insert_stack(&s).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.get_stack(s.id).await.unwrap(), Some(s.clone()));
    let first = store.insert_deployment_object(&object(s.id)).await.unwrap();
    let second = store.insert_deployment_object(&object(s.id)).await.unwrap();
    assert!(second.sequence_id > first.sequence_id);
    assert_eq!(
        store.get_deployment_object(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert!(matches!(
        store
            .insert_deployment_object(&object(StackId::new()))
            .await,
        Err(Error::NotFound { .. })
    ));
    let other = stack("other");
    store.insert_stack(&other).await.unwrap();
    let latest = store
        .latest_objects(&[s.id, other.id, StackId::new()])
        .await
        .unwrap();
    // What an agent may report on, in one read: the agent targets `s` only.
    let reporter = agent("reporter");
    store.insert_agent(&reporter, &pak(42)).await.unwrap();
    store
        .insert_target(&Target {
            agent_id: reporter.id,
            stack_id: s.id,
            created_at: t0(),
        })
        .await
        .unwrap();
    let elsewhere = store
        .insert_deployment_object(&object(other.id))
        .await
        .unwrap();
    let reach = |stack_id, targeted| ObjectReach { stack_id, targeted };
    assert_eq!(
        store
            .reach_of_agent(
                reporter.id,
                &[first.id, second.id, elsewhere.id, DeploymentObjectId::new()]
            )
            .await
            .unwrap(),
        Some(std::collections::HashMap::from([
            (first.id, reach(s.id, true)),
            (second.id, reach(s.id, true)),
            (elsewhere.id, reach(other.id, false)),
        ])),
        "unknown objects are left out"
    );
    assert_eq!(
        store.reach_of_agent(reporter.id, &[]).await.unwrap(),
        Some(std::collections::HashMap::default())
    );
    assert_eq!(
        store
            .reach_of_agent(AgentId::new(), &[first.id])
            .await
            .unwrap(),
        None
    );
    assert_eq!(latest, vec![second.clone()]);

    // Concurrent inserts into one stack get distinct sequence ids.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        let id = s.id;
        tasks.push(tokio::spawn(async move {
            store
                .insert_deployment_object(&object(id))
                .await
                .unwrap()
                .sequence_id
        }));
    }
    let mut seqs = HashSet::new();
    for task in tasks {
        assert!(seqs.insert(task.await.unwrap()));
    }
    assert_eq!(seqs.len(), 20);
}

pub async fn targets_are_idempotent_and_checked(store: Arc<dyn Store>) {
    let (a, s, _) = world(store.as_ref()).await;
    let again = Target {
        agent_id: a.id,
        stack_id: s.id,
        created_at: t0() + secs(1),
    };
    assert!(!store.insert_target(&again).await.unwrap());
    assert_eq!(store.targets_of_agent(a.id).await.unwrap().len(), 1);
    assert_eq!(store.agents_targeting(s.id).await.unwrap(), vec![a.id]);
    let unknown_stack = Target {
        agent_id: a.id,
        stack_id: StackId::new(),
        created_at: t0(),
    };
    assert!(matches!(
        store.insert_target(&unknown_stack).await,
        Err(Error::NotFound { .. })
    ));
    let unknown_agent = Target {
        agent_id: AgentId::new(),
        stack_id: s.id,
        created_at: t0(),
    };
    assert!(matches!(
        store.insert_target(&unknown_agent).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        store
            .targets_of_agent(AgentId::new())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn deliveries_follow_reconcile_reports(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    assert_eq!(store.ensure_deliveries(&[(a.id, o.id)]).await.unwrap(), 1);
    assert_eq!(store.ensure_deliveries(&[(a.id, o.id)]).await.unwrap(), 0);
    let pending = &store.deliveries_of_object(o.id).await.unwrap()[0];
    assert_eq!(pending.state, DeliveryState::Pending);
    assert_eq!(pending.acknowledged_at, None);
    let events = [
        event(o.id, ReconcileOutcome::Acknowledged, t0() + secs(1), 0),
        event(o.id, ReconcileOutcome::Failed, t0() + secs(2), 1),
    ];
    assert_eq!(store.apply_status_events(a.id, &events).await.unwrap(), 2);
    let d = &store.deliveries_of_object(o.id).await.unwrap()[0];
    assert_eq!(d.state, DeliveryState::Failed);
    assert_eq!(d.retry_count, 1);
    assert_eq!(d.failure_reason, Some(FailureReason::Forbidden));
    assert_eq!(d.acknowledged_at, Some(t0() + secs(1)));
    assert_eq!(d.last_attempt_at, Some(t0() + secs(2)));

    // A late, older report does not move the status back.
    let stale = [event(o.id, ReconcileOutcome::Applied, t0(), 0)];
    assert_eq!(store.apply_status_events(a.id, &stale).await.unwrap(), 0);
    let applied = [event(o.id, ReconcileOutcome::Applied, t0() + secs(3), 2)];
    store.apply_status_events(a.id, &applied).await.unwrap();
    let (d, created) = store.deliveries_of_agent(a.id).await.unwrap().remove(0);
    assert_eq!(d.state, DeliveryState::Applied);
    assert_eq!(d.failure_reason, None);
    assert_eq!(d.applied_at, Some(t0() + secs(3)));
    assert_eq!(created, o.created_at);

    // Unknown objects fail the whole batch.
    let bad = [
        event(o.id, ReconcileOutcome::Failed, t0() + secs(9), 3),
        event(
            DeploymentObjectId::new(),
            ReconcileOutcome::Applied,
            t0(),
            0,
        ),
    ];
    assert!(matches!(
        store.apply_status_events(a.id, &bad).await,
        Err(Error::NotFound { .. })
    ));
    let d = &store.deliveries_of_object(o.id).await.unwrap()[0];
    assert_eq!(
        d.state,
        DeliveryState::Applied,
        "the failed batch left no trace"
    );
}
