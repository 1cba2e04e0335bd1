//! Fleet events: what changed, for live feeds (server-sent events) and notifications.
//!
//! Events live in the store's outbox ([`EventStore`](crate::store::EventStore)), so every
//! broker replica sees the same events in the same order, numbered by the store:
//! - a stored verdict that changes status is written to the outbox by the same
//!   transaction that writes the verdict ([`FleetEvent::health_transition`]);
//! - an agent's staleness change is announced by whichever replica's watcher notices it
//!   first: the store records the announced state per agent and writes the event only
//!   when the state it is told differs from the one it holds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::health::Health;
use crate::ids::{AgentId, DeploymentObjectId, WebhookId};
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

impl FleetEvent {
    /// When it happened (stored, or noticed).
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::HealthChanged { at, .. } | Self::AgentStalenessChanged { at, .. } => *at,
        }
    }

    /// The event a health write produces: `Some` when `record` is written over a verdict
    /// of another status (`previous`), or is the first verdict (`previous` is `None`).
    pub fn health_transition(
        previous: Option<crate::health::Health>,
        record: &crate::model::HealthRecord,
    ) -> Option<Self> {
        (previous != Some(record.status)).then(|| Self::HealthChanged {
            deployment_object_id: record.deployment_object_id,
            agent_id: record.agent_id,
            from: previous,
            to: record.status,
            top_finding: record.summary.conditions.first().cloned(),
            at: record.reported_at,
        })
    }
}

/// An event as the outbox holds it: its sequence number (the SSE `id`, increasing in
/// commit order, the same on every replica) and the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Position in the outbox, from 1.
    pub seq: u64,
    /// The event.
    pub event: FleetEvent,
}

/// Event types a webhook may subscribe to.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "health.failing",
    "health.degraded",
    "health.recovered",
    "health.unknown",
    "agent.stale",
    "agent.lost",
    "agent.fresh",
];

/// A subscription: fleet events of the given types are POSTed to `url`, signed with
/// `secret` (HMAC-SHA256 of the body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// Where deliveries go (`http` or `https`).
    pub url: String,
    /// The signing key; never shown after registration.
    #[serde(skip_serializing, default)]
    pub secret: String,
    /// Event types delivered (see [`WEBHOOK_EVENTS`]).
    pub events: Vec<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /api/v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewWebhook {
    /// Where deliveries go (`http` or `https`).
    pub url: String,
    /// The signing key, at least 16 characters.
    pub secret: String,
    /// Event types to deliver, from [`WEBHOOK_EVENTS`].
    pub events: Vec<String>,
}

impl NewWebhook {
    /// Checks the URL's scheme and length, the secret's length and the event types.
    pub fn validate(&self) -> crate::Result<()> {
        let mut v = crate::error::Violations::new();
        let scheme_ok = self.url.starts_with("https://") || self.url.starts_with("http://");
        v.check(
            !scheme_ok || self.url.len() > 2048 || self.url.chars().any(char::is_whitespace),
            "url",
            "must be an http or https URL of at most 2048 characters",
        );
        v.check(
            self.secret.chars().count() < 16 || self.secret.len() > 256,
            "secret",
            "must be 16 to 256 characters",
        );
        v.check(
            self.events.is_empty(),
            "events",
            "must name at least one event type",
        );
        // A type named twice is a client bug (and a 10,000-entry list of one type would
        // otherwise be stored); the first few problems are enough to report.
        let mut seen = std::collections::HashSet::new();
        for (i, event) in self
            .events
            .iter()
            .enumerate()
            .take(WEBHOOK_EVENTS.len() + 1)
        {
            v.check(
                !WEBHOOK_EVENTS.contains(&event.as_str()),
                format!("events[{i}]"),
                format!("unknown event type; one of {}", WEBHOOK_EVENTS.join(", ")),
            );
            v.check(
                !seen.insert(event.as_str()),
                format!("events[{i}]"),
                "named twice",
            );
        }
        v.finish()
    }

    /// The subscription, registered at `now`.
    pub fn into_webhook(self, now: DateTime<Utc>) -> Webhook {
        let mut events = self.events;
        events.sort();
        events.dedup();
        Webhook {
            id: WebhookId::new(),
            url: self.url,
            secret: self.secret,
            events,
            created_at: now,
        }
    }
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

    #[test]
    fn webhook_event_types_are_named_once() {
        let hook = NewWebhook {
            url: "https://hooks.example/x".to_owned(),
            secret: "0123456789abcdef".to_owned(),
            events: vec!["agent.lost".to_owned(); 10_000],
        };
        let err = hook.validate().unwrap_err().to_string();
        assert!(err.contains("named twice"), "{err}");
        assert!(err.len() < 2_000, "a long list gives a short answer: {err}");
    }

    #[test]
    fn webhooks_need_a_url_a_secret_and_known_events() {
        let ok = NewWebhook {
            url: "https://hooks.example/brokkr".into(),
            secret: "0123456789abcdef".into(),
            events: vec!["health.failing".into(), "agent.lost".into()],
        };
        ok.validate().unwrap();
        let bad = NewWebhook {
            url: "ftp://x".into(),
            secret: "short".into(),
            events: vec!["health.sideways".into()],
        };
        let err = bad.validate().unwrap_err().to_string();
        for field in ["url", "secret", "events[0]"] {
            assert!(err.contains(field), "{err}");
        }
        let hook = ok.into_webhook(DateTime::<Utc>::UNIX_EPOCH);
        let shown = serde_json::to_value(&hook).unwrap();
        assert!(shown.get("secret").is_none(), "the secret is never shown");
    }
}
