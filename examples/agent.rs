//! The example agent: one cluster's side, talking to a broker over HTTP (egress only).
//!
//! ```text
//! BROKKR_AGENT_PAK=brokkr_agent_... cargo run --example agent --features client -- \
//!     --broker-url http://127.0.0.1:3000 --agent-id <uuid> --simulate
//! ```
//!
//! `--simulate` runs against a simulated cluster (pods per object and nodes are flags).
//! Built with `--features k8s`, it watches a real cluster without `--simulate`, through
//! the kubeconfig (`KUBECONFIG` / `~/.kube/config`) or, inside a pod, the in-cluster
//! service account (see `deploy/agent/`):
//!
//! ```text
//! BROKKR_AGENT_PAK=... cargo run --example agent --features client,k8s -- \
//!     --broker-url https://broker.example:3000 --agent-id <uuid>
//! ```
//!
//! The key comes from `BROKKR_AGENT_PAK` only, never from a flag, so it does not show
//! up in process listings. `--probe-listen ADDR` serves `/livez` and `/readyz` (ready
//! once the broker took a heartbeat within three heartbeat intervals).

use std::sync::Arc;

use brokkr::agent::{Agent, AgentConfig, SimulatedCluster, SimulationConfig};
use brokkr::client::{Client, ClientConfig};
use brokkr::core::clock::{Clock, SystemClock};
use brokkr::core::ids::AgentId;
use brokkr::http::shutdown_signal;
use chrono::Duration;
use clap::Parser;

/// Command line; every flag can also come from the environment.
#[derive(Debug, Parser)]
#[command(
    about = "Brokkr example agent",
    after_help = "Environment only (never a flag, so the key stays out of process listings):\n  \
                  BROKKR_AGENT_PAK  the agent's key, shown once when it was registered"
)]
struct Args {
    /// Base URL of the broker.
    #[arg(
        long,
        env = "BROKKR_BROKER_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    broker_url: String,
    /// The agent's id (from `POST /api/v1/agents`).
    #[arg(long, env = "BROKKR_AGENT_ID")]
    agent_id: AgentId,
    /// Use a simulated cluster instead of a real one.
    #[arg(long)]
    simulate: bool,
    /// Simulated cluster: pods per applied deployment object.
    #[arg(long, default_value_t = 3)]
    pods_per_object: usize,
    /// Simulated cluster: nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 30)]
    heartbeat_interval: i64,
    /// Seconds between health checks.
    #[arg(long, default_value_t = 60)]
    check_interval: i64,
    /// Seconds between polls for diagnostics requests.
    #[arg(long, default_value_t = 10)]
    diagnostics_poll: i64,
    /// Seconds between target-state fetches.
    #[arg(long, default_value_t = 30)]
    reconcile_interval: i64,
    /// Serve `/livez` and `/readyz` on this address (for Kubernetes probes).
    #[arg(long, env = "BROKKR_PROBE_LISTEN")]
    probe_listen: Option<std::net::SocketAddr>,
    /// Log filter, e.g. `info` or `brokkr_core=debug`.
    #[arg(long, env = "BROKKR_LOG", default_value = "info")]
    log: String,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), Failure> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log)?)
        .init();
    let pak = std::env::var("BROKKR_AGENT_PAK")
        .map_err(|_| "set BROKKR_AGENT_PAK to the agent's key (shown when it was registered)")?;
    let defaults = AgentConfig::default();
    let check_interval = Duration::seconds(args.check_interval);
    let config = AgentConfig {
        heartbeat_interval: Duration::seconds(args.heartbeat_interval),
        check_interval,
        diagnostics_poll: Duration::seconds(args.diagnostics_poll),
        reconcile_interval: Duration::seconds(args.reconcile_interval),
        recover_after: defaults
            .recover_after
            .max(check_interval + Duration::seconds(1)),
        ..defaults
    };
    let client = Client::new(ClientConfig::new(&args.broker_url, args.agent_id, pak))?;
    if args.simulate {
        let cluster = Arc::new(SimulatedCluster::new(
            Arc::new(SystemClock),
            SimulationConfig {
                pods_per_object: args.pods_per_object,
                nodes: args.nodes.max(1),
                ..SimulationConfig::default()
            },
        ));
        let agent = Agent::new(cluster.clone(), client, SystemClock, config)?.with_applier(cluster);
        return serve(agent, &args, "a simulated cluster").await;
    }
    real_cluster(client, config, &args).await
}

#[cfg(feature = "k8s")]
async fn real_cluster(client: Client, config: AgentConfig, args: &Args) -> Result<(), Failure> {
    use brokkr::k8s::{KubeApplier, KubeApplierConfig, KubeProbe, KubeProbeConfig};
    let kube = brokkr::k8s::connect().await.map_err(|e| {
        format!("no Kubernetes cluster: {e} (set KUBECONFIG, run in a pod, or pass --simulate)")
    })?;
    let probe = KubeProbe::new(kube.clone(), KubeProbeConfig::default());
    let applier = Arc::new(KubeApplier::new(kube, KubeApplierConfig::default()));
    let agent = Agent::new(probe, client, SystemClock, config)?.with_applier(applier);
    serve(agent, args, "the Kubernetes cluster").await
}

#[cfg(not(feature = "k8s"))]
#[allow(clippy::unused_async)] // async like its k8s twin
async fn real_cluster(_: Client, _: AgentConfig, _: &Args) -> Result<(), Failure> {
    Err("no cluster to watch: pass --simulate, or build with --features k8s".into())
}

/// Runs the agent (and the probe endpoint, if asked for) until Ctrl-C or SIGTERM.
async fn serve<P>(
    agent: Agent<P, Client, SystemClock>,
    args: &Args,
    what: &str,
) -> Result<(), Failure>
where
    P: brokkr::core::probe::ClusterProbe + 'static,
{
    if let Some(addr) = args.probe_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let watched = agent.clone();
        let patience = watched.config().heartbeat_interval * 3;
        let app = axum::Router::new()
            .route("/livez", axum::routing::get(|| async { "ok" }))
            .route(
                "/readyz",
                axum::routing::get(move || async move {
                    let fresh = watched
                        .last_heartbeat()
                        .is_some_and(|t| SystemClock.now() - t <= patience);
                    if fresh {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "no heartbeat reached the broker lately",
                        )
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    println!(
        "brokkr agent {} watching {what}, reporting to {}",
        args.agent_id, args.broker_url
    );
    agent.run(shutdown_signal()).await;
    println!("brokkr agent stopped");
    Ok(())
}
