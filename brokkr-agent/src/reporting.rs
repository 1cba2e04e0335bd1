//! Delta reporting: which verdicts an agent sends, and what it keeps while the broker
//! cannot be reached.
//!
//! A verdict is sent when its reported status changes (worse at once, better once it has
//! held for `recover_after`, see [`AntiFlap`]), when its explanation changes at the same
//! status (pod counts, reasons, phase), and otherwise once per `refresh_interval` so the
//! broker knows it is current. What could not be sent stays queued, one item per object
//! (the newest), so an outage costs memory bounded by the number of objects.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use brokkr_core::health::{AntiFlap, Assessment, Health};
use brokkr_core::ids::DeploymentObjectId;
use brokkr_core::model::{HealthReportItem, HealthSummary};

/// What makes two verdicts "the same" for reporting: status and the explanation a user
/// reads, but not free-text messages that change on every restart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gist {
    status: Health,
    pods_ready: u32,
    pods_total: u32,
    conditions: Vec<String>,
    phase: Option<String>,
}

impl Gist {
    fn of(item: &HealthReportItem) -> Self {
        Self {
            status: item.status,
            pods_ready: item.summary.pods_ready,
            pods_total: item.summary.pods_total,
            conditions: item.summary.conditions.clone(),
            phase: item.summary.phase.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    gate: AntiFlap,
    /// What the broker last accepted, and when it was checked.
    sent: Option<(Gist, DateTime<Utc>)>,
    /// The newest item not yet accepted by the broker.
    queued: Option<HealthReportItem>,
    /// The summary that goes with the reported status while an improvement is held
    /// back (so status and explanation never disagree).
    held_summary: Option<HealthSummary>,
    /// During an improvement under observation: the worst verdict seen and its
    /// summary, which is what gets reported if the improvement is let through at that
    /// level.
    window_worst: Option<(Health, HealthSummary)>,
}

/// Per-object reporting state of one agent.
#[derive(Debug, Clone)]
pub struct HealthReporter {
    recover_after: Duration,
    refresh_interval: Duration,
    objects: HashMap<DeploymentObjectId, Tracked>,
}

impl HealthReporter {
    /// A reporter with the given anti-flap delay and refresh interval.
    pub fn new(recover_after: Duration, refresh_interval: Duration) -> Self {
        Self {
            recover_after,
            refresh_interval,
            objects: HashMap::new(),
        }
    }

    /// Feeds one verdict checked at `now`; returns whether something is queued for the
    /// object afterwards.
    pub fn observe(
        &mut self,
        id: DeploymentObjectId,
        assessment: &Assessment,
        now: DateTime<Utc>,
    ) -> bool {
        let summary = HealthSummary::from_assessment(assessment);
        self.observe_summary(id, assessment.health, summary, now)
    }

    /// [`Self::observe`] for a verdict that did not come from the classifier (an object
    /// the agent may not read, say).
    pub fn observe_summary(
        &mut self,
        id: DeploymentObjectId,
        health: Health,
        summary: HealthSummary,
        now: DateTime<Utc>,
    ) -> bool {
        let recover_after = self.recover_after;
        let refresh = self.refresh_interval;
        let tracked = self.objects.entry(id).or_insert_with(|| Tracked {
            gate: AntiFlap::new(recover_after),
            sent: None,
            queued: None,
            held_summary: None,
            window_worst: None,
        });
        let before = tracked.gate.reported();
        let changed = tracked.gate.observe(health, now);
        let Some(reported) = tracked.gate.reported() else {
            return false;
        };
        let improving = before.is_some_and(|b| health < b);
        if improving
            && tracked
                .window_worst
                .as_ref()
                .is_none_or(|(h, _)| health >= *h)
        {
            tracked.window_worst = Some((health, summary.clone()));
        }
        let summary = match changed {
            // Let through at the worst level seen meanwhile: that verdict's summary.
            Some(level) if level != health => tracked
                .window_worst
                .take()
                .filter(|(h, _)| *h == level)
                .map_or(summary, |(_, s)| s),
            Some(_) => summary,
            None if health == reported => summary,
            // An improvement under observation: keep telling the reported story.
            None => tracked.held_summary.clone().unwrap_or(summary),
        };
        if changed.is_some() || health == reported {
            tracked.held_summary = Some(summary.clone());
            if !improving {
                tracked.window_worst = None;
            }
        }
        let item = HealthReportItem {
            id,
            status: reported,
            checked_at: now,
            summary,
        };
        let due = match &tracked.sent {
            None => true,
            Some((gist, at)) => *gist != Gist::of(&item) || now - *at >= refresh,
        };
        if due || tracked.queued.is_some() {
            tracked.queued = Some(item);
        }
        tracked.queued.is_some()
    }

    /// Everything waiting to be sent, one item per object.
    pub fn queued(&self) -> Vec<HealthReportItem> {
        let mut items: Vec<_> = self
            .objects
            .values()
            .filter_map(|t| t.queued.clone())
            .collect();
        items.sort_by_key(|i| i.id);
        items
    }

    /// The broker took `items` (accepted, unchanged or refused: either way they are not
    /// to be sent again). A newer item queued since stays queued.
    pub fn delivered(&mut self, items: &[HealthReportItem]) {
        for item in items {
            if let Some(tracked) = self.objects.get_mut(&item.id) {
                tracked.sent = Some((Gist::of(item), item.checked_at));
                if tracked
                    .queued
                    .as_ref()
                    .is_some_and(|q| q.checked_at <= item.checked_at)
                {
                    tracked.queued = None;
                }
            }
        }
    }

    /// Forgets objects the agent no longer runs.
    pub fn retain(&mut self, running: &HashSet<DeploymentObjectId>) {
        self.objects.retain(|id, _| running.contains(id));
    }

    /// Objects tracked.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// No object tracked.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brokkr_core::health::Phase;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(1_000_000 + s)
    }

    fn verdict(health: Health, ready: u32) -> Assessment {
        Assessment {
            health,
            phase: Phase::Stable,
            pods_ready: ready,
            pods_total: 3,
            conditions: if health == Health::Healthy {
                vec![]
            } else {
                vec!["CrashLoopBackOff".into()]
            },
            resources: vec![],
            findings: vec![],
        }
    }

    fn reporter() -> HealthReporter {
        HealthReporter::new(Duration::seconds(90), Duration::minutes(5))
    }

    /// Observes and delivers whatever got queued; returns the statuses sent.
    fn cycle(r: &mut HealthReporter, a: &Assessment, at: i64) -> Vec<Health> {
        let id = DeploymentObjectId::from(uuid::Uuid::nil());
        r.observe(id, a, t(at));
        let items = r.queued();
        r.delivered(&items);
        items.iter().map(|i| i.status).collect()
    }

    #[test]
    fn nothing_is_sent_again_while_nothing_changes_until_the_refresh() {
        let mut r = reporter();
        assert_eq!(
            cycle(&mut r, &verdict(Health::Healthy, 3), 0),
            [Health::Healthy]
        );
        for s in (60..300).step_by(60) {
            assert!(cycle(&mut r, &verdict(Health::Healthy, 3), s).is_empty());
        }
        assert_eq!(
            cycle(&mut r, &verdict(Health::Healthy, 3), 300),
            [Health::Healthy]
        );
    }

    #[test]
    fn worsening_is_sent_at_once_and_recovery_after_it_held() {
        let mut r = reporter();
        cycle(&mut r, &verdict(Health::Healthy, 3), 0);
        assert_eq!(
            cycle(&mut r, &verdict(Health::Failing, 2), 60),
            [Health::Failing]
        );
        assert!(cycle(&mut r, &verdict(Health::Healthy, 3), 120).is_empty());
        assert!(cycle(&mut r, &verdict(Health::Healthy, 3), 180).is_empty());
        assert_eq!(
            cycle(&mut r, &verdict(Health::Healthy, 3), 240),
            [Health::Healthy]
        );
    }

    #[test]
    fn a_changed_explanation_at_the_same_status_is_sent() {
        let mut r = reporter();
        cycle(&mut r, &verdict(Health::Degraded, 1), 0);
        assert_eq!(
            cycle(&mut r, &verdict(Health::Degraded, 2), 60),
            [Health::Degraded]
        );
    }

    #[test]
    fn while_undelivered_only_the_newest_item_is_kept() {
        let mut r = reporter();
        let id = DeploymentObjectId::from(uuid::Uuid::nil());
        for s in 0..100 {
            let h = if s % 2 == 0 {
                Health::Healthy
            } else {
                Health::Failing
            };
            r.observe(id, &verdict(h, 3), t(s * 60));
        }
        let queued = r.queued();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].checked_at, t(99 * 60));
        assert_eq!(queued[0].status, Health::Failing);
        r.delivered(&queued);
        assert!(r.queued().is_empty());
    }

    #[test]
    fn a_held_back_improvement_keeps_the_reported_explanation() {
        let mut r = reporter();
        let id = DeploymentObjectId::from(uuid::Uuid::nil());
        cycle(&mut r, &verdict(Health::Failing, 0), 0);
        // The refresh falls into a recovery that has not held yet.
        r.observe(id, &verdict(Health::Healthy, 3), t(250));
        r.observe(id, &verdict(Health::Healthy, 3), t(300));
        let q = r.queued();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].status, Health::Failing);
        assert_eq!(q[0].summary.pods_ready, 0);
        assert_eq!(q[0].summary.conditions, ["CrashLoopBackOff"]);
    }

    #[test]
    fn a_recovery_let_through_at_a_middle_level_carries_that_levels_summary() {
        let mut r = reporter();
        cycle(&mut r, &verdict(Health::Failing, 0), 0);
        // Better, then best: reported after 90 s at the worst level of the window.
        assert!(cycle(&mut r, &verdict(Health::Degraded, 2), 60).is_empty());
        assert!(cycle(&mut r, &verdict(Health::Healthy, 3), 120).is_empty());
        let id = DeploymentObjectId::from(uuid::Uuid::nil());
        r.observe(id, &verdict(Health::Healthy, 3), t(150));
        let q = r.queued();
        assert_eq!(q[0].status, Health::Degraded);
        assert_eq!(
            q[0].summary.pods_ready, 2,
            "the degraded verdict's own summary"
        );
    }

    #[test]
    fn forgotten_objects_are_not_sent() {
        let mut r = reporter();
        let id = DeploymentObjectId::from(uuid::Uuid::nil());
        r.observe(id, &verdict(Health::Healthy, 3), t(0));
        r.retain(&HashSet::new());
        assert!(r.queued().is_empty());
        assert!(r.is_empty());
    }
}
