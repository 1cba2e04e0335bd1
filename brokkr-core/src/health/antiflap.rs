//! Anti-flap: report a worse verdict at once, a better one only once it has held.
//!
//! A pod that crashes, restarts and runs for a minute before crashing again would
//! otherwise produce a stream of failing → healthy → failing reports. Users want to hear
//! about trouble immediately and about recovery only when it is real.

use chrono::{DateTime, Duration, Utc};

use super::verdict::Health;

/// Per deployment object state of what was last reported and what is waiting to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AntiFlap {
    recover_after: Duration,
    reported: Option<Health>,
    /// An improvement under observation: the worst health seen since it began, and when.
    improving: Option<(Health, DateTime<Utc>)>,
}

impl AntiFlap {
    /// A gate that lets improvements through after they held for `recover_after`.
    pub fn new(recover_after: Duration) -> Self {
        Self {
            recover_after,
            reported: None,
            improving: None,
        }
    }

    /// The health last let through, if any.
    pub fn reported(&self) -> Option<Health> {
        self.reported
    }

    /// Feeds the health observed at `now`; returns the health to report now, if any.
    ///
    /// * first observation, or worse than reported: reported at once;
    /// * equal to reported: nothing (and any pending improvement is dropped);
    /// * better than reported: reported once it has stayed better for `recover_after`,
    ///   at the worst level seen during that time.
    pub fn observe(&mut self, health: Health, now: DateTime<Utc>) -> Option<Health> {
        let Some(reported) = self.reported else {
            return Some(self.report(health));
        };
        if health >= reported {
            self.improving = None;
            return (health > reported).then(|| self.report(health));
        }
        let (worst, since) = match self.improving {
            Some((worst, since)) => (worst.max(health), since),
            None => (health, now),
        };
        self.improving = Some((worst, since));
        if now - since >= self.recover_after {
            return Some(self.report(worst));
        }
        None
    }

    fn report(&mut self, health: Health) -> Health {
        self.reported = Some(health);
        self.improving = None;
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(seconds)
    }

    #[test]
    fn worsening_is_reported_at_once_and_recovery_only_after_it_holds() {
        let mut gate = AntiFlap::new(Duration::seconds(90));
        assert_eq!(gate.observe(Health::Healthy, t(0)), Some(Health::Healthy));
        assert_eq!(gate.observe(Health::Failing, t(60)), Some(Health::Failing));
        assert_eq!(gate.observe(Health::Healthy, t(120)), None);
        assert_eq!(gate.observe(Health::Healthy, t(180)), None);
        assert_eq!(gate.observe(Health::Healthy, t(210)), Some(Health::Healthy));
        assert_eq!(gate.reported(), Some(Health::Healthy));
    }

    #[test]
    fn a_relapse_restarts_the_recovery_window() {
        let mut gate = AntiFlap::new(Duration::seconds(90));
        gate.observe(Health::Failing, t(0));
        assert_eq!(gate.observe(Health::Healthy, t(10)), None);
        assert_eq!(
            gate.observe(Health::Failing, t(60)),
            None,
            "same as reported"
        );
        assert_eq!(gate.observe(Health::Healthy, t(70)), None);
        assert_eq!(
            gate.observe(Health::Healthy, t(150)),
            None,
            "window restarted at 70"
        );
        assert_eq!(gate.observe(Health::Healthy, t(160)), Some(Health::Healthy));
    }

    #[test]
    fn partial_recovery_reports_the_worst_level_seen_in_the_window() {
        let mut gate = AntiFlap::new(Duration::seconds(90));
        gate.observe(Health::Failing, t(0));
        gate.observe(Health::Healthy, t(10));
        gate.observe(Health::Degraded, t(50));
        assert_eq!(
            gate.observe(Health::Healthy, t(100)),
            Some(Health::Degraded)
        );
    }
}
