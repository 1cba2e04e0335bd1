//! How far behind an agent is: deliveries it has not picked up, work orders still open,
//! and how long objects took to reach it.
//!
//! Everything here is a pure function of records the store already holds, so the broker
//! can answer `GET /agents/{id}/queue-status` and feed the fleet rollup without extra
//! bookkeeping.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::AgentId;
use crate::model::{Delivery, DeliveryState, WorkOrder};

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencyStats {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// Largest sample.
    pub max: u64,
}

impl LatencyStats {
    /// Nearest-rank percentiles of `samples` (milliseconds); `None` when there are none.
    ///
    /// Nearest-rank always returns one of the samples, so a reported p95 is a latency that
    /// really happened rather than an interpolation between two.
    pub fn from_millis(samples: &[u64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Some(Self {
            p50: nearest_rank(&sorted, 50)?,
            p95: nearest_rank(&sorted, 95)?,
            max: *sorted.last()?,
        })
    }

    /// Like [`LatencyStats::from_millis`] for durations. Negative durations (an
    /// acknowledgement stamped before creation because of clock skew) count as zero.
    pub fn from_durations(samples: &[Duration]) -> Option<Self> {
        let millis: Vec<u64> = samples.iter().map(|d| non_negative_millis(*d)).collect();
        Self::from_millis(&millis)
    }
}

/// The smallest sample such that at least `percent` % of the samples are at most it.
fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn non_negative_millis(d: Duration) -> u64 {
    u64::try_from(d.num_milliseconds()).unwrap_or(0)
}

/// Settings for [`QueueStatus::compute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BacklogPolicy {
    /// Only deliveries acknowledged within this long before `now` count towards the
    /// latency percentiles (1 h), so the numbers describe the agent as it is now.
    pub latency_window: Duration,
}

impl Default for BacklogPolicy {
    fn default() -> Self {
        Self {
            latency_window: Duration::hours(1),
        }
    }
}

/// The queue of one agent, as served by `GET /agents/{id}/queue-status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStatus {
    /// The agent.
    pub agent_id: AgentId,
    /// Deliveries the agent has not acknowledged yet.
    pub queue_depth: u64,
    /// Work orders pending or claimed.
    pub work_order_backlog: u64,
    /// Delivery latency over the window; `null` when nothing was acknowledged in it.
    // Written as `null` rather than omitted: the API documents the key as always present.
    #[serde(default)]
    pub delivery_latency_ms: Option<LatencyStats>,
    /// Creation time of the oldest object still waiting for the agent; `null` when none.
    #[serde(default)]
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

impl QueueStatus {
    /// Computes the queue of `agent_id`.
    ///
    /// `deliveries` pairs each delivery with its deployment object's `created_at`; the
    /// caller passes the effective ones (latest object per stack). Records of other agents
    /// are skipped, so a caller may pass an unfiltered list.
    ///
    /// Latency is acknowledgement minus object creation. A delivery reported applied
    /// without a separate acknowledgement counts as acknowledged when it was applied. A
    /// delivery counts when that moment lies within `policy.latency_window` before `now`
    /// (or later, since agent clocks may run slightly ahead).
    pub fn compute<'a>(
        agent_id: AgentId,
        deliveries: impl IntoIterator<Item = (&'a Delivery, DateTime<Utc>)>,
        work_orders: impl IntoIterator<Item = &'a WorkOrder>,
        policy: &BacklogPolicy,
        now: DateTime<Utc>,
    ) -> Self {
        let window_start = now - policy.latency_window;
        let mut queue_depth = 0;
        let mut oldest_pending_at: Option<DateTime<Utc>> = None;
        let mut latencies = Vec::new();
        for (delivery, object_created_at) in deliveries {
            if delivery.agent_id != agent_id {
                continue;
            }
            if delivery.state == DeliveryState::Pending {
                queue_depth += 1;
                oldest_pending_at =
                    Some(oldest_pending_at.map_or(object_created_at, |t| t.min(object_created_at)));
                continue;
            }
            if let Some(acknowledged_at) = delivery.acknowledged_at.or(delivery.applied_at)
                && acknowledged_at >= window_start
            {
                latencies.push(non_negative_millis(acknowledged_at - object_created_at));
            }
        }
        let work_order_backlog = work_orders
            .into_iter()
            .filter(|w| w.agent_id == agent_id && w.status.is_open())
            .count() as u64;
        Self {
            agent_id,
            queue_depth,
            work_order_backlog,
            delivery_latency_ms: LatencyStats::from_millis(&latencies),
            oldest_pending_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::ids::{DeploymentObjectId, WorkOrderId};
    use crate::model::WorkOrderStatus;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn secs(n: i64) -> Duration {
        Duration::seconds(n)
    }

    fn delivery(agent: AgentId, state: DeliveryState, ack: Option<DateTime<Utc>>) -> Delivery {
        Delivery {
            state,
            acknowledged_at: ack,
            ..Delivery::pending(agent, DeploymentObjectId::new())
        }
    }

    fn work_order(agent: AgentId, status: WorkOrderStatus) -> WorkOrder {
        WorkOrder {
            id: WorkOrderId::new(),
            agent_id: agent,
            kind: "build".into(),
            payload: json!({}),
            status,
            created_at: now(),
            claimed_at: None,
            completed_at: None,
        }
    }

    #[test]
    fn nearest_rank_percentiles_of_known_samples() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(
            LatencyStats::from_millis(&samples),
            Some(LatencyStats {
                p50: 50,
                p95: 95,
                max: 100
            })
        );
        assert_eq!(
            LatencyStats::from_millis(&[40, 10, 30, 20]),
            Some(LatencyStats {
                p50: 20,
                p95: 40,
                max: 40
            })
        );
        assert_eq!(
            LatencyStats::from_millis(&[7]),
            Some(LatencyStats {
                p50: 7,
                p95: 7,
                max: 7
            })
        );
        assert_eq!(LatencyStats::from_millis(&[]), None);
    }

    #[test]
    fn negative_durations_count_as_zero() {
        let stats = LatencyStats::from_durations(&[secs(-2), Duration::milliseconds(1500)]);
        assert_eq!(
            stats,
            Some(LatencyStats {
                p50: 0,
                p95: 1500,
                max: 1500
            })
        );
    }

    #[test]
    fn queue_status_counts_depth_backlog_and_latency() {
        let agent = AgentId::new();
        let other = AgentId::new();
        let created = now() - secs(600);
        let pending_old = delivery(agent, DeliveryState::Pending, None);
        let pending_new = delivery(agent, DeliveryState::Pending, None);
        let acked = delivery(agent, DeliveryState::Acknowledged, Some(created + secs(2)));
        let applied = delivery(agent, DeliveryState::Applied, Some(created + secs(4)));
        let failed = delivery(agent, DeliveryState::Failed, Some(created + secs(10)));
        let foreign = delivery(other, DeliveryState::Pending, None);
        let deliveries = [
            (&pending_old, now() - secs(900)),
            (&pending_new, now() - secs(60)),
            (&acked, created),
            (&applied, created),
            (&failed, created),
            (&foreign, now() - secs(5000)),
        ];
        let orders = [
            work_order(agent, WorkOrderStatus::Pending),
            work_order(agent, WorkOrderStatus::Claimed),
            work_order(agent, WorkOrderStatus::Completed),
            work_order(agent, WorkOrderStatus::Failed),
            work_order(other, WorkOrderStatus::Pending),
        ];
        let status =
            QueueStatus::compute(agent, deliveries, &orders, &BacklogPolicy::default(), now());
        assert_eq!(status.agent_id, agent);
        assert_eq!(status.queue_depth, 2);
        assert_eq!(status.work_order_backlog, 2);
        assert_eq!(status.oldest_pending_at, Some(now() - secs(900)));
        assert_eq!(
            status.delivery_latency_ms,
            Some(LatencyStats {
                p50: 4000,
                p95: 10_000,
                max: 10_000
            })
        );
    }

    #[test]
    fn acknowledgements_outside_the_window_are_ignored() {
        let agent = AgentId::new();
        let created = now() - Duration::hours(3);
        let ancient = delivery(
            agent,
            DeliveryState::Applied,
            Some(now() - Duration::hours(2)),
        );
        let edge = delivery(
            agent,
            DeliveryState::Applied,
            Some(now() - Duration::hours(1)),
        );
        let status = QueueStatus::compute(
            agent,
            [(&ancient, created), (&edge, created)],
            [],
            &BacklogPolicy::default(),
            now(),
        );
        let two_hours = 2 * 3600 * 1000;
        assert_eq!(
            status.delivery_latency_ms,
            Some(LatencyStats {
                p50: two_hours,
                p95: two_hours,
                max: two_hours
            })
        );
    }

    #[test]
    fn applied_without_acknowledgement_uses_applied_at() {
        let agent = AgentId::new();
        let created = now() - secs(30);
        let mut d = delivery(agent, DeliveryState::Applied, None);
        d.applied_at = Some(created + secs(3));
        let status =
            QueueStatus::compute(agent, [(&d, created)], [], &BacklogPolicy::default(), now());
        assert_eq!(status.delivery_latency_ms.map(|s| s.max), Some(3000));
    }

    #[test]
    fn idle_agent_serializes_nulls() {
        let agent = AgentId::new();
        let status = QueueStatus::compute(agent, [], [], &BacklogPolicy::default(), now());
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({
                "agent_id": agent,
                "queue_depth": 0,
                "work_order_backlog": 0,
                "delivery_latency_ms": null,
                "oldest_pending_at": null
            })
        );
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered_members_of_the_input(
            samples in prop::collection::vec(0_u64..1_000_000, 1..200),
        ) {
            let stats = LatencyStats::from_millis(&samples).unwrap();
            prop_assert!(stats.p50 <= stats.p95);
            prop_assert!(stats.p95 <= stats.max);
            prop_assert!(samples.contains(&stats.p50));
            prop_assert!(samples.contains(&stats.p95));
            prop_assert_eq!(Some(&stats.max), samples.iter().max());
        }

        #[test]
        fn percentiles_ignore_input_order(
            (samples, shuffled) in prop::collection::vec(0_u64..10_000, 0..100)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        ) {
            prop_assert_eq!(
                LatencyStats::from_millis(&samples),
                LatencyStats::from_millis(&shuffled)
            );
        }
    }
}
