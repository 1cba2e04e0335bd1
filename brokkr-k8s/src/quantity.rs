//! Kubernetes resource quantities (`250m`, `2`, `1.5Gi`, `128974848`, `1e3`) as
//! millicores and bytes.

/// The value of a quantity, or `None` when it does not parse.
fn value(quantity: &str) -> Option<f64> {
    // Binary suffixes first: `Mi` must not be read as `M` followed by junk.
    const SUFFIXES: [(&str, f64); 16] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("", 1.0),
    ];
    let q = quantity.trim();
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            // `1E3` ends in a digit, so it is a plain number (an exponent), not exa.
            if number.is_empty() {
                continue;
            }
            if let Ok(v) = number.parse::<f64>() {
                let v = v * factor;
                return v.is_finite().then_some(v);
            }
        }
    }
    None
}

/// CPU in millicores, rounded up (`100m` → 100, `0.5` → 500, `2` → 2000).
pub fn cpu_millis(quantity: &str) -> Option<i64> {
    value(quantity).map(|v| (v * 1000.0).ceil() as i64)
}

/// Memory in bytes, rounded up (`128Mi` → 134217728, `1G` → 10^9).
pub fn bytes(quantity: &str) -> Option<i64> {
    value(quantity).map(|v| v.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(cpu_millis("250m"), Some(250));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("1500u"), Some(2));
        assert_eq!(cpu_millis(" 4 "), Some(4000));
        assert_eq!(cpu_millis("lots"), None);
        assert_eq!(cpu_millis(""), None);
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(bytes("128Mi"), Some(134_217_728));
        assert_eq!(bytes("1Gi"), Some(1_073_741_824));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("16374400Ki"), Some(16_767_385_600));
        assert_eq!(bytes("129e6"), Some(129_000_000));
        assert_eq!(bytes("1E3"), Some(1000));
        assert_eq!(bytes("2E"), Some(2_000_000_000_000_000_000));
        assert_eq!(bytes("12345"), Some(12345));
        assert_eq!(bytes("Mi"), None);
    }
}
