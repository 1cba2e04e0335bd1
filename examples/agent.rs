//! The example agent: one cluster's side, talking to a broker over HTTP (egress only).
//!
//! ```text
//! BROKKR_AGENT_PAK=brokkr_agent_... cargo run --example agent -- \
//!     --broker-url http://127.0.0.1:3000 --agent-id <uuid> --simulate
//! ```
//!
//! `--simulate` runs against a simulated cluster (pods per object and nodes are flags);
//! a real cluster needs the `k8s` feature and the `brokkr-k8s` probe, which is not built
//! yet. The key comes from `BROKKR_AGENT_PAK` only, never from a flag, so it does not
//! show up in process listings.

use std::sync::Arc;

use brokkr::core::agent::{Agent, AgentConfig, SimulatedCluster, SimulationConfig};
use brokkr::core::clock::SystemClock;
use brokkr::core::ids::AgentId;
use brokkr::http::client::{Client, ClientConfig};
use brokkr::http::shutdown_signal;
use chrono::Duration;
use clap::Parser;

/// Command line; every flag can also come from the environment.
#[derive(Debug, Parser)]
#[command(about = "Brokkr example agent")]
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
    if !args.simulate {
        return Err(
            "no cluster to watch: pass --simulate (the Kubernetes probe, feature k8s, \
                    is not available yet)"
                .into(),
        );
    }
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
    let cluster = Arc::new(SimulatedCluster::new(
        Arc::new(SystemClock),
        SimulationConfig {
            pods_per_object: args.pods_per_object,
            nodes: args.nodes.max(1),
            ..SimulationConfig::default()
        },
    ));
    let agent = Agent::new(cluster.clone(), client, SystemClock, config)?.with_applier(cluster);
    println!(
        "brokkr agent {} reporting to {} (simulated cluster)",
        args.agent_id, args.broker_url
    );
    agent.run(shutdown_signal()).await;
    println!("brokkr agent stopped");
    Ok(())
}
