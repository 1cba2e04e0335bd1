//! How long ago an agent was last heard from, as an operator-facing state.
//!
//! An agent heartbeats every `heartbeat_interval`. Missing a few heartbeats makes it
//! `stale` (its data may be out of date, but it is probably still there); missing them for
//! much longer makes it `lost`. The thresholds are a [`StalenessPolicy`]; the verdict is a
//! pure function of the last heartbeat and `now`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Result, Violations};

/// Freshness of an agent, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Staleness {
    /// Heard from recently.
    Fresh,
    /// Missed several heartbeats; its data may be out of date.
    Stale,
    /// Not heard from for long, or never.
    Lost,
}

/// Thresholds that turn heartbeat age into [`Staleness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StalenessPolicy {
    /// How often agents are expected to heartbeat (30 s).
    pub heartbeat_interval: Duration,
    /// Age from which an agent is stale (90 s: three missed heartbeats).
    pub stale_after: Duration,
    /// Age from which an agent is lost (300 s).
    pub lost_after: Duration,
}

impl Default for StalenessPolicy {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::seconds(30),
            stale_after: Duration::seconds(90),
            lost_after: Duration::seconds(300),
        }
    }
}

impl StalenessPolicy {
    /// Rejects non-positive durations and thresholds that are out of order:
    /// `heartbeat_interval < stale_after < lost_after` must hold, or healthy agents
    /// would flap to stale between two heartbeats.
    pub fn validate(&self) -> Result<()> {
        let mut v = Violations::new();
        for (field, value) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("stale_after", self.stale_after),
            ("lost_after", self.lost_after),
        ] {
            v.check(value <= Duration::zero(), field, "must be positive");
        }
        v.check(
            self.stale_after <= self.heartbeat_interval,
            "stale_after",
            "must be longer than heartbeat_interval",
        );
        v.check(
            self.lost_after <= self.stale_after,
            "lost_after",
            "must be longer than stale_after",
        );
        v.finish()
    }

    /// The staleness of an agent whose last heartbeat arrived at `last_heartbeat`.
    ///
    /// An agent that never sent a heartbeat is lost. A heartbeat stamped in the future
    /// (clock skew) counts as fresh. The thresholds belong to the worse state: an age of
    /// exactly `stale_after` is stale, exactly `lost_after` is lost.
    pub fn classify(&self, last_heartbeat: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Staleness {
        let Some(last) = last_heartbeat else {
            return Staleness::Lost;
        };
        let age = now.signed_duration_since(last);
        if age >= self.lost_after {
            Staleness::Lost
        } else if age >= self.stale_after {
            Staleness::Stale
        } else {
            Staleness::Fresh
        }
    }

    /// When an agent with this last heartbeat stopped being fresh, if it has by `now`.
    ///
    /// Useful for reporting `stale_since`; `None` while fresh or when it never heartbeated.
    pub fn stale_since(
        &self,
        last_heartbeat: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let last = last_heartbeat?;
        (self.classify(Some(last), now) != Staleness::Fresh).then(|| last + self.stale_after)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Error;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ago(secs: i64) -> DateTime<Utc> {
        now() - Duration::seconds(secs)
    }

    #[test]
    fn defaults_follow_the_design() {
        let p = StalenessPolicy::default();
        assert_eq!(p.heartbeat_interval, Duration::seconds(30));
        assert_eq!(p.stale_after, Duration::seconds(90));
        assert_eq!(p.lost_after, Duration::seconds(300));
        assert!(p.validate().is_ok());
    }

    #[test]
    fn classification_by_age_with_inclusive_thresholds() {
        let p = StalenessPolicy::default();
        assert_eq!(p.classify(Some(ago(0)), now()), Staleness::Fresh);
        assert_eq!(p.classify(Some(ago(89)), now()), Staleness::Fresh);
        assert_eq!(p.classify(Some(ago(90)), now()), Staleness::Stale);
        assert_eq!(p.classify(Some(ago(299)), now()), Staleness::Stale);
        assert_eq!(p.classify(Some(ago(300)), now()), Staleness::Lost);
        assert_eq!(p.classify(Some(ago(86_400)), now()), Staleness::Lost);
    }

    #[test]
    fn never_heard_from_is_lost_and_future_is_fresh() {
        let p = StalenessPolicy::default();
        assert_eq!(p.classify(None, now()), Staleness::Lost);
        assert_eq!(p.classify(Some(ago(-3600)), now()), Staleness::Fresh);
    }

    #[test]
    fn stale_since_is_last_heartbeat_plus_threshold() {
        let p = StalenessPolicy::default();
        assert_eq!(p.stale_since(Some(ago(30)), now()), None);
        assert_eq!(p.stale_since(None, now()), None);
        assert_eq!(p.stale_since(Some(ago(90)), now()), Some(now()));
        assert_eq!(
            p.stale_since(Some(ago(400)), now()),
            Some(now() - Duration::seconds(310))
        );
    }

    #[test]
    fn serde_and_order_of_states() {
        assert_eq!(serde_json::to_value(Staleness::Stale).unwrap(), "stale");
        assert_eq!(
            serde_json::from_value::<Staleness>("lost".into()).unwrap(),
            Staleness::Lost
        );
        assert!(Staleness::Fresh < Staleness::Stale && Staleness::Stale < Staleness::Lost);
    }

    #[test]
    fn misordered_or_non_positive_policies_are_rejected() {
        let fields = |p: StalenessPolicy| match p.validate() {
            Err(Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            other => panic!("expected Invalid, got {other:?}"),
        };
        let inverted = StalenessPolicy {
            stale_after: Duration::seconds(300),
            lost_after: Duration::seconds(300),
            ..StalenessPolicy::default()
        };
        assert_eq!(fields(inverted), ["lost_after"]);
        let zero = StalenessPolicy {
            heartbeat_interval: Duration::zero(),
            ..StalenessPolicy::default()
        };
        assert_eq!(fields(zero), ["heartbeat_interval"]);
        let too_eager = StalenessPolicy {
            stale_after: Duration::seconds(20),
            ..StalenessPolicy::default()
        };
        assert_eq!(fields(too_eager), ["stale_after"]);
    }

    proptest! {
        #[test]
        fn staleness_never_improves_with_age(
            a in -1_000_i64..100_000,
            b in -1_000_i64..100_000,
        ) {
            let p = StalenessPolicy::default();
            let (younger, older) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(p.classify(Some(ago(younger)), now()) <= p.classify(Some(ago(older)), now()));
            prop_assert!(p.classify(Some(ago(older)), now()) <= p.classify(None, now()));
        }
    }
}
