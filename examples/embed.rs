//! A host orchestrator embedding the broker: its own axum application with the broker's
//! API nested under `/brokkr` beside the host's own routes, one Prometheus registry and
//! one tracing subscriber for both, the broker's background jobs through one handle, and
//! a graceful shutdown on Ctrl-C. See `docs/embedding.md`.
//!
//! ```text
//! cargo run --example embed                                  # in-memory, 127.0.0.1:8080
//! BROKKR_ADMIN_PAK=brokkr_admin_... cargo run --example embed --features postgres -- \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use brokkr::core::auth::{Pak, Role, hash_pak, looks_like};
use brokkr::core::clock::SystemClock;
use brokkr::core::store::MeteredStore;
use brokkr::http::metrics::{Metrics, Telemetry};
use brokkr::http::{HttpConfig, TaskConfig, routers, shutdown_signal};
use brokkr::{Broker, BrokerConfig, BrokerTasks, Store};
use clap::Parser;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Where the host nests the broker.
const PREFIX: &str = "/brokkr";

#[derive(Debug, Parser)]
#[command(
    about = "A host orchestrator that embeds the Brokkr broker",
    after_help = "Environment only (never a flag, so the key stays out of process listings):\n  \
                  BROKKR_ADMIN_PAK  the broker's admin key (generated and printed when absent, \
                  with the in-memory store)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PostgreSQL URL (needs `--features postgres`); without it the in-memory store.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

/// The host's own state: its metrics and the broker (to refresh the broker's gauges
/// when the host serves the shared registry).
#[derive(Clone)]
struct Host {
    orders: Counter,
    telemetry: Telemetry,
    broker: Broker<dyn Store>,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Failure> {
    let args = Args::parse();
    // The host's subscriber: the broker's request spans and logs land here too.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .init();

    // One registry: the host's metrics and the broker's families side by side.
    let mut registry = Registry::default();
    let orders = Counter::default();
    registry.register("host_orders", "Orders the host handled", orders.clone());
    let metrics = Metrics::register(&mut registry);
    let telemetry = Telemetry::new(registry, metrics);

    let store = open_store(args.database_url.as_deref()).await?;
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, telemetry.metrics.clone()));
    let admin = match std::env::var("BROKKR_ADMIN_PAK") {
        Ok(key) if looks_like(&key, Role::Admin) => hash_pak(&key),
        Ok(_) => {
            return Err(
                "BROKKR_ADMIN_PAK must look like brokkr_admin_<40+ letters and digits>".into(),
            );
        }
        Err(_) if args.database_url.is_some() => {
            return Err("with a database, set BROKKR_ADMIN_PAK".into());
        }
        Err(_) => {
            let key = Pak::generate(Role::Admin)?;
            println!("broker admin key (shown once): {}", key.expose());
            key.hash()
        }
    };
    let broker: Broker<dyn Store> =
        Broker::new(store, Arc::new(SystemClock), admin, BrokerConfig::default())?;
    // Staleness watcher, cleanup, event relay, webhook dispatcher: one handle.
    let tasks = BrokerTasks::spawn(&broker, &telemetry, &TaskConfig::default());

    // The host keeps registering its own metrics after the broker's are in.
    let clusters = Gauge::<i64>::default();
    telemetry.register(|registry| {
        registry.register(
            "host_clusters",
            "Clusters the host manages",
            clusters.clone(),
        );
    });
    clusters.set(3);

    let parts = routers(
        broker.clone(),
        &HttpConfig::default(),
        telemetry.clone(),
        PREFIX,
    );
    let host = Host {
        orders,
        telemetry: telemetry.clone(),
        broker,
    };
    let app = Router::new()
        // The host's own routes, fallback and metrics.
        .route("/", get(|| async { "host orchestrator\n" }))
        .route("/orders", get(list_orders))
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "the host knows no such page\n") })
        .with_state(host)
        // The broker's API, documentation and probes under the prefix (the host decides
        // where each part goes; /metrics stays the host's, so `observe` is left out).
        .nest(PREFIX, parts.api.merge(parts.docs).merge(parts.probes));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!(
        "host listening on http://{} (broker API under {PREFIX}/api/v1)",
        listener.local_addr()?
    );
    // The broker limits failed authentication per address: give it the peer's.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        // Open event streams end now, or they would hold up the shutdown.
        telemetry.events.close();
    })
    .await?;
    tasks.shutdown().await;
    println!("host stopped");
    Ok(())
}

async fn list_orders(State(host): State<Host>) -> &'static str {
    host.orders.inc();
    "[]\n"
}

/// The host's scrape of the shared registry: the broker's fleet gauges are brought up
/// to date first, as the broker's own `/metrics` would.
async fn scrape(State(host): State<Host>) -> impl axum::response::IntoResponse {
    host.telemetry
        .refresh(&host.broker, Duration::from_secs(2))
        .await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        host.telemetry.text(),
    )
}

#[cfg(feature = "postgres")]
async fn open_store(url: Option<&str>) -> Result<Arc<dyn Store>, Failure> {
    use brokkr::store_postgres::{PgStore, PgStoreOptions};
    match url {
        Some(url) => Ok(Arc::new(
            PgStore::connect(url, &PgStoreOptions::default())
                .await
                .map_err(|e| format!("cannot open the database: {e}"))?,
        )),
        None => Ok(Arc::new(brokkr::MemoryStore::new())),
    }
}

#[cfg(not(feature = "postgres"))]
#[allow(clippy::unused_async)] // async like its Postgres twin
async fn open_store(url: Option<&str>) -> Result<Arc<dyn Store>, Failure> {
    if url.is_some() {
        return Err("this build has no Postgres store: run with --features postgres".into());
    }
    Ok(Arc::new(brokkr::MemoryStore::new()))
}
