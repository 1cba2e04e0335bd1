//! What every rule needs: the time, the thresholds, and a way to write a finding.

use chrono::{DateTime, Duration, Utc};

use super::objects::ObjectMeta;
use super::policy::HealthPolicy;
use super::verdict::{
    Anchor, ContainerRef, Finding, FindingCode, Persistence, ResourceRef, Severity,
};

/// The moment and thresholds one classification runs with.
pub(crate) struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub policy: &'a HealthPolicy,
}

impl Ctx<'_> {
    /// Whether more than `grace` has passed since `anchor`. An unknown anchor counts as
    /// long past: a recording without timestamps describes a settled state, and an
    /// unknown start must not keep a problem hidden forever.
    pub fn past(&self, anchor: Option<DateTime<Utc>>, grace: Duration) -> bool {
        anchor.is_none_or(|a| self.now - a > grace)
    }

    /// Whether `at` lies within `window` before now (inclusive; future times count).
    pub fn recent(&self, at: Option<DateTime<Utc>>, window: Duration) -> bool {
        at.is_some_and(|t| self.now - t <= window)
    }

    /// A finding on the object `kind`/`meta`.
    // Every argument is a distinct field of the finding; a builder would only hide that.
    #[allow(clippy::too_many_arguments)]
    pub fn finding(
        &self,
        code: FindingCode,
        severity: Severity,
        persistence: Persistence,
        kind: &str,
        meta: &ObjectMeta,
        display: String,
        message: Option<&str>,
    ) -> Finding {
        Finding {
            code,
            severity,
            persistence,
            resource: ResourceRef {
                kind: kind.to_owned(),
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
            },
            container: None,
            display,
            message: message
                .filter(|m| !m.is_empty())
                .map(|m| truncate(m, self.policy.message_limit)),
            since: None,
            count: None,
            affected: None,
            rule: "",
            anchor: None,
        }
    }

    /// Whether more than `grace` has passed since `anchor` (see [`Ctx::past`]).
    pub fn past_anchor(&self, anchor: Anchor, grace: Duration) -> bool {
        self.past(anchor.at, grace)
    }
}

/// An anchor named after the field it was read from.
pub(crate) fn anchor(field: &'static str, at: Option<DateTime<Utc>>) -> Anchor {
    Anchor { field, at }
}

/// Builder-style setters used by the rules.
impl Finding {
    pub(crate) fn count(mut self, count: i32) -> Self {
        self.count = u32::try_from(count).ok();
        self
    }

    /// Names the rule that fired (shown by `classify --explain`).
    pub(crate) fn rule(mut self, rule: &'static str) -> Self {
        self.rule = rule;
        self
    }

    /// Records the time the rule measured from; `since` follows it unless already set.
    pub(crate) fn anchored(mut self, anchor: Anchor) -> Self {
        if self.since.is_none() {
            self.since = anchor.at;
        }
        self.anchor = Some(anchor);
        self
    }

    pub(crate) fn container(mut self, container: ContainerRef) -> Self {
        self.container = Some(container);
        self
    }
}

/// Cuts `text` to at most `limit` bytes on a character boundary, marking the cut.
pub(crate) fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_text_and_cuts_on_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ääääää", 8);
        assert!(cut.len() <= 8, "{cut}");
        assert!(cut.ends_with('…'));
    }
}
