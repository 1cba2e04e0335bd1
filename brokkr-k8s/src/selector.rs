//! Label selectors as the `labelSelector` query parameter spells them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// `matchLabels` and `matchExpressions` joined with commas; `None` for a selector that
/// selects nothing we can express (an empty selector, or an unknown operator), so the
/// caller does not list everything by mistake.
pub fn to_query(selector: &LabelSelector) -> Option<String> {
    let mut parts = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        parts.push(format!("{key}={value}"));
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let values = requirement.values.clone().unwrap_or_default().join(",");
        let key = &requirement.key;
        parts.push(match requirement.operator.as_str() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn labels_and_expressions_become_one_query() {
        let selector = LabelSelector {
            match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            to_query(&selector).as_deref(),
            Some("app=web,tier in (a,b),!canary")
        );
    }

    #[test]
    fn an_empty_or_unknown_selector_selects_nothing() {
        assert_eq!(to_query(&LabelSelector::default()), None);
        let odd = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "x".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..LabelSelector::default()
        };
        assert_eq!(to_query(&odd), None);
    }
}
