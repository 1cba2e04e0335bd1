//! Prometheus metrics of the broker, in a registry the host can share.
//!
//! Labels are bounded by construction: route templates (never a path with an id in it),
//! method, status class, store operation names, staleness states, health values and
//! diagnostics states. Never an agent or object id.
//!
//! ```
//! use prometheus_client::registry::Registry;
//! let mut registry = Registry::default();
//! // ... the host registers its own metrics ...
//! let metrics = brokkr_http::metrics::Metrics::register(&mut registry);
//! // mount `router_with(broker, &config, Telemetry::new(registry, metrics))`
//! # let _ = metrics;
//! ```

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use brokkr_core::auth::Principal;
use brokkr_core::broker::Broker;
use brokkr_core::store::{Store, StoreObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeOnly {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    health: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_buckets() -> Histogram {
    // 1 ms to ~8 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// The broker's metric families.
pub struct Metrics {
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Timings<RouteLabels>,
    store_duration: Timings<OperationLabels>,
    store_operations: Family<OutcomeLabels, Counter>,
    heartbeats: Counter,
    health_reports: Counter,
    health_items: Counter,
    agents: Family<StateLabels, Gauge>,
    deployments: Family<HealthLabels, Gauge>,
    diagnostics: Family<StateLabels, Gauge>,
    cleanup_deleted: Counter,
    cleanup_runs: Counter,
    cleanup_failures: Counter,
    refresh_failures: Counter,
    ready: Gauge,
    webhook_deliveries: Family<OutcomeOnly, Counter>,
    webhook_dropped: Counter,
    build_info: Family<BuildLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Route label of requests that matched no route (so unknown paths cannot grow the
/// label set).
pub const UNMATCHED: &str = "unmatched";

impl Metrics {
    /// Registers the broker's families in `registry` (the host's or a fresh one).
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_buckets),
            store_duration: Family::new_with_constructor(latency_buckets),
            store_operations: Family::default(),
            heartbeats: Counter::default(),
            health_reports: Counter::default(),
            health_items: Counter::default(),
            agents: Family::default(),
            deployments: Family::default(),
            diagnostics: Family::default(),
            cleanup_deleted: Counter::default(),
            cleanup_runs: Counter::default(),
            cleanup_failures: Counter::default(),
            refresh_failures: Counter::default(),
            ready: Gauge::default(),
            webhook_deliveries: Family::default(),
            webhook_dropped: Counter::default(),
            build_info: Family::default(),
        };
        let r = registry;
        r.register(
            "brokkr_http_requests",
            "HTTP requests by route template, method and status class",
            m.http_requests.clone(),
        );
        r.register(
            "brokkr_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            m.http_duration.clone(),
        );
        r.register(
            "brokkr_store_operation_duration_seconds",
            "Store operation latency by operation",
            m.store_duration.clone(),
        );
        r.register(
            "brokkr_store_operations",
            "Store operations by operation and outcome (ok or error)",
            m.store_operations.clone(),
        );
        r.register(
            "brokkr_heartbeats",
            "Heartbeats accepted",
            m.heartbeats.clone(),
        );
        r.register(
            "brokkr_health_reports",
            "Health report requests accepted",
            m.health_reports.clone(),
        );
        r.register(
            "brokkr_health_report_items",
            "Verdicts received in accepted health reports",
            m.health_items.clone(),
        );
        r.register(
            "brokkr_agents",
            "Agents by staleness state (fresh, stale, lost)",
            m.agents.clone(),
        );
        r.register(
            "brokkr_deployments",
            "Stored agent x deployment object verdicts by health",
            m.deployments.clone(),
        );
        r.register(
            "brokkr_diagnostic_requests",
            "Diagnostics requests by state",
            m.diagnostics.clone(),
        );
        r.register(
            "brokkr_cleanup_deleted",
            "Diagnostics requests deleted by cleanup",
            m.cleanup_deleted.clone(),
        );
        r.register(
            "brokkr_cleanup_runs",
            "Cleanup runs",
            m.cleanup_runs.clone(),
        );
        r.register(
            "brokkr_cleanup_failures",
            "Cleanup runs that failed",
            m.cleanup_failures.clone(),
        );
        r.register(
            "brokkr_metrics_refresh_failures",
            "Scrapes whose fleet gauges could not be refreshed",
            m.refresh_failures.clone(),
        );
        r.register(
            "brokkr_ready",
            "1 when the store is reachable and migrated (what /readyz checks), else 0",
            m.ready.clone(),
        );
        r.register(
            "brokkr_webhook_deliveries",
            "Webhook deliveries by outcome (delivered, failed after every retry)",
            m.webhook_deliveries.clone(),
        );
        r.register(
            "brokkr_webhook_dropped",
            "Webhook deliveries dropped (too many in flight, subscriptions unreadable, dispatcher behind)",
            m.webhook_dropped.clone(),
        );
        r.register(
            "brokkr_build_info",
            "Build information (always 1)",
            m.build_info.clone(),
        );
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        // Known states start at zero, so dashboards and alerts see the series at once.
        for state in ["fresh", "stale", "lost"] {
            m.agents.get_or_create(&state_label(state)).set(0);
        }
        for health in ["healthy", "degraded", "failing", "unknown"] {
            m.deployments
                .get_or_create(&HealthLabels {
                    health: health.to_owned(),
                })
                .set(0);
        }
        for state in ["pending", "claimed", "completed", "failed", "expired"] {
            m.diagnostics.get_or_create(&state_label(state)).set(0);
        }
        Arc::new(m)
    }

    /// One HTTP request: `route` is the matched template (or [`UNMATCHED`]).
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let method = match method {
            "GET" | "POST" | "PATCH" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "other",
        };
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status: class.to_owned(),
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A heartbeat was accepted.
    pub fn heartbeat(&self) {
        self.heartbeats.inc();
    }

    /// A health report with `items` verdicts was accepted.
    pub fn health_report(&self, items: u64) {
        self.health_reports.inc();
        self.health_items.inc_by(items);
    }

    /// A webhook delivery ended: delivered, or failed after its last retry.
    pub fn webhook_delivered(&self, ok: bool) {
        self.webhook_deliveries
            .get_or_create(&OutcomeOnly {
                outcome: if ok { "delivered" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Webhook deliveries dropped before they were tried.
    pub fn webhook_dropped(&self, n: u64) {
        self.webhook_dropped.inc_by(n);
    }

    /// A cleanup run finished (`Err` when it failed).
    pub fn cleanup(&self, deleted: Result<u64, ()>) {
        self.cleanup_runs.inc();
        match deleted {
            Ok(n) => {
                self.cleanup_deleted.inc_by(n);
            }
            Err(()) => {
                self.cleanup_failures.inc();
            }
        }
    }

    /// Sets the fleet gauges (agents by staleness, verdicts by health, diagnostics by
    /// state) from the broker; read-only, each part bounded by `budget`.
    pub async fn refresh<S: Store + ?Sized>(&self, broker: &Broker<S>, budget: Duration) {
        let ready = tokio::time::timeout(budget, broker.store().ping()).await;
        self.ready.set(i64::from(matches!(ready, Ok(Ok(())))));
        let summary = tokio::time::timeout(budget, broker.fleet_summary(&Principal::Admin)).await;
        match summary {
            Ok(Ok(s)) => {
                for (state, n) in [
                    ("fresh", s.agents.fresh),
                    ("stale", s.agents.stale),
                    ("lost", s.agents.lost),
                ] {
                    self.agents
                        .get_or_create(&state_label(state))
                        .set(as_i64(n));
                }
                for (health, n) in [
                    ("healthy", s.health.healthy),
                    ("degraded", s.health.degraded),
                    ("failing", s.health.failing),
                    ("unknown", s.health.unknown),
                ] {
                    self.deployments
                        .get_or_create(&HealthLabels {
                            health: health.to_owned(),
                        })
                        .set(as_i64(n));
                }
            }
            _ => {
                self.refresh_failures.inc();
            }
        }
        let counts =
            tokio::time::timeout(budget, broker.diagnostic_counts(&Principal::Admin)).await;
        match counts {
            Ok(Ok(c)) => {
                for (state, n) in [
                    ("pending", c.pending),
                    ("claimed", c.claimed),
                    ("completed", c.completed),
                    ("failed", c.failed),
                    ("expired", c.expired),
                ] {
                    self.diagnostics
                        .get_or_create(&state_label(state))
                        .set(as_i64(n));
                }
            }
            _ => {
                self.refresh_failures.inc();
            }
        }
    }
}

fn state_label(state: &str) -> StateLabels {
    StateLabels {
        state: state.to_owned(),
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl StoreObserver for Metrics {
    fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        self.store_duration
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        self.store_operations
            .get_or_create(&OutcomeLabels {
                operation: operation.to_owned(),
                outcome: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
    }
}

/// The registry `/metrics` serves and the broker's families in it.
#[derive(Clone)]
pub struct Telemetry {
    /// Everything `/metrics` exposes (the host's metrics too, if it registered them).
    /// Behind a lock so a host can keep registering its own metrics
    /// ([`Telemetry::register`]).
    pub registry: Arc<std::sync::RwLock<Registry>>,
    /// The broker's families.
    pub metrics: Arc<Metrics>,
    /// Live fleet events (`GET /api/v1/events`), the last 1024 kept for resuming.
    pub events: Arc<crate::events::EventHub>,
    /// Bumped whenever this process changes a webhook subscription, so the dispatcher
    /// re-reads them at once.
    pub webhooks_changed: Arc<std::sync::atomic::AtomicU64>,
    /// Keeps the fleet summary snapshot fresh while summaries are read.
    pub fleet_snapshot: Arc<crate::fleet_snapshot::FleetSnapshotRefresher>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A registry holding only the broker's families.
    pub fn new_default() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        Self::new(registry, metrics)
    }

    /// `registry` (in which `metrics` were registered) served as is.
    pub fn new(registry: Registry, metrics: Arc<Metrics>) -> Self {
        Self {
            registry: Arc::new(std::sync::RwLock::new(registry)),
            metrics,
            events: crate::events::EventHub::new(1024),
            webhooks_changed: Arc::default(),
            fleet_snapshot: Arc::default(),
        }
    }

    /// Registers more of the host's metrics in the shared registry, at any time.
    pub fn register(&self, register: impl FnOnce(&mut Registry)) {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        register(&mut registry);
    }

    /// Brings the fleet gauges (agents by staleness, deployments by health, queue,
    /// diagnostics) up to date, each part within `budget`: what a scrape of the broker's
    /// `/metrics` does first, for a host that serves the shared registry itself.
    pub async fn refresh(&self, broker: &Broker<dyn Store>, budget: Duration) {
        self.fleet_snapshot.reading(broker);
        self.metrics.refresh(broker, budget).await;
    }

    /// The OpenMetrics text exposition.
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// The Prometheus text format 0.0.4 exposition.
    pub fn text(&self) -> String {
        to_text_004(&self.openmetrics())
    }
}

/// Turns an OpenMetrics exposition into Prometheus text format 0.0.4: counters are
/// declared under their `_total` sample name, `# UNIT` and `# EOF` lines go, and types
/// 0.0.4 lacks become `untyped` (info and stateset become gauges).
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" if !name.ends_with("_total") => (format!("{name}_total"), "counter"),
                "counter" | "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_owned(), "gauge"),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some((_, help)) = pending_help.take() {
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some((name, help)) = pending_help.take() {
            let _ = writeln!(out, "# HELP {name} {help}");
        }
        // Exemplars (` # {...}`) are OpenMetrics only.
        let sample = line.split(" # ").next().unwrap_or(line);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_declared_by_their_sample_name_and_eof_goes() {
        let om = "# HELP brokkr_heartbeats Heartbeats accepted.\n\
                  # TYPE brokkr_heartbeats counter\n\
                  brokkr_heartbeats_total 3\n\
                  # HELP brokkr_agents Agents.\n\
                  # TYPE brokkr_agents gauge\n\
                  brokkr_agents{state=\"fresh\"} 2\n\
                  # EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP brokkr_heartbeats_total Heartbeats accepted.\n\
             # TYPE brokkr_heartbeats_total counter\n\
             brokkr_heartbeats_total 3\n\
             # HELP brokkr_agents Agents.\n\
             # TYPE brokkr_agents gauge\n\
             brokkr_agents{state=\"fresh\"} 2\n"
        );
    }

    #[test]
    fn the_families_are_registered_and_labels_are_bounded() {
        let t = Telemetry::new_default();
        t.metrics.observe_request(
            "/api/v1/agents/{id}/heartbeat",
            "BREW",
            204,
            Duration::from_millis(3),
        );
        t.metrics.heartbeat();
        t.metrics
            .observe("fleet_rollup", Duration::from_millis(1), true);
        let text = t.text();
        for family in [
            "# TYPE brokkr_http_requests_total counter",
            "# TYPE brokkr_http_request_duration_seconds histogram",
            "# TYPE brokkr_store_operation_duration_seconds histogram",
            "# TYPE brokkr_heartbeats_total counter",
            "# TYPE brokkr_health_reports_total counter",
            "# TYPE brokkr_agents gauge",
            "# TYPE brokkr_deployments gauge",
            "# TYPE brokkr_diagnostic_requests gauge",
            "# TYPE brokkr_cleanup_deleted_total counter",
            "# TYPE brokkr_build_info gauge",
        ] {
            assert!(text.contains(family), "{family} missing in\n{text}");
        }
        assert!(text.contains(
            "brokkr_http_requests_total{route=\"/api/v1/agents/{id}/heartbeat\",method=\"other\",status=\"2xx\"} 1"
        ), "{text}");
        assert!(!text.contains("# EOF"));
        assert!(t.openmetrics().ends_with("# EOF\n"));
    }
}
