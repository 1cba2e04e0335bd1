//! Reconcile bookkeeping: which deployment objects are due for an apply attempt, the
//! retry backoff of failed ones, and the status events still to report.
//!
//! Pure state: the agent runtime does the I/O (fetch target state, apply, report) and
//! tells this what happened.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use brokkr_core::ids::DeploymentObjectId;
use brokkr_core::model::{DeploymentObject, DeploymentStatusEvent, ReconcileOutcome};
use brokkr_core::probe::ApplyError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Applied successfully; nothing more to do for this object.
    Applied,
    /// The last attempt failed; the next one is due at `next_at`.
    Failing {
        failures: u32,
        next_at: DateTime<Utc>,
    },
}

/// Retry delays of failed applies: `base × 2^failures`, capped, scaled by a jitter
/// factor in `[0.5, 1]` so that agents failing together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after `failures` consecutive failures, with `jitter` in `[0, 1]`.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let (Ok(base), Ok(max)) = (self.base.to_std(), self.max.to_std()) else {
            return self.max;
        };
        let delay = brokkr_core::retry::exponential(base, max, failures.saturating_sub(1), jitter);
        Duration::from_std(delay).map_or(self.max, |d| d.max(Duration::milliseconds(1)))
    }
}

/// Reconcile state of one agent.
#[derive(Debug, Clone)]
pub struct Reconciler {
    backoff: Backoff,
    progress: HashMap<DeploymentObjectId, Progress>,
    /// Events not yet accepted by the broker: per object the acknowledgement (if not yet
    /// delivered) and the latest attempt. Bounded by the number of objects.
    unsent: HashMap<DeploymentObjectId, Vec<DeploymentStatusEvent>>,
    errors_total: u64,
    last_success: Option<DateTime<Utc>>,
}

impl Reconciler {
    /// A reconciler retrying failed applies with `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            progress: HashMap::new(),
            unsent: HashMap::new(),
            errors_total: 0,
            last_success: None,
        }
    }

    /// Takes the new desired set: forgets the progress of objects that left it (their
    /// unsent events still go out: a superseded object's delivery must not stay
    /// pending), acknowledges new ones, and returns those due for an apply attempt at
    /// `now`, in stack order.
    pub fn plan(
        &mut self,
        desired: &[DeploymentObject],
        now: DateTime<Utc>,
    ) -> Vec<DeploymentObject> {
        let ids: HashSet<_> = desired.iter().map(|o| o.id).collect();
        self.progress.retain(|id, _| ids.contains(id));
        let mut due = Vec::new();
        for object in desired {
            match self.progress.get(&object.id) {
                Some(Progress::Applied) => {}
                Some(Progress::Failing { next_at, .. }) if *next_at > now => {}
                Some(Progress::Failing { .. }) => due.push(object.clone()),
                None => {
                    self.push(event(object.id, ReconcileOutcome::Acknowledged, now, 0));
                    due.push(object.clone());
                }
            }
        }
        due.sort_by_key(|o| (o.stack_id, o.sequence_id));
        due
    }

    /// Records one apply attempt that started at `started` and took `took`; `jitter`
    /// in `[0, 1]` spreads the retry.
    pub fn record(
        &mut self,
        id: DeploymentObjectId,
        result: Result<(), ApplyError>,
        started: DateTime<Utc>,
        took: Duration,
        jitter: f64,
    ) {
        let failures = match self.progress.get(&id) {
            Some(Progress::Failing { failures, .. }) => *failures,
            _ => 0,
        };
        let mut attempt = event(id, ReconcileOutcome::Applied, started, failures);
        attempt.reconciliation_duration_ms = u64::try_from(took.num_milliseconds()).ok();
        match result {
            Ok(()) => {
                self.progress.insert(id, Progress::Applied);
                self.last_success = Some(started + took);
            }
            Err(error) => {
                let failures = failures + 1;
                self.errors_total += 1;
                attempt.outcome = ReconcileOutcome::Failed;
                attempt.failure_reason = Some(error.reason);
                attempt.failure_message = Some(error.message);
                self.progress.insert(
                    id,
                    Progress::Failing {
                        failures,
                        next_at: started + took + self.backoff.delay(failures, jitter),
                    },
                );
            }
        }
        self.push(attempt);
    }

    /// Keeps at most the acknowledgement and the latest attempt per object.
    fn push(&mut self, new: DeploymentStatusEvent) {
        let events = self.unsent.entry(new.deployment_object_id).or_default();
        events.retain(|e| e.outcome == ReconcileOutcome::Acknowledged);
        events.push(new);
    }

    /// Events to report, oldest first.
    pub fn unsent(&self) -> Vec<DeploymentStatusEvent> {
        let mut events: Vec<_> = self.unsent.values().flatten().cloned().collect();
        events.sort_by_key(|e| (e.attempted_at, e.deployment_object_id));
        events
    }

    /// The broker took `events` (accepted or refused); they are not sent again.
    pub fn delivered(&mut self, events: &[DeploymentStatusEvent]) {
        for sent in events {
            if let Some(list) = self.unsent.get_mut(&sent.deployment_object_id) {
                list.retain(|e| e != sent);
                if list.is_empty() {
                    self.unsent.remove(&sent.deployment_object_id);
                }
            }
        }
    }

    /// Failed apply attempts since the agent started (the heartbeat's
    /// `reconciliation_errors_total`).
    pub fn errors_total(&self) -> u64 {
        self.errors_total
    }

    /// When the last apply succeeded.
    pub fn last_success(&self) -> Option<DateTime<Utc>> {
        self.last_success
    }

    /// Whether `id` has been applied successfully.
    pub fn is_applied(&self, id: DeploymentObjectId) -> bool {
        self.progress.get(&id) == Some(&Progress::Applied)
    }

    /// Retries before the next attempt of `id` (0 when it never failed).
    pub fn failures(&self, id: DeploymentObjectId) -> u32 {
        match self.progress.get(&id) {
            Some(Progress::Failing { failures, .. }) => *failures,
            _ => 0,
        }
    }
}

fn event(
    id: DeploymentObjectId,
    outcome: ReconcileOutcome,
    at: DateTime<Utc>,
    retry_count: u32,
) -> DeploymentStatusEvent {
    DeploymentStatusEvent {
        deployment_object_id: id,
        outcome,
        attempted_at: at,
        retry_count,
        reconciliation_duration_ms: None,
        failure_reason: None,
        failure_message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brokkr_core::ids::StackId;
    use brokkr_core::model::FailureReason;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(1_000_000 + s)
    }

    fn object() -> DeploymentObject {
        DeploymentObject {
            id: DeploymentObjectId::new(),
            stack_id: StackId::new(),
            sequence_id: 1,
            yaml_content: "kind: ConfigMap".into(),
            is_deletion: false,
            created_at: t(0),
        }
    }

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::seconds(10),
            max: Duration::minutes(10),
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jitter_stays_within_half_to_full() {
        let b = backoff();
        assert_eq!(b.delay(1, 1.0), Duration::seconds(10));
        assert_eq!(b.delay(2, 1.0), Duration::seconds(20));
        assert_eq!(b.delay(3, 1.0), Duration::seconds(40));
        assert_eq!(b.delay(30, 1.0), Duration::minutes(10));
        assert_eq!(b.delay(1, 0.0), Duration::seconds(5));
        assert_eq!(b.delay(u32::MAX, 0.5), Duration::milliseconds(450_000));
    }

    #[test]
    fn a_new_object_is_acknowledged_applied_once_and_reported() {
        let mut r = Reconciler::new(backoff());
        let o = object();
        let due = r.plan(std::slice::from_ref(&o), t(0));
        assert_eq!(due, std::slice::from_ref(&o));
        r.record(o.id, Ok(()), t(1), Duration::milliseconds(250), 0.5);
        let events = r.unsent();
        let outcomes: Vec<_> = events.iter().map(|e| e.outcome).collect();
        assert_eq!(
            outcomes,
            [ReconcileOutcome::Acknowledged, ReconcileOutcome::Applied]
        );
        assert_eq!(events[1].reconciliation_duration_ms, Some(250));
        assert!(r.plan(std::slice::from_ref(&o), t(60)).is_empty());
        r.delivered(&events);
        assert!(r.unsent().is_empty());
        assert_eq!(r.last_success(), Some(t(1) + Duration::milliseconds(250)));
    }

    #[test]
    fn failures_are_retried_after_backoff_with_growing_retry_counts() {
        let mut r = Reconciler::new(backoff());
        let o = object();
        let fail = || Err(ApplyError::new(FailureReason::Forbidden, "no RBAC"));
        r.plan(std::slice::from_ref(&o), t(0));
        r.record(o.id, fail(), t(0), Duration::zero(), 1.0);
        assert!(r.plan(std::slice::from_ref(&o), t(9)).is_empty());
        assert_eq!(r.plan(std::slice::from_ref(&o), t(10)).len(), 1);
        r.record(o.id, fail(), t(10), Duration::zero(), 1.0);
        assert!(r.plan(std::slice::from_ref(&o), t(29)).is_empty());
        assert_eq!(r.plan(std::slice::from_ref(&o), t(30)).len(), 1);
        r.record(o.id, Ok(()), t(30), Duration::zero(), 1.0);
        let events = r.unsent();
        // The acknowledgement and only the latest attempt are kept.
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].outcome, ReconcileOutcome::Applied);
        assert_eq!(events[1].retry_count, 2);
        assert_eq!(r.errors_total(), 2);
    }

    #[test]
    fn a_failed_attempt_carries_its_reason() {
        let mut r = Reconciler::new(backoff());
        let o = object();
        r.plan(std::slice::from_ref(&o), t(0));
        r.record(
            o.id,
            Err(ApplyError::new(FailureReason::InvalidManifest, "bad yaml")),
            t(0),
            Duration::seconds(1),
            0.0,
        );
        let last = r.unsent().pop().unwrap();
        assert_eq!(last.outcome, ReconcileOutcome::Failed);
        assert_eq!(last.failure_reason, Some(FailureReason::InvalidManifest));
        assert_eq!(last.failure_message.as_deref(), Some("bad yaml"));
        assert_eq!(last.retry_count, 0);
        assert_eq!(r.failures(o.id), 1);
    }

    #[test]
    fn a_superseded_objects_events_still_go_out_then_it_is_forgotten() {
        let mut r = Reconciler::new(backoff());
        let o = object();
        r.plan(std::slice::from_ref(&o), t(0));
        r.record(o.id, Ok(()), t(0), Duration::zero(), 0.5);
        assert!(r.plan(&[], t(1)).is_empty());
        let events = r.unsent();
        assert_eq!(events.len(), 2, "acknowledged and applied, not lost");
        r.delivered(&events);
        assert!(r.unsent().is_empty());
        assert!(!r.is_applied(o.id));
    }
}
