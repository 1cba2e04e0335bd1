//! Why a verdict is what it is: one line per finding naming the rule that fired and the
//! time it measured from (`classify --explain`).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::verdict::Assessment;

/// One line per finding: severity, display, the object (and container), the rule and
/// its anchor with the anchor's age at `now`. An empty string when nothing was found.
pub fn explain(assessment: &Assessment, now: DateTime<Utc>) -> String {
    let mut text = String::new();
    for f in &assessment.findings {
        let r = &f.resource;
        let namespace = r
            .namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        let container = f
            .container
            .as_ref()
            .map(|c| format!(" container {}", c.name))
            .unwrap_or_default();
        let rule = if f.rule.is_empty() { "-" } else { f.rule };
        let anchor = match f.anchor {
            Some(a) => match a.at {
                Some(at) => format!(
                    "{} = {} ({} s before now)",
                    a.field,
                    at.to_rfc3339(),
                    (now - at).num_seconds()
                ),
                None => format!("{} (absent: counts as long past)", a.field),
            },
            None => "none".to_owned(),
        };
        let _ = writeln!(
            text,
            "{:?} {} ({:?}) on {} {namespace}{}{container}: rule {rule}; anchor {anchor}",
            f.severity, f.display, f.code, r.kind, r.name
        );
    }
    text
}
