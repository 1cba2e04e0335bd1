//! Fleet events: what changed, for live feeds (server-sent events) and notifications.
//!
//! The broker publishes a [`FleetEvent`] to its [`EventSink`] when a stored verdict
//! changes status (detected in the write: the store reports the status it replaced)
//! and when an agent's staleness changes (detected by a watcher that compares
//! staleness over time).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::Health;
use crate::ids::{AgentId, DeploymentObjectId};
use crate::staleness::Staleness;

/// Something that changed in the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetEvent {
    /// An agent's verdict on a deployment object changed status.
    HealthChanged {
        /// The object.
        deployment_object_id: DeploymentObjectId,
        /// The agent that reported it.
        agent_id: AgentId,
        /// The status before (`None`: the first verdict).
        from: Option<Health>,
        /// The status now.
        to: Health,
        /// The first reason given, e.g. `CrashLoopBackOff`.
        top_finding: Option<String>,
        /// When the broker stored it.
        at: DateTime<Utc>,
    },
    /// An agent became fresh, stale or lost.
    AgentStalenessChanged {
        /// The agent.
        agent_id: AgentId,
        /// Before.
        from: Staleness,
        /// Now.
        to: Staleness,
        /// When the change was noticed.
        at: DateTime<Utc>,
    },
}

impl FleetEvent {
    /// The event's type for subscribers' filters: `health.failing`, `health.degraded`,
    /// `health.recovered` (back to healthy), `health.unknown`, `health.reported` (a first
    /// healthy verdict), `agent.stale`, `agent.lost`, `agent.fresh`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::HealthChanged { from, to, .. } => match to {
                Health::Failing => "health.failing",
                Health::Degraded => "health.degraded",
                Health::Unknown => "health.unknown",
                Health::Healthy if from.is_some() => "health.recovered",
                Health::Healthy => "health.reported",
            },
            Self::AgentStalenessChanged { to, .. } => match to {
                Staleness::Fresh => "agent.fresh",
                Staleness::Stale => "agent.stale",
                Staleness::Lost => "agent.lost",
            },
        }
    }
}

/// Where the broker publishes events. Must not block: implementations queue or drop.
pub trait EventSink: Send + Sync {
    /// One event.
    fn publish(&self, event: FleetEvent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_say_what_happened() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let health = |from, to| FleetEvent::HealthChanged {
            deployment_object_id: DeploymentObjectId::new(),
            agent_id: AgentId::new(),
            from,
            to,
            top_finding: None,
            at,
        };
        assert_eq!(
            health(Some(Health::Healthy), Health::Failing).name(),
            "health.failing"
        );
        assert_eq!(
            health(Some(Health::Failing), Health::Healthy).name(),
            "health.recovered"
        );
        assert_eq!(health(None, Health::Healthy).name(), "health.reported");
        let agent = FleetEvent::AgentStalenessChanged {
            agent_id: AgentId::new(),
            from: Staleness::Stale,
            to: Staleness::Lost,
            at,
        };
        assert_eq!(agent.name(), "agent.lost");
        let json = serde_json::to_value(&agent).unwrap();
        assert_eq!(json["kind"], "agent_staleness_changed");
        assert_eq!(json["to"], "lost");
    }
}
