//! The example broker: the HTTP API over the in-memory store (default) or Postgres.
//!
//! ```text
//! cargo run --example broker                               # 127.0.0.1:3000, in-memory
//! cargo run --example broker -- --listen 127.0.0.1:8080
//! DATABASE_URL=postgres://... BROKKR_ADMIN_PAK=brokkr_admin_... \
//!     cargo run --example broker --features postgres
//! cargo run --example broker -- --config broker.toml
//! ```
//!
//! The admin key comes from `BROKKR_ADMIN_PAK` (or the config file); with the in-memory
//! store one is generated and printed when none is given. It never binds to all
//! interfaces unless `--listen` says so.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use brokkr::core::auth::{Pak, Role, hash_pak, looks_like, weak_key};
use brokkr::core::broker::{Broker, BrokerConfig};
use brokkr::core::clock::SystemClock;
use brokkr::core::store::MeteredStore;
use brokkr::core::store::Store;
use brokkr::http::metrics::Telemetry;
use brokkr::http::tasks::{BrokerTasks, TaskConfig};
use brokkr::http::{HttpConfig, router_with, serve, shutdown_signal};
use clap::Parser;
use serde::Deserialize;

/// Command line; every flag can also come from the environment or the config file.
#[derive(Debug, Parser)]
#[command(
    about = "Brokkr example broker",
    after_help = "Environment only (never a flag, so the key stays out of process listings):\n  \
                  BROKKR_ADMIN_PAK     the admin key, brokkr_admin_<40+ letters and digits> \
                  (or admin_pak in the config file)\n  \
                  BROKKR_METRICS_JSON  off: do not serve /metrics.json"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "BROKKR_LISTEN")]
    listen: Option<SocketAddr>,
    /// PostgreSQL URL; without it the in-memory store is used.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// TOML config file (keys: listen, database_url, admin_pak, log, log_format,
    /// key_cache_ttl_seconds, fleet_snapshot_max_age_seconds).
    #[arg(long, env = "BROKKR_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `brokkr=debug,tower_http=info`.
    #[arg(long, env = "BROKKR_LOG")]
    log: Option<String>,
    /// Log format: `text` (default) or `json` (one object per line, for log shippers).
    #[arg(long, env = "BROKKR_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// OTLP/HTTP collector to export request spans to, e.g. `http://collector:4318`
    /// (needs `--features otel`).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Seconds a verified agent key is trusted without a store lookup (30; 0: always
    /// look up, so a key revoked through another replica stops working at once).
    #[arg(long, env = "BROKKR_KEY_CACHE_TTL_SECONDS")]
    key_cache_ttl_seconds: Option<u32>,
    /// Oldest fleet summary served, in seconds (5; 0: computed per request).
    #[arg(long, env = "BROKKR_FLEET_SNAPSHOT_MAX_AGE_SECONDS")]
    fleet_snapshot_max_age_seconds: Option<u32>,
    /// Let webhook deliveries reach private addresses (10/8, 172.16/12, 192.168/16,
    /// 100.64/10, fc00::/7); loopback and link-local stay refused.
    #[arg(long, env = "BROKKR_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// Host names webhook deliveries may reach whatever they resolve to (comma
    /// separated), e.g. an in-cluster receiver `hooks.monitoring.svc.cluster.local`.
    #[arg(long, env = "BROKKR_WEBHOOK_ALLOW_HOSTS", value_delimiter = ',')]
    webhook_allow_hosts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    admin_pak: Option<String>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    key_cache_ttl_seconds: Option<u32>,
    fleet_snapshot_max_age_seconds: Option<u32>,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Failure> {
    let args = Args::parse();
    let file: FileConfig = match &args.config {
        Some(path) => toml::from_str(
            &std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {}: {e}", path.display()))?,
        )
        .map_err(|e| format!("invalid config {}: {e}", path.display()))?,
        None => FileConfig::default(),
    };
    let filter = args
        .log
        .or(file.log)
        .unwrap_or_else(|| "info,tower_http=warn,sqlx=warn".to_owned());
    let _otel = init_logs(
        &filter,
        args.log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Text),
        args.otlp_endpoint.as_deref(),
    )?;

    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));
    let database_url = args.database_url.or(file.database_url);
    let admin_pak = std::env::var("BROKKR_ADMIN_PAK").ok().or(file.admin_pak);

    let store = open_store(database_url.as_deref()).await?;
    let admin_hash = match admin_pak {
        Some(key) if looks_like(&key, Role::Admin) => {
            if let Some(why) = weak_key(&key) {
                return Err(format!(
                    "BROKKR_ADMIN_PAK is too weak: its random part {why}; generate one, e.g. \
                     brokkr_admin_$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 43)"
                )
                .into());
            }
            hash_pak(&key)
        }
        Some(_) => {
            return Err(
                "BROKKR_ADMIN_PAK must look like brokkr_admin_<40+ letters and digits>".into(),
            );
        }
        None if database_url.is_some() => {
            // Several replicas must agree on the key: it cannot be invented here.
            return Err(
                "with a database, set BROKKR_ADMIN_PAK (or admin_pak in the config file)".into(),
            );
        }
        None => {
            let key = Pak::generate(Role::Admin)?;
            println!("admin key (shown once): {}", key.expose());
            key.hash()
        }
    };
    // Store latency goes to the metrics: every operation is timed.
    let telemetry = Telemetry::new_default();
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(store, telemetry.metrics.clone()));
    let defaults = BrokerConfig::default();
    let seconds =
        |n: Option<u32>, default| n.map_or(default, |n| chrono::Duration::seconds(i64::from(n)));
    let config = BrokerConfig {
        webhook_destinations: brokkr::core::destination::DestinationPolicy {
            allow_private: args.webhook_allow_private,
            allow_hosts: args.webhook_allow_hosts.clone(),
        },
        key_cache_ttl: seconds(
            args.key_cache_ttl_seconds.or(file.key_cache_ttl_seconds),
            defaults.key_cache_ttl,
        ),
        fleet_snapshot_max_age: seconds(
            args.fleet_snapshot_max_age_seconds
                .or(file.fleet_snapshot_max_age_seconds),
            defaults.fleet_snapshot_max_age,
        ),
        ..defaults
    };
    let broker: Broker<dyn Store> = Broker::new(store, Arc::new(SystemClock), admin_hash, config)?;
    // Staleness watcher, cleanup, event relay, webhook dispatcher: one handle.
    let tasks = BrokerTasks::spawn(&broker, &telemetry, &TaskConfig::default());

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!(
        "brokkr broker listening on http://{}",
        listener.local_addr()?
    );
    serve(
        listener,
        router_with(broker, &HttpConfig::default(), telemetry.clone()),
        async move {
            shutdown_signal().await;
            // Open event streams end now, or they would hold up the shutdown.
            telemetry.events.close();
        },
    )
    .await?;
    tasks.shutdown().await;
    println!("brokkr broker stopped");
    Ok(())
}

/// Text or JSON logs, and spans to an OTLP collector when asked (the returned guard
/// flushes them when dropped at exit).
fn init_logs(
    filter: &str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<Guard, Failure> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (otel, guard) = otel_layer(otlp_endpoint)?;
    let registry = tracing_subscriber::registry()
        .with(otel)
        .with(tracing_subscriber::EnvFilter::try_new(filter)?);
    match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json())
            .init(),
    }
    Ok(guard)
}

type OtelLayer =
    Option<Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>>;
type Guard = Option<Box<dyn std::any::Any>>;

#[cfg(feature = "otel")]
fn otel_layer(endpoint: Option<&str>) -> Result<(OtelLayer, Guard), Failure> {
    let Some(endpoint) = endpoint else {
        return Ok((None, None));
    };
    let (layer, guard) = brokkr::http::otel::otlp_layer(endpoint, "brokkr-broker")?;
    Ok((Some(Box::new(layer)), Some(Box::new(guard))))
}

#[cfg(not(feature = "otel"))]
fn otel_layer(endpoint: Option<&str>) -> Result<(OtelLayer, Guard), Failure> {
    match endpoint {
        Some(_) => Err("--otlp-endpoint needs a build with --features otel".into()),
        None => Ok((None, None)),
    }
}

#[cfg(feature = "postgres")]
async fn open_store(url: Option<&str>) -> Result<Arc<dyn Store>, Failure> {
    use brokkr::store_postgres::{PgStore, PgStoreOptions};
    match url {
        Some(url) => {
            let store = PgStore::connect(url, &PgStoreOptions::default())
                .await
                .map_err(|e| format!("cannot open the database: {e}"))?;
            Ok(Arc::new(store))
        }
        None => Ok(Arc::new(brokkr::store_memory::MemoryStore::new())),
    }
}

#[cfg(not(feature = "postgres"))]
#[allow(clippy::unused_async)] // async like its Postgres twin
async fn open_store(url: Option<&str>) -> Result<Arc<dyn Store>, Failure> {
    if url.is_some() {
        return Err("this build has no Postgres store: run with --features postgres".into());
    }
    Ok(Arc::new(brokkr::store_memory::MemoryStore::new()))
}
