//! Webhook deliveries (feature `webhooks`): every fleet event published to the hub is
//! POSTed to the subscriptions whose filter names its type, signed, retried with
//! backoff, and never in the way of request handling (deliveries run on their own tasks,
//! fed from the hub's live feed). Every replica sees every event; the one that claims
//! an event's delivery to a subscription in the store
//! ([`EventStore::claim_event_delivery`](brokkr_core::store::EventStore::claim_event_delivery))
//! sends it, so each subscription gets each event once however many replicas run.
//!
//! Each delivery carries:
//! * `X-Brokkr-Event`: the type, e.g. `health.failing`;
//! * `X-Brokkr-Delivery`: the event's id in the outbox (retries repeat it; receivers
//!   deduplicate on it);
//! * `X-Brokkr-Timestamp`: Unix seconds when signed;
//! * `X-Brokkr-Signature`: `sha256=` and the hex HMAC-SHA256, keyed with the
//!   subscription's secret, of `<timestamp>.<body>` (the timestamp inside the MAC lets
//!   receivers refuse replays).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use brokkr_core::auth::Principal;
use brokkr_core::broker::Broker;
use brokkr_core::events::Webhook;
use brokkr_core::retry;
use brokkr_core::store::Store;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;

use crate::events::Numbered;
use crate::metrics::{Metrics, Telemetry};

/// How deliveries behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Tries per delivery, the first included.
    pub attempts: u32,
    /// First retry delay; doubles per retry (with jitter), at most `max_backoff`.
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Each POST gives up after this long.
    pub timeout: Duration,
    /// Deliveries in flight at most; beyond, new ones are dropped and counted.
    pub max_in_flight: usize,
    /// Subscriptions are re-read from the store at most this often.
    pub refresh: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            attempts: 6,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_mins(1),
            timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            refresh: Duration::from_secs(5),
        }
    }
}

/// Resolves names for deliveries, keeping only addresses the policy allows (names on
/// its allowlist keep all of theirs).
struct GuardedResolver {
    policy: brokkr_core::destination::DestinationPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = allowed_addresses(&policy, &host).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The addresses `host` resolves to that deliveries may reach; an error naming the
/// reason when there are none.
async fn allowed_addresses(
    policy: &brokkr_core::destination::DestinationPolicy,
    host: &str,
) -> Result<Vec<std::net::SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let resolved: Vec<_> = tokio::net::lookup_host((host, 0)).await?.collect();
    if policy.allows_host(host) {
        return Ok(resolved);
    }
    let mut refused = None;
    let allowed: Vec<_> = resolved
        .into_iter()
        .filter(|addr| match policy.refuses_ip(addr.ip()) {
            Some(why) => {
                refused = Some(format!("{host} resolves to {} ({why})", addr.ip()));
                false
            }
            None => true,
        })
        .collect();
    match (allowed.is_empty(), refused) {
        (true, Some(why)) => Err(why.into()),
        (true, None) => Err(format!("{host} resolves to no address").into()),
        _ => Ok(allowed),
    }
}

/// Checks `url` as the delivering client reads it (`http://2130706433/` and
/// `http://0x7f.1/` are addresses there, whatever they look like): an address is judged
/// now; a name is returned for resolving (deliveries resolve through the guarded
/// resolver) unless it always means this machine.
///
/// # Errors
/// Why the URL is refused.
pub fn check_target(
    policy: &brokkr_core::destination::DestinationPolicy,
    url: &str,
) -> Result<Option<String>, String> {
    policy.check_url(url)?;
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    // The client's own reading: numeric forms come out as dotted addresses here.
    let Some(host) = parsed.host_str() else {
        return Err("must name a host".into());
    };
    policy.check_host(host)?;
    let address = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    // A name not on the allowlist is checked again once resolved.
    Ok((!address && !policy.allows_host(host)).then(|| host.to_owned()))
}

/// For registration: refuses a host name any of whose addresses a delivery may not
/// reach. A name that does not resolve (yet) is accepted; deliveries check again.
///
/// # Errors
/// The reason, naming the forbidden address.
pub async fn check_resolved(
    policy: &brokkr_core::destination::DestinationPolicy,
    host: &str,
) -> Result<(), String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if policy.allows_host(host) || bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let Ok(resolved) = tokio::net::lookup_host((bare, 0)).await else {
        return Ok(());
    };
    for addr in resolved {
        if let Some(why) = policy.refuses_ip(addr.ip()) {
            return Err(format!("{host} resolves to {} ({why})", addr.ip()));
        }
    }
    Ok(())
}

/// The signature header value for `body` signed at `timestamp` with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + digest.len() * 2);
    hex.push_str("sha256=");
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Starts delivering the events of `telemetry`'s hub to the broker's webhook
/// subscriptions, counting outcomes in its metrics.
pub fn spawn_webhook_dispatcher(
    broker: Broker<dyn Store>,
    telemetry: &Telemetry,
    config: WebhookConfig,
) -> tokio::task::JoinHandle<()> {
    // Subscribed before returning: no event relayed after this call is missed.
    let mut live = telemetry.events.subscribe_live();
    telemetry.events.ensure_relay(broker.clone());
    let generation = telemetry.webhooks_changed.clone();
    let metrics = Some(telemetry.metrics.clone());
    tokio::spawn(async move {
        // No redirects: a 301/302 would turn the POST into a body-less GET that could
        // count as delivered.
        let policy = broker.config().webhook_destinations.clone();
        let http = match reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, past the guarded resolver.
            .no_proxy()
            // Every connection goes only to addresses the policy allows, as resolved
            // for that connection: a name rebound to 127.0.0.1 gets nowhere.
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .build()
        {
            Ok(http) => http,
            Err(error) => {
                tracing::error!(%error, "webhooks disabled: no HTTP client");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        let mut cached: Option<(tokio::time::Instant, u64, Arc<Vec<Webhook>>)> = None;
        loop {
            let event = match live.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "webhook dispatcher fell behind; events dropped");
                    if let Some(m) = &metrics {
                        m.webhook_dropped(missed);
                    }
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            // Re-read when this process changed a subscription, and every `refresh`
            // for changes made through other replicas.
            let seen_generation = generation.load(std::sync::atomic::Ordering::Acquire);
            let fresh = cached
                .as_ref()
                .filter(|(at, g, _)| *g == seen_generation && at.elapsed() < config.refresh)
                .map(|(_, _, hooks)| hooks.clone());
            let hooks = match fresh {
                Some(hooks) => hooks,
                None => match broker.webhooks(&Principal::Admin).await {
                    Ok(list) => {
                        let hooks = Arc::new(list);
                        cached =
                            Some((tokio::time::Instant::now(), seen_generation, hooks.clone()));
                        hooks
                    }
                    Err(error) => {
                        tracing::warn!(%error, "webhook subscriptions unreadable; event not delivered");
                        if let Some(m) = &metrics {
                            m.webhook_dropped(1);
                        }
                        continue;
                    }
                },
            };
            let name = event.event.name();
            // A subscription gets what happened after it was made, nothing older.
            let at = event.event.at();
            for hook in hooks
                .iter()
                .filter(|h| h.created_at <= at && h.events.iter().any(|e| e == name))
            {
                // Every replica relays every event (and replays its ring's worth when it
                // starts): only the one that claims a delivery sends it. Claimed here, in
                // order, so a replay costs one quick insert per event and nothing else.
                match broker
                    .claim_event_delivery(&Principal::Admin, hook.id, event.id)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(error) => {
                        tracing::warn!(webhook = %hook.id, %error, "delivery not claimed; dropped");
                        if let Some(m) = &metrics {
                            m.webhook_dropped(1);
                        }
                        continue;
                    }
                }
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(webhook = %hook.id, "too many webhook deliveries in flight; dropped");
                    if let Some(m) = &metrics {
                        m.webhook_dropped(1);
                    }
                    continue;
                };
                let job = Delivery {
                    id: event.id.to_string(),
                    http: http.clone(),
                    hook: hook.clone(),
                    event: event.clone(),
                    broker: broker.clone(),
                    config: config.clone(),
                    metrics: metrics.clone(),
                };
                tokio::spawn(async move {
                    job.run().await;
                    drop(slot);
                });
            }
        }
    })
}

struct Delivery {
    /// The event's id in the outbox: unique across restarts and replicas.
    id: String,
    http: reqwest::Client,
    hook: Webhook,
    event: Numbered,
    broker: Broker<dyn Store>,
    config: WebhookConfig,
    metrics: Option<Arc<Metrics>>,
}

impl Delivery {
    async fn run(self) {
        let Ok(body) = serde_json::to_vec(&self.event.event) else {
            return;
        };
        // An address in the URL never meets the resolver: check it here, every time
        // (the policy may have changed since the subscription was made).
        if let Err(why) = check_target(&self.broker.config().webhook_destinations, &self.hook.url) {
            tracing::warn!(webhook = %self.hook.id, reason = %why, "webhook destination refused");
            if let Some(m) = &self.metrics {
                m.webhook_delivered(false);
            }
            return;
        }
        for attempt in 0..self.config.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(retry::exponential(
                    self.config.backoff,
                    self.config.max_backoff,
                    attempt - 1,
                    retry::jitter(),
                ))
                .await;
            }
            let timestamp = self.broker.now().timestamp();
            let sent = self
                .http
                .post(&self.hook.url)
                .header("content-type", "application/json")
                .header("x-brokkr-event", self.event.event.name())
                .header("x-brokkr-delivery", &self.id)
                .header("x-brokkr-timestamp", timestamp.to_string())
                .header(
                    "x-brokkr-signature",
                    signature(&self.hook.secret, timestamp, &body),
                )
                .body(body.clone())
                .send()
                .await;
            let status = sent.as_ref().map(reqwest::Response::status);
            match status {
                Ok(s) if s.is_success() => {
                    if let Some(m) = &self.metrics {
                        m.webhook_delivered(true);
                    }
                    return;
                }
                // The receiver refuses this delivery for good: retrying cannot help.
                Ok(s) if s.is_client_error() && s.as_u16() != 408 && s.as_u16() != 429 => {
                    tracing::warn!(webhook = %self.hook.id, status = %s, "webhook refused");
                    break;
                }
                Ok(s) => {
                    tracing::debug!(webhook = %self.hook.id, status = %s, attempt, "webhook retry");
                }
                Err(error) => {
                    tracing::debug!(
                        webhook = %self.hook.id,
                        timeout = error.is_timeout(),
                        connect = error.is_connect(),
                        attempt,
                        "webhook retry"
                    );
                }
            }
        }
        tracing::warn!(webhook = %self.hook.id, delivery = %self.id, "webhook delivery failed");
        if let Some(m) = &self.metrics {
            m.webhook_delivered(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_judged_as_the_client_reads_them() {
        let policy = brokkr_core::destination::DestinationPolicy::default();
        for url in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.0.1\\@hooks.example.com/",
            "http://LOCALHOST./x",
            "http://[::ffff:169.254.169.254]/",
        ] {
            assert!(check_target(&policy, url).is_err(), "{url}");
        }
        assert_eq!(
            check_target(&policy, "https://hooks.example.com/x"),
            Ok(Some("hooks.example.com".to_owned()))
        );
        assert_eq!(check_target(&policy, "http://93.184.216.34/"), Ok(None));
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_gets_no_address() {
        let policy = brokkr_core::destination::DestinationPolicy::default();
        // `localhost` resolves (from /etc/hosts) to loopback only: nowhere to connect.
        let refused = allowed_addresses(&policy, "localhost").await.unwrap_err();
        assert!(refused.to_string().contains("loopback"), "{refused}");
        assert!(check_resolved(&policy, "localhost").await.is_err());
        let listed = brokkr_core::destination::DestinationPolicy {
            allow_private: false,
            allow_hosts: vec!["localhost".into()],
        };
        assert!(
            !allowed_addresses(&listed, "localhost")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently (Python's hmac module) for key "Jefe" and the message
        // "0.what do ya want for nothing?".
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
        assert_ne!(sig, signature("Jefe", 1, b"what do ya want for nothing?"));
        assert_ne!(sig, signature("Jeff", 0, b"what do ya want for nothing?"));
        assert_eq!(sig, signature("Jefe", 0, b"what do ya want for nothing?"));
    }
}
