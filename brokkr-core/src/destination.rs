//! Where the broker may send webhook deliveries.
//!
//! A subscription names a URL and the broker POSTs to it from inside the operator's
//! network, so an admin key (or a stolen one) must not turn the broker into a way to
//! reach what only the broker can: its own loopback, the cloud metadata service
//! (169.254.169.254), or, unless configured, private ranges. The rule is checked when a
//! subscription is registered and again for every delivery after DNS resolution, so a
//! name that later resolves somewhere forbidden (rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which destinations deliveries may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    /// Allow private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): for
    /// receivers inside the operator's own network. Off by default.
    pub allow_private: bool,
    /// Host names (exact, case-insensitive) allowed whatever they resolve to: in-cluster
    /// receivers such as `hooks.monitoring.svc.cluster.local`.
    pub allow_hosts: Vec<String>,
}

impl DestinationPolicy {
    /// Whether `host` is on the allowlist.
    pub fn allows_host(&self, host: &str) -> bool {
        self.allow_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Why a delivery to `ip` is refused, if it is.
    pub fn refuses_ip(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match ip {
            IpAddr::V4(v4) => self.refuses_v4(v4),
            IpAddr::V6(v6) => self.refuses_v6(v6),
        }
    }

    fn refuses_v4(&self, ip: Ipv4Addr) -> Option<&'static str> {
        let [a, b, ..] = ip.octets();
        if ip.is_loopback() {
            Some("a loopback address")
        } else if ip.is_link_local() {
            Some("a link-local address (cloud metadata lives there)")
        } else if ip == Ipv4Addr::new(100, 100, 100, 200) {
            Some("a cloud metadata address")
        } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 {
            Some("not a unicast address")
        } else if !self.allow_private && (ip.is_private() || (a == 100 && (64..128).contains(&b))) {
            Some("a private address (allow private destinations to reach it)")
        } else {
            None
        }
    }

    fn refuses_v6(&self, ip: Ipv6Addr) -> Option<&'static str> {
        let s = ip.segments();
        let first = s[0];
        // Forms that carry an IPv4 address (IPv4-compatible ::a.b.c.d, NAT64
        // 64:ff9b::/96, 6to4 2002::/16) are judged by that address: a gateway may route
        // them to it.
        let embedded =
            |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
        if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
            return self.refuses_v4(embedded(s[6], s[7]));
        }
        if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            return self.refuses_v4(embedded(s[6], s[7]));
        }
        if first == 0x2002 {
            return self.refuses_v4(embedded(s[1], s[2]));
        }
        if ip.is_loopback() {
            Some("a loopback address")
        } else if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
            Some("a cloud metadata address")
        } else if first & 0xffc0 == 0xfe80 {
            Some("a link-local address")
        } else if ip.is_unspecified() || ip.is_multicast() {
            Some("not a unicast address")
        } else if !self.allow_private && first & 0xfe00 == 0xfc00 {
            Some("a private address (allow private destinations to reach it)")
        } else {
            None
        }
    }

    /// Checks a webhook URL as far as it can be without DNS: its scheme, and its host
    /// when that is an address or a name that always means this machine. The error is
    /// the reason.
    ///
    /// # Errors
    /// The reason the URL is refused.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let host = url_host(url).ok_or("must be an http or https URL with a host")?;
        self.check_host(&host)
    }

    /// Checks a URL's host (brackets kept for IPv6): allowed by name, an address the
    /// policy allows, or a name that is not this machine's (left to resolving).
    ///
    /// # Errors
    /// The reason the host is refused.
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        if self.allows_host(host) {
            return Ok(());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return match self.refuses_ip(ip) {
                Some(why) => Err(format!("{host} is {why}")),
                None => Ok(()),
            };
        }
        let lower = host.to_ascii_lowercase();
        let lower = lower.trim_end_matches('.');
        if lower == "localhost" || lower.ends_with(".localhost") {
            return Err(format!("{host} is this machine"));
        }
        Ok(())
    }
}

/// The host of an `http(s)://` URL (brackets kept for IPv6), without credentials or
/// port; `None` when it has none or another scheme.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    // `\` ends the authority too (URL parsers treat it as `/` for http).
    let authority = rest.split(['/', '\\', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if authority.starts_with('[') {
        &authority[..=authority.find(']')?]
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// `url` with any `user:password@` replaced by `[REDACTED]@`, as it is shown back.
pub fn mask_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://[REDACTED]{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_link_local_and_private_are_refused_by_default() {
        let policy = DestinationPolicy::default();
        for url in [
            "http://127.0.0.1/hook",
            "http://127.1.2.3:8080/",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://10.0.0.5/",
            "http://172.16.3.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:9000/",
            "http://api.localhost/",
            "http://user:pw@127.0.0.1/",
            "http://127.0.0.1\\@hooks.example.com/",
            "http://localhost./",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "ftp://example.com/",
        ] {
            assert!(policy.check_url(url).is_err(), "{url}");
        }
        for url in [
            "https://hooks.example.com/brokkr",
            "http://93.184.216.34/",
            "https://[2606:4700::1111]/",
        ] {
            assert_eq!(policy.check_url(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn private_ranges_and_named_hosts_can_be_allowed() {
        let policy = DestinationPolicy {
            allow_private: true,
            allow_hosts: vec!["hooks.monitoring.svc".into()],
        };
        assert_eq!(policy.check_url("http://10.0.0.5/"), Ok(()));
        assert!(policy.check_url("http://169.254.169.254/").is_err());
        assert!(policy.check_url("http://127.0.0.1/").is_err());
        assert_eq!(
            policy.check_url("http://HOOKS.monitoring.svc:8080/x"),
            Ok(())
        );
    }

    #[test]
    fn credentials_are_never_shown_back() {
        assert_eq!(
            mask_credentials("https://bob:s3cret@hooks.example.com/x?a=b@c"),
            "https://[REDACTED]@hooks.example.com/x?a=b@c"
        );
        assert_eq!(
            mask_credentials("https://hooks.example.com/x"),
            "https://hooks.example.com/x"
        );
        assert_eq!(
            url_host("https://bob:pw@[::1]:8443/x"),
            Some("[::1]".to_owned())
        );
    }
}
