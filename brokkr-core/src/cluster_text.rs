//! Text that came out of a cluster, made safe to keep.
//!
//! A container writes its own termination message and logs, so anything a pod can print
//! may reach the broker: NUL characters (which PostgreSQL refuses in `text` and `jsonb`,
//! where one would cost a whole batch), and secrets. The broker applies one rule to every
//! free-form field an agent sends, whatever the store: NUL becomes U+FFFD (the Unicode
//! replacement character) and messages are redacted ([`crate::redact`]). What a client
//! controls itself (YAML, labels, work-order payloads, claim tokens) is refused instead,
//! by the types' `validate`.

use serde_json::Value;

/// What a NUL in cluster text becomes.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// Replaces every NUL in `text` (no allocation when there is none).
pub fn replace_nul(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

/// [`replace_nul`] on an optional field.
pub fn replace_nul_opt(text: &mut Option<String>) {
    if let Some(text) = text {
        replace_nul(text);
    }
}

/// Replaces NUL in every string and object key of `value`, and redacts every string
/// (free-form JSON from a cluster: findings, say).
pub fn scrub_json(value: &mut Value) {
    match value {
        Value::String(text) => scrub_message(text),
        Value::Array(items) => items.iter_mut().for_each(scrub_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (mut key, value) in entries {
                    replace_nul(&mut key);
                    map.insert(key, value);
                }
            }
            map.values_mut().for_each(scrub_json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A message from a cluster: NUL replaced, secrets redacted, cut to
/// [`crate::redact::LINE_CAP`] bytes.
pub fn scrub_message(text: &mut String) {
    replace_nul(text);
    let redacted = crate::redact::redact(text, crate::redact::LINE_CAP);
    if redacted != *text {
        *text = redacted;
    }
}

/// [`scrub_message`] on an optional field.
pub fn scrub_message_opt(text: &mut Option<String>) {
    if let Some(text) = text {
        scrub_message(text);
    }
}

/// Whether `value` holds a NUL anywhere (strings or keys): for JSON a client controls,
/// which is refused rather than changed.
pub fn json_has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || json_has_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character_everywhere() {
        let mut value = json!({"a\u{0}b": ["x\u{0}", {"m": "exit\u{0}ed"}], "n": 1});
        scrub_json(&mut value);
        assert_eq!(
            value,
            json!({"a\u{FFFD}b": ["x\u{FFFD}", {"m": "exit\u{FFFD}ed"}], "n": 1})
        );
        assert!(!json_has_nul(&value));
        assert!(json_has_nul(&json!({"k": ["\u{0}"]})));
        assert!(json_has_nul(&json!({"\u{0}": 1})));
    }

    #[test]
    fn messages_are_redacted_too() {
        let mut message = "login failed: password=hunter2\u{0}".to_owned();
        scrub_message(&mut message);
        assert_eq!(message, "login failed: password=[REDACTED]");
        let mut clean = "Back-off pulling image".to_owned();
        scrub_message(&mut clean);
        assert_eq!(clean, "Back-off pulling image");
    }
}
