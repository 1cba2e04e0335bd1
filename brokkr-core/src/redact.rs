//! Redaction of secrets in log tails and messages before they leave a cluster or are
//! stored.
//!
//! Log lines are redacted one by one (with state for PEM blocks that span lines) and cut
//! to a byte cap; redaction never makes a line longer than the cap. What is removed:
//! bearer tokens, passwords in URLs, `password=` / `secret=` / `token=`-style pairs,
//! AWS access key ids, JWTs, Brokkr keys (`brokkr_<role>_...`), and PEM private key
//! blocks.

use std::sync::LazyLock;

use regex::Regex;

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Default cap of one log line, in bytes.
pub const LINE_CAP: usize = 2048;

struct Rule {
    pattern: Regex,
    replacement: &'static str,
}

/// Compiles one of this module's constant patterns (all exercised by its tests).
#[allow(clippy::expect_used)]
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("redaction patterns are constants, checked by the tests")
}

fn rule(pattern: &str, replacement: &'static str) -> Rule {
    Rule {
        pattern: compile(pattern),
        replacement,
    }
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // `Authorization: Bearer abc`, `bearer abc`, also Basic credentials.
        // Only token-like words (8+ characters): "Basic auth disabled" stays readable.
        rule(
            r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}",
            "$1 [REDACTED]",
        ),
        // `scheme://user:password@host`
        rule(
            r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@",
            "$1:[REDACTED]@",
        ),
        // JWTs: three base64url parts, the first two starting with `eyJ` (`{"`).
        rule(
            r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
            "[REDACTED]",
        ),
        // Brokkr's own keys (`brokkr_<role>_<random>`), wherever a workload prints them.
        // No word boundary in front: `PAK_brokkr_agent_...` must not slip through.
        rule(r"brokkr_[a-z]+_[A-Za-z0-9]{16,}", "[REDACTED]"),
        // AWS access key ids.
        rule(
            r"\b(AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",
            "[REDACTED]",
        ),
        // `password=...`, `"secret": "..."`, `api_key: ...`, `token=...` (keys may carry
        // prefixes such as `db_password` or `X-Auth-Token`), also URL-encoded
        // (`password%3Dhunter2` in a logged query string).
        rule(
            r#"(?i)([A-Za-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)["']?\s*(?:[:=]|%3D)\s*)("[^"]*"|'[^']*'|[^\s"',;&]+)"#,
            "$1[REDACTED]",
        ),
        // `pwd=...` in lower case only: `PWD=/app` is the shell's working directory.
        rule(
            r#"\b([a-z_]*pwd\s*[:=]\s*)([^\s"',;&/][^\s"',;&]*)"#,
            "$1[REDACTED]",
        ),
        // `Authorization: Token abc` (Django REST, GitLab and others).
        rule(
            r"(?i)(authorization\s*[:=]\s*token\s+)[^\s,;]+",
            "$1[REDACTED]",
        ),
        // Whole cookie headers: any cookie may be a session.
        rule(r"(?i)\b((?:set-)?cookie\s*:\s*)[^\r\n]+", "$1[REDACTED]"),
        // Tokens recognisable by their prefix: GitHub, Slack, GitLab.
        rule(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|glpat-[A-Za-z0-9_-]{20,})",
            "[REDACTED]",
        ),
    ]
});

static PEM_BEGIN: LazyLock<Regex> =
    LazyLock::new(|| compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"));
static PEM_END: LazyLock<Regex> = LazyLock::new(|| compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----"));

/// Redacts secrets in one piece of text (a message, a single log line) and cuts it to
/// `cap` bytes on a character boundary.
pub fn redact(text: &str, cap: usize) -> String {
    // NUL never leaves: a store may refuse it (crate::cluster_text).
    let text: std::borrow::Cow<'_, str> = if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    // Key blocks first, all of them: the other rules must not break their markers.
    let mut out = String::with_capacity(text.len());
    let mut rest = &*text;
    while let Some(begin) = PEM_BEGIN.find(rest) {
        out.push_str(&rest[..begin.start()]);
        out.push_str(MASK);
        rest = PEM_END
            .find_at(rest, begin.end())
            .map_or("", |end| &rest[end.end()..]);
    }
    out.push_str(rest);
    let mut out = std::borrow::Cow::Owned(out);
    for rule in RULES.iter() {
        if let std::borrow::Cow::Owned(replaced) = rule.pattern.replace_all(&out, rule.replacement)
        {
            out = std::borrow::Cow::Owned(replaced);
        }
    }
    cut(&out, cap)
}

/// Redacts a log tail line by line; lines inside a PEM private key block (which spans
/// lines) are replaced whole.
pub fn redact_lines<S: AsRef<str>>(lines: &[S], cap: usize) -> Vec<String> {
    let mut inside_key = false;
    lines
        .iter()
        .map(|line| {
            let line = line.as_ref();
            if inside_key {
                if PEM_END.is_match(line) {
                    inside_key = false;
                }
                return cut(MASK, cap);
            }
            if let Some(begin) = PEM_BEGIN.find(line)
                && PEM_END.find_at(line, begin.end()).is_none()
            {
                inside_key = true;
                return redact(&format!("{}{MASK}", &line[..begin.start()]), cap);
            }
            redact(line, cap)
        })
        .collect()
}

/// `text` cut to at most `cap` bytes on a character boundary.
fn cut(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        return text.to_owned();
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_secrets_are_removed_and_the_rest_kept() {
        let cases = [
            ("GET /api Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
            (
                "connecting to postgres://app:hunter2@db:5432/shop",
                "hunter2",
            ),
            ("login password=s3cr3t! user=bob", "s3cr3t!"),
            (r#"{"client_secret": "xyz987", "name": "web"}"#, "xyz987"),
            ("export DB_PASSWORD='p@ss'", "p@ss"),
            ("X-Auth-Token: 1234abcd", "1234abcd"),
            (
                "using key AKIAIOSFODNN7EXAMPLE for s3",
                "AKIAIOSFODNN7EXAMPLE",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig_part-123 accepted",
                "eyJzdWIiOiIxMjMifQ",
            ),
            ("api_key: live_4f5e", "live_4f5e"),
            (
                "agent started with brokkr_agent_Xy12Xy12Xy12Xy12Xy12Xy12 ok",
                "Xy12Xy12Xy12Xy12Xy12Xy12",
            ),
            (
                "export PAK_brokkr_admin_Zz98Zz98Zz98Zz98Zz98Zz98",
                "Zz98Zz98Zz98Zz98Zz98Zz98",
            ),
            (
                "Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
                "9944b09199",
            ),
            (
                "cloned with ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "ghp_abcdefghij",
            ),
            ("posting with xoxb-123456789012-abcdefghijkl", "xoxb-1234"),
            ("gitlab glpat-abcdefghijklmnopqrst01 ok", "glpat-abcdefghij"),
            ("Cookie: session=abc123; theme=dark", "abc123"),
            ("Set-Cookie: sid=s3ss10n; HttpOnly", "s3ss10n"),
            ("GET /login?user=bob&password%3Dhunter2 HTTP/1.1", "hunter2"),
            ("ssh passphrase=open-sesame", "open-sesame"),
            ("mysql --user root pwd=letmein", "letmein"),
        ];
        for (line, secret) in cases {
            let out = redact(line, LINE_CAP);
            assert!(!out.contains(secret), "{line} -> {out}");
            assert!(out.contains(MASK), "{line} -> {out}");
        }
        for plain in [
            "GET /healthz 200 in 3ms user=bob",
            "Basic auth disabled; running basic health checks",
            "PWD=/app HOME=/root",
            "token expired; refreshing credentials store",
        ] {
            assert_eq!(redact(plain, LINE_CAP), plain);
        }
        let spaced = redact(r#"password: "correct horse battery staple""#, LINE_CAP);
        assert!(!spaced.contains("horse"), "{spaced}");
        assert!(redact("postgres://db:5432/shop", LINE_CAP).contains("db:5432"));
    }

    #[test]
    fn private_key_blocks_are_removed_across_lines() {
        let tail = [
            "loading key",
            "-----BEGIN RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEA7",
            "-----END RSA PRIVATE KEY-----",
            "server started",
        ];
        let out = redact_lines(&tail, LINE_CAP);
        assert_eq!(out[0], "loading key");
        assert!(out[1..4].iter().all(|l| l == MASK));
        assert_eq!(out[4], "server started");
        let one = redact(
            "key=-----BEGIN PRIVATE KEY-----abc-----END PRIVATE KEY----- ok",
            LINE_CAP,
        );
        assert!(!one.contains("abc"), "{one}");
        assert!(one.ends_with(" ok"));
        let labelled = redact(
            r#"{"private_key":"-----BEGIN PRIVATE KEY-----\nMIIEvsecret\n-----END PRIVATE KEY-----\n", "x": 1} -----BEGIN EC PRIVATE KEY-----MHcsecond-----END EC PRIVATE KEY-----"#,
            LINE_CAP,
        );
        assert!(
            !labelled.contains("MIIEv") && !labelled.contains("MHc"),
            "{labelled}"
        );
    }

    proptest! {
        #[test]
        fn redaction_never_exceeds_the_cap(line in ".{0,300}", cap in 0usize..64) {
            prop_assert!(redact(&line, cap).len() <= cap);
            let with_secret = format!("{line} password=x token=y Bearer abcdefgh");
            prop_assert!(redact(&with_secret, cap).len() <= cap);
        }

        #[test]
        fn redaction_is_idempotent(line in "[ -~]{0,120}") {
            let once = redact(&line, LINE_CAP);
            prop_assert_eq!(redact(&once, LINE_CAP), once.clone());
        }

        #[test]
        fn inserted_secrets_never_survive(prefix in "[a-z ]{0,20}", secret in "[A-Za-z0-9]{8,20}") {
            for template in ["password={}", "Bearer {}", "https://u:{}@host/", "token: {}"] {
                let line = format!("{prefix} {}", template.replace("{}", &secret));
                prop_assert!(!redact(&line, LINE_CAP).contains(&secret), "{}", line);
            }
        }
    }
}
